//! t84: the multi-host harness itself (`tests/common/cluster.rs`), before any test trusts it:
//! hosts in their own network namespaces with a daemon each, kill -9 and restart, isolate
//! and heal, and nothing left behind afterwards, also when the test panics.

use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

mod common;

use common::cluster::Cluster;

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn assert_gone(slot: usize, pids: &[u32]) {
    let left = Cluster::leftovers(slot);
    assert!(left.is_empty(), "slot {slot} left behind: {left:?}");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let prefix = format!("swt{slot}-");
    for out in [&netns.stdout, &links.stdout] {
        assert!(
            !String::from_utf8_lossy(out).contains(&prefix),
            "{prefix}* still listed"
        );
    }
    for pid in pids {
        assert!(!pid_alive(*pid), "daemon pid {pid} still alive");
    }
}

#[test]
fn t10_hosts_daemons_faults_and_cleanup() {
    let mut cluster = Cluster::start(3);
    let slot = cluster.slot;

    eprintln!("--- every daemon answers /_ping and /info on its socket, in its own host");
    for i in 0..cluster.len() {
        let host = cluster.host(i);
        let ping = host.api().get("/_ping").expect("ping");
        assert_eq!((ping.status, ping.body.as_slice()), (200, &b"OK"[..]));
        let info = host.api().get_ok("/info");
        assert_eq!(
            info["Name"],
            host.name.as_str(),
            "hostname of {}",
            host.name
        );
        let addrs = host.netns_exec(&["ip", "-4", "-o", "addr", "show", "eth0"]);
        assert!(
            String::from_utf8_lossy(&addrs.stdout).contains(&format!("{}/24", host.ip)),
            "{} has its address",
            host.name
        );
        assert!(host.ip.octets()[..3] == [198, 18, 0] && host.ip.octets()[3] > 100);
    }

    eprintln!("--- hosts reach each other over the bridge");
    assert!(cluster.reachable(0, 1));
    assert!(cluster.reachable(1, 2));

    // TCP from inside h0: h1 answers (a daemon on 2377, or a refusal while nothing listens).
    let h1_p2p: std::net::SocketAddr = cluster.host(1).addr().parse().unwrap();
    let tcp = cluster.host(0).tcp_connect(h1_p2p, Duration::from_secs(2));
    assert!(
        tcp.is_ok() || tcp.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionRefused,
        "TCP h0 -> h1: {tcp:?}"
    );

    eprintln!("--- isolate h1: nobody reaches it, it reaches nobody, the others still talk");
    cluster.isolate(1);
    let tcp = cluster.host(0).tcp_connect(h1_p2p, Duration::from_secs(1));
    assert!(
        tcp.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::TimedOut),
        "TCP to an isolated host vanishes: {tcp:?}"
    );
    assert!(!cluster.reachable(0, 1));
    assert!(!cluster.reachable(1, 2));
    assert!(cluster.reachable(0, 2));
    assert!(
        cluster.api(1).ping(Duration::from_secs(5)),
        "its socket still answers"
    );
    cluster.heal(1);
    assert!(cluster.reachable(0, 1));
    assert!(cluster.reachable(1, 2));

    eprintln!("--- cut h0 <-> h2 only");
    cluster.cut(0, 2);
    assert!(!cluster.reachable(0, 2));
    assert!(!cluster.reachable(2, 0));
    assert!(cluster.reachable(0, 1));
    cluster.heal(0);
    assert!(cluster.reachable(2, 0));

    eprintln!("--- kill -9 h2, then restart it on the same state");
    let old_pid = cluster.host(2).pid().expect("running");
    cluster.kill9(2);
    assert!(!pid_alive(old_pid));
    assert!(!cluster.api(2).ping(Duration::from_secs(2)));
    assert!(!cluster.is_running(2));
    cluster.restart(2);
    let new_pid = cluster.host(2).pid().expect("running again");
    assert_ne!(old_pid, new_pid);
    assert!(cluster.is_running(2));
    assert_eq!(cluster.api(2).get_ok("/info")["Name"], "h2");

    eprintln!("--- drop: every daemon, netns and link is gone");
    let pids: Vec<u32> = cluster.hosts.iter().filter_map(|h| h.pid()).collect();
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    assert_gone(slot, &pids);
    assert!(!dir.exists(), "the cluster dir is removed");
}

#[test]
fn t20_cleanup_after_a_panic() {
    let seen: Mutex<Option<(usize, Vec<u32>)>> = Mutex::new(None);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let cluster = Cluster::start(2);
        let pids = cluster.hosts.iter().filter_map(|h| h.pid()).collect();
        *seen.lock().unwrap() = Some((cluster.slot, pids));
        panic!("a failing test");
    }));
    assert!(result.is_err());
    let (slot, pids) = seen.lock().unwrap().take().expect("the cluster started");
    assert_eq!(pids.len(), 2);
    assert_gone(slot, &pids);
}
