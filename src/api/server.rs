//! The API server: routes, the version prefix, common headers, serving on a Unix socket.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tower::{Layer, util::MapRequestLayer};

use super::containers::{self, LogsQuery};
use super::error::ApiError;
use super::images;
use super::services;
use super::swarm;
use super::{API_VERSION, MIN_API_VERSION, system};
use crate::types::container::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerInspect, ContainerSummary,
    ContainerWaitResponse, WaitCondition,
};
use crate::types::system::{Info, Version};

type Reply<T> = Result<T, ApiError>;

/// What the API needs from the daemon. The daemon implements it; handlers only call it.
pub trait Backend: Send + Sync + 'static {
    /// The `Swarm` header of `/_ping`: `inactive`, `active/manager`, `active/worker`, …
    fn swarm_header(&self) -> String;
    fn version(&self) -> Version;
    fn info(&self) -> impl Future<Output = Info> + Send;

    fn container_create(
        &self,
        request: ContainerCreateRequest,
        name: Option<String>,
    ) -> impl Future<Output = Reply<ContainerCreateResponse>> + Send;
    fn container_start(&self, id: String) -> impl Future<Output = Reply<()>> + Send;
    /// Checks that the container exists, then waits in the background: the answer arrives
    /// on the receiver once `condition` holds. Dropping the receiver ends the wait.
    fn container_wait(
        &self,
        id: String,
        condition: WaitCondition,
    ) -> impl Future<Output = Reply<tokio::sync::oneshot::Receiver<ContainerWaitResponse>>> + Send;
    fn container_stop(
        &self,
        id: String,
        grace: Option<u64>,
    ) -> impl Future<Output = Reply<()>> + Send;
    fn container_kill(&self, id: String, signal: String) -> impl Future<Output = Reply<()>> + Send;
    /// `volumes`: also the container's anonymous volumes (`docker rm -v`).
    fn container_remove(
        &self,
        id: String,
        force: bool,
        volumes: bool,
    ) -> impl Future<Output = Reply<()>> + Send;
    fn container_list(&self, all: bool) -> impl Future<Output = Vec<ContainerSummary>> + Send;
    fn container_inspect(&self, id: String)
    -> impl Future<Output = Reply<ContainerInspect>> + Send;
    fn image_list(&self) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    fn image_inspect(&self, name: String) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    fn image_remove(
        &self,
        name: String,
        force: bool,
    ) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    fn image_tag(&self, name: String, target: String) -> impl Future<Output = Reply<()>> + Send;
    /// Load an archive; the lines to report (`Loaded image: …`).
    fn image_load(
        &self,
        archive: Box<dyn std::io::Read + Send>,
    ) -> impl Future<Output = Reply<Vec<String>>> + Send;
    /// Import a root filesystem tarball; the new image's id.
    fn image_import(
        &self,
        rootfs: Box<dyn std::io::Read + Send>,
        name: Option<String>,
        changes: Vec<String>,
    ) -> impl Future<Output = Reply<String>> + Send;
    /// An archive of the images, in chunks.
    fn image_save(
        &self,
        names: Vec<String>,
    ) -> impl Future<Output = Reply<tokio::sync::mpsc::Receiver<axum::body::Bytes>>> + Send;
    fn image_prune(&self) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    /// Pull from a registry; progress as JSON lines (Docker's pull stream).
    fn image_pull(
        &self,
        reference: String,
        insecure: bool,
        credentials: Option<(String, String)>,
    ) -> impl Future<Output = Reply<tokio::sync::mpsc::Receiver<axum::body::Bytes>>> + Send;
    fn image_push(
        &self,
        reference: String,
        insecure: bool,
        credentials: Option<(String, String)>,
    ) -> impl Future<Output = Reply<tokio::sync::mpsc::Receiver<axum::body::Bytes>>> + Send;
    /// Check credentials against a registry (`POST /auth`, `docker login`); nothing is kept.
    fn registry_login(
        &self,
        server: String,
        credentials: (String, String),
        insecure: bool,
    ) -> impl Future<Output = Reply<()>> + Send;
    /// A connection to the container's stdio (attach frames, see runtime::attach), and
    /// whether it has a terminal.
    fn container_attach(
        &self,
        id: String,
    ) -> impl Future<Output = Reply<(std::os::unix::net::UnixStream, bool)>> + Send;
    fn exec_create(
        &self,
        container: String,
        request: crate::types::container::ExecCreateRequest,
    ) -> impl Future<Output = Reply<crate::types::container::IdResponse>> + Send;
    fn exec_start(
        &self,
        id: String,
    ) -> impl Future<Output = Reply<super::exec::ExecStreams>> + Send;
    fn exec_inspect(
        &self,
        id: String,
    ) -> impl Future<Output = Reply<crate::types::container::ExecInspect>> + Send;
    fn swarm_init(
        &self,
        request: crate::types::InitRequest,
    ) -> impl Future<Output = Reply<String>> + Send;
    fn swarm_join(
        &self,
        request: crate::types::JoinRequest,
    ) -> impl Future<Output = Reply<()>> + Send;
    fn swarm_leave(&self, force: bool) -> impl Future<Output = Reply<()>> + Send;
    /// `local`: the manager's own copy rather than a linearizable read.
    fn swarm_inspect(&self, local: bool)
    -> impl Future<Output = Reply<crate::types::Swarm>> + Send;
    fn swarm_update(
        &self,
        version: u64,
        spec: crate::types::SwarmSpec,
        rotate: crate::types::swarm::Rotate,
    ) -> impl Future<Output = Reply<()>> + Send;
    fn node_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
        local: bool,
    ) -> impl Future<Output = Reply<Vec<crate::types::Node>>> + Send;
    fn node_inspect(
        &self,
        id: String,
        local: bool,
    ) -> impl Future<Output = Reply<crate::types::Node>> + Send;
    fn node_update(
        &self,
        id: String,
        version: u64,
        spec: crate::types::NodeSpec,
    ) -> impl Future<Output = Reply<()>> + Send;
    fn node_remove(&self, id: String, force: bool) -> impl Future<Output = Reply<()>> + Send;
    /// `{"ID", "Warnings"}`.
    fn service_create(
        &self,
        spec: serde_json::Value,
    ) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    fn service_update(
        &self,
        id: String,
        version: u64,
        spec: serde_json::Value,
    ) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    fn service_remove(&self, id: String) -> impl Future<Output = Reply<()>> + Send;
    fn service_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
        status: bool,
        local: bool,
    ) -> impl Future<Output = Reply<Vec<serde_json::Value>>> + Send;
    fn service_inspect(
        &self,
        id: String,
        local: bool,
    ) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    fn task_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
        local: bool,
    ) -> impl Future<Output = Reply<Vec<crate::types::service::Task>>> + Send;
    fn task_inspect(
        &self,
        id: String,
        local: bool,
    ) -> impl Future<Output = Reply<crate::types::service::Task>> + Send;
    fn volume_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> impl Future<Output = Reply<crate::types::volume::VolumeListResponse>> + Send;
    /// An existing volume of that name is returned as it is.
    fn volume_create(
        &self,
        request: crate::types::volume::VolumeCreateRequest,
    ) -> impl Future<Output = Reply<crate::types::volume::Volume>> + Send;
    fn volume_inspect(
        &self,
        name: String,
    ) -> impl Future<Output = Reply<crate::types::volume::Volume>> + Send;
    fn volume_remove(&self, name: String, force: bool) -> impl Future<Output = Reply<()>> + Send;
    fn volume_prune(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> impl Future<Output = Reply<crate::types::volume::VolumePruneResponse>> + Send;
    /// `{"Id", "Warning"}`.
    fn network_create(
        &self,
        request: crate::types::network::NetworkCreateRequest,
    ) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    fn network_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> impl Future<Output = Reply<Vec<crate::types::network::NetworkResource>>> + Send;
    fn network_inspect(
        &self,
        id: String,
    ) -> impl Future<Output = Reply<crate::types::network::NetworkResource>> + Send;
    fn network_remove(&self, id: String) -> impl Future<Output = Reply<()>> + Send;
    /// `{"NetworksDeleted": [names]}`.
    fn network_prune(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> impl Future<Output = Reply<serde_json::Value>> + Send;
    /// Frames of a service's or task's logs gathered from the nodes (multiplexed stream).
    fn service_logs(
        &self,
        target: services::LogsTarget,
        query: services::ServiceLogsQuery,
    ) -> impl Future<Output = Reply<tokio::sync::mpsc::Receiver<axum::body::Bytes>>> + Send;
    /// Frames of the multiplexed log stream, ending when the log is done.
    fn container_logs(
        &self,
        id: String,
        query: LogsQuery,
    ) -> impl Future<Output = Reply<tokio::sync::mpsc::Receiver<axum::body::Bytes>>> + Send;
}

/// Every route, unversioned (the version prefix is stripped before routing).
pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping::<B>).head(system::ping::<B>))
        .route("/version", get(system::version::<B>))
        .route("/info", get(system::info::<B>))
        .route("/auth", post(super::auth::login::<B>))
        .route("/images/json", get(images::list::<B>))
        .route("/images/load", post(images::load::<B>))
        .route("/images/create", post(images::create::<B>))
        .route("/images/get", get(images::save::<B>))
        .route("/images/prune", post(images::prune::<B>))
        .route(
            "/images/{*name}",
            get(image_get::<B>)
                .delete(images::remove::<B>)
                .post(image_post::<B>),
        )
        .route("/containers/create", post(containers::create::<B>))
        .route("/containers/json", get(containers::list::<B>))
        .route("/containers/{id}/json", get(containers::inspect::<B>))
        .route("/containers/{id}/start", post(containers::start::<B>))
        .route("/containers/{id}/wait", post(containers::wait::<B>))
        .route("/containers/{id}/stop", post(containers::stop::<B>))
        .route("/containers/{id}/kill", post(containers::kill::<B>))
        .route("/containers/{id}/logs", get(containers::logs::<B>))
        .route("/containers/{id}/attach", post(containers::attach::<B>))
        .route("/containers/{id}/resize", post(containers::resize::<B>))
        .route("/containers/{id}/exec", post(super::exec::create::<B>))
        .route("/exec/{id}/start", post(super::exec::start::<B>))
        .route("/exec/{id}/json", get(super::exec::inspect::<B>))
        .route("/containers/{id}", delete(containers::remove::<B>))
        .route("/swarm", get(swarm::inspect::<B>))
        .route("/swarm/init", post(swarm::init::<B>))
        .route("/swarm/join", post(swarm::join::<B>))
        .route("/swarm/leave", post(swarm::leave::<B>))
        .route("/swarm/update", post(swarm::update::<B>))
        .route("/nodes", get(swarm::nodes::<B>))
        .route(
            "/nodes/{id}",
            get(swarm::node::<B>).delete(swarm::node_remove::<B>),
        )
        .route("/nodes/{id}/update", post(swarm::node_update::<B>))
        .route("/services", get(services::list::<B>))
        .route("/services/create", post(services::create::<B>))
        .route(
            "/services/{id}",
            get(services::inspect::<B>).delete(services::remove::<B>),
        )
        .route("/services/{id}/update", post(services::update::<B>))
        .route("/services/{id}/logs", get(services::service_logs::<B>))
        .route("/tasks/{id}/logs", get(services::task_logs::<B>))
        .route("/tasks", get(services::tasks::<B>))
        .route("/tasks/{id}", get(services::task::<B>))
        .route("/volumes", get(super::volumes::list::<B>))
        .route("/volumes/create", post(super::volumes::create::<B>))
        .route("/volumes/prune", post(super::volumes::prune::<B>))
        .route(
            "/volumes/{name}",
            get(super::volumes::inspect::<B>).delete(super::volumes::remove::<B>),
        )
        .route("/networks", get(super::networks::list::<B>))
        .route("/networks/create", post(super::networks::create::<B>))
        .route("/networks/prune", post(super::networks::prune::<B>))
        .route(
            "/networks/{id}",
            get(super::networks::inspect::<B>).delete(super::networks::remove::<B>),
        )
        .route(
            "/__unsupported_version/{version}",
            axum::routing::any(unsupported_version),
        )
        .fallback(|| async { ApiError::not_found("page not found") })
        .layer(middleware::from_fn(common_headers))
        .with_state(backend)
}

