//! The replicated cluster state and the one pure function that changes it.
//!
//! ```text
//!  committed log entry ──▶ Proposal { at, command } ──▶ apply(&mut State, &command, at)
//!                                                          │ no IO, no clock, no randomness
//!                                                          ▼
//!                                   Ok(Version { index }) │ Err(CommandError), state untouched
//! ```
//!
//! Every replica applies the same commands in the same order and must reach the same `State`,
//! byte for byte. So `apply` reads nothing but its arguments: the time comes with the command
//! (stamped by the proposer), identifiers are chosen by the proposer, and maps are `BTreeMap`s
//! so iteration and encoding order never depend on hashing.
//!
//! Invariants `apply` keeps (checked by the property test below):
//! * a refused command leaves the state exactly as it was;
//! * every command that changes something raises `State::index` by exactly one, and every
//!   object it wrote carries that index as its `Version.Index` (Docker's optimistic
//!   concurrency); a command that would change nothing (a repeated status report) is accepted
//!   and leaves the index alone;
//! * once initialised, the cluster always has at least one node whose `Spec.Role` is manager;
//! * join tokens are kept only as hashes; the plaintext never enters the log;
//! * the addresses in use in the network pools are exactly those the tasks and the services'
//!   VIPs hold, each held once, in a block of its holder (`addressing.rs`; checked by the
//!   orchestrator's property test); networks' subnets never overlap.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::addressing::{self, NewNetwork};
use super::ipam::Pool;
use crate::types::network::{Network, NetworkAttachment};
use crate::types::service::{RawJson, Service, ServiceSpec, Task, TaskState, TaskStatus};
use crate::types::{
    ClusterInfo, CommandError, ManagerStatus, Node, NodeDescription, NodeRole, NodeSpec, NodeState,
    NodeStatus, Reachability, SwarmSpec, Timestamp, TlsInfo, Version,
    swarm::{DEFAULT_ADDR_POOL, DEFAULT_DATA_PATH_PORT, DEFAULT_SUBNET_SIZE},
};

/// Everything the cluster agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The index of the last change; Docker's `Version.Index` of whatever it wrote.
    pub index: u64,
    /// `None` until `InitCluster`.
    pub cluster: Option<Cluster>,
    /// By node ID.
    pub nodes: BTreeMap<String, Node>,
    /// IDs of removed nodes: such a node may not come back under the same identity (it must
    /// join afresh, with a new ID), as in Docker.
    pub removed_nodes: BTreeSet<String>,
    /// By service ID.
    pub services: BTreeMap<String, Service>,
    /// By task ID: every task of every service, history included.
    pub tasks: BTreeMap<String, Task>,
    /// By network ID.
    pub networks: BTreeMap<String, Network>,
    /// Each network's address pool, by network ID (see `ipam.rs`).
    pub pools: BTreeMap<String, Pool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub info: ClusterInfo,
    pub join_token_hashes: JoinTokenHashes,
}

/// Hashes of the join tokens' secrets, computed by the proposer (hex SHA-256 by convention;
/// the state machine only compares them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenHashes {
    pub worker: String,
    pub manager: String,
}

impl JoinTokenHashes {
    pub fn for_role(&self, role: NodeRole) -> &str {
        match role {
            NodeRole::Worker => &self.worker,
            NodeRole::Manager => &self.manager,
        }
    }

    fn for_role_mut(&mut self, role: NodeRole) -> &mut String {
        match role {
            NodeRole::Worker => &mut self.worker,
            NodeRole::Manager => &mut self.manager,
        }
    }
}

/// A node as it asks to join: everything but what the cluster assigns (version, times).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNode {
    pub id: String,
    pub spec: NodeSpec,
    pub description: NodeDescription,
    /// The IP address peers reach it at (`Status.Addr`).
    pub addr: String,
}

/// A change to the cluster, as it travels in the Raft log.
// Variants differ in size (InitCluster carries a whole swarm spec), and that is fine: a command
// lives once per proposal, briefly, on its way to the log. Boxing would only make building
// one clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `swarm init`: the cluster and its first manager in one step, so a cluster never exists
    /// without a manager. Zero values in `spec` and the network fields mean Docker's default.
    InitCluster {
        cluster_id: String,
        spec: SwarmSpec,
        default_addr_pool: Vec<String>,
        subnet_size: u32,
        data_path_port: u32,
        join_token_hashes: JoinTokenHashes,
        /// Its `spec.role` is forced to manager.
        manager: NewNode,
        /// `IP:port` of the first manager's cluster endpoint (`ManagerStatus.Addr`).
        manager_addr: String,
    },
    /// `swarm join`, after the token was checked: the node is ready (it just talked to us).
    /// A manager joins with `spec.role` manager but without `ManagerStatus`, which
    /// `SetManagerStatus` adds once it is a Raft voter.
    AddNode { node: NewNode },
    /// `node update` / `promote` / `demote`: the whole spec, at the version the caller read.
    UpdateNode {
        id: String,
        version: u64,
        spec: NodeSpec,
    },
    /// `node rm [--force]`. Managers must be demoted first; a ready node needs `force`.
    RemoveNode { id: String, force: bool },
    /// Liveness as the managers observe it (heartbeats, gossip).
    SetNodeStatus {
        id: String,
        state: NodeState,
        addr: String,
        message: String,
    },
    /// Records that the node became a Raft voter (`Some`) or stopped being one (`None`), the
    /// second half of promote / demote. A status with `leader` set clears it on every other
    /// node: there is one leader.
    SetManagerStatus {
        id: String,
        status: Option<ManagerStatus>,
    },
    /// `swarm update`: the whole swarm spec, at the version the caller read.
    UpdateCluster { version: u64, spec: SwarmSpec },
    /// `swarm join-token --rotate`: the old token stops working.
    RotateJoinToken { role: NodeRole, new_hash: String },
    /// `service create`: the spec exactly as the client sent it (validated here too).
    CreateService { id: String, spec: RawJson },
    /// `service update` (and scale): the whole spec, at the version the caller read.
    UpdateService {
        id: String,
        version: u64,
        spec: RawJson,
    },
    /// `service rm`: the service goes; its tasks are told to go (desired state `remove`)
    /// and are forgotten once they have stopped.
    RemoveService { id: String },
    /// The orchestrator's new tasks.
    CreateTasks { tasks: Vec<Task> },
    /// The orchestrator's and scheduler's changes to tasks, in one batch. Changes to tasks
    /// that are gone are skipped; a status never moves backwards.
    UpdateTasks { changes: Vec<TaskChange> },
    /// An agent's batched status reports for the tasks on its node.
    ReportTaskStatus {
        node: String,
        reports: Vec<(String, TaskStatus)>,
    },
    /// The orchestrator forgets tasks (history beyond the retention limit, tasks of removed
    /// services that have stopped). Their network addresses go back to the pools.
    RemoveTasks { ids: Vec<String> },
    /// `network create`: the ID is the proposer's; the subnet, if not given, the pool's
    /// first free one.
    CreateNetwork { id: String, network: NewNetwork },
    /// `network rm`: refused while a service or task uses it.
    RemoveNetwork { id: String },
}

/// One change to one task; `None` leaves the field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskChange {
    pub id: String,
    pub node_id: Option<String>,
    pub status: Option<TaskStatus>,
    pub desired_state: Option<TaskState>,
    pub attempt: Option<u64>,
    /// The addresses the orchestrator chose when placing it (with `node_id`).
    pub networks_attachments: Option<Vec<NetworkAttachment>>,
}

impl Command {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::InitCluster { .. } => "init-cluster",
            Command::AddNode { .. } => "add-node",
            Command::UpdateNode { .. } => "update-node",
            Command::RemoveNode { .. } => "remove-node",
            Command::SetNodeStatus { .. } => "set-node-status",
            Command::SetManagerStatus { .. } => "set-manager-status",
            Command::UpdateCluster { .. } => "update-cluster",
            Command::RotateJoinToken { .. } => "rotate-join-token",
            Command::CreateService { .. } => "create-service",
            Command::UpdateService { .. } => "update-service",
            Command::RemoveService { .. } => "remove-service",
            Command::CreateTasks { .. } => "create-tasks",
            Command::UpdateTasks { .. } => "update-tasks",
            Command::ReportTaskStatus { .. } => "report-task-status",
            Command::RemoveTasks { .. } => "remove-tasks",
            Command::CreateNetwork { .. } => "create-network",
            Command::RemoveNetwork { .. } => "remove-network",
        }
    }
}

