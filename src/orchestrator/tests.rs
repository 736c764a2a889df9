//! The orchestrator and scheduler driven through the real state machine: every pass's
//! commands are applied with `cluster::state::apply`, a toy agent moves tasks along, and the
//! clock only moves when a test says so. Every pass checks the invariants of `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::*;
use crate::cluster::state::{Command, JoinTokenHashes, NewNode, State, apply};
use crate::types::service::{RawJson, Task, TaskSpec, TaskState, TaskStatus};
use crate::types::{
    NodeAvailability, NodeDescription, NodeSpec, NodeState, Platform, Resources, SwarmSpec,
};

const T0: Timestamp = Timestamp(1_700_000_000_000_000_000);
const SEC: i64 = 1_000_000_000;
const GIB: i64 = 1 << 30;

struct Sim {
    state: State,
    now: Timestamp,
    next_id: u64,
    defaults: Defaults,
}

/// A node with 4 CPUs and 8 GiB, hostname `host-<id>`, linux/x86_64.
fn new_node(id: &str) -> NewNode {
    NewNode {
        id: id.into(),
        spec: NodeSpec::default(),
        description: NodeDescription {
            hostname: format!("host-{id}"),
            platform: Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            },
            resources: Resources {
                nano_cpus: 4_000_000_000,
                memory_bytes: 8 * GIB,
            },
            ..Default::default()
        },
        addr: "198.18.0.11".into(),
    }
}

fn replicated(name: &str, replicas: u64) -> Value {
    json!({
        "Name": name,
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:test"}},
        "Mode": {"Replicated": {"Replicas": replicas}}
    })
}

fn global(name: &str) -> Value {
    json!({
        "Name": name,
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:test"}},
        "Mode": {"Global": {}}
    })
}

impl Sim {
    /// A swarm of `n1` (the manager) … `n<count>`.
    fn with_nodes(count: usize) -> Sim {
        Sim::with(count, |_, _| {})
    }

    /// Like `with_nodes`, each node adjusted by `adjust(index, node)` before it joins.
    fn with(count: usize, mut adjust: impl FnMut(usize, &mut NewNode)) -> Sim {
        let mut sim = Sim {
            state: State::default(),
            now: T0,
            next_id: 0,
            defaults: Defaults::default(),
        };
        for i in 1..=count {
            let mut node = new_node(&format!("n{i}"));
            adjust(i, &mut node);
            if i == 1 {
                sim.apply(Command::InitCluster {
                    cluster_id: "c1".into(),
                    spec: SwarmSpec::default(),
                    default_addr_pool: vec![],
                    subnet_size: 0,
                    data_path_port: 0,
                    join_token_hashes: JoinTokenHashes {
                        worker: "hw".into(),
                        manager: "hm".into(),
                    },
                    manager: node,
                    manager_addr: "198.18.0.11:2377".into(),
                });
            } else {
                sim.apply(Command::AddNode { node });
            }
        }
        sim
    }

    fn apply(&mut self, command: Command) {
        if let Err(e) = apply(&mut self.state, &command, self.now) {
            panic!("{} refused: {e}", command.name());
        }
    }

    fn add_node(&mut self, node: NewNode) {
        self.apply(Command::AddNode { node });
    }

    fn advance(&mut self, seconds: i64) {
        self.now = Timestamp(self.now.0 + seconds * SEC);
    }

    // ---- the orchestrator ----------------------------------------------------------------

    /// One pass, applied; returns its plan.
    fn pass(&mut self) -> Plan {
        let mut next = self.next_id;
        let plan = reconcile(
            &self.state,
            self.now,
            &mut || {
                next += 1;
                format!("t{next:04}")
            },
            &self.defaults,
        );
        self.next_id = next;
        for command in &plan.commands {
            self.apply(command.clone());
        }
        self.check_invariants();
        plan
    }

    /// Passes until one has nothing to do; returns how many had something.
    fn settle(&mut self) -> usize {
        for busy in 0..10 {
            if self.pass().commands.is_empty() {
                return busy;
            }
        }
        panic!("the orchestrator did not settle in 10 passes");
    }

    /// The toy agent: tasks assigned to a live node start; tasks told to stop stop.
    fn agent(&mut self) -> bool {
        let mut reports: BTreeMap<String, Vec<(String, TaskStatus)>> = BTreeMap::new();
        for task in self.state.tasks.values() {
            let Some(node) = self.state.nodes.get(&task.node_id) else {
                continue;
            };
            if node.status.state == NodeState::Down {
                continue;
            }
            let s = task.status.state;
            let next = if task.desired_state <= TaskState::Running
                && (TaskState::Assigned..TaskState::Running).contains(&s)
            {
                TaskState::Running
            } else if task.desired_state > TaskState::Running
                && (TaskState::Assigned..=TaskState::Running).contains(&s)
            {
                TaskState::Shutdown
            } else {
                continue;
            };
            reports
                .entry(task.node_id.clone())
                .or_default()
                .push((task.id.clone(), self.status(next)));
        }
        let any = !reports.is_empty();
        for (node, reports) in reports {
            self.apply(Command::ReportTaskStatus { node, reports });
        }
        any
    }

    /// Orchestrator and agent until neither has anything to do (the clock stands still).
    fn converge(&mut self) {
        for _ in 0..20 {
            let busy = self.settle();
            if !self.agent() && busy == 0 {
                return;
            }
        }
        panic!("no convergence");
    }

    fn status(&self, state: TaskState) -> TaskStatus {
        TaskStatus {
            timestamp: self.now,
            state,
            ..Default::default()
        }
    }

    /// The agent on the task's node reports `state` for it.
    fn report(&mut self, task_id: &str, state: TaskState) {
        let node = self.state.tasks[task_id].node_id.clone();
        let status = self.status(state);
        self.apply(Command::ReportTaskStatus {
            node,
            reports: vec![(task_id.into(), status)],
        });
    }

    // ---- services and nodes ----------------------------------------------------------------

    fn service(&mut self, id: &str, spec: Value) {
        self.apply(Command::CreateService {
            id: id.into(),
            spec: RawJson::from_value(&spec),
        });
    }

