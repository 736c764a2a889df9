//! `/services` and `/tasks`: the swarm's services as the API sees them. Specs go into the
//! Raft log verbatim (validated first, so a bad one gets a 400 here rather than a refusal
//! from the state machine); reads come from a manager's state.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::swarm::{SwarmPlane, propose};
use crate::api::ApiError;
use crate::cluster::{Command, State, tokens};
use crate::types::service::{Mode, RawJson, Service, ServiceSpec, ServiceStatus, Task, TaskState};

/// Whether an update turns a replicated service global or back (Docker refuses that).
fn mode_changes(old: &ServiceSpec, new: &ServiceSpec) -> bool {
    let global = |s: &ServiceSpec| matches!(s.mode(), Ok(Mode::Global));
    global(old) != global(new)
}

/// Docker-shaped IDs: 25 lowercase base36 characters.
pub fn new_id() -> Result<String, ApiError> {
    tokens::random_bytes(32)
        .map(|b| tokens::base36(&b, 25))
        .map_err(|e| ApiError::internal(format!("cannot read random bytes: {e}")))
}

impl SwarmPlane {
    pub async fn service_create(&self, spec: Value) -> Result<Value, ApiError> {
        let cluster = self.manager()?;
        let mut spec = spec;
        ServiceSpec::from_raw(&RawJson::from_value(&spec)).map_err(ApiError::bad_request)?;
        super::networks::resolve_service_networks(&cluster.state(), &mut spec)?;
        let raw = RawJson::from_value(&spec);
        let id = new_id()?;
        propose(
            &cluster,
            Command::CreateService {
                id: id.clone(),
                spec: raw,
            },
        )
        .await?;
        Ok(json!({ "ID": id, "Warnings": [] }))
    }

    pub async fn service_update(
        &self,
        reference: &str,
        version: u64,
        spec: Value,
    ) -> Result<Value, ApiError> {
        let cluster = self.manager()?;
        let mut spec = spec;
        ServiceSpec::from_raw(&RawJson::from_value(&spec)).map_err(ApiError::bad_request)?;
        let state = cluster.state();
        super::networks::resolve_service_networks(&state, &mut spec)?;
        let raw = RawJson::from_value(&spec);
        let new = ServiceSpec::from_raw(&raw).map_err(ApiError::bad_request)?;
        let service = resolve_service(&state, reference)?;
        if let Ok(old) = ServiceSpec::from_raw(&service.spec)
            && mode_changes(&old, &new)
        {
            return Err(ApiError::bad_request("service mode change is not allowed"));
        }
        let id = service.id.clone();
        propose(
            &cluster,
            Command::UpdateService {
                id,
                version,
                spec: raw,
            },
        )
        .await?;
        Ok(json!({ "Warnings": [] }))
    }

    pub async fn service_remove(&self, reference: &str) -> Result<(), ApiError> {
        let cluster = self.manager()?;
        let id = resolve_service(&cluster.state(), reference)?.id.clone();
        propose(&cluster, Command::RemoveService { id }).await
    }

    pub async fn services(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
        status: bool,
        local: bool,
    ) -> Result<Vec<Value>, ApiError> {
        check_filters(filters, &["id", "name", "label", "mode"])?;
        let (_, state) = self.read(local).await?;
        Ok(state
            .services
            .values()
            .filter(|s| service_matches(s, filters))
            .map(|s| service_json(&state, s, status))
            .collect())
    }

    pub async fn service(&self, reference: &str, local: bool) -> Result<Value, ApiError> {
        let (_, state) = self.read(local).await?;
        let service = resolve_service(&state, reference)?;
        Ok(service_json(&state, service, false))
    }

    pub async fn tasks(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
        local: bool,
    ) -> Result<Vec<Task>, ApiError> {
        check_filters(
            filters,
            &[
                "id",
                "name",
                "service",
                "node",
                "desired-state",
                "label",
                "_up-to-date",
            ],
        )?;
        let (_, state) = self.read(local).await?;
        // Service and node filters name objects by ID, name or prefix.
        let services: Option<Vec<String>> = filters.get("service").map(|refs| {
            refs.iter()
                .filter_map(|r| resolve_service(&state, r).ok().map(|s| s.id.clone()))
                .collect()
        });
        let nodes: Option<Vec<String>> = filters.get("node").map(|refs| {
            refs.iter()
                .map(|r| {
                    super::swarm::resolve_node(&state, r)
                        .map(|n| n.id.clone())
                        .unwrap_or_else(|_| r.clone())
                })
                .collect()
        });
        Ok(state
            .tasks
            .values()
            .filter(|t| services.as_ref().is_none_or(|s| s.contains(&t.service_id)))
            .filter(|t| nodes.as_ref().is_none_or(|n| n.contains(&t.node_id)))
            .filter(|t| task_matches(&state, t, filters))
            .cloned()
            .collect())
    }

