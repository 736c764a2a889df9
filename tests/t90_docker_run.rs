//! `docker run` and its friends, with the real docker CLI (the one on PATH, and Debian's
//! 20.10 at /usr/bin/docker when it is there) against one real daemon: `run -d` returns and
//! the container runs, `run --rm` prints and leaves nothing, exit codes come back, `-i`
//! feeds stdin, `create` + `start -a`, `wait`, `stop`, `rm -f`, `logs`, `inspect`.
//!
//! The CLI opens `POST /containers/{id}/wait?condition=next-exit|removed` *before* it starts
//! the container and waits for the answer's headers, so the daemon must send them at once
//! and the body only when the condition holds. Checked here through the API too: the
//! headers of a wait arrive while the container still runs, `removed` answers with the exit
//! code once an AutoRemove container is gone, `rm -f` ends a `next-exit` wait with 137, bad
//! conditions are refused, and a client that goes away leaves no waiter behind (its pidfd
//! is closed).
//!
//! Every docker command runs under `timeout`, so a regression fails instead of hanging.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::Api;
use common::run_logged;
use serde_json::{Value, json};

/// Bound on one docker command (then SIGKILL 5 s later: the CLI ignores SIGTERM in `run`).
const COMMAND_TIMEOUT: &str = "60";
/// Bound on the daemon reacting to something (headers of a wait, a waiter going away).
const SETTLE: Duration = Duration::from_secs(20);

/// One docker CLI binary against the daemon.
struct Docker<'a> {
    bin: String,
    d: &'a Daemon,
}

impl Docker<'_> {
    /// `docker ARGS` under `timeout`, stdin from `input` (or nothing), logged.
    fn run_with(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut command = Command::new("timeout");
        command
            .args(["-k", "5", COMMAND_TIMEOUT, &self.bin])
            .args(args)
            .env("DOCKER_HOST", self.d.host())
            .env("DOCKER_CONFIG", self.d.dir.path().join("docker-config"))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let label = format!("{} {}", self.bin, args.join(" "));
        let Some(input) = input else {
            return run_logged(&mut command, &label);
        };
        let mut child = command.spawn().expect(&label);
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.as_bytes())
            .expect("write docker's stdin");
        drop(stdin);
        let out = child.wait_with_output().expect(&label);
        eprintln!(
            "$ {label} <<< {input:?} -> {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    /// Must succeed; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_not_timed_out(&out, args);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.bin,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The exit code, which must not be `timeout`'s.
    fn code(&self, args: &[&str]) -> i32 {
        let out = self.run(args);
        assert_not_timed_out(&out, args);
        out.status.code().expect("docker exited by a signal")
    }
}

fn assert_not_timed_out(out: &Output, args: &[&str]) {
    assert!(
        !matches!(out.status.code(), Some(124) | Some(137) | None),
        "docker {args:?} hung (killed after {COMMAND_TIMEOUT} s): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The docker CLIs to check: the one on PATH, and /usr/bin/docker if it is another one.
fn clients() -> Vec<String> {
    let version = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let mut out = vec!["docker".to_string()];
    let on_path = version("docker").expect("the docker CLI is installed");
    eprintln!("docker on PATH: {on_path}");
    if let Some(other) = version("/usr/bin/docker").filter(|v| *v != on_path) {
        eprintln!("/usr/bin/docker: {other}");
        out.push("/usr/bin/docker".into());
    }
    out
}

/// A POST without a body, as the docker CLI sends wait and start (a body could still be on
/// its way when the daemon, which reads none, has answered and closed).
fn post_empty(api: &Api, path: &str) -> common::http::Reply {
    api.request("POST", path, None, common::http::TIMEOUT)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// How many pidfds the daemon holds open: one per waiter on a live container.
fn daemon_pidfds(d: &Daemon) -> usize {
    let pid = d.child.as_ref().expect("daemon running").id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's fds")
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|target| target.to_string_lossy() == "anon_inode:[pidfd]")
        })
        .count()
}

