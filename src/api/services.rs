//! `/services` and `/tasks`: parse, delegate to the [`Backend`], answer in Docker's shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::server::Backend;
use super::swarm::{body, filters, flag};
use crate::types::service::Task;

type Params = Query<HashMap<String, String>>;

fn local(params: &HashMap<String, String>) -> bool {
    params.get("consistency").is_some_and(|v| v == "local")
}

/// A spec must be a JSON object; the daemon validates the rest.
fn spec(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value = body(bytes, "service spec")?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid service spec: expected a JSON object",
        ));
    }
    Ok(value)
}

pub async fn create<B: Backend>(
    State(backend): State<Arc<B>>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let created = backend.service_create(spec(&bytes)?).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn update<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
    bytes: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let version = params
        .get("version")
        .ok_or_else(|| ApiError::bad_request("the version query parameter is required"))?;
    let version: u64 = version.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid version {version:?}: expected a number"))
    })?;
    if params.get("rollback").is_some_and(|r| r == "previous") {
        return Err(ApiError::bad_request(
            "rollback is not supported by this daemon yet",
        ));
    }
    Ok(Json(
        backend.service_update(id, version, spec(&bytes)?).await?,
    ))
}

pub async fn remove<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    backend.service_remove(id).await?;
    Ok(StatusCode::OK)
}

pub async fn list<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let filters = filters(&params)?;
    Ok(Json(
        backend
            .service_list(filters, flag(&params, "status"), local(&params))
            .await?,
    ))
}

pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(backend.service_inspect(id, local(&params)).await?))
}

pub async fn tasks<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<Vec<Task>>, ApiError> {
    let filters = filters(&params)?;
    Ok(Json(backend.task_list(filters, local(&params)).await?))
}

pub async fn task<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(backend.task_inspect(id, local(&params)).await?))
}

/// Whose logs: a service's (all its tasks) or one task's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsTarget {
    Service(String),
    Task(String),
}

/// What `GET /services/{id}/logs` and `GET /tasks/{id}/logs` ask for (Docker's parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceLogsQuery {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Prefix each line with its details (`com.docker.swarm.node.id=…,…`); the docker CLI
    /// asks for them to print `name.slot.task@node`.
    pub details: bool,
    /// Per task; `None`: all.
    pub tail: Option<usize>,
    /// RFC 3339 with nanoseconds, UTC.
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Docker's `since`/`until`: Unix seconds with optional fractional nanoseconds
/// (`1700000000`, `1700000000.5`); empty or `0` means no bound. Returns RFC 3339 nanoseconds.
pub fn unix_time(value: &str, name: &str) -> Result<Option<String>, ApiError> {
    let value = value.trim();
    if value.is_empty() || value == "0" {
        return Ok(None);
    }
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {name} {value:?}: expected Unix seconds, optionally with a fraction"
        ))
    };
    let (secs, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let time = chrono::DateTime::from_timestamp(secs, nanos).ok_or_else(bad)?;
    Ok(Some(
        time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    ))
}

fn logs_query(params: &HashMap<String, String>) -> Result<ServiceLogsQuery, ApiError> {
    let tail = match params.get("tail").map(String::as_str) {
        None | Some("all") | Some("") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}")))?,
        ),
    };
    let query = ServiceLogsQuery {
        stdout: flag(params, "stdout"),
        stderr: flag(params, "stderr"),
        follow: flag(params, "follow"),
        timestamps: flag(params, "timestamps"),
        details: flag(params, "details"),
        tail,
        since: unix_time(params.get("since").map_or("", String::as_str), "since")?,
        until: unix_time(params.get("until").map_or("", String::as_str), "until")?,
    };
    if !query.stdout && !query.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    Ok(query)
}

async fn logs_of<B: Backend>(
    backend: Arc<B>,
    target: LogsTarget,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let query = logs_query(params)?;
    let mut frames = backend.service_logs(target, query).await?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        frames
            .poll_recv(cx)
            .map(|frame| frame.map(Ok::<_, std::io::Error>))
    });
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/vnd.docker.multiplexed-stream",
        )],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /services/{id}/logs`: every task's log, gathered from the nodes, in Docker's
/// multiplexed stream.
pub async fn service_logs<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    logs_of(backend, LogsTarget::Service(id), &params).await
}

/// `GET /tasks/{id}/logs`.
pub async fn task_logs<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    logs_of(backend, LogsTarget::Task(id), &params).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_docker_times_and_log_parameters() {
        assert_eq!(unix_time("", "since").unwrap(), None);
        assert_eq!(unix_time("0", "since").unwrap(), None);
        assert_eq!(
            unix_time("1700000000", "since").unwrap().unwrap(),
            "2023-11-14T22:13:20.000000000Z"
        );
        assert_eq!(
            unix_time("1700000000.5", "since").unwrap().unwrap(),
            "2023-11-14T22:13:20.500000000Z"
        );
        for bad in ["soon", "1.2.3", "1.1234567890", "-"] {
            let e = unix_time(bad, "since").unwrap_err();
            assert!(e.to_string().contains("invalid since"), "{bad}: {e}");
        }
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let q = logs_query(&params(&[
            ("stdout", "1"),
            ("details", "true"),
            ("tail", "5"),
        ]))
        .unwrap();
        assert!(q.stdout && !q.stderr && q.details && !q.follow);
        assert_eq!(q.tail, Some(5));
        assert!(logs_query(&params(&[("tail", "5")])).is_err(), "no stream");
        assert!(logs_query(&params(&[("stdout", "1"), ("tail", "x")])).is_err());
    }
}
