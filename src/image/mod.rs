//! Container images: a content-addressed store in OCI image layout, docker-save and OCI
//! archives in and out, `docker import`, and layers unpacked (safely, once) for overlayfs.
//!
//! Who calls it: the daemon (`<data-dir>/images`), `swarm image …`, `swarm run` and the agent
//! (later, with registry pull). It uses `runtime`'s conventions but nothing above it: it knows
//! images, not containers, so "is this image in use" is a predicate the caller passes in.
//!
//! ```text
//!  ImageStore (this file: names, list, inspect, tag, remove, prune)
//!    store.rs      on-disk layout, atomic writes, locks, index.json, Ingest (verified blobs)
//!    archive.rs    load (docker save, legacy and 25+; OCI layout; any compression) / save
//!    import.rs     docker import: a rootfs tar + --change lines → a one-layer image
//!    snapshot.rs   snapshot(layer) → snapshots/<diff_id>; prepare_rootfs → lower dirs
//!    unpack.rs     the hostile-tar extractor: fd-relative, no symlink followed, whiteouts
//!    compression.rs gzip / zstd / plain by magic     digest.rs  sha256 while streaming
//!    reference.rs  docker's name normalisation        config.rs  image config, inspect shapes
//!    registry/     OCI Distribution client: pull (resumable, verified) and push
//!    peer.rs       images from another node's store: announce, chunks, verified fetch
//! ```
//!
//! Invariants: nothing becomes visible in the store (a blob under its digest, a name in
//! index.json, a snapshot under its diff_id) before its content is verified and on disk;
//! a failed or interrupted operation leaves the store as it was (bar temp files the next
//! prune removes); no layer entry can touch anything outside its own snapshot directory;
//! content is deleted only under the exclusive gc lock and only when no index entry reaches it.

pub mod archive;
pub mod compression;
pub mod config;
pub mod digest;
pub mod error;
pub mod import;
pub mod peer;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod unpack;

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageManifest};
use serde::{Deserialize, Serialize};

pub use config::{ContainerConfig, ImageConfig, ImageInspect, ImageSummary};
pub use digest::{Digest, ImageId};
pub use error::{ImageError, Result};
pub use reference::Reference;
pub use store::{ImageStore, Ingest, SweepReport};

use config::{InspectRootFs, unix_seconds};
use digest::is_hex64;
use store::IndexEntry;

/// Bounds on what one layer or archive may make us do. The defaults suit real images
/// (the largest public layers are a few GiB with some 10^5 entries); tests set them small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes of one layer (the tar stream), and bytes written from it.
    pub layer_bytes: u64,
    /// Tar entries in one layer.
    pub layer_entries: u64,
    /// Bytes of an entry's path or link target.
    pub path_bytes: usize,
    /// Bytes of one entry's extension headers (PAX, GNU long name/link), which the tar parser
    /// holds in memory.
    pub pax_header_bytes: u64,
    /// Bytes of a JSON document (manifest, config, index.json, manifest.json).
    pub json_bytes: u64,
    /// Members of an archive given to `load`.
    pub archive_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            layer_bytes: 32 << 30,
            layer_entries: 1_000_000,
            path_bytes: 4096,
            pax_header_bytes: 1 << 20,
            json_bytes: 8 << 20,
            archive_entries: 100_000,
        }
    }
}

/// An image as the store holds it.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: ImageId,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
    /// Full names (`docker.io/library/busybox:latest`); empty for a dangling image.
    pub names: Vec<String>,
}

impl Image {
    /// The manifest's descriptor as index.json holds it (without names).
    pub(crate) fn descriptor(&self, entries: &[IndexEntry]) -> Option<Descriptor> {
        entries
            .iter()
            .find(|e| e.digest().ok().as_ref() == Some(&self.manifest_digest))
            .map(|e| {
                let mut d = e.manifest.clone();
                d.set_annotations(None);
                d
            })
    }

    /// Bytes of the layers as stored.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum()
    }

    /// Names in docker's familiar form (`busybox:latest`).
    pub fn repo_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.names.iter().map(|n| reference::familiar(n)).collect();
        tags.sort();
        tags
    }
}

/// One step of a removal, shaped like docker's `DELETE /images/{name}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveAction {
    Untagged(String),
    Deleted(String),
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Ids of the dangling images removed.
    pub images_deleted: Vec<String>,
    pub blobs_deleted: usize,
    pub snapshots_deleted: usize,
    pub bytes_reclaimed: u64,
}

/// What `load` brought in: one image, with the full names it now has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedImage {
    pub id: ImageId,
    pub names: Vec<String>,
}

/// How a name or id given by a user matched.
enum Target {
    Name(String),
    Id(ImageId),
}

