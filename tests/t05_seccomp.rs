//! t05: the seccomp filter in a real kernel.
//!
//! The unit tests in `runtime::seccomp` run the compiled BPF in an interpreter; this file
//! checks that the kernel accepts the program `SeccompFilter::load` hands it and enforces it.
//!
//! A filter can never be removed, and forking the multi-threaded test harness is unsafe, so
//! the test re-executes this test binary with only itself selected and an environment marker;
//! that fresh child process loads the filter and probes it.

use std::process::Command;

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use swarm::runtime::seccomp::{SeccompFilter, docker_default_profile};
use swarm::runtime::spec::docker_default_capabilities;

const CHILD_MARKER: &str = "SWARM_T05_SECCOMP_CHILD";
const TEST_NAME: &str = "t05_docker_default_profile_is_enforced_by_the_kernel";

#[test]
fn t05_docker_default_profile_is_enforced_by_the_kernel() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        load_and_probe();
        return;
    }

    eprintln!("--- re-run this test in a child process, which loads the filter");
    let exe = std::env::current_exe().expect("path of the test binary");
    let output = Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .output()
        .expect("spawn the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Guard against a child that selected no test and "passed" vacuously.
    assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
}

/// Runs in the child process only.
fn load_and_probe() {
    eprintln!("--- compile Docker's default profile for Docker's default capabilities");
    let profile = docker_default_profile(&docker_default_capabilities());
    let filter = SeccompFilter::compile(&profile).expect("compile the default profile");

    eprintln!("--- set no_new_privs (the filter does not) and load the filter");
    nix::sys::prctl::set_no_new_privs().expect("set no_new_privs");
    filter.load().expect("the kernel accepts the filter");

    eprintln!("--- the kernel reports a filter on this thread");
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("read status");
    assert!(
        status.contains("Seccomp:\t2"),
        "not in filter mode:\n{status}"
    );
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");

    eprintln!("--- namespaces and vsock are refused with EPERM, by the filter");
    // Without the filter: root succeeds, others get EPERM from the capability check too, so
    // the socket probe below is the one that tells the filter apart for non-root runs.
    assert_eq!(unshare(CloneFlags::CLONE_NEWUTS), Err(Errno::EPERM));
    // Without the filter: a socket, or EAFNOSUPPORT when vsock is not loaded; never EPERM.
    let vsock = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    );
    assert_eq!(vsock.map(drop), Err(Errno::EPERM));

    eprintln!("--- ordinary work still works");
    let tcp = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    );
    assert!(tcp.is_ok(), "AF_INET socket: {tcp:?}");
    let dir = std::env::temp_dir().join(format!("swarm-t05-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("file"), b"ok").expect("write");
    assert_eq!(std::fs::read(dir.join("file")).expect("read"), b"ok");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let child = Command::new("/bin/true")
        .status()
        .expect("fork+exec under the filter");
    assert!(child.success());
}
