//! Test support for the integration tests: the busybox fixture, bundles, a runtime state
//! root per test, and the `swarm` binary; `daemon` (one real daemon), `cluster` (daemons on
//! network-namespace hosts, with faults), `http` (a blocking JSON client for their sockets).
//!
//! Tests run as root on the real kernel. Every container a test makes lives under its own
//! state root and cgroup path; `Harness::drop` removes whatever is left, even when the test
//! failed, and `assert_no_leaks` checks that nothing remains on the host.

#![allow(dead_code)]

pub mod cluster;
pub mod daemon;
pub mod http;
pub mod registry;
pub mod swarm_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;

use oci_spec::runtime::Spec;
use swarm::runtime::spec::{DefaultSpecOptions, default_spec};

pub const SWARM: &str = env!("CARGO_BIN_EXE_swarm");

static FIXTURE: Once = Once::new();

/// The busybox root filesystem built by `scripts/fixtures/busybox-rootfs.sh`.
pub fn fixture_rootfs() -> PathBuf {
    let path = std::env::var_os("SWARM_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/busybox"));
    FIXTURE.call_once(|| {
        if !path.join("bin/busybox").exists() || !path.join("bin/probe").exists() {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fixtures/busybox-rootfs.sh");
            let status = Command::new("bash")
                .arg(&script)
                .arg(&path)
                .status()
                .expect("run the fixture script");
            assert!(status.success(), "building the busybox fixture failed");
        }
    });
    path
}

/// One test's world: a state root, a scratch dir, a unique id prefix.
pub struct Harness {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn new(name: &str) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix(&format!("swarm-test-{name}-"))
            .tempdir()
            .expect("tempdir");
        Harness {
            name: format!("{name}-{}", std::process::id()),
            dir,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A container id unique to this test.
    pub fn id(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// A bundle with a private copy of the busybox rootfs and Docker's default spec running
    /// `args`, adjusted by `edit`.
    pub fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Spec)) -> PathBuf {
        let bundle = self.dir.path().join(format!("bundle-{name}"));
        std::fs::create_dir_all(&bundle).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(fixture_rootfs())
            .arg(bundle.join("rootfs"))
            .status()
            .unwrap();
        assert!(status.success());
        let mut spec = default_spec(&DefaultSpecOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            hostname: "box".into(),
            ..Default::default()
        });
        let mut linux = spec.linux().clone().unwrap();
        linux.set_cgroups_path(Some(cgroup_path(&self.id(name)).into()));
        spec.set_linux(Some(linux));
        edit(&mut spec);
        write_spec(&bundle, &spec);
        bundle
    }

    /// Run `swarm runtime --root <root> ARGS`.
    pub fn swarm(&self, args: &[&str]) -> Output {
        let mut command = Command::new(SWARM);
        command
            .arg("runtime")
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null());
        run_logged(&mut command, &format!("swarm runtime {}", args.join(" ")))
    }

    /// Run and expect success; return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.swarm(args);
        assert!(out.status.success(), "swarm runtime {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run` a container in the foreground, return (exit code, stdout, stderr).
    pub fn run(&self, id: &str, bundle: &Path) -> (i32, String, String) {
        let out = self.swarm(&["run", "--bundle", bundle.to_str().unwrap(), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `run -d`: start container `id` from `bundle` in the background, its stdio as `stdio`
    /// (`null` or `log`).
    pub fn run_detached(&self, id: &str, bundle: &Path, stdio: &str) {
        self.ok(&[
            "run",
            "-d",
            "--stdio",
            stdio,
            "--bundle",
            bundle.to_str().unwrap(),
            id,
        ]);
    }

    /// The recorded exit of container `id`, once its helper wrote it (bounded wait).
    pub fn wait_exit(&self, id: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let state = self.state(id);
            if !state["exit"].is_null() {
                return state["exit"].clone();
            }
            assert!(std::time::Instant::now() < deadline, "{id} did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    /// Nothing of container `id` is left on the host: state dir, cgroups, processes.
    pub fn assert_no_leaks(&self, id: &str) {
        assert!(
            !self.root().join(id).exists(),
            "state dir of {id} left behind"
        );
        assert_no_cgroup(&cgroup_path(id));
        // The helper names its state dir on its command line: none may be left running.
        let needle = format!("{}/", self.root().join(id).display());
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !cmdline.contains(&needle),
                "process {} left behind: {cmdline}",
                entry.file_name().to_string_lossy()
            );
        }
        assert!(
            host_mounts_mentioning(&self.dir.path().display().to_string()).is_empty(),
            "host mounts left behind"
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Force-delete whatever a failed test left running.
        let root = self.root();
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                let _ = Command::new(SWARM)
                    .args(["runtime", "--root"])
                    .arg(&root)
                    .args(["delete", "--force", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// The cgroup of a test container: flat, named after `scripts/test.sh`'s per-run prefix so
/// its leak check can find what a test left behind.
pub fn cgroup_path(id: &str) -> String {
    let prefix = std::env::var("SWARM_TEST_CGROUP_PREFIX").unwrap_or_else(|_| "swarm-test".into());
    format!("{prefix}-{id}")
}

/// Run a command, print what it did (shown when a test fails), and return its output.
pub fn run_logged(command: &mut Command, label: &str) -> Output {
    let out = command.output().expect(label);
    eprintln!(
        "$ {label} -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn write_spec(bundle: &Path, spec: &Spec) {
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(spec).unwrap(),
    )
    .unwrap();
}

/// No directory of cgroup `path` remains in any hierarchy.
pub fn assert_no_cgroup(path: &str) {
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = entry.path().join(path);
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
}

/// Mounts of the host that mention `needle`.
pub fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

pub fn set_args(spec: &mut Spec, args: &[&str]) {
    let mut p = spec.process().clone().unwrap();
    p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    spec.set_process(Some(p));
}

/// Edit the spec's `linux.resources`.
pub fn with_resources(spec: &mut Spec, edit: impl FnOnce(&mut oci_spec::runtime::LinuxResources)) {
    let mut linux = spec.linux().clone().unwrap();
    let mut resources = linux.resources().clone().unwrap_or_default();
    edit(&mut resources);
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
}

/// Edit the spec's `process`.
pub fn with_process(spec: &mut Spec, edit: impl FnOnce(&mut oci_spec::runtime::Process)) {
    let mut process = spec.process().clone().unwrap();
    edit(&mut process);
    spec.set_process(Some(process));
}

/// One RLIMIT_NOFILE rlimit.
pub fn nofile(soft: u64, hard: u64) -> oci_spec::runtime::PosixRlimit {
    oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
        .soft(soft)
        .hard(hard)
        .build()
        .unwrap()
}
