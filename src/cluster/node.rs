//! The running cluster member: Raft over p2p, join, forwarding, membership and liveness.
//!
//! ```text
//!                      Cluster (cloneable handle: init/join/propose/state/leave…)
//!                         │ typed async methods
//!   ClusterNode::start ───┼── p2p event loop (owns the libp2p Swarm)
//!     spawns on the       ├── dispatcher: Inbound::{RaftRequest → network::serve,
//!     caller's JoinSet    │                RpcRequest → forwarded propose/join/leave/read,
//!                         │                JoinRequest → accept_join, Gossip → heartbeats}
//!                         ├── membership sync: Raft membership ──▶ p2p add/remove_member
//!                         ├── heartbeat: publish on the membership topic every interval
//!                         ├── leader duties (acts only while leader): Down/Ready from
//!                         │     heartbeats, ManagerStatus, promote caught-up managers to
//!                         │     voters, drop removed nodes from the Raft membership
//!                         └── raft shutdown when the token fires
//! ```
//!
//! The openraft `Raft` is itself a cloneable handle onto openraft's own core task (which is
//! the single owner of the Raft state); the `Cluster` handle keeps one of those rather than
//! funnelling every call through another actor, which would serialise proposals behind each
//! other for no gain.
//!
//! Writes: `client_write` locally; on `ForwardToLeader` the proposal goes once over
//! `request_rpc` to the leader, which runs `client_write` itself and never forwards again
//! (one hop). With no leader the caller retries until `propose_timeout`, then gets
//! [`ClusterError::NoLeader`]; it never hangs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RaftSettings;
use super::network::{self, P2pNetwork};
use super::raft_types::{NodeId, NodeInfo, Proposal, Raft};
use super::state::{Command, CommandResult, NewNode, State};
use super::store::{self, StateMachineStore, StoreError};
use super::tokens::{self, FailedJoins, JoinRateLimit};
use crate::codec;
use crate::p2p::codec::ByteBuf;
use crate::p2p::{Client, Inbound, Multiaddr, NodeKey, P2p, P2pConfig, P2pError, PeerId, Topic};
use crate::types::{
    CommandError, JoinTokens, ManagerStatus, NodeAvailability, NodeDescription, NodeRole, NodeSpec,
    NodeState, Reachability, SwarmSpec,
};

/// How long past the old leader's lease a follower waits before standing for election
/// after the leader's connection closed (covers the spread between followers' clocks of
/// the last heartbeat).
const LEASE_MARGIN: Duration = Duration::from_millis(50);

/// Files in the data dir.
pub const KEY_FILE: &str = "node.key";
pub const STORE_FILE: &str = "raft.redb";

/// Every wait the cluster plane does, in one place.
#[derive(Debug, Clone)]
pub struct ClusterTimeouts {
    /// A write (including forwarding and waiting for a leader) gives up after this.
    pub propose: Duration,
    /// Pause between attempts while there is no leader.
    pub retry_interval: Duration,
    /// `join` gives up after this (handshake, catching up, becoming a voter).
    pub join: Duration,
    /// Every node publishes a heartbeat this often.
    pub heartbeat_interval: Duration,
    /// The leader marks a node down after this long without a heartbeat (several beats).
    pub down_after: Duration,
    /// How often the leader reconciles liveness, manager status and voters.
    pub reconcile_interval: Duration,
}

impl Default for ClusterTimeouts {
    fn default() -> Self {
        ClusterTimeouts {
            propose: Duration::from_secs(10),
            retry_interval: Duration::from_millis(100),
            join: Duration::from_secs(20),
            heartbeat_interval: Duration::from_millis(300),
            down_after: Duration::from_millis(1500),
            reconcile_interval: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub data_dir: PathBuf,
    /// `IP:PORT` or a multiaddr; port 0 picks one.
    pub listen_addr: String,
    /// What peers dial; `None` means the actual listen address.
    pub advertise_addr: Option<String>,
    pub raft: RaftSettings,
    /// Transport settings; its `listen` is replaced by `listen_addr`.
    pub p2p: P2pConfig,
    pub timeouts: ClusterTimeouts,
    pub join_rate_limit: JoinRateLimit,
}

impl ClusterConfig {
    pub fn new(data_dir: impl Into<PathBuf>, listen_addr: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            data_dir: data_dir.into(),
            listen_addr: listen_addr.into(),
            advertise_addr: None,
            raft: RaftSettings::default(),
            p2p: P2pConfig::new(Multiaddr::empty()),
            timeouts: ClusterTimeouts::default(),
            join_rate_limit: JoinRateLimit::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("invalid join token")]
    InvalidJoinToken,
    #[error("too many failed join attempts; try again later")]
    RateLimited,
    #[error(
        "rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online."
    )]
    NoLeader,
    /// A manager's leave that Docker refuses without `--force`; the message is Docker's.
    #[error("{0}")]
    LeaveRefused(String),
    #[error("this node is not a manager; run the command on a manager")]
    NotManager,
    /// A forwarded write reached the leader but its answer did not come back in time: it
    /// may or may not have been applied (read the state to find out).
    #[error("the leader did not answer in time; the change may or may not have been applied: {0}")]
    OutcomeUnknown(String),
    #[error("cannot join the swarm: {0}")]
    Join(String),
    /// Another node's agent did not answer an agent request (logs, image blobs).
    #[error("node {node}: {reason}")]
    Agent { node: String, reason: String },
    #[error(transparent)]
    P2p(#[from] P2pError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn raft_err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Raft(e.to_string())
}

// ---- identity ------------------------------------------------------------------------------

/// The Raft node ID of `peer`: the first 8 bytes of sha256 of its PeerId bytes.
pub fn raft_node_id(peer: &PeerId) -> NodeId {
    let digest = Sha256::digest(peer.to_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The Docker node ID of `peer`: 25 lowercase base36 characters, stable across restarts.
pub fn docker_node_id(peer: &PeerId) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"swarm node id\0");
    hasher.update(peer.to_bytes());
    tokens::base36(&hasher.finalize(), 25)
}

fn docker_id_of(info: &NodeInfo) -> Option<String> {
    info.peer_id
        .parse::<PeerId>()
        .ok()
        .map(|p| docker_node_id(&p))
}

/// `IP` and `IP:port` of a multiaddr like `/ip4/1.2.3.4/tcp/2377`.
fn ip_and_port(addr: &str) -> (String, String) {
    let Ok(multiaddr) = addr.parse::<Multiaddr>() else {
        return (String::new(), String::new());
    };
    let (mut ip, mut port) = (None, None);
    for p in multiaddr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let ip = ip.map(|i| i.to_string()).unwrap_or_default();
    let both = match port {
        Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
        Some(p) => format!("{ip}:{p}"),
        None => ip.clone(),
    };
    (ip, both)
}

/// The address peers should dial: `advertise` if given (a bare IP takes the listen port),
/// else the actual listen address.
fn advertise_multiaddr(advertise: Option<&str>, listen: &Multiaddr) -> Result<Multiaddr, P2pError> {
    let Some(s) = advertise.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(listen.clone());
    };
    if let Ok(ip) = s.parse::<IpAddr>() {
        let port = listen
            .iter()
            .find_map(|p| match p {
                Protocol::Tcp(p) => Some(p),
                _ => None,
            })
            .unwrap_or(crate::p2p::DEFAULT_PORT);
        return Ok(crate::p2p::socket_to_multiaddr((ip, port).into()));
    }
    crate::p2p::parse_addr(s)
}

