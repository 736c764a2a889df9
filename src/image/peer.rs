//! Images from another node's store: what a node announces for a reference, its blobs read
//! in bounded chunks, and the fetch that verifies everything before committing it.
//!
//! ```text
//!  serving node                               fetching node (fetch_from_peer)
//!   announce(ref) ─▶ PeerImage {digest,        manifest bytes hash to the announced digest
//!                    media type, manifest} ──▶  (and to ref's digest, if ref is by digest)
//!   read_chunk(d, offset, len ≤ MAX_CHUNK) ◀── config + missing layers, a few blobs at a time,
//!                                               chunk after chunk into .tmp-* (size checked
//!                                               as it streams, sha256 at the end)
//!                                              Ingest: adopt the verified temps, put the
//!                                               manifest, commit the name
//! ```
//!
//! The transport is the caller's ([`BlobSource`]): the agent carries these over p2p, tests
//! over memory. A peer is not trusted: a blob that does not hash to its digest, a chunk longer
//! than asked for, or a manifest that is not the one announced fails the fetch with an error
//! naming the blob, and nothing of it stays in the store (temp files are deleted; even if the
//! process dies first, they are `.tmp-*` files the next prune removes). At most
//! `max_concurrent_blobs × chunk_size` bytes are in memory at once.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use futures::StreamExt;
use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::digest::{Digest, ImageId};
use super::error::{Context, ImageError, Result};
use super::reference::Reference;
use super::store::{self, ImageStore, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_MANIFEST};

/// The largest chunk a node serves in one answer, whatever is asked.
pub const MAX_CHUNK: u32 = 4 << 20;

/// What a node announces for a reference it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerImage {
    /// `sha256:<hex>` of `manifest`.
    pub manifest_digest: String,
    pub media_type: String,
    /// The manifest, byte for byte.
    pub manifest: Vec<u8>,
}

/// Where blobs come from: another node, over whatever carries the request.
pub trait BlobSource: Sync {
    /// At most `len` bytes of blob `digest` from `offset` (fewer only at its end).
    fn read_chunk(
        &self,
        digest: &Digest,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = std::result::Result<Vec<u8>, String>> + Send;
}

/// How a fetch from a peer is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerFetchOptions {
    /// Bytes asked for in one request (≤ [`MAX_CHUNK`]).
    pub chunk_size: u32,
    /// Blobs fetched at once.
    pub max_concurrent_blobs: usize,
}

impl Default for PeerFetchOptions {
    fn default() -> Self {
        PeerFetchOptions {
            chunk_size: 1 << 20,
            max_concurrent_blobs: 3,
        }
    }
}

/// Why content from a peer was refused.
fn rejected(reason: impl Into<String>) -> ImageError {
    ImageError::PeerContent(reason.into())
}

/// A temp file in the blob directory, deleted on drop unless the fetch took it in.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The rule every chunk of a peer passes: exactly the bytes asked for (the asks never reach
/// past the blob's end, and the server always fills them), so a blob is never shorter or
/// longer than its descriptor says.
pub fn check_chunk(digest: &Digest, offset: u64, asked: u32, got: usize) -> Result<()> {
    if got as u64 != u64::from(asked) {
        return Err(rejected(format!(
            "blob {digest}: {got} bytes at offset {offset} where {asked} were asked for"
        )));
    }
    Ok(())
}

