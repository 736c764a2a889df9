//! `/containers/...`: local containers, Docker's endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::server::Backend;
use crate::types::container::{ContainerCreateRequest, ContainerSummary, WaitCondition};

/// Query flags come as `1`, `true`, `0`, `false`.
fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True"))
}

pub async fn create<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ContainerCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    if request.image.is_empty() {
        return Err(ApiError::bad_request("config has no Image"));
    }
    let created = backend
        .container_create(request, query.get("name").cloned())
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn start<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    backend.container_start(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`. As Docker does, the
/// 200 and its headers go out at once and the body `{"StatusCode":N,"Error":null}` only when
/// the condition holds: the docker CLI waits for these headers before it starts the
/// container (`docker run` asks for `next-exit` or `removed` first). A client that goes away
/// drops the body, which ends the wait.
pub async fn wait<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let condition: WaitCondition = query
        .get("condition")
        .map(|c| c.parse())
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or_default();
    let answer = backend.container_wait(id, condition).await?;
    let body = futures_util::stream::once(async move {
        match answer.await {
            Ok(response) => {
                let mut json = serde_json::to_vec(&response).unwrap_or_default();
                json.push(b'\n');
                Ok(Bytes::from(json))
            }
            // The daemon is stopping: the connection is cut, as Docker's would be.
            Err(_) => Err(std::io::Error::other("the wait was abandoned")),
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

pub async fn stop<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let grace = match query.get("t") {
        Some(t) => Some(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid stop timeout {t:?}")))?,
        ),
        None => None,
    };
    backend.container_stop(id, grace).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    backend
        .container_kill(
            id,
            query
                .get("signal")
                .cloned()
                .unwrap_or_else(|| "KILL".into()),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    backend
        .container_remove(id, flag(&query, "force"), flag(&query, "v"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Vec<ContainerSummary>> {
    Json(backend.container_list(flag(&query, "all")).await)
}

pub async fn inspect<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(backend.container_inspect(id).await?).into_response())
}

/// What `GET /containers/{id}/logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsQuery {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// `None`: all.
    pub tail: Option<usize>,
}

/// Logs in Docker's multiplexed stream: frames of `[stream, 0, 0, 0, len u32 BE] + bytes`.
pub async fn logs<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tail = match query.get("tail").map(String::as_str) {
        None | Some("all") | Some("") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}")))?,
        ),
    };
    let request = LogsQuery {
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr"),
        follow: flag(&query, "follow"),
        timestamps: flag(&query, "timestamps"),
        tail,
    };
    if !request.stdout && !request.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let mut frames = backend.container_logs(id, request).await?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        frames
            .poll_recv(cx)
            .map(|frame| frame.map(Ok::<_, std::io::Error>))
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/vnd.docker.multiplexed-stream",
        )],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One frame of the multiplexed stream (1: stdout, 2: stderr).
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// `POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1` with `Upgrade: tcp`:
/// the connection becomes the container's stdio (Docker's hijacked stream). Output is raw for
/// a terminal, multiplexed frames otherwise; the client's bytes go to the container's stdin,
/// and its half-close closes stdin.
pub async fn attach<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    mut request: axum::extract::Request,
) -> Result<Response, ApiError> {
    if !request.headers().contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request(
            "attach needs a connection upgrade (Upgrade: tcp)",
        ));
    }
    let (stream, tty) = backend.container_attach(id).await?;
    let want = (
        flag(&query, "stdin"),
        flag(&query, "stdout"),
        flag(&query, "stderr"),
    );
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let client = hyper_util::rt::TokioIo::new(upgraded);
        if let Err(e) = proxy_attach(client, stream, tty, want).await {
            tracing::debug!("attach ended: {e}");
        }
    });
    Ok(switching_protocols(tty))
}

/// The answer that hands the connection over to a raw stream (attach, exec): raw bytes for a
/// terminal, multiplexed frames otherwise.
pub fn switching_protocols(tty: bool) -> Response {
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::empty())
        .unwrap_or_default()
}

/// Shuttle bytes between the upgraded client connection and the helper's attach socket.
async fn proxy_attach<C>(
    client: C,
    helper: std::os::unix::net::UnixStream,
    tty: bool,
    (want_stdin, want_stdout, want_stderr): (bool, bool, bool),
) -> std::io::Result<()>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use crate::runtime::attach::{Input, input_frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    helper.set_nonblocking(true)?;
    let helper = tokio::net::UnixStream::from_std(helper)?;
    let (mut helper_read, mut helper_write) = helper.into_split();
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let input = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if !want_stdin {
                if n == 0 {
                    return Ok::<(), std::io::Error>(());
                }
                continue;
            }
            if n == 0 {
                helper_write
                    .write_all(&input_frame(&Input::CloseStdin))
                    .await?;
                return Ok(());
            }
            helper_write
                .write_all(&input_frame(&Input::Stdin(buf[..n].to_vec())))
                .await?;
        }
    };
    let output = async move {
        let mut header = [0u8; 8];
        loop {
            if helper_read.read_exact(&mut header).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let mut payload = vec![0u8; len];
            helper_read.read_exact(&mut payload).await?;
            let wanted = match header[0] {
                2 => want_stderr,
                _ => want_stdout,
            };
            if !wanted {
                continue;
            }
            if !tty {
                client_write.write_all(&header).await?;
            }
            client_write.write_all(&payload).await?;
        }
        client_write.shutdown().await
    };
    // The output ending (the container exited) ends the session; input may end first.
    tokio::pin!(output);
    tokio::select! {
        r = &mut output => r,
        r = input => { r?; output.await }
    }
}

/// `POST /containers/{id}/resize?h=ROWS&w=COLS`: the terminal's new size.
pub async fn resize<B: Backend>(
    State(backend): State<Arc<B>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let number = |k: &str| {
        query
            .get(k)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid or missing {k}")))
    };
    let (rows, cols) = (number("h")?, number("w")?);
    let (mut stream, _) = backend.container_attach(id).await?;
    use std::io::Write;
    stream
        .write_all(&crate::runtime::attach::input_frame(
            &crate::runtime::attach::Input::Resize { rows, cols },
        ))
        .map_err(|e| ApiError::internal(format!("resize: {e}")))?;
    Ok(StatusCode::OK)
}
