//! The command line: one file per command group. `main` parses, dispatches, and turns errors
//! into a message on stderr and an exit code.

pub mod runtime;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "swarm",
    version,
    about = "A peer-to-peer container orchestrator in one binary"
)]
pub struct Cli {
    /// Log level for swarm's own diagnostics (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "SWARM_LOG")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The OCI container runtime (runc's command line).
    Runtime(Box<runtime::RuntimeArgs>),
    /// Internal: the per-container helper. Started by the runtime, not by people.
    #[command(name = "__shim", hide = true)]
    Shim { socket: std::path::PathBuf },
}

/// Run the CLI and return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing(&cli.log_level);
    match cli.command {
        Command::Shim { socket } => crate::runtime::shim::helper_main(&socket),
        Command::Runtime(args) => match runtime::run(*args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("swarm: {e:#}");
                1
            }
        },
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
