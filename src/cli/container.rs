//! Local containers, like `docker run/ps/logs/stop/rm/inspect`: all through the daemon's API.

use std::io::Write as _;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::api::client::ApiClient;
use crate::types::container::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerInspect, ContainerSummary,
    ContainerWaitResponse, HostConfig,
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Run in the background and print the container ID.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open and send ours to the container.
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal.
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables (KEY=value).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long = "workdir")]
    workdir: Option<String>,
    /// user[:group] (names or ids).
    #[arg(short, long)]
    user: Option<String>,
    /// Override the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    cpus: Option<f64>,
    /// Maximum number of processes.
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Bind mount a host path or a named volume (made on first use): SRC|NAME:DST[:ro].
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// type=volume|bind|tmpfs,source=…,target=…[,readonly][,volume-opt=K=V]… (repeatable).
    #[arg(long)]
    mount: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    #[arg(long)]
    hostname: Option<String>,
    /// none (default: own network namespace with only lo) or host.
    #[arg(long, default_value = "none")]
    network: String,
    /// Image to run.
    image: String,
    /// Command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `64m` → 67108864.
pub fn parse_bytes(text: &str) -> Result<i64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text.as_str(), ""),
    };
    let factor: i64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => bail!("invalid size {text:?}: use a number with b, k, m or g"),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    if value < 0.0 {
        bail!("invalid size {text:?}: must not be negative");
    }
    Ok((value * factor as f64) as i64)
}

fn create_request(args: &RunArgs) -> Result<ContainerCreateRequest> {
    let memory = args
        .memory
        .as_deref()
        .map(parse_bytes)
        .transpose()?
        .unwrap_or(0);
    let nano_cpus = match args.cpus {
        Some(c) if c <= 0.0 => bail!("invalid --cpus {c}: must be greater than 0"),
        Some(c) => (c * 1e9) as i64,
        None => 0,
    };
    let mut mounts = Vec::new();
    for m in &args.mount {
        let value = super::service::parse_mount(m)?;
        mounts.push(
            serde_json::from_value::<crate::types::container::Mount>(value)
                .with_context(|| format!("invalid --mount {m:?}"))?,
        );
    }
    Ok(ContainerCreateRequest {
        image: args.image.clone(),
        cmd: (!args.command.is_empty()).then(|| args.command.clone()),
        entrypoint: args.entrypoint.as_ref().map(|e| vec![e.clone()]),
        env: (!args.env.is_empty()).then(|| args.env.clone()),
        working_dir: args.workdir.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        hostname: args.hostname.clone().unwrap_or_default(),
        tty: args.tty,
        open_stdin: args.interactive,
        host_config: HostConfig {
            memory,
            nano_cpus,
            pids_limit: args.pids_limit,
            binds: (!args.volume.is_empty()).then(|| args.volume.clone()),
            mounts: (!mounts.is_empty()).then_some(mounts),
            readonly_rootfs: args.read_only,
            network_mode: args.network.clone(),
            // With -d the daemon removes it; in the foreground we do, after reading its exit.
            auto_remove: args.rm && args.detach,
            ..Default::default()
        },
        ..Default::default()
    })
}

fn query_name(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!("?name={}", url_escape(n)))
        .unwrap_or_default()
}

pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `swarm run`: the exit code is the container's.
pub async fn run(client: &ApiClient, args: RunArgs) -> Result<i32> {
    let request = create_request(&args)?;
    let created: ContainerCreateResponse = client
        .post(
            &format!("/containers/create{}", query_name(&args.name)),
            &request,
        )
        .await?;
    let id = created.id;
    // Attach before starting, so no output is missed; the stream ends when the container
    // exits (no polling of its log).
    let attached = if !args.detach {
        let stdin = if args.interactive { 1 } else { 0 };
        match client
            .upgrade(&format!(
                "/containers/{id}/attach?stream=1&stdin={stdin}&stdout=1&stderr=1"
            ))
            .await
        {
            Ok(io) => Some(io),
            Err(e) => {
                let _ = client
                    .delete(&format!("/containers/{id}?force=1&v=1"))
                    .await;
                return Err(e.into());
            }
        }
    } else {
        None
    };
    if let Err(e) = client.post_empty(&format!("/containers/{id}/start")).await {
        let _ = client
            .delete(&format!("/containers/{id}?force=1&v=1"))
            .await;
        return Err(e.into());
    }
    if args.detach {
        println!("{id}");
        return Ok(0);
    }
    if let Some(io) = attached {
        if args.tty {
            resize_to_our_terminal(client, &id).await;
        }
        interact(io, args.tty, args.interactive).await?;
    }
    let waited: ContainerWaitResponse = client
        .post(&format!("/containers/{id}/wait"), &serde_json::json!({}))
        .await?;
    if args.rm {
        client
            .delete(&format!("/containers/{id}?force=1&v=1"))
            .await?;
    }
    Ok(waited.status_code as i32)
}

