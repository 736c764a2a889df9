//! Our own OCI container runtime.
//!
//! Skeleton; the map is filled in as the modules land.
//!
//! - `cgroup`: a container's cgroup (create, apply limits, add/kill processes, stats, delete)
//!   on cgroup v1 or v2, behind the `ContainerCgroup` trait, via cgroups-rs.

pub mod cgroup;
pub mod seccomp;
pub mod spec;
