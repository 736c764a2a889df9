//! The one module that names bincode.
//!
//! Everything swarm persists (the Raft log, the state machine, snapshots) and every binary frame
//! it sends goes through [`encode`] and [`decode`]. Each buffer starts with a format-version
//! byte, so a later move to another encoding (postcard, say) or a change of bincode's
//! configuration changes this file and bumps [`FORMAT_VERSION`]; old bytes are then refused with
//! a clear error instead of being misread.
//!
//! ```text
//!  ┌──────────────┬──────────────────────────────────────────────┐
//!  │ version: u8  │ bincode 2, config::standard() (varint ints)  │
//!  └──────────────┴──────────────────────────────────────────────┘
//! ```
//!
//! bincode is pinned to `=2.0.1`: 3.0.0 is a tombstone that does not compile. Types that go
//! through here must be "flat" for serde: no `#[serde(flatten)]`, no `skip_serializing_if`, no
//! `deserialize_any` (bincode is positional and not self-describing).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version byte in front of every buffer [`encode`] writes.
pub const FORMAT_VERSION: u8 = 1;

/// Decoding refuses to allocate more than this for one value, so a corrupt or hostile length
/// prefix cannot make the process allocate gigabytes.
pub const DECODE_LIMIT: usize = 64 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot decode an empty buffer: the format-version byte is missing")]
    Empty,
    #[error("unsupported format version {found} (this build reads version {expected})")]
    UnsupportedVersion { found: u8, expected: u8 },
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("{extra} unexpected bytes after the value")]
    TrailingBytes { extra: usize },
}

/// Encodes `value` behind the format-version byte.
///
/// Fails only for values bincode cannot express (a `Serialize` impl that errors, or a sequence
/// of unknown length): a bug in the type, never a property of the data.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

/// Decodes a buffer written by [`encode`]: checks the version byte, then requires the value to
/// use every byte (a buffer with a tail is corrupt, not "a value and some padding").
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(body, config())?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        maybe: Option<u64>,
        role: Role,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        Worker,
        Manager,
    }

    fn sample() -> Sample {
        Sample {
            name: "n1".into(),
            labels: BTreeMap::from([("zone".into(), "a".into())]),
            maybe: Some(7),
            role: Role::Manager,
        }
    }

    #[test]
    fn round_trip_starts_with_the_version_byte() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample());
    }

    #[test]
    fn refuses_empty_other_versions_truncation_and_tails() {
        assert!(matches!(decode::<Sample>(&[]), Err(CodecError::Empty)));

        let mut bytes = encode(&sample()).unwrap();
        bytes[0] = FORMAT_VERSION + 1;
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::UnsupportedVersion { found, expected: FORMAT_VERSION }) if found == FORMAT_VERSION + 1
        ));

        let bytes = encode(&sample()).unwrap();
        assert!(matches!(
            decode::<Sample>(&bytes[..bytes.len() - 1]),
            Err(CodecError::Decode(_))
        ));

        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_not_allocated() {
        // Version byte, then a varint length of u64::MAX for the first String.
        let bytes = [
            FORMAT_VERSION,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
        ];
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::Decode(_))
        ));
    }
}
