//! `/images/...`: the node's image store, Docker's endpoints.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::error::ApiError;
use super::server::Backend;

/// A request body as a blocking reader, for the store's synchronous archive code.
fn body_reader(body: Body) -> Box<dyn Read + Send> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    Box::new(SyncIoBridge::new(StreamReader::new(stream)))
}

fn json_lines(messages: Vec<serde_json::Value>) -> Response {
    let body: String = messages.iter().map(|m| format!("{m}\n")).collect();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn list<B: Backend>(State(backend): State<Arc<B>>) -> Result<Response, ApiError> {
    Ok(Json(backend.image_list().await?).into_response())
}

pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(backend.image_inspect(name).await?).into_response())
}

pub async fn remove<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let force = query
        .get("force")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true"));
    Ok(Json(backend.image_remove(name, force).await?).into_response())
}

pub async fn tag<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let repo = query
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repository name (repo) is required"))?;
    let target = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.clone(),
    };
    backend.image_tag(name, target).await?;
    Ok(StatusCode::CREATED)
}

/// `POST /images/load`: a `docker save` or OCI archive in the body.
pub async fn load<B: Backend>(
    State(backend): State<Arc<B>>,
    body: Body,
) -> Result<Response, ApiError> {
    let loaded = backend.image_load(body_reader(body)).await?;
    Ok(json_lines(
        loaded
            .into_iter()
            .map(|line| serde_json::json!({ "stream": format!("{line}\n") }))
            .collect(),
    ))
}

/// `POST /images/create?fromSrc=-&repo=…&tag=…&changes=…`: `docker import` of the body.
/// Pulling (`fromImage`) is not supported yet.
pub async fn create<B: Backend>(
    State(backend): State<Arc<B>>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> = raw.as_deref().map(url_pairs).unwrap_or_default();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if get("fromImage").is_some() {
        return Err(ApiError::bad_request(
            "pulling from a registry is not supported yet: use `swarm image load`",
        ));
    }
    if get("fromSrc").as_deref() != Some("-") {
        return Err(ApiError::bad_request(
            "fromSrc=- (the request body) is required",
        ));
    }
    let name = match (
        get("repo").filter(|r| !r.is_empty()),
        get("tag").filter(|t| !t.is_empty()),
    ) {
        (Some(repo), Some(tag)) => Some(format!("{repo}:{tag}")),
        (Some(repo), None) => Some(repo),
        _ => None,
    };
    let changes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v.clone())
        .collect();
    let id = backend
        .image_import(body_reader(body), name, changes)
        .await?;
    Ok(json_lines(vec![serde_json::json!({ "status": id })]))
}

/// `GET /images/get?names=…`: an archive of the images (`docker save`).
pub async fn save<B: Backend>(
    State(backend): State<Arc<B>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let names: Vec<String> = raw
        .as_deref()
        .map(url_pairs)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let mut chunks = backend.image_save(names).await?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        chunks
            .poll_recv(cx)
            .map(|c| c.map(Ok::<Bytes, std::io::Error>))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

pub async fn prune<B: Backend>(State(backend): State<Arc<B>>) -> Result<Response, ApiError> {
    Ok(Json(backend.image_prune().await?).into_response())
}

/// `a=1&b=x%20y` → pairs, percent- and plus-decoded (repeated keys kept).
pub fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_query_pairs_decode_and_repeat() {
        let pairs = url_pairs("names=a%3A1&names=b&changes=CMD+%5B%22sh%22%5D&x=%");
        assert_eq!(pairs[0], ("names".into(), "a:1".into()));
        assert_eq!(pairs[1], ("names".into(), "b".into()));
        assert_eq!(pairs[2], ("changes".into(), "CMD [\"sh\"]".into()));
        assert_eq!(pairs[3], ("x".into(), "%".into()));
    }
}
