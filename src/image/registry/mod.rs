//! Pull from and push to OCI Distribution v2 registries (docker-registry, Docker Hub's API,
//! zot, harbor …): `ImageStore::pull` and `ImageStore::push`.
//!
//! ```text
//!  pull(ref)                                          push(ref)
//!   GET manifests/<tag|digest>  (Accept: 4 types)      resolve ref in the store
//!   ├─ index/list → pick os/arch → GET by digest       for config + layers:
//!   ├─ verify digest (ref@digest, index entry)           HEAD blobs/<d> → 200: skip
//!   ├─ config + layers the store lacks, 3 at once:       POST blobs/uploads/ → Location
//!   │    download.rs → .partial-<hex> (Range resume,     PUT Location?digest=<d> (the file)
//!   │    digest + size checked while streaming)        PUT manifests/<tag> (exact bytes)
//!   └─ Ingest: link partials in, put manifest, commit name
//! ```
//!
//!   client.rs   HTTP(S) (hyper + rustls), 401 → Basic or Bearer token, redirects
//!   auth.rs     challenge parsing, token URL, Basic header (pure, unit-tested)
//!   tls.rs      scheme per registry, roots + certs.d CAs and client certificates
//!   download.rs one blob into a resumable partial, verified
//!
//! Invariants: nothing becomes visible in the store before it is verified; a pull that fails
//! or is interrupted commits nothing, and leaves complete, verified downloads (and the
//! partial of the blob it was in) as `.partial-<hex>` files that the next pull reuses without
//! fetching them again and a prune removes. Pulls sharing a blob (in one process or several)
//! take turns on the partial's flock: one downloads, the others then find it complete and
//! hard-link it into their own ingest, so each blob crosses the network once. The content lock is held (shared) for the whole
//! pull or push, so no prune deletes a blob or partial under it.
//!
//! TLS: HTTPS with verified certificates by default; plain HTTP for registries given as
//! insecure and for loopback ones without a certs.d directory (see `tls.rs`).

mod auth;
pub mod client;
pub mod download;
pub mod tls;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

pub use client::{Payload, RegistryClient};
pub use download::Fetched;

use super::digest::{Digest, ImageId};
use super::error::{Context, ImageError, Result};
use super::reference::Reference;
use super::store::{
    ImageStore, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};

/// Called as a blob downloads: (digest, bytes done, total bytes).
pub type Progress = Arc<dyn Fn(&Digest, u64, u64) + Send + Sync>;

/// An os/architecture(/variant) to pick from a multi-platform index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This host's platform (`linux/amd64` on x86_64).
    pub fn host() -> Platform {
        let (architecture, os) = super::archive::host_platform();
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    fn matches(&self, platform: &oci_spec::image::Platform) -> bool {
        platform.os().to_string() == self.os
            && platform.architecture().to_string() == self.architecture
            && match &self.variant {
                Some(v) => platform.variant().as_deref() == Some(v.as_str()),
                None => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// How to pull.
#[derive(Clone)]
pub struct PullOptions {
    /// Talk plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    /// (user, password) for Basic auth or the Bearer token request.
    pub credentials: Option<(String, String)>,
    /// Docker's `certs.d`: `<certs_dir>/<host:port>/*.crt` are trusted for that registry.
    pub certs_dir: PathBuf,
    pub platform: Platform,
    pub progress: Option<Progress>,
    /// Blobs downloaded at once.
    pub max_concurrent_downloads: usize,
    /// How long to wait for an answer, or for the next bytes of a body, before giving up
    /// (the partial download is kept).
    pub io_timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            insecure: false,
            credentials: None,
            certs_dir: PathBuf::from(tls::DEFAULT_CERTS_DIR),
            platform: Platform::host(),
            progress: None,
            max_concurrent_downloads: 3,
            io_timeout: client::DEFAULT_IO_TIMEOUT,
        }
    }
}

impl fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullOptions")
            .field("insecure", &self.insecure)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("certs_dir", &self.certs_dir)
            .field("platform", &self.platform)
            .field("max_concurrent_downloads", &self.max_concurrent_downloads)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    pub insecure: bool,
    pub credentials: Option<(String, String)>,
    pub certs_dir: PathBuf,
    /// How long to wait for an answer before giving up.
    pub io_timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            insecure: false,
            credentials: None,
            certs_dir: PathBuf::from(tls::DEFAULT_CERTS_DIR),
            io_timeout: client::DEFAULT_IO_TIMEOUT,
        }
    }
}

