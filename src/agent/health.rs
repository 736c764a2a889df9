//! Health checks: Docker's `HEALTHCHECK` for the running containers of this node (task
//! containers and local ones alike), run by the daemon like dockerd runs them.
//!
//! ```text
//!  HealthMonitor::run (one per daemon), every scan:
//!    Containers::health_targets() ── running containers whose check is on ──┐
//!      new ─▶ spawn watch(container)          gone or stopped ─▶ cancel its watch
//!  watch (one per container, so probes never pile up):
//!    sleep interval ─▶ probe (`swarm __exec`, killed at the timeout) ─▶ Tracker::record (pure)
//!                   ─▶ Containers::set_health (State.Health of inspect, "(healthy)" of ps)
//!  the task runner (tasks.rs) reads the statuses: a task stays `starting` until its
//!  container is healthy; an unhealthy one is stopped and its task failed.
//! ```
//!
//! The probe runs through the exec helper because the daemon is multi-threaded and must not
//! fork into a container's namespaces itself (see runtime::exec). Its stdout and stderr go
//! to one pipe, as Docker mixes them, and only the first 4096 bytes are kept.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use oci_spec::runtime::Process;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::containers::Containers;
use crate::types::Timestamp;
use crate::types::container::{Health, HealthConfig, HealthStatus, HealthcheckResult};

/// Docker's defaults for a health check that leaves them at 0.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u64 = 3;
/// Docker keeps the last 5 probes, and the first 4096 bytes of each one's output.
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// A health check ready to run: the command and Docker's timing, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What to run in the container (`CMD-SHELL` became `/bin/sh -c …`).
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u64,
}

fn nanos_or(n: i64, default: Duration) -> Duration {
    if n > 0 {
        Duration::from_nanos(n as u64)
    } else {
        default
    }
}

impl Probe {
    /// The probe a (merged) config asks for: `None` without a test or with `["NONE"]`.
    pub fn from_config(config: Option<&HealthConfig>) -> Result<Option<Probe>, String> {
        let Some(config) = config else {
            return Ok(None);
        };
        config.validate()?;
        let command = match config.test.first().map(String::as_str) {
            None | Some("NONE") => return Ok(None),
            Some("CMD") => config.test[1..].to_vec(),
            // Docker joins what follows CMD-SHELL with blanks.
            _ => vec!["/bin/sh".into(), "-c".into(), config.test[1..].join(" ")],
        };
        Ok(Some(Probe {
            command,
            interval: nanos_or(config.interval, DEFAULT_INTERVAL),
            timeout: nanos_or(config.timeout, DEFAULT_TIMEOUT),
            start_period: nanos_or(config.start_period, Duration::ZERO),
            start_interval: nanos_or(config.start_interval, DEFAULT_START_INTERVAL),
            retries: if config.retries > 0 {
                config.retries as u64
            } else {
                DEFAULT_RETRIES
            },
        }))
    }
}

/// Docker's merge of a container's health check with its image's: what the container leaves
/// empty (no test, a 0 duration, 0 retries) comes from the image. `["NONE"]` is a test, so
/// it turns the image's check off.
pub fn merge(user: Option<HealthConfig>, image: Option<&HealthConfig>) -> Option<HealthConfig> {
    let (mut user, image) = match (user, image) {
        (None, image) => return image.cloned(),
        (Some(user), None) => return Some(user),
        (Some(user), Some(image)) => (user, image),
    };
    if user.test.is_empty() {
        user.test = image.test.clone();
    }
    for (mine, theirs) in [
        (&mut user.interval, image.interval),
        (&mut user.timeout, image.timeout),
        (&mut user.start_period, image.start_period),
        (&mut user.start_interval, image.start_interval),
        (&mut user.retries, image.retries),
    ] {
        if *mine == 0 {
            *mine = theirs;
        }
    }
    Some(user)
}

/// The pure state machine of one container's health (moby's `handleProbeResult`).
///
/// ```text
///  starting ──probe ok──▶ healthy ──`retries` failures in a row──▶ unhealthy
///     │                      ▲                                         │
///     └─`retries` failures───┼──────────────▶ unhealthy ──probe ok─────┘
///       (those in the start period, before any success, do not count)
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracker {
    health: Health,
}