/// Image names contain '/', so `/images/{name}/json` and `/images/{name}/tag` are told
/// apart by their last segment.
async fn image_get<B: Backend>(
    state: axum::extract::State<Arc<B>>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    match path.strip_suffix("/json") {
        Some(name) => images::inspect(state, axum::extract::Path(name.to_string()))
            .await
            .into_response(),
        None => ApiError::not_found("page not found").into_response(),
    }
}

async fn image_post<B: Backend>(
    state: axum::extract::State<Arc<B>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(name) = path.strip_suffix("/tag") {
        return images::tag(state, axum::extract::Path(name.to_string()), query)
            .await
            .into_response();
    }
    if let Some(name) = path.strip_suffix("/push") {
        return images::push(state, axum::extract::Path(name.to_string()), query, headers)
            .await
            .into_response();
    }
    ApiError::not_found("page not found").into_response()
}

async fn unsupported_version(
    axum::extract::Path(version): axum::extract::Path<String>,
) -> Response {
    ApiError::bad_request(check_version(&version).unwrap_or_default()).into_response()
}

/// `Api-Version` and friends on every answer, errors included.
async fn common_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    headers.insert("Ostype", HeaderValue::from_static("linux"));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert(
        "Server",
        HeaderValue::from_static(concat!("swarm/", env!("CARGO_PKG_VERSION"))),
    );
    response
}

