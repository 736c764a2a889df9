#!/usr/bin/env python3
"""Driver for scripts/bench/services.sh: swarm's daemon and Docker Engine 20.10 in swarm mode,
through the same Docker-shaped API over their Unix sockets, with the same stdlib HTTP/1.1
keep-alive client, the same service spec and the same polling.

Subcommands (results go into the JSON file FILE; progress goes to stderr):
  single FILE ROUNDS SIZES ENGINE...      the one-node measurements, interleaved: for every
                                          round, every step runs on every ENGINE in turn (the
                                          order alternates by round). ENGINE is
                                          NAME=SOCK,PID[,PID...] (the PIDs are the engine's
                                          daemons, for the memory figure). SIZES is like
                                          10,50,200 (the second is the memory point).
  svc-up SOCK NAME REPLICAS TIMEOUT       create a service, wait until REPLICAS tasks run;
                                          prints {"id", "nodes": {node: tasks}}
  kill-node FILE KEY SOCK SID NODE TIMEOUT PID...
                                          SIGKILL every PID and all their descendants at once
                                          (a host dying with its containers), then poll SOCK's
                                          tasks until the service has as many running tasks
                                          off NODE as it had in all before: appends the
                                          seconds to results[KEY]
  svc-rm SOCK SID TIMEOUT                 remove a service, wait until it has no task left
  node-ready SOCK NODE TIMEOUT            wait until GET /nodes shows NODE ready
  sim FILE KEY OUTPUT...                  parse scale_sim outputs ("... : N tasks/s")
  put FILE KEY JSON                       set results[KEY]
  report FILE                             the tables, ratios and targets

How a step is timed (both engines alike):
  create N   the clock starts before POST /services/create; every 50 ms GET
             /tasks?filters={"service":[ID]}: "tasks" = the first poll seeing N tasks with
             status running and desired state running (what `service ls` shows as N/N; the
             main figure); every 250 ms GET /containers/json?all=1 (filtered here by the
             com.docker.swarm.service.id label): "containers" = the first poll seeing N
             containers of the service running (0.25 s resolution).
  scale      GET /services/ID, Replicas 10 -> 50 in POST /services/ID/update?version=V, then
             as above until 50 run (40 new ones).
  rm         DELETE /services/ID, then poll until no container of the service is left.
  memory     with N2 (SIZES' second) tasks running: the daemons (swarm: the daemon; docker:
             dockerd + containerd) and the per-container helper of every task (the parent of
             the container's init: Docker's containerd-shim-runc-v2, our `swarm` helper), by
             PSS and by RSS. The main figure is the sum of PSS over all of them: every page
             the engine's processes hold counted once (RSS counts a page shared by the daemon
             and 50 helpers 51 times).
Every loop is bounded by a count and a deadline.
"""
import http.client
import json
import os
import re
import signal
import socket
import statistics
import sys
import time
import urllib.parse

