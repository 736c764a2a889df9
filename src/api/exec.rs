//! `docker exec`: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked like
//! attach), `GET /exec/{id}/json`.

use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::ApiError;
use super::server::Backend;
use crate::types::container::{ExecCreateRequest, ExecStartRequest};

/// A started exec's stdio.
pub struct ExecStreams {
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    pub tty: bool,
}

pub async fn create<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ExecCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid exec config: {e}")))?;
    Ok((
        StatusCode::CREATED,
        Json(backend.exec_create(id, request).await?),
    )
        .into_response())
}

pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(backend.exec_inspect(id).await?).into_response())
}

pub async fn start<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    mut request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let upgrade_asked = request.headers().contains_key(header::UPGRADE);
    let body = axum::body::to_bytes(std::mem::take(request.body_mut()), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid exec start body: {e}")))?;
    let start: ExecStartRequest = if body.is_empty() {
        ExecStartRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid exec start body: {e}")))?
    };
    if !start.detach && !upgrade_asked {
        return Err(ApiError::bad_request(
            "exec start needs Detach or a connection upgrade (Upgrade: tcp)",
        ));
    }
    let streams = backend.exec_start(id).await?;
    if start.detach {
        // Nobody reads the output: drain it so the process never blocks on a full pipe.
        let ExecStreams {
            mut stdout,
            mut stderr,
            ..
        } = streams;
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
        });
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        });
        return Ok(StatusCode::OK.into_response());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let tty = streams.tty;
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let client = hyper_util::rt::TokioIo::new(upgraded);
            if let Err(e) = proxy(client, streams).await {
                tracing::debug!("exec stream ended: {e}");
            }
        }
    });
    Ok(super::containers::switching_protocols(tty))
}

/// Client bytes to the process's stdin; its stdout/stderr back (framed unless a terminal).
async fn proxy<C>(client: C, streams: ExecStreams) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_read, client_write) = tokio::io::split(client);
    let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
    let ExecStreams {
        stdin,
        stdout,
        stderr,
        tty,
    } = streams;
    if let Some(mut stdin) = stdin {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut stdin).await;
            let _ = stdin.shutdown().await;
        });
    }
    let pump = |mut reader: Pin<Box<dyn AsyncRead + Send>>, stream: u8| {
        let writer = client_write.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<(), std::io::Error>(());
                }
                let mut writer = writer.lock().await;
                if !tty {
                    writer
                        .write_all(&crate::runtime::attach::output_frame(stream, &buf[..n]))
                        .await?;
                } else {
                    writer.write_all(&buf[..n]).await?;
                }
            }
        }
    };
    let (a, b) = tokio::join!(pump(stdout, 1), pump(stderr, 2));
    let _ = client_write.lock().await.shutdown().await;
    a.and(b)
}
