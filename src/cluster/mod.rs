//! The cluster plane: the replicated state every node holds, and its durable Raft storage.
//!
//! ```text
//!  api / orchestrator ── Proposal{at, Command} ──▶ openraft::Raft<TypeConfig>  (leader)
//!                                                    │ replicate, commit
//!                                                    ▼
//!        store::LogStore (raft_log, vote, committed) ── redb file ── store::StateMachineStore
//!                                                                     │ state::apply (pure)
//!                                                                     ▼
//!                                              State { index, cluster, nodes, … }
//!                                              read locally on every node
//! ```
//!
//! * `raft_types` — openraft's type config (`Proposal` in, `CommandResult` out, `NodeInfo`).
//! * `state`      — `State`, `Command` and the pure `apply`; all cluster rules live here.
//! * `ipam`       — one network's address pool: /26 blocks per owner, round-robin addresses.
//! * `addressing` — the network rules `apply` uses: subnets, endpoints and VIPs, task addresses.
//! * `store`      — the redb log and state-machine stores (openraft storage-v2 traits).
//! * `config`     — Raft timing and snapshot settings.
//! * `network`    — openraft's network over `p2p` (`request_raft`), and the inbound side.
//! * `tokens`     — join tokens (`SWMTKN-1-…`), their hashes, the manager-local file.
//! * `node`       — the running member: `ClusterNode::start` → `Cluster` handle (init, join,
//!   propose with forwarding, reads, leave, membership sync, failure detection).
//!
//! Layering: this module uses `p2p`, `types` and `codec`; `p2p` never imports it.

pub mod addressing;
pub mod config;
pub mod ipam;
pub mod network;
pub mod node;
pub mod raft_types;
pub mod state;
pub mod store;
pub mod tokens;

pub use config::RaftSettings;
pub use node::{
    AgentService, Cluster, ClusterConfig, ClusterError, ClusterNode, ClusterTimeouts, InitOptions,
    JoinOptions, docker_node_id, raft_node_id,
};
pub use raft_types::{NodeId, NodeInfo, Proposal, Raft, TypeConfig};
pub use state::{Command, CommandResult, State, TaskChange, apply};
pub use store::{LogStore, StateMachineStore, StoreError};