impl fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushOptions")
            .field("insecure", &self.insecure)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("certs_dir", &self.certs_dir)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

/// How to check a login.
#[derive(Clone)]
pub struct LoginOptions {
    pub insecure: bool,
    pub certs_dir: PathBuf,
    pub io_timeout: Duration,
}

impl Default for LoginOptions {
    fn default() -> Self {
        LoginOptions {
            insecure: false,
            certs_dir: PathBuf::from(tls::DEFAULT_CERTS_DIR),
            io_timeout: client::DEFAULT_IO_TIMEOUT,
        }
    }
}

/// Check `(user, password)` against `registry` (`host:port`, `docker.io`) the way `docker
/// login` does: `GET /v2/` answered through the registry's challenge. Nothing is stored; an
/// error says why the registry refused (`unauthorized: incorrect username or password`).
pub async fn login(
    registry: &str,
    credentials: (String, String),
    options: &LoginOptions,
) -> Result<()> {
    RegistryClient::new(
        registry,
        options.insecure,
        Some(credentials),
        &options.certs_dir,
    )?
    .with_io_timeout(options.io_timeout)
    .check_login()
    .await
}

/// What a pull brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    pub id: ImageId,
    /// The digest of the image manifest stored (the platform's, when pulled through an index).
    pub manifest_digest: Digest,
    /// The digest of what the reference pointed at (the index, for a multi-platform image).
    pub reference_digest: Digest,
    /// The full name committed (`127.0.0.1:5000/app:1`).
    pub name: String,
    /// Blobs that were not in the store, as fetched (or found complete from an earlier pull).
    pub fetched: Vec<Fetched>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    pub manifest_digest: Digest,
    pub uploaded: Vec<Digest>,
    /// Blobs the registry already had.
    pub skipped: Vec<Digest>,
}

/// The media type of a manifest document: its own `mediaType` field, else the Content-Type,
/// else guessed from its shape.
fn media_type_of(bytes: &[u8], content_type: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let shape: Option<Shape> = serde_json::from_slice(bytes).ok();
    if let Some(m) = shape.as_ref().and_then(|s| s.media_type.clone()) {
        return m;
    }
    match content_type {
        Some(ct) if ct != "application/json" && !ct.is_empty() => ct.to_string(),
        _ if shape.is_some_and(|s| s.manifests.is_some()) => MEDIA_TYPE_OCI_INDEX.to_string(),
        _ => MEDIA_TYPE_OCI_MANIFEST.to_string(),
    }
}

fn is_index_type(m: &str) -> bool {
    m == MEDIA_TYPE_OCI_INDEX || m == MEDIA_TYPE_DOCKER_LIST
}

fn is_manifest_type(m: &str) -> bool {
    m == MEDIA_TYPE_OCI_MANIFEST || m == MEDIA_TYPE_DOCKER_MANIFEST
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::io("image store task", std::io::Error::other(e)))?
}

