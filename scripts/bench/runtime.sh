#!/usr/bin/env bash
# Runtime benchmark: ours (`swarm runtime`) vs runc vs crun, side by side in one run.
#
#   scripts/bench/runtime.sh [N]        N runs per runtime (default 100, at most 10000)
#
# 1. Latency and CPU: N sequential `RUNTIME run --bundle B ID` (create + start + wait +
#    delete) of /bin/true on the busybox test rootfs, round-robin over the runtimes after
#    3 warm-up rounds. Per run: wall time and CPU time of the runtime and everything it
#    spawned (scripts/bench/runtime_harness.py: a child subreaper measuring
#    RUSAGE_CHILDREN deltas). Prints medians and p90s, and ratios ours/crun, ours/runc.
#
#    Fairness: crun refuses hybrid cgroups, so it runs in a private mount namespace
#    without the cgroup2 mount:
#        unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec crun ...'
#    ALL three runtimes run inside this same wrapper ("crun", "runc", "ours" rows), and
#    the wrapper alone (`... exec /bin/true`) is measured too ("wrapper" row). The
#    "net" columns and the ratios are medians minus the wrapper median. runc and ours
#    also run unwrapped ("runc-bare", "ours-bare") as a cross-check.
#
# 2. Helper memory (ours only): starts M detached `sleep 300` containers
#    (`swarm runtime run -d`), reads the Pss of each container's helper process (the
#    parent of the container's init, a `swarm` process) from /proc/PID/smaps_rollup and
#    prints the median (target: <= 1 MiB). Then deletes them.
#
# Every bundle uses the same `runc spec` config (args ["/bin/true"], terminal false,
# read-only root = the fixture rootfs); they differ only in linux.cgroupsPath.
# "ours" is skipped, with a message, while target/release/swarm lacks `runtime`.
#
# Environment: SWARM_BIN (default $CARGO_TARGET_DIR|target/release/swarm),
#   SWARM_BENCH_BUILD=1 (cargo build --release first), SWARM_BENCH_MEM_CONTAINERS (M, 10),
#   SWARM_BENCH_JSON=PATH (also write the statistics as JSON).
# Everything created (containers, cgroups, processes, mounts, temp dirs) is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/../lib.sh"

need_root "scripts/bench/runtime.sh"
N="${1:-100}"
M="${SWARM_BENCH_MEM_CONTAINERS:-10}"
if [[ ! "$N" =~ ^[0-9]+$ ]] || ((N < 1 || N > 10000)); then
    die "N must be 1..10000 (got '$N')"
fi
if [[ ! "$M" =~ ^[0-9]+$ ]] || ((M > 100)); then
    die "SWARM_BENCH_MEM_CONTAINERS must be 0..100 (got '$M')"
fi
cd "$SWARM_ROOT"

apt_install runc crun busybox-static gcc libc6-dev python3 procps util-linux
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$SWARM_ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$SWARM_ROOT/$TARGET_DIR"
SWARM_BIN="${SWARM_BIN:-$TARGET_DIR/release/swarm}"
if [[ "${SWARM_BENCH_BUILD:-}" == 1 ]]; then
    log "cargo build --release"
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --bin swarm
fi
PYTHON=/usr/bin/python3
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"

ROOTFS="$("$SWARM_ROOT/scripts/fixtures/busybox-rootfs.sh" "$TARGET_DIR/fixtures/busybox")"
WORK="$(mktemp -d /tmp/swarm-bench.XXXXXX)"
TAG="swarm-bench-$$"                     # prefix of every cgroup this run creates
# Marks every process this run starts (passed to the runtimes only, not exported, so
# the cleanup's own processes do not carry it).
SWARM_BENCH_RUN_ID="$TAG-$(date +%s)"

