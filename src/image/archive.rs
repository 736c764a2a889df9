//! Image archives in and out.
//!
//! `load` takes any of:
//!
//! ```text
//!  docker save, before 25     manifest.json  <config hex>.json  <layer id>/layer.tar (+ symlinks
//!                             to share a layer between images)  repositories
//!  docker save, 25 and later  manifest.json  index.json  oci-layout  blobs/sha256/<hex>
//!  OCI image layout           index.json  oci-layout  blobs/sha256/<hex>   (skopeo, buildah, …)
//! ```
//!
//! plain, gzip or zstd (by magic). The archive is read once, front to back: every member is
//! streamed into a temp blob while hashed (members come in any order: docker writes
//! manifest.json last), then the manifests are read and every blob an image needs is checked
//! against what promised it (descriptor digest and size, the file name `blobs/sha256/<hex>` or
//! `<hex>.json`, and, for docker's layers, the config's diff_ids), and only then committed.
//!
//! `save` writes what docker 25 writes: an OCI layout (index.json with
//! `io.containerd.image.name` and a tag-only `org.opencontainers.image.ref.name`) that also
//! carries docker's manifest.json, so `docker load` and `swarm image load` both take it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};

use super::compression::{Compression, Decoder};
use super::config::ImageConfig;
use super::digest::{Digest, HashingReader, ImageId, from_io, is_hex64};
use super::error::{Context, ImageError, Result};
use super::reference::{self, Reference};
use super::store::{
    ImageStore, Ingest, MEDIA_TYPE_OCI_CONFIG, OCI_LAYOUT_CONTENT, REF_NAME_ANNOTATION,
    canonical_json, is_image_manifest, is_index, read_capped,
};
use super::unpack::walk;
use super::{LoadedImage, find};

/// containerd's and docker 25's annotation for the full image name.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
const MANIFEST_JSON: &str = "manifest.json";
const INDEX_JSON: &str = "index.json";

/// One entry of docker's manifest.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// A member of the archive being loaded.
#[derive(Debug, Clone)]
enum Member {
    /// A regular file, staged in the ingest under this index.
    File(usize),
    /// A symlink or hardlink to another member (path inside the archive).
    Link(String),
}

/// The archive's members by normalised path.
struct Members {
    by_path: HashMap<String, Member>,
}

impl Members {
    /// The staged file at `path`, following links inside the archive (bounded).
    fn file(&self, path: &str) -> Result<usize> {
        let mut path = normalise_member(path)?;
        for _ in 0..16 {
            match self.by_path.get(&path) {
                Some(Member::File(i)) => return Ok(*i),
                Some(Member::Link(target)) => path = target.clone(),
                None => break,
            }
        }
        Err(ImageError::InvalidArchive(format!(
            "{path} is missing from the archive"
        )))
    }

    fn has(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }
}

/// A member path as a clean relative path; `..` that would climb out of the archive refused.
fn normalise_member(path: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(ImageError::InvalidArchive(format!(
                        "member {path:?} points outside the archive"
                    )));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The host's platform in OCI terms.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    (arch, "linux")
}

fn media_type_str(m: &MediaType) -> String {
    m.to_string()
}

impl ImageStore {
    /// Load a `docker save` archive (any docker version) or an OCI image-layout archive,
    /// plain or compressed. Everything is verified before anything is committed; an error
    /// (a digest or size mismatch, a reader failing half way) leaves the store as it was.
    pub fn load(&self, reader: impl Read) -> Result<Vec<LoadedImage>> {
        let mut ingest = self.ingest()?;
        let members = read_members(&mut ingest, reader)?;
        let plan = if members.has(INDEX_JSON) {
            let tags = match members.has(MANIFEST_JSON) {
                true => docker_tags(&ingest, &members)?,
                false => HashMap::new(),
            };
            plan_oci(&mut ingest, &members, &tags)?
        } else if members.has(MANIFEST_JSON) {
            plan_docker(&mut ingest, &members)?
        } else {
            return Err(ImageError::InvalidArchive(
                "neither manifest.json (docker save) nor index.json (OCI layout) found".into(),
            ));
        };
        let commit: Vec<(Descriptor, Vec<String>)> = plan
            .iter()
            .map(|p| (p.manifest.clone(), p.names.clone()))
            .collect();
        ingest.commit(&commit)?;
        Ok(plan
            .into_iter()
            .map(|p| LoadedImage {
                id: p.id,
                names: p.names,
            })
            .collect())
    }

