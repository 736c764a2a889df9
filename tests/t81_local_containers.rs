//! `swarm run` and friends through a real daemon: an image imported from the busybox rootfs,
//! containers run from it on an overlay of its layers, exit codes, flags, limits, logs,
//! stop/rm, and the image commands (ls, save → load, rm refused while in use).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::SWARM;
use common::daemon::Daemon;

#[test]
fn t81_run_an_imported_image_with_dockers_flags() {
    let d = Daemon::start("run");
    d.import_busybox();
    let images = d.ok(&["image", "ls"]);
    assert!(
        images.contains("busybox") && images.contains("test"),
        "{images}"
    );

    eprintln!("--- output and exit code come back; --rm leaves nothing");
    let out = d.swarm(&[
        "run",
        "--rm",
        "busybox:test",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert!(d.ok(&["ps", "-a", "-q"]).trim().is_empty());
    d.assert_no_runtime_leftovers();

    eprintln!("--- image config and flags: env, workdir, user by name, hostname, read-only");
    let out = d.ok(&[
        "run",
        "--rm",
        "-e",
        "EXTRA=1",
        "-w",
        "/tmp",
        "-u",
        "app",
        "--hostname",
        "web1",
        "busybox:test",
        "sh",
        "-c",
        "echo $GREETING $EXTRA $(pwd) $(id -u) $(hostname)",
    ]);
    assert_eq!(out, "from-image 1 /tmp 1000 web1\n");
    let out = d.swarm(&["run", "--rm", "--read-only", "busybox:test", "touch", "/x"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"));

    eprintln!("--- the image's CMD is the default command; --entrypoint replaces it");
    let out = d.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox:test",
        "via-entrypoint",
    ]);
    assert_eq!(out, "via-entrypoint\n");

    eprintln!("--- a bind mount, read-only");
    let shared = d.dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("f"), "host file\n").unwrap();
    let volume = format!("{}:/data:ro", shared.display());
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        &volume,
        "busybox:test",
        "cat",
        "/data/f",
    ]);
    assert_eq!(out, "host file\n");

    eprintln!("--- writes stay in the container's layer, not in the image");
    d.ok(&[
        "run",
        "--rm",
        "busybox:test",
        "sh",
        "-c",
        "echo x > /etc/written",
    ]);
    let out = d.swarm(&["run", "--rm", "busybox:test", "cat", "/etc/written"]);
    assert_ne!(out.status.code(), Some(0));

    eprintln!("--- bad input is refused clearly");
    let out = d.swarm(&["run", "--rm", "no-such-image:1", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image"));
    let out = d.swarm(&["run", "--rm", "-m", "1m", "busybox:test", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Minimum memory limit"));
    // Not an absolute path, so a volume name, and not a valid one (Docker's words).
    let out = d.swarm(&[
        "run",
        "--rm",
        "-v",
        "relative/dir:/x",
        "busybox:test",
        "true",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("includes invalid characters for a local volume name")
    );
    let out = d.swarm(&["run", "--rm", "-v", "/tmp:relative", "busybox:test", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid volume specification"));
    d.assert_no_runtime_leftovers();
}

#[test]
fn t81_detached_containers_logs_limits_stop_and_rm() {
    let d = Daemon::start("detached");
    d.import_busybox();

    eprintln!("--- a detached container shows in ps, its logs stream");
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox:test",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo started; while :; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    let ps = d.ok(&["ps"]);
    assert!(ps.contains("web") && ps.contains(&id[..12]), "{ps}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["logs", "web"]).contains("started") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let inspect: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", "web"])).unwrap();
    assert_eq!(inspect[0]["State"]["Running"], true);
    assert_eq!(inspect[0]["Name"], "/web");

    eprintln!("--- a second container cannot take the name");
    let out = d.swarm(&["run", "-d", "--name", "web", "busybox:test", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));
    eprintln!("--- rm of a running container needs -f; stop runs its trap");
    let out = d.swarm(&["rm", "web"]);
    assert!(!out.status.success());
    d.ok(&["stop", "-t", "5", "web"]);
    assert!(d.ok(&["logs", "web"]).contains("bye"));
    let inspect: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", &id[..8]])).unwrap();
    assert_eq!(inspect[0]["State"]["Status"], "exited");
    assert_eq!(inspect[0]["State"]["ExitCode"], 0);
    assert!(d.ok(&["ps"]).lines().count() == 1);
    assert!(d.ok(&["ps", "-a"]).contains("Exited (0)"));
    d.ok(&["rm", "web"]);

    eprintln!("--- a memory hog is OOM-killed and reported");
    let out = d.swarm(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox:test",
        "probe",
        "hog",
        "256",
    ]);
    assert_eq!(out.status.code(), Some(137));
    let inspect: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", "hog"])).unwrap();
    assert_eq!(inspect[0]["State"]["OOMKilled"], true);
    d.ok(&["rm", "hog"]);

    eprintln!("--- a fork bomb stops at --pids-limit");
    let out = d.ok(&[
        "run",
        "--rm",
        "--pids-limit",
        "20",
        "busybox:test",
        "probe",
        "forkbomb",
        "200",
    ]);
    assert!(out.contains("errno=EAGAIN"), "{out}");
    d.assert_no_runtime_leftovers();
}

#[test]
fn t81_images_save_load_tag_and_rm() {
    let d = Daemon::start("images");
    d.import_busybox();
    let archive = d.dir.path().join("busybox.tar");
    d.ok(&[
        "image",
        "save",
        "-o",
        archive.to_str().unwrap(),
        "busybox:test",
    ]);
    d.ok(&["image", "tag", "busybox:test", "copy:1"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "copy:1"])).unwrap();
    let id = inspect[0]["Id"].as_str().unwrap().to_string();

    eprintln!("--- an image a container uses cannot be removed");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "busybox:test",
        "sleep",
        "100",
    ]);
    let out = d.swarm(&["image", "rm", "busybox:test"]);
    assert!(
        out.status.success(),
        "untagging a name the image still has under copy:1 is fine"
    );
    let out = d.swarm(&["image", "rm", "copy:1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    d.ok(&["rm", "-f", "user"]);
    d.ok(&["image", "rm", "copy:1"]);
    assert!(!d.ok(&["image", "ls"]).contains("copy"));

    eprintln!("--- load brings it back with the same id, and it runs");
    let out = d.ok(&["image", "load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: busybox:test"), "{out}");
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "busybox:test"])).unwrap();
    assert_eq!(inspect[0]["Id"].as_str().unwrap(), id);
    assert_eq!(d.ok(&["run", "--rm", "busybox:test", "echo", "ok"]), "ok\n");

    eprintln!("--- a corrupt archive is refused and changes nothing");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = d.dir.path().join("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let before = d.ok(&["image", "ls"]);
    let out = d.swarm(&["image", "load", "-i", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(d.ok(&["image", "ls"]), before);
}

#[test]
fn t81_interactive_and_terminal_containers() {
    let d = Daemon::start("interactive");
    d.import_busybox();
    let host = format!("unix://{}", d.socket.display());

    eprintln!("--- -i: our stdin reaches the container, its end closes the container's stdin");
    let mut child = Command::new(SWARM)
        .args(["-H", &host, "run", "--rm", "-i", "busybox:test", "sh", "-c"])
        .arg("while read x; do echo got $x; done; echo eof >&2; exit 4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"one\ntwo\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got one\ngot two\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("eof"));

    eprintln!("--- -t: the container gets a terminal; the exit code comes back");
    let command = format!("{SWARM} -H {host} run --rm -t busybox:test sh -c 'tty; exit 5'");
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");

    eprintln!("--- -it: typed commands run in the container's shell");
    let command = format!("{SWARM} -H {host} run --rm -it busybox:test sh");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo inside-$((40+2)); exit 3\n").unwrap();
        // Keep stdin open until the shell has read the line.
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("inside-42"));
    assert!(d.ok(&["ps", "-a", "-q"]).trim().is_empty());
    d.assert_no_runtime_leftovers();
}

#[test]
fn t81_exec_in_a_running_container() {
    let d = Daemon::start("exec");
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-u",
        "app",
        "busybox:test",
        "sleep",
        "100",
    ]);
    // `start` returns once the init is released (as runc's does), not once it has exec'd
    // the command: wait (bounded) until PID 1 is `sleep`.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.swarm(&["exec", "box", "cat", "/proc/1/comm"]).stdout != b"sleep\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "PID 1 of the container never became sleep"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    eprintln!("--- exec runs in the container, as its user, with its exit code");
    let out = d.swarm(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo $(id -u) $(cat /proc/1/comm); exit 6",
    ]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1000 sleep\n");
    eprintln!("--- -u overrides the user; -e and -w apply");
    let out = d.ok(&[
        "exec",
        "-u",
        "0",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $(id -u) $X $(pwd)",
    ]);
    assert_eq!(out, "0 1 /tmp\n");
    eprintln!("--- -i feeds stdin");
    let mut child = Command::new(SWARM)
        .arg("-H")
        .arg(format!("unix://{}", d.socket.display()))
        .args(["exec", "-i", "box", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"piped in\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped in\n");
    eprintln!("--- a missing command and a stopped container are refused");
    let out = d.swarm(&["exec", "box", "no-such-command"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    d.ok(&["stop", "-t", "1", "box"]);
    let out = d.swarm(&["exec", "box", "true"]);
    assert!(!out.status.success());
    d.ok(&["rm", "box"]);
    d.assert_no_runtime_leftovers();
}

#[test]
fn t81_push_to_and_pull_from_a_registry_then_run() {
    let d = Daemon::start("pull");
    d.import_busybox();
    let registry = common::registry::Registry::start(&[]);
    let name = format!("{}/busybox:pushed", registry.host());

    eprintln!("--- push: tag, then push to the registry on loopback");
    d.ok(&["image", "tag", "busybox:test", &name]);
    let out = d.ok(&["image", "push", &name]);
    assert!(out.contains("digest: sha256:"), "{out}");

    eprintln!("--- pull into an empty store, then run it");
    d.ok(&["image", "rm", &name]);
    d.ok(&["image", "rm", "busybox:test"]);
    assert!(!d.ok(&["image", "ls"]).contains("busybox"));
    let out = d.ok(&["image", "pull", &name]);
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");

    eprintln!("--- an unknown tag is a clear error");
    let out = d.swarm(&[
        "image",
        "pull",
        &format!("{}/busybox:nope", registry.host()),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("manifest unknown"));
}