    fn update_service(&mut self, id: &str, change: impl FnOnce(&mut Value)) {
        let service = &self.state.services[id];
        let mut spec = service.spec.value();
        change(&mut spec);
        let version = service.version.index;
        self.apply(Command::UpdateService {
            id: id.into(),
            version,
            spec: RawJson::from_value(&spec),
        });
    }

    fn scale(&mut self, id: &str, replicas: u64) {
        self.update_service(id, |s| {
            s["Mode"]["Replicated"]["Replicas"] = json!(replicas)
        });
    }

    fn update_node(&mut self, id: &str, change: impl FnOnce(&mut NodeSpec)) {
        let node = &self.state.nodes[id];
        let mut spec = node.spec.clone();
        change(&mut spec);
        let version = node.version.index;
        self.apply(Command::UpdateNode {
            id: id.into(),
            version,
            spec,
        });
    }

    fn set_availability(&mut self, id: &str, availability: NodeAvailability) {
        self.update_node(id, |s| s.availability = availability);
    }

    fn set_node_state(&mut self, id: &str, state: NodeState) {
        self.apply(Command::SetNodeStatus {
            id: id.into(),
            state,
            addr: "198.18.0.11".into(),
            message: String::new(),
        });
    }

    // ---- what a user would look at ---------------------------------------------------------

    fn tasks(&self, service: &str) -> Vec<&Task> {
        self.state
            .tasks
            .values()
            .filter(|t| t.service_id == service)
            .collect()
    }

    /// Tasks meant to run that have not ended (`service ps` without history).
    fn live(&self, service: &str) -> Vec<&Task> {
        let mut live: Vec<&Task> = self
            .tasks(service)
            .into_iter()
            .filter(|t| t.desired_state <= TaskState::Running && !t.status.state.is_terminal())
            .collect();
        live.sort_by_key(|t| (t.slot, t.node_id.clone()));
        live
    }

    /// Live tasks per node (nodes without any left out).
    fn per_node(&self, service: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for task in self.live(service) {
            if !task.node_id.is_empty() {
                *counts.entry(task.node_id.clone()).or_default() += 1;
            }
        }
        counts
    }

    fn nodes_running(&self, service: &str) -> BTreeSet<String> {
        self.per_node(service).into_keys().collect()
    }

    /// The live task of a slot.
    fn in_slot(&self, service: &str, slot: u64) -> &Task {
        let live: Vec<&Task> = self
            .live(service)
            .into_iter()
            .filter(|t| t.slot == slot)
            .collect();
        assert_eq!(live.len(), 1, "slot {slot}: {live:#?}");
        live[0]
    }

    fn history(&self, service: &str, slot: u64) -> Vec<&Task> {
        let mut tasks: Vec<&Task> = self
            .tasks(service)
            .into_iter()
            .filter(|t| t.slot == slot)
            .collect();
        tasks.sort_by_key(|t| (t.created_at, t.id.clone()));
        tasks
    }

    // ---- invariants ------------------------------------------------------------------------

    fn check_invariants(&self) {
        let mut live: BTreeMap<(&str, u64, &str), usize> = BTreeMap::new();
        let mut on_node: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        let mut reserved: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for t in self.state.tasks.values() {
            let status = t.status.state;
            if t.desired_state <= TaskState::Running && !status.is_terminal() {
                let node_key = if t.slot == 0 { t.node_id.as_str() } else { "" };
                *live.entry((&t.service_id, t.slot, node_key)).or_default() += 1;
                if !t.node_id.is_empty() {
                    *on_node.entry((&t.service_id, &t.node_id)).or_default() += 1;
                }
            }
            if !t.node_id.is_empty() && status >= TaskState::Assigned && !status.is_terminal() {
                let r = t
                    .spec
                    .parse::<TaskSpec>()
                    .ok()
                    .and_then(|s| s.resources)
                    .and_then(|r| r.reservations)
                    .unwrap_or_default();
                let e = reserved.entry(&t.node_id).or_default();
                e.0 += r.nano_cpus;
                e.1 += r.memory_bytes;
            }
        }
        for (key, n) in live {
            assert!(n <= 1, "{n} tasks meant to run in {key:?}");
        }
        self.check_addresses();
        for ((service, node), n) in on_node {
            let max = self
                .state
                .services
                .get(service)
                .and_then(|s| s.spec.value()["TaskTemplate"]["Placement"]["MaxReplicas"].as_u64())
                .unwrap_or(0);
            assert!(
                max == 0 || n <= max,
                "{n} tasks of {service} on {node}, max {max}"
            );
        }
        for (node, (cpus, memory)) in reserved {
            if let Some(n) = self.state.nodes.get(node) {
                let cap = &n.description.resources;
                assert!(
                    cpus <= cap.nano_cpus || cpus == 0,
                    "{node}: {cpus} CPU reserved"
                );
                assert!(
                    memory <= cap.memory_bytes || memory == 0,
                    "{node}: {memory} B reserved"
                );
            }
        }
    }
}

impl Sim {
    /// Every address a task or VIP holds is in use in its pool, in a block of the right
    /// owner, held once; and the pools hold nothing else.
    fn check_addresses(&self) {
        let mut held: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut take = |network: &str, addr: &str, owner: &str, who: String| {
            let ip = crate::cluster::ipam::addr_of(addr).expect("an address");
            let pool = &self.state.pools[network];
            assert!(pool.in_use(ip), "{who}: {addr} not in use in its pool");
            assert_eq!(pool.owner_of(ip), Some(owner), "{who}: {addr}'s block");
            if let Some(other) = held.insert((network.into(), ip.to_string()), who.clone()) {
                panic!("{addr} held by {other} and {who}");
            }
        };
        for t in self.state.tasks.values() {
            for a in &t.networks_attachments {
                for addr in &a.addresses {
                    take(&a.network.id, addr, &t.node_id, format!("task {}", t.id));
                }
            }
        }
        for s in self.state.services.values() {
            for vip in &s.endpoint.virtual_ips {
                take(
                    &vip.network_id,
                    &vip.addr,
                    crate::cluster::ipam::VIPS,
                    format!("VIP of {}", s.id),
                );
            }
        }
        let used: usize = self
            .state
            .pools
            .values()
            .flat_map(|p| p.blocks.values())
            .map(|b| b.used.len())
            .sum();
        assert_eq!(used, held.len(), "addresses in use that nobody holds");
    }

