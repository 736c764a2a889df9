//! `exec`: a new process inside a running container, with all of its namespaces, its cgroup,
//! and the capabilities, no_new_privs and seccomp profile the process spec asks for (by
//! default the container's own).
//!
//! The caller must be single-threaded (the CLI, or a helper the daemon spawns): joining a
//! mount namespace is refused to multi-threaded processes, and we fork.
//!
//! ```text
//!  exec caller: open /proc/<init>/ns/*, join the pid ns (only children enter it)
//!     └─clone─▶ child: wait Go ─ join ipc, uts, net, cgroup, mnt ─ terminal ─ become_process
//!  caller: put the child in the container's cgroup, Go, wait Ready, then wait for its exit
//! ```

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::channel::Channel;
use super::error::{Context, Result, RuntimeError};
use super::init::{self, HelperMessage, InitMessage};
use super::process::CapabilitySets;
use super::seccomp::SeccompFilter;
use super::sys::{self, CloneResult};
use super::{Runtime, cgroup};

/// How to run the exec'd process.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Send the pty master here instead of proxying it (needs `process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Return at once with the pid instead of waiting for the exit.
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    /// A user given by name (`user[:group]`), resolved in the container's own
    /// `/etc/passwd` once the process is in its mount namespace.
    pub user_name: Option<String>,
}

/// What an exec ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    Exited(i32),
    Detached(i32),
}

impl Runtime {
    /// Run `process` in container `id` from this (single-threaded) process.
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOptions) -> Result<ExecOutcome> {
        let (record, status) = self.exec_target(id)?;
        if !status.can_exec() {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: status.to_string(),
                op: "exec in it",
            });
        }
        let spec = self.spec(id)?;
        let caps = CapabilitySets::from_spec(process.capabilities().as_ref())?;
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => Some(SeccompFilter::compile_cached(
                profile,
                &self.root().join(super::SECCOMP_CACHE_DIR),
            )?),
            None => None,
        };
        let terminal = process.terminal() == Some(true);
        if opts.console_socket.is_some() && !terminal {
            return Err(RuntimeError::InvalidSpec(
                "--console-socket given but the process has no terminal".into(),
            ));
        }

        // Namespaces of the running init, in the order they are joined. The mount namespace
        // goes last: after it, host paths no longer resolve.
        let ns_list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let has = |t: LinuxNamespaceType| ns_list.iter().any(|n| n.typ() == t);
        let mut join: Vec<(CloneFlags, OwnedFd)> = Vec::new();
        let mut pid_ns = None;
        for (typ, name, flag) in [
            (LinuxNamespaceType::Ipc, "ipc", CloneFlags::CLONE_NEWIPC),
            (LinuxNamespaceType::Uts, "uts", CloneFlags::CLONE_NEWUTS),
            (LinuxNamespaceType::Network, "net", CloneFlags::CLONE_NEWNET),
            (LinuxNamespaceType::Pid, "pid", CloneFlags::CLONE_NEWPID),
            (
                LinuxNamespaceType::Cgroup,
                "cgroup",
                CloneFlags::CLONE_NEWCGROUP,
            ),
            (LinuxNamespaceType::Mount, "mnt", CloneFlags::CLONE_NEWNS),
        ] {
            if !has(typ) {
                continue;
            }
            let path = format!("/proc/{}/ns/{name}", record.pid);
            let fd = open(
                path.as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .context(|| format!("open {path}"))?;
            if flag == CloneFlags::CLONE_NEWPID {
                pid_ns = Some(fd);
            } else {
                join.push((flag, fd));
            }
        }
        // The container may have died while we opened its namespaces: the pid could be reused.
        if !super::state::process_alive(record.pid, record.pid_start_time) {
            return Err(RuntimeError::InvalidState {
                id: id.into(),
                status: "stopped".into(),
                op: "exec in it",
            });
        }
        if let Some(fd) = &pid_ns {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).context(|| "join pid namespace".into())?;
        }
        let console = match &opts.console_socket {
            Some(path) => Some(
                std::os::unix::net::UnixStream::connect(path)
                    .context(|| format!("connect to console socket {}", path.display()))?,
            ),
            None => None,
        };
        let cgroup = cgroup::open(&record.cgroup_path);
        let (mut ours, mut theirs) = Channel::pair()?;

        match sys::clone_process(0).context(|| "clone exec process".into())? {
            CloneResult::Child => {
                drop(ours);
                let result = (|| -> Result<init::Never> {
                    nix::sys::prctl::set_dumpable(false)
                        .context(|| "prctl(PR_SET_DUMPABLE)".into())?;
                    match theirs.recv::<HelperMessage>()? {
                        Some(HelperMessage::Go) => {}
                        None => return Err(RuntimeError::Remote("exec caller went away".into())),
                    }
                    for (flag, fd) in &join {
                        setns(fd.as_fd(), *flag).context(|| format!("join namespace {flag:?}"))?;
                    }
                    drop(join);
                    nix::unistd::setsid().context(|| "setsid".into())?;
                    if terminal {
                        init::setup_terminal(&mut theirs, console.as_ref())?;
                    }
                    // Joining the mount namespace made the container's root our root.
                    let named;
                    let process = match &opts.user_name {
                        Some(user) => {
                            named = super::process::with_named_user(process, user)?;
                            &named
                        }
                        None => process,
                    };
                    init::become_process(&mut theirs, process, &caps, seccomp.as_ref(), None)
                })();
                match result {
                    Ok(never) => match never {},
                    Err(e) => {
                        let _ = theirs.send(&InitMessage::Failed(e.to_string()));
                        std::process::exit(1)
                    }
                }
            }
            CloneResult::Parent { pid, pidfd } => {
                drop(theirs);
                drop(console);
                let setup = init::release_and_await_ready(&mut ours, || {
                    cgroup.add_process(pid).map_err(RuntimeError::from)
                });
                let pty = match setup {
                    Ok(pty) => pty,
                    Err(e) => {
                        let _ = nix::sys::signal::kill(
                            Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                        let _ = waitpid(Pid::from_raw(pid), None);
                        return Err(e);
                    }
                };
                if let Some(pid_file) = &opts.pid_file {
                    std::fs::write(pid_file, pid.to_string())
                        .context(|| format!("write pid file {}", pid_file.display()))?;
                }
                if opts.detach {
                    return Ok(ExecOutcome::Detached(pid));
                }
                if let Some(pty) = pty {
                    proxy_terminal(&pty, &pidfd);
                }
                let code = match waitpid(Pid::from_raw(pid), None) {
                    Ok(WaitStatus::Exited(_, code)) => code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                    _ => 255,
                };
                Ok(ExecOutcome::Exited(code))
            }
        }
    }
}

/// Copy between our stdio and the pty until the process exits.
fn proxy_terminal(pty: &OwnedFd, pidfd: &OwnedFd) {
    let _raw = super::shim::RawMode::enter();
    let _ = sys::copy_window_size(std::io::stdin().as_fd(), pty.as_fd());
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdin_open = true;
    loop {
        let stdin = std::io::stdin();
        let mut fds = vec![
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(pty.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            return;
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (exited, out, input) = (ready(0), ready(1), stdin_open && ready(2));
        if out {
            match nix::unistd::read(pty, &mut buf) {
                Ok(n) if n > 0 => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&buf[..n]);
                    let _ = std::io::stdout().flush();
                }
                _ => return,
            }
        }
        if input {
            match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(pty, &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if exited && !out {
            return;
        }
    }
}
