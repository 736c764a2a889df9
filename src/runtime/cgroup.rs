//! Cgroups of containers, behind a small trait so the rest of the runtime does not care
//! whether the host runs cgroup v1 (this machine: hybrid, every controller on v1) or v2.
//!
//! ```text
//!  container helper ──create(path)──▶ FsCgroup ──▶ cgroups-rs: finds the hierarchies
//!  kill / delete / stats ──open(path)─▶    │         (mountinfo / statfs), creates the
//!                                          │         directories, typed setters, freezer
//!                                          └───────▶ our own small reads/writes of cgroupfs
//!                                                    files where cgroups-rs gets it wrong
//! ```
//!
//! Paths are relative to each hierarchy root, e.g. `swarm/<container-id>` becomes
//! `/sys/fs/cgroup/memory/swarm/<container-id>` on v1 (one directory per mounted hierarchy,
//! `name=systemd` included) and `/sys/fs/cgroup/swarm/<container-id>` on v2.
//! `hierarchies::auto()` picks V1 on hybrid hosts, which is what we want here: every real
//! controller is on v1 and the `unified` cgroup2 mount has none.
//!
//! How each part maps onto the kernel (v1 is what this host runs and the tests exercise; the v2
//! column is written with the same care but could not be run here):
//!
//! ```text
//!  part        v1 files                                  v2 files
//!  memory      limit_in_bytes / memsw.limit_in_bytes      memory.max; memory.swap.max = swap − limit
//!              (ordered like runc), soft_limit_in_bytes,  memory.low; swappiness and disabling the
//!              swappiness, oom_control                    OOM killer → Unsupported
//!  cpu         cpu.shares, cfs_period_us/cfs_quota_us     cpu.weight (runc's shares mapping), cpu.max
//!  cpuset      cpuset.cpus/mems (copied from the parent   cpuset.cpus/mems (empty = inherit)
//!              at create, else no task could join)
//!  pids        pids.max (limit ≤ 0 → max)                 pids.max
//!  devices     devices.deny / devices.allow, in order     needs an eBPF program → Unsupported
//!  kill_all    freeze, SIGKILL each member, thaw, poll    cgroup.kill (5.14+), else the v1 loop
//!  stats       cpuacct.usage, cpu.stat, memory.*_in_bytes cpu.stat usage_usec, memory.current/peak/max
//!  oom_kills   oom_kill line of memory.oom_control        oom_kill line of memory.events
//! ```
//!
//! Where cgroups-rs 0.5.1 is not used although it has a function for it, and why:
//! * `Cgroup::apply` and the controllers' `apply` drop most write errors (`let _ =`), so we call
//!   the typed setters one by one and name the file and value the kernel refused.
//! * On v2 its `set_swappiness` writes `memory.swap.max`, `set_memswap_limit` writes the OCI
//!   memory+swap total into `memory.swap.max` (which is swap only), `set_shares` writes shares
//!   unconverted into `cpu.weight`: we convert or refuse instead.
//! * `Cgroup::procs()` turns an unparsable line into pid 0, and `kill(0, SIGKILL)` would kill
//!   our own process group; its readers turn every error into 0. We read `cgroup.procs` and the
//!   stat files ourselves.
//! * Its v2 `delete` is a single `rmdir` that fails on a missing directory; we remove the
//!   tree (child cgroups first), treat missing as done and retry `EBUSY` for a bounded time.
//!
//! Invariants: a container's cgroup is created by its helper before the container's init is
//! released, so every process of the container is born inside it; `kill_all` leaves no process
//! behind; `delete` only succeeds on an empty cgroup, is idempotent, and afterwards no
//! directory of the cgroup remains in any hierarchy. Paths are validated (relative, no `..`)
//! so that a corrupted state file cannot make `delete` remove someone else's cgroup.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use cgroups_rs::FreezerState;
use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::devices::{DevicePermissions, DeviceType, DevicesController};
use cgroups_rs::fs::error::Error as CgroupsRsError;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::hierarchies;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::memory::{MemController, SetMemory};
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Cgroup, ControllIdentifier, Controller, MaxValue, Subsystem};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
    LinuxResources,
};
use serde::{Deserialize, Serialize};

/// Errors from the cgroup layer; the message names the cgroup and what failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The caller handed us something we refuse before touching the kernel (a path escaping
    /// the hierarchy, pid 0, an unknown signal, a value v2 cannot express).
    #[error("cgroup {path}: invalid {what}: {reason}")]
    Invalid {
        path: String,
        what: String,
        reason: String,
    },
    #[error("cgroup {path}: cannot create: {reason}")]
    Create { path: String, reason: String },
    /// The cgroup does not exist (in any hierarchy, or in the one the operation needs).
    #[error("cgroup {path} does not exist")]
    NotFound { path: String },
    /// The kernel refused a value (`EINVAL`, `EBUSY`, …). On v2, values we must translate
    /// (memory+swap → swap) are checked with the rule the v1 kernel applies, and reported here
    /// too, so callers see the same error on both versions.
    #[error("cgroup {path}: {file} = {value:?} was rejected: {reason}")]
    Rejected {
        path: String,
        file: String,
        value: String,
        reason: String,
    },
    #[error("cgroup {path}: {what} is not supported on this host: {reason}")]
    Unsupported {
        path: String,
        what: String,
        reason: String,
    },
    #[error("cgroup {path}: {op} failed: {reason}")]
    Io {
        path: String,
        op: &'static str,
        reason: String,
    },
    /// A bounded wait ran out (processes that will not die, a directory that stays busy).
    #[error("cgroup {path}: {op} gave up after {waited:?}: {reason}")]
    Timeout {
        path: String,
        op: &'static str,
        waited: Duration,
        reason: String,
    },
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
    /// Every process (tgid) in the cgroup. A cgroup that does not exist has none.
    fn procs(&self) -> Result<Vec<i32>, CgroupError>;
    /// Send `signal` to every process in the cgroup.
    fn signal_all(&self, signal: i32) -> Result<(), CgroupError>;
    /// SIGKILL every process in the cgroup so none can escape by forking (v1: freeze, kill,
    /// thaw), then wait (bounded) until the cgroup is empty.
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// Usage counters. `NotFound` if the cgroup does not exist.
    fn stats(&self) -> Result<CgroupStats, CgroupError>;
    /// OOM kills so far (v1 `memory.oom_control` `oom_kill`, v2 `memory.events` `oom_kill`).
    fn oom_kills(&self) -> Result<u64, CgroupError>;
    /// Remove the cgroup from every hierarchy. Idempotent: a missing cgroup is not an error.
    fn delete(&self) -> Result<(), CgroupError>;
}

/// How long the cgroup layer waits for the kernel, in one place so tests and callers can
/// shorten or lengthen them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupTimeouts {
    /// `kill_all`: how long to keep killing until `cgroup.procs` is empty. SIGKILLed tasks
    /// usually exit within milliseconds; only tasks stuck in uninterruptible sleep (NFS, FUSE,
    /// a hung device) take longer, and then a few seconds is enough to report them.
    pub kill: Duration,
    /// `kill_all` on v1: how long to wait for `freezer.state` to reach `FROZEN` before killing
    /// anyway. Freezing needs every task to reach the refrigerator; a D-state task never does.
    pub freeze: Duration,
    /// `delete`: how long to retry `rmdir` on `EBUSY`, which the kernel returns while it is
    /// still tearing down tasks that have just exited.
    pub delete: Duration,
    /// Sleep between polls in all the loops above: short, because the events are fast.
    pub poll: Duration,
}

impl Default for CgroupTimeouts {
    fn default() -> Self {
        CgroupTimeouts {
            kill: Duration::from_secs(5),
            freeze: Duration::from_secs(1),
            delete: Duration::from_secs(2),
            poll: Duration::from_millis(10),
        }
    }
}

/// Create (or open, if it exists) the cgroup at `path` relative to each hierarchy root.
pub fn create(path: &str) -> Result<Box<dyn ContainerCgroup>, CgroupError> {
    create_with(path, CgroupTimeouts::default())
}

/// [`create`] with explicit timeouts.
pub fn create_with(
    path: &str,
    timeouts: CgroupTimeouts,
) -> Result<Box<dyn ContainerCgroup>, CgroupError> {
    validate_path(path).map_err(|reason| CgroupError::Invalid {
        path: path.to_string(),
        what: "cgroup path".into(),
        reason,
    })?;
    let cgroup = FsCgroup::load(path, timeouts);
    cgroup.create()?;
    Ok(Box::new(cgroup))
}

/// Open an existing cgroup (for kill/delete/stats of a container found again from disk).
/// Opening does not create anything. An invalid path yields a handle whose every operation
/// fails with [`CgroupError::Invalid`] and touches nothing.
pub fn open(path: &str) -> Box<dyn ContainerCgroup> {
    open_with(path, CgroupTimeouts::default())
}

