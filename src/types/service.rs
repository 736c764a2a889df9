//! `Service` and `Task` in the shapes of Docker's `GET /services/{id}` and `GET /tasks/{id}`
//! (moby `api/types/swarm/service.go`, `task.go`).
//!
//! Specs are kept **verbatim**: clients read-modify-write the whole `ServiceSpec` and a field
//! we dropped would be lost on their next update (`docker-cli-api.md`, "Surprises" 1). So the
//! state holds the spec as the JSON text the client sent ([`RawJson`]), and [`ServiceSpec`]
//! is a lenient, read-only view of the fields the orchestrator, scheduler and agent act on,
//! parsed from it when needed. Unknown fields are ignored by the view and kept by the text.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Version;
use super::network::{Endpoint, EndpointSpec, NetworkAttachment};
use super::serde_util::null_as_default;
use super::time::Timestamp;

/// A JSON document kept as text: in the Raft state (binary codec) it is a string; in the API
/// it is the JSON value itself, so `Spec` comes back exactly as it was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawJson(pub String);

impl RawJson {
    /// Canonical text of `value` (compact).
    pub fn from_value(value: &serde_json::Value) -> RawJson {
        RawJson(value.to_string())
    }

    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }

    /// The typed view of the document.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            match serde_json::from_str::<serde_json::Value>(&self.0) {
                Ok(v) => v.serialize(serializer),
                Err(_) => serializer.serialize_unit(),
            }
        } else {
            serializer.serialize_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let v = serde_json::Value::deserialize(deserializer)?;
            Ok(RawJson::from_value(&v))
        } else {
            String::deserialize(deserializer).map(RawJson)
        }
    }
}

/// `GET /services/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The spec exactly as the client sent it.
    pub spec: RawJson,
    /// The spec before the last update (for rollback); Go's `omitempty` in JSON.
    pub previous_spec: Option<RawJson>,
    /// swarm's: bumped by every spec change; tasks made from an older spec are not
    /// `_up-to-date`. An extra field Docker clients ignore.
    pub spec_version: u64,
    /// Its ports (published ports assigned) and virtual IPs.
    pub endpoint: Endpoint,
}

/// `ServiceStatus` of `GET /services?status=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceStatus {
    pub running_tasks: u64,
    pub desired_tasks: u64,
    pub completed_tasks: u64,
}

// ---- the typed view of a ServiceSpec ------------------------------------------------------

/// The fields of Docker's `ServiceSpec` that swarm acts on. Parse with
/// [`ServiceSpec::from_raw`], which also validates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    pub task_template: TaskSpec,
    pub mode: ServiceMode,
    /// swarm's extension (Docker clients ignore it): `spread` (default) or `binpack`. A label
    /// `swarm.strategy` does the same and survives the docker CLI's read-modify-write.
    pub strategy: Option<String>,
    /// Deprecated top-level form of `TaskTemplate.Networks`; folded into it on create.
    #[serde(deserialize_with = "null_as_default")]
    pub networks: Vec<NetworkAttachmentConfig>,
    pub endpoint_spec: Option<EndpointSpec>,
}

/// A network a service's tasks join: `Target` is the network's ID once stored (a client may
/// send its name; the daemon resolves it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkAttachmentConfig {
    pub target: String,
    #[serde(deserialize_with = "null_as_default")]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskSpec {
    pub container_spec: ContainerSpec,
    pub resources: Option<ResourceRequirements>,
    pub restart_policy: Option<RestartPolicy>,
    pub placement: Option<Placement>,
    /// Bumped by `--force` updates to replace tasks whose spec did not change.
    pub force_update: u64,
    #[serde(deserialize_with = "null_as_default")]
    pub networks: Vec<NetworkAttachmentConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_as_default")]
    pub command: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    pub hostname: String,
    #[serde(deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    pub dir: String,
    pub user: String,
    #[serde(deserialize_with = "null_as_default")]
    pub groups: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub mounts: Vec<Mount>,
    pub stop_signal: String,
    /// Nanoseconds.
    pub stop_grace_period: Option<i64>,
    pub healthcheck: Option<HealthConfig>,
    pub read_only: bool,
    pub init: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// How a named volume is created on first use (labels, driver options).
    pub volume_options: Option<super::container::VolumeOptions>,
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: i64,
    pub mode: u32,
}

