//! Named local volumes: storage that outlives the containers using it. One `Volumes` per
//! daemon owns `<data>/volumes`; containers (local ones and the task runner's) get their
//! volumes through it, created on first use. Its methods are blocking (file system, mounts)
//! and the daemon calls them off the async threads.
//!
//! ```text
//!  <data>/volumes/NAME/volume.json   metadata: format, driver, labels, options, created
//!                      /_data        the Mountpoint containers bind (a tmpfs if asked for)
//!  <data>/volumes/.new-RANDOM/       a volume being created: renamed to NAME when complete
//!  <data>/volumes/.gone-RANDOM/      a volume being removed: renamed away from NAME first
//! ```
//!
//! Invariants: a `NAME` directory is complete (metadata and `_data`) or absent, never half
//! made, because it appears and disappears by `rename`; names follow Docker's rule, so a
//! name is always one plain directory entry. Which containers use a volume is not kept here:
//! callers pass the users found in the container index (`Containers::with_volume_users`:
//! the containers and the creates in flight), under the lock a create takes to reserve its
//! name and volumes, so a volume cannot be removed while a container that mounts it is
//! being made.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::types::volume::{ANONYMOUS_LABEL, Volume, VolumeCreateRequest, valid_name};

/// The only driver: directories (or tmpfs mounts) on this node.
pub const LOCAL_DRIVER: &str = "local";
const METADATA: &str = "volume.json";
const DATA: &str = "_data";
/// Format of `volume.json`; a record of another format is not read (and not touched).
const FORMAT: u8 = 1;

/// Container ids by the volume names they mount.
pub type VolumeUsers = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )]
    BadName(String),
    #[error("{op} {name}: no such volume")]
    NotFound { op: &'static str, name: String },
    #[error("remove {name}: volume is in use - [{}]", .containers.join(", "))]
    InUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("create {name}: volume driver {driver:?} is not supported: only \"local\" is")]
    UnknownDriver { name: String, driver: String },
    #[error("create {name}: {message}")]
    BadOption { name: String, message: String },
    #[error("invalid filter {0}")]
    BadFilter(String),
    #[error("volume {name}: {context}: {source}")]
    Io {
        name: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(name: &str, context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let (name, context) = (name.to_owned(), context.into());
    move |source| VolumeError::Io {
        name,
        context,
        source,
    }
}

/// What `volume.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    format: u8,
    name: String,
    driver: String,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
    created_at: String,
}

/// What backs a volume's `_data`, from its driver options (Docker's `local` driver: `type`,
/// `device`, `o`; only the tmpfs form is supported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A directory on the data dir's file system.
    Directory,
    /// A tmpfs mounted on `_data` at first use, with these mount options (`size=64m,...`).
    Tmpfs { data: String },
}

/// Check a volume's driver options; the error says what to change.
pub fn backing(options: &BTreeMap<String, String>) -> Result<Backing, String> {
    if let Some(key) = options
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
    {
        return Err(format!(
            "invalid option {key:?}: the local driver takes type, device and o"
        ));
    }
    let kind = options.get("type").map(String::as_str);
    match kind {
        None if options.is_empty() => Ok(Backing::Directory),
        None => Err("the options device and o need type=tmpfs".into()),
        Some("tmpfs") => {
            if let Some(device) = options.get("device")
                && device != "tmpfs"
            {
                return Err(format!(
                    "invalid device {device:?} for type=tmpfs: use device=tmpfs"
                ));
            }
            let data = options.get("o").map(String::as_str).unwrap_or_default();
            Ok(Backing::Tmpfs {
                data: tmpfs_options(data)?,
            })
        }
        Some(other) => Err(format!(
            "volume type {other:?} is not supported: only type=tmpfs (with device=tmpfs and o=size=…)"
        )),
    }
}

