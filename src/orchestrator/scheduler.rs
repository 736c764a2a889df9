//! Placement (pure): which node a task runs on.
//!
//! ```text
//!  Scheduler::new(nodes, loads)        once per pass: capacity, reservations and task counts
//!     │                                per node (every task is looked at once)
//!     └─ for_service(id, requirements) once per service: static filters (availability,
//!          │                           constraints), this service's count per node,
//!          │                           placement-preference groups
//!          └─ place(on) per task ──▶ filters ──▶ preference tree ──▶ strategy ──▶ node
//!                                       │ nothing fits
//!                                       ▼
//!             NoSuitableNode: "no suitable node (1 node not available for new tasks;
//!                                                insufficient memory on 3 nodes)"
//! ```
//!
//! Filters, in Docker's order; a node that fails is counted under the first one it fails, and
//! the counts make the error a user can act on:
//! 1. availability: the node is `ready` and `active` (`pause` and `drain` take no new tasks);
//! 2. constraints: `node.id`, `node.hostname`, `node.role`, `node.platform.os|arch`,
//!    `node.labels.*`, `engine.labels.*`, with `==` / `!=` (values compared case-insensitively,
//!    as Docker does; `amd64`/`x86_64` and `arm64`/`aarch64` are the same architecture);
//! 3. `Placement.MaxReplicas`: at most so many tasks of the service per node;
//! 4. reservations: memory, then CPU, against the node's capacity minus what its tasks reserve.
//!
//! Among the nodes that pass, placement preferences (`spread=node.labels.zone`, outermost
//! first) pick the group of nodes holding the fewest tasks of the service (nodes without the
//! label form a group of their own), and the strategy picks the node within it:
//! * `spread` (Docker's): fewest tasks of this service, then fewest tasks in all;
//! * `binpack`: the fullest node that still fits (highest share of its memory and CPU reserved
//!   once the task is placed), then the one with the most tasks, so without reservations
//!   tasks fill the first node.
//!
//! Ties go to the node with the smallest ID, so a placement is reproducible. The cost of a
//! pass is one look at every task plus O(nodes × preference levels) per task placed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::types::service::{Constraint, ServiceSpec, Strategy};
use crate::types::{Node, NodeAvailability, NodeState};

/// What a service asks of the node its tasks run on, read once per pass from its spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub constraints: Vec<Constraint>,
    /// Reservations (`--reserve-cpu`, `--reserve-memory`).
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// At most so many tasks of the service on one node (`--replicas-max-per-node`); 0: any.
    pub max_replicas: u64,
    /// `--placement-pref spread=…` descriptors, outermost first.
    pub spread_over: Vec<String>,
    pub strategy: Strategy,
}

impl Requirements {
    /// The requirements of `spec`; `default` is the strategy when the service names none.
    pub fn of(spec: &ServiceSpec, default: Strategy) -> Result<Requirements, String> {
        let template = &spec.task_template;
        let placement = template.placement.clone().unwrap_or_default();
        let constraints = placement
            .constraints
            .iter()
            .map(|c| Constraint::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        let reservation = template
            .resources
            .as_ref()
            .and_then(|r| r.reservations.clone())
            .unwrap_or_default();
        Ok(Requirements {
            constraints,
            nano_cpus: reservation.nano_cpus.max(0),
            memory_bytes: reservation.memory_bytes.max(0),
            max_replicas: placement.max_replicas,
            spread_over: placement
                .preferences
                .iter()
                .filter_map(|p| p.spread.as_ref())
                .map(|s| s.spread_descriptor.trim().to_owned())
                .filter(|d| !d.is_empty())
                .collect(),
            strategy: spec.strategy()?.unwrap_or(default),
        })
    }

    /// Every constraint holds on `node`.
    pub fn satisfied_by(&self, node: &Node) -> bool {
        self.constraints.iter().all(|c| constraint_holds(c, node))
    }
}

/// Whether `node` meets one constraint. A missing label fails `==` and passes `!=`.
pub fn constraint_holds(constraint: &Constraint, node: &Node) -> bool {
    let same = node_attribute(node, &constraint.key).is_some_and(|have| {
        have.eq_ignore_ascii_case(&constraint.value)
            || (constraint.key == "node.platform.arch"
                && canonical_arch(have) == canonical_arch(&constraint.value))
    });
    same == constraint.equal
}

/// The value a constraint or preference key names on `node`, if it has one.
pub fn node_attribute<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    match key {
        "node.id" => Some(&node.id),
        "node.hostname" => Some(&node.description.hostname),
        "node.role" => Some(node.spec.role.as_str()),
        "node.platform.os" => Some(&node.description.platform.os),
        "node.platform.arch" => Some(&node.description.platform.architecture),
        _ => {
            if let Some(label) = key.strip_prefix("node.labels.") {
                node.spec.labels.get(label).map(String::as_str)
            } else if let Some(label) = key.strip_prefix("engine.labels.") {
                node.description
                    .engine
                    .labels
                    .get(label)
                    .map(String::as_str)
            } else {
                None
            }
        }
    }
}