REQUEST_TIMEOUT = 60.0
POLL = 0.05
SERVICE_LABEL = "com.docker.swarm.service.id"
IMAGE = "busybox:bench"
# A sleep-forever task: `sleep` as the container's PID 1 ignores SIGTERM.
ARGS = ["sleep", "1000000000"]


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Api:
    """One keep-alive connection to an engine's socket; reconnects after a transport error."""

    def __init__(self, sock):
        self.sock = sock
        self.conn = None

    def request(self, method, path, body=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = UnixHTTPConnection(self.sock, REQUEST_TIMEOUT)
            try:
                data = None if body is None else json.dumps(body).encode()
                headers = {"Content-Type": "application/json"} if data is not None else {}
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                try:
                    value = json.loads(raw) if raw else None
                except ValueError:
                    value = raw.decode(errors="replace")
                return r.status, value
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def ok(self, method, path, body=None, statuses=(200, 201, 204)):
        status, value = self.request(method, path, body)
        if status not in statuses:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {value}")
        return value


def filters(**kw):
    return urllib.parse.quote(json.dumps({k: v for k, v in kw.items()}))


def spec(name, replicas, grace_ns=None):
    container = {"Image": IMAGE, "Args": ARGS}
    if grace_ns is not None:
        container["StopGracePeriod"] = grace_ns
    return {
        "Name": name,
        "Labels": {"swarm-bench": "services"},
        "TaskTemplate": {"ContainerSpec": container},
        "Mode": {"Replicated": {"Replicas": replicas}},
    }


def service_containers(api, sid, running_only):
    out = []
    for c in api.ok("GET", "/containers/json?all=1") or []:
        if (c.get("Labels") or {}).get(SERVICE_LABEL) != sid:
            continue
        if running_only and c.get("State") != "running":
            continue
        out.append(c)
    return out


def running_tasks(api, sid):
    tasks = api.ok("GET", f"/tasks?filters={filters(service=[sid])}") or []
    return [
        t for t in tasks
        if t.get("ServiceID") == sid
        and t.get("DesiredState") == "running"
        and (t.get("Status") or {}).get("State") == "running"
    ]


def wait_running(api, sid, n, t0, timeout, local=True):
    """Seconds from t0 until n containers of the service run (on this engine's node, when
    `local`), and until n tasks run."""
    deadline = t0 + timeout
    got = {"containers": None if local else -1.0, "tasks": None}
    polls = 0
    while time.monotonic() < deadline and polls < timeout / POLL + 1000:
        polls += 1
        # The container list every 5th poll only: our daemon builds it from every
        # container's files (≈ 8 ms for 50, 30 ms for 200), which at every poll would load
        # it more than Docker (in memory); the task list is in memory on both.
        if got["containers"] is None and polls % 5 == 1:
            k = len(service_containers(api, sid, True))
            if k >= n:
                got["containers"] = time.monotonic() - t0
        if got["tasks"] is None:
            k = len(running_tasks(api, sid))
            if k >= n:
                got["tasks"] = time.monotonic() - t0
        if None not in got.values():
            return got
        time.sleep(POLL)
    raise RuntimeError(f"service {sid}: {n} tasks not running after {timeout} s ({got})")


def wait_gone(api, sid, t0, timeout):
    deadline = t0 + timeout
    polls = 0
    while time.monotonic() < deadline and polls < timeout / POLL + 1000:
        polls += 1
        if not service_containers(api, sid, False):
            return time.monotonic() - t0
        time.sleep(POLL)
    left = len(service_containers(api, sid, False))
    raise RuntimeError(f"service {sid}: {left} containers left {timeout} s after rm")


def create(api, name, n, timeout, grace_ns=None, local=True):
    t0 = time.monotonic()
    sid = api.ok("POST", "/services/create", spec(name, n, grace_ns))["ID"]
    got = wait_running(api, sid, n, t0, timeout, local)
    return sid, got


def remove(api, sid, timeout):
    t0 = time.monotonic()
    api.ok("DELETE", f"/services/{sid}")
    return wait_gone(api, sid, t0, timeout)


def scale(api, sid, n, timeout):
    s = api.ok("GET", f"/services/{sid}")
    body = s["Spec"]
    body["Mode"]["Replicated"]["Replicas"] = n
    t0 = time.monotonic()
    api.ok("POST", f"/services/{sid}/update?version={s['Version']['Index']}", body)
    return wait_running(api, sid, n, t0, timeout)


# --- memory -------------------------------------------------------------------------------

def proc_kib(pid, path, key):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def memory(api, sid, daemon_pids):
    helpers = set()
    networks = set()
    for c in service_containers(api, sid, True):
        info = api.ok("GET", f"/containers/{c['Id']}/json")
        networks.add((info.get("HostConfig") or {}).get("NetworkMode") or "?")
        pid = (info.get("State") or {}).get("Pid") or 0
        parent = ppid(pid) if pid else None
        if parent and parent not in daemon_pids and parent > 1:
            helpers.add(parent)
    # PSS shares pages among all helpers: read every one once they all run.
    daemons = {p: (comm(p), proc_kib(p, "status", "VmRSS")) for p in daemon_pids}
    daemon_pss = sum(proc_kib(p, "smaps_rollup", "Pss") or 0 for p in daemon_pids)
    pss = [proc_kib(h, "smaps_rollup", "Pss") for h in helpers]
    rss = [proc_kib(h, "smaps_rollup", "Rss") for h in helpers]
    pss = [x for x in pss if x is not None]
    rss = [x for x in rss if x is not None]
    daemon_rss = sum(r or 0 for _, r in daemons.values())
    return {
        "daemons": {f"{n}({p})": r for p, (n, r) in daemons.items()},
        "helper_names": sorted({comm(h) for h in helpers}),
        "network_modes": sorted(networks),
        "helpers": len(pss),
        "daemon_rss_mib": daemon_rss / 1024,
        "helpers_pss_mib": sum(pss) / 1024,
        "helpers_rss_mib": sum(rss) / 1024,
        "helper_pss_median_kib": statistics.median(pss) if pss else None,
        "total_pss_mib": (daemon_rss + sum(pss)) / 1024,
        "daemon_pss_mib": daemon_pss / 1024,
        "engine_pss_mib": (daemon_pss + sum(pss)) / 1024,
        "total_rss_mib": (daemon_rss + sum(rss)) / 1024,
    }


# --- results file ---------------------------------------------------------------------------

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save(path, results):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, path)


