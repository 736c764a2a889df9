//! Local containers (`swarm run`, `docker run`-shaped): names and ids, their files on disk,
//! and their lifecycle through the runtime. One `Containers` per daemon; its methods are
//! blocking (they wait on the runtime) and the daemon calls them off the async threads.
//!
//! ```text
//!  <data>/containers/<id>/record.json   ContainerRecord (name, image, the create request)
//!                         hosts hostname resolv.conf   bind-mounted read-only
//!                         upper/ work/                 the overlay's writable layer
//!  <exec-root>/runtime/<id>/                           the runtime's state (helper, log)
//! ```
//!
//! Volumes a container names (`-v NAME:/dst`, `volume` mounts) are made on first use and
//! mounted through [`Volumes`]; the record keeps their names, which is how a volume's users
//! are found.
//!
//! A container is the runtime container of the same id; the record adds what Docker shows.
//!
//! Removals are announced on a broadcast channel ([`Containers::subscribe`]) with the exit
//! code the container ended with, so waiters (`docker run --rm`, `wait?condition=removed`)
//! learn both at once; exits are seen through the init's pidfd ([`Containers::exit_fd`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::health::{self, HealthTarget, Probe};
use super::spec::{ContainerFiles, ImageRunConfig, SpecError, container_spec, volume_mounts};
use super::volumes::{VolumeError, VolumeUsers, Volumes};
use crate::runtime::{self, CreateOptions, RootfsSource, Runtime, RuntimeError, StdioMode};
use crate::types::Timestamp;
use crate::types::container::{
    ContainerCreateRequest, ContainerInspect, ContainerState, ContainerSummary, Health,
    HealthConfig, HealthStatus,
};
use crate::types::volume::{ANONYMOUS_LABEL, VolumeCreateRequest};

/// Where an image's layers and config come from (the image store implements it).
pub trait ImageSource: Send + Sync {
    /// Resolve `reference` to its id, its layer directories (topmost first) and its config.
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ContainerError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub id: String,
    pub layers: Vec<PathBuf>,
    pub config: ImageRunConfig,
}

impl<T: ImageSource> ImageSource for std::sync::Arc<T> {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ContainerError> {
        (**self).resolve(reference)
    }
}

/// Images come from the node's image store: resolved by name, id or unique id prefix, their
/// layers unpacked (once) into snapshot directories for the overlay.
impl ImageSource for crate::image::ImageStore {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ContainerError> {
        use crate::image::ImageError;
        let image = crate::image::ImageStore::resolve(self, reference).map_err(|e| match e {
            ImageError::NotFound(_) => ContainerError::NoSuchImage(reference.to_string()),
            other => ContainerError::Image(other.to_string()),
        })?;
        let id = image.id.to_string();
        let layers = self
            .prepare_rootfs(&id)
            .map_err(|e| ContainerError::Image(e.to_string()))?;
        let config = image.config.config.unwrap_or_default();
        Ok(ResolvedImage {
            id,
            layers,
            config: ImageRunConfig {
                entrypoint: config.entrypoint.unwrap_or_default(),
                cmd: config.cmd.unwrap_or_default(),
                env: config.env.unwrap_or_default(),
                working_dir: config.working_dir.unwrap_or_default(),
                user: config.user.unwrap_or_default(),
                healthcheck: config.healthcheck.map(|h| HealthConfig {
                    test: h.test.unwrap_or_default(),
                    interval: h.interval.unwrap_or(0),
                    timeout: h.timeout.unwrap_or(0),
                    start_period: h.start_period.unwrap_or(0),
                    start_interval: h.start_interval.unwrap_or(0),
                    retries: h.retries.unwrap_or(0),
                }),
            },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("image: {0}")]
    Image(String),
    #[error("Conflict. The container name \"/{0}\" is already in use")]
    NameInUse(String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("multiple containers match {0:?}: use more of the id")]
    Ambiguous(String),
    #[error("{0}")]
    Invalid(#[from] SpecError),
    #[error(
        "You cannot remove a running container {0}. Stop the container before attempting removal or force remove"
    )]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let context = context.into();
    move |source| ContainerError::Io { context, source }
}

/// How long `rm -f` waits for a SIGKILLed container to be reaped before deleting it anyway.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// What Docker shows that the runtime does not keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub request: ContainerCreateRequest,
    pub args: Vec<String>,
}

