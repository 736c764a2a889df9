//! The member gate: a `NetworkBehaviour` wrapper that gives the wrapped (member-only)
//! protocols to connections of members, and nothing at all to anyone else.
//!
//! ```text
//!  connection established ──▶ is the remote PeerId a member?
//!        yes ─▶ Either::Left(inner handlers)   raft, rpc, gossipsub, identify, ping
//!        no  ─▶ Either::Right(dummy handler)   "guest": no member protocol is even
//!                                              negotiated; only the ungated join protocol
//!                                              (a sibling behaviour) answers on it
//! ```
//!
//! Why not `allow_block_list`: it denies a non-member's connection outright, so the join
//! handshake could not run on the same port. Here the decision is per connection and per
//! protocol, on the one port. The classification of a connection is fixed when it is
//! established, so membership changes act on connections, not inside them:
//!
//! * a member removed → the event loop closes all its connections at once; any new one is a
//!   guest connection;
//! * a peer promoted → its guest connections are closed (the one carrying the join reply
//!   is closed by the joiner once it has read the reply) and a fresh connection, a member
//!   one, replaces them.
//!
//! The inner behaviours only ever hear of member connections: `FromSwarm` events of guest
//! connections are filtered out and the connection counts in the ones passed on are
//! recomputed over member connections only (gossipsub and request-response keep per-peer
//! state keyed on those counts). Two more rewrites keep the inner behaviours from touching
//! guest connections: `NotifyHandler::Any` becomes a specific member connection, and an
//! inner dial uses `PeerCondition::NotDialing` (the default would not dial while a guest
//! connection exists, and a request would then fail) and is refused for non-members.
//!
//! Inbound guest connections are capped (`max_inbound_guests`); the event loop expires the
//! old ones.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use either::Either;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, DialError, DialFailure, FromSwarm,
    NetworkBehaviour, NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};

/// Why the gate refused a connection or a dial.
#[derive(Debug, thiserror::Error)]
pub enum GateDenied {
    #[error("too many connections from non-members ({0}); try again later")]
    TooManyGuests(usize),
    #[error("peer {0} is not a member")]
    NotMember(PeerId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Member,
    Guest { since: Instant, inbound: bool },
}

/// See the module documentation.
pub struct MemberGate<B> {
    inner: B,
    /// Members and the addresses to dial them at.
    members: HashMap<PeerId, Vec<Multiaddr>>,
    /// Kind of every connection a handler was built for, until it closes or fails.
    kinds: HashMap<ConnectionId, (PeerId, Kind)>,
    /// Established member connections per peer (what the inner behaviours know).
    established: HashMap<PeerId, Vec<ConnectionId>>,
    max_inbound_guests: usize,
    guests_refused: u64,
    /// A dial refused for a non-member is reported to the inner behaviour from `poll`.
    refused_dials: VecDeque<(PeerId, ConnectionId)>,
}

impl<B: NetworkBehaviour> MemberGate<B> {
    pub fn new(inner: B, max_inbound_guests: usize) -> Self {
        MemberGate {
            inner,
            members: HashMap::new(),
            kinds: HashMap::new(),
            established: HashMap::new(),
            max_inbound_guests,
            guests_refused: 0,
            refused_dials: VecDeque::new(),
        }
    }

    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    pub fn is_member(&self, peer: &PeerId) -> bool {
        self.members.contains_key(peer)
    }

    pub fn members(&self) -> impl Iterator<Item = (&PeerId, &Vec<Multiaddr>)> {
        self.members.iter()
    }

    /// Adds (or updates) a member. Returns its guest connections: they carry no member
    /// protocol and must be replaced by a member connection.
    pub fn add_member(&mut self, peer: PeerId, addr: Option<Multiaddr>) -> Vec<ConnectionId> {
        let addrs = self.members.entry(peer).or_default();
        if let Some(addr) = addr {
            // The newest address first: it is the one the caller just learnt.
            addrs.retain(|a| *a != addr);
            addrs.insert(0, addr);
        }
        self.connections_of(&peer, |k| matches!(k, Kind::Guest { .. }))
    }

    /// Records addresses for a member that has none (learnt from identify).
    pub fn learn_addresses(&mut self, peer: &PeerId, learnt: Vec<Multiaddr>) {
        if let Some(addrs) = self.members.get_mut(peer)
            && addrs.is_empty()
        {
            *addrs = learnt;
        }
    }

    /// Removes a member; the caller closes its connections.
    pub fn remove_member(&mut self, peer: &PeerId) -> bool {
        self.members.remove(peer).is_some()
    }

    pub fn member_connections(&self, peer: &PeerId) -> usize {
        self.established.get(peer).map_or(0, Vec::len)
    }

    pub fn is_member_connection(&self, id: &ConnectionId) -> bool {
        matches!(self.kinds.get(id), Some((_, Kind::Member)))
    }

    pub fn guest_connections(&self) -> usize {
        self.kinds
            .values()
            .filter(|(_, k)| matches!(k, Kind::Guest { .. }))
            .count()
    }

    pub fn guests_refused(&self) -> u64 {
        self.guests_refused
    }

