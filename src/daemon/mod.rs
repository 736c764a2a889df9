//! `swarm daemon`: one per host. Wires the planes together and serves the API.
//!
//! ```text
//!  DaemonConfig ─▶ run(): data dir, exec root, socket (0660) ─▶ api::serve(Engine)
//!                   SIGTERM / SIGINT ─▶ CancellationToken ─▶ graceful stop, socket removed
//! ```
//!
//! Today the daemon answers the system endpoints; the cluster, image store and local
//! containers plug into [`Engine`] as their issues land.

mod exec;
mod logs;
mod networks;
mod service_logs;
mod services;
pub mod swarm;
mod volumes;
mod wait;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::agent::containers::{ContainerError, Containers};
use crate::api::containers::LogsQuery;
use crate::api::{self, ApiError, Backend};
use crate::image::{ImageError, ImageStore, RemoveAction};
use crate::types::container::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerInspect, ContainerSummary,
    ContainerWaitResponse, WaitCondition,
};
use crate::types::system::{ComponentVersion, Info, Platform, Version};

/// Default data directory (persistent state).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/swarm";
/// Default exec root (volatile state: container runtime state, sockets).
pub const DEFAULT_EXEC_ROOT: &str = "/run/swarm";

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub exec_root: PathBuf,
    pub socket: PathBuf,
    /// The cluster plane: p2p addresses and timing.
    pub swarm: swarm::SwarmSettings,
    /// Docker's `certs.d` for registries: `<dir>/<host:port>/ca.crt` and client certificates.
    pub registry_certs_dir: PathBuf,
}

/// What the daemon knows and does; the API's [`Backend`].
pub struct Engine {
    config: DaemonConfig,
    containers: Arc<Containers>,
    images: Arc<ImageStore>,
    execs: Arc<exec::Execs>,
    /// This binary: the exec helper.
    helper: PathBuf,
    hostname: String,
    swarm: Arc<swarm::SwarmPlane>,
    /// Ends container waits (and `--rm` watchers) when the daemon stops, so that no open
    /// wait keeps the graceful shutdown waiting.
    shutdown: CancellationToken,
    waits: crate::agent::wait::WaitSettings,
}

impl Engine {
    /// `shutdown` also stops the cluster member.
    pub fn new(config: DaemonConfig, shutdown: CancellationToken) -> Result<Engine> {
        let runtime = crate::runtime::Runtime::new(config.exec_root.join("runtime"))?;
        let images = Arc::new(
            ImageStore::open(config.data_dir.join("images")).context("open the image store")?,
        );
        let containers_dir = config.data_dir.join("containers");
        create_private_dir(&containers_dir, 0o700)?;
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let volumes = crate::agent::volumes::Volumes::open(config.data_dir.join("volumes"))
            .context("open the volumes directory")?;
        let containers = Arc::new(Containers::new(
            runtime,
            containers_dir,
            Box::new(images.clone()),
            Arc::new(volumes),
        ));
        let duties = {
            let (containers, images) = (containers.clone(), images.clone());
            let pull = crate::image::registry::PullOptions {
                certs_dir: config.registry_certs_dir.clone(),
                ..Default::default()
            };
            Box::new(
                move |cluster: &crate::cluster::Cluster, stop: CancellationToken| {
                    cluster.serve_agent(Arc::new(crate::agent::peer::AgentServer {
                        containers: containers.clone(),
                        images: images.clone(),
                        limits: Default::default(),
                    }));
                    let runner = crate::agent::tasks::TaskRunner {
                        cluster: cluster.clone(),
                        containers: containers.clone(),
                        images: images.clone(),
                        pull: pull.clone(),
                        peer_fetch: Default::default(),
                    };
                    tokio::spawn(runner.run(stop.clone()));
                    // Every member runs the loop; it acts only while this node leads.
                    tokio::spawn(crate::orchestrator::run(
                        cluster.clone(),
                        crate::orchestrator::OrchestratorConfig::default(),
                        stop,
                    ));
                },
            )
        };
        let swarm = Arc::new(
            swarm::SwarmPlane::new(
                swarm::swarm_dir(&config.data_dir),
                config.swarm.clone(),
                swarm::describe_host(&hostname),
                shutdown.clone(),
            )
            .with_duties(duties)
            .with_cleanup({
                let containers = containers.clone();
                Arc::new(move || crate::agent::tasks::remove_task_containers(&containers))
            }),
        );
        Ok(Engine {
            swarm,
            containers,
            images,
            execs: Arc::new(exec::Execs::default()),
            helper: std::env::current_exe().context("find our own binary")?,
            config,
            hostname,
            shutdown,
            waits: Default::default(),
        })
    }

