//! Named volumes on one real daemon: our CLI and the real docker CLI create, list, inspect,
//! remove and prune them; the API refuses bad names and malformed bodies; a volume in use by
//! a container cannot be removed until the container is gone; data one container writes
//! another reads; a tmpfs volume is a tmpfs; volumes survive a daemon restart; a service's
//! volume keeps its data when its task is replaced.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use common::daemon::Daemon;
use common::http::Api;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn docker_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

fn docker_err(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(!out.status.success(), "docker {args:?} should have failed");
    stderr(&out)
}

fn swarm_err(d: &Daemon, args: &[&str]) -> String {
    let out = d.swarm(args);
    assert!(!out.status.success(), "swarm {args:?} should have failed");
    stderr(&out)
}

/// Polls until `check` holds, at most `SETTLE`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < SETTLE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("    {what}: {:?}", start.elapsed());
}

/// Unmounts whatever is still mounted under a test's directory (a tmpfs volume) when the
/// test ends, even by a failure, so the temp dir can go.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let prefix = self.0.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for line in mounts.lines() {
            if let Some(point) = line.split_whitespace().nth(1)
                && point.starts_with(&prefix)
                && point.ends_with("/_data")
            {
                let _ = std::process::Command::new("umount")
                    .args(["-l", point])
                    .status();
            }
        }
    }
}