    /// Guest connections older than `max_age`: the caller closes them.
    pub fn expired_guests(&self, now: Instant, max_age: Duration) -> Vec<ConnectionId> {
        self.kinds
            .iter()
            .filter(|(_, (_, k))| {
                matches!(k, Kind::Guest { since, .. } if now.duration_since(*since) >= max_age)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    fn connections_of(&self, peer: &PeerId, want: impl Fn(&Kind) -> bool) -> Vec<ConnectionId> {
        self.kinds
            .iter()
            .filter(|(_, (p, k))| p == peer && want(k))
            .map(|(id, _)| *id)
            .collect()
    }

    fn inbound_guests(&self) -> usize {
        self.kinds
            .values()
            .filter(|(_, k)| matches!(k, Kind::Guest { inbound: true, .. }))
            .count()
    }

    fn guest(&mut self, id: ConnectionId, peer: PeerId, inbound: bool) -> THandler<Self> {
        let since = Instant::now();
        self.kinds
            .insert(id, (peer, Kind::Guest { since, inbound }));
        Either::Right(dummy::ConnectionHandler)
    }

    /// A dial on behalf of an inner behaviour: only to members, and also while a guest
    /// connection to the peer exists.
    fn member_dial(peer: PeerId) -> DialOpts {
        DialOpts::peer_id(peer)
            .condition(PeerCondition::NotDialing)
            .allocate_new_port()
            .build()
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for MemberGate<B> {
    type ConnectionHandler = Either<THandler<B>, dummy::ConnectionHandler>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.members.contains_key(&peer) {
            let handler = self
                .inner
                .handle_established_inbound_connection(id, peer, local, remote)?;
            self.kinds.insert(id, (peer, Kind::Member));
            return Ok(Either::Left(handler));
        }
        let guests = self.inbound_guests();
        if guests >= self.max_inbound_guests {
            self.guests_refused += 1;
            return Err(ConnectionDenied::new(GateDenied::TooManyGuests(guests)));
        }
        Ok(self.guest(id, peer, true))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let mut addrs = self
            .inner
            .handle_pending_outbound_connection(id, maybe_peer, addresses, role)?;
        if let Some(known) = maybe_peer.and_then(|p| self.members.get(&p)) {
            addrs.extend(known.iter().cloned());
        }
        Ok(addrs)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.members.contains_key(&peer) {
            let handler = self
                .inner
                .handle_established_outbound_connection(id, peer, addr, role, port_use)?;
            self.kinds.insert(id, (peer, Kind::Member));
            return Ok(Either::Left(handler));
        }
        // Our own dial to a non-member: the join handshake. Not counted against the cap,
        // which protects us from others, not from ourselves.
        Ok(self.guest(id, peer, false))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if !self.is_member_connection(&e.connection_id) {
                    return;
                }
                let conns = self.established.entry(e.peer_id).or_default();
                let other_established = conns.len();
                conns.push(e.connection_id);
                self.inner.on_swarm_event(FromSwarm::ConnectionEstablished(
                    ConnectionEstablished {
                        other_established,
                        ..e
                    },
                ));
            }
            FromSwarm::ConnectionClosed(e) => {
                let Some((_, kind)) = self.kinds.remove(&e.connection_id) else {
                    return;
                };
                if kind != Kind::Member {
                    return;
                }
                let remaining_established = match self.established.get_mut(&e.peer_id) {
                    Some(conns) => {
                        conns.retain(|c| *c != e.connection_id);
                        let n = conns.len();
                        if n == 0 {
                            self.established.remove(&e.peer_id);
                        }
                        n
                    }
                    None => 0,
                };
                self.inner
                    .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                        remaining_established,
                        ..e
                    }));
            }
            FromSwarm::AddressChange(e) => {
                if self.is_member_connection(&e.connection_id) {
                    self.inner.on_swarm_event(event);
                }
            }
            FromSwarm::DialFailure(e) => {
                // A handler may have been built before another behaviour denied the dial.
                self.kinds.remove(&e.connection_id);
                self.inner.on_swarm_event(event);
            }
            FromSwarm::ListenFailure(e) => {
                self.kinds.remove(&e.connection_id);
                self.inner.on_swarm_event(event);
            }
            other => self.inner.on_swarm_event(other),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(e) => self.inner.on_connection_handler_event(peer, id, e),
            Either::Right(never) => match never {},
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        while let Some((peer, connection_id)) = self.refused_dials.pop_front() {
            let error = DialError::Denied {
                cause: ConnectionDenied::new(GateDenied::NotMember(peer)),
            };
            self.inner
                .on_swarm_event(FromSwarm::DialFailure(DialFailure {
                    peer_id: Some(peer),
                    error: &error,
                    connection_id,
                }));
        }
        loop {
            let event = match self.inner.poll(cx) {
                Poll::Ready(event) => event,
                Poll::Pending => return Poll::Pending,
            };
            match event {
                ToSwarm::Dial { opts } => match opts.get_peer_id() {
                    Some(peer) if self.members.contains_key(&peer) => {
                        return Poll::Ready(ToSwarm::Dial {
                            opts: Self::member_dial(peer),
                        });
                    }
                    Some(peer) => {
                        // Fail the inner behaviour's pending work for this peer instead of
                        // leaving it waiting for a member connection that will not come.
                        self.refused_dials.push_back((peer, opts.connection_id()));
                        cx.waker().wake_by_ref();
                    }
                    None => return Poll::Ready(ToSwarm::Dial { opts }),
                },
                ToSwarm::NotifyHandler {
                    peer_id,
                    handler: NotifyHandler::Any,
                    event,
                } => {
                    let Some(conn) = self.established.get(&peer_id).and_then(|c| c.first()) else {
                        continue; // no member connection: nobody to notify
                    };
                    return Poll::Ready(ToSwarm::NotifyHandler {
                        peer_id,
                        handler: NotifyHandler::One(*conn),
                        event: Either::Left(event),
                    });
                }
                other => return Poll::Ready(other.map_in(Either::Left)),
            }
        }
    }
}
