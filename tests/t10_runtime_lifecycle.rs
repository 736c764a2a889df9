//! The OCI lifecycle through `swarm runtime`: create → start → state → kill → delete, exit
//! codes, signals, stop with a grace period, exec, logs, and a container that outlives the
//! process that created it.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, set_args};

#[test]
fn t10_create_start_state_kill_delete() {
    let h = Harness::new("lifecycle");
    let id = h.id("c");
    let bundle = h.bundle("c", &["sleep", "60"], |_| {});
    let b = bundle.to_str().unwrap();

    eprintln!("--- create: the process waits for start");
    h.ok(&["create", "--bundle", b, "--stdio", "null", &id]);
    let st = h.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["ociVersion"], "1.0.2");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    // Waiting for start means the process is not yet `sleep`.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");

    eprintln!("--- start");
    h.ok(&["start", &id]);
    assert_eq!(h.state(&id)["status"], "running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != "sleep"
    {
        assert!(Instant::now() < deadline, "process never exec'd sleep");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !h.swarm(&["start", &id]).status.success(),
        "second start accepted"
    );
    assert!(
        !h.swarm(&["delete", &id]).status.success(),
        "delete of a running container without --force"
    );

    eprintln!("--- kill: SIGKILL, exit recorded as 137");
    h.ok(&["kill", &id, "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.state(&id)["status"] != "stopped" || h.state(&id)["exit"].is_null() {
        assert!(Instant::now() < deadline, "never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = h.state(&id);
    assert_eq!(st["exit"]["code"], 137);
    assert_eq!(st["exit"]["signal"], 9);
    assert!(
        !h.swarm(&["kill", &id]).status.success(),
        "kill of a stopped container"
    );

    eprintln!("--- delete leaves nothing");
    h.ok(&["delete", &id]);
    h.assert_no_leaks(&id);
    assert!(!h.swarm(&["state", &id]).status.success());
}

#[test]
fn t10_run_returns_the_exit_code_and_output() {
    let h = Harness::new("runexit");
    let bundle = h.bundle(
        "x",
        &["sh", "-c", "echo out; echo err >&2; exit 42"],
        |_| {},
    );
    let (code, out, err) = h.run(&h.id("x"), &bundle);
    assert_eq!(code, 42);
    assert_eq!(out, "out\n");
    assert!(err.contains("err\n"), "{err}");
    h.assert_no_leaks(&h.id("x"));
}

#[test]
fn t10_signals_reach_the_process_and_kill_all_reaches_every_process() {
    let h = Harness::new("signals");
    let id = h.id("s");
    let bundle = h.bundle(
        "s",
        &[
            "sh",
            "-c",
            "trap 'echo got-usr1; exit 7' USR1; sleep 100 & wait",
        ],
        |_| {},
    );
    h.run_detached(&id, &bundle, "log");
    std::thread::sleep(Duration::from_millis(300));
    h.ok(&["kill", &id, "USR1"]);
    let exit = h.wait_exit(&id);
    assert_eq!(exit["code"], 7);
    assert!(h.ok(&["logs", &id]).contains("got-usr1"));
    h.ok(&["delete", &id]);

    let id = h.id("all");
    let bundle = h.bundle(
        "all",
        &["sh", "-c", "trap '' TERM; sleep 100 & sleep 100 & wait"],
        |_| {},
    );
    h.run_detached(&id, &bundle, "null");
    std::thread::sleep(Duration::from_millis(300));
    h.ok(&["kill", "--all", &id, "KILL"]);
    let exit = h.wait_exit(&id);
    assert_eq!(exit["signal"], 9);
    h.ok(&["delete", &id]);
    h.assert_no_leaks(&id);
}

#[test]
fn t10_stop_waits_the_grace_period_then_kills_the_whole_cgroup() {
    let h = Harness::new("stop");
    let id = h.id("g");
    let bundle = h.bundle(
        "g",
        &["sh", "-c", "trap '' TERM; sleep 100 & sleep 100; wait"],
        |_| {},
    );
    h.run_detached(&id, &bundle, "null");
    std::thread::sleep(Duration::from_millis(200));
    let began = Instant::now();
    let out = h.ok(&["stop", "--time", "1", &id]);
    let took = began.elapsed();
    let exit: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        exit["signal"], 9,
        "SIGTERM was ignored, so SIGKILL ended it"
    );
    assert!(
        took >= Duration::from_millis(900),
        "stop did not wait the grace period ({took:?})"
    );
    h.ok(&["delete", &id]);
    h.assert_no_leaks(&id);

    // A process that honours SIGTERM stops at once with its own code.
    let id = h.id("t");
    let bundle = h.bundle(
        "t",
        &[
            "sh",
            "-c",
            "trap 'exit 3' TERM; while :; do sleep 0.1; done",
        ],
        |_| {},
    );
    h.run_detached(&id, &bundle, "null");
    std::thread::sleep(Duration::from_millis(200));
    let exit: serde_json::Value =
        serde_json::from_str(&h.ok(&["stop", "--time", "10", &id])).unwrap();
    assert_eq!(exit["code"], 3);
    h.ok(&["delete", &id]);
}

#[test]
fn t10_exec_runs_inside_the_container_with_its_exit_code() {
    let h = Harness::new("exec");
    let id = h.id("e");
    let bundle = h.bundle("e", &["sleep", "100"], |_| {});
    h.run_detached(&id, &bundle, "null");

    eprintln!("--- exec sees the container's pid namespace, hostname and rootfs");
    let out = h.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/comm; test -x /bin/busybox && echo rootfs",
    ]);
    assert_eq!(out, "box\nsleep\nrootfs\n");
    eprintln!("--- its exit code comes back");
    let out = h.swarm(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    eprintln!("--- env, cwd and user overrides");
    let out = h.ok(&[
        "exec",
        "-e",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(id -u):$(id -g)",
    ]);
    assert_eq!(out, "hi /tmp 1000:1000\n");
    eprintln!("--- exec'd processes are in the container's cgroup and seccomp");
    let out = h.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    let missing = h.swarm(&["exec", &id, "no-such-command"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    h.ok(&["kill", &id, "KILL"]);
    h.wait_exit(&id);
    let out = h.swarm(&["exec", &id, "true"]);
    assert!(!out.status.success(), "exec into a stopped container");
    h.ok(&["delete", &id]);
    h.assert_no_leaks(&id);
}

#[test]
fn t10_logs_are_json_lines_with_stream_and_time() {
    let h = Harness::new("logs");
    let id = h.id("l");
    let bundle = h.bundle(
        "l",
        &["sh", "-c", "echo one; echo two >&2; printf partial"],
        |_| {},
    );
    h.run_detached(&id, &bundle, "log");
    h.wait_exit(&id);
    let raw = std::fs::read_to_string(h.root().join(&id).join("container.log")).unwrap();
    let lines: Vec<serde_json::Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{raw}");
    assert_eq!(lines[0]["log"], "one\n");
    assert_eq!(lines[0]["stream"], "stdout");
    assert_eq!(lines[1]["stream"], "stderr");
    assert_eq!(lines[2]["log"], "partial");
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    h.ok(&["delete", &id]);
}

#[test]
fn t10_a_container_outlives_its_creator_and_is_found_again() {
    let h = Harness::new("outlive");
    let id = h.id("o");
    let bundle = h.bundle("o", &["sleep", "100"], |_| {});
    eprintln!("--- the creating process exits right after create");
    h.run_detached(&id, &bundle, "null");
    std::thread::sleep(Duration::from_millis(200));
    eprintln!("--- a fresh process finds it running, from its state on disk");
    let st = h.state(&id);
    assert_eq!(st["status"], "running");
    let list = h.ok(&["list", "--format", "json"]);
    assert!(list.contains(&id));
    eprintln!("--- its helper is not a child of anything we ran: it was reparented");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.root().join(&id).join("record.json")).unwrap())
            .unwrap();
    let helper = record["helper_pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{helper}/stat")).unwrap();
    let ppid: i64 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id() as i64);
    eprintln!("--- the helper supervises from a fresh image of the binary (its re-exec)");
    let cmdline = std::fs::read(format!("/proc/{helper}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(
        args,
        [
            "swarm",
            "__shim",
            "--supervise",
            &h.root().join(&id).display().to_string()
        ],
        "helper's command line"
    );
    eprintln!("--- kill -9 of the helper does not take the container down");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helper as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(h.state(&id)["status"], "running");
    h.ok(&["delete", "--force", &id]);
    h.assert_no_leaks(&id);
}