    fn network(&mut self, id: &str, name: &str, subnet: &str) {
        self.apply(Command::CreateNetwork {
            id: id.into(),
            network: crate::cluster::addressing::NewNetwork {
                name: name.into(),
                subnet: subnet.into(),
                ..Default::default()
            },
        });
    }
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn names(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

// ---- t10: the basics ------------------------------------------------------------------------

#[test]
fn t10_spread_puts_six_replicas_two_on_each_of_three_nodes() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", replicated("web", 6));
    assert_eq!(sim.settle(), 1, "one pass creates and places everything");
    assert_eq!(
        sim.per_node("s1"),
        counts(&[("n1", 2), ("n2", 2), ("n3", 2)])
    );
    let slots: BTreeSet<u64> = sim.live("s1").iter().map(|t| t.slot).collect();
    assert_eq!(slots, (1..=6).collect());
}

#[test]
fn t10_new_tasks_look_like_dockers() {
    let mut sim = Sim::with_nodes(1);
    sim.service("s1", replicated("web", 1));
    sim.settle();
    let task = sim.in_slot("s1", 1);
    assert_eq!(task.name, format!("web.1.{}", task.id));
    assert_eq!(task.status.state, TaskState::Assigned);
    assert_eq!(task.status.message, "scheduler assigned task to node");
    assert_eq!(task.desired_state, TaskState::Running);
    assert_eq!((task.spec_version, task.attempt), (1, 0));
    assert_eq!(
        task.spec.value(),
        json!({"ContainerSpec": {"Image": "busybox:test"}})
    );

    sim.service("s2", global("agent"));
    sim.settle();
    let task = sim.live("s2")[0];
    assert_eq!(task.name, format!("agent.n1.{}", task.id));
    assert_eq!((task.slot, task.node_id.as_str()), (0, "n1"));
}

#[test]
fn t10_a_pass_over_its_own_result_has_nothing_to_do() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", replicated("web", 4));
    sim.service("s2", global("agent"));
    assert!(!sim.pass().commands.is_empty());
    assert_eq!(sim.pass(), Plan::default());
    sim.converge();
    assert_eq!(sim.pass(), Plan::default());
}

#[test]
fn t10_spread_prefers_nodes_with_fewer_tasks_of_the_service_then_fewer_tasks() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", replicated("web", 2));
    sim.settle();
    assert_eq!(sim.per_node("s1"), counts(&[("n1", 1), ("n2", 1)]));
    sim.service("s2", replicated("db", 1));
    sim.settle();
    assert_eq!(sim.per_node("s2"), counts(&[("n3", 1)]));
}

// ---- t20: placement ---------------------------------------------------------------------------

fn reserving(mut spec: Value, cpus: f64, memory: i64) -> Value {
    spec["TaskTemplate"]["Resources"] = json!({"Reservations": {
        "NanoCPUs": (cpus * 1e9) as i64, "MemoryBytes": memory}});
    spec
}

#[test]
fn t20_binpack_fills_the_first_node_that_fits() {
    let mut sim = Sim::with_nodes(3);
    let mut spec = reserving(replicated("web", 5), 0.5, 3 * GIB);
    spec["Strategy"] = json!("binpack");
    sim.service("s1", spec);
    sim.settle();
    assert_eq!(
        sim.per_node("s1"),
        counts(&[("n1", 2), ("n2", 2), ("n3", 1)])
    );

    // The label does the same (it survives the docker CLI's read-modify-write).
    let mut spec = reserving(replicated("api", 2), 0.5, 2 * GIB);
    spec["Labels"] = json!({"swarm.strategy": "binpack"});
    sim.service("s2", spec);
    sim.settle();
    assert_eq!(
        sim.per_node("s2"),
        counts(&[("n1", 1), ("n2", 1)]),
        "the fullest nodes that still have room"
    );
}

#[test]
fn t20_the_cluster_default_strategy_applies_to_services_naming_none() {
    let mut sim = Sim::with_nodes(3);
    sim.defaults.strategy = Strategy::Binpack;
    sim.service("s1", replicated("web", 4));
    sim.settle();
    assert_eq!(sim.per_node("s1"), counts(&[("n1", 4)]));
    let mut spec = replicated("api", 3);
    spec["Strategy"] = json!("spread");
    sim.service("s2", spec);
    sim.settle();
    assert_eq!(
        sim.per_node("s2"),
        counts(&[("n1", 1), ("n2", 1), ("n3", 1)])
    );

    // The swarm's `swarm.strategy` label overrides the daemon's default.
    let mut sim = Sim::with_nodes(3);
    let mut spec = sim.state.cluster.as_ref().unwrap().info.spec.clone();
    spec.labels
        .insert("swarm.strategy".into(), "binpack".into());
    let version = sim.state.cluster.as_ref().unwrap().info.version.index;
    sim.apply(Command::UpdateCluster { version, spec });
    sim.service("s1", replicated("web", 3));
    sim.settle();
    assert_eq!(sim.per_node("s1"), counts(&[("n1", 3)]));
}

