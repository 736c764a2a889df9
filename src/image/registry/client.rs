//! A small OCI Distribution v2 client over hyper: manifests, blobs, uploads, and the auth and
//! redirect handling around them. It knows HTTP and the registry's URL scheme, not the store.
//!
//! Every request goes through [`RegistryClient::send`]: a 401 is answered once per request
//! with the challenge's flow (Basic, or a Bearer token fetched from the realm), and the
//! resulting `Authorization` is kept for the requests after it. Payloads are re-creatable
//! ([`Payload`]), so a request with a body can be retried after the challenge too.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::auth::{self, Challenge};
use super::tls;
use crate::image::digest::Digest;
use crate::image::error::{ImageError, Result};
use crate::image::reference::DEFAULT_DOMAIN;
use crate::image::store::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};

/// Where Docker Hub's registry API really lives.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// Redirects followed for one request (registries send blobs to storage, once).
const MAX_REDIRECTS: usize = 5;
/// How long a request may wait for an answer's head, or a body for its next bytes.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of an error or token answer we read.
const SMALL_BODY_MAX: usize = 64 << 10;

pub(crate) type Body = BoxBody<Bytes, io::Error>;

/// A request body that can be produced again (for the retry after a 401).
#[derive(Debug, Clone)]
pub enum Payload {
    Empty,
    Bytes(Bytes),
    /// A file streamed from disk (a layer), with its length.
    File {
        path: PathBuf,
        size: u64,
    },
}

/// A client for one registry. Cheap to share by reference; its only mutable state is the
/// `Authorization` value learned from challenges (a std Mutex: nothing awaits while it is
/// held).
pub struct RegistryClient {
    /// Speaks both schemes: the registry's, and whatever its redirects (blob storage) or its
    /// token realm use.
    http: Client<HttpsConnector<HttpConnector>, Body>,
    /// `https://host:port` (or `http://`), no trailing slash.
    base: String,
    /// The per-registry CA directories, for error messages.
    certs_dir: PathBuf,
    /// The registry as the user named it, for messages.
    registry: String,
    credentials: Option<(String, String)>,
    authorization: Mutex<Option<String>>,
    io_timeout: Duration,
}

