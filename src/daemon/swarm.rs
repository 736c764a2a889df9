//! The swarm plane of the daemon: starts, holds and stops this host's cluster member, and
//! answers `/swarm/*`, `/nodes/*` and the `Swarm` block of `/info`.
//!
//! ```text
//!  inactive ── init / join ──▶ ClusterNode::start(<data>/swarm) ──▶ active (Member held)
//!     ▲                              │ failed: member stopped, <data>/swarm removed
//!     └──────── leave ───────────────┘ (the node key goes too: a new identity next time)
//!  daemon start: <data>/swarm/raft.redb exists ──▶ the member resumes where it was
//! ```
//!
//! The member listens for cluster traffic only while the node is in a swarm, as Docker's
//! does. Init, join and leave are serialised by one async mutex; reads take a cheap clone
//! of the current `Cluster` handle.
//!
//! Reads on managers are linearizable (a read-index round through the leader); a caller that
//! prefers speed to freshness asks for a local read (`?consistency=local`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::cluster::{
    Cluster, ClusterConfig, ClusterError, ClusterNode, ClusterTimeouts, Command, InitOptions,
    JoinOptions, RaftSettings, State,
};
use crate::types::system::{PeerNode, SwarmInfo};
use crate::types::{
    CommandError, InitRequest, JoinRequest, Node, NodeAvailability, NodeDescription, NodeRole,
    NodeSpec, Swarm, SwarmSpec, swarm::Rotate,
};

/// Docker's default `ListenAddr`: the CLI always sends it, so it stands for "the daemon's".
const DOCKER_DEFAULT_LISTEN: &str = "0.0.0.0:2377";
/// How long a stopping member's tasks get before they are aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a member checks whether the managers removed it.
const REMOVAL_CHECK: Duration = Duration::from_millis(500);
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// What the daemon's command line sets for the cluster plane.
#[derive(Debug, Clone)]
pub struct SwarmSettings {
    /// Cluster traffic (p2p), `IP:PORT`; `swarm init/join --listen-addr` overrides it.
    pub listen_addr: String,
    /// What other nodes dial; `swarm init/join --advertise-addr` overrides it.
    pub advertise_addr: Option<String>,
    pub raft: RaftSettings,
    pub timeouts: ClusterTimeouts,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        SwarmSettings {
            listen_addr: DOCKER_DEFAULT_LISTEN.to_owned(),
            advertise_addr: None,
            raft: RaftSettings::default(),
            timeouts: ClusterTimeouts::default(),
        }
    }
}

/// The API's node filters (`id`, `name`, `role`, `membership`, `node.label`).
pub type Filters = BTreeMap<String, Vec<String>>;

/// Starts this node's swarm duties (the task runner, the orchestrator) for a member that
/// just became active; they stop with the token.
pub type OnActive = Box<dyn Fn(&Cluster, CancellationToken) + Send + Sync>;
/// What to undo when this node leaves the swarm or is removed from it (not when the daemon
/// merely stops): blocking, run off the async threads.
pub type OnLeft = Arc<dyn Fn() + Send + Sync>;

struct Member {
    cluster: Cluster,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

pub struct SwarmPlane {
    dir: PathBuf,
    settings: SwarmSettings,
    description: NodeDescription,
    member: Mutex<Option<Member>>,
    current: RwLock<Option<Cluster>>,
    /// Why the member could not resume at start, shown as `Swarm.Error`.
    error: RwLock<Option<String>>,
    shutdown: CancellationToken,
    on_active: Option<OnActive>,
    on_left: Option<OnLeft>,
}

impl SwarmPlane {
    /// `dir` holds the member's key and store; `shutdown` stops it with the daemon.
    pub fn new(
        dir: PathBuf,
        settings: SwarmSettings,
        description: NodeDescription,
        shutdown: CancellationToken,
    ) -> SwarmPlane {
        SwarmPlane {
            dir,
            settings,
            description,
            member: Mutex::new(None),
            current: RwLock::new(None),
            error: RwLock::new(None),
            shutdown,
            on_active: None,
            on_left: None,
        }
    }

    /// What to start whenever this node becomes an active member.
    pub fn with_duties(mut self, on_active: OnActive) -> SwarmPlane {
        self.on_active = Some(on_active);
        self
    }