/// [`open`] with explicit timeouts.
pub fn open_with(path: &str, timeouts: CgroupTimeouts) -> Box<dyn ContainerCgroup> {
    match validate_path(path) {
        Ok(()) => Box::new(FsCgroup::load(path, timeouts)),
        Err(reason) => Box::new(InvalidCgroup {
            path: path.to_string(),
            reason,
        }),
    }
}

/// A path must stay below the hierarchy root: relative, no `.`/`..`/empty components.
fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path (would be the hierarchy root)".into());
    }
    if path.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if path.starts_with('/') {
        return Err("must be relative to the hierarchy root".into());
    }
    // `Path::components` silently drops empty and `.` components, so check the raw pieces.
    for piece in path.split('/') {
        if piece.is_empty() || piece == "." || piece == ".." {
            return Err(format!("component {piece:?} is not allowed"));
        }
    }
    debug_assert!(
        Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    );
    Ok(())
}

/// The real cgroup, on whatever hierarchy type `cgroups-rs` found.
#[derive(Debug)]
struct FsCgroup {
    path: String,
    cgroup: Cgroup,
    timeouts: CgroupTimeouts,
}

impl FsCgroup {
    /// A handle only: `Cgroup::load` reads mountinfo but creates nothing.
    fn load(path: &str, timeouts: CgroupTimeouts) -> Self {
        FsCgroup {
            path: path.to_string(),
            cgroup: Cgroup::load(hierarchies::auto(), path),
            timeouts,
        }
    }

    fn v2(&self) -> bool {
        self.cgroup.v2()
    }

    fn create(&self) -> Result<(), CgroupError> {
        if self.cgroup.subsystems().is_empty() {
            return Err(CgroupError::Create {
                path: self.path.clone(),
                reason: "no cgroup controller is mounted under /sys/fs/cgroup".into(),
            });
        }
        // v1: one create_dir_all per hierarchy, then cgroups-rs copies cpuset.cpus/mems from
        // the nearest non-empty ancestor into every new, empty level. v2: mkdir along the
        // path, enabling every root controller in each parent's cgroup.subtree_control.
        self.cgroup.create().map_err(|e| CgroupError::Create {
            path: self.path.clone(),
            reason: describe(&e),
        })?;
        self.check_cpuset_initialised()
    }

    /// On v1 a task cannot join a cpuset cgroup whose cpus or mems is empty (`ENOSPC`), and
    /// cgroups-rs only logs when its copy from the parent fails: check, so the failure shows
    /// here, naming the cause, rather than later as a puzzling `add_process` error.
    fn check_cpuset_initialised(&self) -> Result<(), CgroupError> {
        if self.v2() {
            return Ok(()); // an empty v2 cpuset means "inherit", not "nothing"
        }
        let Some(cpuset) = self.cgroup.controller_of::<CpuSetController>() else {
            return Ok(());
        };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let value = self.read_file(cpuset.path(), file)?.unwrap_or_default();
            if value.trim().is_empty() {
                return Err(CgroupError::Create {
                    path: self.path.clone(),
                    reason: format!(
                        "{file} is still empty after copying it from the parent; \
                         no task could join this cgroup"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether the cgroup exists in at least one hierarchy.
    fn exists(&self) -> bool {
        self.cgroup.exists()
    }

    /// The cgroup's directory in each hierarchy (v1: one per controller mount; v2: one).
    fn dirs(&self) -> Vec<PathBuf> {
        let set: BTreeSet<PathBuf> = self
            .cgroup
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path().to_path_buf())
            .collect();
        set.into_iter().collect()
    }

    fn controller<'a, T>(&'a self) -> Option<&'a T>
    where
        &'a T: From<&'a Subsystem>,
        T: Controller + ControllIdentifier,
    {
        self.cgroup.controller_of::<T>()
    }

    /// The controller `what` needs, or `Unsupported` naming the missing controller.
    fn require<'a, T>(&'a self, what: &str) -> Result<&'a T, CgroupError>
    where
        &'a T: From<&'a Subsystem>,
        T: Controller + ControllIdentifier,
    {
        self.controller::<T>()
            .ok_or_else(|| CgroupError::Unsupported {
                path: self.path.clone(),
                what: what.to_string(),
                reason: format!(
                    "the {} controller is not available",
                    <T as ControllIdentifier>::controller_type()
                ),
            })
    }

    fn unsupported(&self, what: &str, reason: impl Into<String>) -> CgroupError {
        CgroupError::Unsupported {
            path: self.path.clone(),
            what: what.to_string(),
            reason: reason.into(),
        }
    }

    /// What a failed write of `value` to `dir/file` means for the caller: the cgroup is gone,
    /// this kernel has no such file, we may not write it, or the kernel refused the value.
    fn write_error(
        &self,
        dir: &Path,
        file: &str,
        value: &str,
        errno: Option<i32>,
        detail: String,
    ) -> CgroupError {
        if !dir.is_dir() {
            return CgroupError::NotFound {
                path: self.path.clone(),
            };
        }
        if !dir.join(file).exists() {
            return self.unsupported(
                file,
                format!(
                    "{} has no {file} (controller not enabled, or not built into this kernel)",
                    dir.display()
                ),
            );
        }
        match errno {
            Some(libc::EACCES) | None => CgroupError::Io {
                path: self.path.clone(),
                op: "write",
                reason: format!("{file} = {value:?}: {detail}"),
            },
            Some(_) => CgroupError::Rejected {
                path: self.path.clone(),
                file: file.to_string(),
                value: value.to_string(),
                reason: detail,
            },
        }
    }

    /// Convert the result of a cgroups-rs setter that wrote `value` to `dir/file`.
    fn wrote(
        &self,
        dir: &Path,
        file: &str,
        value: impl ToString,
        result: Result<(), CgroupsRsError>,
    ) -> Result<(), CgroupError> {
        result.map_err(|e| {
            let (errno, detail) = match io_cause(&e) {
                Some(io) => (io.raw_os_error(), io.to_string()),
                None => (None, describe(&e)),
            };
            self.write_error(dir, file, &value.to_string(), errno, detail)
        })
    }

    /// Write a file cgroups-rs has no (correct) setter for. No `O_CREAT`: cgroupfs answers
    /// `EACCES` rather than `ENOENT` to creating a missing file, which would hide the cause.
    fn write_file(&self, dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
        OpenOptions::new()
            .write(true)
            .open(dir.join(file))
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| self.write_error(dir, file, value, e.raw_os_error(), e.to_string()))
    }

    /// Read `dir/file`: `None` if this kernel has no such file, `NotFound` if the cgroup
    /// directory itself is missing.
    fn read_file(&self, dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
        match fs::read_to_string(dir.join(file)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if dir.is_dir() {
                    Ok(None)
                } else {
                    Err(CgroupError::NotFound {
                        path: self.path.clone(),
                    })
                }
            }
            Err(e) => Err(CgroupError::Io {
                path: self.path.clone(),
                op: "read",
                reason: format!("{}: {e}", dir.join(file).display()),
            }),
        }
    }

    /// Parse a file read with [`Self::read_file`]; a file the kernel does not offer reads as
    /// `missing`.
    fn parse_file<T>(
        &self,
        dir: &Path,
        file: &str,
        missing: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, CgroupError> {
        match self.read_file(dir, file)? {
            None => Ok(missing),
            Some(content) => parse(&content).map_err(|reason| CgroupError::Io {
                path: self.path.clone(),
                op: "parse",
                reason: format!("{}: {reason}", dir.join(file).display()),
            }),
        }
    }

    // ---- apply -------------------------------------------------------------------------

    fn apply_memory(&self, mem: &LinuxMemory) -> Result<(), CgroupError> {
        if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
            // Kernel-memory limits are deprecated in the runtime spec and ignored by kernels
            // ≥ 6.1 (the write succeeds, nothing changes); runc ignores them too.
            tracing::warn!(cgroup = %self.path, "ignoring kernel memory limits (deprecated)");
        }
        let touches_memory = mem.limit().is_some()
            || mem.reservation().is_some()
            || mem.swap().is_some()
            || mem.swappiness().is_some()
            || mem.disable_oom_killer().is_some();
        if !touches_memory {
            return Ok(());
        }
        let ctrl = self.require::<MemController>("memory limits")?;
        if self.v2() {
            self.apply_memory_v2(ctrl, mem)
        } else {
            self.apply_memory_v1(ctrl, mem)
        }
    }

