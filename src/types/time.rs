//! `Timestamp`: a point in time as Docker's JSON writes it (RFC 3339 with nanoseconds, UTC),
//! stored as integer nanoseconds since the Unix epoch.
//!
//! The serde form depends on the format: human-readable encodings (JSON for the API) get the
//! RFC 3339 string Go's `time.Time` produces and parses; binary ones (the Raft log through
//! `codec`) get the plain `i64`, which is compact and cannot be misparsed.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Nanoseconds since 1970-01-01T00:00:00Z. Covers the years 1677–2262.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The wall clock now. Only proposers call this: the state machine takes time from the
    /// command it applies, so every replica computes the same state.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
    }

    pub fn from_nanos(nanos: i64) -> Timestamp {
        Timestamp(nanos)
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }

    /// RFC 3339 in UTC with as many fractional digits as needed (0, 3, 6 or 9).
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_nanos(self.0).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimestampError> {
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| TimestampError::Invalid {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        parsed
            .timestamp_nanos_opt()
            .map(Timestamp)
            .ok_or_else(|| TimestampError::OutOfRange(text.to_owned()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("invalid timestamp {text:?}: {reason}")]
    Invalid { text: String, reason: String },
    #[error("timestamp {0:?} is outside the years 1677-2262")]
    OutOfRange(String),
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(deserializer).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_rfc3339_binary_is_nanos() {
        let t = Timestamp(1_700_000_000_123_456_789);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2023-11-14T22:13:20.123456789Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);

        let bytes = crate::codec::encode(&t).unwrap();
        assert_eq!(crate::codec::decode::<Timestamp>(&bytes).unwrap(), t);
    }

    #[test]
    fn parses_what_go_writes() {
        // Go's RFC3339Nano trims trailing zeros; offsets other than Z are legal too.
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T22:13:20.1Z").unwrap(),
            Timestamp(1_700_000_000_100_000_000)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T23:13:20+01:00").unwrap(),
            Timestamp(1_700_000_000_000_000_000)
        );
        assert!(matches!(
            Timestamp::parse_rfc3339("0001-01-01T00:00:00Z"),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }
}
