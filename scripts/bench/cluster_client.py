#!/usr/bin/env python3
"""Write client for scripts/bench/cluster.sh: etcd (HTTP/JSON gateway over TCP) and swarm
(its Docker-shaped API over a Unix socket), with the same stdlib HTTP/1.1 keep-alive code.

Targets:  etcd:http://127.0.0.1:PORT      a write is POST /v3/kv/put {key, value} (base64)
          swarm:/path/to/swarm.sock       a write is POST /nodes/ID/update?version=N with the
                                          node's Spec plus one label; N comes from a GET
                                          /nodes/ID?consistency=local (the manager's own copy)
                                          just before, which is not timed in the latency
                                          runs; a 409 (stale version) is retried

Subcommands (each prints one JSON object on stdout):
  compare FILE N CLIENTS SECONDS MAX ROUNDS SIDE...
                                          latency, throughput (CLIENTS) and throughput (3
                                          clients) of every SIDE, interleaved over ROUNDS
                                          rounds; SIDE is NAME=TARGET[,NODE[,NODE...]] (the
                                          first NODE for latency, the rest for throughput);
                                          results go to FILE under NAME.latency, ...
  latency TARGET N [NODE]                 N sequential writes after 20 warm-up ones
  throughput TARGET CLIENTS SECONDS MAX [NODE...]
                                          CLIENTS threads, each with its own connection,
                                          writing until SECONDS or MAX writes in total
  first-write TARGET PID TIMEOUT [NODE]   SIGKILL PID, then probe TARGET with overlapping
                                          writes (a new one every 50 ms): seconds from the
                                          kill to the first acknowledged one
  down SOCK NODE PID TIMEOUT              SIGKILL PID, then poll GET /nodes on SOCK until NODE
                                          is "down": seconds from the kill
  wait-write TARGET TIMEOUT [NODE]        write until one succeeds (readiness)
  etcd-leader URL...                      index of the member that is leader
  swarm-leader SOCK...                    index of the socket whose node is the leader
  swarm-ready SOCK MANAGERS TIMEOUT       wait until GET /nodes shows MANAGERS ready,
                                          reachable managers and a leader
  put FILE KEY JSON                       set results[KEY] (KEY like "etcd.latency")
  put-runs FILE KEY NAME SCALE VALUE...   set results[KEY] = {runs, NAME: median} of the
                                          VALUEs times SCALE ("null" values are failures)
  report FILE                             the table and ratios from the collected JSON

Every loop is bounded by a count and a deadline.
"""
import base64
import http.client
import json
import math
import os
import signal
import socket
import statistics
import sys
import threading
import time

REQUEST_TIMEOUT = 15.0


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Conn:
    """One keep-alive connection; reconnects after a transport error."""

    def __init__(self, target):
        self.kind, _, self.addr = target.partition(":")
        self.conn = None

    def _connect(self):
        if self.kind == "swarm":
            return UnixHTTPConnection(self.addr, REQUEST_TIMEOUT)
        host = self.addr.split("//", 1)[1]
        return http.client.HTTPConnection(host, timeout=REQUEST_TIMEOUT)

    def request(self, method, path, body=None):
        """(status, parsed JSON or raw bytes); a transport error raises OSError."""
        if self.conn is None:
            self.conn = self._connect()
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise OSError(str(e)) from e
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Writer:
    """Small writes to one target: an etcd put, or a node label update on swarm."""

    def __init__(self, target, node=None, tag="w"):
        self.target = target
        self.conn = Conn(target)
        self.node = node
        self.tag = tag
        self.seq = 0
        self.conflicts = 0

    def prepare(self):
        """The untimed part of a write (swarm: read the node's version and spec)."""
        if self.conn.kind != "swarm":
            return None
        status, node = self.conn.request("GET", f"/nodes/{self.node}?consistency=local")
        if status != 200:
            raise RuntimeError(f"GET /nodes/{self.node}: {status} {node}")
        spec = node["Spec"]
        labels = dict(spec.get("Labels") or {})
        self.seq += 1
        labels[f"bench-{self.tag}"] = str(self.seq)
        spec["Labels"] = labels
        return node["Version"]["Index"], spec

    def write(self, prepared):
        """The timed part; returns the HTTP status."""
        if self.conn.kind == "swarm":
            version, spec = prepared
            status, _ = self.conn.request(
                "POST", f"/nodes/{self.node}/update?version={version}", spec)
            if status == 409:
                self.conflicts += 1
            return status
        self.seq += 1
        key = base64.b64encode(f"bench/{self.tag}/{self.seq % 1000}".encode()).decode()
        value = base64.b64encode(f"value-{self.seq}".encode()).decode()
        status, _ = self.conn.request("POST", "/v3/kv/put", {"key": key, "value": value})
        return status

    def write_once(self):
        """Prepare + write; True when acknowledged."""
        return self.write(self.prepare()) == 200


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def latency(target, n, node=None):
    w = Writer(target, node, "lat")
    for _ in range(20):
        w.write_once()
    samples, failures = [], 0
    deadline = time.monotonic() + max(60, n * 0.2)
    while len(samples) < n and time.monotonic() < deadline and failures < 50:
        prepared = w.prepare()
        t = time.perf_counter()
        status = w.write(prepared)
        e = (time.perf_counter() - t) * 1000
        if status == 200:
            samples.append(e)
        else:
            failures += 1
    return {"samples_ms": samples, "failures": failures, "conflicts": w.conflicts,
            "median_ms": statistics.median(samples) if samples else None,
            "p99_ms": pct(samples, 99) if samples else None}


