//! Bad input gets a clear error and leaves nothing behind: no state directory, no cgroup, no
//! helper, no mount on the host.

mod common;

use common::{Harness, write_spec};
use oci_spec::runtime::{LinuxMemoryBuilder, MountBuilder, Spec};

fn expect_refused(h: &Harness, id: &str, bundle: &std::path::Path, needle: &str) {
    let out = h.swarm(&[
        "create",
        "--stdio",
        "null",
        "--bundle",
        bundle.to_str().unwrap(),
        id,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted");
    assert!(
        err.contains(needle),
        "error {err:?} does not mention {needle:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    h.assert_no_leaks(id);
    // Foreground run refuses the same way.
    let out = h.swarm(&[
        "run",
        "--stdio",
        "null",
        "--bundle",
        bundle.to_str().unwrap(),
        id,
    ]);
    assert!(!out.status.success());
    h.assert_no_leaks(id);
}

fn add_mount(spec: &mut Spec, dest: &str) {
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination(dest)
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["nosuid".to_string()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
}

#[test]
fn t50_missing_rootfs() {
    let h = Harness::new("norootfs");
    let bundle = h.bundle("b", &["true"], |_| {});
    std::fs::remove_dir_all(bundle.join("rootfs")).unwrap();
    expect_refused(&h, &h.id("b"), &bundle, "root filesystem");
}

#[test]
fn t50_mount_destination_with_dotdot() {
    let h = Harness::new("dotdot");
    let bundle = h.bundle("b", &["true"], |spec| {
        add_mount(spec, "/tmp/../../../escape")
    });
    expect_refused(
        &h,
        &h.id("b"),
        &bundle,
        "escapes the container's root filesystem",
    );
    assert!(!std::path::Path::new("/escape").exists());
}

#[test]
fn t50_mount_destination_through_a_symlink_pointing_out() {
    let h = Harness::new("symlink");
    let outside = h.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let bundle = h.bundle("b", &["true"], |spec| add_mount(spec, "/data/x"));
    // The image's /data climbs out of the rootfs to the host directory next to the bundle.
    std::os::unix::fs::symlink(
        "../../../../../../../../..".to_string() + &outside.display().to_string(),
        bundle.join("rootfs/data"),
    )
    .unwrap();
    expect_refused(
        &h,
        &h.id("b"),
        &bundle,
        "escapes the container's root filesystem",
    );
    assert!(
        !outside.join("x").exists(),
        "a directory was created outside the rootfs"
    );
}

#[test]
fn t50_unknown_namespace_type() {
    let h = Harness::new("badns");
    let bundle = h.bundle("b", &["true"], |_| {});
    let raw = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    let raw = raw.replacen("\"type\": \"pid\"", "\"type\": \"bogus\"", 1);
    assert!(raw.contains("bogus"));
    std::fs::write(bundle.join("config.json"), raw).unwrap();
    expect_refused(&h, &h.id("b"), &bundle, "bogus");
}

#[test]
fn t50_unsupported_user_namespace() {
    let h = Harness::new("userns");
    let bundle = h.bundle("b", &["true"], |spec| {
        let mut linux = spec.linux().clone().unwrap();
        let mut list = linux.namespaces().clone().unwrap();
        list.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(oci_spec::runtime::LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        linux.set_namespaces(Some(list));
        spec.set_linux(Some(linux));
    });
    expect_refused(&h, &h.id("b"), &bundle, "not supported");
}

#[test]
fn t50_memory_limit_the_kernel_rejects() {
    let h = Harness::new("badmem");
    // memory+swap below the memory limit: the kernel refuses it.
    let bundle = h.bundle("b", &["true"], |spec| {
        let mut linux = spec.linux().clone().unwrap();
        let mut resources = linux.resources().clone().unwrap_or_default();
        resources.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .swap(16i64 << 20)
                .build()
                .unwrap(),
        ));
        linux.set_resources(Some(resources));
        spec.set_linux(Some(linux));
    });
    expect_refused(&h, &h.id("b"), &bundle, "rejected");
}

#[test]
fn t50_missing_executable_fails_at_create() {
    let h = Harness::new("noexec");
    let bundle = h.bundle("b", &["/no/such/program"], |_| {});
    expect_refused(&h, &h.id("b"), &bundle, "no such file");
}

#[test]
fn t50_malformed_config_and_bad_ids() {
    let h = Harness::new("malformed");
    let bundle = h.bundle("b", &["true"], |_| {});
    std::fs::write(bundle.join("config.json"), b"{\"ociVersion\": ").unwrap();
    expect_refused(&h, &h.id("b"), &bundle, "invalid spec");
    let bundle = h.bundle("c", &["true"], |_| {});
    for bad in ["../escape", "a/b", ""] {
        let out = h.swarm(&["create", "--bundle", bundle.to_str().unwrap(), bad]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid container id"));
    }
    let out = h.swarm(&["create", "--bundle", "/no/such/bundle", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/bundle"));
}

#[test]
fn t50_duplicate_id_is_refused_and_the_first_survives() {
    let h = Harness::new("dup");
    let id = h.id("d");
    let bundle = h.bundle("d", &["sleep", "100"], |_| {});
    h.run_detached(&id, &bundle, "null");
    let out = h.swarm(&[
        "create",
        "--stdio",
        "null",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(h.state(&id)["status"], "running");
    h.ok(&["delete", "--force", &id]);
    h.assert_no_leaks(&id);
}

#[test]
fn t50_spec_file_is_written_by_spec_and_never_overwritten() {
    let h = Harness::new("specgen");
    let dir = h.dir.path().join("gen");
    std::fs::create_dir_all(&dir).unwrap();
    h.ok(&["spec", "--bundle", dir.to_str().unwrap()]);
    let spec: Spec =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        spec.root().as_ref().unwrap().path().to_str(),
        Some("rootfs")
    );
    assert!(spec.linux().as_ref().unwrap().seccomp().is_some());
    assert!(
        !h.swarm(&["spec", "--bundle", dir.to_str().unwrap()])
            .status
            .success()
    );
    let _ = write_spec;
}
