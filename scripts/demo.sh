#!/usr/bin/env bash
# swarm's demo: what exists so far, run for real on this host.
#
# Today: a container run by swarm's own OCI runtime, with real isolation (PID 1, own
# hostname, only `lo`, Docker's capabilities, no_new_privs, seccomp, masked paths) and real
# limits (memory → OOMKilled, pids → fork bomb contained, CPU quota → throttled), plus the
# lifecycle: detached container, exec, logs, stats, stop with a grace period, delete.
# Then `swarm daemon`: an image imported into its store, `swarm run` from it like
# `docker run`, the real docker CLI talking to the daemon, and an image pushed to a local
# registry (Debian's docker-registry on loopback), removed, pulled back and run.
# Last, a cluster: five network-namespace hosts on this machine (198.18.0.11-15), three
# managers and two workers, `swarm node ls` and `docker node ls`, the leader killed with
# kill -9 and replaced, the dead node marked Down, and the node back as Ready. Then a
# service of 6 replicas spread over the hosts, a worker host killed (daemon and containers)
# and its tasks running elsewhere again, scaled down and removed.
#
# Run as root from anywhere:  scripts/demo.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/lib.sh"
need_root "scripts/demo.sh"
cd "$SWARM_ROOT"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"
apt_install busybox-static gcc libc6-dev libseccomp-dev pkg-config python3 iproute2 curl \
    docker-registry

TARGET_DIR="${CARGO_TARGET_DIR:-$SWARM_ROOT/target}"
log "building swarm (release)"
cargo build --release --quiet
SWARM="$TARGET_DIR/release/swarm"
ROOTFS="$("$HERE/fixtures/busybox-rootfs.sh" "$TARGET_DIR/fixtures/busybox")"

