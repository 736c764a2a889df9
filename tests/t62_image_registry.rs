//! Registry pull and push against Debian's `docker-registry` (distribution 2.8) on loopback:
//! a push → pull round trip that keeps every digest, a multi-platform index, htpasswd auth,
//! a pull cut in the middle of a layer and resumed with a Range request, and a corrupted
//! blob refused with nothing committed.
//!
//! Faults come from a small HTTP proxy between the client and the registry (`Proxy`): it
//! logs every request, redirects blob GETs once (as registries do to their storage), cuts
//! a blob's body after N bytes, or flips a byte in it.
//!
//! Needs the packages `docker-registry` and `apache2-utils` (for `htpasswd -B`).

mod common;
mod image_support;

use common::registry::Registry;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use image_support::*;
use swarm::image::registry::{Platform, PullOptions, PushOptions, RegistryClient};
use swarm::image::{Digest, ImageError, ImageStore};
use tracing::info;

// --- the registry ----------------------------------------------------------------------

// --- the fault-injecting proxy -----------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Fault {
    None,
    /// Send the first `after` bytes of this blob's body, then drop the connection (once).
    CutBlob {
        digest: Digest,
        after: usize,
    },
    /// Send the first `after` bytes of this blob's body, then nothing, keeping the
    /// connection open (once).
    Stall {
        digest: Digest,
        after: usize,
    },
    /// Flip one byte in the middle of this blob's body (every time).
    FlipByte {
        digest: Digest,
    },
}

#[derive(Debug, Clone)]
struct BearerAuth {
    user: String,
    password: String,
    token: String,
}

#[derive(Debug, Clone)]
struct Logged {
    method: String,
    path: String,
    range: Option<String>,
}

struct ProxyState {
    upstream: SocketAddr,
    /// When set, the proxy is a token-auth registry: `/v2/…` needs `Bearer <token>`, which
    /// `/token` hands out for Basic (user, password).
    bearer: Mutex<Option<BearerAuth>>,
    http: Client<HttpConnector, Full<Bytes>>,
    log: Mutex<Vec<Logged>>,
    fault: Mutex<Fault>,
}

/// An HTTP proxy in front of a registry, on its own loopback port. Blob GETs are first
/// redirected to `/storage/…` (served by the same proxy), like a registry sending clients to
/// its storage backend.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