/// What applying one log entry gave: the state's index afterwards (the `Version.Index` of
/// everything the command wrote), or why the command was refused.
pub type CommandResult = Result<Version, CommandError>;

impl State {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Nodes whose spec says manager (asked for, whether or not already a voter).
    pub fn manager_count(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.spec.role == NodeRole::Manager)
            .count()
    }

    /// The role a join token grants, given the hash of the secret it presented.
    pub fn role_for_join_token_hash(&self, hash: &str) -> Option<NodeRole> {
        let hashes = &self.cluster.as_ref()?.join_token_hashes;
        [NodeRole::Manager, NodeRole::Worker]
            .into_iter()
            .find(|&role| !hash.is_empty() && hashes.for_role(role) == hash)
    }

    fn cluster_mut(&mut self) -> Result<&mut Cluster, CommandError> {
        self.cluster.as_mut().ok_or(CommandError::NotInitialized)
    }

    /// The service with this `Spec.Name`.
    pub fn service_named(&self, name: &str) -> Option<&Service> {
        self.services.values().find(|s| {
            ServiceSpec::from_raw(&s.spec)
                .map(|spec| spec.name == name)
                .unwrap_or(false)
        })
    }

    /// The network with this `Spec.Name`.
    pub fn network_named(&self, name: &str) -> Option<&Network> {
        self.networks.values().find(|n| n.spec.name == name)
    }

    fn require_cluster(&self) -> Result<&Cluster, CommandError> {
        self.cluster.as_ref().ok_or(CommandError::NotInitialized)
    }

    fn node_mut(&mut self, id: &str) -> Result<&mut Node, CommandError> {
        self.nodes
            .get_mut(id)
            .ok_or_else(|| CommandError::NodeNotFound { id: id.to_owned() })
    }

    fn existing_node(&self, id: &str) -> Result<&Node, CommandError> {
        self.nodes
            .get(id)
            .ok_or_else(|| CommandError::NodeNotFound { id: id.to_owned() })
    }

    /// Starts a change: the index every object written by this command gets.
    fn next_index(&mut self) -> Version {
        self.index += 1;
        Version { index: self.index }
    }

    fn current(&self) -> Version {
        Version { index: self.index }
    }
}

