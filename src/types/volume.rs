//! Named volumes in the Docker Engine API's shapes (`/volumes`, moby `api/types/volume`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The label Docker puts on volumes made without a name (`docker run -v /data`, an empty
/// `Name` on create); `volume prune` removes only these unless asked for all.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// `GET /volumes/{name}`, one entry of `GET /volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    /// RFC 3339.
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    /// `local` (this node's).
    pub scope: String,
    /// The driver options it was created with.
    pub options: BTreeMap<String, String>,
}

/// `POST /volumes/create` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreateRequest {
    pub name: String,
    pub driver: String,
    #[serde(deserialize_with = "super::serde_util::null_as_default")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(deserialize_with = "super::serde_util::null_as_default")]
    pub labels: BTreeMap<String, String>,
}

/// `GET /volumes` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeListResponse {
    pub volumes: Vec<Volume>,
    pub warnings: Vec<String>,
}

/// `POST /volumes/prune` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumePruneResponse {
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`. No '/' and no leading
/// '.', so a name is always one plain directory entry (no `..`, no hidden names).
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_volume_names_follow_dockers_rule() {
        for good in ["data", "db-1", "a.b_c", "0x", "A9", &"v".repeat(255)] {
            assert!(valid_name(good), "{good} refused");
        }
        for bad in [
            "",
            "a",
            ".hidden",
            "..",
            "-x",
            "_x",
            "a/b",
            "../etc",
            "a b",
            "dätä",
            "x\0y",
            "a:b",
            &"v".repeat(256),
        ] {
            assert!(!valid_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn t10_create_bodies_from_go_clients() {
        let r: VolumeCreateRequest = serde_json::from_str(
            r#"{"Name":"x","Driver":"local","DriverOpts":null,"Labels":null}"#,
        )
        .unwrap();
        assert_eq!(r.name, "x");
        assert!(r.driver_opts.is_empty() && r.labels.is_empty());
        let r: VolumeCreateRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r, VolumeCreateRequest::default());
    }
}
