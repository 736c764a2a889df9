#!/usr/bin/env bash
# Cluster benchmark: swarm's 3 managers vs a 3-member etcd cluster, side by side in one run.
#
#   scripts/bench/cluster.sh [N]      N sequential writes for the latency figures
#                                     (default 300, 20..10000)
#
# Peers:
#   etcd   3.4 (Debian's etcd-server), 3 members on 127.0.0.1 with their own ports and data
#          dirs; a write is `POST /v3/kv/put` (its HTTP/JSON gRPC gateway, base64 key/value)
#   swarm  3 `swarm daemon`s, each on a network-namespace host (swb-h1..3, 198.18.0.61..63 on
#          bridge swb-br), init + 2 manager joins through the API; a write is
#          `POST /nodes/ID/update?version=N` adding a label, after an untimed
#          `GET /nodes/ID?consistency=local` for the version (throughput counts that GET in:
#          a client must read before it writes).
# Both sides are driven by the same stdlib Python HTTP/1.1 keep-alive client
# (scripts/bench/cluster_client.py), TCP for etcd, the Unix socket for swarm, against the
# leader. Data dirs of both live in one temp dir (same file system).
#
# Measures, printed as a table with the ratios swarm/etcd. 1 and 2 run interleaved: three
# rounds, each measuring etcd then swarm (the order alternates), N/3 writes or SECONDS/3 per
# round and side, so that the noise of a shared machine falls on both alike:
#   1. write latency with one write in flight: median and p99 of N writes (after 20 warm-up)
#   2. throughput with CLIENTS concurrent clients (each its own connection) for SECONDS or
#      MAX writes, whichever comes first; swarm spreads them over the 3 node objects and
#      retries a 409 (stale version) with a fresh GET, counted in the notes. The version
#      check runs in swarm's state machine, so a 409 is a committed Raft entry too: the
#      "committed proposals" row counts both. Then 3 clients, on swarm one per node object
#      (no contention)
#   3. leader failover: kill -9 the leader -> first acknowledged write on a survivor (median
#      of ROUNDS; the killed member is restarted and the cluster settles between rounds).
#      The survivor is probed with overlapping writes, a new one every 50 ms, so a write
#      stuck on the dead leader (etcd holds it for its 7 s request timeout) hides nothing
#   4. swarm only: kill -9 a follower -> the leader's `GET /nodes` shows it "down"
#   5. idle RSS of each member/daemon after 10 s idle (VmRSS), and its CPU over those 10 s
#      (both clusters up, one window for both)
# Targets: write latency <= etcd's, failover <= 1 s, down <= 2 s, idle RSS <= 30 MiB.
# The swarm side is skipped, with a message, while the daemon has no `POST /swarm/init`.
#
# Environment: SWARM_BIN (default $CARGO_TARGET_DIR|target/release/swarm), SWARM_BENCH_BUILD=1
#   (cargo build --release first), SWARM_BENCH_CLIENTS (32), SWARM_BENCH_SECONDS (10),
#   SWARM_BENCH_MAX (20000), SWARM_BENCH_ROUNDS (3), SWARM_BENCH_NO_SWARM=1,
#   SWARM_BENCH_DAEMON_ARGS="--raft-election-ms 300 ..." (extra daemon flags, e.g. timings),
#   SWARM_BENCH_JSON=PATH (keep the collected results), SWARM_BENCH_LOGS=DIR (keep the
#   etcd and daemon logs; SWARM_LOG=info makes the daemons talkative).
# Installs (once): etcd-server etcd-client python3 iproute2 procps. Everything this script
# starts (etcd members, daemons, namespaces, links, temp dirs) is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/../lib.sh"