/// Nodes report `uname -m`; Docker users write Go's names. Both mean the same machine.
fn canonical_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64".into(),
        "aarch64" | "arm64" => "arm64".into(),
        other => other.into(),
    }
}

/// Whether a node takes new tasks at all.
pub fn takes_new_tasks(node: &Node) -> bool {
    node.status.state == NodeState::Ready && node.spec.availability == NodeAvailability::Active
}

/// A task already on a node, as the scheduler counts it.
#[derive(Debug, Clone, Copy)]
pub struct Load<'s> {
    pub node_id: &'s str,
    pub service_id: &'s str,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// Counts toward spread and max replicas (it is meant to run); a task that is being
    /// stopped still holds its reservation until it has stopped.
    pub active: bool,
}

/// Why a node cannot take a task, in the order the filters run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    NotAvailable = 0,
    Constraints = 1,
    MaxReplicas = 2,
    Memory = 3,
    Cpu = 4,
}

/// Nothing fits: how many nodes each filter turned away.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("no suitable node ({})", self.explain())]
pub struct NoSuitableNode {
    not_available: usize,
    constraints: usize,
    max_replicas: usize,
    memory: usize,
    cpu: usize,
}

impl NoSuitableNode {
    fn count(&mut self, reason: Reason) {
        match reason {
            Reason::NotAvailable => self.not_available += 1,
            Reason::Constraints => self.constraints += 1,
            Reason::MaxReplicas => self.max_replicas += 1,
            Reason::Memory => self.memory += 1,
            Reason::Cpu => self.cpu += 1,
        }
    }

    fn explain(&self) -> String {
        let nodes = |n: usize| {
            if n == 1 {
                "1 node".to_owned()
            } else {
                format!("{n} nodes")
            }
        };
        let mut parts = Vec::new();
        if self.not_available > 0 {
            parts.push(format!(
                "{} not available for new tasks",
                nodes(self.not_available)
            ));
        }
        if self.constraints > 0 {
            parts.push(format!(
                "scheduling constraints not satisfied on {}",
                nodes(self.constraints)
            ));
        }
        if self.max_replicas > 0 {
            parts.push(format!(
                "max replicas per node reached on {}",
                nodes(self.max_replicas)
            ));
        }
        if self.memory > 0 {
            parts.push(format!("insufficient memory on {}", nodes(self.memory)));
        }
        if self.cpu > 0 {
            parts.push(format!("insufficient CPU on {}", nodes(self.cpu)));
        }
        if parts.is_empty() {
            return "the swarm has no nodes".into();
        }
        parts.join("; ")
    }
}

struct NodeLoad<'s> {
    node: &'s Node,
    open: bool,
    reserved_cpus: i64,
    reserved_memory: i64,
    /// Active tasks of every service.
    tasks: u32,
    by_service: HashMap<&'s str, u32>,
}

