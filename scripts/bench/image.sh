#!/usr/bin/env bash
# Image and engine benchmark: swarm's daemon vs Docker Engine 20.10 vs runc, side by side.
#
#   scripts/bench/image.sh [N]        N runs per variant (default 20, at most 1000)
#
# 1. Container start to finish: N sequential runs of `true` on the busybox test rootfs,
#    round-robin in a shuffled order after 3 warm-up rounds (scripts/bench/runtime_harness.py):
#      swarm         swarm -H unix://SOCK run --rm busybox:test true   (our daemon)
#      docker-none   docker run --rm --network none busybox:local true  (Docker Engine 20.10)
#      docker-bridge docker run --rm busybox:local true                 (default bridge network)
#      runc          runc run --bundle B ID                             (OCI runtime only)
#    Prints wall median/p90 and the ratios swarm/docker and swarm/runc. The cpu columns
#    are the client's CPU (and everything it spawned) only: for swarm and docker that is
#    the CLI, the daemons' CPU is not in them; for runc it is the whole container.
#    Docker runs as peers.md describes: its own containerd and dockerd, in their own network
#    namespace, with their own config, root, state, sockets, data-root, exec-root, pidfile
#    and cgroup parent; the busybox rootfs tar is `docker import`ed as busybox:local.
#
# 2. Unpack throughput: a generated image (scripts/bench/gen_image.py: 5 gzip'd layers, the
#    busybox rootfs + 4 layers with about 60 MiB of half-random file content) is loaded with `swarm image load`; the first
#    `swarm run --rm bench-unpack:1 true` unpacks every layer. Unpack time = that cold run
#    minus the median of 3 warm runs; then `swarm image rm` + `swarm image prune` drop the
#    snapshots and the next round starts cold again. Compared with GNU `tar -xzf` of the
#    same layer blobs into an empty temp dir (sum over layers). Both read the blobs from
#    the page cache and write to the same file system; neither syncs. MB/s are of the
#    uncompressed layer tars (1 MB = 10^6 bytes).
#
# 3. Pull: skopeo side ready (Debian's docker-registry on 127.0.0.1:PORT with its own
#    storage, the generated image pushed with skopeo, then N timed `skopeo copy
#    docker://127.0.0.1:PORT/bench:1 oci:DIR`); the swarm side runs only once
#    `swarm image pull --help` exists, else a "skipped" line is printed.
#
# Environment: SWARM_BIN (default $CARGO_TARGET_DIR|target/release/swarm, built with
#   cargo when missing), SWARM_BENCH_BUILD=1 (cargo build --release first),
#   SWARM_BENCH_UNPACK_ROUNDS (default min(N,10)), SWARM_BENCH_IMAGE_MIB (60),
#   SWARM_BENCH_NO_DOCKER=1 (skip Docker), SWARM_BENCH_JSON=PREFIX (JSON stats per part).
# Installs (once): runc busybox-static python3 docker.io skopeo docker-registry. If the
# docker.io/docker-registry install starts a daemon from the package scripts, it is stopped.
# Everything this script starts (daemons, containers, namespaces, mounts, cgroups, temp
# dirs) is stopped and removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/../lib.sh"

need_root "scripts/bench/image.sh"
N="${1:-20}"
if [[ ! "$N" =~ ^[0-9]+$ ]] || ((N < 1 || N > 1000)); then
    die "N must be 1..1000 (got '$N')"
fi
ROUNDS="${SWARM_BENCH_UNPACK_ROUNDS:-$((N < 10 ? N : 10))}"
IMAGE_MIB="${SWARM_BENCH_IMAGE_MIB:-60}"
if [[ ! "$ROUNDS" =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 100)); then
    die "SWARM_BENCH_UNPACK_ROUNDS must be 1..100 (got '$ROUNDS')"
fi
if [[ ! "$IMAGE_MIB" =~ ^[0-9]+$ ]] || ((IMAGE_MIB < 1 || IMAGE_MIB > 2048)); then
    die "SWARM_BENCH_IMAGE_MIB must be 1..2048 (got '$IMAGE_MIB')"
fi
cd "$SWARM_ROOT"

# --- packages (stop whatever the package scripts start) -----------------------
daemon_pids() {
    local name
    for name in dockerd containerd docker-registry; do
        pgrep -x "$name" || true
    done | sort -n
}
PRE_PIDS="$(daemon_pids)"
apt_install runc busybox-static python3 procps util-linux iproute2 tar gzip \
    docker.io skopeo docker-registry
