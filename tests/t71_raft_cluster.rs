//! Three openraft nodes in one process, each on its own redb store, wired by an in-memory
//! router (openraft's examples' `Router`): they elect a leader, replicate commands and reach
//! the same `State`; a node restarted from its files recovers it; a new learner catches up
//! through a snapshot.
//!
//! Every RPC and reply crosses the router through `swarm::codec`, as it will cross the p2p
//! transport, so this also proves openraft's messages and our commands survive the encoding.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use serde::Serialize;
use serde::de::DeserializeOwned;
use swarm::cluster::state::{JoinTokenHashes, NewNode};
use swarm::cluster::{
    Command, NodeId, NodeInfo, Proposal, Raft, RaftSettings, StateMachineStore, TypeConfig, store,
};
use swarm::codec;
use swarm::types::{
    CommandError, NodeAvailability, NodeDescription, NodeRole, NodeSpec, NodeState, SwarmSpec,
    Timestamp,
};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(20);

// --- the router: an in-memory network ---------------------------------------------------------

/// Delivers RPCs to the registered nodes, and counts snapshot installs per target.
#[derive(Clone, Default)]
struct Router {
    inner: Arc<Mutex<Routes>>,
}

#[derive(Default)]
struct Routes {
    nodes: BTreeMap<NodeId, Raft>,
    snapshot_chunks: BTreeMap<NodeId, usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("node {0} is not on the network")]
struct Offline(NodeId);

impl Router {
    fn add(&self, id: NodeId, raft: Raft) {
        self.inner.lock().unwrap().nodes.insert(id, raft);
    }

    fn remove(&self, id: NodeId) {
        self.inner.lock().unwrap().nodes.remove(&id);
    }

    fn snapshot_chunks(&self, id: NodeId) -> usize {
        *self
            .inner
            .lock()
            .unwrap()
            .snapshot_chunks
            .get(&id)
            .unwrap_or(&0)
    }

    /// The target's handle, if it is on the network. The lock is released before any await.
    fn target(&self, id: NodeId) -> Option<Raft> {
        self.inner.lock().unwrap().nodes.get(&id).cloned()
    }
}

fn unreachable<E: std::error::Error>(id: NodeId) -> RPCError<NodeId, NodeInfo, E> {
    RPCError::Unreachable(Unreachable::new(&Offline(id)))
}

/// What the p2p transport will do to every message: encode, send, decode.
fn over_the_wire<T: Serialize + DeserializeOwned>(value: T) -> T {
    codec::decode(&codec::encode(&value).expect("encode")).expect("decode")
}