/// What happened to a container, for those waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    /// Its record and runtime state are gone; it had ended with `exit_code`.
    Removed { id: String, exit_code: i64 },
}

/// Lagging subscribers lose events, and re-read the state instead (see agent::wait).
const EVENT_BUFFER: usize = 64;

/// What one look at a container finds (agent::wait decides what it means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Created, not started: its init waits to be started.
    Created,
    Running,
    /// Its init is gone but the helper has not recorded the exit yet (a moment).
    Exiting,
    Exited(i64),
    /// The record is there, the runtime state is not: being removed (with the exit code the
    /// removal recorded), or lost.
    Dead(Option<i64>),
    /// No record: removed, with the exit code it ended with if it was removed lately.
    Gone(Option<i64>),
}

/// How many removed containers' exit codes are kept (see `Containers::removed`).
const REMOVED_KEPT: usize = 256;

pub struct Containers {
    runtime: Runtime,
    dir: PathBuf,
    images: Box<dyn ImageSource>,
    volumes: Arc<Volumes>,
    /// Serialises name allocation, and creates against image GC and volume removal: a std
    /// Mutex, not a tokio one, because nothing awaits while it is held.
    names: Mutex<()>,
    /// `State.Health` of the containers with a health check, as the health monitor last
    /// recorded it (kept in memory, like the exec instances). A std Mutex: held for a copy.
    health: Mutex<HashMap<String, Health>>,
    events: tokio::sync::broadcast::Sender<ContainerEvent>,
    /// Exit codes of the containers removed last, newest at the back, recorded before their
    /// files go: a waiter that finds a container gone still learns how it ended, even before
    /// the removal event reaches it. A std Mutex: held for a push or a lookup only.
    removed: Mutex<std::collections::VecDeque<(String, i64)>>,
}