    /// What to clean up once this node is out of the swarm (its task containers).
    pub fn with_cleanup(mut self, on_left: OnLeft) -> SwarmPlane {
        self.on_left = Some(on_left);
        self
    }

    /// At daemon start: a node that was in a swarm takes its place again.
    pub async fn resume(self: &Arc<Self>) {
        if !self.dir.join(crate::cluster::node::STORE_FILE).exists() {
            return;
        }
        let mut member = self.member.lock().await;
        let (listen, advertise) = (
            self.settings.listen_addr.clone(),
            self.settings.advertise_addr.clone(),
        );
        match self.start_member(&listen, advertise).await {
            Ok(started) => {
                tracing::info!(node = %started.cluster.node_id(), "rejoined the swarm from disk");
                self.activate(&mut member, started);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot resume the swarm member");
                if let Ok(mut error) = self.error.write() {
                    *error = Some(e.to_string());
                }
            }
        }
    }

    /// The cluster handle, if this node is in a swarm.
    pub fn cluster(&self) -> Option<Cluster> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    fn set_current(&self, cluster: Option<Cluster>) {
        if let Ok(mut current) = self.current.write() {
            *current = cluster;
        }
    }

    /// The `Swarm` header of `/_ping`.
    pub fn header(&self) -> String {
        match self.cluster() {
            None => "inactive".into(),
            Some(c) if c.is_manager() => "active/manager".into(),
            Some(_) => "active/worker".into(),
        }
    }

    // ---- init, join, leave ---------------------------------------------------------------

    pub async fn init(self: &Arc<Self>, request: InitRequest) -> Result<String, ApiError> {
        if request.force_new_cluster {
            return Err(ApiError::bad_request(
                "--force-new-cluster is not supported by this daemon",
            ));
        }
        if request.auto_lock_managers || request.spec.encryption_config.auto_lock_managers {
            return Err(ApiError::bad_request(
                "autolock is not supported by this daemon",
            ));
        }
        let availability = parse_availability(&request.availability)?;
        validate_pool(&request.default_addr_pool, request.subnet_size)?;
        let mut member = self.member.lock().await;
        if member.is_some() {
            return Err(cluster_error(CommandError::AlreadyInitialized.into()));
        }
        let listen = self.listen_addr(&request.listen_addr);
        let advertise = self.advertise_addr(&request.advertise_addr, &listen)?;
        let started = self
            .start_member(&listen, advertise.clone())
            .await
            .map_err(cluster_error)?;
        let mut spec = request.spec;
        spec.fill_defaults();
        let options = InitOptions {
            advertise_addr: advertise,
            hostname: self.description.hostname.clone(),
            spec,
            description: self.description.clone(),
            availability,
            default_addr_pool: request.default_addr_pool,
            subnet_size: request.subnet_size,
            data_path_port: request.data_path_port,
        };
        match started.cluster.init(options).await {
            Ok(id) => {
                self.activate(&mut member, started);
                Ok(id)
            }
            Err(e) => {
                self.discard(started).await;
                Err(cluster_error(e))
            }
        }
    }

    pub async fn join(self: &Arc<Self>, request: JoinRequest) -> Result<(), ApiError> {
        let availability = parse_availability(&request.availability)?;
        if request.remote_addrs.is_empty() {
            return Err(ApiError::bad_request(
                "at least one remote address is required to join a swarm",
            ));
        }
        if request.join_token.trim().is_empty() {
            return Err(ApiError::bad_request(
                "a valid join token is necessary to join this cluster",
            ));
        }
        let mut member = self.member.lock().await;
        if member.is_some() {
            return Err(cluster_error(CommandError::AlreadyInitialized.into()));
        }
        let listen = self.listen_addr(&request.listen_addr);
        let advertise = self.advertise_addr(&request.advertise_addr, &listen)?;
        let mut last_error = None;
        for remote in &request.remote_addrs {
            let started = self
                .start_member(&listen, advertise.clone())
                .await
                .map_err(cluster_error)?;
            let options = JoinOptions {
                remote_addr: remote.clone(),
                token: request.join_token.clone(),
                advertise_addr: advertise.clone(),
                hostname: self.description.hostname.clone(),
                description: self.description.clone(),
                availability,
            };
            match started.cluster.join(options).await {
                Ok(()) => {
                    self.activate(&mut member, started);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "join failed");
                    self.discard(started).await;
                    let refused = matches!(
                        e,
                        ClusterError::InvalidJoinToken | ClusterError::RateLimited
                    );
                    last_error = Some(e);
                    if refused {
                        break;
                    }
                }
            }
        }
        Err(cluster_error(last_error.unwrap_or_else(|| {
            ClusterError::Join("no remote address to join".into())
        })))
    }

