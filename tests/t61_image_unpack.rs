//! Layer unpacking: what an ordinary layer keeps (ownership, modes, times, xattrs, links,
//! devices), whiteouts as a real overlayfs mount reads them, one shared snapshot per layer,
//! and the hostile-layer suite: every known tar-extraction attack against a sentinel
//! directory next to the store, which must not change in any byte, mode, time or link count.
//!
//! Layout of each test: `<tmp>/store` (the image store; snapshots are unpacked in
//! `<tmp>/store/snapshots/.tmp-*`, so `../../../sentinel` from a layer root is the sentinel)
//! and `<tmp>/sentinel`. Runs as root (chown, mknod, trusted xattrs, mount).

mod image_support;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use image_support::*;
use swarm::image::{Digest, ImageError, ImageStore, Limits};
use tar::EntryType;

struct World {
    tmp: tempfile::TempDir,
    store: ImageStore,
    sentinel: Sentinel,
}

impl World {
    fn new(name: &str) -> World {
        Self::with_limits(name, Limits::default())
    }

    fn with_limits(name: &str, limits: Limits) -> World {
        let tmp = scratch(name);
        let store = ImageStore::open(tmp.path().join("store"))
            .unwrap()
            .with_limits(limits);
        let sentinel = Sentinel::new(tmp.path());
        World {
            tmp,
            store,
            sentinel,
        }
    }

    /// Absolute path of the sentinel, as a hostile layer would name it.
    fn sentinel_abs(&self) -> String {
        self.sentinel.dir.display().to_string()
    }

    /// Store `layers` as an image and unpack it.
    fn unpack(&self, layers: Vec<Layer>) -> Result<Vec<PathBuf>, ImageError> {
        let image = BuiltImage::new(layers, &["sh"]);
        image.store(&self.store, &["hostile:test"]);
        self.store.prepare_rootfs("hostile:test")
    }

    fn unpack_tar(&self, tar: Vec<u8>) -> Result<Vec<PathBuf>, ImageError> {
        self.unpack(vec![Layer::plain(tar)])
    }

    /// The expected failure, and then: nothing outside changed, no partial snapshot left.
    fn refused(&self, tar: Vec<u8>, message_part: &str) {
        let err = self
            .unpack_tar(tar)
            .expect_err("the hostile layer was unpacked");
        eprintln!("refused as expected: {err}");
        assert!(
            err.to_string().contains(message_part),
            "error {err:?} does not mention {message_part:?}"
        );
        self.sentinel.assert_untouched();
        self.assert_no_snapshots();
        self.assert_tmp_holds_only_store_and_sentinel();
    }

    fn assert_no_snapshots(&self) {
        let left: Vec<_> = std::fs::read_dir(self.store.root().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "snapshots left behind: {left:?}");
    }

    fn assert_tmp_holds_only_store_and_sentinel(&self) {
        let mut names: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["sentinel", "store"],
            "something appeared next to the store"
        );
    }
}

fn lstat(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}

// --- t10: an ordinary layer ------------------------------------------------------------

