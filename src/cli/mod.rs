//! The command line: one file per command group. `main` parses, dispatches, and turns errors
//! into a message on stderr and an exit code.

pub mod container;
pub mod credentials;
pub mod daemon;
pub mod image;
pub mod login;
pub mod network;
pub mod node;
pub mod runtime;
pub mod service;
pub mod service_logs;
pub mod swarm;
pub mod system;
pub mod volume;

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
    /// The daemon's socket: unix:///path (else $SWARM_HOST, else unix:///run/swarm/swarm.sock).
    #[arg(short = 'H', long, global = true)]
    pub host: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (one per host).
    Daemon(daemon::DaemonArgs),
    /// Run a command in a new local container (like `docker run`).
    Run(container::RunArgs),
    /// Run a command in a running container.
    Exec(container::ExecArgs),
    /// List local containers.
    Ps(container::PsArgs),
    /// Print a container's logs.
    Logs(container::LogsArgs),
    /// Start stopped or created containers.
    Start(container::StartArgs),
    /// Stop containers: SIGTERM (or the container's stop signal), a grace period, SIGKILL.
    Stop(container::StopArgs),
    /// Remove containers.
    Rm(container::RmArgs),
    /// Show containers in detail (JSON).
    Inspect(container::InspectArgs),
    /// Manage images: load, save, import, ls, inspect, rm, tag, prune.
    Image(image::ImageArgs),
    /// Create a swarm with this node as its first manager.
    Init(swarm::InitArgs),
    /// Join a swarm as a worker or a manager.
    Join(swarm::JoinArgs),
    /// Show (or rotate) the join token of a role.
    #[command(name = "join-token")]
    JoinToken(swarm::JoinTokenArgs),
    /// Leave the swarm.
    Leave(swarm::LeaveArgs),
    /// Manage the swarm's nodes: ls, inspect, update, promote, demote, rm.
    Node(node::NodeArgs),
    /// Manage the swarm's networks: create, ls, inspect, rm, prune.
    Network(network::NetworkArgs),
    /// Manage services: create, ls, ps, inspect, scale, rm.
    Service(service::ServiceArgs),
    /// Manage this node's named volumes: create, ls, inspect, rm, prune.
    Volume(volume::VolumeArgs),
    /// Log in to a registry: the daemon checks the credentials, the CLI keeps them.
    Login(login::LoginArgs),
    /// Log out from a registry (forget its credentials).
    Logout(login::LogoutArgs),
    /// Show the client's and the daemon's versions.
    Version,
    /// Show system-wide information from the daemon.
    Info,
    /// The OCI container runtime (runc's command line).
    Runtime(Box<runtime::RuntimeArgs>),
    /// Internal: the per-container helper. Started by the runtime, not by people.
    #[command(name = "__shim", hide = true)]
    Shim { socket: std::path::PathBuf },
    /// Internal: run one process in a running container with this process's stdio (the
    /// daemon spawns it, because it must not fork itself).
    #[command(name = "__exec", hide = true)]
    ExecHelper {
        #[arg(long)]
        root: std::path::PathBuf,
        #[arg(long)]
        id: String,
        /// The OCI process, as JSON.
        #[arg(long)]
        process: String,
        /// A user name to resolve in the container.
        #[arg(long)]
        user_name: Option<String>,
    },
}

/// Run the CLI and return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing(&cli.log_level);
    match cli.command {
        Command::Shim { socket } => crate::runtime::shim::helper_main(&socket),
        Command::ExecHelper {
            root,
            id,
            process,
            user_name,
        } => exit_code(exec_helper(&root, &id, &process, user_name)),
        Command::Runtime(args) => exit_code(runtime::run(*args)),
        Command::Daemon(args) => exit_code(daemon::run(args)),
        command => exit_code(with_client(cli.host.as_deref(), command)),
    }
}

/// `swarm __exec`: single-threaded, so it may fork into the container's namespaces.
fn exec_helper(
    root: &std::path::Path,
    id: &str,
    process: &str,
    user_name: Option<String>,
) -> anyhow::Result<i32> {
    let process: oci_spec::runtime::Process = serde_json::from_str(process)?;
    let runtime = crate::runtime::Runtime::new(root)?;
    let options = crate::runtime::exec::ExecOptions {
        user_name,
        ..Default::default()
    };
    match runtime.exec(id, &process, &options)? {
        crate::runtime::exec::ExecOutcome::Exited(code) => Ok(code),
        crate::runtime::exec::ExecOutcome::Detached(_) => Ok(0),
    }
}

fn exit_code(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swarm: {e:#}");
            1
        }
    }
}

/// Commands that talk to the daemon: a small single-threaded async runtime for the client.
fn with_client(host: Option<&str>, command: Command) -> anyhow::Result<i32> {
    let socket = crate::api::client::resolve_host(host)?;
    let client = crate::api::client::ApiClient::new(socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Version => system::version(&client).await,
            Command::Run(args) => container::run(&client, args).await,
            Command::Image(args) => image::run(&client, args).await,
            Command::Ps(args) => container::ps(&client, args).await,
            Command::Exec(args) => container::exec(&client, args).await,
            Command::Logs(args) => container::logs(&client, args).await,
            Command::Start(args) => container::start(&client, args).await,
            Command::Stop(args) => container::stop(&client, args).await,
            Command::Rm(args) => container::rm(&client, args).await,
            Command::Inspect(args) => container::inspect(&client, args).await,
            Command::Info => system::info(&client).await,
            Command::Init(args) => swarm::init(&client, args).await,
            Command::Join(args) => swarm::join(&client, args).await,
            Command::JoinToken(args) => swarm::join_token(&client, args).await,
            Command::Leave(args) => swarm::leave(&client, args).await,
            Command::Node(args) => node::run(&client, args).await,
            Command::Network(args) => network::run(&client, args).await,
            Command::Service(args) => service::run(&client, args).await,
            Command::Volume(args) => volume::run(&client, args).await,
            Command::Login(args) => login::login(&client, args).await,
            Command::Logout(args) => login::logout(args).await,
            Command::Runtime(_)
            | Command::Daemon(_)
            | Command::Shim { .. }
            | Command::ExecHelper { .. } => {
                unreachable!("handled without a client")
            }
        }
    })
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