const STORAGE_PREFIX: &str = "/storage";

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream,
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            log: Mutex::new(Vec::new()),
            fault: Mutex::new(Fault::None),
            bearer: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { addr, state, task }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    fn require_bearer(&self, auth: BearerAuth) {
        *self.state.bearer.lock().unwrap() = Some(auth);
    }

    fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    /// GETs of a blob's content (at the storage URL the registry redirects to).
    fn blob_fetches(&self, digest: &Digest) -> Vec<Logged> {
        let suffix = format!("/blobs/{digest}");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.starts_with(STORAGE_PREFIX))
            .filter(|r| r.path.ends_with(&suffix))
            .collect()
    }

    fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn blob_digest_of(path: &str) -> Option<Digest> {
    path.rsplit_once("/blobs/")?.1.parse().ok()
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    state.log.lock().unwrap().push(Logged {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        range: parts
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let bearer = state.bearer.lock().unwrap().clone();
    if let Some(auth) = bearer {
        let authorization = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if parts.uri.path() == "/token" {
            let basic = format!(
                "Basic {}",
                base64(format!("{}:{}", auth.user, auth.password).as_bytes())
            );
            let query = parts.uri.query().unwrap_or("");
            let asked_scope = query.contains("scope=repository%3Atoken%2Fapp%3A");
            if authorization != basic || !query.contains("service=test-registry") || !asked_scope {
                return Response::builder().status(401).body(Body::empty()).unwrap();
            }
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(format!(
                    r#"{{"access_token":"{}"}}"#,
                    auth.token
                )))
                .unwrap();
        }
        if authorization != format!("Bearer {}", auth.token) {
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="test-registry",scope="repository:token/app:pull,push""#,
                parts
                    .headers
                    .get("host")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
            );
            return Response::builder()
                .status(401)
                .header("www-authenticate", challenge)
                .body(Body::empty())
                .unwrap();
        }
    }
    let is_blob_get =
        parts.method == hyper::Method::GET && blob_digest_of(parts.uri.path()).is_some();
    if is_blob_get && !path_and_query.starts_with(STORAGE_PREFIX) {
        return Response::builder()
            .status(307)
            .header("location", format!("{STORAGE_PREFIX}{path_and_query}"))
            .body(Body::empty())
            .unwrap();
    }
    let upstream_path = path_and_query
        .strip_prefix(STORAGE_PREFIX)
        .unwrap_or(&path_and_query);
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut upstream = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{}{upstream_path}", state.upstream));
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let answer = state
        .http
        .request(upstream.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let (answer_parts, answer_body) = answer.into_parts();
    let mut bytes = answer_body.collect().await.unwrap().to_bytes().to_vec();
    let mut response = Response::builder().status(answer_parts.status);
    for (name, value) in &answer_parts.headers {
        response = response.header(name, value);
    }
    let digest = blob_digest_of(parts.uri.path());
    let fault = state.fault.lock().unwrap().clone();
    match fault {
        Fault::CutBlob { digest: d, after } if is_blob_get && digest.as_ref() == Some(&d) => {
            *state.fault.lock().unwrap() = Fault::None;
            let head = Bytes::copy_from_slice(&bytes[..after.min(bytes.len())]);
            // The pause lets hyper flush the head before the error aborts the connection.
            let cut = async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err(std::io::Error::other("proxy cuts the connection"))
            };
            let chunks = futures::stream::iter([Ok(head)]).chain(futures::stream::once(cut));
            return response.body(Body::from_stream(chunks)).unwrap();
        }
        Fault::Stall { digest: d, after } if is_blob_get && digest.as_ref() == Some(&d) => {
            *state.fault.lock().unwrap() = Fault::None;
            let head = Bytes::copy_from_slice(&bytes[..after.min(bytes.len())]);
            let never = async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(std::io::Error::other("the test ended"))
            };
            let chunks = futures::stream::iter([Ok(head)]).chain(futures::stream::once(never));
            return response.body(Body::from_stream(chunks)).unwrap();
        }
        Fault::FlipByte { digest: d } if is_blob_get && digest.as_ref() == Some(&d) => {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x20;
        }
        _ => {}
    }
    response.body(Body::from(bytes)).unwrap()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// --- images --------------------------------------------------------------------------------

/// Bytes that do not compress (a xorshift stream), so a layer is as big as we say.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Three layers: a big plain one (the one faults hit), a gzip one, a small plain one.
fn test_image(seed: u64) -> BuiltImage {
    let mut big = TarBuilder::new();
    big.dir("data/", 0o755)
        .file("data/blob.bin", &noise(400 << 10, seed));
    let mut small = TarBuilder::new();
    small
        .dir("etc/", 0o755)
        .file("etc/motd", format!("image {seed}\n").as_bytes());
    let mut tiny = TarBuilder::new();
    tiny.file("hello.txt", b"hello\n");
    BuiltImage::new(
        vec![
            Layer::plain(big.finish()),
            Layer::gzip(small.finish()),
            Layer::plain(tiny.finish()),
        ],
        &["/bin/sh"],
    )
}

fn insecure() -> PullOptions {
    PullOptions {
        insecure: true,
        ..PullOptions::default()
    }
}

fn push_options() -> PushOptions {
    PushOptions {
        insecure: true,
        ..PushOptions::default()
    }
}

fn names(store: &ImageStore) -> Vec<String> {
    store
        .list()
        .unwrap()
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .collect()
}

fn partials(store: &ImageStore) -> Vec<String> {
    std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial-"))
        .collect()
}