#[test]
fn t10_ordinary_layer_keeps_owners_modes_times_links_devices_and_xattrs() {
    let w = World::new("meta");
    let mut tar = TarBuilder::new();
    tar.dir("./", 0o755)
        .dir("bin/", 0o755)
        .file_with("bin/su", b"#!setuid", 0o4755, 0, 0)
        .file_with("home/app/notes", b"mine", 0o600, 1000, 1001)
        .dir("secret/", 0o700)
        .symlink("bin/sh", "busybox")
        // Linux refuses user.* xattrs on symlinks: skipped, not fatal (as docker does).
        .pax(&[("SCHILY.xattr.user.origin", b"layer")])
        .symlink("bin/sh2", "busybox")
        .file("bin/busybox", b"busybox binary")
        .hardlink("bin/ls", "bin/busybox")
        .node("dev/null", EntryType::Char, 1, 3, 0o666)
        .node("dev/loop9", EntryType::Block, 7, 9, 0o660)
        .node("run/fifo", EntryType::Fifo, 0, 0, 0o620)
        .pax(&[
            ("SCHILY.xattr.user.origin", b"layer"),
            // Image content may not steer overlayfs: this one must be dropped.
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("mtime", b"1600000000.5"),
        ])
        .file("etc/tagged", b"with xattrs");
    let lower = w.unpack_tar(tar.finish()).expect("unpack");
    assert_eq!(lower.len(), 1);
    let root = &lower[0];

    let su = lstat(&root.join("bin/su"));
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid bit kept");
    let notes = lstat(&root.join("home/app/notes"));
    assert_eq!(
        (notes.uid(), notes.gid(), notes.mode() & 0o777),
        (1000, 1001, 0o600)
    );
    assert_eq!(notes.mtime(), MTIME as i64);
    let secret = lstat(&root.join("secret"));
    assert!(secret.is_dir());
    assert_eq!(secret.mode() & 0o777, 0o700);
    assert_eq!(
        secret.mtime(),
        MTIME as i64,
        "directory mtime set after its children"
    );
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox"),
        "symlink kept as is"
    );
    let ls = lstat(&root.join("bin/ls"));
    let busybox = lstat(&root.join("bin/busybox"));
    assert_eq!(ls.ino(), busybox.ino(), "hardlink is the same inode");
    assert_eq!(busybox.nlink(), 2);
    let null = lstat(&root.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o777, 0o666);
    assert!(lstat(&root.join("dev/loop9")).file_type().is_block_device());
    let fifo = lstat(&root.join("run/fifo"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o777, 0o620);
    let tagged = root.join("etc/tagged");
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(&tagged, "user.origin", &mut buf[..]).expect("user xattr kept");
    assert_eq!(&buf[..n], b"layer");
    assert!(
        rustix::fs::getxattr(&tagged, "trusted.overlay.opaque", &mut buf[..]).is_err(),
        "overlay xattrs from content are dropped"
    );
    assert_eq!(
        lstat(&tagged).mtime_nsec(),
        500_000_000,
        "PAX mtime with fraction"
    );
    w.sentinel.assert_untouched();
}

// --- t20: paths -------------------------------------------------------------------------

#[test]
fn t20_dotdot_paths_are_refused() {
    let w = World::new("dotdot");
    let mut tar = TarBuilder::new();
    tar.file("../../../sentinel/x", b"escaped");
    w.refused(tar.finish(), "'..'");

    let mut tar = TarBuilder::new();
    tar.dir("a/", 0o755)
        .file("a/../../../../sentinel/x", b"escaped");
    w.refused(tar.finish(), "'..'");
}

#[test]
fn t20_absolute_paths_land_inside_the_snapshot() {
    let w = World::new("absolute");
    let target = format!("{}/x", w.sentinel_abs());
    let mut tar = TarBuilder::new();
    tar.file(&target, b"inside");
    let lower = w
        .unpack_tar(tar.finish())
        .expect("an absolute path is made relative");
    let inside = lower[0].join(target.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"inside");
    w.sentinel.assert_untouched();
}

// --- t21..t23: symlinks ------------------------------------------------------------------

/// CVE-2018-20990 (tar-rs < 0.4.16): a symlink, then a file of the same name, wrote through.
#[test]
fn t21_symlink_then_file_replaces_the_symlink() {
    let w = World::new("symwrite");
    let mut tar = TarBuilder::new();
    tar.symlink("abs", &format!("{}/keep", w.sentinel_abs()))
        .file("abs", b"pwned")
        .symlink("rel", "../../../sentinel/shadow")
        .file("rel", b"pwned");
    let lower = w
        .unpack_tar(tar.finish())
        .expect("later entries replace earlier ones");
    for name in ["abs", "rel"] {
        let p = lower[0].join(name);
        assert!(lstat(&p).is_file(), "{name} is a file now");
        assert_eq!(std::fs::read(&p).unwrap(), b"pwned");
    }
    w.sentinel.assert_untouched();
}

