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
//! The records are read from disk once, when the daemon starts, into an in-memory index
//! ([`super::index`]) that lookups, lists and the in-use checks answer from. A create takes
//! its name and id in the index (a reservation, which also marks its image and volumes in
//! use) under a short lock, then does the runtime's work outside it, so creates run in
//! parallel; it writes its record, then commits the reservation, or releases it and leaves
//! nothing behind if it fails.
//!
//! Removals are announced on a broadcast channel ([`Containers::subscribe`]) with the exit
//! code the container ended with, so waiters (`docker run --rm`, `wait?condition=removed`)
//! learn both at once; exits are seen through the init's pidfd ([`Containers::exit_fd`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::health::{self, HealthTarget, Probe};
use super::index::Index;
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
    /// Resolve `reference` to its id and its config.
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ContainerError>;
    /// The layer directories of image `id` (topmost first), unpacked on first use. A GC may
    /// delete the layers of an image no container uses: the caller has already marked its
    /// container as a user of `id` (see [`Containers::with_images_in_use`]).
    fn layers(&self, id: &str) -> Result<Vec<PathBuf>, ContainerError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub id: String,
    pub config: ImageRunConfig,
}

impl<T: ImageSource> ImageSource for std::sync::Arc<T> {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ContainerError> {
        (**self).resolve(reference)
    }
    fn layers(&self, id: &str) -> Result<Vec<PathBuf>, ContainerError> {
        (**self).layers(id)
    }
}