/// The store as its users see it: blobs, snapshots and index.json, without the partial
/// downloads a failed pull keeps for the next one.
fn committed(store: &ImageStore) -> std::collections::BTreeMap<String, String> {
    let mut all = store_fingerprint(store.root());
    all.retain(|k, _| !k.starts_with("blob .partial-"));
    all
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

// --- t10: round trip -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_push_then_pull_keeps_every_digest() {
    init_tracing();
    let tmp = scratch("reg-roundtrip");
    let registry = Registry::start(&[]);
    let proxy = Proxy::start(registry.addr).await;
    let image = test_image(1);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let pushed_name = format!("{}/test/app:1", registry.host());
    image.store(&source, &[&pushed_name]);

    info!("--- push three layers and a config, then the manifest");
    let pushed = source.push(&pushed_name, &push_options()).await.unwrap();
    assert_eq!(pushed.manifest_digest, image.manifest_digest());
    assert_eq!(pushed.uploaded.len(), 4);
    assert!(pushed.skipped.is_empty());

    info!("--- a second push uploads nothing");
    let again = source.push(&pushed_name, &push_options()).await.unwrap();
    assert!(again.uploaded.is_empty());
    assert_eq!(again.skipped.len(), 4);

    info!("--- pull into a fresh store through the redirecting proxy, with progress");
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let seen: Arc<Mutex<Vec<(Digest, u64, u64)>>> = Arc::default();
    let sink = seen.clone();
    let options = PullOptions {
        progress: Some(Arc::new(move |d: &Digest, done, total| {
            sink.lock().unwrap().push((d.clone(), done, total))
        })),
        ..insecure()
    };
    let pull_name = format!("{}/test/app:1", proxy.host());
    let pulled = target.pull(&pull_name, &options).await.unwrap();
    assert_eq!(pulled.id, image.id(), "config digest (image id)");
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    assert_eq!(pulled.fetched.len(), 4);
    let inspect = target.inspect(&pull_name).unwrap();
    assert_eq!(inspect.id, image.id().to_string());
    assert_eq!(inspect.manifest_digest, image.manifest_digest().to_string());
    for (digest, bytes) in image.blobs() {
        assert_eq!(
            std::fs::read(target.blob_path(&digest)).unwrap(),
            bytes,
            "blob {digest}"
        );
    }
    assert!(partials(&target).is_empty());
    let big = Digest::of(&image.layers[0].blob);
    let progress = seen.lock().unwrap().clone();
    let last = progress.iter().rfind(|(d, _, _)| *d == big).unwrap();
    assert_eq!(last.1, last.2, "progress reaches the total");
    assert!(
        !proxy.blob_fetches(&big).is_empty(),
        "blobs came through the redirect"
    );

    info!("--- pulling again fetches no blob; by digest too");
    proxy.clear_log();
    let again = target.pull(&pull_name, &options).await.unwrap();
    assert!(again.fetched.is_empty());
    let by_digest = format!("{}/test/app@{}", proxy.host(), image.manifest_digest());
    let pulled = target.pull(&by_digest, &insecure()).await.unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    assert!(
        proxy
            .requests()
            .iter()
            .all(|r| !r.path.starts_with(STORAGE_PREFIX)),
        "no blob fetched: {:?}",
        proxy.requests()
    );

    info!("--- unknown tags and repositories are 'manifest unknown'");
    let e = target
        .pull(&format!("{}/test/app:nope", registry.host()), &insecure())
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::ManifestUnknown { .. }), "{e}");
    assert!(e.to_string().starts_with("manifest unknown"), "{e}");
    let e = target
        .pull(&format!("{}/test/none:1", registry.host()), &insecure())
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("manifest unknown"), "{e}");
}

