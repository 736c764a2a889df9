//! t86: services on a real cluster. Every node is a `swarm daemon` on its own network-namespace
//! host (`tests/common/cluster.rs`) running real containers; the test talks to the daemons
//! over their API sockets (and through our CLI and the real docker CLI), as a user would.
//!
//! - t10 placement: 6 replicas spread 2/2/2; scale 6 → 0 → 6; binpack fills a node first;
//!   constraints on hostname, role and labels; an impossible reservation stays pending with
//!   Docker's "no suitable node (insufficient memory on 3 nodes)"; max replicas per node;
//!   placement preferences; the docker CLI's service commands; after `service rm` no
//!   container, cgroup or mount is left on any host
//! - t20 failures: kill -9 a worker and its tasks run elsewhere; it comes back and its stale
//!   containers go; drain moves tasks off, pause stops new placements; a global service
//!   follows a node joining, draining and being removed; a daemon restart adopts its running
//!   containers (same containers, same processes)
//! - t30 restart policy and bad specs: a crashing task restarts with a growing delay up to
//!   MaxAttempts; condition none leaves it complete; malformed specs get a 400 that says
//!   what is wrong, a missing image a task error that says so
//!
//! Timing flags are relaxed for a busy 2-core machine; no assertion is about speed.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::SWARM;
use common::cluster::{Cluster, ClusterOptions};
use common::http::Api;
use common::swarm_api::{
    bootstrap, create_service, import_busybox, join, running_per_node, summary, task_containers,
    tasks, wait_running, wait_until,
};

/// Liveness timing for a loaded machine: a node is Down 4 s after its last heartbeat.
const TIMING: &[&str] = &[
    "--raft-heartbeat-ms",
    "300",
    "--raft-election-ms",
    "2000",
    "--node-heartbeat-ms",
    "500",
    "--node-down-after-ms",
    "4000",
];
/// Bound on a service converging (image is local; the machine may be busy).
const CONVERGE: Duration = Duration::from_secs(60);

