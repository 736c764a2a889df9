//! `docker exec` through the daemon: an exec instance is created, then started; starting
//! spawns `swarm __exec` (the daemon must not fork into a container's namespaces itself: it
//! is multi-threaded), whose stdio the API connects to the client.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Process;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};

use crate::api::ApiError;
use crate::types::container::{ExecCreateRequest, ExecInspect};

/// One exec instance.
#[derive(Debug, Clone)]
struct ExecEntry {
    container: String,
    process: Process,
    user_name: Option<String>,
    open_stdin: bool,
    tty: bool,
    running: bool,
    exit_code: Option<i64>,
    pid: i64,
}

/// The exec instances of this daemon (kept in memory, like Docker's).
#[derive(Default)]
pub struct Execs {
    /// A std Mutex, not a tokio one: nothing awaits while it is held.
    entries: Mutex<HashMap<String, ExecEntry>>,
}

/// A started exec: its stdio, for the API to connect to the client.
pub struct ExecIo {
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
    pub tty: bool,
}

impl Execs {
    /// Register an exec of `request` in `container` (its id), based on the container's
    /// own process (env, capabilities, user) as Docker does.
    pub fn create(
        &self,
        container: &str,
        base: Process,
        container_user: Option<String>,
        request: &ExecCreateRequest,
    ) -> Result<String, ApiError> {
        if request.cmd.is_empty() {
            return Err(ApiError::bad_request("No exec command specified"));
        }
        if request.privileged {
            return Err(ApiError::bad_request("privileged exec is not supported"));
        }
        let mut process = base;
        process.set_args(Some(request.cmd.clone()));
        process.set_terminal(Some(request.tty));
        if let Some(env) = &request.env {
            let mut all = process.env().clone().unwrap_or_default();
            all.extend(env.iter().cloned());
            process.set_env(Some(all));
        }
        if !request.working_dir.is_empty() {
            if !request.working_dir.starts_with('/') {
                return Err(ApiError::bad_request(
                    "the working directory must be absolute",
                ));
            }
            process.set_cwd(request.working_dir.clone().into());
        }
        let mut user_name = container_user;
        if !request.user.is_empty() {
            let (u, g) = match request.user.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (request.user.as_str(), None),
            };
            match (u.parse::<u32>(), g.map(str::parse::<u32>)) {
                (Ok(uid), None) | (Ok(uid), Some(Ok(_))) => {
                    let mut user = process.user().clone();
                    user.set_uid(uid);
                    user.set_gid(g.and_then(|g| g.parse().ok()).unwrap_or(0));
                    process.set_user(user);
                    user_name = None;
                }
                _ => user_name = Some(request.user.clone()),
            }
        }
        let id = crate::agent::containers::random_id();
        let entry = ExecEntry {
            container: container.to_string(),
            process,
            user_name,
            open_stdin: request.attach_stdin,
            tty: request.tty,
            running: false,
            exit_code: None,
            pid: 0,
        };
        self.lock().insert(id.clone(), entry);
        Ok(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn inspect(&self, id: &str) -> Result<ExecInspect, ApiError> {
        let entries = self.lock();
        let entry = entries
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
        Ok(ExecInspect {
            id: id.to_string(),
            container_id: entry.container.clone(),
            running: entry.running,
            exit_code: entry.exit_code,
            open_stdin: entry.open_stdin,
            pid: entry.pid,
        })
    }

    /// Start an exec: spawn the helper, record its exit when it ends.
    pub fn start(
        self: &Arc<Self>,
        id: &str,
        helper: &std::path::Path,
        runtime_root: &std::path::Path,
    ) -> Result<ExecIo, ApiError> {
        let entry = {
            let mut entries = self.lock();
            let entry = entries
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
            if entry.running || entry.exit_code.is_some() {
                return Err(ApiError::conflict(format!(
                    "exec instance {id} has already been started"
                )));
            }
            entry.running = true;
            entry.clone()
        };
        let process = serde_json::to_string(&entry.process)
            .map_err(|e| ApiError::internal(format!("encode the process: {e}")))?;
        let mut command = tokio::process::Command::new(helper);
        command
            .arg("__exec")
            .arg("--root")
            .arg(runtime_root)
            .arg("--id")
            .arg(&entry.container)
            .arg("--process")
            .arg(process)
            .stdin(if entry.open_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(user) = &entry.user_name {
            command.arg("--user-name").arg(user);
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.finish(id, 126);
                return Err(ApiError::internal(format!("start the exec helper: {e}")));
            }
        };
        if let Some(entries) = self.lock().get_mut(id) {
            entries.pid = child.id().map(i64::from).unwrap_or(0);
        }
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(ApiError::internal("exec helper without stdio"));
        };
        let execs = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => status.code().unwrap_or(255),
                Err(_) => 255,
            };
            execs.finish(&id, code);
        });
        Ok(ExecIo {
            stdin,
            stdout,
            stderr,
            tty: entry.tty,
        })
    }

    fn finish(&self, id: &str, code: i32) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.running = false;
            entry.exit_code = Some(i64::from(code));
        }
    }
}