/// Is `host` (with or without `:port`, IPv6 in brackets) a loopback name or address?
fn is_loopback(domain: &str) -> bool {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        domain.split(':').next().unwrap_or("")
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl RegistryClient {
    /// A client for the registry `domain` (`docker.io`, `127.0.0.1:5000`): HTTPS with
    /// verified certificates, trusting `certs_dir/<domain>/*.crt` too; plain HTTP when
    /// `insecure`, or on loopback unless the registry has a certs.d directory (see
    /// [`tls`]).
    pub fn new(
        domain: &str,
        insecure: bool,
        credentials: Option<(String, String)>,
        certs_dir: &Path,
    ) -> Result<RegistryClient> {
        let host = if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_REGISTRY
        } else {
            domain
        };
        let registry_dir = tls::registry_certs_dir(certs_dir, domain);
        let scheme = tls::scheme_for(insecure, is_loopback(host), registry_dir.is_some());
        let config = tls::client_config(domain, registry_dir.as_deref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(RegistryClient {
            http: Client::builder(TokioExecutor::new()).build(connector),
            base: format!("{}://{host}", scheme.as_str()),
            certs_dir: certs_dir.to_path_buf(),
            registry: domain.to_string(),
            credentials,
            authorization: Mutex::new(None),
            io_timeout: DEFAULT_IO_TIMEOUT,
        })
    }

    /// The same client with another bound on waiting for an answer or for body bytes.
    pub fn with_io_timeout(mut self, io_timeout: Duration) -> RegistryClient {
        self.io_timeout = io_timeout;
        self
    }

    pub fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// `http.request` bounded by the I/O timeout, errors with their causes.
    async fn request(&self, request: Request<Body>) -> Result<Response<Incoming>> {
        let what = format!("{} {}", request.method(), request.uri());
        match tokio::time::timeout(self.io_timeout, self.http.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.connection_error(&what, &e)),
            Err(_) => {
                Err(self.registry_error(format!("{what}: no answer within {:?}", self.io_timeout)))
            }
        }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn registry_error(&self, message: impl Into<String>) -> ImageError {
        ImageError::Registry {
            registry: self.registry.clone(),
            message: message.into(),
        }
    }

    /// A failed request: a TLS failure explained, anything else with its causes.
    fn connection_error(&self, what: &str, e: &(dyn std::error::Error + 'static)) -> ImageError {
        match tls::explain(e, &self.certs_dir, &self.registry) {
            Some(message) => ImageError::Tls {
                registry: self.registry.clone(),
                message: format!("{what}: {message}"),
            },
            None => self.registry_error(format!("{what}: {}", error_chain(e))),
        }
    }

    /// Is this client speaking TLS to the registry?
    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }

    fn unauthorized(&self, reason: &str) -> ImageError {
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            reason: reason.to_string(),
        }
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_authorization(&self, value: String) {
        *self
            .authorization
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(value);
    }

    async fn build(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload,
        with_auth: bool,
    ) -> Result<Request<Body>> {
        let mut builder = Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        if with_auth && let Some(value) = self.current_authorization() {
            builder = builder.header(AUTHORIZATION, value);
        }
        let body: Body = match payload {
            Payload::Empty => Empty::new().map_err(|never| match never {}).boxed(),
            Payload::Bytes(bytes) => {
                builder = builder.header(CONTENT_LENGTH, bytes.len());
                Full::new(bytes.clone())
                    .map_err(|never| match never {})
                    .boxed()
            }
            Payload::File { path, size } => {
                builder = builder.header(CONTENT_LENGTH, *size);
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| ImageError::io(format!("open {}", path.display()), e))?;
                let frames = tokio_util::io::ReaderStream::new(file).map_ok(Frame::data);
                BodyExt::boxed(StreamBody::new(frames))
            }
        };
        builder
            .body(body)
            .map_err(|e| self.registry_error(format!("bad request to {url}: {e}")))
    }

    /// Send a request to this registry, answering one 401 with its challenge.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload,
    ) -> Result<Response<Incoming>> {
        let mut answered_challenge = false;
        loop {
            let request = self.build(&method, url, headers, payload, true).await?;
            let response = self.request(request).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            if answered_challenge {
                return Err(self.unauthorized(self.refusal_reason()));
            }
            answered_challenge = true;
            match challenge {
                Some(challenge) => self.answer(challenge).await?,
                None => return Err(self.unauthorized("the registry refused the request")),
            }
        }
    }

    fn refusal_reason(&self) -> &'static str {
        if self.credentials.is_some() {
            "incorrect username or password"
        } else {
            "authentication required"
        }
    }

    /// Learn an `Authorization` value for `challenge`.
    async fn answer(&self, challenge: Challenge) -> Result<()> {
        let basic = self
            .credentials
            .as_ref()
            .map(|(user, password)| auth::basic_header(user, password));
        match challenge {
            Challenge::Basic => match basic {
                Some(value) => {
                    self.set_authorization(value);
                    Ok(())
                }
                None => Err(self.unauthorized("authentication required")),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let url = auth::token_url(&realm, service.as_deref(), scope.as_deref());
                let mut request = Request::builder().method(Method::GET).uri(&url);
                if let Some(value) = basic {
                    request = request.header(AUTHORIZATION, value);
                }
                let request = request
                    .body(Empty::new().map_err(|never| match never {}).boxed())
                    .map_err(|e| self.registry_error(format!("bad token URL {url}: {e}")))?;
                let response = self.request(request).await?;
                let status = response.status();
                let body = read_small(response).await.unwrap_or_default();
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    return Err(self.unauthorized(self.refusal_reason()));
                }
                if !status.is_success() {
                    return Err(self.registry_error(format!("token request to {url}: {status}")));
                }
                let token = auth::token_from_answer(&body).ok_or_else(|| {
                    self.registry_error(format!("token request to {url}: no token in the answer"))
                })?;
                self.set_authorization(format!("Bearer {token}"));
                Ok(())
            }
        }
    }

    /// An error for an unexpected answer, with the registry's own message when it sent one
    /// (`{"errors":[{"code":…,"message":…}]}`).
    async fn unexpected(&self, what: &str, response: Response<Incoming>) -> ImageError {
        let status = response.status();
        let body = read_small(response).await.unwrap_or_default();
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let errors = v.get("errors")?.as_array()?.clone();
                let messages: Vec<String> = errors
                    .iter()
                    .filter_map(|e| {
                        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                        let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                        (!(code.is_empty() && message.is_empty()))
                            .then(|| format!("{code}: {message}"))
                    })
                    .collect();
                (!messages.is_empty()).then(|| messages.join("; "))
            })
            .unwrap_or_else(|| status.to_string());
        self.registry_error(format!("{what}: {detail}"))
    }

    /// `GET /v2/` through the challenge flow: does the registry take our credentials?
    /// (docker's login check; a registry that asks for none takes any.)
    pub async fn check_login(&self) -> Result<()> {
        let url = self.url("/v2/");
        let response = self.send(Method::GET, &url, &[], &Payload::Empty).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.unexpected("GET /v2/", response).await)
        }
    }

    /// GET a manifest (tag or digest) with every media type we read. Returns its bytes (at
    /// most `max`) and the Content-Type. 404 is `ManifestUnknown`.
    pub async fn get_manifest(
        &self,
        name: &str,
        reference: &str,
        max: u64,
    ) -> Result<(Bytes, Option<String>)> {
        let url = self.url(&format!("/v2/{name}/manifests/{reference}"));
        let accept = [
            MEDIA_TYPE_OCI_INDEX,
            MEDIA_TYPE_OCI_MANIFEST,
            MEDIA_TYPE_DOCKER_LIST,
            MEDIA_TYPE_DOCKER_MANIFEST,
        ]
        .join(", ");
        let response = self
            .send(
                Method::GET,
                &url,
                &[(ACCEPT.as_str(), accept)],
                &Payload::Empty,
            )
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            let separator = if reference.starts_with(Digest::PREFIX) {
                '@'
            } else {
                ':'
            };
            return Err(ImageError::ManifestUnknown {
                reference: format!("{}/{name}{separator}{reference}", self.registry),
            });
        }
        if !status.is_success() {
            return Err(self
                .unexpected(&format!("manifest {name}:{reference}"), response)
                .await);
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        let bytes = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ImageError::limit(format!(
                        "JSON document size (manifest {name}:{reference} is over {max} bytes)"
                    ))
                } else {
                    self.registry_error(format!("manifest {name}:{reference}: {e}"))
                }
            })?
            .to_bytes();
        Ok((bytes, content_type))
    }

    /// GET a blob from byte `from` on (a Range request when `from > 0`), following
    /// redirects. The answer is 200 (whole blob) or 206 (from `from`); anything else is an
    /// error.
    pub(crate) async fn get_blob(
        &self,
        name: &str,
        digest: &Digest,
        from: u64,
    ) -> Result<Response<Incoming>> {
        let mut url = self.url(&format!("/v2/{name}/blobs/{digest}"));
        let headers: Vec<(&str, String)> = if from > 0 {
            vec![("range", format!("bytes={from}-"))]
        } else {
            Vec::new()
        };
        let mut redirects = 0;
        loop {
            // Credentials go to the registry only, never to the storage it redirects to.
            let response = if url.starts_with(&format!("{}/", self.base)) {
                self.send(Method::GET, &url, &headers, &Payload::Empty)
                    .await?
            } else {
                let request = self
                    .build(&Method::GET, &url, &headers, &Payload::Empty, false)
                    .await?;
                self.request(request).await?
            };
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        self.registry_error(format!("blob {digest}: redirect without a Location"))
                    })?;
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(self.registry_error(format!("blob {digest}: too many redirects")));
                }
                url = resolve(&url, location);
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                return Err(self.registry_error(format!("blob unknown: {digest}")));
            }
            if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
                return Ok(response);
            }
            return Err(self.unexpected(&format!("blob {digest}"), response).await);
        }
    }

    /// Does the registry have the blob (HEAD)?
    pub async fn blob_exists(&self, name: &str, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("/v2/{name}/blobs/{digest}"));
        let response = self.send(Method::HEAD, &url, &[], &Payload::Empty).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .unexpected(&format!("HEAD blob {digest}"), response)
                .await),
        }
    }

    /// Monolithic upload: POST an upload session, then PUT the whole blob with its digest.
    pub async fn upload_blob(&self, name: &str, digest: &Digest, payload: Payload) -> Result<()> {
        let url = self.url(&format!("/v2/{name}/blobs/uploads/"));
        let response = self.send(Method::POST, &url, &[], &Payload::Empty).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self
                .unexpected(&format!("start upload of {digest}"), response)
                .await);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.registry_error("upload session without a Location"))?;
        let mut put_url = resolve(&url, location);
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={}", auth::percent_encode(digest.as_str())));
        let response = self
            .send(
                Method::PUT,
                &put_url,
                &[(CONTENT_TYPE.as_str(), "application/octet-stream".into())],
                &payload,
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .unexpected(&format!("upload of {digest}"), response)
                .await);
        }
        Ok(())
    }

    /// Upload a blob held in memory (a config, or a manifest's blob in tests); returns its
    /// digest. Skips the upload when the registry has it.
    pub async fn upload_bytes(&self, name: &str, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.blob_exists(name, &digest).await? {
            self.upload_blob(name, &digest, Payload::Bytes(Bytes::copy_from_slice(bytes)))
                .await?;
        }
        Ok(digest)
    }

    /// PUT a manifest (or index) under a tag or digest; returns the digest of its bytes.
    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let url = self.url(&format!("/v2/{name}/manifests/{reference}"));
        let response = self
            .send(
                Method::PUT,
                &url,
                &[(CONTENT_TYPE.as_str(), media_type.to_string())],
                &Payload::Bytes(Bytes::copy_from_slice(bytes)),
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self
                .unexpected(&format!("manifest {name}:{reference}"), response)
                .await);
        }
        Ok(Digest::of(bytes))
    }
}