/// The tmpfs options a volume may ask for, checked (size, nr_inodes, nr_blocks, mode, uid,
/// gid), so the mount at first use does not fail on a typo.
fn tmpfs_options(o: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for option in o.split(',').filter(|s| !s.is_empty()) {
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| format!("invalid tmpfs option {option:?}: expected KEY=VALUE"))?;
        let ok = match key {
            "size" | "nr_blocks" | "nr_inodes" => {
                let digits = value.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
                !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && value.len() - digits.len() <= 1
            }
            "mode" => !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b)),
            "uid" | "gid" => value.parse::<u32>().is_ok(),
            _ => {
                return Err(format!(
                    "invalid tmpfs option {key:?}: use size, nr_inodes, nr_blocks, mode, uid or gid"
                ));
            }
        };
        if !ok {
            return Err(format!("invalid value {value:?} for tmpfs option {key}"));
        }
        out.push(option.to_owned());
    }
    Ok(out.join(","))
}

/// Docker's volume filters: for `GET /volumes` (name, label, driver, dangling) and for
/// prune (label, label!, all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFilter {
    names: Vec<String>,
    drivers: Vec<String>,
    labels: Vec<String>,
    not_labels: Vec<String>,
    dangling: Option<bool>,
    /// Prune only: named volumes too, not only anonymous ones.
    pub all: bool,
}

fn boolean(key: &str, value: &str) -> Result<bool, VolumeError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(VolumeError::BadFilter(format!("'{key}={value}'"))),
    }
}

impl VolumeFilter {
    /// The filters of `GET /volumes`.
    pub fn for_list(filters: &BTreeMap<String, Vec<String>>) -> Result<Self, VolumeError> {
        Self::parse(filters, &["name", "label", "driver", "dangling"])
    }

    /// The filters of `POST /volumes/prune`.
    pub fn for_prune(filters: &BTreeMap<String, Vec<String>>) -> Result<Self, VolumeError> {
        Self::parse(filters, &["label", "label!", "all"])
    }

    fn parse(
        filters: &BTreeMap<String, Vec<String>>,
        allowed: &[&str],
    ) -> Result<Self, VolumeError> {
        let mut f = VolumeFilter::default();
        for (key, values) in filters {
            if !allowed.contains(&key.as_str()) {
                return Err(VolumeError::BadFilter(format!("'{key}'")));
            }
            for value in values {
                match key.as_str() {
                    "name" => f.names.push(value.clone()),
                    "driver" => f.drivers.push(value.clone()),
                    "label" => f.labels.push(value.clone()),
                    "label!" => f.not_labels.push(value.clone()),
                    "dangling" => f.dangling = Some(boolean(key, value)?),
                    _ => f.all = boolean(key, value)?,
                }
            }
        }
        Ok(f)
    }

    /// Whether `volume` passes; `in_use`: some container mounts it.
    pub fn matches(&self, volume: &Volume, in_use: bool) -> bool {
        let has = |label: &str| match label.split_once('=') {
            Some((k, v)) => volume.labels.get(k).is_some_and(|have| have == v),
            None => volume.labels.contains_key(label),
        };
        (self.names.is_empty() || self.names.iter().any(|n| volume.name.contains(n.as_str())))
            && (self.drivers.is_empty() || self.drivers.contains(&volume.driver))
            && self.labels.iter().all(|l| has(l))
            && !self.not_labels.iter().any(|l| has(l))
            && self.dangling.is_none_or(|dangling| dangling != in_use)
    }
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub bytes: u64,
}

pub struct Volumes {
    dir: PathBuf,
    /// Serialises creation and removal: a std Mutex, not a tokio one, because nothing awaits
    /// while it is held.
    lock: Mutex<()>,
}