/// Images come from the node's image store: resolved by name, id or unique id prefix, their
/// layers unpacked (once) into snapshot directories for the overlay.
impl ImageSource for crate::image::ImageStore {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, ContainerError> {
        let image = crate::image::ImageStore::resolve(self, reference)
            .map_err(|e| image_error(reference, e))?;
        let config = image.config.config.unwrap_or_default();
        Ok(ResolvedImage {
            id: image.id.to_string(),
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

    fn layers(&self, id: &str) -> Result<Vec<PathBuf>, ContainerError> {
        self.prepare_rootfs(id).map_err(|e| image_error(id, e))
    }
}

fn image_error(reference: &str, e: crate::image::ImageError) -> ContainerError {
    match e {
        crate::image::ImageError::NotFound(_) => ContainerError::NoSuchImage(reference.to_string()),
        other => ContainerError::Image(other.to_string()),
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
    #[error("container id {0} is already in use")]
    IdInUse(String),
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
    /// Held to reserve a name in the index, and by whoever removes images or volumes for
    /// the whole removal: what a create in flight uses is never removed from under it, and
    /// what a removal found unused stays unused until it is done. Taken before `index`.
    /// Std Mutexes, not tokio ones, because nothing awaits while they are held.
    reserve: Mutex<()>,
    /// The containers and the creates in flight; held for a lookup or an update only,
    /// never across the runtime's work or a disk read.
    index: Mutex<Index>,
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
        let index = Index::load(&dir);
        Containers {
            runtime,
            dir,
            images,
            volumes,
            reserve: Mutex::new(()),
            index: Mutex::new(index),
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

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reserve_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reserve.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make (on first use) and mount the volumes `request` names, the anonymous ones (named
    /// already, see [`name_anonymous_volumes`]) with Docker's anonymous label. Returns the
    /// directories by name.
    fn prepare_volumes(
        &self,
        request: &ContainerCreateRequest,
        anonymous: &[String],
    ) -> Result<BTreeMap<String, PathBuf>, ContainerError> {
        let mut dirs = BTreeMap::new();
        for v in volume_mounts(request)? {
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
            if anonymous.contains(&v.name) {
                let mut made = options.clone().unwrap_or_default();
                made.name = v.name.clone();
                made.labels.insert(ANONYMOUS_LABEL.into(), String::new());
                self.volumes.create(made)?;
            }
            let dir = self.volumes.mountpoint(&v.name, options)?;
            dirs.insert(v.name, dir);
        }
        Ok(dirs)
    }

    /// Remove volumes this node made for a container alone (anonymous ones), best effort.
    fn remove_volumes(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let _reserve = self.reserve_lock();
        let users = self.index().volume_users();
        for name in names {
            if let Err(e) = self.volumes.remove(name, true, &users) {
                tracing::warn!(volume = %name, "cannot remove an anonymous volume: {e}");
            }
        }
    }

    /// Run `op` with the containers that use each volume (creates in flight included),
    /// excluding new creates (so a volume found unused stays unused while `op` runs).
    pub fn with_volume_users<T>(&self, op: impl FnOnce(&Volumes, &VolumeUsers) -> T) -> T {
        let _reserve = self.reserve_lock();
        let users = self.index().volume_users();
        op(&self.volumes, &users)
    }

    /// Every container, newest first (the index's lock is released on return).
    fn records(&self) -> Vec<Arc<ContainerRecord>> {
        self.index().records()
    }

    /// Find a container by full id, name (with or without the leading '/') or unique id prefix.
    pub fn find(&self, reference: &str) -> Result<ContainerRecord, ContainerError> {
        self.index().find(reference).map(|r| (*r).clone())
    }

    /// Take a name (`wanted`, else one made from the id) and a fresh id in the index for a
    /// create of `request` using image `image_id`: from now on the name is taken and the
    /// image and volumes are in use.
    fn reserve(
        &self,
        wanted: Option<&str>,
        image_id: &str,
        request: &ContainerCreateRequest,
    ) -> Result<(String, String), ContainerError> {
        let volumes: Vec<String> = volume_mounts(request)?
            .into_iter()
            .map(|v| v.name)
            .collect();
        // Random ids (and the names made from them) clash next to never; a few fresh ones
        // make that never in practice. A name asked for is in use or not.
        const TRIES: usize = 8;
        let _reserve = self.reserve_lock();
        let mut index = self.index();
        let mut tries = 0;
        loop {
            tries += 1;
            let id = random_id();
            let name = wanted.map_or_else(|| generated_name(&id), str::to_owned);
            match index.reserve(&id, &name, image_id, volumes.clone()) {
                Ok(()) => return Ok((id, name)),
                Err(ContainerError::IdInUse(_)) if tries < TRIES => {}
                Err(ContainerError::NameInUse(_)) if wanted.is_none() && tries < TRIES => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST /containers/create`. The name is taken (reserved in the index) under a short
    /// lock; the runtime's work runs outside it, so creates run in parallel. Of two creates
    /// with one name, one gets the name and the other Docker's conflict. A failed create
    /// releases its name and leaves nothing behind.
    pub fn create(
        &self,
        mut request: ContainerCreateRequest,
        name: Option<&str>,
    ) -> Result<ContainerRecord, ContainerError> {
        let image = self.images.resolve(&request.image)?;
        // Like dockerd, the container keeps its health check merged with the image's.
        request.healthcheck = health::merge(
            request.healthcheck.take(),
            image.config.healthcheck.as_ref(),
        );
        Probe::from_config(request.healthcheck.as_ref()).map_err(SpecError)?;
        let wanted = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/');
                if !valid_name(n) {
                    return Err(ContainerError::BadName(n.to_string()));
                }
                Some(n)
            }
            None => None,
        };
        // Checked before anything is reserved or made: a bad request leaves nothing behind.
        volume_mounts(&request)?;
        let anonymous = name_anonymous_volumes(&mut request);
        let (id, name) = self.reserve(wanted, &image.id, &request)?;
        match self.make(&id, &name, request, &image, &anonymous) {
            Ok(record) => {
                let record = Arc::new(record);
                self.index().commit(record.clone());
                Ok(Arc::unwrap_or_clone(record))
            }
            Err(e) => {
                let _ = self.runtime.delete(&id, true);
                let _ = std::fs::remove_dir_all(self.dir.join(&id));
                self.index().remove(&id);
                self.remove_volumes(&anonymous);
                Err(e)
            }
        }
    }

    /// The work of a create whose name and id are reserved: layers, volumes, spec, files,
    /// the runtime container, and last the record. The caller cleans up after an error.
    fn make(
        &self,
        id: &str,
        name: &str,
        request: ContainerCreateRequest,
        image: &ResolvedImage,
        anonymous: &[String],
    ) -> Result<ContainerRecord, ContainerError> {
        // The reservation marks the image in use: a GC keeps its layers from here on.
        let layers = self.images.layers(&image.id)?;
        let volume_dirs = self.prepare_volumes(&request, anonymous)?;
        let dir = self.dir.join(id);
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
        let spec = container_spec(
            &request,
            &image.config,
            &files,
            &volume_dirs,
            &hostname,
            cpus,
        )?;
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        for sub in ["upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(io(format!("create {}", dir.display())))?;
        }
        write_files(
            &files,
            &hostname,
            request.host_config.network_mode == "host",
        )?;
        let mut options = CreateOptions::new(id, &dir);
        options.spec = Some(spec);
        options.rootfs = Some(RootfsSource::Overlay {
            lower: layers,
            upper: dir.join("upper"),
            work: dir.join("work"),
            target: dir.join("rootfs"),
        });
        options.stdio = StdioMode::Log;
        // Clients can always attach (cheap: a socket in the helper); stdin only if asked.
        options.attach = true;
        options.open_stdin = request.open_stdin;
        self.runtime.create(options)?;
        let record = ContainerRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            image: request.image.clone(),
            image_id: image.id.clone(),
            created: runtime::state::now_rfc3339(),
            request,
            args,
        };
        write_record(&dir, &record)?;
        Ok(record)
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
        if !self.index().contains(id) {
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
        let removed = std::fs::remove_dir_all(&dir);
        // The record on disk is the truth: while it is there (a removal that failed half
        // way), the container is still listed, and can be removed again.
        if !dir.join("record.json").exists() {
            self.index().remove(&record.id);
        }
        removed.map_err(io(format!("remove {}", dir.display())))?;
        // Nobody listening is fine.
        let _ = self.events.send(ContainerEvent::Removed {
            id: record.id.clone(),
            exit_code,
        });
        if volumes {
            // Labels never change: which are anonymous is known without the lock, and a
            // container without any (every task of a plain service) does not take it.
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
            if anonymous.is_empty() {
                return Ok(());
            }
            let _reserve = self.reserve_lock();
            let users = self.index().volume_users();
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
    /// Creates in flight count as users of their image.
    pub fn with_images_in_use<T>(&self, gc: impl FnOnce(&dyn Fn(&str) -> bool) -> T) -> T {
        let _reserve = self.reserve_lock();
        let used = self.index().image_ids();
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
                    id: record.id.clone(),
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

/// Name the anonymous volumes `request` mounts (`volume` mounts without a source) up front,
/// so that the reservation marks them in use before they exist; returns the names made.
fn name_anonymous_volumes(request: &mut ContainerCreateRequest) -> Vec<String> {
    let mut anonymous = Vec::new();
    for m in request.host_config.mounts.iter_mut().flatten() {
        if m.kind == "volume" && m.source.is_empty() {
            m.source = random_id();
            anonymous.push(m.source.clone());
        }
    }
    anonymous
}

/// A container's `record.json`.
fn write_record(dir: &Path, record: &ContainerRecord) -> Result<(), ContainerError> {
    let body = serde_json::to_vec_pretty(record).unwrap_or_default();
    std::fs::write(dir.join("record.json"), body).map_err(io("write the container record"))
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

#[cfg(test)]
mod tests {
    //! Creates against the name index, with an image source that holds a create in flight
    //! (in `layers`, after its reservation) until the test lets it go, and a request the
    //! spec refuses (privileged) after the volumes are made, so no root and no runtime are
    //! needed: what a create in flight holds, and what a failed one leaves.

    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::types::container::Mount;

    const IMAGE_ID: &str = "sha256:0123456789abcdef";
    const BOUND: Duration = Duration::from_secs(20);

    /// `layers` says it was entered, then waits for a go (or `BOUND`).
    struct HeldImages {
        entered: Mutex<mpsc::Sender<()>>,
        go: Mutex<mpsc::Receiver<()>>,
    }

    impl ImageSource for HeldImages {
        fn resolve(&self, reference: &str) -> Result<ResolvedImage, ContainerError> {
            if reference != "busybox" {
                return Err(ContainerError::NoSuchImage(reference.into()));
            }
            Ok(ResolvedImage {
                id: IMAGE_ID.into(),
                config: ImageRunConfig {
                    cmd: vec!["sh".into()],
                    ..Default::default()
                },
            })
        }

        fn layers(&self, _id: &str) -> Result<Vec<PathBuf>, ContainerError> {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.go.lock().unwrap().recv_timeout(BOUND);
            Ok(vec![PathBuf::from("/nonexistent-layer")])
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        containers: Arc<Containers>,
        entered: mpsc::Receiver<()>,
        go: mpsc::Sender<()>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let volumes = Volumes::open(dir.path().join("volumes")).unwrap();
        std::fs::create_dir(dir.path().join("containers")).unwrap();
        let containers = Containers::new(
            Runtime::new(dir.path().join("runtime")).unwrap(),
            dir.path().join("containers"),
            Box::new(HeldImages {
                entered: Mutex::new(entered_tx),
                go: Mutex::new(go_rx),
            }),
            Arc::new(volumes),
        );
        Fixture {
            _dir: dir,
            containers: Arc::new(containers),
            entered,
            go,
        }
    }

    /// Mounts named volume `data` and an anonymous one; privileged, which the spec refuses
    /// once the volumes are made.
    fn refused_request() -> ContainerCreateRequest {
        let mut request = ContainerCreateRequest {
            image: "busybox".into(),
            ..Default::default()
        };
        request.host_config.privileged = true;
        request.host_config.mounts = Some(vec![
            Mount {
                kind: "volume".into(),
                source: "data".into(),
                target: "/data".into(),
                ..Default::default()
            },
            Mount {
                kind: "volume".into(),
                target: "/scratch".into(),
                ..Default::default()
            },
        ]);
        request
    }

    fn volume_names(c: &Containers) -> Vec<String> {
        c.volumes().list().into_iter().map(|v| v.name).collect()
    }

    #[test]
    fn t10_a_create_in_flight_holds_its_name_image_and_volumes_and_a_failed_one_leaves_nothing() {
        let f = fixture();
        let c = f.containers.clone();
        // Made before, so that there is something to remove from under the create.
        c.volumes()
            .create(VolumeCreateRequest {
                name: "data".into(),
                ..Default::default()
            })
            .unwrap();

        let first = {
            let c = c.clone();
            std::thread::spawn(move || c.create(refused_request(), Some("web")))
        };
        f.entered
            .recv_timeout(BOUND)
            .expect("the create reached the image's layers");

        // The name is taken: Docker's conflict, while the first create is in flight.
        let second = c.create(refused_request(), Some("/web"));
        assert!(
            matches!(&second, Err(ContainerError::NameInUse(n)) if n == "web"),
            "{second:?}"
        );
        assert_eq!(
            second.unwrap_err().to_string(),
            "Conflict. The container name \"/web\" is already in use"
        );
        // Not a container yet: neither found nor listed.
        assert!(matches!(c.find("web"), Err(ContainerError::NotFound(_))));
        assert!(c.list(true).is_empty());
        // Its image is in use, and its volumes: the named one cannot be removed.
        assert!(c.with_images_in_use(|in_use| in_use(IMAGE_ID)));
        let users = c.with_volume_users(|_, users| users.clone());
        assert_eq!(users.len(), 2, "data and the anonymous volume: {users:?}");
        assert!(users.values().all(|ids| ids.len() == 1));
        let removed = c.with_volume_users(|volumes, users| volumes.remove("data", false, users));
        assert!(
            matches!(removed, Err(VolumeError::InUse { .. })),
            "{removed:?}"
        );
        let pruned = c.with_volume_users(|volumes, users| {
            let all = BTreeMap::from([("all".to_owned(), vec!["true".to_owned()])]);
            let filter = super::super::volumes::VolumeFilter::for_prune(&all).unwrap();
            volumes.prune(&filter, users)
        });
        assert!(pruned.deleted.is_empty(), "prune --all kept it: {pruned:?}");

        // Let it go: the spec refuses it after its volumes were made.
        f.go.send(()).unwrap();
        let first = first.join().unwrap();
        assert!(
            matches!(&first, Err(ContainerError::Invalid(e)) if e.0.contains("privileged")),
            "{first:?}"
        );
        // Nothing left: no directory, no anonymous volume, no users, the name free.
        assert_eq!(
            std::fs::read_dir(&c.dir).unwrap().count(),
            0,
            "no container directory left"
        );
        assert_eq!(volume_names(&c), ["data"], "the anonymous volume is gone");
        assert!(!c.with_images_in_use(|in_use| in_use(IMAGE_ID)));
        assert!(c.with_volume_users(|_, users| users.is_empty()));
        let again = {
            let c = c.clone();
            std::thread::spawn(move || c.create(refused_request(), Some("web")))
        };
        f.entered
            .recv_timeout(BOUND)
            .expect("the name was free again");
        f.go.send(()).unwrap();
        assert!(matches!(
            again.join().unwrap(),
            Err(ContainerError::Invalid(_))
        ));
    }

    #[test]
    fn t20_of_concurrent_creates_with_one_name_exactly_one_gets_it() {
        const CREATES: usize = 8;
        let f = fixture();
        let start = Arc::new(std::sync::Barrier::new(CREATES));
        let threads: Vec<_> = (0..CREATES)
            .map(|_| {
                let (c, start) = (f.containers.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    c.create(refused_request(), Some("web"))
                })
            })
            .collect();
        // Exactly one reaches the layers (holding the name); the others answer at once.
        f.entered
            .recv_timeout(BOUND)
            .expect("one create got the name");
        let deadline = std::time::Instant::now() + BOUND;
        while threads.iter().filter(|t| t.is_finished()).count() < CREATES - 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the other creates never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let (done, mut held): (Vec<_>, Vec<_>) = threads.into_iter().partition(|t| t.is_finished());
        assert_eq!(held.len(), 1, "exactly one create holds the name");
        for t in done {
            let outcome = t.join().unwrap();
            assert!(
                matches!(&outcome, Err(ContainerError::NameInUse(n)) if n == "web"),
                "{outcome:?}"
            );
        }
        assert!(
            f.entered.try_recv().is_err(),
            "a second create reached the layers"
        );
        f.go.send(()).unwrap();
        assert!(matches!(
            held.pop().unwrap().join().unwrap(),
            Err(ContainerError::Invalid(_))
        ));
    }

    #[test]
    fn t30_bad_requests_reserve_nothing() {
        let f = fixture();
        let c = &f.containers;
        let request = ContainerCreateRequest {
            image: "busybox".into(),
            ..Default::default()
        };
        assert!(matches!(
            c.create(request.clone(), Some("no/slash")),
            Err(ContainerError::BadName(_))
        ));
        let missing = ContainerCreateRequest {
            image: "missing".into(),
            ..Default::default()
        };
        assert!(matches!(
            c.create(missing, Some("web")),
            Err(ContainerError::NoSuchImage(_))
        ));
        let mut bad_volume = request;
        bad_volume.host_config.binds = Some(vec!["bad name:/data".into()]);
        assert!(matches!(
            c.create(bad_volume, Some("web")),
            Err(ContainerError::Invalid(_))
        ));
        assert!(f.entered.try_recv().is_err(), "nothing reached the layers");
        assert!(c.with_volume_users(|_, users| users.is_empty()));
        assert!(!c.with_images_in_use(|in_use| in_use(IMAGE_ID)));
        assert!(volume_names(c).is_empty());
    }
}
