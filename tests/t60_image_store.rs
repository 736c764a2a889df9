//! The image store: import → save → load round trips, archives docker and other tools
//! write (docker save before and since 25, OCI layouts, compressed or not), verification
//! that refuses any corrupted byte or wrong size and leaves the store exactly as it was, an
//! interrupted load, names (tag, list, inspect, lookup by id prefix), removal with an in-use
//! predicate, prune, and the index lock under concurrent writers.

mod image_support;

use std::collections::BTreeSet;
use std::io::Read;

use image_support::*;
use swarm::image::{Digest, ImageError, ImageId, ImageStore, RemoveAction};

fn open_store(tmp: &tempfile::TempDir, name: &str) -> ImageStore {
    ImageStore::open(tmp.path().join(name)).unwrap()
}

/// A small root filesystem tar.
fn rootfs_tar() -> Vec<u8> {
    let mut tar = TarBuilder::new();
    tar.dir("bin/", 0o755)
        .file_with("bin/hello", b"#!/bin/sh\necho hello\n", 0o755, 0, 0)
        .dir("etc/", 0o755)
        .file("etc/motd", b"welcome\n")
        .symlink("bin/sh", "hello");
    tar.finish()
}

/// The members of a tar archive by path.
fn members(archive: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

fn no_temp_files(store: &ImageStore) {
    for dir in ["blobs/sha256", "snapshots"] {
        for e in std::fs::read_dir(store.root().join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with('.'),
                "temp file left behind: {dir}/{name}"
            );
        }
    }
}

// --- t10: round trips --------------------------------------------------------------------

