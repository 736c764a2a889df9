//! The per-container helper ("shim"): a freshly exec'd, single-threaded copy of our binary
//! that creates one container and then stays with it for its whole life.
//!
//! ```text
//!  creator ──spawn `swarm __shim SOCKET`──▶ helper ─fork─▶ helper (setsid, detached)
//!                                                  │  creates the cgroup, compiles seccomp,
//!                                                  │  clones init into new namespaces
//!                                                  ├─▶ init (see init.rs) ──execve──▶ container
//!                                                  │  reports Created to the creator, then:
//!                                                  └─ reaps init, writes its output to the
//!                                                     log, records exit.json, exits
//! ```
//!
//! Why a helper at all: the daemon is multi-threaded and must never fork (a fork copies only
//! the calling thread; a lock held by another thread stays locked forever in the child). The
//! helper is detached (own session, reparented to init when its parent exits), so a container
//! outlives the daemon or CLI that created it and is found again from its state on disk.
//!
//! A foreground `swarm runtime run` plays the helper itself, in its own process (the CLI is
//! single-threaded), and forwards the signals it receives to the container.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, mkfifo, pipe2};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use super::attach::{AttachFds, AttachServer, Input};
use super::cgroup::{self, ContainerCgroup};
use super::channel::Channel;
use super::error::{Context, Result, RuntimeError};
use super::init::{self, InitContext, InitStdio};
use super::logs::{LogConfig, LogWriter, Stream};
use super::process::CapabilitySets;
use super::rootfs::RootfsSource;
use super::seccomp::SeccompFilter;
use super::state::{
    self, ContainerRecord, ExitStatus, FIFO_FILE, LOG_FILE, RECORD_FILE, RECORD_FORMAT, SPEC_FILE,
};
use super::sys::{self, CloneResult};

/// Where the container's stdio goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdioMode {
    /// The helper's own stdio (the creator's), like runc's pass-through mode.
    Inherit,
    /// stdout/stderr (or the pty's output) into the container log; stdin is /dev/null.
    Log,
    /// /dev/null for all three.
    Null,
    /// A terminal whose master is sent to this OCI console socket.
    ConsoleSocket(PathBuf),
}

/// Creator → helper: the container to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    pub state_dir: PathBuf,
    pub bundle: PathBuf,
    pub spec: Spec,
    pub rootfs: RootfsSource,
    pub stdio: StdioMode,
    /// Exec at once instead of waiting for `start` on the exec fifo.
    pub start_now: bool,
    pub log: LogConfig,
    pub pid_file: Option<PathBuf>,
    pub cgroup_path: String,
    /// Serve `<state>/attach.sock` so clients can follow the output and send input.
    #[serde(default)]
    pub attach: bool,
    /// Keep stdin open (a pipe fed by attached clients) instead of /dev/null.
    #[serde(default)]
    pub open_stdin: bool,
}

/// Helper → creator.
#[derive(Debug, Serialize, Deserialize)]
pub enum ShimReport {
    Created { pid: i32 },
    Failed(String),
}

/// A container whose init is set up (waiting for start, or running).
struct Started {
    pid: i32,
    pidfd: OwnedFd,
    cgroup: Box<dyn ContainerCgroup>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    pty: Option<OwnedFd>,
    /// Write end of the container's stdin pipe (`open_stdin` without a terminal).
    stdin: Option<OwnedFd>,
    attach: Option<AttachServer>,
}

