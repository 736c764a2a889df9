//! The handle everyone but the event loop holds: typed async methods that send a
//! [`Command`] to the loop and await its oneshot reply; and what the loop hands up
//! ([`Inbound`]).

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::behaviour::Topic;
use super::error::P2pError;

/// Which request-response protocol a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Raft,
    Rpc,
    Join,
}

/// A member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    /// Whether a member connection (with the member protocols) is open right now.
    pub connected: bool,
}

/// A successful join handshake: who answered, and what its upper layer replied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub peer: PeerId,
    pub reply: Vec<u8>,
}

/// Counters for metrics and for tests that check what was refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct P2pStats {
    /// Gossip messages dropped because their author or relaying peer is not a member.
    pub gossip_rejected: u64,
    /// Inbound items dropped because the upper layer's queue was full or gone.
    pub events_dropped: u64,
    /// Join requests received.
    pub join_requests: u64,
    /// Inbound requests that failed after being read (timeout, connection lost).
    pub inbound_failures: u64,
    /// Inbound frames refused while reading: over the size limit, or undecodable.
    pub frames_refused: u64,
    /// Incoming connections that failed before being established (e.g. garbage bytes).
    pub handshake_failures: u64,
    /// Non-member connections open now.
    pub guest_connections: usize,
    /// Non-member connections refused because too many were open.
    pub guests_refused: u64,
}

/// Something from the network for the layers above.
#[derive(Debug)]
pub enum Inbound {
    /// A Raft RPC from a member; answer through `reply` (dropping it answers with an error).
    RaftRequest {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// A forwarded write or a log/blob fetch from a member.
    RpcRequest {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// A join handshake, possibly from a non-member. `addr` is the address the connection
    /// came from (for an inbound connection an ephemeral port, not the peer's listen
    /// address: put the advertise address in the token). Answer `Ok` to accept — and call
    /// [`Client::add_member`] first, so the joiner's next connection is a member one — or
    /// `Err(reason)` to refuse.
    JoinRequest {
        peer: PeerId,
        addr: Multiaddr,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// A gossip message authored by a member and relayed by a member.
    Gossip {
        topic: Topic,
        source: PeerId,
        bytes: Vec<u8>,
    },
    /// The first member connection to `peer` opened.
    PeerConnected { peer: PeerId },
    /// The last member connection to `peer` closed.
    PeerDisconnected { peer: PeerId },
}

/// Receives what the network delivers; one receiver per node.
pub type Events = mpsc::Receiver<Inbound>;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, P2pError>>;

#[derive(Debug)]
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial {
        addr: Multiaddr,
        reply: Reply<PeerId>,
    },
    AddMember {
        peer: PeerId,
        addr: Option<Multiaddr>,
        reply: oneshot::Sender<()>,
    },
    RemoveMember {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    Members(oneshot::Sender<Vec<Member>>),
    Request {
        channel: Channel,
        peer: PeerId,
        bytes: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    Join {
        addr: Multiaddr,
        token: Vec<u8>,
        reply: Reply<Joined>,
    },
    Publish {
        topic: Topic,
        bytes: Vec<u8>,
        reply: Reply<()>,
    },
    Stats(oneshot::Sender<P2pStats>),
}

/// A cloneable handle on a node's p2p plane. Every method fails with
/// [`P2pError::Stopped`] once the event loop has ended.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    /// Upper bound on a whole request: reaching the peer plus waiting for its reply. The
    /// loop enforces the parts; this only guarantees a caller is never left hanging.
    call_timeout: Duration,
}

impl Client {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        local_peer_id: PeerId,
        call_timeout: Duration,
    ) -> Client {
        Client {
            commands,
            local_peer_id,
            call_timeout,
        }
    }

    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node listens on, once the listener is up (waits for the first).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Connects to `addr` and returns the PeerId that answered. A non-member gets only a
    /// guest connection (join protocol); this is for diagnostics and the join flow.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, P2pError> {
        self.ask_timed(addr.to_string(), |reply| Command::Dial { addr, reply })
            .await?
    }

    /// Lets `peer` use the member protocols (raft, rpc, gossip) with this node and keeps a
    /// connection to it open, dialling `addr`. Idempotent; a new address is preferred.
    pub async fn add_member(&self, peer: PeerId, addr: Multiaddr) -> Result<(), P2pError> {
        self.ask(|reply| Command::AddMember {
            peer,
            addr: Some(addr),
            reply,
        })
        .await
    }

    /// Like [`Client::add_member`] for a member whose address is not known (it will dial
    /// in, or identify will tell).
    pub async fn add_member_without_addr(&self, peer: PeerId) -> Result<(), P2pError> {
        self.ask(|reply| Command::AddMember {
            peer,
            addr: None,
            reply,
        })
        .await
    }

    /// Cuts `peer` off at once: its connections are closed, requests and gossip from it are
    /// refused from now on. It may still use the join protocol.
    pub async fn remove_member(&self, peer: PeerId) -> Result<(), P2pError> {
        self.ask(|reply| Command::RemoveMember { peer, reply })
            .await
    }

    /// The members, with their addresses and whether a member connection is open.
    pub async fn members(&self) -> Result<Vec<Member>, P2pError> {
        self.ask(Command::Members).await
    }

    /// Sends a Raft RPC to member `peer` and waits for its reply.
    pub async fn request_raft(&self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, P2pError> {
        self.request(Channel::Raft, peer, bytes).await
    }

    /// Sends a forwarded write or a fetch to member `peer` and waits for its reply.
    pub async fn request_rpc(&self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, P2pError> {
        self.request(Channel::Rpc, peer, bytes).await
    }

    /// Dials `addr` (a node that does not know us yet) and presents `token` on the join
    /// protocol. `Ok` carries the answering node's PeerId and its upper layer's reply; a
    /// refusal is [`P2pError::JoinRejected`].
    pub async fn join(&self, addr: Multiaddr, token: Vec<u8>) -> Result<Joined, P2pError> {
        self.ask_timed(addr.to_string(), |reply| Command::Join {
            addr,
            token,
            reply,
        })
        .await?
    }

    /// Publishes `bytes` to the members subscribed to `topic`.
    pub async fn publish(&self, topic: Topic, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.ask(|reply| Command::Publish {
            topic,
            bytes,
            reply,
        })
        .await?
    }

    /// Counters (see [`P2pStats`]).
    pub async fn stats(&self) -> Result<P2pStats, P2pError> {
        self.ask(Command::Stats).await
    }

    async fn request(
        &self,
        channel: Channel,
        peer: PeerId,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, P2pError> {
        self.ask_timed(peer.to_string(), |reply| Command::Request {
            channel,
            peer,
            bytes,
            reply,
        })
        .await?
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| P2pError::Stopped)?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    async fn ask_timed<T>(
        &self,
        target: String,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, P2pError> {
        match tokio::time::timeout(self.call_timeout, self.ask(make)).await {
            Ok(result) => result,
            Err(_) => Err(P2pError::Timeout {
                peer: target,
                after: self.call_timeout,
            }),
        }
    }
}