impl Containers {
    pub fn new(
        runtime: Runtime,
        dir: PathBuf,
        images: Box<dyn ImageSource>,
        volumes: Arc<Volumes>,
    ) -> Self {
        Containers {
            runtime,
            dir,
            images,
            volumes,
            names: Mutex::new(()),
            health: Mutex::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            removed: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Removals from now on. Subscribe before looking at a container, so that nothing
    /// happening in between is missed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn volumes(&self) -> &Volumes {
        &self.volumes
    }

    /// Make (on first use) and mount the volumes `request` names; an anonymous one gets its
    /// new name written into the request, so the record says which volume it uses. Returns
    /// the directories by name, and the anonymous volumes made (to remove if create fails).
    fn prepare_volumes(
        &self,
        request: &mut ContainerCreateRequest,
    ) -> Result<(BTreeMap<String, PathBuf>, Vec<String>), ContainerError> {
        let wanted = volume_mounts(request)?;
        let mut dirs = BTreeMap::new();
        let mut anonymous = Vec::new();
        let mut made = || -> Result<(), ContainerError> {
            for v in &wanted {
                let options = v.options.as_ref().map(|o| VolumeCreateRequest {
                    labels: o.labels.clone(),
                    driver: o
                        .driver_config
                        .as_ref()
                        .map(|d| d.name.clone())
                        .unwrap_or_default(),
                    driver_opts: o
                        .driver_config
                        .as_ref()
                        .map(|d| d.options.clone())
                        .unwrap_or_default(),
                    ..Default::default()
                });
                let name = if v.name.is_empty() {
                    let volume = self.volumes.create(options.clone().unwrap_or_default())?;
                    anonymous.push(volume.name.clone());
                    for m in request.host_config.mounts.iter_mut().flatten() {
                        if m.kind == "volume" && m.source.is_empty() && m.target == v.target {
                            m.source = volume.name.clone();
                        }
                    }
                    volume.name
                } else {
                    v.name.clone()
                };
                let dir = self.volumes.mountpoint(&name, options)?;
                dirs.insert(name, dir);
            }
            Ok(())
        };
        match made() {
            Ok(()) => Ok((dirs, anonymous)),
            Err(e) => {
                self.remove_volumes(&anonymous);
                Err(e)
            }
        }
    }

    /// Remove volumes this node made for a container alone (anonymous ones), best effort.
    fn remove_volumes(&self, names: &[String]) {
        let users = self.volume_users_unlocked();
        for name in names {
            if let Err(e) = self.volumes.remove(name, true, &users) {
                tracing::warn!(volume = %name, "cannot remove an anonymous volume: {e}");
            }
        }
    }

    fn volume_users_unlocked(&self) -> VolumeUsers {
        let mut users = VolumeUsers::new();
        for record in self.records() {
            for v in volume_mounts(&record.request).unwrap_or_default() {
                let ids = users.entry(v.name).or_default();
                if !ids.contains(&record.id) {
                    ids.push(record.id.clone());
                }
            }
        }
        users
    }

    /// Run `op` with the containers that use each volume, excluding concurrent creates (so
    /// a volume found unused stays unused while `op` runs).
    pub fn with_volume_users<T>(&self, op: impl FnOnce(&Volumes, &VolumeUsers) -> T) -> T {
        let _names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        op(&self.volumes, &self.volume_users_unlocked())
    }

    fn records(&self) -> Vec<ContainerRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<ContainerRecord> = entries
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("record.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created));
        out
    }

    /// Find a container by full id, name (with or without the leading '/') or unique id prefix.
    pub fn find(&self, reference: &str) -> Result<ContainerRecord, ContainerError> {
        let name = reference.trim_start_matches('/');
        let records = self.records();
        if let Some(r) = records.iter().find(|r| r.id == reference || r.name == name) {
            return Ok(r.clone());
        }
        let matches: Vec<&ContainerRecord> = records
            .iter()
            .filter(|r| r.id.starts_with(reference))
            .collect();
        match matches.as_slice() {
            [one] if !reference.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(ContainerError::NotFound(reference.to_string())),
            _ => Err(ContainerError::Ambiguous(reference.to_string())),
        }
    }

    /// `POST /containers/create`.
    pub fn create(
        &self,
        mut request: ContainerCreateRequest,
        name: Option<&str>,
    ) -> Result<ContainerRecord, ContainerError> {
        // Held for the whole create: image GC takes it too (see `image_ids_in_use`), so the
        // layers of a container being created are never collected under it.
        let _names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let image = self.images.resolve(&request.image)?;
        // Like dockerd, the container keeps its health check merged with the image's.
        request.healthcheck = health::merge(
            request.healthcheck.take(),
            image.config.healthcheck.as_ref(),
        );
        Probe::from_config(request.healthcheck.as_ref()).map_err(SpecError)?;
        let id = random_id();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/');
                if !valid_name(n) {
                    return Err(ContainerError::BadName(n.to_string()));
                }
                if self.records().iter().any(|r| r.name == n) {
                    return Err(ContainerError::NameInUse(n.to_string()));
                }
                n.to_string()
            }
            None => generated_name(&id),
        };
        let dir = self.dir.join(&id);
        let hostname = if request.hostname.is_empty() {
            id[..12].to_string()
        } else {
            request.hostname.clone()
        };
        let files = ContainerFiles {
            hosts: dir.join("hosts"),
            hostname: dir.join("hostname"),
            resolv_conf: dir.join("resolv.conf"),
        };
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        // Checked before any volume is made: a bad request leaves nothing behind.
        volume_mounts(&request)?;
        let (volume_dirs, anonymous) = self.prepare_volumes(&mut request)?;
        let spec = match container_spec(
            &request,
            &image.config,
            &files,
            &volume_dirs,
            &hostname,
            cpus,
        ) {
            Ok(spec) => spec,
            Err(e) => {
                self.remove_volumes(&anonymous);
                return Err(e.into());
            }
        };
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();

