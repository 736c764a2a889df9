//! The event loop: the one task that owns the libp2p `Swarm`.
//!
//! ```text
//!   Client ──Command──▶ ┌───────────────────────────┐ ──Inbound──▶ Events (upper layer)
//!                       │ P2p::run                  │
//!   swarm events ─────▶ │  select! { shutdown,      │ ◀── replies to inbound requests
//!   redial tick ──────▶ │   swarm, commands,        │     (oneshots the upper layer
//!                       │   replies, tick }         │      answers, polled here because
//!                       └───────────────────────────┘      ResponseChannel needs the Swarm)
//! ```
//!
//! Invariants it keeps:
//! * every outbound request has exactly one waiter in `requests`, resolved by a response or
//!   a failure event (and by the Client's own deadline if neither ever comes);
//! * no request is sent to a non-member (the caller gets `NotMember` at once);
//! * gossip is accepted (delivered and forwarded) only when both its author and the peer
//!   that relayed it are members; otherwise it is rejected and counted;
//! * the upper layer is never awaited: inbound items are `try_send`-ed, and a full queue
//!   drops (and counts) instead of wedging the loop.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::{Future, StreamExt};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, BehaviourEvent, MemberProtocolsEvent, RequestResponse, Topic};
use super::client::{Channel, Client, Command, Events, Inbound, Joined, Member, P2pStats, Reply};
use super::codec::{ByteBuf, WireReply, WireRequest};
use super::config::P2pConfig;
use super::error::P2pError;
use super::identity::NodeKey;

/// Who waits for the reply to an outbound request.
enum Waiter {
    Bytes(Reply<Vec<u8>>),
    Join(Reply<Joined>),
}

/// The upper layer's answer to an inbound request, ready to go back on its stream.
struct InboundReply {
    channel: Channel,
    connection: ConnectionId,
    response: ResponseChannel<WireReply>,
    result: Result<Vec<u8>, String>,
}

type ReplyFuture = Pin<Box<dyn Future<Output = InboundReply> + Send>>;

/// A node's p2p plane, before and while it runs. See the module map in `p2p/mod.rs`.
pub struct P2p {
    swarm: Swarm<Behaviour>,
    config: P2pConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Inbound>,
    requests: HashMap<(Channel, OutboundRequestId), Waiter>,
    /// Dials made for `Client::dial`, by connection.
    dials: HashMap<ConnectionId, Reply<PeerId>>,
    /// Dials made for `Client::join`: the token goes out once the connection is up.
    join_dials: HashMap<ConnectionId, (Vec<u8>, Reply<Joined>)>,
    replies: FuturesUnordered<ReplyFuture>,
    /// Join replies not yet sent, by connection: such a connection stays open until then.
    joins_in_flight: HashMap<ConnectionId, usize>,
    /// Remote address of every open connection.
    remotes: HashMap<ConnectionId, (PeerId, Multiaddr)>,
    /// Connections established as member connections (the gate forgets them on close).
    member_connections: HashMap<ConnectionId, PeerId>,
    listen_addrs: Vec<Multiaddr>,
    listen_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    stats: P2pStats,
    /// Shared with the codecs, which see the frames request-response does not report.
    frames_refused: Arc<AtomicU64>,
}

impl P2p {
    /// Builds the swarm and starts listening; the returned value does nothing until
    /// [`P2p::run`] is polled.
    pub fn new(config: P2pConfig, key: &NodeKey) -> Result<(P2p, Client, Events), P2pError> {
        config.validate()?;
        let setup = |e: &dyn std::fmt::Display| P2pError::Setup(e.to_string());
        let behaviour_config = config.clone();
        let frames_refused = Arc::new(AtomicU64::new(0));
        let counter = frames_refused.clone();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.keypair().clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| setup(&e))?
            .with_behaviour(|key| {
                Behaviour::new(key, &behaviour_config, counter)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .with_connection_timeout(config.dial_timeout)
            .build();
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| P2pError::InvalidAddr {
                addr: config.listen.to_string(),
                reason: e.to_string(),
            })?;

        let (command_tx, commands) = mpsc::channel(64);
        let (events, events_rx) = mpsc::channel(config.event_buffer);
        let client = Client::new(
            command_tx,
            *swarm.local_peer_id(),
            config.dial_timeout + config.request_timeout,
        );
        let p2p = P2p {
            swarm,
            config,
            commands,
            events,
            requests: HashMap::new(),
            dials: HashMap::new(),
            join_dials: HashMap::new(),
            replies: FuturesUnordered::new(),
            joins_in_flight: HashMap::new(),
            remotes: HashMap::new(),
            member_connections: HashMap::new(),
            listen_addrs: Vec::new(),
            listen_waiters: Vec::new(),
            stats: P2pStats::default(),
            frames_refused,
        };
        Ok((p2p, client, events_rx))
    }

