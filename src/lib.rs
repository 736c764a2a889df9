//! swarm: a peer-to-peer container orchestrator in one binary.
//!
//! Map of the crate (see `docs/architecture.md` for the whole picture):
//!
//! ```text
//!  main ──▶ cli (one file per command group)
//!            └─▶ runtime   our own OCI container runtime: namespaces, cgroups,
//!                          rootfs, process setup, per-container helper ("shim"),
//!                          logs, exec, stats. All `unsafe` lives in runtime::sys.
//!  cluster                 replicated state (pure `apply`), openraft types, redb store
//!  types                   API and state objects in Docker's JSON shapes
//!  codec                   the one place that names bincode; version byte on everything
//! ```
//!
//! Later planes (api, cluster, orchestrator, agent, image, p2p, network) are added
//! by their issues and follow the layering in `docs/architecture.md`.

#![deny(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod codec;
pub mod runtime;
pub mod types;