#[test]
fn t10_process_fields_are_applied_as_the_spec_says() {
    let h = Harness::new("process");
    let bundle = h.bundle("p", &[], |spec| {
        set_args(spec, &["sh", "-c", "echo $(id -u):$(id -g):$(id -G) $(pwd) $(umask) $FOO $(ulimit -n) $(cat /proc/self/oom_score_adj)"]);
        let mut p = spec.process().clone().unwrap();
        let mut user = p.user().clone();
        user.set_uid(1000);
        user.set_gid(1000);
        user.set_additional_gids(Some(vec![1000, 2000]));
        user.set_umask(Some(0o027));
        p.set_user(user);
        p.set_cwd("/tmp".into());
        let mut env = p.env().clone().unwrap();
        env.push("FOO=bar".into());
        p.set_env(Some(env));
        p.set_oom_score_adj(Some(500));
        p.set_rlimits(Some(vec![
            common::nofile(512u64, 1024u64),
        ]));
        spec.set_process(Some(p));
    });
    let (code, out, _) = h.run(&h.id("p"), &bundle);
    assert_eq!(code, 0);
    assert_eq!(out, "1000:1000:1000 2000 /tmp 0027 bar 512 500\n");
}

#[test]
fn t10_rlimits_above_the_callers_hard_limit_are_capped() {
    let h = Harness::new("rlimit");
    let (_, caller_hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let bundle = h.bundle("r", &["sh", "-c", "ulimit -Hn"], |spec| {
        let mut p = spec.process().clone().unwrap();
        p.set_rlimits(Some(vec![common::nofile(1u64 << 20, 1u64 << 20)]));
        spec.set_process(Some(p));
    });
    let (code, out, _) = h.run(&h.id("r"), &bundle);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), caller_hard.min(1 << 20).to_string());
}