    /// Write the images `names` (names or ids) as one archive that both `docker load` and
    /// `load` accept. Each blob is written once however many images share it.
    pub fn save<S: AsRef<str>>(&self, names: &[S], writer: impl Write) -> Result<()> {
        // Read under the content lock: a concurrent remove cannot delete what we stream.
        let _content = self.lock_content()?;
        let entries = self.read_index()?;
        let images = self.images(&entries)?;
        // manifest digest → (image index, full names to record)
        let mut chosen: BTreeMap<Digest, (usize, Vec<String>)> = BTreeMap::new();
        let mut order: Vec<Digest> = Vec::new();
        for name in names {
            let (i, target) = find(&images, name.as_ref())?;
            let digest = images[i].manifest_digest.clone();
            if !chosen.contains_key(&digest) {
                order.push(digest.clone());
            }
            let slot = chosen.entry(digest).or_insert((i, Vec::new()));
            if let super::Target::Name(full) = target
                && !slot.1.contains(&full)
            {
                slot.1.push(full);
            }
        }

        let mut builder = tar::Builder::new(writer);
        builder.mode(tar::HeaderMode::Deterministic);
        append_dir(&mut builder, "blobs/")?;
        append_dir(&mut builder, "blobs/sha256/")?;
        append_bytes(&mut builder, "oci-layout", OCI_LAYOUT_CONTENT)?;

        let mut written: BTreeSet<Digest> = BTreeSet::new();
        let mut index_manifests: Vec<Descriptor> = Vec::new();
        let mut docker_manifest: Vec<DockerManifestEntry> = Vec::new();
        for digest in &order {
            let (i, full_names) = &chosen[digest];
            let image = &images[*i];
            let descriptor = image
                .descriptor(&entries)
                .ok_or_else(|| ImageError::NotFound(image.id.to_string()))?;
            let config = Digest::from_oci(image.manifest.config().digest())?;
            let layers: Vec<Digest> = image
                .manifest
                .layers()
                .iter()
                .map(|l| Digest::from_oci(l.digest()))
                .collect::<Result<_>>()?;
            for blob in std::iter::once(digest)
                .chain(std::iter::once(&config))
                .chain(&layers)
            {
                if written.insert(blob.clone()) {
                    self.append_blob(&mut builder, blob)?;
                }
            }
            if full_names.is_empty() {
                index_manifests.push(descriptor.clone());
            }
            for full in full_names {
                let mut d = descriptor.clone();
                let mut annotations = HashMap::new();
                annotations.insert(CONTAINERD_NAME_ANNOTATION.to_string(), full.clone());
                if let Ok(r) = Reference::parse(full)
                    && let Some(tag) = r.tag
                {
                    annotations.insert(REF_NAME_ANNOTATION.to_string(), tag);
                }
                d.set_annotations(Some(annotations));
                index_manifests.push(d);
            }
            docker_manifest.push(DockerManifestEntry {
                config: format!("blobs/sha256/{}", config.hex()),
                repo_tags: Some(full_names.iter().map(|n| reference::familiar(n)).collect()),
                layers: layers
                    .iter()
                    .map(|l| format!("blobs/sha256/{}", l.hex()))
                    .collect(),
            });
        }
        let mut index = ImageIndex::default();
        index.set_schema_version(2);
        index.set_media_type(Some(MediaType::ImageIndex));
        index.set_manifests(index_manifests);
        append_bytes(&mut builder, INDEX_JSON, &canonical_json(&index)?)?;
        append_bytes(
            &mut builder,
            MANIFEST_JSON,
            &canonical_json(&docker_manifest)?,
        )?;
        let mut writer = builder
            .into_inner()
            .context(|| "finish the archive".into())?;
        writer.flush().context(|| "finish the archive".into())
    }