// --- t20: multi-platform ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_index_pull_picks_the_host_platform() {
    init_tracing();
    let tmp = scratch("reg-index");
    let registry = Registry::start(&[]);
    let host_image = test_image(2);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let host_name = format!("{}/multi/app:host", registry.host());
    host_image.store(&source, &[&host_name]);
    source.push(&host_name, &push_options()).await.unwrap();

    info!("--- a fake arm64 image next to it, and an index naming both");
    let client = RegistryClient::new(
        &registry.host(),
        true,
        None,
        std::path::Path::new("/nonexistent"),
    )
    .unwrap();
    let other_arch = if Platform::host().architecture == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let arm_layer = b"not a real layer".to_vec();
    let arm_config = serde_json::to_vec(&serde_json::json!({
        "architecture": other_arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&arm_layer).to_string()]},
    }))
    .unwrap();
    let arm_config_digest = client.upload_bytes("multi/app", &arm_config).await.unwrap();
    let arm_layer_digest = client.upload_bytes("multi/app", &arm_layer).await.unwrap();
    let arm_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": arm_config_digest.to_string(), "size": arm_config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": arm_layer_digest.to_string(), "size": arm_layer.len()}],
    }))
    .unwrap();
    let arm_digest = client
        .put_manifest(
            "multi/app",
            "arm",
            "application/vnd.oci.image.manifest.v1+json",
            &arm_manifest,
        )
        .await
        .unwrap();
    let entry = |digest: &Digest, size: usize, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.to_string(), "size": size,
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    // The other platform first, so picking the first entry would be wrong.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&arm_digest, arm_manifest.len(), other_arch),
            entry(&host_image.manifest_digest(), host_image.manifest.len(), &Platform::host().architecture),
        ],
    }))
    .unwrap();
    let index_digest = client
        .put_manifest(
            "multi/app",
            "multi",
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .await
        .unwrap();

    info!("--- pulling the index's tag brings the host's image");
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let pulled = target
        .pull(&format!("{}/multi/app:multi", registry.host()), &insecure())
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, host_image.manifest_digest());
    assert_eq!(pulled.reference_digest, index_digest);
    assert_eq!(pulled.id, host_image.id());
    assert!(!target.has_blob(&arm_layer_digest));

    info!("--- by the index's digest too; a platform the index lacks is refused");
    let by_digest = format!("{}/multi/app@{index_digest}", registry.host());
    let pulled = target.pull(&by_digest, &insecure()).await.unwrap();
    assert_eq!(pulled.manifest_digest, host_image.manifest_digest());
    let e = target
        .pull(
            &by_digest,
            &PullOptions {
                platform: Platform {
                    os: "linux".into(),
                    architecture: "s390x".into(),
                    variant: None,
                },
                ..insecure()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::NoMatchingPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/s390x"), "{e}");

    info!("--- the same image under Docker's media types: a v2 manifest and a manifest list");
    let mut docker_manifest: serde_json::Value =
        serde_json::from_slice(&host_image.manifest).unwrap();
    docker_manifest["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
    docker_manifest["config"]["mediaType"] =
        "application/vnd.docker.container.image.v1+json".into();
    for layer in docker_manifest["layers"].as_array_mut().unwrap() {
        let gzipped = layer["mediaType"].as_str().unwrap().ends_with("+gzip");
        layer["mediaType"] = if gzipped {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        } else {
            "application/vnd.docker.image.rootfs.diff.tar"
        }
        .into();
    }
    let docker_manifest = serde_json::to_vec(&docker_manifest).unwrap();
    let docker_digest = client
        .put_manifest(
            "multi/app",
            "docker",
            "application/vnd.docker.distribution.manifest.v2+json",
            &docker_manifest,
        )
        .await
        .unwrap();
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": docker_digest.to_string(), "size": docker_manifest.len(),
            "platform": {"architecture": Platform::host().architecture, "os": "linux"},
        }],
    }))
    .unwrap();
    client
        .put_manifest(
            "multi/app",
            "dockerlist",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            &list,
        )
        .await
        .unwrap();
    let docker_store = ImageStore::open(tmp.path().join("docker")).unwrap();
    let list_name = format!("{}/multi/app:dockerlist", registry.host());
    let pulled = docker_store.pull(&list_name, &insecure()).await.unwrap();
    assert_eq!(pulled.manifest_digest, docker_digest);
    assert_eq!(pulled.id, host_image.id());
    let inspect = docker_store.inspect(&list_name).unwrap();
    assert_eq!(inspect.manifest_digest, docker_digest.to_string());
    assert_eq!(inspect.root_fs.layers.len(), 3);
}