impl Tracker {
    /// A container whose check has not passed yet.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Carry on from what was recorded before (a watch restarted on the same run).
    pub fn resume(health: Health) -> Tracker {
        Tracker { health }
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// How long to wait before the next probe, `since_start` after the container started:
    /// the start interval while still starting within the start period, else the interval.
    pub fn next_interval(&self, probe: &Probe, since_start: Duration) -> Duration {
        if self.health.status == HealthStatus::Starting && since_start < probe.start_period {
            probe.start_interval
        } else {
            probe.interval
        }
    }

    /// Take one probe's result; `since_start` is when it began, counted from the container's
    /// start. Returns the new status when it changed.
    pub fn record(
        &mut self,
        probe: &Probe,
        mut result: HealthcheckResult,
        since_start: Duration,
    ) -> Option<HealthStatus> {
        let before = self.health.status;
        if result.exit_code == 0 {
            self.health.failing_streak = 0;
            self.health.status = HealthStatus::Healthy;
        } else {
            // Failures while still starting within the start period are logged, not counted.
            let grace =
                self.health.status == HealthStatus::Starting && since_start < probe.start_period;
            if !grace {
                self.health.failing_streak += 1;
                if self.health.failing_streak >= probe.retries {
                    self.health.status = HealthStatus::Unhealthy;
                }
            }
        }
        if result.output.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !result.output.is_char_boundary(cut) {
                cut -= 1;
            }
            result.output.truncate(cut);
        }
        self.health.log.push(result);
        let extra = self.health.log.len().saturating_sub(MAX_LOG);
        self.health.log.drain(..extra);
        (self.health.status != before).then_some(self.health.status)
    }
}

/// Go's `time.Duration` text for the durations health checks use (`30s`, `500ms`, `1m30s`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}µs", d.as_micros());
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (m, rest) = (ms / 60_000, ms % 60_000);
    let secs = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        let fraction = format!("{:03}", rest % 1000);
        format!("{}.{}s", rest / 1000, fraction.trim_end_matches('0'))
    };
    if m == 0 { secs } else { format!("{m}m{secs}") }
}

/// A running container whose health check is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTarget {
    pub id: String,
    pub probe: Probe,
    /// When the container started (its start period counts from here).
    pub started_at: Timestamp,
}

/// The monitor's own timing; Docker's health-check timing is each container's.
#[derive(Debug, Clone)]
pub struct HealthTiming {
    /// How often the monitor looks for containers to start or stop watching.
    pub scan: Duration,
    /// How long a probe's output may still arrive after the probe exited.
    pub output_drain: Duration,
    /// How long the exec helper of a killed probe gets to exit before it is killed too.
    pub kill_grace: Duration,
}

impl Default for HealthTiming {
    fn default() -> Self {
        HealthTiming {
            scan: Duration::from_millis(250),
            output_drain: Duration::from_secs(1),
            kill_grace: Duration::from_secs(2),
        }
    }
}

/// Runs the health checks of this node's containers.
pub struct HealthMonitor {
    pub containers: Arc<Containers>,
    /// This binary: the exec helper (`swarm __exec`).
    pub helper: PathBuf,
    pub timing: HealthTiming,
}

