//! `swarm runtime …`: the OCI runtime command line, with runc's verbs, flags and `state`
//! JSON, so standard OCI tooling can drive our runtime. A few extensions (`--stdio`, `logs`,
//! `stats`, `stop`) serve people and the demo.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use nix::sys::signal::Signal;
use oci_spec::runtime::Process;

use crate::runtime::exec::{ExecOptions, ExecOutcome};
use crate::runtime::spec::{DefaultSpecOptions, default_spec};
use crate::runtime::{CreateOptions, DEFAULT_ROOT, Runtime, StdioMode};

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Directory for the state of containers.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Accepted for runc compatibility (containerd passes them); diagnostics go to stderr.
    #[arg(long, global = true, hide = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, hide = true)]
    log_format: Option<String>,
    #[arg(long, global = true, hide = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: RuntimeCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StdioArg {
    /// The container shares this command's stdin/stdout/stderr (runc's pass-through).
    Inherit,
    /// stdout/stderr go to the container's JSON log (see `swarm runtime logs`).
    Log,
    /// /dev/null.
    Null,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Path to the bundle (config.json + rootfs).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master of a container with process.terminal.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Write the container's init pid here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Where the container's stdio goes (extension).
    #[arg(long, value_enum, default_value = "inherit")]
    stdio: StdioArg,
    /// Accepted for runc compatibility; we always pivot_root.
    #[arg(long, hide = true)]
    no_pivot: bool,
    #[arg(long, hide = true)]
    no_new_keyring: bool,
    id: String,
}

#[derive(Debug, Subcommand)]
enum RuntimeCommand {
    /// Write a default config.json (Docker's defaults) into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Accepted for runc compatibility; not supported.
        #[arg(long, hide = true)]
        rootless: bool,
    },
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init, or with --all to every process.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container (with --force even while running).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; without --detach, wait for it, delete it and exit with
    /// its exit code.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a new process inside a running container.
    Exec {
        /// A process.json (OCI process object) instead of the command line.
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Extra environment (KEY=value), may repeat.
        #[arg(short, long)]
        env: Vec<String>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// uid[:gid]
        #[arg(short, long)]
        user: Option<String>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stop a container: signal, grace period, then SIGKILL of its whole cgroup (extension).
    Stop {
        #[arg(short, long, default_value = "10")]
        time: u64,
        #[arg(short, long, default_value = "SIGTERM")]
        signal: String,
        id: String,
    },
    /// Print a container's log (containers created with --stdio log) (extension).
    Logs { id: String },
    /// Print a container's resource usage as JSON (extension).
    Stats { id: String },
}

