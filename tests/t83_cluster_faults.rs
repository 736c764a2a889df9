//! t83: a real cluster under faults. Every node is a `swarm daemon` on its own
//! network-namespace host (`tests/common/cluster.rs`); the test talks to each over its API
//! socket, as a user would, and records what was acknowledged.
//!
//! Scenarios (shared/reference/security-and-faults.md §1.5):
//! - bootstrap of 3 managers + 2 workers through the API; join with a wrong or rotated token
//!   refused; malformed API bodies answered 400 with a message; garbage on port 2377 ignored
//! - F1  kill -9 the leader under a stream of writes: a new leader takes over and every
//!   acknowledged write is still there (the old leader rejoins)
//! - F3  the leader isolated alone acknowledges nothing; the majority elects and writes
//! - F4  2 of 3 managers isolated: a write on the third fails with a clear "no leader"
//!   error within a bound, never hangs; after the heal writes work again
//! - F16 kill -9 every node, restart in random order: the same nodes and labels come back
//!
//! The write is Docker's node update: `GET /nodes/ID` for `Version.Index` and the spec, then
//! `POST /nodes/ID/update?version=N` with the spec plus one new label. Each write adds its
//! own label key and keeps the others, so "no acknowledged write lost" is "every key whose
//! POST got 200 is in every manager's own copy of the node afterwards". Timing flags are relaxed for a busy 2-core machine;
//! no assertion is about speed except F4's "returns within" bound.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::cluster::{Cluster, ClusterOptions};
use common::http::{Api, Reply};

/// Raft and liveness timings for a busy 2-core machine where each debug daemon takes a
/// fifth of a core and a p2p round trip can take 500 ms (the defaults are much tighter):
/// one Raft RPC may take 1 s, elections after 3–6 s of silence, writes give up after 10 s.
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
/// Bound on waiting for the cluster to settle (a leader, nodes ready).
const SETTLE: Duration = Duration::from_secs(60);
/// A write on a node that cannot reach quorum must answer within this (the daemon's
/// 10 s propose timeout plus slack for a loaded machine).
const NO_HANG: Duration = Duration::from_secs(30);