#[test]
fn t21_writes_through_a_symlinked_parent_are_refused() {
    let w = World::new("symparent");
    let mut tar = TarBuilder::new();
    tar.symlink("d", &w.sentinel_abs()).file("d/keep", b"pwned");
    w.refused(tar.finish(), "parent d is a symlink");
}

/// RUSTSEC-2021-0080 (tar-rs < 0.4.36): `symlink -> ..` then `symlink/x/y` created
/// directories outside the destination.
#[test]
fn t22_symlink_to_dotdot_then_nested_dirs_is_refused() {
    let w = World::new("symdotdot");
    let mut tar = TarBuilder::new();
    tar.symlink("up", "../../..")
        .dir("up/sentinel/newdir/", 0o777)
        .file("up/sentinel/newdir/f", b"pwned");
    w.refused(tar.finish(), "parent up is a symlink");

    let mut tar = TarBuilder::new();
    tar.symlink("up", "..").file("up/up2/x", b"pwned");
    w.refused(tar.finish(), "is a symlink");
}

/// RUSTSEC-2026-0067 (tar-rs <= 0.4.44): a symlink, then a directory entry of the same name:
/// the directory's mode was applied to the symlink's target.
#[test]
fn t23_symlink_then_same_name_dir_does_not_chmod_the_target() {
    let w = World::new("symchmod");
    let mut tar = TarBuilder::new();
    tar.symlink("d", &w.sentinel_abs())
        .dir("d/", 0o777)
        .symlink("f", &format!("{}/keep", w.sentinel_abs()))
        .dir("f", 0o777);
    let lower = w.unpack_tar(tar.finish()).expect("unpack");
    for name in ["d", "f"] {
        let m = lstat(&lower[0].join(name));
        assert!(m.is_dir(), "{name} is a real directory now");
        assert_eq!(m.mode() & 0o7777, 0o777);
    }
    w.sentinel.assert_untouched();
}

// --- t24: hardlinks ----------------------------------------------------------------------

#[test]
fn t24_hardlinks_may_only_name_earlier_files_of_the_layer() {
    let w = World::new("hardlink");
    let mut tar = TarBuilder::new();
    tar.hardlink("shadow", "/etc/shadow");
    w.refused(tar.finish(), "not an earlier file of this layer");

    let mut tar = TarBuilder::new();
    tar.hardlink("shadow", &format!("{}/shadow", w.sentinel_abs()));
    w.refused(tar.finish(), "not an earlier file of this layer");

    let mut tar = TarBuilder::new();
    tar.hardlink("outside", "../../outside");
    w.refused(tar.finish(), "'..'");

    // A link to an earlier symlink that points out links the symlink, not its target.
    let mut tar = TarBuilder::new();
    tar.symlink("s", &format!("{}/shadow", w.sentinel_abs()))
        .hardlink("h", "s")
        .file("h2-target", b"x")
        .hardlink("later-dir", "h2-target")
        .dir("h2-target", 0o755)
        .hardlink("through-dir", "h2-target");
    let err = w
        .unpack_tar(tar.finish())
        .expect_err("a link to what became a dir");
    assert!(err.to_string().contains("is not a file any more"), "{err}");
    w.sentinel.assert_untouched();
    w.assert_no_snapshots();

    let mut tar = TarBuilder::new();
    tar.symlink("s", &format!("{}/shadow", w.sentinel_abs()))
        .hardlink("h", "s");
    let lower = w.unpack_tar(tar.finish()).expect("unpack");
    assert!(lstat(&lower[0].join("h")).file_type().is_symlink());
    w.sentinel.assert_untouched();
}

// --- t25: whiteouts ----------------------------------------------------------------------

