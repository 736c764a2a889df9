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
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> = raw.as_deref().map(url_pairs).unwrap_or_default();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(image) = get("fromImage").filter(|i| !i.is_empty()) {
        let reference = match get("tag").filter(|t| !t.is_empty()) {
            Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
            Some(tag) => format!("{image}:{tag}"),
            None => image,
        };
        let insecure = matches!(get("insecure").as_deref(), Some("1" | "true"));
        let progress = backend
            .image_pull(reference, insecure, registry_auth(&headers))
            .await?;
        return Ok(stream_lines(progress));
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

/// `POST /images/{name}/push?tag=…`: progress as JSON lines; a failure is the last line's
/// `error`, as Docker reports it.
pub async fn push<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let reference = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(tag) => format!("{name}:{tag}"),
        None => name,
    };
    let insecure = query
        .get("insecure")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true"));
    let progress = backend
        .image_push(reference, insecure, registry_auth(&headers))
        .await?;
    Ok(stream_lines(progress))
}

/// Credentials from `X-Registry-Auth` (base64url JSON `{"username", "password"}`).
fn registry_auth(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    let value = headers.get("X-Registry-Auth")?.to_str().ok()?;
    let json = base64_decode(value)?;
    let auth: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let user = auth.get("username")?.as_str()?.to_string();
    let password = auth.get("password")?.as_str()?.to_string();
    (!user.is_empty()).then_some((user, password))
}

/// base64, standard or URL-safe, padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

/// A channel of JSON lines as a streamed answer.
fn stream_lines(mut lines: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::poll_fn(move |cx| {
        lines
            .poll_recv(cx)
            .map(|c| c.map(Ok::<Bytes, std::io::Error>))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
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
    fn t10_registry_auth_header() {
        let mut headers = axum::http::HeaderMap::new();
        // {"username":"u","password":"p w"} in base64url without padding.
        headers.insert(
            "X-Registry-Auth",
            "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAgdyJ9"
                .parse()
                .unwrap(),
        );
        assert_eq!(registry_auth(&headers), Some(("u".into(), "p w".into())));
        headers.insert("X-Registry-Auth", "e30=".parse().unwrap());
        assert_eq!(registry_auth(&headers), None);
    }

    #[test]
    fn t10_query_pairs_decode_and_repeat() {
        let pairs = url_pairs("names=a%3A1&names=b&changes=CMD+%5B%22sh%22%5D&x=%");
        assert_eq!(pairs[0], ("names".into(), "a:1".into()));
        assert_eq!(pairs[1], ("names".into(), "b".into()));
        assert_eq!(pairs[2], ("changes".into(), "CMD [\"sh\"]".into()));
        assert_eq!(pairs[3], ("x".into(), "%".into()));
    }
}
