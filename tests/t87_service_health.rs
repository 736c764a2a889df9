//! Health checks and task exits of swarm services, through one real daemon in swarm mode.
//!
//! The story: a health-checked task stays `starting` while its probe fails inside the start
//! period and goes `running` once the probe passes (the test makes it pass by creating a
//! file in the container); when the probe starts failing, the task fails with Docker's
//! unhealthy error and the slot gets a new task. A probe that hangs is killed at its timeout
//! and probes never pile up. An image's HEALTHCHECK applies unless the service says
//! `--no-healthcheck`. A container that exits 3 fails its task with "non-zero exit (3)"; a
//! stop uses the spec's stop signal, then SIGKILL after the grace period. A mode change is
//! refused. A local container with a health check is checked too. Every wait is bounded;
//! nothing asserts on timing.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::daemon::Daemon;
use common::http::Api;

/// Bound on every wait (a busy 2-core machine, debug daemons).
const SETTLE: Duration = Duration::from_secs(60);
const MS: i64 = 1_000_000;
const UNHEALTHY: &str = "task: non-zero exit (137): dockerexec: unhealthy container";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` until it gives a value, at most `SETTLE`.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            eprintln!("    {what}: {:?}", start.elapsed());
            return v;
        }
        assert!(start.elapsed() < SETTLE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Percent-encoding for a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The tasks of a service, oldest first.
fn tasks(api: &Api, service: &str) -> Vec<Value> {
    let filters = encode(&json!({ "service": [service] }).to_string());
    let mut list = api
        .get_ok(&format!("/tasks?filters={filters}"))
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.sort_by_key(|t| t["CreatedAt"].as_str().unwrap_or_default().to_owned());
    list
}

fn state(task: &Value) -> &str {
    task["Status"]["State"].as_str().unwrap_or_default()
}

fn container_of(task: &Value) -> Option<String> {
    task["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

fn inspect(api: &Api, container: &str) -> Value {
    api.get_ok(&format!("/containers/{container}/json"))
}

/// A task of `service` in `wanted` state, with its container.
fn task_in(api: &Api, service: &str, wanted: &str) -> (Value, String) {
    wait_for(&format!("a task of {service} {wanted}"), || {
        tasks(api, service).into_iter().find_map(|t| {
            let c = container_of(&t)?;
            (state(&t) == wanted).then_some((t, c))
        })
    })
}

/// Wait until task `id` is in `wanted` state; the task.
fn task_reaches(api: &Api, service: &str, id: &str, wanted: &str) -> Value {
    let start = Instant::now();
    loop {
        let all = tasks(api, service);
        if let Some(t) = all.iter().find(|t| t["ID"] == id && state(t) == wanted) {
            eprintln!("    task {id} of {service} {wanted}: {:?}", start.elapsed());
            return t.clone();
        }
        assert!(
            start.elapsed() < SETTLE,
            "timed out waiting for task {id} of {service} {wanted}; tasks: {}",
            serde_json::to_string(&all).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create(api: &Api, spec: Value) -> String {
    api.post_ok("/services/create", &spec)["ID"]
        .as_str()
        .expect("an ID")
        .to_owned()
}

fn replicated(name: &str, container: Value, restart: &str) -> Value {
    json!({
        "Name": name,
        "TaskTemplate": {
            "ContainerSpec": container,
            "RestartPolicy": {"Condition": restart, "Delay": 100 * MS},
        },
        "Mode": {"Replicated": {"Replicas": 1}},
    })
}

/// Set a service's replicas through a read-modify-write of its spec.
/// `node update --availability VALUE` of the only node: a drain stops its tasks, which stay
/// in their slots' history (a scale-down would retire the slots, and their tasks leave the
/// state soon after).
fn availability(api: &Api, value: &str) {
    let node = api.get_ok("/nodes")[0].clone();
    let id = node["ID"].as_str().expect("a node ID");
    let mut spec = node["Spec"].clone();
    spec["Availability"] = json!(value);
    let version = node["Version"]["Index"].as_u64().expect("a version");
    api.post_ok(&format!("/nodes/{id}/update?version={version}"), &spec);
}

/// A docker-save archive of the busybox fixture whose config has a HEALTHCHECK.
fn image_with_healthcheck(d: &Daemon, name: &str, healthcheck: Value) -> std::path::PathBuf {
    let dir = d.dir.path().join("hc-image");
    std::fs::create_dir_all(dir.join("layer")).unwrap();
    let layer = dir.join("layer/layer.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(common::fixture_rootfs())
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar the fixture");
    let sum = Command::new("sha256sum").arg(&layer).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout);
    let digest = sum.split_whitespace().next().expect("a sha256").to_owned();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Healthcheck": healthcheck,
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let manifest = json!([{
        "Config": "config.json",
        "RepoTags": [name],
        "Layers": ["layer/layer.tar"],
    }]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = d.dir.path().join("hc-image.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&archive)
        .args(["manifest.json", "config.json", "layer/layer.tar"])
        .status()
        .unwrap();
    assert!(status.success(), "tar the image archive");
    archive
}

#[test]
fn t87_health_checks_exit_codes_stops_and_mode_changes() {
    let listen = format!("127.0.0.1:{}", free_port());
    let d = Daemon::start_with(
        "health",
        &[
            "--listen-addr",
            &listen,
            "--advertise-addr",
            "127.0.0.1",
            "--log-level",
            "info",
        ],
    );
    let api = Api::new(&d.socket);
    d.import_busybox();
    api.post_ok(
        "/swarm/init",
        &json!({"ListenAddr": listen, "AdvertiseAddr": "127.0.0.1"}),
    );

    eprintln!("--- a health-checked task is starting while its probe fails in the start period");
    d.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--health-cmd",
        "test -f /tmp/ready",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "5s",
        "--health-retries",
        "2",
        "--health-start-period",
        "10m",
        "--health-start-interval",
        "200ms",
        "--stop-grace-period",
        "1s",
        "--restart-delay",
        "100ms",
        "busybox:test",
        "sleep",
        "1000",
    ]);
    let (first, web1) = task_in(&api, "web", "starting");
    let first_id = first["ID"].as_str().unwrap().to_owned();
    let failed_probes = wait_for("three failed probes logged", || {
        let i = inspect(&api, &web1);
        let log = i["State"]["Health"]["Log"].as_array().cloned()?;
        (log.len() >= 3).then_some(i)
    });
    let health = &failed_probes["State"]["Health"];
    assert_eq!(health["Status"], "starting", "{health}");
    assert_eq!(
        health["FailingStreak"], 0,
        "start-period failures count: {health}"
    );
    for probe in health["Log"].as_array().unwrap() {
        assert_eq!(probe["ExitCode"], 1, "{probe}");
        assert!(probe["Start"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(probe["End"].as_str().is_some_and(|s| !s.is_empty()));
    }
    assert_eq!(
        failed_probes["Config"]["Healthcheck"]["Test"],
        json!(["CMD-SHELL", "test -f /tmp/ready"])
    );
    let still = tasks(&api, "web");
    let still = still.iter().find(|t| t["ID"] == first_id.as_str()).unwrap();
    assert_eq!(
        state(still),
        "starting",
        "failing probes in the start period must not fail or run the task"
    );

    eprintln!("--- the probe passes: running and healthy");
    d.ok(&["exec", &web1, "touch", "/tmp/ready"]);
    task_reaches(&api, "web", &first_id, "running");
    let healthy = wait_for("web's container healthy in inspect", || {
        let i = inspect(&api, &web1);
        (i["State"]["Health"]["Status"] == "healthy").then_some(i)
    });
    let health = &healthy["State"]["Health"];
    assert_eq!(health["FailingStreak"], 0);
    let log = health["Log"].as_array().unwrap();
    assert!(log.len() <= 5, "the log keeps the last 5 probes: {health}");
    assert_eq!(log.last().unwrap()["ExitCode"], 0);
    let listed = api.get_ok("/containers/json");
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Id"] == web1.as_str())
        .expect("web's container listed");
    let status = row["Status"].as_str().unwrap();
    assert!(
        status.starts_with("Up ") && status.ends_with("(healthy)"),
        "ps status: {status}"
    );

    eprintln!("--- the probe starts failing: the task fails as unhealthy and is replaced");
    d.ok(&["exec", &web1, "rm", "/tmp/ready"]);
    let failed = task_reaches(&api, "web", &first_id, "failed");
    assert_eq!(failed["Status"]["Err"], UNHEALTHY, "{failed}");
    assert_eq!(failed["Status"]["ContainerStatus"]["ExitCode"], 137);
    let old = inspect(&api, &web1);
    assert_eq!(
        old["State"]["Running"], false,
        "the unhealthy container stopped"
    );
    assert_eq!(old["State"]["Health"]["Status"], "unhealthy");
    assert!(old["State"]["Health"]["FailingStreak"].as_u64() >= Some(2));
    let (replacement, web2) = wait_for("a new task in web's slot", || {
        tasks(&api, "web").into_iter().find_map(|t| {
            let c = container_of(&t)?;
            (t["ID"] != first_id.as_str() && t["Slot"] == first["Slot"] && state(&t) == "starting")
                .then_some((t, c))
        })
    });
    assert_ne!(web2, web1);
    assert_eq!(replacement["DesiredState"], "running");

    eprintln!("--- a probe that hangs is killed at its timeout; probes do not pile up");
    create(
        &api,
        replicated(
            "slow",
            json!({
                "Image": "busybox:test",
                "Args": ["sleep", "1000"],
                "StopGracePeriod": 1000 * MS,
                "Healthcheck": {
                    "Test": ["CMD", "sleep", "37"],
                    "Interval": 100 * MS,
                    "Timeout": 300 * MS,
                    "Retries": 1000,
                },
            }),
            "none",
        ),
    );
    let (_, slow) = task_in(&api, "slow", "starting");
    let timed_out = wait_for("three timed-out probes", || {
        let i = inspect(&api, &slow);
        let log = i["State"]["Health"]["Log"].as_array().cloned()?;
        (log.len() >= 3).then_some(log)
    });
    for probe in &timed_out {
        assert_eq!(probe["ExitCode"], -1, "{probe}");
        assert_eq!(probe["Output"], "Health check exceeded timeout (300ms)");
    }
    let ps = d.ok(&["exec", &slow, "ps"]);
    let hanging = ps.lines().filter(|l| l.contains("sleep 37")).count();
    assert!(hanging <= 1, "timed-out probes left running:\n{ps}");
    api.delete("/services/slow").unwrap();

    eprintln!("--- a bad health check is refused with Docker's message");
    let reply = api
        .post(
            "/services/create",
            &replicated(
                "bad",
                json!({"Image": "busybox:test", "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}}),
                "none",
            ),
        )
        .unwrap();
    assert_eq!(reply.status, 400, "{reply}");
    assert_eq!(
        reply.message(),
        "Interval in Healthcheck cannot be less than 1ms"
    );

    eprintln!("--- an image's HEALTHCHECK applies; --no-healthcheck turns it off");
    let archive = image_with_healthcheck(
        &d,
        "hc:test",
        json!({"Test": ["CMD", "false"], "Interval": 200 * MS, "Retries": 1}),
    );
    d.ok(&["image", "load", "-i", archive.to_str().unwrap()]);
    create(
        &api,
        replicated(
            "imgcheck",
            json!({"Image": "hc:test", "Args": ["sleep", "1000"], "StopGracePeriod": 1000 * MS}),
            "none",
        ),
    );
    let (failed, checked) = task_in(&api, "imgcheck", "failed");
    assert_eq!(failed["Status"]["Err"], UNHEALTHY, "{failed}");
    assert_eq!(
        inspect(&api, &checked)["Config"]["Healthcheck"]["Test"],
        json!(["CMD", "false"])
    );
    d.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "nocheck",
        "--no-healthcheck",
        "hc:test",
        "sleep",
        "1000",
    ]);
    let (_, unchecked) = task_in(&api, "nocheck", "running");
    let i = inspect(&api, &unchecked);
    assert!(
        i["State"].get("Health").is_none(),
        "no health without a check: {}",
        i["State"]
    );
    assert_eq!(i["Config"]["Healthcheck"]["Test"], json!(["NONE"]));

    eprintln!("--- a container that exits 3 fails its task with its exit code");
    create(
        &api,
        replicated(
            "exit3",
            json!({"Image": "busybox:test", "Args": ["sh", "-c", "exit 3"]}),
            "none",
        ),
    );
    let (failed, _) = task_in(&api, "exit3", "failed");
    assert_eq!(
        failed["Status"]["Err"], "task: non-zero exit (3)",
        "{failed}"
    );
    assert_eq!(failed["Status"]["ContainerStatus"]["ExitCode"], 3);

    eprintln!("--- a stop uses the spec's stop signal, then SIGKILL after the grace period");
    create(
        &api,
        replicated(
            "trapper",
            json!({
                "Image": "busybox:test",
                "Args": ["sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.2; done"],
                "StopSignal": "SIGUSR1",
                "StopGracePeriod": 30_000 * MS,
            }),
            "none",
        ),
    );
    // The container's init ignores SIGUSR2 (no handler), so only SIGKILL ends it.
    create(
        &api,
        replicated(
            "stubborn",
            json!({
                "Image": "busybox:test",
                "Args": ["sleep", "1000"],
                "StopSignal": "SIGUSR2",
                "StopGracePeriod": 500 * MS,
            }),
            "none",
        ),
    );
    let (trapper, _) = task_in(&api, "trapper", "running");
    let (stubborn, _) = task_in(&api, "stubborn", "running");
    availability(&api, "drain");
    let trapper = task_reaches(&api, "trapper", trapper["ID"].as_str().unwrap(), "shutdown");
    assert_eq!(
        trapper["Status"]["ContainerStatus"]["ExitCode"], 7,
        "the stop signal reached the trap: {trapper}"
    );
    let stubborn = task_reaches(
        &api,
        "stubborn",
        stubborn["ID"].as_str().unwrap(),
        "shutdown",
    );
    assert_eq!(
        stubborn["Status"]["ContainerStatus"]["ExitCode"], 137,
        "SIGKILL after the grace period: {stubborn}"
    );
    availability(&api, "active");

    eprintln!("--- a change of mode is refused");
    let web = api.get_ok("/services/web");
    let mut spec = web["Spec"].clone();
    spec["Mode"] = json!({"Global": {}});
    let version = web["Version"]["Index"].as_u64().unwrap();
    let reply = api
        .post(&format!("/services/web/update?version={version}"), &spec)
        .unwrap();
    assert_eq!(reply.status, 400, "{reply}");
    assert_eq!(reply.message(), "service mode change is not allowed");
    let web = api.get_ok("/services/web");
    assert_eq!(web["Spec"]["Mode"]["Replicated"]["Replicas"], 1);

    eprintln!("--- local containers are health-checked too");
    let local = api.post_ok(
        "/containers/create?name=local-hc",
        &json!({
            "Image": "busybox:test",
            "Cmd": ["sleep", "1000"],
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 200 * MS},
        }),
    )["Id"]
        .as_str()
        .expect("an Id")
        .to_owned();
    api.post_ok(&format!("/containers/{local}/start"), &json!({}));
    wait_for("swarm ps shows local-hc healthy", || {
        let ps = d.ok(&["ps"]);
        ps.lines()
            .any(|l| l.contains("local-hc") && l.contains("Up ") && l.contains("(healthy)"))
            .then_some(())
    });
    assert_eq!(
        inspect(&api, &local)["State"]["Health"]["Status"],
        "healthy"
    );
    d.ok(&["rm", "-f", "local-hc"]);

    eprintln!("--- services removed: their containers go");
    for s in ["web", "imgcheck", "nocheck", "exit3", "trapper", "stubborn"] {
        api.delete(&format!("/services/{s}")).unwrap();
    }
    wait_for("no container left", || {
        let left = api.get_ok("/containers/json?all=1");
        left.as_array().is_some_and(|l| l.is_empty()).then_some(())
    });
}
