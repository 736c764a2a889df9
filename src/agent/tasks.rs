//! The task runner: makes this node's containers match the tasks the cluster assigned here.
//!
//! ```text
//!  every tick (and no more than one job per task at a time):
//!    cluster.state() ── tasks with NodeID == me ──┐
//!    containers labelled com.docker.swarm.task.id ┤
//!    their health statuses (agent::health) ───────┴─▶ plan() (pure) ─▶ jobs:
//!        start:  accepted → preparing (image: local, else pulled) → starting (create, start: 4 at a time) → running
//!                (with a health check: starting until the first passing probe, then running)
//!        unhealthy: stop the container (stop signal, grace period, SIGKILL) → failed
//!        stop:   desired ≥ shutdown: stop (signal, grace period, SIGKILL) → shutdown
//!        remove: the task is gone, elsewhere, or done and removed: delete the container
//!        observe: a container that exited → complete (0) / failed (exit code, OOMKilled)
//!    status reports of every job ── one ReportTaskStatus per tick ──▶ cluster.propose
//! ```
//!
//! Containers carry their task in labels, so after a daemon restart the runner finds them
//! again and adopts the running ones instead of starting new ones. Volume mounts go to the
//! container as `HostConfig.Mounts`: the node's volume manager (agent::volumes) makes a named
//! volume on first use, and it outlives the tasks that use it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::containers::{ContainerError, Containers};
use crate::cluster::{Cluster, Command};
use crate::image::ImageStore;
use crate::image::registry::PullOptions;
use crate::types::Timestamp;
use crate::types::container::{
    ContainerCreateRequest, ContainerInspect, ContainerSummary, HealthStatus, HostConfig, Mount,
    TmpfsOptions,
};
use crate::types::service::{ContainerStatus, Task, TaskSpec, TaskState, TaskStatus};

/// Labels Docker puts on a task's container; we find tasks by them.
pub const TASK_LABEL: &str = "com.docker.swarm.task.id";
const TASK_NAME_LABEL: &str = "com.docker.swarm.task.name";
const SERVICE_LABEL: &str = "com.docker.swarm.service.id";
const SERVICE_NAME_LABEL: &str = "com.docker.swarm.service.name";
const NODE_LABEL: &str = "com.docker.swarm.node.id";

/// How often the runner compares tasks and containers when nothing changed (how late a
/// container that exited on its own is noticed).
const TICK: Duration = Duration::from_millis(200);
/// How soon the runner acts on new work for this node (a task assigned here, a desired
/// state changed: it checks the applied log this often, and plans only when its tasks
/// moved) and reports what its jobs found, in one batch per check.
const REACT: Duration = Duration::from_millis(25);
/// How many task containers are created and started at once. Each is mostly the runtime's
/// work (helper, cgroup, clone, mounts: 10–30 ms); on a 2-core node 4 at a time started 50
/// and 200 tasks as fast as 64 at a time (scripts/bench/services.sh), and leaves the
/// daemon's blocking threads to the API while a big service starts.
const START_PARALLELISM: usize = 4;
/// Docker's default stop grace period.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Why a task whose container turned unhealthy failed (swarmkit's `ErrContainerUnhealthy`).
pub const UNHEALTHY: &str = "dockerexec: unhealthy container";

/// What the runner needs from the daemon.
pub struct TaskRunner {
    pub cluster: Cluster,
    pub containers: Arc<Containers>,
    pub images: Arc<ImageStore>,
    /// How pulls of missing images are made (certs.d and such).
    pub pull: PullOptions,
    /// One image fetch from other nodes at a time: tasks wanting the same image wait for
    /// the first fetch instead of fetching it again.
    pub peer_fetch: Arc<tokio::sync::Mutex<()>>,
}

