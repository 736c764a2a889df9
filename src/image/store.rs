//! The content-addressed store on disk, in OCI image layout, and its two locks.
//!
//! ```text
//!  <root>/                     mode 0700
//!    oci-layout                {"imageLayoutVersion":"1.0.0"}
//!    index.json                OCI index: one descriptor per (name, manifest); the name in
//!                              the `org.opencontainers.image.ref.name` annotation, in full
//!                              form (docker.io/library/busybox:latest); a descriptor without
//!                              it is a dangling image (kept while a container uses it)
//!    blobs/sha256/<hex>        manifests, configs, layers; `.tmp-*` are writes in flight
//!    snapshots/<diff_id hex>/  one unpacked layer, an overlayfs lower dir (snapshot.rs)
//!    index.lock                flock: read-modify-write of index.json, held briefly
//!    gc.lock                   flock: shared by whoever adds content (ingest, unpack),
//!                              exclusive by whoever deletes it (remove, prune)
//! ```
//!
//! Every file appears by rename of a fsynced temp file in the same directory, followed by a
//! fsync of the directory, so a crash leaves either the old or the new version. Blobs are
//! verified (size while streaming, digest at the end) before they are renamed into place, and
//! an ingest commits its blobs only once all of them are verified: a failed load leaves no
//! trace but temp files, which the next prune removes. Lock order: gc.lock, then index.lock.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::config::ImageConfig;
use super::digest::{Digest, HashingWriter, ImageId, from_io};
use super::error::{Context, ImageError, Result};
use super::reference;
use super::{Image, Limits};

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub const INDEX_FILE: &str = "index.json";
pub const BLOBS_DIR: &str = "blobs/sha256";
pub const SNAPSHOTS_DIR: &str = "snapshots";
const INDEX_LOCK: &str = "index.lock";
const GC_LOCK: &str = "gc.lock";
pub const TEMP_PREFIX: &str = ".tmp-";
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// The image store rooted at a directory (the daemon uses `<data-dir>/images`). Cheap to
/// clone; holds no open resources. Calls block: call them from a blocking thread.
#[derive(Debug, Clone)]
pub struct ImageStore {
    pub(crate) root: PathBuf,
    pub limits: Limits,
}

/// One descriptor of index.json.
#[derive(Debug, Clone)]
pub(crate) struct IndexEntry {
    /// Full, normalised name; `None` for a dangling image.
    pub name: Option<String>,
    pub manifest: Descriptor,
}

impl IndexEntry {
    pub fn digest(&self) -> Result<Digest> {
        Digest::from_oci(self.manifest.digest())
    }
}

/// A unique name for a temp file in this process.
pub(crate) fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{TEMP_PREFIX}{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("fsync {}", dir.display()))
}

/// Write `bytes` to `dir/name` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let temp = dir.join(temp_name());
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, dir.join(name))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(ImageError::io(
            format!("write {}", dir.join(name).display()),
            e,
        ));
    }
    fsync_dir(dir)
}

/// Read a small file whole, refusing more than `max` bytes (config, manifest, index).
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = File::open(path).context(|| format!("open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .context(|| format!("read {}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(ImageError::limit(format!(
            "JSON document size ({} is over {max} bytes)",
            path.display()
        )));
    }
    Ok(bytes)
}

