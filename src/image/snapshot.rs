//! Snapshots: each layer unpacked once, into `snapshots/<diff_id hex>/`, and shared by every
//! image and container that has the layer (overlayfs stacks them as read-only lower dirs).
//!
//! Keyed by diff_id, not chain id: a snapshot holds one layer's own content (whiteouts as
//! overlayfs devices and xattrs), never its parents merged in, so the same layer under
//! different parents is the same directory.
//!
//! ```text
//!  blob ─hash(digest)─▶ gzip|zstd|plain ─hash(diff_id)─▶ tar parser ─▶ snapshots/.tmp-X/
//!                                                           both digests match? syncfs
//!                                                           rename .tmp-X → <diff_id hex>
//! ```
//!
//! A snapshot directory exists under its final name only once complete (rename is atomic);
//! a failed unpack removes its temp dir. Two unpackers of one layer each work in their own
//! temp dir; the first rename wins, the loser's rename fails (the target is not empty) and it
//! throws its copy away and uses the winner's.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::compression::Decoder;
use super::digest::{Digest, HashingReader, from_io};
use super::error::{Context, ImageError, Result};
use super::store::{ImageStore, TEMP_PREFIX, fsync_dir, temp_name};
use super::unpack::unpack;

/// Snapshots being deleted are first renamed to this prefix, so a half-deleted snapshot is
/// never mistaken for a complete one.
pub const TRASH_PREFIX: &str = ".trash-";

/// Removes a temp directory on drop unless disarmed.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Delete `dir/name` (a snapshot, a temp or trash dir): renamed aside first, then removed.
pub(crate) fn delete_snapshot_dir(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    let doomed = if name.starts_with(TEMP_PREFIX) || name.starts_with(TRASH_PREFIX) {
        path
    } else {
        let trash = dir.join(format!("{TRASH_PREFIX}{}", temp_name()));
        match fs::rename(&path, &trash) {
            Ok(()) => trash,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ImageError::io(format!("delete snapshot {name}"), e)),
        }
    };
    match fs::remove_dir_all(&doomed) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io(format!("delete {}", doomed.display()), e)),
    }
}

impl ImageStore {
    /// Where the snapshot of the layer with this diff_id lives (it may not exist yet).
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots_dir().join(diff_id.hex())
    }

    /// The unpacked layer whose blob is `layer` and whose uncompressed digest is `diff_id`,
    /// unpacking it first if no snapshot exists yet. Both digests are verified while
    /// unpacking; on any error nothing is left behind.
    pub fn snapshot(&self, layer: &Digest, diff_id: &Digest) -> Result<PathBuf> {
        let target = self.snapshot_path(diff_id);
        if target.is_dir() {
            return Ok(target);
        }
        let _content = self.lock_content()?;
        if target.is_dir() {
            return Ok(target);
        }
        let blob = self.blob_path(layer);
        let file = File::open(&blob).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::invalid_image(format!("layer {layer}"), "missing from the store")
            } else {
                ImageError::io(format!("open {}", blob.display()), e)
            }
        })?;
        let temp_path = self.snapshots_dir().join(temp_name());
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&temp_path)
            .context(|| format!("create {}", temp_path.display()))?;
        let mut temp = TempDir(Some(temp_path.clone()));

        let context = || format!("unpack layer {layer}");
        let decoder = Decoder::new(BufReader::new(HashingReader::new(file)))
            .map_err(|e| from_io(context, e))?;
        let (diff_reader, stats) = unpack(HashingReader::new(decoder), &temp_path, &self.limits)?;
        let (mut decoder, diff, _) = diff_reader.into_parts();
        // What the decompressor did not need still belongs to the blob's digest.
        io::copy(decoder.get_mut(), &mut io::sink()).map_err(|e| from_io(context, e))?;
        let (_, blob_digest, _) = decoder.into_inner().into_inner().into_parts();
        if blob_digest != *layer {
            return Err(ImageError::DigestMismatch {
                digest: layer.to_string(),
            });
        }
        if diff != *diff_id {
            return Err(ImageError::DigestMismatch {
                digest: diff_id.to_string(),
            });
        }

        // The content must be on disk before the name says the snapshot is complete.
        let dir = File::open(&temp_path).context(|| format!("open {}", temp_path.display()))?;
        nix::unistd::syncfs(&dir).context(|| format!("syncfs {}", temp_path.display()))?;
        match fs::rename(&temp_path, &target) {
            Ok(()) => {
                temp.0 = None;
                fsync_dir(&self.snapshots_dir())?;
                tracing::debug!(%diff_id, entries = stats.entries, bytes = stats.stream_bytes, "layer unpacked");
            }
            // Someone else finished first: theirs is as good as ours.
            Err(e)
                if matches!(
                    e.raw_os_error().map(Errno::from_raw),
                    Some(Errno::ENOTEMPTY | Errno::EEXIST)
                ) && target.is_dir() => {}
            Err(e) => return Err(ImageError::io(format!("commit snapshot {diff_id}"), e)),
        }
        Ok(target)
    }

    /// The lower directories of an image for overlayfs, topmost layer first, each unpacked
    /// once and shared. The caller mounts them read-only under its own upper dir.
    ///
    /// A GC may delete snapshots of images no container uses: the caller's in-use predicate
    /// must already count the container these are for.
    pub fn prepare_rootfs(&self, name_or_id: &str) -> Result<Vec<PathBuf>> {
        let image = self.resolve(name_or_id)?;
        let layers = image.manifest.layers();
        let diff_ids = &image.config.rootfs.diff_ids;
        if layers.len() != diff_ids.len() {
            return Err(ImageError::invalid_image(
                format!("{}", image.id),
                format!(
                    "{} layers in the manifest but {} diff_ids in the config",
                    layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut lower = Vec::with_capacity(layers.len());
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            lower.push(self.snapshot(&Digest::from_oci(layer.digest())?, diff_id)?);
        }
        lower.reverse();
        Ok(lower)
    }
}
