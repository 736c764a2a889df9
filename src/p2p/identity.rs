//! The node's persistent identity: one ed25519 key pair in a file, whose public half is the
//! node's `PeerId` (the name other nodes put in their allow list and in Raft's membership).
//!
//! The file holds libp2p's protobuf encoding of the key pair, mode 0600, and is written
//! atomically (temporary file in the same directory, fsync, rename, fsync of the directory),
//! so a crash while creating it leaves either no key or a whole one, never half of one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libp2p::PeerId;
use libp2p::identity::{KeyType, Keypair};

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("node key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("node key {path} is not a valid libp2p key: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("node key {path} is a {found:?} key; swarm node keys are ed25519")]
    WrongType { path: PathBuf, found: KeyType },
}

/// The node's key pair. Cloning it copies the secret: pass it only to the p2p layer.
#[derive(Clone)]
pub struct NodeKey {
    keypair: Keypair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret half.
        f.debug_struct("NodeKey")
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

impl NodeKey {
    /// A fresh key that lives only in memory (tests, throw-away nodes).
    pub fn generate() -> NodeKey {
        NodeKey {
            keypair: Keypair::generate_ed25519(),
        }
    }

    /// Loads the key at `path`, or creates one there if the file does not exist.
    ///
    /// A key file readable by group or others is tightened to 0600 (with a warning) rather
    /// than refused, so a restored backup does not keep the node down.
    pub fn load_or_create(path: &Path) -> Result<NodeKey, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match fs::read(path) {
            Ok(bytes) => {
                let mode = fs::metadata(path).map_err(io_err)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777),
                        "node key was readable by others; setting mode 0600");
                    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err)?;
                }
                Self::from_bytes(path, &bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = NodeKey::generate();
                key.write_atomically(path)?;
                tracing::info!(path = %path.display(), peer_id = %key.peer_id(), "created node key");
                Ok(key)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// The node's stable network name.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    fn from_bytes(path: &Path, bytes: &[u8]) -> Result<NodeKey, KeyError> {
        let keypair = Keypair::from_protobuf_encoding(bytes).map_err(|e| KeyError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if keypair.key_type() != KeyType::Ed25519 {
            return Err(KeyError::WrongType {
                path: path.to_path_buf(),
                found: keypair.key_type(),
            });
        }
        Ok(NodeKey { keypair })
    }

    fn write_atomically(&self, path: &Path) -> Result<(), KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = self
            .keypair
            .to_protobuf_encoding()
            .map_err(|e| KeyError::Invalid {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(io_err)?;
        let file_name = path
            .file_name()
            .ok_or_else(|| io_err(io::Error::other("path has no file name")))?;
        let tmp = dir.join(format!(
            ".{}.tmp.{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let result = (|| {
            // mode() applies at creation, so the secret is never on disk with wider rights.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_with_the_same_peer_id_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.key");
        let first = NodeKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = NodeKey::load_or_create(&path).unwrap();
        assert_eq!(first.peer_id(), second.peer_id());
        // no temporary file left behind
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("node.key")]);
    }

    #[test]
    fn a_world_readable_key_is_tightened_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = NodeKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            NodeKey::load_or_create(&path).unwrap().peer_id(),
            key.peer_id()
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        fs::write(&path, b"not a key").unwrap();
        let err = NodeKey::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyError::Invalid { .. }), "{err}");
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let key = NodeKey::generate();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.peer_id().to_string()));
        assert!(!shown.contains("secret"));
    }
}
