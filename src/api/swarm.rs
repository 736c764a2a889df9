//! `/swarm/*` and `/nodes/*`: parse, delegate to the [`Backend`], answer in Docker's shapes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::server::Backend;
use crate::types::{InitRequest, JoinRequest, Node, NodeSpec, Swarm, SwarmSpec};

type Params = Query<HashMap<String, String>>;

/// A JSON body, or a 400 that says what is wrong with it.
pub fn body<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!("{what}: the body is empty")));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// Docker's boolean query values: `1`, `true`, `True`, ….
pub fn flag(params: &HashMap<String, String>, key: &str) -> bool {
    params
        .get(key)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// `?version=N`, required on updates.
fn version(params: &HashMap<String, String>) -> Result<u64, ApiError> {
    let v = params
        .get("version")
        .ok_or_else(|| ApiError::bad_request("the version query parameter is required"))?;
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid version {v:?}: expected a number")))
}

/// `?consistency=local` asks a manager for its own copy instead of a linearizable read.
fn local_read(params: &HashMap<String, String>) -> bool {
    params.get("consistency").is_some_and(|v| v == "local")
}

/// Docker's `filters` parameter: `{"key":{"value":true}}` or `{"key":["value"]}`.
pub fn filters(
    params: &HashMap<String, String>,
) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let Some(raw) = params.get("filters").filter(|f| !f.trim().is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let bad = |e: String| ApiError::bad_request(format!("invalid filters: {e}"));
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| bad("expected a JSON object".into()))?;
    let mut out = BTreeMap::new();
    for (key, values) in object {
        let list: Vec<String> = match values {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool() != Some(false))
                .map(|(v, _)| v.clone())
                .collect(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad(format!("{key}: values must be strings")))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(bad(format!("{key}: expected an object or a list"))),
        };
        out.insert(key.clone(), list);
    }
    Ok(out)
}

pub async fn init<B: Backend>(
    State(backend): State<Arc<B>>,
    bytes: Bytes,
) -> Result<Json<String>, ApiError> {
    let request: InitRequest = body(&bytes, "swarm init request")?;
    Ok(Json(backend.swarm_init(request).await?))
}

pub async fn join<B: Backend>(
    State(backend): State<Arc<B>>,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: JoinRequest = body(&bytes, "swarm join request")?;
    backend.swarm_join(request).await?;
    Ok(StatusCode::OK)
}

pub async fn leave<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<StatusCode, ApiError> {
    backend.swarm_leave(flag(&params, "force")).await?;
    Ok(StatusCode::OK)
}

pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<Swarm>, ApiError> {
    Ok(Json(backend.swarm_inspect(local_read(&params)).await?))
}

pub async fn update<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    let version = version(&params)?;
    let spec: SwarmSpec = body(&bytes, "swarm spec")?;
    let rotate = crate::types::swarm::Rotate {
        worker: flag(&params, "rotateWorkerToken"),
        manager: flag(&params, "rotateManagerToken"),
    };
    if flag(&params, "rotateManagerUnlockKey") {
        return Err(ApiError::bad_request(
            "autolock is not supported by this daemon, so there is no unlock key to rotate",
        ));
    }
    backend.swarm_update(version, spec, rotate).await?;
    Ok(StatusCode::OK)
}

pub async fn nodes<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(params): Params,
) -> Result<Json<Vec<Node>>, ApiError> {
    let filters = filters(&params)?;
    Ok(Json(backend.node_list(filters, local_read(&params)).await?))
}

pub async fn node<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Json<Node>, ApiError> {
    Ok(Json(backend.node_inspect(id, local_read(&params)).await?))
}

pub async fn node_update<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    let version = version(&params)?;
    let spec: NodeSpec = body(&bytes, "node spec")?;
    backend.node_update(id, version, spec).await?;
    Ok(StatusCode::OK)
}

pub async fn node_remove<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<StatusCode, ApiError> {
    backend.node_remove(id, flag(&params, "force")).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn t10_filters_in_both_shapes() {
        let f = filters(&params(&[("filters", r#"{"role":{"manager":true}}"#)])).unwrap();
        assert_eq!(f["role"], vec!["manager".to_string()]);
        let f = filters(&params(&[("filters", r#"{"id":["a","b"]}"#)])).unwrap();
        assert_eq!(f["id"].len(), 2);
        assert!(filters(&params(&[("filters", "{")])).is_err());
        assert!(filters(&params(&[("filters", r#"{"id":[1]}"#)])).is_err());
        assert!(filters(&params(&[])).unwrap().is_empty());
    }

    #[test]
    fn t10_bodies_and_versions() {
        assert_eq!(body::<NodeSpec>(b"", "node spec").unwrap_err().status, 400);
        let e = body::<NodeSpec>(br#"{"Role":7}"#, "node spec").unwrap_err();
        assert!(e.message.starts_with("invalid node spec"), "{}", e.message);
        assert!(version(&params(&[])).is_err());
        assert!(version(&params(&[("version", "x")])).is_err());
        assert_eq!(version(&params(&[("version", "12")])).unwrap(), 12);
        assert!(flag(&params(&[("force", "1")]), "force"));
        assert!(flag(&params(&[("force", "True")]), "force"));
        assert!(!flag(&params(&[("force", "0")]), "force"));
    }
}
