//! Fixtures for the image tests, all built in memory with the `tar` crate: layer tars
//! (including hostile ones, with raw header names the tar crate's own builder would refuse),
//! compressed variants, images put straight into a store, OCI-layout and docker-save
//! archives, a sentinel directory whose every byte and inode field is recorded, and a
//! fingerprint of a store's blobs and index.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use swarm::image::{Digest, ImageId, ImageStore};
use tar::{EntryType, Header};

/// A scratch directory under TMPDIR (the test runner's per-run dir in CI).
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("swarm-image-{name}-"))
        .tempdir()
        .expect("tempdir")
}

pub const MTIME: u64 = 1_600_000_000;

/// A tar stream built entry by entry.
pub struct TarBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// A header with `path` written raw into the name field (≤ 100 bytes): `..`, absolute
    /// paths, whatever a hostile archive carries.
    pub fn header(kind: EntryType, path: &str, size: u64, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        let name = &mut h.as_old_mut().name;
        assert!(path.len() <= name.len(), "raw path too long: {path}");
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h
    }

    fn link_header(kind: EntryType, path: &str, target: &str) -> Header {
        let mut h = Self::header(kind, path, 0, 0o777);
        let link = &mut h.as_old_mut().linkname;
        link.fill(0);
        link[..target.len()].copy_from_slice(target.as_bytes());
        h
    }

    pub fn raw(&mut self, mut header: Header, data: &[u8]) -> &mut Self {
        header.set_cksum();
        self.builder.append(&header, data).expect("append");
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.file_with(path, data, 0o644, 0, 0)
    }

    pub fn file_with(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = Self::header(EntryType::Regular, path, data.len() as u64, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, data)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.raw(Self::header(EntryType::Directory, path, 0, mode), &[])
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(Self::link_header(EntryType::Symlink, path, target), &[])
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(Self::link_header(EntryType::Link, path, target), &[])
    }

    pub fn node(
        &mut self,
        path: &str,
        kind: EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = Self::header(kind, path, 0, mode);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, &[])
    }

    /// A PAX extended header ('x') applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // "<len> <key>=<value>\n", where len counts itself.
            let body = key.len() + value.len() + 3;
            let mut len = body + body.to_string().len();
            if len.to_string().len() != body.to_string().len() {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let h = Self::header(EntryType::XHeader, "PaxHeaders/x", data.len() as u64, 0o644);
        self.raw(h, &data)
    }

    /// An entry with a path of any length (GNU long name when over 100 bytes).
    pub fn long_file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        self.builder
            .append_data(&mut h, path, data)
            .expect("append long");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().expect("finish tar")
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 1).unwrap()
}

/// One layer of a test image: the blob as stored and its uncompressed tar.
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub diff_id: Digest,
}

