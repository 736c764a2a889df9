//! The container's init: the child the helper clones into the new namespaces. It finishes the
//! isolation from the inside (namespaces joined by path, cgroup namespace, rootfs, devices,
//! hostname, terminal), becomes the spec's process (rlimits, user, capabilities,
//! no_new_privs, seccomp), reports ready, waits for `start`, and `execve`s.
//!
//! It never returns: any failure is reported to the helper as `InitMessage::Failed` and the
//! process exits. It is a fork-like clone of the single-threaded helper, so allocating and
//! running ordinary Rust code here is safe.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, execve, sethostname, setsid};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::channel::Channel;
use super::error::{Context, Result, RuntimeError};
use super::process::{self, CapabilitySets};
use super::rootfs::{self, RootfsSource};
use super::seccomp::SeccompFilter;
use super::sys;

/// Helper → init.
#[derive(Debug, Serialize, Deserialize)]
pub enum HelperMessage {
    /// The init is in the container's cgroup: go on.
    Go,
}

/// Init → helper.
#[derive(Debug, Serialize, Deserialize)]
pub enum InitMessage {
    /// Set up; waiting for start (or about to exec when started at once).
    Ready,
    Failed(String),
    /// The pty master follows as a file descriptor (terminal without a console socket).
    PtyMaster,
}

/// Where the container's stdio goes.
pub enum InitStdio {
    /// Keep fds 0, 1, 2 as they are (inherited from the helper).
    Inherit,
    /// These pipes for stdout and stderr; stdin from a pipe, or /dev/null.
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pty made inside the container; its master goes to this socket (an OCI console
    /// socket) or, when `None`, back to the helper over the channel.
    Terminal {
        console: Option<std::os::unix::net::UnixStream>,
    },
}

/// Everything the init needs, prepared by the helper before the clone.
pub struct InitContext<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a RootfsSource,
    /// Namespaces to join by path (pid excluded: the helper joins that one before cloning).
    pub join: Vec<(CloneFlags, OwnedFd)>,
    pub new_cgroup_ns: bool,
    pub new_uts_ns: bool,
    pub stdio: InitStdio,
    pub seccomp: Option<&'a SeccompFilter>,
    pub caps: &'a CapabilitySets,
    /// O_PATH fd of the exec fifo, `None` to exec at once.
    pub fifo: Option<OwnedFd>,
    pub null: OwnedFd,
}

