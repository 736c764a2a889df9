//! The node agent: containers on this node. Today: local containers (`swarm run`), built from
//! an image and a Docker-shaped create request; later the tasks the cluster assigns here.
//!
//! ```text
//!  api ─▶ daemon ─▶ agent::containers (names, records, lifecycle) ─▶ runtime
//!                       ├─ agent::spec (pure): create request + image config ─▶ OCI spec
//!                       ├─ agent::volumes: named volumes, made on first use
//!                       └─ agent::wait: Docker's wait conditions (exit, removal), async
//!  task runner (agent::tasks) ─▶ the same containers, for the tasks assigned here
//! ```

pub mod containers;
pub mod spec;
pub mod tasks;
pub mod volumes;
pub mod wait;