/// The chunk requests that cover a blob of `size` bytes: (offset, len), each len ≤ `chunk`.
pub fn chunks(size: u64, chunk: u32) -> impl Iterator<Item = (u64, u32)> {
    let chunk = u64::from(chunk.max(1));
    (0..size.div_ceil(chunk)).map(move |i| {
        let offset = i * chunk;
        (offset, (size - offset).min(chunk) as u32)
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::io("image store task", std::io::Error::other(e)))?
}

impl ImageStore {
    /// What this node announces for `reference` (name, name@digest or id), if it has it.
    pub fn announce(&self, reference: &str) -> Result<PeerImage> {
        let image = self.resolve(reference)?;
        let manifest = self.read_json_blob(&image.manifest_digest)?;
        let entries = self.read_index()?;
        let media_type = image
            .descriptor(&entries)
            .map(|d| d.media_type().to_string())
            .unwrap_or_else(|| MEDIA_TYPE_OCI_MANIFEST.to_owned());
        Ok(PeerImage {
            manifest_digest: image.manifest_digest.to_string(),
            media_type,
            manifest,
        })
    }

    /// At most `len` (≤ [`MAX_CHUNK`]) bytes of a committed blob from `offset`.
    pub fn read_chunk(&self, digest: &Digest, offset: u64, len: u32) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let mut file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::NotFound(digest.to_string()),
            _ => ImageError::io(format!("open blob {digest}"), e),
        })?;
        file.seek(SeekFrom::Start(offset))
            .context(|| format!("seek blob {digest}"))?;
        let mut out = Vec::new();
        file.take(u64::from(len.min(MAX_CHUNK)))
            .read_to_end(&mut out)
            .context(|| format!("read blob {digest}"))?;
        Ok(out)
    }

    /// Brings the image `announced` for `reference` in from a peer, verified, and names it
    /// `reference` (unless that is an image id). Returns the image id. See the module docs.
    pub async fn fetch_from_peer(
        &self,
        reference: &str,
        announced: &PeerImage,
        source: &impl BlobSource,
        options: PeerFetchOptions,
    ) -> Result<ImageId> {
        let manifest_digest: Digest = announced
            .manifest_digest
            .parse()
            .map_err(|_| rejected("the announced manifest digest is not a sha256 digest"))?;
        if Digest::of(&announced.manifest) != manifest_digest {
            return Err(rejected(format!(
                "the manifest does not hash to the announced {manifest_digest}"
            )));
        }
        let parsed = Reference::parse(reference).ok();
        if let Some(wanted) = parsed.as_ref().and_then(|r| r.digest.as_ref())
            && *wanted != manifest_digest
        {
            return Err(rejected(format!(
                "the peer announced manifest {manifest_digest} for {reference}"
            )));
        }
        if announced.media_type != MEDIA_TYPE_OCI_MANIFEST
            && announced.media_type != MEDIA_TYPE_DOCKER_MANIFEST
        {
            return Err(rejected(format!(
                "manifest media type {:?} is not an image manifest",
                announced.media_type
            )));
        }
        if announced.manifest.len() as u64 > self.limits.json_bytes {
            return Err(ImageError::limit(format!(
                "JSON document size (manifest {manifest_digest} is {} bytes)",
                announced.manifest.len()
            )));
        }
        let manifest: ImageManifest = serde_json::from_slice(&announced.manifest)
            .context(|| format!("parse manifest {manifest_digest}"))?;
        let config_digest = Digest::from_oci(manifest.config().digest())?;
        if manifest.config().size() > self.limits.json_bytes {
            return Err(ImageError::limit(format!(
                "JSON document size (config {config_digest} is {} bytes)",
                manifest.config().size()
            )));
        }
        let mut blobs = vec![(config_digest.clone(), manifest.config().size())];
        let mut seen = BTreeSet::from([config_digest.clone()]);
        for layer in manifest.layers() {
            let digest = Digest::from_oci(layer.digest())?;
            if layer.size() > self.limits.layer_bytes {
                return Err(ImageError::limit(format!(
                    "layer size ({digest} is {} bytes)",
                    layer.size()
                )));
            }
            if seen.insert(digest.clone()) {
                blobs.push((digest, layer.size()));
            }
        }

        // No prune may delete what we count on until the commit.
        let store = self.clone();
        let content_lock = blocking(move || store.lock_content()).await?;
        let missing: Vec<(Digest, u64)> = blobs
            .into_iter()
            .filter(|(d, _)| !self.has_blob(d))
            .collect();
        let chunk = options.chunk_size.clamp(1, MAX_CHUNK);
        let results: Vec<Result<(TempFile, Digest, u64)>> = futures::stream::iter(missing)
            .map(|(digest, size)| async move {
                let temp = self.fetch_blob(source, &digest, size, chunk).await?;
                Ok((temp, digest, size))
            })
            .buffer_unordered(options.max_concurrent_blobs.max(1))
            .collect()
            .await;
        let mut fetched = Vec::new();
        for result in results {
            fetched.push(result?);
        }

        let store = self.clone();
        let names = parsed.map(|r| vec![r.to_string()]).unwrap_or_default();
        let descriptor = Descriptor::new(
            MediaType::from(announced.media_type.as_str()),
            announced.manifest.len() as u64,
            manifest_digest.to_oci(),
        );
        let manifest_bytes = announced.manifest.clone();
        blocking(move || {
            let mut ingest = store.ingest()?;
            for (temp, digest, size) in &fetched {
                ingest.adopt_verified(&temp.0, digest, *size)?;
            }
            ingest.put_blob(
                &manifest_bytes[..],
                Some((&manifest_digest, manifest_bytes.len() as u64)),
            )?;
            ingest.commit(&[(descriptor, names)])?;
            drop(fetched); // the ingest linked them in; our own names go
            Ok(())
        })
        .await?;
        drop(content_lock);
        Ok(ImageId(config_digest))
    }

    /// One blob, chunk by chunk, into a temp file; verified by size and sha256.
    async fn fetch_blob(
        &self,
        source: &impl BlobSource,
        digest: &Digest,
        size: u64,
        chunk: u32,
    ) -> Result<TempFile> {
        let temp = TempFile(self.blobs_dir().join(store::temp_name()));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.0)
            .await
            .context(|| format!("create {}", temp.0.display()))?;
        let mut hasher = Sha256::new();
        for (offset, len) in chunks(size, chunk) {
            let bytes = source
                .read_chunk(digest, offset, len)
                .await
                .map_err(|e| rejected(format!("blob {digest} at {offset}: {e}")))?;
            check_chunk(digest, offset, len, bytes.len())?;
            hasher.update(&bytes);
            file.write_all(&bytes)
                .await
                .context(|| format!("write {}", temp.0.display()))?;
        }
        file.sync_all()
            .await
            .context(|| format!("fsync {}", temp.0.display()))?;
        if Digest::from_hasher(hasher) != *digest {
            return Err(rejected(format!(
                "blob {digest} does not hash to its digest"
            )));
        }
        Ok(temp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Serves another store's blobs from memory, optionally with one byte flipped.
    struct MemorySource {
        store: ImageStore,
        tamper: Option<Digest>,
        asked: Mutex<Vec<u32>>,
    }

    impl BlobSource for MemorySource {
        async fn read_chunk(
            &self,
            digest: &Digest,
            offset: u64,
            len: u32,
        ) -> std::result::Result<Vec<u8>, String> {
            self.asked.lock().unwrap().push(len);
            let mut bytes = self
                .store
                .read_chunk(digest, offset, len)
                .map_err(|e| e.to_string())?;
            if self.tamper.as_ref() == Some(digest) && offset == 0 && !bytes.is_empty() {
                bytes[0] ^= 0xff;
            }
            Ok(bytes)
        }
    }

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn stores() -> (tempfile::TempDir, ImageStore, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let a = ImageStore::open(dir.path().join("a")).unwrap();
        let b = ImageStore::open(dir.path().join("b")).unwrap();
        let tar = tar_with(&[("hello.txt", &[b'x'; 100][..]), ("etc/motd", b"hi\n")]);
        a.import(&tar[..], Some("local/app:1"), &[]).unwrap();
        (dir, a, b)
    }

    fn temp_files(store: &ImageStore) -> Vec<String> {
        std::fs::read_dir(store.blobs_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(store::TEMP_PREFIX))
            .collect()
    }

    #[test]
    fn t10_chunks_cover_a_blob_exactly() {
        assert_eq!(chunks(0, 4).count(), 0);
        assert_eq!(chunks(4, 4).collect::<Vec<_>>(), vec![(0, 4)]);
        assert_eq!(
            chunks(10, 4).collect::<Vec<_>>(),
            vec![(0, 4), (4, 4), (8, 2)]
        );
        let d = Digest::of(b"x");
        assert!(check_chunk(&d, 0, 4, 4).is_ok());
        assert!(check_chunk(&d, 8, 2, 2).is_ok());
        assert!(check_chunk(&d, 0, 4, 0).is_err(), "an empty chunk");
        assert!(check_chunk(&d, 0, 4, 3).is_err(), "a short chunk");
        let e = check_chunk(&d, 4, 4, 5).unwrap_err();
        assert!(e.to_string().contains("5 bytes at offset 4 where 4"), "{e}");
    }

    #[tokio::test]
    async fn t20_an_image_crosses_in_small_chunks_with_the_same_digests() {
        let (_dir, a, b) = stores();
        let announced = a.announce("local/app:1").unwrap();
        let source = MemorySource {
            store: a.clone(),
            tamper: None,
            asked: Mutex::default(),
        };
        let options = PeerFetchOptions {
            chunk_size: 7,
            max_concurrent_blobs: 2,
        };
        let id = b
            .fetch_from_peer("local/app:1", &announced, &source, options)
            .await
            .unwrap();
        let (from, to) = (
            a.resolve("local/app:1").unwrap(),
            b.resolve("local/app:1").unwrap(),
        );
        assert_eq!(to.id, from.id);
        assert_eq!(id, from.id);
        assert_eq!(to.manifest_digest, from.manifest_digest);
        let asked = source.asked.lock().unwrap();
        assert!(asked.len() > 3, "several chunks: {asked:?}");
        assert!(asked.iter().all(|&n| n <= 7), "bounded chunks: {asked:?}");
        assert!(temp_files(&b).is_empty());
    }

    #[tokio::test]
    async fn t30_a_tampered_blob_or_manifest_is_rejected_and_leaves_nothing() {
        let (_dir, a, b) = stores();
        let announced = a.announce("local/app:1").unwrap();
        let image = a.resolve("local/app:1").unwrap();
        let layer = Digest::from_oci(image.manifest.layers()[0].digest()).unwrap();
        let source = MemorySource {
            store: a.clone(),
            tamper: Some(layer.clone()),
            asked: Mutex::default(),
        };
        let e = b
            .fetch_from_peer(
                "local/app:1",
                &announced,
                &source,
                PeerFetchOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("blob {layer} does not hash")),
            "{e}"
        );
        assert!(b.resolve("local/app:1").is_err());
        assert!(!b.has_blob(&layer));
        assert!(temp_files(&b).is_empty(), "{:?}", temp_files(&b));

        // A manifest other than the one announced, or than the reference's digest.
        let honest = MemorySource {
            store: a.clone(),
            tamper: None,
            asked: Mutex::default(),
        };
        let mut forged = announced.clone();
        forged.manifest.push(b' ');
        let e = b
            .fetch_from_peer("local/app:1", &forged, &honest, PeerFetchOptions::default())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("does not hash to the announced"),
            "{e}"
        );
        let other = format!("local/app@{}", Digest::of(b"another"));
        let e = b
            .fetch_from_peer(&other, &announced, &honest, PeerFetchOptions::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("announced manifest"), "{e}");
        assert!(b.resolve("local/app:1").is_err());
    }
}