/// Entry of `swarm __shim SOCKET`: detach, create the container, supervise it. Returns the
/// helper's exit code.
pub fn helper_main(socket: &Path) -> i32 {
    // Detach: the creator reaps our parent at once and we are reparented, so the creator (a
    // daemon, say) never accumulates zombies and can exit while the container lives on.
    match sys::clone_process(0) {
        Ok(CloneResult::Parent { .. }) => return 0,
        Ok(CloneResult::Child) => {}
        Err(e) => {
            eprintln!("swarm helper: fork: {e}");
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    let connected = super::channel::short_socket_path(socket)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|(_dir, path)| UnixStream::connect(path));
    let mut channel = match connected {
        Ok(s) => Channel::new(s),
        Err(e) => {
            eprintln!("swarm helper: connect {}: {e}", socket.display());
            return 1;
        }
    };
    let config: ShimConfig = match channel.recv() {
        Ok(Some(c)) => c,
        _ => return 1,
    };
    let started = match create(&config, None) {
        Ok(s) => s,
        Err(e) => {
            let _ = channel.send(&ShimReport::Failed(e.to_string()));
            return 1;
        }
    };
    if let Err(e) = record_created(&config, &started, true) {
        kill_and_reap(&started);
        cleanup_failed(&config, started.cgroup.as_ref());
        let _ = channel.send(&ShimReport::Failed(e.to_string()));
        return 1;
    }
    let _ = channel.send(&ShimReport::Created { pid: started.pid });
    drop(channel);
    let supervision = config.supervision();
    drop(config);
    // Returns only if the exec failed: then this image supervises, as it is.
    let _ = reexec_supervisor(&supervision, &started);
    sys::release_free_memory();
    let exit = supervise(&supervision, started, None);
    match state::write_json_atomic(&supervision.state_dir.join(state::EXIT_FILE), &exit) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// The environment variable that carries the [`Handover`] across the re-exec.
const HANDOVER_ENV: &str = "SWARM_SUPERVISE";
/// `swarm __shim --supervise STATE_DIR`: the helper after its re-exec.
pub const SUPERVISE_FLAG: &str = "--supervise";

/// What supervising needs of the config: where the output goes, where the exit is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Supervision {
    state_dir: PathBuf,
    stdio: StdioMode,
    log: LogConfig,
}

impl ShimConfig {
    fn supervision(&self) -> Supervision {
        Supervision {
            state_dir: self.state_dir.clone(),
            stdio: self.stdio.clone(),
            log: self.log,
        }
    }
}

/// A running container as raw descriptors, from the creating image of the helper to the
/// supervising one.
///
/// Why re-exec: creating a container leaves the helper with the pages of everything it took
/// (the config and spec, libseccomp's compiler, the cgroup and mount code, a deep stack): about
/// 380 kB of private memory that `malloc_trim` cannot give back, for the container's whole
/// life, per container. A fresh image of the binary that only runs the supervise loop keeps a
/// fraction of that (see docs/benchmarks.md, helper memory). The process (its pid, its child
/// the container's init, its session) stays the same; only the memory is new.
#[derive(Debug, Serialize, Deserialize)]
struct Handover {
    supervision: Supervision,
    pid: i32,
    cgroup_path: String,
    pidfd: RawFd,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    pty: Option<RawFd>,
    stdin: Option<RawFd>,
    attach: Option<AttachFds>,
}

impl Handover {
    fn of(supervision: &Supervision, started: &Started) -> Handover {
        Handover {
            supervision: supervision.clone(),
            pid: started.pid,
            cgroup_path: started.cgroup.path().to_string(),
            pidfd: started.pidfd.as_raw_fd(),
            stdout: started.stdout.as_ref().map(|f| f.as_raw_fd()),
            stderr: started.stderr.as_ref().map(|f| f.as_raw_fd()),
            pty: started.pty.as_ref().map(|f| f.as_raw_fd()),
            stdin: started.stdin.as_ref().map(|f| f.as_raw_fd()),
            attach: started.attach.as_ref().map(AttachServer::raw_fds),
        }
    }

    fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.pidfd];
        fds.extend(
            [self.stdout, self.stderr, self.pty, self.stdin]
                .into_iter()
                .flatten(),
        );
        fds.extend(self.attach.iter().flat_map(AttachFds::fds));
        fds
    }

    /// Take the descriptors over (right after the exec that carried them, before anything
    /// else in this image opened one). `None` if any is not open.
    fn into_started(self) -> Option<Started> {
        let adopt = sys::adopt_inherited_fd;
        let optional = |fd: Option<RawFd>| fd.map(|fd| adopt(fd).ok_or(())).transpose().ok();
        let attach = match self.attach {
            Some(fds) => {
                let listener = adopt(fds.listener)?;
                let mut clients = Vec::new();
                for client in fds.clients {
                    clients.push((adopt(client.fd)?, client));
                }
                Some(AttachServer::from_parts(listener, clients))
            }
            None => None,
        };
        Some(Started {
            pid: self.pid,
            pidfd: adopt(self.pidfd)?,
            cgroup: cgroup::open(&self.cgroup_path),
            stdout: optional(self.stdout)?,
            stderr: optional(self.stderr)?,
            pty: optional(self.pty)?,
            stdin: optional(self.stdin)?,
            attach,
        })
    }
}

