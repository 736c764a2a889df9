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
//! * `store`      — the redb log and state-machine stores (openraft storage-v2 traits).
//! * `config`     — Raft timing and snapshot settings.
//!
//! Layering: this module uses `types` and `codec`; the network that carries Raft RPCs comes
//! in through openraft's `RaftNetworkFactory`, implemented over `p2p`'s traits by the daemon,
//! so nothing here imports `p2p`.

pub mod config;
pub mod raft_types;
pub mod state;
pub mod store;

pub use config::RaftSettings;
pub use raft_types::{NodeId, NodeInfo, Proposal, Raft, TypeConfig};
pub use state::{Command, CommandResult, State, apply};
pub use store::{LogStore, StateMachineStore, StoreError};