    fn apply_memory_v1(&self, ctrl: &MemController, mem: &LinuxMemory) -> Result<(), CgroupError> {
        let dir = ctrl.path();
        let set_limit =
            |limit: i64| self.wrote(dir, "memory.limit_in_bytes", limit, ctrl.set_limit(limit));
        let set_swap = |swap: i64| {
            self.wrote(
                dir,
                "memory.memsw.limit_in_bytes",
                swap,
                ctrl.set_memswap_limit(swap),
            )
        };
        match (mem.limit(), mem.swap()) {
            (Some(limit), Some(swap)) => {
                // The kernel keeps limit ≤ memsw at every step. Like runc: when raising, move
                // memsw first; when lowering, move the limit first.
                let current = self.parse_file(dir, "memory.limit_in_bytes", u64::MAX, parse_u64)?;
                let swap_first = swap == -1 || u64::try_from(swap).is_ok_and(|s| current < s);
                if swap_first {
                    set_swap(swap)?;
                    set_limit(limit)?;
                } else {
                    set_limit(limit)?;
                    set_swap(swap)?;
                }
            }
            (Some(limit), None) => set_limit(limit)?,
            (None, Some(swap)) => set_swap(swap)?,
            (None, None) => {}
        }
        if let Some(reservation) = mem.reservation() {
            let res = ctrl.set_soft_limit(reservation);
            self.wrote(dir, "memory.soft_limit_in_bytes", reservation, res)?;
        }
        if let Some(swappiness) = mem.swappiness() {
            let res = ctrl.set_swappiness(swappiness);
            self.wrote(dir, "memory.swappiness", swappiness, res)?;
        }
        match mem.disable_oom_killer() {
            Some(true) => self.wrote(dir, "memory.oom_control", 1, ctrl.disable_oom_killer())?,
            // cgroups-rs can only disable; writing 0 re-enables on an update.
            Some(false) => self.write_file(dir, "memory.oom_control", "0")?,
            None => {}
        }
        Ok(())
    }

    fn apply_memory_v2(&self, ctrl: &MemController, mem: &LinuxMemory) -> Result<(), CgroupError> {
        let dir = ctrl.path();
        if let Some(limit) = mem.limit() {
            // set_limit maps -1 to "max" on v2; any other negative value the kernel refuses.
            self.wrote(dir, "memory.max", limit, ctrl.set_limit(limit))?;
        }
        if let Some(swap) = mem.swap() {
            let swap_max =
                v2_swap_max(swap, mem.limit()).map_err(|reason| CgroupError::Rejected {
                    path: self.path.clone(),
                    file: "memory.swap.max".into(),
                    value: swap.to_string(),
                    reason,
                })?;
            if let Some(swap_max) = swap_max {
                let res = ctrl.set_memswap_limit(swap_max); // -1 → "max"
                self.wrote(dir, "memory.swap.max", swap_max, res)?;
            }
        }
        if let Some(reservation) = mem.reservation() {
            let low = max_value(reservation);
            let res = ctrl.set_mem(SetMemory {
                low: Some(low),
                ..SetMemory::default()
            });
            self.wrote(dir, "memory.low", low, res)?;
        }
        if mem.swappiness().is_some() {
            return Err(self.unsupported(
                "memory swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            ));
        }
        if mem.disable_oom_killer() == Some(true) {
            return Err(self.unsupported(
                "disabling the OOM killer",
                "cgroup v2 has no memory.oom_control",
            ));
        }
        Ok(())
    }

    fn apply_cpu(&self, cpu: &LinuxCpu) -> Result<(), CgroupError> {
        // 0 means "unset" for these in the runtime spec (Go zero values); on v2 cgroups-rs
        // would even turn a zero quota into "max".
        let shares = cpu.shares().filter(|&s| s != 0);
        let quota = cpu.quota().filter(|&q| q != 0);
        let period = cpu.period().filter(|&p| p != 0);
        let rt = cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some();
        if shares.is_none()
            && quota.is_none()
            && period.is_none()
            && cpu.burst().is_none()
            && cpu.idle().is_none()
            && !rt
        {
            return Ok(());
        }
        let ctrl = self.require::<CpuController>("cpu limits")?;
        let dir = ctrl.path();
        if let Some(shares) = shares {
            if self.v2() {
                let weight = shares_to_weight(shares);
                self.wrote(dir, "cpu.weight", weight, ctrl.set_shares(weight))?;
            } else {
                self.wrote(dir, "cpu.shares", shares, ctrl.set_shares(shares))?;
            }
        }
        if self.v2() {
            if quota.is_some() || period.is_some() {
                let res = ctrl.set_cfs_quota_and_period(quota, period);
                let value = format!(
                    "{} {}",
                    quota.map_or("-".into(), |q| q.to_string()),
                    period.map_or("-".into(), |p| p.to_string())
                );
                self.wrote(dir, "cpu.max", value, res)?;
            }
        } else {
            self.apply_cfs_v1(ctrl, quota, period)?;
        }
        if let Some(burst) = cpu.burst() {
            let file = if self.v2() {
                "cpu.max.burst"
            } else {
                "cpu.cfs_burst_us"
            };
            self.write_file(dir, file, &burst.to_string())?;
        }
        if let Some(idle) = cpu.idle() {
            self.write_file(dir, "cpu.idle", &idle.to_string())?;
        }
        if rt {
            if self.v2() {
                return Err(self.unsupported(
                    "realtime cpu runtime/period",
                    "cgroup v2 has no realtime group scheduling",
                ));
            }
            // Period first: the kernel checks runtime against the period.
            if let Some(period) = cpu.realtime_period() {
                let res = ctrl.set_rt_period_us(period);
                self.wrote(dir, "cpu.rt_period_us", period, res)?;
            }
            if let Some(runtime) = cpu.realtime_runtime() {
                let res = ctrl.set_rt_runtime(runtime);
                self.wrote(dir, "cpu.rt_runtime_us", runtime, res)?;
            }
        }
        Ok(())
    }

    /// v1 CFS bandwidth, in runc's order: the kernel checks quota/period against the parent
    /// at every write, so shrinking the period first can fail (`EINVAL`) until the quota has
    /// moved; then it is written again after the quota.
    fn apply_cfs_v1(
        &self,
        ctrl: &CpuController,
        quota: Option<i64>,
        period: Option<u64>,
    ) -> Result<(), CgroupError> {
        let dir = ctrl.path();
        let mut period_after_quota = None;
        if let Some(period) = period {
            match ctrl.set_cfs_period(period) {
                Ok(()) => {}
                Err(e) if quota.is_some() && io_errno(&e) == Some(libc::EINVAL) => {
                    period_after_quota = Some(period);
                }
                Err(e) => return self.wrote(dir, "cpu.cfs_period_us", period, Err(e)),
            }
        }
        if let Some(quota) = quota {
            self.wrote(dir, "cpu.cfs_quota_us", quota, ctrl.set_cfs_quota(quota))?;
        }
        if let Some(period) = period_after_quota {
            self.wrote(
                dir,
                "cpu.cfs_period_us",
                period,
                ctrl.set_cfs_period(period),
            )?;
        }
        Ok(())
    }

    fn apply_cpuset(&self, cpu: &LinuxCpu) -> Result<(), CgroupError> {
        let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_none() && mems.is_none() {
            return Ok(());
        }
        let ctrl = self.require::<CpuSetController>("cpuset")?;
        let dir = ctrl.path();
        if let Some(cpus) = cpus {
            self.wrote(dir, "cpuset.cpus", cpus, ctrl.set_cpus(cpus))?;
        }
        if let Some(mems) = mems {
            self.wrote(dir, "cpuset.mems", mems, ctrl.set_mems(mems))?;
        }
        Ok(())
    }

    fn apply_pids(&self, limit: i64) -> Result<(), CgroupError> {
        let ctrl = self.require::<PidController>("pids limit")?;
        // The runtime spec: ≤ 0 means unlimited.
        let max = if limit > 0 {
            MaxValue::Value(limit)
        } else {
            MaxValue::Max
        };
        self.wrote(ctrl.path(), "pids.max", max, ctrl.set_pid_max(max))
    }

    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        if rules.is_empty() {
            return Ok(());
        }
        if self.v2() {
            // cgroups-rs has no v2 device support; v2 needs a BPF_CGROUP_DEVICE program.
            return Err(self.unsupported(
                "device rules",
                "cgroup v2 enforces device access with an eBPF program, which swarm does \
                 not load yet; drop linux.resources.devices to run without device confinement",
            ));
        }
        let ctrl = self.require::<DevicesController>("device rules")?;
        let dir = ctrl.path();
        // In order: the kernel's list is the result of applying each rule to the previous.
        for (index, rule) in rules.iter().enumerate() {
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            let (devtype, major, minor, access) =
                device_rule(rule).map_err(|reason| CgroupError::Invalid {
                    path: self.path.clone(),
                    what: format!("device rule #{index}"),
                    reason,
                })?;
            let value = device_rule_line(devtype, major, minor, &access);
            let res = if rule.allow() {
                ctrl.allow_device(devtype, major, minor, &access)
            } else {
                ctrl.deny_device(devtype, major, minor, &access)
            };
            self.wrote(dir, file, value, res)?;
        }
        Ok(())
    }

    fn apply_hugepages(&self, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
        if limits.is_empty() {
            return Ok(());
        }
        let ctrl = self.require::<HugeTlbController>("hugepage limits")?;
        for limit in limits {
            let size = limit.page_size();
            let file = if self.v2() {
                format!("hugetlb.{size}.max")
            } else {
                format!("hugetlb.{size}.limit_in_bytes")
            };
            if !ctrl.size_supported(size) {
                return Err(self.unsupported(
                    &file,
                    format!("hugepage size {size} is not one of {:?}", ctrl.get_sizes()),
                ));
            }
            let bytes = u64::try_from(limit.limit()).map_err(|_| CgroupError::Invalid {
                path: self.path.clone(),
                what: format!("hugepage limit for {size}"),
                reason: format!("{} is negative", limit.limit()),
            })?;
            let res = ctrl.set_limit_in_bytes(size, bytes);
            self.wrote(ctrl.path(), &file, bytes, res)?;
        }
        Ok(())
    }

    fn apply_block_io(&self, bio: &LinuxBlockIo) -> Result<(), CgroupError> {
        fn none<T>(v: &Option<Vec<T>>) -> bool {
            v.as_ref().is_none_or(Vec::is_empty)
        }
        if bio.weight().is_none()
            && bio.leaf_weight().is_none()
            && none(bio.weight_device())
            && none(bio.throttle_read_bps_device())
            && none(bio.throttle_write_bps_device())
            && none(bio.throttle_read_iops_device())
            && none(bio.throttle_write_iops_device())
        {
            return Ok(());
        }
        let ctrl = self.require::<BlkIoController>("block IO limits")?;
        let dir = ctrl.path();
        let v2 = self.v2();
        if let Some(weight) = bio.weight() {
            let file = if v2 { "io.bfq.weight" } else { "blkio.weight" };
            self.wrote(dir, file, weight, ctrl.set_weight(weight.into()))?;
        }
        if let Some(weight) = bio.leaf_weight() {
            if v2 {
                return Err(self.unsupported("blkio leaf weight", "no leaf weight on cgroup v2"));
            }
            self.wrote(
                dir,
                "blkio.leaf_weight",
                weight,
                ctrl.set_leaf_weight(weight.into()),
            )?;
        }
        for dev in bio.weight_device().iter().flatten() {
            let (major, minor) = self.device_numbers(dev.major(), dev.minor())?;
            if let Some(weight) = dev.weight() {
                let file = if v2 {
                    "io.bfq.weight"
                } else {
                    "blkio.weight_device"
                };
                let res = ctrl.set_weight_for_device(major, minor, weight.into());
                self.wrote(dir, file, format!("{major}:{minor} {weight}"), res)?;
            }
        }
        type Setter = fn(&BlkIoController, u64, u64, u64) -> Result<(), CgroupsRsError>;
        let throttles: [(_, &str, &str, Setter); 4] = [
            (
                bio.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "rbps",
                BlkIoController::throttle_read_bps_for_device,
            ),
            (
                bio.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "wbps",
                BlkIoController::throttle_write_bps_for_device,
            ),
            (
                bio.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "riops",
                BlkIoController::throttle_read_iops_for_device,
            ),
            (
                bio.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "wiops",
                BlkIoController::throttle_write_iops_for_device,
            ),
        ];
        for (devices, v1_file, v2_key, set) in throttles {
            for dev in devices.iter().flatten() {
                let (major, minor) = self.device_numbers(dev.major(), dev.minor())?;
                let rate = dev.rate();
                let (file, value) = if v2 {
                    ("io.max", format!("{major}:{minor} {v2_key}={rate}"))
                } else {
                    (v1_file, format!("{major}:{minor} {rate}"))
                };
                self.wrote(dir, file, value, set(ctrl, major, minor, rate))?;
            }
        }
        Ok(())
    }

    fn device_numbers(&self, major: i64, minor: i64) -> Result<(u64, u64), CgroupError> {
        match (u64::try_from(major), u64::try_from(minor)) {
            (Ok(major), Ok(minor)) => Ok((major, minor)),
            _ => Err(CgroupError::Invalid {
                path: self.path.clone(),
                what: "block device".into(),
                reason: format!("{major}:{minor} is not a device number"),
            }),
        }
    }

    /// `unified` is v2's escape hatch (file name → value); network and rdma limits are not
    /// implemented. Refuse rather than silently run a container without a limit it asked for.
    fn apply_rest(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if resources.network().is_some() {
            return Err(self.unsupported(
                "network classid/priorities",
                "net_cls/net_prio limits are not implemented by swarm",
            ));
        }
        if resources.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(self.unsupported("rdma limits", "not implemented by swarm"));
        }
        let Some(unified) = resources.unified().as_ref().filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        if !self.v2() {
            return Err(self.unsupported(
                "linux.resources.unified",
                "it sets cgroup v2 files and this host runs cgroup v1",
            ));
        }
        let dir = self
            .dirs()
            .into_iter()
            .next()
            .ok_or_else(|| CgroupError::NotFound {
                path: self.path.clone(),
            })?;
        // A HashMap has no order; sort so repeated applies write in the same order.
        let mut entries: Vec<_> = unified.iter().collect();
        entries.sort();
        for (file, value) in entries {
            if file.is_empty() || file.contains('/') || file.starts_with('.') {
                return Err(CgroupError::Invalid {
                    path: self.path.clone(),
                    what: "linux.resources.unified key".into(),
                    reason: format!("{file:?} is not a file name"),
                });
            }
            self.write_file(&dir, file, value)?;
        }
        Ok(())
    }

