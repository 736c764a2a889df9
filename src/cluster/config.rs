//! Raft timing and log-compaction settings, in one place instead of literals in code.

use std::time::Duration;

use openraft::{ConfigError, SnapshotPolicy};

/// The name openraft puts in its logs and metrics.
pub const CLUSTER_NAME: &str = "swarm";

/// Timing suited to a small cluster on a LAN. A follower that hears nothing stands for
/// election after openraft's leader lease (`election_timeout_max`) plus a random election
/// timeout: 1.0–1.2 s by default, four to six missed heartbeats at least, which rides out a
/// GC-free process's hiccups. A crashed leader is usually replaced sooner: its followers see
/// its connections close (see `node::Cluster::on_peer_lost`). Busy or slow machines raise
/// these with the daemon's `--raft-*` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftSettings {
    pub heartbeat_interval: Duration,
    /// A follower waits a random time in [min, max) without hearing from a leader before it
    /// stands for election; the spread keeps two followers from splitting the vote forever.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging follower catches up
    /// from the log instead of receiving the whole snapshot.
    pub max_in_snapshot_log_to_keep: u64,
}

/// Default of [`RaftSettings::snapshot_logs_since_last`].
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1000;
/// Default of [`RaftSettings::max_in_snapshot_log_to_keep`].
pub const DEFAULT_SNAPSHOT_KEEP_LOGS: u64 = 1000;

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(600),
            snapshot_logs_since_last: DEFAULT_SNAPSHOT_EVERY,
            max_in_snapshot_log_to_keep: DEFAULT_SNAPSHOT_KEEP_LOGS,
        }
    }
}

impl RaftSettings {
    /// The openraft configuration, validated (timeouts must exceed the heartbeat, min < max).
    /// The error is boxed: openraft's is large and this is a once-per-process call.
    pub fn to_openraft(&self) -> Result<openraft::Config, Box<ConfigError>> {
        openraft::Config {
            cluster_name: CLUSTER_NAME.to_owned(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.max_in_snapshot_log_to_keep,
            ..Default::default()
        }
        .validate()
        .map_err(Box::new)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_reach_openraft() {
        let c = RaftSettings::default().to_openraft().unwrap();
        assert_eq!(c.cluster_name, "swarm");
        assert_eq!(c.heartbeat_interval, 100);
        assert_eq!((c.election_timeout_min, c.election_timeout_max), (400, 600));
        assert_eq!(c.snapshot_policy, SnapshotPolicy::LogsSinceLast(1000));
    }

    #[test]
    fn an_election_timeout_below_the_heartbeat_is_refused() {
        let s = RaftSettings {
            heartbeat_interval: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(100),
            election_timeout_max: Duration::from_millis(200),
            ..Default::default()
        };
        assert!(s.to_openraft().is_err());
    }
}
