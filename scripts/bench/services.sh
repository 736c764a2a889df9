#!/usr/bin/env bash
# Services benchmark: swarm's services vs Docker Engine 20.10 in swarm mode, side by side in
# one run, plus the orchestrator's scale simulation and a node kill on a 3-host cluster.
#
#   scripts/bench/services.sh [ROUNDS]      ROUNDS of the one-node steps (default 3, 1..10)
#
# Engines (one node each, both up for the whole run, each in its own network namespace):
#   swarm   `swarm daemon` (release build) with its own data dir, exec root and socket, in
#           netns swsv-one (lo only), `POST /swarm/init` on 127.0.0.1
#   docker  Docker Engine 20.10 (Debian's docker.io) as shared/reference/peers.md says: its
#           own containerd and dockerd in netns swsv-docker, data under
#           /var/lib/peer-docker/TAG, sockets and state under /run/peer-docker/TAG, cgroup
#           parent TAG-docker, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1, `docker swarm init
#           --advertise-addr 127.0.0.1`
# Both import the busybox fixture rootfs (scripts/fixtures/busybox-rootfs.sh) as
# busybox:bench, and both get the same service spec through the same API call
# (scripts/bench/services_client.py: stdlib HTTP/1.1 over each Unix socket): image
# busybox:bench, args `sleep 1000000000`, no network, no ports.
#
# Measures (each round runs every step on both engines in turn, the order alternating):
#   1. create --replicas N (N = 10, 50, 200): from POST /services/create to the first poll
#      (every 50 ms) of GET /tasks showing N tasks running (what `service ls` shows as N/N;
#      the main figure), and to the first poll (every 250 ms: our container list reads
#      every container's files, so polling it faster would load our daemon more than
#      Docker's) of GET /containers/json seeing N containers of the service running. Not
#      timed by a CLI: `docker service create` without --detach adds a 5 s "verify"
#      window. Then `service rm`.
#      These services stop with a grace period of 0 so that the untimed removals are short.
#   2. memory with 50 tasks running: the sum of PSS of the daemons (swarm: the daemon;
#      docker: dockerd + containerd) and the per-container helpers (the parent of each
#      container's init: our `swarm` helper, Docker's containerd-shim-runc-v2), read once
#      every helper runs: each page counted once. Daemons RSS + helpers PSS and all-RSS
#      sums are printed too.
#   3. `service rm` of those 50 tasks (grace 0) until no container of the service is left.
#   4. scale 10 -> 50 (POST /services/ID/update), until 50 run (40 new ones); then `service
#      rm` with the default stop grace period (10 s; `sleep` as PID 1 ignores SIGTERM, so
#      both engines wait it out before SIGKILL; Docker's `--init` cuts its rm to ≈ 5 s in
#      peers.md, swarm has no --init) until no container is left.
#   5. scale SIMULATION, clearly not real nodes: target/release/examples/scale_sim 100 10000
#      (src/orchestrator/sim.rs: 100 in-process nodes, one service of 10,000 replicas; the
#      orchestrator's passes and the real state machine's apply, no network, no runtime),
#      3 runs, tasks placed and committed per second.
#   6. node kill: 3 network-namespace hosts (swsv-h1..3, 198.18.0.71..73 on bridge
#      swsv-br), release binary, h1 manager, h2 and h3 workers; a 6-replica service (2 per
#      node); kill -9 of a worker's daemon AND every process of its containers (a dead host
#      loses its containers), then GET /tasks on the manager every 50 ms until 6 tasks run
#      on the other nodes. KILL_ROUNDS rounds (the victim alternates; the killed host is
#      started again and the service recreated between rounds). Docker Swarm's figure
#      (≈ 20 s) is from issue 5, not measured here.
# Prints a table with medians, each run, the ratios swarm/docker, and the targets (issue 5):
# create 50 >= 10x faster than Docker, <= 1/10 of its memory, >= 2,000 tasks/s in the
# simulation, replacements running within 3 s of a node kill.
#
# Environment: SWARM_BIN (default $CARGO_TARGET_DIR|target/release/swarm), SWARM_BENCH_BUILD=1
#   (cargo build --release of the binary and the example first; they are built when
#   missing), SWARM_BENCH_SIZES (10,50,200: three replica counts, the second is the memory,
#   scale and rm point), SWARM_BENCH_KILL_ROUNDS (3), SWARM_BENCH_SIM_ROUNDS (3),
#   SWARM_BENCH_NO_DOCKER=1, SWARM_BENCH_NO_CLUSTER=1, SWARM_BENCH_JSON=PATH (keep the
#   results), SWARM_BENCH_LOGS=DIR (keep the daemons' logs).
# Installs (once): docker.io busybox-static gcc libc6-dev python3 iproute2 procps util-linux
# tar. A daemon the package install starts is stopped. Everything this script starts
# (daemons, containers, shims, namespaces, links, mounts, cgroups, Docker's data root, temp
# dirs) is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/../lib.sh"