#[test]
fn t20_constraints_on_every_key_with_equal_and_not_equal() {
    let fleet = || {
        Sim::with(3, |i, node| match i {
            1 => {
                node.spec.labels.insert("zone".into(), "a".into());
                node.description
                    .engine
                    .labels
                    .insert("disk".into(), "ssd".into());
            }
            2 => {
                node.spec.labels.insert("zone".into(), "b".into());
                node.description
                    .engine
                    .labels
                    .insert("disk".into(), "hdd".into());
                node.description.platform.architecture = "aarch64".into();
            }
            _ => {}
        })
    };
    let cases: &[(&str, &[&str])] = &[
        ("node.id==n2", &["n2"]),
        ("node.id!=n2", &["n1", "n3"]),
        ("node.hostname==host-n3", &["n3"]),
        ("node.hostname==HOST-N3", &["n3"]),
        ("node.hostname!=host-n3", &["n1", "n2"]),
        ("node.role==manager", &["n1"]),
        ("node.role!=manager", &["n2", "n3"]),
        ("node.labels.zone==a", &["n1"]),
        ("node.labels.zone!=a", &["n2", "n3"]),
        ("engine.labels.disk==ssd", &["n1"]),
        ("engine.labels.disk!=ssd", &["n2", "n3"]),
        ("node.platform.os==linux", &["n1", "n2", "n3"]),
        ("node.platform.os!=linux", &[]),
        ("node.platform.arch==amd64", &["n1", "n3"]),
        ("node.platform.arch==x86_64", &["n1", "n3"]),
        ("node.platform.arch==arm64", &["n2"]),
        ("node.platform.arch!=aarch64", &["n1", "n3"]),
    ];
    for (constraint, expected) in cases {
        let mut sim = fleet();
        let mut spec = global("agent");
        spec["TaskTemplate"]["Placement"] = json!({"Constraints": [constraint]});
        sim.service("s1", spec);
        sim.settle();
        assert_eq!(sim.nodes_running("s1"), names(expected), "{constraint}");

        let mut sim = fleet();
        let mut spec = replicated("web", 4);
        spec["TaskTemplate"]["Placement"] = json!({"Constraints": [constraint]});
        sim.service("s1", spec);
        sim.settle();
        if expected.is_empty() {
            let task = sim.in_slot("s1", 1);
            assert_eq!(task.status.state, TaskState::Pending);
            assert_eq!(
                task.status.err,
                "no suitable node (scheduling constraints not satisfied on 3 nodes)"
            );
        } else {
            assert_eq!(sim.nodes_running("s1"), names(expected), "{constraint}");
        }
    }
}

#[test]
fn t20_a_task_that_fits_nowhere_stays_pending_and_says_why() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", reserving(replicated("big", 4), 0.5, 6 * GIB));
    assert_eq!(sim.settle(), 1, "the pending error is written once");
    assert_eq!(sim.live("s1").len(), 4);
    assert_eq!(sim.per_node("s1").values().sum::<usize>(), 3);
    let pending: Vec<&Task> = sim
        .live("s1")
        .into_iter()
        .filter(|t| t.status.state == TaskState::Pending)
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].slot, 4);
    assert_eq!(
        pending[0].status.err,
        "no suitable node (insufficient memory on 3 nodes)"
    );
    assert_eq!(pending[0].node_id, "");

    // Every reason counted, each node under the first filter it fails: n1 is paused, n2
    // excluded by the constraint, n3 and n4 hold the hog's reservations, n5 has one CPU.
    let mut sim = Sim::with(5, |i, node| {
        if i == 5 {
            node.description.resources.nano_cpus = 1_000_000_000;
        }
    });
    sim.set_availability("n1", NodeAvailability::Pause);
    let mut hog = reserving(replicated("hog", 2), 0.1, 3 * GIB);
    hog["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.id!=n2", "node.id!=n5"]});
    sim.service("s1", hog);
    sim.settle();
    assert_eq!(sim.per_node("s1"), counts(&[("n3", 1), ("n4", 1)]));
    let mut spec = reserving(replicated("big", 1), 2.0, 6 * GIB);
    spec["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.id!=n2"]});
    sim.service("s2", spec);
    sim.settle();
    let task = sim.in_slot("s2", 1);
    assert_eq!(task.status.state, TaskState::Pending);
    assert_eq!(
        task.status.err,
        "no suitable node (1 node not available for new tasks; scheduling constraints not \
         satisfied on 1 node; insufficient memory on 2 nodes; insufficient CPU on 1 node)"
    );

    // A node with room arrives: the pending task is placed, and its error goes.
    let mut big = new_node("n6");
    big.description.resources.memory_bytes = 64 * GIB;
    sim.add_node(big);
    assert_eq!(sim.settle(), 1);
    let task = sim.in_slot("s2", 1);
    assert_eq!(
        (task.node_id.as_str(), task.status.state),
        ("n6", TaskState::Assigned)
    );
    assert_eq!(task.status.err, "");
}

#[test]
fn t20_max_replicas_per_node() {
    let mut sim = Sim::with_nodes(3);
    let mut spec = replicated("web", 7);
    spec["TaskTemplate"]["Placement"] = json!({"MaxReplicas": 2});
    spec["Strategy"] = json!("binpack");
    sim.service("s1", spec);
    sim.settle();
    assert_eq!(
        sim.per_node("s1"),
        counts(&[("n1", 2), ("n2", 2), ("n3", 2)])
    );
    let pending = sim.in_slot("s1", 7);
    assert_eq!(
        pending.status.err,
        "no suitable node (max replicas per node reached on 3 nodes)"
    );
}