/// Replace this process's image with a fresh one of the binary that supervises `started`
/// (`swarm __shim --supervise STATE_DIR`, the descriptors inherited, their numbers in
/// `SWARM_SUPERVISE`). Returns only on failure, with every descriptor as it was.
fn reexec_supervisor(supervision: &Supervision, started: &Started) -> Result<()> {
    let handover = Handover::of(supervision, started);
    let encoded = serde_json::to_string(&handover)
        .map_err(|e| RuntimeError::Remote(format!("encode the handover: {e}")))?;
    let cstring =
        |s: String| std::ffi::CString::new(s).map_err(|e| RuntimeError::Remote(e.to_string()));
    let args = [
        cstring("swarm".into())?,
        cstring("__shim".into())?,
        cstring(SUPERVISE_FLAG.into())?,
        cstring(supervision.state_dir.display().to_string())?,
    ];
    let env = [cstring(format!("{HANDOVER_ENV}={encoded}"))?];
    let fds = handover.fds();
    for &fd in &fds {
        sys::set_cloexec(fd, false);
    }
    let error = nix::unistd::execve(c"/proc/self/exe", &args, &env).unwrap_err();
    for &fd in &fds {
        sys::set_cloexec(fd, true);
    }
    Err(RuntimeError::Remote(format!("re-exec the helper: {error}")))
}

/// Entry of `swarm __shim --supervise STATE_DIR`: the helper's second image. Takes over the
/// container from the [`Handover`] and supervises it to its end. Returns the exit code.
pub fn supervisor_main(state_dir: &Path) -> i32 {
    let Some(handover) = std::env::var_os(HANDOVER_ENV)
        .and_then(|v| serde_json::from_slice::<Handover>(v.as_encoded_bytes()).ok())
    else {
        eprintln!("swarm helper: no container to supervise");
        return 2;
    };
    if handover.supervision.state_dir != state_dir {
        eprintln!("swarm helper: handover is for another container");
        return 2;
    }
    let supervision = handover.supervision.clone();
    let Some(started) = handover.into_started() else {
        eprintln!("swarm helper: the container's descriptors did not survive the re-exec");
        return 2;
    };
    sys::release_free_memory();
    let exit = supervise(&supervision, started, None);
    match state::write_json_atomic(&supervision.state_dir.join(state::EXIT_FILE), &exit) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// A foreground `run`: this process is the helper. Signals sent to it are forwarded to the
/// container. Returns the exit status once the container is gone (its state is left for the
/// caller to delete).
pub fn run_foreground(config: &ShimConfig) -> Result<ExitStatus> {
    let forwarded = forwarded_signals();
    forwarded
        .thread_block()
        .context(|| "block signals".into())?;
    let signals = SignalFd::new(&forwarded).context(|| "signalfd".into())?;
    let started = create(config, None)?;
    if let Err(e) = record_created(config, &started, false) {
        kill_and_reap(&started);
        cleanup_failed(config, started.cgroup.as_ref());
        return Err(e);
    }
    let exit = supervise(&config.supervision(), started, Some(&signals));
    state::write_json_atomic(&config.state_dir.join(state::EXIT_FILE), &exit)?;
    Ok(exit)
}

fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    set
}

