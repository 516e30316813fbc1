//! The coalition's domain: records, the rules they obey and the views derived from them.
//!
//! This crate does no IO and reads no clock or random source: ids and times are passed in,
//! so every rule here is a pure function that tests can pin down. It defines the [`Clock`]
//! that every layer is handed, with the one adapter that reads the system's (`clock.rs`).

pub mod clock;
mod currency;
pub mod matching;
mod records;
mod time;
pub mod views;

pub use clock::{Clock, ManualClock, SystemClock};
pub use currency::{currencies, format_amount, is_iso4217, minor_digits};
pub use records::*;
pub use time::{parse_date, Timestamp};

use serde::{Deserialize, Serialize};

/// A record's stable id: lowercase Crockford base32 of 48 bits of creation time and 80 random bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(transparent)]
pub struct RecordId(String);

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

impl RecordId {
    /// Makes an id from a time and ten random bytes, both supplied by the caller.
    pub fn generate(at: Timestamp, random: [u8; 10]) -> RecordId {
        let mut v: u128 = (at.millis().max(0) as u128 & 0xffff_ffff_ffff) << 80;
        for (i, b) in random.iter().enumerate() {
            v |= (*b as u128) << (72 - 8 * i);
        }
        let mut s = String::with_capacity(26);
        for i in (0..26).rev() {
            s.push(CROCKFORD[((v >> (i * 5)) & 31) as usize] as char);
        }
        RecordId(s)
    }

    /// Accepts an id as typed; ids are case-insensitive.
    pub fn parse(s: &str) -> Result<RecordId, ParseError> {
        let t = s.trim().to_ascii_lowercase();
        if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ParseError::RecordId(s.to_string()));
        }
        Ok(RecordId(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` is a vault id as hubs make them (`v` and a [`RecordId`]): what a record's
/// `contact` names. Anything else there (a phone number typed by hand) would put personal data
/// into the record's history, and is refused.
pub fn is_vault_id(s: &str) -> bool {
    s.len() == 27 && s.starts_with('v') && s[1..].bytes().all(|b| CROCKFORD.contains(&b))
}

impl From<&str> for RecordId {
    fn from(s: &str) -> Self {
        RecordId(s.to_string())
    }
}

/// A problem with one field of a record; `field` is empty for the record as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, ts_rs::TS)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl std::fmt::Display) -> FieldError {
        FieldError { field: field.to_string(), message: message.to_string() }
    }
}

/// What a value people typed, or a file held, is not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown record kind {0:?}; known kinds: {known}", known = Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "))]
    Kind(String),
    #[error("{0:?} is not a record id")]
    RecordId(String),
    #[error("invalid date-time {0:?}: expected e.g. 2026-11-25T14:00:00Z")]
    Timestamp(String),
    #[error("invalid date {0:?}: expected YYYY-MM-DD")]
    Date(String),
}

#[cfg(test)]
mod tests;
