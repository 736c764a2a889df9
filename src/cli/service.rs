//! `swarm service create | ls | ps | inspect | scale | logs | rm`, as `docker service …`: the spec
//! is built from docker's flags, sent whole, and followed until it converges.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::container::{capitalise, parse_bytes, print_table, url_escape};
use crate::api::client::ApiClient;
use crate::types::Node;
use crate::types::service::{Task, TaskState};

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Create a service.
    Create(Box<CreateArgs>),
    /// List services.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        /// id=, name=, label=K[=V], mode=replicated|global.
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// List the tasks of services (with their history).
    Ps {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        no_trunc: bool,
        /// desired-state=running|shutdown, node=, name=, id=.
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Show services in detail.
    Inspect {
        #[arg(long)]
        pretty: bool,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Scale replicated services: SERVICE=REPLICAS….
    Scale {
        /// Return at once instead of following the tasks until they converge.
        #[arg(short, long)]
        detach: bool,
        #[arg(required = true)]
        scales: Vec<String>,
    },
    /// Print the logs of a service's tasks (or of one task), from every node.
    Logs(super::service_logs::ServiceLogsArgs),
    /// Remove services.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        services: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: Option<String>,
    /// Number of tasks (replicated mode).
    #[arg(long)]
    replicas: Option<i64>,
    /// replicated or global.
    #[arg(long, default_value = "replicated")]
    mode: String,
    /// At most this many tasks of the service on one node (0: no limit).
    #[arg(long, default_value_t = 0)]
    replicas_max_per_node: u64,
    /// swarm's placement strategy: spread (default) or binpack.
    #[arg(long)]
    strategy: Option<String>,
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Service labels K=V.
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Container labels K=V.
    #[arg(long = "container-label")]
    container_label: Vec<String>,
    #[arg(long)]
    limit_cpu: Option<f64>,
    #[arg(long)]
    limit_memory: Option<String>,
    #[arg(long)]
    limit_pids: Option<i64>,
    #[arg(long)]
    reserve_cpu: Option<f64>,
    #[arg(long)]
    reserve_memory: Option<String>,
    /// KEY==VALUE or KEY!=VALUE (node.id, node.hostname, node.role, node.labels.*, …).
    #[arg(long)]
    constraint: Vec<String>,
    /// spread=node.labels.NAME
    #[arg(long)]
    placement_pref: Vec<String>,
    /// none, on-failure or any.
    #[arg(long)]
    restart_condition: Option<String>,
    #[arg(long)]
    restart_delay: Option<String>,
    #[arg(long)]
    restart_max_attempts: Option<u64>,
    #[arg(long)]
    restart_window: Option<String>,
    #[arg(long)]
    health_cmd: Option<String>,
    #[arg(long)]
    health_interval: Option<String>,
    #[arg(long)]
    health_timeout: Option<String>,
    #[arg(long)]
    health_retries: Option<i64>,
    #[arg(long)]
    health_start_period: Option<String>,
    /// The interval between probes during the start period.
    #[arg(long)]
    health_start_interval: Option<String>,
    #[arg(long)]
    no_healthcheck: bool,
    #[arg(long)]
    hostname: Option<String>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(long)]
    entrypoint: Option<String>,
    #[arg(long)]
    stop_grace_period: Option<String>,
    #[arg(long)]
    stop_signal: Option<String>,
    /// type=volume|bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,volume-opt=K=V]
    #[arg(long)]
    mount: Vec<String>,
    #[arg(long)]
    read_only: bool,
    /// A network to attach the tasks to, by name or ID (repeatable).
    #[arg(long = "network")]
    network: Vec<String>,
    /// [published:]target[/protocol], or published=N,target=N[,protocol=tcp|udp|sctp][,mode=ingress|host]
    /// (repeatable; no published port: one is assigned from 30000-32767).
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// vip (a virtual IP per network) or dnsrr (none).
    #[arg(long)]
    endpoint_mode: Option<String>,
    /// Return at once instead of following the tasks until they converge.
    #[arg(short, long)]
    detach: bool,
    /// Only print the ID.
    #[arg(short, long)]
    quiet: bool,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub async fn run(client: &ApiClient, args: ServiceArgs) -> Result<i32> {
    match args.command {
        ServiceCommand::Create(args) => create(client, *args).await,
        ServiceCommand::Ls { quiet, filter } => ls(client, quiet, &filter).await,
        ServiceCommand::Ps {
            quiet,
            no_trunc,
            filter,
            services,
        } => ps(client, quiet, no_trunc, &filter, &services).await,
        ServiceCommand::Inspect { pretty, services } => inspect(client, pretty, &services).await,
        ServiceCommand::Scale { detach, scales } => scale(client, detach, &scales).await,
        ServiceCommand::Logs(args) => super::service_logs::logs(client, args).await,
        ServiceCommand::Rm { services } => {
            let mut failed = false;
            for s in &services {
                match client.delete(&format!("/services/{}", url_escape(s))).await {
                    Ok(()) => println!("{s}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
    }
}

/// A Go duration (`1m30s`, `500ms`, `10s`; a bare number is seconds) in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    let t = text.trim();
    if let Ok(seconds) = t.parse::<f64>() {
        if seconds < 0.0 {
            bail!("invalid duration {text:?}: must not be negative");
        }
        return Ok((seconds * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut rest = t;
    if rest.is_empty() {
        bail!("invalid duration {text:?}");
    }
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .with_context(|| format!("invalid duration {text:?}: a unit is missing"))?;
        let (number, after) = rest.split_at(split);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let n: f64 = number
            .parse()
            .with_context(|| format!("invalid duration {text:?}"))?;
        let factor = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => bail!("invalid duration {text:?}: unknown unit {unit:?}"),
        };
        total += n * factor;
        rest = next;
    }
    Ok(total as i64)
}

fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
        if k.is_empty() {
            bail!("invalid {what} {item:?}: expected KEY=VALUE");
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// `--mount type=volume,source=data,target=/data[,readonly][,volume-opt=K=V]…` (Docker's
/// `Mount`: also for `swarm run --mount`).
pub fn parse_mount(text: &str) -> Result<Value> {
    let mut kind = "volume".to_owned();
    let (mut source, mut target) = (String::new(), String::new());
    let mut read_only = false;
    let mut tmpfs = serde_json::Map::new();
    let mut volume = serde_json::Map::new();
    let (mut driver, mut driver_opts) = (None::<String>, serde_json::Map::new());
    let mut labels = serde_json::Map::new();
    for field in text.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        let key_value = |what: &str| -> Result<(String, String)> {
            match v.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => bail!("invalid {what} {v:?} in --mount {text:?}: expected KEY=VALUE"),
            }
        };
        match k.trim() {
            "type" => kind = v.to_owned(),
            "source" | "src" => source = v.to_owned(),
            "target" | "dst" | "destination" => target = v.to_owned(),
            "readonly" | "ro" => read_only = matches!(v, "true" | "1"),
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(parse_bytes(v)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(v, 8)
                    .with_context(|| format!("invalid tmpfs-mode {v:?} in --mount {text:?}"))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            "volume-nocopy" => {
                volume.insert("NoCopy".into(), json!(matches!(v, "true" | "1")));
            }
            "volume-driver" => driver = Some(v.to_owned()),
            "volume-opt" => {
                let (k, v) = key_value("volume-opt")?;
                driver_opts.insert(k, json!(v));
            }
            "volume-label" => {
                let (k, v) = key_value("volume-label")?;
                labels.insert(k, json!(v));
            }
            other => bail!("invalid --mount {text:?}: unknown field {other:?}"),
        }
    }
    if target.is_empty() {
        bail!("invalid --mount {text:?}: target is required");
    }
    let mut m = json!({"Type": kind, "Source": source, "Target": target, "ReadOnly": read_only});
    if !tmpfs.is_empty() {
        m["TmpfsOptions"] = Value::Object(tmpfs);
    }
    if driver.is_some() || !driver_opts.is_empty() {
        volume.insert(
            "DriverConfig".into(),
            json!({"Name": driver.unwrap_or_default(), "Options": driver_opts}),
        );
    }
    if !labels.is_empty() {
        volume.insert("Labels".into(), Value::Object(labels));
    }
    if !volume.is_empty() {
        if kind != "volume" {
            bail!("invalid --mount {text:?}: volume options need type=volume");
        }
        m["VolumeOptions"] = Value::Object(volume);
    }
    Ok(m)
}

fn spec_of(a: &CreateArgs) -> Result<Value> {
    let mut container = json!({
        "Image": a.image,
        "Labels": key_values(&a.container_label, "container label")?,
        "Env": a.env,
        "ReadOnly": a.read_only,
    });
    let c = container.as_object_mut().context("a JSON object")?;
    if let Some(e) = &a.entrypoint {
        c.insert(
            "Command".into(),
            json!(e.split_whitespace().collect::<Vec<_>>()),
        );
    }
    if !a.command.is_empty() {
        c.insert("Args".into(), json!(a.command));
    }
    if let Some(h) = &a.hostname {
        c.insert("Hostname".into(), json!(h));
    }
    if let Some(u) = &a.user {
        c.insert("User".into(), json!(u));
    }
    if let Some(w) = &a.workdir {
        c.insert("Dir".into(), json!(w));
    }
    if let Some(s) = &a.stop_signal {
        c.insert("StopSignal".into(), json!(s));
    }
    if let Some(g) = &a.stop_grace_period {
        c.insert("StopGracePeriod".into(), json!(parse_duration(g)?));
    }
    if !a.mount.is_empty() {
        let mounts: Result<Vec<Value>> = a.mount.iter().map(|m| parse_mount(m)).collect();
        c.insert("Mounts".into(), Value::Array(mounts?));
    }
    if a.no_healthcheck {
        c.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
    } else if a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_retries.is_some()
        || a.health_start_period.is_some()
        || a.health_start_interval.is_some()
    {
        let mut h = json!({});
        if let Some(cmd) = &a.health_cmd {
            h["Test"] = json!(["CMD-SHELL", cmd]);
        }
        for (key, value) in [
            ("Interval", &a.health_interval),
            ("Timeout", &a.health_timeout),
            ("StartPeriod", &a.health_start_period),
            ("StartInterval", &a.health_start_interval),
        ] {
            if let Some(v) = value {
                h[key] = json!(parse_duration(v)?);
            }
        }
        if let Some(r) = a.health_retries {
            h["Retries"] = json!(r);
        }
        c.insert("Healthcheck".into(), h);
    }

    let mut template = json!({"ContainerSpec": container, "ForceUpdate": 0});
    if !a.network.is_empty() {
        let networks: Vec<Value> = a.network.iter().map(|n| json!({"Target": n})).collect();
        template["Networks"] = Value::Array(networks);
    }
    let cpus = |c: f64| (c * 1e9) as i64;
    let mut limits = serde_json::Map::new();
    if let Some(c) = a.limit_cpu {
        limits.insert("NanoCPUs".into(), json!(cpus(c)));
    }
    if let Some(m) = &a.limit_memory {
        limits.insert("MemoryBytes".into(), json!(parse_bytes(m)?));
    }
    if let Some(p) = a.limit_pids {
        limits.insert("Pids".into(), json!(p));
    }
    let mut reservations = serde_json::Map::new();
    if let Some(c) = a.reserve_cpu {
        reservations.insert("NanoCPUs".into(), json!(cpus(c)));
    }
    if let Some(m) = &a.reserve_memory {
        reservations.insert("MemoryBytes".into(), json!(parse_bytes(m)?));
    }
    if !limits.is_empty() || !reservations.is_empty() {
        template["Resources"] = json!({"Limits": limits, "Reservations": reservations});
    }
    if a.restart_condition.is_some()
        || a.restart_delay.is_some()
        || a.restart_max_attempts.is_some()
        || a.restart_window.is_some()
    {
        let mut p =
            json!({"Condition": a.restart_condition.clone().unwrap_or_else(|| "any".into())});
        if let Some(d) = &a.restart_delay {
            p["Delay"] = json!(parse_duration(d)?);
        }
        if let Some(m) = a.restart_max_attempts {
            p["MaxAttempts"] = json!(m);
        }
        if let Some(w) = &a.restart_window {
            p["Window"] = json!(parse_duration(w)?);
        }
        template["RestartPolicy"] = p;
    }
    if !a.constraint.is_empty() || !a.placement_pref.is_empty() || a.replicas_max_per_node > 0 {
        let mut prefs = Vec::new();
        for p in &a.placement_pref {
            let Some(descriptor) = p.strip_prefix("spread=") else {
                bail!("invalid --placement-pref {p:?}: expected spread=node.labels.NAME");
            };
            prefs.push(json!({"Spread": {"SpreadDescriptor": descriptor}}));
        }
        let mut placement = json!({"Constraints": a.constraint, "Preferences": prefs});
        if a.replicas_max_per_node > 0 {
            placement["MaxReplicas"] = json!(a.replicas_max_per_node);
        }
        template["Placement"] = placement;
    }
    let mode = match a.mode.as_str() {
        "replicated" => json!({"Replicated": {"Replicas": a.replicas.unwrap_or(1)}}),
        "global" => {
            if a.replicas.is_some() {
                bail!("--replicas can only be used with replicated mode");
            }
            json!({"Global": {}})
        }
        other => bail!("invalid --mode {other:?}: expected replicated or global"),
    };
    let mut spec = json!({
        "Name": a.name.clone().unwrap_or_default(),
        "Labels": key_values(&a.label, "label")?,
        "TaskTemplate": template,
        "Mode": mode,
    });
    if let Some(s) = &a.strategy {
        spec["Strategy"] = json!(s);
    }
    if !a.publish.is_empty() || a.endpoint_mode.is_some() {
        let ports: Result<Vec<Value>> = a.publish.iter().map(|p| parse_publish(p)).collect();
        spec["EndpointSpec"] = json!({
            "Mode": a.endpoint_mode.clone().unwrap_or_else(|| "vip".into()),
            "Ports": ports?,
        });
    }
    Ok(spec)
}

/// `--publish`: `8080:80`, `8080:80/udp`, `80` (published port assigned), or the long form
/// `published=8080,target=80,protocol=tcp,mode=host`; the two mix (`mode=host,8080:80`).
pub fn parse_publish(text: &str) -> Result<Value> {
    let bad = |why: &str| anyhow::anyhow!("invalid --publish {text:?}: {why}");
    let number = |v: &str, what: &str| -> Result<u32> {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| bad(&format!("{what} {v:?} is not a port number")))
    };
    let (mut published, mut target, mut protocol, mut mode) =
        (0, 0, "tcp".to_owned(), "ingress".to_owned());
    for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match field.split_once('=') {
            Some((k, v)) => match k.trim() {
                "published" => published = number(v, "published port")?,
                "target" => target = number(v, "target port")?,
                "protocol" => protocol = v.trim().to_owned(),
                "mode" => mode = v.trim().to_owned(),
                other => return Err(bad(&format!("unknown field {other:?}"))),
            },
            None => {
                let (ports, proto) = field.split_once('/').unwrap_or((field, ""));
                if !proto.is_empty() {
                    protocol = proto.to_owned();
                }
                match ports.split_once(':') {
                    Some((p, t)) => {
                        published = number(p, "published port")?;
                        target = number(t, "target port")?;
                    }
                    None => target = number(ports, "target port")?,
                }
            }
        }
    }
    if target == 0 {
        return Err(bad("a target port is required"));
    }
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad("protocol must be tcp, udp or sctp"));
    }
    if !matches!(mode.as_str(), "ingress" | "host") {
        return Err(bad("mode must be ingress or host"));
    }
    Ok(
        json!({"Protocol": protocol, "TargetPort": target, "PublishedPort": published, "PublishMode": mode}),
    )
}

/// Docker's PORTS column: `*:8080->80/tcp`, one per published port.
fn ports_column(service: &Value) -> String {
    service["Endpoint"]["Ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    format!(
                        "*:{}->{}/{}",
                        p["PublishedPort"].as_u64().unwrap_or(0),
                        p["TargetPort"].as_u64().unwrap_or(0),
                        p["Protocol"].as_str().unwrap_or("tcp")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

async fn create(client: &ApiClient, args: CreateArgs) -> Result<i32> {
    let mut spec = spec_of(&args)?;
    if spec["Name"].as_str().is_some_and(str::is_empty) {
        // Docker names an unnamed service itself; so do we, from the ID's start.
        spec["Name"] = json!(format!("svc-{}", &random_suffix()));
    }
    let created: Value = client.post("/services/create", &spec).await?;
    let id = created["ID"].as_str().unwrap_or_default().to_owned();
    println!("{id}");
    if args.detach || args.quiet {
        return Ok(0);
    }
    follow(client, &id).await
}

fn random_suffix() -> String {
    crate::cluster::tokens::random_bytes(8)
        .map(|b| crate::cluster::tokens::base36(&b, 8))
        .unwrap_or_else(|_| "service".into())
}

async fn scale(client: &ApiClient, detach: bool, scales: &[String]) -> Result<i32> {
    let mut ids = Vec::new();
    for s in scales {
        let Some((name, n)) = s.split_once('=') else {
            bail!("invalid scale {s:?}: expected SERVICE=REPLICAS");
        };
        let replicas: i64 = n
            .parse()
            .ok()
            .filter(|r| *r >= 0)
            .with_context(|| format!("invalid replicas {n:?}: expected a number ≥ 0"))?;
        let service: Value = client
            .get(&format!("/services/{}", url_escape(name)))
            .await?;
        let mut spec = service["Spec"].clone();
        if spec["Mode"].get("Global").is_some() {
            bail!("{name}: scale can only be used with replicated mode");
        }
        spec["Mode"] = json!({"Replicated": {"Replicas": replicas}});
        let id = service["ID"].as_str().unwrap_or_default().to_owned();
        let version = service["Version"]["Index"].as_u64().unwrap_or(0);
        let _: Value = client
            .post(&format!("/services/{id}/update?version={version}"), &spec)
            .await?;
        println!("{name} scaled to {replicas}");
        ids.push(id);
    }
    if !detach {
        for id in ids {
            follow(client, &id).await?;
        }
    }
    Ok(0)
}

/// Follows a service's tasks until as many run as are desired, like docker's progress.
async fn follow(client: &ApiClient, id: &str) -> Result<i32> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut last = String::new();
    loop {
        let service: Value = client.get(&format!("/services/{id}")).await?;
        let global = service["Spec"]["Mode"].get("Global").is_some();
        let filters = json!({"service": [id], "desired-state": ["running"]}).to_string();
        let tasks: Vec<Task> = client
            .get(&format!("/tasks?filters={}", url_escape(&filters)))
            .await?;
        let desired = if global {
            tasks.len() as u64
        } else {
            service["Spec"]["Mode"]["Replicated"]["Replicas"]
                .as_u64()
                .unwrap_or(1)
        };
        let running = tasks
            .iter()
            .filter(|t| t.status.state == TaskState::Running)
            .count() as u64;
        // While scaling down, the excess tasks run until stopped: never "4 out of 2".
        let shown = running.min(desired);
        let mut lines = vec![format!("overall progress: {shown} out of {desired} tasks")];
        let mut sorted: Vec<&Task> = tasks.iter().collect();
        sorted.sort_by_key(|t| (t.slot, t.node_id.clone()));
        for t in &sorted {
            let label = if global {
                t.node_id.chars().take(12).collect::<String>()
            } else {
                format!("{}/{desired}", t.slot)
            };
            let mut line = format!("{label}: {}", t.status.state);
            if !t.status.err.is_empty() {
                line.push_str(&format!(" ({})", t.status.err));
            }
            lines.push(line);
        }
        // A terminal redraws the whole block; a pipe or a log gets one line per change of
        // the overall count.
        let text = if tty {
            lines.join("\n")
        } else {
            lines.swap_remove(0)
        };
        if text != last {
            if tty && !last.is_empty() {
                print!("\x1b[{}A\x1b[J", last.lines().count());
            }
            println!("{text}");
            std::io::stdout().flush().ok();
            last = text;
        }
        let converged = running == desired && (!global || !tasks.is_empty() || desired == 0);
        if converged {
            println!("verify: Service {id} converged");
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Docker's `filters` query parameter from `KEY=VALUE` flags (empty when there are none).
pub(super) fn filters_query(filter: &[String], extra: &[(&str, &str)]) -> Result<String> {
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filter {
        let Some((k, v)) = f.split_once('=') else {
            bail!("invalid filter {f:?}: expected KEY=VALUE");
        };
        filters.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    for (k, v) in extra {
        filters
            .entry((*k).to_owned())
            .or_default()
            .push((*v).to_owned());
    }
    Ok(if filters.is_empty() {
        String::new()
    } else {
        format!("filters={}", url_escape(&serde_json::to_string(&filters)?))
    })
}

async fn ls(client: &ApiClient, quiet: bool, filter: &[String]) -> Result<i32> {
    let query = filters_query(filter, &[])?;
    let services: Vec<Value> = client
        .get(&format!("/services?status=true&{query}"))
        .await?;
    if quiet {
        for s in &services {
            println!("{}", s["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let mut rows: Vec<[String; 6]> = services
        .iter()
        .map(|s| {
            let spec = &s["Spec"];
            let global = spec["Mode"].get("Global").is_some();
            let st = &s["ServiceStatus"];
            let replicas = format!(
                "{}/{}",
                st["RunningTasks"].as_u64().unwrap_or(0),
                st["DesiredTasks"].as_u64().unwrap_or(0)
            );
            [
                s["ID"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect(),
                spec["Name"].as_str().unwrap_or_default().to_owned(),
                if global { "global" } else { "replicated" }.to_owned(),
                replicas,
                spec["TaskTemplate"]["ContainerSpec"]["Image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                ports_column(s),
            ]
        })
        .collect();
    rows.sort_by(|a, b| a[1].cmp(&b[1]));
    print_table(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows);
    Ok(0)
}

async fn ps(
    client: &ApiClient,
    quiet: bool,
    no_trunc: bool,
    filter: &[String],
    services: &[String],
) -> Result<i32> {
    let nodes: Vec<Node> = client.get("/nodes").await.unwrap_or_default();
    let hostname = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.description.hostname.clone())
            .unwrap_or_else(|| id.to_owned())
    };
    let mut rows: Vec<[String; 7]> = Vec::new();
    let mut ids = Vec::new();
    for name in services {
        let service: Value = client
            .get(&format!("/services/{}", url_escape(name)))
            .await?;
        let sid = service["ID"].as_str().unwrap_or_default().to_owned();
        let sname = service["Spec"]["Name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let query = filters_query(filter, &[("service", &sid)])?;
        let mut tasks: Vec<Task> = client.get(&format!("/tasks?{query}")).await?;
        // Per slot (or node), newest first: the current task, then its history.
        tasks.sort_by(|a, b| {
            (a.slot, &a.node_id, std::cmp::Reverse(a.created_at)).cmp(&(
                b.slot,
                &b.node_id,
                std::cmp::Reverse(b.created_at),
            ))
        });
        let mut previous_slot = None;
        for t in &tasks {
            let key = (
                t.slot,
                if t.slot == 0 {
                    t.node_id.clone()
                } else {
                    String::new()
                },
            );
            let history = previous_slot.as_ref() == Some(&key);
            previous_slot = Some(key);
            let name = if t.slot > 0 {
                format!("{sname}.{}", t.slot)
            } else {
                format!("{sname}.{}", t.node_id)
            };
            let id = if no_trunc {
                t.id.clone()
            } else {
                t.id.chars().take(12).collect()
            };
            ids.push(t.id.clone());
            let image: String = t
                .spec
                .value()
                .pointer("/ContainerSpec/Image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut err = t.status.err.clone();
            if !no_trunc && err.chars().count() > 60 {
                err = format!("{}…", err.chars().take(59).collect::<String>());
            }
            rows.push([
                id,
                if history {
                    format!(" \\_ {name}")
                } else {
                    name
                },
                image,
                hostname(&t.node_id),
                capitalise(t.desired_state.as_str()),
                format!(
                    "{} {}",
                    capitalise(t.status.state.as_str()),
                    super::container::ago_since(t.status.timestamp)
                ),
                err,
            ]);
        }
    }
    if quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(0);
    }
    print_table(
        &[
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
        ],
        &rows,
    );
    Ok(0)
}

async fn inspect(client: &ApiClient, pretty: bool, services: &[String]) -> Result<i32> {
    let mut all = Vec::new();
    for s in services {
        let v: Value = client.get(&format!("/services/{}", url_escape(s))).await?;
        all.push(v);
    }
    if !pretty {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    let networks: Vec<crate::types::network::NetworkResource> =
        client.get("/networks").await.unwrap_or_default();
    let network_names: BTreeMap<String, String> =
        networks.into_iter().map(|n| (n.id, n.name)).collect();
    for (i, s) in all.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let spec = &s["Spec"];
        let c = &spec["TaskTemplate"]["ContainerSpec"];
        println!("ID:\t\t{}", s["ID"].as_str().unwrap_or_default());
        println!("Name:\t\t{}", spec["Name"].as_str().unwrap_or_default());
        if let Some(labels) = spec["Labels"].as_object().filter(|l| !l.is_empty()) {
            println!("Labels:");
            for (k, v) in labels {
                println!(" {k}={}", v.as_str().unwrap_or_default());
            }
        }
        if let Some(r) = spec["Mode"].get("Replicated") {
            println!("Service Mode:\tReplicated");
            println!(" Replicas:\t{}", r["Replicas"].as_u64().unwrap_or(1));
        } else {
            println!("Service Mode:\tGlobal");
        }
        if let Some(p) = spec["TaskTemplate"]["Placement"]["Constraints"].as_array() {
            println!("Placement:");
            for c in p {
                println!(" Constraints:\t{}", c.as_str().unwrap_or_default());
            }
        }
        println!("ContainerSpec:");
        println!(" Image:\t\t{}", c["Image"].as_str().unwrap_or_default());
        if let Some(args) = c["Args"].as_array() {
            let args: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
            println!(" Args:\t\t{}", args.join(" "));
        }
        if let Some(env) = c["Env"].as_array().filter(|e| !e.is_empty()) {
            println!(" Env:");
            for e in env {
                println!("  {}", e.as_str().unwrap_or_default());
            }
        }
        let res = &spec["TaskTemplate"]["Resources"];
        if res.is_object() {
            println!("Resources:");
            for (what, key) in [("Limits", "Limits"), ("Reservations", "Reservations")] {
                if let Some(r) = res[key].as_object().filter(|r| !r.is_empty()) {
                    println!(" {what}:");
                    if let Some(n) = r.get("NanoCPUs").and_then(Value::as_i64) {
                        println!("  CPU:\t\t{}", n as f64 / 1e9);
                    }
                    if let Some(m) = r.get("MemoryBytes").and_then(Value::as_i64) {
                        println!("  Memory:\t{}MiB", m / (1 << 20));
                    }
                }
            }
        }
        if let Some(networks) = spec["TaskTemplate"]["Networks"]
            .as_array()
            .filter(|n| !n.is_empty())
        {
            let names: Vec<String> = networks
                .iter()
                .map(|n| {
                    let id = n["Target"].as_str().unwrap_or_default();
                    network_names
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| id.to_owned())
                })
                .collect();
            println!("Networks:\t{}", names.join(" "));
        }
        let endpoint = &s["Endpoint"];
        println!(
            "Endpoint Mode:\t{}",
            endpoint["Spec"]["Mode"].as_str().unwrap_or("vip")
        );
        if let Some(ports) = endpoint["Ports"].as_array().filter(|p| !p.is_empty()) {
            println!("Ports:");
            for p in ports {
                println!(
                    " PublishedPort = {}",
                    p["PublishedPort"].as_u64().unwrap_or(0)
                );
                println!("  Protocol = {}", p["Protocol"].as_str().unwrap_or("tcp"));
                println!("  TargetPort = {}", p["TargetPort"].as_u64().unwrap_or(0));
                println!(
                    "  PublishMode = {}",
                    p["PublishMode"].as_str().unwrap_or("ingress")
                );
            }
        }
        if let Some(vips) = endpoint["VirtualIPs"].as_array().filter(|v| !v.is_empty()) {
            println!("Virtual IPs:");
            for v in vips {
                let id = v["NetworkID"].as_str().unwrap_or_default();
                let name = network_names.get(id).map_or(id, String::as_str);
                println!(" {name}: {}", v["Addr"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_go_durations() {
        assert_eq!(parse_duration("10s").unwrap(), 10_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("2").unwrap(), 2_000_000_000);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn t10_publish_short_long_and_mixed() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(
            p,
            json!({"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"})
        );
        assert_eq!(parse_publish("53:53/udp").unwrap()["Protocol"], "udp");
        assert_eq!(parse_publish("80").unwrap()["PublishedPort"], 0);
        let long = parse_publish("published=8080,target=80,protocol=tcp,mode=host").unwrap();
        assert_eq!(
            (long["PublishedPort"].as_u64(), long["PublishMode"].as_str()),
            (Some(8080), Some("host"))
        );
        let mixed = parse_publish("mode=host,9000:90").unwrap();
        assert_eq!(
            (mixed["TargetPort"].as_u64(), mixed["PublishMode"].as_str()),
            (Some(90), Some("host"))
        );
        for bad in [
            "",
            "8080:",
            "x:80",
            "8080:80/icmp",
            "mode=mesh,80",
            "published=1",
            "70000:80",
            "color=red,80",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn t10_mounts() {
        let m = parse_mount("type=volume,src=data,dst=/data,readonly").unwrap();
        assert_eq!(m["Type"], "volume");
        assert_eq!(m["Source"], "data");
        assert_eq!(m["Target"], "/data");
        assert_eq!(m["ReadOnly"], true);
        let t = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap();
        assert_eq!(t["TmpfsOptions"]["SizeBytes"], 1 << 20);
        assert_eq!(t["TmpfsOptions"]["Mode"], 0o1777);
        assert!(parse_mount("type=volume,src=x").is_err());
        assert!(parse_mount("type=volume,target=/x,color=red").is_err());
        let v = parse_mount(
            "src=scratch,dst=/s,volume-opt=type=tmpfs,volume-opt=o=size=1m,volume-label=a=b",
        )
        .unwrap();
        assert_eq!(
            v["VolumeOptions"]["DriverConfig"]["Options"]["o"],
            "size=1m"
        );
        assert_eq!(
            v["VolumeOptions"]["DriverConfig"]["Options"]["type"],
            "tmpfs"
        );
        assert_eq!(v["VolumeOptions"]["Labels"]["a"], "b");
        assert!(parse_mount("type=bind,src=/a,dst=/b,volume-opt=x=y").is_err());
        assert!(parse_mount("dst=/b,volume-opt=novalue").is_err());
    }
}
