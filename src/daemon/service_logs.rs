//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: the logs of a service's tasks,
//! gathered from the nodes they run on, as one Docker multiplexed stream.
//!
//! ```text
//!  manager serving the request (tasks from its local state)
//!   ├─ first: per task, batches behind a cursor (agent::peer TaskLogs, over p2p; this
//!   │         node's own tasks directly), merged by time: the earliest head line goes next,
//!   │         a task's queue is refilled when it runs dry (memory: one batch per task)
//!   └─ follow: one poller per task (a bounded wait on the task's node per request);
//!              every `rescan` the state is read again: new tasks get a poller, tasks gone
//!              lose theirs; the stream ends when the client goes away or the service is
//!              removed
//! ```
//!
//! A task on a Down node, or a node that does not answer within `request_bound`, yields a
//! warning line on stderr, attributed to the task (so the docker CLI still prints it as
//! `name.slot.id@node | warning: …`); it never holds the stream up for longer than that bound.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use axum::body::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::services::resolve_service;
use super::swarm::SwarmPlane;
use crate::agent::logs::{LineContext, LogCursor, LogFilter, LogLine, Rendering, earliest, render};
use crate::agent::peer::{AgentReply, AgentRequest, TaskLogs, TaskLogsRequest, ask};
use crate::api::ApiError;
use crate::api::containers::frame;
use crate::api::services::{LogsTarget, ServiceLogsQuery};
use crate::cluster::{Cluster, State};
use crate::types::NodeState;
use crate::types::service::{Task, TaskState};

/// Every wait of the log gatherer.
#[derive(Debug, Clone, Copy)]
pub struct LogsSettings {
    /// Bound on one request to a node (its own wait included).
    pub request_bound: Duration,
    /// Follow: how long a node waits for a new line before answering "nothing yet".
    pub follow_wait: Duration,
    /// Follow: how often the state is read again for new tasks or a removed service.
    pub rescan: Duration,
    /// Follow: pause before asking a node again after an error or an exited container.
    pub retry: Duration,
    /// Tasks read at once.
    pub fan_out: usize,
}

impl Default for LogsSettings {
    fn default() -> Self {
        LogsSettings {
            request_bound: Duration::from_secs(15),
            follow_wait: Duration::from_secs(1),
            rescan: Duration::from_secs(1),
            retry: Duration::from_secs(1),
            fan_out: 8,
        }
    }
}

