//! The default spec's security holds inside a real container: Docker's capability set,
//! no_new_privs, seccomp filtering, masked and read-only paths, no block devices, no leaked
//! file descriptors.

mod common;

use common::Harness;

/// Docker's 14 default capabilities as the kernel prints them in /proc/<pid>/status:
/// CHOWN(0) DAC_OVERRIDE(1) FOWNER(3) FSETID(4) KILL(5) SETGID(6) SETUID(7) SETPCAP(8)
/// NET_BIND_SERVICE(10) NET_RAW(13) SYS_CHROOT(18) MKNOD(27) AUDIT_WRITE(29) SETFCAP(31).
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

fn run_in_default(h: &Harness, name: &str, script: &str) -> (i32, String, String) {
    let bundle = h.bundle(name, &["sh", "-c", script], |_| {});
    h.run(&h.id(name), &bundle)
}

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out}"))
        .trim()
        .to_string()
}

#[test]
fn t40_capabilities_are_dockers_default_set_and_no_more() {
    let h = Harness::new("caps");
    let (code, out, _) = run_in_default(&h, "c", "cat /proc/self/status");
    assert_eq!(code, 0);
    assert_eq!(status_field(&out, "CapEff"), DOCKER_DEFAULT_CAPS);
    assert_eq!(status_field(&out, "CapPrm"), DOCKER_DEFAULT_CAPS);
    assert_eq!(status_field(&out, "CapBnd"), DOCKER_DEFAULT_CAPS);
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out, "Seccomp"), "2", "seccomp filter mode");
}

#[test]
fn t40_seccomp_blocks_user_namespaces_keyctl_bpf_and_mount() {
    let h = Harness::new("seccomp");
    let (code, out, _) = run_in_default(
        &h,
        "s",
        "probe unshare-user; probe keyctl; probe bpf; probe mount-tmpfs /tmp; echo done",
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for line in &lines[..4] {
        assert!(line.contains("errno=EPERM"), "not blocked: {out}");
    }
}

#[test]
fn t40_masked_paths_are_unreadable_and_sys_is_read_only() {
    let h = Harness::new("masked");
    let (code, out, _) = run_in_default(
        &h,
        "m",
        "wc -c < /proc/timer_list; wc -c < /proc/interrupts; echo $(ls -A /proc/acpi) $(ls -A /sys/firmware) | wc -w; \
         touch /sys/kernel/x 2>&1 || true; (echo 1 > /proc/sys/kernel/domainname) 2>&1 || true; \
         grep ' /sys ' /proc/mounts",
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    // Both are non-empty on the host (/proc/kcore does not exist on this kernel).
    assert_eq!(lines[0].trim(), "0", "/proc/timer_list readable: {out}");
    assert_eq!(lines[1].trim(), "0", "/proc/interrupts readable: {out}");
    assert_eq!(
        lines[2].trim(),
        "0",
        "/proc/acpi or /sys/firmware visible: {out}"
    );
    assert!(lines[3].contains("Read-only file system"), "{out}");
    assert!(lines[4].contains("Read-only file system"), "{out}");
    assert!(
        lines[5].contains(" ro,") || lines[5].contains(" ro "),
        "{out}"
    );
}

#[test]
fn t40_block_devices_cannot_be_made_and_cgroupfs_is_read_only() {
    let h = Harness::new("devices");
    let (code, out, _) = run_in_default(
        &h,
        "d",
        "probe mknod-block /tmp/sda; probe mknod-char /tmp/null2; \
         echo x > /sys/fs/cgroup/memory/release_agent 2>&1 || echo release-agent-denied",
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("errno=EPERM"), "block device made: {out}");
    assert!(!lines[1].contains("errno="), "char device refused: {out}");
    assert!(out.contains("release-agent-denied"), "{out}");
}

#[test]
fn t40_only_stdio_file_descriptors_reach_the_container() {
    let h = Harness::new("fds");
    let (code, out, _) = run_in_default(&h, "f", "exec probe fds");
    assert_eq!(code, 0);
    let fds: Vec<&str> = out.lines().collect();
    assert_eq!(fds.len(), 3, "leaked fds: {out}");
    for (n, line) in fds.iter().enumerate() {
        assert!(line.starts_with(&format!("{n} ")), "{out}");
    }
}

#[test]
fn t40_a_non_root_user_has_no_capabilities() {
    let h = Harness::new("nonroot");
    let bundle = h.bundle(
        "u",
        &["sh", "-c", "grep -E '^Cap(Eff|Prm)' /proc/self/status"],
        |spec| {
            let mut p = spec.process().clone().unwrap();
            let mut caps = p.capabilities().clone().unwrap();
            caps.set_effective(Some(Default::default()));
            caps.set_permitted(Some(Default::default()));
            p.set_capabilities(Some(caps));
            let mut user = p.user().clone();
            user.set_uid(65534);
            user.set_gid(65534);
            p.set_user(user);
            spec.set_process(Some(p));
        },
    );
    let (code, out, _) = h.run(&h.id("u"), &bundle);
    assert_eq!(code, 0);
    assert!(
        out.lines().all(|l| l.ends_with("0000000000000000")),
        "{out}"
    );
}

#[test]
fn t40_a_user_name_is_resolved_in_the_containers_own_files_bounded() {
    let h = Harness::new("username");
    let with_user = |spec: &mut oci_spec::runtime::Spec, user: &str| {
        let mut annotations = spec.annotations().clone().unwrap_or_default();
        annotations.insert(swarm::runtime::process::USER_ANNOTATION.into(), user.into());
        spec.set_annotations(Some(annotations));
    };
    let bundle = h.bundle("n", &["sh", "-c", "id -u; id -g"], |spec| {
        with_user(spec, "app")
    });
    let (code, out, _) = h.run(&h.id("n"), &bundle);
    assert_eq!(code, 0);
    assert_eq!(out, "1000\n1000\n");

    eprintln!("--- an image whose /etc/passwd is /dev/zero gets a clear error, not a hang");
    let bundle = h.bundle("z", &["true"], |spec| with_user(spec, "app"));
    std::fs::remove_file(bundle.join("rootfs/etc/passwd")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", bundle.join("rootfs/etc/passwd")).unwrap();
    let out = h.swarm(&["run", "--bundle", bundle.to_str().unwrap(), &h.id("z")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    h.assert_no_leaks(&h.id("z"));

    eprintln!("--- an unknown user is refused with Docker's words");
    let bundle = h.bundle("u", &["true"], |spec| with_user(spec, "ghost"));
    let out = h.swarm(&["run", "--bundle", bundle.to_str().unwrap(), &h.id("u")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unable to find user ghost"));
}
