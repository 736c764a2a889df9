//! `swarm daemon`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cluster::config::{DEFAULT_SNAPSHOT_EVERY, DEFAULT_SNAPSHOT_KEEP_LOGS};
use crate::cluster::{ClusterTimeouts, RaftSettings};
use crate::daemon::swarm::SwarmSettings;
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
    /// Address for cluster traffic (p2p), IP:PORT; used once the node is in a swarm, unless
    /// `swarm init/join --listen-addr` names another.
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// Address other nodes reach this one at, IP[:PORT] (default: the listen address, or
    /// this host's only non-loopback address).
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Raft leader heartbeat, in milliseconds (also the timeout of one Raft RPC).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    raft_heartbeat_ms: u64,
    /// Election timeout, in milliseconds: a follower that hears no leader stands for
    /// election after a random 1–1.5 times this, on top of the old leader's lease (1.5 times
    /// this). Must exceed the Raft heartbeat.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(20..=600_000))]
    raft_election_ms: u64,
    /// Every node publishes a liveness heartbeat this often, in milliseconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    node_heartbeat_ms: u64,
    /// The leader marks a node Down after this long without its heartbeat, in milliseconds.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    node_down_after_ms: u64,
    /// A write (including waiting for a leader) gives up after this, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    propose_timeout_ms: u64,
    /// Build a Raft snapshot after this many applied entries. Hidden: tests set it low to
    /// reach the snapshot paths.
    #[arg(long, hide = true, default_value_t = DEFAULT_SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    raft_snapshot_every: u64,
    /// Log entries kept behind a snapshot. Hidden: tests set it to 0 so that a lagging
    /// follower is sent a snapshot.
    #[arg(long, hide = true, default_value_t = DEFAULT_SNAPSHOT_KEEP_LOGS)]
    raft_snapshot_keep_logs: u64,
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
    #[cfg(feature = "failpoints")]
    {
        let armed = crate::failpoints::arm_from_env()?;
        if !armed.is_empty() {
            tracing::warn!(points = ?armed, "crash points armed (FAILPOINTS)");
        }
    }
    let ms = Duration::from_millis;
    if args.raft_election_ms <= args.raft_heartbeat_ms {
        anyhow::bail!(
            "--raft-election-ms ({}) must be greater than --raft-heartbeat-ms ({})",
            args.raft_election_ms,
            args.raft_heartbeat_ms
        );
    }
    if args.node_down_after_ms <= args.node_heartbeat_ms {
        anyhow::bail!(
            "--node-down-after-ms ({}) must be greater than --node-heartbeat-ms ({})",
            args.node_down_after_ms,
            args.node_heartbeat_ms
        );
    }
    let swarm = SwarmSettings {
        listen_addr: args.listen_addr,
        advertise_addr: args.advertise_addr,
        raft: RaftSettings {
            heartbeat_interval: ms(args.raft_heartbeat_ms),
            election_timeout_min: ms(args.raft_election_ms),
            election_timeout_max: ms(args.raft_election_ms * 3 / 2),
            snapshot_logs_since_last: args.raft_snapshot_every,
            max_in_snapshot_log_to_keep: args.raft_snapshot_keep_logs,
        },
        timeouts: ClusterTimeouts {
            propose: ms(args.propose_timeout_ms),
            heartbeat_interval: ms(args.node_heartbeat_ms),
            down_after: ms(args.node_down_after_ms),
            ..Default::default()
        },
    };
    crate::daemon::run(DaemonConfig {
        data_dir: args.data_dir,
        exec_root: args.exec_root,
        socket: args.socket,
        swarm,
        registry_certs_dir: args.registry_certs_dir,
    })?;
    Ok(0)
}
