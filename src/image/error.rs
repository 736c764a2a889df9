//! The image module's error type. Messages name the image, digest, entry or limit involved,
//! so a person can act on them; the few that callers match on by text
//! (`digest mismatch for …`, `size mismatch for …`, `layer exceeds limit: …`) are kept exact.

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A blob's content does not hash to the digest its descriptor (or file name) promised.
    #[error("digest mismatch for {digest}")]
    DigestMismatch { digest: String },
    /// Content another node sent does not check out (see `peer.rs`).
    #[error("content from the peer rejected: {0}")]
    PeerContent(String),
    /// A blob is longer or shorter than its descriptor says.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    /// A layer (or archive) went past one of the configured bounds (see `Limits`).
    #[error("layer exceeds limit: {which}")]
    LimitExceeded { which: String },
    /// A layer entry that would touch something outside its snapshot, or that makes no sense.
    #[error("unsafe layer entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image reference {prefix:?} is ambiguous: it matches {count} images")]
    Ambiguous { prefix: String, count: usize },
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// A container uses the image: it cannot lose its last name or its content.
    #[error("image {name} ({id}) is in use by a container")]
    InUse { name: String, id: String },
    /// Removing by id an image that has several names, without force.
    #[error("image {id} is referenced by several names ({names}): remove them by name, or force")]
    MultipleNames { id: String, names: String },
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    #[error("invalid image {what}: {reason}")]
    InvalidImage { what: String, reason: String },
    #[error("invalid --change {change:?}: {reason}")]
    InvalidChange { change: String, reason: String },
    /// The registry has no manifest under this tag or digest (HTTP 404).
    #[error("manifest unknown: {reference}")]
    ManifestUnknown { reference: String },
    /// The registry refused our credentials, or wants some and we have none.
    #[error("unauthorized: {reason} (registry {registry})")]
    Unauthorized { registry: String, reason: String },
    /// A manifest list or index without a manifest for the platform asked for.
    #[error("no matching manifest for {platform} in the manifest list entries of {reference}")]
    NoMatchingPlatform { reference: String, platform: String },
    /// Talking to a registry failed (connection, unexpected answer, protocol error).
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    /// TLS with a registry failed: an untrusted certificate, a bad certs.d file, a
    /// plain-HTTP registry spoken to in TLS.
    #[error("registry {registry}: TLS: {message}")]
    Tls { registry: String, message: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {errno}")]
    Sys { context: String, errno: Errno },
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

impl ImageError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn sys(context: impl Into<String>, errno: Errno) -> Self {
        ImageError::Sys {
            context: context.into(),
            errno,
        }
    }

    pub fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        ImageError::Json {
            context: context.into(),
            source,
        }
    }

    pub fn invalid_image(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::InvalidImage {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn limit(which: impl Into<String>) -> Self {
        ImageError::LimitExceeded {
            which: which.into(),
        }
    }
}

/// Attach a lazily built context to I/O and syscall errors.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ImageError::io(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ImageError::sys(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, serde_json::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ImageError::json(what(), e))
    }
}
