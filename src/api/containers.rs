//! `/containers/...`: local containers, Docker's endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::server::Backend;
use crate::types::container::{ContainerCreateRequest, ContainerSummary};

/// Query flags come as `1`, `true`, `0`, `false`.
fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True"))
}

pub async fn create<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ContainerCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    if request.image.is_empty() {
        return Err(ApiError::bad_request("config has no Image"));
    }
    let created = backend
        .container_create(request, query.get("name").cloned())
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn start<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    backend.container_start(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn wait<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(backend.container_wait(id).await?).into_response())
}

pub async fn stop<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let grace = match query.get("t") {
        Some(t) => Some(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid stop timeout {t:?}")))?,
        ),
        None => None,
    };
    backend.container_stop(id, grace).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    backend
        .container_kill(
            id,
            query
                .get("signal")
                .cloned()
                .unwrap_or_else(|| "KILL".into()),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    backend.container_remove(id, flag(&query, "force")).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Vec<ContainerSummary>> {
    Json(backend.container_list(flag(&query, "all")).await)
}

pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(backend.container_inspect(id).await?).into_response())
}

/// What `GET /containers/{id}/logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsQuery {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// `None`: all.
    pub tail: Option<usize>,
}

/// Logs in Docker's multiplexed stream: frames of `[stream, 0, 0, 0, len u32 BE] + bytes`.
pub async fn logs<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tail = match query.get("tail").map(String::as_str) {
        None | Some("all") | Some("") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}")))?,
        ),
    };
    let request = LogsQuery {
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr"),
        follow: flag(&query, "follow"),
        timestamps: flag(&query, "timestamps"),
        tail,
    };
    if !request.stdout && !request.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let mut frames = backend.container_logs(id, request).await?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        frames
            .poll_recv(cx)
            .map(|frame| frame.map(Ok::<_, std::io::Error>))
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/vnd.docker.multiplexed-stream",
        )],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One frame of the multiplexed stream (1: stdout, 2: stderr).
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}