fn wait_for_pidfds(d: &Daemon, want: impl Fn(usize) -> bool, what: &str) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let n = daemon_pidfds(d);
        if want(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the daemon still holds {n} pidfd(s) after {SETTLE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `POST /containers/{id}/wait` whose answer's head has arrived and whose body has not
/// been read yet.
struct PendingWait {
    stream: UnixStream,
    head: String,
}

impl PendingWait {
    /// Send the request and read up to the end of the headers (within `SETTLE`).
    fn open(socket: &Path, path: &str) -> PendingWait {
        let mut stream = UnixStream::connect(socket).expect("connect to the daemon");
        stream.set_read_timeout(Some(SETTLE)).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: swarm\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                Ok(_) => panic!(
                    "POST {path}: connection closed before the headers ended: {}",
                    String::from_utf8_lossy(&head)
                ),
                Err(e) => panic!(
                    "POST {path}: no answer headers within {SETTLE:?} ({e}); got {:?}",
                    String::from_utf8_lossy(&head)
                ),
            }
        }
        PendingWait {
            stream,
            head: String::from_utf8_lossy(&head).into_owned(),
        }
    }

    /// Read the rest of the answer (within `SETTLE`): the JSON body of the chunked stream.
    fn body(mut self) -> Value {
        let mut rest = Vec::new();
        if let Err(e) = self.stream.read_to_end(&mut rest) {
            panic!("the wait's body did not come within {SETTLE:?}: {e}");
        }
        let text = String::from_utf8_lossy(&rest);
        let (Some(start), Some(end)) = (text.find('{'), text.rfind('}')) else {
            panic!("no JSON in the wait's body: {text:?}");
        };
        serde_json::from_str(&text[start..=end]).unwrap_or_else(|e| panic!("{e}: {text:?}"))
    }
}