need_root "scripts/bench/cluster.sh"
N="${1:-300}"
CLIENTS="${SWARM_BENCH_CLIENTS:-32}"
SECONDS_LOAD="${SWARM_BENCH_SECONDS:-10}"
MAX_WRITES="${SWARM_BENCH_MAX:-20000}"
ROUNDS="${SWARM_BENCH_ROUNDS:-3}"
check_range() { # NAME VALUE MIN MAX
    if [[ ! "$2" =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        die "$1 must be $3..$4 (got '$2')"
    fi
}
check_range N "$N" 20 10000
check_range SWARM_BENCH_CLIENTS "$CLIENTS" 1 256
check_range SWARM_BENCH_SECONDS "$SECONDS_LOAD" 1 300
check_range SWARM_BENCH_MAX "$MAX_WRITES" 1 1000000
check_range SWARM_BENCH_ROUNDS "$ROUNDS" 1 20
cd "$SWARM_ROOT"

# --- packages (stop whatever the package scripts start) --------------------------
PRE_PIDS="$(pgrep -x etcd | sort -n || true)"
apt_install etcd-server etcd-client python3 iproute2 procps
for pid in $(comm -13 <(printf '%s\n' "$PRE_PIDS") <(pgrep -x etcd | sort -n || true)); do
    warn "stopping etcd (pid $pid) started by the package install"
    kill -TERM "$pid" 2>/dev/null || true
done
ETCD=/usr/bin/etcd
PYTHON=/usr/bin/python3
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
CLIENT="$HERE/cluster_client.py"
cc() { "$PYTHON" "$CLIENT" "$@"; }
jget() { "$PYTHON" -c 'import json,sys; v=json.loads(sys.argv[1]); [v:=v[k] for k in sys.argv[2:]]; print("null" if v is None else v)' "$@"; }

USE_SWARM=1
[[ "${SWARM_BENCH_NO_SWARM:-}" == 1 ]] && USE_SWARM=0
if ((USE_SWARM)); then
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
fi

WORK="$(mktemp -d /tmp/swarm-bench-cluster.XXXXXX)"
TAG="swarm-bench-cluster-$$"
SWARM_BENCH_RUN_ID="$TAG-$(date +%s)" # marks every process started here (not exported)
RESULTS="${SWARM_BENCH_JSON:-$WORK/results.json}"
rm -f "$RESULTS"
BRIDGE=swb-br
ETCD_PIDS=() SWARM_PIDS=() ETCD_URLS=() ETCD_PEERS=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? pid i
    set +e
    trap "" INT TERM
    for pid in "${ETCD_PIDS[@]}" "${SWARM_PIDS[@]}"; do
        [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
    done
    for pid in "${ETCD_PIDS[@]}" "${SWARM_PIDS[@]}"; do
        [[ -n "$pid" ]] && wait "$pid" 2>/dev/null
    done
    sweep_run "$SWARM_BENCH_RUN_ID" "$TAG*" 4 "$WORK"
    for i in 1 2 3; do
        ip netns list 2>/dev/null | grep -qw -- "swb-h$i" && ip netns delete "swb-h$i"
        ip link del "swb-v$i" 2>/dev/null
    done
    ip link del "$BRIDGE" 2>/dev/null
    if [[ -n "${SWARM_BENCH_LOGS:-}" ]]; then
        mkdir -p "$SWARM_BENCH_LOGS" && cp -r "$WORK/logs/." "$SWARM_BENCH_LOGS/"
    fi
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/logs"
FS="$(df -T "$WORK" | awk 'NR == 2 {print $2}')"
cc put "$RESULTS" fs "\"$FS\""
cc put "$RESULTS" clients "$CLIENTS"
cc put "$RESULTS" rounds "$ROUNDS"
cc put "$RESULTS" etcd_version "\"$($ETCD --version | awk '/etcd Version/ {print $3}')\""

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
HZ="$(getconf CLK_TCK)"
# idle_sample SIDE:PID,PID,... ... — one 10 s window for every side: RSS at its end, CPU
# over it, per process.
idle_sample() {
    local spec side pids pid before=() rss cpu i=0
    for spec in "$@"; do
        IFS=, read -r -a pids <<<"${spec#*:}"
        for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
    done
    sleep 10
    for spec in "$@"; do
        side="${spec%%:*}"
        IFS=, read -r -a pids <<<"${spec#*:}"
        rss=() cpu=()
        for pid in "${pids[@]}"; do
            rss+=("$(rss_kib "$pid")")
            cpu+=("$((($(cpu_ticks "$pid") - before[i]) * 1000 / HZ))") # ms of CPU in 10 s
            i=$((i + 1))
        done
        cc put-runs "$RESULTS" "$side.rss" median_mib 0.0009765625 "${rss[@]}"
        cc put-runs "$RESULTS" "$side.cpu" median_pct 0.01 "${cpu[@]}" # ms/10 s -> % of a core
    done
}

# --- etcd -------------------------------------------------------------------------
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for i in 0 1 2; do
    ETCD_URLS+=("http://127.0.0.1:$(free_port)")
    ETCD_PEERS+=("http://127.0.0.1:$(free_port)")
done
INITIAL="m0=${ETCD_PEERS[0]},m1=${ETCD_PEERS[1]},m2=${ETCD_PEERS[2]}"

start_etcd() { # I
    local i="$1"
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" "$ETCD" --name "m$i" --data-dir "$WORK/etcd/m$i" \
        --listen-client-urls "${ETCD_URLS[$i]}" --advertise-client-urls "${ETCD_URLS[$i]}" \
        --listen-peer-urls "${ETCD_PEERS[$i]}" --initial-advertise-peer-urls "${ETCD_PEERS[$i]}" \
        --initial-cluster "$INITIAL" --initial-cluster-state new \
        --initial-cluster-token "$TAG" --log-level warn \
        </dev/null >>"$WORK/logs/etcd-m$i.log" 2>&1 &
    ETCD_PIDS[i]=$!
}

etcd_leader() { # prints the leader's index (bounded wait)
    local tries out
    for ((tries = 0; tries < 100; tries++)); do
        out="$(cc etcd-leader "${ETCD_URLS[@]}")"
        out="$(jget "$out" leader)"
        [[ "$out" != null ]] && { echo "$out"; return 0; }
        sleep 0.1
    done
    die "etcd has no leader"
}

etcd_up() {
    local i
    echo "== etcd $($ETCD --version | awk '/etcd Version/ {print $3}'): 3 members on 127.0.0.1"
    mkdir -p "$WORK/etcd"
    for i in 0 1 2; do start_etcd "$i"; done
    for i in 0 1 2; do
        cc wait-write "etcd:${ETCD_URLS[$i]}" 60 >/dev/null ||
            { tail -n 20 "$WORK/logs/etcd-m$i.log" >&2; die "etcd m$i did not come up"; }
    done
}

etcd_failover() {
    local r L S out runs=()
    for ((r = 1; r <= ROUNDS; r++)); do
        L="$(etcd_leader)"
        S=$(((L + 1) % 3))
        out="$(cc first-write "etcd:${ETCD_URLS[$S]}" "${ETCD_PIDS[$L]}" 30)"
        wait "${ETCD_PIDS[$L]}" 2>/dev/null || true
        runs+=("$(jget "$out" seconds)")
        log "etcd failover $r: killed leader m$L, first ack on m$S after ${runs[-1]} s"
        start_etcd "$L"
        cc wait-write "etcd:${ETCD_URLS[$L]}" 60 >/dev/null || die "etcd m$L did not come back"
        sleep 2
    done
    cc put-runs "$RESULTS" etcd.failover median_s 1 "${runs[@]}"
}

# --- swarm ------------------------------------------------------------------------
read -r -a DAEMON_ARGS <<<"${SWARM_BENCH_DAEMON_ARGS:-}"
host_ip() { printf '198.18.0.%d\n' $((60 + $1)); }
host_sock() { printf '%s/h%d/run/swarm.sock\n' "$WORK" "$1"; }
start_swarm() { # I
    local i="$1" dir="$WORK/h$1"
    mkdir -p "$dir/run"
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
    SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" nsenter --net="/run/netns/swb-h$i" unshare --uts \
        sh -c 'hostname "$0" && exec "$@"' "swb-h$i" "$SWARM_BIN" daemon \
        --data-dir "$dir/data" --exec-root "$dir/run" --socket "$(host_sock "$i")" \
        --listen-addr "$(host_ip "$i"):2377" --advertise-addr "$(host_ip "$i")" "${DAEMON_ARGS[@]}" \
        </dev/null >>"$WORK/logs/swarm-h$i.log" 2>&1 &
    SWARM_PIDS[i]=$!
    local tries
    for ((tries = 0; tries < 300; tries++)); do
        [[ -S "$(host_sock "$i")" ]] && curl -sf --max-time 2 --unix-socket "$(host_sock "$i")" \
            http://swarm/_ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/logs/swarm-h$i.log" >&2
    die "swarm daemon h$i did not answer"
}
api() { # I METHOD PATH [BODY] — prints "BODY STATUS"
    local i="$1" method="$2" path="$3" body="${4:-}"
    curl -s --max-time 30 --unix-socket "$(host_sock "$i")" -X "$method" \
        -H 'Content-Type: application/json' ${body:+--data "$body"} \
        -w ' %{http_code}' "http://swarm$path"
}
status_of() { printf '%s\n' "${1##* }"; }
body_of() { printf '%s\n' "${1% *}"; }
swarm_leader() { # prints "INDEX NODE_ID" (1-based index), bounded wait
    local tries out
    for ((tries = 0; tries < 100; tries++)); do
        out="$(cc swarm-leader "$(host_sock 1)" "$(host_sock 2)" "$(host_sock 3)")"
        if [[ "$(jget "$out" leader)" != null ]]; then
            echo "$(($(jget "$out" leader) + 1)) $(jget "$out" node)"
            return 0
        fi
        sleep 0.1
    done
    die "the swarm has no leader"
}
node_id_of() { # I
    local out
    out="$(api "$1" GET /info)"
    jget "$(body_of "$out")" Swarm NodeID
}

# swarm_up: 3 hosts, a daemon in each, init + 2 manager joins. Returns 1 (and records why)
# when the daemon cannot form a swarm yet.
swarm_up() {
    local i out token
    echo "== swarm: 3 managers, each in a network-namespace host (198.18.0.61..63)"
    ip link show "$BRIDGE" >/dev/null 2>&1 && die "$BRIDGE exists: another cluster bench running?"
    ip link add "$BRIDGE" type bridge
    ip link set "$BRIDGE" up
    for i in 1 2 3; do
        ip netns add "swb-h$i"
        ip link add "swb-v$i" type veth peer name eth0 netns "swb-h$i"
        ip link set "swb-v$i" master "$BRIDGE" up
        ip -n "swb-h$i" addr add "$(host_ip "$i")/24" dev eth0
        ip -n "swb-h$i" link set eth0 up
        ip -n "swb-h$i" link set lo up
    done
    for i in 1 2 3; do start_swarm "$i"; done
    out="$(api 1 POST /swarm/init "{\"ListenAddr\":\"$(host_ip 1):2377\",\"AdvertiseAddr\":\"$(host_ip 1)\"}")"
    if [[ "$(status_of "$out")" == 404 ]]; then
        cc put "$RESULTS" swarm_skipped '"the daemon does not serve POST /swarm/init yet"'
        return 1
    fi
    [[ "$(status_of "$out")" == 200 ]] || die "swarm init: $out"
    out="$(api 1 GET /swarm)"
    token="$(jget "$(body_of "$out")" JoinTokens Manager)"
    for i in 2 3; do
        out="$(api "$i" POST /swarm/join "{\"ListenAddr\":\"$(host_ip "$i"):2377\",\"AdvertiseAddr\":\"$(host_ip "$i")\",\"RemoteAddrs\":[\"$(host_ip 1):2377\"],\"JoinToken\":\"$token\"}")"
        [[ "$(status_of "$out")" == 200 ]] || die "swarm join h$i: $out"
    done
    cc swarm-ready "$(host_sock 1)" 3 60 >/dev/null
    for i in 1 2 3; do
        [[ "$(readlink "/proc/${SWARM_PIDS[$i]}/exe")" == *swarm* ]] || die "pid ${SWARM_PIDS[$i]} is not the daemon"
    done
    cc put "$RESULTS" swarm_setup "\"3 managers in network-namespace hosts (veth + bridge), timings: ${SWARM_BENCH_DAEMON_ARGS:-the defaults}\""
    cc put "$RESULTS" swarm_write '"POST /nodes/ID/update?version=N (+1 label) after GET /nodes/ID?consistency=local; 409 retried"'
}

swarm_faults() {
    local out L F FID r runs=()
    for ((r = 1; r <= ROUNDS; r++)); do
        out="$(swarm_leader)"
        read -r L _ <<<"$out"
        F=$((L % 3 + 1))
        FID="$(node_id_of "$F")"
        out="$(cc first-write "swarm:$(host_sock "$F")" "${SWARM_PIDS[$L]}" 30 "$FID")"
        wait "${SWARM_PIDS[$L]}" 2>/dev/null || true
        runs+=("$(jget "$out" seconds)")
        log "swarm failover $r: killed leader h$L, first ack on h$F after ${runs[-1]} s"
        start_swarm "$L"
        cc swarm-ready "$(host_sock "$F")" 3 60 >/dev/null
        sleep 2
    done
    cc put-runs "$RESULTS" swarm.failover median_s 1 "${runs[@]}"
    runs=()
    for ((r = 1; r <= ROUNDS; r++)); do
        out="$(swarm_leader)"
        read -r L _ <<<"$out"
        F=$((L % 3 + 1))
        FID="$(node_id_of "$F")"
        out="$(cc down "$(host_sock "$L")" "$FID" "${SWARM_PIDS[$F]}" 30)"
        wait "${SWARM_PIDS[$F]}" 2>/dev/null || true
        runs+=("$(jget "$out" seconds)")
        log "swarm down $r: killed follower h$F, shown down on h$L after ${runs[-1]} s"
        start_swarm "$F"
        cc swarm-ready "$(host_sock "$L")" 3 60 >/dev/null
        sleep 2
    done
    cc put-runs "$RESULTS" swarm.down median_s 1 "${runs[@]}"
}

# --- the run ------------------------------------------------------------------------
etcd_up
SWARM_UP=0
if ((USE_SWARM)); then
    apt_install curl
    swarm_up && SWARM_UP=1
else
    cc put "$RESULTS" swarm_skipped '"SWARM_BENCH_NO_SWARM=1"'
fi

log "idle 10 s: RSS and CPU of every member and daemon"
IDLE=("etcd:$(IFS=,; echo "${ETCD_PIDS[*]}")")
((SWARM_UP)) && IDLE+=("swarm:${SWARM_PIDS[1]},${SWARM_PIDS[2]},${SWARM_PIDS[3]}")
idle_sample "${IDLE[@]}"

# Latency and throughput, interleaved round by round so that noise hits both alike.
L="$(etcd_leader)"
SIDES=("etcd=etcd:${ETCD_URLS[$L]}")
if ((SWARM_UP)); then
    out="$(swarm_leader)"
    read -r SL SLID <<<"$out"
    NODES=()
    for i in 1 2 3; do NODES+=("$(node_id_of "$i")"); done
    SIDES+=("swarm=swarm:$(host_sock "$SL"),$SLID,$(IFS=,; echo "${NODES[*]}")")
    log "writes go to the leaders: etcd m$L, swarm h$SL"
fi
cc compare "$RESULTS" "$N" "$CLIENTS" "$SECONDS_LOAD" "$MAX_WRITES" 3 "${SIDES[@]}"

etcd_failover
((SWARM_UP)) && swarm_faults

echo
cc report "$RESULTS"
