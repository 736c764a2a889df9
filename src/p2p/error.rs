//! Errors of the p2p plane.
//!
//! Transport failures are split the way a Raft network needs them:
//!
//! | variant            | meaning                                           | openraft error |
//! |--------------------|---------------------------------------------------|----------------|
//! | `Unreachable`      | no connection could be made (dial failed/timed out)| `Unreachable`  |
//! | `ConnectionLost`   | the connection closed before the reply came       | `Unreachable`  |
//! | `Timeout`          | sent, but no reply within the request timeout     | `Network`      |
//! | `Refused`          | the peer does not count this node as a member     | `Network`      |
//! | `Remote`           | the peer's handler failed to produce a reply      | `Network`      |
//! | `Transport`        | the stream broke mid-message (I/O, bad frame)     | `Network`      |
//!
//! [`P2pError::is_unreachable`] encodes the right-hand column.

use std::time::Duration;

use libp2p::PeerId;

use super::codec::CodecError;
use super::identity::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("connection to {peer} closed before the reply arrived")]
    ConnectionLost { peer: PeerId },
    #[error("no reply from {peer} within {after:?}")]
    Timeout { peer: String, after: Duration },
    #[error("peer {peer} refused the request: {reason}")]
    Refused { peer: PeerId, reason: String },
    #[error("peer {peer} failed to answer: {reason}")]
    Remote { peer: PeerId, reason: String },
    #[error("transport error with {peer}: {reason}")]
    Transport { peer: PeerId, reason: String },
    #[error("peer {0} is not a member of this node's cluster")]
    NotMember(PeerId),
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    #[error("join refused by {peer}: {reason}")]
    JoinRejected { peer: PeerId, reason: String },
    #[error("cannot publish gossip on {topic}: {reason}")]
    Publish { topic: String, reason: String },
    #[error("invalid p2p address {addr:?}: {reason}")]
    InvalidAddr { addr: String, reason: String },
    #[error("invalid p2p configuration: {0}")]
    Config(String),
    #[error("cannot start the p2p transport: {0}")]
    Setup(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the p2p event loop has stopped")]
    Stopped,
}

impl P2pError {
    /// True when the peer could not be reached at all, or went away mid-request: the Raft
    /// network reports these as `Unreachable` (openraft then backs off), everything else as a
    /// `Network` error.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            P2pError::Unreachable { .. } | P2pError::ConnectionLost { .. }
        )
    }
}