/// An absolute URL for a `Location` header sent in answer to `current` (either scheme: blob
/// storage is often elsewhere, over HTTPS).
fn resolve(current: &str, location: &str) -> String {
    if location.starts_with("https://") || location.starts_with("http://") {
        return location.to_string();
    }
    let authority_start = current.find("://").map_or(0, |i| i + "://".len());
    let origin_end = current[authority_start..]
        .find('/')
        .map_or(current.len(), |i| i + authority_start);
    let origin = &current[..origin_end];
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let path = &current[origin_end..];
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        format!("{origin}{dir}{location}")
    }
}

/// Read a small answer (an error document, a token), capped.
async fn read_small(response: Response<Incoming>) -> Option<Bytes> {
    Limited::new(response.into_body(), SMALL_BODY_MAX)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// hyper-util's errors say "client error (Connect)"; the cause is in the source chain.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_only_loopback_is_plain_http_without_insecure() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("example.com:5000"));
        assert!(!is_loopback("10.0.0.1"));
        let none = Path::new("/nonexistent-certs.d");
        let hub = RegistryClient::new("docker.io", false, None, none).unwrap();
        assert!(hub.is_https());
        assert_eq!(hub.url("/v2/"), "https://registry-1.docker.io/v2/");
        assert!(
            !RegistryClient::new("example.com", true, None, none)
                .unwrap()
                .is_https()
        );
        assert!(
            !RegistryClient::new("127.0.0.1:5000", false, None, none)
                .unwrap()
                .is_https()
        );
        let certs = tempfile::tempdir().unwrap();
        std::fs::create_dir(certs.path().join("127.0.0.1:5000")).unwrap();
        let local = RegistryClient::new("127.0.0.1:5000", false, None, certs.path()).unwrap();
        assert!(local.is_https(), "a certs.d directory asks for TLS");
    }

    #[test]
    fn t10_locations_resolve_against_the_request() {
        let base = "http://127.0.0.1:5000/v2/a/blobs/uploads/";
        assert_eq!(
            resolve(base, "/v2/a/blobs/uploads/u1?_state=x"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=x"
        );
        assert_eq!(resolve(base, "http://s/x"), "http://s/x");
        assert_eq!(resolve(base, "https://s3/x"), "https://s3/x");
        assert_eq!(
            resolve(base, "u2"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u2"
        );
        assert_eq!(
            resolve("https://r:443/v2/a/blobs/x", "/storage/x"),
            "https://r:443/storage/x"
        );
    }
}
