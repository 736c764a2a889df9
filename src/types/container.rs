//! Local containers in the Docker Engine API's shapes (`POST /containers/create`,
//! `GET /containers/json`, `GET /containers/{id}/json`), the subset swarm supports.
//! Unknown fields are ignored, like Docker's older daemons do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::serde_util::null_as_default;
use super::time::Timestamp;

/// `POST /containers/create` body: the container config with its `HostConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreateRequest {
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    /// The container's health check; at create the image's fills what this leaves out.
    pub healthcheck: Option<HealthConfig>,
    pub host_config: HostConfig,
}

/// Docker's `HealthConfig` (a container's `Healthcheck`, a service's
/// `ContainerSpec.Healthcheck`, an image's `HEALTHCHECK`). Durations in nanoseconds; 0
/// inherits from the image, else takes Docker's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", arg…]`, `["CMD-SHELL", "command"]`.
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// The interval during the start period (API 1.44).
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl HealthConfig {
    /// Docker's checks, with its messages: durations are 0 (default) or at least 1 ms,
    /// retries are not negative, and the test is one of the known forms.
    pub fn validate(&self) -> Result<(), String> {
        const MIN: i64 = 1_000_000;
        for (what, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v < 0 {
                return Err(format!("{what} in Healthcheck cannot be negative"));
            }
            if v != 0 && v < MIN {
                return Err(format!("{what} in Healthcheck cannot be less than 1ms"));
            }
        }
        if self.retries < 0 {
            return Err("Retries in Healthcheck cannot be negative".into());
        }
        match self.test.first().map(String::as_str) {
            None | Some("NONE") => Ok(()),
            Some("CMD" | "CMD-SHELL") if self.test.len() < 2 => Err(format!(
                "invalid Healthcheck test {:?}: {} needs a command",
                self.test, self.test[0]
            )),
            Some("CMD" | "CMD-SHELL") => Ok(()),
            Some(other) => Err(format!(
                "invalid Healthcheck test {:?}: unknown type {other:?} (expected NONE, CMD or CMD-SHELL)",
                self.test
            )),
        }
    }
}

/// A container's `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: HealthStatus,
    /// Consecutive failed probes (those of the start period do not count).
    pub failing_streak: u64,
    /// The last probes, oldest first.
    pub log: Vec<HealthcheckResult>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe in `State.Health.Log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthcheckResult {
    pub start: Timestamp,
    pub end: Timestamp,
    /// 0 healthy, else unhealthy; -1 when the probe could not run or timed out.
    pub exit_code: i64,
    pub output: String,
}

/// The `HostConfig` fields swarm honours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// Memory limit in bytes (0: unlimited).
    pub memory: i64,
    /// CPUs in units of 10⁻⁹ (`--cpus 0.5` is 500000000).
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    /// 0 or -1: unlimited.
    pub pids_limit: Option<i64>,
    /// `SRC:DST[:ro|rw]`: SRC is an absolute host path or a volume name.
    pub binds: Option<Vec<String>>,
    /// `--mount`: bind, volume (named or anonymous) and tmpfs mounts.
    pub mounts: Option<Vec<Mount>>,
    pub readonly_rootfs: bool,
    /// `none` (default here: an isolated network namespace with only `lo`), `host`,
    /// `default`/`bridge` (treated as `none` until container networking lands).
    pub network_mode: String,
    pub auto_remove: bool,
    /// tmpfs mounts: destination → options.
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub privileged: bool,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
}

/// `POST /containers/create` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

/// One row of `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    /// created, running, exited.
    pub state: String,
    /// `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// Only for containers with a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub image: String,
    pub name: String,
    pub config: ContainerCreateRequest,
    pub host_config: HostConfig,
}

/// `POST /containers/{id}/wait` answer, written once the condition is met. `Error` is
/// always present (`null` when the wait went well), as Docker sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerWaitResponse {
    pub status_code: i64,
    #[serde(default)]
    pub error: Option<WaitExitError>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitExitError {
    pub message: String,
}

/// `POST /containers/{id}/wait?condition=`: what to wait for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WaitCondition {
    /// `not-running` (the default): at once if the container is not running (created or
    /// exited), else when it exits.
    #[default]
    NotRunning,
    /// `next-exit`: the next exit, even of a container only created (the docker CLI asks
    /// for this before it starts the container).
    NextExit,
    /// `removed`: once the container is removed (`--rm`).
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = String;

    /// Docker's names; an empty condition is the default.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(format!(
                "invalid condition: {other:?} (use not-running, next-exit or removed)"
            )),
        }
    }
}

/// `POST /containers/{id}/exec` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreateRequest {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub cmd: Vec<String>,
    pub env: Option<Vec<String>>,
    pub working_dir: String,
    pub user: String,
    pub privileged: bool,
}

/// `{"Id": …}` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdResponse {
    pub id: String,
}

/// `POST /exec/{id}/start` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartRequest {
    pub detach: bool,
    pub tty: bool,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub open_stdin: bool,
    pub pid: i64,
}

/// One entry of `HostConfig.Mounts` (`docker run --mount`, a task's mounts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// A host path (bind), a volume name (volume; empty: a new anonymous volume).
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub volume_options: Option<VolumeOptions>,
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// How a volume a mount names is created when it does not exist yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    pub no_copy: bool,
    #[serde(deserialize_with = "super::serde_util::null_as_default")]
    pub labels: BTreeMap<String, String>,
    pub driver_config: Option<DriverConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverConfig {
    pub name: String,
    #[serde(deserialize_with = "super::serde_util::null_as_default")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: i64,
    /// Permission bits (e.g. 0o1777).
    pub mode: u32,
}