    fn append_blob<W: Write>(&self, builder: &mut tar::Builder<W>, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        let file = File::open(&path).context(|| format!("open {}", path.display()))?;
        let size = file
            .metadata()
            .context(|| format!("stat {}", path.display()))?
            .len();
        let mut header = file_header(size);
        builder
            .append_data(&mut header, format!("blobs/sha256/{}", digest.hex()), file)
            .context(|| format!("write blob {digest} to the archive"))
    }
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn append_bytes<W: Write>(builder: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut header = file_header(bytes.len() as u64);
    builder
        .append_data(&mut header, path, bytes)
        .context(|| format!("write {path} to the archive"))
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    builder
        .append_data(&mut header, path, io::empty())
        .context(|| format!("write {path} to the archive"))
}

/// Stream every member of the archive into the ingest's temp files.
fn read_members(ingest: &mut Ingest<'_>, reader: impl Read) -> Result<Members> {
    let limits = ingest.store().limits;
    let decoder =
        Decoder::new(BufReader::new(reader)).map_err(|e| from_io(|| "read archive".into(), e))?;
    let mut by_path: HashMap<String, Member> = HashMap::new();
    walk(
        decoder,
        &limits,
        u64::MAX,
        limits.archive_entries,
        |entry| {
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalise_member(&raw)?;
            let kind = entry.header().entry_type();
            let link_target = |entry: &tar::Entry<'_, _>| -> Result<String> {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                Ok(target)
            };
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let i = ingest.stage(&mut *entry, None)?;
                    by_path.insert(path, Member::File(i));
                }
                // docker (before 25) shares a layer between images with a relative symlink.
                tar::EntryType::Symlink => {
                    let target = link_target(entry)?;
                    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                    let joined = if target.starts_with('/') {
                        target
                    } else {
                        format!("{parent}/{target}")
                    };
                    by_path.insert(path, Member::Link(normalise_member(&joined)?));
                }
                tar::EntryType::Link => {
                    let target = normalise_member(&link_target(entry)?)?;
                    by_path.insert(path, Member::Link(target));
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    Ok(Members { by_path })
}

/// What one image of the archive becomes.
struct Planned {
    id: ImageId,
    manifest: Descriptor,
    names: Vec<String>,
}

/// Parse a staged JSON member, within the size limit.
fn staged_json<T: serde::de::DeserializeOwned>(
    ingest: &Ingest<'_>,
    index: usize,
    what: &str,
) -> Result<T> {
    let bytes = read_capped(ingest.staged_path(index), ingest.store().limits.json_bytes)?;
    serde_json::from_slice(&bytes).context(|| format!("parse {what}"))
}

fn read_docker_manifest(
    ingest: &Ingest<'_>,
    members: &Members,
) -> Result<Vec<DockerManifestEntry>> {
    let i = members.file(MANIFEST_JSON)?;
    staged_json(ingest, i, MANIFEST_JSON)
}

/// docker 25's manifest.json RepoTags by config digest (to name OCI manifests).
fn docker_tags(ingest: &Ingest<'_>, members: &Members) -> Result<HashMap<Digest, Vec<String>>> {
    let mut tags: HashMap<Digest, Vec<String>> = HashMap::new();
    for entry in read_docker_manifest(ingest, members)? {
        let i = members.file(&entry.config)?;
        let digest = ingest.staged_digest(i).0.clone();
        tags.entry(digest)
            .or_default()
            .extend(entry.repo_tags.unwrap_or_default());
    }
    Ok(tags)
}

/// The digest a member's path promises: `blobs/sha256/<hex>` or `<hex>.json`.
fn promised_digest(path: &str) -> Option<Digest> {
    let path = normalise_member(path).ok()?;
    let hex = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json"))?;
    if is_hex64(hex) {
        format!("{}{hex}", Digest::PREFIX).parse().ok()
    } else {
        None
    }
}

/// The staged blob an OCI descriptor names, checked: size first, then digest.
fn verified_blob(
    ingest: &mut Ingest<'_>,
    members: &Members,
    descriptor: &Descriptor,
) -> Result<usize> {
    let digest = Digest::from_oci(descriptor.digest())?;
    let i = members
        .file(&format!("blobs/sha256/{}", digest.hex()))
        .map_err(|_| {
            ImageError::InvalidArchive(format!("blob {digest} is missing from the archive"))
        })?;
    let (actual, size) = ingest.staged_digest(i);
    if size != descriptor.size() {
        return Err(ImageError::SizeMismatch {
            digest: digest.to_string(),
            expected: descriptor.size(),
            actual: size,
        });
    }
    if *actual != digest {
        return Err(ImageError::DigestMismatch {
            digest: digest.to_string(),
        });
    }
    ingest.keep(i);
    Ok(i)
}

/// Names an OCI descriptor carries: containerd's full name, or a ref.name that is a whole
/// reference (a bare tag such as `latest` names no repository, so it names nothing).
fn descriptor_names(descriptor: &Descriptor) -> Vec<String> {
    let Some(annotations) = descriptor.annotations() else {
        return Vec::new();
    };
    if let Some(full) = annotations.get(CONTAINERD_NAME_ANNOTATION) {
        return vec![full.clone()];
    }
    match annotations.get(REF_NAME_ANNOTATION) {
        Some(name) if name.contains(['/', ':', '@']) => vec![name.clone()],
        _ => Vec::new(),
    }
}

/// Check a manifest (or index) blob really is what its descriptor says (CVE-2021-41190: an
/// index must not pass for a manifest, nor the reverse).
fn check_media_type(bytes: &[u8], descriptor: &Descriptor) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).context(|| format!("parse {}", descriptor.digest()))?;
    let embedded = value.get("mediaType").and_then(|m| m.as_str());
    let expected = media_type_str(descriptor.media_type());
    if let Some(embedded) = embedded
        && embedded != expected
    {
        return Err(ImageError::invalid_image(
            format!("blob {}", descriptor.digest()),
            format!("its media type {embedded} is not the descriptor's {expected}"),
        ));
    }
    let looks_like_index = value.get("manifests").is_some();
    if looks_like_index != is_index(descriptor.media_type()) {
        return Err(ImageError::invalid_image(
            format!("blob {}", descriptor.digest()),
            format!("its content does not match the media type {expected}"),
        ));
    }
    Ok(())
}

