//! Our own OCI container runtime.
//!
//! Skeleton; the map is filled in as the modules land.

pub mod cgroup;
pub mod seccomp;
pub mod spec;
