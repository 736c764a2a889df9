//! Several real `swarm daemon`s, each on its own "host": a network namespace on a bridge of
//! this test's own, with its own hostname, data dir, exec root and API socket.
//!
//! ```text
//!   root netns:  bridge swt<S>-br (no address: the test talks to daemons over their sockets)
//!                 ├── veth swt<S>-v0 ══ eth0 in netns swt<S>-h0  198.18.0.(101+10S)  daemon h0
//!                 ├── veth swt<S>-v1 ══ eth0 in netns swt<S>-h1  198.18.0.(102+10S)  daemon h1
//!                 └── …
//!   faults:      kill9 / restart a daemon; isolate / cut / heal with iptables DROP rules on
//!                eth0 inside a host's netns (packets vanish, as in a real partition: TCP
//!                connections time out rather than fail fast)
//! ```
//!
//! Tests run in parallel (nextest runs every test in its own process, cargo test in threads),
//! so each cluster takes a *slot* S: an exclusive `flock` on `/run/swarm-test-cluster/slot-S.lock`
//! held for its lifetime. The slot names the bridge, veths and netns and picks ten addresses of
//! 198.18.0.0/24 above .100 (`scripts/cluster.sh` uses .1 and .11–.50). Whatever a killed test
//! process left in a slot is swept when the slot is taken next. `Drop` kills every daemon and
//! removes the namespaces, links and dirs, also when the test panicked (then it first prints
//! the tail of each daemon's log).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::SWARM;
use super::http::Api;

/// The p2p port every daemon listens on inside its host.
pub const P2P_PORT: u16 = 2377;
/// Hosts per cluster (ten addresses per slot).
pub const MAX_HOSTS: usize = 9;
const SLOTS: usize = 15;
const LOCK_DIR: &str = "/run/swarm-test-cluster";

/// How the daemons are started.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Extra `swarm daemon` arguments (timing flags), given to every host.
    pub daemon_args: Vec<String>,
    /// `--log-level` of the daemons (their logs go to `<host dir>/daemon.log`).
    pub log_level: String,
    /// Bound on a daemon answering its socket after (re)start.
    pub start_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            daemon_args: Vec::new(),
            log_level: "info,openraft=warn".into(),
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// One host: a network namespace with a daemon in it.
#[derive(Debug)]
pub struct Host {
    pub index: usize,
    /// Hostname inside the host (`h0`, `h1`, …): the node's `Description.Hostname`.
    pub name: String,
    pub netns: String,
    /// The root-netns end of the host's veth pair (on the bridge).
    pub veth: String,
    pub ip: Ipv4Addr,
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Host {
    /// `IP:2377`, what other nodes dial.
    pub fn addr(&self) -> String {
        format!("{}:{P2P_PORT}", self.ip)
    }

    pub fn api(&self) -> Api {
        Api::new(&self.socket)
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    /// The last `lines` lines of the daemon's log (every run of it, appended).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `swarm -H <this host's socket> ARGS`, logged.
    pub fn swarm(&self, args: &[&str]) -> Output {
        let mut command = Command::new(SWARM);
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null());
        super::run_logged(
            &mut command,
            &format!("[{}] swarm {}", self.name, args.join(" ")),
        )
    }

    /// A TCP connection made from inside this host's network namespace (the socket stays
    /// in that namespace; use it from any thread).
    pub fn tcp_connect(
        &self,
        target: std::net::SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<std::net::TcpStream> {
        let netns = format!("/run/netns/{}", self.netns);
        // setns changes only the calling thread: do it on a thread of its own.
        std::thread::spawn(move || {
            let ns = File::open(&netns)?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            std::net::TcpStream::connect_timeout(&target, timeout)
        })
        .join()
        .expect("connect thread")
    }

    /// Run `CMD` inside this host's network namespace.
    pub fn netns_exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", &self.netns];
        args.extend_from_slice(cmd);
        quiet(&mut Command::new("ip"), &args)
    }
}

pub struct Cluster {
    pub slot: usize,
    pub bridge: String,
    pub hosts: Vec<Host>,
    options: ClusterOptions,
    dir: tempfile::TempDir,
    /// Held for the cluster's life: the slot is ours while this is open.
    _slot_lock: File,
}

impl Cluster {
    /// `n` hosts with default options, every daemon answering its socket.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, ClusterOptions::default())
    }

