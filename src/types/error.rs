//! Why the cluster refused a command. These cross the wire (a write forwarded to the leader
//! comes back with one) and reach the user as the API's `{"message": …}`, so the messages use
//! Docker's wording where Docker has one; `kind()` says which HTTP status fits.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CommandError {
    #[error(
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one."
    )]
    AlreadyInitialized,
    #[error(
        "This node is not part of a swarm. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
    )]
    NotInitialized,
    #[error("node {id} not found")]
    NodeNotFound { id: String },
    #[error("node {id} already exists")]
    NodeExists { id: String },
    #[error("node {id} was removed from the swarm and cannot rejoin with the same identity")]
    NodeRemoved { id: String },
    /// Optimistic concurrency: the caller read an older version of the object.
    #[error("update out of sequence")]
    OutOfSequence,
    #[error("attempting to demote the last manager of the swarm")]
    LastManager,
    #[error(
        "node {id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"
    )]
    RemoveManager { id: String },
    #[error("node {id} is not down and can't be removed")]
    NodeNotDown { id: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A service spec that cannot run; the message says what is wrong.
    #[error("{0}")]
    InvalidSpec(String),
    #[error("service {id} not found")]
    ServiceNotFound { id: String },
    #[error(
        "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {name} already exists"
    )]
    ServiceExists { name: String },
    #[error("network {id} not found")]
    NetworkNotFound { id: String },
    #[error("network with name {name} already exists")]
    NetworkExists { name: String },
    /// `by`: "service web" or "task web.1.x".
    #[error("network {name} is in use by {by}")]
    NetworkInUse { name: String, by: String },
}

/// The class of a refusal, for the API to pick a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    InvalidArgument,
    FailedPrecondition,
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status Docker's daemon answers with for this class. `Conflict` is also used
    /// for a stale `version` (Docker answers 500 there; the CLI only prints the message).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::InvalidArgument | ErrorKind::FailedPrecondition => 400,
            ErrorKind::Unavailable => 503,
        }
    }
}

impl CommandError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommandError::AlreadyInitialized | CommandError::NotInitialized => {
                ErrorKind::Unavailable
            }
            CommandError::NodeNotFound { .. } => ErrorKind::NotFound,
            CommandError::NodeExists { .. } | CommandError::OutOfSequence => ErrorKind::Conflict,
            CommandError::NodeRemoved { .. }
            | CommandError::LastManager
            | CommandError::RemoveManager { .. }
            | CommandError::NodeNotDown { .. } => ErrorKind::FailedPrecondition,
            CommandError::InvalidArgument(_) | CommandError::InvalidSpec(_) => {
                ErrorKind::InvalidArgument
            }
            CommandError::ServiceNotFound { .. } => ErrorKind::NotFound,
            CommandError::ServiceExists { .. } => ErrorKind::Conflict,
            CommandError::NetworkNotFound { .. } => ErrorKind::NotFound,
            CommandError::NetworkExists { .. } | CommandError::NetworkInUse { .. } => {
                ErrorKind::Conflict
            }
        }
    }
}
