//! swarm: a peer-to-peer container orchestrator in one binary.
//!
//! Map of the crate (see `docs/architecture.md` for the whole picture):
//!
//! ```text
//!  main ──▶ cli (one file per command group) ──▶ api::client ──unix socket──┐
//!       └──▶ daemon (wires everything, `swarm daemon`)                        │
//!              └─▶ api::server (Docker Engine API shape) ◀────────────────────┘
//!  runtime   our own OCI container runtime: namespaces, cgroups, rootfs, process setup,
//!            per-container helper ("shim"), logs, exec, stats. All `unsafe` lives in
//!            runtime::sys.
//!  types     API objects in Docker's shapes.
//!  p2p       node-to-node transport (libp2p): Raft/RPC request-response, join handshake,
//!            gossip; only members get anything but the join protocol. Owns no cluster types.
//! ```
//!
//! Later planes (api, cluster, orchestrator, agent, image, p2p, network) are added
//! by their issues and follow the layering in `docs/architecture.md`.

#![deny(unsafe_code)]

pub mod api;
pub mod cli;
pub mod daemon;
pub mod p2p;
pub mod runtime;
pub mod types;