need_root "scripts/bench/services.sh"
ROUNDS="${1:-3}"
SIZES="${SWARM_BENCH_SIZES:-10,50,200}"
KILL_ROUNDS="${SWARM_BENCH_KILL_ROUNDS:-3}"
SIM_ROUNDS="${SWARM_BENCH_SIM_ROUNDS:-3}"
check_range() { # NAME VALUE MIN MAX
    if [[ ! "$2" =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        die "$1 must be $3..$4 (got '$2')"
    fi
}
check_range ROUNDS "$ROUNDS" 1 10
check_range SWARM_BENCH_KILL_ROUNDS "$KILL_ROUNDS" 0 10
check_range SWARM_BENCH_SIM_ROUNDS "$SIM_ROUNDS" 0 10
[[ "$SIZES" =~ ^[0-9]+,[0-9]+,[0-9]+$ ]] || die "SWARM_BENCH_SIZES must be three counts like 10,50,200 (got '$SIZES')"
IFS=, read -r S1 S2 S3 <<<"$SIZES"
for n in "$S1" "$S2" "$S3"; do check_range "a size of SWARM_BENCH_SIZES" "$n" 1 500; done
((S1 < S2)) || die "SWARM_BENCH_SIZES: the first count must be below the second (scale $S1 -> $S2)"
cd "$SWARM_ROOT"

# --- packages (stop whatever the package scripts start) ------------------------------
daemon_pids() {
    local name
    for name in dockerd containerd; do pgrep -x "$name" || true; done | sort -n
}
PRE_PIDS="$(daemon_pids)"
apt_install docker.io busybox-static gcc libc6-dev python3 iproute2 procps util-linux tar curl
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
USE_CLUSTER=1
[[ "${SWARM_BENCH_NO_CLUSTER:-}" == 1 ]] && USE_CLUSTER=0

# --- swarm binaries -----------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$SWARM_ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$SWARM_ROOT/$TARGET_DIR"
SWARM_BIN="${SWARM_BIN:-$TARGET_DIR/release/swarm}"
SIM_BIN="$TARGET_DIR/release/examples/scale_sim"
if [[ "${SWARM_BENCH_BUILD:-}" == 1 || ! -x "$SWARM_BIN" || ! -x "$SIM_BIN" ]]; then
    command -v cargo >/dev/null 2>&1 || die "$SWARM_BIN or $SIM_BIN missing and cargo not found"
    log "cargo build --release --bin swarm --example scale_sim"
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --bin swarm --example scale_sim
fi
[[ -x "$SWARM_BIN" ]] || die "$SWARM_BIN missing"
PYTHON=/usr/bin/python3
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
CLIENT="$HERE/services_client.py"
sc() { "$PYTHON" "$CLIENT" "$@"; }
jget() { "$PYTHON" -c 'import json,sys; v=json.loads(sys.argv[1]); [v:=v[k] for k in sys.argv[2:]]; print("null" if v is None else v)' "$@"; }

ROOTFS="$("$SWARM_ROOT/scripts/fixtures/busybox-rootfs.sh" "$TARGET_DIR/fixtures/busybox")"
WORK="$(mktemp -d /tmp/swarm-bench-svc.XXXXXX)"
TAG="swarm-bench-svc-$$"
# Marks every process this run starts (passed to the daemons, not exported).
SWARM_BENCH_RUN_ID="$TAG-$(date +%s)"
RESULTS="${SWARM_BENCH_JSON:-$WORK/results.json}"
rm -f "$RESULTS"
ONE_NS=swsv-one
DOCKER_NS=swsv-docker
BRIDGE=swsv-br
ONE_SOCK="$WORK/one/run/swarm.sock"
DLIB="/var/lib/peer-docker/$TAG" # Docker's data root and containerd's root
DRUN="/run/peer-docker/$TAG"     # sockets, exec root, containerd's state, pidfile
DOCKER_SOCK="$DRUN/docker.sock"
ONE_PID="" CONTAINERD_PID="" DOCKERD_PID="" DOCKER_STARTED=0 CLUSTER_STARTED=0
CLUSTER_PIDS=()
# What dockerd 20.10 and containerd create outside their configured paths anyway (the
# shims' sockets in /run/containerd/s): removed on exit when they were not there before
# (the dirs only when empty).
LEFTOVERS=()
for f in /etc/docker/key.json /run/docker /run/containerd /var/lib/peer-docker /run/peer-docker; do
    [[ -e "$f" ]] || LEFTOVERS+=("$f")
done
sw() { timeout 120 "$SWARM_BIN" -H "unix://$ONE_SOCK" "$@"; }
dk() { timeout 120 "$DOCKER" -H "unix://$DOCKER_SOCK" "$@"; }
host_ip() { printf '198.18.0.%d\n' $((70 + $1)); }
host_sock() { printf '%s/h%d/run/swarm.sock\n' "$WORK" "$1"; }

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

# delete_runtime ROOT — force-delete every container in one of our daemons' runtime roots
# (their helpers outlive the daemon by design).
# shellcheck disable=SC2317 # called from the EXIT trap
delete_runtime() {
    local id
    [[ -d "$1" ]] || return 0
    timeout 30 "$SWARM_BIN" runtime --root "$1" list -q 2>/dev/null | while read -r id; do
        timeout 30 "$SWARM_BIN" runtime --root "$1" delete --force "$id" >/dev/null 2>&1
    done
    return 0
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? id f i pid
    set +e
    trap "" INT TERM
    stop_pid "$ONE_PID" 10
    delete_runtime "$WORK/one/run/runtime"
    for pid in "${CLUSTER_PIDS[@]}"; do [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null; done
    for pid in "${CLUSTER_PIDS[@]}"; do [[ -n "$pid" ]] && wait "$pid" 2>/dev/null; done
    for i in 1 2 3; do delete_runtime "$WORK/h$i/run/runtime"; done
    if [[ -n "$DOCKERD_PID" ]]; then
        for id in $(dk ps -a -q 2>/dev/null); do dk rm -f "$id" >/dev/null 2>&1; done
        stop_pid "$DOCKERD_PID" 20
    fi
    stop_pid "$CONTAINERD_PID" 10
    # Anything left (shims, helpers, containers): the marker in the environment, or in
    # Docker's cgroups; then whatever is still mounted under our paths.
    sweep_run "$SWARM_BENCH_RUN_ID" "$TAG*" 4 "$WORK"
    for f in "$DLIB" "$DRUN"; do
        findmnt -rn -o TARGET | grep -F -- "$f" | sort -r | while read -r id; do
            umount -l "$(printf '%b' "$id")"
        done
    done
    ip netns list 2>/dev/null | grep -qw -- "$ONE_NS" && ip netns delete "$ONE_NS"
    ip netns list 2>/dev/null | grep -qw -- "$DOCKER_NS" && ip netns delete "$DOCKER_NS"
    if ((CLUSTER_STARTED)); then
        for i in 1 2 3; do
            ip netns list 2>/dev/null | grep -qw -- "swsv-h$i" && ip netns delete "swsv-h$i"
            ip link del "swsv-v$i" 2>/dev/null
        done
        ip link del "$BRIDGE" 2>/dev/null
    fi
    if ((DOCKER_STARTED)); then
        rm -rf --one-file-system "$DLIB" "$DRUN"
        for f in "${LEFTOVERS[@]}"; do
            if [[ -d "$f" ]]; then
                find "$f" -depth -type d -empty -delete 2>/dev/null
            else
                rm -f "$f"
            fi
        done
    fi
    if [[ -n "${SWARM_BENCH_LOGS:-}" ]]; then
        mkdir -p "$SWARM_BENCH_LOGS" && cp -r "$WORK/logs/." "$SWARM_BENCH_LOGS/"
    fi
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# start_daemon NETNS DIR SOCK [DAEMON FLAGS...] — our daemon in a network namespace with its
# own hostname; prints nothing, sets STARTED_PID (the daemon itself: exec all the way).
start_daemon() {
    local ns="$1" dir="$2" sock="$3"
    shift 3
    mkdir -p "$dir/run" "$WORK/logs"
    # nsenter, not `ip netns exec` (which remounts /sys and hides /sys/fs/cgroup).
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" nsenter --net="/run/netns/$ns" unshare --uts \
        sh -c 'hostname "$0" && exec "$@"' "$ns" "$SWARM_BIN" daemon \
        --data-dir "$dir/data" --exec-root "$dir/run" --socket "$sock" "$@" \
        </dev/null >>"$WORK/logs/$ns.log" 2>&1 &
    STARTED_PID=$!
    if ! wait_for 30 curl -sf --max-time 2 --unix-socket "$sock" http://swarm/_ping; then
        tail -n 20 "$WORK/logs/$ns.log" >&2
        die "swarm daemon in $ns did not answer"
    fi
    [[ "$(readlink "/proc/$STARTED_PID/exe")" == *swarm* ]] || die "pid $STARTED_PID is not the daemon"
}
api() { # SOCK METHOD PATH [BODY] — prints "BODY STATUS"
    curl -s --max-time 30 --unix-socket "$1" -X "$2" -H 'Content-Type: application/json' \
        ${4:+--data "$4"} -w ' %{http_code}' "http://swarm$3"
}
status_of() { printf '%s\n' "${1##* }"; }
body_of() { printf '%s\n' "${1% *}"; }

mkdir -p "$WORK/logs" "$WORK/one"
tar -C "$ROOTFS" -cf "$WORK/busybox.tar" .
log "swarm $SWARM_BIN; work dir $WORK; $ROUNDS rounds, sizes $SIZES"

# --- our one-node swarm ----------------------------------------------------------------------
ip netns list | grep -qw -- "$ONE_NS" && die "netns $ONE_NS exists: another services bench running?"
ip netns add "$ONE_NS"
ip -n "$ONE_NS" link set lo up
start_daemon "$ONE_NS" "$WORK/one" "$ONE_SOCK"
ONE_PID=$STARTED_PID
out="$(api "$ONE_SOCK" POST /swarm/init '{"ListenAddr":"127.0.0.1:2377","AdvertiseAddr":"127.0.0.1"}')"
[[ "$(status_of "$out")" == 200 ]] || die "swarm init: $out"
sw image import "$WORK/busybox.tar" busybox:bench --change 'CMD ["sh"]' >/dev/null
ENGINES=("swarm=$ONE_SOCK,$ONE_PID")

# --- Docker Engine 20.10 in swarm mode --------------------------------------------------------
if ((USE_DOCKER)); then
    ip netns list | grep -qw -- "$DOCKER_NS" && die "netns $DOCKER_NS exists: another services bench running?"
    DOCKER_STARTED=1
    mkdir -p "$DLIB" "$DRUN"
    ip netns add "$DOCKER_NS"
    ip -n "$DOCKER_NS" link set lo up
    cat >"$DRUN/containerd.toml" <<EOF
version = 2
root = "$DLIB/containerd-root"
state = "$DRUN/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$DRUN/containerd.sock"
[ttrpc]
  address = "$DRUN/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" setsid nsenter --net="/run/netns/$DOCKER_NS" \
        /usr/bin/containerd --config "$DRUN/containerd.toml" </dev/null >"$WORK/logs/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    echo '{}' >"$DRUN/daemon.json" # not /etc/docker/daemon.json
    wait_for 30 test -S "$DRUN/containerd.sock" || warn "containerd socket did not appear"
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 \
        setsid nsenter --net="/run/netns/$DOCKER_NS" /usr/sbin/dockerd \
        --data-root "$DLIB/data" --exec-root "$DRUN/exec" --pidfile "$DRUN/dockerd.pid" \
        -H "unix://$DOCKER_SOCK" --containerd "$DRUN/containerd.sock" --cgroup-parent "$TAG-docker" \
        --config-file "$DRUN/daemon.json" </dev/null >"$WORK/logs/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    if wait_for 60 dk version && dk swarm init --advertise-addr 127.0.0.1 >/dev/null; then
        dk import "$WORK/busybox.tar" busybox:bench >/dev/null
        [[ "$(cat "/proc/$DOCKERD_PID/comm")" == dockerd ]] || die "pid $DOCKERD_PID is not dockerd"
        [[ "$(cat "/proc/$CONTAINERD_PID/comm")" == containerd ]] || die "pid $CONTAINERD_PID is not containerd"
        log "docker $(dk version --format '{{.Server.Version}}') in swarm mode, netns $DOCKER_NS"
        ENGINES+=("docker=$DOCKER_SOCK,$DOCKERD_PID,$CONTAINERD_PID")
    else
        tail -n 20 "$WORK/logs/dockerd.log" >&2
        warn "dockerd did not come up or swarm init failed: docker skipped"
        USE_DOCKER=0
    fi
fi
sc put "$RESULTS" docker_used "$USE_DOCKER"

# --- 1-4: one node, side by side -----------------------------------------------------------------
log "one node: $ROUNDS rounds of create $S1/$S2/$S3, memory, rm, scale $S1 -> $S2, rm"
sc single "$RESULTS" "$ROUNDS" "$SIZES" "${ENGINES[@]}"
stop_pid "$ONE_PID" 10 # the cluster step runs alone
ONE_PID=""
delete_runtime "$WORK/one/run/runtime"
if ((USE_DOCKER)); then
    # The Docker containers are gone already (each step waits for it); stop it for the same reason.
    stop_pid "$DOCKERD_PID" 20
    DOCKERD_PID=""
    stop_pid "$CONTAINERD_PID" 10
    CONTAINERD_PID=""
fi

# --- 5: the scale simulation ----------------------------------------------------------------------
if ((SIM_ROUNDS)) && [[ -x "$SIM_BIN" ]]; then
    log "scale simulation: $SIM_ROUNDS runs of scale_sim 100 10000"
    SIM_OUT=()
    for ((i = 1; i <= SIM_ROUNDS; i++)); do
        out="$(timeout 300 "$SIM_BIN" 100 10000)" || die "scale_sim failed: $out"
        SIM_OUT+=("${out%%$'\n'*}")
        log "  ${SIM_OUT[-1]}"
    done
    sc sim "$RESULTS" sim "${SIM_OUT[@]}"
elif ((SIM_ROUNDS)); then
    warn "$SIM_BIN missing: simulation skipped"
fi

# --- 6: kill -9 of a node on a 3-host cluster ---------------------------------------------------------
node_id_of() { # I
    jget "$(body_of "$(api "$(host_sock "$1")" GET /info)")" Swarm NodeID
}
if ((USE_CLUSTER && KILL_ROUNDS)); then
    log "cluster: 3 network-namespace hosts, 1 manager + 2 workers"
    ip link show "$BRIDGE" >/dev/null 2>&1 && die "$BRIDGE exists: another services bench running?"
    CLUSTER_STARTED=1
    ip link add "$BRIDGE" type bridge
    ip link set "$BRIDGE" up
    for i in 1 2 3; do
        ip netns add "swsv-h$i"
        ip link add "swsv-v$i" type veth peer name eth0 netns "swsv-h$i"
        ip link set "swsv-v$i" master "$BRIDGE" up
        ip -n "swsv-h$i" addr add "$(host_ip "$i")/24" dev eth0
        ip -n "swsv-h$i" link set eth0 up
        ip -n "swsv-h$i" link set lo up
    done
    start_host() { # I
        start_daemon "swsv-h$1" "$WORK/h$1" "$(host_sock "$1")" \
            --listen-addr "$(host_ip "$1"):2377" --advertise-addr "$(host_ip "$1")"
        CLUSTER_PIDS[$1]=$STARTED_PID
    }
    for i in 1 2 3; do start_host "$i"; done
    out="$(api "$(host_sock 1)" POST /swarm/init "{\"ListenAddr\":\"$(host_ip 1):2377\",\"AdvertiseAddr\":\"$(host_ip 1)\"}")"
    [[ "$(status_of "$out")" == 200 ]] || die "swarm init on h1: $out"
    token="$(jget "$(body_of "$(api "$(host_sock 1)" GET /swarm)")" JoinTokens Worker)"
    for i in 2 3; do
        out="$(api "$(host_sock "$i")" POST /swarm/join "{\"ListenAddr\":\"$(host_ip "$i"):2377\",\"AdvertiseAddr\":\"$(host_ip "$i")\",\"RemoteAddrs\":[\"$(host_ip 1):2377\"],\"JoinToken\":\"$token\"}")"
        [[ "$(status_of "$out")" == 200 ]] || die "swarm join h$i: $out"
    done
    for i in 1 2 3; do
        timeout 60 "$SWARM_BIN" -H "unix://$(host_sock "$i")" image import "$WORK/busybox.tar" \
            busybox:bench --change 'CMD ["sh"]' >/dev/null
    done
    NODE_IDS=()
    for i in 1 2 3; do
        NODE_IDS[i]="$(node_id_of "$i")"
        sc node-ready "$(host_sock 1)" "${NODE_IDS[$i]}" 60
    done
    for ((r = 1; r <= KILL_ROUNDS; r++)); do
        V=$((r % 2 ? 3 : 2)) # the victim: a worker, alternating
        svc="$(sc svc-up "$(host_sock 1)" "bench-kill-r$r" 6 120)"
        sid="$(jget "$svc" id)"
        on_victim="$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["nodes"].get(sys.argv[2], 0))' "$svc" "${NODE_IDS[$V]}")"
        ((on_victim > 0)) || die "round $r: no task of the service on h$V ($svc)"
        # The host's processes: everything in its network namespace (the daemon, our
        # per-container helpers); the client adds their descendants (the containers).
        mapfile -t victims < <(ip netns pids "swsv-h$V")
        out="$(sc kill-node "$RESULTS" kill "$(host_sock 1)" "$sid" "${NODE_IDS[$V]}" 60 "${victims[@]}")"
        wait "${CLUSTER_PIDS[$V]}" 2>/dev/null || true
        log "round $r: killed h$V ($on_victim of 6 tasks): node down after $(jget "$out" down) s, 6 running again after $(jget "$out" replaced) s"
        delete_runtime "$WORK/h$V/run/runtime" # the dead host's leftovers (all dead already)
        start_host "$V"
        sc node-ready "$(host_sock 1)" "${NODE_IDS[$V]}" 60
        sc svc-rm "$(host_sock 1)" "$sid" 60
    done
fi

echo
sc report "$RESULTS"