// ---- messages between nodes ----------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JoinRequest {
    token: String,
    info: NodeInfo,
    description: NodeDescription,
    availability: NodeAvailability,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JoinAccepted {
    role: NodeRole,
    node_id: String,
    members: Vec<(NodeId, NodeInfo)>,
    /// The plaintext tokens, for a joining manager only (the channel is Noise-encrypted).
    tokens: Option<JoinTokens>,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
enum Rpc {
    Propose(Proposal),
    Join {
        peer: String,
        request: JoinRequest,
    },
    Leave {
        node: NodeId,
    },
    ReadIndex,
    GetTokens,
    /// From the leader to a node it is about to drop from the membership (`node rm`): the
    /// node will hear nothing more, so it is told.
    Removed,
    /// For the receiving node's agent (log lines, image blobs): opaque bytes that the
    /// registered [`AgentService`] decodes. Last, so older variants keep their tags.
    Agent(ByteBuf),
}

#[derive(Debug, Serialize, Deserialize)]
enum RpcOk {
    Proposed(CommandResult),
    Joined(JoinAccepted),
    Left,
    ReadIndex(u64),
    Tokens(JoinTokens),
    Agent(ByteBuf),
}

#[derive(Debug, Serialize, Deserialize)]
enum RpcFail {
    NotLeader,
    InvalidJoinToken,
    Refused(String),
}

type RpcReply = Result<RpcOk, RpcFail>;

#[derive(Debug, Serialize, Deserialize)]
struct Heartbeat {
    node: NodeId,
}

/// What this node's agent answers to other members' agent requests ([`Cluster::ask_agent`]:
/// log lines, image blobs). The cluster only carries the bytes; the daemon registers the
/// handler ([`Cluster::serve_agent`]), so this module knows nothing of containers or images.
/// Only members reach it, like every RPC; p2p's request timeout bounds an answer.
pub trait AgentService: Send + Sync + 'static {
    /// `from` is the asking member's Docker node ID; `Err` is a reason shown to the asker.
    fn serve(
        &self,
        from: String,
        request: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>>;
}

// ---- the node ------------------------------------------------------------------------------

/// Starts a cluster member; see the module docs.
pub struct ClusterNode;

/// Options of `swarm init`.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub advertise_addr: Option<String>,
    pub hostname: String,
    pub spec: SwarmSpec,
    pub description: NodeDescription,
    pub availability: NodeAvailability,
    /// CIDRs of the container address pool; empty means the default.
    pub default_addr_pool: Vec<String>,
    /// Prefix length of each node's subnet; 0 means the default.
    pub subnet_size: u32,
    /// 0 means the default.
    pub data_path_port: u32,
}

/// Options of `swarm join`.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// `IP:PORT` (or a multiaddr) of any manager.
    pub remote_addr: String,
    pub token: String,
    pub advertise_addr: Option<String>,
    pub hostname: String,
    pub description: NodeDescription,
    pub availability: NodeAvailability,
}

struct Inner {
    raft_id: NodeId,
    node_id: String,
    peer: PeerId,
    /// The multiaddr peers dial (may be replaced by init/join's advertise address).
    advertise: Mutex<Multiaddr>,
    config: ClusterConfig,
    raft: Raft,
    state_machine: StateMachineStore,
    p2p: Client,
    /// Failed joins per peer; a std Mutex because nothing awaits while it is held.
    failed_joins: Mutex<FailedJoins>,
    left: AtomicBool,
    /// The leader said this node was removed from the swarm.
    removed: AtomicBool,
    stop: CancellationToken,
    /// Answers agent requests; a std lock because it is only cloned out, never held across
    /// an await.
    agent: RwLock<Option<Arc<dyn AgentService>>>,
}

/// The handle everyone holds on this node's cluster membership.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl ClusterNode {
    /// Opens the node key and the store in `config.data_dir`, starts p2p and Raft, and
    /// spawns the node's tasks on `tasks`. A node whose store holds a membership resumes it.
    pub async fn start(
        config: ClusterConfig,
        shutdown: CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> Result<Cluster, ClusterError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ClusterError::Io {
            what: format!("cannot create {}", config.data_dir.display()),
            source,
        })?;
        let key =
            NodeKey::load_or_create(&config.data_dir.join(KEY_FILE)).map_err(P2pError::from)?;
        let peer = key.peer_id();
        let raft_id = raft_node_id(&peer);
        let (log, state_machine) = store::open(config.data_dir.join(STORE_FILE))?;

        let stop = shutdown.child_token();
        let mut p2p_config = config.p2p.clone();
        p2p_config.listen = crate::p2p::parse_addr(&config.listen_addr)?;
        let (p2p, events) = P2p::spawn(p2p_config, &key, stop.clone(), tasks)?;
        let listen = p2p
            .listen_addrs()
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ClusterError::Raft("p2p has no listen address".into()))?;
        let advertise = advertise_multiaddr(config.advertise_addr.as_deref(), &listen)?;

        let raft_config = config.raft.to_openraft().map_err(raft_err)?;
        let raft = Raft::new(
            raft_id,
            Arc::new(raft_config),
            P2pNetwork::new(p2p.clone()),
            log,
            state_machine.clone(),
        )
        .await
        .map_err(raft_err)?;

        let cluster = Cluster {
            inner: Arc::new(Inner {
                raft_id,
                node_id: docker_node_id(&peer),
                peer,
                advertise: Mutex::new(advertise),
                config,
                raft,
                state_machine,
                p2p,
                failed_joins: Mutex::new(FailedJoins::default()),
                left: AtomicBool::new(false),
                removed: AtomicBool::new(false),
                stop: stop.clone(),
                agent: RwLock::new(None),
            }),
        };
        tracing::info!(node = %cluster.inner.node_id, raft_id, %peer, "cluster node started");

        let (beats_tx, beats_rx) = mpsc::channel(256);
        tasks.spawn(cluster.clone().dispatch(events, beats_tx));
        tasks.spawn(cluster.clone().sync_membership());
        tasks.spawn(cluster.clone().publish_heartbeats());
        tasks.spawn(cluster.clone().leader_duties(beats_rx));
        let raft = cluster.inner.raft.clone();
        tasks.spawn(async move {
            stop.cancelled().await;
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "raft shutdown");
            }
        });
        Ok(cluster)
    }
}

impl Cluster {
    // ---- identity and reads ----------------------------------------------------------------

