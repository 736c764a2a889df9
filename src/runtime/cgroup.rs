//! Cgroups of containers, behind a small trait so the rest of the runtime does not care
//! whether the host runs cgroup v1 (this machine: hybrid, every controller on v1) or v2.
//!
//! The implementation uses `cgroups-rs`, which picks the hierarchy type from the host
//! (`hierarchies::auto()`: V1 on hybrid hosts). Paths are relative to each hierarchy root,
//! e.g. `swarm/<container-id>` becomes `/sys/fs/cgroup/memory/swarm/<container-id>` on v1.
//!
//! Invariants: a container's cgroup is created by its helper before the container's init is
//! released, so every process of the container is born inside it; `kill_all` leaves no process
//! behind (v1: freeze, SIGKILL every member, thaw; v2: `cgroup.kill`); `delete` only succeeds
//! on an empty cgroup and is idempotent.

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

/// Errors from the cgroup layer; the message names the cgroup and what failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: cannot create: {reason}")]
    Create { path: String, reason: String },
    #[error("cgroup {path}: the kernel rejected {what}: {reason}")]
    Rejected { path: String, what: String, reason: String },
    #[error("cgroup {path}: {what} is not supported on this host: {reason}")]
    Unsupported { path: String, what: String, reason: String },
    #[error("cgroup {path}: {op} failed: {reason}")]
    Io { path: String, op: &'static str, reason: String },
}

/// Resource usage of one container, as `swarm runtime`/`docker stats` report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// Total CPU time of every process of the container, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// CFS periods in which the container was throttled by its quota.
    pub cpu_throttled_periods: u64,
    /// Memory in use now (bytes), and the most ever used.
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    /// Memory limit in bytes, `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Number of OOM kills inside the container's cgroup.
    pub oom_kills: u64,
    /// Processes (tasks) in the cgroup now, and the limit (`None` when unlimited).
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
}

/// The cgroup of one container.
pub trait ContainerCgroup: Send + Sync {
    /// The path relative to the hierarchy root (`swarm/<id>`).
    fn path(&self) -> &str;
    /// Apply resource limits (memory, cpu shares/quota/period, cpuset, pids, devices).
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Move a process (by pid) into the cgroup.
    fn add_process(&self, pid: i32) -> Result<(), CgroupError>;
    /// Every process (tgid) in the cgroup.
    fn procs(&self) -> Result<Vec<i32>, CgroupError>;
    /// Send `signal` to every process in the cgroup.
    fn signal_all(&self, signal: i32) -> Result<(), CgroupError>;
    /// SIGKILL every process in the cgroup so none can escape by forking (v1: freeze, kill,
    /// thaw), then wait (bounded) until the cgroup is empty.
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// Usage counters.
    fn stats(&self) -> Result<CgroupStats, CgroupError>;
    /// OOM kills so far (v1 `memory.oom_control` `oom_kill`, v2 `memory.events` `oom_kill`).
    fn oom_kills(&self) -> Result<u64, CgroupError>;
    /// Remove the cgroup from every hierarchy. Idempotent: a missing cgroup is not an error.
    fn delete(&self) -> Result<(), CgroupError>;
}

/// Create (or open, if it exists) the cgroup at `path` relative to each hierarchy root.
pub fn create(path: &str) -> Result<Box<dyn ContainerCgroup>, CgroupError> {
    let _ = path;
    todo!("cgroups-rs implementation")
}

/// Open an existing cgroup (for kill/delete/stats of a container found again from disk).
/// Opening does not create anything.
pub fn open(path: &str) -> Box<dyn ContainerCgroup> {
    let _ = path;
    todo!("cgroups-rs implementation")
}
