//! Join tokens: Docker's `SWMTKN-1-<cluster digest>-<secret>` format, their hashes, the
//! manager-local file that keeps the plaintext, and a rate limit on failed attempts.
//!
//! * The **digest** (50 base36 chars) is derived from the cluster ID, so a token names the
//!   cluster it belongs to; the **secret** (25 base36 chars) is random, one per role.
//! * Only `sha256(token)` (hex) enters the Raft log (`InitCluster`, `RotateJoinToken`): every
//!   node, workers included, holds the log, and a worker must not be able to read the manager
//!   token out of it and promote itself.
//! * The plaintext lives in `join-tokens.json` (mode 0600) in a manager's data dir, so `GET
//!   /swarm` can show it. Managers that did not create a token fetch it from another manager
//!   when their copy's hash no longer matches the replicated one.
//! * Comparison is constant-time; tokens never reach a log line (`JoinToken` has no
//!   `Display`, and its `Debug` hides the secret).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::state::JoinTokenHashes;
use crate::types::{JoinTokens, NodeRole};

pub const TOKEN_PREFIX: &str = "SWMTKN-1-";
const DIGEST_LEN: usize = 50;
const SECRET_LEN: usize = 25;
/// The file, in the data dir, holding this manager's plaintext tokens.
pub const TOKENS_FILE: &str = "join-tokens.json";

