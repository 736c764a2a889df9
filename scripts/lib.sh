#!/usr/bin/env bash
# Shared helpers for swarm's scripts. Source it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It defines: log, warn, die, need_root, repo_root (and $SWARM_ROOT), apt_install.
# It does not change shell options; callers run with `set -euo pipefail`.

# Guard against double sourcing.
if [[ -n "${_SWARM_LIB_SH:-}" ]]; then
    return 0
fi
_SWARM_LIB_SH=1

# log MSG... — timestamped message on stderr (stdout stays free for results).
log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

# warn MSG... — like log, marked as a warning.
warn() {
    printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

# die MSG... — print an error and exit 1.
die() {
    printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}

# need_root WHAT — exit with a clear message unless running as root.
need_root() {
    if [[ "$(id -u)" -ne 0 ]]; then
        die "${1:-this script} must run as root (it creates namespaces, cgroups and mounts); try: sudo $0"
    fi
}

# repo_root — print the repository root: the git top level around this file,
# else the parent of scripts/.
repo_root() {
    local here top
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
    if top="$(git -C "$here" rev-parse --show-toplevel 2>/dev/null)" && [[ -f "$top/Cargo.toml" ]]; then
        printf '%s\n' "$top"
    else
        (cd "$here/.." && pwd -P)
    fi
}
SWARM_ROOT="${SWARM_ROOT:-$(repo_root)}"

# _apt_pkg_installed PKG — true when dpkg has PKG fully installed.
_apt_pkg_installed() {
    local status
    status="$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" || return 1
    [[ "$status" == "installed" ]]
}

# _apt_has_candidate PKG — true when apt knows an installable version of PKG.
_apt_has_candidate() {
    local cand
    cand="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')"
    [[ -n "$cand" && "$cand" != "(none)" ]]
}

_SWARM_APT_UPDATED=""
_apt_update_once() {
    if [[ -z "$_SWARM_APT_UPDATED" ]]; then
        log "apt-get update"
        apt-get -o DPkg::Lock::Timeout=120 update -qq >&2 || warn "apt-get update failed"
        _SWARM_APT_UPDATED=1
    fi
}

# apt_install PKG... — install the packages that are not installed yet
# (--no-install-recommends). Runs `apt-get update` once when a package is
# unknown to apt; retries the install up to 3 times (the first install
# sometimes fails on a vanished temp file).
apt_install() {
    local pkg missing=() attempt
    for pkg in "$@"; do
        _apt_pkg_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ "$(id -u)" -eq 0 ]] || die "need root to install: ${missing[*]}"
    for pkg in "${missing[@]}"; do
        if ! _apt_has_candidate "$pkg"; then
            _apt_update_once
            break
        fi
    done
    log "apt-get install ${missing[*]}"
    for attempt in 1 2 3; do
        if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0 install -y -qq \
            --no-install-recommends "${missing[@]}" </dev/null >&2; then
            return 0
        fi
        warn "apt-get install failed (attempt $attempt/3)"
        if ((attempt < 3)); then
            sleep 2
            # A stale package list is the other usual cause: refresh it once.
            _apt_update_once
        fi
    done
    die "could not install: ${missing[*]}"
}

# sweep_run RUN_ID CGROUP_NAME_GLOB MAXDEPTH WORKDIR — after a benchmark: SIGKILL every
# process carrying SWARM_BENCH_RUN_ID=RUN_ID in its environment or living in a cgroup whose
# name matches the glob, remove those cgroups, and lazily unmount anything under WORKDIR.
sweep_run() {
    local run_id="$1" glob="$2" depth="$3" work="$4" cgs=() dir pid
    mapfile -t cgs < <(find /sys/fs/cgroup -mindepth 2 -maxdepth "$depth" -type d -name "$glob" 2>/dev/null)
    {
        for dir in /proc/[0-9]*; do
            grep -qzx -- "SWARM_BENCH_RUN_ID=$run_id" "$dir/environ" 2>/dev/null &&
                echo "${dir#/proc/}"
        done
        if ((${#cgs[@]})); then
            find "${cgs[@]}" -name cgroup.procs -exec cat {} + 2>/dev/null
        fi
    } | sort -un | while read -r pid; do
        [[ -n "$pid" && "$pid" != "$$" ]] && kill -KILL "$pid" 2>/dev/null
    done
    if ((${#cgs[@]})); then
        sleep 0.3
        find "${cgs[@]}" -depth -type d -exec rmdir {} \; 2>/dev/null
    fi
    findmnt -rn -o TARGET | grep -F -- "$work" | sort -r | while read -r dir; do
        umount -l "$(printf '%b' "$dir")"
    done
    return 0
}