/// The runtime's side of the setup handshake, shared by the helper and exec: move the child
/// into its cgroup (`join`), let it go on, then wait until it is ready, collecting the pty
/// master if it sends one. If the child fails meanwhile (during its mounts, say), its own
/// message is the error, not our failure to move a process that has already exited.
pub(super) fn release_and_await_ready(
    channel: &mut Channel,
    join: impl FnOnce() -> Result<()>,
) -> Result<Option<OwnedFd>> {
    let mut joined = join();
    if joined.is_ok() {
        joined = channel.send(&HelperMessage::Go);
    }
    let mut pty = None;
    loop {
        match channel.recv::<InitMessage>() {
            Ok(Some(InitMessage::Ready)) => return joined.map(|()| pty),
            Ok(Some(InitMessage::PtyMaster)) => pty = Some(channel.recv_fd()?),
            Ok(Some(InitMessage::Failed(e))) => return Err(RuntimeError::Remote(e)),
            Ok(None) | Err(_) if joined.is_err() => return joined.map(|()| pty),
            Ok(None) => {
                return Err(RuntimeError::Remote(
                    "the container process exited during setup".into(),
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Run the init. Never returns.
pub fn run(mut channel: Channel, ctx: InitContext<'_>) -> ! {
    match setup(&mut channel, ctx) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = channel.send(&InitMessage::Failed(e.to_string()));
            std::process::exit(1)
        }
    }
}

pub(super) enum Never {}

fn setup(channel: &mut Channel, ctx: InitContext<'_>) -> Result<Never> {
    // Until execve, nothing in this process may be opened through /proc/<pid> by someone else
    // (the container's own processes, via exec): it still runs our host binary.
    nix::sys::prctl::set_dumpable(false).context(|| "prctl(PR_SET_DUMPABLE)".into())?;

    for (flag, fd) in &ctx.join {
        setns(fd.as_fd(), *flag).context(|| format!("join namespace {flag:?}"))?;
    }
    setsid().context(|| "setsid".into())?;

    let spec = ctx.spec;
    let proc_spec = spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidSpec("no process".into()))?;
    if let Some(adj) = proc_spec.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .context(|| format!("set oom_score_adj {adj}"))?;
    }
    if let InitStdio::Pipes {
        stdin,
        stdout,
        stderr,
    } = &ctx.stdio
    {
        dup2_stdin(stdin.as_ref().unwrap_or(&ctx.null)).context(|| "stdin".into())?;
        dup2_stdout(stdout).context(|| "stdout".into())?;
        dup2_stderr(stderr).context(|| "stderr".into())?;
    }

    // Mounting overlaps with the helper moving us into the cgroup; we wait for it only where
    // it matters (see rootfs::prepare).
    let new_cgroup_ns = ctx.new_cgroup_ns;
    rootfs::prepare(spec, ctx.rootfs, || {
        match channel.recv::<HelperMessage>()? {
            Some(HelperMessage::Go) => {}
            None => return Err(RuntimeError::Remote("helper went away before start".into())),
        }
        if new_cgroup_ns {
            // After the helper moved us into the container's cgroup, so it becomes the root.
            unshare(CloneFlags::CLONE_NEWCGROUP).context(|| "unshare cgroup namespace".into())?;
        }
        Ok(())
    })?;
    rootfs::finish(spec)?;
    if ctx.new_uts_ns
        && let Some(hostname) = spec.hostname()
    {
        sethostname(hostname).context(|| format!("set hostname {hostname}"))?;
    }

    if let InitStdio::Terminal { console } = &ctx.stdio {
        setup_terminal(channel, console.as_ref())?;
    }
    // A user given by name is looked up in the container's files, now that / is its root.
    let named;
    let proc_spec = match spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(process::USER_ANNOTATION))
    {
        Some(user) => {
            named = process::with_named_user(proc_spec, user)?;
            &named
        }
        None => proc_spec,
    };

    become_process(channel, proc_spec, ctx.caps, ctx.seccomp, ctx.fifo.as_ref())
}

/// The last steps shared by a container's init and by `exec`: limits, identity, seccomp,
/// then wait for `start` (init only) and `execve`. Never returns on success.
pub(super) fn become_process(
    channel: &mut Channel,
    proc_spec: &oci_spec::runtime::Process,
    caps: &CapabilitySets,
    seccomp: Option<&SeccompFilter>,
    fifo: Option<&OwnedFd>,
) -> Result<Never> {
    process::apply_rlimits(proc_spec)?;
    let no_new_privs = proc_spec.no_new_privileges() == Some(true);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before dropping caps.
    if !no_new_privs && let Some(filter) = seccomp {
        filter.load()?;
    }
    let cwd = proc_spec.cwd();
    std::env::set_current_dir(cwd).context(|| format!("chdir to cwd {}", cwd.display()))?;
    process::switch_user_and_capabilities(proc_spec, caps)?;
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().context(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    }
    process::apply_umask(proc_spec);

    let args = proc_spec.args().clone().unwrap_or_default();
    let env = proc_spec.env().clone().unwrap_or_default();
    let program = process::find_executable(args.first().map(String::as_str).unwrap_or(""), &env)?;
    let c_program = process::c_strings(&[program.display().to_string()], "program")?;
    let c_args = process::c_strings(&args, "process.args")?;
    let c_env = process::c_strings(&env, "process.env")?;

    channel.send(&InitMessage::Ready)?;
    if let Some(fifo) = fifo {
        wait_for_start(fifo)?;
    }
    // Nothing the runtime opened may reach the container process.
    sys::cloexec_from(3).context(|| "close_range".into())?;
    if no_new_privs && let Some(filter) = seccomp {
        filter.load()?;
    }
    sys::reset_signals_for_exec();
    let err = match execve(&c_program[0], &c_args, &c_env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    // Ready was already sent: the only way left to tell is the process's stderr.
    let _ = writeln!(
        std::io::stderr(),
        "swarm: exec {}: {err}",
        program.display()
    );
    std::process::exit(if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    })
}

/// Block until `start` opens the fifo for reading, then tell it we are going.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let mut f = OpenOptions::new()
        .write(true)
        .open(&path)
        .context(|| "open exec fifo".into())?;
    f.write_all(b"0").context(|| "write exec fifo".into())
}

/// Make a pty inside the container (so it lives in the container's own devpts), bind its
/// slave on /dev/console, make it our controlling terminal and stdio, and send the master out.
pub(super) fn setup_terminal(
    channel: &mut Channel,
    console: Option<&std::os::unix::net::UnixStream>,
) -> Result<()> {
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| "open /dev/ptmx".into())?;
    let number = sys::unlock_pty(master.as_fd()).context(|| "unlock pty".into())?;
    let slave_path = format!("/dev/pts/{number}");
    let slave = open(
        Path::new(&slave_path),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .context(|| format!("open {slave_path}"))?;
    if !Path::new("/dev/console").exists() {
        std::fs::File::create("/dev/console").context(|| "create /dev/console".into())?;
    }
    nix::mount::mount(
        Some(Path::new(&slave_path)),
        "/dev/console",
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(|| "bind the pty on /dev/console".into())?;
    match console {
        Some(socket) => Channel::new(socket.try_clone().context(|| "console socket".into())?)
            .send_fd(&master)?,
        None => {
            channel.send(&InitMessage::PtyMaster)?;
            channel.send_fd(&master)?
        }
    }
    drop(master);
    sys::set_controlling_terminal(slave.as_fd()).context(|| "TIOCSCTTY".into())?;
    dup2_stdin(&slave).context(|| "stdin".into())?;
    dup2_stdout(&slave).context(|| "stdout".into())?;
    dup2_stderr(&slave).context(|| "stderr".into())?;
    Ok(())
}
