//! t91: networks, the control plane (issue 6 part A): network objects, subnets and address
//! blocks in the Raft state, service endpoints (published ports, virtual IPs) and task
//! addresses, through the API, our CLI and the real docker CLIs. No data plane yet: nothing
//! here sends a packet to a container address; the tests check what the cluster records.
//!
//! - t10 one daemon: outside a swarm there are no networks; `swarm init` makes `ingress`;
//!   `docker network create -d overlay [--subnet]`, `ls`, `inspect`, `rm` with both installed
//!   docker CLIs; Docker's refusals (bridge driver, --ip-range, IPv6, a duplicate name, an
//!   overlapping or too small subnet); our CLI's `network` commands; `docker service create
//!   --network NAME --publish 8080:80` gives the service a VIP per network and its ports,
//!   its tasks an address; a second service on port 8080 is refused; a network in use cannot
//!   be removed, and can once its service and tasks are gone
//! - t20 three netns hosts: six tasks of one service on a network spread over the nodes, each
//!   node's tasks get addresses from its own /26 block, all different; `Peers` lists the
//!   nodes; after `service rm` the addresses are free and the network can go

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use common::cluster::{Cluster, ClusterOptions};
use common::daemon::Daemon;
use common::http::Api;
use common::swarm_api::{
    bootstrap, create_service, import_busybox, tasks, wait_running, wait_until,
};

/// Bound on a service converging or going away (the machine may be busy).
const CONVERGE: Duration = Duration::from_secs(90);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One docker CLI binary against a daemon, each command bounded by `timeout`.
struct Docker<'a> {
    bin: String,
    d: &'a Daemon,
}

impl Docker<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new("timeout");
        command
            .args(["-k", "5", "90", &self.bin])
            .args(args)
            .env("DOCKER_HOST", self.d.host())
            .env("DOCKER_CONFIG", self.d.dir.path().join("docker-config"));
        common::run_logged(&mut command, &format!("{} {}", self.bin, args.join(" ")))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.bin,
            stderr(&out)
        );
        stdout(&out)
    }

    /// Must fail; its stderr.
    fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !matches!(out.status.code(), Some(0) | Some(124) | Some(137) | None),
            "{} {args:?} should have failed (and not hung): {}",
            self.bin,
            stdout(&out)
        );
        stderr(&out)
    }
}

/// The docker CLIs to check: the one on PATH, and /usr/bin/docker if it is another one.
fn clients() -> Vec<String> {
    let version = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| stdout(&o).trim().to_string())
    };
    let on_path = version("docker").expect("the docker CLI is installed");
    eprintln!("docker on PATH: {on_path}");
    let mut out = vec!["docker".to_string()];
    if let Some(other) = version("/usr/bin/docker").filter(|v| *v != on_path) {
        eprintln!("/usr/bin/docker: {other}");
        out.push("/usr/bin/docker".into());
    }
    out
}

fn daemon(name: &str) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let listen = format!("127.0.0.1:{port}");
    Daemon::start_with(
        name,
        &[
            "--listen-addr",
            &listen,
            "--advertise-addr",
            "127.0.0.1",
            "--propose-timeout-ms",
            "15000",
        ],
    )
}

fn ip(cidr: &str) -> Ipv4Addr {
    cidr.split('/').next().unwrap().parse().expect("an address")
}

/// The tasks' addresses on `network` (`ADDR/26`), by task ID.
fn task_addresses(tasks: &[Value], network: &str) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for t in tasks {
        for a in t["NetworksAttachments"].as_array().into_iter().flatten() {
            if a["Network"]["ID"] == network {
                let addr = a["Addresses"][0].as_str().unwrap_or_default().to_string();
                out.insert(
                    t["ID"].as_str().unwrap_or_default().to_string(),
                    (t["NodeID"].as_str().unwrap_or_default().to_string(), addr),
                );
            }
        }
    }
    out
}