/// One thing to do for one task (or one stray container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Start(Box<Task>),
    /// The task's container exists and runs, but the task does not say so yet (a start
    /// whose report was lost, or a daemon restart): adopt it.
    Adopt {
        task: String,
        container: String,
    },
    /// The container exited: report it. `stopping`: the task was being stopped (desired
    /// shutdown), so the exit is its shutdown, whatever the code (a stop job may not have
    /// reported yet when the exit is seen).
    Exited {
        task: String,
        container: String,
        stopping: bool,
    },
    Stop {
        task: String,
        container: String,
        grace: Duration,
    },
    /// The container's health check failed `Retries` times: stop it and fail the task, so
    /// the orchestrator replaces it.
    Unhealthy {
        task: String,
        container: String,
        grace: Duration,
    },
    /// Delete a container (its task is gone, moved, or done and to be removed).
    Remove {
        container: String,
    },
    /// A task desired down that never got a container: just report it.
    Shutdown {
        task: String,
    },
}

impl Job {
    fn key(&self) -> String {
        match self {
            Job::Start(t) => t.id.clone(),
            Job::Adopt { task, .. }
            | Job::Exited { task, .. }
            | Job::Stop { task, .. }
            | Job::Unhealthy { task, .. }
            | Job::Shutdown { task } => task.clone(),
            Job::Remove { container } => container.clone(),
        }
    }
}

/// The pure part: what to do, given this node's tasks, its task containers and the health
/// of those with a health check.
pub fn plan(
    me: &str,
    tasks: &BTreeMap<String, Task>,
    containers: &[ContainerSummary],
    health: &BTreeMap<String, HealthStatus>,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut by_task: BTreeMap<&str, &ContainerSummary> = BTreeMap::new();
    for c in containers {
        if let Some(t) = c.labels.get(TASK_LABEL) {
            by_task.insert(t.as_str(), c);
        }
    }
    for task in tasks.values().filter(|t| t.node_id == me) {
        let container = by_task.get(task.id.as_str());
        let running = container.is_some_and(|c| c.state == "running");
        let wants_run = task.desired_state <= TaskState::Running;
        let health = container.and_then(|c| health.get(&c.id)).copied();
        match container {
            None if wants_run
                && task.status.state < TaskState::Running
                && task.status.state >= TaskState::Assigned =>
            {
                jobs.push(Job::Start(Box::new(task.clone())));
            }
            None if !wants_run && !task.status.state.is_terminal() => {
                jobs.push(Job::Shutdown {
                    task: task.id.clone(),
                });
            }
            Some(c) if running && wants_run && health == Some(HealthStatus::Unhealthy) => {
                jobs.push(Job::Unhealthy {
                    task: task.id.clone(),
                    container: c.id.clone(),
                    grace: grace_of(task),
                });
            }
            // A health-checked task stays starting until its first passing probe.
            Some(_)
                if running
                    && wants_run
                    && health == Some(HealthStatus::Starting)
                    && task.status.state == TaskState::Starting => {}
            Some(c) if running && wants_run && task.status.state < TaskState::Running => {
                jobs.push(Job::Adopt {
                    task: task.id.clone(),
                    container: c.id.clone(),
                });
            }
            Some(c) if running && !wants_run => jobs.push(Job::Stop {
                task: task.id.clone(),
                container: c.id.clone(),
                grace: grace_of(task),
            }),
            Some(c)
                if !running
                    && matches!(c.state.as_str(), "exited" | "dead")
                    && !task.status.state.is_terminal() =>
            {
                jobs.push(Job::Exited {
                    task: task.id.clone(),
                    container: c.id.clone(),
                    stopping: !wants_run,
                });
            }
            Some(c) if !running && task.desired_state == TaskState::Remove => {
                jobs.push(Job::Remove {
                    container: c.id.clone(),
                });
            }
            _ => {}
        }
    }
    // Containers of tasks that are gone or were moved to another node.
    for (task, c) in &by_task {
        let ours = tasks.get(*task).is_some_and(|t| t.node_id == me);
        if !ours {
            if c.state == "running" {
                jobs.push(Job::Stop {
                    task: (*task).to_owned(),
                    container: c.id.clone(),
                    grace: tasks.get(*task).map(grace_of).unwrap_or(DEFAULT_GRACE),
                });
            } else {
                jobs.push(Job::Remove {
                    container: c.id.clone(),
                });
            }
        }
    }
    jobs
}

