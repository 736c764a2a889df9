//! swarm: a peer-to-peer container orchestrator in one binary.
//!
//! Map of the crate (see `docs/architecture.md` for the whole picture):
//!
//! ```text
//!  main ──▶ cli (one file per command group)
//!            ├─▶ image     content-addressed image store (OCI layout), docker-save and
//!            │             OCI archives, docker import, layers unpacked safely and
//!            │             shared as overlayfs lower dirs
//!            └─▶ runtime   our own OCI container runtime: namespaces, cgroups,
//!                          rootfs, process setup, per-container helper ("shim"),
//!                          logs, exec, stats. All `unsafe` lives in runtime::sys.
//! ```
//!
//! Later planes (api, cluster, orchestrator, agent, image, p2p, network) are added
//! by their issues and follow the layering in `docs/architecture.md`.

#![deny(unsafe_code)]

pub mod cli;
pub mod image;
pub mod runtime;
