//! Agent to agent: what one node's agent asks another's over the cluster's p2p RPC
//! ([`Cluster::ask_agent`]): a task's log lines, and images from its store.
//!
//! ```text
//!  asking node                                   serving node (AgentServer, registered with
//!   ask(node, AgentRequest) ─ Rpc::Agent ─────▶   Cluster::serve_agent by the daemon)
//!     TaskLogs {task, cursor, tail, filter,        container of the task ─▶ logs::read_batch,
//!               wait}                              waiting up to `wait` for a first new line
//!     Image {reference}                            ImageStore::announce
//!     BlobChunk {digest, offset, len}              ImageStore::read_chunk (≤ MAX_CHUNK)
//! ```
//!
//! Messages are bincode through `crate::codec`; the cluster carries them as opaque bytes.
//! Every answer is bounded: a log batch by `max_batch_bytes`, a chunk by `MAX_CHUNK`, a wait
//! by `max_wait` (well inside p2p's request timeout).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::containers::Containers;
use super::logs::{self, Batch, LogCursor, LogFilter};
use super::tasks::TASK_LABEL;
use crate::cluster::{AgentService, Cluster};
use crate::codec;
use crate::image::peer::{BlobSource, PeerFetchOptions, PeerImage};
use crate::image::{Digest, ImageError, ImageStore};
use crate::p2p::codec::ByteBuf;
use crate::types::NodeState;

/// One request of an agent to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AgentRequest {
    TaskLogs(TaskLogsRequest),
    Image {
        reference: String,
    },
    BlobChunk {
        digest: String,
        offset: u64,
        len: u32,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AgentReply {
    TaskLogs(TaskLogs),
    Image(Option<PeerImage>),
    BlobChunk(ByteBuf),
}

/// Log lines of one task's container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLogsRequest {
    pub task: String,
    /// Where the last batch ended; `None` for the first read.
    pub cursor: Option<LogCursor>,
    /// First read only: the last `tail` lines.
    pub tail: Option<u64>,
    pub filter: LogFilter,
    /// With nothing new, wait up to this long for a line (follow).
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLogs {
    /// The node has a container for the task.
    pub found: bool,
    /// The container still runs: more may come.
    pub running: bool,
    pub batch: Batch,
}

/// Bounds on what the server does for one request.
#[derive(Debug, Clone, Copy)]
pub struct AgentLimits {
    pub max_batch_bytes: usize,
    pub max_wait: Duration,
    /// How often a waiting log read looks again.
    pub poll: Duration,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_batch_bytes: 1 << 20,
            max_wait: Duration::from_secs(2),
            poll: Duration::from_millis(100),
        }
    }
}

/// Answers other agents' requests on this node.
#[derive(Clone)]
pub struct AgentServer {
    pub containers: Arc<Containers>,
    pub images: Arc<ImageStore>,
    pub limits: AgentLimits,
}

impl AgentService for AgentServer {
    fn serve(&self, from: String, request: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let this = self.clone();
        async move {
            let request: AgentRequest =
                codec::decode(&request).map_err(|e| format!("undecodable agent request: {e}"))?;
            tracing::trace!(%from, ?request, "agent request");
            let reply = this.answer(request).await?;
            codec::encode(&reply).map_err(|e| e.to_string())
        }
        .boxed()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("agent task failed: {e}"))?
}

impl AgentServer {
    async fn answer(&self, request: AgentRequest) -> Result<AgentReply, String> {
        match request {
            AgentRequest::TaskLogs(r) => self.task_logs(r).await.map(AgentReply::TaskLogs),
            AgentRequest::Image { reference } => {
                let images = self.images.clone();
                blocking(move || match images.announce(&reference) {
                    Ok(image) => Ok(Some(image)),
                    Err(ImageError::NotFound(_)) | Err(ImageError::InvalidReference { .. }) => {
                        Ok(None)
                    }
                    Err(e) => Err(e.to_string()),
                })
                .await
                .map(AgentReply::Image)
            }
            AgentRequest::BlobChunk {
                digest,
                offset,
                len,
            } => {
                let digest: Digest = digest
                    .parse()
                    .map_err(|_| format!("invalid digest {digest:?}"))?;
                let images = self.images.clone();
                blocking(move || {
                    images
                        .read_chunk(&digest, offset, len)
                        .map_err(|e| e.to_string())
                })
                .await
                .map(|bytes| AgentReply::BlobChunk(ByteBuf(bytes)))
            }
        }
    }