def put(path, key, value):
    results = load(path)
    results[key] = value
    save(path, results)


def add_run(results, engine, key, value):
    results.setdefault(engine, {}).setdefault(key, []).append(value)


# --- the one-node run --------------------------------------------------------------------------

def single(path, rounds, sizes, engines):
    small, mid, big = sizes
    apis = {name: Api(sock) for name, (sock, _) in engines.items()}
    results = load(path)
    order = list(engines)
    for r in range(1, rounds + 1):
        names = order if r % 2 else list(reversed(order))

        def step(title, fn):
            for name in names:
                fn(name, apis[name])

        # 1. create N (N = small, mid, big), each removed untimed before the next step.
        #    These services stop with a grace period of 0 so that the untimed removals are
        #    short; the start path does not look at it.
        for n in (small, mid, big):
            def create_n(name, api, n=n):
                sid, got = create(api, f"bench-c{n}-r{r}", n, 60 + 2 * n, grace_ns=0)
                add_run(results, name, f"create{n}.containers", got["containers"])
                add_run(results, name, f"create{n}.tasks", got["tasks"])
                log(f"round {r} {name}: create --replicas {n}: {got['tasks']:.2f} s to {n} "
                    f"tasks running, {got['containers']:.2f} s to {n} containers running")
                if n == mid:
                    time.sleep(3)  # settle before reading memory
                    m = memory(api, sid, engines[name][1])
                    add_run(results, name, f"memory{n}", m)
                    log(f"round {r} {name}: memory with {n} tasks: daemons "
                        f"{m['daemon_rss_mib']:.1f} MiB RSS + {m['helpers']} helpers "
                        f"{m['helpers_pss_mib']:.1f} MiB PSS ({m['helpers_rss_mib']:.1f} RSS)")
                    secs = remove(api, sid, 120)
                    add_run(results, name, f"rm{n}.kill", secs)
                    log(f"round {r} {name}: rm of {n} tasks, grace 0: {secs:.2f} s to no container")
                else:
                    remove(api, sid, 60 + 2 * n)
                save(path, results)
            step(f"create {n}", create_n)

        # 2. scale small -> mid, then rm with the default grace (10 s: sleep ignores SIGTERM).
        def scale_rm(name, api):
            sid, _ = create(api, f"bench-s-r{r}", small, 120)
            got = scale(api, sid, mid, 60 + 2 * mid)
            add_run(results, name, "scale.containers", got["containers"])
            add_run(results, name, "scale.tasks", got["tasks"])
            log(f"round {r} {name}: scale {small} -> {mid}: {got['tasks']:.2f} s to {mid} "
                f"tasks running, {got['containers']:.2f} s to {mid} containers running")
            secs = remove(api, sid, 180)
            add_run(results, name, f"rm{mid}.grace", secs)
            log(f"round {r} {name}: rm of {mid} tasks, default grace: {secs:.2f} s to no container")
            save(path, results)
        step("scale", scale_rm)
    results["sizes"] = sizes
    results["rounds"] = rounds
    save(path, results)


# --- the node kill --------------------------------------------------------------------------

def svc_up(sock, name, replicas, timeout):
    api = Api(sock)
    sid, _ = create(api, name, replicas, timeout, grace_ns=0, local=False)
    nodes = {}
    for t in running_tasks(api, sid):
        nodes[t["NodeID"]] = nodes.get(t["NodeID"], 0) + 1
    print(json.dumps({"id": sid, "nodes": nodes}))


def descendants(roots):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            p = ppid(int(d))
            if p is not None:
                children.setdefault(p, []).append(int(d))
    out, todo = set(), list(roots)
    while todo and len(out) < 100000:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(children.get(p, []))
    return out


