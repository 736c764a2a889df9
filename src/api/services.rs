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