struct Connection {
    router: Router,
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &NodeInfo) -> Connection {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        let raft = self
            .router
            .target(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        let reply = raft.append_entries(over_the_wire(rpc)).await;
        over_the_wire(reply).map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let raft = self
            .router
            .target(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        *self
            .router
            .inner
            .lock()
            .unwrap()
            .snapshot_chunks
            .entry(self.target)
            .or_default() += 1;
        let reply = raft.install_snapshot(over_the_wire(rpc)).await;
        over_the_wire(reply).map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        let raft = self
            .router
            .target(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        let reply = raft.vote(over_the_wire(rpc)).await;
        over_the_wire(reply).map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

// --- the cluster under test -------------------------------------------------------------------

struct TestNode {
    raft: Raft,
    /// A clone of the state machine Raft owns: how the daemon will read the state.
    state_machine: StateMachineStore,
}

struct TestCluster {
    router: Router,
    settings: RaftSettings,
    dir: TempDir,
    nodes: BTreeMap<NodeId, TestNode>,
}

fn info(id: NodeId) -> NodeInfo {
    NodeInfo {
        peer_id: format!("peer-{id}"),
        addr: format!("/ip4/198.18.0.{}/tcp/2377", 10 + id),
    }
}

impl TestCluster {
    fn new(settings: RaftSettings) -> TestCluster {
        TestCluster {
            router: Router::default(),
            settings,
            dir: tempfile::tempdir().unwrap(),
            nodes: BTreeMap::new(),
        }
    }

    fn path(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node-{id}.redb"))
    }

    /// Starts node `id` on its store file (new or existing) and puts it on the network.
    async fn start(&mut self, id: NodeId) {
        let (log, state_machine) = store::open(self.path(id)).unwrap();
        let config = Arc::new(self.settings.to_openraft().unwrap());
        let raft = Raft::new(id, config, self.router.clone(), log, state_machine.clone())
            .await
            .unwrap();
        self.router.add(id, raft.clone());
        self.nodes.insert(
            id,
            TestNode {
                raft,
                state_machine,
            },
        );
    }

    /// Takes node `id` off the network and shuts it down, releasing its store file.
    async fn stop(&mut self, id: NodeId) {
        self.router.remove(id);
        let node = self.nodes.remove(&id).unwrap();
        node.raft.shutdown().await.unwrap();
    }

    /// Starts nodes 1..=3 and makes them one cluster of three voters.
    async fn three_voters(settings: RaftSettings) -> TestCluster {
        let mut cluster = TestCluster::new(settings);
        for id in 1..=3 {
            cluster.start(id).await;
        }
        let members: BTreeMap<NodeId, NodeInfo> = (1..=3).map(|id| (id, info(id))).collect();
        cluster.raft(1).initialize(members).await.unwrap();
        cluster
    }

    fn raft(&self, id: NodeId) -> &Raft {
        &self.nodes[&id].raft
    }

    async fn leader(&self) -> NodeId {
        let metrics = self
            .raft(*self.nodes.keys().next().unwrap())
            .wait(Some(WAIT))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .unwrap();
        metrics.current_leader.unwrap()
    }

    async fn write(&self, command: Command) -> ClientWriteResponse<TypeConfig> {
        let leader = self.leader().await;
        self.raft(leader)
            .client_write(Proposal::at(Timestamp::now(), command))
            .await
            .unwrap()
    }

    /// Waits until every running node has applied `index`, then checks they all hold the same
    /// state, and returns it.
    async fn converged(&self, index: u64) -> swarm::cluster::State {
        for (id, node) in &self.nodes {
            node.raft
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), format!("node {id} applies {index}"))
                .await
                .unwrap();
        }
        let mut states = self.nodes.values().map(|n| n.state_machine.state());
        let first = states.next().unwrap();
        for other in states {
            assert_eq!(other, first, "replicas disagree");
        }
        first
    }

    async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

fn init() -> Command {
    Command::InitCluster {
        cluster_id: "cluster-t71".into(),
        spec: SwarmSpec::default(),
        default_addr_pool: vec![],
        subnet_size: 0,
        data_path_port: 0,
        join_token_hashes: JoinTokenHashes {
            worker: "worker-hash".into(),
            manager: "manager-hash".into(),
        },
        manager: NewNode {
            id: "node-1".into(),
            description: NodeDescription {
                hostname: "host-1".into(),
                ..Default::default()
            },
            addr: "198.18.0.11".into(),
            ..Default::default()
        },
        manager_addr: "198.18.0.11:2377".into(),
    }
}

fn join(n: u64) -> Command {
    Command::AddNode {
        node: NewNode {
            id: format!("node-{n}"),
            spec: NodeSpec {
                role: NodeRole::Worker,
                ..Default::default()
            },
            description: NodeDescription {
                hostname: format!("host-{n}"),
                ..Default::default()
            },
            addr: format!("198.18.0.{}", 10 + n),
        },
    }
}

fn status(n: u64, state: NodeState) -> Command {
    Command::SetNodeStatus {
        id: format!("node-{n}"),
        state,
        addr: format!("198.18.0.{}", 10 + n),
        message: String::new(),
    }
}

// --- the stories ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t71_three_managers_elect_replicate_and_agree() {
    eprintln!("--- three voters, initialised once on node 1");
    let cluster = TestCluster::three_voters(RaftSettings::default()).await;
    let leader = cluster.leader().await;
    eprintln!("--- node {leader} leads");

    eprintln!("--- commands through the leader");
    cluster.write(init()).await;
    cluster.write(join(2)).await;
    let last = cluster.write(join(3)).await;
    assert_eq!(last.data, Ok(swarm::types::Version { index: 3 }));

    eprintln!("--- a refused command is a result, replicated like any other");
    let stale = cluster
        .write(Command::UpdateNode {
            id: "node-2".into(),
            version: 1,
            spec: NodeSpec {
                availability: NodeAvailability::Drain,
                ..Default::default()
            },
        })
        .await;
    assert_eq!(stale.data, Err(CommandError::OutOfSequence));
    let drained = cluster
        .write(Command::UpdateNode {
            id: "node-2".into(),
            version: 2,
            spec: NodeSpec {
                availability: NodeAvailability::Drain,
                ..Default::default()
            },
        })
        .await;
    assert_eq!(drained.data, Ok(swarm::types::Version { index: 4 }));

    eprintln!("--- every replica holds the same state");
    let state = cluster.converged(drained.log_id.index).await;
    assert_eq!(state.index, 4);
    assert_eq!(state.nodes.len(), 3);
    assert_eq!(
        state.node("node-2").unwrap().spec.availability,
        NodeAvailability::Drain
    );
    assert_eq!(state.cluster.as_ref().unwrap().info.id, "cluster-t71");

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t71_a_restarted_node_recovers_from_its_files_and_catches_up() {
    let mut cluster = TestCluster::three_voters(RaftSettings::default()).await;
    cluster.write(init()).await;
    cluster.write(join(2)).await;
    let written = cluster.write(join(3)).await;
    let before = cluster.converged(written.log_id.index).await;

    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    eprintln!("--- stop follower {follower}");
    let on_stop = cluster.nodes[&follower].state_machine.state();
    assert_eq!(on_stop, before);
    cluster.stop(follower).await;

    eprintln!("--- the other two still make progress");
    let while_down = cluster.write(status(3, NodeState::Down)).await;
    assert!(while_down.data.is_ok());

    eprintln!("--- its redb file alone gives back the state it had");
    {
        let (_log, state_machine) = store::open(cluster.path(follower)).unwrap();
        assert_eq!(state_machine.state(), on_stop);
        assert_eq!(
            state_machine.last_applied().map(|id| id.index),
            Some(written.log_id.index)
        );
    }

    eprintln!("--- restart {follower} on that file");
    cluster.start(follower).await;

    eprintln!("--- and it catches up with what it missed");
    let after = cluster.converged(while_down.log_id.index).await;
    assert_eq!(after.node("node-3").unwrap().status.state, NodeState::Down);

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t71_a_new_learner_catches_up_through_a_snapshot() {
    // Snapshot every 5 entries and keep no log behind it, so a newcomer cannot be served
    // from the log.
    let settings = RaftSettings {
        snapshot_logs_since_last: 5,
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    };
    let mut cluster = TestCluster::three_voters(settings).await;
    cluster.write(init()).await;
    let mut last = None;
    for n in 2..=12 {
        last = Some(cluster.write(join(n)).await);
    }
    let last = last.unwrap().log_id;
    let state = cluster.converged(last.index).await;
    assert_eq!(state.nodes.len(), 12);

    eprintln!("--- the leader snapshots and purges its log");
    let leader = cluster.leader().await;
    let metrics = cluster
        .raft(leader)
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= 5) && m.snapshot.is_some(),
            "snapshot built and log purged",
        )
        .await
        .unwrap();
    eprintln!(
        "--- snapshot at {:?}, purged up to {:?}",
        metrics.snapshot, metrics.purged
    );

    eprintln!("--- node 4 joins as a learner");
    cluster.start(4).await;
    cluster
        .raft(leader)
        .add_learner(4, info(4), true)
        .await
        .unwrap();
    // `blocking` returns once the leader deems the learner within `replication_lag_threshold`
    // (5000 entries by default), which a short log always is: wait for the learner itself.
    let state = cluster.converged(last.index).await;
    assert_eq!(state.nodes.len(), 12);
    assert!(
        cluster.router.snapshot_chunks(4) > 0,
        "node 4 caught up without being sent a snapshot"
    );

    let mut learner_sm = cluster.nodes[&4].state_machine.clone();
    let snapshot = learner_sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("the learner keeps a snapshot");
    assert!(snapshot.meta.last_log_id.is_some());
    let membership = cluster
        .raft(leader)
        .metrics()
        .borrow()
        .membership_config
        .clone();
    let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
    let learners: BTreeSet<NodeId> = membership.membership().learner_ids().collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3]));
    assert_eq!(
        learners,
        BTreeSet::from([4]),
        "a learner reads the state but does not vote"
    );

    eprintln!("--- and follows new writes from the log");
    let next = cluster.write(status(12, NodeState::Down)).await;
    let state = cluster.converged(next.log_id.index).await;
    assert_eq!(state.node("node-12").unwrap().status.state, NodeState::Down);

    cluster.shutdown().await;
}
