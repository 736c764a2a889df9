#!/usr/bin/env bash
# Network-namespace hosts on this machine, each running its own `swarm daemon`.
#
#   scripts/cluster.sh up N       N hosts swarm-h1..hN (198.18.0.11..) on bridge swarm-br0
#                                 (198.18.0.1/24), a daemon in each with its own data dir,
#                                 exec root and socket under $SWARM_CLUSTER_DIR
#   scripts/cluster.sh exec I CMD...   run `swarm -H <host I's socket> CMD...`
#   scripts/cluster.sh sh I CMD...     run CMD inside host I's network namespace
#   scripts/cluster.sh down       stop every daemon and remove hosts, bridge and state
#   scripts/cluster.sh status     list hosts and whether their daemons answer
#
# Addresses: hosts 198.18.0.0/24 only (RFC 2544 benchmarking space). Nothing else is touched.
# Environment: SWARM_BIN (default: the newer of target/release/swarm and target/debug/swarm),
#   SWARM_CLUSTER_DIR (default /tmp/swarm-cluster).
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

up() {
    local n="$1" i ns ip dir bin
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= MAX_HOSTS)) || die "up N: N must be 1..$MAX_HOSTS"
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
        if [[ -f "$dir/daemon.pid" ]] && kill -0 "$(cat "$dir/daemon.pid")" 2>/dev/null; then
            continue
        fi
        # Its own network namespace and hostname: what a host is to the cluster.
        setsid ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$ns" \
            "$bin" daemon \
            --data-dir "$dir/data" --exec-root "$dir/run" --socket "$(host_socket "$i")" \
            --listen-addr "$ip:2377" --advertise-addr "$ip" \
            >"$dir/daemon.log" 2>&1 </dev/null &
        echo $! >"$dir/daemon.pid"
    done
    for ((i = 1; i <= n; i++)); do
        local tries=0
        until "$bin" -H "unix://$(host_socket "$i")" version >/dev/null 2>&1; do
            ((tries++ < 100)) || die "host $i: daemon did not start; see $(host_dir "$i")/daemon.log"
            sleep 0.1
        done
        log "host $i: $(host_ns "$i") $(host_ip "$i") socket $(host_socket "$i")"
    done
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
    up) up "${1:-3}" ;;
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
    *) die "usage: scripts/cluster.sh up N | down | status | exec I CMD... | sh I CMD..." ;;
esac