/// Tell the daemon our terminal's size, if stdin is a terminal.
async fn resize_to_our_terminal(client: &ApiClient, id: &str) {
    use std::os::fd::AsFd;
    if nix::sys::termios::tcgetattr(std::io::stdin().as_fd()).is_ok()
        && let Some((rows, cols)) = terminal_size()
    {
        let _ = client
            .post_empty(&format!("/containers/{id}/resize?h={rows}&w={cols}"))
            .await;
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(std::process::Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Our stdin to the container, its output to our stdout/stderr, until the container's
/// output ends. A terminal's output is raw; otherwise it comes in multiplexed frames.
async fn interact<IO>(io: IO, tty: bool, interactive: bool) -> Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _raw = if tty {
        crate::runtime::shim::RawMode::enter()
    } else {
        None
    };
    let (mut from_container, mut to_container) = tokio::io::split(io);
    if interactive {
        // A plain thread: tokio's stdin is a blocking thread too, and this one ends with us.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 8192];
            loop {
                match std::io::stdin().read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if to_container.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            // Our stdin ended: the container's stdin closes (half-close of the stream).
            let _ = to_container.shutdown().await;
        });
    }
    let mut demux = Demux::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from_container.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        if tty {
            let mut out = std::io::stdout();
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
            continue;
        }
        demux.feed(&buf[..n]);
    }
    Ok(())
}

/// Print a container's log, demultiplexing Docker's frames onto stdout and stderr.
async fn follow_logs(
    client: &ApiClient,
    id: &str,
    follow: bool,
    tail: Option<&str>,
    timestamps: bool,
) -> Result<()> {
    let mut path = format!("/containers/{id}/logs?stdout=1&stderr=1");
    if follow {
        path.push_str("&follow=1");
    }
    if timestamps {
        path.push_str("&timestamps=1");
    }
    if let Some(tail) = tail {
        path.push_str(&format!("&tail={}", url_escape(tail)));
    }
    let mut demux = Demux::default();
    client
        .stream(hyper::Method::GET, &path, |chunk| demux.feed(chunk))
        .await?;
    Ok(())
}

/// Docker's multiplexed stream onto our stdout and stderr: frames of
/// `[stream, 0, 0, 0, len u32 BE] + bytes`, which may arrive split across reads.
#[derive(Default)]
struct Demux {
    pending: Vec<u8>,
}

impl Demux {
    fn feed(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
        while self.pending.len() >= 8 {
            let p = &self.pending;
            let len = u32::from_be_bytes([p[4], p[5], p[6], p[7]]) as usize;
            if p.len() < 8 + len {
                break;
            }
            let _ = match p[0] {
                2 => std::io::stderr().write_all(&p[8..8 + len]),
                _ => std::io::stdout().write_all(&p[8..8 + len]),
            };
            self.pending.drain(..8 + len);
        }
        let _ = std::io::stdout().flush();
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open and send ours to the process.
    #[arg(short, long)]
    interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    tty: bool,
    /// Environment (KEY=value), may repeat.
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long = "workdir")]
    workdir: Option<String>,
    /// user[:group] (names or ids); default: the container's user.
    #[arg(short, long)]
    user: Option<String>,
    /// Start it and return at once.
    #[arg(short, long)]
    detach: bool,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `swarm exec`: the exit code is the process's.
pub async fn exec(client: &ApiClient, args: ExecArgs) -> Result<i32> {
    let request = crate::types::container::ExecCreateRequest {
        attach_stdin: args.interactive,
        attach_stdout: true,
        attach_stderr: true,
        tty: args.tty,
        cmd: args.command.clone(),
        env: (!args.env.is_empty()).then(|| args.env.clone()),
        working_dir: args.workdir.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        privileged: false,
    };
    let created: crate::types::container::IdResponse = client
        .post(
            &format!("/containers/{}/exec", url_escape(&args.container)),
            &request,
        )
        .await?;
    let id = created.id;
    if args.detach {
        let _: serde_json::Value = client
            .post(
                &format!("/exec/{id}/start"),
                &serde_json::json!({"Detach": true}),
            )
            .await
            .or_else(|e| match e {
                crate::api::client::ClientError::Decode(_) => Ok(serde_json::Value::Null),
                other => Err(other),
            })?;
        return Ok(0);
    }
    let io = client.upgrade(&format!("/exec/{id}/start")).await?;
    interact(io, args.tty, args.interactive).await?;
    // The stream ends with the process; its exit code is recorded right after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let inspect: crate::types::container::ExecInspect =
            client.get(&format!("/exec/{id}/json")).await?;
        if let Some(code) = inspect.exit_code.filter(|_| !inspect.running) {
            return Ok(code as i32);
        }
        if std::time::Instant::now() > deadline {
            bail!("exec {id}: no exit code recorded");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running only).
    #[arg(short, long)]
    all: bool,
    /// Only IDs.
    #[arg(short, long)]
    quiet: bool,
}