#[test]
fn t20_placement_preference_spreads_over_a_label_first() {
    let zones = ["a", "b", "b", "b"];
    let mut sim = Sim::with(4, |i, node| {
        node.spec.labels.insert("zone".into(), zones[i - 1].into());
    });
    let mut spec = replicated("web", 6);
    spec["TaskTemplate"]["Placement"] =
        json!({"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]});
    sim.service("s1", spec.clone());
    sim.settle();
    assert_eq!(
        sim.per_node("s1"),
        counts(&[("n1", 3), ("n2", 1), ("n3", 1), ("n4", 1)]),
        "half in zone a, half in zone b"
    );

    // Nodes without the label are a group of their own.
    sim.add_node(new_node("n5"));
    spec["Name"] = json!("api");
    sim.service("s2", spec);
    sim.settle();
    let per_node = sim.per_node("s2");
    assert_eq!(per_node.get("n1"), Some(&2));
    assert_eq!(per_node.get("n5"), Some(&2));
    assert_eq!(per_node.values().sum::<usize>(), 6);
}

// ---- t30: nodes come and go ------------------------------------------------------------------

#[test]
fn t30_pause_stops_new_placements_and_drain_moves_tasks_off() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", replicated("web", 6));
    sim.converge();

    sim.set_availability("n3", NodeAvailability::Pause);
    assert_eq!(sim.settle(), 0, "pause moves nothing");
    sim.scale("s1", 9);
    sim.converge();
    let per_node = sim.per_node("s1");
    assert_eq!(per_node["n3"], 2, "no new task on the paused node");
    assert_eq!(per_node["n1"] + per_node["n2"], 7);

    let on_n1: Vec<(u64, String)> = sim
        .live("s1")
        .iter()
        .filter(|t| t.node_id == "n1")
        .map(|t| (t.slot, t.id.clone()))
        .collect();
    sim.set_availability("n1", NodeAvailability::Drain);
    assert_eq!(sim.settle(), 1, "retire and replace in one pass");
    for (slot, old) in &on_n1 {
        let new = sim.in_slot("s1", *slot);
        assert_ne!(&new.id, old);
        assert_eq!(
            (new.node_id.as_str(), new.attempt),
            ("n2", 0),
            "a move is not a restart"
        );
        assert_eq!(sim.state.tasks[old].desired_state, TaskState::Shutdown);
    }
    sim.converge();
    assert_eq!(sim.per_node("s1"), counts(&[("n2", 7), ("n3", 2)]));
    for (slot, old) in &on_n1 {
        assert_eq!(sim.state.tasks[old].status.state, TaskState::Shutdown);
        assert_eq!(sim.history("s1", *slot).len(), 2);
    }

    sim.set_availability("n1", NodeAvailability::Active);
    assert_eq!(
        sim.settle(),
        0,
        "no rebalancing when a node comes back (as Docker)"
    );
}

#[test]
fn t30_a_down_nodes_tasks_are_replaced_elsewhere() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", replicated("web", 3));
    sim.converge();
    let lost = sim
        .live("s1")
        .into_iter()
        .find(|t| t.node_id == "n3")
        .unwrap()
        .clone();

    sim.set_node_state("n3", NodeState::Down);
    let plan = sim.pass();
    let task = &sim.state.tasks[&lost.id];
    assert_eq!(task.status.state, TaskState::Orphaned);
    assert_eq!(task.status.err, "node host-n3 is down");
    assert_eq!(task.desired_state, TaskState::Shutdown);
    // Replaced in the same pass, without the restart delay: the node failed, not the task.
    assert_eq!(plan.wake_at, None);
    let new = sim.in_slot("s1", lost.slot);
    assert_ne!(new.id, lost.id, "{plan:?}");
    assert_ne!(new.node_id, "n3");
    assert_eq!(new.attempt, 1, "a loss counts against MaxAttempts");
    sim.converge();
    assert_eq!(sim.live("s1").len(), 3);

    // Back up: the old task is not revived, nothing moves back.
    sim.set_node_state("n3", NodeState::Ready);
    assert_eq!(sim.settle(), 0);
    assert_eq!(sim.state.tasks[&lost.id].status.state, TaskState::Orphaned);
}

#[test]
fn t30_a_global_service_follows_the_nodes() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", global("agent"));
    sim.converge();
    assert_eq!(sim.nodes_running("s1"), names(&["n1", "n2", "n3"]));

    sim.add_node(new_node("n4"));
    sim.converge();
    assert_eq!(sim.nodes_running("s1"), names(&["n1", "n2", "n3", "n4"]));

    sim.set_availability("n2", NodeAvailability::Drain);
    sim.converge();
    assert_eq!(sim.nodes_running("s1"), names(&["n1", "n3", "n4"]));
    sim.set_availability("n2", NodeAvailability::Active);
    sim.converge();
    assert_eq!(sim.nodes_running("s1"), names(&["n1", "n2", "n3", "n4"]));

    sim.set_availability("n1", NodeAvailability::Pause);
    assert_eq!(sim.settle(), 0, "a paused node keeps its task");

    sim.set_node_state("n4", NodeState::Down);
    sim.converge();
    assert_eq!(sim.nodes_running("s1"), names(&["n1", "n2", "n3"]));
    sim.apply(Command::RemoveNode {
        id: "n4".into(),
        force: true,
    });
    sim.converge();
    assert!(
        sim.tasks("s1").iter().all(|t| t.node_id != "n4"),
        "a removed node's history goes with it"
    );

    // Constraints are followed as labels change.
    sim.update_service("s1", |s| {
        s["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.labels.agent==yes"]})
    });
    sim.update_node("n3", |s| {
        s.labels.insert("agent".into(), "yes".into());
    });
    sim.converge();
    assert_eq!(sim.nodes_running("s1"), names(&["n3"]));
}

#[test]
fn t30_a_node_that_no_longer_meets_the_constraints_loses_its_replicas() {
    let mut sim = Sim::with(3, |_, node| {
        node.spec.labels.insert("tier".into(), "web".into());
    });
    let mut spec = replicated("web", 3);
    spec["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.labels.tier==web"]});
    sim.service("s1", spec);
    sim.converge();
    sim.update_node("n2", |s| {
        s.labels.clear();
    });
    sim.converge();
    assert_eq!(sim.per_node("s1"), counts(&[("n1", 2), ("n3", 1)]));
}

#[test]
fn t30_scaling_down_removes_the_highest_slots() {
    let mut sim = Sim::with_nodes(3);
    sim.service("s1", replicated("web", 5));
    sim.converge();
    sim.scale("s1", 2);
    sim.pass();
    let slots: BTreeSet<u64> = sim.live("s1").iter().map(|t| t.slot).collect();
    assert_eq!(slots, names_u64(&[1, 2]));
    let stopping: BTreeSet<u64> = sim
        .tasks("s1")
        .iter()
        .filter(|t| t.desired_state == TaskState::Shutdown)
        .map(|t| t.slot)
        .collect();
    assert_eq!(stopping, names_u64(&[3, 4, 5]));
    sim.converge();
    assert_eq!(
        sim.tasks("s1").len(),
        2,
        "stopped tasks of slots that are gone are forgotten"
    );

    sim.scale("s1", 0);
    sim.converge();
    assert!(sim.tasks("s1").is_empty());
    sim.scale("s1", 3);
    sim.converge();
    assert_eq!(sim.live("s1").len(), 3);
}

fn names_u64(slots: &[u64]) -> BTreeSet<u64> {
    slots.iter().copied().collect()
}

// ---- t40: restart policy -----------------------------------------------------------------------

fn with_policy(name: &str, policy: Value) -> Value {
    let mut spec = replicated(name, 1);
    spec["TaskTemplate"]["RestartPolicy"] = policy;
    spec
}