/// Check the config a manifest points at and every layer, and return the image id.
fn verify_image(
    ingest: &mut Ingest<'_>,
    members: &Members,
    manifest: &ImageManifest,
) -> Result<ImageId> {
    let config_index = verified_blob(ingest, members, manifest.config())?;
    let config: ImageConfig = staged_json(ingest, config_index, "image config")?;
    if config.rootfs.diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::invalid_image(
            format!("{}", manifest.config().digest()),
            format!(
                "{} layers in the manifest but {} diff_ids in the config",
                manifest.layers().len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    for layer in manifest.layers() {
        verified_blob(ingest, members, layer)?;
    }
    Ok(ImageId(Digest::from_oci(manifest.config().digest())?))
}

/// An OCI layout (docker 25's archives are one too): follow index.json to the manifests.
fn plan_oci(
    ingest: &mut Ingest<'_>,
    members: &Members,
    docker_tags: &HashMap<Digest, Vec<String>>,
) -> Result<Vec<Planned>> {
    let i = members.file(INDEX_JSON)?;
    let index: ImageIndex = staged_json(ingest, i, INDEX_JSON)?;
    let (arch, os) = host_platform();
    let mut plans: Vec<Planned> = Vec::new();
    for top in index.manifests() {
        let mut descriptor = top.clone();
        // Nested indexes (multi-platform images): take the host's platform.
        for _ in 0..4 {
            if !is_index(descriptor.media_type()) {
                break;
            }
            let bi = verified_blob(ingest, members, &descriptor)?;
            let bytes = read_capped(ingest.staged_path(bi), ingest.store().limits.json_bytes)?;
            check_media_type(&bytes, &descriptor)?;
            let nested: ImageIndex = serde_json::from_slice(&bytes)
                .context(|| format!("parse index {}", descriptor.digest()))?;
            let candidates: Vec<&Descriptor> = nested
                .manifests()
                .iter()
                .filter(|d| is_image_manifest(d.media_type()) || is_index(d.media_type()))
                .collect();
            let matching = candidates.iter().find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    p.architecture().to_string() == arch && p.os().to_string() == os
                })
            });
            descriptor = match (matching, candidates.as_slice()) {
                (Some(d), _) => (*d).clone(),
                (None, [only]) => (*only).clone(),
                _ => {
                    return Err(ImageError::Unsupported(format!(
                        "index {} has no manifest for {os}/{arch}",
                        descriptor.digest()
                    )));
                }
            };
        }
        if !is_image_manifest(descriptor.media_type()) {
            return Err(ImageError::Unsupported(format!(
                "{} is a {}, not an image manifest",
                descriptor.digest(),
                descriptor.media_type()
            )));
        }
        let mi = verified_blob(ingest, members, &descriptor)?;
        let bytes = read_capped(ingest.staged_path(mi), ingest.store().limits.json_bytes)?;
        check_media_type(&bytes, &descriptor)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .context(|| format!("parse manifest {}", descriptor.digest()))?;
        let id = verify_image(ingest, members, &manifest)?;
        let mut names = descriptor_names(top);
        names.extend(docker_tags.get(&id.0).cloned().unwrap_or_default());
        let mut names = super::store::normalize_names(&names)?;
        names.sort();
        names.dedup();
        let mut stored = descriptor.clone();
        stored.set_annotations(None);
        stored.set_platform(None);
        match plans
            .iter_mut()
            .find(|p| p.manifest.digest() == stored.digest())
        {
            Some(plan) => {
                plan.names.extend(names);
                plan.names.sort();
                plan.names.dedup();
            }
            None => plans.push(Planned {
                id,
                manifest: stored,
                names,
            }),
        }
    }
    if plans.is_empty() {
        return Err(ImageError::InvalidArchive(
            "index.json lists no image".into(),
        ));
    }
    Ok(plans)
}