    // ---- processes -----------------------------------------------------------------------

    /// Signal every pid; a pid that exited meanwhile (`ESRCH`) is fine.
    fn signal_pids(&self, pids: &[i32], signal: Signal) -> Result<(), CgroupError> {
        for &pid in pids {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => {
                    return Err(CgroupError::Io {
                        path: self.path.clone(),
                        op: "signal",
                        reason: format!("kill({pid}, {signal}): {e}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// One round of killing. A frozen cgroup cannot fork, so the pid list we read is complete
    /// and no pid in it can be reused by an unrelated process before our signal lands.
    fn freeze_kill_thaw(&self) -> Result<(), CgroupError> {
        let Some(freezer) = self.controller::<FreezerController>() else {
            return self.signal_pids(&self.procs()?, Signal::SIGKILL);
        };
        if let Err(e) = freezer.freeze() {
            // No freezer file (v2 before 5.2) or the cgroup vanished: kill unfrozen; the
            // caller's loop catches what forks in between.
            tracing::debug!(cgroup = %self.path, error = %describe(&e), "freeze failed");
            return self.signal_pids(&self.procs()?, Signal::SIGKILL);
        }
        self.wait_frozen(freezer);
        let killed = self
            .procs()
            .and_then(|pids| self.signal_pids(&pids, Signal::SIGKILL));
        // Always thaw: the SIGKILLs are only delivered once the tasks run again, and a cgroup
        // left frozen would hold its tasks forever.
        let thawed = match freezer.thaw() {
            Ok(()) => Ok(()),
            // Removed meanwhile (a concurrent delete; only an empty cgroup can be removed):
            // nothing is left frozen.
            Err(_) if !freezer.path().is_dir() => Ok(()),
            Err(e) => Err(CgroupError::Io {
                path: self.path.clone(),
                op: "thaw",
                reason: describe(&e),
            }),
        };
        killed.and(thawed)
    }

    /// Wait (bounded) until the freezer reports every task frozen.
    fn wait_frozen(&self, freezer: &FreezerController) {
        let frozen = || {
            if self.v2() {
                // cgroup.freeze is the request; cgroup.events has the outcome.
                self.parse_file(freezer.path(), "cgroup.events", None, |s| {
                    parse_keyed(s, "frozen")
                })
                .is_ok_and(|v| v == Some(1))
            } else {
                matches!(freezer.state(), Ok(FreezerState::Frozen))
            }
        };
        let deadline = Instant::now() + self.timeouts.freeze;
        while !frozen() && Instant::now() < deadline {
            thread::sleep(self.timeouts.poll);
        }
    }

    /// Remove the cgroup's directory tree in every hierarchy; the first failure, with the
    /// directory it happened on.
    fn remove_dirs(&self) -> Result<(), (PathBuf, io::Error)> {
        self.dirs().iter().try_for_each(|dir| remove_tree(dir))
    }
}

impl ContainerCgroup for FsCgroup {
    fn path(&self) -> &str {
        &self.path
    }

    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if !self.exists() {
            return Err(CgroupError::NotFound {
                path: self.path.clone(),
            });
        }
        // cpuset first (runc's order): nothing else depends on it and it is the one most
        // likely to be refused (cpus outside the parent's set).
        if let Some(cpu) = resources.cpu() {
            self.apply_cpuset(cpu)?;
        }
        if let Some(rules) = resources.devices() {
            self.apply_devices(rules)?;
        }
        if let Some(memory) = resources.memory() {
            self.apply_memory(memory)?;
        }
        if let Some(cpu) = resources.cpu() {
            self.apply_cpu(cpu)?;
        }
        if let Some(pids) = resources.pids() {
            self.apply_pids(pids.limit())?;
        }
        if let Some(bio) = resources.block_io() {
            self.apply_block_io(bio)?;
        }
        if let Some(limits) = resources.hugepage_limits() {
            self.apply_hugepages(limits)?;
        }
        self.apply_rest(resources)
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        // Writing 0 to cgroup.procs moves the *writer*: never let that through.
        if pid <= 0 {
            return Err(CgroupError::Invalid {
                path: self.path.clone(),
                what: "pid".into(),
                reason: format!("{pid} is not a process id"),
            });
        }
        let res = self.cgroup.add_task_by_tgid((pid as u64).into());
        res.map_err(|e| {
            if !self.exists() {
                return CgroupError::NotFound {
                    path: self.path.clone(),
                };
            }
            let reason = match io_errno(&e) {
                Some(libc::ESRCH) => format!("no process {pid}"),
                _ => describe(&e),
            };
            CgroupError::Io {
                path: self.path.clone(),
                op: "add_process",
                reason,
            }
        })
    }

    fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = BTreeSet::new();
        // v1: the union over hierarchies, so a process half-moved by a failed add_process is
        // still seen (and killed).
        for dir in self.dirs() {
            let content = match fs::read_to_string(dir.join("cgroup.procs")) {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(CgroupError::Io {
                        path: self.path.clone(),
                        op: "procs",
                        reason: format!("{}: {e}", dir.join("cgroup.procs").display()),
                    });
                }
            };
            let parsed = parse_procs(&content).map_err(|reason| CgroupError::Io {
                path: self.path.clone(),
                op: "procs",
                reason: format!("{}: {reason}", dir.join("cgroup.procs").display()),
            })?;
            pids.extend(parsed);
        }
        Ok(pids.into_iter().collect())
    }

    fn signal_all(&self, signal: i32) -> Result<(), CgroupError> {
        let signal = Signal::try_from(signal).map_err(|e| CgroupError::Invalid {
            path: self.path.clone(),
            what: "signal".into(),
            reason: format!("{signal}: {e}"),
        })?;
        self.signal_pids(&self.procs()?, signal)
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        let started = Instant::now();
        loop {
            let pids = self.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= self.timeouts.kill {
                return Err(CgroupError::Timeout {
                    path: self.path.clone(),
                    op: "kill_all",
                    waited: started.elapsed(),
                    reason: format!("{} processes still inside: {pids:?}", pids.len()),
                });
            }
            // v2 on 5.14+: cgroup.kill SIGKILLs the whole subtree atomically, forks included.
            // cgroups-rs reports a missing file as an error, and then we do it by hand.
            let killed_by_kernel = self.v2() && self.cgroup.kill().is_ok();
            if !killed_by_kernel {
                self.freeze_kill_thaw()?;
            }
            thread::sleep(self.timeouts.poll);
        }
    }

    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        if !self.exists() {
            return Err(CgroupError::NotFound {
                path: self.path.clone(),
            });
        }
        let mut stats = CgroupStats::default();
        let v2 = self.v2();
        let keyed =
            |key: &'static str| move |s: &str| parse_keyed(s, key).map(Option::unwrap_or_default);

        if v2 {
            if let Some(dir) = self.dirs().first() {
                // cpu.stat is a core file on v2: usage is there even without the cpu
                // controller; nr_throttled only with it.
                let (usage_us, throttled) = self.parse_file(dir, "cpu.stat", (0, 0), |s| {
                    Ok((keyed("usage_usec")(s)?, keyed("nr_throttled")(s)?))
                })?;
                stats.cpu_usage_ns = usage_us.saturating_mul(1000);
                stats.cpu_throttled_periods = throttled;
            }
        } else {
            if let Some(acct) = self.controller::<CpuAcctController>() {
                stats.cpu_usage_ns = self.parse_file(acct.path(), "cpuacct.usage", 0, parse_u64)?;
            }
            if let Some(cpu) = self.controller::<CpuController>() {
                stats.cpu_throttled_periods =
                    self.parse_file(cpu.path(), "cpu.stat", 0, keyed("nr_throttled"))?;
            }
        }

        if let Some(mem) = self.controller::<MemController>() {
            let dir = mem.path();
            let (usage, peak, limit) = if v2 {
                // memory.peak only exists from 5.19; it reads as 0 before.
                ("memory.current", "memory.peak", "memory.max")
            } else {
                (
                    "memory.usage_in_bytes",
                    "memory.max_usage_in_bytes",
                    "memory.limit_in_bytes",
                )
            };
            stats.memory_usage = self.parse_file(dir, usage, 0, parse_u64)?;
            stats.memory_max_usage = self.parse_file(dir, peak, 0, parse_u64)?;
            stats.memory_limit = self.parse_file(dir, limit, None, parse_limit)?;
            stats.oom_kills = self.oom_kills()?;
        }

        if let Some(pids) = self.controller::<PidController>() {
            stats.pids_current = self.parse_file(pids.path(), "pids.current", 0, parse_u64)?;
            stats.pids_limit = self.parse_file(pids.path(), "pids.max", None, parse_limit)?;
        }
        Ok(stats)
    }

    fn oom_kills(&self) -> Result<u64, CgroupError> {
        let mem = self.require::<MemController>("OOM kill counter")?;
        // v1: the oom_kill line exists from kernel 4.13; before, no kill was counted (0).
        // cgroups-rs parses memory.oom_control by position and unwraps, so we parse by key.
        let file = if self.v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        if !mem.path().is_dir() {
            return Err(CgroupError::NotFound {
                path: self.path.clone(),
            });
        }
        self.parse_file(mem.path(), file, 0, |s| {
            parse_keyed(s, "oom_kill").map(Option::unwrap_or_default)
        })
    }

    fn delete(&self) -> Result<(), CgroupError> {
        let started = Instant::now();
        loop {
            let (dir, err) = match self.remove_dirs() {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            let busy = err.raw_os_error() == Some(libc::EBUSY);
            if busy && started.elapsed() < self.timeouts.delete {
                thread::sleep(self.timeouts.poll);
                continue;
            }
            let mut reason = format!("rmdir {}: {err}", dir.display());
            if busy {
                if let Ok(pids) = self.procs()
                    && !pids.is_empty()
                {
                    reason.push_str(&format!("; processes still inside: {pids:?}"));
                }
                return Err(CgroupError::Timeout {
                    path: self.path.clone(),
                    op: "delete",
                    waited: started.elapsed(),
                    reason,
                });
            }
            return Err(CgroupError::Io {
                path: self.path.clone(),
                op: "delete",
                reason,
            });
        }
    }
}

/// What [`open`] returns for a path that failed validation.
#[derive(Debug)]
struct InvalidCgroup {
    path: String,
    reason: String,
}

impl InvalidCgroup {
    fn error(&self) -> CgroupError {
        CgroupError::Invalid {
            path: self.path.clone(),
            what: "cgroup path".into(),
            reason: self.reason.clone(),
        }
    }
}

impl ContainerCgroup for InvalidCgroup {
    fn path(&self) -> &str {
        &self.path
    }
    fn apply(&self, _: &LinuxResources) -> Result<(), CgroupError> {
        Err(self.error())
    }
    fn add_process(&self, _: i32) -> Result<(), CgroupError> {
        Err(self.error())
    }
    fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        Err(self.error())
    }
    fn signal_all(&self, _: i32) -> Result<(), CgroupError> {
        Err(self.error())
    }
    fn kill_all(&self) -> Result<(), CgroupError> {
        Err(self.error())
    }
    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        Err(self.error())
    }
    fn oom_kills(&self) -> Result<u64, CgroupError> {
        Err(self.error())
    }
    fn delete(&self) -> Result<(), CgroupError> {
        Err(self.error())
    }
}

// ---- pure helpers (unit-tested below without touching the kernel) ---------------------------

/// v1 reports "unlimited" as the largest page-aligned `i64` (9223372036854771712 with 4 KiB
/// pages, a bit less with larger pages). Any value from 2^62 bytes (4 EiB) up can only mean
/// that: no machine has that much memory, and no pid limit is that high.
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

fn parse_u64(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|e| format!("{:?} is not a number: {e}", s.trim()))
}