// --- t30: auth -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_htpasswd_registry_refuses_wrong_credentials() {
    init_tracing();
    let tmp = scratch("reg-auth");
    let registry = Registry::start(&[("alice", "s3cret")]);
    let image = test_image(3);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let name = format!("{}/private/app:1", registry.host());
    image.store(&source, &[&name]);
    let with = |user: &str, password: &str| PushOptions {
        insecure: true,
        credentials: Some((user.into(), password.into())),
        ..PushOptions::default()
    };

    info!("--- anonymous and wrong passwords are unauthorized");
    let e = source.push(&name, &push_options()).await.unwrap_err();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("authentication required"), "{e}");
    let e = source
        .push(&name, &with("alice", "wrong"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("unauthorized: incorrect username or password"),
        "{e}"
    );

    info!("--- the right password pushes and pulls");
    source.push(&name, &with("alice", "s3cret")).await.unwrap();
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let e = target.pull(&name, &insecure()).await.unwrap_err();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e}");
    let e = target
        .pull(
            &name,
            &PullOptions {
                credentials: Some(("alice".into(), "nope".into())),
                ..insecure()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e}");
    assert!(names(&target).is_empty());
    let pulled = target
        .pull(
            &name,
            &PullOptions {
                credentials: Some(("alice".into(), "s3cret".into())),
                ..insecure()
            },
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t35_bearer_token_flow() {
    init_tracing();
    let tmp = scratch("reg-bearer");
    let registry = Registry::start(&[]);
    let proxy = Proxy::start(registry.addr).await;
    proxy.require_bearer(BearerAuth {
        user: "bob".into(),
        password: "hunter2".into(),
        token: "tok-123".into(),
    });
    let image = test_image(7);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let name = format!("{}/token/app:1", proxy.host());
    image.store(&source, &[&name]);
    let creds = |password: &str| Some(("bob".to_string(), password.to_string()));

    info!("--- the token endpoint refuses a wrong password and anonymous requests");
    let e = source
        .push(
            &name,
            &PushOptions {
                insecure: true,
                credentials: creds("bad"),
                ..PushOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("unauthorized: incorrect username or password"),
        "{e}"
    );
    let e = source.push(&name, &push_options()).await.unwrap_err();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e}");

    info!("--- 401 → token (Basic, service, scope) → retry with Bearer: push and pull work");
    source
        .push(
            &name,
            &PushOptions {
                insecure: true,
                credentials: creds("hunter2"),
                ..PushOptions::default()
            },
        )
        .await
        .unwrap();
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let pulled = target
        .pull(
            &name,
            &PullOptions {
                credentials: creds("hunter2"),
                ..insecure()
            },
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    let token_requests = proxy
        .requests()
        .iter()
        .filter(|r| r.path == "/token")
        .count();
    assert!(token_requests >= 2, "one token per client at least");
}

// --- t40: interrupted pull ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_pull_cut_mid_layer_resumes_with_a_range_request() {
    init_tracing();
    let tmp = scratch("reg-resume");
    let registry = Registry::start(&[]);
    let proxy = Proxy::start(registry.addr).await;
    let image = test_image(4);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let pushed_name = format!("{}/resume/app:1", registry.host());
    image.store(&source, &[&pushed_name]);
    source.push(&pushed_name, &push_options()).await.unwrap();

    info!("--- the proxy cuts the big layer after 100 KiB");
    let big = Digest::of(&image.layers[0].blob);
    let cut_after = 100 << 10;
    proxy.set_fault(Fault::CutBlob {
        digest: big.clone(),
        after: cut_after,
    });
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let name = format!("{}/resume/app:1", proxy.host());
    let e = target.pull(&name, &insecure()).await.unwrap_err();
    assert!(matches!(e, ImageError::Registry { .. }), "{e}");
    assert!(e.to_string().contains(&big.to_string()), "{e}");
    info!("pull failed: {e}");
    assert!(names(&target).is_empty(), "nothing committed");
    for (digest, _) in image.blobs() {
        assert!(
            !target.has_blob(&digest),
            "{digest} visible before the commit"
        );
    }
    let partial = target
        .root()
        .join(format!("blobs/sha256/.partial-{}", big.hex()));
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(
        kept > 0 && kept <= cut_after as u64,
        "partial kept {kept} bytes"
    );
    assert_eq!(partials(&target).len(), 4, "the other blobs completed");

    info!("--- the second pull fetches only the rest of the big layer");
    let pulled = target.pull(&name, &insecure()).await.unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    let resumed = pulled.fetched.iter().find(|f| f.digest == big).unwrap();
    assert_eq!(resumed.resumed_from, kept);
    let fetches = proxy.blob_fetches(&big);
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert_eq!(fetches[0].range, None);
    assert_eq!(
        fetches[1].range.as_deref(),
        Some(&*format!("bytes={kept}-"))
    );
    for (digest, bytes) in image.blobs().into_iter().skip(1) {
        if digest != big {
            assert_eq!(
                proxy.blob_fetches(&digest).len(),
                1,
                "{digest} fetched twice"
            );
        }
        assert_eq!(std::fs::read(target.blob_path(&digest)).unwrap(), bytes);
    }
    assert_eq!(
        std::fs::read(target.blob_path(&big)).unwrap(),
        image.layers[0].blob
    );
    assert!(partials(&target).is_empty());

    info!("--- a pull dropped mid-way (the future cancelled) also keeps its partial");
    let image2 = test_image(5);
    let name2 = format!("{}/resume/two:1", registry.host());
    image2.store(&source, &[&name2]);
    source.push(&name2, &push_options()).await.unwrap();
    let big2 = Digest::of(&image2.layers[0].blob);
    let reached = Arc::new(tokio::sync::Notify::new());
    let notify = reached.clone();
    let big2_seen = big2.clone();
    let options = PullOptions {
        progress: Some(Arc::new(move |d: &Digest, done, _| {
            if *d == big2_seen && done >= 64 << 10 {
                notify.notify_one();
            }
        })),
        ..insecure()
    };
    let via_proxy = format!("{}/resume/two:1", proxy.host());
    tokio::select! {
        biased;
        _ = reached.notified() => {}
        result = target.pull(&via_proxy, &options) => panic!("pull finished first: {result:?}"),
    }
    assert!(names(&target).iter().all(|n| !n.contains("two")));
    assert!(!target.has_blob(&big2));
    let partial2 = target
        .root()
        .join(format!("blobs/sha256/.partial-{}", big2.hex()));
    assert!(std::fs::metadata(&partial2).unwrap().len() > 0);
    let pulled = target.pull(&via_proxy, &insecure()).await.unwrap();
    assert_eq!(pulled.manifest_digest, image2.manifest_digest());
    let resumed = pulled.fetched.iter().find(|f| f.digest == big2).unwrap();
    assert!(resumed.resumed_from > 0, "{resumed:?}");
    assert_eq!(
        std::fs::read(target.blob_path(&big2)).unwrap(),
        image2.layers[0].blob
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t42_concurrent_pulls_of_one_image_share_each_download() {
    init_tracing();
    let tmp = scratch("reg-concurrent");
    let registry = Registry::start(&[]);
    let proxy = Proxy::start(registry.addr).await;
    let image = test_image(9);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let pushed_name = format!("{}/both/app:1", registry.host());
    image.store(&source, &[&pushed_name]);
    source.push(&pushed_name, &push_options()).await.unwrap();

    info!("--- four pulls of the same image into one store at once");
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let name = format!("{}/both/app:1", proxy.host());
    let options = insecure();
    let pulls = (0..4).map(|_| target.pull(&name, &options));
    let results = futures::future::join_all(pulls).await;
    for result in results {
        assert_eq!(result.unwrap().manifest_digest, image.manifest_digest());
    }
    for (digest, bytes) in image.blobs() {
        assert_eq!(std::fs::read(target.blob_path(&digest)).unwrap(), bytes);
        if digest != image.manifest_digest() {
            assert_eq!(
                proxy.blob_fetches(&digest).len(),
                1,
                "{digest} fetched once"
            );
        }
    }
    assert!(partials(&target).is_empty(), "{:?}", partials(&target));
    assert_eq!(names(&target), vec![format!("{}/both/app:1", proxy.host())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t45_stalled_blob_times_out_and_resumes() {
    init_tracing();
    let tmp = scratch("reg-stall");
    let registry = Registry::start(&[]);
    let proxy = Proxy::start(registry.addr).await;
    let image = test_image(8);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let pushed_name = format!("{}/stall/app:1", registry.host());
    image.store(&source, &[&pushed_name]);
    source.push(&pushed_name, &push_options()).await.unwrap();

    info!("--- the big layer stalls after 50 KiB; the pull gives up after the I/O timeout");
    let big = Digest::of(&image.layers[0].blob);
    proxy.set_fault(Fault::Stall {
        digest: big.clone(),
        after: 50 << 10,
    });
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let name = format!("{}/stall/app:1", proxy.host());
    let options = PullOptions {
        io_timeout: Duration::from_millis(700),
        ..insecure()
    };
    let started = std::time::Instant::now();
    let e = target.pull(&name, &options).await.unwrap_err();
    assert!(e.to_string().contains("no data for"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(names(&target).is_empty());

    info!("--- the next pull resumes the layer");
    let pulled = target.pull(&name, &options).await.unwrap();
    let resumed = pulled.fetched.iter().find(|f| f.digest == big).unwrap();
    assert!(resumed.resumed_from > 0, "{resumed:?}");
    assert_eq!(
        std::fs::read(target.blob_path(&big)).unwrap(),
        image.layers[0].blob
    );

    info!("--- a layer over the store's limit is refused before any download");
    let small = ImageStore::open(tmp.path().join("small"))
        .unwrap()
        .with_limits(swarm::image::Limits {
            layer_bytes: 1000,
            ..swarm::image::Limits::default()
        });
    proxy.clear_log();
    let e = small.pull(&name, &insecure()).await.unwrap_err();
    assert!(
        e.to_string().starts_with("layer exceeds limit: layer size"),
        "{e}"
    );
    assert!(proxy.requests().iter().all(|r| !r.path.contains("/blobs/")));
}

// --- t50: corruption -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_corrupted_blob_is_a_digest_mismatch_and_nothing_is_committed() {
    init_tracing();
    let tmp = scratch("reg-corrupt");
    let registry = Registry::start(&[]);
    let proxy = Proxy::start(registry.addr).await;
    let image = test_image(6);
    let source = ImageStore::open(tmp.path().join("source")).unwrap();
    let pushed_name = format!("{}/bad/app:1", registry.host());
    image.store(&source, &[&pushed_name]);
    source.push(&pushed_name, &push_options()).await.unwrap();

    info!("--- the proxy flips a byte of the gzip layer");
    let victim = Digest::of(&image.layers[1].blob);
    proxy.set_fault(Fault::FlipByte {
        digest: victim.clone(),
    });
    let target = ImageStore::open(tmp.path().join("target")).unwrap();
    let before = committed(&target);
    let name = format!("{}/bad/app:1", proxy.host());
    let e = target.pull(&name, &insecure()).await.unwrap_err();
    assert_eq!(e.to_string(), format!("digest mismatch for {victim}"));
    assert!(names(&target).is_empty());
    assert_eq!(committed(&target), before, "nothing committed");
    assert!(
        !partials(&target).iter().any(|p| p.contains(victim.hex())),
        "the corrupted download is not kept"
    );

    info!("--- without the fault the same store pulls the image");
    proxy.set_fault(Fault::None);
    let pulled = target.pull(&name, &insecure()).await.unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    assert_eq!(
        std::fs::read(target.blob_path(&victim)).unwrap(),
        image.layers[1].blob
    );
}
