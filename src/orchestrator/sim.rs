//! An in-process scale simulation: a cluster of `nodes` nodes, one service of `replicas`
//! replicas, and the orchestrator's passes applied with the real state machine until a pass
//! has nothing left to do. No network, no agents: it measures what the leader spends on
//! deciding and applying (the part of placement this module owns).
//!
//! ```text
//!  State (N nodes, 1 service) ─▶ reconcile ─▶ apply every command ─▶ … until a pass is empty
//!                               └──────────── timed ─────────────┘
//! ```
//!
//! Used by the test suite at a small size and by `examples/scale_sim.rs` at full size.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Defaults, TaskIds, reconcile};
use crate::cluster::state::{Command, JoinTokenHashes, NewNode, State, apply};
use crate::types::service::{RawJson, TaskState};
use crate::types::{
    NodeDescription, NodeRole, NodeSpec, Platform, Resources, SwarmSpec, Timestamp,
};

/// What a simulation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    pub nodes: usize,
    pub replicas: u64,
    /// Tasks assigned to a node at the end.
    pub placed: usize,
    /// Passes until one returned nothing (the empty one included).
    pub passes: usize,
    /// Time spent in `reconcile` and `apply` until everything was placed.
    pub elapsed: Duration,
    /// The last pass, which found nothing to do: what the leader spends per pass on a
    /// settled cluster of this size.
    pub settled_pass: Duration,
    /// Fewest and most tasks on one node.
    pub per_node: (usize, usize),
}

impl SimReport {
    pub fn tasks_per_second(&self) -> f64 {
        self.placed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the simulation; each node has 8 CPUs and 32 GiB, each task reserves 0.01 CPU and
/// 16 MiB.
pub fn simulate_scale(
    nodes: usize,
    replicas: u64,
    defaults: &Defaults,
) -> Result<SimReport, String> {
    let t0 = Timestamp(1_700_000_000_000_000_000);
    let mut state = State::default();
    let node = |i: usize| NewNode {
        id: format!("node{i:04}"),
        spec: NodeSpec {
            role: if i == 0 {
                NodeRole::Manager
            } else {
                NodeRole::Worker
            },
            ..Default::default()
        },
        description: NodeDescription {
            hostname: format!("host{i:04}"),
            platform: Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            },
            resources: Resources {
                nano_cpus: 8_000_000_000,
                memory_bytes: 32 << 30,
            },
            ..Default::default()
        },
        addr: "198.18.0.11".into(),
    };
    let mut setup = vec![Command::InitCluster {
        cluster_id: "sim".into(),
        spec: SwarmSpec::default(),
        default_addr_pool: vec![],
        subnet_size: 0,
        data_path_port: 0,
        join_token_hashes: JoinTokenHashes {
            worker: "w".into(),
            manager: "m".into(),
        },
        manager: node(0),
        manager_addr: "198.18.0.11:2377".into(),
    }];
    setup.extend((1..nodes).map(|i| Command::AddNode { node: node(i) }));
    setup.push(Command::CreateService {
        id: "bench".into(),
        spec: RawJson::from_value(&serde_json::json!({
            "Name": "bench",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox:test", "Args": ["sleep", "3600"]},
                "Resources": {"Reservations": {"NanoCPUs": 10_000_000, "MemoryBytes": 16 << 20}}
            },
            "Mode": {"Replicated": {"Replicas": replicas}}
        })),
    });
    for command in &setup {
        apply(&mut state, command, t0).map_err(|e| format!("{}: {e}", command.name()))?;
    }

    let mut ids = TaskIds::seeded([7; 32]);
    let mut passes = 0;
    let started = Instant::now();
    let mut elapsed = Duration::ZERO;
    let settled_pass = loop {
        passes += 1;
        let pass_started = Instant::now();
        let plan = reconcile(&state, t0, &mut || ids.next_id(), defaults);
        if plan.commands.is_empty() {
            break pass_started.elapsed();
        }
        if passes > 100 {
            return Err("the orchestrator did not settle in 100 passes".into());
        }
        for command in &plan.commands {
            apply(&mut state, command, t0).map_err(|e| format!("{}: {e}", command.name()))?;
        }
        elapsed = started.elapsed();
    };

    let mut per_node: BTreeMap<&str, usize> =
        state.nodes.keys().map(|id| (id.as_str(), 0)).collect();
    let mut placed = 0;
    for task in state.tasks.values() {
        if task.status.state == TaskState::Assigned {
            placed += 1;
            *per_node.entry(task.node_id.as_str()).or_default() += 1;
        }
    }
    Ok(SimReport {
        nodes,
        replicas,
        placed,
        passes,
        elapsed,
        settled_pass,
        per_node: (
            per_node.values().copied().min().unwrap_or(0),
            per_node.values().copied().max().unwrap_or(0),
        ),
    })
}
