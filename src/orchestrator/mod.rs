//! The orchestrator and the scheduler: on the leader, turn what the services ask for into
//! tasks on nodes.
//!
//! ```text
//!            every 25 ms, if the applied log moved or something is due (leader only)
//!   run ─────────────────────────────────────────────────────────────────┐
//!    │ cluster.state()                                                    │
//!    ▼                                                                    │
//!   reconcile(&State, now, ids, &Defaults) ── pure ──▶ Plan { commands } │
//!    │   reconcile.rs  slots and nodes, retire / refill / trim / clean up │
//!    │   restart.rs    restart policy, backoff, max attempts in window    │
//!    │   scheduler.rs  filters, spread / binpack, preferences, errors     │
//!    ▼                                                                    │
//!   cluster.propose(UpdateTasks · CreateTasks · RemoveTasks) ── Raft ─────┘
//!                                 │ committed on every node
//!                                 ▼
//!                agents run the tasks assigned to their node and report status
//! ```
//!
//! Everything that decides is a plain function over [`State`]: a pass reads the state, the
//! time and an ID generator, and returns the commands to propose; it never waits, reads a
//! clock or touches the network, so the tests drive it with `cluster::state::apply` alone.
//! [`run`] is the thin shell the daemon starts on every manager: it only works while this
//! node leads, decides on a state that includes everything committed (a read barrier when
//! a pass has work), and proposes what the pass returns, in order. A pass over a state that needs
//! nothing returns nothing, and a command that fails stops the pass's remaining commands:
//! the next pass starts from the state as it then is (the commands are recomputed, never
//! replayed), so a lost leadership or a refused command never leaves a half-done decision
//! behind.
//!
//! Invariants a pass keeps (checked by the property test in `tests.rs`):
//! * at most one task per slot (per node, for a global service) is meant to run;
//! * never more tasks of a service on a node than its `Placement.MaxReplicas`;
//! * a node never gets more reservations than its capacity.
//!
//! Layering: uses `types` and `cluster` only.

pub mod reconcile;
pub mod restart;
pub mod scheduler;
pub mod sim;

#[cfg(test)]
mod tests;

use std::io;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub use reconcile::{Plan, reconcile};
pub use scheduler::{NoSuitableNode, Requirements, Scheduler};

use crate::cluster::Cluster;
use crate::cluster::tokens::{base36, random_bytes};
use crate::types::Timestamp;
use crate::types::service::Strategy;

/// What the orchestrator does when neither the service nor the cluster says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Placement strategy of services that name none, unless the swarm's `swarm.strategy`
    /// label names one.
    pub strategy: Strategy,
    /// Docker's default restart delay (5 s), when the policy has none.
    pub restart_delay: Duration,
    /// The cap of the exponential restart backoff (never lowers a policy's own delay).
    pub max_restart_delay: Duration,
    /// A task that ran at least this long before it ended resets the backoff.
    pub backoff_reset: Duration,
    /// Tasks kept per slot when the swarm spec has no `TaskHistoryRetentionLimit` (Docker: 5).
    pub task_history_retention: i64,
    /// At most so many tasks or changes in one command (one Raft entry).
    pub batch_size: usize,
    /// At most so many new tasks per pass; more are made by the following passes.
    pub max_new_tasks_per_pass: usize,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            strategy: Strategy::Spread,
            restart_delay: Duration::from_secs(5),
            max_restart_delay: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(60),
            task_history_retention: 5,
            batch_size: 1000,
            max_new_tasks_per_pass: 50_000,
        }
    }
}

/// The loop's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorConfig {
    pub defaults: Defaults,
    /// How often the loop looks for work (a pass runs only if the state moved or something
    /// is due).
    pub tick: Duration,
    /// A pass at least this often even when nothing seems to have changed.
    pub resync: Duration,
}

impl Default for OrchestratorConfig {
    fn default() -> OrchestratorConfig {
        OrchestratorConfig {
            defaults: Defaults::default(),
            // Cheap: a pass runs only when the applied log moved (or something is due), so
            // a short tick only makes the orchestrator act sooner on a new service or a lost
            // node.
            tick: Duration::from_millis(25),
            resync: Duration::from_secs(10),
        }
    }
}

/// Task IDs like Docker's: 25 lowercase base36 characters. One read of the OS's randomness
/// seeds a generator (SHA-256 of seed and counter), so a pass making 10,000 tasks does not
/// open `/dev/urandom` 10,000 times.
#[derive(Clone)]
pub struct TaskIds {
    seed: [u8; 32],
    counter: u64,
}

impl TaskIds {
    pub fn from_os() -> io::Result<TaskIds> {
        let bytes = random_bytes(32)?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes);
        Ok(TaskIds::seeded(seed))
    }

    /// A reproducible sequence (tests, simulations).
    pub fn seeded(seed: [u8; 32]) -> TaskIds {
        TaskIds { seed, counter: 0 }
    }

    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        let digest = Sha256::new()
            .chain_update(self.seed)
            .chain_update(self.counter.to_be_bytes())
            .finalize();
        base36(&digest, 25)
    }
}

/// The orchestrator loop: while this node leads, reconcile and propose; otherwise idle.
/// Returns when `stop` is cancelled. The daemon spawns it on managers.
pub async fn run(cluster: Cluster, config: OrchestratorConfig, stop: CancellationToken) {
    let mut tick = tokio::time::interval(config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The applied log index the last pass saw, and when there is time-driven work.
    let mut seen: Option<Option<u64>> = None;
    let mut wake_at: Option<Timestamp> = None;
    let mut last_pass = tokio::time::Instant::now();
    let mut ids = match TaskIds::from_os() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "orchestrator: cannot read /dev/urandom for task IDs; not starting");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !cluster.is_leader() {
            seen = None;
            continue;
        }
        let applied = cluster.metrics().last_applied.map(|l| l.index);
        let now = Timestamp::now();
        let due = wake_at.is_some_and(|w| w <= now) || last_pass.elapsed() >= config.resync;
        if seen == Some(applied) && !due {
            continue;
        }
        seen = Some(applied);
        last_pass = tokio::time::Instant::now();

        let state = cluster.state();
        let started = std::time::Instant::now();
        let mut plan = reconcile(&state, now, &mut || ids.next_id(), &config.defaults);
        wake_at = plan.wake_at;
        if plan.commands.is_empty() {
            continue;
        }
        // The local copy may lag what is committed (just after an election, a new leader
        // may not have applied its predecessor's last entries): before acting, decide again
        // on a state that includes everything committed, so a pass never repeats work that
        // is already in the log. Only passes with work pay for the read barrier.
        match cluster.read_linearizable().await {
            Ok(fresh) if fresh.index != state.index => {
                plan = reconcile(&fresh, now, &mut || ids.next_id(), &config.defaults);
                wake_at = plan.wake_at;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "orchestrator: no read barrier; retrying");
                seen = None;
                continue;
            }
        }
        tracing::debug!(
            commands = plan.commands.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "orchestrator pass"
        );
        for command in plan.commands {
            if stop.is_cancelled() || !cluster.is_leader() {
                break;
            }
            let name = command.name();
            match cluster.propose(command).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    // Computed from a state that has moved on; the next pass recomputes.
                    tracing::info!(command = name, error = %e, "orchestrator: command refused");
                    seen = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!(command = name, error = %e, "orchestrator: proposal failed");
                    seen = None;
                    break;
                }
            }
        }
    }
}