#[test]
fn t10_import_save_load_round_trip_keeps_every_digest() {
    let tmp = scratch("roundtrip");
    let a = open_store(&tmp, "a");
    eprintln!("--- import a rootfs with changes");
    let changes: Vec<String> = [
        r#"CMD ["/bin/hello"]"#,
        "ENV GREETING=hi",
        "WORKDIR /srv",
        "USER 1000",
        "EXPOSE 8080",
        "LABEL app=hello",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let id = a
        .import(&rootfs_tar()[..], Some("hello"), &changes)
        .unwrap();
    let inspect = a.inspect("hello:latest").unwrap();
    assert_eq!(inspect.id, id.to_string());
    assert_eq!(inspect.repo_tags, ["hello:latest"]);
    assert_eq!(
        inspect.config.cmd.as_deref(),
        Some(&["/bin/hello".to_string()][..])
    );
    assert_eq!(
        inspect.config.env.as_deref(),
        Some(&["GREETING=hi".to_string()][..])
    );
    assert_eq!(inspect.config.working_dir.as_deref(), Some("/srv"));
    assert_eq!(inspect.config.user.as_deref(), Some("1000"));
    assert!(
        inspect
            .config
            .exposed_ports
            .as_ref()
            .unwrap()
            .contains_key("8080/tcp")
    );
    assert_eq!(inspect.os, "linux");
    assert_eq!(
        inspect.root_fs.layers,
        [Digest::of(&rootfs_tar()).to_string()],
        "the config's diff_id is the tar's digest"
    );

    eprintln!("--- save, load into a second store");
    let mut archive = Vec::new();
    a.save(&["hello"], &mut archive).unwrap();
    let b = open_store(&tmp, "b");
    let loaded = b.load(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, id);
    assert_eq!(loaded[0].names, ["docker.io/library/hello:latest"]);
    let again = b.inspect("hello").unwrap();
    assert_eq!(
        again, inspect,
        "same id, config, layers and manifest digest"
    );

    eprintln!("--- the same archive again from the second store, byte for byte");
    let mut archive_b = Vec::new();
    b.save(&["docker.io/library/hello:latest"], &mut archive_b)
        .unwrap();
    assert_eq!(archive, archive_b, "save is deterministic and lossless");

    eprintln!("--- the loaded image runs from its own snapshot");
    let lower = b.prepare_rootfs("hello").unwrap();
    assert_eq!(
        std::fs::read(lower[0].join("etc/motd")).unwrap(),
        b"welcome\n"
    );
    no_temp_files(&b);
}

#[test]
fn t11_save_writes_what_docker_load_reads() {
    let tmp = scratch("saveshape");
    let store = open_store(&tmp, "s");
    let image = BuiltImage::new(
        vec![
            Layer::gzip(rootfs_tar()),
            Layer::plain(rootfs_tar()[..1024].to_vec()),
        ],
        &["sh"],
    );
    // Not a valid second layer for unpacking, but save only streams blobs.
    image.store(&store, &["busybox:test", "127.0.0.1:5000/app:1"]);
    let mut archive = Vec::new();
    store
        .save(&["busybox:test", "127.0.0.1:5000/app:1"], &mut archive)
        .unwrap();
    let m = members(&archive);

    assert_eq!(m["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let manifest_json: serde_json::Value = serde_json::from_slice(&m["manifest.json"]).unwrap();
    let entry = &manifest_json[0];
    let config_path = entry["Config"].as_str().unwrap();
    assert_eq!(config_path, format!("blobs/sha256/{}", image.id().0.hex()));
    assert_eq!(m[config_path], image.config);
    let tags: BTreeSet<&str> = entry["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from(["busybox:test", "127.0.0.1:5000/app:1"])
    );
    for (layer, path) in image.layers.iter().zip(entry["Layers"].as_array().unwrap()) {
        assert_eq!(
            m[path.as_str().unwrap()],
            layer.blob,
            "every layer is in the archive"
        );
    }

    let index: serde_json::Value = serde_json::from_slice(&m["index.json"]).unwrap();
    let names: BTreeSet<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["digest"], image.manifest_digest().to_string());
            (
                d["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                d["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            (
                "docker.io/library/busybox:test".to_string(),
                "test".to_string()
            ),
            ("127.0.0.1:5000/app:1".to_string(), "1".to_string()),
        ])
    );
    let manifest_path = format!("blobs/sha256/{}", image.manifest_digest().hex());
    assert_eq!(m[&manifest_path], image.manifest);
}

#[test]
fn t12_compressed_archives_load_the_same() {
    let tmp = scratch("compressed");
    let a = open_store(&tmp, "a");
    let id = a
        .import(&gzip(&rootfs_tar())[..], Some("z:1"), &[])
        .unwrap();
    let mut archive = Vec::new();
    a.save(&["z:1"], &mut archive).unwrap();
    for (name, bytes) in [("gzip", gzip(&archive)), ("zstd", zstd(&archive))] {
        let b = open_store(&tmp, name);
        let loaded = b.load(&bytes[..]).unwrap();
        assert_eq!(loaded[0].id, id, "{name}");
        assert_eq!(b.list().unwrap()[0].repo_tags, ["z:1"]);
    }
}

// --- t20: archives other tools write ------------------------------------------------------

#[test]
fn t20_oci_layout_archive_loads_with_its_names() {
    let tmp = scratch("oci");
    let store = open_store(&tmp, "s");
    let mut second = TarBuilder::new();
    second.file("extra", b"2");
    let app = BuiltImage::new(
        vec![Layer::gzip(rootfs_tar()), Layer::zstd(second.finish())],
        &["app"],
    );
    let bare = BuiltImage::new(vec![Layer::plain(rootfs_tar())], &["bare"]);
    let archive = oci_archive(&[
        (&app, Some("example.com/team/app:1.0")),
        (&bare, Some("latest")),
    ]);
    let mut loaded = store.load(&archive[..]).unwrap();
    loaded.sort_by(|a, b| a.names.cmp(&b.names));
    // A bare tag names no repository: that image is loaded without a name.
    assert_eq!(loaded[0].id, bare.id());
    assert!(loaded[0].names.is_empty());
    assert_eq!(loaded[1].id, app.id());
    assert_eq!(loaded[1].names, ["example.com/team/app:1.0"]);

    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    let lower = store.prepare_rootfs("example.com/team/app:1.0").unwrap();
    assert_eq!(lower.len(), 2);
    assert_eq!(
        std::fs::read(lower[0].join("extra")).unwrap(),
        b"2",
        "topmost first"
    );
    assert!(lower[1].join("etc/motd").exists());
    // The unnamed one is reachable by id.
    assert_eq!(
        store.inspect(&bare.id().to_string()).unwrap().repo_tags,
        Vec::<String>::new()
    );
}

#[test]
fn t20_multi_platform_index_loads_the_host_platform() {
    let tmp = scratch("multiarch");
    let store = open_store(&tmp, "s");
    let host = BuiltImage::new(vec![Layer::gzip(rootfs_tar())], &["host"]);
    let other = BuiltImage::new(vec![Layer::plain(rootfs_tar())], &["other"]);
    let (arch, _) = swarm::image::archive::host_platform();
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": other.manifest_digest().to_string(), "size": other.manifest.len(),
             "platform": {"architecture": "s390x", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": host.manifest_digest().to_string(), "size": host.manifest.len(),
             "platform": {"architecture": arch, "os": "linux"}},
        ]
    });
    let nested = serde_json::to_vec(&nested).unwrap();
    let mut tar = TarBuilder::new();
    for image in [&host, &other] {
        for (digest, bytes) in image.blobs() {
            tar.file(&format!("blobs/sha256/{}", digest.hex()), &bytes);
        }
    }
    tar.file(
        &format!("blobs/sha256/{}", Digest::of(&nested).hex()),
        &nested,
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": Digest::of(&nested).to_string(), "size": nested.len(),
        "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"}}]});
    tar.file("index.json", &serde_json::to_vec(&index).unwrap());
    let loaded = store.load(&tar.finish()[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, host.id());
    assert_eq!(store.inspect("multi:1").unwrap().id, host.id().to_string());
}