fn start(hosts: usize) -> Cluster {
    let cluster = Cluster::start_with(
        hosts,
        ClusterOptions {
            daemon_args: TIMING.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    for i in 0..hosts {
        import_busybox(cluster.host(i), cluster.dir());
    }
    cluster
}

/// A replicated `sleep` service; `edit` adds to the spec.
fn spec(name: &str, replicas: i64, edit: impl FnOnce(&mut Value)) -> Value {
    let mut spec = json!({
        "Name": name,
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "busybox:test",
                "Command": ["sleep", "3600"],
                "StopGracePeriod": 300_000_000i64,
            },
            "RestartPolicy": {"Condition": "any", "Delay": 200_000_000i64},
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
    });
    edit(&mut spec);
    spec
}

/// Read-modify-write of a service's spec, as `docker service update` does.
fn update_service(api: &Api, service: &str, edit: impl FnOnce(&mut Value)) {
    let current = api.get_ok(&format!("/services/{service}"));
    let version = current["Version"]["Index"].as_u64().expect("version");
    let mut spec = current["Spec"].clone();
    edit(&mut spec);
    let reply = api
        .post(
            &format!("/services/{service}/update?version={version}"),
            &spec,
        )
        .expect("update answers");
    assert!(reply.ok(), "update {service}: {reply}");
}

fn scale(api: &Api, service: &str, replicas: i64) {
    eprintln!("--- scale {service} to {replicas}");
    update_service(api, service, |s| {
        s["Mode"]["Replicated"]["Replicas"] = json!(replicas)
    });
}

/// Read-modify-write of a node's spec.
fn update_node(api: &Api, node: &str, edit: impl FnOnce(&mut Value)) {
    let current = api.get_ok(&format!("/nodes/{node}"));
    let version = current["Version"]["Index"].as_u64().expect("version");
    let mut spec = current["Spec"].clone();
    edit(&mut spec);
    let reply = api
        .post(&format!("/nodes/{node}/update?version={version}"), &spec)
        .expect("node update answers");
    assert!(reply.ok(), "update node {node}: {reply}");
}

fn availability(api: &Api, node: &str, value: &str) {
    eprintln!("--- node {node}: availability {value}");
    update_node(api, node, |s| s["Availability"] = json!(value));
}

fn remove_service(api: &Api, service: &str) {
    let reply = api
        .delete(&format!("/services/{service}"))
        .expect("rm answers");
    assert!(reply.ok(), "service rm {service}: {reply}");
}

/// Counts per host index (0 for hosts without tasks), from counts per node ID.
fn per_host(counts: &BTreeMap<String, usize>, ids: &[String]) -> Vec<usize> {
    ids.iter()
        .map(|id| counts.get(id).copied().unwrap_or(0))
        .collect()
}

/// The error of the service's pending task, once it has one.
fn pending_error(api: &Api, service: &str) -> String {
    wait_until(
        &format!("{service} has a pending task with an error"),
        CONVERGE,
        || {
            tasks(api, service)
                .iter()
                .find(|t| t["Status"]["State"] == "pending" && t["Status"]["Err"].is_string())
                .map(|t| t["Status"]["Err"].as_str().unwrap().to_string())
        },
    )
}

/// Containers of this service's tasks that are running on host `i`.
fn running_containers(c: &Cluster, i: usize, service_name: &str) -> Vec<Value> {
    task_containers(&c.api(i))
        .into_iter()
        .filter(|k| {
            k["State"] == "running" && k["Labels"]["com.docker.swarm.service.name"] == service_name
        })
        .collect()
}

/// After every service is removed: no task container, runtime state, cgroup or mount of
/// any container is left on any host.
fn assert_hosts_clean(c: &Cluster, container_ids: &[String]) {
    for i in 0..c.len() {
        let api = c.api(i);
        wait_until(&format!("h{i} has no task containers"), CONVERGE, || {
            task_containers(&api).is_empty().then_some(())
        });
        let root = c.host(i).dir.join("run/runtime");
        let out = Command::new(SWARM)
            .args(["runtime", "--root"])
            .arg(&root)
            .args(["list", "-q"])
            .output()
            .expect("runtime list");
        let left = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(left.is_empty(), "h{i}: runtime still has {left}");
        let dir = c.host(i).dir.to_string_lossy().into_owned();
        let mounts = common::host_mounts_mentioning(&dir);
        assert!(mounts.is_empty(), "h{i}: mounts left: {mounts:?}");
    }
    for id in container_ids {
        common::assert_no_cgroup(&format!("swarm/{id}"));
    }
}

#[test]
fn t10_placement_scaling_and_cleanup() {
    let c = start(3);
    let ids = bootstrap(&c, 1, 3);
    let api = c.api(0);
    let mut containers = Vec::new();

    eprintln!("--- 6 replicas spread 2/2/2");
    let web = create_service(&api, &spec("web", 6, |_| {}));
    let counts = wait_running(&api, &web, 6, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![2, 2, 2], "spread: {counts:?}");
    // The containers are real: each host runs its two, labelled with their task.
    for i in 0..3 {
        let running = running_containers(&c, i, "web");
        assert_eq!(running.len(), 2, "h{i} runs {running:?}");
        containers.extend(
            running
                .iter()
                .map(|k| k["Id"].as_str().unwrap().to_string()),
        );
    }
    // Like Docker, a worker does not serve the swarm's objects.
    let reply = c.api(2).get("/tasks").expect("answers");
    assert_eq!(reply.status, 503, "a worker refuses /tasks: {reply}");

    scale(&api, &web, 0);
    wait_running(&api, &web, 0, CONVERGE);
    for i in 0..3 {
        wait_until(&format!("h{i} stopped web's containers"), CONVERGE, || {
            running_containers(&c, i, "web").is_empty().then_some(())
        });
    }
    scale(&api, &web, 6);
    let counts = wait_running(&api, &web, 6, CONVERGE);
    assert_eq!(
        per_host(&counts, &ids),
        vec![2, 2, 2],
        "spread again: {counts:?}"
    );
    let ls = api.get_ok("/services?status=true");
    let listed = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ID"] == web.as_str())
        .expect("web listed");
    assert_eq!(listed["ServiceStatus"]["RunningTasks"], 6, "{listed}");
    assert_eq!(listed["ServiceStatus"]["DesiredTasks"], 6, "{listed}");

    eprintln!("--- binpack with reservations: the fullest node that fits comes first");
    let memory =
        api.get_ok(&format!("/nodes/{}", ids[0]))["Description"]["Resources"]["MemoryBytes"]
            .as_i64()
            .expect("node memory");
    let reserve = memory * 2 / 5; // two fit on a node, three do not
    let packed = create_service(
        &api,
        &spec("packed", 3, |s| {
            s["Labels"] = json!({"swarm.strategy": "binpack"});
            s["TaskTemplate"]["Resources"] = json!({"Reservations": {"MemoryBytes": reserve}});
        }),
    );
    let counts = wait_running(&api, &packed, 3, CONVERGE);
    let mut shape: Vec<usize> = counts.values().copied().collect();
    shape.sort();
    assert_eq!(shape, vec![1, 2], "binpack fills a node first: {counts:?}");
    remove_service(&api, &packed);

    eprintln!("--- an impossible reservation stays pending with a clear error");
    let huge = create_service(
        &api,
        &spec("huge", 1, |s| {
            s["TaskTemplate"]["Resources"] = json!({"Reservations": {"MemoryBytes": memory * 4}});
        }),
    );
    let err = pending_error(&api, &huge);
    assert_eq!(err, "no suitable node (insufficient memory on 3 nodes)");
    let cli = c.host(0).swarm(&["service", "ps", "huge", "--no-trunc"]);
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains("insufficient memory on 3 nodes"),
        "service ps shows the error"
    );
    remove_service(&api, &huge);

    eprintln!("--- constraints: hostname, role, labels");
    let on_h1 = create_service(
        &api,
        &spec("on-h1", 3, |s| {
            s["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.hostname==h1"]});
        }),
    );
    let counts = wait_running(&api, &on_h1, 3, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![0, 3, 0], "{counts:?}");
    let managers = create_service(
        &api,
        &spec("managers", 2, |s| {
            s["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.role == manager"]});
        }),
    );
    let counts = wait_running(&api, &managers, 2, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![2, 0, 0], "{counts:?}");
    update_node(&api, &ids[0], |s| s["Labels"] = json!({"zone": "a"}));
    update_node(&api, &ids[1], |s| s["Labels"] = json!({"zone": "b"}));
    update_node(&api, &ids[2], |s| {
        s["Labels"] = json!({"zone": "b", "disk": "ssd"})
    });
    let ssd = create_service(
        &api,
        &spec("ssd", 2, |s| {
            s["TaskTemplate"]["Placement"] =
                json!({"Constraints": ["node.labels.disk==ssd", "node.hostname!=h0"]});
        }),
    );
    let counts = wait_running(&api, &ssd, 2, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![0, 0, 2], "{counts:?}");

    eprintln!("--- placement preference: spread over zones, then max replicas per node");
    let zoned = create_service(
        &api,
        &spec("zoned", 4, |s| {
            s["TaskTemplate"]["Placement"] =
                json!({"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]});
        }),
    );
    let counts = wait_running(&api, &zoned, 4, CONVERGE);
    let hosts = per_host(&counts, &ids);
    assert_eq!(hosts[0], 2, "zone a (h0 alone) gets half: {hosts:?}");
    assert_eq!(hosts[1] + hosts[2], 2, "zone b gets half: {hosts:?}");
    let capped = create_service(
        &api,
        &spec("capped", 4, |s| {
            s["TaskTemplate"]["Placement"] = json!({"MaxReplicas": 1});
        }),
    );
    let counts = wait_running(&api, &capped, 3, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![1, 1, 1], "{counts:?}");
    let err = pending_error(&api, &capped);
    assert_eq!(
        err,
        "no suitable node (max replicas per node reached on 3 nodes)"
    );

    eprintln!("--- the docker CLI drives services too");
    let docker = |args: &[&str]| {
        let mut command = Command::new("docker");
        command
            .env(
                "DOCKER_HOST",
                format!("unix://{}", c.host(0).socket.display()),
            )
            .env("DOCKER_CONFIG", c.dir().join("docker-config"))
            .args(args);
        common::run_logged(&mut command, &format!("docker {}", args.join(" ")))
    };
    let out = docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        "dk",
        "--replicas",
        "3",
        "--stop-grace-period",
        "300ms",
        "busybox:test",
        "sleep",
        "3600",
    ]);
    assert!(out.status.success(), "docker service create");
    wait_running(&api, "dk", 3, CONVERGE);
    let out = docker(&["service", "ls"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains("dk") && l.contains("3/3")),
        "docker service ls shows dk 3/3:\n{text}"
    );
    let out = docker(&["service", "ps", "dk"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("Running")).count(),
        3,
        "docker service ps:\n{text}"
    );
    assert!(
        docker(&["service", "scale", "--detach", "dk=1"])
            .status
            .success()
    );
    wait_running(&api, "dk", 1, CONVERGE);
    let out = docker(&["service", "inspect", "dk"]);
    let inspect: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(inspect[0]["Spec"]["Mode"]["Replicated"]["Replicas"], 1);
    assert!(docker(&["service", "rm", "dk"]).status.success());

    eprintln!("--- service rm of everything leaves nothing on any host");
    for i in 0..3 {
        containers.extend(
            task_containers(&c.api(i))
                .iter()
                .map(|k| k["Id"].as_str().unwrap().to_string()),
        );
    }
    for service in [&web, &on_h1, &managers, &ssd, &zoned, &capped] {
        remove_service(&api, service);
    }
    let left = api.get_ok("/services");
    assert_eq!(left, json!([]), "services left");
    wait_until("no tasks left", CONVERGE, || {
        api.get_ok("/tasks")
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });
    assert_hosts_clean(&c, &containers);
}