# --- the wrapper ------------------------------------------------------------
# shellcheck disable=SC2016 # $0 and $@ are expanded by the inner sh
if mountpoint -q /sys/fs/cgroup/unified; then
    WRAP=(unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$0" "$@"')
else
    WRAP=(unshare -m --propagation private sh -c 'exec "$0" "$@"')
fi

# --- is "ours" there? ---------------------------------------------------------
OURS=1
OURS_WHY=""
if [[ ! -x "$SWARM_BIN" ]]; then
    OURS=0 OURS_WHY="$SWARM_BIN is not built (cargo build --release, or SWARM_BENCH_BUILD=1)"
else
    help="$(timeout 10 "$SWARM_BIN" runtime --help 2>&1)" || help=""
    if ! grep -qw create <<<"$help" || ! grep -qw delete <<<"$help" || ! grep -qw run <<<"$help"; then
        OURS=0 OURS_WHY="$SWARM_BIN has no 'runtime' subcommand (create|start|run|delete) yet"
    fi
fi
((OURS)) || log "ours: SKIPPED: $OURS_WHY"

# --- cleanup ----------------------------------------------------------------
runtime_cmd() { # runtime_cmd NAME -> the runtime's argv prefix with its state root
    case "$1" in
    runc) printf '%s\0' runc --root "$WORK/state/runc" ;;
    crun) printf '%s\0' crun --root "$WORK/state/crun" ;;
    ours) printf '%s\0' "$SWARM_BIN" runtime --root "$WORK/state/ours" ;;
    esac
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? rt id cmd dir
    set +e
    trap "" INT TERM # finish cleaning up even when interrupted again
    for rt in runc crun ours; do
        [[ -d "$WORK/state/$rt" ]] || continue
        mapfile -d '' -t cmd < <(runtime_cmd "$rt")
        for dir in "$WORK/state/$rt"/swarm-bench-*; do
            [[ -e "$dir" ]] || continue
            id="${dir##*/}"
            timeout 10 "${WRAP[@]}" "${cmd[@]}" delete -f "$id" </dev/null >/dev/null 2>&1
        done
    done
    # Processes this run started: its marker in their environment, or in its cgroups.
    sweep_run "$SWARM_BENCH_RUN_ID" "$TAG-*" 3 "$WORK"
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- bundles ----------------------------------------------------------------
# make_bundle DIR CGROUP-NAME ARG... — a `runc spec` bundle running ARG... on the fixture.
make_bundle() {
    local dir="$1" cg="$2"
    shift 2
    mkdir -p "$dir"
    (cd "$dir" && runc spec)
    "$PYTHON" - "$dir/config.json" "$ROOTFS" "/$cg" "$@" <<'PY'
import json, sys
path, rootfs, cgpath, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
c = json.load(open(path))
c["process"]["args"] = args
c["process"]["terminal"] = False
c["root"] = {"path": rootfs, "readonly": True}
c["hostname"] = "bench"
c["linux"]["cgroupsPath"] = cgpath
json.dump(c, open(path, "w"), indent=2)
PY
}

mkdir -p "$WORK/state/runc" "$WORK/state/crun" "$WORK/state/ours" "$WORK/logs"
for rt in runc crun ours; do
    make_bundle "$WORK/bundle-$rt" "$TAG-$rt" /bin/true
done

log "runc: $(runc --version | head -1); crun: $(crun --version | head -1)"
log "rootfs $ROOTFS; work dir $WORK"
log "wrapper: ${WRAP[*]} RUNTIME ..."

# --- latency and CPU ----------------------------------------------------------
PLAN="$WORK/plan.json"
"$PYTHON" - "$PLAN" "$N" "$OURS" "$WORK" "$SWARM_BIN" "${SWARM_BENCH_JSON:-}" "${WRAP[@]}" <<'PY'
import json, sys
plan_path, n, ours, work, swarm, json_out = sys.argv[1:7]
wrap = sys.argv[7:]
def runtime(name):
    if name == "ours":
        return [swarm, "runtime", "--root", f"{work}/state/ours"]
    return [name, "--root", f"{work}/state/{name}"]
def variant(name, rt, wrapped):
    pre = wrap if wrapped else []
    return {
        "name": name,
        "argv": pre + runtime(rt) + ["run", "--bundle", f"{work}/bundle-{rt}", "{id}"],
        "cleanup": pre + runtime(rt) + ["delete", "-f", "{id}"],
        "wrapped": wrapped,
        "log": f"{work}/logs/{name}.log",
    }
variants = [{"name": "wrapper", "argv": wrap + ["/bin/true"], "cleanup": None,
             "wrapped": True, "log": f"{work}/logs/wrapper.log"},
            variant("crun", "crun", True), variant("runc", "runc", True)]
