//! Points in time and calendar dates as the model sees them: plain values, never read from a clock.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, milliseconds since the Unix epoch, UTC.
///
/// Serialized as RFC 3339 text (`2026-11-25T14:00:00Z`) so that exports and the CRDT stay readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, ts_rs::TS)]
#[ts(type = "string")]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MS_PER_DAY: i64 = 86_400_000;

    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn plus_hours(self, h: i64) -> Self {
        Timestamp(self.0 + h * 3_600_000)
    }
    pub fn plus_days(self, d: i64) -> Self {
        Timestamp(self.0 + d * Self::MS_PER_DAY)
    }
    /// The calendar date (UTC) this instant falls on.
    pub fn date(self) -> NaiveDate {
        self.datetime().date_naive()
    }
    /// `YYYY-MM`, the month this instant falls in (UTC): the partition key of log documents.
    pub fn month(self) -> String {
        self.datetime().format("%Y-%m").to_string()
    }
    /// `YYYY-MM-DD-HHMMSS` (UTC): for file names, sorting as the instants do.
    pub fn file_stamp(self) -> String {
        self.datetime().format("%Y-%m-%d-%H%M%S").to_string()
    }
    fn datetime(self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// Parses RFC 3339 (`2026-11-25T14:00:00Z`, offsets allowed), `2026-11-25T14:00` or
    /// `2026-11-25 14:00` (read as UTC), or a bare date (midnight UTC).
    pub fn parse(s: &str) -> Result<Self, crate::ParseError> {
        let s = s.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Ok(Timestamp(dt.timestamp_millis()));
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
            if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(Timestamp(dt.and_utc().timestamp_millis()));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Timestamp(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis()));
        }
        Err(crate::ParseError::Timestamp(s.to_string()))
    }
}

impl fmt::Display for Timestamp {
    /// Whole seconds print without a fraction; otherwise milliseconds are kept, so that a
    /// timestamp survives a round trip through text exactly (signatures cover it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.rem_euclid(1000) == 0 {
            write!(f, "{}", self.datetime().format("%Y-%m-%dT%H:%M:%SZ"))
        } else {
            write!(f, "{}", self.datetime().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date-time such as 2026-11-25T14:00:00Z")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(|_| E::custom("date-time out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a calendar date `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, crate::ParseError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| crate::ParseError::Date(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_people_type() {
        let z = Timestamp::parse("2026-11-25T14:00:00Z").unwrap();
        assert_eq!(Timestamp::parse("2026-11-25T14:00").unwrap(), z);
        assert_eq!(Timestamp::parse("2026-11-25 14:00").unwrap(), z);
        assert_eq!(Timestamp::parse("2026-11-25T15:00:00+01:00").unwrap(), z);
        assert_eq!(z.to_string(), "2026-11-25T14:00:00Z");
        assert_eq!(z.month(), "2026-11");
        assert_eq!(Timestamp::parse("25/11/2026"), Err(crate::ParseError::Timestamp("25/11/2026".into())));
        assert!(Timestamp::parse("25/11/2026").unwrap_err().to_string().contains("25/11/2026"));
        assert!(parse_date("2026-02-30").is_err());
    }

    #[test]
    fn milliseconds_survive_text() {
        let t = Timestamp::from_millis(1_795_650_998_587);
        assert_eq!(t.to_string(), "2026-11-25T23:56:38.587Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&j).unwrap(), t);
    }

    #[test]
    fn round_trips_through_json() {
        let t = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, "\"2026-01-02T03:04:05Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&j).unwrap(), t);
    }
}