fn start(hosts: usize) -> Cluster {
    Cluster::start_with(
        hosts,
        ClusterOptions {
            daemon_args: TIMING.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// Poll `probe` every 100 ms until it returns `Some`, at most `limit`.
fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
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

// ---- the cluster, seen through the API -----------------------------------------------------

/// Init on host 0, then join `managers - 1` managers and `workers` workers; wait until every
/// node is ready and every manager reachable. Returns the node ID of each host.
fn bootstrap(c: &Cluster, managers: usize, workers: usize) -> Vec<String> {
    eprintln!("--- bootstrap: init on h0, {managers} managers, {workers} workers");
    let h0 = c.host(0);
    let id = h0.api().post_ok(
        "/swarm/init",
        &json!({"ListenAddr": h0.addr(), "AdvertiseAddr": h0.ip.to_string()}),
    );
    assert!(
        id.as_str().is_some_and(|s| !s.is_empty()),
        "init answers the node ID: {id}"
    );
    let tokens = h0.api().get_ok("/swarm")["JoinTokens"].clone();
    for i in 1..managers + workers {
        let token = if i < managers {
            &tokens["Manager"]
        } else {
            &tokens["Worker"]
        };
        join(c, i, token.as_str().expect("token"));
    }
    let ids: Vec<String> = (0..managers + workers)
        .map(|i| {
            let info = c.api(i).get_ok("/info");
            assert_eq!(info["Swarm"]["LocalNodeState"], "active", "h{i}: {info}");
            assert_eq!(info["Swarm"]["ControlAvailable"], i < managers, "h{i} role");
            info["Swarm"]["NodeID"]
                .as_str()
                .expect("NodeID")
                .to_string()
        })
        .collect();
    wait_healthy(c, 0, managers + workers, managers);
    ids
}

fn join(c: &Cluster, i: usize, token: &str) -> Reply {
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
    reply
}

fn nodes(api: &Api) -> Option<Vec<Value>> {
    let reply = api.get("/nodes").ok()?;
    reply
        .ok()
        .then(|| reply.json().as_array().cloned())
        .flatten()
}

/// The host index of a node object (its hostname is `h<index>`).
fn host_of(node: &Value) -> usize {
    node["Description"]["Hostname"]
        .as_str()
        .and_then(|h| h.strip_prefix('h'))
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("hostname of {node}"))
}

/// The leader as host `via` sees it.
fn leader_seen_by(c: &Cluster, via: usize) -> Option<usize> {
    nodes(&c.api(via))?
        .iter()
        .find(|n| n["ManagerStatus"]["Leader"] == true)
        .map(host_of)
}

/// Wait until host `via` shows `total` ready nodes, `managers` reachable managers and a
/// leader; return the leader's host index.
fn wait_healthy(c: &Cluster, via: usize, total: usize, managers: usize) -> usize {
    let mut last = String::new();
    let start = Instant::now();
    loop {
        if let Some(nodes) = nodes(&c.api(via)) {
            let ready = nodes.iter().filter(|n| n["Status"]["State"] == "ready");
            let reachable = nodes
                .iter()
                .filter(|n| n["ManagerStatus"]["Reachability"] == "reachable");
            let leader = nodes.iter().find(|n| n["ManagerStatus"]["Leader"] == true);
            if let (true, true, Some(leader)) = (
                ready.count() == total,
                reachable.count() == managers,
                leader,
            ) {
                eprintln!(
                    "    h{via} sees {total} ready nodes, {managers} reachable managers: after {:.1}s",
                    start.elapsed().as_secs_f64()
                );
                return host_of(leader);
            }
            last = summary(&nodes);
        }
        assert!(
            start.elapsed() < SETTLE,
            "h{via} does not see {total} ready nodes and {managers} reachable managers \
             within {SETTLE:?}; last seen: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `h0:ready:leader h1:down:unreachable …`, for messages.
fn summary(nodes: &[Value]) -> String {
    let mut parts: Vec<String> = nodes
        .iter()
        .map(|n| {
            let mut s = format!(
                "{}:{}",
                n["Description"]["Hostname"].as_str().unwrap_or("?"),
                n["Status"]["State"].as_str().unwrap_or("?")
            );
            if n["ManagerStatus"]["Leader"] == true {
                s.push_str(":leader");
            } else if let Some(r) = n["ManagerStatus"]["Reachability"].as_str() {
                s.push(':');
                s.push_str(r);
            }
            s
        })
        .collect();
    parts.sort();
    parts.join(" ")
}

/// What became of one write.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 200: the write must be durable.
    Acked,
    /// The daemon answered an error (409 stale version, 503 no leader, …).
    Refused(u16, String),
    /// No answer in time, or the connection broke: it may or may not have happened.
    Unknown(String),
}

/// One label write on node `id` through `api`: read, add `key=value`, update. The read is the
/// manager's own copy (`consistency=local`), so that without quorum the *write* is what
/// fails; a stale copy only costs a 409.
fn add_label(api: &Api, id: &str, key: &str, value: &str, timeout: Duration) -> Outcome {
    let read = format!("/nodes/{id}?consistency=local");
    let node = match api.request("GET", &read, None, timeout) {
        Ok(r) if r.ok() => r.json(),
        Ok(r) => return Outcome::Refused(r.status, format!("GET: {}", r.message())),
        Err(e) => return Outcome::Unknown(format!("GET: {e}")),
    };
    let version = node["Version"]["Index"].as_u64().expect("Version.Index");
    let mut spec = node["Spec"].clone();
    if !spec["Labels"].is_object() {
        spec["Labels"] = json!({});
    }
    spec["Labels"][key] = json!(value);
    let body = serde_json::to_vec(&spec).unwrap();
    let path = format!("/nodes/{id}/update?version={version}");
    match api.request("POST", &path, Some(&body), timeout) {
        Ok(r) if r.ok() => Outcome::Acked,
        Ok(r) => Outcome::Refused(r.status, r.message()),
        Err(e) => Outcome::Unknown(e.to_string()),
    }
}

/// Write `key` through any manager in `via` until one acknowledges it (bounded).
fn write_until_acked(c: &Cluster, via: &[usize], id: &str, key: &str) {
    let mut attempt = 0;
    wait_until(&format!("write {key} acknowledged"), SETTLE, || {
        attempt += 1;
        let host = via[attempt % via.len()];
        match add_label(&c.api(host), id, key, "1", Duration::from_secs(20)) {
            Outcome::Acked => Some(()),
            other => {
                eprintln!("    {key} via h{host}: {other:?}");
                None
            }
        }
    })
}

/// Node `id`'s labels in `api`'s own copy of the state.
fn labels(api: &Api, id: &str) -> BTreeMap<String, String> {
    let node = api.get_ok(&format!("/nodes/{id}?consistency=local"));
    node["Spec"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until every host in `hosts` holds node `id` at the same version in its own copy of
/// the state; its labels then.
fn converged_labels(c: &Cluster, hosts: &[usize], id: &str) -> BTreeMap<String, String> {
    wait_until(&format!("{id} converged on {hosts:?}"), SETTLE, || {
        let versions: BTreeSet<u64> = hosts
            .iter()
            .map(|&h| {
                c.api(h)
                    .get(&format!("/nodes/{id}?consistency=local"))
                    .ok()
                    .filter(Reply::ok)
                    .and_then(|r| r.json()["Version"]["Index"].as_u64())
            })
            .collect::<Option<_>>()?;
        (versions.len() == 1).then_some(())
    });
    labels(&c.api(hosts[0]), id)
}

// ---- F1 ----------------------------------------------------------------------------------

/// The history of one writer thread.
#[derive(Debug, Default)]
struct History {
    acked: Vec<String>,
    refused: usize,
    unknown: usize,
}

/// A bounded stream of label writes on node `id`, round-robin over the managers' sockets,
/// until `stop` (or `max` writes, or `limit`).
fn writer(
    c: &Cluster,
    name: &'static str,
    id: String,
    managers: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<History> {
    let apis: Vec<Api> = (0..managers).map(|i| c.api(i)).collect();
    std::thread::spawn(move || {
        let mut history = History::default();
        let deadline = Instant::now() + Duration::from_secs(120);
        for seq in 0..400 {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                break;
            }
            let key = format!("{name}-{seq}");
            match add_label(
                &apis[seq % apis.len()],
                &id,
                &key,
                "1",
                Duration::from_secs(20),
            ) {
                Outcome::Acked => history.acked.push(key),
                Outcome::Refused(..) => history.refused += 1,
                Outcome::Unknown(..) => history.unknown += 1,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        history
    })
}

#[test]
fn t20_f1_leader_killed_under_writes() {
    let mut c = start(3);
    let ids = bootstrap(&c, 3, 0);
    let leader = leader_seen_by(&c, 0).expect("a leader");
    eprintln!("--- F1: writes stream on two node objects; the leader is h{leader}");
    let stop = Arc::new(AtomicBool::new(false));
    let writers = [
        writer(&c, "a", ids[0].clone(), 3, stop.clone()),
        writer(&c, "b", ids[1].clone(), 3, stop.clone()),
    ];
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = Instant::now();
    c.kill9(leader);
    let survivor = (leader + 1) % 3;
    let new_leader = wait_until("a new leader", SETTLE, || {
        leader_seen_by(&c, survivor).filter(|&l| l != leader)
    });
    eprintln!(
        "    new leader h{new_leader} seen {:.1}s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    // Let the stream run on the new leader for a while, then stop it.
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let histories: Vec<History> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for (name, h) in ["a", "b"].iter().zip(&histories) {
        eprintln!(
            "    writer {name}: {} acknowledged, {} refused, {} unknown",
            h.acked.len(),
            h.refused,
            h.unknown
        );
    }
    assert!(
        histories.iter().all(|h| !h.acked.is_empty()),
        "every writer got writes acknowledged"
    );

    eprintln!("--- the old leader h{leader} rejoins as a follower");
    c.restart(leader);
    // It comes back as a follower; not asserted, as a loaded machine may hold a fresh
    // election at any time, which it could win.
    let after = wait_healthy(&c, survivor, 3, 3);
    eprintln!("    after its restart h{leader} follows h{after}");

    eprintln!("--- no acknowledged write is lost, on any manager");
    for (h, id) in histories.iter().zip(&ids) {
        let all: Vec<usize> = (0..3).collect();
        let labels = converged_labels(&c, &all, id);
        let lost: Vec<&String> = h
            .acked
            .iter()
            .filter(|k| !labels.contains_key(*k))
            .collect();
        assert!(
            lost.is_empty(),
            "acknowledged writes lost on {id}: {lost:?}"
        );
    }
    write_until_acked(&c, &[0, 1, 2], &ids[2], "after-f1");
}

// ---- F3 and F4 ---------------------------------------------------------------------------

#[test]
fn t30_f3_f4_partitions() {
    let c = start(3);
    let ids = bootstrap(&c, 3, 0);
    let old = leader_seen_by(&c, 0).expect("a leader");
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();

    eprintln!("--- F3: the leader h{old} isolated alone acknowledges nothing");
    c.isolate(old);
    let started = Instant::now();
    let outcome = add_label(&c.api(old), &ids[old], "f3-isolated", "1", NO_HANG);
    eprintln!(
        "    write on the isolated leader: {outcome:?} after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_ne!(
        outcome,
        Outcome::Acked,
        "an isolated leader acknowledged a write"
    );
    let new = wait_until("the majority elects a new leader", SETTLE, || {
        leader_seen_by(&c, majority[0]).filter(|&l| l != old)
    });
    assert!(majority.contains(&new));
    write_until_acked(&c, &majority, &ids[majority[0]], "f3-majority");

    eprintln!("--- heal: h{old} follows the new leader and sees the majority's write");
    c.heal(old);
    wait_until(&format!("h{old} sees h{new} as leader"), SETTLE, || {
        (leader_seen_by(&c, old) == Some(new)).then_some(())
    });
    let all = [0, 1, 2];
    let labels = converged_labels(&c, &all, &ids[majority[0]]);
    assert!(labels.contains_key("f3-majority"), "{labels:?}");
    if matches!(outcome, Outcome::Refused(..)) {
        // Refused before the heal: the entry was never committed, and the new leader's log
        // replaced it.
        let old_labels = converged_labels(&c, &all, &ids[old]);
        assert!(
            !old_labels.contains_key("f3-isolated"),
            "a write refused by an isolated leader was applied"
        );
    }
    wait_healthy(&c, new, 3, 3);

    let lone = leader_seen_by(&c, 0).expect("a leader");
    let others: Vec<usize> = (0..3).filter(|&i| i != lone).collect();
    eprintln!(
        "--- F4: isolate h{} and h{}: h{lone} is left without quorum",
        others[0], others[1]
    );
    for &i in &others {
        c.isolate(i);
    }
    // Every manager tries a write at once; each must come back, refused, within the bound.
    let attempts: Vec<_> = (0..3)
        .map(|i| {
            let (api, id) = (c.api(i), ids[i].clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let outcome = add_label(&api, &id, "f4", "1", NO_HANG + Duration::from_secs(5));
                (i, outcome, started.elapsed())
            })
        })
        .collect();
    for attempt in attempts {
        let (i, outcome, took) = attempt.join().unwrap();
        eprintln!("    h{i}: {outcome:?} after {:.1}s", took.as_secs_f64());
        assert!(took <= NO_HANG, "h{i}: the write hung for {took:?}");
        match outcome {
            // The manager left alone knows there is no leader: Docker's 503.
            Outcome::Refused(status, message) if i == lone => {
                assert_eq!(status, 503, "h{i}: {message}");
                assert!(
                    message.contains("does not have a leader"),
                    "h{i}: {message}"
                );
            }
            // An isolated one may still believe in the old leader and have forwarded the
            // write into the partition: "no leader", or "the outcome is unknown" (500).
            Outcome::Refused(status, message) => {
                assert!(
                    status == 503 || status == 500,
                    "h{i}: status {status} {message}"
                );
                assert!(message.contains("leader"), "h{i}: {message}");
            }
            other => panic!("h{i}: without quorum a write must be refused: {other:?}"),
        }
    }

    eprintln!("--- heal: writes work again");
    for &i in &others {
        c.heal(i);
    }
    let leader = wait_healthy(&c, lone, 3, 3);
    write_until_acked(&c, &[leader], &ids[lone], "after-f4");
}

// ---- F16 ---------------------------------------------------------------------------------

/// What must survive a restart: per node, its hostname, role, availability and labels, as
/// `api` reads it (`local`: that manager's own copy).
fn cluster_state(api: &Api, local: bool) -> Option<BTreeMap<String, Value>> {
    let path = if local {
        "/nodes?consistency=local"
    } else {
        "/nodes"
    };
    let reply = api.get(path).ok().filter(Reply::ok)?;
    let nodes = reply.json().as_array()?.clone();
    let state = nodes
        .into_iter()
        .map(|n| {
            let id = n["ID"].as_str().unwrap().to_string();
            let kept = json!({
                "Hostname": n["Description"]["Hostname"],
                "Role": n["Spec"]["Role"],
                "Availability": n["Spec"]["Availability"],
                "Labels": n["Spec"]["Labels"],
            });
            (id, kept)
        })
        .collect();
    Some(state)
}

/// A small deterministic shuffle (xorshift), seeded from the clock and logged.
fn shuffled(mut items: Vec<usize>) -> Vec<usize> {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("    shuffle seed {seed}");
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    items
}

#[test]
fn t40_f16_full_restart_in_random_order() {
    let mut c = start(4);
    let ids = bootstrap(&c, 3, 1);
    for (i, id) in ids.iter().enumerate() {
        write_until_acked(&c, &[0, 1, 2], id, &format!("zone-{i}"));
    }
    let leader = wait_healthy(&c, 0, 4, 3);
    let before = cluster_state(&c.api(leader), false).expect("GET /nodes");
    eprintln!(
        "    state before: {}",
        serde_json::to_string(&before).unwrap()
    );

    eprintln!("--- F16: kill -9 every node, restart in random order");
    for i in 0..4 {
        c.kill9(i);
    }
    for i in shuffled((0..4).collect()) {
        c.restart(i);
    }
    let leader = wait_healthy(&c, 0, 4, 3);
    eprintln!("    h{leader} leads after the restart");
    let after = cluster_state(&c.api(leader), false).expect("GET /nodes");
    assert_eq!(
        before, after,
        "the same nodes, roles and labels after a full restart"
    );
    for i in 0..3 {
        wait_until(
            &format!("h{i}'s own copy is the state before"),
            SETTLE,
            || (cluster_state(&c.api(i), true)? == before).then_some(()),
        );
    }
    write_until_acked(&c, &[0, 1, 2], &ids[3], "after-f16");
}

// ---- bootstrap, tokens, bad input ----------------------------------------------------------

#[test]
fn t10_bootstrap_tokens_and_bad_input() {
    let c = start(5);
    eprintln!("--- malformed bodies get 400 with a JSON message");
    for (path, body) in [("/swarm/init", &b"{"[..]), ("/swarm/join", &b"[1,2"[..])] {
        let reply = c
            .api(4)
            .request("POST", path, Some(body), Duration::from_secs(10))
            .unwrap();
        eprintln!(
            "    POST {path} {:?}: {reply}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(reply.status, 400, "{path}: {reply}");
        assert!(reply.json()["message"].is_string(), "{path}: {reply}");
    }

    let ids = bootstrap(&c, 3, 1);
    let tokens = c.api(0).get_ok("/swarm")["JoinTokens"].clone();
    let worker = tokens["Worker"].as_str().unwrap().to_string();

    eprintln!("--- a wrong token is refused");
    let mut wrong = worker.clone();
    wrong.replace_range(wrong.len() - 4.., "zzzz");
    for token in [wrong.as_str(), "SWMTKN-1-nonsense", ""] {
        let h4 = c.host(4);
        let reply = h4
            .api()
            .post(
                "/swarm/join",
                &json!({"ListenAddr": h4.addr(), "AdvertiseAddr": h4.ip.to_string(),
                        "RemoteAddrs": [c.host(0).addr()], "JoinToken": token}),
            )
            .unwrap();
        eprintln!("    join with {token:?}: {reply}");
        assert!(!reply.ok(), "joined with a wrong token {token:?}");
        assert!(reply.message().to_lowercase().contains("token"), "{reply}");
        assert_eq!(
            c.api(4).get_ok("/info")["Swarm"]["LocalNodeState"],
            "inactive"
        );
    }

    eprintln!("--- a rotated token is refused, the new one accepted");
    let swarm = c.api(0).get_ok("/swarm");
    let version = swarm["Version"]["Index"].as_u64().unwrap();
    c.api(0).post_ok(
        &format!("/swarm/update?version={version}&rotateWorkerToken=true"),
        &swarm["Spec"],
    );
    let rotated = c.api(0).get_ok("/swarm")["JoinTokens"]["Worker"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rotated, worker);
    let h4 = c.host(4);
    let reply = h4
        .api()
        .post(
            "/swarm/join",
            &json!({"ListenAddr": h4.addr(), "AdvertiseAddr": h4.ip.to_string(),
                    "RemoteAddrs": [c.host(0).addr()], "JoinToken": worker}),
        )
        .unwrap();
    eprintln!("    join with the old token: {reply}");
    assert!(!reply.ok(), "joined with a rotated-out token");
    join(&c, 4, &rotated);
    wait_healthy(&c, 0, 5, 3);

    eprintln!("--- node update with a wrong type, a bad version: 400 with a message");
    let path = format!("/nodes/{}/update?version=1", ids[1]);
    for body in [&br#"{"Labels": 5}"#[..], b"{", br#"{"Role": "emperor"}"#] {
        let reply = c
            .api(0)
            .request("POST", &path, Some(body), Duration::from_secs(10))
            .unwrap();
        eprintln!("    {:?}: {reply}", String::from_utf8_lossy(body));
        assert_eq!(reply.status, 400, "{reply}");
        assert!(reply.json()["message"].is_string(), "{reply}");
    }
    let reply = c
        .api(0)
        .request(
            "POST",
            &format!("/nodes/{}/update?version=abc", ids[1]),
            Some(b"{}"),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(reply.status, 400, "{reply}");

    eprintln!("--- garbage on port 2377 is refused and the daemons stay healthy");
    let target: std::net::SocketAddr = c.host(0).addr().parse().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = vec![0u8; 64 * 1024];
    for b in random.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("64 KiB of random bytes", random),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: swarm\r\n\r\n".to_vec(),
        ),
        (
            "multistream-select, then junk",
            b"\x13/multistream/1.0.0\n\x0f/noise-garbage\nxxxxxxxxxxxxxxxxxxxx".to_vec(),
        ),
    ];
    for (what, bytes) in &payloads {
        for round in 0..3 {
            send_garbage(&c, 3, target, bytes, &format!("{what} #{round}"));
        }
    }
    assert!(c.api(0).ping(Duration::from_secs(5)), "h0 answers its API");
    wait_healthy(&c, 0, 5, 3);
    write_until_acked(&c, &[0, 1, 2], &ids[0], "after-garbage");
}

/// Send `bytes` to `target` from inside host `from`, read what comes back (bounded), log it.
fn send_garbage(c: &Cluster, from: usize, target: std::net::SocketAddr, bytes: &[u8], what: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = c.host(from).tcp_connect(target, Duration::from_secs(5)) else {
        eprintln!("    {what}: connection refused");
        return;
    };
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let written = stream.write_all(bytes);
    let mut answer = Vec::new();
    let read = (&mut stream).take(64 * 1024).read_to_end(&mut answer);
    eprintln!(
        "    {what}: write {:?}, read {:?} ({} bytes back)",
        written.err().map(|e| e.kind()),
        read.err().map(|e| e.kind()),
        answer.len()
    );
    // A libp2p listener answers only its own handshake; never an HTTP page.
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{what}: port 2377 spoke HTTP"
    );
}