#[test]
fn t40_restart_conditions_none_on_failure_and_any() {
    let mut sim = Sim::with_nodes(2);
    sim.service("s1", with_policy("none", json!({"Condition": "none"})));
    sim.service(
        "s2",
        with_policy("onfail", json!({"Condition": "on-failure"})),
    );
    sim.service("s3", with_policy("any", json!({"Condition": "any"})));
    sim.converge();
    for s in ["s1", "s2", "s3"] {
        let id = sim.in_slot(s, 1).id.clone();
        sim.report(&id, TaskState::Complete);
    }
    sim.advance(60);
    sim.converge();
    assert!(sim.live("s1").is_empty(), "none: never");
    assert!(sim.live("s2").is_empty(), "on-failure: not after success");
    assert_eq!(sim.in_slot("s3", 1).attempt, 1, "any: even after success");
    for s in ["s1", "s2"] {
        let last = sim.history(s, 1)[0];
        assert_eq!(
            (last.status.state, last.desired_state),
            (TaskState::Complete, TaskState::Shutdown)
        );
    }

    // on-failure restarts a failure; none still does not.
    sim.update_service("s2", |_| {});
    sim.converge();
    let id = sim.in_slot("s2", 1).id.clone();
    sim.report(&id, TaskState::Failed);
    sim.advance(60);
    sim.converge();
    assert_eq!(sim.in_slot("s2", 1).attempt, 1);
}

#[test]
fn t40_restarts_back_off_exponentially_up_to_max_attempts() {
    let mut sim = Sim::with_nodes(2);
    sim.service(
        "s1",
        with_policy(
            "crash",
            json!({"Condition": "on-failure", "Delay": SEC, "MaxAttempts": 4}),
        ),
    );
    sim.converge();
    let mut delays = Vec::new();
    for attempt in 0..5u64 {
        let task = sim.in_slot("s1", 1).clone();
        assert_eq!(task.attempt, attempt);
        sim.report(&task.id, TaskState::Failed);
        let plan = sim.pass();
        let Some(wake) = plan.wake_at else {
            assert_eq!(attempt, 4, "gave up after 4 restarts");
            break;
        };
        let delay = (wake.0 - sim.now.0) / SEC;
        delays.push(delay);
        sim.advance(delay - 1);
        assert_eq!(sim.settle(), 0, "not before the delay");
        assert!(sim.live("s1").is_empty());
        sim.advance(1);
        sim.converge();
    }
    assert_eq!(delays, vec![1, 2, 4, 8]);
    sim.advance(3600);
    assert_eq!(sim.settle(), 0, "a slot that gave up stays finished");
    assert!(sim.live("s1").is_empty());

    // A new spec version is a fresh start.
    sim.update_service("s1", |s| s["TaskTemplate"]["ForceUpdate"] = json!(1));
    sim.converge();
    assert_eq!(sim.in_slot("s1", 1).attempt, 0);
}

#[test]
fn t40_a_task_that_ran_long_enough_resets_the_backoff() {
    let mut sim = Sim::with_nodes(1);
    sim.service("s1", with_policy("svc", json!({"Delay": SEC})));
    sim.converge();
    for _ in 0..3 {
        let id = sim.in_slot("s1", 1).id.clone();
        sim.report(&id, TaskState::Failed);
        sim.advance(10);
        sim.converge();
    }
    let id = sim.in_slot("s1", 1).id.clone();
    sim.advance(120);
    sim.report(&id, TaskState::Failed);
    let wake = sim.pass().wake_at.unwrap();
    assert_eq!(wake.0 - sim.now.0, SEC);
}

// ---- t50: history and removal ------------------------------------------------------------------

#[test]
fn t50_history_is_trimmed_to_the_retention_limit_per_slot() {
    let mut sim = Sim::with_nodes(2);
    let mut spec = with_policy("crash", json!({"Condition": "any", "Delay": 0}));
    spec["Mode"]["Replicated"]["Replicas"] = json!(2);
    sim.service("s1", spec);
    sim.converge();
    for _ in 0..8 {
        let id = sim.in_slot("s1", 1).id.clone();
        sim.report(&id, TaskState::Failed);
        sim.converge();
    }
    let history = sim.history("s1", 1);
    assert_eq!(
        history.len(),
        5,
        "Docker's default: 5 per slot, current included"
    );
    assert_eq!(history[4].attempt, 8);
    assert_eq!(history[0].attempt, 4, "the oldest go first");
    assert_eq!(sim.history("s1", 2).len(), 1);

    let mut spec = sim.state.cluster.as_ref().unwrap().info.spec.clone();
    spec.orchestration.task_history_retention_limit = Some(2);
    let version = sim.state.cluster.as_ref().unwrap().info.version.index;
    sim.apply(Command::UpdateCluster { version, spec });
    sim.settle();
    assert_eq!(sim.history("s1", 1).len(), 2);
}

#[test]
fn t50_a_removed_services_tasks_go_once_they_have_stopped() {
    let mut sim = Sim::with_nodes(3);
    let mut spec = reserving(replicated("web", 4), 0.1, 3 * GIB);
    spec["TaskTemplate"]["Placement"] = json!({"MaxReplicas": 1});
    sim.service("s1", spec);
    sim.converge();
    assert_eq!(sim.live("s1").len(), 4, "three placed, one pending");
    sim.set_node_state("n3", NodeState::Down);
    sim.apply(Command::RemoveService { id: "s1".into() });

    sim.pass();
    let left: Vec<&Task> = sim.tasks("s1");
    assert_eq!(
        left.len(),
        2,
        "the pending task and the one on the down node go at once"
    );
    assert!(
        left.iter()
            .all(|t| t.desired_state == TaskState::Remove && t.status.state == TaskState::Running)
    );
    sim.converge();
    assert!(sim.tasks("s1").is_empty());
    assert!(sim.state.tasks.is_empty());
}

#[test]
fn t60_a_huge_replica_count_is_worked_through_pass_by_pass() {
    let mut sim = Sim::with_nodes(3);
    sim.defaults.max_new_tasks_per_pass = 4;
    sim.defaults.batch_size = 3;
    sim.service("s1", replicated("web", 10));
    let plan = sim.pass();
    assert_eq!(
        plan.commands
            .iter()
            .filter(|c| matches!(c, Command::CreateTasks { .. }))
            .count(),
        2,
        "4 tasks in batches of 3"
    );
    sim.settle();
    assert_eq!(sim.live("s1").len(), 10);
    // Only the budget, never the replica count, bounds a pass's work.
    sim.scale("s1", 1_000_000_000_000);
    sim.pass();
    assert_eq!(sim.live("s1").len(), 14);
}