    /// Builds the node and runs its loop on a task of `tasks` until `shutdown` fires.
    pub fn spawn(
        config: P2pConfig,
        key: &NodeKey,
        shutdown: CancellationToken,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<(Client, Events), P2pError> {
        let (p2p, client, events) = P2p::new(config, key)?;
        tasks.spawn(p2p.run(shutdown));
        Ok((client, events))
    }

    /// The loop. Returns when `shutdown` fires; dropping the swarm closes every connection
    /// and every waiting Client call then fails with `Stopped`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.redial_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = self.commands.recv() => self.on_command(command),
                Some(reply) = self.replies.next(), if !self.replies.is_empty() => {
                    self.on_inbound_reply(reply)
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::debug!(peer_id = %self.swarm.local_peer_id(), "p2p event loop stopped");
    }

    // ---- commands from Clients ---------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                if self.listen_addrs.is_empty() {
                    self.listen_waiters.push(reply);
                } else {
                    let _ = reply.send(self.listen_addrs.clone());
                }
            }
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id()
                    .address(addr.clone())
                    .allocate_new_port()
                    .build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(unreachable(addr, e)));
                    }
                }
            }
            Command::AddMember { peer, addr, reply } => {
                self.add_member(peer, addr);
                let _ = reply.send(());
            }
            Command::RemoveMember { peer, reply } => {
                self.remove_member(peer);
                let _ = reply.send(());
            }
            Command::Members(reply) => {
                let gate = &self.swarm.behaviour().members;
                let mut members: Vec<Member> = gate
                    .members()
                    .map(|(peer, addrs)| Member {
                        peer: *peer,
                        addrs: addrs.clone(),
                        connected: gate.member_connections(peer) > 0,
                    })
                    .collect();
                members.sort_by_key(|m| m.peer);
                let _ = reply.send(members);
            }
            Command::Request {
                channel,
                peer,
                bytes,
                reply,
            } => self.send_request(channel, peer, bytes, reply),
            Command::Join { addr, token, reply } => {
                if token.len() > self.config.max_join_message_size {
                    let _ = reply.send(Err(P2pError::MessageTooLarge {
                        size: token.len(),
                        max: self.config.max_join_message_size,
                    }));
                    return;
                }
                let opts = DialOpts::unknown_peer_id()
                    .address(addr.clone())
                    .allocate_new_port()
                    .build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.join_dials.insert(id, (token, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(unreachable(addr, e)));
                    }
                }
            }
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let result = self
                    .gossipsub()
                    .publish(topic.ident(), bytes)
                    .map(|_| ())
                    .map_err(|e| P2pError::Publish {
                        topic: topic.to_string(),
                        reason: publish_error(&e),
                    });
                let _ = reply.send(result);
            }
            Command::Stats(reply) => {
                let gate = &self.swarm.behaviour().members;
                let mut stats = self.stats.clone();
                stats.guest_connections = gate.guest_connections();
                stats.guests_refused = gate.guests_refused();
                stats.frames_refused = self.frames_refused.load(Ordering::Relaxed);
                let _ = reply.send(stats);
            }
        }
    }

    fn add_member(&mut self, peer: PeerId, addr: Option<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let guests = self.swarm.behaviour_mut().members.add_member(peer, addr);
        self.gossipsub().add_explicit_peer(&peer);
        // Guest connections cannot carry member protocols: replace them. One still owing a
        // join reply is spared; the joiner closes it once it has read the reply.
        for id in guests {
            if self.joins_in_flight.get(&id).copied().unwrap_or(0) == 0 {
                self.swarm.close_connection(id);
            }
        }
        self.dial_member(peer);
    }

    fn remove_member(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().members.remove_member(&peer);
        self.gossipsub().remove_explicit_peer(&peer);
        // Cut off at once: in-flight requests both ways fail with a closed connection.
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn dial_member(&mut self, peer: PeerId) {
        if self.swarm.behaviour().members.member_connections(&peer) > 0 {
            return;
        }
        // Addresses come from the gate (`handle_pending_outbound_connection`); `NotDialing`
        // because a guest connection may still exist and must not stop this dial.
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::NotDialing)
            .allocate_new_port()
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, "not dialling member: {e}");
        }
    }

    fn send_request(
        &mut self,
        channel: Channel,
        peer: PeerId,
        bytes: Vec<u8>,
        reply: Reply<Vec<u8>>,
    ) {
        if !self.swarm.behaviour().members.is_member(&peer) {
            let _ = reply.send(Err(P2pError::NotMember(peer)));
            return;
        }
        let max = self.max_payload(channel);
        if bytes.len() > max {
            let _ = reply.send(Err(P2pError::MessageTooLarge {
                size: bytes.len(),
                max,
            }));
            return;
        }
        let request = WireRequest {
            payload: ByteBuf(bytes),
        };
        let id = self.request_response(channel).send_request(&peer, request);
        self.requests.insert((channel, id), Waiter::Bytes(reply));
    }

    // ---- swarm events --------------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(peer_id = %self.swarm.local_peer_id(), %address, "p2p listening");
                self.listen_addrs.push(address);
                for waiter in self.listen_waiters.drain(..) {
                    let _ = waiter.send(self.listen_addrs.clone());
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connection_established(
                peer_id,
                connection_id,
                endpoint.get_remote_address().clone(),
            ),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?connection_id, ?cause, "connection closed");
                self.remotes.remove(&connection_id);
                self.joins_in_flight.remove(&connection_id);
                if self.member_connections.remove(&connection_id).is_some()
                    && self.swarm.behaviour().members.member_connections(&peer_id) == 0
                {
                    self.emit(Inbound::PeerDisconnected { peer: peer_id });
                    if self.swarm.behaviour().members.is_member(&peer_id) {
                        self.dial_member(peer_id);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let target = peer_id.map_or_else(|| "?".to_string(), |p| p.to_string());
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(unreachable(&target, &error)));
                }
                if let Some((_, reply)) = self.join_dials.remove(&connection_id) {
                    let _ = reply.send(Err(unreachable(&target, &error)));
                }
                tracing::debug!(peer = %target, "dial failed: {error}");
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                self.stats.handshake_failures += 1;
                tracing::debug!(from = %send_back_addr, "incoming connection failed: {error}");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Join(event)) => {
                self.on_request_response(Channel::Join, event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Members(event)) => match event {
                MemberProtocolsEvent::Raft(event) => self.on_request_response(Channel::Raft, event),
                MemberProtocolsEvent::Rpc(event) => self.on_request_response(Channel::Rpc, event),
                MemberProtocolsEvent::Gossipsub(event) => self.on_gossip(event),
                MemberProtocolsEvent::Identify(identify::Event::Received {
                    peer_id, info, ..
                }) => {
                    self.swarm
                        .behaviour_mut()
                        .members
                        .learn_addresses(&peer_id, info.listen_addrs);
                }
                MemberProtocolsEvent::Identify(_) | MemberProtocolsEvent::Ping(_) => {}
            },
            _ => {}
        }
    }

    fn on_connection_established(&mut self, peer: PeerId, id: ConnectionId, remote: Multiaddr) {
        self.remotes.insert(id, (peer, remote));
        if let Some(reply) = self.dials.remove(&id) {
            let _ = reply.send(Ok(peer));
        }
        if let Some((token, reply)) = self.join_dials.remove(&id) {
            let request = WireRequest {
                payload: ByteBuf(token),
            };
            let request_id = self.swarm.behaviour_mut().join.send_request(&peer, request);
            self.requests
                .insert((Channel::Join, request_id), Waiter::Join(reply));
        }
        let gate = &self.swarm.behaviour().members;
        if gate.is_member_connection(&id) {
            self.member_connections.insert(id, peer);
            if gate.member_connections(&peer) == 1 {
                self.emit(Inbound::PeerConnected { peer });
            }
        }
    }

    fn on_request_response(
        &mut self,
        channel: Channel,
        event: request_response::Event<WireRequest, WireReply>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                connection_id,
                message:
                    request_response::Message::Request {
                        request,
                        channel: response,
                        ..
                    },
            } => self.on_inbound_request(channel, peer, connection_id, request, response),
            request_response::Event::Message {
                peer,
                connection_id,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
            } => match self.requests.remove(&(channel, request_id)) {
                Some(Waiter::Bytes(reply)) => {
                    let _ = reply.send(match response {
                        WireReply::Ok(bytes) => Ok(bytes.0),
                        WireReply::Err(reason) => Err(P2pError::Remote { peer, reason }),
                    });
                }
                Some(Waiter::Join(reply)) => {
                    let _ = reply.send(match response {
                        WireReply::Ok(bytes) => {
                            // The acceptor classified this connection before accepting us:
                            // on its side it carries only the join protocol. It has done its
                            // job; a member connection replaces it (the acceptor leaves
                            // closing it to us, so that its reply is read first).
                            self.swarm.close_connection(connection_id);
                            Ok(Joined {
                                peer,
                                reply: bytes.0,
                            })
                        }
                        WireReply::Err(reason) => Err(P2pError::JoinRejected { peer, reason }),
                    });
                }
                None => {} // the caller gave up already
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, ?channel, "request failed: {error}");
                let error = self.outbound_failure(peer, error);
                match self.requests.remove(&(channel, request_id)) {
                    Some(Waiter::Bytes(reply)) => {
                        let _ = reply.send(Err(error));
                    }
                    Some(Waiter::Join(reply)) => {
                        let _ = reply.send(Err(error));
                    }
                    None => {}
                }
            }
            request_response::Event::InboundFailure {
                peer,
                connection_id,
                error,
                ..
            } => {
                self.stats.inbound_failures += 1;
                tracing::debug!(%peer, ?channel, "inbound request failed: {error}");
                if channel == Channel::Join {
                    self.join_reply_done(connection_id);
                }
            }
            request_response::Event::ResponseSent { connection_id, .. } => {
                if channel == Channel::Join {
                    self.join_reply_done(connection_id);
                }
            }
        }
    }

    fn on_inbound_request(
        &mut self,
        channel: Channel,
        peer: PeerId,
        connection: ConnectionId,
        request: WireRequest,
        response: ResponseChannel<WireReply>,
    ) {
        let bytes = request.payload.0;
        let timeout = self.config.request_timeout;
        // Each arm hands the upper layer a oneshot and queues a future that turns its answer
        // (or its silence) into the reply on `response`.
        let future: ReplyFuture = match channel {
            Channel::Raft | Channel::Rpc => {
                let (reply, answer) = oneshot::channel();
                self.emit(if channel == Channel::Raft {
                    Inbound::RaftRequest { peer, bytes, reply }
                } else {
                    Inbound::RpcRequest { peer, bytes, reply }
                });
                Box::pin(async move {
                    let result = match tokio::time::timeout(timeout, answer).await {
                        Ok(Ok(bytes)) => Ok(bytes),
                        Ok(Err(_)) => Err("the request was dropped unanswered".to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    };
                    InboundReply {
                        channel,
                        connection,
                        response,
                        result,
                    }
                })
            }
            Channel::Join => {
                self.stats.join_requests += 1;
                *self.joins_in_flight.entry(connection).or_default() += 1;
                let addr = self
                    .remotes
                    .get(&connection)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_else(Multiaddr::empty);
                let (reply, answer) = oneshot::channel();
                self.emit(Inbound::JoinRequest {
                    peer,
                    addr,
                    bytes,
                    reply,
                });
                Box::pin(async move {
                    let result = match tokio::time::timeout(timeout, answer).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(_)) => Err("the join request was dropped unanswered".to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    };
                    InboundReply {
                        channel,
                        connection,
                        response,
                        result,
                    }
                })
            }
        };
        self.replies.push(future);
    }

    fn on_inbound_reply(&mut self, reply: InboundReply) {
        let max = self.max_payload(reply.channel);
        let wire = match reply.result {
            Ok(bytes) if bytes.len() > max => {
                tracing::warn!(channel = ?reply.channel, size = bytes.len(), max, "reply too large");
                WireReply::Err(format!(
                    "reply of {} bytes exceeds the limit of {max} bytes",
                    bytes.len()
                ))
            }
            Ok(bytes) => WireReply::Ok(ByteBuf(bytes)),
            Err(reason) => WireReply::Err(reason),
        };
        if self
            .request_response(reply.channel)
            .send_response(reply.response, wire)
            .is_err()
            && reply.channel == Channel::Join
        {
            // The stream is gone (timeout or closed): no ResponseSent will come.
            self.join_reply_done(reply.connection);
        }
    }

    /// A join reply on `connection` has been sent or abandoned. The connection is not
    /// closed here even if the joiner was promoted meanwhile: closing right after sending
    /// can tear the connection down before the joiner has read the reply. The joiner closes
    /// it on success; otherwise the guest timeout does.
    fn join_reply_done(&mut self, connection: ConnectionId) {
        if let Some(count) = self.joins_in_flight.get_mut(&connection) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.joins_in_flight.remove(&connection);
            }
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let gate = &self.swarm.behaviour().members;
        let source = message.source.filter(|s| gate.is_member(s));
        let topic = Topic::from_hash(&message.topic);
        let accepted = match (source, topic) {
            (Some(source), Some(topic)) if gate.is_member(&propagation_source) => {
                Some((source, topic))
            }
            _ => None,
        };
        let verdict = if accepted.is_some() {
            gossipsub::MessageAcceptance::Accept
        } else {
            gossipsub::MessageAcceptance::Reject
        };
        self.gossipsub().report_message_validation_result(
            &message_id,
            &propagation_source,
            verdict,
        );
        match accepted {
            Some((source, topic)) => self.emit(Inbound::Gossip {
                topic,
                source,
                bytes: message.data,
            }),
            None => {
                self.stats.gossip_rejected += 1;
                tracing::debug!(source = ?message.source, via = %propagation_source,
                    topic = %message.topic, "gossip from a non-member rejected");
            }
        }
    }

    // ---- periodic work -------------------------------------------------------------------

    fn on_tick(&mut self) {
        let disconnected: Vec<PeerId> = {
            let gate = &self.swarm.behaviour().members;
            gate.members()
                .filter(|(peer, _)| gate.member_connections(peer) == 0)
                .map(|(peer, _)| *peer)
                .collect()
        };
        for peer in disconnected {
            self.dial_member(peer);
        }
        let expired = self
            .swarm
            .behaviour()
            .members
            .expired_guests(Instant::now(), self.config.guest_timeout);
        for id in expired {
            tracing::debug!(?id, "closing expired guest connection");
            self.swarm.close_connection(id);
        }
    }

    // ---- helpers -------------------------------------------------------------------------

    /// Hands an item to the upper layer without ever waiting for it. A dropped request
    /// carries its reply sender with it, so its requester gets an error reply.
    fn emit(&mut self, item: Inbound) {
        match self.events.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.events_dropped += 1;
                tracing::warn!("upper layer is behind: inbound item dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.events_dropped += 1;
                tracing::debug!("no upper layer: inbound item dropped");
            }
        }
    }

    fn gossipsub(&mut self) -> &mut gossipsub::Behaviour {
        &mut self.swarm.behaviour_mut().members.inner_mut().gossipsub
    }

    fn request_response(&mut self, channel: Channel) -> &mut RequestResponse {
        let behaviour = self.swarm.behaviour_mut();
        match channel {
            Channel::Raft => &mut behaviour.members.inner_mut().raft,
            Channel::Rpc => &mut behaviour.members.inner_mut().rpc,
            Channel::Join => &mut behaviour.join,
        }
    }

    fn max_payload(&self, channel: Channel) -> usize {
        match channel {
            Channel::Raft | Channel::Rpc => self.config.max_message_size,
            Channel::Join => self.config.max_join_message_size,
        }
    }

    fn outbound_failure(&self, peer: PeerId, error: OutboundFailure) -> P2pError {
        match error {
            OutboundFailure::DialFailure => P2pError::Unreachable {
                peer: peer.to_string(),
                reason: "could not connect".into(),
            },
            OutboundFailure::Timeout => P2pError::Timeout {
                peer: peer.to_string(),
                after: self.config.request_timeout,
            },
            OutboundFailure::ConnectionClosed => P2pError::ConnectionLost { peer },
            OutboundFailure::UnsupportedProtocols => P2pError::Refused {
                peer,
                reason: "it does not count this node as a member".into(),
            },
            OutboundFailure::Io(e) => P2pError::Transport {
                peer,
                reason: e.to_string(),
            },
        }
    }
}

fn unreachable(target: impl std::fmt::Display, error: impl std::fmt::Display) -> P2pError {
    P2pError::Unreachable {
        peer: target.to_string(),
        reason: error.to_string(),
    }
}

fn publish_error(e: &gossipsub::PublishError) -> String {
    match e {
        gossipsub::PublishError::NoPeersSubscribedToTopic => {
            "no member connected and subscribed to it yet".into()
        }
        gossipsub::PublishError::MessageTooLarge => "message too large".into(),
        other => other.to_string(),
    }
}