    pub async fn leave(&self, force: bool) -> Result<(), ApiError> {
        let mut member = self.member.lock().await;
        let Some(current) = member.as_ref() else {
            return Err(cluster_error(CommandError::NotInitialized.into()));
        };
        current.cluster.leave(force).await.map_err(cluster_error)?;
        if let Some(left) = member.take() {
            self.set_current(None);
            self.discard(left).await;
        }
        Ok(())
    }

    /// The member is this node's from now on; watch for its removal by the managers.
    fn activate(self: &Arc<Self>, slot: &mut Option<Member>, member: Member) {
        self.set_current(Some(member.cluster.clone()));
        let (cluster, stop) = (member.cluster.clone(), member.stop.clone());
        *slot = Some(member);
        if let Some(start) = &self.on_active {
            start(&cluster, stop.clone());
        }
        let plane = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REMOVAL_CHECK);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if cluster.was_removed() {
                    if let Some(plane) = plane.upgrade() {
                        plane.removed(cluster.node_id()).await;
                    }
                    return;
                }
            }
        });
    }

    /// `node rm` of this node on a manager: it is no longer in the swarm.
    async fn removed(&self, id: &str) {
        let mut member = self.member.lock().await;
        if member.as_ref().is_some_and(|m| m.cluster.node_id() == id)
            && let Some(gone) = member.take()
        {
            tracing::warn!(node = %id, "this node was removed from the swarm");
            self.set_current(None);
            self.discard(gone).await;
        }
    }

    /// Stops the daemon's member (on daemon shutdown), keeping its state on disk.
    pub async fn stop(&self) {
        let mut member = self.member.lock().await;
        self.set_current(None);
        if let Some(m) = member.take() {
            stop_member(m).await;
        }
    }

    async fn start_member(
        &self,
        listen: &str,
        advertise: Option<String>,
    ) -> Result<Member, ClusterError> {
        let mut config = ClusterConfig::new(&self.dir, listen);
        config.advertise_addr = advertise;
        config.raft = self.settings.raft.clone();
        config.timeouts = self.settings.timeouts.clone();
        let stop = self.shutdown.child_token();
        let mut tasks = JoinSet::new();
        match ClusterNode::start(config, stop.clone(), &mut tasks).await {
            Ok(cluster) => Ok(Member {
                cluster,
                stop,
                tasks,
            }),
            Err(e) => {
                stop.cancel();
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                let _ = std::fs::remove_dir_all(&self.dir);
                Err(e)
            }
        }
    }

    /// Stop a member that never made it (or left) and forget everything it wrote.
    async fn discard(&self, member: Member) {
        stop_member(member).await;
        if let Some(cleanup) = self.on_left.clone()
            && let Err(e) = tokio::task::spawn_blocking(move || cleanup()).await
        {
            tracing::warn!(error = %e, "cleanup after leaving the swarm failed");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the swarm state");
        }
        if let Ok(mut error) = self.error.write() {
            *error = None;
        }
    }

    fn listen_addr(&self, asked: &str) -> String {
        let asked = asked.trim();
        if asked.is_empty() || asked == DOCKER_DEFAULT_LISTEN {
            self.settings.listen_addr.clone()
        } else {
            asked.to_owned()
        }
    }

    /// The address to advertise: asked for, else the daemon's, else the listen address when
    /// it names an IP, else this host's only non-loopback IPv4 address.
    fn advertise_addr(&self, asked: &str, listen: &str) -> Result<Option<String>, ApiError> {
        let asked = asked.trim();
        if !asked.is_empty() {
            return Ok(Some(asked.to_owned()));
        }
        if let Some(a) = &self.settings.advertise_addr {
            return Ok(Some(a.clone()));
        }
        let listen_ip = listen
            .rsplit_once(':')
            .map(|(ip, _)| ip.trim_matches(['[', ']']))
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        match listen_ip {
            Some(ip) if !ip.is_unspecified() => Ok(None),
            _ => pick_host_address().map(Some),
        }
    }

    // ---- reads ---------------------------------------------------------------------------

    /// The `Swarm` block of `/info`.
    pub fn info(&self) -> SwarmInfo {
        let Some(cluster) = self.cluster() else {
            let error = self.error.read().ok().and_then(|e| e.clone());
            return SwarmInfo {
                local_node_state: if error.is_some() { "error" } else { "inactive" }.into(),
                error: error.unwrap_or_default(),
                ..Default::default()
            };
        };
        let state = cluster.state();
        let me = cluster.node_id().to_owned();
        let manager = cluster.is_manager();
        let managers: Vec<PeerNode> = state
            .nodes
            .values()
            .filter_map(|n| {
                n.manager_status.as_ref().map(|m| PeerNode {
                    node_id: n.id.clone(),
                    addr: m.addr.clone(),
                })
            })
            .collect();
        SwarmInfo {
            node_addr: state
                .nodes
                .get(&me)
                .map(|n| n.status.addr.clone())
                .unwrap_or_default(),
            node_id: me,
            local_node_state: "active".into(),
            control_available: manager,
            error: String::new(),
            nodes: manager.then_some(state.nodes.len() as u64),
            managers: manager.then_some(managers.len() as u64),
            remote_managers: Some(managers),
            cluster: state
                .cluster
                .as_ref()
                .filter(|_| manager)
                .map(|c| c.info.clone()),
        }
    }

    /// This node's cluster handle if it is a manager; Docker's 503 otherwise.
    pub(super) fn manager(&self) -> Result<Cluster, ApiError> {
        match self.cluster() {
            Some(c) if c.is_manager() => Ok(c),
            _ => Err(ApiError::unavailable(NOT_A_MANAGER)),
        }
    }

    pub(super) async fn read(&self, local: bool) -> Result<(Cluster, State), ApiError> {
        let cluster = self.manager()?;
        let state = if local {
            cluster.state()
        } else {
            cluster.read_linearizable().await.map_err(cluster_error)?
        };
        Ok((cluster, state))
    }

    pub async fn inspect(&self, local: bool) -> Result<Swarm, ApiError> {
        let (cluster, state) = self.read(local).await?;
        let info = state
            .cluster
            .ok_or_else(|| cluster_error(CommandError::NotInitialized.into()))?
            .info;
        let join_tokens = cluster.join_tokens().await.map_err(cluster_error)?;
        Ok(Swarm {
            cluster: info,
            join_tokens,
        })
    }

    pub async fn update(
        &self,
        version: u64,
        spec: SwarmSpec,
        rotate: Rotate,
    ) -> Result<(), ApiError> {
        if spec.encryption_config.auto_lock_managers {
            return Err(ApiError::bad_request(
                "autolock is not supported by this daemon",
            ));
        }
        let cluster = self.manager()?;
        let mut spec = spec;
        spec.fill_defaults();
        propose(&cluster, Command::UpdateCluster { version, spec }).await?;
        for (role, wanted) in [
            (NodeRole::Worker, rotate.worker),
            (NodeRole::Manager, rotate.manager),
        ] {
            if wanted {
                cluster
                    .rotate_join_token(role)
                    .await
                    .map_err(cluster_error)?;
            }
        }
        Ok(())
    }

    pub async fn nodes(&self, filters: &Filters, local: bool) -> Result<Vec<Node>, ApiError> {
        for key in filters.keys() {
            if !["id", "name", "role", "membership", "node.label", "label"].contains(&key.as_str())
            {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
        }
        let (_, state) = self.read(local).await?;
        Ok(state
            .nodes
            .values()
            .filter(|n| node_matches(n, filters))
            .cloned()
            .collect())
    }

    pub async fn node(&self, reference: &str, local: bool) -> Result<Node, ApiError> {
        let (_, state) = self.read(local).await?;
        resolve_node(&state, reference).cloned()
    }

    pub async fn node_update(
        &self,
        reference: &str,
        version: u64,
        spec: NodeSpec,
    ) -> Result<(), ApiError> {
        let cluster = self.manager()?;
        let id = resolve_node(&cluster.state(), reference)?.id.clone();
        propose(&cluster, Command::UpdateNode { id, version, spec }).await
    }

    pub async fn node_remove(&self, reference: &str, force: bool) -> Result<(), ApiError> {
        let cluster = self.manager()?;
        let id = resolve_node(&cluster.state(), reference)?.id.clone();
        if id == cluster.node_id() {
            return Err(ApiError::bad_request(
                "cannot remove the node this command runs on; use \"swarm leave\" on it instead",
            ));
        }
        propose(&cluster, Command::RemoveNode { id, force }).await
    }
}