// ---- t70: properties ---------------------------------------------------------------------------

mod properties {
    //! Whatever happens to nodes, services and tasks, every pass keeps the invariants
    //! (`Sim::check_invariants`), and once the dust settles a service without restrictions
    //! runs exactly its replicas.

    use proptest::prelude::*;
    use proptest::strategy::Strategy;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Scale(u64),
        MaxReplicas(u64),
        Availability(usize, NodeAvailability),
        NodeState(usize, NodeState),
        Fail(usize, TaskState),
        Agent,
        Advance(i64),
        Zone(usize, bool),
        GlobalConstraint(bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        let node = 0..4usize;
        prop_oneof![
            2 => (0..8u64).prop_map(Step::Scale),
            1 => (0..3u64).prop_map(Step::MaxReplicas),
            2 => (node.clone(), prop_oneof![
                Just(NodeAvailability::Active),
                Just(NodeAvailability::Pause),
                Just(NodeAvailability::Drain)
            ]).prop_map(|(n, a)| Step::Availability(n, a)),
            2 => (node.clone(), prop_oneof![Just(NodeState::Ready), Just(NodeState::Down)])
                .prop_map(|(n, s)| Step::NodeState(n, s)),
            3 => (0..16usize, prop_oneof![
                Just(TaskState::Failed),
                Just(TaskState::Complete),
                Just(TaskState::Rejected)
            ]).prop_map(|(i, s)| Step::Fail(i, s)),
            4 => Just(Step::Agent),
            2 => (1..30i64).prop_map(Step::Advance),
            1 => (node, any::<bool>()).prop_map(|(n, z)| Step::Zone(n, z)),
            1 => any::<bool>().prop_map(Step::GlobalConstraint),
        ]
    }

