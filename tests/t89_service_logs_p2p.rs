//! t89: the node-to-node data paths of services, on three network-namespace hosts (h0
//! manager, h1 and h2 workers), through the API socket of h0 as a user would:
//!
//! - service logs gathered from every node over p2p: `GET /services/{id}/logs` in Docker's
//!   multiplexed stream with Docker's details (node, service, task IDs), `tail` per task,
//!   `timestamps`, stream selection, `follow` delivering lines written after the request
//!   started (on remote nodes too) and ending when the service is removed,
//!   `GET /tasks/{id}/logs`; our CLI `service logs` and the real docker CLI print
//!   `name.slot.task@host    | line`
//! - an image loaded by hand on h0 only, used by a service pinned to h1: h1 fetches it from
//!   h0's store over p2p, verified, and ends up with the same image ID; an image nobody has
//!   fails the task with an error that says so
//!
//! Image names point at a registry on loopback port 1 (nothing listens there), so the
//! agent's registry pull fails at once without any traffic leaving the hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::cluster::{Cluster, ClusterOptions};
use common::http::Api;

/// Timings for a busy 2-core machine (as t83).
const TIMING: &[&str] = &[
    "--raft-heartbeat-ms",
    "1000",
    "--raft-election-ms",
    "3000",
    "--node-heartbeat-ms",
    "1000",
    "--node-down-after-ms",
    "5000",
    "--propose-timeout-ms",
    "10000",
];
const SETTLE: Duration = Duration::from_secs(90);
const BUSYBOX: &str = "127.0.0.1:1/t89/busybox:test";
const HAND_LOADED: &str = "127.0.0.1:1/t89/hand-loaded:1";

/// Poll `probe` every 200 ms until it returns `Some`, at most `limit`.
fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            eprintln!("    {what}: after {:.1}s", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bootstrap(c: &Cluster) -> Vec<String> {
    eprintln!("--- bootstrap: init on h0, h1 and h2 join as workers");
    let h0 = c.host(0);
    h0.api().post_ok(
        "/swarm/init",
        &json!({"ListenAddr": h0.addr(), "AdvertiseAddr": h0.ip.to_string()}),
    );
    let token = h0.api().get_ok("/swarm")["JoinTokens"]["Worker"]
        .as_str()
        .expect("worker token")
        .to_owned();
    for i in 1..c.len() {
        let host = c.host(i);
        host.api().post_ok(
            "/swarm/join",
            &json!({
                "ListenAddr": host.addr(),
                "AdvertiseAddr": host.ip.to_string(),
                "RemoteAddrs": [h0.addr()],
                "JoinToken": token,
            }),
        );
    }
    wait_until("3 ready nodes", SETTLE, || {
        let nodes = h0.api().get("/nodes").ok()?;
        let nodes = nodes.json();
        let ready = nodes
            .as_array()?
            .iter()
            .filter(|n| n["Status"]["State"] == "ready")
            .count();
        (ready == 3).then_some(())
    });
    (0..c.len())
        .map(|i| {
            c.api(i).get_ok("/info")["Swarm"]["NodeID"]
                .as_str()
                .expect("NodeID")
                .to_owned()
        })
        .collect()
}

/// A tarball of the busybox test rootfs.
fn rootfs_tar(dir: &Path) -> String {
    let tarball = dir.join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(common::fixture_rootfs())
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    tarball.to_string_lossy().into_owned()
}

fn import(c: &Cluster, host: usize, tarball: &str, name: &str) {
    let out = c
        .host(host)
        .swarm(&["image", "import", tarball, name, "--change", "CMD [\"sh\"]"]);
    assert!(
        out.status.success(),
        "import on h{host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn tasks_of(api: &Api, service: &str) -> Vec<Value> {
    let filters = escape(&json!({"service": [service]}).to_string());
    api.get_ok(&format!("/tasks?filters={filters}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Docker's multiplexed stream into (stream, line) frames.
fn frames(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        assert!(rest.len() >= 8 + len, "a truncated frame");
        out.push((
            rest[0],
            String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
        ));
        rest = &rest[8 + len..];
    }
    assert!(
        rest.is_empty(),
        "{} stray bytes after the frames",
        rest.len()
    );
    out
}

/// A line with details: (node, service, task, text).
fn details(line: &str) -> (String, String, String, String) {
    let (details, text) = line.split_once(' ').expect("details, then the line");
    let map: BTreeMap<&str, &str> = details
        .split(',')
        .map(|kv| kv.split_once('=').expect("k=v"))
        .collect();
    let get = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
    (
        get("com.docker.swarm.node.id"),
        get("com.docker.swarm.service.id"),
        get("com.docker.swarm.task.id"),
        text.to_owned(),
    )
}

fn logs(api: &Api, path: &str) -> Vec<(u8, String)> {
    let reply = api.get(path).expect("logs answer");
    assert!(reply.ok(), "GET {path}: {reply}");
    frames(&reply.body)
}

/// The counter of a `line N` text.
fn counter(text: &str) -> Option<u64> {
    text.strip_prefix("line ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open `GET path` (a followed stream) and read until `done` says the frames so far are
/// enough, at most `limit`. Returns the frames read.
fn follow(
    socket: &Path,
    path: &str,
    limit: Duration,
    mut done: impl FnMut(&[(u8, String)]) -> bool,
) -> Vec<(u8, String)> {
    let mut stream = UnixStream::connect(socket).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: swarm\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "follow {path}: not done within {limit:?}");
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => panic!("follow {path}: the stream ended early"),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("follow {path}: {e}"),
        }
        let got = dechunked_frames(&raw);
        if done(&got) {
            return got;
        }
    }
}

/// Frames in a partial chunked HTTP answer (each frame is one chunk, as the daemon sends).
fn dechunked_frames(raw: &[u8]) -> Vec<(u8, String)> {
    let Some(start) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Vec::new();
    };
    let mut rest = &raw[start + 4..];
    let mut body = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let Some(size) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            break;
        };
        if size == 0 || rest.len() < end + 2 + size + 2 {
            break;
        }
        body.extend_from_slice(&rest[end + 2..end + 2 + size]);
        rest = &rest[end + 2 + size + 2..];
    }
    let mut out = Vec::new();
    let mut b = &body[..];
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        if b.len() < 8 + len {
            break;
        }
        out.push((b[0], String::from_utf8_lossy(&b[8..8 + len]).into_owned()));
        b = &b[8 + len..];
    }
    out
}

