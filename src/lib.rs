//! swarm: a peer-to-peer container orchestrator in one binary.
//!
//! Map of the crate (see `docs/architecture.md` for the whole picture):
//!
//! ```text
//!  main ──▶ cli (one file per command group) ──▶ api::client ──unix socket──┐
//!       └──▶ daemon (wires everything, `swarm daemon`)                        │
//!              └─▶ api::server (Docker Engine API shape) ◀────────────────────┘
//!  image     content-addressed image store (OCI layout), docker-save and OCI archives,
//!            docker import, layers unpacked safely and shared as overlayfs lower dirs
//!  runtime   our own OCI container runtime: namespaces, cgroups, rootfs, process setup,
//!            per-container helper ("shim"), logs, exec, stats. All `unsafe` lives in
//!            runtime::sys.
//!  types     API objects in Docker's shapes.
//!  cluster   replicated state (pure `apply`), openraft types, redb store
//!  orchestrator  leader only: pure reconcile passes (slots, restarts, node loss, history)
//!            and the scheduler (constraints, resources, spread / binpack), a thin loop
//!  codec     the one place that names bincode; version byte on everything
//!  failpoints crash points for fault-injection tests (feature `failpoints`, off in releases)
//!  p2p       node-to-node transport (libp2p): Raft/RPC request-response, join handshake,
//!            gossip; only members get anything but the join protocol. Owns no cluster types.
//! ```
//!
//! Later planes (network) are added
//! by their issues and follow the layering in `docs/architecture.md`.

#![deny(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod daemon;
pub mod failpoints;
pub mod image;
pub mod orchestrator;
pub mod p2p;
pub mod runtime;
pub mod types;
