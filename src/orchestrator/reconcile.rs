//! One pass of the orchestrator (pure): the state in, the commands that bring it closer to
//! what the services ask for out.
//!
//! ```text
//!  State ──▶ 1. lost tasks: on a node that is down or gone ──▶ status orphaned
//!        ──▶ 2. per service, per slot (replicated: 1..=Replicas; global: per node)
//!                 retire: desired shutdown for the slot's task if it ended, if its node
//!                         is drained, no longer meets the constraints or holds more than
//!                         `MaxReplicas` of the service, if the slot is
//!                         gone (scale down: the highest slots go), or if it is a duplicate
//!                 refill: a new task when the slot has none meant to run (restart policy,
//!                         backoff), in the same slot, keeping the slot's history
//!                 trim:   history beyond the retention limit
//!        ──▶ 3. tasks of removed services: forgotten once they have stopped
//!        ──▶ 4. scheduler: a node for every task still pending (new ones included),
//!                 and an address on each of its networks from that node's blocks
//!                 (`cluster::addressing::attach`); a full network leaves it pending
//!        ──▶ UpdateTasks (retire, orphan, assign) · CreateTasks · RemoveTasks
//! ```
//!
//! What the pass decides, and why:
//! * **Slots.** A slot is occupied by its task whose desired state is `running` (or less)
//!   and which has not ended. At most one: extras are shut down, newest kept.
//! * **Why a task ended decides what comes next.** `shutdown` means it was stopped on
//!   request (the agent reports `shutdown` only then): the slot gets a new task at once, no
//!   restart policy, no attempt counted (drain, constraint change, a duplicate). `complete`,
//!   `failed`, `rejected` and `orphaned` ended on their own: the restart policy decides
//!   (see `restart.rs`), and a restart counts one `attempt`. A slot the policy gives up on
//!   keeps its last task as the record of that, so a later pass does not refill it; a new
//!   spec version (`service update`) refills it.
//! * **Lost tasks.** A task on a node that is `down` or was removed is marked `orphaned`
//!   (with `err` saying which node) and retired at once, and its slot is refilled through the
//!   restart policy, as Docker restarts the tasks of a down node, but in the same pass,
//!   without the restart delay (see `restart.rs`). We mark the status right
//!   away (Docker waits 24 h before saying "orphaned") because it makes the task terminal for
//!   everything that follows: history trimming, service removal, the restart decision. If
//!   the node comes back, its agent finds the task desired `shutdown` and stops it.
//! * **Drain and pause.** `drain` retires the node's tasks (their slots are refilled
//!   elsewhere); `pause` keeps them running and only stops new placements. A global service
//!   follows the nodes: one task per `ready`, `active` node meeting its constraints, its
//!   task shut down when the node is drained, no longer meets them, goes down or leaves.
//! * **New tasks** are born `pending` and the scheduler runs in the same pass, so most enter
//!   the log already `assigned`; one that fits nowhere stays `pending` with
//!   `err: "no suitable node (…)"` and is retried on every pass.
//! * **Idempotence.** Every change is made only when it changes something, and the pending
//!   error is rewritten only when its text changes, so a pass over a settled state (or over
//!   the state its own commands produced) returns nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Defaults;
use super::restart::{self, Decision, Record, RestartPolicy};
use super::scheduler::{Load, Requirements, Scheduler};
use crate::cluster::addressing;
use crate::cluster::ipam::Pool;
use crate::cluster::state::{Command, State, TaskChange};
use crate::types::service::{
    Mode, RawJson, STRATEGY_LABEL, Service, ServiceSpec, Strategy, Task, TaskSpec, TaskState,
    TaskStatus,
};
use crate::types::{NodeAvailability, NodeState, Timestamp};

/// Docker's status message of a task waiting for a node.
pub const PENDING_MESSAGE: &str = "pending task scheduling";
/// Docker's status message of a task the scheduler placed.
pub const ASSIGNED_MESSAGE: &str = "scheduler assigned task to node";
/// A task whose node was lost.
pub const ORPHANED_MESSAGE: &str = "task lost with its node";
/// A task stopped before any node had it.
pub const UNPLACED_SHUTDOWN_MESSAGE: &str = "shut down before it was placed";

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// To propose in this order (retirements come before the tasks that replace them).
    pub commands: Vec<Command>,
    /// The earliest time a later pass has something to do even if the state does not
    /// change (a restart delay running out).
    pub wake_at: Option<Timestamp>,
}