impl ImageStore {
    /// Find an image by name (`busybox`, `busybox:1`, `host:5000/app@sha256:…`), by id
    /// (`sha256:<hex>` or the hex), or by a unique id prefix, in docker's order: full id,
    /// name, id prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image> {
        let entries = self.read_index()?;
        let images = self.images(&entries)?;
        let (i, _) = find(&images, name_or_id)?;
        Ok(images[i].clone())
    }

    /// Every image, one line per image id, newest first (`docker images`).
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let entries = self.read_index()?;
        let images = self.images(&entries)?;
        let mut by_id: BTreeMap<ImageId, ImageSummary> = BTreeMap::new();
        for image in &images {
            let line = by_id
                .entry(image.id.clone())
                .or_insert_with(|| ImageSummary {
                    id: image.id.to_string(),
                    parent_id: String::new(),
                    repo_tags: Vec::new(),
                    repo_digests: Vec::new(),
                    created: unix_seconds(image.config.created.as_deref()),
                    size: image.size(),
                    shared_size: -1,
                    labels: image
                        .config
                        .config
                        .as_ref()
                        .and_then(|c| c.labels.clone())
                        .unwrap_or_default(),
                    containers: -1,
                });
            line.repo_tags.extend(image.repo_tags());
            line.repo_tags.sort();
            line.repo_tags.dedup();
        }
        let mut lines: Vec<ImageSummary> = by_id.into_values().collect();
        lines.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(lines)
    }

    /// `docker image inspect`.
    pub fn inspect(&self, name_or_id: &str) -> Result<ImageInspect> {
        let entries = self.read_index()?;
        let images = self.images(&entries)?;
        let (i, _) = find(&images, name_or_id)?;
        let image = &images[i];
        let mut repo_tags: Vec<String> = images
            .iter()
            .filter(|other| other.id == image.id)
            .flat_map(|other| other.repo_tags())
            .collect();
        repo_tags.sort();
        repo_tags.dedup();
        let c = &image.config;
        Ok(ImageInspect {
            id: image.id.to_string(),
            repo_tags,
            repo_digests: Vec::new(),
            parent: String::new(),
            comment: c.comment.clone().unwrap_or_default(),
            created: c.created.clone().unwrap_or_default(),
            docker_version: c.docker_version.clone().unwrap_or_default(),
            author: c.author.clone().unwrap_or_default(),
            config: c.config.clone().unwrap_or_default(),
            architecture: c.architecture.clone(),
            variant: c.variant.clone(),
            os: c.os.clone(),
            os_version: c.os_version.clone(),
            size: image.size(),
            root_fs: InspectRootFs {
                kind: c.rootfs.kind.clone(),
                layers: c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect(),
            },
            manifest_digest: image.manifest_digest.to_string(),
        })
    }

    /// Give the image `source` (name or id) the name `target` (`docker tag`). A name that
    /// pointed at another image moves.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let target = reference::Reference::parse(target)?;
        if target.tag.is_none() || target.digest.is_some() {
            return Err(ImageError::InvalidReference {
                reference: target.to_string(),
                reason: "a tag name cannot contain a digest".into(),
            });
        }
        // Content lock: a concurrent remove cannot delete the image between lookup and tag.
        let _content = self.lock_content()?;
        let entries = self.read_index()?;
        let images = self.images(&entries)?;
        let (i, _) = find(&images, source)?;
        let descriptor = images[i]
            .descriptor(&entries)
            .ok_or_else(|| ImageError::NotFound(source.to_string()))?;
        self.add_to_index(&[(descriptor, vec![target.to_string()])])
    }

    /// `docker rmi`: untag a name, and delete the image's content (manifest, config, layers,
    /// snapshots not shared with another image) once no name is left. By id, every name goes,
    /// which needs `force` when there are several. An image `in_use` reports is never
    /// deleted: without `force` the removal is refused; with it the names go and the image
    /// stays, dangling, until the container is gone and a prune collects it.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        in_use: &dyn Fn(&ImageId) -> bool,
    ) -> Result<Vec<RemoveAction>> {
        let _gc = self.lock_gc()?;
        let _index = self.lock_index()?;
        let mut entries = self.read_index()?;
        let images = self.images(&entries)?;
        let (i, target) = find(&images, name_or_id)?;
        let id = images[i].id.clone();
        let manifests_of_id: Vec<Digest> = images
            .iter()
            .filter(|im| im.id == id)
            .map(|im| im.manifest_digest.clone())
            .collect();
        let of_id = |e: &IndexEntry| {
            e.digest()
                .map(|d| manifests_of_id.contains(&d))
                .unwrap_or(false)
        };
        let names: Vec<String> = entries
            .iter()
            .filter(|e| of_id(e))
            .filter_map(|e| e.name.clone())
            .collect();
        let used = in_use(&id);
        let shown_name = match &target {
            Target::Name(name) => reference::familiar(name),
            Target::Id(id) => id.to_string(),
        };

        let mut actions = Vec::new();
        let untag: Vec<String> = match &target {
            Target::Name(name) => vec![name.clone()],
            Target::Id(_) => {
                if names.len() > 1 && !force {
                    return Err(ImageError::MultipleNames {
                        id: id.short().to_string(),
                        names: names
                            .iter()
                            .map(|n| reference::familiar(n))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                names.clone()
            }
        };
        let last_names = names.iter().all(|n| untag.contains(n));
        if used && last_names && !force {
            return Err(ImageError::InUse {
                name: shown_name,
                id: id.short().to_string(),
            });
        }
        for name in &untag {
            actions.push(RemoveAction::Untagged(reference::familiar(name)));
        }
        let keep_dangling = used && last_names;
        let mut dangling: Option<IndexEntry> = None;
        entries.retain(|e| {
            let goes = match &e.name {
                Some(name) => untag.contains(name),
                // A dangling entry of this image goes once no name is left.
                None => of_id(e) && last_names,
            };
            if goes && keep_dangling && dangling.is_none() && of_id(e) {
                dangling = Some(IndexEntry {
                    name: None,
                    manifest: e.manifest.clone(),
                });
            }
            !goes
        });
        if let Some(d) = dangling {
            entries.push(d);
        }
        if last_names && !keep_dangling {
            actions.push(RemoveAction::Deleted(id.to_string()));
        }
        self.write_index(&entries)?;
        if last_names && !keep_dangling {
            self.sweep(&entries)?;
        }
        Ok(actions)
    }

    /// Remove dangling images no container uses, then every blob and snapshot no image
    /// reaches, and temp files left by interrupted writes.
    pub fn prune(&self, in_use: &dyn Fn(&ImageId) -> bool) -> Result<PruneReport> {
        let _gc = self.lock_gc()?;
        let _index = self.lock_index()?;
        let mut entries = self.read_index()?;
        let images = self.images(&entries)?;
        let mut report = PruneReport::default();
        let mut gone: Vec<Digest> = Vec::new();
        for image in &images {
            if image.names.is_empty() && !in_use(&image.id) {
                gone.push(image.manifest_digest.clone());
                if !report.images_deleted.contains(&image.id.to_string()) {
                    report.images_deleted.push(image.id.to_string());
                }
            }
        }
        if !gone.is_empty() {
            entries.retain(|e| e.name.is_some() || !e.digest().is_ok_and(|d| gone.contains(&d)));
            self.write_index(&entries)?;
        }
        let swept = self.sweep(&entries)?;
        report.blobs_deleted = swept.blobs_deleted.len();
        report.snapshots_deleted = swept.snapshots_deleted.len();
        report.bytes_reclaimed = swept.bytes_reclaimed;
        Ok(report)
    }
}

/// docker's lookup order: a full id, then a name, then a unique id prefix.
fn find(images: &[Image], name_or_id: &str) -> Result<(usize, Target)> {
    let hex = name_or_id
        .strip_prefix(Digest::PREFIX)
        .unwrap_or(name_or_id);
    if is_hex64(hex) {
        // Prefer a named manifest of the id, so callers see names.
        let mut matches: Vec<usize> = (0..images.len())
            .filter(|&i| images[i].id.0.hex() == hex)
            .collect();
        matches.sort_by_key(|&i| images[i].names.is_empty());
        if let Some(&i) = matches.first() {
            return Ok((i, Target::Id(images[i].id.clone())));
        }
    }
    if let Ok(reference) = Reference::parse(name_or_id) {
        if let Some(digest) = &reference.digest {
            let repository = reference.repository();
            if let Some(i) = images.iter().position(|im| {
                im.manifest_digest == *digest
                    && im
                        .names
                        .iter()
                        .any(|n| Reference::parse(n).is_ok_and(|r| r.repository() == repository))
            }) {
                return Ok((i, Target::Id(images[i].id.clone())));
            }
        } else {
            let full = reference.to_string();
            if let Some(i) = images.iter().position(|im| im.names.contains(&full)) {
                return Ok((i, Target::Name(full)));
            }
        }
    }
    let is_prefix = !hex.is_empty()
        && hex.len() < 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_prefix {
        let mut ids: Vec<&ImageId> = images
            .iter()
            .filter(|im| im.id.0.hex().starts_with(hex))
            .map(|im| &im.id)
            .collect();
        ids.sort();
        ids.dedup();
        match ids.len() {
            0 => {}
            1 => {
                let mut matches: Vec<usize> = (0..images.len())
                    .filter(|&i| images[i].id == *ids[0])
                    .collect();
                matches.sort_by_key(|&i| images[i].names.is_empty());
                return Ok((matches[0], Target::Id(ids[0].clone())));
            }
            count => {
                return Err(ImageError::Ambiguous {
                    prefix: name_or_id.to_string(),
                    count,
                });
            }
        }
    }
    Err(ImageError::NotFound(name_or_id.to_string()))
}
