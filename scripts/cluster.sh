#!/usr/bin/env bash
# Network-namespace hosts on this machine, each running its own `swarm daemon`.
#
#   scripts/cluster.sh up N [--managers M] [--no-swarm]
#                                 N hosts swarm-h1..hN (198.18.0.11..) on bridge swarm-br0
#                                 (198.18.0.1/24), a daemon in each with its own data dir,
#                                 exec root and socket under $SWARM_CLUSTER_DIR; host 1 runs
#                                 `swarm init`, hosts 2..M join as managers (M defaults to
#                                 1, at most N), the others as workers
#   scripts/cluster.sh kill I     kill -9 host I's daemon (its containers keep running)
#   scripts/cluster.sh start I    start host I's daemon again on its state
#   scripts/cluster.sh exec I CMD...   run `swarm -H <host I's socket> CMD...`
#   scripts/cluster.sh sh I CMD...     run CMD inside host I's network namespace
#   scripts/cluster.sh down       stop every daemon and remove hosts, bridge and state
#   scripts/cluster.sh status     list hosts and whether their daemons answer
#
# Addresses: hosts 198.18.0.0/24 only (RFC 2544 benchmarking space). Nothing else is touched.
# Environment: SWARM_BIN (default: the newer of target/release/swarm and target/debug/swarm),
#   SWARM_CLUSTER_DIR (default /tmp/swarm-cluster), SWARM_DAEMON_ARGS (extra daemon flags,
#   e.g. "--raft-heartbeat-ms 500").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/lib.sh"
need_root "scripts/cluster.sh"

DIR="${SWARM_CLUSTER_DIR:-/tmp/swarm-cluster}"
BRIDGE=swarm-br0
MAX_HOSTS=40

swarm_bin() {
    local release="$SWARM_ROOT/target/release/swarm" debug="$SWARM_ROOT/target/debug/swarm"
    if [[ -n "${SWARM_BIN:-}" ]]; then
        printf '%s\n' "$SWARM_BIN"
    elif [[ -x "$release" && (! -x "$debug" || "$release" -nt "$debug") ]]; then
        printf '%s\n' "$release" # the newer build
    else
        printf '%s\n' "$debug"
    fi
}

host_ip() { printf '198.18.0.%d\n' $((10 + $1)); }
host_ns() { printf 'swarm-h%d\n' "$1"; }
host_dir() { printf '%s/h%d\n' "$DIR" "$1"; }
host_socket() { printf '%s/run/swarm.sock\n' "$(host_dir "$1")"; }

hosts() {
    local f
    for f in "$DIR"/h*; do
        [[ -d "$f" ]] && printf '%s\n' "${f##*/h}"
    done | sort -n
}

start_daemon() {
    local i="$1" ns ip dir bin
    ns="$(host_ns "$i")"
    ip="$(host_ip "$i")"
    dir="$(host_dir "$i")"
    bin="$(swarm_bin)"
    if [[ -f "$dir/daemon.pid" ]]; then
        local old tries=0
        old="$(cat "$dir/daemon.pid")"
        # A killed daemon stays a zombie until its last thread is gone (a second or two on
        # a busy host); it still holds its data dir until then, so wait for it (bounded).
        while [[ -e "/proc/$old" ]]; do
            if [[ "$(awk '{print $3}' "/proc/$old/stat" 2>/dev/null)" != Z ]]; then
                return 0 # still running
            fi
            ((tries++ < 200)) || die "host $i: the old daemon (pid $old) does not go away"
            sleep 0.05
        done
    fi
    # Its own network namespace and hostname: what a host is to the cluster. nsenter, not
    # `ip netns exec`: that remounts /sys for the namespace, which hides /sys/fs/cgroup.
    # shellcheck disable=SC2086 # SWARM_DAEMON_ARGS is a list of flags
    setsid nsenter --net="/run/netns/$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$ns" \
        "$bin" daemon \
        --data-dir "$dir/data" --exec-root "$dir/run" --socket "$(host_socket "$i")" \
        --listen-addr "$ip:2377" --advertise-addr "$ip" ${SWARM_DAEMON_ARGS:-} \
        >>"$dir/daemon.log" 2>&1 </dev/null &
    echo $! >"$dir/daemon.pid"
}

wait_daemon() {
    local i="$1" tries=0
    until "$(swarm_bin)" -H "unix://$(host_socket "$i")" version >/dev/null 2>&1; do
        ((tries++ < 300)) || die "host $i: daemon did not start; see $(host_dir "$i")/daemon.log"
        sleep 0.1
    done
}

on() {
    local i="$1"
    shift
    "$(swarm_bin)" -H "unix://$(host_socket "$i")" "$@"
}