/// Computes one pass. `ids` names new tasks (25 lowercase base36 characters, like Docker's);
/// `now` is the time restart delays are measured against and new statuses carry.
pub fn reconcile(
    state: &State,
    now: Timestamp,
    ids: &mut impl FnMut() -> String,
    defaults: &Defaults,
) -> Plan {
    if state.cluster.is_none() {
        return Plan::default();
    }
    Pass::new(state, now, defaults).run(ids)
}

/// A service as this pass works on it.
struct Job<'s> {
    service: &'s Service,
    name: String,
    mode: Mode,
    requirements: Requirements,
    policy: RestartPolicy,
    /// `Spec.TaskTemplate`, verbatim, for new tasks.
    template: RawJson,
    /// Occupants still waiting for a node.
    pending: Vec<&'s Task>,
    /// New tasks of this pass.
    created: Vec<Task>,
    /// Tasks beyond `MaxReplicas` on their node (it was lowered): moved like a drained
    /// node's.
    excess: HashSet<&'s str>,
    /// The networks its tasks join (IDs): each placed task gets an address on each.
    networks: Vec<String>,
}

impl<'s> Job<'s> {
    /// `None` for a spec the orchestrator cannot act on; such a service is left alone
    /// (`apply` validates specs, so only a spec from an older version could be one).
    fn read(
        state: &State,
        service: &'s Service,
        strategy: Strategy,
        defaults: &Defaults,
    ) -> Option<Job<'s>> {
        let spec = ServiceSpec::from_raw(&service.spec).ok()?;
        let networks = addressing::service_networks(state, &spec, &service.endpoint);
        let mode = spec.mode().ok()?;
        let requirements = Requirements::of(&spec, strategy).ok()?;
        let policy = RestartPolicy::of(spec.task_template.restart_policy.as_ref(), defaults);
        let template = RawJson::from_value(&service.spec.value()["TaskTemplate"]);
        Some(Job {
            service,
            name: spec.name,
            mode,
            requirements,
            policy,
            template,
            pending: Vec::new(),
            created: Vec::new(),
            excess: HashSet::new(),
            networks,
        })
    }
}

/// Which instance of a service a task is: a replica's slot or a global task's node.
#[derive(Clone, Copy)]
enum Key<'s> {
    Slot(u64),
    Node(&'s str),
}

struct Pass<'s, 'd> {
    state: &'s State,
    now: Timestamp,
    defaults: &'d Defaults,
    /// Tasks kept per slot; `None`: all.
    retention: Option<usize>,
    strategy: Strategy,
    /// Changes to existing tasks, one per task; what the rest of the pass sees.
    changes: BTreeMap<&'s str, TaskChange>,
    removals: BTreeSet<&'s str>,
    wake_at: Option<Timestamp>,
    /// New tasks this pass may still make.
    budget: usize,
    /// The address pools with this pass's placements taken (copied on first use).
    pools: Option<BTreeMap<String, Pool>>,
}

impl<'s, 'd> Pass<'s, 'd> {
    fn new(state: &'s State, now: Timestamp, defaults: &'d Defaults) -> Pass<'s, 'd> {
        let spec = state.cluster.as_ref().map(|c| &c.info.spec);
        let limit = spec
            .and_then(|s| s.orchestration.task_history_retention_limit)
            .unwrap_or(defaults.task_history_retention);
        let strategy = spec
            .and_then(|s| s.labels.get(STRATEGY_LABEL))
            .and_then(|s| match s.as_str() {
                "spread" => Some(Strategy::Spread),
                "binpack" => Some(Strategy::Binpack),
                _ => None,
            })
            .unwrap_or(defaults.strategy);
        Pass {
            state,
            now,
            defaults,
            retention: usize::try_from(limit).ok(),
            strategy,
            changes: BTreeMap::new(),
            removals: BTreeSet::new(),
            wake_at: None,
            budget: defaults.max_new_tasks_per_pass,
            pools: None,
        }
    }

