//! The runtime's error type. Messages name the container, the path or the syscall, so a person
//! can act on them without reading the code.

use nix::errno::Errno;

use super::cgroup::CgroupError;
use super::seccomp::SeccompError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("container {id} is {status}: cannot {op}")]
    InvalidState {
        id: String,
        status: String,
        op: &'static str,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {errno}")]
    Sys { context: String, errno: Errno },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// A failure reported by another process of the runtime (the helper or the container's
    /// init), carried across the process boundary as its message.
    #[error("{0}")]
    Remote(String),
    #[error("timed out after {secs:.1}s waiting for {what}")]
    Timeout { what: String, secs: f64 },
}

impl RuntimeError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn sys(context: impl Into<String>, errno: Errno) -> Self {
        RuntimeError::Sys {
            context: context.into(),
            errno,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Attach a context message to io and errno failures at the call site.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| RuntimeError::io(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| RuntimeError::sys(what(), e))
    }
}