pub async fn ps(client: &ApiClient, args: PsArgs) -> Result<i32> {
    let list: Vec<ContainerSummary> = client
        .get(&format!(
            "/containers/json{}",
            if args.all { "?all=1" } else { "" }
        ))
        .await?;
    if args.quiet {
        for c in &list {
            println!("{}", &c.id[..12.min(c.id.len())]);
        }
        return Ok(0);
    }
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|c| {
            let mut command = c.command.clone();
            if command.chars().count() > 20 {
                command = command.chars().take(19).collect::<String>() + "…";
            }
            [
                c.id.chars().take(12).collect(),
                c.image.clone(),
                format!("\"{command}\""),
                ago(now - c.created),
                c.status.clone(),
                c.names
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

/// "5 seconds ago" for a cluster timestamp.
pub fn ago_since(t: crate::types::Timestamp) -> String {
    ago((crate::types::Timestamp::now().0 - t.0).max(0) / 1_000_000_000)
}

fn ago(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 60 => format!("{s} seconds ago"),
        s if s < 3600 => format!("{} minutes ago", s / 60),
        s if s < 86400 => format!("{} hours ago", s / 3600),
        s => format!("{} days ago", s / 86400),
    }
}

/// `running` → `Running`, as docker's tables show states.
pub fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Columns separated by three spaces, like docker's tables.
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(short, long)]
    follow: bool,
    /// Number of lines from the end ("all").
    #[arg(short = 'n', long)]
    tail: Option<String>,
    #[arg(short, long)]
    timestamps: bool,
    container: String,
}

pub async fn logs(client: &ApiClient, args: LogsArgs) -> Result<i32> {
    follow_logs(
        client,
        &args.container,
        args.follow,
        args.tail.as_deref(),
        args.timestamps,
    )
    .await?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short, long)]
    time: Option<u64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn stop(client: &ApiClient, args: StopArgs) -> Result<i32> {
    let query = args.time.map(|t| format!("?t={t}")).unwrap_or_default();
    each(&args.containers, |c| {
        let path = format!("/containers/{}/stop{query}", url_escape(c));
        async move { client.post_empty(&path).await }
    })
    .await
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    /// Also remove the container's anonymous volumes.
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn rm(client: &ApiClient, args: RmArgs) -> Result<i32> {
    let query = match (args.force, args.volumes) {
        (false, false) => "",
        (true, false) => "?force=1",
        (false, true) => "?v=1",
        (true, true) => "?force=1&v=1",
    };
    each(&args.containers, |c| {
        let path = format!("/containers/{}{query}", url_escape(c));
        async move { client.delete(&path).await }
    })
    .await
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn start(client: &ApiClient, args: StartArgs) -> Result<i32> {
    each(&args.containers, |c| {
        let path = format!("/containers/{}/start", url_escape(c));
        async move { client.post_empty(&path).await }
    })
    .await
}

/// Apply `op` to each container, print its name on success (like docker), keep going on
/// errors and fail at the end if any failed.
async fn each<F, Fut>(containers: &[String], op: F) -> Result<i32>
where
    F: Fn(&str) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::api::client::ClientError>>,
{
    let mut failed = false;
    for c in containers {
        match op(c).await {
            Ok(()) => println!("{c}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub async fn inspect(client: &ApiClient, args: InspectArgs) -> Result<i32> {
    let mut out: Vec<ContainerInspect> = Vec::new();
    let mut failed = false;
    for c in &args.containers {
        match client
            .get::<ContainerInspect>(&format!("/containers/{}/json", url_escape(c)))
            .await
        {
            Ok(i) => out.push(i),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_sizes() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert!(parse_bytes("12q").is_err());
        assert!(parse_bytes("-1m").is_err());
    }
}