def throughput(target, clients, seconds, max_writes, nodes):
    lock = threading.Lock()
    state = {"left": max_writes, "ok": 0, "failed": 0, "conflicts": 0, "errors": 0}
    lat = []
    start = time.monotonic()
    deadline = start + seconds

    def client(i):
        w = Writer(target, nodes[i % len(nodes)] if nodes else None, f"t{i}")
        errors = 0
        while time.monotonic() < deadline and errors < 100:
            with lock:
                if state["left"] <= 0:
                    break
                state["left"] -= 1
            try:
                prepared = w.prepare()
                t = time.perf_counter()
                status = w.write(prepared)
                e = (time.perf_counter() - t) * 1000
            except (OSError, RuntimeError):
                errors += 1
                with lock:
                    state["errors"] += 1
                continue
            with lock:
                if status == 200:
                    state["ok"] += 1
                    lat.append(e)
                else:
                    state["failed"] += 1
        with lock:
            state["conflicts"] += w.conflicts
        w.conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 2 * REQUEST_TIMEOUT)
    elapsed = time.monotonic() - start
    # On swarm the version check runs in the state machine, so a 409 is a committed Raft
    # entry as much as a 200: both count as proposals.
    return {"clients": clients, "ok": state["ok"], "failed": state["failed"],
            "conflicts": state["conflicts"], "errors": state["errors"],
            "elapsed_s": elapsed, "writes_per_s": state["ok"] / elapsed,
            "proposals_per_s": (state["ok"] + state["conflicts"]) / elapsed,
            "median_ms": statistics.median(lat) if lat else None,
            "p99_ms": pct(lat, 99) if lat else None, "samples_ms": lat}


def merge_runs(runs):
    """One result from several latency or throughput runs of the same side."""
    samples = [x for r in runs for x in r["samples_ms"]]
    out = {"rounds": len(runs), "median_ms": statistics.median(samples) if samples else None,
           "p99_ms": pct(samples, 99) if samples else None, "count": len(samples)}
    for key in ("failures", "failed", "conflicts", "errors", "ok"):
        if any(key in r for r in runs):
            out[key] = sum(r.get(key, 0) for r in runs)
    if "elapsed_s" in runs[0]:
        elapsed = sum(r["elapsed_s"] for r in runs)
        out["clients"] = runs[0]["clients"]
        out["elapsed_s"] = elapsed
        out["writes_per_s"] = out["ok"] / elapsed
        out["proposals_per_s"] = (out["ok"] + out["conflicts"]) / elapsed
    return out


