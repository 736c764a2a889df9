//! API and state objects in Docker's shapes, shared by every plane (the bottom layer: it
//! imports nothing of swarm's but `codec` in tests).
//!
//! ```text
//!  node.rs    Node, NodeSpec, NodeDescription, NodeStatus, ManagerStatus + their enums
//!  swarm.rs   ClusterInfo (state, `/info`), Swarm (`GET /swarm` = ClusterInfo + JoinTokens),
//!             SwarmSpec and its parts, Docker's defaults
//!  time.rs    Timestamp: RFC 3339 in JSON, i64 nanoseconds in binary
//!  container.rs / system.rs   local containers, /version and /info
//!  network.rs swarm networks, `/networks` shapes, services' endpoints (ports, VIPs), CIDRs
//!  volume.rs  named volumes (`/volumes`) and Docker's volume-name rule
//!  auth.rs    registry credentials (`POST /auth`, `X-Registry-Auth`)
//!  error.rs   CommandError: why the cluster refused a command (crosses the wire)
//! ```
//!
//! Every type here has two encodings and must be right in both:
//! * JSON for the API, with the field names and casing the docker CLI reads
//!   (`rename_all = "PascalCase"`, plus explicit names such as `ID`, `NanoCPUs`, `OS`); every
//!   struct is `#[serde(default)]` so the partial objects Go clients send parse;
//! * the positional binary form of `crate::codec` for the Raft log and snapshots, which has no
//!   field names: hence no `flatten` and no `skip_serializing_if` on anything that is
//!   persisted. Where JSON must differ (omit a field, accept `null`), the type branches on
//!   `is_human_readable()` (see `serde_util.rs` and `Node`'s `Serialize`).

pub mod auth;
pub mod container;
pub mod error;
pub mod network;
pub mod node;
mod serde_util;
pub mod service;
pub mod swarm;
pub mod system;
pub mod time;
pub mod volume;

use serde::{Deserialize, Serialize};

pub use error::{CommandError, ErrorKind};
pub use node::{
    EngineDescription, ManagerStatus, Node, NodeAvailability, NodeDescription, NodeRole, NodeSpec,
    NodeState, NodeStatus, Platform, PluginDescription, Reachability, Resources, TlsInfo,
};
pub use swarm::{
    CaConfig, ClusterInfo, DispatcherConfig, Driver, EncryptionConfig, ExternalCa, InitRequest,
    JoinRequest, JoinTokens, OrchestrationConfig, RaftConfig, Swarm, SwarmSpec, TaskDefaults,
};
pub use time::Timestamp;

/// Docker's object version: the index of the change that last wrote the object. Updates must
/// quote it (`?version=N`) and are refused when it is stale (optimistic concurrency).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct Version {
    pub index: u64,
}