/// umoci CVE-2021-29136: a whiteout that removes files outside the root.
#[test]
fn t25_whiteouts_cannot_reach_outside() {
    let w = World::new("whiteout");
    let mut tar = TarBuilder::new();
    tar.file("../../../sentinel/.wh.keep", b"");
    w.refused(tar.finish(), "'..'");

    let mut tar = TarBuilder::new();
    tar.symlink("w", &w.sentinel_abs()).file("w/.wh.keep", b"");
    w.refused(tar.finish(), "parent w is a symlink");

    let mut tar = TarBuilder::new();
    tar.symlink("w", "../../../sentinel")
        .file("w/.wh..wh..opq", b"");
    w.refused(tar.finish(), "parent w is a symlink");

    let mut tar = TarBuilder::new();
    tar.file(".wh...", b"");
    w.refused(tar.finish(), "whiteout of \"..\"");
}

/// A uid past 32 bits would wrap to a small one (2^32 is root) if truncated.
#[test]
fn t26_owners_past_32_bits_are_refused() {
    let w = World::new("uid");
    let mut tar = TarBuilder::new();
    tar.file_with("f", b"x", 0o4755, 1 << 32, 0);
    w.refused(tar.finish(), "uid 4294967296 is out of range");
}

// --- t30: bombs --------------------------------------------------------------------------

/// Many 1 MiB files of zeros, each its own gzip member: about 1 MiB compressed for 1 GiB.
fn gzip_bomb(files: usize) -> Vec<u8> {
    use std::io::Write;
    let chunk = vec![0u8; 1 << 20];
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&chunk).unwrap();
    let zeros = enc.finish().unwrap();
    let mut out = Vec::new();
    for i in 0..files {
        let mut h = TarBuilder::header(
            EntryType::Regular,
            &format!("zero{i}"),
            chunk.len() as u64,
            0o644,
        );
        h.set_cksum();
        out.extend(gzip(h.as_bytes()));
        out.extend_from_slice(&zeros);
    }
    out.extend(gzip(&[0u8; 1024]));
    out
}

