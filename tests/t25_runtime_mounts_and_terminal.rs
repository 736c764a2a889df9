//! Mounts from the spec with their options, files the caller supplies (/etc/hosts,
//! /etc/resolv.conf), a read-only root, and a terminal handed over an OCI console socket.

mod common;

use std::io::Read;
use std::os::unix::net::UnixListener;

use common::Harness;
use oci_spec::runtime::{MountBuilder, Spec};

fn bind(spec: &mut Spec, source: &std::path::Path, dest: &str, options: &[&str]) {
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(source)
            .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
}

#[test]
fn t25_bind_mounts_keep_their_options_and_caller_files_appear() {
    let h = Harness::new("binds");
    let data = h.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello"), "from the host\n").unwrap();
    let rw = h.dir.path().join("rw");
    std::fs::create_dir_all(&rw).unwrap();
    let hosts = h.dir.path().join("hosts");
    std::fs::write(&hosts, "198.19.0.5 db\n").unwrap();
    let resolv = h.dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 198.19.0.1\n").unwrap();
    let bundle = h.bundle(
        "b",
        &[
            "sh",
            "-c",
            "cat /data/hello; (echo x > /data/new) 2>&1; echo written > /rw/out; \
             cat /etc/hosts /etc/resolv.conf; grep ' /data ' /proc/mounts",
        ],
        |spec| {
            bind(spec, &data, "/data", &["rbind", "ro", "nosuid", "nodev"]);
            bind(spec, &rw, "/rw", &["bind", "rw"]);
            bind(spec, &hosts, "/etc/hosts", &["bind", "ro"]);
            bind(spec, &resolv, "/etc/resolv.conf", &["bind", "ro"]);
        },
    );
    let (code, out, _) = h.run(&h.id("b"), &bundle);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from the host");
    assert!(lines[1].contains("Read-only file system"), "{out}");
    assert_eq!(lines[2], "198.19.0.5 db");
    assert_eq!(lines[3], "nameserver 198.19.0.1");
    assert!(
        lines[4].contains(" ro,") && lines[4].contains("nosuid") && lines[4].contains("nodev"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(rw.join("out")).unwrap(),
        "written\n"
    );
    assert!(!data.join("new").exists());
    // The image's own /etc/hosts is untouched: the bind lived in the container only.
    assert_ne!(
        std::fs::read_to_string(bundle.join("rootfs/etc/hosts")).unwrap(),
        "198.19.0.5 db\n"
    );
    assert!(common::host_mounts_mentioning(&data.display().to_string()).is_empty());
}

#[test]
fn t25_a_read_only_root_refuses_writes_but_tmpfs_mounts_work() {
    let h = Harness::new("rootro");
    let bundle = h.bundle(
        "r",
        &[
            "sh",
            "-c",
            "(touch /newfile) 2>&1; touch /dev/shm/ok && echo shm-ok",
        ],
        |spec| {
            let mut root = spec.root().clone().unwrap();
            root.set_readonly(Some(true));
            spec.set_root(Some(root));
        },
    );
    let (code, out, _) = h.run(&h.id("r"), &bundle);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("shm-ok"), "{out}");
    assert!(!bundle.join("rootfs/newfile").exists());
}

#[test]
fn t25_a_terminal_goes_to_the_console_socket() {
    let h = Harness::new("tty");
    let id = h.id("t");
    let bundle = h.bundle(
        "t",
        &["sh", "-c", "tty; test -t 0 && test -t 1 && echo is-a-tty"],
        |spec| {
            let mut p = spec.process().clone().unwrap();
            p.set_terminal(Some(true));
            spec.set_process(Some(p));
        },
    );
    let socket = h.dir.path().join("console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let channel = swarm::runtime::channel::Channel::new(stream);
        let master = channel.recv_fd().unwrap();
        let mut master = std::fs::File::from(master);
        let mut out = Vec::new();
        // Reading a pty master ends with EIO once the slave side is closed.
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    h.ok(&[
        "run",
        "-d",
        "--console-socket",
        socket.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    let out = receiver.join().unwrap();
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("is-a-tty"), "{out:?}");
    h.ok(&["delete", "--force", &id]);
    h.assert_no_leaks(&id);

    // A terminal spec without somewhere to send the terminal is refused up front.
    let out = h.swarm(&[
        "create",
        "--stdio",
        "null",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("terminal"));
    h.assert_no_leaks(&id);
}
