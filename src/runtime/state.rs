//! A container's state on disk, and its lifecycle.
//!
//! Everything the runtime knows about a container lives in `<root>/<id>/`, so that a
//! container outlives the process that created it and is found again by any later process:
//!
//! ```text
//!  <root>/<id>/record.json   ContainerRecord: pid (+ its start time), helper pid, bundle, cgroup
//!  <root>/<id>/spec.json     the spec it was created from (exec needs caps, seccomp, env)
//!  <root>/<id>/exec.fifo     exists while the container is created but not started
//!  <root>/<id>/exit.json     ExitStatus, written by the helper when init exits
//!  <root>/<id>/container.log JSON lines of stdout/stderr (+ .1, .2 … when rotated)
//! ```
//!
//! Files are written atomically (temp file + rename), so a reader never sees half a record.
//! They are not fsynced: like the processes they describe, they do not outlive a reboot.
//! The status is derived, not stored: a stored "running" would lie after a crash.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Context, Result, RuntimeError};

/// Bumped when the on-disk record changes shape.
pub const RECORD_FORMAT: u8 = 1;

pub const RECORD_FILE: &str = "record.json";
pub const SPEC_FILE: &str = "spec.json";
pub const EXIT_FILE: &str = "exit.json";
pub const FIFO_FILE: &str = "exec.fifo";
pub const LOG_FILE: &str = "container.log";

/// The OCI lifecycle of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The helper is setting the container up.
    Creating,
    /// Set up, init waiting for `start`.
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }

    pub fn can_start(self) -> bool {
        self == Status::Created
    }

    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }

    pub fn can_exec(self) -> bool {
        self == Status::Running
    }

    /// Without `--force`, only containers whose processes are gone (or never ran) are deleted.
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Created | Status::Stopped)
    }

    /// The lifecycle's edges: creating → created → running → stopped, and created → stopped
    /// (killed before start).
    pub fn can_transition_to(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Creating, Created)
                | (Creating, Stopped)
                | (Created, Running)
                | (Created, Stopped)
                | (Running, Stopped)
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so table columns (`{:<10}`) line up.
        f.pad(self.as_str())
    }
}

/// What the runtime records about a container when it is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub format: u8,
    pub id: String,
    pub bundle: PathBuf,
    /// The root filesystem as seen from the host (the overlay mount point lives only inside the
    /// container's mount namespace).
    pub rootfs: PathBuf,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
    /// recycled pid is never mistaken for the container.
    pub pid_start_time: u64,
    /// Pid of the helper that reaps init and writes its logs (0 when the creator itself was
    /// the helper, as in a foreground `run`).
    pub helper_pid: i32,
    pub helper_start_time: u64,
    /// Cgroup path relative to each hierarchy root.
    pub cgroup_path: String,
    /// RFC 3339 creation time.
    pub created: String,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// How a container's init ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code as a shell reports it: the code, or 128 + signal number.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// RFC 3339 time the helper saw the exit.
    pub finished: String,
}

/// The state of a container: its record plus the derived status, in the OCI shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty", default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Present once stopped (our extension; OCI tools ignore it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit: Option<ExitStatus>,
}

/// Check a container id: it names a directory, so no separators, no dot-names, bounded.
pub fn validate_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("empty")
    } else if id.len() > 128 {
        Some("longer than 128 characters")
    } else if id.starts_with('.') || id.starts_with('-') {
        Some("must not start with '.' or '-'")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Some("only letters, digits, '_', '-' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(RuntimeError::InvalidId {
            id: id.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Write `value` as JSON to `path` atomically: temp file, then rename, so a reader sees the
/// old file or the new one, never half of one. No fsync: this state describes processes
/// that do not survive a reboot either (it lives on /run, like runc's), so durability buys
/// nothing and would cost every container start a disk flush.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(value)
        .map_err(|e| RuntimeError::Remote(format!("encode {}: {e}", path.display())))?;
    let mut file = fs::File::create(&tmp).context(|| format!("create {}", tmp.display()))?;
    file.write_all(&body)
        .context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).context(|| format!("rename {} into place", tmp.display()))
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            RuntimeError::Remote(format!("corrupt state file {}: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io(format!("read {}", path.display()), e)),
    }
}

/// Start time of a process (clock ticks since boot), `None` if it does not exist.
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); start time is field 22.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?;
    if *state == "Z" || *state == "X" {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Is `pid` still the process that had `start_time`?
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    process_start_time(pid) == Some(start_time)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 4] = [
        Status::Creating,
        Status::Created,
        Status::Running,
        Status::Stopped,
    ];

    #[test]
    fn t10_lifecycle_edges_over_every_pair() {
        let allowed = [
            (Status::Creating, Status::Created),
            (Status::Creating, Status::Stopped),
            (Status::Created, Status::Running),
            (Status::Created, Status::Stopped),
            (Status::Running, Status::Stopped),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn t10_guards() {
        assert!(Status::Created.can_start());
        assert!(!Status::Running.can_start());
        assert!(Status::Running.can_kill() && Status::Created.can_kill());
        assert!(!Status::Stopped.can_kill());
        assert!(Status::Stopped.can_delete() && !Status::Running.can_delete());
        assert!(Status::Running.can_exec() && !Status::Created.can_exec());
    }

    #[test]
    fn t10_ids() {
        for ok in ["a", "web.1", "task_abc-9"] {
            validate_id(ok).unwrap();
        }
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-rf",
            &"x".repeat(129),
            "sp ace",
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn t10_start_time_of_self_and_of_nothing() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("own start time");
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
        assert_eq!(process_start_time(0), None);
        assert_eq!(process_start_time(i32::MAX), None);
    }

    #[test]
    fn t10_atomic_json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let status = ExitStatus {
            code: 137,
            signal: Some(9),
            oom_killed: true,
            finished: now_rfc3339(),
        };
        write_json_atomic(&path, &status).unwrap();
        assert_eq!(read_json::<ExitStatus>(&path).unwrap(), Some(status));
        assert!(
            read_json::<ExitStatus>(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
        fs::write(&path, b"{not json").unwrap();
        assert!(read_json::<ExitStatus>(&path).is_err());
    }
}