fn names(api: &Api, query: &str) -> Vec<String> {
    let list = api.get_ok(&format!("/volumes{query}"));
    assert_eq!(list["Warnings"], json!([]), "{list}");
    let mut out: Vec<String> = list["Volumes"]
        .as_array()
        .unwrap_or_else(|| panic!("no Volumes in {list}"))
        .iter()
        .map(|v| v["Name"].as_str().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

fn filters(f: Value) -> String {
    let text = f.to_string();
    let escaped: String = text
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("?filters={escaped}")
}

fn is_mountpoint(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let want = path.display().to_string();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

#[test]
fn t88_volumes_through_both_clis_the_api_and_a_restart() {
    let mut d = Daemon::start("volumes");
    let _unmount = Unmount(d.dir.path().to_path_buf());
    let api = Api::new(&d.socket);
    d.import_busybox();

    eprintln!("--- create: our CLI, the docker CLI (a tmpfs volume), the API (anonymous)");
    assert_eq!(
        d.ok(&["volume", "create", "--label", "team=db", "data1"])
            .trim(),
        "data1"
    );
    assert_eq!(
        docker_ok(
            &d,
            &[
                "volume",
                "create",
                "--label",
                "kind=scratch",
                "--opt",
                "type=tmpfs",
                "--opt",
                "device=tmpfs",
                "--opt",
                "o=size=8m",
                "tmp1",
            ]
        )
        .trim(),
        "tmp1"
    );
    let anonymous = api.post_ok("/volumes/create", &json!({}));
    let anon = anonymous["Name"].as_str().unwrap().to_owned();
    assert_eq!(anon.len(), 64, "{anonymous}");
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()), "{anonymous}");
    assert_eq!(anonymous["Labels"]["com.docker.volume.anonymous"], "");

    eprintln!("--- inspect in Docker's shape; the same name again is the same volume");
    let inspected: Value = serde_json::from_str(&docker_ok(&d, &["volume", "inspect", "data1"]))
        .expect("docker volume inspect prints JSON");
    let data1 = &inspected[0];
    assert_eq!(data1["Name"], "data1");
    assert_eq!(data1["Driver"], "local");
    assert_eq!(data1["Scope"], "local");
    assert_eq!(data1["Labels"]["team"], "db");
    let mountpoint = PathBuf::from(data1["Mountpoint"].as_str().unwrap());
    assert_eq!(mountpoint, d.dir.path().join("data/volumes/data1/_data"));
    assert!(mountpoint.is_dir());
    assert!(
        chrono::DateTime::parse_from_rfc3339(data1["CreatedAt"].as_str().unwrap()).is_ok(),
        "{data1}"
    );
    let again = api
        .post("/volumes/create", &json!({"Name": "data1"}))
        .unwrap();
    assert_eq!(again.status, 201, "{again}");
    assert_eq!(&again.json(), data1);
    let tmp1 = api.get_ok("/volumes/tmp1");
    assert_eq!(tmp1["Options"]["type"], "tmpfs");
    assert_eq!(tmp1["Options"]["o"], "size=8m");

    eprintln!("--- ls: both CLIs, and the filters");
    let ls = docker_ok(&d, &["volume", "ls"]);
    assert!(ls.contains("DRIVER") && ls.contains("VOLUME NAME"), "{ls}");
    for name in ["data1", "tmp1", &anon] {
        assert!(ls.contains(name), "{name} missing: {ls}");
    }
    let quiet = d.ok(&["volume", "ls", "-q", "--filter", "label=team=db"]);
    assert_eq!(quiet.trim(), "data1");
    let quiet = docker_ok(&d, &["volume", "ls", "-q", "--filter", "name=tmp"]);
    assert_eq!(quiet.trim(), "tmp1");
    assert_eq!(
        names(
            &api,
            &filters(json!({"label": ["kind"], "driver": ["local"]}))
        ),
        vec!["tmp1"]
    );
    assert!(names(&api, &filters(json!({"driver": ["nfs"]}))).is_empty());

    eprintln!("--- bad names, drivers, options and bodies are 400s that say why");
    for body in [
        json!({"Name": "../etc"}),
        json!({"Name": "a/b"}),
        json!({"Name": ".hidden"}),
        json!({"Name": "x"}),
    ] {
        let r = api.post("/volumes/create", &body).unwrap();
        assert_eq!(r.status, 400, "{body}: {r}");
        assert!(r.message().contains("invalid characters"), "{r}");
    }
    let r = api
        .post("/volumes/create", &json!({"Name": "v9", "Driver": "nfs"}))
        .unwrap();
    assert_eq!(r.status, 400, "{r}");
    assert!(r.message().contains("not supported"), "{r}");
    let r = api
        .post(
            "/volumes/create",
            &json!({"Name": "v9", "DriverOpts": {"type": "nfs", "device": ":/export"}}),
        )
        .unwrap();
    assert_eq!(r.status, 400, "{r}");
    assert!(r.message().contains("type=tmpfs"), "{r}");
    for raw in [&b"{"[..], b"", b"[1,2]", br#"{"Name": 5}"#] {
        let r = api
            .request("POST", "/volumes/create", Some(raw), common::http::TIMEOUT)
            .unwrap();
        assert_eq!(r.status, 400, "{:?}: {r}", String::from_utf8_lossy(raw));
        assert!(r.message().contains("volume create request"), "{r}");
    }
    let r = api
        .get(&filters(json!({"color": ["red"]})).replace('?', "/volumes?"))
        .unwrap();
    assert_eq!(r.status, 400, "{r}");
    let r = api.get("/volumes?filters=%7B").unwrap();
    assert_eq!(r.status, 400, "{r}");
    let e = docker_err(&d, &["volume", "create", "no/slash"]);
    assert!(e.contains("invalid characters"), "{e}");
    let e = swarm_err(&d, &["volume", "create", "--opt", "color=red", "v9"]);
    assert!(e.contains("invalid option \"color\""), "{e}");
    assert!(!names(&api, "").contains(&"v9".to_owned()));
    let r = api.get("/volumes/nope").unwrap();
    assert_eq!(r.status, 404, "{r}");
    let e = docker_err(&d, &["volume", "inspect", "nope"]);
    assert!(
        e.contains("no such volume") || e.contains("No such volume"),
        "{e}"
    );

    eprintln!("--- a container writes into a named volume; another one reads it");
    let writer = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "writer",
            "-v",
            "data1:/data",
            "busybox:test",
            "sh",
            "-c",
            "echo from-writer > /data/f && exec sleep 1000",
        ])
        .trim()
        .to_owned();
    eventually("the writer's file in the volume", || {
        std::fs::read_to_string(mountpoint.join("f")).is_ok_and(|s| s == "from-writer\n")
    });
    let read = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=data1,dst=/in,readonly",
        "busybox:test",
        "cat",
        "/in/f",
    ]);
    assert_eq!(read.trim(), "from-writer");
    let e = swarm_err(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "data1:/in:ro",
            "busybox:test",
            "sh",
            "-c",
            "echo x > /in/g",
        ],
    );
    assert!(
        !mountpoint.join("g").exists(),
        "a read-only volume was written: {e}"
    );

    eprintln!("--- a volume named on first use is made then");
    let made = d.ok(&[
        "run",
        "--rm",
        "-v",
        "fresh1:/f",
        "busybox:test",
        "sh",
        "-c",
        "echo made > /f/x",
    ]);
    assert!(made.is_empty(), "{made}");
    let fresh = api.get_ok("/volumes/fresh1");
    assert_eq!(
        std::fs::read_to_string(Path::new(fresh["Mountpoint"].as_str().unwrap()).join("x"))
            .unwrap(),
        "made\n"
    );

    eprintln!("--- a tmpfs volume is mounted at first use, with its size");
    let tmp_mountpoint = PathBuf::from(tmp1["Mountpoint"].as_str().unwrap());
    assert!(!is_mountpoint(&tmp_mountpoint), "mounted before any use");
    let mounts = d.ok(&[
        "run",
        "--rm",
        "-v",
        "tmp1:/t",
        "busybox:test",
        "cat",
        "/proc/mounts",
    ]);
    let line = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/t"))
        .unwrap_or_else(|| panic!("no /t in {mounts}"));
    assert!(line.starts_with("tmpfs /t tmpfs"), "{line}");
    assert!(line.contains("size=8192k"), "{line}");
    assert!(is_mountpoint(&tmp_mountpoint));

    eprintln!("--- a volume in use is not removed, not even with force");
    let e = swarm_err(&d, &["volume", "rm", "data1"]);
    assert!(
        e.contains(&format!("remove data1: volume is in use - [{writer}]")),
        "{e}"
    );
    let e = docker_err(&d, &["volume", "rm", "-f", "data1"]);
    assert!(e.contains("volume is in use"), "{e}");
    let r = api.delete("/volumes/data1").unwrap();
    assert_eq!(r.status, 409, "{r}");
    assert_eq!(
        names(&api, &filters(json!({"dangling": ["false"]}))),
        vec!["data1"]
    );
    assert!(!names(&api, &filters(json!({"dangling": ["true"]}))).contains(&"data1".to_owned()));

    eprintln!("--- an anonymous volume of a container goes with `rm -v`");
    let holder = d
        .ok(&[
            "run",
            "-d",
            "--mount",
            "type=volume,dst=/scratch",
            "busybox:test",
            "sleep",
            "1000",
        ])
        .trim()
        .to_owned();
    let inspect: Value = serde_json::from_str(&d.ok(&["inspect", &holder])).unwrap();
    let scratch = inspect[0]["HostConfig"]["Mounts"][0]["Source"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(scratch.len(), 64, "{inspect}");
    assert!(names(&api, "").contains(&scratch));

    eprintln!("--- a daemon restart keeps every volume, its data and who uses it");
    let before = api.get_ok("/volumes");
    d.restart();
    let after = api.get_ok("/volumes");
    assert_eq!(before, after);
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("f")).unwrap(),
        "from-writer\n"
    );
    let r = api.delete("/volumes/data1").unwrap();
    assert_eq!(r.status, 409, "{r}");

    d.ok(&["rm", "-f", "-v", &holder]);
    assert!(
        !names(&api, "").contains(&scratch),
        "the anonymous volume stayed"
    );

    eprintln!("--- removed once its container is gone");
    d.ok(&["rm", "-f", &writer]);
    assert_eq!(d.ok(&["volume", "rm", "data1"]).trim(), "data1");
    assert!(!mountpoint.exists());
    let e = swarm_err(&d, &["volume", "rm", "data1"]);
    assert!(e.contains("no such volume"), "{e}");
    d.ok(&["volume", "rm", "-f", "data1"]);

    eprintln!("--- prune: anonymous volumes only, unless all");
    d.ok(&["volume", "create", "keep1"]);
    let pruned = d.ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains(&anon), "{pruned}");
    assert_eq!(names(&api, ""), vec!["fresh1", "keep1", "tmp1"]);
    let pruned = docker_ok(
        &d,
        &["volume", "prune", "-f", "--all", "--filter", "label!=kind"],
    );
    assert!(
        pruned.contains("keep1") && pruned.contains("fresh1"),
        "{pruned}"
    );
    assert_eq!(names(&api, ""), vec!["tmp1"]);
    let r = api
        .post(
            "/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D",
            &json!({}),
        )
        .unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(r.json()["VolumesDeleted"], json!(["tmp1"]));
    assert!(!is_mountpoint(&tmp_mountpoint), "the tmpfs stayed mounted");
    assert!(names(&api, "").is_empty());
    let left: Vec<_> = std::fs::read_dir(d.dir.path().join("data/volumes"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in the volumes dir: {left:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[test]
fn t88_a_service_volume_keeps_its_data_across_task_replacement() {
    let listen = format!("127.0.0.1:{}", free_port());
    let d = Daemon::start_with(
        "volumes-svc",
        &[
            "--listen-addr",
            &listen,
            "--advertise-addr",
            "127.0.0.1",
            "--log-level",
            "info",
        ],
    );
    let _unmount = Unmount(d.dir.path().to_path_buf());
    let api = Api::new(&d.socket);
    d.import_busybox();

    eprintln!("--- a one-node swarm through the API");
    api.post_ok(
        "/swarm/init",
        &json!({"ListenAddr": listen, "AdvertiseAddr": "127.0.0.1"}),
    );

    eprintln!("--- a service whose first task exits: its replacement finds the data");
    // Each task appends a line; the first one then fails, the second one stays up.
    let script = "echo run >> /data/log; \
                  [ $(wc -l < /data/log) -ge 2 ] && exec sleep 1000; exit 3";
    let id = d
        .ok(&[
            "service",
            "create",
            "-d",
            "-q",
            "--name",
            "keeper",
            "--restart-delay",
            "100ms",
            "--mount",
            "type=volume,src=svcdata,dst=/data",
            "--mount",
            "type=volume,src=svctmp,dst=/scratch,volume-opt=type=tmpfs,volume-opt=device=tmpfs,\
             volume-opt=o=size=4m,volume-label=purpose=scratch",
            "busybox:test",
            "sh",
            "-c",
            script,
        ])
        .trim()
        .to_owned();
    assert!(!id.is_empty());
    let tasks = || -> Vec<Value> {
        api.get_ok(&format!(
            "/tasks{}",
            filters(json!({"service": ["keeper"]}))
        ))
        .as_array()
        .cloned()
        .unwrap_or_default()
    };
    eventually("a failed task and a running replacement", || {
        let t = tasks();
        let state = |s: &str| t.iter().filter(|t| t["Status"]["State"] == s).count();
        state("failed") >= 1 && state("running") == 1
    });
    let volume = api.get_ok("/volumes/svcdata");
    assert_eq!(volume["Driver"], "local");
    let log = Path::new(volume["Mountpoint"].as_str().unwrap()).join("log");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "run\nrun\n",
        "both tasks wrote into the one volume"
    );

    eprintln!("--- a volume the mount made with options: a tmpfs, labelled");
    let scratch = api.get_ok("/volumes/svctmp");
    assert_eq!(scratch["Options"]["type"], "tmpfs", "{scratch}");
    assert_eq!(scratch["Labels"]["purpose"], "scratch", "{scratch}");
    assert!(is_mountpoint(Path::new(
        scratch["Mountpoint"].as_str().unwrap()
    )));

    eprintln!("--- the volume outlives the service, and is free once its containers are gone");
    let r = api.delete("/volumes/svcdata").unwrap();
    assert_eq!(r.status, 409, "{r}");
    d.ok(&["service", "rm", "keeper"]);
    eventually("the service's containers removed", || {
        d.ok(&["ps", "-a", "-q"]).trim().is_empty()
    });
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "run\nrun\n");
    assert_eq!(
        docker_ok(&d, &["volume", "rm", "svcdata"]).trim(),
        "svcdata"
    );
    assert!(!log.exists());
    d.ok(&["volume", "rm", "svctmp"]);
    assert!(!is_mountpoint(Path::new(
        scratch["Mountpoint"].as_str().unwrap()
    )));
}
