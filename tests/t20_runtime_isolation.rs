//! Isolation is real: PID 1 inside, its own hostname, only `lo` in a fresh network namespace,
//! host mounts invisible; existing namespaces can be joined by path; an overlay rootfs keeps
//! the container's writes in its own upper layer.

mod common;

use std::process::Command;

use common::Harness;
use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType};
use swarm::runtime::{CreateOptions, RootfsSource, Runtime, StdioMode};

#[test]
fn t20_namespaces_isolate_pid_hostname_network_and_mounts() {
    let h = Harness::new("isolation");
    let bundle = h.bundle(
        "i",
        &[
            "sh",
            "-c",
            "echo pid=$$; hostname; ls /sys/class/net; grep -c . /proc/mounts; cat /proc/mounts",
        ],
        |_| {},
    );
    let (code, out, _) = h.run(&h.id("i"), &bundle);
    assert_eq!(code, 0);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("pid=1"));
    assert_eq!(lines.next(), Some("box"));
    assert_eq!(
        lines.next(),
        Some("lo"),
        "only lo in a fresh network namespace"
    );
    let mounts: Vec<&str> = lines.skip(1).collect();
    let host_dir = h.dir.path().display().to_string();
    assert!(
        mounts
            .iter()
            .all(|m| !m.contains("/work") && !m.contains(&host_dir)),
        "host mounts visible: {mounts:?}"
    );
    assert!(mounts.iter().any(|m| m.starts_with("proc /proc proc")));
    // Our own hostname is untouched.
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(host.to_string_lossy(), "box");
}

#[test]
fn t20_a_network_namespace_is_joined_by_path() {
    let h = Harness::new("joinnet");
    let ns = format!("swarm-test-{}", std::process::id());
    let status = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap();
    assert!(status.success());
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _cleanup = Cleanup(ns.clone());
    // Mark the namespace: a link only it has (a veth pair inside it).
    let status = Command::new("ip")
        .args([
            "-n", &ns, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let path = format!("/run/netns/{ns}");
    let bundle = h.bundle("n", &["ls", "/sys/class/net"], |spec| {
        let mut linux = spec.linux().clone().unwrap();
        let mut list = linux.namespaces().clone().unwrap();
        list.retain(|n| n.typ() != LinuxNamespaceType::Network);
        list.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()
                .unwrap(),
        );
        linux.set_namespaces(Some(list));
        spec.set_linux(Some(linux));
    });
    let (code, out, _) = h.run(&h.id("n"), &bundle);
    assert_eq!(code, 0);
    let links: Vec<&str> = out.lines().collect();
    assert!(
        links.contains(&"probe0") && links.contains(&"probe1"),
        "{links:?}"
    );
}

#[test]
fn t20_overlay_rootfs_keeps_writes_in_the_upper_layer() {
    let h = Harness::new("overlay");
    let rt = Runtime::new(h.root()).unwrap().with_helper(common::SWARM);
    let lower = common::fixture_rootfs();
    let upper = h.dir.path().join("upper");
    let work = h.dir.path().join("work");
    let target = h.dir.path().join("merged");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    let bundle = h.bundle(
        "ov",
        &[
            "sh",
            "-c",
            "echo written > /etc/new-file; rm /bin/vi; ls /bin/vi",
        ],
        |_| {},
    );
    let id = h.id("ov");
    let mut opts = CreateOptions::new(&id, &bundle);
    opts.rootfs = Some(RootfsSource::Overlay {
        lower: vec![lower.clone()],
        upper: upper.clone(),
        work: work.clone(),
        target: target.clone(),
    });
    opts.stdio = StdioMode::Log;
    opts.start_now = true;
    rt.create(opts).unwrap();
    let exit = rt
        .wait(&id, Some(std::time::Duration::from_secs(10)))
        .unwrap();
    assert_eq!(exit.code, 1, "ls of the deleted file fails");
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/new-file")).unwrap(),
        "written\n"
    );
    assert!(
        !lower.join("etc/new-file").exists(),
        "the image layer was written to"
    );
    assert!(
        lower.join("bin/vi").symlink_metadata().is_ok(),
        "the image layer lost a file"
    );
    // The overlay was mounted only inside the container: the host never sees it.
    assert!(common::host_mounts_mentioning(&target.display().to_string()).is_empty());
    rt.delete(&id, false).unwrap();
    h.assert_no_leaks(&id);
}