/// Applies one command. Pure: the same state, command and time always give the same result.
/// On `Err` the state is untouched (every check runs before the first write).
pub fn apply(state: &mut State, command: &Command, now: Timestamp) -> CommandResult {
    match command {
        Command::InitCluster {
            cluster_id,
            spec,
            default_addr_pool,
            subnet_size,
            data_path_port,
            join_token_hashes,
            manager,
            manager_addr,
        } => {
            if state.cluster.is_some() {
                return Err(CommandError::AlreadyInitialized);
            }
            require_non_empty("cluster ID", cluster_id)?;
            require_non_empty("worker join token hash", &join_token_hashes.worker)?;
            require_non_empty("manager join token hash", &join_token_hashes.manager)?;
            require_non_empty("node ID", &manager.id)?;
            let mut spec = spec.clone();
            spec.fill_defaults();
            let default_addr_pool = if default_addr_pool.is_empty() {
                vec![DEFAULT_ADDR_POOL.to_owned()]
            } else {
                default_addr_pool.clone()
            };

            let version = state.next_index();
            state.cluster = Some(Cluster {
                info: ClusterInfo {
                    id: cluster_id.clone(),
                    version,
                    created_at: now,
                    updated_at: now,
                    spec,
                    tls_info: TlsInfo::default(),
                    root_rotation_in_progress: false,
                    default_addr_pool,
                    subnet_size: non_zero_or(*subnet_size, DEFAULT_SUBNET_SIZE),
                    data_path_port: non_zero_or(*data_path_port, DEFAULT_DATA_PATH_PORT),
                },
                join_token_hashes: join_token_hashes.clone(),
            });
            let mut node = new_node(manager, version, now);
            node.spec.role = NodeRole::Manager;
            node.manager_status = Some(ManagerStatus {
                leader: true,
                reachability: Reachability::Reachable,
                addr: manager_addr.clone(),
            });
            state.nodes.insert(node.id.clone(), node);
            // Docker makes the ingress network at init; a pool with no room leaves it out.
            if let Some((network, pool)) =
                addressing::ingress_network(state, cluster_id, version, now)
            {
                state.pools.insert(network.id.clone(), pool);
                state.networks.insert(network.id.clone(), network);
            }
            Ok(version)
        }

        Command::AddNode { node } => {
            state.require_cluster()?;
            require_non_empty("node ID", &node.id)?;
            if state.nodes.contains_key(&node.id) {
                return Err(CommandError::NodeExists {
                    id: node.id.clone(),
                });
            }
            if state.removed_nodes.contains(&node.id) {
                return Err(CommandError::NodeRemoved {
                    id: node.id.clone(),
                });
            }
            let version = state.next_index();
            state
                .nodes
                .insert(node.id.clone(), new_node(node, version, now));
            Ok(version)
        }

        Command::UpdateNode { id, version, spec } => {
            state.require_cluster()?;
            let node = state.existing_node(id)?;
            if node.version.index != *version {
                return Err(CommandError::OutOfSequence);
            }
            let demoting = node.spec.role == NodeRole::Manager && spec.role == NodeRole::Worker;
            if demoting && state.manager_count() <= 1 {
                return Err(CommandError::LastManager);
            }
            let version = state.next_index();
            let node = state.node_mut(id)?;
            node.spec = spec.clone();
            touch(&mut node.version, &mut node.updated_at, version, now);
            Ok(version)
        }

        Command::RemoveNode { id, force } => {
            state.require_cluster()?;
            let node = state.existing_node(id)?;
            if node.spec.role == NodeRole::Manager || node.is_manager() {
                return Err(CommandError::RemoveManager { id: id.clone() });
            }
            if !force && node.status.state == NodeState::Ready {
                return Err(CommandError::NodeNotDown { id: id.clone() });
            }
            let version = state.next_index();
            state.nodes.remove(id);
            state.removed_nodes.insert(id.clone());
            Ok(version)
        }

        Command::SetNodeStatus {
            id,
            state: node_state,
            addr,
            message,
        } => {
            state.require_cluster()?;
            let status = NodeStatus {
                state: *node_state,
                message: message.clone(),
                addr: addr.clone(),
            };
            if state.existing_node(id)?.status == status {
                return Ok(state.current());
            }
            let version = state.next_index();
            let node = state.node_mut(id)?;
            node.status = status;
            touch(&mut node.version, &mut node.updated_at, version, now);
            Ok(version)
        }

        Command::SetManagerStatus { id, status } => {
            state.require_cluster()?;
            let target_unchanged = state.existing_node(id)?.manager_status == *status;
            let takes_leadership = status.as_ref().is_some_and(|s| s.leader);
            let other_leaders: Vec<String> = if takes_leadership {
                state
                    .nodes
                    .values()
                    .filter(|n| n.id != *id && n.manager_status.as_ref().is_some_and(|s| s.leader))
                    .map(|n| n.id.clone())
                    .collect()
            } else {
                Vec::new()
            };
            if target_unchanged && other_leaders.is_empty() {
                return Ok(state.current());
            }
            let version = state.next_index();
            for other in other_leaders {
                let node = state.node_mut(&other)?;
                if let Some(s) = node.manager_status.as_mut() {
                    s.leader = false;
                }
                touch(&mut node.version, &mut node.updated_at, version, now);
            }
            let node = state.node_mut(id)?;
            if !target_unchanged {
                node.manager_status = status.clone();
                touch(&mut node.version, &mut node.updated_at, version, now);
            }
            Ok(version)
        }

        Command::UpdateCluster { version, spec } => {
            let cluster = state.require_cluster()?;
            if cluster.info.version.index != *version {
                return Err(CommandError::OutOfSequence);
            }
            let mut spec = spec.clone();
            if spec.name.is_empty() {
                spec.name = cluster.info.spec.name.clone();
            }
            if spec.name != cluster.info.spec.name {
                return Err(CommandError::InvalidArgument(format!(
                    "the swarm is named {:?} and cannot be renamed",
                    cluster.info.spec.name
                )));
            }
            let version = state.next_index();
            let info = &mut state.cluster_mut()?.info;
            info.spec = spec;
            touch(&mut info.version, &mut info.updated_at, version, now);
            Ok(version)
        }

        Command::RotateJoinToken { role, new_hash } => {
            state.require_cluster()?;
            require_non_empty("join token hash", new_hash)?;
            let version = state.next_index();
            let cluster = state.cluster_mut()?;
            *cluster.join_token_hashes.for_role_mut(*role) = new_hash.clone();
            touch(
                &mut cluster.info.version,
                &mut cluster.info.updated_at,
                version,
                now,
            );
            Ok(version)
        }

        Command::CreateService { id, spec } => {
            state.require_cluster()?;
            require_non_empty("service ID", id)?;
            let parsed = ServiceSpec::from_raw(spec).map_err(CommandError::InvalidSpec)?;
            if state.services.contains_key(id) {
                return Err(CommandError::InvalidArgument(format!(
                    "service ID {id} is taken"
                )));
            }
            if state.service_named(&parsed.name).is_some() {
                return Err(CommandError::ServiceExists { name: parsed.name });
            }
            let change = addressing::service_endpoint(state, id, &parsed, None)?;
            let version = state.next_index();
            state.pools = change.pools;
            state.services.insert(
                id.clone(),
                Service {
                    id: id.clone(),
                    version,
                    created_at: now,
                    updated_at: now,
                    spec: spec.clone(),
                    previous_spec: None,
                    spec_version: 1,
                    endpoint: change.endpoint,
                },
            );
            Ok(version)
        }

        Command::UpdateService {
            id,
            version: read,
            spec,
        } => {
            state.require_cluster()?;
            let parsed = ServiceSpec::from_raw(spec).map_err(CommandError::InvalidSpec)?;
            let service = state
                .services
                .get(id)
                .ok_or_else(|| CommandError::ServiceNotFound { id: id.clone() })?;
            if service.version.index != *read {
                return Err(CommandError::OutOfSequence);
            }
            let old = ServiceSpec::from_raw(&service.spec).map(|s| s.name).ok();
            if old.as_deref().is_some_and(|n| n != parsed.name) {
                return Err(CommandError::InvalidSpec(
                    "renaming services is not supported".into(),
                ));
            }
            let change = addressing::service_endpoint(state, id, &parsed, Some(&service.endpoint))?;
            let version = state.next_index();
            state.pools = change.pools;
            let service = state.services.get_mut(id).expect("checked above");
            service.endpoint = change.endpoint;
            service.previous_spec = Some(std::mem::replace(&mut service.spec, spec.clone()));
            service.spec_version += 1;
            touch(&mut service.version, &mut service.updated_at, version, now);
            Ok(version)
        }

        Command::RemoveService { id } => {
            state.require_cluster()?;
            if !state.services.contains_key(id) {
                return Err(CommandError::ServiceNotFound { id: id.clone() });
            }
            let version = state.next_index();
            if let Some(service) = state.services.remove(id) {
                addressing::release_vips(&mut state.pools, &service.endpoint);
            }
            for task in state.tasks.values_mut().filter(|t| &t.service_id == id) {
                if task.desired_state != TaskState::Remove {
                    task.desired_state = TaskState::Remove;
                    touch(&mut task.version, &mut task.updated_at, version, now);
                }
            }
            Ok(version)
        }

        Command::CreateTasks { tasks } => {
            state.require_cluster()?;
            for task in tasks {
                require_non_empty("task ID", &task.id)?;
                if state.tasks.contains_key(&task.id) {
                    return Err(CommandError::InvalidArgument(format!(
                        "task ID {} is taken",
                        task.id
                    )));
                }
                if !state.services.contains_key(&task.service_id) {
                    return Err(CommandError::ServiceNotFound {
                        id: task.service_id.clone(),
                    });
                }
            }
            if tasks.is_empty() {
                return Ok(state.current());
            }
            let pools = if tasks.iter().any(|t| !t.networks_attachments.is_empty()) {
                let mut pools = state.pools.clone();
                for task in tasks {
                    addressing::claim_task(&mut pools, &task.node_id, &task.networks_attachments)?;
                }
                Some(pools)
            } else {
                None
            };
            let version = state.next_index();
            if let Some(pools) = pools {
                state.pools = pools;
            }
            for task in tasks {
                let mut task = task.clone();
                task.version = version;
                task.created_at = now;
                task.updated_at = now;
                if task.status.timestamp == Timestamp::default() {
                    task.status.timestamp = now;
                }
                state.tasks.insert(task.id.clone(), task);
            }
            Ok(version)
        }

        Command::UpdateTasks { changes } => {
            state.require_cluster()?;
            let changed: Vec<&TaskChange> = changes
                .iter()
                .filter(|c| state.tasks.get(&c.id).is_some_and(|t| c.changes(t)))
                .collect();
            if changed.is_empty() {
                return Ok(state.current());
            }
            let attaching: Vec<(&Task, &TaskChange)> = changed
                .iter()
                .filter(|c| c.networks_attachments.is_some())
                .filter_map(|c| state.tasks.get(&c.id).map(|t| (t, *c)))
                .collect();
            let pools = if attaching.is_empty() {
                None
            } else {
                let mut pools = state.pools.clone();
                for (task, change) in attaching {
                    let node = change.node_id.as_ref().unwrap_or(&task.node_id);
                    addressing::release_task(&mut pools, &task.networks_attachments);
                    let new = change.networks_attachments.as_deref().unwrap_or_default();
                    addressing::claim_task(&mut pools, node, new)?;
                }
                Some(pools)
            };
            let version = state.next_index();
            if let Some(pools) = pools {
                state.pools = pools;
            }
            for change in changed {
                if let Some(task) = state.tasks.get_mut(&change.id) {
                    change.apply_to(task);
                    touch(&mut task.version, &mut task.updated_at, version, now);
                }
            }
            Ok(version)
        }

        Command::ReportTaskStatus { node, reports } => {
            state.require_cluster()?;
            // A terminal status is final: a later report of the same end (a second look at
            // an exited container) must not move its timestamp, which restart delays count from.
            let moves = |task: &Task, status: &TaskStatus| {
                &task.node_id == node
                    && !task.status.state.is_terminal()
                    && status.state >= task.status.state
                    && *status != task.status
            };
            let changed: Vec<&(String, TaskStatus)> = reports
                .iter()
                .filter(|(id, status)| state.tasks.get(id).is_some_and(|t| moves(t, status)))
                .collect();
            if changed.is_empty() {
                return Ok(state.current());
            }
            let version = state.next_index();
            for (id, status) in changed {
                if let Some(task) = state.tasks.get_mut(id) {
                    task.status = status.clone();
                    touch(&mut task.version, &mut task.updated_at, version, now);
                }
            }
            Ok(version)
        }

        Command::RemoveTasks { ids } => {
            state.require_cluster()?;
            if !ids.iter().any(|id| state.tasks.contains_key(id)) {
                return Ok(state.current());
            }
            let version = state.next_index();
            for id in ids {
                if let Some(task) = state.tasks.remove(id) {
                    addressing::release_task(&mut state.pools, &task.networks_attachments);
                }
            }
            Ok(version)
        }

        Command::CreateNetwork { id, network } => {
            state.require_cluster()?;
            let version = Version {
                index: state.index + 1,
            };
            let (network, pool) = addressing::create_network(state, id, network, version, now)?;
            state.next_index();
            state.pools.insert(id.clone(), pool);
            state.networks.insert(id.clone(), network);
            Ok(version)
        }

        Command::RemoveNetwork { id } => {
            state.require_cluster()?;
            addressing::network_in_use(state, id)?;
            let version = state.next_index();
            state.networks.remove(id);
            state.pools.remove(id);
            Ok(version)
        }
    }
}