impl ImageStore {
    /// Open the store at `root`, creating an empty OCI layout there if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let store = ImageStore {
            root: root.into(),
            limits: Limits::default(),
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for dir in [store.root.clone(), store.blobs_dir(), store.snapshots_dir()] {
            builder
                .create(&dir)
                .context(|| format!("create {}", dir.display()))?;
        }
        let _index = store.lock_index()?;
        if !store.root.join(OCI_LAYOUT_FILE).exists() {
            write_atomic(&store.root, OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT)?;
        }
        if !store.root.join(INDEX_FILE).exists() {
            store.write_index(&[])?;
        }
        Ok(store)
    }

    /// The same store with other limits.
    pub fn with_limits(mut self, limits: Limits) -> ImageStore {
        self.limits = limits;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join(BLOBS_DIR)
    }

    pub(crate) fn snapshots_dir(&self) -> PathBuf {
        self.root.join(SNAPSHOTS_DIR)
    }

    /// Where the blob with `digest` lives (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    fn lock(&self, name: &str, arg: FlockArg) -> Result<Flock<File>> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .context(|| format!("open lock {}", path.display()))?;
        Flock::lock(file, arg)
            .map_err(|(_, errno)| ImageError::sys(format!("flock {}", path.display()), errno))
    }

    pub(crate) fn lock_index(&self) -> Result<Flock<File>> {
        self.lock(INDEX_LOCK, FlockArg::LockExclusive)
    }

    /// Held (shared) while content is added, so a GC never deletes what is being written.
    pub(crate) fn lock_content(&self) -> Result<Flock<File>> {
        self.lock(GC_LOCK, FlockArg::LockShared)
    }

    /// Held (exclusive) while content is deleted.
    pub(crate) fn lock_gc(&self) -> Result<Flock<File>> {
        self.lock(GC_LOCK, FlockArg::LockExclusive)
    }

    pub(crate) fn read_index(&self) -> Result<Vec<IndexEntry>> {
        let path = self.root.join(INDEX_FILE);
        let bytes = read_capped(&path, self.limits.json_bytes)?;
        let index: ImageIndex =
            serde_json::from_slice(&bytes).context(|| format!("parse {}", path.display()))?;
        Ok(index
            .manifests()
            .iter()
            .map(|d| IndexEntry {
                name: d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME_ANNOTATION).cloned()),
                manifest: d.clone(),
            })
            .collect())
    }

    /// Replace index.json. The caller holds the index lock.
    pub(crate) fn write_index(&self, entries: &[IndexEntry]) -> Result<()> {
        let manifests: Vec<Descriptor> = entries
            .iter()
            .map(|e| {
                let mut d = e.manifest.clone();
                let mut annotations = d.annotations().clone().unwrap_or_default();
                annotations.remove(REF_NAME_ANNOTATION);
                if let Some(name) = &e.name {
                    annotations.insert(REF_NAME_ANNOTATION.to_string(), name.clone());
                }
                d.set_annotations((!annotations.is_empty()).then_some(annotations));
                d
            })
            .collect();
        let mut index = ImageIndex::default();
        index.set_schema_version(2);
        index.set_media_type(Some(MediaType::ImageIndex));
        index.set_manifests(manifests);
        write_atomic(&self.root, INDEX_FILE, &canonical_json(&index)?)
    }

    /// A small JSON blob, verified against its digest (on-disk corruption shows up here as a
    /// digest mismatch, not as a confusing parse error).
    pub(crate) fn read_json_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        if !path.is_file() {
            return Err(ImageError::invalid_image(
                format!("blob {digest}"),
                "missing from the store",
            ));
        }
        let bytes = read_capped(&path, self.limits.json_bytes)?;
        if Digest::of(&bytes) != *digest {
            return Err(ImageError::DigestMismatch {
                digest: digest.to_string(),
            });
        }
        Ok(bytes)
    }

    pub(crate) fn read_manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        let bytes = self.read_json_blob(digest)?;
        serde_json::from_slice(&bytes).context(|| format!("parse manifest {digest}"))
    }

    pub(crate) fn read_config(&self, digest: &Digest) -> Result<ImageConfig> {
        let bytes = self.read_json_blob(digest)?;
        serde_json::from_slice(&bytes).context(|| format!("parse config {digest}"))
    }

    /// Every image of the index, with its names. Dangling images have no names.
    pub(crate) fn images(&self, entries: &[IndexEntry]) -> Result<Vec<Image>> {
        let mut by_manifest: HashMap<Digest, usize> = HashMap::new();
        let mut images: Vec<Image> = Vec::new();
        for entry in entries {
            let digest = entry.digest()?;
            let i = match by_manifest.get(&digest) {
                Some(&i) => i,
                None => {
                    let manifest = self.read_manifest(&digest)?;
                    let config_digest = Digest::from_oci(manifest.config().digest())?;
                    let config = self.read_config(&config_digest)?;
                    images.push(Image {
                        id: ImageId(config_digest),
                        manifest_digest: digest.clone(),
                        manifest,
                        config,
                        names: Vec::new(),
                    });
                    by_manifest.insert(digest, images.len() - 1);
                    images.len() - 1
                }
            };
            if let Some(name) = &entry.name
                && !images[i].names.contains(name)
            {
                images[i].names.push(name.clone());
            }
        }
        Ok(images)
    }

    /// Start adding content. Holds the content lock (shared) until the `Ingest` is dropped.
    pub fn ingest(&self) -> Result<Ingest<'_>> {
        Ok(Ingest {
            store: self,
            _content: self.lock_content()?,
            temps: Vec::new(),
            verified: HashMap::new(),
        })
    }

    /// Put names on manifests already in the store (all blobs present). Names move: a name
    /// that pointed elsewhere is taken from that image, which stays as a dangling image if it
    /// has no other name (a container may use it; prune removes it otherwise).
    pub(crate) fn add_to_index(&self, images: &[(Descriptor, Vec<String>)]) -> Result<()> {
        let _index = self.lock_index()?;
        let mut entries = self.read_index()?;
        for (manifest, names) in images {
            let digest = Digest::from_oci(manifest.digest())?;
            for name in names {
                if let Some(pos) = entries.iter().position(|e| e.name.as_deref() == Some(name)) {
                    let old = entries.remove(pos);
                    let old_digest = old.digest()?;
                    if old_digest != digest
                        && !entries
                            .iter()
                            .any(|e| e.digest().ok().as_ref() == Some(&old_digest))
                    {
                        entries.push(IndexEntry {
                            name: None,
                            manifest: old.manifest,
                        });
                    }
                }
                entries.push(IndexEntry {
                    name: Some(name.clone()),
                    manifest: manifest.clone(),
                });
            }
            let has_name = entries
                .iter()
                .any(|e| e.name.is_some() && e.digest().ok().as_ref() == Some(&digest));
            if has_name {
                entries.retain(|e| e.name.is_some() || e.digest().ok().as_ref() != Some(&digest));
            } else if !entries
                .iter()
                .any(|e| e.digest().ok().as_ref() == Some(&digest))
            {
                entries.push(IndexEntry {
                    name: None,
                    manifest: manifest.clone(),
                });
            }
        }
        self.write_index(&entries)
    }

    /// Delete blobs and snapshots no index entry reaches, and leftover temp files. The caller
    /// holds the gc lock (exclusive) and the index lock. If any image cannot be read whole,
    /// nothing is deleted: never delete on incomplete knowledge.
    pub(crate) fn sweep(&self, entries: &[IndexEntry]) -> Result<SweepReport> {
        let mut blobs: BTreeSet<String> = BTreeSet::new();
        let mut snapshots: BTreeSet<String> = BTreeSet::new();
        for entry in entries {
            let marked = (|| -> Result<()> {
                let digest = entry.digest()?;
                let manifest = self.read_manifest(&digest)?;
                let config = Digest::from_oci(manifest.config().digest())?;
                blobs.insert(digest.hex().to_string());
                blobs.insert(config.hex().to_string());
                for layer in manifest.layers() {
                    blobs.insert(Digest::from_oci(layer.digest())?.hex().to_string());
                }
                for diff_id in self.read_config(&config)?.rootfs.diff_ids {
                    snapshots.insert(diff_id.hex().to_string());
                }
                Ok(())
            })();
            if let Err(e) = marked {
                tracing::warn!("image store: not collecting garbage, an image is unreadable: {e}");
                return Ok(SweepReport::default());
            }
        }
        let mut report = SweepReport::default();
        for entry in fs::read_dir(self.blobs_dir()).context(|| "list blobs".into())? {
            let entry = entry.context(|| "list blobs".into())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if blobs.contains(&name) {
                continue;
            }
            let size = entry.metadata().map_or(0, |m| m.len());
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    if !name.starts_with(TEMP_PREFIX) {
                        report.blobs_deleted.push(name);
                    }
                    report.bytes_reclaimed += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io(format!("delete blob {name}"), e)),
            }
        }
        fsync_dir(&self.blobs_dir())?;
        for entry in fs::read_dir(self.snapshots_dir()).context(|| "list snapshots".into())? {
            let entry = entry.context(|| "list snapshots".into())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if snapshots.contains(&name) {
                continue;
            }
            super::snapshot::delete_snapshot_dir(&self.snapshots_dir(), &name)?;
            if !name.starts_with(TEMP_PREFIX) && !name.starts_with(super::snapshot::TRASH_PREFIX) {
                report.snapshots_deleted.push(name);
            }
        }
        Ok(report)
    }
}

