//! ISO 4217 currency codes and their minor units.

const ACTIVE: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD \
BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD \
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW \
KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK \
NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN \
SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU \
XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL";

/// Whether `code` is an active ISO 4217 code (upper case, as the standard writes them).
pub fn is_iso4217(code: &str) -> bool {
    code.len() == 3 && ACTIVE.split(' ').any(|c| c == code)
}

/// Every active ISO 4217 code with its minor-unit digits, in the standard's order.
pub fn currencies() -> impl Iterator<Item = (&'static str, u32)> {
    ACTIVE.split(' ').map(|c| (c, minor_digits(c)))
}

/// Digits after the decimal point for the currency's minor unit.
pub fn minor_digits(code: &str) -> u32 {
    match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV"
        | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `12345, "EUR"` → `"123.45 EUR"`.
pub fn format_amount(minor: i64, code: &str) -> String {
    let d = minor_digits(code);
    if d == 0 {
        return format!("{minor} {code}");
    }
    let p = 10i64.pow(d);
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:0w$} {code}", m / p as u64, m % p as u64, w = d as usize)
}