impl TaskChange {
    fn changes(&self, task: &Task) -> bool {
        self.node_id.as_ref().is_some_and(|n| *n != task.node_id)
            || self.status.as_ref().is_some_and(|s| {
                !task.status.state.is_terminal()
                    && s.state >= task.status.state
                    && *s != task.status
            })
            || self.desired_state.is_some_and(|d| d != task.desired_state)
            || self.attempt.is_some_and(|a| a != task.attempt)
            || self
                .networks_attachments
                .as_ref()
                .is_some_and(|a| *a != task.networks_attachments)
    }

    fn apply_to(&self, task: &mut Task) {
        if let Some(n) = &self.node_id {
            task.node_id = n.clone();
        }
        if let Some(s) = &self.status
            && !task.status.state.is_terminal()
            && s.state >= task.status.state
        {
            task.status = s.clone();
        }
        if let Some(d) = self.desired_state {
            task.desired_state = d;
        }
        if let Some(a) = self.attempt {
            task.attempt = a;
        }
        if let Some(a) = &self.networks_attachments {
            task.networks_attachments = a.clone();
        }
    }
}

fn new_node(new: &NewNode, version: Version, now: Timestamp) -> Node {
    Node {
        id: new.id.clone(),
        version,
        created_at: now,
        updated_at: now,
        spec: new.spec.clone(),
        description: new.description.clone(),
        status: NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: new.addr.clone(),
        },
        manager_status: None,
    }
}

fn touch(
    object_version: &mut Version,
    updated_at: &mut Timestamp,
    version: Version,
    now: Timestamp,
) {
    *object_version = version;
    *updated_at = now;
}

