//! Limits hold: a memory hog is OOM-killed inside its limit and reported as OOMKilled, a fork
//! bomb stops at the pids limit, a CPU quota throttles, and stats report all of it.

mod common;

use std::time::Duration;

use common::{Harness, with_resources};
use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder};

#[test]
fn t30_a_memory_hog_is_oom_killed_and_reported() {
    let h = Harness::new("oom");
    let id = h.id("m");
    let bundle = h.bundle("m", &["probe", "hog", "256"], |spec| {
        with_resources(spec, |r| {
            r.set_memory(Some(
                LinuxMemoryBuilder::default()
                    .limit(32i64 << 20)
                    .swap(32i64 << 20)
                    .build()
                    .unwrap(),
            ));
        })
    });
    h.run_detached(&id, &bundle, "log");
    let exit = h.wait_exit(&id);
    assert_eq!(exit["oom_killed"], true, "{exit}");
    assert_eq!(exit["signal"], 9);
    assert_eq!(exit["code"], 137);
    let stats: serde_json::Value = serde_json::from_str(&h.ok(&["stats", &id])).unwrap();
    assert!(stats["oom_kills"].as_u64().unwrap() >= 1);
    assert_eq!(stats["memory_limit"].as_u64(), Some(32 << 20));
    assert!(stats["memory_max_usage"].as_u64().unwrap() <= 33 << 20);
    h.ok(&["delete", &id]);
    h.assert_no_leaks(&id);
}

#[test]
fn t30_a_fork_bomb_stops_at_the_pids_limit() {
    let h = Harness::new("pids");
    let bundle = h.bundle("f", &["probe", "forkbomb", "500"], |spec| {
        with_resources(spec, |r| {
            r.set_pids(Some(LinuxPidsBuilder::default().limit(20).build().unwrap()));
        })
    });
    let (code, out, _) = h.run(&h.id("f"), &bundle);
    assert_eq!(code, 0, "{out}");
    let forks: u32 = out
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no fork count in {out:?}"));
    assert!(forks < 20, "{forks} forks succeeded under a limit of 20");
    assert!(forks >= 10, "only {forks} forks: the limit bit too early");
}

#[test]
fn t30_a_cpu_quota_throttles() {
    let h = Harness::new("cpu");
    let id = h.id("q");
    // 20 ms of CPU per 100 ms period: 0.2 CPUs.
    let bundle = h.bundle("q", &["probe", "spin", "1"], |spec| {
        with_resources(spec, |r| {
            r.set_cpu(Some(
                LinuxCpuBuilder::default()
                    .quota(20_000i64)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            ));
        })
    });
    h.run_detached(&id, &bundle, "log");
    let exit = h.wait_exit(&id);
    assert_eq!(exit["code"], 0);
    let stats: serde_json::Value = serde_json::from_str(&h.ok(&["stats", &id])).unwrap();
    assert!(
        stats["cpu_throttled_periods"].as_u64().unwrap() > 0,
        "{stats}"
    );
    let cpu_ms = stats["cpu_usage_ns"].as_u64().unwrap() / 1_000_000;
    // One second of wall time at 0.2 CPUs: about 200 ms; far from the 1000 ms unthrottled.
    assert!(
        cpu_ms < 500,
        "used {cpu_ms} ms of CPU in 1 s under a 0.2 CPU quota"
    );
    h.ok(&["delete", &id]);
}

#[test]
fn t30_stats_of_a_running_container() {
    let h = Harness::new("stats");
    let id = h.id("s");
    let bundle = h.bundle("s", &["sh", "-c", "sleep 100 & sleep 100 & wait"], |spec| {
        with_resources(spec, |r| {
            r.set_memory(Some(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .build()
                    .unwrap(),
            ));
            r.set_pids(Some(LinuxPidsBuilder::default().limit(50).build().unwrap()));
        })
    });
    h.run_detached(&id, &bundle, "null");
    std::thread::sleep(Duration::from_millis(300));
    let stats: serde_json::Value = serde_json::from_str(&h.ok(&["stats", &id])).unwrap();
    assert_eq!(stats["pids_current"], 3, "{stats}");
    assert_eq!(stats["pids_limit"], 50);
    assert_eq!(stats["memory_limit"].as_u64(), Some(64 << 20));
    assert!(stats["memory_usage"].as_u64().unwrap() > 0);
    assert!(stats["cpu_usage_ns"].as_u64().unwrap() > 0);
    h.ok(&["delete", "--force", &id]);
    h.assert_no_leaks(&id);
}