    pub fn start_with(n: usize, options: ClusterOptions) -> Cluster {
        assert!((1..=MAX_HOSTS).contains(&n), "1..={MAX_HOSTS} hosts");
        let (slot, lock) = take_slot();
        sweep_slot(slot);
        let dir = tempfile::Builder::new()
            .prefix(&format!("swarm-test-cluster{slot}-"))
            .tempdir()
            .expect("tempdir");
        let bridge = format!("swt{slot}-br");
        // From here on `Drop` undoes whatever exists, so a failure midway leaves nothing.
        let mut cluster = Cluster {
            slot,
            bridge: bridge.clone(),
            hosts: Vec::new(),
            options,
            dir,
            _slot_lock: lock,
        };
        run_ok(&["link", "add", &bridge, "type", "bridge"]);
        run_ok(&["link", "set", &bridge, "up"]);
        for index in 0..n {
            let host = cluster.add_host(index);
            cluster.hosts.push(host);
        }
        for index in 0..n {
            cluster.spawn(index);
        }
        for index in 0..n {
            cluster.wait_ready(index);
        }
        eprintln!(
            "--- cluster slot {slot}: {}",
            cluster
                .hosts
                .iter()
                .map(|h| format!("{}={}", h.name, h.ip))
                .collect::<Vec<_>>()
                .join(" ")
        );
        cluster
    }

