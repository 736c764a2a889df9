//! The cluster object: `ClusterInfo` (what `GET /info` shows as `Swarm.Cluster`, and what the
//! replicated state holds) and `Swarm` (`GET /swarm`: `ClusterInfo` plus the join tokens), in
//! the shapes of moby's `api/types/swarm/swarm.go`.
//!
//! Join tokens are secrets: the state keeps only their hashes, so `Swarm` exists only at the
//! API edge, where a manager adds the plaintext tokens it holds. It is never persisted, which
//! is why it alone may use `#[serde(flatten)]` (as Go embeds `ClusterInfo` in `Swarm`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Version;
use super::node::TlsInfo;
use super::serde_util::null_as_default;
use super::time::Timestamp;

/// The name every swarm's spec carries (Docker's `store.DefaultClusterName`).
pub const DEFAULT_CLUSTER_NAME: &str = "default";
/// The pool per-node container subnets come from when `swarm init` names none. Docker uses
/// 10.0.0.0/8; swarm keeps to the benchmarking range its design reserves for containers.
pub const DEFAULT_ADDR_POOL: &str = "198.19.0.0/17";
/// The prefix length of a network's subnet when `network create` names none (Docker: 24;
/// ours is larger because a subnet is carved into /26 blocks, one or more per node).
pub const DEFAULT_SUBNET_SIZE: u32 = 20;
/// VXLAN's IANA port, Docker's default data path port.
pub const DEFAULT_DATA_PATH_PORT: u32 = 4789;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub spec: SwarmSpec,
    #[serde(rename = "TLSInfo")]
    pub tls_info: TlsInfo,
    pub root_rotation_in_progress: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub default_addr_pool: Vec<String>,
    pub subnet_size: u32,
    pub data_path_port: u32,
}

/// `GET /swarm`. API-only: built on request from the state's `ClusterInfo` and the tokens a
/// manager holds; never persisted or sent through `crate::codec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Swarm {
    #[serde(flatten)]
    pub cluster: ClusterInfo,
    #[serde(default)]
    pub join_tokens: JoinTokens,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

/// Docker's swarm `Spec`, returned verbatim: `docker swarm update` and `join-token --rotate`
/// post the whole object back, so every field the CLI sends is modelled here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SwarmSpec {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    pub orchestration: OrchestrationConfig,
    pub raft: RaftConfig,
    pub dispatcher: DispatcherConfig,
    #[serde(rename = "CAConfig")]
    pub ca_config: CaConfig,
    pub task_defaults: TaskDefaults,
    pub encryption_config: EncryptionConfig,
}