    fn run(sim: &mut Sim, step: &Step) {
        let node = |i: usize| format!("n{}", i + 1);
        match step {
            Step::Scale(n) => sim.scale("s1", *n),
            Step::MaxReplicas(m) => sim.update_service("s1", |s| {
                s["TaskTemplate"]["Placement"] = json!({"MaxReplicas": m})
            }),
            Step::Availability(i, a) => sim.set_availability(&node(*i), *a),
            Step::NodeState(i, s) => sim.set_node_state(&node(*i), *s),
            Step::Fail(i, state) => {
                let running: Vec<String> = sim
                    .state
                    .tasks
                    .values()
                    .filter(|t| {
                        (TaskState::Assigned..=TaskState::Running).contains(&t.status.state)
                            && sim
                                .state
                                .nodes
                                .get(&t.node_id)
                                .is_some_and(|n| n.status.state != NodeState::Down)
                    })
                    .map(|t| t.id.clone())
                    .collect();
                if !running.is_empty() {
                    let id = running[i % running.len()].clone();
                    sim.report(&id, *state);
                }
            }
            Step::Agent => {
                sim.agent();
            }
            Step::Advance(s) => sim.advance(*s),
            Step::Zone(i, on) => sim.update_node(&node(*i), |s| {
                if *on {
                    s.labels.insert("zone".into(), "a".into());
                } else {
                    s.labels.remove("zone");
                }
            }),
            Step::GlobalConstraint(on) => sim.update_service("s2", |s| {
                s["TaskTemplate"]["Placement"] = if *on {
                    json!({"Constraints": ["node.labels.zone==a"]})
                } else {
                    json!({})
                }
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn t70_invariants_hold_through_any_history(steps in proptest::collection::vec(step(), 1..40)) {
            let mut sim = Sim::with_nodes(4);
            // Addresses on a small network (8 blocks) and on ingress: every pass checks
            // that no address is held twice or leaked (`check_addresses`).
            sim.network("net1", "small", "198.19.64.0/23");
            sim.service("s1", on_network(replicated("web", 3), "net1"));
            let mut agent = global("agent");
            agent["EndpointSpec"] = json!({"Ports": [{"TargetPort": 9100}]});
            sim.service("s2", agent);
            sim.converge();
            for step in &steps {
                run(&mut sim, step);
                sim.settle(); // checks the invariants after every pass
            }

            // Heal everything and wait out any backoff: s1 runs exactly its replicas.
            for i in 0..4 {
                let id = format!("n{}", i + 1);
                sim.set_node_state(&id, NodeState::Ready);
                sim.set_availability(&id, NodeAvailability::Active);
            }
            for _ in 0..3 {
                sim.advance(600);
                sim.converge();
            }
            let spec = sim.state.services["s1"].spec.value();
            let replicas = spec["Mode"]["Replicated"]["Replicas"].as_u64().unwrap_or(0);
            let max = spec["TaskTemplate"]["Placement"]["MaxReplicas"].as_u64().unwrap_or(0);
            let want = if max == 0 { replicas } else { replicas.min(max * 4) };
            let running = sim.live("s1").iter()
                .filter(|t| t.status.state == TaskState::Running).count() as u64;
            prop_assert_eq!(running, want);
            let zone_a = sim.state.nodes.values()
                .filter(|n| n.spec.labels.get("zone").is_some_and(|z| z == "a")).count();
            let constrained = !sim.state.services["s2"].spec.value()["TaskTemplate"]["Placement"]
                ["Constraints"].is_null();
            let global_running = sim.live("s2").len();
            prop_assert_eq!(global_running, if constrained { zone_a } else { 4 });
        }
    }
}

// ---- t90: scale ----------------------------------------------------------------------------------

/// A small run by default; `SWARM_SIM_NODES=100 SWARM_SIM_REPLICAS=10000` for the real size
/// (or `cargo run --release --example scale_sim`). No timing assertions: it prints.
#[test]
fn t90_scale_simulation_places_every_replica_evenly() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let nodes = env("SWARM_SIM_NODES", 20) as usize;
    let replicas = env("SWARM_SIM_REPLICAS", 1000);
    let report = sim::simulate_scale(nodes, replicas, &Defaults::default()).unwrap();
    println!(
        "scale simulation: {} nodes, {} replicas placed in {:?} over {} passes: {:.0} tasks/s; \
         a settled pass takes {:?}; {}..{} per node",
        report.nodes,
        report.placed,
        report.elapsed,
        report.passes,
        report.tasks_per_second(),
        report.settled_pass,
        report.per_node.0,
        report.per_node.1
    );
    assert_eq!(report.placed as u64, replicas);
    assert!(report.per_node.1 - report.per_node.0 <= 1, "{report:?}");
    assert_eq!(
        report.passes, 2,
        "one pass to place, one to find nothing left"
    );
}

// ---- networks --------------------------------------------------------------------------------

fn on_network(mut spec: Value, network: &str) -> Value {
    spec["TaskTemplate"]["Networks"] = json!([{"Target": network}]);
    spec
}

#[test]
fn t80_placed_tasks_get_an_address_from_their_nodes_block_in_the_same_command() {
    let mut sim = Sim::with_nodes(2);
    sim.network("net1", "front", "");
    assert_eq!(
        sim.state.networks["net1"].subnet(),
        "198.19.16.0/20",
        "after ingress's /20"
    );
    sim.service("s1", on_network(replicated("web", 4), "net1"));
    let vip = &sim.state.services["s1"].endpoint.virtual_ips;
    assert_eq!(vip.len(), 1);
    assert_eq!(
        (vip[0].network_id.as_str(), vip[0].addr.as_str()),
        ("net1", "198.19.16.2/20")
    );

    let plan = sim.pass();
    let created = plan.commands.iter().find_map(|c| match c {
        Command::CreateTasks { tasks } => Some(tasks.clone()),
        _ => None,
    });
    let created = created.expect("a CreateTasks");
    assert!(
        created
            .iter()
            .all(|t| t.networks_attachments.len() == 1 && !t.node_id.is_empty()),
        "placed and addressed in one command"
    );
    sim.converge();
    let mut blocks: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in sim.live("s1") {
        let a = &t.networks_attachments[0];
        assert_eq!(a.network.spec.name, "front");
        let addr = crate::cluster::ipam::addr_of(&a.addresses[0]).unwrap();
        assert!(a.addresses[0].ends_with("/26"), "{:?}", a.addresses);
        let block = u32::from(addr) & !63;
        blocks
            .entry(t.node_id.clone())
            .or_default()
            .insert(std::net::Ipv4Addr::from(block).to_string());
    }
    assert_eq!(blocks.len(), 2);
    let all: BTreeSet<&String> = blocks.values().flatten().collect();
    assert_eq!(all.len(), 2, "one block per node, different: {blocks:?}");

    // A pass over the result does nothing; removing the service frees everything.
    assert!(sim.pass().commands.is_empty());
    sim.apply(Command::RemoveService { id: "s1".into() });
    sim.converge();
    assert!(sim.state.tasks.is_empty());
    assert!(
        sim.state.pools["net1"]
            .blocks
            .values()
            .all(|b| b.used.is_empty())
    );
    sim.apply(Command::RemoveNetwork { id: "net1".into() });
}

#[test]
fn t80_a_full_network_leaves_tasks_pending_with_the_reason_and_they_place_once_freed() {
    let mut sim = Sim::with_nodes(1);
    sim.network("net1", "tiny", "198.19.64.0/24");
    // Four blocks: one for the VIP, three for n1: 3 × 61 = 183 task addresses.
    sim.service("s1", on_network(replicated("big", 190), "net1"));
    sim.converge();
    let pending: Vec<&Task> = sim
        .live("s1")
        .into_iter()
        .filter(|t| t.status.state == TaskState::Pending)
        .collect();
    assert_eq!(pending.len(), 7);
    assert!(
        pending
            .iter()
            .all(|t| t.status.err == "no free address in network tiny"
                && t.networks_attachments.is_empty())
    );
    assert!(
        sim.pass().commands.is_empty(),
        "a pending task is not re-proposed every pass"
    );
    sim.scale("s1", 180);
    sim.converge();
    assert_eq!(sim.live("s1").len(), 180);
    assert!(
        sim.live("s1")
            .iter()
            .all(|t| t.status.state == TaskState::Running)
    );
}

#[test]
fn t80_published_ports_attach_tasks_to_ingress_and_conflicts_are_refused() {
    let mut sim = Sim::with_nodes(2);
    let mut web = replicated("web", 2);
    web["EndpointSpec"] =
        json!({"Ports": [{"TargetPort": 80, "PublishedPort": 8080}, {"TargetPort": 81}]});
    sim.service("s1", web);
    let ingress = sim
        .state
        .network_named("ingress")
        .expect("swarm init made ingress")
        .id
        .clone();
    let e = &sim.state.services["s1"].endpoint;
    assert_eq!(e.spec.mode, "vip");
    assert_eq!(e.ports[1].published_port, 30000, "assigned from 30000");
    assert_eq!(e.virtual_ips[0].network_id, ingress);
    sim.converge();
    assert!(
        sim.live("s1")
            .iter()
            .all(|t| t.networks_attachments[0].network.id == ingress)
    );

    let mut clash = replicated("other", 1);
    clash["EndpointSpec"] = json!({"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]});
    let e = apply(
        &mut sim.state.clone(),
        &Command::CreateService {
            id: "s2".into(),
            spec: RawJson::from_value(&clash),
        },
        sim.now,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("port '8080' is already in use by service 'web'"),
        "{e}"
    );
    let e = apply(
        &mut sim.state.clone(),
        &Command::RemoveNetwork {
            id: ingress.clone(),
        },
        sim.now,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "network ingress is in use by service web");

    // An update keeps the assigned port and the VIP.
    let before = sim.state.services["s1"].endpoint.clone();
    sim.scale("s1", 3);
    assert_eq!(sim.state.services["s1"].endpoint, before);
    // dnsrr without ingress ports: no VIP, the old one freed.
    sim.update_service("s1", |s| s["EndpointSpec"] = json!({"Mode": "dnsrr"}));
    assert!(sim.state.services["s1"].endpoint.virtual_ips.is_empty());
    sim.check_addresses();
}