    fn add_host(&self, index: usize) -> Host {
        let netns = format!("swt{}-h{index}", self.slot);
        let veth = format!("swt{}-v{index}", self.slot);
        let ip = Ipv4Addr::new(198, 18, 0, (101 + 10 * self.slot + index) as u8);
        let dir = self.dir.path().join(format!("h{index}"));
        std::fs::create_dir_all(dir.join("run")).expect("host dir");
        run_ok(&["netns", "add", &netns]);
        run_ok(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        run_ok(&["link", "set", &veth, "master", &self.bridge, "up"]);
        let cidr = format!("{ip}/24");
        run_ok(&["-n", &netns, "addr", "add", &cidr, "dev", "eth0"]);
        run_ok(&["-n", &netns, "link", "set", "eth0", "up"]);
        run_ok(&["-n", &netns, "link", "set", "lo", "up"]);
        Host {
            index,
            name: format!("h{index}"),
            netns,
            veth,
            ip,
            socket: dir.join("run/swarm.sock"),
            dir,
            child: None,
        }
    }

    /// Start host `index`'s daemon in its netns, under its own hostname (a UTS namespace).
    fn spawn(&mut self, index: usize) {
        let options = self.options.clone();
        let host = &mut self.hosts[index];
        assert!(host.child.is_none(), "{} is running already", host.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(host.log_path())
            .expect("daemon log");
        // nsenter, not `ip netns exec`: that remounts /sys for the namespace, which hides
        // /sys/fs/cgroup from the daemon (and so from every container it starts).
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", host.netns))
            .args(["unshare", "--uts", "sh", "-c"])
            // `exec` all the way down: the child's pid is the daemon's, so kill9 hits it.
            .arg(r#"hostname "$0" && exec "$@""#)
            .arg(&host.name)
            .arg(SWARM)
            .arg("--log-level")
            .arg(&options.log_level)
            .arg("daemon")
            .arg("--data-dir")
            .arg(host.dir.join("data"))
            .arg("--exec-root")
            .arg(host.dir.join("run"))
            .arg("--socket")
            .arg(&host.socket)
            .arg("--listen-addr")
            .arg(host.addr())
            .arg("--advertise-addr")
            .arg(host.ip.to_string())
            .args(&options.daemon_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        host.child = Some(command.spawn().expect("spawn nsenter swarm daemon"));
    }

    /// Wait (bounded) until host `index`'s daemon answers `/_ping`.
    fn wait_ready(&mut self, index: usize) {
        let deadline = Instant::now() + self.options.start_timeout;
        let host = &mut self.hosts[index];
        let api = host.api();
        loop {
            if api.ping(Duration::from_secs(2)) {
                return;
            }
            if let Some(Ok(Some(status))) = host.child.as_mut().map(Child::try_wait) {
                host.child = None;
                panic!(
                    "{}: daemon exited with {status} before answering; log:\n{}",
                    host.name,
                    host.log_tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: daemon did not answer on {} in time; log:\n{}",
                host.name,
                host.socket.display(),
                host.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    pub fn api(&self, index: usize) -> Api {
        self.hosts[index].api()
    }

    pub fn is_running(&mut self, index: usize) -> bool {
        let host = &mut self.hosts[index];
        match host.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                host.child = None;
                false
            }
            None => false,
        }
    }

    /// SIGKILL host `index`'s daemon and reap it.
    pub fn kill9(&mut self, index: usize) {
        let host = &mut self.hosts[index];
        let mut child = host
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", host.name));
        eprintln!("--- kill -9 {} (pid {})", host.name, child.id());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Start host `index`'s daemon again on the same dirs (after `kill9`) and wait for it.
    pub fn restart(&mut self, index: usize) {
        if self.is_running(index) {
            self.kill9(index);
        }
        eprintln!("--- restart {}", self.hosts[index].name);
        self.spawn(index);
        self.wait_ready(index);
    }

    /// Drop every packet in and out of host `index`'s eth0 (its socket still answers).
    pub fn isolate(&self, index: usize) {
        let host = &self.hosts[index];
        eprintln!("--- isolate {} ({})", host.name, host.ip);
        iptables(host, &["-I", "INPUT", "-i", "eth0", "-j", "DROP"]);
        iptables(host, &["-I", "OUTPUT", "-o", "eth0", "-j", "DROP"]);
    }

    /// Drop the traffic between hosts `a` and `b` only (both directions, rules in `a`).
    pub fn cut(&self, a: usize, b: usize) {
        let (host, other) = (&self.hosts[a], self.hosts[b].ip.to_string());
        eprintln!("--- cut {} <-> {}", host.name, self.hosts[b].name);
        iptables(host, &["-I", "INPUT", "-s", &other, "-j", "DROP"]);
        iptables(host, &["-I", "OUTPUT", "-d", &other, "-j", "DROP"]);
    }

    /// Undo every `isolate` and `cut` made in host `index`.
    pub fn heal(&self, index: usize) {
        let host = &self.hosts[index];
        eprintln!("--- heal {}", host.name);
        iptables(host, &["-F", "INPUT"]);
        iptables(host, &["-F", "OUTPUT"]);
    }

    /// Can host `from` reach host `to` right now (one ICMP echo, 1 s)?
    pub fn reachable(&self, from: usize, to: usize) -> bool {
        let target = self.hosts[to].ip.to_string();
        self.hosts[from]
            .netns_exec(&["busybox", "ping", "-c", "1", "-W", "1", &target])
            .status
            .success()
    }

    /// Names of this cluster's network namespaces and links that exist right now.
    pub fn leftovers(slot: usize) -> Vec<String> {
        slot_netns(slot)
            .into_iter()
            .chain(slot_links(slot))
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        // The whole logs outlive a failed test (in $TMPDIR, which scripts/test.sh removes).
        let keep = std::env::temp_dir().join(format!(
            "swarm-cluster-logs-{}-{}",
            std::process::id(),
            self.slot
        ));
        if panicking && std::fs::create_dir_all(&keep).is_ok() {
            for host in &self.hosts {
                let _ = std::fs::copy(host.log_path(), keep.join(format!("{}.log", host.name)));
            }
            eprintln!("===== daemon logs kept in {}", keep.display());
        }
        for host in &mut self.hosts {
            if panicking {
                eprintln!(
                    "===== {} ({}) daemon log, last lines:\n{}",
                    host.name,
                    host.ip,
                    host.log_tail(60)
                );
            }
            if let Some(mut child) = host.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            remove_runtime_containers(&host.dir.join("run/runtime"));
        }
        sweep_slot(self.slot);
    }
}

/// Take a free slot (bounded wait when all are taken).
fn take_slot() -> (usize, File) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(LOCK_DIR)
        .expect("create the slot lock dir");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        for slot in 0..SLOTS {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(format!("{LOCK_DIR}/slot-{slot}.lock"))
                .expect("open a slot lock");
            if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_ok()
            {
                return (slot, file);
            }
        }
        assert!(Instant::now() < deadline, "no free cluster slot in 300 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Remove everything of `slot`: processes in its namespaces, the namespaces, its links.
fn sweep_slot(slot: usize) {
    for netns in slot_netns(slot) {
        let pids = quiet(&mut Command::new("ip"), &["netns", "pids", &netns]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = quiet(&mut Command::new("kill"), &["-KILL", pid]);
        }
        let _ = quiet(&mut Command::new("ip"), &["netns", "del", &netns]);
    }
    // Deleting a netns takes its veth ends with it; the bridge goes explicitly.
    for link in slot_links(slot) {
        let _ = quiet(&mut Command::new("ip"), &["link", "del", &link]);
    }
}

fn slot_netns(slot: usize) -> Vec<String> {
    let prefix = format!("swt{slot}-");
    let out = quiet(&mut Command::new("ip"), &["netns", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(String::from)
        .collect()
}

fn slot_links(slot: usize) -> Vec<String> {
    let prefix = format!("swt{slot}-");
    let out = quiet(&mut Command::new("ip"), &["-o", "link", "show"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name))
        .filter(|n| n.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// Containers outlive their daemon by design: force-delete whatever a host left.
fn remove_runtime_containers(root: &Path) {
    if !root.exists() {
        return;
    }
    let Ok(out) = Command::new(SWARM)
        .args(["runtime", "--root"])
        .arg(root)
        .args(["list", "-q"])
        .output()
    else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new(SWARM)
            .args(["runtime", "--root"])
            .arg(root)
            .args(["delete", "--force", id])
            .output();
    }
}

fn iptables(host: &Host, rule: &[&str]) {
    let mut cmd = vec!["iptables", "-w", "5"];
    cmd.extend_from_slice(rule);
    let out = host.netns_exec(&cmd);
    assert!(
        out.status.success(),
        "{}: iptables {rule:?}: {}",
        host.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn quiet(command: &mut Command, args: &[&str]) -> Output {
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"))
}

/// `ip ARGS`, which must succeed.
fn run_ok(args: &[&str]) {
    let out = quiet(&mut Command::new("ip"), args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
