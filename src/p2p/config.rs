//! Tunables of the p2p plane. Every timeout lives here, none in the code that uses it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use super::codec::HARD_MAX_MESSAGE_SIZE;
use super::error::P2pError;

/// The default p2p port, as in Docker Swarm.
pub const DEFAULT_PORT: u16 = 2377;

/// Configuration of one node's p2p plane.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Where to listen: `/ip4/IP/tcp/PORT` (port 0 picks a free one).
    pub listen: Multiaddr,
    /// How long a Raft/RPC/join request may wait for its reply once sent; also how long the
    /// upper layer has to answer an inbound one.
    pub request_timeout: Duration,
    /// How long reaching a peer may take before a request to it gives up as unreachable.
    pub dial_timeout: Duration,
    /// How often members without a connection are dialled again, and guests expired.
    pub redial_interval: Duration,
    /// A connection with nothing in flight is closed after this long. libp2p's default (10 s)
    /// would close member connections between heartbeats; keep it long.
    pub idle_timeout: Duration,
    /// A non-member's connection (which may only use the join protocol) is closed after this
    /// long, joined or not.
    pub guest_timeout: Duration,
    /// At most this many inbound non-member connections at once; more are refused.
    pub max_guest_connections: usize,
    /// Largest Raft/RPC payload, each way (≤ [`HARD_MAX_MESSAGE_SIZE`]).
    pub max_message_size: usize,
    /// Largest join token or join reply.
    pub max_join_message_size: usize,
    /// Largest gossip message.
    pub max_gossip_size: usize,
    /// Gossipsub heartbeat (mesh maintenance, gossip emission).
    pub gossip_heartbeat: Duration,
    /// Inbound items buffered for the upper layer before new ones are dropped (and counted).
    pub event_buffer: usize,
}

impl P2pConfig {
    /// Defaults for a node listening on `listen`.
    pub fn new(listen: Multiaddr) -> P2pConfig {
        P2pConfig {
            listen,
            request_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(5),
            redial_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            guest_timeout: Duration::from_secs(30),
            max_guest_connections: 32,
            max_message_size: HARD_MAX_MESSAGE_SIZE,
            max_join_message_size: 64 << 10,
            max_gossip_size: 1 << 20,
            gossip_heartbeat: Duration::from_secs(1),
            event_buffer: 1024,
        }
    }

    /// Defaults for a node listening on `IP:PORT`.
    pub fn from_socket_addr(addr: SocketAddr) -> P2pConfig {
        P2pConfig::new(socket_to_multiaddr(addr))
    }

    pub(crate) fn validate(&self) -> Result<(), P2pError> {
        let bad = |reason: String| Err(P2pError::Config(reason));
        if self.max_message_size == 0 || self.max_message_size > HARD_MAX_MESSAGE_SIZE {
            return bad(format!(
                "max_message_size {} must be between 1 and {HARD_MAX_MESSAGE_SIZE}",
                self.max_message_size
            ));
        }
        if self.max_join_message_size == 0 || self.max_join_message_size > self.max_message_size {
            return bad(format!(
                "max_join_message_size {} must be between 1 and max_message_size",
                self.max_join_message_size
            ));
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("dial_timeout", self.dial_timeout),
            ("redial_interval", self.redial_interval),
            ("idle_timeout", self.idle_timeout),
            ("guest_timeout", self.guest_timeout),
            ("gossip_heartbeat", self.gossip_heartbeat),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must not be zero"));
            }
        }
        if self.event_buffer == 0 {
            return bad("event_buffer must not be zero".into());
        }
        Ok(())
    }
}

/// `IP:PORT` → `/ip4/IP/tcp/PORT` (or `/ip6/…`).
pub fn socket_to_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    Multiaddr::empty().with(ip).with(Protocol::Tcp(addr.port()))
}

/// Parses what a user types as a p2p address: a multiaddr (`/ip4/198.18.0.11/tcp/2377`),
/// `IP:PORT`, or a bare IP (port [`DEFAULT_PORT`]).
pub fn parse_addr(s: &str) -> Result<Multiaddr, P2pError> {
    let s = s.trim();
    if s.starts_with('/') {
        return s.parse().map_err(|e| P2pError::InvalidAddr {
            addr: s.to_string(),
            reason: format!("{e}"),
        });
    }
    if let Ok(sock) = s.parse::<SocketAddr>() {
        return Ok(socket_to_multiaddr(sock));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(socket_to_multiaddr(SocketAddr::new(ip, DEFAULT_PORT)));
    }
    Err(P2pError::InvalidAddr {
        addr: s.to_string(),
        reason: "expected IP:PORT, IP, or a multiaddr like /ip4/IP/tcp/PORT".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_the_forms_users_type() {
        assert_eq!(
            parse_addr("198.18.0.11:2377").unwrap().to_string(),
            "/ip4/198.18.0.11/tcp/2377"
        );
        assert_eq!(
            parse_addr("198.18.0.11").unwrap().to_string(),
            "/ip4/198.18.0.11/tcp/2377"
        );
        assert_eq!(parse_addr("[::1]:7").unwrap().to_string(), "/ip6/::1/tcp/7");
        assert_eq!(
            parse_addr("/ip4/127.0.0.1/tcp/0").unwrap().to_string(),
            "/ip4/127.0.0.1/tcp/0"
        );
        let err = parse_addr("example:80").unwrap_err();
        assert!(err.to_string().contains("expected IP:PORT"), "{err}");
    }

    #[test]
    fn limits_are_checked() {
        let mut c = P2pConfig::new(parse_addr("127.0.0.1:0").unwrap());
        assert!(c.validate().is_ok());
        c.max_message_size = HARD_MAX_MESSAGE_SIZE + 1;
        assert!(c.validate().is_err());
        c.max_message_size = 1024;
        c.max_join_message_size = 2048;
        assert!(c.validate().is_err());
        c.max_join_message_size = 1024;
        c.request_timeout = Duration::ZERO;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("request_timeout")
        );
    }
}