for pid in $(comm -13 <(printf '%s\n' "$PRE_PIDS") <(daemon_pids)); do
    warn "stopping $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) started by the package install"
    kill -TERM "$pid" 2>/dev/null || true
done
DOCKER=/usr/bin/docker # the 20.10 client that matches dockerd 20.10
USE_DOCKER=1
[[ "${SWARM_BENCH_NO_DOCKER:-}" == 1 ]] && USE_DOCKER=0
for bin in "$DOCKER" /usr/sbin/dockerd /usr/bin/containerd; do
    [[ -x "$bin" ]] || { warn "$bin missing: docker skipped"; USE_DOCKER=0; }
done

# --- swarm --------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$SWARM_ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$SWARM_ROOT/$TARGET_DIR"
SWARM_BIN="${SWARM_BIN:-$TARGET_DIR/release/swarm}"
if [[ "${SWARM_BENCH_BUILD:-}" == 1 || ! -x "$SWARM_BIN" ]]; then
    command -v cargo >/dev/null 2>&1 || die "$SWARM_BIN missing and cargo not found"
    log "cargo build --release --bin swarm"
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --bin swarm
fi
[[ -x "$SWARM_BIN" ]] || die "$SWARM_BIN missing"
PYTHON=/usr/bin/python3
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"

ROOTFS="$("$SWARM_ROOT/scripts/fixtures/busybox-rootfs.sh" "$TARGET_DIR/fixtures/busybox")"
WORK="$(mktemp -d /tmp/swarm-bench-img.XXXXXX)"
TAG="swarm-bench-img-$$"
NETNS="$TAG"
# Marks every process this run starts (passed to the daemons, not exported).
SWARM_BENCH_RUN_ID="$TAG-$(date +%s)"
SWARM_SOCK="$WORK/swarm/s.sock"
D="$WORK/docker" # containerd and dockerd paths
DOCKER_SOCK="$D/docker.sock"
SWARM_PID="" CONTAINERD_PID="" DOCKERD_PID="" REGISTRY_PID="" USE_DOCKER_STARTED=0
# What dockerd 20.10 and containerd create outside their configured paths anyway: removed
# on exit when they were not there before (the dirs only when empty).
LEFTOVERS=()
for f in /etc/docker/key.json /run/docker /run/containerd; do
    [[ -e "$f" ]] || LEFTOVERS+=("$f")
done
sw() { timeout 120 "$SWARM_BIN" -H "unix://$SWARM_SOCK" "$@"; }
dk() { timeout 120 "$DOCKER" -H "unix://$DOCKER_SOCK" "$@"; }

# stop_pid PID SECONDS — TERM, wait (bounded), then KILL.
# shellcheck disable=SC2317 # called from the EXIT trap
stop_pid() {
    local pid="$1" i
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? id f
    set +e
    trap "" INT TERM
    if [[ -n "$SWARM_PID" ]]; then
        for id in $(sw ps -a -q 2>/dev/null); do sw rm -f "$id" >/dev/null 2>&1; done
        stop_pid "$SWARM_PID" 10
    fi
    if [[ -n "$DOCKERD_PID" ]]; then
        for id in $(dk ps -a -q 2>/dev/null); do dk rm -f "$id" >/dev/null 2>&1; done
        stop_pid "$DOCKERD_PID" 20
    fi
    stop_pid "$CONTAINERD_PID" 10
    stop_pid "$REGISTRY_PID" 5
    for id in "$WORK"/state/runc/*; do
        [[ -e "$id" ]] && timeout 10 runc --root "$WORK/state/runc" delete -f "${id##*/}" >/dev/null 2>&1
    done
    # Anything left (shims, containers): the marker in the environment, or in our cgroups.
    sweep_run "$SWARM_BENCH_RUN_ID" "$TAG*" 4 "$WORK"
    ip netns list 2>/dev/null | grep -qw -- "$NETNS" && ip netns delete "$NETNS"
    if ((USE_DOCKER_STARTED)); then
        for f in "${LEFTOVERS[@]}"; do
            if [[ -d "$f" ]]; then
                find "$f" -depth -type d -empty -delete 2>/dev/null
            else
                rm -f "$f"
            fi
        done
    fi
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/swarm" "$WORK/logs" "$WORK/state/runc" "$WORK/img" "$D"
log "swarm $SWARM_BIN; runc $(runc --version | head -1); work dir $WORK"
tar -C "$ROOTFS" -cf "$WORK/busybox.tar" .