/// The runtime's seccomp cache sits next to the containers' state directories.
fn seccomp_cache_dir(state_dir: &Path) -> PathBuf {
    state_dir
        .parent()
        .unwrap_or(state_dir)
        .join(super::SECCOMP_CACHE_DIR)
}

/// Which namespaces to create (clone flags) and which to join (by path).
struct Namespaces {
    clone_flags: CloneFlags,
    new_cgroup: bool,
    new_uts: bool,
    join_pid: Option<OwnedFd>,
    join: Vec<(CloneFlags, OwnedFd)>,
}

fn namespaces(spec: &Spec) -> Result<Namespaces> {
    let mut ns = Namespaces {
        clone_flags: CloneFlags::empty(),
        new_cgroup: false,
        new_uts: false,
        join_pid: None,
        join: Vec::new(),
    };
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut seen = Vec::new();
    for n in &list {
        let typ = n.typ();
        if seen.contains(&typ) {
            return Err(RuntimeError::InvalidSpec(format!(
                "namespace {typ:?} is listed twice"
            )));
        }
        seen.push(typ);
        let flag = match typ {
            LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            other => {
                return Err(RuntimeError::InvalidSpec(format!(
                    "namespace type {other:?} is not supported (supported: pid, network, mount, ipc, uts, cgroup)"
                )));
            }
        };
        match n.path() {
            Some(path) => {
                let fd =
                    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
                        RuntimeError::InvalidSpec(format!(
                            "cannot open namespace {typ:?} at {}: {e}",
                            path.display()
                        ))
                    })?;
                if flag == CloneFlags::CLONE_NEWNS {
                    return Err(RuntimeError::InvalidSpec(
                        "joining an existing mount namespace is not supported: the container needs its own".into(),
                    ));
                }
                if flag == CloneFlags::CLONE_NEWPID {
                    ns.join_pid = Some(fd);
                } else {
                    ns.join.push((flag, fd));
                }
            }
            None if flag == CloneFlags::CLONE_NEWCGROUP => ns.new_cgroup = true,
            None => {
                if flag == CloneFlags::CLONE_NEWUTS {
                    ns.new_uts = true;
                }
                ns.clone_flags |= flag;
            }
        }
    }
    if !ns.clone_flags.contains(CloneFlags::CLONE_NEWNS) {
        return Err(RuntimeError::InvalidSpec(
            "the spec must ask for a new mount namespace".into(),
        ));
    }
    Ok(ns)
}

/// Undo a half-made container: kill whatever is in its cgroup, remove the cgroup and the
/// state directory.
fn cleanup_failed(config: &ShimConfig, cgroup: &dyn ContainerCgroup) {
    let _ = cgroup.kill_all();
    let _ = cgroup.delete();
    let _ = fs::remove_dir_all(&config.state_dir);
}

fn kill_and_reap(started: &Started) {
    let _ = nix::sys::signal::kill(Pid::from_raw(started.pid), Signal::SIGKILL);
    let _ = waitpid(Pid::from_raw(started.pid), None);
}

