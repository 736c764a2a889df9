//! The node agent: containers on this node: local ones (`swarm run`), built from an image and
//! a Docker-shaped create request, and the tasks the cluster assigns here.
//!
//! ```text
//!  api ─▶ daemon ─▶ agent::containers (names, records, lifecycle) ─▶ runtime
//!                       ├─ agent::spec (pure): create request + image config ─▶ OCI spec
//!                       └─ agent::volumes: named volumes, made on first use
//!  cluster ─▶ agent::tasks (task runner) ─▶ agent::containers
//!  agent::health (health monitor) ─ probes ─▶ agent::containers' health board ─▶ tasks
//! ```

pub mod containers;
pub mod health;
pub mod spec;
pub mod tasks;
pub mod volumes;
