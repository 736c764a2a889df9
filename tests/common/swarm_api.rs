//! A swarm on the netns hosts of `cluster.rs`, seen through the API as a user would: init and
//! join, bounded waits, the busybox image on every host, and services and their tasks.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster::{Cluster, Host};
use super::http::Api;

/// Poll `probe` every 100 ms until it returns `Some`, at most `limit`; the message names
/// `what` and the last thing `probe` saw (`last` is updated by the probe).
pub fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            eprintln!("    {what}: after {:.1}s", start.elapsed().as_secs_f64());
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Init on host 0, join hosts `1..managers` as managers and the rest up to `total` as
/// workers; wait (bounded) until host 0 sees every node ready. Returns each host's node ID.
pub fn bootstrap(c: &Cluster, managers: usize, total: usize) -> Vec<String> {
    eprintln!("--- swarm: init on h0, {managers} managers, {total} nodes");
    let h0 = c.host(0);
    h0.api().post_ok(
        "/swarm/init",
        &json!({"ListenAddr": h0.addr(), "AdvertiseAddr": h0.ip.to_string()}),
    );
    let tokens = h0.api().get_ok("/swarm")["JoinTokens"].clone();
    for i in 1..total {
        let role = if i < managers { "Manager" } else { "Worker" };
        join(c, i, tokens[role].as_str().expect("token"));
    }
    let ids: Vec<String> = (0..total)
        .map(|i| {
            c.api(i).get_ok("/info")["Swarm"]["NodeID"]
                .as_str()
                .expect("NodeID")
                .to_string()
        })
        .collect();
    wait_until(
        &format!("{total} nodes ready"),
        Duration::from_secs(60),
        || {
            let nodes = h0.api().get("/nodes").ok()?.json();
            let ready = nodes
                .as_array()?
                .iter()
                .filter(|n| n["Status"]["State"] == "ready")
                .count();
            (ready == total).then_some(())
        },
    );
    ids
}

/// `POST /swarm/join` of host `i` to host 0 with `token`.
pub fn join(c: &Cluster, i: usize, token: &str) {
    let host = c.host(i);
    let reply = host
        .api()
        .post(
            "/swarm/join",
            &json!({
                "ListenAddr": host.addr(),
                "AdvertiseAddr": host.ip.to_string(),
                "RemoteAddrs": [c.host(0).addr()],
                "JoinToken": token,
            }),
        )
        .expect("join answers");
    assert!(reply.ok(), "h{i} join: {reply}");
}

/// Import the busybox fixture as `busybox:test` into `host`'s image store.
pub fn import_busybox(host: &Host, scratch: &std::path::Path) {
    let tarball = scratch.join("busybox-rootfs.tar");
    if !tarball.exists() {
        let status = Command::new("tar")
            .arg("-C")
            .arg(super::fixture_rootfs())
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success(), "tar of the busybox fixture");
    }
    let out = host.swarm(&[
        "image",
        "import",
        tarball.to_str().unwrap(),
        "busybox:test",
        "--change",
        "CMD [\"sh\"]",
    ]);
    assert!(out.status.success(), "{}: image import", host.name);
}

/// `POST /services/create`; returns the service ID.
pub fn create_service(api: &Api, spec: &Value) -> String {
    let reply = api.post("/services/create", spec).expect("create answers");
    assert!(reply.ok(), "service create: {reply}");
    reply.json()["ID"].as_str().expect("ID").to_string()
}

/// The service's tasks, from `api`'s view.
pub fn tasks(api: &Api, service: &str) -> Vec<Value> {
    let filters = json!({ "service": [service] }).to_string();
    let path = format!("/tasks?filters={}", urlencode(&filters));
    match api.get(&path) {
        Ok(reply) if reply.ok() => reply.json().as_array().cloned().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Running tasks (desired and actual), counted by node ID.
pub fn running_per_node(api: &Api, service: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for task in tasks(api, service) {
        if task["Status"]["State"] == "running" && task["DesiredState"] == "running" {
            *counts
                .entry(task["NodeID"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    counts
}

/// Wait until exactly `want` tasks of the service run (desired and actual); returns the
/// counts per node.
pub fn wait_running(
    api: &Api,
    service: &str,
    want: usize,
    limit: Duration,
) -> BTreeMap<String, usize> {
    let mut last = BTreeMap::new();
    let start = Instant::now();
    loop {
        let counts = running_per_node(api, service);
        if counts.values().sum::<usize>() == want {
            eprintln!(
                "    {want} tasks of {service} running {counts:?}: after {:.1}s",
                start.elapsed().as_secs_f64()
            );
            return counts;
        }
        if counts != last {
            eprintln!("    {service}: running {counts:?}");
            last = counts;
        }
        assert!(
            start.elapsed() < limit,
            "{want} tasks of {service} not running within {limit:?}; tasks: {}",
            summary(&tasks(api, service))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `slot:state/desired@node err` of each task, for messages.
pub fn summary(tasks: &[Value]) -> String {
    tasks
        .iter()
        .map(|t| {
            format!(
                "{}:{}/{}@{} {}",
                t["Slot"],
                t["Status"]["State"].as_str().unwrap_or("?"),
                t["DesiredState"].as_str().unwrap_or("?"),
                &t["NodeID"].as_str().unwrap_or("-")
                    [..t["NodeID"].as_str().map_or(1, |s| s.len().min(6))],
                t["Status"]["Err"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// IDs of the containers of swarm tasks on a host (running or not).
pub fn task_containers(api: &Api) -> Vec<Value> {
    api.get_ok("/containers/json?all=1")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["Labels"]["com.docker.swarm.task.id"].is_string())
        .collect()
}