impl SwarmPlane {
    pub async fn service_logs(
        &self,
        target: LogsTarget,
        query: ServiceLogsQuery,
    ) -> Result<mpsc::Receiver<Bytes>, ApiError> {
        let cluster = self.manager()?;
        let (service_id, only_task) = match target {
            LogsTarget::Service(reference) => {
                let state = cluster.state();
                (resolve_service(&state, &reference)?.id.clone(), None)
            }
            LogsTarget::Task(reference) => {
                let task = self.task(&reference, true).await?;
                (task.service_id, Some(task.id))
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let gather = Gather {
            cluster,
            settings: LogsSettings::default(),
            service_id,
            only_task,
            filter: LogFilter {
                stdout: query.stdout,
                stderr: query.stderr,
                since: query.since.clone(),
                until: query.until.clone(),
            },
            rendering: Rendering {
                timestamps: query.timestamps,
                details: query.details,
            },
            tail: query.tail.map(|n| n as u64),
            follow: query.follow,
        };
        tokio::spawn(gather.run(tx));
        Ok(rx)
    }
}

/// One request's gathering.
#[derive(Clone)]
struct Gather {
    cluster: Cluster,
    settings: LogsSettings,
    service_id: String,
    only_task: Option<String>,
    filter: LogFilter,
    rendering: Rendering,
    tail: Option<u64>,
    follow: bool,
}

/// One task's lines waiting to be merged.
struct Source {
    task: Task,
    queue: VecDeque<LogLine>,
    cursor: Option<LogCursor>,
    /// Nothing more to read in the first phase.
    done: bool,
}

fn context(task: &Task) -> LineContext {
    LineContext {
        node_id: task.node_id.clone(),
        service_id: task.service_id.clone(),
        task_id: task.id.clone(),
    }
}

/// A line of our own, on stderr, in the task's name.
fn warning(text: String) -> LogLine {
    LogLine {
        stderr: true,
        time: crate::runtime::state::now_rfc3339(),
        text: format!("warning: {text}\n"),
    }
}

impl Gather {
    /// The tasks whose containers may have logs.
    fn tasks(&self, state: &State) -> Vec<Task> {
        state
            .tasks
            .values()
            .filter(|t| t.service_id == self.service_id && !t.node_id.is_empty())
            .filter(|t| self.only_task.as_ref().is_none_or(|id| *id == t.id))
            .filter(|t| {
                t.status.container_status.is_some()
                    || matches!(t.status.state, TaskState::Starting | TaskState::Running)
            })
            .cloned()
            .collect()
    }

    fn frame(&self, task: &Task, line: &LogLine) -> Bytes {
        let (stream, payload) = render(line, &context(task), self.rendering);
        frame(stream, &payload)
    }

    /// One batch of `task`'s log from its node, or why not (as a warning's text).
    async fn fetch(
        &self,
        task: &Task,
        cursor: Option<LogCursor>,
        wait: Duration,
    ) -> Result<TaskLogs, String> {
        let state = self.cluster.state();
        let node = state.nodes.get(&task.node_id);
        let name = node
            .map(|n| n.description.hostname.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| task.node_id.clone());
        if node.is_some_and(|n| n.status.state == NodeState::Down) {
            return Err(format!(
                "node {name} is down: the logs of task {} are not available",
                task.id
            ));
        }
        let request = AgentRequest::TaskLogs(TaskLogsRequest {
            task: task.id.clone(),
            cursor,
            tail: if cursor.is_none() { self.tail } else { None },
            filter: self.filter.clone(),
            wait_ms: wait.as_millis() as u64,
        });
        let asked = ask(&self.cluster, &task.node_id, &request);
        match tokio::time::timeout(self.settings.request_bound, asked).await {
            Ok(Ok(AgentReply::TaskLogs(logs))) => Ok(logs),
            Ok(Ok(_)) => Err(format!("node {name} answered something else than logs")),
            Ok(Err(e)) => Err(format!(
                "node {name}: cannot read the logs of task {}: {e}",
                task.id
            )),
            Err(_) => Err(format!(
                "node {name} did not answer within {:?}: the logs of task {} are not available",
                self.settings.request_bound, task.id
            )),
        }
    }

    async fn run(self, tx: mpsc::Sender<Bytes>) {
        let state = self.cluster.state();
        let mut sources: Vec<Source> = self
            .tasks(&state)
            .into_iter()
            .map(|task| Source {
                task,
                queue: VecDeque::new(),
                cursor: None,
                done: false,
            })
            .collect();
        // First: what is there, merged by time.
        loop {
            let dry: Vec<usize> = (0..sources.len())
                .filter(|&i| sources[i].queue.is_empty() && !sources[i].done)
                .collect();
            if !dry.is_empty() {
                let this = &self;
                let fetched: Vec<(usize, Result<TaskLogs, String>)> = futures::stream::iter(dry)
                    .map(|i| {
                        let (task, cursor) = (&sources[i].task, sources[i].cursor);
                        async move { (i, this.fetch(task, cursor, Duration::ZERO).await) }
                    })
                    .buffer_unordered(self.settings.fan_out.max(1))
                    .collect()
                    .await;
                for (i, result) in fetched {
                    let source = &mut sources[i];
                    match result {
                        Ok(logs) => {
                            source.queue.extend(logs.batch.lines);
                            source.cursor = Some(logs.batch.cursor);
                            source.done = !logs.batch.more;
                        }
                        Err(text) => {
                            source.queue.push_back(warning(text));
                            source.done = true;
                        }
                    }
                }
            }
            let heads: Vec<Option<&LogLine>> = sources.iter().map(|s| s.queue.front()).collect();
            let Some(i) = earliest(&heads) else { break };
            let Some(line) = sources[i].queue.pop_front() else {
                break;
            };
            if tx.send(self.frame(&sources[i].task, &line)).await.is_err() {
                return;
            }
        }
        if !self.follow {
            return;
        }
        self.follow(sources, tx).await;
    }

    /// Follow: a poller per task; new tasks join, removed ones leave, until the client
    /// goes or the service is removed.
    async fn follow(self, sources: Vec<Source>, tx: mpsc::Sender<Bytes>) {
        let stop = CancellationToken::new();
        let _stop_pollers = stop.clone().drop_guard();
        let mut polled: BTreeMap<String, CancellationToken> = BTreeMap::new();
        for source in sources {
            let token = stop.child_token();
            polled.insert(source.task.id.clone(), token.clone());
            tokio::spawn(
                self.clone()
                    .poll(source.task, source.cursor, tx.clone(), token),
            );
        }
        let mut rescan = tokio::time::interval(self.settings.rescan);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = rescan.tick() => {}
            }
            let state = self.cluster.state();
            if !state.services.contains_key(&self.service_id) {
                return; // the service was removed: the stream ends
            }
            let tasks = self.tasks(&state);
            for task in &tasks {
                if !polled.contains_key(&task.id) {
                    let token = stop.child_token();
                    polled.insert(task.id.clone(), token.clone());
                    tokio::spawn(self.clone().poll(task.clone(), None, tx.clone(), token));
                }
            }
            polled.retain(|id, token| {
                let keep = state.tasks.contains_key(id);
                if !keep {
                    token.cancel();
                }
                keep
            });
        }
    }

    /// Follow one task: ask its node again and again (each ask waits up to `follow_wait`
    /// on the node for a new line). One warning per stretch of errors.
    async fn poll(
        self,
        task: Task,
        mut cursor: Option<LogCursor>,
        tx: mpsc::Sender<Bytes>,
        stop: CancellationToken,
    ) {
        let mut warned = false;
        loop {
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.fetch(&task, cursor, self.settings.follow_wait) => r,
            };
            let idle = match result {
                Ok(logs) => {
                    warned = false;
                    for line in &logs.batch.lines {
                        if tx.send(self.frame(&task, line)).await.is_err() {
                            return;
                        }
                    }
                    if logs.found {
                        cursor = Some(logs.batch.cursor);
                    }
                    logs.batch.lines.is_empty() && (!logs.found || !logs.running)
                }
                Err(text) => {
                    if !warned && tx.send(self.frame(&task, &warning(text))).await.is_err() {
                        return;
                    }
                    warned = true;
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(self.settings.retry) => {}
                }
            }
        }
    }
}