/// The nodes and what runs on them, for one pass.
pub struct Scheduler<'s> {
    nodes: Vec<NodeLoad<'s>>,
    index: HashMap<&'s str, usize>,
}

impl<'s> Scheduler<'s> {
    /// `nodes` in the order ties are broken (the state's, by ID); `loads`: every task that
    /// is on a node and not finished.
    pub fn new(
        nodes: impl IntoIterator<Item = &'s Node>,
        loads: impl IntoIterator<Item = Load<'s>>,
    ) -> Scheduler<'s> {
        let nodes: Vec<NodeLoad<'s>> = nodes
            .into_iter()
            .map(|node| NodeLoad {
                node,
                open: takes_new_tasks(node),
                reserved_cpus: 0,
                reserved_memory: 0,
                tasks: 0,
                by_service: HashMap::new(),
            })
            .collect();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.node.id.as_str(), i))
            .collect();
        let mut scheduler = Scheduler { nodes, index };
        for load in loads {
            let Some(&i) = scheduler.index.get(load.node_id) else {
                continue;
            };
            let node = &mut scheduler.nodes[i];
            node.reserved_cpus += load.nano_cpus;
            node.reserved_memory += load.memory_bytes;
            if load.active {
                node.tasks += 1;
                *node.by_service.entry(load.service_id).or_default() += 1;
            }
        }
        scheduler
    }

    /// Places tasks of one service; everything that does not change while its tasks are
    /// placed is worked out here, once.
    pub fn for_service<'a>(
        &'a mut self,
        service_id: &'s str,
        requirements: &'a Requirements,
    ) -> ServicePlacer<'a, 's> {
        let excluded = self
            .nodes
            .iter()
            .map(|n| {
                if !n.open {
                    Some(Reason::NotAvailable)
                } else if !requirements.satisfied_by(n.node) {
                    Some(Reason::Constraints)
                } else {
                    None
                }
            })
            .collect();
        let count = self
            .nodes
            .iter()
            .map(|n| n.by_service.get(service_id).copied().unwrap_or(0))
            .collect();
        let groups: Vec<Vec<usize>> = requirements
            .spread_over
            .iter()
            .map(|key| {
                let values: Vec<Option<&str>> = self
                    .nodes
                    .iter()
                    .map(|n| node_attribute(n.node, key))
                    .collect();
                // Group numbers in the order of the values, so ties go to the smallest value.
                let ids: BTreeMap<Option<&str>, usize> = values
                    .iter()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (v, i))
                    .collect();
                values.iter().map(|v| ids[v]).collect()
            })
            .collect();
        ServicePlacer {
            scheduler: self,
            service_id,
            requirements,
            excluded,
            count,
            groups,
            fitting: Vec::new(),
            group_counts: Vec::new(),
        }
    }
}

/// Places the tasks of one service, one at a time, each seeing the ones placed before it.
pub struct ServicePlacer<'a, 's> {
    scheduler: &'a mut Scheduler<'s>,
    service_id: &'s str,
    requirements: &'a Requirements,
    /// Per node: the static filter it fails for this service, if any.
    excluded: Vec<Option<Reason>>,
    /// Per node: active tasks of this service.
    count: Vec<u32>,
    /// Per preference level, per node: the node's group (its label value's number).
    groups: Vec<Vec<usize>>,
    fitting: Vec<usize>,
    group_counts: Vec<u64>,
}

