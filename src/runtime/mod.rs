//! Our own OCI container runtime.
//!
//! Who calls it: `swarm runtime …` (the OCI command line, runc's verbs), `swarm run` and the
//! node agent (later). It knows nothing of tasks, services or the cluster: it runs OCI specs.
//!
//! ```text
//!  Runtime (this file: the API; blocking calls, cheap, safe to use from a threaded daemon)
//!    create ─spawn──▶ shim.rs   per-container helper: cgroup, seccomp, clone, log, reap
//!                       └─clone─▶ init.rs  namespaces → rootfs.rs (mounts, pivot_root,
//!                                          masked paths) → process.rs (rlimits, user, caps,
//!                                          no_new_privs) → seccomp.rs → execve
//!    start / state / kill / stop / wait / delete / stats / logs   read and act on state.rs
//!    exec  ─────────────▶ exec.rs  a new process inside a running container
//!  cgroup.rs  v1/v2 behind one trait     resolve.rs  paths inside the rootfs, never out
//!  channel.rs typed messages between the processes     sys/  every `unsafe` block
//! ```
//!
//! Invariants: the calling process never forks unless it is single-threaded (the CLI, the
//! helper); everything a container owns on the host (state dir, cgroup, helper) is removed
//! by `delete`, and by the failure path of `create`; mounts live only in the container's
//! mount namespace and vanish with it.

pub mod attach;
pub mod cgroup;
pub mod channel;
pub mod error;
pub mod exec;
pub mod init;
pub mod logs;
pub mod process;
pub mod resolve;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod state;
pub mod sys;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

pub use cgroup::CgroupStats;
pub use error::{Result, RuntimeError};
pub use logs::{LogConfig, LogEntry};
pub use rootfs::RootfsSource;
pub use shim::StdioMode;
pub use state::{ContainerState, ExitStatus, Status};

use channel::Channel;
use error::Context;
use shim::{ShimConfig, ShimReport};
use state::{ContainerRecord, EXIT_FILE, FIFO_FILE, LOG_FILE, RECORD_FILE};

/// Default state directory of `swarm runtime`.
pub const DEFAULT_ROOT: &str = "/run/swarm/runtime";

/// Compiled seccomp filters, by profile hash, under the runtime root (a name no container id
/// can take: ids never start with '.').
pub const SECCOMP_CACHE_DIR: &str = ".seccomp-cache";

/// Timeouts of the runtime, in one place.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The helper must report Created (or a failure) within this.
    pub create: Duration,
    /// `start` waits this long for init to take the start signal.
    pub start: Duration,
    /// After SIGKILL, how long to wait for the helper to record the exit.
    pub reap: Duration,
    /// Poll interval while waiting on files another process writes.
    pub poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            create: Duration::from_secs(60),
            start: Duration::from_secs(10),
            reap: Duration::from_secs(10),
            poll: Duration::from_millis(5),
        }
    }
}

/// What `create` makes.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub id: String,
    /// The bundle directory (`config.json` and, usually, `rootfs/`).
    pub bundle: PathBuf,
    /// The spec; read from `<bundle>/config.json` when `None`.
    pub spec: Option<Spec>,
    /// The root filesystem; `root.path` of the spec (relative to the bundle) when `None`.
    pub rootfs: Option<RootfsSource>,
    pub stdio: StdioMode,
    /// Exec the process at once (no separate `start`).
    pub start_now: bool,
    pub log: LogConfig,
    pub pid_file: Option<PathBuf>,
    /// Serve an attach socket (`Runtime::attach`) for the container's output and input.
    pub attach: bool,
    /// Keep stdin open, fed by attached clients (`docker run -i`).
    pub open_stdin: bool,
}

impl CreateOptions {
    pub fn new(id: impl Into<String>, bundle: impl Into<PathBuf>) -> Self {
        CreateOptions {
            id: id.into(),
            bundle: bundle.into(),
            spec: None,
            rootfs: None,
            stdio: StdioMode::Inherit,
            start_now: false,
            log: LogConfig::default(),
            pid_file: None,
            attach: false,
            open_stdin: false,
        }
    }
}