/// Create the container up to "init is ready". On failure everything made so far is undone.
fn create(config: &ShimConfig, _unused: Option<()>) -> Result<Started> {
    let spec = &config.spec;
    let proc_spec = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidSpec("the spec has no process".into()))?;
    let ns = namespaces(spec)?;
    let caps = CapabilitySets::from_spec(proc_spec.capabilities().as_ref())?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(SeccompFilter::compile_cached(
            profile,
            &seccomp_cache_dir(&config.state_dir),
        )?),
        None => None,
    };
    let root = config.rootfs.mount_point();
    match &config.rootfs {
        RootfsSource::Dir(dir) if !dir.is_dir() => {
            return Err(RuntimeError::InvalidSpec(format!(
                "root filesystem {} does not exist or is not a directory",
                dir.display()
            )));
        }
        RootfsSource::Overlay { lower, .. } => {
            if let Some(missing) = lower.iter().find(|l| !l.is_dir()) {
                return Err(RuntimeError::InvalidSpec(format!(
                    "image layer {} does not exist",
                    missing.display()
                )));
            }
            fs::create_dir_all(root).context(|| format!("create {}", root.display()))?;
        }
        _ => {}
    }
    let terminal = proc_spec.terminal() == Some(true);
    if terminal && config.stdio == StdioMode::Null {
        return Err(RuntimeError::InvalidSpec(
            "process.terminal needs a console socket, a log or an inherited terminal".into(),
        ));
    }
    if !terminal && matches!(config.stdio, StdioMode::ConsoleSocket(_)) {
        return Err(RuntimeError::InvalidSpec(
            "--console-socket given but process.terminal is false".into(),
        ));
    }

    let attach = if config.attach {
        Some(AttachServer::bind(&config.state_dir)?)
    } else {
        None
    };
    let cgroup = cgroup::create(&config.cgroup_path)?;
    let result = (|| {
        let mut resources = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        if let Some(rules) = resources.devices().clone() {
            resources.set_devices(Some(with_runtime_devices(rules)));
        }
        cgroup.apply(&resources)?;
        clone_init(
            config,
            &ns,
            &caps,
            seccomp.as_ref(),
            cgroup.as_ref(),
            terminal,
        )
    })();
    match result {
        Ok((pid, pidfd, stdout, stderr, pty, stdin)) => Ok(Started {
            pid,
            pidfd,
            cgroup,
            stdout,
            stderr,
            pty,
            stdin,
            attach,
        }),
        Err(e) => {
            let _ = cgroup.kill_all();
            let _ = cgroup.delete();
            Err(e)
        }
    }
}

/// The devices the runtime itself creates in every container's /dev must stay usable
/// whatever the spec's rules deny, so they are allowed after the spec's rules (runc does the
/// same, but unlike runc we never allow `b *:* m`: no block device nodes).
fn with_runtime_devices(
    mut rules: Vec<oci_spec::runtime::LinuxDeviceCgroup>,
) -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    let allow = |major: i64, minor: Option<i64>| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        if let Some(minor) = minor {
            b = b.minor(minor);
        }
        b.build().expect("static device rule")
    };
    for (major, minor) in [
        (1, Some(3)), // null
        (1, Some(5)), // zero
        (1, Some(7)), // full
        (1, Some(8)), // random
        (1, Some(9)), // urandom
        (5, Some(0)), // tty
        (5, Some(1)), // console
        (5, Some(2)), // ptmx
        (136, None),  // pts/*
    ] {
        rules.push(allow(major, minor));
    }
    rules
}

/// pid, pidfd, stdout, stderr, pty master, stdin writer.
type Cloned = (
    i32,
    OwnedFd,
    Option<OwnedFd>,
    Option<OwnedFd>,
    Option<OwnedFd>,
    Option<OwnedFd>,
);

