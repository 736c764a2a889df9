//! The composed libp2p behaviour and the protocols it speaks.
//!
//! ```text
//!  Behaviour
//!  ├── members: MemberGate<MemberProtocols>   only on connections of members
//!  │     ├── raft       /swarm/raft/1   request-response, opaque Raft RPC bytes
//!  │     ├── rpc        /swarm/rpc/1    request-response, forwarded writes, log/blob fetches
//!  │     ├── gossipsub  topics swarm/membership, swarm/endpoints (signed, strict, validated)
//!  │     ├── identify   /swarm/id/1
//!  │     └── ping
//!  └── join: /swarm/join/1                    on every connection: the one thing a
//!                                             non-member may do
//! ```

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, gossipsub, identify, ping};

use super::codec::FrameCodec;
use super::config::P2pConfig;
use super::gate::MemberGate;

pub const RAFT_PROTOCOL: StreamProtocol = StreamProtocol::new("/swarm/raft/1");
pub const RPC_PROTOCOL: StreamProtocol = StreamProtocol::new("/swarm/rpc/1");
pub const JOIN_PROTOCOL: StreamProtocol = StreamProtocol::new("/swarm/join/1");
pub const IDENTIFY_PROTOCOL: &str = "/swarm/id/1";

pub type RequestResponse = request_response::Behaviour<FrameCodec>;

/// A gossip topic. Messages on any other topic are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Liveness heartbeats and membership hints (Raft stays the truth).
    Membership,
    /// The service endpoint table feeding DNS and the load balancer.
    Endpoints,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Membership, Topic::Endpoints];

    pub fn name(self) -> &'static str {
        match self {
            Topic::Membership => "swarm/membership",
            Topic::Endpoints => "swarm/endpoints",
        }
    }

    pub(crate) fn ident(self) -> gossipsub::IdentTopic {
        gossipsub::IdentTopic::new(self.name())
    }

    pub(crate) fn from_hash(hash: &gossipsub::TopicHash) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.ident().hash() == *hash)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything only members may use.
#[derive(NetworkBehaviour)]
pub struct MemberProtocols {
    pub raft: RequestResponse,
    pub rpc: RequestResponse,
    pub gossipsub: gossipsub::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
}

/// The node's whole behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub members: MemberGate<MemberProtocols>,
    pub join: RequestResponse,
}

impl Behaviour {
    /// `frames_refused` counts inbound frames any request-response protocol refused.
    pub fn new(
        key: &Keypair,
        config: &P2pConfig,
        frames_refused: Arc<AtomicU64>,
    ) -> Result<Behaviour, String> {
        let rr = |protocol: StreamProtocol, max: usize| {
            request_response::Behaviour::with_codec(
                FrameCodec::new(max, frames_refused.clone()),
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(config.request_timeout),
            )
        };
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(config.gossip_heartbeat)
            // Signatures and sequence numbers required; the event loop then checks that the
            // author and the relaying peer are members before a message is accepted or
            // forwarded.
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(config.max_gossip_size)
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?;
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| format!("gossipsub: {e}"))?;
        for topic in Topic::ALL {
            gossipsub
                .subscribe(&topic.ident())
                .map_err(|e| format!("subscribe {topic}: {e}"))?;
        }
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(format!("swarm/{}", env!("CARGO_PKG_VERSION")))
                .with_interval(Duration::from_secs(300)),
        );
        Ok(Behaviour {
            members: MemberGate::new(
                MemberProtocols {
                    raft: rr(RAFT_PROTOCOL, config.max_message_size),
                    rpc: rr(RPC_PROTOCOL, config.max_message_size),
                    gossipsub,
                    identify,
                    ping: ping::Behaviour::new(ping::Config::new()),
                },
                config.max_guest_connections,
            ),
            join: rr(JOIN_PROTOCOL, config.max_join_message_size),
        })
    }
}