/// A limit file: `max` (v2, pids) or a huge v1 value mean unlimited (`None`).
fn parse_limit(s: &str) -> Result<Option<u64>, String> {
    if s.trim() == "max" {
        return Ok(None);
    }
    let n = parse_u64(s)?;
    Ok((n < V1_UNLIMITED_FLOOR).then_some(n))
}

/// The value of `key` in a flat-keyed file (`key value` per line), `None` if absent.
fn parse_keyed(content: &str, key: &str) -> Result<Option<u64>, String> {
    for line in content.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(key) {
            let value = words.next().ok_or_else(|| format!("{key} has no value"))?;
            return parse_u64(value).map(Some);
        }
    }
    Ok(None)
}

/// `cgroup.procs`: one pid per line. A 0 is a task outside our pid namespace: skipped,
/// because `kill(0, …)` would signal our own process group.
fn parse_procs(content: &str) -> Result<Vec<i32>, String> {
    let mut pids = Vec::new();
    for line in content.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let pid: i32 = line
            .parse()
            .map_err(|e| format!("{line:?} is not a pid: {e}"))?;
        if pid > 0 {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn max_value(v: i64) -> MaxValue {
    if v == -1 {
        MaxValue::Max
    } else {
        MaxValue::Value(v)
    }
}

/// The OCI `swap` field is the memory+swap total (v1's memsw); v2's `memory.swap.max` is swap
/// alone. runc's conversion, `None` meaning "leave unset". Errors mirror what the v1 kernel
/// would refuse, so a spec behaves the same on both.
fn v2_swap_max(memsw: i64, limit: Option<i64>) -> Result<Option<i64>, String> {
    match (memsw, limit) {
        (-1, _) => Ok(Some(-1)),
        // 0 is the spec's zero value for "unset", except that unlimited memory with unset
        // swap means both unlimited (runc's v1 compatibility rule).
        (0, Some(-1)) => Ok(Some(-1)),
        (0, _) => Ok(None),
        (_, None) | (_, Some(-1)) => Err("a memory+swap limit needs a memory limit".into()),
        (_, Some(limit)) if limit < 0 => Err(format!("invalid memory limit {limit}")),
        (memsw, Some(limit)) if memsw < limit => Err(format!(
            "memory+swap limit {memsw} is lower than the memory limit {limit}"
        )),
        (memsw, Some(limit)) => Ok(Some(memsw - limit)),
    }
}

/// cpu.shares (2..=262144, default 1024) to cpu.weight (1..=10000, default 100), with the
/// mapping runc ≥ 1.3 uses: it keeps the defaults (1024 → 100) and both ends in place, which
/// the older linear formula did not (1024 → 39).
fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, cgroups_rs::CPU_SHARES_V1_MAX);
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    let weight = 10f64.powf(exponent).ceil() as u64;
    weight.clamp(1, cgroups_rs::CPU_WEIGHT_V2_MAX)
}