def kill_node(path, key, sock, sid, node, timeout, pids):
    api = Api(sock)
    want = len(running_tasks(api, sid))
    victims = descendants(pids)
    t0 = time.monotonic()
    for p in sorted(victims):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log(f"killed {len(victims)} processes of node {node[:12]} (daemon, helpers, containers)")
    deadline = t0 + timeout
    down = None
    polls = 0
    while time.monotonic() < deadline and polls < timeout / POLL + 1000:
        polls += 1
        if down is None:
            for n in api.ok("GET", "/nodes") or []:
                if n.get("ID") == node and (n.get("Status") or {}).get("State") == "down":
                    down = time.monotonic() - t0
        tasks = running_tasks(api, sid)
        off = [t for t in tasks if t.get("NodeID") != node]
        if len(off) >= want:
            secs = time.monotonic() - t0
            results = load(path)
            results.setdefault(key, []).append({"replaced": secs, "down": down, "tasks": want})
            save(path, results)
            print(json.dumps({"replaced": round(secs, 3),
                              "down": None if down is None else round(down, 3)}))
            return
        time.sleep(POLL)
    raise RuntimeError(f"{want} tasks not running off node {node} {timeout} s after the kill")


def svc_rm(sock, sid, timeout):
    api = Api(sock)
    api.ok("DELETE", f"/services/{sid}")
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline and polls < timeout / POLL + 1000:
        polls += 1
        if not [t for t in api.ok("GET", "/tasks") or [] if t.get("ServiceID") == sid]:
            return
        time.sleep(POLL)
    raise RuntimeError(f"service {sid}: tasks left {timeout} s after rm")


def node_ready(sock, node, timeout):
    api = Api(sock)
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline and polls < timeout / POLL + 1000:
        polls += 1
        try:
            for n in api.ok("GET", "/nodes") or []:
                if n.get("ID") == node and (n.get("Status") or {}).get("State") == "ready":
                    return
        except (OSError, RuntimeError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"node {node} not ready after {timeout} s")


# --- simulator ----------------------------------------------------------------------------------

def sim(path, key, outputs):
    runs = []
    for out in outputs:
        m = re.search(r"placed in .*: ([0-9.]+) tasks/s", out)
        if not m:
            raise RuntimeError(f"cannot parse scale_sim output: {out!r}")
        placed = re.search(r"(\d+) of (\d+) replicas placed in ([^ ]+)", out)
        runs.append({"tasks_per_s": float(m.group(1)), "line": out.strip(),
                     "placed": int(placed.group(1)) if placed else None})
    put(path, key, runs)


# --- report -------------------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, unit="s", digits=2):
    return "–" if x is None else f"{x:.{digits}f} {unit}".strip()