fn clone_init(
    config: &ShimConfig,
    ns: &Namespaces,
    caps: &CapabilitySets,
    seccomp: Option<&SeccompFilter>,
    cgroup: &dyn ContainerCgroup,
    terminal: bool,
) -> Result<Cloned> {
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .context(|| "open /dev/null".into())?;
    let fifo = if config.start_now {
        None
    } else {
        let path = config.state_dir.join(FIFO_FILE);
        mkfifo(&path, Mode::from_bits_truncate(0o600))
            .context(|| format!("mkfifo {}", path.display()))?;
        Some(
            open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .context(|| "open exec fifo".into())?,
        )
    };
    let mut pipes = None;
    let mut stdin_writer = None;
    let stdio = if terminal {
        let console = match &config.stdio {
            StdioMode::ConsoleSocket(path) => Some(
                UnixStream::connect(path)
                    .context(|| format!("connect to console socket {}", path.display()))?,
            ),
            _ => None,
        };
        InitStdio::Terminal { console }
    } else {
        match config.stdio {
            StdioMode::Log => {
                let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).context(|| "pipe".into())?;
                let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).context(|| "pipe".into())?;
                pipes = Some((out_r, err_r));
                let stdin = if config.open_stdin {
                    let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).context(|| "pipe".into())?;
                    stdin_writer = Some(in_w);
                    Some(in_r)
                } else {
                    None
                };
                InitStdio::Pipes {
                    stdin,
                    stdout: out_w,
                    stderr: err_w,
                }
            }
            StdioMode::Null => {
                let (a, b, c) = (
                    null.try_clone().context(|| "dup".into())?,
                    null.try_clone().context(|| "dup".into())?,
                    null.try_clone().context(|| "dup".into())?,
                );
                drop(a);
                InitStdio::Pipes {
                    stdin: None,
                    stdout: b,
                    stderr: c,
                }
            }
            _ => InitStdio::Inherit,
        }
    };
    if let Some(fd) = &ns.join_pid {
        // Only our children enter it: exactly the init we are about to clone.
        setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).context(|| "join pid namespace".into())?;
    }
    let (mut ours, theirs) = Channel::pair()?;

    let join: Vec<(CloneFlags, OwnedFd)> = ns
        .join
        .iter()
        .map(|(f, fd)| fd.try_clone().map(|fd| (*f, fd)))
        .collect::<std::io::Result<_>>()
        .context(|| "dup namespace fd".into())?;
    match sys::clone_process(ns.clone_flags.bits() as u64)
        .context(|| "clone container init".into())?
    {
        CloneResult::Child => {
            drop(ours);
            init::run(
                theirs,
                InitContext {
                    spec: &config.spec,
                    rootfs: &config.rootfs,
                    join,
                    new_cgroup_ns: ns.new_cgroup,
                    new_uts_ns: ns.new_uts,
                    stdio,
                    seccomp,
                    caps,
                    fifo,
                    null,
                },
            )
        }
        CloneResult::Parent { pid, pidfd } => {
            drop(theirs);
            drop(stdio);
            drop(join);
            // The init does its mounts while we move it into the cgroup.
            let setup = init::release_and_await_ready(&mut ours, || {
                cgroup.add_process(pid).map_err(RuntimeError::from)
            });
            match setup {
                Ok(pty) => {
                    let (stdout, stderr) = match pipes {
                        Some((o, e)) => (Some(o), Some(e)),
                        None => (None, None),
                    };
                    Ok((pid, pidfd, stdout, stderr, pty, stdin_writer))
                }
                Err(e) => {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(pid), None);
                    if let Some(fifo_path) =
                        (!config.start_now).then(|| config.state_dir.join(FIFO_FILE))
                    {
                        let _ = fs::remove_file(fifo_path);
                    }
                    Err(e)
                }
            }
        }
    }
}

