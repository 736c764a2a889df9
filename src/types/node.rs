//! `Node`: one host of the swarm, in the shape of Docker's `GET /nodes/{id}` (moby
//! `api/types/swarm/node.go`), field names and casing as the docker CLI reads them.
//!
//! The same struct is the replicated state (through `crate::codec`) and the API's JSON. The one
//! place the two forms differ is `ManagerStatus`: Go writes it with `omitempty`, and the CLI
//! reads "absent" as "worker", so a worker's JSON leaves it out, while the positional binary
//! form always carries it (see the `Serialize` impl below).

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::Version;
use super::serde_util::null_as_default;
use super::time::Timestamp;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub spec: NodeSpec,
    pub description: NodeDescription,
    pub status: NodeStatus,
    /// Present on managers only: the node is a Raft voter.
    pub manager_status: Option<ManagerStatus>,
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Like Go's `omitempty`, but only where fields are named (JSON): the binary encoding
        // is positional, so leaving a field out there would shift every field after it.
        let omit_manager_status = serializer.is_human_readable() && self.manager_status.is_none();
        let mut node = serializer.serialize_struct("Node", 8)?;
        node.serialize_field("ID", &self.id)?;
        node.serialize_field("Version", &self.version)?;
        node.serialize_field("CreatedAt", &self.created_at)?;
        node.serialize_field("UpdatedAt", &self.updated_at)?;
        node.serialize_field("Spec", &self.spec)?;
        node.serialize_field("Description", &self.description)?;
        node.serialize_field("Status", &self.status)?;
        if omit_manager_status {
            node.skip_field("ManagerStatus")?;
        } else {
            node.serialize_field("ManagerStatus", &self.manager_status)?;
        }
        node.end()
    }
}

impl Node {
    /// A manager in fact (a Raft voter), as opposed to `Spec.Role`, which is what the user
    /// asked for and may not have been carried out yet.
    pub fn is_manager(&self) -> bool {
        self.manager_status.is_some()
    }
}

