//! F8: `kill -9` at every persistence step of the Raft store, then recovery.
//!
//! Three managers on loopback. For each crash point of `cluster::store`, one of them (in
//! turn) is restarted with the point armed in `FAILPOINTS`, and the cluster is made to do
//! what reaches the point there:
//!
//! ```text
//!  Writes               label writes through another manager (append, apply, snapshot
//!                       build every few entries, purge behind it)
//!  Election             the leader is restarted: the term moves on and the victim saves a vote
//!  CatchUpFromSnapshot  the victim is down while the others write past a snapshot and purge
//!                       the log behind it; back up, it is sent the snapshot
//! ```
//!
//! Then: the victim died of SIGKILL with that point's line in its log; a copy of its store as
//! the crash left it opens, its vote is not older than the last one seen (no second vote in
//! a term), and a snapshot that decodes covers everything purged; restarted clean, it
//! rejoins; there is a leader; every acknowledged write is on every manager; and every
//! manager's local state equals the others'.
//!
//! Built only with the `failpoints` feature (scripts/test.sh builds with it). Timing is
//! relaxed for a busy 2-core machine; every wait is bounded; no assertion is on timing.

#![cfg(feature = "failpoints")]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{LogId, Vote};
use serde_json::Value;
use swarm::cluster::{NodeId, State, store};

mod common;

use common::daemon::Daemon;

/// Bound on every wait for the cluster to settle.
const SETTLE: Duration = Duration::from_secs(60);
/// `--raft-snapshot-every`: low, so the snapshot and purge points are reached.
const SNAPSHOT_EVERY: u32 = 5;

#[derive(Debug, Clone, Copy)]
enum Trigger {
    Writes,
    Election,
    CatchUpFromSnapshot,
}

/// One crash: the point, what reaches it, other points armed with it (`fail` syntax), and
/// a line the victim's log must show before it dies (proof the case took the path meant).
struct Case {
    point: &'static str,
    trigger: Trigger,
    also: &'static str,
    expect_log: &'static str,
}

const fn case(point: &'static str, trigger: Trigger) -> Case {
    Case {
        point,
        trigger,
        also: "",
        expect_log: "",
    }
}