/// Persist the record (and spec, pid file) once init is ready.
fn record_created(config: &ShimConfig, started: &Started, detached: bool) -> Result<()> {
    let helper_pid = if detached {
        std::process::id() as i32
    } else {
        0
    };
    let record = ContainerRecord {
        format: RECORD_FORMAT,
        id: config.id.clone(),
        bundle: config.bundle.clone(),
        rootfs: config.rootfs.mount_point().to_path_buf(),
        pid: started.pid,
        pid_start_time: state::process_start_time(started.pid).unwrap_or(0),
        helper_pid,
        helper_start_time: state::process_start_time(helper_pid).unwrap_or(0),
        cgroup_path: config.cgroup_path.clone(),
        created: state::now_rfc3339(),
        annotations: config
            .spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    state::write_json_atomic(&config.state_dir.join(SPEC_FILE), &config.spec)?;
    state::write_json_atomic(&config.state_dir.join(RECORD_FILE), &record)?;
    if let Some(pid_file) = &config.pid_file {
        fs::write(pid_file, started.pid.to_string())
            .context(|| format!("write pid file {}", pid_file.display()))?;
    }
    Ok(())
}

/// Where the container's output goes: its log, attached clients, or our own stdio.
struct Sink {
    log: Option<LogWriter>,
    attach: Option<AttachServer>,
    /// Our stdio is the container's (a foreground run without a log).
    echo: bool,
}

impl Sink {
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        if let Some(log) = &mut self.log {
            let _ = log.write(stream, bytes);
        }
        if let Some(attach) = &mut self.attach {
            attach.broadcast(stream as u8 + 1, bytes);
        }
        if self.echo {
            let _ = match stream {
                Stream::Stdout => std::io::stdout().write_all(bytes),
                Stream::Stderr => std::io::stderr().write_all(bytes),
            };
            let _ = std::io::stdout().flush();
        }
    }
}