/// Docker's `HealthConfig` is the same for services and containers.
pub use super::container::HealthConfig;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResourceRequirements {
    pub limits: Option<Limit>,
    pub reservations: Option<Reservation>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Limit {
    #[serde(rename = "NanoCPUs")]
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub pids: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Reservation {
    #[serde(rename = "NanoCPUs")]
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any` (Docker's default).
    pub condition: String,
    /// Nanoseconds.
    pub delay: Option<i64>,
    pub max_attempts: Option<u64>,
    /// Nanoseconds.
    pub window: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Placement {
    #[serde(deserialize_with = "null_as_default")]
    pub constraints: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub preferences: Vec<PlacementPreference>,
    pub max_replicas: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlacementPreference {
    pub spread: Option<SpreadOver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SpreadOver {
    pub spread_descriptor: String,
}

/// `Mode`: `{"Replicated":{"Replicas":N}}` or `{"Global":{}}`; empty means replicated ×1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceMode {
    pub replicated: Option<Replicated>,
    pub global: Option<serde_json::Value>,
    pub replicated_job: Option<serde_json::Value>,
    pub global_job: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Replicated {
    pub replicas: Option<i64>,
}

/// What the orchestrator keeps: so many tasks, or one per eligible node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replicated(u64),
    Global,
}

impl ServiceSpec {
    /// Parses and validates a spec as sent by a client; the error says what is wrong.
    pub fn from_raw(raw: &RawJson) -> Result<ServiceSpec, String> {
        let value: serde_json::Value =
            serde_json::from_str(&raw.0).map_err(|e| format!("invalid service spec: {e}"))?;
        if !value.is_object() {
            return Err("invalid service spec: expected a JSON object".into());
        }
        // Docker ignores unknown keys and falls back to one replica; a typo'd mode would
        // then quietly run the wrong thing, so it is refused here.
        if let Some(mode) = value.get("Mode").and_then(|m| m.as_object()) {
            const MODES: [&str; 4] = ["Replicated", "Global", "ReplicatedJob", "GlobalJob"];
            if let Some(unknown) = mode.keys().find(|k| !MODES.contains(&k.as_str())) {
                return Err(format!(
                    "unknown service mode {unknown:?}: expected Replicated or Global"
                ));
            }
        }
        let spec: ServiceSpec =
            serde_json::from_value(value).map_err(|e| format!("invalid service spec: {e}"))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn mode(&self) -> Result<Mode, String> {
        let m = &self.mode;
        if m.replicated_job.is_some() || m.global_job.is_some() {
            return Err("job services (replicated-job, global-job) are not supported".into());
        }
        match (&m.replicated, &m.global) {
            (Some(_), Some(_)) => Err("a service is either replicated or global, not both".into()),
            (_, Some(_)) => Ok(Mode::Global),
            (Some(r), None) => match r.replicas {
                Some(n) if n < 0 => Err(format!("invalid replicas {n}: must be 0 or more")),
                Some(n) => Ok(Mode::Replicated(n as u64)),
                None => Ok(Mode::Replicated(1)),
            },
            (None, None) => Ok(Mode::Replicated(1)),
        }
    }

    /// The networks its tasks join: `TaskTemplate.Networks`, or the deprecated top-level
    /// `Networks` when the template has none (as Docker reads them).
    pub fn network_targets(&self) -> Vec<&str> {
        let list = if self.task_template.networks.is_empty() {
            &self.networks
        } else {
            &self.task_template.networks
        };
        list.iter().map(|n| n.target.as_str()).collect()
    }

    /// The endpoint spec with defaults filled in (`vip`, no ports when none was given).
    pub fn endpoint(&self) -> Result<EndpointSpec, String> {
        self.endpoint_spec.clone().unwrap_or_default().normalized()
    }

    /// `spread` or `binpack`.
    pub fn strategy(&self) -> Result<Option<Strategy>, String> {
        let asked = self
            .strategy
            .as_deref()
            .or_else(|| self.labels.get(STRATEGY_LABEL).map(String::as_str));
        match asked {
            None | Some("") => Ok(None),
            Some("spread") => Ok(Some(Strategy::Spread)),
            Some("binpack") => Ok(Some(Strategy::Binpack)),
            Some(other) => Err(format!(
                "invalid placement strategy {other:?}: expected spread or binpack"
            )),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a service needs a name".into());
        }
        if !valid_name(&self.name) {
            return Err(format!(
                "invalid service name {:?}: use letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters",
                self.name
            ));
        }
        self.mode()?;
        self.strategy()?;
        let c = &self.task_template.container_spec;
        if c.image.trim().is_empty() {
            return Err("the service's ContainerSpec has no Image".into());
        }
        for e in &c.env {
            if e.is_empty() || e.starts_with('=') {
                return Err(format!(
                    "invalid environment variable {e:?}: expected NAME=VALUE"
                ));
            }
        }
        if let Some(r) = &self.task_template.resources {
            let lim = r.limits.clone().unwrap_or_default();
            let res = r.reservations.clone().unwrap_or_default();
            for (what, v) in [
                ("limit NanoCPUs", lim.nano_cpus),
                ("limit MemoryBytes", lim.memory_bytes),
                ("limit Pids", lim.pids),
                ("reservation NanoCPUs", res.nano_cpus),
                ("reservation MemoryBytes", res.memory_bytes),
            ] {
                if v < 0 {
                    return Err(format!("invalid {what} {v}: must not be negative"));
                }
            }
            if lim.memory_bytes > 0 && lim.memory_bytes < 6 * 1024 * 1024 {
                return Err(format!(
                    "invalid memory limit {}: the minimum is 6 MiB",
                    lim.memory_bytes
                ));
            }
        }
        if let Some(p) = &self.task_template.restart_policy {
            match p.condition.as_str() {
                "" | "none" | "on-failure" | "any" => {}
                other => {
                    return Err(format!(
                        "invalid restart condition {other:?}: expected none, on-failure or any"
                    ));
                }
            }
            for (what, v) in [("delay", p.delay), ("window", p.window)] {
                if v.is_some_and(|v| v < 0) {
                    return Err(format!("invalid restart {what}: must not be negative"));
                }
            }
        }
        if let Some(p) = &self.task_template.placement {
            for c in &p.constraints {
                Constraint::parse(c)?;
            }
            for pref in &p.preferences {
                if let Some(s) = &pref.spread
                    && s.spread_descriptor.trim().is_empty()
                {
                    return Err("a spread placement preference needs a descriptor".into());
                }
            }
        }
        if let Some(h) = &c.healthcheck {
            h.validate()?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in self.network_targets() {
            if n.trim().is_empty() {
                return Err("a network attachment needs a Target (network name or ID)".into());
            }
            if !seen.insert(n) {
                return Err(format!("network {n} is attached more than once"));
            }
        }
        if let Some(e) = &self.endpoint_spec {
            e.normalized()?;
        }
        for m in &c.mounts {
            match m.kind.as_str() {
                "bind" | "volume" | "tmpfs" => {}
                other => {
                    return Err(format!(
                        "invalid mount type {other:?}: expected bind, volume or tmpfs"
                    ));
                }
            }
            if !m.target.starts_with('/') {
                return Err(format!(
                    "invalid mount target {:?}: must be an absolute path",
                    m.target
                ));
            }
            if m.kind == "bind" && !m.source.starts_with('/') {
                return Err(format!(
                    "invalid bind mount source {:?}: must be an absolute path",
                    m.source
                ));
            }
            if m.kind == "volume" && !m.source.is_empty() && !super::volume::valid_name(&m.source) {
                return Err(format!(
                    "invalid volume name {:?}: only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                    m.source
                ));
            }
        }
        Ok(())
    }
}

/// The label that picks a service's placement strategy.
pub const STRATEGY_LABEL: &str = "swarm.strategy";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Spread,
    Binpack,
}

/// Docker's service names: DNS labels.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// A placement constraint: `KEY==VALUE` or `KEY!=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: String,
    pub equal: bool,
    pub value: String,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let bad = || {
            format!(
                "invalid constraint {text:?}: expected KEY==VALUE or KEY!=VALUE with KEY one of node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.NAME, engine.labels.NAME"
            )
        };
        let (key, equal, value) = if let Some((k, v)) = text.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = text.split_once("!=") {
            (k, false, v)
        } else {
            return Err(bad());
        };
        let (key, value) = (key.trim(), value.trim());
        let known = matches!(
            key,
            "node.id" | "node.hostname" | "node.role" | "node.platform.os" | "node.platform.arch"
        ) || key
            .strip_prefix("node.labels.")
            .or_else(|| key.strip_prefix("engine.labels."))
            .is_some_and(|l| !l.is_empty());
        if !known || value.is_empty() {
            return Err(bad());
        }
        Ok(Constraint {
            key: key.to_owned(),
            equal,
            value: value.to_owned(),
        })
    }
}

// ---- tasks ---------------------------------------------------------------------------------

/// Docker's task states, in the order a task moves through them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    #[default]
    New,
    Allocated,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Allocated => "allocated",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    /// Done for good: the task will not run (again).
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerStatus {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    #[serde(rename = "PID")]
    pub pid: i64,
    pub exit_code: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskStatus {
    pub timestamp: Timestamp,
    pub state: TaskState,
    pub message: String,
    /// Why it failed or is pending (`no suitable node (…)`); Go's `omitempty`.
    pub err: String,
    pub container_status: Option<ContainerStatus>,
}

/// `GET /tasks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// The service's `TaskTemplate` when the task was made, verbatim.
    pub spec: RawJson,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// 1-based for replicated services; 0 for global ones (one per node).
    pub slot: u64,
    /// Empty until the scheduler assigns it.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub status: TaskStatus,
    pub desired_state: TaskState,
    /// swarm's: the service's `spec_version` the task was made from (`_up-to-date`).
    pub spec_version: u64,
    /// swarm's: restarts so far in this slot (restart policy, backoff).
    pub attempt: u64,
    /// Its address on each of its networks, given when it was placed on a node.
    #[serde(deserialize_with = "null_as_default")]
    pub networks_attachments: Vec<NetworkAttachment>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codec;

    fn raw(v: serde_json::Value) -> RawJson {
        RawJson::from_value(&v)
    }

    #[test]
    fn t10_raw_specs_round_trip_verbatim_in_json_and_binary() {
        let spec = raw(json!({"Name": "web", "Unknown": {"Keep": [1, 2]},
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox:test"}}}));
        let svc = Service {
            id: "s1".into(),
            spec: spec.clone(),
            ..Default::default()
        };
        let v = serde_json::to_value(&svc).unwrap();
        assert_eq!(v["Spec"]["Unknown"]["Keep"], json!([1, 2]));
        assert_eq!(serde_json::from_value::<Service>(v).unwrap().spec, spec);
        let bytes = codec::encode(&svc).unwrap();
        assert_eq!(codec::decode::<Service>(&bytes).unwrap(), svc);
    }

    #[test]
    fn t10_the_typed_view_reads_what_docker_sends() {
        let spec = ServiceSpec::from_raw(&raw(json!({
            "Name": "web", "Labels": null,
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox:test", "Args": ["httpd", "-f"], "Env": ["A=1"],
                    "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}]},
                "Resources": {"Limits": {"MemoryBytes": 67108864}, "Reservations": {"NanoCPUs": 500000000}},
                "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3},
                "Placement": {"Constraints": ["node.role==worker", "node.labels.zone != b"]}
            },
            "Mode": {"Replicated": {"Replicas": 6}}
        })))
        .unwrap();
        assert_eq!(spec.mode().unwrap(), Mode::Replicated(6));
        assert_eq!(spec.task_template.container_spec.args, vec!["httpd", "-f"]);
        let c = Constraint::parse("node.labels.zone != b").unwrap();
        assert_eq!(
            (c.key.as_str(), c.equal, c.value.as_str()),
            ("node.labels.zone", false, "b")
        );
        let global = ServiceSpec::from_raw(&raw(json!({"Name": "g", "Mode": {"Global": {}},
            "TaskTemplate": {"ContainerSpec": {"Image": "x"}}})))
        .unwrap();
        assert_eq!(global.mode().unwrap(), Mode::Global);
    }

    #[test]
    fn t10_bad_specs_say_what_is_wrong() {
        let cases = [
            (
                json!({"TaskTemplate": {"ContainerSpec": {"Image": "x"}}}),
                "needs a name",
            ),
            (
                json!({"Name": "a b", "TaskTemplate": {"ContainerSpec": {"Image": "x"}}}),
                "invalid service name",
            ),
            (json!({"Name": "w"}), "no Image"),
            (
                json!({"Name": "w", "Mode": {"Replicated": {"Replicas": -1}},
                "TaskTemplate": {"ContainerSpec": {"Image": "x"}}}),
                "invalid replicas -1",
            ),
            (
                json!({"Name": "w", "Mode": {"Replicated": {"Replicas": "x"}},
                "TaskTemplate": {"ContainerSpec": {"Image": "x"}}}),
                "invalid service spec",
            ),
            (
                json!({"Name": "w", "TaskTemplate": {"ContainerSpec": {"Image": "x"},
                "Placement": {"Constraints": ["node.role=worker"]}}}),
                "invalid constraint",
            ),
            (
                json!({"Name": "w", "TaskTemplate": {"ContainerSpec": {"Image": "x"},
                "Resources": {"Limits": {"MemoryBytes": 1000}}}}),
                "minimum is 6 MiB",
            ),
            (
                json!({"Name": "w", "TaskTemplate": {"ContainerSpec": {"Image": "x"},
                "RestartPolicy": {"Condition": "sometimes"}}}),
                "invalid restart condition",
            ),
            (
                json!({"Name": "w", "Mode": {"ReplicatedJob": {}},
                "TaskTemplate": {"ContainerSpec": {"Image": "x"}}}),
                "not supported",
            ),
            (
                json!({"Name": "w", "Mode": {"Sideways": {}},
                "TaskTemplate": {"ContainerSpec": {"Image": "x"}}}),
                "unknown service mode \"Sideways\"",
            ),
            (
                json!({"Name": "w", "Strategy": "random",
                "TaskTemplate": {"ContainerSpec": {"Image": "x"}}}),
                "invalid placement strategy",
            ),
        ];
        for (spec, want) in cases {
            let e = ServiceSpec::from_raw(&raw(spec.clone())).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
        assert!(ServiceSpec::from_raw(&RawJson("[1]".into())).is_err());
    }

    #[test]
    fn t10_task_states_are_ordered_and_spelt_like_docker() {
        assert!(TaskState::Pending < TaskState::Running);
        assert!(TaskState::Failed.is_terminal() && !TaskState::Running.is_terminal());
        assert_eq!(serde_json::to_value(TaskState::Running).unwrap(), "running");
        let task = Task {
            id: "t1".into(),
            spec: raw(json!({"ContainerSpec": {"Image": "x"}})),
            ..Default::default()
        };
        let v = serde_json::to_value(&task).unwrap();
        assert_eq!(v["Spec"]["ContainerSpec"]["Image"], "x");
        assert_eq!(v["DesiredState"], "new");
        let bytes = codec::encode(&task).unwrap();
        assert_eq!(codec::decode::<Task>(&bytes).unwrap().spec, task.spec);
    }
}