    fn run(mut self, ids: &mut impl FnMut() -> String) -> Plan {
        let state = self.state;
        let mut by_service: BTreeMap<&'s str, Vec<&'s Task>> = BTreeMap::new();
        for task in state.tasks.values() {
            if let Some(why) = self.lost(task) {
                self.orphan(task, why);
            }
            by_service
                .entry(task.service_id.as_str())
                .or_default()
                .push(task);
        }

        let mut jobs = Vec::new();
        for service in state.services.values() {
            let tasks = by_service.remove(service.id.as_str()).unwrap_or_default();
            let Some(mut job) = Job::read(state, service, self.strategy, self.defaults) else {
                continue;
            };
            match job.mode {
                Mode::Replicated(replicas) => self.replicated(&mut job, tasks, replicas, ids),
                Mode::Global => self.global(&mut job, tasks, ids),
            }
            jobs.push(job);
        }
        for (service_id, tasks) in by_service {
            if !state.services.contains_key(service_id) {
                for task in tasks {
                    self.clean_up_after_removed_service(task);
                }
            }
        }

        self.schedule(&mut jobs);
        self.into_plan(jobs)
    }

    // ---- the effective view: the state plus this pass's changes --------------------------

    fn status_of(&self, task: &Task) -> TaskState {
        self.changes
            .get(task.id.as_str())
            .and_then(|c| c.status.as_ref())
            .map_or(task.status.state, |s| s.state)
    }

    fn status_since(&self, task: &Task) -> Timestamp {
        self.changes
            .get(task.id.as_str())
            .and_then(|c| c.status.as_ref())
            .map_or(task.status.timestamp, |s| s.timestamp)
    }

    fn desired_of(&self, task: &Task) -> TaskState {
        self.changes
            .get(task.id.as_str())
            .and_then(|c| c.desired_state)
            .unwrap_or(task.desired_state)
    }

    fn change(&mut self, task: &'s Task) -> &mut TaskChange {
        self.changes
            .entry(task.id.as_str())
            .or_insert_with(|| TaskChange {
                id: task.id.clone(),
                ..Default::default()
            })
    }

    fn record(&self, task: &Task) -> Record {
        Record {
            state: self.status_of(task),
            ended_at: self.status_since(task),
            created_at: task.created_at,
            attempt: task.attempt,
            spec_version: task.spec_version,
        }
    }

    fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    // ---- lost tasks ----------------------------------------------------------------------

    /// Why `task` is lost, if it is: it was on a node that is down or gone, and had not ended.
    fn lost(&self, task: &Task) -> Option<String> {
        let status = task.status.state;
        if task.node_id.is_empty() || status < TaskState::Assigned || status.is_terminal() {
            return None;
        }
        match self.state.nodes.get(&task.node_id) {
            None => Some(format!("node {} left the swarm", task.node_id)),
            Some(node) if node.status.state == NodeState::Down => {
                let name = if node.description.hostname.is_empty() {
                    &node.id
                } else {
                    &node.description.hostname
                };
                Some(format!("node {name} is down"))
            }
            Some(_) => None,
        }
    }

    fn orphan(&mut self, task: &'s Task, why: String) {
        let now = self.now;
        self.change(task).status = Some(TaskStatus {
            timestamp: now,
            state: TaskState::Orphaned,
            message: ORPHANED_MESSAGE.into(),
            err: why,
            container_status: task.status.container_status.clone(),
        });
    }

    // ---- services ------------------------------------------------------------------------

    fn replicated(
        &mut self,
        job: &mut Job<'s>,
        tasks: Vec<&'s Task>,
        replicas: u64,
        ids: &mut impl FnMut() -> String,
    ) {
        self.find_excess(job, &tasks);
        let mut slots: BTreeMap<u64, Vec<&'s Task>> = BTreeMap::new();
        for task in tasks {
            slots.entry(task.slot).or_default().push(task);
        }
        let wanted = |slot: u64| (1..=replicas).contains(&slot);
        let existing: BTreeSet<u64> = slots.keys().copied().collect();
        for (slot, tasks) in slots {
            let exists = wanted(slot);
            self.reconcile_slot(job, Key::Slot(slot), tasks, exists, exists, !exists, ids);
        }
        // Slots without any task yet, lowest first. Bounded by the budget, so a huge
        // replica count is worked through over several passes.
        for slot in 1..=replicas {
            if self.budget == 0 {
                break;
            }
            if !existing.contains(&slot) {
                self.create(job, Key::Slot(slot), 0, ids);
            }
        }
    }