    /// This node's Docker node ID.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn raft_id(&self) -> NodeId {
        self.inner.raft_id
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.peer
    }

    /// How peers reach this node.
    pub fn node_info(&self) -> NodeInfo {
        NodeInfo {
            peer_id: self.inner.peer.to_string(),
            addr: self.advertise().to_string(),
        }
    }

    fn advertise(&self) -> Multiaddr {
        self.inner
            .advertise
            .lock()
            .map(|a| a.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// A copy of the locally applied state (may lag the leader).
    pub fn state(&self) -> State {
        self.inner.state_machine.state()
    }

    pub fn metrics(&self) -> RaftMetrics<NodeId, NodeInfo> {
        self.inner.raft.metrics().borrow().clone()
    }

    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.raft_id)
    }

    pub fn leader_id(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// The Docker node ID of the current leader, if known.
    pub fn leader_node_id(&self) -> Option<String> {
        let m = self.metrics();
        let leader = m.current_leader?;
        docker_id_of(m.membership_config.membership().get_node(&leader)?)
    }

    /// The state after everything committed before this call is applied here: a read
    /// barrier through the leader (read-index), then a local read.
    pub async fn read_linearizable(&self) -> Result<State, ClusterError> {
        self.check_not_left()?;
        let deadline = Instant::now() + self.inner.config.timeouts.propose;
        loop {
            let index = match self.read_index().await {
                Ok(index) => index,
                Err(Attempt::Retry) if Instant::now() < deadline => {
                    tokio::time::sleep(self.inner.config.timeouts.retry_interval).await;
                    continue;
                }
                Err(Attempt::Retry) => {
                    tracing::debug!(leader = ?self.leader_id(), "no read index before the deadline");
                    return Err(ClusterError::NoLeader);
                }
                Err(Attempt::Fail(e)) => return Err(e),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            self.inner
                .raft
                .wait(Some(left))
                .applied_index_at_least(Some(index), "read barrier")
                .await
                .map_err(|e| ClusterError::Raft(format!("read barrier at {index}: {e}")))?;
            return Ok(self.state());
        }
    }

    /// The index a linearizable read must see applied. openraft's read index is the larger
    /// of its commit index and the first entry of the leader's term; but a leader restored
    /// at startup (openraft 0.9 resumes a leader whose vote was committed, in the same term)
    /// starts with the commit index at the applied state it found on disk, which may be older
    /// than writes it acknowledged before the crash (the store writes the applied state
    /// without fsync). Those writes are in its log, so the read also waits for the last log
    /// entry this leader had when the read began: every acknowledged write is covered.
    async fn read_index(&self) -> Result<u64, Attempt> {
        if self.is_leader() {
            let last_log = self.metrics().last_log_index.unwrap_or(0);
            let t = self.inner.config.timeouts.propose;
            return match tokio::time::timeout(t, self.inner.raft.ensure_linearizable()).await {
                Ok(Ok(log_id)) => Ok(log_id.map(|l| l.index).unwrap_or(0).max(last_log)),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "read index refused");
                    Err(Attempt::Retry)
                }
                Err(_) => {
                    tracing::debug!("read index timed out");
                    Err(Attempt::Retry)
                }
            };
        }
        match self.ask_leader(&Rpc::ReadIndex).await? {
            RpcOk::ReadIndex(i) => Ok(i),
            _ => Err(Attempt::Retry),
        }
    }

    // ---- writes ------------------------------------------------------------------------------

    /// Commits `command` through the leader (forwarding once if this node is not it).
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ClusterError> {
        self.check_not_left()?;
        let proposal = Proposal::now(command);
        let deadline = Instant::now() + self.inner.config.timeouts.propose;
        loop {
            if self.inner.stop.is_cancelled() {
                return Err(ClusterError::Raft("the node is shutting down".into()));
            }
            match self.try_propose(&proposal, deadline).await {
                Ok(result) => return Ok(result),
                Err(Attempt::Retry) if Instant::now() < deadline => {
                    tokio::time::sleep(self.inner.config.timeouts.retry_interval).await;
                }
                Err(Attempt::Retry) => return Err(ClusterError::NoLeader),
                Err(Attempt::Fail(e)) => return Err(e),
            }
        }
    }

    async fn try_propose(
        &self,
        proposal: &Proposal,
        deadline: Instant,
    ) -> Result<CommandResult, Attempt> {
        match self.write_locally(proposal.clone(), deadline).await {
            Ok(None) => {}
            Ok(Some(result)) => return Ok(result),
            Err(e) => return Err(e),
        }
        match self.ask_leader(&Rpc::Propose(proposal.clone())).await? {
            RpcOk::Proposed(result) => Ok(result),
            _ => Err(Attempt::Retry),
        }
    }

    /// `client_write` here. `Ok(None)`: another node leads (forward).
    async fn write_locally(
        &self,
        proposal: Proposal,
        deadline: Instant,
    ) -> Result<Option<CommandResult>, Attempt> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.inner.raft.client_write(proposal)).await {
            Err(_) => Err(Attempt::Retry),
            Ok(Ok(response)) => Ok(Some(response.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                if f.leader_node.is_some() {
                    Ok(None)
                } else {
                    Err(Attempt::Retry)
                }
            }
            Ok(Err(e)) => Err(Attempt::Fail(raft_err(e))),
        }
    }

    /// Sends `rpc` to the current leader (one hop). Retry when there is none or it moved.
    async fn ask_leader(&self, rpc: &Rpc) -> Result<RpcOk, Attempt> {
        let m = self.metrics();
        let leader = m.current_leader.ok_or(Attempt::Retry)?;
        if leader == self.inner.raft_id {
            // Leadership moved to us between checks: the caller retries locally.
            return Err(Attempt::Retry);
        }
        let info = m
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
            .ok_or(Attempt::Retry)?;
        let peer: PeerId = info.peer_id.parse().map_err(|_| Attempt::Retry)?;
        let bytes = codec::encode(rpc).map_err(|e| Attempt::Fail(raft_err(e)))?;
        let reply = match self.inner.p2p.request_rpc(peer, bytes).await {
            Ok(reply) => reply,
            // The leader cuts a leaving node off as soon as the membership drops it, often
            // before its answer is out: being refused then means the leave went through.
            Err(P2pError::Refused { .. }) if matches!(rpc, Rpc::Leave { .. }) => {
                return Ok(RpcOk::Left);
            }
            // Never delivered: safe to try again.
            Err(e)
                if e.is_unreachable()
                    || matches!(e, P2pError::NotMember(_) | P2pError::Refused { .. }) =>
            {
                tracing::debug!(error = %e, "forwarding to the leader failed");
                return Err(Attempt::Retry);
            }
            // Delivered, but no answer: a proposal may have been committed, and sending it
            // again could apply it twice. Reads, joins and leaves are safe to repeat.
            Err(e) if matches!(rpc, Rpc::Propose(_)) => {
                return Err(Attempt::Fail(ClusterError::OutcomeUnknown(e.to_string())));
            }
            Err(e) => {
                tracing::debug!(error = %e, "forwarding to the leader failed");
                return Err(Attempt::Retry);
            }
        };
        match codec::decode::<RpcReply>(&reply) {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(RpcFail::NotLeader)) => Err(Attempt::Retry),
            Ok(Err(RpcFail::InvalidJoinToken)) => {
                Err(Attempt::Fail(ClusterError::InvalidJoinToken))
            }
            Ok(Err(RpcFail::Refused(reason))) => Err(Attempt::Fail(ClusterError::Raft(reason))),
            Err(e) => Err(Attempt::Fail(raft_err(e))),
        }
    }

    // ---- agent requests ----------------------------------------------------------------------

    /// Lets this node's agent answer other members' agent requests.
    pub fn serve_agent(&self, service: Arc<dyn AgentService>) {
        if let Ok(mut agent) = self.inner.agent.write() {
            *agent = Some(service);
        }
    }

    fn agent_service(&self) -> Option<Arc<dyn AgentService>> {
        self.inner.agent.read().ok().and_then(|a| a.clone())
    }

    /// Sends `request` to the agent of member `node` (a Docker node ID) and returns its
    /// answer. This node's own agent is called directly. Bounded by p2p's request timeout.
    pub async fn ask_agent(&self, node: &str, request: Vec<u8>) -> Result<Vec<u8>, ClusterError> {
        let refused = |reason: String| ClusterError::Agent {
            node: node.to_owned(),
            reason,
        };
        if node == self.inner.node_id {
            let service = self
                .agent_service()
                .ok_or_else(|| refused("the agent is not running".into()))?;
            return service
                .serve(self.inner.node_id.clone(), request)
                .await
                .map_err(refused);
        }
        let peer = self
            .metrics()
            .membership_config
            .membership()
            .nodes()
            .filter_map(|(_, info)| info.peer_id.parse::<PeerId>().ok())
            .find(|peer| docker_node_id(peer) == node)
            .ok_or_else(|| refused("not a member of the swarm".into()))?;
        let bytes = codec::encode(&Rpc::Agent(ByteBuf(request))).map_err(raft_err)?;
        let reply = self
            .inner
            .p2p
            .request_rpc(peer, bytes)
            .await
            .map_err(|e| refused(e.to_string()))?;
        match codec::decode::<RpcReply>(&reply) {
            Ok(Ok(RpcOk::Agent(answer))) => Ok(answer.0),
            Ok(Err(RpcFail::Refused(reason))) => Err(refused(reason)),
            Ok(_) => Err(refused("unexpected reply to an agent request".into())),
            Err(e) => Err(refused(e.to_string())),
        }
    }

    /// True once the managers removed this node (`node rm`): it is no longer in the swarm.
    pub fn was_removed(&self) -> bool {
        self.inner.removed.load(Ordering::SeqCst)
            || self.state().removed_nodes.contains(&self.inner.node_id)
    }

    fn check_not_left(&self) -> Result<(), ClusterError> {
        if self.inner.left.load(Ordering::SeqCst) {
            return Err(CommandError::NotInitialized.into());
        }
        Ok(())
    }

    fn is_in_cluster(&self) -> bool {
        self.state().cluster.is_some()
            || self
                .metrics()
                .membership_config
                .membership()
                .nodes()
                .next()
                .is_some()
    }

    // ---- init and join -----------------------------------------------------------------------

    /// `swarm init`: a single-voter cluster with this node as its manager. Returns the node ID.
    pub async fn init(&self, options: InitOptions) -> Result<String, ClusterError> {
        self.check_not_left()?;
        let initialized = self.inner.raft.is_initialized().await.map_err(raft_err)?;
        if initialized || self.is_in_cluster() {
            return Err(CommandError::AlreadyInitialized.into());
        }
        self.set_advertise(options.advertise_addr.as_deref())?;
        let info = self.node_info();
        let me = self.inner.raft_id;
        self.inner
            .raft
            .initialize(BTreeMap::from([(me, info.clone())]))
            .await
            .map_err(raft_err)?;
        self.inner
            .raft
            .wait(Some(self.inner.config.timeouts.propose))
            .current_leader(me, "the first manager leads")
            .await
            .map_err(|_| ClusterError::NoLeader)?;

        let io = |what: &str| {
            let what = what.to_owned();
            move |source| ClusterError::Io { what, source }
        };
        let cluster_id = tokens::base36(
            &tokens::random_bytes(32).map_err(io("cannot read random bytes"))?,
            25,
        );
        let join_tokens = JoinTokens {
            worker: tokens::generate(&cluster_id).map_err(io("cannot make a join token"))?,
            manager: tokens::generate(&cluster_id).map_err(io("cannot make a join token"))?,
        };
        tokens::store(&self.inner.config.data_dir, &join_tokens)
            .map_err(io("cannot store the join tokens"))?;
        let (ip, ip_port) = ip_and_port(&info.addr);
        let mut description = options.description;
        description.hostname = options.hostname.clone();
        let command = Command::InitCluster {
            cluster_id,
            spec: options.spec,
            default_addr_pool: options.default_addr_pool,
            subnet_size: options.subnet_size,
            data_path_port: options.data_path_port,
            join_token_hashes: tokens::hashes_of(&join_tokens),
            manager: NewNode {
                id: self.inner.node_id.clone(),
                spec: NodeSpec {
                    role: NodeRole::Manager,
                    availability: options.availability,
                    ..Default::default()
                },
                description,
                addr: ip,
            },
            manager_addr: ip_port,
        };
        self.propose(command).await??;
        Ok(self.inner.node_id.clone())
    }

    fn set_advertise(&self, advertise: Option<&str>) -> Result<(), ClusterError> {
        if advertise.is_some() {
            let current = self.advertise();
            let new = advertise_multiaddr(advertise, &current)?;
            if let Ok(mut a) = self.inner.advertise.lock() {
                *a = new;
            }
        }
        Ok(())
    }

    /// `swarm join`: presents the token to a manager, takes the member list it answers with,
    /// and waits until this node holds the replicated state (and, for a manager, votes).
    pub async fn join(&self, options: JoinOptions) -> Result<(), ClusterError> {
        self.check_not_left()?;
        if self.inner.raft.is_initialized().await.map_err(raft_err)? || self.is_in_cluster() {
            return Err(CommandError::AlreadyInitialized.into());
        }
        self.set_advertise(options.advertise_addr.as_deref())?;
        let remote = crate::p2p::parse_addr(&options.remote_addr)?;
        let mut description = options.description;
        description.hostname = options.hostname;
        let request = JoinRequest {
            token: options.token,
            info: self.node_info(),
            description,
            availability: options.availability,
        };
        let bytes = codec::encode(&request).map_err(raft_err)?;
        let joined = match self.inner.p2p.join(remote.clone(), bytes).await {
            Ok(joined) => joined,
            Err(P2pError::JoinRejected { reason, .. }) => {
                return Err(if reason == ClusterError::InvalidJoinToken.to_string() {
                    ClusterError::InvalidJoinToken
                } else if reason == ClusterError::RateLimited.to_string() {
                    ClusterError::RateLimited
                } else {
                    ClusterError::Join(reason)
                });
            }
            Err(e) => return Err(e.into()),
        };
        let accepted: JoinAccepted = codec::decode(&joined.reply).map_err(raft_err)?;
        self.inner.p2p.add_member(joined.peer, remote).await?;
        for (_, info) in &accepted.members {
            let (Ok(peer), Ok(addr)) = (info.peer_id.parse::<PeerId>(), info.addr.parse()) else {
                continue;
            };
            if peer != self.inner.peer {
                self.inner.p2p.add_member(peer, addr).await?;
            }
        }
        if let Some(join_tokens) = &accepted.tokens {
            tokens::store(&self.inner.config.data_dir, join_tokens).map_err(|source| {
                ClusterError::Io {
                    what: "cannot store the join tokens".into(),
                    source,
                }
            })?;
        }
        // Wait until the log has reached us: our node is in the state, and a manager votes.
        let deadline = Instant::now() + self.inner.config.timeouts.join;
        loop {
            let here = self.state().nodes.contains_key(&self.inner.node_id);
            let voter = self
                .metrics()
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == self.inner.raft_id);
            if here && (accepted.role == NodeRole::Worker || voter) {
                tracing::info!(node = %self.inner.node_id, role = %accepted.role, "joined the swarm");
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Join(format!(
                    "timed out waiting to {} (in state: {here})",
                    if here {
                        "become a voter"
                    } else {
                        "receive the swarm state"
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Answers a join handshake: check the rate limit here, then decide on the leader.
    async fn accept_join(&self, peer: PeerId, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let limit = &self.inner.config.join_rate_limit;
        let peer_key = peer.to_string();
        let allowed = self
            .inner
            .failed_joins
            .lock()
            .map(|mut f| f.allowed(&peer_key, limit, std::time::Instant::now()))
            .unwrap_or(false);
        if !allowed {
            return Err(ClusterError::RateLimited.to_string());
        }
        let request: JoinRequest =
            codec::decode(bytes).map_err(|_| ClusterError::InvalidJoinToken.to_string())?;
        let result = if self.is_leader() {
            self.admit(peer, request).await
        } else {
            let rpc = Rpc::Join {
                peer: peer.to_string(),
                request,
            };
            let deadline = Instant::now() + self.inner.config.timeouts.propose;
            loop {
                match self.ask_leader(&rpc).await {
                    Ok(RpcOk::Joined(accepted)) => break Ok(accepted),
                    Ok(_) => break Err(RpcFail::Refused("unexpected reply".into())),
                    Err(Attempt::Fail(ClusterError::InvalidJoinToken)) => {
                        break Err(RpcFail::InvalidJoinToken);
                    }
                    Err(Attempt::Fail(e)) => break Err(RpcFail::Refused(e.to_string())),
                    Err(Attempt::Retry) if Instant::now() < deadline => {
                        tokio::time::sleep(self.inner.config.timeouts.retry_interval).await;
                    }
                    Err(Attempt::Retry) => {
                        break Err(RpcFail::Refused(ClusterError::NoLeader.to_string()));
                    }
                }
            }
        };
        match result {
            Ok(accepted) => codec::encode(&accepted).map_err(|e| e.to_string()),
            Err(RpcFail::InvalidJoinToken) => {
                if let Ok(mut f) = self.inner.failed_joins.lock() {
                    f.record_failure(&peer_key, std::time::Instant::now());
                }
                tracing::info!(%peer, "join refused: invalid join token");
                Err(ClusterError::InvalidJoinToken.to_string())
            }
            Err(RpcFail::NotLeader) => Err(ClusterError::NoLeader.to_string()),
            Err(RpcFail::Refused(reason)) => Err(reason),
        }
    }

    /// On the leader: validate the token, make the joiner a member, a learner and a node.
    /// A manager becomes a voter later, once it has caught up (see `leader_duties`).
    async fn admit(&self, peer: PeerId, request: JoinRequest) -> Result<JoinAccepted, RpcFail> {
        let state = self.state();
        let Some(cluster) = &state.cluster else {
            return Err(RpcFail::Refused(CommandError::NotInitialized.to_string()));
        };
        let Some(role) = tokens::role_for(&request.token, &cluster.join_token_hashes) else {
            return Err(RpcFail::InvalidJoinToken);
        };
        if request.info.peer_id != peer.to_string() {
            return Err(RpcFail::Refused(
                "the join request names another peer".into(),
            ));
        }
        let node_id = docker_node_id(&peer);
        if state.removed_nodes.contains(&node_id) {
            return Err(RpcFail::Refused(
                CommandError::NodeRemoved { id: node_id }.to_string(),
            ));
        }
        let addr: Multiaddr = request
            .info
            .addr
            .parse()
            .map_err(|_| RpcFail::Refused("invalid advertise address".into()))?;
        let refused = |e: &dyn std::fmt::Display| RpcFail::Refused(e.to_string());
        self.inner
            .p2p
            .add_member(peer, addr)
            .await
            .map_err(|e| refused(&e))?;
        let raft_id = raft_node_id(&peer);
        let known = self
            .metrics()
            .membership_config
            .membership()
            .get_node(&raft_id)
            .is_some();
        if !known {
            // A membership change in flight (say, another manager's promotion) makes
            // add_learner fail with InProgress: wait for it, within the propose timeout.
            let deadline = Instant::now() + self.inner.config.timeouts.propose;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let add = self
                    .inner
                    .raft
                    .add_learner(raft_id, request.info.clone(), false);
                match tokio::time::timeout(left, add).await {
                    Ok(Ok(_)) => break,
                    Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(_))))
                        if Instant::now() < deadline =>
                    {
                        tokio::time::sleep(self.inner.config.timeouts.retry_interval).await;
                    }
                    Ok(Err(e)) => return Err(refused(&e)),
                    Err(_) => return Err(RpcFail::NotLeader),
                }
            }
        }
        if !state.nodes.contains_key(&node_id) {
            let (ip, _) = ip_and_port(&request.info.addr);
            let command = Command::AddNode {
                node: NewNode {
                    id: node_id.clone(),
                    spec: NodeSpec {
                        role,
                        availability: request.availability,
                        ..Default::default()
                    },
                    description: request.description,
                    addr: ip,
                },
            };
            match self.propose(command).await {
                Ok(Ok(_)) | Ok(Err(CommandError::NodeExists { .. })) => {}
                Ok(Err(e)) => return Err(refused(&e)),
                Err(e) => return Err(refused(&e)),
            }
        }
        let members = self
            .metrics()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, info)| (*id, info.clone()))
            .collect();
        let tokens = match role {
            NodeRole::Manager => tokens::load(&self.inner.config.data_dir).ok().flatten(),
            NodeRole::Worker => None,
        };
        tracing::info!(node = %node_id, %role, "admitted a node");
        Ok(JoinAccepted {
            role,
            node_id,
            members,
            tokens,
        })
    }

    // ---- tokens ------------------------------------------------------------------------------

    /// The current plaintext join tokens (managers only). A manager whose local copy is out
    /// of date (another manager rotated) fetches them from another manager.
    pub async fn join_tokens(&self) -> Result<JoinTokens, ClusterError> {
        let state = self.state();
        let cluster = state.cluster.as_ref().ok_or(CommandError::NotInitialized)?;
        if !self.is_manager() {
            return Err(ClusterError::NotManager);
        }
        let current = |t: &JoinTokens| tokens::hashes_of(t) == cluster.join_token_hashes;
        if let Ok(Some(local)) = tokens::load(&self.inner.config.data_dir)
            && current(&local)
        {
            return Ok(local);
        }
        let m = self.metrics();
        let bytes = codec::encode(&Rpc::GetTokens).map_err(raft_err)?;
        for (id, info) in m.membership_config.membership().nodes() {
            let Ok(peer) = info.peer_id.parse::<PeerId>() else {
                continue;
            };
            if *id == self.inner.raft_id {
                continue;
            }
            let Ok(reply) = self.inner.p2p.request_rpc(peer, bytes.clone()).await else {
                continue;
            };
            if let Ok(Ok(RpcOk::Tokens(t))) = codec::decode::<RpcReply>(&reply)
                && current(&t)
            {
                let _ = tokens::store(&self.inner.config.data_dir, &t);
                return Ok(t);
            }
        }
        Err(ClusterError::Raft(
            "no manager holds the current join tokens".into(),
        ))
    }

    /// `swarm join-token --rotate ROLE`: a new token; the old one stops working.
    pub async fn rotate_join_token(&self, role: NodeRole) -> Result<JoinTokens, ClusterError> {
        let mut current = self.join_tokens().await?;
        let cluster_id = self
            .state()
            .cluster
            .map(|c| c.info.id)
            .ok_or(CommandError::NotInitialized)?;
        let io = |source| ClusterError::Io {
            what: "cannot make a join token".into(),
            source,
        };
        let new = tokens::generate(&cluster_id).map_err(io)?;
        match role {
            NodeRole::Worker => current.worker = new.clone(),
            NodeRole::Manager => current.manager = new.clone(),
        }
        // Stored first: if the proposal fails the old hash still matches the other token.
        tokens::store(&self.inner.config.data_dir, &current).map_err(io)?;
        self.propose(Command::RotateJoinToken {
            role,
            new_hash: tokens::hash(&new),
        })
        .await??;
        Ok(current)
    }

    /// A manager in fact: a Raft voter.
    pub fn is_manager(&self) -> bool {
        self.metrics()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == self.inner.raft_id)
    }

    // ---- leave -------------------------------------------------------------------------------

    /// `swarm leave [--force]`. A manager whose leaving would cost the swarm its quorum is
    /// refused without `force`. The node stops taking part; restart it to use it again.
    pub async fn leave(&self, force: bool) -> Result<(), ClusterError> {
        self.check_not_left()?;
        if !self.is_in_cluster() {
            return Err(CommandError::NotInitialized.into());
        }
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if voters.contains(&self.inner.raft_id) && !force {
            let connected: BTreeSet<String> = self
                .inner
                .p2p
                .members()
                .await?
                .into_iter()
                .filter(|m| m.connected)
                .map(|m| m.peer.to_string())
                .collect();
            let reachable = voters
                .iter()
                .filter(|id| {
                    **id == self.inner.raft_id
                        || membership
                            .get_node(id)
                            .is_some_and(|n| connected.contains(&n.peer_id))
                })
                .count();
            let total = voters.len();
            let mut msg = String::from(
                "You are attempting to leave the swarm on a node that is participating as a manager. ",
            );
            if total == 1 {
                msg.push_str("Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ");
                return Err(ClusterError::LeaveRefused(msg.trim_end().to_owned()));
            }
            if reachable - 1 < total / 2 + 1 {
                msg.push_str(&format!(
                    "Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.",
                    reachable - 1,
                    total
                ));
                return Err(ClusterError::LeaveRefused(msg));
            }
        }
        // Ask the leader to drop us; a forced leave goes on even without one.
        let me = self.inner.raft_id;
        let result = if self.is_leader() {
            self.remove_from_membership(me).await
        } else {
            let deadline = Instant::now() + self.inner.config.timeouts.propose;
            loop {
                match self.ask_leader(&Rpc::Leave { node: me }).await {
                    Ok(_) => break Ok(()),
                    Err(Attempt::Retry) if Instant::now() < deadline => {
                        tokio::time::sleep(self.inner.config.timeouts.retry_interval).await;
                    }
                    Err(Attempt::Retry) => break Err(ClusterError::NoLeader),
                    Err(Attempt::Fail(e)) => break Err(e),
                }
            }
        };
        if let Err(e) = result {
            if !force {
                return Err(e);
            }
            tracing::warn!(error = %e, "leaving without the leader's acknowledgement");
        }
        self.inner.left.store(true, Ordering::SeqCst);
        self.inner.stop.cancel();
        let _ = tokens::remove(&self.inner.config.data_dir);
        let _ = std::fs::remove_file(self.inner.config.data_dir.join(STORE_FILE));
        tracing::info!(node = %self.inner.node_id, "left the swarm");
        Ok(())
    }

    /// On the leader: take `node` out of the Raft membership and mark it down.
    async fn remove_from_membership(&self, node: NodeId) -> Result<(), ClusterError> {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let info = membership.get_node(&node).cloned();
        let voter = membership.voter_ids().any(|id| id == node);
        let t = self.inner.config.timeouts.propose;
        let change = if voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([node]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node]))
        };
        match tokio::time::timeout(t, self.inner.raft.change_membership(change, false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(raft_err(e)),
            Err(_) => return Err(ClusterError::NoLeader),
        }
        if let Some(id) = info.as_ref().and_then(docker_id_of)
            && let Some(n) = self.state().nodes.get(&id)
        {
            let _ = self
                .propose(Command::SetNodeStatus {
                    id: id.clone(),
                    state: NodeState::Down,
                    addr: n.status.addr.clone(),
                    message: "node left the swarm".into(),
                })
                .await;
            if n.manager_status.is_some() {
                let _ = self
                    .propose(Command::SetManagerStatus { id, status: None })
                    .await;
            }
        }
        Ok(())
    }

    // ---- inbound -----------------------------------------------------------------------------

    async fn dispatch(self, mut events: crate::p2p::Events, beats: mpsc::Sender<PeerId>) {
        let mut handlers = JoinSet::new();
        let stop = self.inner.stop.clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
                event = events.recv() => {
                    let Some(event) = event else { break };
                    match event {
                        Inbound::RaftRequest { bytes, reply, .. } => {
                            let raft = self.inner.raft.clone();
                            handlers.spawn(async move {
                                if let Some(answer) = network::serve(&raft, &bytes).await {
                                    let _ = reply.send(answer);
                                }
                            });
                        }
                        Inbound::RpcRequest { peer, bytes, reply } => {
                            let this = self.clone();
                            handlers.spawn(async move {
                                let answer = this.serve_rpc(peer, &bytes).await;
                                if let Ok(answer) = codec::encode(&answer) {
                                    let _ = reply.send(answer);
                                }
                            });
                        }
                        Inbound::JoinRequest { peer, bytes, reply, .. } => {
                            let this = self.clone();
                            handlers.spawn(async move {
                                let _ = reply.send(this.accept_join(peer, &bytes).await);
                            });
                        }
                        Inbound::Gossip { topic: Topic::Membership, source, .. } => {
                            let _ = beats.try_send(source);
                        }
                        Inbound::PeerDisconnected { peer } => {
                            handlers.spawn(self.clone().on_peer_lost(peer));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Fast failover. A crashed leader's sockets close at once, so its followers learn of
    /// the crash long before Raft's timers would (openraft waits out the old leader's lease,
    /// `election_timeout_max`, plus an election timeout). Once that lease is over on every
    /// follower — it started at the last heartbeat, before the connection closed — and the
    /// leader has not come back (p2p redials members on its own), the lowest-ID voter that
    /// is still connected stands for election at once; the others wait, so the vote does not
    /// split. A leader cut off by the network rather than crashed keeps its connections
    /// until they time out: there Raft's own timers still decide.
    async fn on_peer_lost(self, peer: PeerId) {
        let lost = raft_node_id(&peer);
        let m = self.metrics();
        let me = self.inner.raft_id;
        if lost == me || m.current_leader != Some(lost) {
            return;
        }
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == me)
        {
            return;
        }
        let lease = self.inner.config.raft.election_timeout_max + LEASE_MARGIN;
        tokio::select! {
            _ = self.inner.stop.cancelled() => return,
            _ = tokio::time::sleep(lease) => {}
        }
        let m = self.metrics();
        if m.current_leader != Some(lost) {
            return; // another node already leads
        }
        let Ok(members) = self.inner.p2p.members().await else {
            return;
        };
        let connected: BTreeSet<String> = members
            .iter()
            .filter(|x| x.connected)
            .map(|x| x.peer.to_string())
            .collect();
        if connected.contains(&peer.to_string()) {
            return; // it came back: not a crash
        }
        let membership = m.membership_config.membership();
        let candidate = membership
            .voter_ids()
            .filter(|id| *id != lost)
            .filter(|id| {
                *id == me
                    || membership
                        .get_node(id)
                        .is_some_and(|n| connected.contains(&n.peer_id))
            })
            .min();
        if candidate == Some(me) {
            tracing::info!(
                leader = lost,
                "the leader's connection closed and it did not come back: standing for election"
            );
            if let Err(e) = self.inner.raft.trigger().elect().await {
                tracing::warn!(error = %e, "cannot start an election");
            }
        }
    }

    async fn serve_rpc(&self, peer: PeerId, bytes: &[u8]) -> RpcReply {
        let rpc: Rpc = codec::decode(bytes).map_err(|e| RpcFail::Refused(e.to_string()))?;
        match rpc {
            Rpc::Propose(proposal) => {
                let deadline = Instant::now() + self.inner.config.timeouts.propose;
                match self.write_locally(proposal, deadline).await {
                    Ok(Some(result)) => Ok(RpcOk::Proposed(result)),
                    Ok(None) | Err(Attempt::Retry) => Err(RpcFail::NotLeader),
                    Err(Attempt::Fail(e)) => Err(RpcFail::Refused(e.to_string())),
                }
            }
            Rpc::Join {
                peer: joiner,
                request,
            } => {
                if !self.is_leader() {
                    return Err(RpcFail::NotLeader);
                }
                let joiner: PeerId = joiner
                    .parse()
                    .map_err(|_| RpcFail::Refused("invalid peer ID".into()))?;
                self.admit(joiner, request).await.map(RpcOk::Joined)
            }
            Rpc::Leave { node } => {
                if node != raft_node_id(&peer) {
                    return Err(RpcFail::Refused("a node may only remove itself".into()));
                }
                if !self.is_leader() {
                    return Err(RpcFail::NotLeader);
                }
                self.remove_from_membership(node)
                    .await
                    .map(|()| RpcOk::Left)
                    .map_err(|e| RpcFail::Refused(e.to_string()))
            }
            Rpc::ReadIndex => match self.read_index().await {
                Ok(index) if self.is_leader() => Ok(RpcOk::ReadIndex(index)),
                _ => Err(RpcFail::NotLeader),
            },
            Rpc::Removed => {
                if Some(raft_node_id(&peer)) != self.leader_id() {
                    return Err(RpcFail::Refused("only the leader removes nodes".into()));
                }
                tracing::warn!("the leader removed this node from the swarm");
                self.inner.removed.store(true, Ordering::SeqCst);
                Ok(RpcOk::Left)
            }
            Rpc::GetTokens => {
                let m = self.metrics();
                let asker_votes = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|id| id == raft_node_id(&peer));
                if !asker_votes {
                    return Err(RpcFail::Refused(
                        "only managers may read join tokens".into(),
                    ));
                }
                match tokens::load(&self.inner.config.data_dir) {
                    Ok(Some(t)) => Ok(RpcOk::Tokens(t)),
                    _ => Err(RpcFail::Refused("no join tokens here".into())),
                }
            }
            Rpc::Agent(request) => {
                let service = self
                    .agent_service()
                    .ok_or_else(|| RpcFail::Refused("the agent is not running".into()))?;
                service
                    .serve(docker_node_id(&peer), request.0)
                    .await
                    .map(|answer| RpcOk::Agent(ByteBuf(answer)))
                    .map_err(RpcFail::Refused)
            }
        }
    }

    // ---- background duties -------------------------------------------------------------------

    /// Keeps the p2p member set equal to the Raft membership (voters and learners). Peers
    /// added by `join` before the log arrives are left alone until the membership names them.
    async fn sync_membership(self) {
        let mut metrics = self.inner.raft.metrics();
        let stop = self.inner.stop.clone();
        let mut synced: BTreeMap<PeerId, String> = BTreeMap::new();
        loop {
            let wanted: BTreeMap<PeerId, String> = metrics
                .borrow_and_update()
                .membership_config
                .membership()
                .nodes()
                .filter_map(|(_, info)| Some((info.peer_id.parse().ok()?, info.addr.clone())))
                .filter(|(peer, _)| *peer != self.inner.peer)
                .collect();
            for (peer, addr) in &wanted {
                if synced.get(peer) != Some(addr) {
                    let result = match addr.parse() {
                        Ok(addr) => self.inner.p2p.add_member(*peer, addr).await,
                        Err(_) => self.inner.p2p.add_member_without_addr(*peer).await,
                    };
                    if result.is_err() {
                        return;
                    }
                }
            }
            for peer in synced.keys().filter(|p| !wanted.contains_key(p)) {
                tracing::info!(%peer, "peer left the membership; cutting it off");
                if self.inner.p2p.remove_member(*peer).await.is_err() {
                    return;
                }
            }
            synced = wanted;
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = metrics.changed() => if changed.is_err() { return },
            }
        }
    }

    async fn publish_heartbeats(self) {
        let stop = self.inner.stop.clone();
        let mut tick = tokio::time::interval(self.inner.config.timeouts.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let Ok(beat) = codec::encode(&Heartbeat {
            node: self.inner.raft_id,
        }) else {
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    // No peers subscribed yet is normal for a lone node: ignore.
                    if let Err(P2pError::Stopped) = self.inner.p2p.publish(Topic::Membership, beat.clone()).await {
                        return;
                    }
                }
            }
        }
    }

    /// While leader: node liveness from heartbeats, manager status, voter promotion, and
    /// dropping removed nodes from the membership. Each step proposes only changes.
    async fn leader_duties(self, mut beats: mpsc::Receiver<PeerId>) {
        let stop = self.inner.stop.clone();
        let timeouts = self.inner.config.timeouts.clone();
        let mut tick = tokio::time::interval(timeouts.reconcile_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Every node records heartbeats, leader or not: gossip reaches all members, so a
        // newly elected leader already knows who went silent and does not need to wait a
        // whole `down_after` to find out. A node never heard from gets a grace period from
        // the moment it is first considered.
        let mut last_seen: HashMap<PeerId, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(peer) = beats.recv() => { last_seen.insert(peer, Instant::now()); }
                _ = tick.tick() => {
                    if self.is_leader() {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = self.reconcile(&mut last_seen, Instant::now()) => {}
                        }
                    }
                }
            }
        }
    }

    async fn reconcile(&self, last_seen: &mut HashMap<PeerId, Instant>, now: Instant) {
        let timeouts = &self.inner.config.timeouts;
        let m = self.metrics();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let state = self.state();
        if state.cluster.is_none() {
            return;
        }
        let mut by_docker_id: BTreeMap<String, (NodeId, PeerId, NodeInfo)> = BTreeMap::new();
        for (id, info) in membership.nodes() {
            if let Ok(peer) = info.peer_id.parse::<PeerId>() {
                by_docker_id.insert(docker_node_id(&peer), (*id, peer, info.clone()));
            }
        }
        let mut alive = |peer: &PeerId| {
            if *peer == self.inner.peer {
                return true;
            }
            let seen = *last_seen.entry(*peer).or_insert(now);
            now.duration_since(seen) <= timeouts.down_after
        };

        for node in state.nodes.values() {
            let Some((raft_id, peer, info)) = by_docker_id.get(&node.id) else {
                continue;
            };
            let is_alive = alive(peer);
            // Liveness.
            let wanted = if is_alive {
                NodeState::Ready
            } else {
                NodeState::Down
            };
            if node.status.state != wanted {
                tracing::info!(node = %node.id, state = %wanted, "node liveness changed");
                let _ = self
                    .propose(Command::SetNodeStatus {
                        id: node.id.clone(),
                        state: wanted,
                        addr: node.status.addr.clone(),
                        message: if is_alive {
                            String::new()
                        } else {
                            "heartbeat failure".into()
                        },
                    })
                    .await;
            }
            // Demotion: a voter whose spec asks for worker stays a learner. The state never
            // lets the last manager be demoted; the voter count is checked again here.
            if voters.contains(raft_id) && node.spec.role == NodeRole::Worker && voters.len() > 1 {
                tracing::info!(node = %node.id, "demoting to learner");
                let change = ChangeMembers::RemoveVoters(BTreeSet::from([*raft_id]));
                let _ = tokio::time::timeout(
                    timeouts.propose,
                    self.inner.raft.change_membership(change, true),
                )
                .await;
                continue;
            }
            // Manager status of voters.
            if voters.contains(raft_id) {
                let (_, addr) = ip_and_port(&info.addr);
                let wanted = Some(ManagerStatus {
                    leader: *raft_id == self.inner.raft_id,
                    reachability: if is_alive {
                        Reachability::Reachable
                    } else {
                        Reachability::Unreachable
                    },
                    addr,
                });
                if node.manager_status != wanted {
                    let _ = self
                        .propose(Command::SetManagerStatus {
                            id: node.id.clone(),
                            status: wanted,
                        })
                        .await;
                }
            } else if node.manager_status.is_some() {
                // Demoted (or removed from the voters): no longer a manager in the state.
                let _ = self
                    .propose(Command::SetManagerStatus {
                        id: node.id.clone(),
                        status: None,
                    })
                    .await;
            } else if node.spec.role == NodeRole::Manager && is_alive {
                // Promote a caught-up learner whose spec asks for manager.
                let last = m.last_log_index.unwrap_or(0);
                let caught_up = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(raft_id).cloned().flatten())
                    .is_some_and(|matched| matched.index + 16 >= last);
                if caught_up {
                    tracing::info!(node = %node.id, "promoting to voter");
                    let change = ChangeMembers::AddVoterIds(BTreeSet::from([*raft_id]));
                    let _ = tokio::time::timeout(
                        timeouts.propose,
                        self.inner.raft.change_membership(change, true),
                    )
                    .await;
                }
            }
        }
        // Removed nodes leave the Raft membership (and so the p2p member set), after being
        // told so (best effort: a node that is down hears it never).
        for id in &state.removed_nodes {
            if let Some((raft_id, peer, _)) = by_docker_id.get(id)
                && !voters.contains(raft_id)
            {
                if let Ok(bytes) = codec::encode(&Rpc::Removed) {
                    let tell = self.inner.p2p.request_rpc(*peer, bytes);
                    let _ = tokio::time::timeout(timeouts.retry_interval * 10, tell).await;
                }
                let change = ChangeMembers::RemoveNodes(BTreeSet::from([*raft_id]));
                let _ = tokio::time::timeout(
                    timeouts.propose,
                    self.inner.raft.change_membership(change, false),
                )
                .await;
            }
        }
    }
}

/// One attempt's outcome when it did not succeed.
enum Attempt {
    /// No leader, or it moved: try again until the deadline.
    Retry,
    Fail(ClusterError),
}

impl From<ClusterError> for Attempt {
    fn from(e: ClusterError) -> Attempt {
        Attempt::Fail(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_stable_and_docker_shaped() {
        let peer = NodeKey::generate().peer_id();
        assert_eq!(raft_node_id(&peer), raft_node_id(&peer));
        let id = docker_node_id(&peer);
        assert_eq!(id, docker_node_id(&peer));
        assert_eq!(id.len(), 25);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert_ne!(id, docker_node_id(&NodeKey::generate().peer_id()));
    }

    #[test]
    fn addresses_split_into_ip_and_endpoint() {
        assert_eq!(
            ip_and_port("/ip4/198.18.0.11/tcp/2377"),
            ("198.18.0.11".into(), "198.18.0.11:2377".into())
        );
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/4000".parse().unwrap();
        assert_eq!(
            advertise_multiaddr(Some("198.18.0.11"), &listen)
                .unwrap()
                .to_string(),
            "/ip4/198.18.0.11/tcp/4000"
        );
        assert_eq!(advertise_multiaddr(None, &listen).unwrap(), listen);
    }
}