#[test]
fn t10_networks_and_endpoints_with_the_docker_cli() {
    let d = daemon("t91-one");
    let api = Api::new(&d.socket);

    eprintln!("--- outside a swarm: no networks, and none can be made");
    assert_eq!(api.get_ok("/networks"), json!([]));
    let reply = api
        .post(
            "/networks/create",
            &json!({"Name": "x", "Driver": "overlay"}),
        )
        .unwrap();
    assert_eq!(reply.status, 503, "{reply}");
    assert!(reply.message().contains("not a swarm manager"), "{reply}");

    eprintln!("--- swarm init makes the ingress network");
    api.post_ok(
        "/swarm/init",
        &json!({"ListenAddr": "", "AdvertiseAddr": "127.0.0.1"}),
    );
    let swarm = api.get_ok("/swarm");
    assert_eq!(swarm["SubnetSize"], 20);
    let ingress = api.get_ok("/networks/ingress");
    assert_eq!(ingress["Ingress"], true);
    assert_eq!(ingress["Driver"], "overlay");
    assert_eq!(ingress["Scope"], "swarm");
    assert_eq!(ingress["IPAM"]["Config"][0]["Subnet"], "198.19.0.0/20");
    assert_eq!(ingress["IPAM"]["Config"][0]["Gateway"], "198.19.0.1");

    let clients = clients();
    for (i, bin) in clients.iter().cloned().enumerate() {
        let docker = Docker { bin, d: &d };
        let (front, back) = (format!("front{i}"), format!("back{i}"));
        let subnet = format!("198.19.{}.0/24", 64 + i);
        eprintln!("--- {}: network create / ls / inspect / rm", docker.bin);
        let id = docker
            .ok(&[
                "network", "create", "-d", "overlay", "--subnet", &subnet, &front,
            ])
            .trim()
            .to_string();
        assert_eq!(id.len(), 25, "a swarm network ID: {id}");
        docker.ok(&[
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            &back,
        ]);
        let ls = docker.ok(&["network", "ls"]);
        for name in ["ingress", front.as_str(), back.as_str()] {
            let line = ls
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name));
            let line = line.unwrap_or_else(|| panic!("{name} not in network ls: {ls}"));
            assert!(line.contains("overlay") && line.contains("swarm"), "{line}");
        }
        let filtered = docker.ok(&["network", "ls", "-q", "--filter", &format!("name={front}")]);
        assert_eq!(filtered.trim(), &id[..12]);
        let inspect: Value =
            serde_json::from_str(&docker.ok(&["network", "inspect", &front])).unwrap();
        assert_eq!(inspect[0]["Id"], id.as_str());
        assert_eq!(inspect[0]["IPAM"]["Config"][0]["Subnet"], subnet.as_str());
        let by_prefix: Value =
            serde_json::from_str(&docker.ok(&["network", "inspect", &id[..10]])).unwrap();
        assert_eq!(by_prefix[0]["Name"], front.as_str());
        let back_inspect = api.get_ok(&format!("/networks/{back}"));
        assert_eq!(back_inspect["Attachable"], true);
        assert_eq!(
            back_inspect["IPAM"]["Config"][0]["Subnet"], "198.19.16.0/20",
            "the pool's first free /20 (after ingress's; the last loop's back is gone)"
        );

        eprintln!("--- {}: what a swarm network cannot be", docker.bin);
        let e = docker.err(&["network", "create", "plain"]);
        assert!(e.contains("driver bridge not supported"), "{e}");
        let e = docker.err(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "198.19.96.0/24",
            "--ip-range",
            "198.19.96.0/25",
            "r",
        ]);
        assert!(e.contains("--ip-range is not supported"), "{e}");
        let e = docker.err(&["network", "create", "-d", "overlay", "--ipv6", "v6"]);
        assert!(e.contains("IPv6"), "{e}");
        let e = docker.err(&["network", "create", "-d", "overlay", &front]);
        assert!(
            e.contains(&format!("network with name {front} already exists")),
            "{e}"
        );
        let e = docker.err(&[
            "network", "create", "-d", "overlay", "--subnet", &subnet, "o",
        ]);
        assert!(e.contains("overlaps network"), "{e}");
        let e = docker.err(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "198.19.97.0/25",
            "s",
        ]);
        assert!(e.contains("/16 to /24"), "{e}");
        let e = docker.err(&["network", "inspect", "nosuchnet"]);
        assert!(
            e.to_lowercase().contains("no such network") || e.contains("not found"),
            "{e}"
        );

        docker.ok(&["network", "rm", &back]);
        assert_eq!(api.get(&format!("/networks/{back}")).unwrap().status, 404);
    }

    eprintln!("--- our CLI: network create / ls / inspect --format / rm");
    let id = d
        .ok(&[
            "network",
            "create",
            "--subnet",
            "198.19.80.0/22",
            "--gateway",
            "198.19.80.9",
            "--label",
            "team=a",
            "mine",
        ])
        .trim()
        .to_string();
    let ls = d.ok(&["network", "ls", "--filter", "label=team=a"]);
    assert!(ls.contains("mine") && !ls.contains("ingress"), "{ls}");
    let format = d.ok(&[
        "network",
        "inspect",
        "--format",
        "{{.Name}} {{json .IPAM.Config}}",
        "mine",
    ]);
    assert_eq!(
        format.trim(),
        r#"mine [{"Gateway":"198.19.80.9","Subnet":"198.19.80.0/22"}]"#
    );
    let bad = d.swarm(&[
        "network",
        "create",
        "--subnet",
        "198.19.84.0/24",
        "--gateway",
        "198.19.85.1",
        "g",
    ]);
    assert!(!bad.status.success() && stderr(&bad).contains("not a host address"));
    assert_eq!(d.ok(&["network", "rm", "mine"]).trim(), "mine");
    assert_eq!(api.get(&format!("/networks/{id}")).unwrap().status, 404);

    d.import_busybox();
    let docker = Docker {
        bin: "docker".into(),
        d: &d,
    };
    eprintln!("--- docker service create --network front0 --publish 8080:80");
    let front = api.get_ok("/networks/front0")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let ingress_id = ingress["Id"].as_str().unwrap().to_string();
    docker.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "2",
        "--network",
        "front0",
        "--publish",
        "8080:80",
        "--publish",
        "published=9090,target=90,protocol=udp,mode=host",
        "busybox:test",
        "sleep",
        "3600",
    ]);
    let inspect: Value = serde_json::from_str(&docker.ok(&["service", "inspect", "web"])).unwrap();
    let service = &inspect[0];
    assert_eq!(
        service["Spec"]["TaskTemplate"]["Networks"][0]["Target"],
        front.as_str(),
        "stored by ID"
    );
    let endpoint = &service["Endpoint"];
    assert_eq!(endpoint["Spec"]["Mode"], "vip");
    assert_eq!(
        endpoint["Ports"],
        json!([
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
            {"Protocol": "udp", "TargetPort": 90, "PublishedPort": 9090, "PublishMode": "host"}
        ])
    );
    let vips: BTreeMap<String, String> = endpoint["VirtualIPs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["NetworkID"].as_str().unwrap().to_string(),
                v["Addr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        vips.get(&ingress_id).map(String::as_str),
        Some("198.19.0.2/20")
    );
    assert_eq!(vips.get(&front).map(String::as_str), Some("198.19.64.2/24"));
    let ls = docker.ok(&["service", "ls"]);
    assert!(ls.contains("*:8080->80/tcp"), "{ls}");
    let pretty = d.ok(&["service", "inspect", "--pretty", "web"]);
    for want in [
        "Networks:\tfront0",
        "PublishedPort = 8080",
        "Virtual IPs:",
        "front0: 198.19.64.2/24",
    ] {
        assert!(pretty.contains(want), "{want:?} not in {pretty}");
    }

    let running = wait_running(&api, "web", 2, CONVERGE);
    assert_eq!(running.len(), 1);
    let all = tasks(&api, "web");
    let on_front = task_addresses(&all, &front);
    let on_ingress = task_addresses(&all, &ingress_id);
    assert_eq!((on_front.len(), on_ingress.len()), (2, 2), "{all:?}");
    let addrs: BTreeSet<&String> = on_front.values().map(|(_, a)| a).collect();
    assert_eq!(addrs.len(), 2);
    for (_, addr) in on_front.values() {
        assert!(
            addr.ends_with("/26") && addr.starts_with("198.19.64."),
            "{addr}"
        );
        assert_ne!(ip(addr), Ipv4Addr::new(198, 19, 64, 2), "not the VIP");
    }

    if let Some(old) = clients.get(1) {
        eprintln!("--- {old}: service create --network --publish, service inspect");
        let docker = Docker {
            bin: old.clone(),
            d: &d,
        };
        docker.ok(&[
            "service",
            "create",
            "--detach",
            "--name",
            "old",
            "--replicas",
            "0",
            "--network",
            "front1",
            "-p",
            "8081:80",
            "busybox:test",
            "sleep",
            "3600",
        ]);
        let inspect: Value =
            serde_json::from_str(&docker.ok(&["service", "inspect", "old"])).unwrap();
        let endpoint = &inspect[0]["Endpoint"];
        assert_eq!(endpoint["Ports"][0]["PublishedPort"], 8081, "{endpoint}");
        assert_eq!(
            endpoint["VirtualIPs"].as_array().map(Vec::len),
            Some(2),
            "{endpoint}"
        );
        docker.ok(&["service", "rm", "old"]);
    }

    eprintln!("--- our CLI: service create --endpoint-mode dnsrr --network -p mode=host,…");
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "rr",
        "--replicas",
        "0",
        "--network",
        "front0",
        "--endpoint-mode",
        "dnsrr",
        "-p",
        "mode=host,9100:91/udp",
        "busybox:test",
        "sleep",
        "1",
    ]);
    let rr = api.get_ok("/services/rr");
    assert_eq!(rr["Endpoint"]["Spec"]["Mode"], "dnsrr");
    assert_eq!(rr["Endpoint"]["VirtualIPs"], json!([]), "dnsrr: no VIP");
    assert_eq!(
        rr["Endpoint"]["Ports"],
        json!([{"Name": "", "Protocol": "udp", "TargetPort": 91, "PublishedPort": 9100, "PublishMode": "host"}])
    );
    let bad = d.swarm(&[
        "service",
        "create",
        "-d",
        "--name",
        "rr2",
        "--endpoint-mode",
        "dnsrr",
        "-p",
        "80",
        "busybox:test",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("port published with ingress mode can't be used with dnsrr mode"),
        "{}",
        stderr(&bad)
    );

    eprintln!("--- port conflicts, networks in use");
    let e = docker.err(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web2",
        "--publish",
        "8080:81",
        "busybox:test",
        "sleep",
        "1",
    ]);
    assert!(
        e.contains("port '8080' is already in use by service 'web'"),
        "{e}"
    );
    let auto = create_service(
        &api,
        &json!({"Name": "auto", "TaskTemplate": {"ContainerSpec": {"Image": "busybox:test", "Args": ["sleep", "3600"]}},
               "Mode": {"Replicated": {"Replicas": 0}},
               "EndpointSpec": {"Ports": [{"TargetPort": 70}]}}),
    );
    assert_eq!(
        api.get_ok(&format!("/services/{auto}"))["Endpoint"]["Ports"][0]["PublishedPort"],
        30000
    );
    let unknown = api
        .post(
            "/services/create",
            &json!({"Name": "lost", "TaskTemplate": {"ContainerSpec": {"Image": "busybox:test"},
                    "Networks": [{"Target": "nowhere"}]}}),
        )
        .unwrap();
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.message(), "network nowhere not found");
    let e = docker.err(&["network", "rm", "front0"]);
    // web and rr both use it; either may be named.
    assert!(
        e.contains("network front0 is in use by service web")
            || e.contains("network front0 is in use by service rr"),
        "{e}"
    );
    // (docker network rm ingress asks for confirmation first; the API answers directly.)
    let e = api.delete("/networks/ingress").unwrap();
    assert_eq!(e.status, 409, "{e}");
    assert!(
        e.message()
            .starts_with("network ingress is in use by service "),
        "{e}"
    );

    eprintln!("--- service rm: the tasks go, then their addresses, then the network may go");
    docker.ok(&["service", "rm", "web", "auto", "rr"]);
    wait_until("web's tasks forgotten", CONVERGE, || {
        tasks(&api, "web").is_empty().then_some(())
    });
    wait_until("front0 removable", CONVERGE, || {
        let r = api.delete("/networks/front0").ok()?;
        (r.status == 204).then_some(())
    });
    assert!(
        api.get_ok("/networks")
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["Name"] != "front0")
    );
    let pruned = api.post_ok("/networks/prune", &json!({}));
    // front1 (made by the second docker CLI, if there is one) is unused: prune takes it.
    let expected: Vec<&str> = if clients.len() > 1 {
        vec!["front1"]
    } else {
        vec![]
    };
    assert_eq!(pruned["NetworksDeleted"], json!(expected));
    assert!(
        api.get("/networks/ingress").unwrap().ok(),
        "prune keeps ingress"
    );
}