impl ImageStore {
    /// Pull `reference` (`busybox`, `127.0.0.1:5000/app:1`, `host/app@sha256:…`) into the
    /// store and name it. See the module docs for the steps and what an interrupted pull
    /// leaves.
    pub async fn pull(&self, reference: &str, options: &PullOptions) -> Result<PulledImage> {
        let reference = Reference::parse(reference)?;
        let client = RegistryClient::new(
            &reference.domain,
            options.insecure,
            options.credentials.clone(),
            &options.certs_dir,
        )?
        .with_io_timeout(options.io_timeout);
        let name = reference.path.as_str();
        let wanted = match (&reference.digest, &reference.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => super::reference::DEFAULT_TAG.to_string(),
        };
        let max = self.limits.json_bytes;
        let (bytes, content_type) = client.get_manifest(name, &wanted, max).await?;
        let reference_digest = Digest::of(&bytes);
        if let Some(expected) = &reference.digest
            && reference_digest != *expected
        {
            return Err(ImageError::DigestMismatch {
                digest: expected.to_string(),
            });
        }
        let mut media_type = media_type_of(&bytes, content_type.as_deref());
        let (manifest_bytes, manifest_digest) = if is_index_type(&media_type) {
            let index: ImageIndex = serde_json::from_slice(&bytes)
                .context(|| format!("parse index {reference_digest}"))?;
            let chosen = index
                .manifests()
                .iter()
                .find(|d| {
                    d.platform()
                        .as_ref()
                        .is_some_and(|p| options.platform.matches(p))
                })
                .ok_or_else(|| ImageError::NoMatchingPlatform {
                    reference: reference.to_string(),
                    platform: options.platform.to_string(),
                })?;
            let digest = Digest::from_oci(chosen.digest())?;
            let (bytes, content_type) = client.get_manifest(name, digest.as_str(), max).await?;
            if Digest::of(&bytes) != digest || bytes.len() as u64 != chosen.size() {
                return Err(ImageError::DigestMismatch {
                    digest: digest.to_string(),
                });
            }
            media_type = media_type_of(&bytes, content_type.as_deref());
            (bytes, digest)
        } else {
            (bytes, reference_digest.clone())
        };
        if !is_manifest_type(&media_type) {
            return Err(ImageError::Unsupported(format!(
                "{reference}: manifest media type {media_type:?} is not an image"
            )));
        }
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .context(|| format!("parse manifest {manifest_digest}"))?;
        let config_digest = Digest::from_oci(manifest.config().digest())?;
        let mut blobs: Vec<(Digest, u64)> = vec![(config_digest.clone(), manifest.config().size())];
        if manifest.config().size() > self.limits.json_bytes {
            return Err(ImageError::limit(format!(
                "JSON document size (config {config_digest} is {} bytes, over {})",
                manifest.config().size(),
                self.limits.json_bytes
            )));
        }
        let mut seen: BTreeSet<Digest> = BTreeSet::from([config_digest.clone()]);
        for layer in manifest.layers() {
            let digest = Digest::from_oci(layer.digest())?;
            if layer.size() > self.limits.layer_bytes {
                return Err(ImageError::limit(format!(
                    "layer size ({digest} is {} bytes, over {})",
                    layer.size(),
                    self.limits.layer_bytes
                )));
            }
            if seen.insert(digest.clone()) {
                blobs.push((digest, layer.size()));
            }
        }

        // No prune may delete a partial or a blob we count on until the commit.
        let store = self.clone();
        let content_lock = blocking(move || store.lock_content()).await?;
        let missing: Vec<(Digest, u64)> = blobs
            .into_iter()
            .filter(|(d, _)| !self.has_blob(d))
            .collect();
        let blobs_dir = self.blobs_dir();
        // Every download runs to its end even when another fails, so whatever can complete
        // is kept for the next pull; the first error is reported.
        let results: Vec<Result<Option<(std::path::PathBuf, Fetched)>>> =
            futures::stream::iter(missing)
                .map(|(digest, size)| {
                    let client = &client;
                    let blobs_dir = &blobs_dir;
                    async move {
                        download::fetch_blob(
                            client,
                            name,
                            blobs_dir,
                            &digest,
                            size,
                            options.progress.as_ref(),
                        )
                        .await
                    }
                })
                .buffer_unordered(options.max_concurrent_downloads.max(1))
                .collect()
                .await;
        let mut downloaded = Vec::new();
        for result in results {
            downloaded.extend(result?);
        }

        let store = self.clone();
        let full_name = reference.to_string();
        let descriptor = Descriptor::new(
            MediaType::from(media_type.as_str()),
            manifest_bytes.len() as u64,
            manifest_digest.to_oci(),
        );
        let committed_name = full_name.clone();
        let fetched: Vec<Fetched> = downloaded.iter().map(|(_, f)| f.clone()).collect();
        let digest = manifest_digest.clone();
        blocking(move || {
            let mut ingest = store.ingest()?;
            for (path, fetched) in &downloaded {
                ingest.adopt_verified(path, &fetched.digest, fetched.size)?;
            }
            ingest.put_blob(
                &manifest_bytes[..],
                Some((&digest, manifest_bytes.len() as u64)),
            )?;
            ingest.commit(&[(descriptor, vec![committed_name])])?;
            // Only now: a concurrent pull may have linked the same partials meanwhile.
            for (path, _) in &downloaded {
                let _ = std::fs::remove_file(path);
            }
            Ok(())
        })
        .await?;
        drop(content_lock);
        Ok(PulledImage {
            id: ImageId(config_digest),
            manifest_digest,
            reference_digest,
            name: full_name,
            fetched,
        })
    }