type DeviceRule = (DeviceType, i64, i64, Vec<DevicePermissions>);

/// An OCI device rule in cgroups-rs terms; `-1` major/minor is the `*` wildcard.
fn device_rule(rule: &LinuxDeviceCgroup) -> Result<DeviceRule, String> {
    let devtype = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => DeviceType::All,
        LinuxDeviceType::B => DeviceType::Block,
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceType::Char,
        LinuxDeviceType::P => {
            return Err("the device cgroup has no rule type for FIFOs ('p')".into());
        }
    };
    let number = |n: Option<i64>, what: &str| match n {
        None | Some(-1) => Ok(-1),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => Err(format!("{what} number {n} is negative")),
    };
    let major = number(rule.major(), "major")?;
    let minor = number(rule.minor(), "minor")?;
    let access = rule.access().as_deref().unwrap_or("rwm");
    if access.is_empty() || !DevicePermissions::is_valid(access) {
        return Err(format!("access {access:?} must be made of r, w and m"));
    }
    let access = DevicePermissions::from_str(access).map_err(|e| describe(&e))?;
    Ok((devtype, major, minor, access))
}

/// The line cgroups-rs writes for a rule, for error messages (`c 1:3 rwm`).
fn device_rule_line(
    devtype: DeviceType,
    major: i64,
    minor: i64,
    access: &[DevicePermissions],
) -> String {
    let num = |n: i64| {
        if n == -1 {
            "*".to_string()
        } else {
            n.to_string()
        }
    };
    let access: String = access.iter().map(DevicePermissions::to_char).collect();
    format!(
        "{} {}:{} {access}",
        devtype.to_char(),
        num(major),
        num(minor)
    )
}