        let made = (|| -> Result<ContainerRecord, ContainerError> {
            for sub in ["upper", "work"] {
                std::fs::create_dir_all(dir.join(sub))
                    .map_err(io(format!("create {}", dir.display())))?;
            }
            write_files(
                &files,
                &hostname,
                request.host_config.network_mode == "host",
            )?;
            let record = ContainerRecord {
                id: id.clone(),
                name: name.clone(),
                image: request.image.clone(),
                image_id: image.id.clone(),
                created: runtime::state::now_rfc3339(),
                request: request.clone(),
                args,
            };
            let mut options = CreateOptions::new(&id, &dir);
            options.spec = Some(spec);
            options.rootfs = Some(RootfsSource::Overlay {
                lower: image.layers.clone(),
                upper: dir.join("upper"),
                work: dir.join("work"),
                target: dir.join("rootfs"),
            });
            options.stdio = StdioMode::Log;
            // Clients can always attach (cheap: a socket in the helper); stdin only if asked.
            options.attach = true;
            options.open_stdin = request.open_stdin;
            self.runtime.create(options)?;
            let body = serde_json::to_vec_pretty(&record).unwrap_or_default();
            std::fs::write(dir.join("record.json"), body)
                .map_err(io("write the container record"))?;
            Ok(record)
        })();
        if made.is_err() {
            let _ = self.runtime.delete(&id, true);
            let _ = std::fs::remove_dir_all(&dir);
            self.remove_volumes(&anonymous);
        }
        made
    }

    pub fn start(&self, reference: &str) -> Result<(), ContainerError> {
        let record = self.find(reference)?;
        // A new run starts its health over.
        self.health_board().remove(&record.id);
        Ok(self.runtime.start(&record.id)?)
    }

    /// Look at container `id` (a full id) once, without blocking on anything.
    pub fn observe(&self, id: &str) -> Result<Observed, ContainerError> {
        let runtime_state = self.observe_runtime(id);
        // Checked after the runtime's state: a removal records the exit code before it
        // deletes anything, so a look that overlapped the deletion (and read half-deleted
        // files, or none) always finds the removal here, and the removal's word wins.
        let removal = {
            let removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
            removed.iter().rev().find(|(r, _)| r == id).map(|(_, c)| *c)
        };
        if !self.dir.join(id).join("record.json").exists() {
            return Ok(Observed::Gone(removal));
        }
        if removal.is_some() {
            return Ok(Observed::Dead(removal));
        }
        runtime_state
    }

    fn observe_runtime(&self, id: &str) -> Result<Observed, ContainerError> {
        let state = match self.runtime.state(id) {
            Ok(state) => state,
            Err(RuntimeError::NotFound(_)) => return Ok(Observed::Dead(None)),
            Err(e) => return Err(e.into()),
        };
        Ok(match (state.status, state.exit) {
            (runtime::Status::Creating | runtime::Status::Created, _) => Observed::Created,
            (runtime::Status::Running, _) => Observed::Running,
            (runtime::Status::Stopped, Some(exit)) => Observed::Exited(exit.code as i64),
            // No time to wait: this only says whether the exit is recorded, or can no longer
            // be (the helper died: 255).
            (runtime::Status::Stopped, None) => match self.runtime.wait(id, Some(Duration::ZERO)) {
                Ok(exit) => Observed::Exited(exit.code as i64),
                Err(RuntimeError::Timeout { .. }) => Observed::Exiting,
                Err(RuntimeError::NotFound(_)) => Observed::Dead(None),
                Err(e) => return Err(e.into()),
            },
        })
    }

    /// A handle that turns readable when container `id`'s init exits; `None` if it is not
    /// alive (see `Runtime::exit_fd`).
    pub fn exit_fd(&self, id: &str) -> Result<Option<std::os::fd::OwnedFd>, ContainerError> {
        match self.runtime.exit_fd(id) {
            Ok(fd) => Ok(fd),
            Err(RuntimeError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn stop(&self, reference: &str, grace: Option<Duration>) -> Result<(), ContainerError> {
        let record = self.find(reference)?;
        let signal = record
            .request
            .stop_signal
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(Signal::SIGTERM);
        let grace = grace
            .or_else(|| {
                record
                    .request
                    .stop_timeout
                    .map(|t| Duration::from_secs(t.max(0) as u64))
            })
            .unwrap_or(Duration::from_secs(10));
        match self.runtime.stop(&record.id, signal, grace) {
            Ok(_) => Ok(()),
            // Removed while it was being stopped (`--rm` removes it as soon as it exits, and
            // may pull its state from under the stop): stopped is what was asked.
            Err(e) => match self.observe(&record.id) {
                Ok(Observed::Gone(_) | Observed::Dead(_) | Observed::Exited(_)) => Ok(()),
                _ => Err(e.into()),
            },
        }
    }

    pub fn kill(&self, reference: &str, signal: Signal) -> Result<(), ContainerError> {
        let record = self.find(reference)?;
        let state = self.runtime.state(&record.id)?;
        if !state.status.can_kill() {
            return Err(ContainerError::NotRunning(record.id));
        }
        Ok(self.runtime.kill(&record.id, signal, false)?)
    }

    pub fn remove(&self, reference: &str, force: bool) -> Result<(), ContainerError> {
        self.remove_with(reference, force, false)
    }

    /// Remove a container; with `volumes` also the anonymous volumes no other container
    /// uses (`docker rm -v`, `--rm`, a task's container).
    pub fn remove_with(
        &self,
        reference: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ContainerError> {
        let record = self.find(reference)?;
        let exit_code = match self.runtime.state(&record.id) {
            Ok(state) if state.status == runtime::Status::Running && !force => {
                return Err(ContainerError::Running(record.id));
            }
            Ok(state) => {
                let exit_code = match (state.status, state.exit) {
                    (_, Some(exit)) => exit.code as i64,
                    // Killed first, as Docker's `rm -f` does, so that waiters get the code
                    // it really ended with (137).
                    (runtime::Status::Running, None) => self
                        .runtime
                        .stop(&record.id, Signal::SIGKILL, KILL_GRACE)
                        .map(|exit| exit.code as i64)
                        .unwrap_or(128 + Signal::SIGKILL as i64),
                    // Its helper is recording the exit this moment.
                    (runtime::Status::Stopped, None) => self
                        .runtime
                        .wait(&record.id, Some(KILL_GRACE))
                        .map(|exit| exit.code as i64)
                        .unwrap_or(0),
                    // Never started: it ends with 0, as in Docker.
                    (runtime::Status::Creating | runtime::Status::Created, None) => 0,
                };
                self.remember_removal(&record.id, exit_code);
                self.runtime.delete(&record.id, true)?;
                exit_code
            }
            Err(RuntimeError::NotFound(_)) => {
                self.remember_removal(&record.id, 0);
                0
            }
            Err(e) => return Err(e.into()),
        };
        self.health_board().remove(&record.id);
        let dir = self.dir.join(&record.id);
        std::fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
        // Nobody listening is fine.
        let _ = self.events.send(ContainerEvent::Removed {
            id: record.id.clone(),
            exit_code,
        });
        if volumes {
            let _names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            let anonymous: Vec<String> = volume_mounts(&record.request)
                .unwrap_or_default()
                .into_iter()
                .filter(|v| {
                    self.volumes
                        .get(&v.name)
                        .is_ok_and(|vol| vol.labels.contains_key(ANONYMOUS_LABEL))
                })
                .map(|v| v.name)
                .collect();
            let users = self.volume_users_unlocked();
            for name in anonymous {
                // In use by another container: kept, as Docker does.
                if let Err(e) = self.volumes.remove(&name, false, &users) {
                    tracing::debug!(volume = %name, "anonymous volume kept: {e}");
                }
            }
        }
        Ok(())
    }

    fn remember_removal(&self, id: &str, exit_code: i64) {
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        if removed.len() >= REMOVED_KEPT {
            removed.pop_front();
        }
        removed.push_back((id.to_string(), exit_code));
    }

    fn state_of(&self, record: &ContainerRecord) -> ContainerState {
        let health = self.health_of(record);
        match self.runtime.state(&record.id) {
            Ok(state) => {
                let exit = state.exit.clone();
                let status = match state.status {
                    runtime::Status::Creating | runtime::Status::Created => "created",
                    runtime::Status::Running => "running",
                    runtime::Status::Stopped => "exited",
                };
                ContainerState {
                    status: status.into(),
                    running: state.status == runtime::Status::Running,
                    oom_killed: exit.as_ref().is_some_and(|e| e.oom_killed),
                    pid: state.pid as i64,
                    exit_code: exit.as_ref().map(|e| e.code as i64).unwrap_or(0),
                    started_at: state.created.clone(),
                    finished_at: exit.map(|e| e.finished).unwrap_or_default(),
                    health,
                    ..Default::default()
                }
            }
            Err(_) => ContainerState {
                status: "dead".into(),
                dead: true,
                ..Default::default()
            },
        }
    }

    /// `GET /containers/json`.
    pub fn list(&self, all: bool) -> Vec<ContainerSummary> {
        self.records()
            .into_iter()
            .filter_map(|record| {
                let state = self.state_of(&record);
                if !all && !state.running {
                    return None;
                }
                let status = match state.status.as_str() {
                    "running" => {
                        let up = Timestamp::parse_rfc3339(&state.started_at)
                            .map(|t| {
                                let nanos = Timestamp::now().as_nanos() - t.as_nanos();
                                Duration::from_nanos(nanos.max(0) as u64)
                            })
                            .unwrap_or_default();
                        let health = match state.health.as_ref().map(|h| h.status) {
                            None => "",
                            Some(HealthStatus::Starting) => " (health: starting)",
                            Some(HealthStatus::Healthy) => " (healthy)",
                            Some(HealthStatus::Unhealthy) => " (unhealthy)",
                        };
                        format!("Up {}{health}", human_duration(up))
                    }
                    "exited" => format!("Exited ({})", state.exit_code),
                    other => capitalise(other),
                };
                Some(ContainerSummary {
                    id: record.id.clone(),
                    names: vec![format!("/{}", record.name)],
                    image: record.image.clone(),
                    image_id: record.image_id.clone(),
                    command: record.args.join(" "),
                    created: chrono::DateTime::parse_from_rfc3339(&record.created)
                        .map(|t| t.timestamp())
                        .unwrap_or(0),
                    state: state.status,
                    status,
                    labels: record.request.labels.clone().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, reference: &str) -> Result<ContainerInspect, ContainerError> {
        let record = self.find(reference)?;
        let state = self.state_of(&record);
        Ok(ContainerInspect {
            id: record.id.clone(),
            created: record.created.clone(),
            path: record.args.first().cloned().unwrap_or_default(),
            args: record.args.iter().skip(1).cloned().collect(),
            state,
            image: record.image_id.clone(),
            name: format!("/{}", record.name),
            config: record.request.clone(),
            host_config: record.request.host_config.clone(),
        })
    }

    /// Connect to a container's stdio; also says whether it has a terminal.
    pub fn attach(
        &self,
        reference: &str,
    ) -> Result<(std::os::unix::net::UnixStream, bool), ContainerError> {
        let record = self.find(reference)?;
        // Its helper (which serves the attach socket) is gone, and an exited container
        // cannot be started again: say so rather than fail to connect.
        if self.runtime.state(&record.id)?.status == runtime::Status::Stopped {
            return Err(ContainerError::NotRunning(record.id));
        }
        let stream = self.runtime.attach(&record.id)?;
        Ok((stream, record.request.tty))
    }

    /// The log file of a container (JSON lines, see runtime::logs).
    pub fn log_path(&self, reference: &str) -> Result<(ContainerRecord, PathBuf), ContainerError> {
        let record = self.find(reference)?;
        let path = self.runtime.log_path(&record.id);
        Ok((record, path))
    }

    /// Run `gc` with the set of image ids containers use, excluding concurrent creates.
    pub fn with_images_in_use<T>(&self, gc: impl FnOnce(&dyn Fn(&str) -> bool) -> T) -> T {
        let _names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let used: std::collections::HashSet<String> =
            self.records().into_iter().map(|r| r.image_id).collect();
        gc(&|id: &str| used.contains(id))
    }

    fn health_board(&self) -> std::sync::MutexGuard<'_, HashMap<String, Health>> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `State.Health` of a container whose health check is on (starting until probed).
    fn health_of(&self, record: &ContainerRecord) -> Option<Health> {
        match Probe::from_config(record.request.healthcheck.as_ref()) {
            Ok(Some(_)) => Some(
                self.health_board()
                    .get(&record.id)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }

    /// What the health monitor last recorded for a container.
    pub fn health(&self, id: &str) -> Option<Health> {
        self.health_board().get(id).cloned()
    }

    /// The health monitor records a probe's outcome.
    pub fn set_health(&self, id: &str, health: Health) {
        self.health_board().insert(id.to_owned(), health);
    }

    /// The health status of every container whose health check is on, by id.
    pub fn health_statuses(&self) -> BTreeMap<String, HealthStatus> {
        self.records()
            .iter()
            .filter_map(|r| Some((r.id.clone(), self.health_of(r)?.status)))
            .collect()
    }

    /// The running containers whose health check is on: what the health monitor watches.
    pub fn health_targets(&self) -> Vec<HealthTarget> {
        self.records()
            .into_iter()
            .filter_map(|record| {
                let probe = Probe::from_config(record.request.healthcheck.as_ref()).ok()??;
                let state = self.runtime.state(&record.id).ok()?;
                (state.status == runtime::Status::Running).then(|| HealthTarget {
                    started_at: Timestamp::parse_rfc3339(&state.created)
                        .unwrap_or_else(|_| Timestamp::now()),
                    id: record.id,
                    probe,
                })
            })
            .collect()
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.runtime
            .state(id)
            .is_ok_and(|s| s.status == runtime::Status::Running)
    }

    /// The process an exec in the container starts from (its own: env, user, capabilities),
    /// and the user name to resolve in the container, if it was given by name.
    pub fn exec_process(
        &self,
        reference: &str,
    ) -> Result<(oci_spec::runtime::Process, Option<String>), ContainerError> {
        let record = self.find(reference)?;
        let spec = self.runtime.spec(&record.id)?;
        let user = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(runtime::process::USER_ANNOTATION).cloned());
        Ok((spec.process().clone().unwrap_or_default(), user))
    }

    pub fn count(&self) -> (u64, u64) {
        let records = self.records();
        let running = records.iter().filter(|r| self.state_of(r).running).count() as u64;
        (records.len() as u64, running)
    }
}

/// Docker's `units.HumanDuration`, as `docker ps` shows uptimes ("Up 3 seconds").
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let hours = secs / 3600;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128
}

/// 64 hex characters from the kernel's random pool, like Docker's ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Docker-style `adjective_name`, picked from the id so it is stable for a given id.
fn generated_name(id: &str) -> String {
    const LEFT: [&str; 16] = [
        "brave", "calm", "eager", "fervent", "gallant", "happy", "keen", "lucid", "merry", "nifty",
        "quirky", "relaxed", "sharp", "tender", "upbeat", "vibrant",
    ];
    const RIGHT: [&str; 16] = [
        "babbage", "curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler", "lovelace",
        "meitner", "noether", "pascal", "ritchie", "shannon", "turing", "wozniak",
    ];
    let n = u64::from_str_radix(&id[..8], 16).unwrap_or(0) as usize;
    format!("{}_{}_{}", LEFT[n % 16], RIGHT[(n / 16) % 16], &id[..4])
}

/// /etc/hosts, /etc/hostname and /etc/resolv.conf for a container, as Docker writes them.
fn write_files(
    files: &ContainerFiles,
    hostname: &str,
    host_network: bool,
) -> Result<(), ContainerError> {
    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        )
    };
    std::fs::write(&files.hosts, hosts).map_err(io("write hosts"))?;
    std::fs::write(&files.hostname, format!("{hostname}\n")).map_err(io("write hostname"))?;
    // Loopback resolvers of the host are unreachable from a container's own network
    // namespace; Docker drops them the same way.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv: String = resolv
        .lines()
        .filter(|l| host_network || !l.trim_start().starts_with("nameserver 127."))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&files.resolv_conf, resolv).map_err(io("write resolv.conf"))?;
    Ok(())
}