async fn stop_member(mut member: Member) {
    member.stop.cancel();
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while member.tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("cluster tasks did not stop in time; aborting them");
        member.tasks.abort_all();
        while member.tasks.join_next().await.is_some() {}
    }
    drop(member.cluster);
}

pub(super) async fn propose(cluster: &Cluster, command: Command) -> Result<(), ApiError> {
    match cluster.propose(command).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(cluster_error(e.into())),
        Err(e) => Err(cluster_error(e)),
    }
}

/// Docker's status codes for the cluster's refusals.
pub fn cluster_error(e: ClusterError) -> ApiError {
    let message = e.to_string();
    match e {
        ClusterError::Command(c) => ApiError::new(
            axum::http::StatusCode::from_u16(c.kind().http_status())
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            message,
        ),
        ClusterError::InvalidJoinToken => ApiError::bad_request(message),
        ClusterError::RateLimited => {
            ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, message)
        }
        ClusterError::NoLeader | ClusterError::LeaveRefused(_) => ApiError::unavailable(message),
        ClusterError::NotManager => ApiError::unavailable(NOT_A_MANAGER),
        _ => ApiError::internal(message),
    }
}

fn parse_availability(s: &str) -> Result<NodeAvailability, ApiError> {
    match s.trim() {
        "" | "active" => Ok(NodeAvailability::Active),
        "pause" => Ok(NodeAvailability::Pause),
        "drain" => Ok(NodeAvailability::Drain),
        other => Err(ApiError::bad_request(format!(
            "invalid availability {other:?}: expected active, pause or drain"
        ))),
    }
}