/// Remove `dir` and its child cgroups (deepest first: `rmdir` refuses a cgroup with
/// children; a container with its own cgroup namespace may have made some). Missing is done.
fn remove_tree(dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((dir.to_path_buf(), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let is_dir = entry.file_type().map_err(|e| (entry.path(), e))?.is_dir();
        if is_dir {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err((dir.to_path_buf(), e)),
    }
}

/// cgroups-rs errors print their cause with `{:?}`; this gives "kind: cause" readably.
fn describe(err: &CgroupsRsError) -> String {
    match std::error::Error::source(err) {
        Some(cause) => format!("{}: {cause}", err.kind()),
        None => err.kind().to_string(),
    }
}

fn io_cause(err: &CgroupsRsError) -> Option<&io::Error> {
    std::error::Error::source(err).and_then(|c| c.downcast_ref::<io::Error>())
}

fn io_errno(err: &CgroupsRsError) -> Option<i32> {
    io_cause(err).and_then(io::Error::raw_os_error)
}

#[cfg(test)]
mod tests {
    //! Pure helpers first (no kernel), then `t10_`…`t90_` against the real kernel: they run as
    //! root, each in its own cgroup `$SWARM_TEST_CGROUP_PREFIX-<test>-<pid>`, removed by a guard even when the
    //! test fails. Kernel files are located from /proc/self/mountinfo, independently of the
    //! code under test, so a wrong path in `FsCgroup` cannot make a read-back agree with it.

    /// Cgroups of this test run are named after `scripts/test.sh`'s per-run prefix, flat at
    /// the top of each hierarchy, so its leak check can tell them apart from other runs.
    fn test_prefix() -> String {
        std::env::var("SWARM_TEST_CGROUP_PREFIX").unwrap_or_else(|_| "swarm-test".into())
    }

    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command, ExitStatus, Stdio};

    const MIB: i64 = 1 << 20;

    // ---- pure helpers --------------------------------------------------------------------

    #[test]
    fn paths_must_stay_below_the_hierarchy_root() {
        for ok in ["swarm/abc", "a", "swarm/x.y/z-1"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/swarm/a",
            "swarm/../x",
            "..",
            "swarm//a",
            "swarm/a/",
            "./a",
            "a\0b",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?} should be refused");
        }
        // open() never panics and never touches anything for such a path.
        let cg = open("../../etc");
        assert!(matches!(cg.delete(), Err(CgroupError::Invalid { .. })));
        assert!(matches!(cg.procs(), Err(CgroupError::Invalid { .. })));
    }

    #[test]
    fn limits_parse_unlimited_as_none() {
        assert_eq!(parse_limit("max\n"), Ok(None));
        assert_eq!(parse_limit("9223372036854771712\n"), Ok(None)); // v1, 4 KiB pages
        assert_eq!(parse_limit("9223372036854710272\n"), Ok(None)); // v1, 64 KiB pages
        assert_eq!(parse_limit("16777216\n"), Ok(Some(16 << 20)));
        assert!(parse_limit("lots").is_err());
    }

    #[test]
    fn keyed_files_are_read_by_key_not_position() {
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_keyed(oom_control, "oom_kill"), Ok(Some(3)));
        assert_eq!(parse_keyed(oom_control, "oom_kill_disable"), Ok(Some(0)));
        assert_eq!(
            parse_keyed("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            Ok(None)
        );
        assert!(parse_keyed("oom_kill x\n", "oom_kill").is_err());
    }

    #[test]
    fn procs_never_yield_pid_zero() {
        assert_eq!(parse_procs("12\n0\n7\n\n"), Ok(vec![12, 7]));
        assert!(parse_procs("12\nabc\n").is_err());
    }

    #[test]
    fn v2_swap_is_the_memsw_total_minus_the_limit() {
        assert_eq!(v2_swap_max(64 * MIB, Some(16 * MIB)), Ok(Some(48 * MIB)));
        assert_eq!(v2_swap_max(16 * MIB, Some(16 * MIB)), Ok(Some(0)));
        assert_eq!(v2_swap_max(-1, Some(16 * MIB)), Ok(Some(-1)));
        assert_eq!(v2_swap_max(0, Some(16 * MIB)), Ok(None));
        assert_eq!(v2_swap_max(0, Some(-1)), Ok(Some(-1)));
        assert!(v2_swap_max(16 * MIB, Some(32 * MIB)).is_err());
        assert!(v2_swap_max(16 * MIB, None).is_err());
    }

    #[test]
    fn shares_map_to_weight_keeping_defaults_and_ends() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1 << 40), 10_000);
        let weights: Vec<u64> = [2, 64, 512, 1024, 4096, 262_144]
            .into_iter()
            .map(shares_to_weight)
            .collect();
        assert!(weights.windows(2).all(|w| w[0] < w[1]), "{weights:?}");
    }

    #[test]
    fn oci_device_rules_become_cgroup_lines() {
        let line = |rule: LinuxDeviceCgroup| {
            device_rule(&rule).map(|(t, maj, min, acc)| device_rule_line(t, maj, min, &acc))
        };
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .build()
            .unwrap();
        assert_eq!(line(deny_all), Ok("a *:* rwm".to_string()));
        let null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .unwrap();
        assert_eq!(line(null), Ok("c 1:3 rw".to_string()));
        let fifo = LinuxDeviceCgroupBuilder::default()
            .typ(LinuxDeviceType::P)
            .build()
            .unwrap();
        assert!(line(fifo).is_err());
        let bad_access = LinuxDeviceCgroupBuilder::default()
            .access("rx")
            .build()
            .unwrap();
        assert!(line(bad_access).is_err());
    }

    // ---- harness for the kernel tests ----------------------------------------------------

    fn host_is_v2() -> bool {
        Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    }

    /// Mount points of every cgroup hierarchy, with their super options, from mountinfo.
    fn hierarchies() -> Vec<(PathBuf, Vec<String>)> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        mountinfo
            .lines()
            .filter_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let mount_point = left.split(' ').nth(4)?;
                let mut right = right.split(' ');
                let fstype = right.next()?;
                let opts = right.nth(1)?;
                (fstype == "cgroup" || fstype == "cgroup2").then(|| {
                    let opts = opts.split(',').map(String::from).collect();
                    (PathBuf::from(mount_point), opts)
                })
            })
            .collect()
    }

    /// `<mount of controller>/<cgroup path>/<file>`: the v1 hierarchy with that controller,
    /// or the unified root on v2.
    fn kernel_file(cgroup: &str, controller: &str, file: &str) -> PathBuf {
        let root = if host_is_v2() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            hierarchies()
                .into_iter()
                .find(|(_, opts)| opts.iter().any(|o| o == controller))
                .unwrap_or_else(|| panic!("no v1 hierarchy has {controller}"))
                .0
        };
        root.join(cgroup).join(file)
    }

    fn read_kernel(cgroup: &str, controller: &str, file: &str) -> String {
        let path = kernel_file(cgroup, controller, file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        status
    }

    /// A test's cgroup; on drop (also when the test panics) kill everything in it, reap our
    /// children and delete the cgroup.
    struct Scratch {
        path: String,
        cgroup: Box<dyn ContainerCgroup>,
        children: Vec<Child>,
    }

    impl Scratch {
        fn new(test: &str) -> Self {
            Self::with_timeouts(test, CgroupTimeouts::default())
        }

        fn with_timeouts(test: &str, timeouts: CgroupTimeouts) -> Self {
            let path = format!("{}-{test}-{}", test_prefix(), std::process::id());
            let cgroup =
                create_with(&path, timeouts).unwrap_or_else(|e| panic!("create {path}: {e}"));
            Scratch {
                path,
                cgroup,
                children: Vec::new(),
            }
        }

        /// Run `sh -c script` inside the cgroup from its first instruction on: the shell
        /// blocks reading a line until add_process has moved it, so nothing it does is
        /// charged elsewhere. Returns the index into `children`.
        fn spawn_inside(&mut self, script: &str) -> usize {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(format!("read _gate; {script}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let pid = child.id() as i32;
            let mut gate = child.stdin.take().unwrap();
            self.children.push(child);
            self.cgroup.add_process(pid).unwrap();
            gate.write_all(b"go\n").unwrap();
            self.children.len() - 1
        }

        fn pid(&self, child: usize) -> i32 {
            self.children[child].id() as i32
        }

        fn read_line(&mut self, child: usize) -> String {
            let stdout = self.children[child].stdout.as_mut().unwrap();
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line.trim().to_string()
        }

        fn output(&mut self, child: usize) -> (ExitStatus, String, String) {
            let status = wait_exit(&mut self.children[child], Duration::from_secs(20))
                .expect("child did not exit");
            let mut out = String::new();
            let mut err = String::new();
            let c = &mut self.children[child];
            io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut out).unwrap();
            io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
            (status, out, err)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = self.cgroup.kill_all();
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Err(e) = self.cgroup.delete() {
                eprintln!("cleanup of {} failed: {e}", self.path);
            }
        }
    }

    fn memory(limit: i64, swap: Option<i64>) -> LinuxResources {
        let mut mem = LinuxMemoryBuilder::default().limit(limit);
        if let Some(swap) = swap {
            mem = mem.swap(swap);
        }
        LinuxResourcesBuilder::default()
            .memory(mem.build().unwrap())
            .build()
            .unwrap()
    }

    fn pids(limit: i64) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(limit).build().unwrap())
            .build()
            .unwrap()
    }

    // ---- against the kernel --------------------------------------------------------------

    #[test]
    fn t10_create_applies_limits_the_kernel_reads_back() {
        let scratch = Scratch::new("t10-limits");
        let path = scratch.path.clone();
        let cg = &scratch.cgroup;

        // A fresh cgroup: unlimited, and a cpuset a task can join.
        let before = cg.stats().unwrap();
        assert_eq!(before.memory_limit, None);
        assert_eq!(before.pids_limit, None);
        if !host_is_v2() {
            assert!(!read_kernel(&path, "cpuset", "cpuset.cpus").is_empty());
            assert!(!read_kernel(&path, "cpuset", "cpuset.mems").is_empty());
        }

        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 * MIB)
                    .reservation(32 * MIB)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(32).build().unwrap())
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(50_000)
                    .period(100_000u64)
                    .cpus("0")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        cg.apply(&resources).unwrap();

        assert_eq!(read_kernel(&path, "pids", "pids.max"), "32");
        assert_eq!(read_kernel(&path, "cpuset", "cpuset.cpus"), "0");
        assert_eq!(read_kernel(&path, "cpuset", "cpuset.mems"), "0");
        if host_is_v2() {
            assert_eq!(read_kernel(&path, "memory", "memory.max"), "67108864");
            assert_eq!(read_kernel(&path, "memory", "memory.low"), "33554432");
            assert_eq!(read_kernel(&path, "cpu", "cpu.max"), "50000 100000");
            assert_eq!(
                read_kernel(&path, "cpu", "cpu.weight"),
                shares_to_weight(512).to_string()
            );
        } else {
            assert_eq!(
                read_kernel(&path, "memory", "memory.limit_in_bytes"),
                "67108864"
            );
            assert_eq!(
                read_kernel(&path, "memory", "memory.soft_limit_in_bytes"),
                "33554432"
            );
            assert_eq!(read_kernel(&path, "cpu", "cpu.cfs_quota_us"), "50000");
            assert_eq!(read_kernel(&path, "cpu", "cpu.cfs_period_us"), "100000");
            assert_eq!(read_kernel(&path, "cpu", "cpu.shares"), "512");
        }

        let after = cg.stats().unwrap();
        assert_eq!(after.memory_limit, Some(64 << 20));
        assert_eq!(after.pids_limit, Some(32));

        // ≤ 0 means unlimited again.
        cg.apply(&pids(0)).unwrap();
        assert_eq!(read_kernel(&path, "pids", "pids.max"), "max");

        // Applying on top (raising memory with swap) works in either order on v1.
        if !host_is_v2() {
            cg.apply(&memory(16 * MIB, Some(16 * MIB))).unwrap();
            cg.apply(&memory(128 * MIB, Some(256 * MIB))).unwrap();
            assert_eq!(
                read_kernel(&path, "memory", "memory.limit_in_bytes"),
                "134217728"
            );
            assert_eq!(
                read_kernel(&path, "memory", "memory.memsw.limit_in_bytes"),
                "268435456"
            );
        }
    }

    #[test]
    fn t20_added_process_shows_in_procs_and_gets_signals() {
        let mut scratch = Scratch::new("t20-procs");
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = sleeper.id() as i32;
        scratch.cgroup.add_process(pid).unwrap();
        assert_eq!(scratch.cgroup.procs().unwrap(), vec![pid]);
        let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            membership.contains(&format!("/{}\n", scratch.path)),
            "{membership}"
        );

        scratch.cgroup.signal_all(libc::SIGTERM).unwrap();
        let status =
            wait_exit(&mut sleeper, Duration::from_secs(5)).expect("sleep ignored SIGTERM");
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(wait_until(Duration::from_secs(2), || scratch
            .cgroup
            .procs()
            .unwrap()
            .is_empty()));

        assert!(matches!(
            scratch.cgroup.add_process(0),
            Err(CgroupError::Invalid { .. })
        ));
        assert!(matches!(
            scratch.cgroup.signal_all(12345),
            Err(CgroupError::Invalid { .. })
        ));
        scratch.children.push(sleeper);
    }

    #[test]
    fn t30_kill_all_empties_a_cgroup_whose_member_keeps_forking() {
        let mut scratch = Scratch::new("t30-forker");
        // A bound for the fork loop, should kill_all not work.
        scratch.cgroup.apply(&pids(512)).unwrap();
        let forker = scratch.spawn_inside("while :; do sleep 1 & sleep 0.01; done");
        assert!(
            wait_until(Duration::from_secs(10), || scratch
                .cgroup
                .procs()
                .unwrap()
                .len()
                >= 20),
            "the forker never got going"
        );

        scratch.cgroup.kill_all().unwrap();
        assert_eq!(scratch.cgroup.procs().unwrap(), Vec::<i32>::new());
        // Nothing escaped and came back: still empty a little later.
        thread::sleep(Duration::from_millis(300));
        assert_eq!(scratch.cgroup.procs().unwrap(), Vec::<i32>::new());
        let (status, _, _) = scratch.output(forker);
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn t40_stats_report_pids_memory_and_cpu_after_work() {
        let mut scratch = Scratch::new("t40-stats");
        let limits = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 * MIB)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(32).build().unwrap())
            .build()
            .unwrap();
        scratch.cgroup.apply(&limits).unwrap();
        // ~2 MB held in a shell variable, then a busy loop, then idle.
        let worker = scratch.spawn_inside(
            "x=$(head -c 2000000 /dev/zero | tr '\\0' a); i=0; \
             while [ $i -lt 100000 ]; do i=$((i+1)); done; echo done; exec sleep 30",
        );
        assert_eq!(scratch.read_line(worker), "done");

        let stats = scratch.cgroup.stats().unwrap();
        assert!(stats.pids_current >= 1, "{stats:?}");
        assert_eq!(stats.pids_limit, Some(32));
        assert_eq!(stats.memory_limit, Some(64 << 20));
        assert!(stats.memory_usage > 0, "{stats:?}");
        assert!(stats.memory_max_usage >= 2_000_000, "{stats:?}");
        assert!(stats.cpu_usage_ns >= 10_000_000, "{stats:?}");
        assert_eq!(stats.oom_kills, 0);
        assert_eq!(scratch.cgroup.procs().unwrap(), vec![scratch.pid(worker)]);
    }

    #[test]
    fn t50_a_memory_hog_is_oom_killed_and_counted() {
        let mut scratch = Scratch::new("t50-oom");
        // memory+swap = memory: the hog cannot escape into swap on hosts that have some.
        scratch
            .cgroup
            .apply(&memory(16 * MIB, Some(16 * MIB)))
            .unwrap();
        assert_eq!(scratch.cgroup.oom_kills().unwrap(), 0);

        // tail buffers /dev/zero looking for a newline that never comes.
        let hog = scratch.spawn_inside("exec tail /dev/zero");
        let (status, _, _) = scratch.output(hog);
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(wait_until(Duration::from_secs(5), || {
            scratch.cgroup.oom_kills().unwrap() >= 1
        }));
        assert!(scratch.cgroup.stats().unwrap().oom_kills >= 1);
    }

    #[test]
    fn t60_the_pids_limit_stops_forks() {
        let mut scratch = Scratch::new("t60-pids");
        scratch.cgroup.apply(&pids(4)).unwrap();
        let shell = scratch.spawn_inside(
            // The sleeps must not hold our stdout/stderr pipes open, or reading them waits 5 s.
            "i=0; while [ $i -lt 10 ]; do sleep 5 >/dev/null 2>&1 & i=$((i+1)); done; \
             echo started; wait",
        );
        let (status, out, err) = scratch.output(shell);
        assert!(!status.success(), "all 10 forks succeeded under pids.max=4");
        assert!(!out.contains("started"), "{out}");
        assert!(err.to_lowercase().contains("fork"), "{err}");
        let events = read_kernel(&scratch.path, "pids", "pids.events");
        assert!(
            parse_keyed(&events, "max").unwrap().unwrap_or(0) >= 1,
            "{events}"
        );
        assert!(scratch.cgroup.stats().unwrap().pids_current <= 4);
    }

    #[test]
    fn t70_device_rules_are_applied_in_order() {
        let mut scratch = Scratch::new("t70-devices");
        let rule = |allow: bool, typ, major: Option<i64>, minor: Option<i64>, access: &str| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(allow)
                .typ(typ)
                .access(access);
            if let Some(major) = major {
                b = b.major(major);
            }
            if let Some(minor) = minor {
                b = b.minor(minor);
            }
            b.build().unwrap()
        };
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"), // /dev/null
            rule(true, LinuxDeviceType::C, None, None, "m"),
            rule(true, LinuxDeviceType::C, Some(136), None, "rw"), // ptys
        ];
        let resources = LinuxResourcesBuilder::default()
            .devices(rules)
            .build()
            .unwrap();
        if host_is_v2() {
            let err = scratch.cgroup.apply(&resources).unwrap_err();
            assert!(matches!(err, CgroupError::Unsupported { .. }), "{err}");
            return;
        }
        scratch.cgroup.apply(&resources).unwrap();
        assert_eq!(
            read_kernel(&scratch.path, "devices", "devices.list"),
            "c 1:3 rwm\nc *:* m\nc 136:* rw"
        );

        // A later deny narrows an earlier allow.
        let narrow = LinuxResourcesBuilder::default()
            .devices(vec![rule(false, LinuxDeviceType::C, Some(1), Some(3), "w")])
            .build()
            .unwrap();
        scratch.cgroup.apply(&narrow).unwrap();
        assert_eq!(
            read_kernel(&scratch.path, "devices", "devices.list"),
            "c 1:3 rm\nc *:* m\nc 136:* rw"
        );

        // And the kernel enforces it on a process inside: /dev/zero (1:5) is not allowed.
        let probe = scratch.spawn_inside(
            "if head -c1 /dev/zero >/dev/zero 2>&1; then echo zero-open; else echo zero-denied; fi; \
             if : </dev/null; then echo null-readable; fi",
        );
        let (_, out, _) = scratch.output(probe);
        assert_eq!(out, "zero-denied\nnull-readable\n");
    }

    #[test]
    fn t80_values_the_kernel_rejects_name_file_and_value() {
        let scratch = Scratch::new("t80-rejected");
        let v2 = host_is_v2();

        // memory+swap below memory.
        let err = scratch
            .cgroup
            .apply(&memory(32 * MIB, Some(16 * MIB)))
            .unwrap_err();
        let swap_file = if v2 {
            "memory.swap.max"
        } else {
            "memory.memsw.limit_in_bytes"
        };
        match &err {
            CgroupError::Rejected { file, value, .. } => {
                assert_eq!(file, swap_file);
                assert_eq!(value, &(16 * MIB).to_string());
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(swap_file) && message.contains("16777216"),
            "{message}"
        );

        // A negative memory limit other than -1.
        let err = scratch.cgroup.apply(&memory(-2, None)).unwrap_err();
        let limit_file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        assert!(
            matches!(&err, CgroupError::Rejected { file, value, .. } if file == limit_file && value == "-2"),
            "{err:?}"
        );
        // -1 is unlimited, not an error.
        scratch.cgroup.apply(&memory(-1, None)).unwrap();

        // A CFS quota below the kernel's 1 ms minimum.
        let tiny_quota = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().quota(500).build().unwrap())
            .build()
            .unwrap();
        let err = scratch.cgroup.apply(&tiny_quota).unwrap_err();
        let quota_file = if v2 { "cpu.max" } else { "cpu.cfs_quota_us" };
        assert!(
            matches!(&err, CgroupError::Rejected { file, .. } if file == quota_file),
            "{err:?}"
        );
    }

    #[test]
    fn t90_delete_is_idempotent_and_leaves_no_directory() {
        let short = CgroupTimeouts {
            delete: Duration::from_millis(200),
            ..CgroupTimeouts::default()
        };
        let mut scratch = Scratch::with_timeouts("t90-delete", short);
        let path = scratch.path.clone();
        let dirs_left = || -> Vec<PathBuf> {
            hierarchies()
                .into_iter()
                .map(|(mount, _)| mount.join(&path))
                .filter(|dir| dir.exists())
                .collect()
        };
        assert!(!dirs_left().is_empty());

        // While a process is inside, delete refuses (after retrying) and says why.
        let sleeper = scratch.spawn_inside("exec sleep 30");
        let err = scratch.cgroup.delete().unwrap_err();
        assert!(matches!(err, CgroupError::Timeout { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&scratch.pid(sleeper).to_string()),
            "{err}"
        );

        scratch.cgroup.kill_all().unwrap();
        scratch.cgroup.delete().unwrap();
        assert_eq!(dirs_left(), Vec::<PathBuf>::new());
        scratch.cgroup.delete().unwrap();
        assert!(matches!(
            scratch.cgroup.stats(),
            Err(CgroupError::NotFound { .. })
        ));
    }

    #[test]
    fn t91_open_of_a_missing_cgroup_creates_nothing() {
        let path = format!("{}-t91-missing-{}", test_prefix(), std::process::id());
        let cg = open(&path);
        assert_eq!(cg.path(), path);
        assert_eq!(cg.procs().unwrap(), Vec::<i32>::new());
        cg.kill_all().unwrap();
        assert!(matches!(cg.stats(), Err(CgroupError::NotFound { .. })));
        assert!(matches!(
            cg.apply(&pids(5)),
            Err(CgroupError::NotFound { .. })
        ));
        assert!(matches!(
            cg.add_process(1),
            Err(CgroupError::NotFound { .. })
        ));
        cg.delete().unwrap();
        let created: Vec<PathBuf> = hierarchies()
            .into_iter()
            .map(|(mount, _)| mount.join(&path))
            .filter(|dir| dir.exists())
            .collect();
        assert_eq!(created, Vec::<PathBuf>::new());
    }
}
