//! The node agent: containers on this node: local ones (`swarm run`), built from an image and
//! a Docker-shaped create request, and the tasks the cluster assigns here.
//!
//! ```text
//!  api ─▶ daemon ─▶ agent::containers (names, records, lifecycle) ─▶ runtime
//!                       ├─ agent::index (pure): the records in memory, creates in flight
//!                       ├─ agent::spec (pure): create request + image config ─▶ OCI spec
//!                       ├─ agent::volumes: named volumes, made on first use
//!                       └─ agent::wait: Docker's wait conditions (exit, removal), async
//!  agent::tasks: the task runner (tasks assigned here ─▶ containers)
//!  agent::health (health monitor) ─ probes ─▶ agent::containers' health board ─▶ tasks
//!  agent::peer:  agent-to-agent requests over p2p (task logs, images from another node)
//!  agent::logs:  task logs read behind a cursor; merge order and Docker's details (pure)
//! ```

pub mod containers;
pub mod health;
mod index;
pub mod logs;
pub mod peer;
pub mod spec;
pub mod tasks;
pub mod volumes;
pub mod wait;