/// `--default-addr-pool` CIDRs (IPv4) and `--default-addr-pool-mask-length`.
fn validate_pool(pools: &[String], subnet_size: u32) -> Result<(), ApiError> {
    // A network's subnet is carved into /26 blocks, one or more per node: below /24 there
    // would be too few.
    if subnet_size != 0 && !(16..=24).contains(&subnet_size) {
        return Err(ApiError::bad_request(format!(
            "invalid subnet size {subnet_size}: expected 16 to 24"
        )));
    }
    for pool in pools {
        let prefix = parse_cidr(pool).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid default address pool {pool:?}: expected an IPv4 CIDR such as 198.19.0.0/17"
            ))
        })?;
        let size = if subnet_size == 0 {
            crate::types::swarm::DEFAULT_SUBNET_SIZE
        } else {
            subnet_size
        };
        if prefix > size {
            return Err(ApiError::bad_request(format!(
                "default address pool {pool} is smaller than one /{size} subnet"
            )));
        }
    }
    Ok(())
}

/// The prefix length of an IPv4 CIDR whose host bits are zero.
fn parse_cidr(s: &str) -> Option<u32> {
    let (ip, len) = s.trim().split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(ip) & !mask == 0).then_some(len)
}

/// This host's only non-loopback IPv4 address; 127.0.0.1 on a host with none (a lone
/// node); an error when there are several, as Docker's.
fn pick_host_address() -> Result<String, ApiError> {
    let addrs: Vec<std::net::Ipv4Addr> = nix::ifaddrs::getifaddrs()
        .map_err(|e| ApiError::internal(format!("cannot list network interfaces: {e}")))?
        .filter_map(|ifa| ifa.address?.as_sockaddr_in().map(|a| a.ip()))
        .filter(|ip| !ip.is_loopback())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    match addrs.as_slice() {
        [] => Ok("127.0.0.1".into()),
        [one] => Ok(one.to_string()),
        many => Err(ApiError::bad_request(format!(
            "could not choose an IP address to advertise since this system has multiple addresses ({}); specify one with --advertise-addr",
            many.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A node by full ID, by name (`Spec.Name`, else hostname) or by a unique ID prefix.
pub(super) fn resolve_node<'a>(state: &'a State, reference: &str) -> Result<&'a Node, ApiError> {
    let not_found = || ApiError::not_found(format!("node {reference} not found"));
    if reference.is_empty() {
        return Err(not_found());
    }
    if let Some(n) = state.nodes.get(reference) {
        return Ok(n);
    }
    let by_name: Vec<&Node> = state
        .nodes
        .values()
        .filter(|n| n.spec.name == reference || n.description.hostname == reference)
        .collect();
    match by_name.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => {
            return Err(ApiError::bad_request(format!(
                "node {reference} is ambiguous ({} matches found)",
                many.len()
            )));
        }
    }
    let by_prefix: Vec<&Node> = state
        .nodes
        .values()
        .filter(|n| n.id.starts_with(reference))
        .collect();
    match by_prefix.as_slice() {
        [one] => Ok(one),
        [] => Err(not_found()),
        many => Err(ApiError::bad_request(format!(
            "node {reference} is ambiguous ({} matches found)",
            many.len()
        ))),
    }
}

fn node_matches(node: &Node, filters: &Filters) -> bool {
    filters.iter().all(|(key, values)| {
        values.is_empty()
            || values.iter().any(|v| match key.as_str() {
                "id" => node.id.starts_with(v.as_str()),
                "name" => {
                    node.spec.name.starts_with(v.as_str())
                        || node.description.hostname.starts_with(v.as_str())
                }
                "role" => node.spec.role.as_str() == v,
                "membership" => v == "accepted",
                "node.label" => label_matches(&node.spec.labels, v),
                "label" => label_matches(&node.description.engine.labels, v),
                _ => false,
            })
    })
}

/// `key` or `key=value`.
fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

/// The node description this host reports when it joins.
pub fn describe_host(hostname: &str) -> NodeDescription {
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    NodeDescription {
        hostname: hostname.to_owned(),
        platform: crate::types::Platform {
            architecture: std::env::consts::ARCH.into(),
            os: "linux".into(),
        },
        resources: crate::types::Resources {
            nano_cpus: cpus * 1_000_000_000,
            memory_bytes,
        },
        engine: crate::types::EngineDescription {
            engine_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        },
        tls_info: Default::default(),
    }
}

/// Where the member keeps its key and store under the daemon's data dir.
pub fn swarm_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("swarm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_cidrs_and_pools() {
        assert_eq!(parse_cidr("198.19.0.0/17"), Some(17));
        assert_eq!(parse_cidr("198.19.0.1/17"), None);
        assert_eq!(parse_cidr("198.19.0.0"), None);
        assert_eq!(parse_cidr("nonsense/8"), None);
        assert!(validate_pool(&["198.19.0.0/16".into()], 24).is_ok());
        assert!(validate_pool(&["198.19.0.0/26".into()], 0).is_err());
        assert!(validate_pool(&[], 31).is_err());
    }

    #[test]
    fn t10_node_references_and_filters() {
        let mut state = State::default();
        for (id, host, role) in [
            ("abc111", "h1", NodeRole::Manager),
            ("abd222", "h2", NodeRole::Worker),
        ] {
            let mut n = Node {
                id: id.into(),
                ..Default::default()
            };
            n.description.hostname = host.into();
            n.spec.role = role;
            n.spec.labels.insert("zone".into(), host.into());
            state.nodes.insert(id.into(), n);
        }
        assert_eq!(resolve_node(&state, "abc111").unwrap().id, "abc111");
        assert_eq!(resolve_node(&state, "h2").unwrap().id, "abd222");
        assert_eq!(resolve_node(&state, "abc").unwrap().id, "abc111");
        assert_eq!(resolve_node(&state, "ab").unwrap_err().status, 400);
        assert_eq!(resolve_node(&state, "zz").unwrap_err().status, 404);
        let f = |k: &str, v: &str| Filters::from([(k.to_owned(), vec![v.to_owned()])]);
        let n1 = &state.nodes["abc111"];
        assert!(node_matches(n1, &f("role", "manager")));
        assert!(!node_matches(n1, &f("role", "worker")));
        assert!(node_matches(n1, &f("node.label", "zone=h1")));
        assert!(node_matches(n1, &f("node.label", "zone")));
        assert!(!node_matches(n1, &f("node.label", "zone=h2")));
        assert!(node_matches(n1, &f("name", "h")));
    }
}