#[test]
fn t20_node_failures_drain_pause_global_and_adoption() {
    let mut c = start(4);
    // h0 manager, h1 and h2 workers; h3 joins later.
    let ids = bootstrap(&c, 1, 3);
    let api = c.api(0);

    let web = create_service(&api, &spec("web", 6, |_| {}));
    let counts = wait_running(&api, &web, 6, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![2, 2, 2], "{counts:?}");

    eprintln!("--- a daemon restart adopts its running containers");
    let before: Vec<(String, i64)> = running_containers(&c, 1, "web")
        .iter()
        .map(|k| {
            let id = k["Id"].as_str().unwrap().to_string();
            let pid = c.api(1).get_ok(&format!("/containers/{id}/json"))["State"]["Pid"]
                .as_i64()
                .unwrap();
            (id, pid)
        })
        .collect();
    let tasks_before: Vec<String> = tasks(&api, &web)
        .iter()
        .map(|t| t["ID"].as_str().unwrap().to_string())
        .collect();
    c.restart(1);
    wait_until("h1 ready again", CONVERGE, || {
        let node = api.get(&format!("/nodes/{}", ids[1])).ok()?.json();
        (node["Status"]["State"] == "ready").then_some(())
    });
    // Give the runner a few ticks after the restart: nothing may be restarted or replaced.
    std::thread::sleep(Duration::from_secs(2));
    let counts = wait_running(&api, &web, 6, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![2, 2, 2], "{counts:?}");
    for (id, pid) in &before {
        let state = c.api(1).get_ok(&format!("/containers/{id}/json"))["State"].clone();
        assert_eq!(state["Running"], true, "{id} still runs: {state}");
        assert_eq!(
            state["Pid"].as_i64(),
            Some(*pid),
            "{id} is the same process"
        );
    }
    let tasks_after: Vec<String> = tasks(&api, &web)
        .iter()
        .map(|t| t["ID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tasks_before, tasks_after, "no task was replaced");

    eprintln!("--- kill -9 worker h2: its tasks run elsewhere");
    c.kill9(2);
    wait_until("h2 marked down", CONVERGE, || {
        let node = api.get(&format!("/nodes/{}", ids[2])).ok()?.json();
        (node["Status"]["State"] == "down").then_some(())
    });
    wait_until("h2's tasks replaced on h0 and h1", CONVERGE, || {
        let counts = per_host(&running_per_node(&api, &web), &ids);
        (counts == [3, 3, 0]).then_some(())
    });
    eprintln!("--- h2 comes back: its stale containers are stopped, nothing moves back");
    c.restart(2);
    wait_until("h2 ready again", CONVERGE, || {
        let node = api.get(&format!("/nodes/{}", ids[2])).ok()?.json();
        (node["Status"]["State"] == "ready").then_some(())
    });
    wait_until("h2 stopped its stale containers", CONVERGE, || {
        running_containers(&c, 2, "web").is_empty().then_some(())
    });
    let counts = wait_running(&api, &web, 6, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![3, 3, 0], "{counts:?}");

    eprintln!("--- drain h1: its tasks move, the node gets none");
    availability(&api, &ids[1], "drain");
    wait_until("h1 drained", CONVERGE, || {
        let counts = running_per_node(&api, &web);
        (counts.values().sum::<usize>() == 6 && !counts.contains_key(&ids[1])).then_some(())
    });
    wait_until("h1's containers stopped", CONVERGE, || {
        running_containers(&c, 1, "web").is_empty().then_some(())
    });
    availability(&api, &ids[1], "active");

    eprintln!("--- pause h0: scaling up places nothing new there");
    let on_h0 = running_per_node(&api, &web)
        .get(&ids[0])
        .copied()
        .unwrap_or(0);
    availability(&api, &ids[0], "pause");
    scale(&api, &web, 9);
    let counts = wait_running(&api, &web, 9, CONVERGE);
    assert_eq!(
        counts.get(&ids[0]).copied().unwrap_or(0),
        on_h0,
        "paused h0 kept its tasks and got no new one: {counts:?}"
    );
    availability(&api, &ids[0], "active");

    eprintln!("--- a global service follows nodes");
    let global = create_service(
        &api,
        &json!({
            "Name": "agent",
            "TaskTemplate": {"ContainerSpec": {
                "Image": "busybox:test",
                "Command": ["sleep", "3600"],
                "StopGracePeriod": 300_000_000i64,
            }},
            "Mode": {"Global": {}},
        }),
    );
    let counts = wait_running(&api, &global, 3, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![1, 1, 1], "{counts:?}");
    let token = api.get_ok("/swarm")["JoinTokens"]["Worker"]
        .as_str()
        .unwrap()
        .to_string();
    join(&c, 3, &token);
    let h3 = c.api(3).get_ok("/info")["Swarm"]["NodeID"]
        .as_str()
        .unwrap()
        .to_string();
    let counts = wait_running(&api, &global, 4, CONVERGE);
    assert_eq!(
        counts.get(&h3),
        Some(&1),
        "the new node runs one: {counts:?}"
    );
    availability(&api, &h3, "drain");
    let counts = wait_running(&api, &global, 3, CONVERGE);
    assert!(!counts.contains_key(&h3), "{counts:?}");
    availability(&api, &h3, "active");
    wait_running(&api, &global, 4, CONVERGE);
    eprintln!("--- h3 leaves and is removed: the global service shrinks");
    let reply = c.api(3).post("/swarm/leave", &json!({})).expect("leave");
    assert!(reply.ok(), "leave: {reply}");
    wait_until("h3's containers gone", CONVERGE, || {
        running_containers(&c, 3, "agent").is_empty().then_some(())
    });
    wait_until("h3 down", CONVERGE, || {
        let node = api.get(&format!("/nodes/{h3}")).ok()?.json();
        (node["Status"]["State"] == "down").then_some(())
    });
    let reply = api.delete(&format!("/nodes/{h3}")).expect("node rm");
    assert!(reply.ok(), "node rm: {reply}");
    let counts = wait_running(&api, &global, 3, CONVERGE);
    assert_eq!(per_host(&counts, &ids), vec![1, 1, 1], "{counts:?}");

    remove_service(&api, &web);
    remove_service(&api, &global);
    assert_hosts_clean(&c, &[]);
}

#[test]
fn t30_restart_policy_and_bad_specs() {
    let c = start(1);
    bootstrap(&c, 1, 1);
    let api = c.api(0);

    eprintln!("--- a crashing task restarts with a growing delay, MaxAttempts times");
    let delay = 300_000_000i64;
    let crash = create_service(
        &api,
        &spec("crash", 1, |s| {
            s["TaskTemplate"]["ContainerSpec"]["Command"] = json!(["sh", "-c", "exit 3"]);
            s["TaskTemplate"]["RestartPolicy"] =
                json!({"Condition": "on-failure", "Delay": delay, "MaxAttempts": 3});
        }),
    );
    let history = wait_until("4 failed tasks (1 + 3 restarts)", CONVERGE, || {
        let tasks = tasks(&api, &crash);
        (tasks.len() == 4 && tasks.iter().all(|t| t["Status"]["State"] == "failed"))
            .then_some(tasks)
    });
    // Nothing more comes: the slot has given up.
    std::thread::sleep(Duration::from_millis(4 * delay as u64 / 1_000_000));
    let later = tasks(&api, &crash);
    assert_eq!(later.len(), 4, "no fifth attempt: {}", summary(&later));
    let mut history = history;
    history.sort_by_key(|t| t["CreatedAt"].as_str().unwrap().to_string());
    for t in &history {
        assert_eq!(t["Slot"], 1);
        assert_eq!(t["Status"]["Err"], "task: non-zero exit (3)", "{t}");
        assert_eq!(t["Status"]["ContainerStatus"]["ExitCode"], 3, "{t}");
    }
    let nanos = |t: &Value, field: &str| -> i64 {
        let text = match field {
            "created" => t["CreatedAt"].as_str(),
            _ => t["Status"]["Timestamp"].as_str(),
        };
        chrono_nanos(text.expect("timestamp"))
    };
    for k in 1..history.len() {
        let gap = nanos(&history[k], "created") - nanos(&history[k - 1], "ended");
        let want = delay << (k - 1);
        assert!(
            gap >= want - 1_000_000,
            "restart {k} came {gap} ns after the failure, the policy says at least {want}: {}",
            serde_json::to_string_pretty(&history).unwrap()
        );
    }
    let ls = c.host(0).swarm(&["service", "ls"]);
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains("0/1"),
        "service ls shows 0/1"
    );

    eprintln!("--- condition none: a task that completes stays complete");
    let once = create_service(
        &api,
        &spec("once", 1, |s| {
            s["TaskTemplate"]["ContainerSpec"]["Command"] = json!(["true"]);
            s["TaskTemplate"]["RestartPolicy"] = json!({"Condition": "none"});
        }),
    );
    wait_until("once complete", CONVERGE, || {
        let tasks = tasks(&api, &once);
        (tasks.len() == 1 && tasks[0]["Status"]["State"] == "complete").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(tasks(&api, &once).len(), 1, "no restart");

    eprintln!("--- a missing image: the task fails with an error that names it");
    let missing = create_service(
        &api,
        &spec("missing", 1, |s| {
            s["TaskTemplate"]["ContainerSpec"]["Image"] = json!("127.0.0.1:9/nope:1");
            s["TaskTemplate"]["RestartPolicy"] = json!({"Condition": "none"});
        }),
    );
    let err = wait_until("missing's task failed", CONVERGE, || {
        tasks(&api, &missing)
            .iter()
            .find(|t| matches!(t["Status"]["State"].as_str(), Some("failed" | "rejected")))
            .map(|t| t["Status"]["Err"].as_str().unwrap_or("").to_string())
    });
    assert!(
        err.contains("127.0.0.1:9/nope:1"),
        "error names the image: {err}"
    );

    eprintln!("--- bad specs: 400 with a message, nothing created");
    let bad: Vec<(&str, Value)> = vec![
        ("negative replicas", spec("bad", -1, |_| {})),
        (
            "unknown mode",
            spec("bad", 1, |s| s["Mode"] = json!({"Sideways": {}})),
        ),
        (
            "malformed constraint",
            spec("bad", 1, |s| {
                s["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.hostname=h0"]})
            }),
        ),
        (
            "bad memory size",
            spec("bad", 1, |s| {
                s["TaskTemplate"]["Resources"] = json!({"Limits": {"MemoryBytes": "12qb"}})
            }),
        ),
        (
            "no image",
            spec("bad", 1, |s| {
                s["TaskTemplate"]["ContainerSpec"]["Image"] = json!("")
            }),
        ),
    ];
    for (what, body) in bad {
        let reply = api.post("/services/create", &body).expect("answers");
        assert_eq!(reply.status, 400, "{what}: {reply}");
        assert!(!reply.message().is_empty(), "{what}: a message");
        eprintln!("    {what}: {}", reply.message());
    }
    for args in [
        &["service", "create", "--replicas", "-1", "busybox:test"][..],
        &[
            "service",
            "create",
            "--limit-memory",
            "12qb",
            "busybox:test",
        ][..],
        &["service", "create", "--mode", "sideways", "busybox:test"][..],
        &[
            "service",
            "create",
            "--constraint",
            "node.hostname",
            "busybox:test",
        ][..],
    ] {
        let out = c.host(0).swarm(args);
        assert!(!out.status.success(), "{args:?} refused");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
    let names: Vec<String> = api
        .get_ok("/services")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Spec"]["Name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n == "bad"),
        "nothing created: {names:?}"
    );

    for s in [&crash, &once, &missing] {
        remove_service(&api, s);
    }
    assert_hosts_clean(&c, &[]);
}

/// RFC 3339 with nanoseconds (Docker's timestamps) → nanoseconds since the epoch.
fn chrono_nanos(text: &str) -> i64 {
    swarm::types::Timestamp::parse_rfc3339(text)
        .unwrap_or_else(|e| panic!("timestamp {text:?}: {e}"))
        .as_nanos()
}