impl<'s> ServicePlacer<'_, 's> {
    /// Picks a node for one task and books it there. `on`: the task must run on that node
    /// (a global service's task), which is then only checked.
    pub fn place(&mut self, on: Option<&str>) -> Result<&'s str, NoSuitableNode> {
        let mut why = NoSuitableNode::default();
        self.fitting.clear();
        match on {
            Some(id) => match self.scheduler.index.get(id) {
                Some(&i) => match self.check(i) {
                    Ok(()) => self.fitting.push(i),
                    Err(reason) => why.count(reason),
                },
                None => why.count(Reason::NotAvailable),
            },
            None => {
                for i in 0..self.scheduler.nodes.len() {
                    match self.check(i) {
                        Ok(()) => self.fitting.push(i),
                        Err(reason) => why.count(reason),
                    }
                }
            }
        }
        if self.fitting.is_empty() {
            return Err(why);
        }
        if on.is_none() {
            self.narrow_by_preferences();
        }
        let chosen = self.by_strategy();
        self.book(chosen);
        Ok(self.scheduler.nodes[chosen].node.id.as_str())
    }

    fn check(&self, i: usize) -> Result<(), Reason> {
        if let Some(reason) = self.excluded[i] {
            return Err(reason);
        }
        let req = self.requirements;
        if req.max_replicas > 0 && u64::from(self.count[i]) >= req.max_replicas {
            return Err(Reason::MaxReplicas);
        }
        let node = &self.scheduler.nodes[i];
        let capacity = &node.node.description.resources;
        if req.memory_bytes > 0 && node.reserved_memory + req.memory_bytes > capacity.memory_bytes {
            return Err(Reason::Memory);
        }
        if req.nano_cpus > 0 && node.reserved_cpus + req.nano_cpus > capacity.nano_cpus {
            return Err(Reason::Cpu);
        }
        Ok(())
    }

    /// Walks the preference tree: at each level keeps the group (of nodes that pass the
    /// static filters, within the groups chosen above) holding the fewest tasks of the
    /// service among those where the task fits.
    fn narrow_by_preferences(&mut self) {
        for level in 0..self.groups.len() {
            let groups = &self.groups[level];
            let width = groups.iter().max().map_or(0, |m| m + 1);
            self.group_counts.clear();
            self.group_counts.resize(width, 0);
            // Every fitting node is in the subtree chosen so far, so any one of them names it.
            let anchor = self.fitting[0];
            for (i, &group) in groups.iter().enumerate() {
                let in_subtree = self.excluded[i].is_none()
                    && (0..level).all(|l| self.groups[l][anchor] == self.groups[l][i]);
                if in_subtree {
                    self.group_counts[group] += u64::from(self.count[i]);
                }
            }
            let Some(best) = self
                .fitting
                .iter()
                .map(|&i| groups[i])
                .min_by_key(|&g| (self.group_counts[g], g))
            else {
                return;
            };
            self.fitting.retain(|&i| groups[i] == best);
        }
    }

    fn by_strategy(&self) -> usize {
        let nodes = &self.scheduler.nodes;
        let first = self.fitting[0];
        match self.requirements.strategy {
            Strategy::Spread => self
                .fitting
                .iter()
                .copied()
                .min_by_key(|&i| (self.count[i], nodes[i].tasks, i))
                .unwrap_or(first),
            Strategy::Binpack => self
                .fitting
                .iter()
                .copied()
                .max_by_key(|&i| {
                    (
                        self.utilisation_after(i),
                        nodes[i].tasks,
                        std::cmp::Reverse(i),
                    )
                })
                .unwrap_or(first),
        }
    }

    /// Millionths of the node's capacity reserved once the task is there, averaged over
    /// memory and CPU (those the node reports).
    fn utilisation_after(&self, i: usize) -> u64 {
        let node = &self.scheduler.nodes[i];
        let capacity = &node.node.description.resources;
        let req = self.requirements;
        let share = |used: i64, cap: i64| (i128::from(used) * 1_000_000 / i128::from(cap)) as u64;
        let mut parts = Vec::with_capacity(2);
        if capacity.memory_bytes > 0 {
            parts.push(share(
                node.reserved_memory + req.memory_bytes,
                capacity.memory_bytes,
            ));
        }
        if capacity.nano_cpus > 0 {
            parts.push(share(
                node.reserved_cpus + req.nano_cpus,
                capacity.nano_cpus,
            ));
        }
        if parts.is_empty() {
            0
        } else {
            parts.iter().sum::<u64>() / parts.len() as u64
        }
    }

    fn book(&mut self, i: usize) {
        self.count[i] += 1;
        let node = &mut self.scheduler.nodes[i];
        node.tasks += 1;
        node.reserved_cpus += self.requirements.nano_cpus;
        node.reserved_memory += self.requirements.memory_bytes;
        *node.by_service.entry(self.service_id).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{NodeSpec, NodeStatus};

    fn node(id: &str, memory_gib: i64) -> Node {
        let mut node = Node {
            id: id.into(),
            spec: NodeSpec::default(),
            status: NodeStatus {
                state: NodeState::Ready,
                ..Default::default()
            },
            ..Default::default()
        };
        node.description.resources.memory_bytes = memory_gib << 30;
        node.description.resources.nano_cpus = 2_000_000_000;
        node.description.platform.architecture = "aarch64".into();
        node
    }

    fn constraint(text: &str) -> Constraint {
        Constraint::parse(text).unwrap()
    }

    #[test]
    fn t10_the_error_counts_nodes_in_words_a_user_can_act_on() {
        let mut e = NoSuitableNode::default();
        assert_eq!(e.to_string(), "no suitable node (the swarm has no nodes)");
        e.count(Reason::Memory);
        assert_eq!(
            e.to_string(),
            "no suitable node (insufficient memory on 1 node)"
        );
        e.count(Reason::Memory);
        e.count(Reason::NotAvailable);
        assert_eq!(
            e.to_string(),
            "no suitable node (1 node not available for new tasks; insufficient memory on 2 nodes)"
        );
    }

    #[test]
    fn t10_missing_labels_fail_equal_and_pass_not_equal_and_arches_have_aliases() {
        let n = node("n1", 1);
        assert!(!constraint_holds(&constraint("node.labels.zone==a"), &n));
        assert!(constraint_holds(&constraint("node.labels.zone!=a"), &n));
        assert!(!constraint_holds(&constraint("engine.labels.x==y"), &n));
        assert!(constraint_holds(
            &constraint("node.platform.arch==arm64"),
            &n
        ));
        assert!(constraint_holds(
            &constraint("node.platform.arch!=amd64"),
            &n
        ));
    }

    #[test]
    fn t20_a_task_bound_to_a_node_is_only_checked_there() {
        let nodes = [node("n1", 1), node("n2", 8)];
        let req = Requirements {
            memory_bytes: 2 << 30,
            ..Default::default()
        };
        let mut scheduler = Scheduler::new(&nodes, []);
        let mut placer = scheduler.for_service("s1", &req);
        assert_eq!(
            placer.place(Some("n1")).unwrap_err().to_string(),
            "no suitable node (insufficient memory on 1 node)"
        );
        assert_eq!(placer.place(Some("n2")), Ok("n2"));
        assert_eq!(
            placer.place(Some("gone")).unwrap_err().to_string(),
            "no suitable node (1 node not available for new tasks)"
        );
        assert_eq!(placer.place(None), Ok("n2"), "books what it placed");
    }

    #[test]
    fn t20_existing_loads_count_against_capacity_and_spread() {
        let nodes = [node("n1", 4), node("n2", 4)];
        let loads = [Load {
            node_id: "n1",
            service_id: "s1",
            nano_cpus: 0,
            memory_bytes: 3 << 30,
            active: true,
        }];
        let mut scheduler = Scheduler::new(&nodes, loads);
        let req = Requirements {
            memory_bytes: 2 << 30,
            ..Default::default()
        };
        let mut placer = scheduler.for_service("s1", &req);
        assert_eq!(placer.place(None), Ok("n2"));
        assert_eq!(placer.place(None), Ok("n2"), "n1 is full");
        assert!(placer.place(None).is_err());
    }
}