    /// Marks the tasks a node holds beyond the service's `MaxReplicas`, highest slots first.
    fn find_excess(&self, job: &mut Job<'s>, tasks: &[&'s Task]) {
        let max = job.requirements.max_replicas;
        if max == 0 {
            return;
        }
        let mut per_node: BTreeMap<&str, Vec<&'s Task>> = BTreeMap::new();
        for &task in tasks {
            let status = self.status_of(task);
            if self.desired_of(task) <= TaskState::Running
                && status >= TaskState::Assigned
                && !status.is_terminal()
            {
                per_node
                    .entry(task.node_id.as_str())
                    .or_default()
                    .push(task);
            }
        }
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        for (_, mut on_node) in per_node {
            if on_node.len() > max {
                on_node.sort_by_key(|t| t.slot);
                job.excess
                    .extend(on_node[max..].iter().map(|t| t.id.as_str()));
            }
        }
    }

    fn global(
        &mut self,
        job: &mut Job<'s>,
        tasks: Vec<&'s Task>,
        ids: &mut impl FnMut() -> String,
    ) {
        let mut by_node: BTreeMap<&'s str, Vec<&'s Task>> = BTreeMap::new();
        for task in tasks {
            by_node.entry(task.node_id.as_str()).or_default().push(task);
        }
        for node in self.state.nodes.values() {
            by_node.entry(node.id.as_str()).or_default();
        }
        for (node_id, tasks) in by_node {
            let node = self.state.nodes.get(node_id);
            let meets = |n: &crate::types::Node| job.requirements.satisfied_by(n);
            let keep = node.is_some_and(|n| {
                n.status.state != NodeState::Down
                    && n.spec.availability != NodeAvailability::Drain
                    && meets(n)
            });
            let create = node.is_some_and(|n| super::scheduler::takes_new_tasks(n) && meets(n));
            if tasks.is_empty() && !create {
                continue;
            }
            self.reconcile_slot(
                job,
                Key::Node(node_id),
                tasks,
                keep,
                create,
                node.is_none(),
                ids,
            );
        }
    }

    /// One slot (or one node of a global service). `keep`: its running task may stay;
    /// `create`: it may get a new one; `gone`: the slot no longer exists, so its history goes.
    #[allow(clippy::too_many_arguments)]
    fn reconcile_slot(
        &mut self,
        job: &mut Job<'s>,
        key: Key<'s>,
        mut tasks: Vec<&'s Task>,
        keep: bool,
        create: bool,
        gone: bool,
        ids: &mut impl FnMut() -> String,
    ) {
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let mut live: Option<&'s Task> = None;
        for &task in tasks.iter().rev() {
            if self.desired_of(task) > TaskState::Running {
                continue;
            }
            let retire = !keep
                || live.is_some()
                || self.status_of(task).is_terminal()
                || self.must_move(job, task);
            if retire {
                self.shut_down(task);
            } else {
                live = Some(task);
            }
        }
        let mut created = false;
        match live {
            Some(task) if self.status_of(task) < TaskState::Assigned => job.pending.push(task),
            Some(_) => {}
            None if create => created = self.refill(job, key, &tasks, ids),
            None => {}
        }
        self.trim(job, &tasks, gone, created);
    }

    /// A running task whose node was drained, no longer meets the service's constraints, or
    /// holds more of the service's tasks than `MaxReplicas` allows.
    fn must_move(&self, job: &Job<'s>, task: &Task) -> bool {
        if task.node_id.is_empty() || self.status_of(task) < TaskState::Assigned {
            return false;
        }
        if job.excess.contains(task.id.as_str()) {
            return true;
        }
        self.state.nodes.get(&task.node_id).is_some_and(|node| {
            node.spec.availability == NodeAvailability::Drain
                || !job.requirements.satisfied_by(node)
        })
    }

    fn shut_down(&mut self, task: &'s Task) {
        let unplaced = self.status_of(task) < TaskState::Assigned;
        let now = self.now;
        let change = self.change(task);
        change.desired_state = Some(TaskState::Shutdown);
        // No agent has it: nobody else would ever say it stopped.
        if unplaced {
            change.status = Some(TaskStatus {
                timestamp: now,
                state: TaskState::Shutdown,
                message: UNPLACED_SHUTDOWN_MESSAGE.into(),
                ..Default::default()
            });
        }
    }

    /// A new task for a slot that has none meant to run, if and when it is due. `tasks`:
    /// the slot's, oldest first. True if one was made.
    fn refill(
        &mut self,
        job: &mut Job<'s>,
        key: Key<'s>,
        tasks: &[&'s Task],
        ids: &mut impl FnMut() -> String,
    ) -> bool {
        let (attempt, due) = match tasks.last() {
            None => (0, self.now),
            Some(&last) => {
                let ended = self.status_of(last);
                if last.spec_version != job.service.spec_version {
                    // The service changed since: a fresh start with the current spec.
                    (0, self.now)
                } else if !ended.is_terminal() || ended == TaskState::Shutdown {
                    // Stopped (or stopping) on request: not a restart.
                    (last.attempt, self.now)
                } else {
                    let history: Vec<Record> = tasks.iter().rev().map(|t| self.record(t)).collect();
                    match restart::decide(&job.policy, &history, self.defaults) {
                        Decision::Never => return false,
                        Decision::At(at) => (last.attempt + 1, at),
                    }
                }
            }
        };
        if due > self.now {
            self.wake(due);
            return false;
        }
        if self.budget == 0 {
            return false;
        }
        self.create(job, key, attempt, ids);
        true
    }

    fn create(
        &mut self,
        job: &mut Job<'s>,
        key: Key<'s>,
        attempt: u64,
        ids: &mut impl FnMut() -> String,
    ) {
        let id = ids();
        let (slot, node_id, instance) = match key {
            Key::Slot(slot) => (slot, String::new(), slot.to_string()),
            Key::Node(node) => (0, node.to_owned(), node.to_owned()),
        };
        job.created.push(Task {
            name: format!("{}.{instance}.{id}", job.name),
            id,
            spec: job.template.clone(),
            service_id: job.service.id.clone(),
            slot,
            node_id,
            status: TaskStatus {
                timestamp: self.now,
                state: TaskState::Pending,
                message: PENDING_MESSAGE.into(),
                ..Default::default()
            },
            desired_state: TaskState::Running,
            spec_version: job.service.spec_version,
            attempt,
            ..Default::default()
        });
        self.budget = self.budget.saturating_sub(1);
    }

    /// Forgets the slot's tasks beyond the retention limit (newest kept, the running one
    /// counted), or all of its ended tasks if the slot is gone. `tasks`: oldest first;
    /// `created`: a new task now heads the slot.
    fn trim(&mut self, job: &Job<'s>, tasks: &[&'s Task], gone: bool, created: bool) {
        if gone {
            for &task in tasks {
                if self.status_of(task).is_terminal() {
                    self.forget(task);
                }
            }
            return;
        }
        let Some(limit) = self.retention else {
            return;
        };
        // The last task of a slot is kept whatever the limit: it is the slot's record (of a
        // finished slot, or of a pending restart).
        let limit = limit.max(1);
        let policy = &job.policy;
        let counted_since = (policy.window > 0 && policy.max_attempts > 0)
            .then(|| self.now.0.saturating_sub(policy.window));
        for (position, &task) in tasks.iter().rev().enumerate() {
            let position = position + usize::from(created);
            if position < limit || !self.status_of(task).is_terminal() {
                continue;
            }
            // Restarts the policy still counts within its window stay until it no longer does.
            if counted_since.is_some_and(|since| task.attempt >= 1 && task.created_at.0 >= since) {
                continue;
            }
            self.forget(task);
        }
    }

    fn forget(&mut self, task: &'s Task) {
        self.changes.remove(task.id.as_str());
        self.removals.insert(task.id.as_str());
    }

    /// `service rm`: its tasks go once nothing runs them any more.
    fn clean_up_after_removed_service(&mut self, task: &'s Task) {
        let status = self.status_of(task);
        if status.is_terminal() || status < TaskState::Assigned || task.node_id.is_empty() {
            self.forget(task);
        } else if self.desired_of(task) != TaskState::Remove {
            self.change(task).desired_state = Some(TaskState::Remove);
        }
    }

    // ---- placement -----------------------------------------------------------------------

    fn schedule(&mut self, jobs: &mut [Job<'s>]) {
        if jobs
            .iter()
            .all(|j| j.pending.is_empty() && j.created.is_empty())
        {
            return;
        }
        let state = self.state;
        // Every task's reservation, read from its own spec: one parse per spec version.
        let mut reservations: HashMap<(&str, u64), (i64, i64)> = HashMap::new();
        let mut loads = Vec::new();
        for task in state.tasks.values() {
            let status = self.status_of(task);
            if task.node_id.is_empty()
                || status < TaskState::Assigned
                || status.is_terminal()
                || self.removals.contains(task.id.as_str())
            {
                continue;
            }
            let (nano_cpus, memory_bytes) = *reservations
                .entry((task.service_id.as_str(), task.spec_version))
                .or_insert_with(|| reservation_of(task));
            loads.push(Load {
                node_id: &task.node_id,
                service_id: &task.service_id,
                nano_cpus,
                memory_bytes,
                active: self.desired_of(task) <= TaskState::Running,
            });
        }
        let mut scheduler = Scheduler::new(state.nodes.values(), loads);

        let now = self.now;
        for job in jobs.iter_mut() {
            if job.pending.is_empty() && job.created.is_empty() {
                continue;
            }
            let service: &'s Service = job.service;
            let mut placer = scheduler.for_service(&service.id, &job.requirements);
            for &task in &job.pending {
                let on = (!task.node_id.is_empty()).then_some(task.node_id.as_str());
                let placed = placer
                    .place(on)
                    .map_err(|e| e.to_string())
                    .and_then(|node| {
                        let addresses = attach(&mut self.pools, state, node, &job.networks)?;
                        Ok((node, addresses))
                    });
                match placed {
                    Ok((node, addresses)) => {
                        let change = self.change(task);
                        change.node_id = Some(node.to_owned());
                        change.status = Some(assigned(now));
                        if !addresses.is_empty() {
                            change.networks_attachments = Some(addresses);
                        }
                    }
                    Err(e) => {
                        let status = pending(now, e);
                        let current = &task.status;
                        if (current.state, &current.message, &current.err)
                            != (status.state, &status.message, &status.err)
                        {
                            self.change(task).status = Some(status);
                        }
                    }
                }
            }
            for task in &mut job.created {
                let on = (!task.node_id.is_empty()).then_some(task.node_id.as_str());
                let placed = placer
                    .place(on)
                    .map_err(|e| e.to_string())
                    .and_then(|node| {
                        let addresses = attach(&mut self.pools, state, node, &job.networks)?;
                        Ok((node, addresses))
                    });
                match placed {
                    Ok((node, addresses)) => {
                        task.node_id = node.to_owned();
                        task.status = assigned(now);
                        task.networks_attachments = addresses;
                    }
                    // A global task keeps its node: it waits there for an address.
                    Err(e) => task.status = pending(now, e),
                }
            }
        }
    }

    // ---- the commands --------------------------------------------------------------------

    fn into_plan(self, jobs: Vec<Job<'s>>) -> Plan {
        let size = self.defaults.batch_size.max(1);
        let mut commands = Vec::new();
        let changes: Vec<TaskChange> = self.changes.into_values().collect();
        for changes in batches(changes, size) {
            commands.push(Command::UpdateTasks { changes });
        }
        let created: Vec<Task> = jobs.into_iter().flat_map(|j| j.created).collect();
        for tasks in batches(created, size) {
            commands.push(Command::CreateTasks { tasks });
        }
        let removals: Vec<String> = self.removals.into_iter().map(str::to_owned).collect();
        for ids in batches(removals, size) {
            commands.push(Command::RemoveTasks { ids });
        }
        Plan {
            commands,
            wake_at: self.wake_at,
        }
    }
}