/// A `/v1.xx` prefix: the version it names and the rest of the path.
fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    let is_version = version.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    });
    is_version.then(|| (version, &rest[end..]))
}

fn version_number(v: &str) -> (u32, u32) {
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
}

/// Why a request's version prefix is refused, in Docker's words; `None` if it is accepted.
pub fn check_version(version: &str) -> Option<String> {
    let asked = version_number(version);
    if asked < version_number(MIN_API_VERSION) {
        return Some(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ));
    }
    if asked > version_number(API_VERSION) {
        return Some(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        ));
    }
    None
}

/// Strip the version prefix so routes are written once; an unsupported version is routed
/// to a path that answers with the error.
fn strip_version(mut request: Request) -> Request {
    let path = request.uri().path().to_string();
    if let Some((version, rest)) = split_version(&path) {
        let target = match check_version(version) {
            None => format!(
                "{}{}",
                if rest.is_empty() { "/" } else { rest },
                query(request.uri())
            ),
            Some(_) => format!("/__unsupported_version/{version}"),
        };
        if let Ok(uri) = target.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}

fn query(uri: &Uri) -> String {
    uri.query().map(|q| format!("?{q}")).unwrap_or_default()
}

/// Serve the API on `listener` until `shutdown` is cancelled, then finish the requests in
/// flight.
pub async fn serve<B: Backend>(
    listener: UnixListener,
    backend: Arc<B>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = MapRequestLayer::new(strip_version).layer(router(backend));
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(app),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_version_prefixes() {
        assert_eq!(split_version("/v1.50/info"), Some(("1.50", "/info")));
        assert_eq!(
            split_version("/v1.24/nodes/abc"),
            Some(("1.24", "/nodes/abc"))
        );
        assert_eq!(split_version("/volumes"), None);
        assert_eq!(split_version("/version"), None);
        assert_eq!(split_version("/v1/info"), None);
        assert!(check_version("1.24").is_none());
        assert!(check_version("1.50").is_none());
        assert!(check_version("1.12").unwrap().contains("too old"));
        assert!(check_version("1.99").unwrap().contains("too new"));
    }
}