WORK="$(mktemp -d /tmp/swarm-demo.XXXXXX)"
STATE="$WORK/state"
rt() { "$SWARM" runtime --root "$STATE" "$@"; }
DAEMON_PID=""
REGISTRY_PID=""
CLUSTER_UP=0
export SWARM_CLUSTER_DIR="$WORK/cluster"
SOCK="$WORK/run/swarm.sock"
sw() { "$SWARM" -H "unix://$SOCK" "$@"; }
cleanup() {
    local id
    for id in $(rt list -q 2>/dev/null); do rt delete --force "$id" >/dev/null 2>&1 || true; done
    if [[ -n "$DAEMON_PID" ]]; then
        for id in $(sw ps -a -q 2>/dev/null); do sw rm -f "$id" >/dev/null 2>&1 || true; done
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    if [[ -n "$REGISTRY_PID" ]]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    if ((CLUSTER_UP)); then
        SWARM_BIN="$SWARM" "$HERE/cluster.sh" down || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# bundle NAME ARGS-JSON [RESOURCES-JSON] — a bundle with Docker's default spec.
bundle() {
    local dir="$WORK/$1"
    mkdir -p "$dir"
    cp -a "$ROOTFS" "$dir/rootfs"
    (cd "$dir" && rt spec)
    python3 - "$dir/config.json" "$2" "${3:-{\}}" <<'PY'
import json, sys
path, args, resources = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
spec = json.load(open(path))
spec["process"]["args"] = args
spec["hostname"] = "demo"
spec["linux"].setdefault("resources", {}).update(resources)
json.dump(spec, open(path, "w"), indent=1)
PY
    printf '%s\n' "$dir"
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "isolation: a container with Docker's default security profile"
B="$(bundle iso '["sh","-c","echo pid=$$ hostname=$(hostname) links=$(ls /sys/class/net | tr \"\\n\" \" \"); grep -E \"^(CapEff|NoNewPrivs|Seccomp):\" /proc/self/status; echo masked /proc/timer_list: $(wc -c < /proc/timer_list) bytes; probe unshare-user; probe keyctl; probe mknod-block /tmp/sda; touch /sys/x 2>&1 || true"]')"
echo "\$ swarm runtime run --bundle $B iso"
rt run --bundle "$B" iso

step "memory limit: 32 MiB, a process that wants 256 MiB is OOM-killed"
B="$(bundle hog '["probe","hog","256"]' '{"memory":{"limit":33554432,"swap":33554432}}')"
rt run -d --stdio log --bundle "$B" hog
for _ in $(seq 1 100); do rt state hog | grep -q '"exit"' && break; sleep 0.1; done
rt state hog | python3 -c 'import json,sys; e=json.load(sys.stdin)["exit"]; print("exit code", e["code"], "OOMKilled:", e["oom_killed"])'
rt delete hog

step "pids limit: 20, a fork bomb is contained"
B="$(bundle bomb '["probe","forkbomb","1000"]' '{"pids":{"limit":20}}')"
rt run --bundle "$B" bomb

step "cpu quota: 0.2 CPUs, one second of spinning gets about 200 ms of CPU"
B="$(bundle spin '["probe","spin","1"]' '{"cpu":{"quota":20000,"period":100000}}')"
rt run -d --stdio log --bundle "$B" spin
for _ in $(seq 1 100); do rt state spin | grep -q '"exit"' && break; sleep 0.1; done
rt logs spin
rt stats spin | python3 -c 'import json,sys; s=json.load(sys.stdin); print("cpu used", s["cpu_usage_ns"]//1000000, "ms, throttled periods", s["cpu_throttled_periods"])'
rt delete spin

step "lifecycle: detached container, exec, logs, stats, stop (grace period, then SIGKILL), delete"
B="$(bundle web '["sh","-c","trap \"echo ignoring SIGTERM\" TERM; echo serving; while :; do sleep 1; done"]' '{"memory":{"limit":67108864},"pids":{"limit":50}}')"
rt run -d --stdio log --bundle "$B" web
rt list
echo "\$ swarm runtime exec web ps"
rt exec web ps
rt stats web
echo "\$ swarm runtime stop -t 2 web"
rt stop -t 2 web
rt logs web
rt delete web
rt list

step "swarm daemon: an image store and docker-run-like containers"
"$SWARM" daemon --data-dir "$WORK/data" --exec-root "$WORK/run" --socket "$SOCK" &
DAEMON_PID=$!
for _ in $(seq 1 100); do sw version >/dev/null 2>&1 && break; sleep 0.1; done
tar -C "$ROOTFS" -cf "$WORK/busybox.tar" .
echo "\$ swarm image import busybox.tar busybox:demo --change 'CMD [\"sh\"]'"
sw image import "$WORK/busybox.tar" busybox:demo --change 'CMD ["sh"]'
sw image ls
echo "\$ swarm run --rm -e WHO=swarm -u app -m 64m busybox:demo sh -c 'echo hello \$WHO from \$(hostname) as \$(id -un)'"
sw run --rm -e WHO=swarm -u app -m 64m busybox:demo sh -c 'echo hello $WHO from $(hostname) as $(id -un)'
set +e
sw run --rm busybox:demo sh -c 'exit 42'
echo "exit code of swarm run: $?"
set -e
sw run -d --name ticker busybox:demo sh -c 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done' >/dev/null
sleep 1
sw ps
sw logs --tail 2 ticker
echo "\$ DOCKER_HOST=unix://$SOCK docker ps   (the real docker CLI)"
DOCKER_HOST="unix://$SOCK" docker ps --format 'table {{.ID}}\t{{.Image}}\t{{.Status}}\t{{.Names}}' 2>&1 || true
sw stop -t 1 ticker
sw rm ticker

step "a registry: push, remove, pull with per-layer progress, run"
REG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REG_PORT
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$REG_PORT/v2/" >/dev/null && break; sleep 0.1; done
REF="127.0.0.1:$REG_PORT/demo/busybox:1"
echo "\$ swarm image tag busybox:demo $REF && swarm image push $REF"
sw image tag busybox:demo "$REF"
sw image push "$REF"
sw image rm "$REF" busybox:demo >/dev/null
echo "\$ swarm image pull $REF"
sw image pull "$REF"
echo "\$ swarm run --rm $REF echo pulled and run"
sw run --rm "$REF" echo pulled and run

step "a cluster: five hosts (network namespaces), three managers, two workers"
cl() { SWARM_BIN="$SWARM" "$HERE/cluster.sh" "$@"; }
CLUSTER_UP=1
cl up 5 --managers 3
echo "\$ swarm node ls   (on host 1)"
cl exec 1 node ls
echo "\$ DOCKER_HOST=unix://\$SWARM_CLUSTER_DIR/h2/run/swarm.sock docker node ls   (the real docker CLI, on host 2)"
DOCKER_HOST="unix://$SWARM_CLUSTER_DIR/h2/run/swarm.sock" docker node ls 2>&1 || true
leader=""
for _ in $(seq 1 50); do
    for i in 1 2 3; do
        if cl exec "$i" node ls 2>/dev/null | grep -q '\*.*Leader'; then leader="$i"; fi
    done
    [[ -n "$leader" ]] && break
    sleep 0.1
done
[[ -n "$leader" ]] || die "no leader among the managers"
other=$((leader % 3 + 1))
echo "\$ kill -9 the leader's daemon (host $leader)"
cl kill "$leader"
start=$(date +%s%N)
leads() { cl exec "$other" node ls 2>/dev/null | grep Leader | grep -vq "swarm-h$leader "; }
for _ in $(seq 1 100); do leads && break; sleep 0.05; done
echo "a new leader after $((($(date +%s%N) - start) / 1000000)) ms"
for _ in $(seq 1 100); do
    cl exec "$other" node ls 2>/dev/null | grep "swarm-h$leader " | grep -q Down && break
    sleep 0.05
done
echo "host $leader shown Down after $((($(date +%s%N) - start) / 1000000)) ms"
cl exec "$other" node ls
echo "\$ start host $leader's daemon again"
cl start "$leader"
for _ in $(seq 1 100); do
    cl exec "$other" node ls 2>/dev/null | grep "swarm-h$leader " | grep -q Ready && break
    sleep 0.1
done
cl exec "$leader" node ls

step "services: 6 replicas spread over the cluster, a host killed, its tasks healed"
# The image is imported on host 1 only: the other hosts fetch it from host 1 over p2p,
# verified blob by blob.
cl exec 1 image import "$WORK/busybox.tar" busybox:demo >/dev/null
echo "\$ swarm service create --name web --replicas 6 --stop-grace-period 1s busybox:demo sleep 3600"
cl exec 1 service create --name web --replicas 6 --stop-grace-period 1s busybox:demo sleep 3600
cl exec 1 service ls
cl exec 1 service ps web
# The host that dies: a worker running tasks of web.
victim=""
for i in 5 4; do
    if cl exec 1 service ps web 2>/dev/null | grep -q "swarm-h$i .*Running"; then victim="$i"; break; fi
done
[[ -n "$victim" ]] || die "no worker runs a task of web"
echo "\$ kill -9 host $victim's daemon and its containers (the host dies)"
cl kill "$victim"
for c in $("$SWARM" runtime --root "$SWARM_CLUSTER_DIR/h$victim/run/runtime" list -q 2>/dev/null); do
    "$SWARM" runtime --root "$SWARM_CLUSTER_DIR/h$victim/run/runtime" kill "$c" KILL >/dev/null 2>&1 || true
done
start=$(date +%s%N)
healed() {
    local out
    out="$(cl exec 1 service ps web --filter desired-state=running 2>/dev/null)" || return 1
    ! grep -q "swarm-h$victim " <<<"$out" && [[ "$(grep -cE 'Running +Running' <<<"$out")" == 6 ]]
}
for _ in $(seq 1 300); do healed && break; sleep 0.05; done
echo "6 replicas running again without host $victim after $((($(date +%s%N) - start) / 1000000)) ms"
cl exec 1 service ps web
echo "\$ start host $victim again: its stale task containers are removed, nothing moves back"
cl start "$victim"
echo "\$ swarm service scale web=2"
cl exec 1 service scale web=2
cl exec 1 service ls
cl exec 1 service rm web
log "demo finished: everything it created is gone"