/// What the user controls: the whole object comes back on `POST /nodes/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeSpec {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    pub role: NodeRole,
    pub availability: NodeAvailability,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDescription {
    pub hostname: String,
    pub platform: Platform,
    pub resources: Resources,
    pub engine: EngineDescription,
    #[serde(rename = "TLSInfo")]
    pub tls_info: TlsInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Platform {
    /// `x86_64`, `aarch64`, … as `uname -m` says (Docker reports the same).
    pub architecture: String,
    #[serde(rename = "OS")]
    pub os: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    /// CPUs in units of 10⁻⁹ CPU.
    #[serde(rename = "NanoCPUs")]
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EngineDescription {
    pub engine_version: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub plugins: Vec<PluginDescription>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PluginDescription {
    #[serde(rename = "Type")]
    pub kind: String,
    pub name: String,
}

/// Docker's trust-root description. swarm's peers authenticate with Noise keys, not an X.509
/// CA, so this stays empty; it exists because `node inspect --pretty` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TlsInfo {
    pub trust_root: String,
    /// Base64, as Go writes a `[]byte`.
    pub cert_issuer_subject: String,
    /// Base64, as Go writes a `[]byte`.
    pub cert_issuer_public_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeStatus {
    pub state: NodeState,
    pub message: String,
    /// The node's IP address as its peers reach it.
    pub addr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ManagerStatus {
    pub leader: bool,
    pub reachability: Reachability,
    /// `IP:port` of the manager's cluster endpoint: what `swarm join` is told to dial.
    pub addr: String,
}

/// Implements `as_str` and `Display` with the same lowercase words serde uses.
macro_rules! wire_words {
    ($ty:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    #[default]
    Worker,
    Manager,
}
wire_words!(NodeRole { Worker => "worker", Manager => "manager" });

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeAvailability {
    #[default]
    Active,
    Pause,
    Drain,
}
wire_words!(NodeAvailability { Active => "active", Pause => "pause", Drain => "drain" });

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}
wire_words!(NodeState { Unknown => "unknown", Down => "down", Ready => "ready", Disconnected => "disconnected" });

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    #[default]
    Unknown,
    Unreachable,
    Reachable,
}
wire_words!(Reachability { Unknown => "unknown", Unreachable => "unreachable", Reachable => "reachable" });

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codec;

    fn manager() -> Node {
        Node {
            id: "n1abc".into(),
            version: Version { index: 12 },
            created_at: Timestamp(1_700_000_000_000_000_000),
            updated_at: Timestamp(1_700_000_001_500_000_000),
            spec: NodeSpec {
                name: String::new(),
                labels: BTreeMap::from([("zone".into(), "a".into())]),
                role: NodeRole::Manager,
                availability: NodeAvailability::Active,
            },
            description: NodeDescription {
                hostname: "host1".into(),
                platform: Platform {
                    architecture: "x86_64".into(),
                    os: "linux".into(),
                },
                resources: Resources {
                    nano_cpus: 2_000_000_000,
                    memory_bytes: 4 << 30,
                },
                engine: EngineDescription {
                    engine_version: "0.1.0".into(),
                    ..Default::default()
                },
                tls_info: TlsInfo::default(),
            },
            status: NodeStatus {
                state: NodeState::Ready,
                message: String::new(),
                addr: "198.18.0.11".into(),
            },
            manager_status: Some(ManagerStatus {
                leader: true,
                reachability: Reachability::Reachable,
                addr: "198.18.0.11:2377".into(),
            }),
        }
    }

    #[test]
    fn json_has_the_names_the_docker_cli_reads() {
        let v = serde_json::to_value(manager()).unwrap();
        assert_eq!(v["ID"], "n1abc");
        assert_eq!(v["Version"]["Index"], 12);
        assert_eq!(v["CreatedAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v["UpdatedAt"], "2023-11-14T22:13:21.500Z");
        assert_eq!(v["Spec"]["Role"], "manager");
        assert_eq!(v["Spec"]["Availability"], "active");
        assert_eq!(v["Spec"]["Labels"]["zone"], "a");
        assert_eq!(v["Description"]["Hostname"], "host1");
        assert_eq!(v["Description"]["Platform"]["Architecture"], "x86_64");
        assert_eq!(v["Description"]["Platform"]["OS"], "linux");
        assert_eq!(v["Description"]["Resources"]["NanoCPUs"], 2_000_000_000i64);
        assert_eq!(v["Description"]["Resources"]["MemoryBytes"], 4i64 << 30);
        assert_eq!(v["Description"]["Engine"]["EngineVersion"], "0.1.0");
        assert!(v["Description"]["TLSInfo"].is_object());
        assert_eq!(v["Status"]["State"], "ready");
        assert_eq!(v["Status"]["Addr"], "198.18.0.11");
        assert_eq!(v["ManagerStatus"]["Leader"], true);
        assert_eq!(v["ManagerStatus"]["Reachability"], "reachable");
        assert_eq!(v["ManagerStatus"]["Addr"], "198.18.0.11:2377");
    }

    #[test]
    fn a_worker_has_no_manager_status_in_json_but_keeps_the_slot_in_binary() {
        let mut worker = manager();
        worker.manager_status = None;
        worker.spec.role = NodeRole::Worker;

        let v = serde_json::to_value(&worker).unwrap();
        assert!(v.get("ManagerStatus").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<Node>(v).unwrap(), worker);

        let bytes = codec::encode(&worker).unwrap();
        assert_eq!(codec::decode::<Node>(&bytes).unwrap(), worker);
        let bytes = codec::encode(&manager()).unwrap();
        assert_eq!(codec::decode::<Node>(&bytes).unwrap(), manager());
    }

    #[test]
    fn the_spec_the_cli_posts_parses_even_with_nulls_and_missing_fields() {
        // `docker node update --availability drain`: no Name, and a Go nil map may be null.
        let spec: NodeSpec = serde_json::from_value(json!({
            "Labels": null, "Role": "worker", "Availability": "drain"
        }))
        .unwrap();
        assert_eq!(spec.availability, NodeAvailability::Drain);
        assert!(spec.labels.is_empty());
        assert!(serde_json::from_value::<NodeSpec>(json!({"Role": "boss"})).is_err());
    }
}