/// `docker save` before docker 25: `<config hex>.json`, `<layer id>/layer.tar`, a symlink
/// where two images share a layer, manifest.json last.
#[test]
fn t21_legacy_docker_save_archive_loads() {
    let tmp = scratch("legacy");
    let store = open_store(&tmp, "s");
    let base = rootfs_tar();
    let mut top = TarBuilder::new();
    top.file("etc/motd", b"changed\n");
    let top = top.finish();
    let one = BuiltImage::new(vec![Layer::plain(base.clone())], &["one"]);
    let two = BuiltImage::new(
        vec![Layer::plain(base.clone()), Layer::plain(top.clone())],
        &["two"],
    );

    let mut tar = TarBuilder::new();
    let base_id = "a".repeat(64);
    let base_id2 = "b".repeat(64);
    let top_id = "c".repeat(64);
    tar.dir(&format!("{base_id}/"), 0o755)
        .file(&format!("{base_id}/VERSION"), b"1.0")
        .file(&format!("{base_id}/json"), b"{}")
        .file(&format!("{base_id}/layer.tar"), &base)
        .dir(&format!("{base_id2}/"), 0o755)
        .symlink(
            &format!("{base_id2}/layer.tar"),
            &format!("../{base_id}/layer.tar"),
        )
        .dir(&format!("{top_id}/"), 0o755)
        .file(&format!("{top_id}/layer.tar"), &top)
        .file(&format!("{}.json", one.id().0.hex()), &one.config)
        .file(&format!("{}.json", two.id().0.hex()), &two.config)
        .file("repositories", br#"{"busybox":{"one":"x"}}"#);
    let manifest = serde_json::json!([
        {"Config": format!("{}.json", one.id().0.hex()), "RepoTags": ["busybox:one"],
         "Layers": [format!("{base_id}/layer.tar")]},
        {"Config": format!("{}.json", two.id().0.hex()), "RepoTags": ["busybox:two", "localhost:5000/two"],
         "Layers": [format!("{base_id2}/layer.tar"), format!("{top_id}/layer.tar")]},
    ]);
    tar.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let archive = tar.finish();

    let loaded = store.load(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].id, one.id());
    assert_eq!(loaded[0].names, ["docker.io/library/busybox:one"]);
    assert_eq!(
        loaded[1].names,
        ["docker.io/library/busybox:two", "localhost:5000/two:latest"]
    );
    let lower = store.prepare_rootfs("busybox:two").unwrap();
    assert_eq!(
        std::fs::read(lower[0].join("etc/motd")).unwrap(),
        b"changed\n"
    );
    let lower_one = store.prepare_rootfs("busybox:one").unwrap();
    assert_eq!(lower_one[0], lower[1], "the shared layer is one snapshot");

    // Loading the same archive again changes nothing (same synthesized manifests).
    let before = store_fingerprint(store.root());
    store.load(&archive[..]).unwrap();
    assert_eq!(before, store_fingerprint(store.root()));
}

// --- t30: verification --------------------------------------------------------------------

/// An OCI archive of `image` after `edit` changed one of its members.
fn tampered(image: &BuiltImage, edit: impl Fn(&str, &mut Vec<u8>)) -> Vec<u8> {
    let archive = oci_archive(&[(image, Some("docker.io/library/victim:1"))]);
    let mut tar = TarBuilder::new();
    for (path, mut data) in members(&archive) {
        edit(&path, &mut data);
        tar.file(&path, &data);
    }
    tar.finish()
}