impl Volumes {
    /// Open (or make) the volumes directory and clear what an interrupted create or remove
    /// left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Volumes, VolumeError> {
        let dir = dir.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o701)
            .create(&dir)
            .map_err(io("-", format!("create {}", dir.display())))?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".new-") || name.starts_with(".gone-") {
                    let path = entry.path();
                    unmount_if_mounted(&path.join(DATA));
                    if let Err(e) = std::fs::remove_dir_all(&path) {
                        tracing::warn!(path = %path.display(), "cannot clear a leftover: {e}");
                    }
                }
            }
        }
        Ok(Volumes {
            dir,
            lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn volume_of(&self, record: Record) -> Volume {
        Volume {
            mountpoint: self.dir.join(&record.name).join(DATA).display().to_string(),
            name: record.name,
            driver: record.driver,
            created_at: record.created_at,
            labels: record.labels,
            scope: "local".into(),
            options: record.options,
        }
    }

    /// The record of `name`; `None` if there is no such volume. A directory with `_data` but
    /// no metadata (made by an older daemon) is adopted as a plain local volume.
    fn load(&self, name: &str) -> Result<Option<Record>, VolumeError> {
        if !valid_name(name) {
            return Ok(None);
        }
        let path = self.dir.join(name);
        match std::fs::read(path.join(METADATA)) {
            Ok(bytes) => {
                let record: Record = serde_json::from_slice(&bytes).map_err(|e| {
                    io(name, "read its metadata")(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e,
                    ))
                })?;
                if record.format != FORMAT || record.name != name {
                    return Err(io(name, "read its metadata")(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("format {} of {:?} is not ours", record.format, record.name),
                    )));
                }
                Ok(Some(record))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Ok(data) = std::fs::metadata(path.join(DATA)) else {
                    return Ok(None);
                };
                if !data.is_dir() {
                    return Ok(None);
                }
                let created = chrono::DateTime::from_timestamp(data.mtime(), 0)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let record = Record {
                    format: FORMAT,
                    name: name.to_owned(),
                    driver: LOCAL_DRIVER.into(),
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    created_at: created,
                };
                write_metadata(&path, &record)?;
                Ok(Some(record))
            }
            Err(e) => Err(io(name, "read its metadata")(e)),
        }
    }

    /// `POST /volumes/create`: make a volume, or return the one of that name. An empty name
    /// makes an anonymous volume (a random 64-hex name and Docker's anonymous label).
    pub fn create(&self, request: VolumeCreateRequest) -> Result<Volume, VolumeError> {
        let mut labels = request.labels;
        let name = if request.name.is_empty() {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
            super::containers::random_id()
        } else {
            request.name
        };
        if !valid_name(&name) {
            return Err(VolumeError::BadName(name));
        }
        let driver = if request.driver.is_empty() {
            LOCAL_DRIVER.to_owned()
        } else {
            request.driver
        };
        if driver != LOCAL_DRIVER {
            return Err(VolumeError::UnknownDriver { name, driver });
        }
        backing(&request.driver_opts).map_err(|message| VolumeError::BadOption {
            name: name.clone(),
            message,
        })?;
        let _guard = self.guard();
        if let Some(existing) = self.load(&name)? {
            return Ok(self.volume_of(existing));
        }
        let record = Record {
            format: FORMAT,
            name: name.clone(),
            driver,
            labels,
            options: request.driver_opts,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let staging = self
            .dir
            .join(format!(".new-{}", &super::containers::random_id()[..16]));
        let made = (|| {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(&staging)
                .map_err(io(&name, "create its directory"))?;
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(staging.join(DATA))
                .map_err(io(&name, "create _data"))?;
            write_metadata(&staging, &record)?;
            std::fs::rename(&staging, self.dir.join(&name))
                .map_err(io(&name, "put it in place"))?;
            sync_dir(&self.dir);
            Ok(())
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        tracing::info!(volume = %name, "volume created");
        Ok(self.volume_of(record))
    }

    /// `GET /volumes/{name}`.
    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        match self.load(name)? {
            Some(r) => Ok(self.volume_of(r)),
            None => Err(VolumeError::NotFound {
                op: "get",
                name: name.to_owned(),
            }),
        }
    }

    /// Every volume, by name. One unreadable volume is logged and left out, not fatal.
    pub fn list(&self) -> Vec<Volume> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| match self.load(&name) {
                Ok(record) => record.map(|r| self.volume_of(r)),
                Err(e) => {
                    tracing::warn!("skipping a volume: {e}");
                    None
                }
            })
            .collect()
    }

    /// The directory a container binds for volume `name`: the volume is made on first use
    /// (with `options`, when it is new), and a tmpfs volume is mounted if it is not yet.
    pub fn mountpoint(
        &self,
        name: &str,
        options: Option<VolumeCreateRequest>,
    ) -> Result<PathBuf, VolumeError> {
        let existing = {
            let _guard = self.guard();
            self.load(name)?
        };
        let record = match existing {
            Some(r) => r,
            None => {
                let mut request = options.unwrap_or_default();
                request.name = name.to_owned();
                self.create(request)?;
                let _guard = self.guard();
                self.load(name)?.ok_or_else(|| VolumeError::NotFound {
                    op: "mount",
                    name: name.to_owned(),
                })?
            }
        };
        let data = self.dir.join(name).join(DATA);
        let backing = backing(&record.options).map_err(|message| VolumeError::BadOption {
            name: name.to_owned(),
            message,
        })?;
        if let Backing::Tmpfs { data: options } = backing {
            let _guard = self.guard();
            if !is_mountpoint(&data) {
                use nix::mount::{MsFlags, mount};
                mount(
                    Some("tmpfs"),
                    &data,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    (!options.is_empty()).then_some(options.as_str()),
                )
                .map_err(|e| io(name, "mount its tmpfs")(std::io::Error::from(e)))?;
                tracing::info!(volume = %name, "tmpfs mounted");
            }
        }
        Ok(data)
    }

    /// `DELETE /volumes/{name}`: refused while a container uses it, with or without `force`
    /// (as Docker); `force` makes a missing volume no error.
    pub fn remove(&self, name: &str, force: bool, users: &VolumeUsers) -> Result<(), VolumeError> {
        let _guard = self.guard();
        if self.load(name)?.is_none() {
            if force {
                return Ok(());
            }
            return Err(VolumeError::NotFound {
                op: "remove",
                name: name.to_owned(),
            });
        }
        if let Some(containers) = users.get(name).filter(|c| !c.is_empty()) {
            return Err(VolumeError::InUse {
                name: name.to_owned(),
                containers: containers.clone(),
            });
        }
        self.delete(name)
    }

    /// Remove a volume known to exist and to be unused (the lock held).
    fn delete(&self, name: &str) -> Result<(), VolumeError> {
        let path = self.dir.join(name);
        let data = path.join(DATA);
        if is_mountpoint(&data) {
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| io(name, "unmount its tmpfs")(std::io::Error::from(e)))?;
        }
        // Gone from its name at once, then deleted: a crash in between leaves only a
        // `.gone-` directory, which the next start clears.
        let gone = self
            .dir
            .join(format!(".gone-{}", &super::containers::random_id()[..16]));
        std::fs::rename(&path, &gone).map_err(io(name, "move it away"))?;
        sync_dir(&self.dir);
        if let Err(e) = std::fs::remove_dir_all(&gone) {
            tracing::warn!(volume = %name, "removed, but its files are left in {}: {e}", gone.display());
        }
        tracing::info!(volume = %name, "volume removed");
        Ok(())
    }

    /// `POST /volumes/prune`: remove the volumes no container uses that pass `filter`; only
    /// anonymous ones unless `filter.all` (Docker's rule since API 1.42).
    pub fn prune(&self, filter: &VolumeFilter, users: &VolumeUsers) -> PruneReport {
        let mut report = PruneReport::default();
        for volume in self.list() {
            let in_use = users.get(&volume.name).is_some_and(|c| !c.is_empty());
            let anonymous = volume.labels.contains_key(ANONYMOUS_LABEL);
            if in_use || (!filter.all && !anonymous) || !filter.matches(&volume, false) {
                continue;
            }
            let _guard = self.guard();
            let bytes = disk_usage(&self.dir.join(&volume.name).join(DATA));
            match self.delete(&volume.name) {
                Ok(()) => {
                    report.deleted.push(volume.name);
                    report.bytes += bytes;
                }
                Err(e) => tracing::warn!("prune: {e}"),
            }
        }
        report
    }
}

