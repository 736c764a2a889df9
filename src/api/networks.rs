//! `/networks`: parse, delegate to the [`Backend`], answer in Docker's shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::server::Backend;
use super::swarm::{body, filters};
use crate::types::network::{NetworkCreateRequest, NetworkResource};

type Params = Query<HashMap<String, String>>;

pub async fn list<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<Vec<NetworkResource>>, ApiError> {
    Ok(Json(backend.network_list(filters(&params)?).await?))
}

pub async fn create<B: Backend>(
    State(backend): State<Arc<B>>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: NetworkCreateRequest = body(&bytes, "network create request")?;
    let created = backend.network_create(request).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `?verbose` and `?scope` are accepted and change nothing: every network is swarm-scoped
/// and has no per-node detail to add.
pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<Json<NetworkResource>, ApiError> {
    Ok(Json(backend.network_inspect(id).await?))
}

pub async fn remove<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    backend.network_remove(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(backend.network_prune(filters(&params)?).await?))
}
