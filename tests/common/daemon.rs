//! A real `swarm daemon` for tests: its own data dir, exec root and socket in a temp dir.
//! On drop it removes its containers through the API, kills the daemon, and force-deletes
//! whatever runtime containers are left (containers outlive the daemon by design).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::{SWARM, run_logged};

pub struct Daemon {
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
    /// Extra `swarm daemon` flags, kept for restarts.
    pub args: Vec<String>,
    /// Extra environment (e.g. `FAILPOINTS`), applied from the next (re)start on.
    pub env: Vec<(String, String)>,
}

impl Daemon {
    pub fn start(name: &str) -> Daemon {
        Daemon::start_with::<&str>(name, &[])
    }

    /// A daemon with extra `swarm daemon` flags (listen address, timing, …).
    pub fn start_with<S: AsRef<str>>(name: &str, args: &[S]) -> Daemon {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!("swarm-test-{name}-"))
            .tempdir()
            .unwrap();
        let socket = dir.path().join("run/swarm.sock");
        let child = spawn_with(dir.path(), &socket, &args);
        wait_for_socket(&socket);
        Daemon {
            child: Some(child),
            socket,
            dir,
            args,
            env: Vec::new(),
        }
    }

    /// SIGKILL the daemon, as a crash would stop it (its containers and state stay).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the daemon again on the same state.
    pub fn restart(&mut self) {
        assert!(
            self.restart_or_exit(),
            "daemon {} exited while starting",
            self.socket.display()
        );
    }

    /// Start the daemon again on the same state and wait until it listens, or until it
    /// exits (a crash point may kill it while it starts): whether it is up.
    pub fn restart_or_exit(&mut self) -> bool {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
        let mut child = spawn_env(self.dir.path(), &self.socket, &self.args, &self.env);
        let deadline = Instant::now() + Duration::from_secs(20);
        let up = loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                break true;
            }
            if matches!(child.try_wait(), Ok(Some(_))) {
                break false;
            }
            assert!(
                Instant::now() < deadline,
                "daemon never listened on {}",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.child = Some(child);
        up
    }

    /// How the daemon ended, if it has (without waiting); `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The daemon's log (its stderr, over all its restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `swarm -H <socket> ARGS`, logged.
    pub fn swarm(&self, args: &[&str]) -> Output {
        let mut command = Command::new(SWARM);
        command
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null());
        run_logged(&mut command, &format!("swarm {}", args.join(" ")))
    }

    /// Run and expect success; return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.swarm(args);
        assert!(out.status.success(), "swarm {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The real docker CLI against this daemon, logged. Bounded: a daemon that never answers
    /// fails the test (exit 124/137 from `timeout`) instead of hanging it; `-k` because the Go
    /// CLI ignores SIGTERM while it waits on some calls.
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut command = Command::new("timeout");
        command
            .args(["-k", "5", "120", "docker"])
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args);
        run_logged(&mut command, &format!("docker {}", args.join(" ")))
    }

    /// Import the busybox fixture as `busybox:test` (CMD sh, one ENV).
    pub fn import_busybox(&self) {
        let tarball = self.dir.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(super::fixture_rootfs())
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        self.ok(&[
            "image",
            "import",
            tarball.to_str().unwrap(),
            "busybox:test",
            "--change",
            "CMD [\"sh\"]",
            "--change",
            "ENV GREETING=from-image",
        ]);
    }

    /// Nothing of any container is left in the runtime's state.
    pub fn assert_no_runtime_leftovers(&self) {
        let root = self.dir.path().join("run/runtime");
        let left: Vec<_> = std::fs::read_dir(&root)
            .map(|e| {
                e.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "runtime state left: {left:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.dir.path().join("daemon.log"))
        {
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- last lines of {}'s log:", self.socket.display());
            let lines: Vec<&str> = lines
                .into_iter()
                .filter(|l| !l.contains("openraft"))
                .collect();
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("    {line}");
            }
        }
        if let Ok(out) = Command::new(SWARM)
            .arg("-H")
            .arg(self.host())
            .args(["ps", "-a", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new(SWARM)
                    .arg("-H")
                    .arg(self.host())
                    .args(["rm", "-f", id])
                    .output();
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let runtime_root = self.dir.path().join("run/runtime");
        if let Ok(out) = Command::new(SWARM)
            .args(["runtime", "--root"])
            .arg(&runtime_root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new(SWARM)
                    .args(["runtime", "--root"])
                    .arg(&runtime_root)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
    }
}

/// Start a daemon on `socket` with its state under `dir`.
pub fn spawn(dir: &Path, socket: &Path) -> Child {
    spawn_with(dir, socket, &[])
}

/// The same with extra flags; its log goes to `dir/daemon.log`.
pub fn spawn_with(dir: &Path, socket: &Path, args: &[String]) -> Child {
    spawn_env(dir, socket, args, &[])
}

/// The same with extra environment variables.
pub fn spawn_env(dir: &Path, socket: &Path, args: &[String], env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    Command::new(SWARM)
        .arg("daemon")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

pub fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "daemon never listened on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