    pub async fn task(&self, reference: &str, local: bool) -> Result<Task, ApiError> {
        let (_, state) = self.read(local).await?;
        if let Some(t) = state.tasks.get(reference) {
            return Ok(t.clone());
        }
        let found: Vec<&Task> = state
            .tasks
            .values()
            .filter(|t| t.id.starts_with(reference) || t.name == reference)
            .collect();
        match found.as_slice() {
            [one] if !reference.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(ApiError::not_found(format!("task {reference} not found"))),
            many => Err(ApiError::bad_request(format!(
                "task {reference} is ambiguous ({} matches found)",
                many.len()
            ))),
        }
    }
}

fn check_filters(filters: &BTreeMap<String, Vec<String>>, known: &[&str]) -> Result<(), ApiError> {
    match filters.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
        None => Ok(()),
    }
}

/// A service by full ID, by name, or by a unique ID prefix.
pub fn resolve_service<'a>(state: &'a State, reference: &str) -> Result<&'a Service, ApiError> {
    let not_found = || ApiError::not_found(format!("service {reference} not found"));
    if reference.is_empty() {
        return Err(not_found());
    }
    if let Some(s) = state.services.get(reference) {
        return Ok(s);
    }
    if let Some(s) = state.service_named(reference) {
        return Ok(s);
    }
    let found: Vec<&Service> = state
        .services
        .values()
        .filter(|s| s.id.starts_with(reference))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(not_found()),
        many => Err(ApiError::bad_request(format!(
            "service {reference} is ambiguous ({} matches found)",
            many.len()
        ))),
    }
}

/// The API's `Service`: the stored object, plus `ServiceStatus` when asked for.
fn service_json(state: &State, service: &Service, status: bool) -> Value {
    let mut v = serde_json::to_value(service).unwrap_or(Value::Null);
    if v.get("PreviousSpec").is_some_and(Value::is_null)
        && let Some(o) = v.as_object_mut()
    {
        o.remove("PreviousSpec");
    }
    if status && let Some(o) = v.as_object_mut() {
        o.insert(
            "ServiceStatus".into(),
            serde_json::to_value(service_status(state, service)).unwrap_or(Value::Null),
        );
    }
    v
}

pub fn service_status(state: &State, service: &Service) -> ServiceStatus {
    let tasks = state.tasks.values().filter(|t| t.service_id == service.id);
    let (mut running, mut desired_running, mut completed) = (0, 0, 0);
    for t in tasks {
        if t.status.state == TaskState::Running && t.desired_state == TaskState::Running {
            running += 1;
        }
        if t.desired_state == TaskState::Running {
            desired_running += 1;
        }
        if t.status.state == TaskState::Complete {
            completed += 1;
        }
    }
    let desired = match ServiceSpec::from_raw(&service.spec).and_then(|s| s.mode()) {
        Ok(Mode::Replicated(n)) => n,
        _ => desired_running,
    };
    ServiceStatus {
        running_tasks: running,
        desired_tasks: desired,
        completed_tasks: completed,
    }
}

fn service_matches(service: &Service, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let spec = ServiceSpec::from_raw(&service.spec).unwrap_or_default();
    filters.iter().all(|(key, values)| {
        values.is_empty()
            || values.iter().any(|v| match key.as_str() {
                "id" => service.id.starts_with(v.as_str()),
                "name" => spec.name.starts_with(v.as_str()),
                "label" => match v.split_once('=') {
                    Some((k, val)) => spec.labels.get(k).is_some_and(|x| x == val),
                    None => spec.labels.contains_key(v),
                },
                "mode" => match spec.mode() {
                    Ok(Mode::Global) => v == "global",
                    Ok(Mode::Replicated(_)) => v == "replicated",
                    Err(_) => false,
                },
                _ => false,
            })
    })
}

fn task_matches(state: &State, task: &Task, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        values.is_empty()
            || values.iter().any(|v| match key.as_str() {
                "id" => task.id.starts_with(v.as_str()),
                "name" => task.name.starts_with(v.as_str()),
                "desired-state" => match v.as_str() {
                    "running" => task.desired_state == TaskState::Running,
                    "shutdown" => task.desired_state >= TaskState::Shutdown,
                    "accepted" => task.desired_state == TaskState::Accepted,
                    _ => false,
                },
                "label" => {
                    let labels = state
                        .services
                        .get(&task.service_id)
                        .and_then(|s| ServiceSpec::from_raw(&s.spec).ok())
                        .map(|s| s.labels)
                        .unwrap_or_default();
                    match v.split_once('=') {
                        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                        None => labels.contains_key(v),
                    }
                }
                "_up-to-date" => state
                    .services
                    .get(&task.service_id)
                    .is_some_and(|s| s.spec_version == task.spec_version),
                // Resolved by the caller.
                "service" | "node" => true,
                _ => false,
            })
    })
}
