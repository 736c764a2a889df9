//! `swarm daemon`.

use std::path::PathBuf;

use clap::Args;

use crate::daemon::{DEFAULT_DATA_DIR, DEFAULT_EXEC_ROOT, DaemonConfig};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Persistent state (cluster store, images, volumes).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Volatile state (container runtime state).
    #[arg(long, default_value = DEFAULT_EXEC_ROOT)]
    exec_root: PathBuf,
    /// The API socket.
    #[arg(long, default_value = crate::api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Address for cluster traffic (p2p), IP:PORT.
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// Address other nodes reach this one at, IP[:PORT].
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Per-registry TLS files, as Docker's certs.d: DIR/<host:port>/ca.crt (CAs to trust),
    /// client.cert + client.key (mutual TLS). A loopback registry with a directory here is
    /// spoken to over HTTPS.
    #[arg(
        long,
        env = "SWARM_CERTS_D",
        default_value = crate::image::registry::tls::DEFAULT_CERTS_DIR
    )]
    registry_certs_dir: PathBuf,
}

pub fn run(args: DaemonArgs) -> anyhow::Result<i32> {
    crate::daemon::run(DaemonConfig {
        data_dir: args.data_dir,
        exec_root: args.exec_root,
        socket: args.socket,
        listen_addr: args.listen_addr,
        advertise_addr: args.advertise_addr,
        registry_certs_dir: args.registry_certs_dir,
    })?;
    Ok(0)
}