def compare(path, n, clients, seconds, max_writes, rounds, sides):
    """Latency and throughput of every side, interleaved: ROUNDS rounds, each running every
    side in turn (the order alternates), so that the machine's noise falls on all sides
    alike. sides: [(name, target, latency node, throughput nodes)]."""
    plans = [
        ("latency", lambda t, node, nodes: latency(t, max(1, n // rounds), node)),
        ("throughput", lambda t, node, nodes:
            throughput(t, clients, seconds / rounds, max(1, max_writes // rounds), nodes)),
        ("throughput3", lambda t, node, nodes:
            throughput(t, 3, seconds / rounds, max(1, max_writes // rounds), nodes)),
    ]
    for key, run in plans:
        runs = {name: [] for name, *_ in sides}
        for r in range(rounds):
            order = sides if r % 2 == 0 else list(reversed(sides))
            for name, target, node, nodes in order:
                sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {name}: {key}, round "
                                 f"{r + 1}/{rounds}\n")
                runs[name].append(run(target, node, nodes))
        for name, results in runs.items():
            put(path, f"{name}.{key}", merge_runs(results))


def first_write(target, pid, timeout, node=None):
    """Kill PID, then probe: a new write (own connection, own deadline) every 50 ms, up to
    64 in flight, so one write stuck on the dead leader does not hide the recovery. The
    figure is the time from the kill to the first acknowledgement of any probe."""
    acks, lock = [], threading.Lock()
    t0 = time.monotonic()

    def probe(i):
        w = Writer(target, node, f"fo{i}")
        try:
            ok = w.write_once()
        except (OSError, RuntimeError):
            ok = False
        w.conn.close()
        if ok:
            with lock:
                acks.append(time.monotonic() - t0)

    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    probes = []
    while time.monotonic() - t0 < timeout:
        with lock:
            if acks:
                break
        probes = [p for p in probes if p.is_alive()]
        if len(probes) < 64:
            p = threading.Thread(target=probe, args=(len(probes),), daemon=True)
            p.start()
            probes.append(p)
        time.sleep(0.05)
    with lock:
        return {"seconds": min(acks) if acks else None, "probes_in_flight": len(probes)}


def nodes_by_id(conn):
    status, nodes = conn.request("GET", "/nodes")
    if status != 200:
        raise RuntimeError(f"GET /nodes: {status} {nodes}")
    return {n["ID"]: n for n in nodes}


def down(sock, node, pid, timeout):
    conn = Conn("swarm:" + sock)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    polls = 0
    while time.monotonic() - t0 < timeout:
        polls += 1
        try:
            n = nodes_by_id(conn).get(node)
            if n and n["Status"]["State"] == "down":
                return {"seconds": time.monotonic() - t0, "polls": polls}
        except (OSError, RuntimeError):
            pass
        time.sleep(0.02)
    return {"seconds": None, "polls": polls}


def wait_write(target, timeout, node=None):
    w = Writer(target, node, "ready")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if w.write_once():
                return {"seconds": time.monotonic() - t0}
        except (OSError, RuntimeError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"no write acknowledged by {target} in {timeout} s")


def etcd_leader(urls):
    for i, url in enumerate(urls):
        try:
            status, s = Conn("etcd:" + url).request("POST", "/v3/maintenance/status", {})
        except OSError:
            continue
        if status == 200 and s.get("leader") and s["leader"] == s["header"]["member_id"]:
            return {"leader": i}
    return {"leader": None}


def swarm_leader(socks):
    for i, sock in enumerate(socks):
        try:
            status, info = Conn("swarm:" + sock).request("GET", "/info")
            node_id = info["Swarm"]["NodeID"]
            n = nodes_by_id(Conn("swarm:" + sock)).get(node_id)
        except (OSError, RuntimeError, KeyError, TypeError):
            continue
        if status == 200 and n and (n.get("ManagerStatus") or {}).get("Leader"):
            return {"leader": i, "node": node_id}
    return {"leader": None}


def swarm_ready(sock, managers, timeout):
    conn = Conn("swarm:" + sock)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            nodes = list(nodes_by_id(conn).values())
            ready = [n for n in nodes if n["Status"]["State"] == "ready"]
            ms = [n["ManagerStatus"] for n in ready if n.get("ManagerStatus")]
            if (len(ms) >= managers and any(m.get("Leader") for m in ms)
                    and all(m.get("Reachability") == "reachable" for m in ms)):
                return {"seconds": time.monotonic() - t0}
        except (OSError, RuntimeError, KeyError, TypeError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"the swarm did not show {managers} ready managers in {timeout} s")


def fmt(x, unit):
    return "-" if x is None else f"{x:.2f} {unit}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def report(path):
    r = json.load(open(path))
    e, s = r.get("etcd", {}), r.get("swarm", {})
    print(f"setup: etcd {r.get('etcd_version', '?')}: 3 members on 127.0.0.1; swarm: "
          f"{r.get('swarm_setup', 'skipped')}; data dirs on {r.get('fs', '?')}")
    print(f"writes: etcd POST /v3/kv/put (gateway, keep-alive); swarm {r.get('swarm_write', '-')}")
    print(f"{'measure':<40} {'etcd':>14} {'swarm':>14} {'swarm/etcd':>11} target")

    def row(name, key, sub, unit, target=""):
        a = (e.get(key) or {}).get(sub)
        b = (s.get(key) or {}).get(sub)
        print(f"{name:<40} {fmt(a, unit):>14} {fmt(b, unit):>14} {ratio(b, a):>11} {target}")

    row("write latency, 1 in flight, median", "latency", "median_ms", "ms", "<= 1.00x")
    row("write latency, 1 in flight, p99", "latency", "p99_ms", "ms")
    row(f"throughput, {r.get('clients', '?')} clients, acknowledged", "throughput",
        "writes_per_s", "w/s")
    row("  committed proposals (swarm: 200 + 409)", "throughput", "proposals_per_s", "w/s")
    row("  acknowledged write latency, median", "throughput", "median_ms", "ms")
    row("  acknowledged write latency, p99", "throughput", "p99_ms", "ms")
    row("throughput, 3 clients (swarm: 1 node each)", "throughput3", "writes_per_s", "w/s")
    row("  write latency, median", "throughput3", "median_ms", "ms")
    rounds = r.get("rounds", "?")
    row(f"leader kill -9 -> first ack, median of {rounds}", "failover", "median_s", "s",
        "swarm <= 1 s")
    row(f"node kill -9 -> shown down, median of {rounds}", "down", "median_s", "s",
        "swarm <= 2 s")
    row("idle RSS per member/daemon, median", "rss", "median_mib", "MiB", "swarm <= 30 MiB")
    row("idle CPU per member/daemon, median", "cpu", "median_pct", "%")
    for side, d in (("etcd", e), ("swarm", s)):
        for key in ("latency", "throughput", "throughput3"):
            x = d.get(key) or {}
            if x.get("failures") or x.get("failed") or x.get("errors") or x.get("conflicts"):
                print(f"  note {side} {key}: non-200 answers {x.get('failures', x.get('failed', 0))}"
                      f" (of which 409, retried: {x.get('conflicts', 0)}), transport errors "
                      f"{x.get('errors', 0)}")
        for key in ("failover", "down"):
            if d.get(key):
                print(f"  {side} {key} runs (s): "
                      + ", ".join(fmt(v, "") for v in d[key].get("runs", [])))
        if d.get("rss"):
            print(f"  {side} idle RSS (MiB): " + ", ".join(f"{v:.1f}" for v in d["rss"]["runs"])
                  + "; idle CPU (% of a core): "
                  + ", ".join(f"{v:.1f}" for v in (d.get("cpu") or {}).get("runs", [])))
    if r.get("swarm_skipped"):
        print(f"swarm: skipped: {r['swarm_skipped']}")


def put(path, key, value):
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        r = {}
    d = r
    *parents, last = key.split(".")
    for k in parents:
        d = d.setdefault(k, {})
    d[last] = value
    with open(path + ".tmp", "w") as f:
        json.dump(r, f, indent=2)
    os.replace(path + ".tmp", path)


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "put":
        put(args[0], args[1], json.loads(args[2]))
        return
    if cmd == "put-runs":
        scale = float(args[3])
        runs = [None if v == "null" else float(v) * scale for v in args[4:]]
        ok = [v for v in runs if v is not None]
        put(args[0], args[1], {"runs": runs, args[2]: statistics.median(ok) if ok else None,
                               "failed": len(runs) - len(ok)})
        return
    if cmd == "compare":
        sides = []
        for spec in args[6:]:
            name, _, rest = spec.partition("=")
            target, *nodes = rest.split(",")
            sides.append((name, target, nodes[0] if nodes else None, nodes[1:]))
        compare(args[0], int(args[1]), int(args[2]), float(args[3]), int(args[4]),
                int(args[5]), sides)
        return
    if cmd == "latency":
        out = latency(args[0], int(args[1]), args[2] if len(args) > 2 else None)
    elif cmd == "throughput":
        out = throughput(args[0], int(args[1]), float(args[2]), int(args[3]), args[4:])
    elif cmd == "first-write":
        out = first_write(args[0], int(args[1]), float(args[2]), args[3] if len(args) > 3 else None)
    elif cmd == "down":
        out = down(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "wait-write":
        out = wait_write(args[0], float(args[1]), args[2] if len(args) > 2 else None)
    elif cmd == "etcd-leader":
        out = etcd_leader(args)
    elif cmd == "swarm-leader":
        out = swarm_leader(args)
    elif cmd == "swarm-ready":
        out = swarm_ready(args[0], int(args[1]), float(args[2]))
    elif cmd == "report":
        report(args[0])
        return
    else:
        raise SystemExit(f"unknown subcommand {cmd}")
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv)
