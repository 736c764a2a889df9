#!/usr/bin/env bash
# swarm's test command (what CI runs through .ci/run). Run as root:
#
#   scripts/test.sh [TEST-FILTER...]
#
# Steps: install the Debian packages the tests need; build the busybox test rootfs;
# cargo fmt --check; cargo clippy --all-targets -D warnings; cargo build --all-targets;
# the tests (cargo-nextest when installed, else cargo test), 2 at a time; clippy, build and
# tests all with --features failpoints (see FEATURES below); then a leak
# check (cgroups named swarm-test*, mounts of the test dirs, stray processes), which
# fails the run when the tests left anything behind, and removes what this run left.
# Every step runs even when an earlier one failed (the tests need the build); the
# summary lists them all.
#
# Environment the tests get (read these in Rust tests):
#   SWARM_TEST_ROOTFS         absolute path of the busybox rootfs (bin/busybox, applet
#                             links, bin/probe, etc/passwd with root/app(1000)/nobody)
#   SWARM_TEST_TMPDIR         a fresh per-run scratch dir (also TMPDIR): put bundles,
#                             state roots and overlay dirs here
#   SWARM_TEST_CGROUP_PREFIX  "swarm-test-<6 hex>", unique per run: name every cgroup the
#                             tests create "/<prefix>-<anything>" (or nest under
#                             "/<prefix>/"); default to "swarm-test" when unset
#   SWARM_TEST_RUN_ID         unique id of this run; any process still carrying it in its
#                             environment after the tests is reported as a leak
# Knobs:
#   SWARM_TEST_RUNNER=cargo|nextest  force the runner (default: nextest when installed)
#   SWARM_TEST_TIMEOUT=SECONDS       bound on the test step (default 2700)
#   SWARM_TEST_SKIP_LINT=1           skip fmt and clippy (quick local runs)
#   CARGO_TARGET_DIR                 honoured; the rootfs goes to $CARGO_TARGET_DIR/fixtures
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/lib.sh"

need_root "scripts/test.sh"
cd "$SWARM_ROOT"

# --- toolchain and packages -------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"

apt_install busybox-static gcc libc6-dev libseccomp-dev pkg-config iproute2 runc curl \
    procps util-linux coreutils docker-registry apache2-utils openssl iptables

TARGET_DIR="${CARGO_TARGET_DIR:-$SWARM_ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$SWARM_ROOT/$TARGET_DIR"
export CARGO_TARGET_DIR="$TARGET_DIR"

# --- fixture and test environment ---------------------------------------------
# Several test runs (other worktrees, other sessions) may share this machine, so
# everything this run creates is named after a short random id, and the leak check
# only ever removes what carries it.
RUN_SHORT="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
SWARM_TEST_ROOTFS="$("$HERE/fixtures/busybox-rootfs.sh" "$TARGET_DIR/fixtures/busybox")"
SWARM_TEST_TMPDIR="$(mktemp -d "/tmp/swarm-test-$RUN_SHORT.XXXXXX")"
SWARM_TEST_CGROUP_PREFIX="swarm-test-$RUN_SHORT"
SWARM_TEST_RUN_ID="swarm-test-run-$RUN_SHORT-$$"
export SWARM_TEST_ROOTFS SWARM_TEST_TMPDIR SWARM_TEST_CGROUP_PREFIX
# SWARM_TEST_RUN_ID is passed to the test step only, so no helper of ours carries it.

STATE="$(mktemp -d /tmp/swarm-test-state.XXXXXX)" # leak-check bookkeeping

# --- leak checks ------------------------------------------------------------
# Cgroups: every dir named swarm-test* in any hierarchy (v1 controllers and v2).
scan_cgroups() {
    find /sys/fs/cgroup -mindepth 2 -maxdepth 6 -type d -name 'swarm-test*' 2>/dev/null | sort
}

# This run's cgroups among the lines on stdin.
ours_only() {
    grep -F -- "/$SWARM_TEST_CGROUP_PREFIX" || true
}

# Mounts whose target or source mentions the rootfs, this run's scratch dir or prefix.
scan_mounts() {
    findmnt -rn -o TARGET,SOURCE,FSTYPE 2>/dev/null |
        grep -F -e "$SWARM_TEST_ROOTFS" -e "$SWARM_TEST_TMPDIR" -e "$SWARM_TEST_CGROUP_PREFIX" |
        sort || true
}

# Processes: carrying this run's id in their environment ("run-id"), living in a
# root inside this run's dirs ("root"), or running one of this tree's test binaries
# ("exe"). Prints "PID MARK COMMAND".
scan_procs() {
    local dir pid exe root mark cmd
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        [[ "$pid" == "$$" || "$pid" == "${BASHPID:-}" ]] && continue
        exe="$(readlink "$dir/exe" 2>/dev/null)" || exe=""
        root="$(readlink "$dir/root" 2>/dev/null)" || root="/"
        if grep -qzx -- "SWARM_TEST_RUN_ID=$SWARM_TEST_RUN_ID" "$dir/environ" 2>/dev/null; then
            mark=run-id
        elif [[ "$root" == "$SWARM_TEST_TMPDIR"* || "$root" == "$SWARM_TEST_ROOTFS"* ]]; then
            mark=root
        elif [[ "$exe" == "$TARGET_DIR/debug/"* ]]; then
            mark=exe
        else
            continue
        fi
        cmd="$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | cut -c1-120)" || cmd=""
        printf '%s %s %s\n' "$pid" "$mark" "${cmd:-[$(cat "$dir/comm" 2>/dev/null)]}"
    done
}

