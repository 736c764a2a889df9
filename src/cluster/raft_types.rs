//! The types openraft is instantiated with, and the envelope a command travels in.

use std::fmt;
use std::io::Cursor; // the macro's default `SnapshotData = Cursor<Vec<u8>>` names it unqualified

use serde::{Deserialize, Serialize};

use super::state::{Command, CommandResult};
use crate::types::Timestamp;

/// A Raft node's ID. Every swarm node has one, voters (managers) and learners (workers) alike.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// swarm's Raft: proposals in, command results out, nodes addressed by libp2p peer.
    pub TypeConfig:
        D = Proposal,
        R = CommandResult,
        NodeId = NodeId,
        Node = NodeInfo,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// How to reach a Raft node: its libp2p identity and an address to dial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The libp2p `PeerId`, base58.
    pub peer_id: String,
    /// A multiaddr, e.g. `/ip4/198.18.0.11/tcp/2377`.
    pub addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.peer_id, self.addr)
    }
}

/// What a log entry carries: a command and the time its proposer stamped on it.
///
/// The state machine takes its notion of "now" from here, never from a clock, so every
/// replica writes the same `CreatedAt`/`UpdatedAt` when it applies the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub at: Timestamp,
    pub command: Command,
}

impl Proposal {
    /// Stamps `command` with the proposer's wall clock.
    pub fn now(command: Command) -> Proposal {
        Proposal {
            at: Timestamp::now(),
            command,
        }
    }

    pub fn at(at: Timestamp, command: Command) -> Proposal {
        Proposal { at, command }
    }
}
