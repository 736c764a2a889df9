//! One blob from a registry into a resumable partial file, verified while it streams.
//!
//! The partial lives in the store's blob directory as `.partial-<hex>`: invisible as content
//! (only `blobs/sha256/<hex>` is a blob), kept when a pull is interrupted (an error, a cut
//! connection, the future dropped), and collected by the next prune like any unreachable
//! file. A later pull hashes what is there and asks for the rest with `Range: bytes=N-`; a
//! registry that ignores the Range (200) restarts the file. The digest is always checked over
//! the whole file; a partial that turns out longer than promised, or complete with the wrong
//! digest, is deleted so the next pull starts clean.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::header::CONTENT_RANGE;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Progress;
use super::client::{RegistryClient, error_chain};
use crate::image::digest::Digest;
use crate::image::error::{ImageError, Result};

pub(crate) const PARTIAL_PREFIX: &str = ".partial-";
/// How often a pull waiting for another pull's download of the same blob looks again.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// What a download did, for tests and progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub digest: Digest,
    pub size: u64,
    /// Bytes already on disk from an earlier, interrupted pull.
    pub resumed_from: u64,
}

pub(crate) fn partial_path(blobs_dir: &Path, digest: &Digest) -> PathBuf {
    blobs_dir.join(format!("{PARTIAL_PREFIX}{}", digest.hex()))
}

/// Hash what an earlier pull left, returning the hasher and length (0 if nothing usable).
async fn resume_state(path: &Path, size: u64) -> Result<(Sha256, u64)> {
    let io_err = |e| ImageError::io(format!("read {}", path.display()), e);
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Sha256::new(), 0)),
        Err(e) => return Err(io_err(e)),
    };
    let len = file.metadata().await.map_err(io_err)?.len();
    if len > size {
        drop(file);
        remove(path).await;
        return Ok((Sha256::new(), 0));
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    Ok((hasher, read))
}

async fn remove(path: &Path) {
    let _ = tokio::fs::remove_file(path).await;
}

/// Lock the partial file of a blob against other pulls (in this process or another) for
/// the time of one download, so two pulls sharing a layer never write one file at once: the
/// second waits, then finds the blob complete. Returns `None` when the blob is in the store
/// by then. The lock is never held while waiting for another, so pulls cannot deadlock.
async fn lock_partial(path: &Path, blob: &Path) -> Result<Option<Flock<File>>> {
    let io_err = |e| ImageError::io(format!("lock {}", path.display()), e);
    loop {
        if blob.is_file() {
            return Ok(None);
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o644)
            .open(path)
            .map_err(io_err)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                // The holder before us may have committed the file (renamed or removed its
                // name): ours must still be the file at `path`.
                let ours = lock.metadata().map_err(io_err)?.ino();
                if std::fs::metadata(path).is_ok_and(|m| m.ino() == ours) {
                    if blob.is_file() {
                        let _ = std::fs::remove_file(path);
                        return Ok(None);
                    }
                    return Ok(Some(lock));
                }
            }
            Err((_, Errno::EWOULDBLOCK)) => tokio::time::sleep(LOCK_POLL).await,
            Err((_, errno)) => {
                return Err(ImageError::sys(format!("flock {}", path.display()), errno));
            }
        }
    }
}

/// Download `digest` (`size` bytes) of repository `name` into its partial file; on success
/// the file holds exactly the blob. Returns where it is and what was fetched, or `None` when
/// another pull put the blob in the store meanwhile.
pub(crate) async fn fetch_blob(
    client: &RegistryClient,
    name: &str,
    blobs_dir: &Path,
    digest: &Digest,
    size: u64,
    progress: Option<&Progress>,
) -> Result<Option<(PathBuf, Fetched)>> {
    let path = partial_path(blobs_dir, digest);
    let Some(_lock) = lock_partial(&path, &blobs_dir.join(digest.hex())).await? else {
        return Ok(None);
    };
    let (mut hasher, mut len) = resume_state(&path, size).await?;
    let resumed_from = len;
    let report = |done: u64| {
        if let Some(progress) = progress {
            progress(digest, done, size);
        }
    };
    if len == size {
        if Digest::from_hasher(hasher.clone()) == *digest {
            report(size);
            return Ok(Some((path, fetched(digest, size, resumed_from))));
        }
        // A complete file with the wrong content: start again.
        remove(&path).await;
        hasher = Sha256::new();
        len = 0;
    }
    report(len);

    let response = client.get_blob(name, digest, len).await?;
    let restart = match response.status() {
        StatusCode::PARTIAL_CONTENT => {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            start != Some(len)
        }
        _ => true,
    };
    if restart && len > 0 {
        // The registry sent the whole blob (or a range we did not ask for).
        if response.status() == StatusCode::PARTIAL_CONTENT {
            return Err(ImageError::Registry {
                registry: client.registry().to_string(),
                message: format!("blob {digest}: answered a Range request with another range"),
            });
        }
        hasher = Sha256::new();
        len = 0;
    }
    let io_err = |e| ImageError::io(format!("write {}", path.display()), e);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(len > 0)
        .truncate(len == 0)
        .open(&path)
        .await
        .map_err(io_err)?;
    let mut body = response.into_body();
    loop {
        let next = match tokio::time::timeout(client.io_timeout(), body.frame()).await {
            Ok(next) => next.map(|frame| frame.map_err(|e| error_chain(&e))),
            Err(_) => Some(Err(format!("no data for {:?}", client.io_timeout()))),
        };
        let Some(frame) = next else {
            break;
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // Keep what arrived: the next pull resumes from it.
                let _ = file.flush().await;
                return Err(ImageError::Registry {
                    registry: client.registry().to_string(),
                    message: format!("blob {digest} interrupted after {len} of {size} bytes: {e}"),
                });
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if len + data.len() as u64 > size {
            drop(file);
            remove(&path).await;
            return Err(ImageError::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: len + data.len() as u64,
            });
        }
        file.write_all(&data).await.map_err(io_err)?;
        hasher.update(&data);
        len += data.len() as u64;
        report(len);
    }
    file.flush().await.map_err(io_err)?;
    file.sync_all().await.map_err(io_err)?;
    drop(file);
    if len != size {
        remove(&path).await;
        return Err(ImageError::SizeMismatch {
            digest: digest.to_string(),
            expected: size,
            actual: len,
        });
    }
    if Digest::from_hasher(hasher) != *digest {
        remove(&path).await;
        return Err(ImageError::DigestMismatch {
            digest: digest.to_string(),
        });
    }
    Ok(Some((path, fetched(digest, size, resumed_from))))
}

fn fetched(digest: &Digest, size: u64, resumed_from: u64) -> Fetched {
    Fetched {
        digest: digest.clone(),
        size,
        resumed_from,
    }
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_content_range_start() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes */200"), None);
    }
}