/// Every crash point of the store, with what reaches it.
const CASES: &[Case] = &[
    case("store::before-append", Trigger::Writes),
    case("store::before-append-commit", Trigger::Writes),
    case("store::after-append-commit", Trigger::Writes),
    case("store::before-apply-commit", Trigger::Writes),
    case("store::after-apply-commit", Trigger::Writes),
    case("store::before-vote-save", Trigger::Election),
    case("store::after-vote-save", Trigger::Election),
    case("store::after-snapshot-build", Trigger::Writes),
    case("store::before-purge", Trigger::Writes),
    case("store::after-purge", Trigger::Writes),
    case(
        "store::before-snapshot-install",
        Trigger::CatchUpFromSnapshot,
    ),
    case(
        "store::after-snapshot-install",
        Trigger::CatchUpFromSnapshot,
    ),
    // A follower sent a snapshot is told to purge its log up to the snapshot while the
    // state machine installs it, in parallel (openraft 0.9). With the install slowed down,
    // the purge comes first and must wait for it: the crash after the purge must not leave
    // purged entries that no stored snapshot covers (it did before the store waited).
    Case {
        point: "store::after-waited-purge",
        trigger: Trigger::CatchUpFromSnapshot,
        also: "store::before-snapshot-install=sleep(3000)",
        expect_log: "a snapshot is being installed: the purge waits for it",
    },
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A daemon with its own loopback port, relaxed timing and frequent snapshots.
fn start(name: &str) -> (Daemon, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let snapshot_every = SNAPSHOT_EVERY.to_string();
    let args = [
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
        "--raft-snapshot-every",
        &snapshot_every,
        "--raft-snapshot-keep-logs",
        "0",
        "--log-level",
        "info",
    ];
    (Daemon::start_with(name, &args), listen)
}

/// curl over the socket: (status, body); 0 when curl itself failed.
fn curl(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--unix-socket")
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

/// `GET path` answered 200 with JSON.
fn get(d: &Daemon, path: &str) -> Option<Value> {
    match curl(d, "GET", path, None) {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// How many times the log says the process was killed at `point`.
fn crashes_at(log: &str, point: &str) -> usize {
    log.matches(&format!("crash point {point}:")).count()
}

struct Member {
    name: &'static str,
    daemon: Daemon,
    node_id: String,
    /// The vote its store held when last seen after a crash.
    last_vote: Option<Vote<NodeId>>,
}

impl Member {
    fn alive(&mut self) -> bool {
        self.daemon.child.is_some() && self.daemon.exited().is_none()
    }
}

/// Three managers, and the label writes they acknowledged.
struct Cluster {
    members: Vec<Member>,
    /// The node whose labels the writes set.
    target: String,
    acked: BTreeMap<String, String>,
    attempted: u32,
}

impl Cluster {
    fn form() -> Cluster {
        eprintln!("--- three managers on loopback");
        let (m1, addr1) = start("crash-m1");
        let (m2, _) = start("crash-m2");
        let (m3, _) = start("crash-m3");
        assert!(m1.ok(&["init"]).contains("is now a manager"));
        let token = m1.ok(&["join-token", "-q", "manager"]).trim().to_owned();
        for d in [&m2, &m3] {
            let joined = d.ok(&["join", "--token", &token, &addr1]);
            assert!(joined.contains("as a manager"), "{joined}");
        }
        let members: Vec<Member> = [("m1", m1), ("m2", m2), ("m3", m3)]
            .into_iter()
            .map(|(name, daemon)| {
                let node_id = get(&daemon, "/info").expect("info")["Swarm"]["NodeID"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                Member {
                    name,
                    daemon,
                    node_id,
                    last_vote: None,
                }
            })
            .collect();
        let target = members[0].node_id.clone();
        let mut cluster = Cluster {
            members,
            target,
            acked: BTreeMap::new(),
            attempted: 0,
        };
        cluster.converge("three voters, one leader");
        cluster
    }

    /// A live member other than `except`, to send requests through.
    fn via(&mut self, except: usize) -> usize {
        if let Some(i) = (0..self.members.len()).find(|&i| i != except && self.members[i].alive()) {
            return i;
        }
        let ended: Vec<String> = self
            .members
            .iter_mut()
            .map(|m| format!("{}: {:?}", m.name, m.daemon.exited()))
            .collect();
        panic!("no live member to ask besides the victim ({ended:?})")
    }

    /// One label write through a member other than `except`, retried (re-reading the node's
    /// version) until acknowledged or 30 s pass. Only a 200 counts as acknowledged; a write
    /// that failed may still have happened, and is retried with the same label.
    fn write_label(&mut self, except: usize) -> bool {
        self.attempted += 1;
        let (key, value) = (
            format!("k{}", self.attempted),
            format!("v{}", self.attempted),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let via = self.via(except);
            let d = &self.members[via].daemon;
            let Some(node) = get(d, &format!("/nodes/{}", self.target)) else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            let version = node["Version"]["Index"].as_u64().unwrap_or(0);
            let mut spec = node["Spec"].clone();
            spec["Labels"][&key] = Value::String(value.clone());
            let path = format!("/nodes/{}/update?version={version}", self.target);
            match curl(d, "POST", &path, Some(&spec.to_string())) {
                (200, _) => {
                    self.acked.insert(key, value);
                    return true;
                }
                // Someone else changed the node (liveness, or our own earlier try): re-read.
                (409, _) => {}
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        false
    }

    /// The member the cluster's state names leader, asked through a member other than
    /// `except` (may lag a moment behind an election).
    fn leader(&mut self, except: usize) -> Option<usize> {
        let via = self.via(except);
        let nodes = get(&self.members[via].daemon, "/nodes")?;
        let id = nodes.as_array()?.iter().find_map(|n| {
            (n["ManagerStatus"]["Leader"] == true).then(|| n["ID"].as_str().map(str::to_owned))
        })??;
        self.members.iter().position(|m| m.node_id == id)
    }

    /// Arms `point` on member `v`, makes the cluster reach it, checks the crash, restarts
    /// the member clean and checks the cluster recovered.
    fn crash_at(&mut self, case: &Case, v: usize) {
        let (point, trigger) = (case.point, case.trigger);
        let name = self.members[v].name;
        let failpoints = match case.also {
            "" => format!("{point}=return"),
            also => format!("{also};{point}=return"),
        };
        eprintln!("--- {point}: armed on {name}, reached by {trigger:?} (FAILPOINTS={failpoints})");
        let before = crashes_at(&self.members[v].daemon.log(), point);
        if let Trigger::CatchUpFromSnapshot = trigger {
            self.members[v].daemon.kill();
            self.inspect_store(v, "killed");
            // Past at least one snapshot of the others (and the purge of the log behind it),
            // so what the victim needs next is only in a snapshot.
            for _ in 0..SNAPSHOT_EVERY * 3 {
                assert!(self.write_label(v), "a write while {name} is down");
            }
        }
        self.members[v].daemon.env = vec![("FAILPOINTS".into(), failpoints)];
        self.members[v].daemon.restart_or_exit();

        let started = Instant::now();
        let mut down = Vec::new();
        let status = loop {
            if let Some(status) = self.members[v].daemon.exited() {
                break status;
            }
            assert!(
                started.elapsed() < SETTLE,
                "{point} was never reached on {name}"
            );
            match trigger {
                Trigger::Writes => {
                    self.write_label(v);
                }
                Trigger::Election if down.is_empty() => self.move_term_on(v, &mut down),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let log = self.members[v].daemon.log();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{name} ended with {status}, not killed at {point}"
        );
        assert_eq!(
            crashes_at(&log, point),
            before + 1,
            "{name} was killed, but not at {point}"
        );
        let life = &log[log.rfind("crash points armed").unwrap_or(0)..];
        assert!(
            life.contains(case.expect_log),
            "{name}'s log does not show {:?} before the crash",
            case.expect_log
        );
        eprintln!("    {name} died at {point} after {:.1?}", started.elapsed());
        self.inspect_store(v, point);
        for l in down {
            eprintln!("    restart the old leader, {}", self.members[l].name);
            self.members[l].daemon.restart();
        }

        eprintln!("    restart {name} without the crash point");
        self.members[v].daemon.env.clear();
        assert!(
            self.members[v].daemon.restart_or_exit(),
            "{name} exited while restarting after {point}"
        );
        self.converge(&format!("recovered from {point}"));
    }

    /// Makes armed member `v` see a new term, so that it saves a vote; returns when it died
    /// or after a few tries. Members killed and left down for that are pushed on `down`.
    ///
    /// A follower sees one when the leader is gone long enough for an election. A leader
    /// must first lose the lead: killed, it leaves the others to elect one, and back up
    /// (openraft resumes a leader whose vote is committed in its old term) it learns the new
    /// term from them. Which member leads is read from the replicated state, which follows
    /// an election a moment late, so a try that reaches no vote is made again.
    fn move_term_on(&mut self, v: usize, down: &mut Vec<usize>) {
        let name = self.members[v].name;
        for _ in 0..3 {
            match self.leader(v) {
                None => {
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
                Some(l) if l == v => {
                    eprintln!("    {name} leads: kill it, let the others elect, bring it back");
                    self.members[v].daemon.kill();
                    let start = Instant::now();
                    while self.leader(v).is_none_or(|l| l == v) {
                        assert!(start.elapsed() < SETTLE, "no new leader without {name}");
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    self.members[v].daemon.restart_or_exit();
                }
                Some(l) => {
                    eprintln!("    kill the leader, {}", self.members[l].name);
                    self.members[l].daemon.kill();
                    self.inspect_store(l, "killed");
                    down.push(l);
                }
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if self.members[v].daemon.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("    no vote on {name} yet: the state named a former leader; again");
            for l in down.drain(..) {
                self.members[l].daemon.restart();
            }
        }
    }

    /// Opens a copy of a dead member's store as the crash left it (the copy, so that the
    /// daemon's own restart does whatever recovery the file needs) and checks: the vote
    /// never goes back (nor to another candidate in the same term); a snapshot decodes and
    /// covers every purged entry; nothing is purged or snapshotted beyond what was applied.
    fn inspect_store(&mut self, i: usize, when: &str) {
        let m = &mut self.members[i];
        let dir = m.daemon.dir.path();
        let copy = dir.join("inspect.redb");
        std::fs::copy(dir.join("data/swarm/raft.redb"), &copy).expect("copy the store");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (vote, purged, applied, snapshot) = runtime.block_on(async {
            let (mut log, mut sm) = store::open(&copy)
                .unwrap_or_else(|e| panic!("{}'s store after {when}: {e}", m.name));
            let vote = log.read_vote().await.expect("read the vote");
            let purged = log
                .get_log_state()
                .await
                .expect("log state")
                .last_purged_log_id;
            let (applied, _) = sm.applied_state().await.expect("applied state");
            let snapshot = sm.get_current_snapshot().await.expect("read the snapshot");
            (vote, purged, applied, snapshot)
        });
        let _ = std::fs::remove_file(&copy);

        if let Some(previous) = m.last_vote {
            let now = vote.unwrap_or_else(|| panic!("{}: the vote is gone after {when}", m.name));
            assert!(
                matches!(
                    previous.partial_cmp(&now),
                    Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                ),
                "{}: the vote went from {previous} to {now} (after {when})",
                m.name
            );
        }
        m.last_vote = vote.or(m.last_vote);

        let snapshot_last: Option<LogId<NodeId>> = match snapshot {
            Some(s) => {
                let state: Result<State, _> = swarm::codec::decode(s.snapshot.get_ref());
                assert!(
                    state.is_ok(),
                    "{}: the snapshot {} does not decode (after {when})",
                    m.name,
                    s.meta.snapshot_id
                );
                s.meta.last_log_id
            }
            None => None,
        };
        assert!(
            purged <= snapshot_last,
            "{}: purged up to {purged:?}, but the snapshot ends at {snapshot_last:?} (after {when})",
            m.name
        );
        assert!(
            snapshot_last <= applied,
            "{}: the snapshot ends at {snapshot_last:?}, beyond applied {applied:?} (after {when})",
            m.name
        );
        eprintln!(
            "    {}'s store after {when}: vote {}, purged {}, snapshot {}, applied {}",
            m.name,
            vote.map_or("-".into(), |v| v.to_string()),
            show(purged),
            show(snapshot_last),
            show(applied)
        );
    }

    /// Every member is up, in the swarm and a reachable manager; there is one leader; every
    /// acknowledged label is on every member; and every member's local state is the same.
    fn converge(&mut self, what: &str) {
        let ids: Vec<String> = self.members.iter().map(|m| m.node_id.clone()).collect();
        let target = self.target.clone();
        let acked = self.acked.clone();
        let members = &mut self.members;
        let start = Instant::now();
        while let Err(why) = converged(members, &ids, &target, &acked) {
            assert!(
                start.elapsed() < SETTLE,
                "timed out waiting for {what}: {why}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "    {what} ({} acknowledged writes on every manager): {:.1?}",
            acked.len(),
            start.elapsed()
        );
    }
}

fn converged(
    members: &mut [Member],
    ids: &[String],
    target: &str,
    acked: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut views = Vec::new();
    for m in members.iter_mut() {
        if !m.alive() {
            return Err(format!("{} is not running", m.name));
        }
        let info = get(&m.daemon, "/info").ok_or(format!("{}: no /info", m.name))?;
        if info["Swarm"]["LocalNodeState"] != "active" || info["Swarm"]["NodeID"] != *m.node_id {
            return Err(format!("{} is not back in the swarm", m.name));
        }
        // A linearizable read: this member reaches a leader.
        get(&m.daemon, "/nodes").ok_or(format!("{}: no linearizable read", m.name))?;
        let local = get(&m.daemon, "/nodes?consistency=local")
            .ok_or(format!("{}: no local read", m.name))?;
        views.push((m.name, local));
    }
    let (first, view) = &views[0];
    let nodes = view.as_array().ok_or("nodes is not a list")?;
    let leaders = nodes
        .iter()
        .filter(|n| n["ManagerStatus"]["Leader"] == true)
        .count();
    if leaders != 1 {
        return Err(format!("{first} sees {leaders} leaders"));
    }
    for id in ids {
        let node = nodes
            .iter()
            .find(|n| n["ID"] == **id)
            .ok_or(format!("{first} does not list {id}"))?;
        if node["Status"]["State"] != "ready"
            || node["ManagerStatus"]["Reachability"] != "reachable"
        {
            return Err(format!("{first} sees {id} not ready: {}", node["Status"]));
        }
    }
    let labels = &nodes
        .iter()
        .find(|n| n["ID"] == *target)
        .ok_or("target node missing")?["Spec"]["Labels"];
    for (key, value) in acked {
        if labels[key] != **value {
            return Err(format!("{first} lacks acknowledged label {key}={value}"));
        }
    }
    for (name, other) in &views[1..] {
        if other != view {
            return Err(format!("{name}'s state differs from {first}'s"));
        }
    }
    Ok(())
}

fn show(id: Option<LogId<NodeId>>) -> String {
    id.map_or("-".into(), |id| id.to_string())
}

#[test]
fn t85_a_crash_at_each_persistence_step_recovers() {
    let started = Instant::now();
    let mut cluster = Cluster::form();
    for _ in 0..3 {
        assert!(cluster.write_label(usize::MAX), "a first write");
    }
    for (i, case) in CASES.iter().enumerate() {
        cluster.crash_at(case, (i + 1) % cluster.members.len());
    }
    eprintln!(
        "--- {} crash points survived, {} writes acknowledged and kept, {:.1?}",
        CASES.len(),
        cluster.acked.len(),
        started.elapsed()
    );
}
