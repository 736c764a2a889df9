//! The CLI's client for the daemon's API: HTTP/1.1 over the Unix socket.
//!
//! The daemon is found through `-H/--host unix://PATH`, else `$SWARM_HOST`, else
//! [`super::DEFAULT_SOCKET`]. A daemon that is not running is reported as such, not as an
//! I/O error.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the swarm daemon at unix://{}: is `swarm daemon` running?",
        .0.display()
    )]
    NoDaemon(PathBuf),
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("invalid host {0:?}: only unix:///path/to/socket is supported")]
    BadHost(String),
    #[error("talking to the daemon: {0}")]
    Transport(String),
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where the daemon listens: `--host`, else `$SWARM_HOST`, else the default socket.
pub fn resolve_host(host: Option<&str>) -> Result<PathBuf, ClientError> {
    let host = host
        .map(str::to_string)
        .or_else(|| std::env::var("SWARM_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("unix://{}", super::DEFAULT_SOCKET));
    match host.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ if host.starts_with('/') => Ok(PathBuf::from(host)),
        _ => Err(ClientError::BadHost(host)),
    }
}

/// A client for one daemon.
pub struct ApiClient {
    socket: PathBuf,
    http: Client<UnixConnector, Full<Bytes>>,
}

impl ApiClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        ApiClient {
            socket: socket.into(),
            http: Client::unix(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn uri(&self, path: &str) -> hyper::Uri {
        hyperlocal::Uri::new(&self.socket, &format!("/v{}{path}", super::API_VERSION)).into()
    }

    /// Send a request; a daemon that is not there is `NoDaemon`.
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.http.request(request).await.map_err(|e| {
            if e.is_connect() {
                ClientError::NoDaemon(self.socket.clone())
            } else {
                ClientError::Transport(e.to_string())
            }
        })
    }

    /// The error an unsuccessful answer carries: Docker's `{"message"}`, else the raw body.
    async fn api_error(response: hyper::Response<hyper::body::Incoming>) -> ClientError {
        let status = response.status().as_u16();
        let bytes = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return ClientError::Transport(e.to_string()),
        };
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        ClientError::Api { status, message }
    }

    /// Send a request; return the status and the body. Non-2xx answers become
    /// `ClientError::Api` with the daemon's message.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut builder = Request::builder().method(method).uri(self.uri(path));
        if body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(Self::api_error(response).await);
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// A streamed answer (logs): call `on_chunk` with each piece of the body as it arrives.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        on_chunk: impl FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        self.stream_with_headers(method, path, &[], on_chunk).await
    }

    /// [`Self::stream`] with extra request headers (`X-Registry-Auth`).
    pub async fn stream_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        mut on_chunk: impl FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        let mut builder = Request::builder().method(method).uri(self.uri(path));
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(Self::api_error(response).await);
        }
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Transport(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                on_chunk(data);
            }
        }
        Ok(())
    }

    /// POST that upgrades the connection to a raw byte stream (attach, Docker's hijack).
    pub async fn upgrade(
        &self,
        path: &str,
    ) -> Result<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.uri(path))
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let response = self.send(request).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(Self::api_error(response).await);
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(hyper_util::rt::TokioIo::new(upgraded))
    }

    /// POST with no body and no answer of interest.
    pub async fn post_empty(&self, path: &str) -> Result<(), ClientError> {
        self.request(Method::POST, path, None).await.map(|_| ())
    }

    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.request(Method::DELETE, path, None).await.map(|_| ())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (_, body) = self.request(Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(format!("{path}: {e}")))
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let (_, answer) = self.request(Method::POST, path, Some(body)).await?;
        if answer.is_empty() {
            return serde_json::from_slice(b"null")
                .map_err(|e| ClientError::Decode(format!("{path}: {e}")));
        }
        serde_json::from_slice(&answer).map_err(|e| ClientError::Decode(format!("{path}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_host_resolution() {
        assert_eq!(
            resolve_host(Some("unix:///tmp/x.sock")).unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert!(resolve_host(Some("tcp://127.0.0.1:2375")).is_err());
        assert!(resolve_host(Some("unix://relative")).is_err());
    }
}