/// Docker CVE-2017-14992: a gzip bomb in a layer.
#[test]
fn t30_gzip_bomb_stops_at_the_byte_limit() {
    let limits = Limits {
        layer_bytes: 8 << 20,
        ..Limits::default()
    };
    let w = World::with_limits("bomb", limits);
    let bomb = gzip_bomb(1024);
    assert!(bomb.len() < 2 << 20, "the bomb is small: {}", bomb.len());
    let start = std::time::Instant::now();
    let layer = Layer {
        blob: bomb.clone(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        // Never reached: the limit stops the unpack first.
        diff_id: Digest::of(b"not computed for a bomb"),
    };
    let err = w.unpack(vec![layer]).expect_err("bomb unpacked");
    assert_eq!(
        err.to_string(),
        format!(
            "layer exceeds limit: uncompressed size (more than {} bytes)",
            8 << 20
        )
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    w.assert_no_snapshots();
    w.sentinel.assert_untouched();

    // One file that claims a size past the limit is refused before a byte is written.
    let mut huge = TarBuilder::header(EntryType::Regular, "huge", 1 << 40, 0o644);
    huge.set_cksum();
    let mut tar = huge.as_bytes().to_vec();
    tar.extend(vec![0u8; 4096]);
    let err = w.unpack_tar(tar).expect_err("huge file");
    assert!(
        err.to_string()
            .starts_with("layer exceeds limit: uncompressed size"),
        "{err}"
    );
    w.assert_no_snapshots();

    // Import decompresses into the store: bounded the same way, and nothing is kept.
    let before = store_fingerprint(w.store.root());
    let err = w
        .store
        .import(&bomb[..], Some("bomb:1"), &[])
        .expect_err("bomb imported");
    assert!(
        err.to_string()
            .starts_with("layer exceeds limit: uncompressed size"),
        "{err}"
    );
    assert_eq!(before, store_fingerprint(w.store.root()));
}

#[test]
fn t31_entry_count_bomb_stops_at_the_entry_limit() {
    let limits = Limits {
        layer_entries: 1000,
        ..Limits::default()
    };
    let w = World::with_limits("entries", limits);
    let mut tar = TarBuilder::new();
    for i in 0..5000 {
        tar.file(&format!("f{i}"), b"");
    }
    w.refused(
        tar.finish(),
        "layer exceeds limit: entries (more than 1000)",
    );
}

#[test]
fn t32_long_paths_and_huge_pax_headers_are_bounded() {
    let limits = Limits {
        path_bytes: 256,
        pax_header_bytes: 64 << 10,
        ..Limits::default()
    };
    let w = World::with_limits("headers", limits);
    let mut tar = TarBuilder::new();
    tar.long_file(&format!("{}/file", "d".repeat(300)), b"x");
    w.refused(
        tar.finish(),
        "layer exceeds limit: path length (more than 256 bytes)",
    );

    let mut tar = TarBuilder::new();
    tar.pax(&[("comment", &vec![b'a'; 2 << 20])])
        .file("f", b"x");
    w.refused(
        tar.finish(),
        "layer exceeds limit: PAX header size (more than 65536 bytes)",
    );
}

/// TARmageddon (CVE-2025-62518) and RUSTSEC-2026-0068: a PAX size that disagrees with the
/// ustar size. Whatever we extract must be exactly what GNU tar lists.
#[test]
fn t33_pax_and_ustar_size_mismatch_reads_as_gnu_tar_does() {
    let w = World::new("paxsize");
    // The carrier's data hides a complete tar entry ("smuggled"): a parser that trusts the
    // ustar size (0) would extract it; one that honours PAX (1024) sees file data.
    let mut hidden = TarBuilder::new();
    hidden.file("smuggled", &[b'S'; 10]);
    let mut hidden = hidden.finish();
    hidden.truncate(1024);
    let mut tar = TarBuilder::new();
    tar.pax(&[("size", b"1024")])
        .raw(
            TarBuilder::header(EntryType::Regular, "carrier", 0, 0o644),
            &hidden,
        )
        .file("after", b"after");
    let tar = tar.finish();

    let archive = w.tmp.path().join("mismatch.tar");
    std::fs::write(&archive, &tar).unwrap();
    let gnu = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    std::fs::remove_file(&archive).unwrap();
    let mut gnu_list: Vec<String> = String::from_utf8_lossy(&gnu.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    gnu_list.sort();
    eprintln!("GNU tar lists {gnu_list:?}");

    let lower = w.unpack_tar(tar).expect("unpack");
    let mut ours: Vec<String> = std::fs::read_dir(&lower[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ours.sort();
    assert_eq!(ours, gnu_list, "our entries differ from GNU tar's listing");
    assert_eq!(ours, ["after", "carrier"]);
    assert_eq!(std::fs::read(lower[0].join("carrier")).unwrap().len(), 1024);
    w.sentinel.assert_untouched();
}

// --- t40: whiteouts in a real overlay ----------------------------------------------------

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn t40_whiteouts_and_opaque_dirs_across_layers_in_a_real_overlay() {
    let w = World::new("overlay");
    // Layer 1: the base.
    let mut l1 = TarBuilder::new();
    l1.dir("a/", 0o755)
        .file("a/gone", b"1")
        .file("a/stays", b"1")
        .file("f", b"1")
        .dir("o/", 0o755)
        .file("o/old", b"1")
        .dir("o/sub/", 0o755)
        .file("o/sub/deep", b"1")
        .file("back", b"1");
    // Layer 2: delete a file, a top-level file and a whole file that layer 3 brings back;
    // make o opaque (its lower content hidden) while adding to it in the same layer.
    let mut l2 = TarBuilder::new();
    l2.file("a/.wh.gone", b"")
        .file(".wh.f", b"")
        .file(".wh.back", b"")
        .file("o/.wh..wh..opq", b"")
        .file("o/new", b"2");
    // Layer 3: recreate what layer 2 deleted.
    let mut l3 = TarBuilder::new();
    l3.file("back", b"3");
    let lower = w
        .unpack(vec![
            Layer::gzip(l1.finish()),
            Layer::zstd(l2.finish()),
            Layer::plain(l3.finish()),
        ])
        .expect("unpack");
    assert_eq!(lower.len(), 3);

    // What overlayfs reads: a 0:0 char device and the opaque xattr, in layer 2's snapshot.
    let l2_root = &lower[1];
    let wh = lstat(&l2_root.join("a/gone"));
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(l2_root.join("o"), "trusted.overlay.opaque", &mut buf[..])
        .expect("opaque xattr");
    assert_eq!(&buf[..n], b"y");

    let upper = w.tmp.path().join("upper");
    let work = w.tmp.path().join("work");
    let merged = w.tmp.path().join("merged");
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    let lowerdir: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .expect("mount overlay");
    let mounted = Mounted(merged.clone());

    let exists = |p: &str| merged.join(p).symlink_metadata().is_ok();
    assert!(!exists("a/gone"), "whiteout hides the lower file");
    assert!(exists("a/stays"));
    assert!(!exists("f"), "top-level whiteout");
    assert!(exists("o/new"), "the opaque dir's own content stays");
    assert!(
        !exists("o/old") && !exists("o/sub"),
        "opaque dir hides lower content"
    );
    assert_eq!(
        std::fs::read(merged.join("back")).unwrap(),
        b"3",
        "recreated above the whiteout"
    );
    let mut top: Vec<String> = std::fs::read_dir(&merged)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["a", "back", "o"]);

    drop(mounted);
    std::fs::remove_dir_all(&work).unwrap();
    w.sentinel.assert_untouched();
}

// --- t50: sharing and failure ------------------------------------------------------------

#[test]
fn t50_concurrent_unpackers_of_one_layer_share_one_snapshot() {
    let w = World::new("concurrent");
    let mut tar = TarBuilder::new();
    for i in 0..300 {
        tar.file(&format!("d{}/f{i}", i % 10), &[b'x'; 2048]);
    }
    let image = BuiltImage::new(vec![Layer::gzip(tar.finish())], &["sh"]);
    image.store(&w.store, &["shared:1"]);
    let barrier = std::sync::Barrier::new(4);
    let results: Vec<Vec<PathBuf>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = w.store.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    store.prepare_rootfs("shared:1").unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        results.windows(2).all(|r| r[0] == r[1]),
        "one snapshot for everyone"
    );
    let names: Vec<String> = std::fs::read_dir(w.store.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [image.layers[0].diff_id.hex().to_string()],
        "no temp dir left"
    );
    let count: usize = (0..10)
        .map(|d| {
            std::fs::read_dir(results[0][0].join(format!("d{d}")))
                .unwrap()
                .count()
        })
        .sum();
    assert_eq!(count, 300);
}

#[test]
fn t51_a_layer_that_does_not_match_its_digests_leaves_nothing() {
    let w = World::new("diffid");
    let mut tar = TarBuilder::new();
    tar.file("f", b"content");
    let mut layer = Layer::gzip(tar.finish());
    let wrong = Digest::of(b"another layer");
    layer.diff_id = wrong.clone();
    let err = w.unpack(vec![layer]).expect_err("wrong diff_id");
    assert_eq!(err.to_string(), format!("digest mismatch for {wrong}"));
    w.assert_no_snapshots();

    // A blob corrupted on disk after it was stored: caught while unpacking.
    let w = World::new("bitrot");
    let mut tar = TarBuilder::new();
    tar.file("f", b"content");
    let image = BuiltImage::new(vec![Layer::plain(tar.finish())], &["sh"]);
    image.store(&w.store, &["rot:1"]);
    let blob = Digest::of(&image.layers[0].blob);
    let path = w.store.blob_path(&blob);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[512] ^= 0x20; // inside the file's data
    std::fs::write(&path, bytes).unwrap();
    let err = w.store.prepare_rootfs("rot:1").expect_err("corrupted blob");
    assert_eq!(err.to_string(), format!("digest mismatch for {blob}"));
    w.assert_no_snapshots();
}