/// What of this node's tasks a plan depends on beyond their status (which this node
/// reports itself): which tasks are here and what is desired of them.
fn fingerprint(me: &str, tasks: &BTreeMap<String, Task>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in tasks.values().filter(|t| t.node_id == me) {
        (&t.id, t.desired_state).hash(&mut h);
    }
    h.finish()
}

fn grace_of(task: &Task) -> Duration {
    task.spec
        .parse::<TaskSpec>()
        .ok()
        .and_then(|s| s.container_spec.stop_grace_period)
        .filter(|g| *g >= 0)
        .map(|g| Duration::from_nanos(g as u64))
        .unwrap_or(DEFAULT_GRACE)
}

/// The status of a task whose container runs: running, or, while its health check has not
/// passed yet, starting (as Docker's swarm reports them).
fn running_status(container: &ContainerInspect) -> TaskStatus {
    let checking = container
        .state
        .health
        .as_ref()
        .is_some_and(|h| h.status != HealthStatus::Healthy);
    let mut s = if checking {
        status(TaskState::Starting, "starting")
    } else {
        status(TaskState::Running, "started")
    };
    s.container_status = Some(ContainerStatus {
        container_id: container.id.clone(),
        pid: container.state.pid,
        exit_code: 0,
    });
    s
}

fn status(state: TaskState, message: &str) -> TaskStatus {
    TaskStatus {
        timestamp: Timestamp::now(),
        state,
        message: message.to_owned(),
        ..Default::default()
    }
}

type Reports = mpsc::UnboundedSender<(String, TaskStatus)>;