# Is another test run active (a process carrying another SWARM_TEST_RUN_ID)?
other_run_active() {
    local dir
    for dir in /proc/[0-9]*; do
        if { tr '\0' '\n' <"$dir/environ"; } 2>/dev/null | grep -q '^SWARM_TEST_RUN_ID=' &&
            ! grep -qzx -- "SWARM_TEST_RUN_ID=$SWARM_TEST_RUN_ID" "$dir/environ" 2>/dev/null; then
            return 0
        fi
    done
    return 1
}

# Members of the given cgroup dirs (recursively), one pid a line.
cgroup_members() {
    local cg
    for cg in "$@"; do
        find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    done | sort -un
}

# Remove empty cgroup dirs, deepest first. Non-empty ones stay (rmdir fails).
rmdir_cgroups() {
    local cg
    for cg in "$@"; do
        find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

# before_check: report what is there already (earlier runs, runs in progress) and
# record it as the baseline the after-check ignores. Removes nothing.
before_check() {
    scan_cgroups >"$STATE/cgroups.before"
    scan_mounts >"$STATE/mounts.before"
    scan_procs >"$STATE/procs.before"
    if [[ -s "$STATE/cgroups.before" ]]; then
        warn "swarm-test* cgroups exist already (earlier or concurrent runs; ignored):"
        sed 's/^/  /' "$STATE/cgroups.before" >&2
    fi
    if [[ -s "$STATE/mounts.before" ]]; then
        warn "mounts of the test rootfs exist already (ignored):"
        sed 's/^/  /' "$STATE/mounts.before" >&2
    fi
    if [[ -s "$STATE/procs.before" ]]; then
        warn "test binaries of this tree are running already (ignored):"
        sed 's/^/  /' "$STATE/procs.before" >&2
    fi
    return 0
}

# after_check: fail when the tests left cgroups, mounts or processes behind.
# Writes this run's leaks to $STATE/*.leaked for cleanup. swarm-test* cgroups that
# appeared during the run without this run's prefix fail the run too, unless another
# test run is active (then they are likely its own); they are never removed.
after_check() {
    local bad=0 tries cgs=()
    # Give exiting processes and asynchronous cgroup removal a moment (bounded).
    for tries in 1 2 3 4 5; do
        scan_cgroups | comm -23 - "$STATE/cgroups.before" >"$STATE/cgroups.new"
        ours_only <"$STATE/cgroups.new" >"$STATE/cgroups.leaked"
        scan_mounts | comm -23 - "$STATE/mounts.before" >"$STATE/mounts.leaked"
        scan_procs | sort | comm -23 - <(sort "$STATE/procs.before") >"$STATE/procs.leaked"
        [[ -s "$STATE/cgroups.new" || -s "$STATE/mounts.leaked" || -s "$STATE/procs.leaked" ]] || break
        ((tries < 5)) && sleep 1
    done
    comm -23 "$STATE/cgroups.new" "$STATE/cgroups.leaked" >"$STATE/cgroups.foreign"
    if [[ -s "$STATE/cgroups.leaked" ]]; then
        log "LEAK: cgroups left by the tests:"
        sed 's/^/  /' "$STATE/cgroups.leaked" >&2
        mapfile -t cgs <"$STATE/cgroups.leaked"
        cgroup_members "${cgs[@]}" | sed 's/^/    member pid /' >&2
        bad=1
    fi
    if [[ -s "$STATE/cgroups.foreign" ]]; then
        if other_run_active; then
            warn "swarm-test* cgroups appeared during this run without its prefix" \
                "$SWARM_TEST_CGROUP_PREFIX; another test run is active, so not counted:"
            sed 's/^/  /' "$STATE/cgroups.foreign" >&2
        else
            log "LEAK: swarm-test* cgroups appeared during this run without its prefix" \
                "(a test that ignores SWARM_TEST_CGROUP_PREFIX?); not removed:"
            sed 's/^/  /' "$STATE/cgroups.foreign" >&2
            bad=1
        fi
    fi
    if [[ -s "$STATE/mounts.leaked" ]]; then
        log "LEAK: mounts left by the tests:"
        sed 's/^/  /' "$STATE/mounts.leaked" >&2
        bad=1
    fi
    if [[ -s "$STATE/procs.leaked" ]]; then
        log "LEAK: processes left by the tests:"
        sed 's/^/  /' "$STATE/procs.leaked" >&2
        bad=1
    fi
    ((bad == 0)) && log "no leaked cgroups, mounts or processes"
    return "$bad"
}

# cleanup: undo what this run leaked (only what carries its id, prefix or dirs),
# then remove the scratch dirs. Runs on every exit.
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$? pid target cgs=()
    trap "" INT TERM # finish cleaning up even when interrupted again
    set +e
    if [[ -f "$STATE/procs.before" ]]; then
        [[ -f "$STATE/procs.leaked" ]] || after_check >/dev/null 2>&1
        [[ -s "$STATE/cgroups.leaked" ]] && mapfile -t cgs <"$STATE/cgroups.leaked"
        # Kill what this run started: processes with its id or a root in its dirs, and
        # members of its cgroups. Test binaries seen only by path are reported only.
        {
            awk '$2 != "exe" {print $1}' "$STATE/procs.leaked" 2>/dev/null
            if ((${#cgs[@]})); then cgroup_members "${cgs[@]}"; fi
        } | sort -un | while read -r pid; do
            [[ -n "$pid" && "$pid" != "$$" ]] && kill -KILL "$pid" 2>/dev/null
        done
        sort -r "$STATE/mounts.leaked" 2>/dev/null | while read -r target _; do
            target="$(printf '%b' "$target")" # findmnt -r escapes blanks as \x20
            umount -l "$target" 2>/dev/null && log "cleanup: unmounted $target"
        done
        if ((${#cgs[@]})); then
            sleep 0.5
            rmdir_cgroups "${cgs[@]}"
        fi
    fi
    if ! findmnt -rn -o TARGET | grep -qF -- "$SWARM_TEST_TMPDIR"; then
        rm -rf --one-file-system "$SWARM_TEST_TMPDIR"
    else
        warn "kept $SWARM_TEST_TMPDIR: still has mounts"
    fi
    rm -rf "$STATE"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- steps ----------------------------------------------------------------
# Every cargo step builds with the `failpoints` feature: the crash-recovery tests
# (t85) need a daemon binary with the store's crash points compiled in, and a test
# binary spawns the one `swarm` binary of the build. One feature set for clippy, build
# and tests means cargo builds the crate once; a separate feature-on build for one test
# would rebuild it and overwrite target/debug/swarm. Release builds leave it out.
FEATURES=(--features failpoints)
SUMMARY=()
FAILED=0
TEST_RC=0

# step NAME CMD... — run a step, record its result; never aborts the script.
step() {
    local name="$1" start rc
    shift
    log "=== $name: $*"
    start=$SECONDS
    if "$@"; then rc=0; else rc=$?; fi
    if ((rc == 0)); then
        SUMMARY+=("$(printf '  %-8s ok       %4ss' "$name" $((SECONDS - start)))")
    else
        SUMMARY+=("$(printf '  %-8s FAILED   %4ss  (exit %s)' "$name" $((SECONDS - start)) "$rc")")
        FAILED=1
    fi
    return "$rc"
}

skip() {
    SUMMARY+=("$(printf '  %-8s skipped  (%s)' "$1" "$2")")
}

run_tests() {
    local timeout="${SWARM_TEST_TIMEOUT:-2700}" runner="${SWARM_TEST_RUNNER:-}"
    if [[ -z "$runner" ]]; then
        if cargo nextest --version >/dev/null 2>&1; then runner=nextest; else runner=cargo; fi
    fi
    log "test runner: $runner; TMPDIR=$SWARM_TEST_TMPDIR; rootfs=$SWARM_TEST_ROOTFS"
    local cmd=(cargo test --all-targets "${FEATURES[@]}" -- --test-threads=2 "$@")
    if [[ "$runner" == nextest ]]; then
        cmd=(cargo nextest run --all-targets "${FEATURES[@]}" --test-threads=2 --no-fail-fast
            --no-tests=warn --no-input-handler "$@")
    fi
    TMPDIR="$SWARM_TEST_TMPDIR" SWARM_TEST_RUN_ID="$SWARM_TEST_RUN_ID" RUST_BACKTRACE=1 \
        timeout --kill-after=30 "$timeout" "${cmd[@]}" </dev/null
}

log "swarm tests in $SWARM_ROOT (target dir $TARGET_DIR)"
before_check

if [[ "${SWARM_TEST_SKIP_LINT:-}" == 1 ]]; then
    skip fmt "SWARM_TEST_SKIP_LINT=1"
    skip clippy "SWARM_TEST_SKIP_LINT=1"
else
    step fmt cargo fmt --all --check || true
    step clippy cargo clippy --all-targets "${FEATURES[@]}" -- -D warnings || true
fi

if step build cargo build --all-targets "${FEATURES[@]}"; then
    step tests run_tests "$@" || TEST_RC=$?
else
    skip tests "the build failed"
fi

step leaks after_check || true

echo
echo "==================== swarm test summary ===================="
printf '%s\n' "${SUMMARY[@]}"
if ((FAILED)); then
    echo "RESULT: FAILED"
    echo "============================================================"
    ((TEST_RC)) && exit "$TEST_RC"
    exit 1
fi
echo "RESULT: OK"
echo "============================================================"