#[test]
fn t30_a_flipped_byte_anywhere_is_a_digest_mismatch_and_changes_nothing() {
    let tmp = scratch("verify");
    let store = open_store(&tmp, "s");
    // Something already there, to see it survive untouched.
    store
        .import(&rootfs_tar()[..], Some("existing:1"), &[])
        .unwrap();
    let before = store_fingerprint(store.root());
    let list_before = store.list().unwrap();

    let image = BuiltImage::new(vec![Layer::gzip(rootfs_tar())], &["victim"]);
    let layer = Digest::of(&image.layers[0].blob);
    let cases = [
        ("layer", layer.clone()),
        ("config", Digest::of(&image.config)),
        ("manifest", image.manifest_digest()),
    ];
    for (what, digest) in cases {
        let target = format!("blobs/sha256/{}", digest.hex());
        let archive = tampered(&image, |path, data| {
            if path == target {
                let mid = data.len() / 2;
                data[mid] ^= 0x01;
            }
        });
        let err = store.load(&archive[..]).expect_err(what);
        assert_eq!(
            err.to_string(),
            format!("digest mismatch for {digest}"),
            "{what}"
        );
        assert_eq!(
            before,
            store_fingerprint(store.root()),
            "{what}: store changed"
        );
        assert_eq!(list_before, store.list().unwrap());
    }

    eprintln!("--- wrong size: one byte more than the descriptor says");
    let target = format!("blobs/sha256/{}", layer.hex());
    let archive = tampered(&image, |path, data| {
        if path == target {
            data.push(0);
        }
    });
    let err = store.load(&archive[..]).expect_err("size");
    assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("size mismatch for {layer}")),
        "{err}"
    );
    assert_eq!(before, store_fingerprint(store.root()));

    eprintln!("--- an index posing as a manifest (CVE-2021-41190)");
    let posing = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []
    }))
    .unwrap();
    let mut tar = TarBuilder::new();
    tar.file(
        &format!("blobs/sha256/{}", Digest::of(&posing).hex()),
        &posing,
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(&posing).to_string(), "size": posing.len()}]});
    tar.file("index.json", &serde_json::to_vec(&index).unwrap());
    let err = store.load(&tar.finish()[..]).expect_err("posing");
    assert!(err.to_string().contains("media type"), "{err}");
    assert_eq!(before, store_fingerprint(store.root()));

    eprintln!("--- a legacy docker archive whose layer does not match the config's diff_id");
    let mut tar = TarBuilder::new();
    let mut bad_layer = rootfs_tar();
    bad_layer[600] ^= 0x01;
    tar.file("l/layer.tar", &bad_layer)
        .file(&format!("{}.json", image.id().0.hex()), &image.config);
    let manifest = serde_json::json!([{"Config": format!("{}.json", image.id().0.hex()),
        "RepoTags": ["victim:2"], "Layers": ["l/layer.tar"]}]);
    tar.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let err = store.load(&tar.finish()[..]).expect_err("legacy layer");
    assert_eq!(
        err.to_string(),
        format!("digest mismatch for {}", image.layers[0].diff_id)
    );
    assert_eq!(before, store_fingerprint(store.root()));
    no_temp_files(&store);
}

/// A reader that fails after `left` bytes, like a connection dropping mid-stream.
struct Interrupted<'a> {
    data: &'a [u8],
    left: usize,
}

impl Read for Interrupted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "peer went away",
            ));
        }
        let n = buf.len().min(self.left).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn t31_a_load_interrupted_half_way_leaves_the_store_consistent() {
    let tmp = scratch("interrupted");
    let store = open_store(&tmp, "s");
    store
        .import(&rootfs_tar()[..], Some("existing:1"), &[])
        .unwrap();
    let before = store_fingerprint(store.root());
    let mut big = TarBuilder::new();
    big.file("big", &vec![7u8; 256 << 10]);
    let image = BuiltImage::new(vec![Layer::plain(big.finish())], &["x"]);
    let archive = oci_archive(&[(&image, Some("docker.io/library/half:1"))]);
    for cut in [100, archive.len() / 2, archive.len() - 600] {
        let err = store
            .load(Interrupted {
                data: &archive,
                left: cut,
            })
            .expect_err("interrupted");
        eprintln!("cut at {cut}: {err}");
        assert!(err.to_string().contains("peer went away"), "{err}");
        assert_eq!(
            before,
            store_fingerprint(store.root()),
            "store changed by a cut at {cut}"
        );
        no_temp_files(&store);
    }
    // And the whole archive still loads afterwards.
    store.load(&archive[..]).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
}