impl Layer {
    pub fn plain(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: Digest::of(&tar),
            blob: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar",
        }
    }

    pub fn gzip(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: Digest::of(&tar),
            blob: gzip(&tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }

    pub fn zstd(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: Digest::of(&tar),
            blob: zstd(&tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The config, manifest and their bytes for `layers`.
pub struct BuiltImage {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub layers: Vec<Layer>,
}

impl BuiltImage {
    pub fn new(layers: Vec<Layer>, cmd: &[&str]) -> BuiltImage {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        let config = serde_json::json!({
            "architecture": swarm::image::archive::host_platform().0,
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "Labels": {"test": "yes"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let layer_descriptors: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": l.media_type,
                    "digest": Digest::of(&l.blob).to_string(),
                    "size": l.blob.len(),
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": Digest::of(&config).to_string(),
                "size": config.len(),
            },
            "layers": layer_descriptors,
        });
        BuiltImage {
            manifest: serde_json::to_vec(&manifest).unwrap(),
            config,
            layers,
        }
    }

    pub fn id(&self) -> ImageId {
        ImageId(Digest::of(&self.config))
    }

    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    pub fn manifest_descriptor(&self) -> Descriptor {
        Descriptor::new(
            MediaType::ImageManifest,
            self.manifest.len() as u64,
            self.manifest_digest().to_oci(),
        )
    }

    /// Put the image straight into `store` through the public ingest API.
    pub fn store(&self, store: &ImageStore, names: &[&str]) -> ImageId {
        let mut ingest = store.ingest().unwrap();
        for layer in &self.layers {
            ingest.put_blob(&layer.blob[..], None).unwrap();
        }
        ingest.put_blob(&self.config[..], None).unwrap();
        ingest.put_blob(&self.manifest[..], None).unwrap();
        let names = names
            .iter()
            .map(|n| swarm::image::reference::normalize(n).unwrap())
            .collect();
        ingest
            .commit(&[(self.manifest_descriptor(), names)])
            .unwrap();
        self.id()
    }

    /// Every blob of the image by digest.
    pub fn blobs(&self) -> Vec<(Digest, Vec<u8>)> {
        let mut out = vec![
            (Digest::of(&self.manifest), self.manifest.clone()),
            (Digest::of(&self.config), self.config.clone()),
        ];
        for l in &self.layers {
            out.push((Digest::of(&l.blob), l.blob.clone()));
        }
        out
    }
}

/// An OCI image-layout archive (what skopeo or buildah write): index.json naming each
/// manifest with `org.opencontainers.image.ref.name`.
pub fn oci_archive(images: &[(&BuiltImage, Option<&str>)]) -> Vec<u8> {
    let mut tar = TarBuilder::new();
    tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut manifests = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (image, name) in images {
        for (digest, bytes) in image.blobs() {
            if seen.insert(digest.clone()) {
                tar.file(&format!("blobs/sha256/{}", digest.hex()), &bytes);
            }
        }
        let mut d = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest_digest().to_string(),
            "size": image.manifest.len(),
        });
        if let Some(name) = name {
            d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        }
        manifests.push(d);
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    tar.file("index.json", &serde_json::to_vec(&index).unwrap());
    tar.finish()
}

/// Blobs and index of a store, to prove an operation changed nothing.
pub fn store_fingerprint(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        out.insert(
            format!("blob {}", entry.file_name().to_string_lossy()),
            Digest::of(&bytes).to_string(),
        );
    }
    for entry in std::fs::read_dir(root.join("snapshots")).unwrap() {
        let entry = entry.unwrap();
        out.insert(
            format!("snapshot {}", entry.file_name().to_string_lossy()),
            String::new(),
        );
    }
    out.insert(
        "index.json".into(),
        String::from_utf8(std::fs::read(root.join("index.json")).unwrap()).unwrap(),
    );
    out
}

/// A directory outside the store with content, modes and times recorded, so a test can
/// prove that an attack changed nothing in it (not a byte, a mode, an mtime, a link count,
/// an xattr, nor a new entry).
pub struct Sentinel {
    pub dir: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Sentinel {
    pub fn new(parent: &Path) -> Sentinel {
        let dir = parent.join("sentinel");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("keep"), b"keep me").unwrap();
        std::fs::write(dir.join("shadow"), b"root:secret").unwrap();
        std::fs::write(dir.join("sub/file"), b"nested").unwrap();
        for p in [dir.join("keep"), dir.join("shadow"), dir.join("sub/file")] {
            set_mode(&p, 0o640);
        }
        set_mode(&dir.join("sub"), 0o750);
        set_mode(&dir, 0o750);
        // Old mtimes: a change made now would show.
        let old = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
        for p in [
            dir.join("keep"),
            dir.join("shadow"),
            dir.join("sub/file"),
            dir.join("sub"),
            dir.clone(),
        ] {
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &p,
                &old,
                &old,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
        }
        let before = Self::record(&dir);
        Sentinel { dir, before }
    }

    fn record(dir: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                Digest::of(&std::fs::read(&p).unwrap()).to_string()
            } else {
                String::new()
            };
            let xattrs = rustix::fs::llistxattr(&p, &mut [0u8; 1024][..]).unwrap_or(0);
            out.insert(
                p.clone(),
                format!(
                    "mode={:o} uid={} gid={} nlink={} size={} mtime={}.{} ctime={}.{} xattrs={} {}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.nlink(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                    xattrs,
                    content
                ),
            );
            if m.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        out
    }

    /// Fail if anything in the sentinel changed.
    pub fn assert_untouched(&self) {
        let after = Self::record(&self.dir);
        assert_eq!(
            self.before, after,
            "the sentinel directory outside the store changed"
        );
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