fn require_non_empty(what: &str, value: &str) -> Result<(), CommandError> {
    if value.is_empty() {
        Err(CommandError::InvalidArgument(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

fn non_zero_or(value: u32, default: u32) -> u32 {
    if value == 0 { default } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::types::NodeAvailability;

    const T0: Timestamp = Timestamp(1_700_000_000_000_000_000);

    fn at(seconds: i64) -> Timestamp {
        Timestamp(T0.0 + seconds * 1_000_000_000)
    }

    fn new_node(id: &str, role: NodeRole) -> NewNode {
        NewNode {
            id: id.into(),
            spec: NodeSpec {
                role,
                ..Default::default()
            },
            description: NodeDescription {
                hostname: format!("host-{id}"),
                ..Default::default()
            },
            addr: "198.18.0.11".into(),
        }
    }

    fn init_command() -> Command {
        Command::InitCluster {
            cluster_id: "cluster1".into(),
            spec: SwarmSpec::default(),
            default_addr_pool: vec![],
            subnet_size: 0,
            data_path_port: 0,
            join_token_hashes: JoinTokenHashes {
                worker: "hw1".into(),
                manager: "hm1".into(),
            },
            manager: new_node("m1", NodeRole::Worker),
            manager_addr: "198.18.0.11:2377".into(),
        }
    }

    /// A cluster with manager m1 (index 1) and worker w1 (index 2).
    fn cluster_with_worker() -> State {
        let mut s = State::default();
        apply(&mut s, &init_command(), at(0)).unwrap();
        let add = Command::AddNode {
            node: new_node("w1", NodeRole::Worker),
        };
        assert_eq!(apply(&mut s, &add, at(1)), Ok(Version { index: 2 }));
        s
    }

    /// Applies a command that must be refused, and checks it changed nothing.
    fn refused(state: &mut State, command: Command) -> CommandError {
        let before = state.clone();
        let err = apply(state, &command, at(99)).unwrap_err();
        assert_eq!(
            *state,
            before,
            "a refused {} changed the state",
            command.name()
        );
        err
    }

    fn spec(role: NodeRole, availability: NodeAvailability) -> NodeSpec {
        NodeSpec {
            role,
            availability,
            ..Default::default()
        }
    }

    #[test]
    fn init_creates_the_cluster_and_its_leader_with_docker_defaults() {
        let mut s = State::default();
        assert_eq!(
            apply(&mut s, &init_command(), at(0)),
            Ok(Version { index: 1 })
        );

        let c = s.cluster.as_ref().unwrap();
        assert_eq!(c.info.id, "cluster1");
        assert_eq!(c.info.version.index, 1);
        assert_eq!(c.info.created_at, at(0));
        assert_eq!(c.info.spec.name, "default");
        assert_eq!(c.info.spec.raft.election_tick, 10);
        assert_eq!(c.info.default_addr_pool, vec!["198.19.0.0/17".to_owned()]);
        assert_eq!(c.info.subnet_size, 20);
        assert_eq!(c.info.data_path_port, 4789);

        let m1 = s.node("m1").unwrap();
        assert_eq!(m1.version.index, 1);
        assert_eq!(
            m1.spec.role,
            NodeRole::Manager,
            "init forces the manager role"
        );
        assert_eq!(m1.status.state, NodeState::Ready);
        let ms = m1.manager_status.as_ref().unwrap();
        assert!(ms.leader);
        assert_eq!(ms.reachability, Reachability::Reachable);
        assert_eq!(ms.addr, "198.18.0.11:2377");
        assert_eq!(s.manager_count(), 1);
    }

    #[test]
    fn init_keeps_explicit_network_settings_and_refuses_twice_or_blanks() {
        let mut s = State::default();
        let Command::InitCluster {
            cluster_id,
            spec,
            join_token_hashes,
            manager,
            manager_addr,
            ..
        } = init_command()
        else {
            unreachable!()
        };
        let explicit = Command::InitCluster {
            cluster_id,
            spec,
            default_addr_pool: vec!["198.19.64.0/18".into()],
            subnet_size: 26,
            data_path_port: 4790,
            join_token_hashes,
            manager,
            manager_addr,
        };
        apply(&mut s, &explicit, at(0)).unwrap();
        let info = &s.cluster.as_ref().unwrap().info;
        assert_eq!(info.default_addr_pool, vec!["198.19.64.0/18".to_owned()]);
        assert_eq!((info.subnet_size, info.data_path_port), (26, 4790));

        assert_eq!(
            refused(&mut s, init_command()),
            CommandError::AlreadyInitialized
        );

        let mut empty = State::default();
        let mut blank_id = init_command();
        if let Command::InitCluster { cluster_id, .. } = &mut blank_id {
            cluster_id.clear();
        }
        assert!(matches!(
            refused(&mut empty, blank_id),
            CommandError::InvalidArgument(_)
        ));
        let mut blank_hash = init_command();
        if let Command::InitCluster {
            join_token_hashes, ..
        } = &mut blank_hash
        {
            join_token_hashes.worker.clear();
        }
        assert!(matches!(
            refused(&mut empty, blank_hash),
            CommandError::InvalidArgument(_)
        ));
    }

    #[test]
    fn every_other_command_needs_an_initialised_cluster() {
        let commands = [
            Command::AddNode {
                node: new_node("w1", NodeRole::Worker),
            },
            Command::UpdateNode {
                id: "m1".into(),
                version: 1,
                spec: NodeSpec::default(),
            },
            Command::RemoveNode {
                id: "m1".into(),
                force: true,
            },
            Command::SetNodeStatus {
                id: "m1".into(),
                state: NodeState::Down,
                addr: String::new(),
                message: String::new(),
            },
            Command::SetManagerStatus {
                id: "m1".into(),
                status: None,
            },
            Command::UpdateCluster {
                version: 1,
                spec: SwarmSpec::default(),
            },
            Command::RotateJoinToken {
                role: NodeRole::Worker,
                new_hash: "h".into(),
            },
        ];
        for command in commands {
            let mut s = State::default();
            assert_eq!(refused(&mut s, command), CommandError::NotInitialized);
        }
    }

    #[test]
    fn add_node_creates_a_ready_node_and_refuses_duplicates_removed_and_blank_ids() {
        let mut s = cluster_with_worker();
        let w1 = s.node("w1").unwrap();
        assert_eq!(w1.version.index, 2);
        assert_eq!((w1.created_at, w1.updated_at), (at(1), at(1)));
        assert_eq!(w1.status.state, NodeState::Ready);
        assert_eq!(w1.status.addr, "198.18.0.11");
        assert_eq!(w1.description.hostname, "host-w1");
        assert!(w1.manager_status.is_none());

        // A manager joins with the manager role but is not a voter yet.
        let m2 = Command::AddNode {
            node: new_node("m2", NodeRole::Manager),
        };
        apply(&mut s, &m2, at(2)).unwrap();
        assert_eq!(s.node("m2").unwrap().spec.role, NodeRole::Manager);
        assert!(!s.node("m2").unwrap().is_manager());

        let again = Command::AddNode {
            node: new_node("w1", NodeRole::Worker),
        };
        assert_eq!(
            refused(&mut s, again),
            CommandError::NodeExists { id: "w1".into() }
        );
        let blank = Command::AddNode {
            node: new_node("", NodeRole::Worker),
        };
        assert!(matches!(
            refused(&mut s, blank),
            CommandError::InvalidArgument(_)
        ));

        let rm = Command::RemoveNode {
            id: "w1".into(),
            force: true,
        };
        apply(&mut s, &rm, at(3)).unwrap();
        let back = Command::AddNode {
            node: new_node("w1", NodeRole::Worker),
        };
        assert_eq!(
            refused(&mut s, back),
            CommandError::NodeRemoved { id: "w1".into() }
        );
    }

    #[test]
    fn update_node_needs_the_current_version() {
        let mut s = cluster_with_worker();
        let drain = spec(NodeRole::Worker, NodeAvailability::Drain);

        let stale = Command::UpdateNode {
            id: "w1".into(),
            version: 1,
            spec: drain.clone(),
        };
        let err = refused(&mut s, stale);
        assert_eq!(err, CommandError::OutOfSequence);
        assert_eq!(err.to_string(), "update out of sequence");

        let current = Command::UpdateNode {
            id: "w1".into(),
            version: 2,
            spec: drain.clone(),
        };
        assert_eq!(apply(&mut s, &current, at(5)), Ok(Version { index: 3 }));
        let w1 = s.node("w1").unwrap();
        assert_eq!(w1.spec, drain);
        assert_eq!(w1.version.index, 3);
        assert_eq!((w1.created_at, w1.updated_at), (at(1), at(5)));

        // The same request again is now stale: its version was consumed.
        assert_eq!(refused(&mut s, current), CommandError::OutOfSequence);

        let missing = Command::UpdateNode {
            id: "nope".into(),
            version: 3,
            spec: drain,
        };
        assert_eq!(
            refused(&mut s, missing),
            CommandError::NodeNotFound { id: "nope".into() }
        );
    }

    #[test]
    fn the_last_manager_cannot_be_demoted_but_one_of_two_can() {
        let mut s = cluster_with_worker();
        let demote_m1 = |version| Command::UpdateNode {
            id: "m1".into(),
            version,
            spec: spec(NodeRole::Worker, NodeAvailability::Active),
        };
        assert_eq!(refused(&mut s, demote_m1(1)), CommandError::LastManager);

        let promote_w1 = Command::UpdateNode {
            id: "w1".into(),
            version: 2,
            spec: spec(NodeRole::Manager, NodeAvailability::Active),
        };
        apply(&mut s, &promote_w1, at(2)).unwrap();
        assert_eq!(s.manager_count(), 2);
        assert_eq!(
            apply(&mut s, &demote_m1(1), at(3)),
            Ok(Version { index: 4 })
        );
        assert_eq!(s.manager_count(), 1);
        // m1 is still a voter until SetManagerStatus { None } records the Raft change.
        assert!(s.node("m1").unwrap().is_manager());
    }

    #[test]
    fn remove_node_refuses_managers_and_ready_nodes_without_force() {
        let mut s = cluster_with_worker();
        let rm = |id: &str, force| Command::RemoveNode {
            id: id.into(),
            force,
        };
        assert_eq!(
            refused(&mut s, rm("m1", true)),
            CommandError::RemoveManager { id: "m1".into() }
        );
        assert_eq!(
            refused(&mut s, rm("w1", false)),
            CommandError::NodeNotDown { id: "w1".into() }
        );
        assert_eq!(
            refused(&mut s, rm("ghost", true)),
            CommandError::NodeNotFound { id: "ghost".into() }
        );

        // Down: no force needed.
        let down = Command::SetNodeStatus {
            id: "w1".into(),
            state: NodeState::Down,
            addr: "198.18.0.12".into(),
            message: "heartbeat failure".into(),
        };
        apply(&mut s, &down, at(4)).unwrap();
        assert_eq!(
            apply(&mut s, &rm("w1", false), at(5)),
            Ok(Version { index: 4 })
        );
        assert!(s.node("w1").is_none());
        assert!(s.removed_nodes.contains("w1"));

        // A demoted manager that is still a voter cannot go either.
        let mut s = cluster_with_worker();
        let ms = Some(ManagerStatus {
            leader: false,
            reachability: Reachability::Reachable,
            addr: "198.18.0.12:2377".into(),
        });
        let voter = Command::SetManagerStatus {
            id: "w1".into(),
            status: ms,
        };
        apply(&mut s, &voter, at(2)).unwrap();
        assert_eq!(
            refused(&mut s, rm("w1", true)),
            CommandError::RemoveManager { id: "w1".into() }
        );
    }

    #[test]
    fn node_status_changes_bump_the_version_and_repeats_do_not() {
        let mut s = cluster_with_worker();
        let down = Command::SetNodeStatus {
            id: "w1".into(),
            state: NodeState::Down,
            addr: "198.18.0.12".into(),
            message: "heartbeat failure".into(),
        };
        assert_eq!(apply(&mut s, &down, at(3)), Ok(Version { index: 3 }));
        let w1 = s.node("w1").unwrap();
        assert_eq!(w1.status.state, NodeState::Down);
        assert_eq!(w1.status.addr, "198.18.0.12");
        assert_eq!(w1.status.message, "heartbeat failure");
        assert_eq!((w1.version.index, w1.updated_at), (3, at(3)));

        let before = s.clone();
        assert_eq!(apply(&mut s, &down, at(4)), Ok(Version { index: 3 }));
        assert_eq!(
            s, before,
            "a repeated report changes nothing, not even UpdatedAt"
        );

        let ghost = Command::SetNodeStatus {
            id: "ghost".into(),
            state: NodeState::Ready,
            addr: String::new(),
            message: String::new(),
        };
        assert_eq!(
            refused(&mut s, ghost),
            CommandError::NodeNotFound { id: "ghost".into() }
        );
    }

    #[test]
    fn manager_status_records_voters_and_a_single_leader() {
        let mut s = cluster_with_worker();
        let status = |leader| {
            Some(ManagerStatus {
                leader,
                reachability: Reachability::Reachable,
                addr: "198.18.0.12:2377".into(),
            })
        };

        // w1 became a voter (promotion, second half).
        let voter = Command::SetManagerStatus {
            id: "w1".into(),
            status: status(false),
        };
        assert_eq!(apply(&mut s, &voter, at(2)), Ok(Version { index: 3 }));
        assert!(s.node("w1").unwrap().is_manager());
        assert_eq!(s.node("m1").unwrap().version.index, 1, "m1 untouched");
        assert_eq!(
            apply(&mut s, &voter, at(3)),
            Ok(Version { index: 3 }),
            "repeat"
        );

        // w1 takes over leadership: m1 loses the flag, both get the new index.
        let leads = Command::SetManagerStatus {
            id: "w1".into(),
            status: status(true),
        };
        assert_eq!(apply(&mut s, &leads, at(4)), Ok(Version { index: 4 }));
        let leaders: Vec<_> = s
            .nodes
            .values()
            .filter(|n| n.manager_status.as_ref().is_some_and(|m| m.leader))
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(leaders, ["w1"]);
        assert_eq!(s.node("m1").unwrap().version.index, 4);
        assert_eq!(s.node("w1").unwrap().version.index, 4);

        // Demotion, second half: not a voter any more.
        let gone = Command::SetManagerStatus {
            id: "m1".into(),
            status: None,
        };
        assert_eq!(apply(&mut s, &gone, at(5)), Ok(Version { index: 5 }));
        assert!(!s.node("m1").unwrap().is_manager());

        let ghost = Command::SetManagerStatus {
            id: "ghost".into(),
            status: None,
        };
        assert_eq!(
            refused(&mut s, ghost),
            CommandError::NodeNotFound { id: "ghost".into() }
        );
    }

    #[test]
    fn update_cluster_needs_the_current_version_and_keeps_the_name() {
        let mut s = cluster_with_worker();
        let mut spec = s.cluster.as_ref().unwrap().info.spec.clone();
        spec.orchestration.task_history_retention_limit = Some(2);
        spec.labels.insert("env".into(), "test".into());

        let stale = Command::UpdateCluster {
            version: 0,
            spec: spec.clone(),
        };
        assert_eq!(refused(&mut s, stale), CommandError::OutOfSequence);

        let ok = Command::UpdateCluster {
            version: 1,
            spec: spec.clone(),
        };
        assert_eq!(apply(&mut s, &ok, at(6)), Ok(Version { index: 3 }));
        let info = &s.cluster.as_ref().unwrap().info;
        assert_eq!(info.spec, spec);
        assert_eq!((info.version.index, info.updated_at), (3, at(6)));

        let mut renamed = spec.clone();
        renamed.name = "other".into();
        let rename = Command::UpdateCluster {
            version: 3,
            spec: renamed,
        };
        assert!(matches!(
            refused(&mut s, rename),
            CommandError::InvalidArgument(_)
        ));

        // An empty name means "unchanged", as a client that omits it expects.
        let mut unnamed = spec;
        unnamed.name.clear();
        let keep = Command::UpdateCluster {
            version: 3,
            spec: unnamed,
        };
        apply(&mut s, &keep, at(7)).unwrap();
        assert_eq!(s.cluster.as_ref().unwrap().info.spec.name, "default");
    }

    #[test]
    fn rotating_a_join_token_replaces_its_hash_only() {
        let mut s = cluster_with_worker();
        assert_eq!(s.role_for_join_token_hash("hw1"), Some(NodeRole::Worker));
        assert_eq!(s.role_for_join_token_hash("hm1"), Some(NodeRole::Manager));
        assert_eq!(s.role_for_join_token_hash(""), None);

        let rotate = Command::RotateJoinToken {
            role: NodeRole::Worker,
            new_hash: "hw2".into(),
        };
        assert_eq!(apply(&mut s, &rotate, at(8)), Ok(Version { index: 3 }));
        assert_eq!(s.role_for_join_token_hash("hw1"), None, "old token refused");
        assert_eq!(s.role_for_join_token_hash("hw2"), Some(NodeRole::Worker));
        assert_eq!(s.role_for_join_token_hash("hm1"), Some(NodeRole::Manager));
        let info = &s.cluster.as_ref().unwrap().info;
        assert_eq!((info.version.index, info.updated_at), (3, at(8)));

        let blank = Command::RotateJoinToken {
            role: NodeRole::Manager,
            new_hash: String::new(),
        };
        assert!(matches!(
            refused(&mut s, blank),
            CommandError::InvalidArgument(_)
        ));
    }

    fn service_spec(name: &str, replicas: i64) -> RawJson {
        RawJson::from_value(&serde_json::json!({
            "Name": name, "Extra": {"Kept": true},
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox:test"}},
            "Mode": {"Replicated": {"Replicas": replicas}}
        }))
    }

    fn task(id: &str, service: &str, slot: u64) -> Task {
        Task {
            id: id.into(),
            service_id: service.into(),
            slot,
            desired_state: TaskState::Running,
            ..Default::default()
        }
    }

    fn create_network(id: &str, name: &str, subnet: &str, gateway: &str) -> Command {
        Command::CreateNetwork {
            id: id.into(),
            network: NewNetwork {
                name: name.into(),
                subnet: subnet.into(),
                gateway: gateway.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn init_makes_the_ingress_network_and_networks_get_the_pools_free_subnets() {
        let mut s = cluster_with_worker();
        let ingress = s.network_named("ingress").expect("ingress").clone();
        assert!(ingress.spec.ingress);
        assert_eq!(ingress.subnet(), "198.19.0.0/20");
        assert_eq!(ingress.gateway(), "198.19.0.1");
        assert_eq!(ingress.id, addressing::ingress_id("cluster1"));
        assert_eq!(ingress.version.index, 1, "made by the init command");

        let v = apply(&mut s, &create_network("n1", "front", "", ""), at(2)).unwrap();
        let front = &s.networks["n1"];
        assert_eq!(front.version, v);
        assert_eq!(
            (front.subnet(), front.gateway()),
            ("198.19.16.0/20", "198.19.16.1")
        );
        assert_eq!(front.spec.driver_configuration.name, "overlay");
        assert_eq!(front.spec.scope, "swarm");
        assert_eq!(s.pools["n1"].network, "front");
        // Outside the pool is fine, overlapping is not.
        apply(
            &mut s,
            &create_network("n2", "back", "198.19.200.0/24", "198.19.200.254"),
            at(3),
        )
        .unwrap();
        assert_eq!(s.networks["n2"].gateway(), "198.19.200.254");
        let cases = [
            (
                create_network("n3", "front", "", ""),
                "network with name front already exists",
            ),
            (
                create_network("n3", "x", "198.19.20.0/24", ""),
                "overlaps network front's subnet 198.19.16.0/20",
            ),
            (
                create_network("n3", "x", "198.19.64.0/25", ""),
                "must be /16 to /24",
            ),
            (
                create_network("n3", "x", "198.18.0.0/15", ""),
                "must be /16 to /24",
            ),
            (
                create_network("n3", "x", "198.19.64.1/24", ""),
                "host bits zero",
            ),
            (
                create_network("n3", "x", "fd00::/64", ""),
                "IPv6 is not supported",
            ),
            (
                create_network("n3", "x", "198.19.64.0/24", "198.19.65.1"),
                "not a host address",
            ),
            (create_network("n3", "x y", "", ""), "invalid network name"),
            (create_network("n1", "x", "", ""), "is taken"),
        ];
        for (command, want) in cases {
            let e = refused(&mut s, command);
            assert!(e.to_string().contains(want), "{e}");
        }
        // Pool full: 198.19.0.0/17 holds eight /20s; ingress and front took two.
        for i in 0..6 {
            apply(
                &mut s,
                &create_network(&format!("f{i}"), &format!("fill{i}"), "", ""),
                at(4),
            )
            .unwrap();
        }
        let e = refused(&mut s, create_network("n9", "more", "", ""));
        assert!(e.to_string().contains("no free /20 subnet"), "{e}");
        apply(&mut s, &Command::RemoveNetwork { id: "f0".into() }, at(5)).unwrap();
        assert_eq!(
            refused(&mut s, Command::RemoveNetwork { id: "f0".into() }),
            CommandError::NetworkNotFound { id: "f0".into() }
        );
        apply(&mut s, &create_network("n9", "more", "", ""), at(6)).unwrap();
        assert_eq!(
            s.networks["n9"].subnet(),
            "198.19.32.0/20",
            "the freed subnet again"
        );
    }

    #[test]
    fn services_attached_to_a_network_hold_it_and_get_a_vip() {
        let mut s = cluster_with_worker();
        apply(&mut s, &create_network("n1", "front", "", ""), at(2)).unwrap();
        let mut spec = service_spec("web", 1).value();
        spec["TaskTemplate"]["Networks"] = serde_json::json!([{"Target": "n1"}]);
        let create = Command::CreateService {
            id: "s1".into(),
            spec: RawJson::from_value(&spec),
        };
        apply(&mut s, &create, at(3)).unwrap();
        assert_eq!(
            s.services["s1"].endpoint.virtual_ips[0].addr,
            "198.19.16.2/20"
        );
        assert_eq!(
            refused(&mut s, Command::RemoveNetwork { id: "n1".into() }).to_string(),
            "network front is in use by service web"
        );
        let mut unknown = service_spec("other", 1).value();
        unknown["TaskTemplate"]["Networks"] = serde_json::json!([{"Target": "nope"}]);
        let e = refused(
            &mut s,
            Command::CreateService {
                id: "s2".into(),
                spec: RawJson::from_value(&unknown),
            },
        );
        assert_eq!(e.to_string(), "network nope not found");

        // A task's addresses are claimed with its node and freed when it is forgotten.
        let attachment = crate::types::network::NetworkAttachment {
            network: s.networks["n1"].clone(),
            addresses: vec!["198.19.16.66/26".into()],
        };
        let mut t = task("t1", "s1", 1);
        t.networks_attachments = vec![attachment.clone()];
        let unplaced = Command::CreateTasks {
            tasks: vec![t.clone()],
        };
        assert!(
            refused(&mut s, unplaced)
                .to_string()
                .contains("together with its node")
        );
        t.node_id = "w1".into();
        apply(
            &mut s,
            &Command::CreateTasks {
                tasks: vec![t.clone()],
            },
            at(4),
        )
        .unwrap();
        let ip = "198.19.16.66".parse().unwrap();
        assert_eq!(s.pools["n1"].owner_of(ip), Some("w1"));
        let mut twice = task("t2", "s1", 2);
        twice.node_id = "w1".into();
        twice.networks_attachments = vec![attachment];
        assert!(
            refused(&mut s, Command::CreateTasks { tasks: vec![twice] })
                .to_string()
                .contains("already in use")
        );
        apply(&mut s, &Command::RemoveService { id: "s1".into() }, at(5)).unwrap();
        assert_eq!(
            refused(&mut s, Command::RemoveNetwork { id: "n1".into() }).to_string(),
            "network front is in use by task t1",
            "a task that may still run holds it"
        );
        apply(
            &mut s,
            &Command::RemoveTasks {
                ids: vec!["t1".into()],
            },
            at(6),
        )
        .unwrap();
        assert!(!s.pools["n1"].in_use(ip));
        apply(&mut s, &Command::RemoveNetwork { id: "n1".into() }, at(7)).unwrap();
        assert!(!s.pools.contains_key("n1"));
    }

    #[test]
    fn services_are_created_updated_at_their_version_and_removed() {
        let mut s = cluster_with_worker();
        let create = Command::CreateService {
            id: "s1".into(),
            spec: service_spec("web", 3),
        };
        let v = apply(&mut s, &create, at(2)).unwrap();
        assert_eq!(s.services["s1"].version, v);
        assert_eq!(s.services["s1"].spec, service_spec("web", 3));
        let dup = Command::CreateService {
            id: "s2".into(),
            spec: service_spec("web", 1),
        };
        assert!(matches!(
            refused(&mut s, dup),
            CommandError::ServiceExists { .. }
        ));
        let bad = Command::CreateService {
            id: "s3".into(),
            spec: service_spec("web2", -1),
        };
        let e = refused(&mut s, bad);
        assert!(e.to_string().contains("invalid replicas -1"), "{e}");

        let stale = Command::UpdateService {
            id: "s1".into(),
            version: v.index - 1,
            spec: service_spec("web", 5),
        };
        assert_eq!(refused(&mut s, stale), CommandError::OutOfSequence);
        let rename = Command::UpdateService {
            id: "s1".into(),
            version: v.index,
            spec: service_spec("other", 5),
        };
        assert!(refused(&mut s, rename).to_string().contains("renaming"));
        let scale = Command::UpdateService {
            id: "s1".into(),
            version: v.index,
            spec: service_spec("web", 5),
        };
        apply(&mut s, &scale, at(3)).unwrap();
        let svc = &s.services["s1"];
        assert_eq!(svc.previous_spec, Some(service_spec("web", 3)));
        assert_eq!(svc.spec_version, 2);

        let tasks = Command::CreateTasks {
            tasks: vec![task("t1", "s1", 1), task("t2", "s1", 2)],
        };
        apply(&mut s, &tasks, at(4)).unwrap();
        let orphan = Command::CreateTasks {
            tasks: vec![task("t3", "nope", 1)],
        };
        assert!(matches!(
            refused(&mut s, orphan),
            CommandError::ServiceNotFound { .. }
        ));
        apply(&mut s, &Command::RemoveService { id: "s1".into() }, at(5)).unwrap();
        assert!(s.services.is_empty());
        assert!(
            s.tasks
                .values()
                .all(|t| t.desired_state == TaskState::Remove)
        );
        apply(
            &mut s,
            &Command::RemoveTasks {
                ids: vec!["t1".into(), "t2".into()],
            },
            at(6),
        )
        .unwrap();
        assert!(s.tasks.is_empty());
    }

    #[test]
    fn task_status_only_moves_forward_and_only_from_its_node() {
        let mut s = cluster_with_worker();
        apply(
            &mut s,
            &Command::CreateService {
                id: "s1".into(),
                spec: service_spec("web", 1),
            },
            at(2),
        )
        .unwrap();
        apply(
            &mut s,
            &Command::CreateTasks {
                tasks: vec![task("t1", "s1", 1)],
            },
            at(3),
        )
        .unwrap();
        let assign = Command::UpdateTasks {
            changes: vec![TaskChange {
                id: "t1".into(),
                node_id: Some("w1".into()),
                status: Some(TaskStatus {
                    state: TaskState::Assigned,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        apply(&mut s, &assign, at(4)).unwrap();
        let status = |state| TaskStatus {
            state,
            ..Default::default()
        };
        let from_other = Command::ReportTaskStatus {
            node: "m1".into(),
            reports: vec![("t1".into(), status(TaskState::Running))],
        };
        let before = s.index;
        apply(&mut s, &from_other, at(5)).unwrap();
        assert_eq!(
            s.index, before,
            "a report from another node changes nothing"
        );
        let running = Command::ReportTaskStatus {
            node: "w1".into(),
            reports: vec![("t1".into(), status(TaskState::Running))],
        };
        apply(&mut s, &running, at(6)).unwrap();
        assert_eq!(s.tasks["t1"].status.state, TaskState::Running);
        let back = Command::ReportTaskStatus {
            node: "w1".into(),
            reports: vec![("t1".into(), status(TaskState::Starting))],
        };
        let before = s.index;
        apply(&mut s, &back, at(7)).unwrap();
        assert_eq!(s.index, before);
        assert_eq!(s.tasks["t1"].status.state, TaskState::Running);
        let failed_at = |n| Command::ReportTaskStatus {
            node: "w1".into(),
            reports: vec![(
                "t1".into(),
                TaskStatus {
                    state: TaskState::Failed,
                    timestamp: at(n),
                    ..Default::default()
                },
            )],
        };
        apply(&mut s, &failed_at(7), at(7)).unwrap();
        let before = s.index;
        apply(&mut s, &failed_at(9), at(9)).unwrap();
        assert_eq!(
            (s.index, s.tasks["t1"].status.timestamp),
            (before, at(7)),
            "a terminal status is final: its time (restart delays count from it) stays"
        );
        let gone = Command::UpdateTasks {
            changes: vec![TaskChange {
                id: "missing".into(),
                desired_state: Some(TaskState::Shutdown),
                ..Default::default()
            }],
        };
        apply(&mut s, &gone, at(8)).unwrap();
        assert_eq!(s.index, before, "changes to unknown tasks are skipped");
    }

    #[test]
    fn the_state_survives_the_binary_codec() {
        let s = cluster_with_worker();
        let bytes = codec::encode(&s).unwrap();
        assert_eq!(codec::decode::<State>(&bytes).unwrap(), s);
        let json = serde_json::to_value(s.node("w1").unwrap()).unwrap();
        assert!(json.get("ManagerStatus").is_none());
    }

    mod determinism {
        //! Property: the same command sequence gives the same state on every replica, and
        //! `index` moves by exactly one per change.

        use proptest::prelude::*;

        use super::*;

        const IDS: [&str; 4] = ["m1", "n1", "n2", "n3"];

        /// A command with its version left to be resolved against the state, so updates are
        /// often current (accepted) and sometimes stale (refused).
        #[derive(Debug, Clone)]
        enum Step {
            Init,
            Add(usize, NodeRole),
            Update {
                node: usize,
                stale: bool,
                role: NodeRole,
                availability: NodeAvailability,
                label: Option<u8>,
            },
            Remove(usize, bool),
            Status(usize, NodeState, u8),
            Manager(usize, Option<(bool, Reachability)>),
            Cluster {
                stale: bool,
                retention: i64,
            },
            Rotate(NodeRole, u8),
            /// A network named `net{i}`, with a subnet from the pool (`None`) or a /24.
            Network(u8, Option<u8>),
            RemoveNetwork(u8),
        }

        fn role() -> impl Strategy<Value = NodeRole> {
            prop_oneof![Just(NodeRole::Worker), Just(NodeRole::Manager)]
        }

        fn step() -> impl Strategy<Value = Step> {
            let id = 0..IDS.len();
            prop_oneof![
                1 => Just(Step::Init),
                3 => (id.clone(), role()).prop_map(|(i, r)| Step::Add(i, r)),
                4 => (
                    id.clone(),
                    any::<bool>(),
                    role(),
                    prop_oneof![
                        Just(NodeAvailability::Active),
                        Just(NodeAvailability::Pause),
                        Just(NodeAvailability::Drain)
                    ],
                    proptest::option::of(0u8..3),
                )
                    .prop_map(|(node, stale, role, availability, label)| Step::Update {
                        node,
                        stale,
                        role,
                        availability,
                        label
                    }),
                2 => (id.clone(), any::<bool>()).prop_map(|(i, f)| Step::Remove(i, f)),
                3 => (
                    id.clone(),
                    prop_oneof![Just(NodeState::Ready), Just(NodeState::Down), Just(NodeState::Unknown)],
                    0u8..2
                )
                    .prop_map(|(i, st, a)| Step::Status(i, st, a)),
                2 => (
                    id,
                    proptest::option::of((
                        any::<bool>(),
                        prop_oneof![Just(Reachability::Reachable), Just(Reachability::Unreachable)]
                    ))
                )
                    .prop_map(|(i, m)| Step::Manager(i, m)),
                1 => (any::<bool>(), 0i64..10).prop_map(|(stale, retention)| Step::Cluster { stale, retention }),
                1 => (role(), 0u8..3).prop_map(|(r, h)| Step::Rotate(r, h)),
                2 => (0u8..4, proptest::option::of(0u8..3)).prop_map(|(i, s)| Step::Network(i, s)),
                1 => (0u8..4).prop_map(Step::RemoveNetwork),
            ]
        }

        fn resolve(step: &Step, state: &State) -> Command {
            let version_of = |id: &str| state.node(id).map_or(0, |n| n.version.index);
            match step {
                Step::Init => init_command(),
                Step::Add(i, r) => Command::AddNode {
                    node: new_node(IDS[*i], *r),
                },
                Step::Update {
                    node,
                    stale,
                    role,
                    availability,
                    label,
                } => {
                    let id = IDS[*node];
                    let mut spec = spec(*role, *availability);
                    if let Some(l) = label {
                        spec.labels.insert(format!("k{l}"), "v".into());
                    }
                    let current = version_of(id);
                    Command::UpdateNode {
                        id: id.into(),
                        version: if *stale {
                            current.saturating_sub(1)
                        } else {
                            current
                        },
                        spec,
                    }
                }
                Step::Remove(i, force) => Command::RemoveNode {
                    id: IDS[*i].into(),
                    force: *force,
                },
                Step::Status(i, st, a) => Command::SetNodeStatus {
                    id: IDS[*i].into(),
                    state: *st,
                    addr: format!("198.18.0.{}", 11 + a),
                    message: String::new(),
                },
                Step::Manager(i, m) => Command::SetManagerStatus {
                    id: IDS[*i].into(),
                    status: m.map(|(leader, reachability)| ManagerStatus {
                        leader,
                        reachability,
                        addr: "198.18.0.11:2377".into(),
                    }),
                },
                Step::Cluster { stale, retention } => {
                    let (current, mut spec) = state.cluster.as_ref().map_or_else(
                        || (0, SwarmSpec::default()),
                        |c| (c.info.version.index, c.info.spec.clone()),
                    );
                    spec.orchestration.task_history_retention_limit = Some(*retention);
                    Command::UpdateCluster {
                        version: if *stale { current + 1 } else { current },
                        spec,
                    }
                }
                Step::Rotate(role, h) => Command::RotateJoinToken {
                    role: *role,
                    new_hash: format!("hash{h}"),
                },
                Step::Network(i, subnet) => Command::CreateNetwork {
                    id: format!("net{i}"),
                    network: NewNetwork {
                        name: format!("net{i}"),
                        subnet: subnet
                            .map_or(String::new(), |s| format!("198.19.{}.0/24", 200 + s)),
                        ..Default::default()
                    },
                },
                Step::RemoveNetwork(i) => Command::RemoveNetwork {
                    id: format!("net{i}"),
                },
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn replicas_agree_and_the_index_counts_changes(
                steps in proptest::collection::vec((step(), 0i64..3), 1..60)
            ) {
                let mut a = State::default();
                let mut b = State::default();
                let mut now = T0;
                for (step, dt) in &steps {
                    now = Timestamp(now.0 + dt * 1_000_000_000);
                    let command = resolve(step, &a);
                    let before = a.clone();

                    let ra = apply(&mut a, &command, now);
                    let rb = apply(&mut b, &command, now);
                    prop_assert_eq!(&ra, &rb);
                    prop_assert_eq!(&a, &b);
                    prop_assert_eq!(codec::encode(&a).unwrap(), codec::encode(&b).unwrap());

                    match &ra {
                        Err(_) => prop_assert_eq!(&a, &before),
                        Ok(version) => {
                            prop_assert_eq!(version.index, a.index);
                            if a == before {
                                prop_assert_eq!(a.index, before.index);
                            } else {
                                prop_assert_eq!(a.index, before.index + 1, "{:?}", command);
                            }
                        }
                    }
                    for node in a.nodes.values() {
                        prop_assert!(node.version.index <= a.index);
                        let was = before.nodes.get(&node.id);
                        if was != Some(node) {
                            prop_assert_eq!(node.version.index, a.index, "{} changed without a new version", node.id);
                        }
                    }
                    for network in a.networks.values() {
                        prop_assert!(a.pools.contains_key(&network.id), "a network without a pool");
                        if before.networks.get(&network.id) != Some(network) {
                            prop_assert_eq!(network.version.index, a.index);
                        }
                        let subnet = crate::types::network::Cidr::parse(network.subnet()).unwrap();
                        for other in a.networks.values().filter(|o| o.id != network.id) {
                            let o = crate::types::network::Cidr::parse(other.subnet()).unwrap();
                            prop_assert!(!subnet.overlaps(o), "{} overlaps {}", subnet, o);
                        }
                    }
                    prop_assert_eq!(a.networks.len(), a.pools.len());
                    if let Some(c) = &a.cluster {
                        prop_assert!(c.info.version.index <= a.index);
                        prop_assert!(a.manager_count() >= 1, "a cluster without a manager");
                        let leaders = a.nodes.values()
                            .filter(|n| n.manager_status.as_ref().is_some_and(|m| m.leader))
                            .count();
                        prop_assert!(leaders <= 1);
                    }
                }
                prop_assert_eq!(codec::decode::<State>(&codec::encode(&a).unwrap()).unwrap(), a);
            }
        }
    }
}