// --- t40: names ---------------------------------------------------------------------------

#[test]
fn t40_tag_list_inspect_and_lookup_like_docker() {
    let tmp = scratch("names");
    let store = open_store(&tmp, "s");
    let id = store
        .import(&rootfs_tar()[..], Some("busybox:test"), &[])
        .unwrap();
    store.tag("busybox:test", "busybox").unwrap();
    store
        .tag(id.short(), "127.0.0.1:5000/mirror/busybox:1")
        .unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].repo_tags,
        [
            "127.0.0.1:5000/mirror/busybox:1",
            "busybox:latest",
            "busybox:test"
        ]
    );
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:test",
        "index.docker.io/library/busybox:test",
        &id.to_string(),
        id.0.hex(),
        &id.0.hex()[..6],
        &format!("sha256:{}", &id.0.hex()[..8]),
    ] {
        assert_eq!(
            store.inspect(name).unwrap().id,
            id.to_string(),
            "lookup by {name}"
        );
    }
    for missing in ["busybox:nope", "nothing", "ffffffffffff"] {
        let err = store.inspect(missing).unwrap_err();
        assert_eq!(err.to_string(), format!("no such image: {missing}"));
    }
    assert!(store.tag("busybox", "Upper:case").is_err());

    // A name moves: the old image keeps existing, dangling, until pruned.
    let garbage = [b"not a tar archive ".repeat(40), vec![0u8; 1024]].concat();
    let err = store
        .import(&gzip(&garbage)[..], Some("busybox:test"), &[])
        .unwrap_err();
    assert!(
        err.to_string().contains("cksum"),
        "not a tar: refused at import: {err}"
    );
    let mut second = TarBuilder::new();
    second.file("x", b"x");
    let id2 = store
        .import(&second.finish()[..], Some("busybox:test"), &[])
        .unwrap();
    assert_eq!(store.inspect("busybox:test").unwrap().id, id2.to_string());
    assert_eq!(store.inspect("busybox").unwrap().id, id.to_string());

    // Two images: a one-character prefix shared by both is ambiguous or unique, never wrong.
    let (a, b) = (id.0.hex(), id2.0.hex());
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    if common > 0 {
        let err = store.inspect(&a[..common]).unwrap_err();
        assert!(
            matches!(err, ImageError::Ambiguous { count: 2, .. }),
            "{err}"
        );
    }
    assert_eq!(store.inspect(&a[..common + 1]).unwrap().id, id.to_string());
}