# Host 1 inits (unless already in a swarm); 2..M join as managers, the rest as workers.
form_swarm() {
    local n="$1" m="$2" i worker manager state
    state="$(on 1 info | awk '/^ Swarm:/ {print $2}')"
    if [[ "$state" != active ]]; then
        on 1 init >/dev/null
        log "host 1: swarm initialised"
    fi
    worker="$(on 1 join-token -q worker)"
    manager="$(on 1 join-token -q manager)"
    for ((i = 2; i <= n; i++)); do
        state="$(on "$i" info | awk '/^ Swarm:/ {print $2}')"
        [[ "$state" == active ]] && continue
        if ((i <= m)); then
            on "$i" join --token "$manager" "$(host_ip 1):2377" >/dev/null
            log "host $i: joined as a manager"
        else
            on "$i" join --token "$worker" "$(host_ip 1):2377" >/dev/null
            log "host $i: joined as a worker"
        fi
    done
}

up() {
    local n="$1" managers=1 form=1 i ns ip dir bin
    shift
    while (($#)); do
        case "$1" in
            --managers) managers="${2:?--managers M}"; shift 2 ;;
            --no-swarm) form=0; shift ;;
            *) die "up: unknown option $1" ;;
        esac
    done
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= MAX_HOSTS)) || die "up N: N must be 1..$MAX_HOSTS"
    [[ "$managers" =~ ^[0-9]+$ ]] && ((managers >= 1 && managers <= n)) ||
        die "up: --managers must be 1..$n"
    bin="$(swarm_bin)"
    [[ -x "$bin" ]] || die "no swarm binary at $bin: run cargo build first"
    mkdir -p "$DIR"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add 198.18.0.1/24 dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    for ((i = 1; i <= n; i++)); do
        ns="$(host_ns "$i")"
        ip="$(host_ip "$i")"
        dir="$(host_dir "$i")"
        if ! ip netns list | grep -qw "$ns"; then
            ip netns add "$ns"
            ip link add "veth-h$i" type veth peer name eth0 netns "$ns"
            ip link set "veth-h$i" master "$BRIDGE" up
            ip -n "$ns" addr add "$ip/24" dev eth0
            ip -n "$ns" link set eth0 up
            ip -n "$ns" link set lo up
        fi
        mkdir -p "$dir/run"
        start_daemon "$i"
    done
    for ((i = 1; i <= n; i++)); do
        wait_daemon "$i"
        log "host $i: $(host_ns "$i") $(host_ip "$i") socket $(host_socket "$i")"
    done
    ((form)) && form_swarm "$n" "$managers"
    return 0
}

down() {
    local i dir pid
    for i in $(hosts); do
        dir="$(host_dir "$i")"
        if [[ -f "$dir/daemon.pid" ]]; then
            pid="$(cat "$dir/daemon.pid")"
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        # Containers of that host: their helpers outlive the daemon by design.
        "$(swarm_bin)" runtime --root "$dir/run/runtime" list -q 2>/dev/null |
            while read -r id; do
                "$(swarm_bin)" runtime --root "$dir/run/runtime" delete --force "$id" || true
            done
        ip netns del "$(host_ns "$i")" 2>/dev/null || true
        ip link del "veth-h$i" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$DIR"
}

status() {
    local i
    for i in $(hosts); do
        if "$(swarm_bin)" -H "unix://$(host_socket "$i")" version >/dev/null 2>&1; then
            printf 'host %s  %s  %s  up\n' "$i" "$(host_ns "$i")" "$(host_ip "$i")"
        else
            printf 'host %s  %s  %s  DOWN\n' "$i" "$(host_ns "$i")" "$(host_ip "$i")"
        fi
    done
}

cmd="${1:-}"
shift || true
case "$cmd" in
    up) up "${1:-3}" "${@:2}" ;;
    kill)
        i="${1:?kill I}"
        [[ -f "$(host_dir "$i")/daemon.pid" ]] || die "no host $i"
        kill -KILL "$(cat "$(host_dir "$i")/daemon.pid")" 2>/dev/null || true
        ;;
    start)
        i="${1:?start I}"
        [[ -d "$(host_dir "$i")" ]] || die "no host $i"
        start_daemon "$i"
        wait_daemon "$i"
        ;;
    down) down ;;
    status) status ;;
    exec)
        i="${1:?exec I CMD...}"
        shift
        exec "$(swarm_bin)" -H "unix://$(host_socket "$i")" "$@"
        ;;
    sh)
        i="${1:?sh I CMD...}"
        shift
        exec ip netns exec "$(host_ns "$i")" "$@"
        ;;
    *) die "usage: scripts/cluster.sh up N [--managers M] [--no-swarm] | down | status | kill I | start I | exec I CMD... | sh I CMD..." ;;
esac