pub fn run(args: RuntimeArgs) -> Result<i32> {
    let rt = Runtime::new(&args.root)?;
    match args.command {
        RuntimeCommand::Spec { bundle, rootless } => {
            if rootless {
                bail!("rootless containers are not supported");
            }
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists: remove it first", path.display());
            }
            let spec = default_spec(&DefaultSpecOptions::default());
            std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
        RuntimeCommand::Create(create) => {
            rt.create(create_options(create, false)?)?;
            Ok(0)
        }
        RuntimeCommand::Start { id } => {
            rt.start(&id)?;
            Ok(0)
        }
        RuntimeCommand::State { id } => {
            println!("{}", serde_json::to_string_pretty(&rt.state(&id)?)?);
            Ok(0)
        }
        RuntimeCommand::Kill { all, id, signal } => {
            rt.kill(&id, parse_signal(&signal)?, all)?;
            Ok(0)
        }
        RuntimeCommand::Delete { force, id } => {
            rt.delete(&id, force)?;
            Ok(0)
        }
        RuntimeCommand::Run { create, detach } => {
            if detach {
                rt.create(create_options(create, true)?)?;
                return Ok(0);
            }
            let exit = rt.run_foreground(create_options(create, true)?)?;
            Ok(exit.code)
        }
        RuntimeCommand::List { format, quiet } => {
            let list = rt.list()?;
            if quiet {
                for c in &list {
                    println!("{}", c.id);
                }
            } else if format == "json" {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<24} {:<8} {:<10} {:<40} CREATED",
                    "ID", "PID", "STATUS", "BUNDLE"
                );
                for c in &list {
                    println!(
                        "{:<24} {:<8} {:<10} {:<40} {}",
                        c.id,
                        c.pid,
                        c.status,
                        c.bundle.display(),
                        c.created
                    );
                }
            }
            Ok(0)
        }
        RuntimeCommand::Exec {
            process,
            tty,
            detach,
            console_socket,
            pid_file,
            env,
            cwd,
            user,
            id,
            command,
        } => {
            let process = match process {
                Some(path) => {
                    let bytes =
                        std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                    serde_json::from_slice::<Process>(&bytes)
                        .with_context(|| format!("invalid process in {}", path.display()))?
                }
                None => {
                    if command.is_empty() {
                        bail!("exec needs a command or --process");
                    }
                    let base = rt
                        .spec(&id)?
                        .process()
                        .clone()
                        .context("the container's spec has no process")?;
                    exec_process(base, command, tty, env, cwd, user)?
                }
            };
            let opts = ExecOptions {
                console_socket,
                detach,
                pid_file,
                user_name: None,
            };
            match rt.exec(&id, &process, &opts)? {
                ExecOutcome::Exited(code) => Ok(code),
                ExecOutcome::Detached(pid) => {
                    println!("{pid}");
                    Ok(0)
                }
            }
        }
        RuntimeCommand::Stop { time, signal, id } => {
            let exit = rt.stop(&id, parse_signal(&signal)?, Duration::from_secs(time))?;
            println!("{}", serde_json::to_string(&exit)?);
            Ok(0)
        }
        RuntimeCommand::Logs { id } => {
            for entry in rt.logs(&id)? {
                match entry.stream {
                    crate::runtime::logs::Stream::Stdout => print!("{}", entry.log),
                    crate::runtime::logs::Stream::Stderr => eprint!("{}", entry.log),
                }
            }
            Ok(0)
        }
        RuntimeCommand::Stats { id } => {
            println!("{}", serde_json::to_string_pretty(&rt.stats(&id)?)?);
            Ok(0)
        }
    }
}

fn create_options(args: CreateArgs, start_now: bool) -> Result<CreateOptions> {
    let mut opts = CreateOptions::new(args.id, args.bundle);
    opts.pid_file = args
        .pid_file
        .map(|p| std::path::absolute(&p))
        .transpose()
        .context("pid file path")?;
    opts.start_now = start_now;
    opts.stdio = match (args.console_socket, args.stdio) {
        (Some(socket), _) => StdioMode::ConsoleSocket(socket),
        (None, StdioArg::Inherit) => StdioMode::Inherit,
        (None, StdioArg::Log) => StdioMode::Log,
        (None, StdioArg::Null) => StdioMode::Null,
    };
    Ok(opts)
}

/// The exec'd process: the container's own process spec (caps, env, user, rlimits, no_new_privs)
/// with the command line's overrides.
fn exec_process(
    mut base: Process,
    command: Vec<String>,
    tty: bool,
    env: Vec<String>,
    cwd: Option<PathBuf>,
    user: Option<String>,
) -> Result<Process> {
    base.set_args(Some(command));
    base.set_terminal(Some(tty));
    if !env.is_empty() {
        let mut all = base.env().clone().unwrap_or_default();
        all.extend(env);
        base.set_env(Some(all));
    }
    if let Some(cwd) = cwd {
        base.set_cwd(cwd);
    }
    if let Some(user) = user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u.parse::<u32>()?, g.parse::<u32>()?),
            None => (user.parse::<u32>().context("--user takes uid[:gid]")?, 0),
        };
        let mut u = base.user().clone();
        u.set_uid(uid);
        u.set_gid(gid);
        base.set_user(u);
    }
    Ok(base)
}

/// `TERM`, `SIGTERM` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("unknown signal {text}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .with_context(|| format!("unknown signal {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
