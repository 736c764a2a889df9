//! `/_ping`, `/version`, `/info`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;

use super::server::Backend;
use crate::types::system::{Info, Version};

pub async fn ping<B: Backend>(State(backend): State<Arc<B>>) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&backend.swarm_header()) {
        headers.insert("Swarm", value);
    }
    headers.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert("Pragma", HeaderValue::from_static("no-cache"));
    (headers, "OK")
}

pub async fn version<B: Backend>(State(backend): State<Arc<B>>) -> Json<Version> {
    Json(backend.version())
}

pub async fn info<B: Backend>(State(backend): State<Arc<B>>) -> Json<Info> {
    Json(backend.info().await)
}