impl TaskRunner {
    /// Runs until `stop`: plans every `TICK`, and within `REACT` of a change to this
    /// node's tasks; one job per task at a time; reports in batches.
    pub async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        let busy: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let starts = Arc::new(tokio::sync::Semaphore::new(START_PARALLELISM));
        let (reports_tx, mut reports_rx) = mpsc::unbounded_channel();
        let mut tick = tokio::time::interval(REACT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut planned_at: Option<tokio::time::Instant> = None;
        let (mut seen_applied, mut seen_tasks) = (None, None);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Reports first: what the jobs of the last ticks found.
            let mut reports = Vec::new();
            while let Ok(r) = reports_rx.try_recv() {
                reports.push(r);
            }
            if !reports.is_empty() {
                let node = this.cluster.node_id().to_owned();
                let cluster = this.cluster.clone();
                tokio::spawn(async move {
                    let n = reports.len();
                    if let Err(e) = cluster
                        .propose(Command::ReportTaskStatus { node, reports })
                        .await
                    {
                        tracing::warn!(error = %e, reports = n, "cannot report task status");
                    }
                });
            }
            // Plan when due, or early when this node's tasks changed.
            let due = planned_at.is_none_or(|at| at.elapsed() >= TICK);
            let applied = this.cluster.metrics().last_applied.map(|l| l.index);
            if !due && applied == seen_applied {
                continue;
            }
            seen_applied = applied;
            let state = this.cluster.state();
            if state.cluster.is_none() {
                continue;
            }
            let mine = fingerprint(this.cluster.node_id(), &state.tasks);
            if !due && seen_tasks == Some(mine) {
                continue;
            }
            (planned_at, seen_tasks) = (Some(tokio::time::Instant::now()), Some(mine));
            // Jobs busy while the containers are listed may finish before the plan: the
            // list can miss what they did (a container just created), so they are left to
            // the next plan rather than started again.
            let busy_before = busy.lock().map(|b| b.clone()).unwrap_or_default();
            let (containers, health) = {
                let c = this.containers.clone();
                tokio::task::spawn_blocking(move || (c.list(true), c.health_statuses()))
                    .await
                    .unwrap_or_default()
            };
            let jobs = plan(this.cluster.node_id(), &state.tasks, &containers, &health);
            for job in jobs {
                let key = job.key();
                if busy_before.contains(&key) {
                    continue;
                }
                {
                    let Ok(mut b) = busy.lock() else { continue };
                    if !b.insert(key.clone()) {
                        continue;
                    }
                }
                let (this, busy, reports) = (this.clone(), busy.clone(), reports_tx.clone());
                let starts = starts.clone();
                tokio::spawn(async move {
                    this.execute(job, &reports, &starts).await;
                    if let Ok(mut b) = busy.lock() {
                        b.remove(&key);
                    }
                });
            }
        }
    }

    async fn execute(&self, job: Job, reports: &Reports, starts: &tokio::sync::Semaphore) {
        match job {
            Job::Start(task) => self.start(*task, reports, starts).await,
            Job::Adopt { task, container } => {
                let c = self.containers.clone();
                let inspect = tokio::task::spawn_blocking(move || c.inspect(&container)).await;
                if let Ok(Ok(i)) = inspect {
                    let _ = reports.send((task, running_status(&i)));
                }
            }
            Job::Exited {
                task,
                container,
                stopping,
            } => {
                let c = self.containers.clone();
                let id = container.clone();
                let inspect = tokio::task::spawn_blocking(move || c.inspect(&id)).await;
                let Ok(Ok(i)) = inspect else { return };
                let code = i.state.exit_code;
                let unhealthy = i
                    .state
                    .health
                    .as_ref()
                    .is_some_and(|h| h.status == HealthStatus::Unhealthy);
                let (state, message, err) = if stopping && !i.state.dead {
                    (TaskState::Shutdown, "shutdown", String::new())
                } else if i.state.dead {
                    (
                        TaskState::Failed,
                        "started",
                        "task: the container is gone from the runtime (its state was lost)"
                            .to_owned(),
                    )
                } else if unhealthy {
                    (
                        TaskState::Failed,
                        "started",
                        format!("task: non-zero exit ({code}): {UNHEALTHY}"),
                    )
                } else if i.state.oom_killed {
                    (
                        TaskState::Failed,
                        "started",
                        "task: non-zero exit (137): OOMKilled".to_owned(),
                    )
                } else if code == 0 {
                    (TaskState::Complete, "finished", String::new())
                } else {
                    (
                        TaskState::Failed,
                        "started",
                        format!("task: non-zero exit ({code})"),
                    )
                };
                let mut s = status(state, message);
                s.err = err;
                s.container_status = Some(ContainerStatus {
                    container_id: i.id,
                    pid: 0,
                    exit_code: code,
                });
                let _ = reports.send((task, s));
            }
            Job::Stop {
                task,
                container,
                grace,
            } => {
                let c = self.containers.clone();
                let id = container.clone();
                let stopped = tokio::task::spawn_blocking(move || {
                    c.stop(&id, Some(grace))?;
                    c.inspect(&id)
                })
                .await;
                // How it ended (the stop signal's doing, or SIGKILL's after the grace period).
                let exit_code = match stopped {
                    Ok(Ok(i)) => i.state.exit_code,
                    Ok(Err(e)) => {
                        tracing::warn!(%task, error = %e, "cannot stop a task's container");
                        0
                    }
                    Err(_) => 0,
                };
                let mut s = status(TaskState::Shutdown, "shutdown");
                s.container_status = Some(ContainerStatus {
                    container_id: container,
                    pid: 0,
                    exit_code,
                });
                let _ = reports.send((task, s));
            }
            Job::Unhealthy {
                task,
                container,
                grace,
            } => {
                tracing::info!(%task, %container, "unhealthy container: stopping it");
                let c = self.containers.clone();
                let id = container.clone();
                let stopped = tokio::task::spawn_blocking(move || {
                    c.stop(&id, Some(grace))?;
                    c.inspect(&id)
                })
                .await;
                // SIGKILL's code when the stop could not say.
                let code = match stopped {
                    Ok(Ok(i)) => i.state.exit_code,
                    Ok(Err(e)) => {
                        tracing::warn!(%task, error = %e, "cannot stop an unhealthy container");
                        137
                    }
                    Err(_) => 137,
                };
                let mut s = status(TaskState::Failed, "started");
                s.err = format!("task: non-zero exit ({code}): {UNHEALTHY}");
                s.container_status = Some(ContainerStatus {
                    container_id: container,
                    pid: 0,
                    exit_code: code,
                });
                let _ = reports.send((task, s));
            }
            Job::Remove { container } => {
                let c = self.containers.clone();
                // With its anonymous volumes, as Docker's executor removes a task's container.
                let removed =
                    tokio::task::spawn_blocking(move || c.remove_with(&container, true, true))
                        .await;
                if let Ok(Err(e)) = removed {
                    tracing::warn!(error = %e, "cannot remove a task's container");
                }
            }
            Job::Shutdown { task } => {
                let _ = reports.send((task, status(TaskState::Shutdown, "shutdown")));
            }
        }
    }

    async fn start(&self, task: Task, reports: &Reports, starts: &tokio::sync::Semaphore) {
        let id = task.id.clone();
        let _ = reports.send((id.clone(), status(TaskState::Accepted, "accepted")));
        let spec: TaskSpec = match task.spec.parse() {
            Ok(s) => s,
            Err(e) => {
                let mut s = status(TaskState::Rejected, "rejected");
                s.err = format!("invalid task spec: {e}");
                let _ = reports.send((id, s));
                return;
            }
        };
        let _ = reports.send((id.clone(), status(TaskState::Preparing, "preparing")));
        let image = spec.container_spec.image.clone();
        if let Err(e) = self.ensure_image(&image).await {
            let mut s = status(TaskState::Rejected, "preparing");
            s.err = e;
            let _ = reports.send((id, s));
            return;
        }
        let request = match self.create_request(&task, &spec) {
            Ok(r) => r,
            Err(e) => {
                let mut s = status(TaskState::Rejected, "preparing");
                s.err = e;
                let _ = reports.send((id, s));
                return;
            }
        };
        let _ = reports.send((id.clone(), status(TaskState::Starting, "starting")));
        let name = container_name(&task);
        let c = self.containers.clone();
        // The semaphore is never closed; were it, the start would go ahead unbounded.
        let _permit = starts.acquire().await.ok();
        let started = tokio::task::spawn_blocking(move || {
            let record = c.create(request, Some(&name))?;
            // With the record in hand, straight to the runtime: `Containers::start` and
            // `inspect` would each look it up again among all containers' records.
            c.runtime().start(&record.id)?;
            let pid = c.runtime().state(&record.id)?.pid;
            // With a health check the task is `starting` until the first healthy probe.
            let checked = super::health::Probe::from_config(record.request.healthcheck.as_ref())
                .is_ok_and(|p| p.is_some());
            Ok::<_, ContainerError>((record.id, pid, checked))
        })
        .await;
        match started {
            Ok(Ok((container_id, pid, checked))) => {
                let mut s = if checked {
                    status(TaskState::Starting, "starting")
                } else {
                    status(TaskState::Running, "started")
                };
                s.container_status = Some(ContainerStatus {
                    container_id,
                    pid: pid.into(),
                    exit_code: 0,
                });
                let _ = reports.send((id, s));
            }
            Ok(Err(e)) => {
                let mut s = status(TaskState::Failed, "starting");
                s.err = container_error(&e);
                let _ = reports.send((id, s));
            }
            Err(e) => {
                let mut s = status(TaskState::Failed, "starting");
                s.err = format!("starting the container failed: {e}");
                let _ = reports.send((id, s));
            }
        }
    }

    /// The image is here, or is pulled from its registry, or else fetched from another node
    /// that has it (an image loaded by hand there); the error says which and why not.
    /// The task's image: this node's store, else another Ready node's (verified blob by
    /// blob), else the registry. Peers come first: a copy in the cluster is what the
    /// operator put there, it costs no registry traffic, and an image loaded by hand on one
    /// node (never pushed anywhere) runs everywhere.
    async fn ensure_image(&self, image: &str) -> Result<(), String> {
        if self.images.resolve(image).is_ok() {
            return Ok(());
        }
        let peer_error = {
            let _one_at_a_time = self.peer_fetch.lock().await;
            if self.images.resolve(image).is_ok() {
                return Ok(()); // another task's fetch brought it meanwhile
            }
            let options = crate::image::peer::PeerFetchOptions::default();
            match super::peer::fetch_image(&self.cluster, &self.images, image, options).await {
                Ok(_) => return Ok(()),
                Err(super::peer::PeerFetchError::NobodyHasIt) => {
                    "no other Ready node has it".to_string()
                }
                Err(super::peer::PeerFetchError::Failed(reasons)) => {
                    format!(
                        "fetching it from other nodes failed: {}",
                        reasons.join("; ")
                    )
                }
            }
        };
        match self.images.pull(image, &self.pull).await {
            Ok(_) => Ok(()),
            Err(pull_error) => Err(format!(
                "No such image: {image} (not in this node's store, {peer_error}, and pulling failed: {pull_error})"
            )),
        }
    }

    /// A Docker create request for the task's container.
    fn create_request(
        &self,
        task: &Task,
        spec: &TaskSpec,
    ) -> Result<ContainerCreateRequest, String> {
        let c = &spec.container_spec;
        let mut labels = c.labels.clone();
        let service_name = task.name.split('.').next().unwrap_or_default().to_owned();
        labels.insert(TASK_LABEL.into(), task.id.clone());
        labels.insert(TASK_NAME_LABEL.into(), container_name(task));
        labels.insert(SERVICE_LABEL.into(), task.service_id.clone());
        labels.insert(SERVICE_NAME_LABEL.into(), service_name);
        labels.insert(NODE_LABEL.into(), task.node_id.clone());
        let limits = spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        let mut mounts = Vec::new();
        for m in &c.mounts {
            if !matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs") {
                return Err(format!("unsupported mount type {:?}", m.kind));
            }
            mounts.push(Mount {
                kind: m.kind.clone(),
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
                volume_options: m.volume_options.clone(),
                tmpfs_options: m.tmpfs_options.as_ref().map(|t| TmpfsOptions {
                    size_bytes: t.size_bytes,
                    mode: t.mode,
                }),
            });
        }
        Ok(ContainerCreateRequest {
            image: c.image.clone(),
            cmd: (!c.args.is_empty()).then(|| c.args.clone()),
            entrypoint: (!c.command.is_empty()).then(|| c.command.clone()),
            env: (!c.env.is_empty()).then(|| c.env.clone()),
            working_dir: c.dir.clone(),
            user: c.user.clone(),
            hostname: c.hostname.clone(),
            labels: Some(labels),
            stop_signal: (!c.stop_signal.is_empty()).then(|| c.stop_signal.clone()),
            stop_timeout: c.stop_grace_period.map(|g| g / 1_000_000_000),
            healthcheck: c.healthcheck.clone(),
            host_config: HostConfig {
                memory: limits.memory_bytes,
                nano_cpus: limits.nano_cpus,
                pids_limit: (limits.pids > 0).then_some(limits.pids),
                mounts: (!mounts.is_empty()).then_some(mounts),
                readonly_rootfs: c.read_only,
                network_mode: "none".into(),
                ..Default::default()
            },
            ..Default::default()
        })
    }
}