#[test]
fn t10_a_supervisor_without_a_valid_handover_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    for (env, why) in [
        (None, "no handover"),
        (Some("{not json".to_string()), "garbage"),
        (
            Some(
                r#"{"supervision":{"state_dir":"/elsewhere","stdio":"Null","log":{"max_size":1,"max_files":1}},"pid":1,"cgroup_path":"x","pidfd":0,"stdout":null,"stderr":null,"pty":null,"stdin":null,"attach":null}"#
                    .to_string(),
            ),
            "another container's state dir",
        ),
        (
            Some(format!(
                r#"{{"supervision":{{"state_dir":"{state}","stdio":"Null","log":{{"max_size":1,"max_files":1}}}},"pid":1,"cgroup_path":"x","pidfd":977,"stdout":null,"stderr":null,"pty":null,"stdin":null,"attach":null}}"#
            )),
            "a descriptor that is not open",
        ),
    ] {
        let mut cmd = std::process::Command::new(common::SWARM);
        cmd.args(["__shim", "--supervise", &state]).env_clear();
        if let Some(env) = env {
            cmd.env("SWARM_SUPERVISE", env);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{why}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("swarm helper:"),
            "{why}: {out:?}"
        );
        assert!(
            !dir.path().join("exit.json").exists(),
            "{why}: nothing recorded"
        );
    }
}