impl SwarmSpec {
    /// Fills what `swarm init` left at zero ("use the default", as Docker reads its init
    /// request) with Docker's defaults, so `docker info` shows the familiar numbers.
    pub fn fill_defaults(&mut self) {
        if self.name.is_empty() {
            self.name = DEFAULT_CLUSTER_NAME.to_owned();
        }
        self.orchestration
            .task_history_retention_limit
            .get_or_insert(5);
        let raft = &mut self.raft;
        if raft.snapshot_interval == 0 {
            raft.snapshot_interval = 10_000;
        }
        raft.keep_old_snapshots.get_or_insert(0);
        if raft.log_entries_for_slow_followers == 0 {
            raft.log_entries_for_slow_followers = 500;
        }
        if raft.election_tick == 0 {
            raft.election_tick = 10;
        }
        if raft.heartbeat_tick == 0 {
            raft.heartbeat_tick = 1;
        }
        if self.dispatcher.heartbeat_period == 0 {
            self.dispatcher.heartbeat_period = 5_000_000_000; // 5 s
        }
        if self.ca_config.node_cert_expiry == 0 {
            self.ca_config.node_cert_expiry = 90 * 24 * 3600 * 1_000_000_000; // 90 days
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct OrchestrationConfig {
    /// How many finished tasks per slot to keep (history in `service ps`).
    pub task_history_retention_limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RaftConfig {
    pub snapshot_interval: u64,
    pub keep_old_snapshots: Option<u64>,
    pub log_entries_for_slow_followers: u64,
    pub election_tick: i64,
    pub heartbeat_tick: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DispatcherConfig {
    /// Nanoseconds (a Go `time.Duration`).
    pub heartbeat_period: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CaConfig {
    /// Nanoseconds (a Go `time.Duration`).
    pub node_cert_expiry: i64,
    #[serde(rename = "ExternalCAs", deserialize_with = "null_as_default")]
    pub external_cas: Vec<ExternalCa>,
    #[serde(rename = "SigningCACert")]
    pub signing_ca_cert: String,
    #[serde(rename = "SigningCAKey")]
    pub signing_ca_key: String,
    pub force_rotate: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExternalCa {
    pub protocol: String,
    #[serde(rename = "URL")]
    pub url: String,
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "CACert")]
    pub ca_cert: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskDefaults {
    pub log_driver: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Driver {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EncryptionConfig {
    pub auto_lock_managers: bool,
}

/// `POST /swarm/init`. Zero values mean "the default" (the docker CLI sends them all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InitRequest {
    pub listen_addr: String,
    pub advertise_addr: String,
    pub data_path_addr: String,
    pub data_path_port: u32,
    pub force_new_cluster: bool,
    pub spec: SwarmSpec,
    pub auto_lock_managers: bool,
    /// `active`, `pause`, `drain` or empty.
    pub availability: String,
    #[serde(deserialize_with = "null_as_default")]
    pub default_addr_pool: Vec<String>,
    pub subnet_size: u32,
}

/// `POST /swarm/update`'s query: which join tokens to replace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotate {
    pub worker: bool,
    pub manager: bool,
}

/// `POST /swarm/join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JoinRequest {
    pub listen_addr: String,
    pub advertise_addr: String,
    pub data_path_addr: String,
    #[serde(deserialize_with = "null_as_default")]
    pub remote_addrs: Vec<String>,
    pub join_token: String,
    pub availability: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codec;

    fn cluster() -> ClusterInfo {
        let mut spec = SwarmSpec::default();
        spec.fill_defaults();
        ClusterInfo {
            id: "c1".into(),
            version: Version { index: 3 },
            created_at: Timestamp(1_700_000_000_000_000_000),
            updated_at: Timestamp(1_700_000_000_000_000_000),
            spec,
            tls_info: TlsInfo::default(),
            root_rotation_in_progress: false,
            default_addr_pool: vec![DEFAULT_ADDR_POOL.into()],
            subnet_size: DEFAULT_SUBNET_SIZE,
            data_path_port: DEFAULT_DATA_PATH_PORT,
        }
    }

    #[test]
    fn get_swarm_has_the_fields_docker_info_and_join_token_read() {
        let swarm = Swarm {
            cluster: cluster(),
            join_tokens: JoinTokens {
                worker: "SWMTKN-1-w".into(),
                manager: "SWMTKN-1-m".into(),
            },
        };
        let v = serde_json::to_value(&swarm).unwrap();
        assert_eq!(v["ID"], "c1");
        assert_eq!(v["Version"]["Index"], 3);
        assert_eq!(v["JoinTokens"]["Worker"], "SWMTKN-1-w");
        assert_eq!(v["JoinTokens"]["Manager"], "SWMTKN-1-m");
        assert_eq!(v["DefaultAddrPool"], json!(["198.19.0.0/17"]));
        assert_eq!(v["SubnetSize"], 20);
        assert_eq!(v["DataPathPort"], 4789);
        assert_eq!(v["RootRotationInProgress"], false);
        let spec = &v["Spec"];
        assert_eq!(spec["Name"], "default");
        assert_eq!(spec["Orchestration"]["TaskHistoryRetentionLimit"], 5);
        assert_eq!(spec["Raft"]["SnapshotInterval"], 10_000);
        assert_eq!(spec["Raft"]["KeepOldSnapshots"], 0);
        assert_eq!(spec["Raft"]["HeartbeatTick"], 1);
        assert_eq!(spec["Raft"]["ElectionTick"], 10);
        assert_eq!(spec["Dispatcher"]["HeartbeatPeriod"], 5_000_000_000i64);
        assert_eq!(spec["CAConfig"]["NodeCertExpiry"], 7_776_000_000_000_000i64);
        assert_eq!(spec["CAConfig"]["ForceRotate"], 0);
        assert_eq!(spec["EncryptionConfig"]["AutoLockManagers"], false);
        assert_eq!(serde_json::from_value::<Swarm>(v).unwrap(), swarm);
    }

    #[test]
    fn cluster_info_survives_the_binary_codec() {
        let bytes = codec::encode(&cluster()).unwrap();
        assert_eq!(codec::decode::<ClusterInfo>(&bytes).unwrap(), cluster());
    }

    #[test]
    fn the_init_request_spec_parses_and_zeroes_become_defaults() {
        // The Spec part of `docker swarm init`'s body, as the CLI sends it.
        let mut spec: SwarmSpec = serde_json::from_value(json!({
            "Labels": null, "Orchestration": {}, "Raft": {"ElectionTick": 0, "HeartbeatTick": 0},
            "Dispatcher": {}, "CAConfig": {}, "TaskDefaults": {},
            "EncryptionConfig": {"AutoLockManagers": false}
        }))
        .unwrap();
        spec.fill_defaults();
        assert_eq!(spec, cluster().spec);
    }
}