    /// Push the image named `reference` in the store to the registry the name points at:
    /// blobs the registry lacks (HEAD) by monolithic upload, then the manifest, byte for byte,
    /// under the tag (or the digest).
    pub async fn push(&self, reference: &str, options: &PushOptions) -> Result<PushedImage> {
        let target = Reference::parse(reference)?;
        let client = RegistryClient::new(
            &target.domain,
            options.insecure,
            options.credentials.clone(),
            &options.certs_dir,
        )?
        .with_io_timeout(options.io_timeout);
        let store = self.clone();
        let lookup = reference.to_string();
        let (content_lock, image, manifest_bytes) = blocking(move || {
            let lock = store.lock_content()?;
            let image = store.resolve(&lookup)?;
            let bytes = store.read_json_blob(&image.manifest_digest)?;
            Ok((lock, image, bytes))
        })
        .await?;
        let name = target.path.as_str();
        let mut blobs: Vec<(Digest, u64)> = Vec::new();
        for layer in image.manifest.layers() {
            blobs.push((Digest::from_oci(layer.digest())?, layer.size()));
        }
        blobs.push((
            Digest::from_oci(image.manifest.config().digest())?,
            image.manifest.config().size(),
        ));
        let mut pushed = PushedImage {
            manifest_digest: image.manifest_digest.clone(),
            uploaded: Vec::new(),
            skipped: Vec::new(),
        };
        for (digest, size) in blobs {
            if pushed.uploaded.contains(&digest) || pushed.skipped.contains(&digest) {
                continue;
            }
            if client.blob_exists(name, &digest).await? {
                pushed.skipped.push(digest);
                continue;
            }
            let path = self.blob_path(&digest);
            client
                .upload_blob(name, &digest, Payload::File { path, size })
                .await?;
            pushed.uploaded.push(digest);
        }
        let media_type = media_type_of(&manifest_bytes, None);
        let tag = match (&target.tag, &target.digest) {
            (Some(tag), _) => tag.clone(),
            (None, Some(digest)) => digest.to_string(),
            (None, None) => super::reference::DEFAULT_TAG.to_string(),
        };
        client
            .put_manifest(name, &tag, &media_type, &manifest_bytes)
            .await?;
        drop(content_lock);
        Ok(pushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_media_type_from_document_then_header_then_shape() {
        assert_eq!(
            media_type_of(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}"#,
                None
            ),
            MEDIA_TYPE_DOCKER_LIST
        );
        assert_eq!(
            media_type_of(b"{}", Some(MEDIA_TYPE_DOCKER_MANIFEST)),
            MEDIA_TYPE_DOCKER_MANIFEST
        );
        assert_eq!(
            media_type_of(br#"{"manifests":[]}"#, None),
            MEDIA_TYPE_OCI_INDEX
        );
        assert_eq!(
            media_type_of(br#"{"layers":[]}"#, Some("application/json")),
            MEDIA_TYPE_OCI_MANIFEST
        );
    }
}