/// A docker save archive without index.json (docker before 25): configs and layer tars named
/// by manifest.json. There is no manifest blob, so we write an OCI one (deterministic: the
/// same archive always gives the same manifest digest).
fn plan_docker(ingest: &mut Ingest<'_>, members: &Members) -> Result<Vec<Planned>> {
    let entries = read_docker_manifest(ingest, members)?;
    if entries.is_empty() {
        return Err(ImageError::InvalidArchive(
            "manifest.json lists no image".into(),
        ));
    }
    let mut plans = Vec::new();
    for entry in entries {
        let ci = members.file(&entry.config)?;
        let (config_digest, config_size) = {
            let (d, s) = ingest.staged_digest(ci);
            (d.clone(), s)
        };
        if let Some(promised) = promised_digest(&entry.config)
            && promised != config_digest
        {
            return Err(ImageError::DigestMismatch {
                digest: promised.to_string(),
            });
        }
        let config: ImageConfig = staged_json(ingest, ci, &entry.config)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(ImageError::invalid_image(
                config_digest.to_string(),
                format!(
                    "{} layers in manifest.json but {} diff_ids in the config",
                    entry.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        ingest.keep(ci);
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let li = members.file(path)?;
            let (digest, size) = {
                let (d, s) = ingest.staged_digest(li);
                (d.clone(), s)
            };
            if let Some(promised) = promised_digest(path)
                && promised != digest
            {
                return Err(ImageError::DigestMismatch {
                    digest: promised.to_string(),
                });
            }
            let compression = layer_compression(ingest, li)?;
            // The only promise about a legacy layer is its diff_id: check it now, not at unpack.
            let uncompressed = match compression {
                Compression::None => digest.clone(),
                _ => uncompressed_digest(ingest, li)?,
            };
            if uncompressed != *diff_id {
                return Err(ImageError::DigestMismatch {
                    digest: diff_id.to_string(),
                });
            }
            ingest.keep(li);
            layers.push(Descriptor::new(
                MediaType::from(compression.layer_media_type()),
                size,
                digest.to_oci(),
            ));
        }
        let manifest = oci_manifest(&config_digest, config_size, layers)?;
        let bytes = canonical_json(&manifest)?;
        let (manifest_digest, manifest_size) = ingest.put_blob(&bytes[..], None)?;
        let names = super::store::normalize_names(&entry.repo_tags.unwrap_or_default())?;
        plans.push(Planned {
            id: ImageId(config_digest),
            manifest: Descriptor::new(
                MediaType::ImageManifest,
                manifest_size,
                manifest_digest.to_oci(),
            ),
            names,
        });
    }
    Ok(plans)
}

/// An OCI image manifest for a config and layers.
pub(crate) fn oci_manifest(
    config: &Digest,
    config_size: u64,
    layers: Vec<Descriptor>,
) -> Result<ImageManifest> {
    let mut manifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::from(MEDIA_TYPE_OCI_CONFIG),
            config_size,
            config.to_oci(),
        ))
        .layers(layers)
        .build()
        .map_err(|e| ImageError::invalid_image("manifest", e.to_string()))?;
    manifest.set_annotations(None);
    Ok(manifest)
}

fn layer_compression(ingest: &Ingest<'_>, index: usize) -> Result<Compression> {
    let path = ingest.staged_path(index);
    let file = File::open(path).context(|| format!("open {}", path.display()))?;
    Compression::detect(&mut BufReader::new(file)).context(|| format!("read {}", path.display()))
}

/// The sha256 of a staged layer once decompressed, bounded by the layer size limit.
fn uncompressed_digest(ingest: &Ingest<'_>, index: usize) -> Result<Digest> {
    let path = ingest.staged_path(index);
    let limit = ingest.store().limits.layer_bytes;
    let file = File::open(path).context(|| format!("open {}", path.display()))?;
    let decoder =
        Decoder::new(BufReader::new(file)).context(|| format!("read {}", path.display()))?;
    let mut hashing = HashingReader::new(decoder.take(limit + 1));
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| from_io(|| format!("decompress {}", path.display()), e))?;
    if hashing.count() > limit {
        return Err(ImageError::limit(format!(
            "uncompressed size (more than {limit} bytes)"
        )));
    }
    Ok(hashing.into_parts().1)
}