def report(path):
    r = load(path)
    small, mid, big = r.get("sizes", [10, 50, 200])
    eng = [e for e in ("swarm", "docker") if e in r]
    print(f"== one node, {r.get('rounds', '?')} rounds, medians (runs in brackets)")
    rows = []
    for n in (small, mid, big):
        rows.append((f"create --replicas {n}: tasks running (API)", f"create{n}.tasks"))
        rows.append((f"create --replicas {n}: containers running (±0.25 s)", f"create{n}.containers"))
    rows += [
        (f"scale {small} -> {mid}: tasks running (API)", "scale.tasks"),
        (f"scale {small} -> {mid}: containers running (±0.25 s)", "scale.containers"),
        (f"rm of {mid} tasks, grace 0: no container left", f"rm{mid}.kill"),
        (f"rm of {mid} tasks, default 10 s grace: no container left", f"rm{mid}.grace"),
    ]
    meds = {}
    print(f"{'measure':<58}" + "".join(f"{e:>26}" for e in eng) + ("   swarm/docker" if len(eng) == 2 else ""))
    for title, key in rows:
        cells = []
        for e in eng:
            runs = r[e].get(key, [])
            meds[(e, key)] = med(runs)
            cells.append(f"{fmt(meds[(e, key)])} [{' '.join(f'{x:.2f}' for x in runs)}]")
        line = f"{title:<58}" + "".join(f"{c:>26}" for c in cells)
        if len(eng) == 2 and meds[("swarm", key)] and meds[("docker", key)]:
            line += f"   {meds[('swarm', key)] / meds[('docker', key)]:.3f}x"
        print(line)
    print()
    print(f"== memory with {mid} tasks running (median over rounds)")
    mem = {}
    for e in eng:
        runs = r[e].get(f"memory{mid}", [])
        if not runs:
            continue
        m = {k: med([x[k] for x in runs]) for k in
             ("daemon_rss_mib", "helpers_pss_mib", "helpers_rss_mib", "total_pss_mib",
              "total_rss_mib", "helper_pss_median_kib", "helpers", "daemon_pss_mib",
              "engine_pss_mib")}
        mem[e] = m
        last = runs[-1]
        print(f"{e:<7} daemons {fmt(m['daemon_rss_mib'], 'MiB', 1)} RSS ({', '.join(f'{k} {v / 1024:.1f}' for k, v in last['daemons'].items() if v)}); "
              f"{m['helpers']:.0f} helpers ({', '.join(last['helper_names'])}): "
              f"{fmt(m['helpers_pss_mib'], 'MiB', 1)} PSS, {fmt(m['helpers_rss_mib'], 'MiB', 1)} RSS, "
              f"{fmt(m['helper_pss_median_kib'], 'kB', 0)} PSS each; "
              f"network mode {', '.join(last.get('network_modes', []))}")
        print(f"{'':<7} total: all PSS (daemons {fmt(m['daemon_pss_mib'], 'MiB', 1)} + helpers) "
              f"{fmt(m['engine_pss_mib'], 'MiB', 1)}; daemons RSS + helpers PSS {fmt(m['total_pss_mib'], 'MiB', 1)}; "
              f"everything by RSS {fmt(m['total_rss_mib'], 'MiB', 1)}")
    if len(mem) == 2:
        print(f"ratio swarm/docker: {mem['swarm']['engine_pss_mib'] / mem['docker']['engine_pss_mib']:.3f}x "
              f"(all PSS), {mem['swarm']['total_pss_mib'] / mem['docker']['total_pss_mib']:.3f}x "
              f"(daemons RSS + helpers PSS), {mem['swarm']['total_rss_mib'] / mem['docker']['total_rss_mib']:.3f}x (all RSS)")
    print()
    simr = r.get("sim", [])
    if simr:
        tps = med([x["tasks_per_s"] for x in simr])
        print("== scale SIMULATION (in-process nodes, no runtime; examples/scale_sim.rs)")
        for x in simr:
            print(f"   {x['line']}")
        print(f"   median {tps:.0f} tasks/s placed and committed")
        print()
    kills = r.get("kill", [])
    if kills:
        rep = med([k["replaced"] for k in kills])
        down = med([k["down"] for k in kills])
        print("== 3-host cluster, 6 replicas: kill -9 of a worker (daemon + its containers)")
        print(f"   node down on the manager: median {fmt(down)} "
              f"[{' '.join(fmt(k['down']) for k in kills)}]")
        print(f"   all replacements running: median {fmt(rep)} "
              f"[{' '.join(fmt(k['replaced']) for k in kills)}]")
        print()
    print("== targets")

    def target(text, ok):
        print(f"   {text}: " + ("–" if ok is None else ("met" if ok else "NOT met")))

    s50, d50 = meds.get(("swarm", f"create{mid}.tasks")), meds.get(("docker", f"create{mid}.tasks"))
    target(f"create --replicas {mid} >= 10x faster than Docker Swarm"
           + (f" ({d50 / s50:.1f}x)" if s50 and d50 else ""),
           None if not (s50 and d50) else d50 / s50 >= 10)
    if len(mem) == 2:
        q = mem["swarm"]["engine_pss_mib"] / mem["docker"]["engine_pss_mib"]
        target(f"memory with {mid} tasks <= 1/10 of Docker's, all PSS ({q:.3f}x)", q <= 0.1)
    else:
        target("memory <= 1/10 of Docker's", None)
    if simr:
        target(f">= 2,000 tasks/s in the simulation ({tps:.0f})", tps >= 2000)
    if kills:
        target(f"node kill -9 -> replacements running within 3 s ({rep:.2f} s)", rep <= 3)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, a = argv[1], argv[2:]
    if cmd == "single":
        engines = {}
        for e in a[3:]:
            name, _, rest = e.partition("=")
            sock, *pids = rest.split(",")
            engines[name] = (sock, [int(p) for p in pids])
        sizes = [int(x) for x in a[2].split(",")]
        single(a[0], int(a[1]), sizes, engines)
    elif cmd == "svc-up":
        svc_up(a[0], a[1], int(a[2]), float(a[3]))
    elif cmd == "kill-node":
        kill_node(a[0], a[1], a[2], a[3], a[4], float(a[5]), [int(p) for p in a[6:]])
    elif cmd == "svc-rm":
        svc_rm(a[0], a[1], float(a[2]))
    elif cmd == "node-ready":
        node_ready(a[0], a[1], float(a[2]))
    elif cmd == "sim":
        sim(a[0], a[1], a[2:])
    elif cmd == "put":
        put(a[0], a[1], json.loads(a[2]))
    elif cmd == "report":
        report(a[0])
    else:
        sys.exit(f"unknown subcommand {cmd}\n{__doc__}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (RuntimeError, OSError, http.client.HTTPException) as e:
        sys.exit(f"services_client: {e}")