#[test]
fn t41_remove_untags_deletes_and_respects_containers() {
    let tmp = scratch("remove");
    let store = open_store(&tmp, "s");
    let id = store.import(&rootfs_tar()[..], Some("app:1"), &[]).unwrap();
    store.tag("app:1", "app:2").unwrap();
    let lower = store.prepare_rootfs("app:1").unwrap();
    let blobs_before = store_fingerprint(store.root());
    let nobody: &dyn Fn(&ImageId) -> bool = &|_| false;
    let running = id.clone();
    let used: &dyn Fn(&ImageId) -> bool = &move |i| *i == running;

    eprintln!("--- by id with two names: refused without force");
    let err = store.remove(&id.to_string(), false, nobody).unwrap_err();
    assert!(matches!(err, ImageError::MultipleNames { .. }), "{err}");

    eprintln!("--- one of two names: only untagged");
    let actions = store.remove("app:2", false, used).unwrap();
    assert_eq!(actions, [RemoveAction::Untagged("app:2".into())]);
    assert!(store.inspect("app:2").is_err());
    assert_eq!(store.inspect("app:1").unwrap().id, id.to_string());

    eprintln!("--- the last name of an image a container uses: refused, nothing changes");
    let before = store_fingerprint(store.root());
    let err = store.remove("app:1", false, used).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("image app:1 ({}) is in use by a container", id.short())
    );
    assert_eq!(before, store_fingerprint(store.root()));

    eprintln!("--- forced: the name goes, the content stays for the container");
    let actions = store.remove("app:1", true, used).unwrap();
    assert_eq!(actions, [RemoveAction::Untagged("app:1".into())]);
    assert!(lower[0].is_dir(), "the snapshot under the container stays");
    assert_eq!(
        store.list().unwrap()[0].repo_tags,
        Vec::<String>::new(),
        "dangling"
    );
    let report = store.prune(used).unwrap();
    assert!(report.images_deleted.is_empty(), "in use: kept");
    assert!(lower[0].is_dir());

    eprintln!("--- once the container is gone, prune collects it all");
    let report = store.prune(nobody).unwrap();
    assert_eq!(report.images_deleted, [id.to_string()]);
    assert_eq!(report.snapshots_deleted, 1);
    assert_eq!(report.blobs_deleted, 3, "manifest, config, layer");
    assert!(!lower[0].exists());
    assert!(store.list().unwrap().is_empty());
    assert!(blobs_before.keys().any(|k| k.starts_with("blob ")));
    assert!(
        !store_fingerprint(store.root())
            .keys()
            .any(|k| k.starts_with("blob ") || k.starts_with("snapshot "))
    );

    eprintln!("--- shared layers survive the removal of one image");
    let x = store
        .import(&rootfs_tar()[..], Some("x:1"), &["CMD x".into()])
        .unwrap();
    let y = store
        .import(&rootfs_tar()[..], Some("y:1"), &["CMD y".into()])
        .unwrap();
    assert_ne!(x, y);
    let shared = store.prepare_rootfs("y:1").unwrap();
    let actions = store.remove("x:1", false, nobody).unwrap();
    assert_eq!(
        actions,
        [
            RemoveAction::Untagged("x:1".into()),
            RemoveAction::Deleted(x.to_string())
        ]
    );
    assert!(shared[0].is_dir(), "y's snapshot (same layer) stays");
    assert_eq!(store.prepare_rootfs("y:1").unwrap(), shared);
    assert!(store.has_blob(&Digest::of(&rootfs_tar())));
    assert!(!store.has_blob(&x.0), "x's config is gone");
}

#[test]
fn t42_prune_removes_leftovers_of_interrupted_writes() {
    let tmp = scratch("prune");
    let store = open_store(&tmp, "s");
    store
        .import(&rootfs_tar()[..], Some("keep:1"), &[])
        .unwrap();
    let lower = store.prepare_rootfs("keep:1").unwrap();
    // What a crash leaves: a temp blob, a temp snapshot, an orphan blob and snapshot.
    std::fs::write(store.root().join("blobs/sha256/.tmp-123-0-0"), b"half").unwrap();
    std::fs::create_dir_all(store.root().join("snapshots/.tmp-123-1-0/etc")).unwrap();
    let orphan = Digest::of(b"orphan");
    std::fs::write(store.blob_path(&orphan), b"orphan").unwrap();
    std::fs::create_dir(store.root().join("snapshots").join(orphan.hex())).unwrap();
    let report = store.prune(&|_| false).unwrap();
    assert_eq!(report.blobs_deleted, 1);
    assert_eq!(report.snapshots_deleted, 1);
    assert!(report.images_deleted.is_empty());
    no_temp_files(&store);
    assert!(lower[0].is_dir());
    assert!(store.prepare_rootfs("keep:1").is_ok());
}

// --- t50: concurrency ----------------------------------------------------------------------

#[test]
fn t50_concurrent_writers_lose_no_name() {
    let tmp = scratch("lock");
    let store = open_store(&tmp, "s");
    store
        .import(&rootfs_tar()[..], Some("base:1"), &[])
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..3 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..15 {
                    store.tag("base:1", &format!("t{t}:{i}")).unwrap();
                }
            });
        }
        let store = store.clone();
        s.spawn(move || {
            for i in 0..5 {
                let mut tar = TarBuilder::new();
                tar.file("n", format!("{i}").as_bytes());
                store
                    .import(&tar.finish()[..], Some(&format!("imported:{i}")), &[])
                    .unwrap();
            }
        });
    });
    let tags: usize = store
        .list()
        .unwrap()
        .iter()
        .map(|l| l.repo_tags.len())
        .sum();
    assert_eq!(
        tags,
        1 + 3 * 15 + 5,
        "every tag survived the concurrent writes"
    );
    no_temp_files(&store);
}