impl HealthMonitor {
    /// Until `stop`: watch every running container with a health check, one watch each.
    pub async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        // Container → (generation, its watch's token); a finished watch only removes its own
        // entry, never a newer watch's of the same container.
        let mut watches: HashMap<String, (u64, CancellationToken)> = HashMap::new();
        let mut running: JoinSet<(String, u64)> = JoinSet::new();
        let mut generation = 0u64;
        let mut scan = tokio::time::interval(this.timing.scan);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = scan.tick() => {}
            }
            while let Some(done) = running.try_join_next() {
                if let Ok((id, g)) = done
                    && watches.get(&id).is_some_and(|(current, _)| *current == g)
                {
                    watches.remove(&id);
                }
            }
            let containers = this.containers.clone();
            let Ok(targets) =
                tokio::task::spawn_blocking(move || containers.health_targets()).await
            else {
                continue;
            };
            watches.retain(|id, (_, token)| {
                let live = targets.iter().any(|t| &t.id == id);
                if !live {
                    token.cancel();
                }
                live
            });
            for target in targets {
                if watches.contains_key(&target.id) {
                    continue;
                }
                generation += 1;
                let token = stop.child_token();
                watches.insert(target.id.clone(), (generation, token.clone()));
                let (this, g) = (this.clone(), generation);
                running.spawn(async move {
                    let id = target.id.clone();
                    this.watch(target, token).await;
                    (id, g)
                });
            }
        }
        // The watches' tokens are children of `stop`: they end on their own, promptly
        // (an in-flight probe is killed).
        while running.join_next().await.is_some() {}
    }

    /// Probe one container every interval until `stop` or until it no longer runs.
    async fn watch(&self, target: HealthTarget, stop: CancellationToken) {
        let id = target.id.clone();
        let containers = self.containers.clone();
        let found = tokio::task::spawn_blocking(move || {
            let process = containers.exec_process(&id)?;
            Ok::<_, super::containers::ContainerError>((process, containers.health(&id)))
        })
        .await;
        let ((process, user), earlier) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(container = %target.id, error = %e, "cannot health-check");
                return;
            }
            Err(_) => return,
        };
        let mut tracker = earlier.map(Tracker::resume).unwrap_or_default();
        self.containers
            .set_health(&target.id, tracker.health().clone());
        let since_start = |t: Timestamp| {
            Duration::from_nanos(
                t.as_nanos()
                    .saturating_sub(target.started_at.as_nanos())
                    .max(0) as u64,
            )
        };
        loop {
            let wait = tracker.next_interval(&target.probe, since_start(Timestamp::now()));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let containers = self.containers.clone();
            let id = target.id.clone();
            let alive = tokio::task::spawn_blocking(move || containers.is_running(&id)).await;
            if !matches!(alive, Ok(true)) {
                return;
            }
            let start = Timestamp::now();
            let Some((exit_code, output)) = self
                .probe(&target.id, &process, user.as_deref(), &target.probe, &stop)
                .await
            else {
                return;
            };
            let result = HealthcheckResult {
                start,
                end: Timestamp::now(),
                exit_code,
                output,
            };
            if let Some(status) = tracker.record(&target.probe, result, since_start(start)) {
                tracing::info!(container = %target.id, status = status.as_str(), "health status");
            }
            self.containers
                .set_health(&target.id, tracker.health().clone());
        }
    }

    /// Run the probe once: its exit code (-1 when it could not run or timed out) and
    /// output; `None` when `stop` came first (the probe was killed).
    async fn probe(
        &self,
        container: &str,
        process: &Process,
        user: Option<&str>,
        probe: &Probe,
        stop: &CancellationToken,
    ) -> Option<(i64, String)> {
        let mut process = process.clone();
        process.set_args(Some(probe.command.clone()));
        process.set_terminal(Some(false));
        let encoded = match serde_json::to_string(&process) {
            Ok(p) => p,
            Err(e) => return Some((-1, format!("cannot encode the probe's process: {e}"))),
        };
        // One pipe for stdout and stderr; close-on-exec so that no other child the daemon
        // spawns meanwhile keeps its write end (and our read) open.
        let (read, write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return Some((-1, format!("cannot make the probe's pipe: {e}"))),
        };
        let write2 = match write.try_clone() {
            Ok(w) => w,
            Err(e) => return Some((-1, format!("cannot make the probe's pipe: {e}"))),
        };
        let mut command = tokio::process::Command::new(&self.helper);
        command
            .arg("__exec")
            .arg("--root")
            .arg(self.containers.runtime().root())
            .arg("--id")
            .arg(container)
            .arg("--process")
            .arg(encoded)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            .kill_on_drop(true);
        if let Some(user) = user {
            command.arg("--user-name").arg(user);
        }
        let spawned = command.spawn();
        // Our copies of the write end go with the command: EOF comes when the probe is done.
        drop(command);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return Some((-1, format!("cannot start the probe: {e}"))),
        };
        let mut reader = tokio::spawn(read_capped(read));
        let waited = tokio::select! {
            _ = stop.cancelled() => None,
            w = tokio::time::timeout(probe.timeout, child.wait()) => Some(w),
        };
        let exit_code = match waited {
            None => {
                self.kill_probe(&mut child).await;
                reader.abort();
                return None;
            }
            Some(Err(_elapsed)) => {
                self.kill_probe(&mut child).await;
                reader.abort();
                let text = format!(
                    "Health check exceeded timeout ({})",
                    go_duration(probe.timeout)
                );
                return Some((-1, text));
            }
            Some(Ok(Err(e))) => {
                reader.abort();
                return Some((-1, format!("waiting for the probe failed: {e}")));
            }
            Some(Ok(Ok(status))) => status.code().map(i64::from).unwrap_or(-1),
        };
        let output = match tokio::time::timeout(self.timing.output_drain, &mut reader).await {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => {
                // Something the probe left behind holds the pipe: keep what we have.
                reader.abort();
                String::new()
            }
        };
        Some((exit_code, output))
    }

    /// Kill a probe: the process it runs in the container (with its process group: it is a
    /// session leader), then its exec helper, which exits once its child is gone.
    async fn kill_probe(&self, child: &mut tokio::process::Child) {
        if let Some(pid) = child.id() {
            for p in children_of(pid) {
                let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        if tokio::time::timeout(self.timing.kill_grace, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// The children of a process (the exec helper's is the probe, by its host pid).
fn children_of(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| *p > 1)
        .collect()
}

/// Everything the probe writes, keeping the first `MAX_OUTPUT` bytes (the rest is read and
/// dropped, so the probe never blocks on a full pipe).
async fn read_capped(fd: OwnedFd) -> Vec<u8> {
    let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn probe(retries: u64, start_period: Duration) -> Probe {
        Probe {
            command: vec!["true".into()],
            interval: SEC,
            timeout: SEC,
            start_period,
            start_interval: Duration::from_millis(100),
            retries,
        }
    }

    fn result(exit_code: i64) -> HealthcheckResult {
        HealthcheckResult {
            exit_code,
            output: format!("exit {exit_code}\n"),
            ..Default::default()
        }
    }

    fn config(test: &[&str]) -> HealthConfig {
        HealthConfig {
            test: test.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn t10_configs_become_probes_with_dockers_defaults() {
        assert_eq!(Probe::from_config(None), Ok(None));
        assert_eq!(Probe::from_config(Some(&config(&[]))), Ok(None));
        assert_eq!(Probe::from_config(Some(&config(&["NONE"]))), Ok(None));
        let shell = Probe::from_config(Some(&config(&["CMD-SHELL", "test -f /ok"])))
            .unwrap()
            .unwrap();
        assert_eq!(shell.command, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(
            (shell.interval, shell.timeout, shell.retries),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_RETRIES)
        );
        assert_eq!(shell.start_period, Duration::ZERO);
        let exec = HealthConfig {
            interval: 2_000_000_000,
            timeout: 500_000_000,
            retries: 5,
            start_period: 3_000_000_000,
            ..config(&["CMD", "cat", "/ok"])
        };
        let exec = Probe::from_config(Some(&exec)).unwrap().unwrap();
        assert_eq!(exec.command, ["cat", "/ok"]);
        assert_eq!(exec.interval, 2 * SEC);
        assert_eq!(exec.timeout, Duration::from_millis(500));
        assert_eq!(exec.retries, 5);
        assert_eq!(exec.start_period, 3 * SEC);
        assert_eq!(exec.start_interval, DEFAULT_START_INTERVAL);
    }

    #[test]
    fn t10_bad_configs_say_what_is_wrong() {
        let err = |c: HealthConfig| Probe::from_config(Some(&c)).unwrap_err();
        assert!(err(config(&["CMD"])).contains("needs a command"));
        assert!(err(config(&["RUN", "x"])).contains("unknown type \"RUN\""));
        let short = HealthConfig {
            interval: 1000,
            ..config(&["CMD", "true"])
        };
        assert_eq!(
            err(short),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        let negative = HealthConfig {
            retries: -1,
            ..config(&["CMD", "true"])
        };
        assert_eq!(err(negative), "Retries in Healthcheck cannot be negative");
        let negative = HealthConfig {
            timeout: -5,
            ..config(&["CMD", "true"])
        };
        assert_eq!(err(negative), "Timeout in Healthcheck cannot be negative");
    }

    #[test]
    fn t10_the_image_fills_what_the_container_leaves_out() {
        let image = HealthConfig {
            interval: 7_000_000_000,
            retries: 2,
            ..config(&["CMD", "image-check"])
        };
        assert_eq!(merge(None, Some(&image)), Some(image.clone()));
        assert_eq!(merge(None, None), None);
        let mine = HealthConfig {
            interval: 9_000_000_000,
            ..Default::default()
        };
        let merged = merge(Some(mine), Some(&image)).unwrap();
        assert_eq!(merged.test, ["CMD", "image-check"]);
        assert_eq!((merged.interval, merged.retries), (9_000_000_000, 2));
        // --no-healthcheck: a test of its own, so the image's is off.
        let off = merge(Some(config(&["NONE"])), Some(&image));
        assert_eq!(Probe::from_config(off.as_ref()), Ok(None));
    }

    #[test]
    fn t20_healthy_after_the_first_passing_probe() {
        let p = probe(3, Duration::ZERO);
        let mut t = Tracker::new();
        assert_eq!(t.health().status, HealthStatus::Starting);
        assert_eq!(t.record(&p, result(1), SEC), None);
        assert_eq!(t.health().failing_streak, 1);
        assert_eq!(
            t.record(&p, result(0), 2 * SEC),
            Some(HealthStatus::Healthy)
        );
        assert_eq!(t.health().failing_streak, 0);
        assert_eq!(t.record(&p, result(0), 3 * SEC), None);
    }

    #[test]
    fn t20_unhealthy_after_retries_failures_in_a_row() {
        let p = probe(3, Duration::ZERO);
        let mut t = Tracker::new();
        t.record(&p, result(0), SEC);
        assert_eq!(t.record(&p, result(1), 2 * SEC), None);
        assert_eq!(t.record(&p, result(2), 3 * SEC), None);
        // A pass in between starts the count again.
        assert_eq!(t.record(&p, result(0), 4 * SEC), None);
        assert_eq!(t.record(&p, result(1), 5 * SEC), None);
        assert_eq!(t.record(&p, result(-1), 6 * SEC), None);
        assert_eq!(t.health().failing_streak, 2);
        assert_eq!(
            t.record(&p, result(1), 7 * SEC),
            Some(HealthStatus::Unhealthy)
        );
        assert_eq!(t.health().failing_streak, 3);
        // It recovers when a probe passes again.
        assert_eq!(
            t.record(&p, result(0), 8 * SEC),
            Some(HealthStatus::Healthy)
        );
        // Never passing at all: unhealthy straight from starting.
        let mut t = Tracker::new();
        t.record(&p, result(1), SEC);
        t.record(&p, result(1), SEC);
        assert_eq!(t.record(&p, result(1), SEC), Some(HealthStatus::Unhealthy));
    }

    #[test]
    fn t20_failures_in_the_start_period_do_not_count() {
        let p = probe(1, 10 * SEC);
        let mut t = Tracker::new();
        for s in 1..10 {
            assert_eq!(t.record(&p, result(1), s * SEC), None);
        }
        assert_eq!(t.health().failing_streak, 0);
        assert_eq!(t.health().status, HealthStatus::Starting);
        // Past the start period they count.
        assert_eq!(
            t.record(&p, result(1), 10 * SEC),
            Some(HealthStatus::Unhealthy)
        );
        // Once healthy, the start period no longer shields failures.
        let mut t = Tracker::new();
        t.record(&p, result(0), SEC);
        assert_eq!(
            t.record(&p, result(1), 2 * SEC),
            Some(HealthStatus::Unhealthy)
        );
    }

    #[test]
    fn t20_start_interval_only_while_starting_in_the_start_period() {
        let p = probe(3, 10 * SEC);
        let mut t = Tracker::new();
        assert_eq!(t.next_interval(&p, SEC), Duration::from_millis(100));
        assert_eq!(t.next_interval(&p, 10 * SEC), SEC);
        t.record(&p, result(0), SEC);
        assert_eq!(t.next_interval(&p, 2 * SEC), SEC);
        assert_eq!(
            Tracker::new().next_interval(&probe(3, Duration::ZERO), SEC),
            SEC
        );
    }

    #[test]
    fn t20_the_log_keeps_the_last_five_probes_and_4096_bytes_of_output() {
        let p = probe(100, Duration::ZERO);
        let mut t = Tracker::new();
        for code in 0..8 {
            t.record(&p, result(code), SEC);
        }
        let codes: Vec<i64> = t.health().log.iter().map(|r| r.exit_code).collect();
        assert_eq!(codes, [3, 4, 5, 6, 7]);
        let long = HealthcheckResult {
            output: "é".repeat(3000),
            ..Default::default()
        };
        t.record(&p, long, SEC);
        let kept = &t.health().log[4].output;
        assert!(
            kept.len() <= MAX_OUTPUT && kept.len() >= MAX_OUTPUT - 1,
            "{}",
            kept.len()
        );
    }

    #[test]
    fn t10_durations_read_like_gos() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }
}