#[test]
fn t20_task_addresses_come_from_each_nodes_own_block() {
    let c = Cluster::start_with(3, ClusterOptions::default());
    let ids = bootstrap(&c, 1, 3);
    for i in 0..3 {
        import_busybox(c.host(i), c.dir());
    }
    let api = c.api(0);
    eprintln!("--- a network and six tasks on it");
    let reply = api
        .post(
            "/networks/create",
            &json!({"Name": "app", "Driver": "overlay"}),
        )
        .unwrap();
    assert_eq!(reply.status, 201, "{reply}");
    let network = reply.json()["Id"].as_str().unwrap().to_string();
    assert_eq!(
        api.get_ok("/networks/app")["IPAM"]["Config"][0]["Subnet"],
        "198.19.16.0/20"
    );
    create_service(
        &api,
        &json!({"Name": "web",
               "TaskTemplate": {"ContainerSpec": {"Image": "busybox:test", "Args": ["sleep", "3600"],
                                                  "StopGracePeriod": 300_000_000i64},
                                "Networks": [{"Target": "app"}]},
               "Mode": {"Replicated": {"Replicas": 6}}}),
    );
    let per_node = wait_running(&api, "web", 6, CONVERGE);
    assert_eq!(
        per_node.len(),
        3,
        "spread over the three nodes: {per_node:?}"
    );

    let addresses = task_addresses(&tasks(&api, "web"), &network);
    assert_eq!(addresses.len(), 6);
    let mut blocks: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (node, addr) in addresses.values() {
        assert!(addr.ends_with("/26"), "{addr}");
        let a = u32::from(ip(addr));
        assert!(seen.insert(a), "{addr} given twice");
        blocks.entry(node.clone()).or_default().insert(a & !63);
    }
    eprintln!("    blocks per node: {blocks:?}");
    assert_eq!(blocks.len(), 3);
    assert!(
        blocks.values().all(|b| b.len() == 1),
        "one block per node: {blocks:?}"
    );
    let distinct: BTreeSet<u32> = blocks.values().flatten().copied().collect();
    assert_eq!(distinct.len(), 3, "each node its own block: {blocks:?}");
    // The manager's local copy (what a node's own state machine holds) agrees with the
    // linearizable read.
    let local = task_addresses(
        &api.get_ok("/tasks?consistency=local")
            .as_array()
            .cloned()
            .unwrap_or_default(),
        &network,
    );
    assert_eq!(local, addresses);

    let peers: BTreeSet<String> = api.get_ok("/networks/app")["Peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["IP"].as_str().unwrap_or_default().to_string())
        .collect();
    let hosts: BTreeSet<String> = (0..3).map(|i| c.host(i).ip.to_string()).collect();
    assert_eq!(peers, hosts, "Peers: the nodes holding addresses");
    assert_eq!(ids.len(), 3);

    eprintln!("--- service rm frees every address; then the network goes");
    let e = api.delete("/networks/app").unwrap();
    assert_eq!(e.status, 409, "{e}");
    assert_eq!(e.message(), "network app is in use by service web");
    assert!(api.delete("/services/web").unwrap().ok());
    wait_until("app removable once web's tasks are gone", CONVERGE, || {
        let r = api.delete("/networks/app").ok()?;
        (r.status == 204).then_some(())
    });
    assert_eq!(api.get("/networks/app").unwrap().status, 404);
}