fn docker(c: &Cluster, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("docker");
    command
        .env(
            "DOCKER_HOST",
            format!("unix://{}", c.host(0).socket.display()),
        )
        .env("DOCKER_CONFIG", c.dir().join("docker-config"))
        .args(args);
    common::run_logged(&mut command, &format!("docker {}", args.join(" ")))
}

fn remove_and_wait(c: &Cluster, service: &str) {
    remove_and_wait_on(c, service, &[0, 1, 2]);
}

fn remove_and_wait_on(c: &Cluster, service: &str, hosts: &[usize]) {
    let reply = c
        .api(0)
        .delete(&format!("/services/{service}"))
        .expect("rm");
    assert!(reply.ok(), "rm {service}: {reply}");
    wait_until(
        &format!("{service}: no container left on any host"),
        SETTLE,
        || {
            hosts
                .iter()
                .all(|&i| {
                    c.api(i)
                        .get_ok("/containers/json?all=1")
                        .as_array()
                        .is_some_and(|a| {
                            a.iter()
                                .all(|x| x["Labels"]["com.docker.swarm.service.name"] != service)
                        })
                })
                .then_some(())
        },
    );
}

#[test]
fn t10_service_logs_from_every_node_and_images_from_a_peer() {
    let c = Cluster::start_with(
        3,
        ClusterOptions {
            daemon_args: TIMING.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    let node_ids = bootstrap(&c);
    let tarball = rootfs_tar(c.dir());
    for i in 0..c.len() {
        import(&c, i, &tarball, BUSYBOX);
    }
    let api = c.api(0);

    eprintln!("--- a service of 3 replicas spreads over the 3 nodes and talks");
    let script = "i=0; while :; do echo \"line $i from $(hostname)\"; echo \"err $i\" >&2; \
                  i=$((i+1)); sleep 1; done";
    let created = api.post_ok(
        "/services/create",
        &json!({
            "Name": "talker",
            "TaskTemplate": {"ContainerSpec": {
                "Image": BUSYBOX, "Args": ["sh", "-c", script], "StopGracePeriod": 1_000_000_000u64,
            }},
            "Mode": {"Replicated": {"Replicas": 3}},
        }),
    );
    let service_id = created["ID"].as_str().expect("ID").to_owned();
    let tasks = wait_until("3 running tasks on 3 nodes", SETTLE, || {
        let tasks: Vec<Value> = tasks_of(&api, "talker")
            .into_iter()
            .filter(|t| t["Status"]["State"] == "running")
            .collect();
        let nodes: BTreeSet<&str> = tasks.iter().filter_map(|t| t["NodeID"].as_str()).collect();
        (tasks.len() == 3 && nodes.len() == 3).then(|| tasks.clone())
    });
    // task id → node id
    let placed: BTreeMap<String, String> = tasks
        .iter()
        .map(|t| {
            (
                t["ID"].as_str().unwrap().to_owned(),
                t["NodeID"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let all_path = "/services/talker/logs?stdout=1&stderr=1&details=1";
    let lines = wait_until("3 lines of every task", SETTLE, || {
        let lines = logs(&api, all_path);
        let enough = placed.keys().all(|task| {
            lines
                .iter()
                .filter(|(s, l)| *s == 1 && details(l).2 == *task)
                .count()
                >= 3
        });
        enough.then_some(lines)
    });

    eprintln!("--- every line carries its node, service and task; stderr on stream 2");
    for (stream, line) in &lines {
        let (node, service, task, text) = details(line);
        assert_eq!(service, service_id, "{line}");
        assert_eq!(placed.get(&task), Some(&node), "task on its node: {line}");
        match stream {
            1 => assert!(text.starts_with("line ") && text.ends_with('\n'), "{line}"),
            2 => assert!(text.starts_with("err "), "{line}"),
            other => panic!("stream {other}: {line}"),
        }
    }
    for (task, node) in &placed {
        assert!(
            lines.iter().any(|(s, l)| *s == 2 && details(l).2 == *task),
            "stderr of task {task} on node {node}"
        );
    }
    assert!(
        node_ids.iter().all(|n| placed.values().any(|p| p == n)),
        "a task on every node"
    );

    eprintln!("--- tail is per task; stdout only; timestamps in front of the details");
    let tail = logs(
        &api,
        "/services/talker/logs?stdout=1&details=1&tail=2&timestamps=1",
    );
    assert_eq!(tail.len(), 6, "2 lines of each of 3 tasks: {tail:?}");
    for task in placed.keys() {
        let mine: Vec<&(u8, String)> = tail
            .iter()
            .filter(|(_, l)| l.contains(&format!("com.docker.swarm.task.id={task} ")))
            .collect();
        assert_eq!(mine.len(), 2, "tail 2 of {task}: {tail:?}");
    }
    let mut previous = String::new();
    for (stream, line) in &tail {
        assert_eq!(*stream, 1, "stdout only: {line}");
        let (time, rest) = line.split_once(' ').expect("timestamp first");
        assert!(
            time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "RFC 3339 with nanoseconds: {time}"
        );
        assert!(time >= previous.as_str(), "merged by time: {tail:?}");
        previous = time.to_owned();
        assert!(rest.starts_with("com.docker.swarm.node.id="), "{line}");
    }
    let plain = logs(&api, "/services/talker/logs?stderr=1&tail=1");
    assert_eq!(plain.len(), 3);
    assert!(
        plain.iter().all(|(s, l)| *s == 2 && l.starts_with("err ")),
        "no details asked: the bare line {plain:?}"
    );

    eprintln!("--- /tasks/{{id}}/logs of a task on h2, asked on h0");
    let (remote_task, _) = placed
        .iter()
        .find(|(_, n)| **n == node_ids[2])
        .expect("a task on h2");
    let one = logs(
        &api,
        &format!("/tasks/{remote_task}/logs?stdout=1&details=1"),
    );
    assert!(one.len() >= 3, "{one:?}");
    assert!(one.iter().all(|(_, l)| details(l).2 == *remote_task));

    eprintln!("--- bad requests are refused with a reason");
    let reply = api.get("/services/talker/logs").unwrap();
    assert_eq!(reply.status, 400, "{reply}");
    assert!(
        reply.message().contains("choose at least one stream"),
        "{reply}"
    );
    let reply = api.get("/services/nope/logs?stdout=1").unwrap();
    assert_eq!(reply.status, 404, "{reply}");
    let reply = api
        .get("/services/talker/logs?stdout=1&since=soon")
        .unwrap();
    assert_eq!(reply.status, 400, "{reply}");

    eprintln!("--- follow: lines written after the request started, from every node");
    let before: BTreeMap<String, u64> = logs(&api, all_path)
        .iter()
        .filter(|(s, _)| *s == 1)
        .map(|(_, l)| details(l))
        .fold(BTreeMap::new(), |mut m, (_, _, task, text)| {
            let n = counter(&text).unwrap_or(0);
            let e = m.entry(task).or_insert(0);
            *e = (*e).max(n);
            m
        });
    let followed = follow(
        &c.host(0).socket,
        "/services/talker/logs?stdout=1&details=1&follow=1&tail=0",
        Duration::from_secs(60),
        |frames| {
            placed.keys().all(|task| {
                frames.iter().any(|(_, l)| {
                    let (_, _, t, text) = details(l);
                    t == *task && counter(&text).is_some_and(|n| n > before[task])
                })
            })
        },
    );
    eprintln!("    {} lines followed", followed.len());

    // The last 2 lines of each task are one `line N` (stdout) and one `err M` (stderr).
    eprintln!("--- our CLI: name.slot.task@host    | line");
    let out = c
        .host(0)
        .swarm(&["service", "logs", "--tail", "2", "talker"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (task, node) in &placed {
        let slot = tasks
            .iter()
            .find(|t| t["ID"] == task.as_str())
            .and_then(|t| t["Slot"].as_u64())
            .unwrap();
        let host = node_ids.iter().position(|n| n == node).unwrap();
        let label = format!("talker.{slot}.{}@h{host}    | line ", &task[..12]);
        assert!(stdout.contains(&label), "{label:?} in\n{stdout}");
        let label = format!("talker.{slot}.{}@h{host}    | err ", &task[..12]);
        assert!(stderr.contains(&label), "{label:?} in\n{stderr}");
    }
    let out = c.host(0).swarm(&[
        "service",
        "logs",
        "--tail",
        "2",
        "--no-task-ids",
        "--timestamps",
        "talker",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    for line in stdout.lines() {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(time.ends_with('Z'), "{line}");
        assert!(
            rest.starts_with("talker.") && rest.contains("    | line "),
            "{line}"
        );
        let name = rest.split('@').next().unwrap();
        assert_eq!(name.matches('.').count(), 1, "no task id: {line}");
    }
    let out = c
        .host(0)
        .swarm(&["service", "logs", "--raw", "--tail", "2", "talker"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().count() == 3 && stdout.lines().all(|l| l.starts_with("line ")),
        "{stdout}"
    );

    if Command::new("docker").arg("--version").output().is_ok() {
        eprintln!("--- the docker CLI prints the same shape");
        let out = docker(&c, &["service", "logs", "--tail", "2", "talker"]);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().filter(|l| l.contains("    | line ")).count(),
            3,
            "{stdout}"
        );
        for host in ["@h0", "@h1", "@h2"] {
            assert!(stdout.contains(host), "{host} in\n{stdout}");
        }
    }

    eprintln!("--- a followed stream ends when the service is removed");
    let socket = c.host(0).socket.clone();
    let reader = std::thread::spawn(move || {
        common::http::request(
            &socket,
            "GET",
            "/services/talker/logs?stdout=1&follow=1&tail=0",
            None,
            Duration::from_secs(60),
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    remove_and_wait(&c, "talker");
    let ended = reader.join().expect("reader thread");
    assert!(
        ended.as_ref().is_ok_and(|r| r.ok()),
        "the stream ends: {ended:?}"
    );

    eprintln!("--- an image loaded by hand on h0 only runs on h1: fetched from h0 over p2p");
    import(&c, 0, &tarball, HAND_LOADED);
    let image_path = format!("/images/{HAND_LOADED}/json");
    let on_h0 = api.get_ok(&image_path);
    assert_eq!(
        c.api(1).get(&image_path).unwrap().status,
        404,
        "not on h1 yet"
    );
    api.post_ok(
        "/services/create",
        &json!({
            "Name": "fetched",
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": HAND_LOADED,
                    "Args": ["sh", "-c", "echo fetched ok; sleep 600"],
                    "StopGracePeriod": 1_000_000_000u64,
                },
                "Placement": {"Constraints": ["node.hostname==h1"]},
            },
            "Mode": {"Replicated": {"Replicas": 1}},
        }),
    );
    let mut last = Value::Null;
    wait_until("the task runs on h1", SETTLE, || {
        let tasks = tasks_of(&api, "fetched");
        last = json!(
            tasks
                .iter()
                .map(|t| json!([t["Status"]["State"], t["Status"]["Err"]]))
                .collect::<Vec<_>>()
        );
        tasks
            .iter()
            .any(|t| t["Status"]["State"] == "running" && t["NodeID"] == node_ids[1].as_str())
            .then_some(())
    });
    eprintln!("    last task states: {last}");
    let on_h1 = c.api(1).get_ok(&image_path);
    assert_eq!(on_h1["Id"], on_h0["Id"], "the same image on h1");
    assert_eq!(on_h1["RootFS"], on_h0["RootFS"], "the same layers");
    assert_eq!(
        c.api(2).get(&image_path).unwrap().status,
        404,
        "h2 never asked"
    );
    let fetched = wait_until("its log", SETTLE, || {
        let l = logs(&api, "/services/fetched/logs?stdout=1");
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(fetched[0].1, "fetched ok\n");
    remove_and_wait(&c, "fetched");

    eprintln!("--- an image no node has: the task error says so");
    api.post_ok(
        "/services/create",
        &json!({
            "Name": "missing",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "127.0.0.1:1/t89/nowhere:1"},
                "Placement": {"Constraints": ["node.hostname==h2"]},
            },
            "Mode": {"Replicated": {"Replicas": 1}},
        }),
    );
    let err = wait_until("a task error", SETTLE, || {
        tasks_of(&api, "missing")
            .iter()
            .filter_map(|t| t["Status"]["Err"].as_str().map(str::to_owned))
            .find(|e| !e.is_empty())
    });
    assert!(
        err.contains("No such image: 127.0.0.1:1/t89/nowhere:1")
            && err.contains("no other Ready node has it"),
        "{err}"
    );
    remove_and_wait(&c, "missing");

    eprintln!("--- a task on a node that died: a warning line in its name, no hang");
    let mut c = c;
    api.post_ok(
        "/services/create",
        &json!({
            "Name": "lonely",
            "TaskTemplate": {
                "ContainerSpec": {"Image": BUSYBOX, "Args": ["sh", "-c", script]},
                "Placement": {"Constraints": ["node.hostname==h2"]},
            },
            "Mode": {"Replicated": {"Replicas": 1}},
        }),
    );
    let lonely = wait_until("lonely runs on h2", SETTLE, || {
        tasks_of(&api, "lonely")
            .into_iter()
            .find(|t| t["Status"]["State"] == "running")
            .and_then(|t| t["ID"].as_str().map(str::to_owned))
    });
    wait_until("a line of lonely", SETTLE, || {
        (!logs(&api, "/services/lonely/logs?stdout=1").is_empty()).then_some(())
    });
    c.kill9(2);
    let warned = |lines: &[(u8, String)], needle: &str| {
        lines.iter().any(|(s, l)| {
            let (node, _, task, text) = details(l);
            *s == 2 && task == lonely && node == node_ids[2] && text.contains(needle)
        })
    };
    let start = Instant::now();
    let lines = logs(&api, "/services/lonely/logs?stdout=1&stderr=1&details=1");
    eprintln!(
        "    answered in {:.1}s: {lines:?}",
        start.elapsed().as_secs_f64()
    );
    assert!(warned(&lines, "warning: "), "{lines:?}");
    wait_until("h2 is down", SETTLE, || {
        (api.get_ok(&format!("/nodes/{}", node_ids[2]))["Status"]["State"] == "down").then_some(())
    });
    let lines = logs(&api, "/services/lonely/logs?stdout=1&stderr=1&details=1");
    assert!(warned(&lines, "node h2 is down"), "{lines:?}");
    remove_and_wait_on(&c, "lonely", &[0, 1]);
}