    async fn task_logs(&self, request: TaskLogsRequest) -> Result<TaskLogs, String> {
        let containers = self.containers.clone();
        let task = request.task.clone();
        let found = blocking(move || {
            let Some(c) = containers
                .list(true)
                .into_iter()
                .find(|c| c.labels.get(TASK_LABEL) == Some(&task))
            else {
                return Ok(None);
            };
            let (record, path) = containers.log_path(&c.id).map_err(|e| e.to_string())?;
            Ok(Some((record.id, path)))
        })
        .await?;
        let Some((container, path)) = found else {
            return Ok(TaskLogs::default());
        };
        let max_files = crate::runtime::LogConfig::default().max_files;
        let wait = Duration::from_millis(request.wait_ms).min(self.limits.max_wait);
        let deadline = tokio::time::Instant::now() + wait;
        let (mut cursor, mut tail) = (request.cursor, request.tail.map(|n| n as usize));
        loop {
            let running = {
                let containers = self.containers.clone();
                let id = container.clone();
                blocking(move || {
                    Ok(containers.runtime().state(&id).is_ok_and(|s| {
                        matches!(
                            s.status,
                            crate::runtime::Status::Running | crate::runtime::Status::Created
                        )
                    }))
                })
                .await?
            };
            let (path, filter, max) = (
                path.clone(),
                request.filter.clone(),
                self.limits.max_batch_bytes,
            );
            let batch = blocking(move || {
                Ok(logs::read_batch(
                    &path, max_files, cursor, tail, &filter, max,
                ))
            })
            .await?;
            let now = tokio::time::Instant::now();
            if !batch.lines.is_empty() || batch.more || !running || now >= deadline {
                return Ok(TaskLogs {
                    found: true,
                    running,
                    batch,
                });
            }
            (cursor, tail) = (Some(batch.cursor), None);
            tokio::time::sleep(self.limits.poll.min(deadline - now)).await;
        }
    }
}

// ---- the asking side -----------------------------------------------------------------------

/// Sends `request` to the agent on `node` (this node's own is called directly).
pub async fn ask(
    cluster: &Cluster,
    node: &str,
    request: &AgentRequest,
) -> Result<AgentReply, String> {
    let bytes = codec::encode(request).map_err(|e| e.to_string())?;
    let reply = cluster
        .ask_agent(node, bytes)
        .await
        .map_err(|e| e.to_string())?;
    codec::decode(&reply).map_err(|e| format!("undecodable agent reply: {e}"))
}

/// Blobs of the store of another node, chunk by chunk over p2p.
pub struct PeerBlobs<'a> {
    pub cluster: &'a Cluster,
    pub node: String,
}

impl BlobSource for PeerBlobs<'_> {
    async fn read_chunk(&self, digest: &Digest, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let request = AgentRequest::BlobChunk {
            digest: digest.to_string(),
            offset,
            len,
        };
        match ask(self.cluster, &self.node, &request).await? {
            AgentReply::BlobChunk(bytes) => Ok(bytes.0),
            _ => Err("unexpected reply to a blob request".into()),
        }
    }
}

/// Why no other node could provide an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFetchError {
    /// No Ready node announced it.
    NobodyHasIt,
    /// Some did, and every fetch failed: one reason per node.
    Failed(Vec<String>),
}

/// Brings `reference` into `images` from another Ready member that has it, verified (see
/// `image::peer`). Tries the nodes that announce it one after another. Returns the hostname
/// of the node it came from.
pub async fn fetch_image(
    cluster: &Cluster,
    images: &ImageStore,
    reference: &str,
    options: PeerFetchOptions,
) -> Result<String, PeerFetchError> {
    let state = cluster.state();
    let me = cluster.node_id();
    let mut failures = Vec::new();
    let mut nodes: Vec<_> = state
        .nodes
        .values()
        .filter(|n| n.id != me && n.status.state == NodeState::Ready)
        .collect();
    nodes.sort_by(|a, b| a.description.hostname.cmp(&b.description.hostname));
    for node in nodes {
        let name = if node.description.hostname.is_empty() {
            node.id.clone()
        } else {
            node.description.hostname.clone()
        };
        let request = AgentRequest::Image {
            reference: reference.to_owned(),
        };
        let announced = match ask(cluster, &node.id, &request).await {
            Ok(AgentReply::Image(Some(image))) => image,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(node = %name, error = %e, "cannot ask a node for an image");
                continue;
            }
        };
        let source = PeerBlobs {
            cluster,
            node: node.id.clone(),
        };
        match images
            .fetch_from_peer(reference, &announced, &source, options)
            .await
        {
            Ok(id) => {
                tracing::info!(%reference, node = %name, image = %id, "image fetched from a peer");
                return Ok(name);
            }
            Err(e) => {
                tracing::warn!(%reference, node = %name, error = %e, "image fetch from a peer failed");
                failures.push(format!("from node {name}: {e}"));
            }
        }
    }
    if failures.is_empty() {
        Err(PeerFetchError::NobodyHasIt)
    } else {
        Err(PeerFetchError::Failed(failures))
    }
}