fn write_metadata(dir: &Path, record: &Record) -> Result<(), VolumeError> {
    let body = serde_json::to_vec_pretty(record).unwrap_or_default();
    let tmp = dir.join(format!("{METADATA}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(METADATA))
    };
    write().map_err(io(&record.name, "write its metadata"))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Whether something is mounted on `path` (it is on another device than its parent).
fn is_mountpoint(path: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    me.dev() != parent.dev()
}

fn unmount_if_mounted(path: &Path) {
    if is_mountpoint(path) {
        let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Bytes in the regular files under `dir` (symlinks are not followed), bounded in depth.
fn disk_usage(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize) -> u64 {
        if depth > 64 {
            return 0;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path(), depth + 1),
                Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => 0,
            })
            .sum()
    }
    walk(dir, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn filters(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
        out
    }

    fn volume(name: &str, labels: &[(&str, &str)]) -> Volume {
        Volume {
            name: name.into(),
            driver: LOCAL_DRIVER.into(),
            labels: opts(labels),
            ..Default::default()
        }
    }

    #[test]
    fn t10_driver_options_are_checked() {
        assert_eq!(backing(&opts(&[])), Ok(Backing::Directory));
        assert_eq!(
            backing(&opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=64m,mode=1777")
            ])),
            Ok(Backing::Tmpfs {
                data: "size=64m,mode=1777".into()
            })
        );
        for (bad, says) in [
            (opts(&[("color", "red")]), "invalid option \"color\""),
            (opts(&[("type", "nfs")]), "not supported"),
            (opts(&[("o", "size=1m")]), "need type=tmpfs"),
            (
                opts(&[("type", "tmpfs"), ("device", "/dev/sda")]),
                "use device=tmpfs",
            ),
            (opts(&[("type", "tmpfs"), ("o", "size=lots")]), "size"),
            (opts(&[("type", "tmpfs"), ("o", "exec")]), "KEY=VALUE"),
            (opts(&[("type", "tmpfs"), ("o", "mode=999")]), "mode"),
            (opts(&[("type", "tmpfs"), ("o", "bogus=1")]), "bogus"),
        ] {
            let e = backing(&bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn t10_list_filters() {
        let v = volume("app-data", &[("env", "prod"), ("team", "")]);
        let pass = |pairs: &[(&str, &str)], in_use: bool| {
            VolumeFilter::for_list(&filters(pairs))
                .unwrap()
                .matches(&v, in_use)
        };
        assert!(pass(&[], false));
        assert!(pass(&[("name", "data")], false));
        assert!(pass(&[("name", "zzz"), ("name", "app")], false));
        assert!(!pass(&[("name", "zzz")], false));
        assert!(pass(&[("label", "env=prod"), ("label", "team")], false));
        assert!(!pass(&[("label", "env=dev")], false));
        assert!(!pass(&[("label", "env"), ("label", "other")], false));
        assert!(pass(&[("driver", "local")], false));
        assert!(!pass(&[("driver", "nfs")], false));
        assert!(pass(&[("dangling", "true")], false));
        assert!(!pass(&[("dangling", "1")], true));
        assert!(pass(&[("dangling", "false")], true));
        for bad in [("dangling", "maybe"), ("color", "red"), ("all", "true")] {
            assert!(
                matches!(
                    VolumeFilter::for_list(&filters(&[bad])),
                    Err(VolumeError::BadFilter(_))
                ),
                "{bad:?}"
            );
        }
        let prune =
            VolumeFilter::for_prune(&filters(&[("all", "true"), ("label!", "env=prod")])).unwrap();
        assert!(prune.all);
        assert!(!prune.matches(&v, false));
        assert!(VolumeFilter::for_prune(&filters(&[("name", "x")])).is_err());
        assert!(!VolumeFilter::for_prune(&filters(&[])).unwrap().all);
    }

    #[test]
    fn t20_create_get_list_remove_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::open(dir.path().join("volumes")).unwrap();
        let made = volumes
            .create(VolumeCreateRequest {
                name: "data".into(),
                labels: opts(&[("k", "v")]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(made.driver, "local");
        assert_eq!(made.scope, "local");
        assert!(Path::new(&made.mountpoint).is_dir());
        assert!(made.mountpoint.ends_with("/volumes/data/_data"));
        // The same name again: the existing volume, its labels unchanged.
        let again = volumes
            .create(VolumeCreateRequest {
                name: "data".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(again, made);
        std::fs::write(Path::new(&made.mountpoint).join("f"), b"12345").unwrap();

        let anonymous = volumes.create(VolumeCreateRequest::default()).unwrap();
        assert_eq!(anonymous.name.len(), 64);
        assert!(anonymous.labels.contains_key(ANONYMOUS_LABEL));

        for bad in ["../etc", "a", ".x", "a/b"] {
            let e = volumes
                .create(VolumeCreateRequest {
                    name: bad.into(),
                    ..Default::default()
                })
                .unwrap_err();
            assert!(matches!(e, VolumeError::BadName(_)), "{bad}: {e}");
            assert!(volumes.get(bad).is_err());
        }
        let e = volumes
            .create(VolumeCreateRequest {
                name: "x1".into(),
                driver: "nfs".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(e, VolumeError::UnknownDriver { .. }), "{e}");

        // Reopened (a daemon restart): everything is still there.
        drop(volumes);
        let volumes = Volumes::open(dir.path().join("volumes")).unwrap();
        let names: Vec<String> = volumes.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(volumes.get("data").unwrap(), made);

        let users = VolumeUsers::from([("data".to_owned(), vec!["c1".to_owned()])]);
        let e = volumes.remove("data", true, &users).unwrap_err();
        assert_eq!(e.to_string(), "remove data: volume is in use - [c1]");
        let e = volumes.remove("nope", false, &users).unwrap_err();
        assert_eq!(e.to_string(), "remove nope: no such volume");
        volumes.remove("nope", true, &users).unwrap();

        // Prune: only the anonymous one unless all; the used one never.
        let report = volumes.prune(&VolumeFilter::default(), &users);
        assert_eq!(report.deleted, vec![anonymous.name.clone()]);
        let all = VolumeFilter {
            all: true,
            ..Default::default()
        };
        assert!(volumes.prune(&all, &users).deleted.is_empty());
        let report = volumes.prune(&all, &VolumeUsers::new());
        assert_eq!(report.deleted, vec!["data".to_owned()]);
        assert_eq!(report.bytes, 5);
        assert!(volumes.list().is_empty());
        let left: Vec<_> = std::fs::read_dir(volumes.dir()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn t20_legacy_directories_are_adopted_and_leftovers_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("volumes");
        std::fs::create_dir_all(root.join("old/_data")).unwrap();
        std::fs::create_dir_all(root.join(".new-0123/_data")).unwrap();
        std::fs::create_dir_all(root.join("not-a-volume")).unwrap();
        let volumes = Volumes::open(&root).unwrap();
        assert!(!root.join(".new-0123").exists());
        let names: Vec<String> = volumes.list().into_iter().map(|v| v.name).collect();
        assert_eq!(names, vec!["old".to_owned()]);
        assert!(root.join("old").join(METADATA).exists());
    }
}
