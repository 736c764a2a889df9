//! `swarm daemon` and its API: the socket, the Docker-shaped system endpoints, errors, the
//! real docker CLI against it, and a graceful stop.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::SWARM;
use common::daemon::{Daemon, spawn, wait_for_socket};

trait Curl {
    fn curl(&self, args: &[&str]) -> String;
}

impl Curl for Daemon {
    /// curl over the daemon's socket, with the response headers.
    fn curl(&self, args: &[&str]) -> String {
        let out = Command::new("curl")
            .args(["-s", "-i", "--unix-socket"])
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn t80_system_endpoints_answer_in_dockers_shape() {
    let d = Daemon::start("api");
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode");

    eprintln!("--- ping: headers the docker CLI negotiates with");
    let ping = d.curl(&["-I", "http://swarm/_ping"]);
    assert!(ping.contains("api-version: 1.50"), "{ping}");
    assert!(ping.contains("swarm: inactive"), "{ping}");
    assert!(d.curl(&["http://swarm/_ping"]).ends_with("OK"));

    eprintln!("--- versioned and unversioned paths");
    for path in ["/version", "/v1.24/version", "/v1.50/version"] {
        let answer = d.curl(&[&format!("http://swarm{path}")]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(
            answer.contains("\"ApiVersion\":\"1.50\""),
            "{path}: {answer}"
        );
    }
    let info = d.curl(&["http://swarm/v1.50/info"]);
    assert!(info.contains("\"LocalNodeState\":\"inactive\""), "{info}");

    eprintln!("--- errors are {{\"message\"}} with Content-Type exactly application/json");
    let old = d.curl(&["http://swarm/v1.12/info"]);
    assert!(old.starts_with("HTTP/1.1 400"), "{old}");
    assert!(old.contains("content-type: application/json\r\n"), "{old}");
    assert!(old.contains("too old"), "{old}");
    let new = d.curl(&["http://swarm/v1.99/info"]);
    assert!(new.contains("too new"), "{new}");
    let missing = d.curl(&["http://swarm/v1.50/no/such/thing"]);
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("{\"message\":"), "{missing}");
    assert!(missing.contains("api-version: 1.50"), "{missing}");
}

#[test]
fn t80_swarm_and_docker_clis_talk_to_the_daemon() {
    let d = Daemon::start("clis");
    let out = d.swarm(&["version"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("API version:  1.50 (minimum version 1.24)"));
    let out = d.swarm(&["info"]);
    assert!(stdout(&out).contains("Swarm: inactive"), "{}", stdout(&out));

    eprintln!("--- the real docker CLI");
    let out = d.docker(&[
        "version",
        "--format",
        "{{.Server.Platform.Name}} {{.Server.APIVersion}}",
    ]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "swarm 1.50");
    let out = d.docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.OSType}} {{.NCPU}}",
    ]);
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with("inactive linux "),
        "{}",
        stdout(&out)
    );

    eprintln!("--- $SWARM_HOST is used when -H is not given");
    let out = Command::new(SWARM)
        .env("SWARM_HOST", d.host())
        .arg("version")
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn t80_no_daemon_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let out = Command::new(SWARM)
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("info")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to the swarm daemon"), "{err}");
    assert!(err.contains("is `swarm daemon` running?"), "{err}");
    let out = Command::new(SWARM)
        .args(["-H", "tcp://127.0.0.1:1", "info"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("only unix://"));
}

#[test]
fn t80_one_daemon_per_socket_a_stale_socket_is_replaced_and_sigterm_stops_cleanly() {
    let mut d = Daemon::start("lifecycle");
    eprintln!("--- a second daemon on the same socket refuses to start");
    let second = Command::new(SWARM)
        .arg("daemon")
        .arg("--data-dir")
        .arg(d.dir.path().join("data2"))
        .arg("--exec-root")
        .arg(d.dir.path().join("run2"))
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already listening"));

    eprintln!("--- SIGTERM: a graceful stop that removes the socket");
    let mut child = d.child.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(!d.socket.exists(), "socket left behind");

    eprintln!("--- a socket file left by a dead daemon is replaced");
    let _stale = std::os::unix::net::UnixListener::bind(&d.socket).unwrap();
    drop(_stale);
    assert!(d.socket.exists());
    d.child = Some(spawn(d.dir.path(), &d.socket));
    wait_for_socket(&d.socket);
    assert!(d.swarm(&["info"]).status.success());
}