/// A placed task's addresses, taken from the pass's copy of the pools (made on first use, so
/// passes over services without networks copy nothing).
fn attach(
    pools: &mut Option<BTreeMap<String, Pool>>,
    state: &State,
    node: &str,
    networks: &[String],
) -> Result<Vec<crate::types::network::NetworkAttachment>, String> {
    if networks.is_empty() {
        return Ok(Vec::new());
    }
    let pools = pools.get_or_insert_with(|| state.pools.clone());
    addressing::attach(state, pools, node, networks)
}

fn assigned(now: Timestamp) -> TaskStatus {
    TaskStatus {
        timestamp: now,
        state: TaskState::Assigned,
        message: ASSIGNED_MESSAGE.into(),
        ..Default::default()
    }
}

fn pending(now: Timestamp, err: String) -> TaskStatus {
    TaskStatus {
        timestamp: now,
        state: TaskState::Pending,
        message: PENDING_MESSAGE.into(),
        err,
        ..Default::default()
    }
}

/// `(NanoCPUs, MemoryBytes)` the task reserves, from the spec it was made with.
fn reservation_of(task: &Task) -> (i64, i64) {
    task.spec
        .parse::<TaskSpec>()
        .ok()
        .and_then(|s| s.resources)
        .and_then(|r| r.reservations)
        .map_or((0, 0), |r| (r.nano_cpus.max(0), r.memory_bytes.max(0)))
}

/// `items` in order, at most `size` to a batch (one Raft entry each).
fn batches<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size).collect());
    }
    out
}