if ours == "1":
    variants.append(variant("ours", "ours", True))
variants.append(variant("runc-bare", "runc", False))
if ours == "1":
    variants.append(variant("ours-bare", "ours", False))
json.dump({"n": int(n), "warmup": 3, "timeout": 30, "wrapper": "wrapper",
           "json_out": json_out, "variants": variants}, open(plan_path, "w"), indent=2)
PY

log "latency: $N runs per variant"
BENCH_RC=0
SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" "$PYTHON" "$HERE/runtime_harness.py" "$PLAN" || BENCH_RC=$?
if ((BENCH_RC)); then
    for f in "$WORK"/logs/*.log; do
        [[ -s "$f" ]] || continue
        warn "last lines of $(basename "$f"):"
        tail -n 5 "$f" >&2
    done
fi
((OURS)) || echo "ours: skipped: $OURS_WHY"

# --- helper memory (ours) -----------------------------------------------------
echo
if ((OURS == 0)); then
    echo "helper memory: skipped: $OURS_WHY"
elif ((M == 0)); then
    echo "helper memory: skipped (SWARM_BENCH_MEM_CONTAINERS=0)"
else
    log "helper memory: starting $M detached sleep containers"
    mapfile -d '' -t OURS_CMD < <(runtime_cmd ours)
    swarm_exe="$(readlink -f "$SWARM_BIN")"
    pss=() rss=() helpers=()
    for ((i = 1; i <= M; i++)); do
        id="swarm-bench-mem-$i"
        make_bundle "$WORK/mem/$i" "$TAG-mem-$i" sleep 300
        if ! SWARM_BENCH_RUN_ID="$SWARM_BENCH_RUN_ID" timeout 30 "${OURS_CMD[@]}" run -d --bundle "$WORK/mem/$i" "$id" \
            </dev/null >>"$WORK/logs/mem.log" 2>&1; then
            warn "ours run -d $id failed:"
            tail -n 5 "$WORK/logs/mem.log" >&2
            continue
        fi
        pid="$(timeout 10 "${OURS_CMD[@]}" state "$id" 2>/dev/null |
            "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin).get("pid", 0))' 2>/dev/null)" || pid=0
        if [[ ! "$pid" =~ ^[1-9][0-9]*$ ]] || [[ ! -d "/proc/$pid" ]]; then
            warn "$id: no running container pid in 'state'"
            continue
        fi
        helper="$(awk '/^PPid:/ {print $2}' "/proc/$pid/status")"
        helper_exe="$(readlink -f "/proc/$helper/exe" 2>/dev/null)" || helper_exe=""
        if [[ "$helper_exe" != "$swarm_exe" && "$(cat "/proc/$helper/comm" 2>/dev/null)" != swarm ]]; then
            warn "$id: parent of container pid $pid is pid $helper ($helper_exe), not a swarm helper"
            continue
        fi
        helpers+=("$helper")
    done
    # PSS divides shared pages among the processes mapping them: read it once every helper
    # runs, or the first helpers are charged for pages the later ones share.
    for helper in "${helpers[@]}"; do
        pss+=("$(awk '/^Pss:/ {print $2}' "/proc/$helper/smaps_rollup")")
        rss+=("$(awk '/^Rss:/ {print $2}' "/proc/$helper/smaps_rollup")")
    done
    if ((${#pss[@]})); then
        "$PYTHON" - "${#pss[@]}" "$M" "${pss[*]}" "${rss[*]}" <<'PY'
import statistics, sys
k, m = sys.argv[1], sys.argv[2]
pss = [int(x) for x in sys.argv[3].split()]
rss = [int(x) for x in sys.argv[4].split()]
med = statistics.median(pss)
print(f"helper memory ({k}/{m} containers): Pss median {med:.0f} kB, max {max(pss)} kB; "
      f"Rss median {statistics.median(rss):.0f} kB; target Pss <= 1024 kB: "
      + ("met" if med <= 1024 else "NOT met"))
PY
    else
        echo "helper memory: no helper measured (see warnings above)"
    fi
    for ((i = 1; i <= M; i++)); do
        timeout 10 "${OURS_CMD[@]}" delete -f "swarm-bench-mem-$i" </dev/null >/dev/null 2>&1 || true
    done
fi
exit "$BENCH_RC"
