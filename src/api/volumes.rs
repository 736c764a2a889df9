//! `/volumes`: the node's named volumes. Parse, delegate to the [`Backend`], answer in
//! Docker's shapes.

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
use crate::types::volume::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};

type Params = Query<HashMap<String, String>>;

pub async fn list<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<VolumeListResponse>, ApiError> {
    Ok(Json(backend.volume_list(filters(&params)?).await?))
}

pub async fn create<B: Backend>(
    State(backend): State<Arc<B>>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: VolumeCreateRequest = body(&bytes, "volume create request")?;
    let volume = backend.volume_create(request).await?;
    Ok((StatusCode::CREATED, Json(volume)).into_response())
}

pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(name): Path<String>,
) -> Result<Json<Volume>, ApiError> {
    Ok(Json(backend.volume_inspect(name).await?))
}

pub async fn remove<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<StatusCode, ApiError> {
    backend.volume_remove(name, flag(&params, "force")).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<VolumePruneResponse>, ApiError> {
    Ok(Json(backend.volume_prune(filters(&params)?).await?))
}
