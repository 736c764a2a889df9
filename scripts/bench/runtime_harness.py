#!/usr/bin/env python3
"""Timing harness for scripts/bench/runtime.sh.

Reads a JSON plan (argv[1]):
  {"n": 100, "warmup": 3, "timeout": 30, "wrapper": "wrapper", "json_out": "" | PATH,
   "title": TEXT (optional), "ratios": [[LABEL, A, B], ...] (optional; default ours/crun...),
   "variants": [{"name": "runc", "argv": [..., "{id}"], "cleanup": [..., "{id}"] | null,
                 "wrapped": true, "log": PATH}, ...]}

Runs every variant n times, round-robin (one run of each variant per round, in a shuffled
order, so
machine noise hits all of them alike), after `warmup` uncounted rounds. For each run
it records wall time and the CPU time (user + system) of the process and everything
it spawned: the harness is a child subreaper, so daemonized grandchildren are reaped
here too, and CPU is the RUSAGE_CHILDREN delta around the run.

Prints a table of medians and p90s, wrapper-subtracted ("net") medians for the
variants run inside the mount-namespace wrapper, and the ratios ours/crun and
ours/runc (or the plan's "ratios"). Also used by scripts/bench/image.sh. Loops are bounded by n and a per-run timeout.
"""
import ctypes
import json
import math
import os
import resource
import random
import signal
import statistics
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
MAX_FAILURES = 5


class Timeout(Exception):
    pass


def on_alarm(_signum, _frame):
    raise Timeout()


def cpu_children():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def reap_orphans():
    """Reap already-exited orphans re-parented to us (we are a subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run_once(variant, run_id, timeout, log):
    argv = [a.replace("{id}", run_id) for a in variant["argv"]]
    cpu0 = cpu_children()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        _, status, _ = os.wait4(proc.pid, 0)
    except Timeout:
        status = None
        try:
            proc.kill()
            os.wait4(proc.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    wall = time.monotonic() - t0
    proc.returncode = 0  # we reaped it ourselves; keep Popen from waiting again
    reap_orphans()
    cpu = cpu_children() - cpu0
    code = None if status is None else os.waitstatus_to_exitcode(status)
    return wall * 1000.0, cpu * 1000.0, code


def cleanup_run(variant, run_id, log):
    if not variant.get("cleanup"):
        return
    argv = [a.replace("{id}", run_id) for a in variant["cleanup"]]
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)
    except subprocess.TimeoutExpired:
        pass
    reap_orphans()


def p90(values):
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def fmt(v):
    return f"{'-':>8}" if v is None else f"{v:8.2f}"


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return "n/a"
    return f"{a / b:.2f}x"


def main():
    plan = json.load(open(sys.argv[1]))
    n, warmup, timeout = plan["n"], plan.get("warmup", 3), plan.get("timeout", 30)
    variants = plan["variants"]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: could not become a child subreaper", file=sys.stderr)
    signal.signal(signal.SIGALRM, on_alarm)

    logs = {v["name"]: open(v["log"], "ab") for v in variants}
    samples = {v["name"]: {"wall": [], "cpu": []} for v in variants}
    failures = {v["name"]: 0 for v in variants}
    active = list(variants)

    total_rounds = warmup + n
    # The order changes every round (seeded, so runs are repeatable): what ran just before
    # matters here, e.g. a cgroup move right after another one skips an RCU grace period.
    order_rng = random.Random(20261123)
    for rnd in range(total_rounds):
        round_order = list(active)
        order_rng.shuffle(round_order)
        for v in round_order:
            name = v["name"]
            run_id = f"swarm-bench-{name}-{rnd}"
            wall, cpu, code = run_once(v, run_id, timeout, logs[name])
            if code != 0:
                failures[name] += 1
                why = "timed out" if code is None else f"exit {code}"
                print(f"  {name}: run {rnd} failed ({why}); see {v['log']}", file=sys.stderr)
                cleanup_run(v, run_id, logs[name])
                if failures[name] >= MAX_FAILURES:
                    print(f"  {name}: {MAX_FAILURES} failures, dropped", file=sys.stderr)
                    active.remove(v)
                continue
            if rnd >= warmup:
                samples[name]["wall"].append(wall)
                samples[name]["cpu"].append(cpu)
        if (rnd + 1) % 20 == 0 or rnd + 1 == total_rounds:
            print(f"  round {rnd + 1}/{total_rounds}", file=sys.stderr)

    stats = {}
    for v in variants:
        s = samples[v["name"]]
        if s["wall"]:
            stats[v["name"]] = {
                "n": len(s["wall"]),
                "failures": failures[v["name"]],
                "wrapped": v.get("wrapped", False),
                "wall_median": statistics.median(s["wall"]),
                "wall_p90": p90(s["wall"]),
                "cpu_median": statistics.median(s["cpu"]),
                "cpu_p90": p90(s["cpu"]),
            }
    wrapper = stats.get(plan.get("wrapper", "wrapper"))
    for name, st in stats.items():
        if st["wrapped"] and wrapper and name != plan.get("wrapper"):
            st["net_wall_median"] = st["wall_median"] - wrapper["wall_median"]
            st["net_cpu_median"] = st["cpu_median"] - wrapper["cpu_median"]
        elif not st["wrapped"]:
            st["net_wall_median"] = st["wall_median"]
            st["net_cpu_median"] = st["cpu_median"]

    print()
    title = plan.get("title", "create+start+wait+delete of /bin/true")
    print(f"{title}, {n} runs each (+{warmup} warm-up), times in ms")
    hdr = f"{'variant':<12} {'ok':>7} {'wall med':>8} {'wall p90':>8} {'cpu med':>8} {'cpu p90':>8}  {'net wall':>8} {'net cpu':>8}"
    print(hdr)
    print("-" * len(hdr))
    for v in variants:
        name = v["name"]
        st = stats.get(name)
        if not st:
            print(f"{name:<12} {'0/' + str(n):>7}  (no successful run)")
            continue
        print(
            f"{name:<12} {str(st['n']) + '/' + str(n):>7} {fmt(st['wall_median'])} {fmt(st['wall_p90'])} "
            f"{fmt(st['cpu_median'])} {fmt(st['cpu_p90'])}  {fmt(st.get('net_wall_median'))} "
            f"{fmt(st.get('net_cpu_median'))}"
        )
    print()
    if any(v.get("wrapped") for v in variants):
        print("net = median minus the wrapper-only median (wrapped variants); bare variants run unwrapped.")

    def net(name, key):
        st = stats.get(name)
        return None if not st else st.get(key)

    ratios = plan["ratios"] if "ratios" in plan else (
        ("ours/crun", "ours", "crun"),
        ("ours/runc", "ours", "runc"),
        ("ours-bare/runc-bare", "ours-bare", "runc-bare"),
        ("crun/runc", "crun", "runc"),
    )
    if ratios:
        print()
        print(f"{'ratio (net medians)':<24} {'wall':>8} {'cpu':>8}")
    for label, a, b in ratios:
        if a in stats or b in stats:
            print(
                f"{label:<24} {ratio(net(a, 'net_wall_median'), net(b, 'net_wall_median')):>8} "
                f"{ratio(net(a, 'net_cpu_median'), net(b, 'net_cpu_median')):>8}"
            )

    if plan.get("json_out"):
        with open(plan["json_out"], "w") as f:
            json.dump({"n": n, "warmup": warmup, "stats": stats}, f, indent=2)
    return 0 if all(stats.get(v["name"]) for v in variants) else 1


if __name__ == "__main__":
    sys.exit(main())