/// `<service>.<slot>.<task>` (global: `<service>.<node>.<task>`), as Docker names them.
pub fn container_name(task: &Task) -> String {
    let service = task.name.split('.').next().unwrap_or("task");
    if task.slot > 0 {
        format!("{service}.{}.{}", task.slot, task.id)
    } else {
        format!("{service}.{}.{}", task.node_id, task.id)
    }
}

fn container_error(e: &ContainerError) -> String {
    format!("starting the container failed: {e}")
}

/// After this node left the swarm (or was removed): its task containers belong to no one.
/// Stops them all at once (each with its own grace period), then deletes them. Blocking.
pub fn remove_task_containers(containers: &Containers) {
    let ids: Vec<String> = containers
        .list(true)
        .into_iter()
        .filter(|c| c.labels.contains_key(TASK_LABEL))
        .map(|c| c.id)
        .collect();
    std::thread::scope(|scope| {
        for id in &ids {
            scope.spawn(move || {
                if let Err(e) = containers.stop(id, None) {
                    tracing::debug!(container = %id, error = %e, "stop after leaving");
                }
                if let Err(e) = containers.remove(id, true) {
                    tracing::warn!(container = %id, error = %e, "cannot remove a task container after leaving the swarm");
                }
            });
        }
    });
    if !ids.is_empty() {
        tracing::info!(
            count = ids.len(),
            "removed the swarm's task containers after leaving"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::service::RawJson;

    fn task(id: &str, node: &str, state: TaskState, desired: TaskState) -> Task {
        Task {
            id: id.into(),
            name: format!("web.1.{id}"),
            node_id: node.into(),
            slot: 1,
            desired_state: desired,
            status: TaskStatus {
                state,
                ..Default::default()
            },
            spec: RawJson(
                r#"{"ContainerSpec":{"Image":"busybox:test","StopGracePeriod":2000000000}}"#.into(),
            ),
            ..Default::default()
        }
    }

    fn container(id: &str, task: &str, state: &str) -> ContainerSummary {
        ContainerSummary {
            id: id.into(),
            state: state.into(),
            labels: BTreeMap::from([(TASK_LABEL.to_owned(), task.to_owned())]),
            ..Default::default()
        }
    }

    fn no_health() -> BTreeMap<String, HealthStatus> {
        BTreeMap::new()
    }

    fn tasks(list: Vec<Task>) -> BTreeMap<String, Task> {
        list.into_iter().map(|t| (t.id.clone(), t)).collect()
    }

    #[test]
    fn t10_assigned_tasks_start_and_running_containers_are_adopted() {
        let t = tasks(vec![
            task("a", "me", TaskState::Assigned, TaskState::Running),
            task("b", "me", TaskState::Starting, TaskState::Running),
            task("c", "other", TaskState::Assigned, TaskState::Running),
            task("d", "me", TaskState::Pending, TaskState::Running),
        ]);
        let jobs = plan("me", &t, &[container("cb", "b", "running")], &no_health());
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert!(matches!(&jobs[0], Job::Start(t) if t.id == "a"));
        assert_eq!(
            jobs[1],
            Job::Adopt {
                task: "b".into(),
                container: "cb".into()
            }
        );
    }

    #[test]
    fn t10_exits_stops_and_strays() {
        let t = tasks(vec![
            task("a", "me", TaskState::Running, TaskState::Running),
            task("b", "me", TaskState::Running, TaskState::Shutdown),
            task("c", "me", TaskState::Failed, TaskState::Remove),
            task("m", "other", TaskState::Running, TaskState::Running),
            task("n", "me", TaskState::Assigned, TaskState::Shutdown),
        ]);
        let containers = [
            container("ca", "a", "exited"),
            container("cb", "b", "running"),
            container("cc", "c", "exited"),
            container("cm", "m", "running"),
            container("cz", "gone", "exited"),
        ];
        let jobs = plan("me", &t, &containers, &no_health());
        assert!(jobs.contains(&Job::Exited {
            task: "a".into(),
            container: "ca".into(),
            stopping: false,
        }));
        assert!(jobs.contains(&Job::Stop {
            task: "b".into(),
            container: "cb".into(),
            grace: Duration::from_secs(2)
        }));
        assert!(jobs.contains(&Job::Remove {
            container: "cc".into()
        }));
        // Seen exited while being stopped: its exit is the shutdown (not a failure), even
        // before the stop job reports.
        let stopped = tasks(vec![task(
            "b",
            "me",
            TaskState::Running,
            TaskState::Shutdown,
        )]);
        assert_eq!(
            plan(
                "me",
                &stopped,
                &[container("cb", "b", "exited")],
                &no_health()
            ),
            vec![Job::Exited {
                task: "b".into(),
                container: "cb".into(),
                stopping: true,
            }]
        );
        assert!(jobs.contains(&Job::Stop {
            task: "m".into(),
            container: "cm".into(),
            grace: Duration::from_secs(2)
        }));
        assert!(jobs.contains(&Job::Remove {
            container: "cz".into()
        }));
        assert!(jobs.contains(&Job::Shutdown { task: "n".into() }));
        assert_eq!(jobs.len(), 6, "{jobs:?}");
        // Nothing to do twice: a settled node plans nothing.
        let settled = tasks(vec![task(
            "a",
            "me",
            TaskState::Running,
            TaskState::Running,
        )]);
        assert!(
            plan(
                "me",
                &settled,
                &[container("ca", "a", "running")],
                &no_health()
            )
            .is_empty()
        );
    }

    #[test]
    fn t20_health_checked_tasks_run_when_healthy_and_fail_when_unhealthy() {
        let t = tasks(vec![
            task("s", "me", TaskState::Starting, TaskState::Running),
            task("h", "me", TaskState::Starting, TaskState::Running),
            task("u", "me", TaskState::Running, TaskState::Running),
            task("p", "me", TaskState::Preparing, TaskState::Running),
            task("d", "me", TaskState::Starting, TaskState::Shutdown),
            task("x", "me", TaskState::Running, TaskState::Running),
        ]);
        let containers = [
            container("cs", "s", "running"),
            container("ch", "h", "running"),
            container("cu", "u", "running"),
            container("cp", "p", "running"),
            container("cd", "d", "running"),
            container("cx", "x", "dead"),
        ];
        let health = BTreeMap::from([
            ("cs".to_owned(), HealthStatus::Starting),
            ("ch".to_owned(), HealthStatus::Healthy),
            ("cu".to_owned(), HealthStatus::Unhealthy),
            ("cp".to_owned(), HealthStatus::Starting),
            ("cd".to_owned(), HealthStatus::Starting),
        ]);
        let jobs = plan("me", &t, &containers, &health);
        // "s" waits for its first passing probe: nothing to do.
        let adopt = |t: &str, c: &str| Job::Adopt {
            task: t.into(),
            container: c.into(),
        };
        assert!(jobs.contains(&adopt("h", "ch")), "{jobs:?}");
        // A start whose reports were lost: adopted (it reports starting, see running_status).
        assert!(jobs.contains(&adopt("p", "cp")), "{jobs:?}");
        assert!(jobs.contains(&Job::Unhealthy {
            task: "u".into(),
            container: "cu".into(),
            grace: Duration::from_secs(2)
        }));
        // Desired down wins over waiting for health.
        assert!(jobs.contains(&Job::Stop {
            task: "d".into(),
            container: "cd".into(),
            grace: Duration::from_secs(2)
        }));
        // A container the runtime lost fails its task.
        assert!(jobs.contains(&Job::Exited {
            task: "x".into(),
            container: "cx".into(),
            stopping: false,
        }));
        assert_eq!(jobs.len(), 5, "{jobs:?}");
    }

    #[test]
    fn t20_running_status_waits_for_a_passing_probe() {
        use crate::types::container::{ContainerState, Health};
        let mut c = ContainerInspect {
            id: "c".into(),
            state: ContainerState {
                pid: 42,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(running_status(&c).state, TaskState::Running);
        c.state.health = Some(Health::default());
        let s = running_status(&c);
        assert_eq!(
            (s.state, s.message.as_str()),
            (TaskState::Starting, "starting")
        );
        assert_eq!(s.container_status.map(|c| c.pid), Some(42));
        c.state.health = Some(Health {
            status: HealthStatus::Healthy,
            ..Default::default()
        });
        assert_eq!(running_status(&c).state, TaskState::Running);
    }
}