/// The `docker run` story with one CLI binary.
fn docker_run_story(docker: &Docker) {
    eprintln!(
        "--- [{}] run -d returns the id; the container runs",
        docker.bin
    );
    let id = docker.ok(&["run", "-d", "busybox:test", "sleep", "60"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id:?}");
    let running = docker.ok(&["ps", "-q", "--no-trunc"]);
    assert!(running.contains(&id), "ps lists {id}: {running}");
    let state = docker.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Running}}", &id]);
    assert_eq!(state.trim(), "running true");

    eprintln!(
        "--- [{}] stop, then wait says how it ended, then rm",
        docker.bin
    );
    docker.ok(&["stop", "-t", "1", &id]);
    // `sleep` as pid 1 ignores SIGTERM, so it was killed after the grace period.
    assert_eq!(docker.ok(&["wait", &id]).trim(), "137");
    assert!(!docker.ok(&["ps", "-q", "--no-trunc"]).contains(&id));
    docker.ok(&["rm", &id]);
    assert!(!docker.ok(&["ps", "-a", "-q", "--no-trunc"]).contains(&id));

    eprintln!(
        "--- [{}] run --rm prints the output and leaves no container",
        docker.bin
    );
    let out = docker.ok(&["run", "--rm", "busybox:test", "echo", "hi"]);
    assert_eq!(out, "hi\n");
    let left = docker.ok(&["ps", "-a", "-q"]);
    assert!(left.trim().is_empty(), "run --rm left containers: {left}");

    eprintln!("--- [{}] the exit code comes back, --rm or not", docker.bin);
    assert_eq!(
        docker.code(&["run", "--rm", "busybox:test", "sh", "-c", "exit 3"]),
        3
    );
    assert_eq!(
        docker.code(&[
            "run",
            "--name",
            "seven",
            "busybox:test",
            "sh",
            "-c",
            "echo bye; exit 7"
        ]),
        7
    );
    assert_eq!(docker.ok(&["wait", "seven"]).trim(), "7");
    assert_eq!(docker.ok(&["logs", "seven"]), "bye\n");
    let exit = docker.ok(&["inspect", "-f", "{{.State.ExitCode}}", "seven"]);
    assert_eq!(exit.trim(), "7");
    // An exited container cannot be started again here: refused (attach: 409), not hung.
    assert_eq!(docker.code(&["start", "-a", "seven"]), 1);
    docker.ok(&["rm", "seven"]);

    eprintln!(
        "--- [{}] run -i feeds our stdin to the container",
        docker.bin
    );
    let out = docker.run_with(
        &[
            "run",
            "-i",
            "--rm",
            "busybox:test",
            "sh",
            "-c",
            "read line; echo got:$line; exit 4",
        ],
        Some("piped\n"),
    );
    assert_not_timed_out(&out, &["run", "-i"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:piped\n");

    eprintln!("--- [{}] create, then start -a", docker.bin);
    let id = docker.ok(&["create", "busybox:test", "sh", "-c", "echo started; exit 5"]);
    let id = id.trim();
    let out = docker.run(&["start", "-a", id]);
    assert_not_timed_out(&out, &["start", "-a"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    docker.ok(&["rm", id]);

    eprintln!("--- [{}] rm -f removes a running container", docker.bin);
    let id = docker.ok(&["run", "-d", "busybox:test", "sleep", "60"]);
    docker.ok(&["rm", "-f", id.trim()]);
    let left = docker.ok(&["ps", "-a", "-q"]);
    assert!(left.trim().is_empty(), "rm -f left containers: {left}");
}

#[test]
fn t90_docker_run_against_the_daemon() {
    let d = Daemon::start("docker-run");
    d.import_busybox();
    let api = Api::new(&d.socket);

    for bin in clients() {
        docker_run_story(&Docker { bin, d: &d });
    }
    d.assert_no_runtime_leftovers();

    eprintln!("--- the CLI went away after run -d: its waiter is gone too");
    let docker = Docker {
        bin: "docker".into(),
        d: &d,
    };
    let id = docker.ok(&["run", "-d", "busybox:test", "sleep", "60"]);
    let id = id.trim().to_string();
    wait_for_pidfds(&d, |n| n == 0, "after run -d returned");

    eprintln!("--- a wait answers its headers at once, while the container runs");
    let pending = PendingWait::open(&d.socket, &format!("/containers/{id}/wait"));
    assert!(pending.head.starts_with("HTTP/1.1 200"), "{}", pending.head);
    assert!(
        pending
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        pending.head
    );
    wait_for_pidfds(&d, |n| n >= 1, "a wait on a running container");
    let state = api.get_ok(&format!("/containers/{id}/json"));
    assert_eq!(state["State"]["Running"], true, "{state}");

    eprintln!("--- its client hangs up: the waiter ends");
    drop(pending);
    wait_for_pidfds(&d, |n| n == 0, "after the waiting client hung up");

    eprintln!("--- rm -f ends a next-exit wait with the kill's code");
    let pending = PendingWait::open(
        &d.socket,
        &format!("/v1.50/containers/{id}/wait?condition=next-exit"),
    );
    docker.ok(&["rm", "-f", &id]);
    let body = pending.body();
    assert_eq!(body, json!({"StatusCode": 137, "Error": null}));

    eprintln!("--- condition=removed answers once an AutoRemove container is gone");
    let created = api.post_ok(
        "/containers/create",
        &json!({
            "Image": "busybox:test",
            "Cmd": ["sh", "-c", "exit 6"],
            "HostConfig": {"AutoRemove": true},
        }),
    );
    let id = created["Id"].as_str().expect("an Id").to_string();
    let removed = PendingWait::open(
        &d.socket,
        &format!("/containers/{id}/wait?condition=removed"),
    );
    // Opened before the start, as the docker CLI does: a next-exit wait too.
    let next_exit = PendingWait::open(
        &d.socket,
        &format!("/containers/{id}/wait?condition=next-exit"),
    );
    let started = post_empty(&api, &format!("/containers/{id}/start"));
    assert!(started.ok(), "start: {started}");
    assert_eq!(next_exit.body()["StatusCode"], 6);
    assert_eq!(removed.body()["StatusCode"], 6);
    let gone = api.get(&format!("/containers/{id}/json")).unwrap();
    assert_eq!(gone.status, 404, "removed means gone: {gone}");

    eprintln!("--- not-running answers at once for a container that is not running");
    let created = api.post_ok(
        "/containers/create",
        &json!({"Image": "busybox:test", "Cmd": ["true"]}),
    );
    let id = created["Id"].as_str().expect("an Id").to_string();
    let reply = post_empty(&api, &format!("/containers/{id}/wait"));
    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(reply.json(), json!({"StatusCode": 0, "Error": null}));

    eprintln!("--- bad requests: an unknown condition, a missing container");
    let reply = post_empty(&api, &format!("/containers/{id}/wait?condition=whenever"));
    assert_eq!(reply.status, 400, "{reply}");
    assert!(
        reply.message().contains("invalid condition: \"whenever\""),
        "{reply}"
    );
    let reply = post_empty(&api, "/containers/no-such-container/wait");
    assert_eq!(reply.status, 404, "{reply}");
    assert!(reply.message().contains("No such container"), "{reply}");
    let code = docker.code(&["wait", "no-such-container"]);
    assert_eq!(code, 1, "docker wait of a missing container fails");
    docker.ok(&["rm", &id]);

    d.assert_no_runtime_leftovers();
    assert_eq!(daemon_pidfds(&d), 0, "no waiter left");
}

#[test]
fn t90_rm_containers_are_still_removed_after_a_daemon_restart() {
    let mut d = Daemon::start("docker-run-restart");
    d.import_busybox();
    let docker = |d: &Daemon, args: &[&str]| {
        Docker {
            bin: "docker".into(),
            d,
        }
        .ok(args)
    };

    eprintln!("--- a --rm container runs on while the daemon is down");
    let id = docker(&d, &["run", "-d", "--rm", "busybox:test", "sleep", "60"]);
    let id = id.trim().to_string();
    d.kill();
    d.restart();
    let running = docker(&d, &["ps", "-q", "--no-trunc"]);
    assert!(running.contains(&id), "still running: {running}");

    eprintln!("--- the restarted daemon watches it again: stopped, it is removed");
    docker(&d, &["stop", "-t", "1", &id]);
    let deadline = Instant::now() + SETTLE;
    loop {
        let all = docker(&d, &["ps", "-a", "-q", "--no-trunc"]);
        if !all.contains(&id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the --rm container {id} was not removed within {SETTLE:?} of its stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.assert_no_runtime_leftovers();
}