/// Pump output into the log, attached clients or the terminal until init exits; return how
/// it ended.
fn supervise(config: &Supervision, started: Started, signals: Option<&SignalFd>) -> ExitStatus {
    let mut sink = Sink {
        log: match config.stdio {
            StdioMode::Log => LogWriter::open(&config.state_dir.join(LOG_FILE), config.log).ok(),
            _ => None,
        },
        attach: started.attach,
        echo: config.stdio != StdioMode::Log,
    };
    // With an inherited stdio and a terminal, we proxy between our terminal and the pty.
    let proxy = started.pty.is_some() && config.stdio == StdioMode::Inherit;
    let raw_mode = if proxy { RawMode::enter() } else { None };
    let mut sources: Vec<(OwnedFd, Stream)> = Vec::new();
    if let Some(fd) = started.stdout {
        sources.push((fd, Stream::Stdout));
    }
    if let Some(fd) = started.stderr {
        sources.push((fd, Stream::Stderr));
    }
    let pty = started.pty;
    // Input for the container: a pipe (`-i`) or the pty (a terminal).
    let mut stdin_writer = started.stdin;
    let mut own_stdin_open = proxy;
    // A pipe delivers at most 64 KiB per read; 16 KiB keeps the helper small at one more
    // read per burst.
    let mut buf = vec![0u8; 16 * 1024];
    let mut pty_open = pty.is_some();
    loop {
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(started.pidfd.as_fd(), PollFlags::POLLIN)];
        for (fd, _) in &sources {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        let pty_index = fds.len();
        if let (Some(p), true) = (&pty, pty_open) {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        let stdin_index = fds.len();
        if own_stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let signal_index = fds.len();
        if let Some(s) = signals {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let attach_index = fds.len();
        let client_indexes: Vec<usize> = match &sink.attach {
            Some(attach) => {
                fds.push(PollFd::new(attach.listener_fd(), PollFlags::POLLIN));
                let clients = attach.client_fds();
                let indexes = clients.iter().map(|(i, _)| *i).collect();
                fds.extend(
                    clients
                        .into_iter()
                        .map(|(_, c)| PollFd::new(c, PollFlags::POLLIN)),
                );
                indexes
            }
            None => Vec::new(),
        };
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let ready = |i: usize| ready.get(i).copied().unwrap_or(false);
        let init_exited = ready(0);
        // New clients before any output is pumped: a client that connected before the
        // container started must see its first bytes.
        if let Some(attach) = &mut sink.attach
            && ready(attach_index)
        {
            attach.accept();
        }
        let mut closed = Vec::new();
        for (i, (fd, stream)) in sources.iter().enumerate() {
            if ready(i + 1) && !pump(fd.as_fd(), *stream, &mut sink, &mut buf) {
                closed.push(i);
            }
        }
        if pty_open
            && ready(pty_index)
            && let Some(p) = &pty
        {
            pty_open = pump(p.as_fd(), Stream::Stdout, &mut sink, &mut buf);
        }
        if own_stdin_open && ready(stdin_index) {
            own_stdin_open = match std::io::stdin().read(&mut buf) {
                Ok(0) | Err(_) => false,
                Ok(n) => pty
                    .as_ref()
                    .is_some_and(|p| write_all_fd(p.as_fd(), &buf[..n])),
            };
        }
        if let Some(s) = signals
            && ready(signal_index)
            && let Ok(Some(info)) = s.read_signal()
        {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGWINCH {
                if let Some(p) = &pty {
                    let _ = sys::copy_window_size(std::io::stdin().as_fd(), p.as_fd());
                }
            } else if let Ok(sig) = Signal::try_from(sig) {
                let _ = nix::sys::signal::kill(Pid::from_raw(started.pid), sig);
            }
        }
        if let Some(attach) = &mut sink.attach {
            // Newest client first: indexes shift as clients leave.
            for (slot, &i) in client_indexes.iter().enumerate().rev() {
                if !ready(attach_index + 1 + slot) {
                    continue;
                }
                for input in attach.read_client(i).unwrap_or_default() {
                    match input {
                        Input::Stdin(bytes) => {
                            let target = pty.as_ref().or(stdin_writer.as_ref());
                            if let Some(fd) = target
                                && !write_all_fd(fd.as_fd(), &bytes)
                            {
                                stdin_writer = None;
                            }
                        }
                        Input::Resize { rows, cols } => {
                            if let Some(p) = &pty {
                                let _ = sys::set_window_size(p.as_fd(), rows, cols);
                            }
                        }
                        // EOF for `-i` without a terminal: the pipe's write end goes.
                        Input::CloseStdin => stdin_writer = None,
                    }
                }
            }
        }
        for i in closed.into_iter().rev() {
            sources.remove(i);
        }
        if init_exited {
            break;
        }
    }
    let status = waitpid(Pid::from_raw(started.pid), None);
    // Drain what the container wrote just before it exited, without blocking: another process
    // outside a pid namespace could keep the pipe open forever.
    for (fd, stream) in &sources {
        let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        while pump(fd.as_fd(), *stream, &mut sink, &mut buf) {}
    }
    if let Some(p) = &pty {
        let _ = nix::fcntl::fcntl(p.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        while pump(p.as_fd(), Stream::Stdout, &mut sink, &mut buf) {}
    }
    if let Some(log) = &mut sink.log {
        let _ = log.flush();
    }
    drop(raw_mode);
    let (code, signal) = match status {
        Ok(WaitStatus::Exited(_, code)) => (code, None),
        Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let oom_killed = started.cgroup.oom_kills().map(|n| n > 0).unwrap_or(false);
    // The container is its init: once that is gone, so is everything it left behind.
    let _ = started.cgroup.kill_all();
    let exit = ExitStatus {
        code,
        signal,
        oom_killed,
        finished: state::now_rfc3339(),
    };
    // Attached clients see the end of the stream only once the exit is recorded.
    if let Some(attach) = &mut sink.attach {
        let _ = state::write_json_atomic(&config.state_dir.join(state::EXIT_FILE), &exit);
        attach.close_all();
    }
    exit
}

/// Move one read's worth of data from `fd` to the sink. False at EOF (or on an error such as
/// EIO from a pty whose slave side is gone, or EAGAIN when draining).
fn pump(fd: BorrowedFd<'_>, stream: Stream, sink: &mut Sink, buf: &mut [u8]) -> bool {
    match nix::unistd::read(fd, buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            sink.output(stream, &buf[..n]);
            true
        }
    }
}

fn write_all_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Our terminal in raw mode while proxying a container's pty; restored on drop.
pub struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin().as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[allow(dead_code)]
fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}