# wait_for SECONDS CMD... — run CMD every 0.1 s until it succeeds (bounded).
wait_for() {
    local secs="$1" i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# --- our daemon -----------------------------------------------------------------
SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" "$SWARM_BIN" daemon --data-dir "$WORK/swarm/data" \
    --exec-root "$WORK/swarm/run" --socket "$SWARM_SOCK" </dev/null >"$WORK/logs/swarm-daemon.log" 2>&1 &
SWARM_PID=$!
wait_for 30 sw version || { tail -n 20 "$WORK/logs/swarm-daemon.log" >&2; die "swarm daemon did not come up"; }
sw image import "$WORK/busybox.tar" busybox:test --change 'CMD ["sh"]' >/dev/null

# --- Docker Engine 20.10 ----------------------------------------------------------

if ((USE_DOCKER)); then
    USE_DOCKER_STARTED=1
    ip netns add "$NETNS"
    ip -n "$NETNS" link set lo up
    cat >"$D/containerd.toml" <<EOF
version = 2
root = "$D/containerd-root"
state = "$D/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/containerd.sock"
[ttrpc]
  address = "$D/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" setsid nsenter --net="/run/netns/$NETNS" \
        /usr/bin/containerd --config "$D/containerd.toml" </dev/null >"$WORK/logs/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    echo '{}' >"$D/daemon.json" # not /etc/docker/daemon.json
    wait_for 30 test -S "$D/containerd.sock" || warn "containerd socket did not appear"
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 \
        setsid nsenter --net="/run/netns/$NETNS" /usr/sbin/dockerd \
        --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" \
        -H "unix://$DOCKER_SOCK" --containerd "$D/containerd.sock" --cgroup-parent "$TAG-docker" \
        --config-file "$D/daemon.json" </dev/null >"$WORK/logs/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    if wait_for 60 dk version; then
        dk import "$WORK/busybox.tar" busybox:local >/dev/null
        log "docker: $(dk version --format '{{.Server.Version}}') in netns $NETNS"
    else
        tail -n 20 "$WORK/logs/dockerd.log" >&2
        warn "dockerd did not come up: docker skipped"
        USE_DOCKER=0
    fi
fi
if ((USE_DOCKER)); then
    # Does the default bridge network work here?
    BRIDGE=0
    if dk run --rm busybox:local true >>"$WORK/logs/docker-bridge.log" 2>&1; then
        BRIDGE=1
    else
        warn "docker run with the default bridge network fails here (see below): that variant is skipped"
        tail -n 3 "$WORK/logs/docker-bridge.log" >&2
    fi
fi

# --- runc bundle ------------------------------------------------------------------
mkdir -p "$WORK/bundle"
(cd "$WORK/bundle" && runc spec)
"$PYTHON" - "$WORK/bundle/config.json" "$ROOTFS" "/$TAG-runc" <<'PY'
import json, sys
path, rootfs, cgpath = sys.argv[1:4]
c = json.load(open(path))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"] = {"path": rootfs, "readonly": True}
c["linux"]["cgroupsPath"] = cgpath
json.dump(c, open(path, "w"), indent=2)
PY

# --- 1. container start to finish ---------------------------------------------------
echo "== 1. container start to finish: run --rm of 'true' (busybox), per engine"
PLAN="$WORK/plan-run.json"
"$PYTHON" - "$PLAN" "$N" "$WORK" "$SWARM_BIN" "$SWARM_SOCK" "$DOCKER" "$DOCKER_SOCK" \
    "$USE_DOCKER" "${BRIDGE:-0}" "${SWARM_BENCH_JSON:+$SWARM_BENCH_JSON.run.json}" <<'PY'
import json, sys
plan, n, work, swarm, ssock, docker, dsock, use_docker, bridge, json_out = sys.argv[1:11]
def v(name, argv, cleanup=None):
    return {"name": name, "argv": argv, "cleanup": cleanup, "wrapped": False,
            "log": f"{work}/logs/{name}.log"}
variants = [v("swarm", [swarm, "-H", f"unix://{ssock}", "run", "--rm", "busybox:test", "true"])]
ratios = []
if use_docker == "1":
    d = [docker, "-H", f"unix://{dsock}"]
    variants.append(v("docker-none", d + ["run", "--rm", "--network", "none", "busybox:local", "true"]))
    ratios.append(["swarm/docker-none", "swarm", "docker-none"])
    if bridge == "1":
        variants.append(v("docker-bridge", d + ["run", "--rm", "busybox:local", "true"]))
        ratios.append(["swarm/docker-bridge", "swarm", "docker-bridge"])
runc = ["runc", "--root", f"{work}/state/runc"]
variants.append(v("runc", runc + ["run", "--bundle", f"{work}/bundle", "{id}"], runc + ["delete", "-f", "{id}"]))
ratios.append(["swarm/runc", "swarm", "runc"])
if use_docker == "1":
    ratios.append(["docker-none/runc", "docker-none", "runc"])
json.dump({"n": int(n), "warmup": 3, "timeout": 60, "wrapper": None, "json_out": json_out,
           "title": "run --rm of /bin/true, start to finish through each engine (cpu = client only)",
           "ratios": ratios, "variants": variants}, open(plan, "w"), indent=2)
PY
BENCH_RC=0
SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" "$PYTHON" "$HERE/runtime_harness.py" "$PLAN" || BENCH_RC=$?
((USE_DOCKER)) || echo "docker: skipped (see warnings)"
((USE_DOCKER == 0)) || ((BRIDGE)) || echo "docker-bridge: skipped: docker run with the default bridge network fails here"
echo "target: swarm <= 0.10x docker run --rm"

# --- 2. unpack throughput -------------------------------------------------------------
echo
echo "== 2. unpack throughput: first swarm run of a 5-layer image (busybox + ${IMAGE_MIB} MiB) vs tar -xzf"
log "generating the test image"
"$PYTHON" "$HERE/gen_image.py" "$WORK/img" bench-unpack:1 "$IMAGE_MIB" 5 "$WORK/busybox.tar"
mapfile -t BLOBS < <("$PYTHON" -c 'import json,sys; [print(l["blob"]) for l in json.load(open(sys.argv[1]))["layers"]]' "$WORK/img/summary.json")
# elapsed_ms CMD... — run CMD, print its wall time in ms (python clock, no subshell timing games).
elapsed_ms() {
    "$PYTHON" - "$@" <<'PY'
import subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
e = (time.monotonic() - t) * 1000
if r.returncode:
    sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
    sys.exit(r.returncode)
print(f"{e:.3f}")
PY
}
COLD=() WARM=() TAR=()
UNPACK_OK=1
for ((r = 1; r <= ROUNDS; r++)); do
    sw image load -q -i "$WORK/img/image.tar" >/dev/null || { UNPACK_OK=0; warn "swarm image load failed"; break; }
    # Order alternates so neither side always runs first.
    if ((r % 2)); then order=(swarm tar); else order=(tar swarm); fi
    for side in "${order[@]}"; do
        if [[ "$side" == swarm ]]; then
            cold="$(elapsed_ms "$SWARM_BIN" -H "unix://$SWARM_SOCK" run --rm bench-unpack:1 true)" ||
                { UNPACK_OK=0; warn "cold swarm run failed"; break 2; }
            warm=()
            for _ in 1 2 3; do
                warm+=("$(elapsed_ms "$SWARM_BIN" -H "unix://$SWARM_SOCK" run --rm bench-unpack:1 true)")
            done
            COLD+=("$cold")
            WARM+=("$("$PYTHON" -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))' "${warm[@]}")")
        else
            rm -rf "$WORK/untar"
            mkdir -p "$WORK/untar"
            total=0
            for b in "${BLOBS[@]}"; do
                t="$(elapsed_ms tar -xzf "$b" -C "$WORK/untar")"
                total="$("$PYTHON" -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]))' "$total" "$t")"
            done
            TAR+=("$total")
            rm -rf "$WORK/untar"
        fi
    done
    sw image rm -f bench-unpack:1 >/dev/null || warn "swarm image rm failed"
    sw image prune >/dev/null || warn "swarm image prune failed"
done
if ((UNPACK_OK)); then
    "$PYTHON" - "$WORK/img/summary.json" "${COLD[*]}" "${WARM[*]}" "${TAR[*]}" "${SWARM_BENCH_JSON:+$SWARM_BENCH_JSON.unpack.json}" <<'PY'
import json, statistics, sys
s = json.load(open(sys.argv[1]))
cold, warm, tar = ([float(x) for x in a.split()] for a in sys.argv[2:5])
unpack = [c - w for c, w in zip(cold, warm)]
mb = s["uncompressed_bytes"] / 1e6
print(f"image: {len(s['layers'])} layers, {s['files']} files, {mb:.1f} MB uncompressed, "
      f"{s['compressed_bytes'] / 1e6:.1f} MB gzip; {len(cold)} rounds")
def row(name, xs):
    med = statistics.median(xs)
    print(f"{name:<34} median {med:8.1f} ms  min {min(xs):8.1f}  max {max(xs):8.1f}"
          + (f"  {mb / (med / 1000):7.1f} MB/s" if name.startswith(("swarm unpack", "tar")) else ""))
    return med
row("swarm run, cold (unpacks)", cold)
row("swarm run, warm (median of 3)", warm)
u = row("swarm unpack = cold - warm", unpack)
t = row("tar -xzf, sum over layers", tar)
print(f"{'ratio swarm/tar (time)':<34} {u / t:.2f}x   (throughput swarm/tar {t / u:.2f}x)")
if sys.argv[5]:
    json.dump({"cold_ms": cold, "warm_ms": warm, "unpack_ms": unpack, "tar_ms": tar,
               "uncompressed_bytes": s["uncompressed_bytes"], "compressed_bytes": s["compressed_bytes"]},
              open(sys.argv[5], "w"), indent=2)
PY
else
    echo "unpack: failed (see warnings; daemon log below)"
    tail -n 10 "$WORK/logs/swarm-daemon.log" >&2
    BENCH_RC=1
fi

# --- 3. pull vs skopeo ------------------------------------------------------------------
echo
echo "== 3. pull from a local registry (127.0.0.1), ${IMAGE_MIB} MiB image: swarm vs skopeo"
PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/registry/storage"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
EOF
REG_BIN="$(command -v docker-registry || true)"
PULL_OK=0
if [[ -n "$REG_BIN" ]]; then
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" "$REG_BIN" serve "$WORK/registry/config.yml" \
        </dev/null >"$WORK/logs/registry.log" 2>&1 &
    REGISTRY_PID=$!
    # shellcheck disable=SC2016 # $0 is expanded by the inner bash
    if wait_for 20 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$PORT" &&
        timeout 300 skopeo copy -q --dest-tls-verify=false "oci:$WORK/img/layout:1" \
            "docker://127.0.0.1:$PORT/bench:1" >>"$WORK/logs/skopeo.log" 2>&1; then
        PULL_OK=1
    else
        warn "registry or push failed"
        tail -n 5 "$WORK/logs/registry.log" "$WORK/logs/skopeo.log" >&2
    fi
else
    warn "docker-registry not found"
fi
SWARM_PULL=0
sw image pull --help >/dev/null 2>&1 && SWARM_PULL=1
if ((PULL_OK)); then
    PLAN="$WORK/plan-pull.json"
    # shellcheck disable=SC2016 # $0 / $1 are expanded by the inner sh
    "$PYTHON" - "$PLAN" "$N" "$WORK" "$PORT" "$SWARM_PULL" "$SWARM_BIN" "$SWARM_SOCK" \
        "${SWARM_BENCH_JSON:+$SWARM_BENCH_JSON.pull.json}" <<'PY'
import json, sys
plan, n, work, port, swarm_pull, swarm, ssock, json_out = sys.argv[1:9]
ref = f"127.0.0.1:{port}/bench:1"
variants = [{
    "name": "skopeo",
    # A fresh destination each time: skopeo reuses blobs already in an oci: dir.
    "argv": ["sh", "-c", 'rm -rf "$0" && exec skopeo copy -q --src-tls-verify=false "docker://$1" "oci:$0:1"',
             f"{work}/pulled", ref],
    "cleanup": None, "wrapped": False, "log": f"{work}/logs/skopeo-pull.log"}]
ratios = []
if swarm_pull == "1":
    variants.append({
        "name": "swarm",
        "argv": ["sh", "-c", '"$0" -H "unix://$1" image rm -f "$2" >/dev/null 2>&1; '
                 '"$0" -H "unix://$1" image prune >/dev/null 2>&1; exec "$0" -H "unix://$1" image pull "$2"',
                 swarm, ssock, ref],
        "cleanup": None, "wrapped": False, "log": f"{work}/logs/swarm-pull.log"})
    ratios.append(["swarm/skopeo", "swarm", "skopeo"])
json.dump({"n": int(n), "warmup": 2, "timeout": 300, "wrapper": None, "json_out": json_out,
           "title": f"pull of {ref} into a fresh store", "ratios": ratios, "variants": variants},
          open(plan, "w"), indent=2)
PY
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" "$PYTHON" "$HERE/runtime_harness.py" "$PLAN" || BENCH_RC=1
fi
((SWARM_PULL)) || echo "swarm: skipped: swarm image pull not available yet"
echo
echo "note: 2-core machine shared with other jobs (e.g. cargo builds); compare within one run only."
exit "$BENCH_RC"