    /// Run a blocking container operation off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Containers) -> Result<T, ContainerError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let containers = self.containers.clone();
        tokio::task::spawn_blocking(move || op(&containers))
            .await
            .map_err(|e| ApiError::internal(format!("container task failed: {e}")))?
            .map_err(container_error)
    }

    /// Run a blocking image-store operation off the async threads.
    async fn image_op<T: Send + 'static>(
        &self,
        op: impl FnOnce(&ImageStore, &Containers) -> Result<T, ImageError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (images, containers) = (self.images.clone(), self.containers.clone());
        tokio::task::spawn_blocking(move || op(&images, &containers))
            .await
            .map_err(|e| ApiError::internal(format!("image task failed: {e}")))?
            .map_err(image_error)
    }
}

/// Docker's status codes for image-store errors.
fn image_error(e: ImageError) -> ApiError {
    let message = e.to_string();
    match e {
        ImageError::NotFound(_) => ApiError::not_found(message),
        ImageError::InUse { .. } | ImageError::MultipleNames { .. } => ApiError::conflict(message),
        ImageError::Io { .. } => ApiError::internal(message),
        _ => ApiError::bad_request(message),
    }
}

/// Docker's status codes for container errors.
fn container_error(e: ContainerError) -> ApiError {
    use crate::runtime::RuntimeError;
    let message = e.to_string();
    match e {
        ContainerError::NotFound(_) | ContainerError::NoSuchImage(_) => {
            ApiError::not_found(message)
        }
        ContainerError::Image(_) => ApiError::bad_request(message),
        ContainerError::NameInUse(_)
        | ContainerError::Running(_)
        | ContainerError::NotRunning(_) => ApiError::conflict(message),
        ContainerError::BadName(_) | ContainerError::Ambiguous(_) | ContainerError::Invalid(_) => {
            ApiError::bad_request(message)
        }
        ContainerError::Runtime(RuntimeError::InvalidSpec(_))
        | ContainerError::Runtime(RuntimeError::InvalidState { .. }) => ApiError::conflict(message),
        ContainerError::Runtime(RuntimeError::NotFound(_)) => ApiError::not_found(message),
        ContainerError::Volume(e) => volumes::volume_error(e),
        _ => ApiError::internal(message),
    }
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Backend for Engine {
    fn swarm_header(&self) -> String {
        self.swarm.header()
    }

    fn version(&self) -> Version {
        let kernel = kernel_version();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let details = [
            ("ApiVersion", api::API_VERSION),
            ("MinAPIVersion", api::MIN_API_VERSION),
            ("Os", "linux"),
            ("Arch", arch),
            ("KernelVersion", kernel.as_str()),
            ("Experimental", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Version {
            platform: Platform {
                name: "swarm".into(),
            },
            components: vec![ComponentVersion {
                name: "Engine".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                details,
            }],
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: api::API_VERSION.into(),
            min_api_version: api::MIN_API_VERSION.into(),
            git_commit: String::new(),
            go_version: String::new(),
            os: "linux".into(),
            arch: arch.into(),
            kernel_version: kernel,
            build_time: String::new(),
        }
    }

    async fn info(&self) -> Info {
        let (total, running) = self.blocking(|c| Ok(c.count())).await.unwrap_or((0, 0));
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        Info {
            id: String::new(),
            containers: total,
            containers_running: running,
            containers_paused: 0,
            containers_stopped: total - running,
            images: 0,
            driver: "overlayfs".into(),
            name: self.hostname.clone(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            operating_system: os_name(),
            os_type: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
            mem_total,
            kernel_version: kernel_version(),
            docker_root_dir: self.config.data_dir.display().to_string(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: if crate::runtime::cgroup_mode_is_v2() {
                "2".into()
            } else {
                "1".into()
            },
            swarm: self.swarm.info(),
        }
    }

    async fn image_list(&self) -> Result<serde_json::Value, ApiError> {
        let list = self.image_op(|images, _| images.list()).await?;
        Ok(serde_json::to_value(list).unwrap_or_default())
    }

    async fn image_inspect(&self, name: String) -> Result<serde_json::Value, ApiError> {
        let inspect = self
            .image_op(move |images, _| images.inspect(&name))
            .await?;
        Ok(serde_json::to_value(inspect).unwrap_or_default())
    }

    async fn image_remove(&self, name: String, force: bool) -> Result<serde_json::Value, ApiError> {
        let actions = self
            .image_op(move |images, containers| {
                containers.with_images_in_use(|in_use| {
                    images.remove(&name, force, &|id| in_use(&id.to_string()))
                })
            })
            .await?;
        Ok(serde_json::Value::Array(
            actions
                .into_iter()
                .map(|a| match a {
                    RemoveAction::Untagged(n) => serde_json::json!({ "Untagged": n }),
                    RemoveAction::Deleted(d) => serde_json::json!({ "Deleted": d.to_string() }),
                })
                .collect(),
        ))
    }

    async fn image_tag(&self, name: String, target: String) -> Result<(), ApiError> {
        self.image_op(move |images, _| images.tag(&name, &target))
            .await
    }

    async fn image_load(
        &self,
        archive: Box<dyn std::io::Read + Send>,
    ) -> Result<Vec<String>, ApiError> {
        let loaded = self.image_op(move |images, _| images.load(archive)).await?;
        Ok(loaded
            .into_iter()
            .flat_map(|image| {
                if image.names.is_empty() {
                    vec![format!("Loaded image ID: {}", image.id)]
                } else {
                    image
                        .names
                        .iter()
                        .map(|n| format!("Loaded image: {}", crate::image::reference::familiar(n)))
                        .collect()
                }
            })
            .collect())
    }

    async fn image_import(
        &self,
        rootfs: Box<dyn std::io::Read + Send>,
        name: Option<String>,
        changes: Vec<String>,
    ) -> Result<String, ApiError> {
        let id = self
            .image_op(move |images, _| images.import(rootfs, name.as_deref(), &changes))
            .await?;
        Ok(id.to_string())
    }

    async fn image_save(
        &self,
        names: Vec<String>,
    ) -> Result<tokio::sync::mpsc::Receiver<axum::body::Bytes>, ApiError> {
        // Resolve first, so an unknown name is a 404 and not a broken stream.
        let check = names.clone();
        self.image_op(move |images, _| {
            check.iter().try_for_each(|n| images.resolve(n).map(|_| ()))
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            let writer = ChannelWriter { tx };
            if let Err(e) = images.save(&names, writer) {
                tracing::warn!("image save: {e}");
            }
        });
        Ok(rx)
    }

    async fn image_pull(
        &self,
        reference: String,
        insecure: bool,
        credentials: Option<(String, String)>,
    ) -> Result<tokio::sync::mpsc::Receiver<axum::body::Bytes>, ApiError> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let line = |v: serde_json::Value| axum::body::Bytes::from(format!("{v}\n"));
        let progress_tx = tx.clone();
        let progress: crate::image::registry::Progress = Arc::new(
            move |digest: &crate::image::Digest, done: u64, total: u64| {
                let id: String = digest.hex().chars().take(12).collect();
                let status = if done >= total {
                    "Download complete"
                } else {
                    "Downloading"
                };
                let _ = progress_tx.try_send(line(serde_json::json!({
                    "status": status, "id": id,
                    "progressDetail": { "current": done, "total": total },
                })));
            },
        );
        let options = crate::image::registry::PullOptions {
            insecure,
            credentials,
            certs_dir: self.config.registry_certs_dir.clone(),
            progress: Some(progress),
            ..Default::default()
        };
        let images = self.images.clone();
        tokio::spawn(async move {
            let _ = tx
                .send(line(
                    serde_json::json!({ "status": format!("Pulling from {reference}") }),
                ))
                .await;
            let last = match images.pull(&reference, &options).await {
                Ok(pulled) => serde_json::json!({
                    "status": format!(
                        "Digest: {}\nStatus: Downloaded image for {}",
                        pulled.reference_digest,
                        crate::image::reference::familiar(&pulled.name)
                    ),
                    "id": pulled.id.to_string(),
                }),
                Err(e) => serde_json::json!({
                    "errorDetail": { "message": e.to_string() },
                    "error": e.to_string(),
                }),
            };
            let _ = tx.send(line(last)).await;
        });
        Ok(rx)
    }

    async fn image_push(
        &self,
        reference: String,
        insecure: bool,
        credentials: Option<(String, String)>,
    ) -> Result<tokio::sync::mpsc::Receiver<axum::body::Bytes>, ApiError> {
        // An unknown image is a 404 before any streaming starts.
        let check = reference.clone();
        self.image_op(move |images, _| images.resolve(&check).map(|_| ()))
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let line = |v: serde_json::Value| axum::body::Bytes::from(format!("{v}\n"));
        let options = crate::image::registry::PushOptions {
            insecure,
            credentials,
            certs_dir: self.config.registry_certs_dir.clone(),
            ..Default::default()
        };
        let images = self.images.clone();
        tokio::spawn(async move {
            let last = match images.push(&reference, &options).await {
                Ok(pushed) => serde_json::json!({
                    "status": format!(
                        "{reference}: digest: {} (uploaded {}, already there {})",
                        pushed.manifest_digest,
                        pushed.uploaded.len(),
                        pushed.skipped.len()
                    ),
                }),
                Err(e) => serde_json::json!({
                    "errorDetail": { "message": e.to_string() },
                    "error": e.to_string(),
                }),
            };
            let _ = tx.send(line(last)).await;
        });
        Ok(rx)
    }

    async fn registry_login(
        &self,
        server: String,
        credentials: (String, String),
        insecure: bool,
    ) -> Result<(), ApiError> {
        let registry = crate::image::reference::registry_of_server(&server).map_err(image_error)?;
        let options = crate::image::registry::LoginOptions {
            insecure,
            certs_dir: self.config.registry_certs_dir.clone(),
            ..Default::default()
        };
        crate::image::registry::login(&registry, credentials, &options)
            .await
            .map_err(|e| match e {
                ImageError::Unauthorized { .. } => {
                    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, e.to_string())
                }
                e => image_error(e),
            })
    }

    async fn image_prune(&self) -> Result<serde_json::Value, ApiError> {
        let report = self
            .image_op(|images, containers| {
                containers.with_images_in_use(|in_use| images.prune(&|id| in_use(&id.to_string())))
            })
            .await?;
        let deleted: Vec<serde_json::Value> = report
            .images_deleted
            .iter()
            .map(|id| serde_json::json!({ "Deleted": id }))
            .collect();
        Ok(
            serde_json::json!({ "ImagesDeleted": deleted, "SpaceReclaimed": report.bytes_reclaimed }),
        )
    }

    async fn container_create(
        &self,
        request: ContainerCreateRequest,
        name: Option<String>,
    ) -> Result<ContainerCreateResponse, ApiError> {
        let record = self
            .blocking(move |c| c.create(request, name.as_deref()))
            .await?;
        Ok(ContainerCreateResponse {
            id: record.id,
            warnings: Vec::new(),
        })
    }

    async fn container_start(&self, id: String) -> Result<(), ApiError> {
        let record = self
            .blocking(move |c| c.start(&id).and_then(|()| c.find(&id)))
            .await?;
        if record.request.host_config.auto_remove {
            // --rm: remove the container once it exits (Docker's AutoRemove).
            wait::auto_remove(
                self.containers.clone(),
                record.id,
                self.waits,
                self.shutdown.clone(),
            );
        }
        Ok(())
    }

    async fn container_wait(
        &self,
        id: String,
        condition: WaitCondition,
    ) -> Result<tokio::sync::oneshot::Receiver<ContainerWaitResponse>, ApiError> {
        // Registered before the headers go out: the docker CLI starts the container then.
        let registered = self
            .blocking(move |c| {
                let record = c.find(&id)?;
                crate::agent::wait::begin(c, &record.id, condition)
            })
            .await?;
        Ok(wait::answer(
            self.containers.clone(),
            registered,
            self.waits,
            self.shutdown.clone(),
        ))
    }

    async fn container_stop(&self, id: String, grace: Option<u64>) -> Result<(), ApiError> {
        self.blocking(move |c| c.stop(&id, grace.map(std::time::Duration::from_secs)))
            .await
    }

    async fn container_kill(&self, id: String, signal: String) -> Result<(), ApiError> {
        let signal = crate::agent::containers::parse_signal(&signal)
            .ok_or_else(|| ApiError::bad_request(format!("invalid signal: {signal}")))?;
        self.blocking(move |c| c.kill(&id, signal)).await
    }

    async fn container_remove(
        &self,
        id: String,
        force: bool,
        volumes: bool,
    ) -> Result<(), ApiError> {
        self.blocking(move |c| c.remove_with(&id, force, volumes))
            .await
    }

    async fn volume_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<crate::types::volume::VolumeListResponse, ApiError> {
        volumes::list(&self.containers, filters).await
    }

    async fn volume_create(
        &self,
        request: crate::types::volume::VolumeCreateRequest,
    ) -> Result<crate::types::volume::Volume, ApiError> {
        volumes::create(&self.containers, request).await
    }

    async fn volume_inspect(&self, name: String) -> Result<crate::types::volume::Volume, ApiError> {
        volumes::inspect(&self.containers, name).await
    }

    async fn volume_remove(&self, name: String, force: bool) -> Result<(), ApiError> {
        volumes::remove(&self.containers, name, force).await
    }

    async fn volume_prune(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<crate::types::volume::VolumePruneResponse, ApiError> {
        volumes::prune(&self.containers, filters).await
    }

    async fn container_list(&self, all: bool) -> Vec<ContainerSummary> {
        self.blocking(move |c| Ok(c.list(all)))
            .await
            .unwrap_or_default()
    }

    async fn container_inspect(&self, id: String) -> Result<ContainerInspect, ApiError> {
        self.blocking(move |c| c.inspect(&id)).await
    }

    async fn container_attach(
        &self,
        id: String,
    ) -> Result<(std::os::unix::net::UnixStream, bool), ApiError> {
        self.blocking(move |c| c.attach(&id)).await
    }

    async fn exec_create(
        &self,
        container: String,
        request: crate::types::container::ExecCreateRequest,
    ) -> Result<crate::types::container::IdResponse, ApiError> {
        let (record, spec) = self
            .blocking(move |c| {
                let record = c.find(&container)?;
                let state = c.runtime().state(&record.id)?;
                if state.status != crate::runtime::Status::Running {
                    return Err(ContainerError::NotRunning(record.id));
                }
                let spec = c.runtime().spec(&record.id)?;
                Ok((record, spec))
            })
            .await?;
        let base = spec.process().clone().unwrap_or_default();
        let user = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(crate::runtime::process::USER_ANNOTATION).cloned());
        let id = self.execs.create(&record.id, base, user, &request)?;
        Ok(crate::types::container::IdResponse { id })
    }

    async fn exec_start(&self, id: String) -> Result<crate::api::exec::ExecStreams, ApiError> {
        let io = self
            .execs
            .start(&id, &self.helper, &self.config.exec_root.join("runtime"))?;
        Ok(crate::api::exec::ExecStreams {
            stdin: io
                .stdin
                .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>),
            stdout: Box::pin(io.stdout),
            stderr: Box::pin(io.stderr),
            tty: io.tty,
        })
    }

    async fn exec_inspect(
        &self,
        id: String,
    ) -> Result<crate::types::container::ExecInspect, ApiError> {
        self.execs.inspect(&id)
    }

    async fn swarm_init(&self, request: crate::types::InitRequest) -> Result<String, ApiError> {
        self.swarm.init(request).await
    }

    async fn swarm_join(&self, request: crate::types::JoinRequest) -> Result<(), ApiError> {
        self.swarm.join(request).await
    }

    async fn swarm_leave(&self, force: bool) -> Result<(), ApiError> {
        self.swarm.leave(force).await
    }

    async fn swarm_inspect(&self, local: bool) -> Result<crate::types::Swarm, ApiError> {
        self.swarm.inspect(local).await
    }

    async fn swarm_update(
        &self,
        version: u64,
        spec: crate::types::SwarmSpec,
        rotate: crate::types::swarm::Rotate,
    ) -> Result<(), ApiError> {
        self.swarm.update(version, spec, rotate).await
    }

    async fn node_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
        local: bool,
    ) -> Result<Vec<crate::types::Node>, ApiError> {
        self.swarm.nodes(&filters, local).await
    }

    async fn node_inspect(&self, id: String, local: bool) -> Result<crate::types::Node, ApiError> {
        self.swarm.node(&id, local).await
    }

    async fn node_update(
        &self,
        id: String,
        version: u64,
        spec: crate::types::NodeSpec,
    ) -> Result<(), ApiError> {
        self.swarm.node_update(&id, version, spec).await
    }

    async fn node_remove(&self, id: String, force: bool) -> Result<(), ApiError> {
        self.swarm.node_remove(&id, force).await
    }

    async fn service_create(&self, spec: serde_json::Value) -> Result<serde_json::Value, ApiError> {
        self.swarm.service_create(spec).await
    }

    async fn service_update(
        &self,
        id: String,
        version: u64,
        spec: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        self.swarm.service_update(&id, version, spec).await
    }

    async fn service_remove(&self, id: String) -> Result<(), ApiError> {
        self.swarm.service_remove(&id).await
    }

    async fn service_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
        status: bool,
        local: bool,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        self.swarm.services(&filters, status, local).await
    }

    async fn service_inspect(
        &self,
        id: String,
        local: bool,
    ) -> Result<serde_json::Value, ApiError> {
        self.swarm.service(&id, local).await
    }

    async fn task_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
        local: bool,
    ) -> Result<Vec<crate::types::service::Task>, ApiError> {
        self.swarm.tasks(&filters, local).await
    }

    async fn task_inspect(
        &self,
        id: String,
        local: bool,
    ) -> Result<crate::types::service::Task, ApiError> {
        self.swarm.task(&id, local).await
    }

    async fn network_create(
        &self,
        request: crate::types::network::NetworkCreateRequest,
    ) -> Result<serde_json::Value, ApiError> {
        self.swarm.network_create(request).await
    }

    async fn network_list(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<crate::types::network::NetworkResource>, ApiError> {
        self.swarm.networks(&filters).await
    }

    async fn network_inspect(
        &self,
        id: String,
    ) -> Result<crate::types::network::NetworkResource, ApiError> {
        self.swarm.network(&id).await
    }

    async fn network_remove(&self, id: String) -> Result<(), ApiError> {
        self.swarm.network_remove(&id).await
    }

    async fn network_prune(
        &self,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<serde_json::Value, ApiError> {
        self.swarm.network_prune(&filters).await
    }

    async fn service_logs(
        &self,
        target: crate::api::services::LogsTarget,
        query: crate::api::services::ServiceLogsQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<axum::body::Bytes>, ApiError> {
        self.swarm.service_logs(target, query).await
    }

    async fn container_logs(
        &self,
        id: String,
        query: LogsQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<axum::body::Bytes>, ApiError> {
        let (record, path) = self.blocking(move |c| c.log_path(&id)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let containers = self.containers.clone();
        tokio::task::spawn_blocking(move || {
            logs::stream(&path, &query, &tx, || {
                containers
                    .runtime()
                    .state(&record.id)
                    .map(|s| {
                        s.status == crate::runtime::Status::Running
                            || s.status == crate::runtime::Status::Created
                    })
                    .unwrap_or(false)
            })
        });
        Ok(rx)
    }
}

/// A `Write` that sends what is written as body chunks (an archive being saved).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<axum::body::Bytes>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(axum::body::Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(config: DaemonConfig) -> Result<()> {
    crate::runtime::sys::tune_malloc(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("swarm-daemon")
        // Container operations block (fork, mounts, fsync); 64 at once is plenty on any host
        // and bounds the memory a burst of them leaves behind.
        .max_blocking_threads(64)
        // Idle blocking threads go after 1 s instead of 10: a woken thread is the one that
        // waited longest, so the daemon's steady trickle of store and runner work (tens a
        // second) kept all 64 of a burst alive for good, each with its stack and its
        // allocator cache (≈ 8 MiB after a 200-task service came and went).
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
        .context("start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: DaemonConfig) -> Result<()> {
    create_private_dir(&config.data_dir, 0o700)?;
    create_private_dir(&config.exec_root, 0o700)?;
    let listener = bind_socket(&config.socket).await?;
    let shutdown = CancellationToken::new();
    let engine = Arc::new(Engine::new(config.clone(), shutdown.clone())?);
    engine.swarm.resume().await;
    // Health checks of every container with one, task or local, swarm or not.
    tokio::spawn(
        crate::agent::health::HealthMonitor {
            containers: engine.containers.clone(),
            helper: engine.helper.clone(),
            timing: Default::default(),
        }
        .run(shutdown.clone()),
    );
    tokio::spawn(release_memory_periodically(shutdown.clone()));
    wait::resume_auto_remove(
        engine.containers.clone(),
        engine.waits,
        engine.shutdown.clone(),
    )
    .await;

    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stopping");
        signals.cancel();
    });
    tracing::info!(socket = %config.socket.display(), "API listening");
    let served = api::serve(listener, engine.clone(), shutdown).await;
    engine.swarm.stop().await;
    let _ = std::fs::remove_file(&config.socket);
    served.context("serve the API")
}

/// Every 10 s, give the memory freed inside the heaps back to the kernel (`malloc_trim`):
/// glibc returns only the free top of a heap by itself, so after a burst (a 200-task service
/// created and removed) the daemon kept ~25 MiB it no longer used. A trim walks the heaps in
/// about a millisecond.
async fn release_memory_periodically(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _ = tokio::task::spawn_blocking(crate::runtime::sys::release_free_memory).await;
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn create_private_dir(path: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("create {}", path.display()))
}

/// Bind the API socket, mode 0660 in a directory only root can enter. A socket left by a
/// daemon that died is replaced; one a live daemon answers on is not.
async fn bind_socket(path: &Path) -> Result<UnixListener> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent, 0o750)?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}