/// What a sweep deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Hex digests of the blobs deleted.
    pub blobs_deleted: Vec<String>,
    /// Hex diff_ids of the snapshots deleted.
    pub snapshots_deleted: Vec<String>,
    pub bytes_reclaimed: u64,
}

/// JSON with sorted object keys (through `serde_json::Value`, whose maps are ordered), so what
/// we write is reproducible whatever `HashMap` order the types use.
pub(crate) fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value).context(|| "encode JSON".into())?;
    serde_json::to_vec(&value).context(|| "encode JSON".into())
}

/// A temp file in the blob directory holding streamed content, with what it hashed to.
struct TempBlob {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

/// Content being added: blobs are streamed to temp files, verified, and only renamed into
/// place by `commit`, all together. Dropping an uncommitted ingest deletes its temp files.
pub struct Ingest<'s> {
    store: &'s ImageStore,
    _content: Flock<File>,
    temps: Vec<TempBlob>,
    /// Digests whose content was verified against a descriptor, and the temp file holding it.
    verified: HashMap<Digest, usize>,
}

impl<'s> Ingest<'s> {
    pub fn store(&self) -> &'s ImageStore {
        self.store
    }

    /// Stream `reader` into a temp file, hashing. With `expected` (digest, size), stop with
    /// `size mismatch` as soon as the stream is longer than promised, and check the digest at
    /// the end; a good blob is kept for `commit`. Returns the digest and size.
    pub fn put_blob(
        &mut self,
        reader: impl Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<(Digest, u64)> {
        let i = self.stage(reader, expected)?;
        let temp = &self.temps[i];
        if let Some((digest, size)) = expected {
            if temp.size != size {
                return Err(ImageError::SizeMismatch {
                    digest: digest.to_string(),
                    expected: size,
                    actual: temp.size,
                });
            }
            if temp.digest != *digest {
                return Err(ImageError::DigestMismatch {
                    digest: digest.to_string(),
                });
            }
        }
        let digest = temp.digest.clone();
        self.verified.insert(digest.clone(), i);
        Ok((digest, temp.size))
    }

    /// Stream into a temp file without keeping it for commit yet (archive members whose role
    /// is known only once the whole archive has been read). Returns its index.
    pub(crate) fn stage(
        &mut self,
        reader: impl Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<usize> {
        let dir = self.store.blobs_dir();
        let path = dir.join(temp_name());
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .context(|| format!("create {}", path.display()))?;
        // Registered before writing, so an error below still deletes it.
        self.temps.push(TempBlob {
            path: path.clone(),
            digest: Digest::of(b""),
            size: 0,
        });
        let index = self.temps.len() - 1;
        let mut writer = HashingWriter::new(io::BufWriter::new(file));
        let limit = expected.map_or(u64::MAX, |(_, size)| size);
        // Read one byte past the promise: enough to know it was broken, no more.
        let copied = io::copy(&mut reader.take(limit.saturating_add(1)), &mut writer)
            .map_err(|e| from_io(|| format!("write {}", path.display()), e))?;
        if let Some((digest, size)) = expected
            && copied > size
        {
            return Err(ImageError::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: copied,
            });
        }
        let (buffered, digest, size) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| ImageError::io(format!("write {}", path.display()), e.into_error()))?;
        file.sync_all()
            .context(|| format!("fsync {}", path.display()))?;
        self.temps[index].digest = digest;
        self.temps[index].size = size;
        Ok(index)
    }

    pub(crate) fn staged_digest(&self, index: usize) -> (&Digest, u64) {
        (&self.temps[index].digest, self.temps[index].size)
    }

    pub(crate) fn staged_path(&self, index: usize) -> &Path {
        &self.temps[index].path
    }

    /// Keep staged file `index` for commit as the blob it hashed to.
    pub(crate) fn keep(&mut self, index: usize) {
        self.verified
            .insert(self.temps[index].digest.clone(), index);
    }

    /// Take in a file of the blob directory whose content the caller verified against
    /// `digest` and `size` while writing it (a registry download), by a hard link to a temp
    /// file of this ingest: it is committed with the ingest or deleted with it, and the
    /// caller's file is untouched (another pull may be taking in the same file). A file gone
    /// because another pull committed the blob meanwhile is fine.
    pub(crate) fn adopt_verified(&mut self, path: &Path, digest: &Digest, size: u64) -> Result<()> {
        let temp = self.store.blobs_dir().join(temp_name());
        match fs::hard_link(path, &temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.store.has_blob(digest) => {
                return Ok(());
            }
            Err(e) => return Err(ImageError::io(format!("adopt {}", path.display()), e)),
        }
        self.temps.push(TempBlob {
            path: temp,
            digest: digest.clone(),
            size,
        });
        self.verified.insert(digest.clone(), self.temps.len() - 1);
        Ok(())
    }

    /// Is the blob in the store or verified in this ingest?
    pub fn has(&self, digest: &Digest) -> bool {
        self.verified.contains_key(digest) || self.store.has_blob(digest)
    }

    /// Where a blob's content is readable now: its temp file, or the store.
    pub fn path_of(&self, digest: &Digest) -> Option<PathBuf> {
        match self.verified.get(digest) {
            Some(&i) => Some(self.temps[i].path.clone()),
            None => self
                .store
                .has_blob(digest)
                .then(|| self.store.blob_path(digest)),
        }
    }

    /// Move every verified blob into place, then name the manifests in index.json.
    /// Blobs not reachable from `images` are not committed.
    pub fn commit(mut self, images: &[(Descriptor, Vec<String>)]) -> Result<()> {
        // Everything each manifest reaches must be here before anything becomes visible.
        let mut needed: BTreeSet<Digest> = BTreeSet::new();
        for (manifest, _) in images {
            let digest = Digest::from_oci(manifest.digest())?;
            let path = self.path_of(&digest).ok_or_else(|| {
                ImageError::invalid_image(format!("manifest {digest}"), "missing")
            })?;
            let bytes = read_capped(&path, self.store.limits.json_bytes)?;
            let parsed: ImageManifest =
                serde_json::from_slice(&bytes).context(|| format!("parse manifest {digest}"))?;
            needed.insert(digest);
            needed.insert(Digest::from_oci(parsed.config().digest())?);
            for layer in parsed.layers() {
                needed.insert(Digest::from_oci(layer.digest())?);
            }
        }
        for digest in &needed {
            if !self.has(digest) {
                return Err(ImageError::invalid_image(
                    format!("blob {digest}"),
                    "missing from the image",
                ));
            }
        }
        let dir = self.store.blobs_dir();
        let mut moved: Vec<PathBuf> = Vec::new();
        for digest in &needed {
            let Some(&i) = self.verified.get(digest) else {
                continue; // already in the store
            };
            let target = self.store.blob_path(digest);
            if target.exists() {
                continue;
            }
            if let Err(e) = fs::rename(&self.temps[i].path, &target) {
                // Undo what this commit made visible; the rest are temp files Drop deletes.
                for path in &moved {
                    let _ = fs::remove_file(path);
                }
                return Err(ImageError::io(format!("commit blob {digest}"), e));
            }
            moved.push(target);
        }
        fsync_dir(&dir)?;
        if let Err(e) = self.store.add_to_index(images) {
            for path in &moved {
                let _ = fs::remove_file(path);
            }
            return Err(e);
        }
        // The moved temps no longer exist; Drop's remove_file of them is a harmless ENOENT.
        self.temps.retain(|t| t.path.exists());
        Ok(())
    }
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        for temp in &self.temps {
            let _ = fs::remove_file(&temp.path);
        }
    }
}

/// Names as the store keys them, checked and normalised.
pub(crate) fn normalize_names<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>> {
    names
        .iter()
        .map(|n| reference::normalize(n.as_ref()))
        .collect()
}

/// A manifest media type we can run (not an index, not an artifact).
pub(crate) fn is_image_manifest(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageManifest => true,
        MediaType::Other(m) => m == MEDIA_TYPE_DOCKER_MANIFEST,
        _ => false,
    }
}

pub(crate) fn is_index(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageIndex => true,
        MediaType::Other(m) => m == MEDIA_TYPE_DOCKER_LIST,
        _ => false,
    }
}