/// `n` bytes from the kernel's CSPRNG.
pub fn random_bytes(n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// `bytes` as a big-endian number in lowercase base36, left-padded with `0` (or truncated
/// to its last digits) to exactly `width` characters.
pub fn base36(bytes: &[u8], width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut number = bytes.to_vec();
    let mut out = Vec::new();
    while number.iter().any(|&b| b != 0) && out.len() < width {
        let mut rem = 0u32;
        for b in number.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        out.push(DIGITS[rem as usize]);
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// The digest part of every token of the cluster `cluster_id`.
pub fn cluster_digest(cluster_id: &str) -> String {
    base36(&Sha256::digest(cluster_id.as_bytes()), DIGEST_LEN)
}

/// A fresh token for the cluster `cluster_id`.
pub fn generate(cluster_id: &str) -> io::Result<String> {
    let secret = base36(&random_bytes(32)?, SECRET_LEN);
    Ok(format!(
        "{TOKEN_PREFIX}{}-{secret}",
        cluster_digest(cluster_id)
    ))
}

/// What goes into the Raft log for `token`: hex sha256.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` is well formed: prefix, 50-char digest, 25-char secret, base36 only.
pub fn is_well_formed(token: &str) -> bool {
    let Some(rest) = token.trim().strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    let mut parts = rest.split('-');
    let (Some(digest), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let base36_only = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    };
    digest.len() == DIGEST_LEN
        && secret.len() == SECRET_LEN
        && base36_only(digest)
        && base36_only(secret)
}

/// Constant-time equality (for equal lengths; hashes always are).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The role `token` grants in a cluster whose token hashes are `hashes`, comparing both
/// roles every time so timing says nothing about which one matched.
pub fn role_for(token: &str, hashes: &JoinTokenHashes) -> Option<NodeRole> {
    if !is_well_formed(token) {
        return None;
    }
    let presented = hash(token);
    let manager = constant_time_eq(presented.as_bytes(), hashes.manager.as_bytes());
    let worker = constant_time_eq(presented.as_bytes(), hashes.worker.as_bytes());
    match (manager, worker) {
        (true, _) => Some(NodeRole::Manager),
        (false, true) => Some(NodeRole::Worker),
        _ => None,
    }
}

/// Hashes of a pair of plaintext tokens.
pub fn hashes_of(tokens: &JoinTokens) -> JoinTokenHashes {
    JoinTokenHashes {
        worker: hash(&tokens.worker),
        manager: hash(&tokens.manager),
    }
}

#[derive(Serialize, Deserialize)]
struct TokensFile {
    worker: String,
    manager: String,
}

/// Reads the manager-local plaintext tokens, if the file exists.
pub fn load(data_dir: &Path) -> io::Result<Option<JoinTokens>> {
    match fs::read(data_dir.join(TOKENS_FILE)) {
        Ok(bytes) => {
            let file: TokensFile = serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Ok(Some(JoinTokens {
                worker: file.worker,
                manager: file.manager,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the plaintext tokens atomically, mode 0600 from the first byte.
pub fn store(data_dir: &Path, tokens: &JoinTokens) -> io::Result<()> {
    let path = data_dir.join(TOKENS_FILE);
    let tmp = data_dir.join(format!("{TOKENS_FILE}.tmp"));
    let body = serde_json::to_vec(&TokensFile {
        worker: tokens.worker.clone(),
        manager: tokens.manager.clone(),
    })
    .map_err(io::Error::other)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    file.write_all(&body)?;
    file.sync_all()?;
    fs::rename(&tmp, &path)
}

/// Removes the plaintext tokens (on leave).
pub fn remove(data_dir: &Path) -> io::Result<()> {
    match fs::remove_file(data_dir.join(TOKENS_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// How many failed join attempts a peer may make per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRateLimit {
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for JoinRateLimit {
    fn default() -> Self {
        JoinRateLimit {
            max_failures: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// Failed attempts per peer in the current window. Owned by the task that answers joins.
#[derive(Debug, Default)]
pub struct FailedJoins {
    by_peer: HashMap<String, (Instant, u32)>,
}

impl FailedJoins {
    /// Whether `peer` may try now.
    pub fn allowed(&mut self, peer: &str, limit: &JoinRateLimit, now: Instant) -> bool {
        self.by_peer
            .retain(|_, (since, _)| now.duration_since(*since) < limit.window);
        self.by_peer
            .get(peer)
            .is_none_or(|(_, count)| *count < limit.max_failures)
    }

    pub fn record_failure(&mut self, peer: &str, now: Instant) {
        self.by_peer.entry(peer.to_owned()).or_insert((now, 0)).1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_swarms_shape_and_match_only_their_role() {
        let worker = generate("abc").unwrap();
        let manager = generate("abc").unwrap();
        assert!(worker.starts_with(TOKEN_PREFIX));
        assert_eq!(
            worker.len(),
            TOKEN_PREFIX.len() + DIGEST_LEN + 1 + SECRET_LEN
        );
        assert!(is_well_formed(&worker), "{}", worker.len());
        assert_ne!(worker, manager);
        assert_eq!(worker[..59], manager[..59], "same cluster digest");
        let hashes = hashes_of(&JoinTokens {
            worker: worker.clone(),
            manager: manager.clone(),
        });
        assert_eq!(role_for(&worker, &hashes), Some(NodeRole::Worker));
        assert_eq!(role_for(&manager, &hashes), Some(NodeRole::Manager));
        assert_eq!(role_for(&generate("abc").unwrap(), &hashes), None);
        assert_eq!(role_for("SWMTKN-1-x-y", &hashes), None);
        assert_ne!(cluster_digest("abc"), cluster_digest("abd"));
    }

    #[test]
    fn base36_pads_and_counts() {
        assert_eq!(base36(&[0], 3), "000");
        assert_eq!(base36(&[36], 3), "010");
        assert_eq!(base36(&[1, 0], 4), "0074");
    }

    #[test]
    fn the_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let tokens = JoinTokens {
            worker: "w".into(),
            manager: "m".into(),
        };
        store(dir.path(), &tokens).unwrap();
        let mode = fs::metadata(dir.path().join(TOKENS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path()).unwrap(), Some(tokens));
    }

    #[test]
    fn failed_joins_are_limited_per_peer_and_forgotten_after_the_window() {
        let limit = JoinRateLimit {
            max_failures: 2,
            window: Duration::from_secs(10),
        };
        let mut failed = FailedJoins::default();
        let t0 = Instant::now();
        assert!(failed.allowed("p", &limit, t0));
        failed.record_failure("p", t0);
        failed.record_failure("p", t0);
        assert!(!failed.allowed("p", &limit, t0));
        assert!(failed.allowed("q", &limit, t0));
        assert!(failed.allowed("p", &limit, t0 + Duration::from_secs(11)));
    }
}
