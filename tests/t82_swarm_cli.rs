//! Swarm mode through real daemons on loopback: the real docker CLI's `swarm` and `node`
//! commands (init, join, join-token, rotation, leave, node ls/inspect/update/promote/demote/rm),
//! our own CLI's, restarts from disk, and the API's answers to bad input.
//!
//! Each daemon listens for cluster traffic on its own loopback port. Timing is relaxed for a
//! busy 2-core machine (several debug daemons and parallel tests); every wait is bounded.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::daemon::Daemon;

const SETTLE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A daemon whose cluster traffic uses its own loopback port.
fn node(name: &str) -> (Daemon, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args: Vec<String> = [
        "--listen-addr",
        &listen,
        "--advertise-addr",
        "127.0.0.1",
        "--raft-heartbeat-ms",
        "500",
        "--raft-election-ms",
        "2500",
        "--node-heartbeat-ms",
        "300",
        "--node-down-after-ms",
        "3000",
        "--propose-timeout-ms",
        "15000",
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    (Daemon::start_with(name, &args), listen)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn docker_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

fn docker_err(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(!out.status.success(), "docker {args:?} should have failed");
    stderr(&out)
}

/// curl over the socket: (status, body).
fn curl(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .args(["-X", method]);
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = c.arg(format!("http://swarm{path}")).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn json(d: &Daemon, path: &str) -> serde_json::Value {
    let (code, body) = curl(d, "GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn node_id(d: &Daemon) -> String {
    json(d, "/info")["Swarm"]["NodeID"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls until `check` holds, at most `SETTLE`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < SETTLE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("    {what}: {:?}", start.elapsed());
}

#[test]
fn t82_docker_cli_drives_swarm_mode() {
    let (d1, addr1) = node("m1");
    let (mut d2, _) = node("m2");
    let (d3, _) = node("w3");

    eprintln!("--- docker swarm init prints the join command");
    let init = docker_ok(&d1, &["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    assert!(init.contains("Swarm initialized"), "{init}");
    let join_line = format!("127.0.0.1:{}", addr1.rsplit(':').next().unwrap());
    assert!(
        init.contains("docker swarm join --token SWMTKN-1-"),
        "{init}"
    );
    assert!(init.contains(&join_line), "{init}");
    let again = docker_err(&d1, &["swarm", "init"]);
    assert!(again.contains("already part of a swarm"), "{again}");

    let worker_token = docker_ok(&d1, &["swarm", "join-token", "-q", "worker"])
        .trim()
        .to_owned();
    let manager_token = docker_ok(&d1, &["swarm", "join-token", "-q", "manager"])
        .trim()
        .to_owned();
    assert_ne!(worker_token, manager_token);
    let shown = docker_ok(&d1, &["swarm", "join-token", "manager"]);
    assert!(
        shown.contains(&manager_token) && shown.contains(&join_line),
        "{shown}"
    );

    eprintln!("--- a wrong token is refused; the right ones join");
    let last = if worker_token.ends_with('x') {
        "y"
    } else {
        "x"
    };
    let wrong = format!("{}{last}", &worker_token[..worker_token.len() - 1]);
    let refused = docker_err(&d3, &["swarm", "join", "--token", &wrong, &addr1]);
    assert!(refused.contains("invalid join token"), "{refused}");
    assert_eq!(json(&d3, "/info")["Swarm"]["LocalNodeState"], "inactive");

    let joined = docker_ok(&d2, &["swarm", "join", "--token", &manager_token, &addr1]);
    assert!(joined.contains("joined a swarm as a manager"), "{joined}");
    let joined = docker_ok(&d3, &["swarm", "join", "--token", &worker_token, &addr1]);
    assert!(joined.contains("joined a swarm as a worker"), "{joined}");

    let (id1, id2, id3) = (node_id(&d1), node_id(&d2), node_id(&d3));
    eprintln!("    m1={id1} m2={id2} w3={id3}");

    eprintln!("--- docker info and node ls");
    let info = docker_ok(&d1, &["info"]);
    assert!(info.contains("Swarm: active"), "{info}");
    assert!(info.contains("Is Manager: true"), "{info}");
    assert!(info.contains("Nodes: 3"), "{info}");
    assert!(info.contains("Managers: 2"), "{info}");
    eventually("both managers reachable", || {
        let ls = stdout(&d1.docker(&["node", "ls"]));
        ls.contains("Leader") && ls.contains("Reachable")
    });
    let ls = docker_ok(&d1, &["node", "ls"]);
    assert_eq!(ls.lines().count(), 4, "{ls}");
    assert!(ls.contains(&format!("{id1} *")), "{ls}");
    assert_eq!(ls.matches("Ready").count(), 3, "{ls}");
    let from_worker = docker_err(&d3, &["node", "ls"]);
    assert!(from_worker.contains("not a swarm manager"), "{from_worker}");
    // A follower manager answers too (a linearizable read through the leader).
    let ls2 = docker_ok(&d2, &["node", "ls"]);
    assert!(ls2.contains(&format!("{id2} *")), "{ls2}");
    let workers = docker_ok(&d1, &["node", "ls", "-q", "--filter", "role=worker"]);
    assert_eq!(workers.trim(), id3);

    eprintln!("--- node update, inspect, optimistic concurrency");
    docker_ok(
        &d1,
        &[
            "node",
            "update",
            "--availability",
            "drain",
            "--label-add",
            "zone=a",
            &id3[..8],
        ],
    );
    let n3 = json(&d2, &format!("/nodes/{id3}"));
    assert_eq!(n3["Spec"]["Availability"], "drain");
    assert_eq!(n3["Spec"]["Labels"]["zone"], "a");
    assert!(n3.get("ManagerStatus").is_none(), "{n3}");
    let pretty = docker_ok(&d1, &["node", "inspect", "--pretty", "self"]);
    assert!(
        pretty.contains(&id1) && pretty.contains("Leader"),
        "{pretty}"
    );
    let stale = curl(
        &d1,
        "POST",
        &format!("/nodes/{id3}/update?version=1"),
        Some(r#"{"Role":"worker","Availability":"active"}"#),
    );
    assert_eq!(stale.0, 409, "{stale:?}");
    assert!(stale.1.contains("update out of sequence"), "{stale:?}");
    docker_ok(
        &d1,
        &[
            "node",
            "update",
            "--availability",
            "active",
            "--label-rm",
            "zone",
            &id3,
        ],
    );

    eprintln!("--- bad input gets a 400 with a message and changes nothing");
    for (path, body) in [
        ("/swarm/init", "{"),
        ("/swarm/join", r#"{"RemoteAddrs":"x"}"#),
        (&*format!("/nodes/{id3}/update?version=5"), r#"{"Role":7}"#),
        (&*format!("/nodes/{id3}/update"), r#"{"Role":"worker"}"#),
        ("/swarm/update?version=x", "{}"),
    ] {
        let (code, answer) = curl(&d1, "POST", path, Some(body));
        assert_eq!(code, 400, "POST {path} {body}: {answer}");
        let message: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(message["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (code, _) = curl(&d1, "GET", "/nodes?filters=%7B", None);
    assert_eq!(code, 400);
    let (code, _) = curl(&d1, "GET", "/nodes/nosuchnode", None);
    assert_eq!(code, 404);
    assert_eq!(
        json(&d1, &format!("/nodes/{id3}"))["Spec"]["Role"],
        "worker"
    );

    eprintln!("--- promote the worker, demote a manager");
    let promoted = docker_ok(&d1, &["node", "promote", &id3]);
    assert!(promoted.contains("promoted to a manager"), "{promoted}");
    eventually("w3 becomes a manager", || {
        json(&d1, &format!("/nodes/{id3}"))["ManagerStatus"]["Reachability"] == "reachable"
    });
    eventually("w3's daemon says it is a manager", || {
        json(&d3, "/info")["Swarm"]["ControlAvailable"] == true
    });
    let demoted = docker_ok(&d1, &["node", "demote", &id2]);
    assert!(demoted.contains("demoted in the swarm"), "{demoted}");
    eventually("m2 becomes a worker", || {
        json(&d1, &format!("/nodes/{id2}"))
            .get("ManagerStatus")
            .is_none()
    });
    eventually("m2's daemon says it is a worker", || {
        json(&d2, "/info")["Swarm"]["ControlAvailable"] == false
    });

    eprintln!("--- token rotation: the old worker token stops working");
    let rotated = docker_ok(&d1, &["swarm", "join-token", "--rotate", "-q", "worker"])
        .trim()
        .to_owned();
    assert_ne!(rotated, worker_token);
    let (d4, _) = node("w4");
    let refused = docker_err(&d4, &["swarm", "join", "--token", &worker_token, &addr1]);
    assert!(refused.contains("invalid join token"), "{refused}");
    docker_ok(&d4, &["swarm", "join", "--token", &rotated, &addr1]);
    let id4 = node_id(&d4);

    eprintln!("--- node rm: a ready node needs --force; a removed node goes inactive");
    let not_down = docker_err(&d1, &["node", "rm", &id4]);
    assert!(not_down.contains("is not down"), "{not_down}");
    docker_ok(&d1, &["node", "rm", "--force", &id4]);
    eventually("w4's daemon notices its removal", || {
        json(&d4, "/info")["Swarm"]["LocalNodeState"] == "inactive"
    });
    let managers_only = docker_err(&d1, &["node", "rm", &id3]);
    assert!(managers_only.contains("must be demoted"), "{managers_only}");

    eprintln!("--- leave: a worker leaves and shows Down; a quorum-breaking leave is refused");
    let left = docker_ok(&d2, &["swarm", "leave"]);
    assert!(left.contains("Node left the swarm."), "{left}");
    assert_eq!(json(&d2, "/info")["Swarm"]["LocalNodeState"], "inactive");
    eventually("m2 shown down after leaving", || {
        json(&d1, &format!("/nodes/{id2}"))["Status"]["State"] == "down"
    });
    docker_ok(&d1, &["node", "rm", &id2]);
    let refused = docker_err(&d1, &["swarm", "leave"]);
    assert!(refused.contains("participating as a manager"), "{refused}");

    eprintln!("--- a restarted manager resumes from disk with the same identity");
    d2.kill();
    drop(d2);
    let mut d1 = d1;
    d1.restart();
    eventually("m1 back in the swarm", || {
        let info = json(&d1, "/info");
        info["Swarm"]["LocalNodeState"] == "active" && info["Swarm"]["NodeID"] == id1.as_str()
    });
    eventually("a leader after the restart", || {
        stdout(&d1.docker(&["node", "ls"])).contains("Leader")
    });
    let ls = docker_ok(&d1, &["node", "ls"]);
    assert!(ls.contains(&id1) && ls.contains(&id3), "{ls}");
    assert!(!ls.contains(&id2) && !ls.contains(&id4), "{ls}");
}

#[test]
fn t82_swarm_cli_init_join_and_nodes() {
    let (d1, addr1) = node("cli-m1");
    let (d2, _) = node("cli-w2");

    let init = d1.ok(&["init"]);
    assert!(init.contains("is now a manager"), "{init}");
    assert_eq!(
        init.matches("swarm join --token SWMTKN-1-").count(),
        2,
        "both join commands: {init}"
    );
    let token = d1.ok(&["join-token", "-q", "worker"]).trim().to_owned();
    let joined = d2.ok(&["join", "--token", &token, &addr1]);
    assert!(joined.contains("as a worker"), "{joined}");

    let ls = d1.ok(&["node", "ls"]);
    assert!(ls.contains("MANAGER STATUS"), "{ls}");
    assert!(ls.contains("Leader") && ls.contains(" * "), "{ls}");
    assert_eq!(ls.lines().count(), 3, "{ls}");
    let inspect = d1.ok(&["node", "inspect", "self"]);
    let parsed: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(parsed[0]["Spec"]["Role"], "manager");
    let pretty = d1.ok(&["node", "inspect", "--pretty", "self"]);
    assert!(
        pretty.contains("Leader:") && pretty.contains("Yes"),
        "{pretty}"
    );

    let w2 = node_id(&d2);
    d1.ok(&["node", "update", "--label-add", "disk=ssd", &w2]);
    let filtered = d1.ok(&["node", "ls", "-q", "--filter", "node.label=disk=ssd"]);
    assert_eq!(filtered.trim(), w2);

    let out = d2.swarm(&["node", "ls"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a swarm manager"),
        "{}",
        stderr(&out)
    );
    assert!(d2.ok(&["leave"]).contains("Node left the swarm."));
    let out = d1.swarm(&["leave"]);
    assert!(!out.status.success());
    assert!(
        d1.ok(&["leave", "--force"])
            .contains("Node left the swarm.")
    );
    assert_eq!(json(&d1, "/info")["Swarm"]["LocalNodeState"], "inactive");
    // A node that left may init a new swarm.
    assert!(d1.ok(&["init"]).contains("is now a manager"));
}
