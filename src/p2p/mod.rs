//! p2p: the node-to-node transport. One libp2p swarm per node (TCP + Noise + Yamux, one
//! port, 2377 by default) carrying Raft RPCs, forwarded writes and fetches, the join
//! handshake, and gossip.
//!
//! ```text
//!  cluster / agent / network (above)            p2p (this module)                 network
//!  ────────────────────────────────             ─────────────────                 ───────
//!  Client::request_raft/rpc ──Command──▶  event_loop::P2p (sole owner of Swarm) ◀──▶ TCP
//!  Client::join/publish/add_member ──▶      ├─ behaviour::Behaviour
//!  Events (mpsc of Inbound) ◀──────────     │   ├─ gate::MemberGate ─ raft, rpc, gossip,
//!    RaftRequest/RpcRequest/JoinRequest     │   │                     identify, ping
//!    (answer via their oneshot), Gossip,    │   └─ join (open to non-members)
//!    PeerConnected/PeerDisconnected         └─ codec: u32 BE length ‖ version ‖ bincode
//!  identity::NodeKey (the PeerId, on disk)
//! ```
//!
//! Layering: `p2p` sits at the bottom beside `types` and `runtime`. It never imports
//! `cluster`; payloads are opaque bytes and the layers above answer through channels.
//!
//! ## Who may talk to a node
//!
//! A *member* is a PeerId the upper layer added with [`Client::add_member`] (from Raft's
//! membership, or on accepting a join). The gate classifies every connection when it is
//! established, after the Noise handshake has authenticated the remote PeerId:
//!
//! * a member's connection gets every protocol;
//! * anyone else gets a *guest* connection on which only `/swarm/join/1` is offered: raft,
//!   rpc, gossipsub and identify are not even negotiated (a request fails with
//!   [`P2pError::Refused`], no gossip flows either way). Inbound guests are capped
//!   (`max_guest_connections`) and closed after `guest_timeout`; join frames are small
//!   (`max_join_message_size`).
//!
//! We chose this over `allow_block_list` (which would refuse the joiner's connection, so
//! join would need a second listener and port) and over filtering requests after the fact
//! (a non-member could still push 64 MiB frames, and gossipsub would send it our gossip).
//! Gossip is checked once more on receipt: a message is accepted (delivered and
//! forwarded) only if its signed author *and* the peer relaying it are members, so a member
//! cannot launder a non-member's message; the rest is rejected and counted in
//! [`P2pStats::gossip_rejected`]. Replays inside gossipsub's duplicate window are dropped
//! by gossipsub; gossip payloads should still carry versions (last-writer-wins), as gossip
//! is a hint and Raft the truth.
//!
//! Membership changes act on connections: [`Client::remove_member`] closes all of the
//! peer's connections at once (its new ones are guests); promoting a peer closes its guest
//! connections and dials a member connection. The connection that carried an accepted join
//! is closed by the joiner after it has read the reply (closing it from the acceptor's side
//! right after sending can lose the reply in the teardown).
//!
//! ## Keeping members connected
//!
//! Idle connections live for `idle_timeout` (1 h, not libp2p's 10 s), members are redialled
//! when their last connection closes and every `redial_interval`, and every member is a
//! gossipsub explicit peer (a small cluster has fewer peers than gossipsub's mesh wants).

mod behaviour;
mod client;
pub mod codec;
mod config;
mod error;
mod event_loop;
mod gate;
mod identity;

pub use behaviour::{JOIN_PROTOCOL, RAFT_PROTOCOL, RPC_PROTOCOL, Topic};
pub use client::{Client, Events, Inbound, Joined, Member, P2pStats};
pub use config::{DEFAULT_PORT, P2pConfig, parse_addr, socket_to_multiaddr};
pub use error::P2pError;
pub use event_loop::P2p;
pub use gate::GateDenied;
pub use identity::{KeyError, NodeKey};
pub use libp2p::{Multiaddr, PeerId};