/// A handle on a runtime state directory. Cheap to clone; holds no open resources.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    helper: PathBuf,
    pub timeouts: Timeouts,
}

impl Runtime {
    /// A runtime keeping its state under `root`, using this very binary as the helper.
    pub fn new(root: impl Into<PathBuf>) -> Result<Runtime> {
        let helper = std::env::current_exe().context(|| "find our own binary".into())?;
        Ok(Runtime {
            root: root.into(),
            helper,
            timeouts: Timeouts::default(),
        })
    }

    /// Use another `swarm` binary as the helper (tests run the runtime from a test binary).
    pub fn with_helper(mut self, helper: impl Into<PathBuf>) -> Runtime {
        self.helper = helper.into();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(LOG_FILE)
    }

    /// Check everything that can be checked before a helper is spawned, and make the state
    /// directory. The returned config is what the helper gets.
    fn prepare(&self, opts: CreateOptions) -> Result<ShimConfig> {
        state::validate_id(&opts.id)?;
        let bundle = fs::canonicalize(&opts.bundle)
            .context(|| format!("bundle {}", opts.bundle.display()))?;
        let spec = match opts.spec {
            Some(spec) => spec,
            None => load_spec(&bundle.join("config.json"))?,
        };
        if spec.process().is_none() {
            return Err(RuntimeError::InvalidSpec("the spec has no process".into()));
        }
        let rootfs = match opts.rootfs {
            Some(r) => r,
            None => {
                let root = spec
                    .root()
                    .as_ref()
                    .ok_or_else(|| RuntimeError::InvalidSpec("the spec has no root.path".into()))?;
                let path = bundle.join(root.path());
                if !path.is_dir() {
                    return Err(RuntimeError::InvalidSpec(format!(
                        "root filesystem {} does not exist or is not a directory",
                        path.display()
                    )));
                }
                RootfsSource::Dir(path)
            }
        };
        let cgroup_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| format!("swarm/{}", opts.id));
        if cgroup_path.split('/').any(|c| c == "..") {
            return Err(RuntimeError::InvalidSpec(format!(
                "cgroupsPath {cgroup_path} contains '..'"
            )));
        }
        fs::create_dir_all(&self.root).context(|| format!("create {}", self.root.display()))?;
        let state_dir = self.dir(&opts.id);
        match fs::create_dir(&state_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists(opts.id));
            }
            Err(e) => {
                return Err(RuntimeError::io(
                    format!("create {}", state_dir.display()),
                    e,
                ));
            }
        }
        Ok(ShimConfig {
            id: opts.id,
            state_dir,
            bundle,
            spec,
            rootfs,
            stdio: opts.stdio,
            start_now: opts.start_now,
            log: opts.log,
            pid_file: opts.pid_file,
            cgroup_path,
            attach: opts.attach,
            open_stdin: opts.open_stdin,
        })
    }

    /// Create a container: a detached helper sets it up and keeps it. Returns once init is
    /// ready (waiting for `start`, or running when `start_now`).
    pub fn create(&self, opts: CreateOptions) -> Result<ContainerState> {
        let config = self.prepare(opts)?;
        let id = config.id.clone();
        match self.spawn_helper(&config) {
            Ok(()) => self.state(&id),
            Err(e) => {
                // The helper cleans up after itself; this covers a helper that died.
                let _ = cgroup::open(&config.cgroup_path).kill_all();
                let _ = cgroup::open(&config.cgroup_path).delete();
                let _ = fs::remove_dir_all(&config.state_dir);
                Err(e)
            }
        }
    }

    fn spawn_helper(&self, config: &ShimConfig) -> Result<()> {
        let socket_path = config.state_dir.join("create.sock");
        let (_dir, bind_path) = channel::short_socket_path(&socket_path)?;
        let listener = UnixListener::bind(&bind_path)
            .context(|| format!("listen on {}", socket_path.display()))?;
        listener
            .set_nonblocking(true)
            .context(|| "set listener non-blocking".into())?;
        let inherit = matches!(config.stdio, StdioMode::Inherit);
        let stdio = || {
            if inherit {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let mut child = Command::new(&self.helper)
            .arg("__shim")
            .arg(&socket_path)
            .stdin(stdio())
            .stdout(stdio())
            .stderr(if inherit {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .context(|| format!("start helper {}", self.helper.display()))?;
        // The helper forks at once and its first process exits: reap it.
        let _ = child.wait();
        let deadline = Instant::now() + self.timeouts.create;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(RuntimeError::Timeout {
                            what: "the container helper to connect".into(),
                            secs: self.timeouts.create.as_secs_f64(),
                        });
                    }
                    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(&mut fds, PollTimeout::from(100u16));
                }
                Err(e) => return Err(RuntimeError::io("accept helper connection", e)),
            }
        };
        let _ = fs::remove_file(&socket_path);
        stream
            .set_nonblocking(false)
            .context(|| "helper socket".into())?;
        stream
            .set_read_timeout(Some(self.timeouts.create))
            .context(|| "helper socket".into())?;
        // Who connected: a failed helper cleans up and exits, and create must not return
        // before it is gone, or the caller could still see it.
        let helper =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                .ok()
                .and_then(|cred| sys::pidfd_open(cred.pid()).ok());
        let mut channel = Channel::new(stream);
        channel.send(config)?;
        let failure = match channel.recv::<ShimReport>()? {
            Some(ShimReport::Created { .. }) => return Ok(()),
            Some(ShimReport::Failed(e)) => RuntimeError::Remote(e),
            None => RuntimeError::Remote("the container helper exited without reporting".into()),
        };
        if let Some(pidfd) = helper {
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let ms = self.timeouts.reap.as_millis().min(u16::MAX as u128) as u16;
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
        Err(failure)
    }

    /// Create, start and wait in this process (which must be single-threaded), then delete.
    /// Returns how the container's process ended.
    pub fn run_foreground(&self, mut opts: CreateOptions) -> Result<ExitStatus> {
        opts.start_now = true;
        let config = self.prepare(opts)?;
        let id = config.id.clone();
        let result = shim::run_foreground(&config);
        let deleted = self.delete(&id, true);
        if result.is_err() {
            let _ = fs::remove_dir_all(&config.state_dir);
        }
        let exit = result?;
        deleted?;
        Ok(exit)
    }

    fn record(&self, id: &str) -> Result<ContainerRecord> {
        state::validate_id(id)?;
        let dir = self.dir(id);
        match state::read_json::<ContainerRecord>(&dir.join(RECORD_FILE))? {
            Some(record) => Ok(record),
            None if dir.is_dir() => Err(RuntimeError::InvalidState {
                id: id.to_string(),
                status: Status::Creating.to_string(),
                op: "use it yet",
            }),
            None => Err(RuntimeError::NotFound(id.to_string())),
        }
    }

    fn status_of(&self, record: &ContainerRecord) -> Result<(Status, Option<ExitStatus>)> {
        let dir = self.dir(&record.id);
        if let Some(exit) = state::read_json::<ExitStatus>(&dir.join(EXIT_FILE))? {
            return Ok((Status::Stopped, Some(exit)));
        }
        if state::process_alive(record.pid, record.pid_start_time) {
            if dir.join(FIFO_FILE).exists() {
                return Ok((Status::Created, None));
            }
            return Ok((Status::Running, None));
        }
        Ok((Status::Stopped, None))
    }

    /// The OCI state of a container, found from disk.
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        let record = self.record(id)?;
        let (status, exit) = self.status_of(&record)?;
        Ok(ContainerState {
            oci_version: "1.0.2".into(),
            id: record.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                record.pid
            },
            bundle: record.bundle.clone(),
            rootfs: record.rootfs.clone(),
            created: record.created.clone(),
            annotations: record.annotations.clone(),
            exit,
        })
    }

    /// Every container under the root (those still being created are skipped).
    pub fn list(&self) -> Result<Vec<ContainerState>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io(format!("list {}", self.root.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(state) = self.state(&id) {
                out.push(state);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Let a created container's process run.
    pub fn start(&self, id: &str) -> Result<()> {
        let record = self.record(id)?;
        let (status, _) = self.status_of(&record)?;
        if !status.can_start() {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                op: "start it",
            });
        }
        let fifo_path = self.dir(id).join(FIFO_FILE);
        let fifo = nix::fcntl::open(
            &fifo_path,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context(|| format!("open {}", fifo_path.display()))?;
        let deadline = Instant::now() + self.timeouts.start;
        let mut byte = [0u8; 1];
        loop {
            match nix::unistd::read(&fifo, &mut byte) {
                Ok(1) => break,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(RuntimeError::sys("read exec fifo", e)),
            }
            if !state::process_alive(record.pid, record.pid_start_time) {
                return Err(RuntimeError::Remote(format!(
                    "container {id}'s init exited before it was started"
                )));
            }
            if Instant::now() > deadline {
                return Err(RuntimeError::Timeout {
                    what: format!("container {id} to start"),
                    secs: self.timeouts.start.as_secs_f64(),
                });
            }
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(20u16));
        }
        fs::remove_file(&fifo_path).context(|| format!("remove {}", fifo_path.display()))
    }

    /// Send `signal` to the container's init, or with `all` to every process in its cgroup.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let record = self.record(id)?;
        let (status, _) = self.status_of(&record)?;
        if !status.can_kill() {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                op: "kill it",
            });
        }
        if all {
            cgroup::open(&record.cgroup_path).signal_all(signal as i32)?;
            return Ok(());
        }
        nix::sys::signal::kill(Pid::from_raw(record.pid), signal)
            .context(|| format!("kill {} (pid {}) with {signal}", id, record.pid))
    }

    /// Wait until the container has stopped and its exit is recorded.
    pub fn wait(&self, id: &str, timeout: Option<Duration>) -> Result<ExitStatus> {
        let record = self.record(id)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        // Block on the init's exit through a pidfd; then the helper writes exit.json.
        if state::process_alive(record.pid, record.pid_start_time)
            && let Ok(pidfd) = sys::pidfd_open(record.pid)
        {
            let ms = timeout
                .map(|t| t.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(-1);
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let ready = poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
            )
            .unwrap_or(0);
            if ready == 0 && timeout.is_some() {
                return Err(RuntimeError::Timeout {
                    what: format!("container {id} to exit"),
                    secs: timeout.unwrap_or_default().as_secs_f64(),
                });
            }
        }
        loop {
            let (status, exit) = self.status_of(&record)?;
            if let Some(exit) = exit {
                return Ok(exit);
            }
            let helper_alive = record.helper_pid > 0
                && state::process_alive(record.helper_pid, record.helper_start_time);
            if status == Status::Stopped && !helper_alive {
                // Nobody is left to record how it ended (the helper was killed).
                return Ok(ExitStatus {
                    code: 255,
                    signal: None,
                    oom_killed: false,
                    finished: state::now_rfc3339(),
                });
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(RuntimeError::Timeout {
                    what: format!("container {id} to exit"),
                    secs: timeout.unwrap_or_default().as_secs_f64(),
                });
            }
            std::thread::sleep(self.timeouts.poll);
        }
    }

    /// A pidfd of the container's init while it lives (created or running): it becomes
    /// readable when the init exits, so async callers can wait without a thread. `None`
    /// once the init is gone. The pid is checked again after the open, so the handle never
    /// names a process that reused the pid.
    pub fn exit_fd(&self, id: &str) -> Result<Option<std::os::fd::OwnedFd>> {
        let record = self.record(id)?;
        if !state::process_alive(record.pid, record.pid_start_time) {
            return Ok(None);
        }
        let Ok(pidfd) = sys::pidfd_open(record.pid) else {
            return Ok(None);
        };
        Ok(state::process_alive(record.pid, record.pid_start_time).then_some(pidfd))
    }

    /// Stop a container like `docker stop`: `signal`, up to `grace` to exit, then SIGKILL of
    /// every process in its cgroup.
    pub fn stop(&self, id: &str, signal: Signal, grace: Duration) -> Result<ExitStatus> {
        let record = self.record(id)?;
        let (status, exit) = self.status_of(&record)?;
        if let Some(exit) = exit {
            return Ok(exit);
        }
        if status == Status::Stopped {
            return self.wait(id, Some(self.timeouts.reap));
        }
        let _ = self.kill(id, signal, false);
        match self.wait(id, Some(grace)) {
            Ok(exit) => Ok(exit),
            Err(RuntimeError::Timeout { .. }) => {
                cgroup::open(&record.cgroup_path).kill_all()?;
                let _ = nix::sys::signal::kill(Pid::from_raw(record.pid), Signal::SIGKILL);
                self.wait(id, Some(self.timeouts.reap))
            }
            Err(e) => Err(e),
        }
    }

    /// Remove a container: its processes (with `force`), cgroup and state. Idempotent for
    /// half-created containers whose creator died.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        state::validate_id(id)?;
        let dir = self.dir(id);
        let record = match state::read_json::<ContainerRecord>(&dir.join(RECORD_FILE))? {
            Some(r) => r,
            None if dir.is_dir() => {
                // Never finished creating: nothing can be running from it without a record
                // except under the default cgroup path.
                let cg = cgroup::open(&format!("swarm/{id}"));
                let _ = cg.kill_all();
                let _ = cg.delete();
                return fs::remove_dir_all(&dir).context(|| format!("remove {}", dir.display()));
            }
            None => return Err(RuntimeError::NotFound(id.into())),
        };
        let (status, _) = self.status_of(&record)?;
        if !status.can_delete() && !force {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                op: "delete it without --force",
            });
        }
        let cg = cgroup::open(&record.cgroup_path);
        if status != Status::Stopped {
            cg.kill_all()?;
            let _ = nix::sys::signal::kill(Pid::from_raw(record.pid), Signal::SIGKILL);
        }
        // Let the helper finish writing before its directory goes away.
        if record.helper_pid > 0 {
            let deadline = Instant::now() + self.timeouts.reap;
            while state::process_alive(record.helper_pid, record.helper_start_time) {
                if Instant::now() > deadline {
                    let _ =
                        nix::sys::signal::kill(Pid::from_raw(record.helper_pid), Signal::SIGKILL);
                    break;
                }
                std::thread::sleep(self.timeouts.poll);
            }
        }
        cg.delete()?;
        fs::remove_dir_all(&dir).context(|| format!("remove {}", dir.display()))
    }

    /// Connect to a container's attach socket (see `attach`): its output as Docker's
    /// multiplexed frames, and a way to send input.
    pub fn attach(&self, id: &str) -> Result<std::os::unix::net::UnixStream> {
        self.record(id)?;
        attach::connect(&self.dir(id))
    }

    /// Resource usage of a container.
    pub fn stats(&self, id: &str) -> Result<CgroupStats> {
        let record = self.record(id)?;
        Ok(cgroup::open(&record.cgroup_path).stats()?)
    }

    /// The container's log records, oldest first.
    pub fn logs(&self, id: &str) -> Result<Vec<LogEntry>> {
        self.record(id)?;
        logs::read_all(&self.log_path(id), LogConfig::default().max_files)
    }

    /// The spec a container was created from.
    pub fn spec(&self, id: &str) -> Result<Spec> {
        self.record(id)?;
        load_spec(&self.dir(id).join(state::SPEC_FILE))
    }

    /// Cgroup path and init pid, for exec.
    pub(crate) fn exec_target(&self, id: &str) -> Result<(ContainerRecord, Status)> {
        let record = self.record(id)?;
        let (status, _) = self.status_of(&record)?;
        Ok((record, status))
    }
}

/// Read and parse a spec file with a clear error (unknown namespace types and other invalid
/// values are rejected here).
pub fn load_spec(path: &Path) -> Result<Spec> {
    let bytes = fs::read(path).context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RuntimeError::InvalidSpec(format!("{}: {e}", path.display())))
}

/// Is the host's cgroup hierarchy unified (v2)? Hybrid hosts count as v1.
pub fn cgroup_mode_is_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}
