//! Crash points for fault-injection tests (scenario F8 of the fault plan: `kill -9` at every
//! persistence step).
//!
//! `crash_point!("store::before-append")` marks a step. Built without the `failpoints` cargo
//! feature it expands to nothing; release builds leave the feature out. Built with it, the
//! daemon arms the points named in its `FAILPOINTS` environment variable at start
//! (`NAME=ACTIONS;NAME=ACTIONS`, the `fail` crate's syntax), and a point armed with
//! `return` kills the process there:
//!
//! ```text
//!  FAILPOINTS="store::after-vote-save=return" swarm daemon …
//!    … the vote is committed to disk ─▶ crash_point! ─▶ "crash point …" on stderr
//!                                                     ─▶ SIGKILL to itself
//! ```
//!
//! The process dies of SIGKILL rather than `abort()` or a panic: no destructor runs, no
//! buffer is flushed, no core file is written, exactly as `kill -9` from outside would
//! leave it; a panic would unwind in debug builds, and one inside `spawn_blocking` would
//! come back as an error rather than a death. The line on stderr names the point, so a test
//! can tell the death it asked for from any other.
//!
//! Who calls it: `cluster::store` marks its steps; `cli::daemon` calls [`arm_from_env`].

/// Marks a persistence step where a test may crash the process (see the module docs).
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoints::eval($name);
    };
    // Only where `$cond` holds: a step reached on one path of several.
    ($name:literal, if $cond:expr) => {
        #[cfg(feature = "failpoints")]
        if $cond {
            $crate::failpoints::eval($name);
        }
        #[cfg(not(feature = "failpoints"))]
        let _ = $cond;
    };
}
pub(crate) use crash_point;

/// Evaluates crash point `point`: `fail_point!` without its early `return`, which would have
/// to fit every caller's return type and is never taken (the process is dead by then).
/// Only the `return` action reaches the closure; `sleep`, `pause` and the other actions act
/// inside `fail::eval` and come back here.
#[cfg(feature = "failpoints")]
pub fn eval(point: &str) {
    let _: Option<()> = fail::eval(point, |_| crash(point));
}

/// A `FAILPOINTS` entry the `fail` crate cannot parse.
#[cfg(feature = "failpoints")]
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid FAILPOINTS entry {entry:?}: {reason} (expected NAME=ACTIONS;…, e.g. store::before-append=return)"
)]
pub struct FailpointsError {
    entry: String,
    reason: String,
}

/// Arms the points named in `FAILPOINTS`; returns their names. `fail::FailScenario::setup`
/// reads the same variable but panics on a malformed one; this reports it instead.
#[cfg(feature = "failpoints")]
pub fn arm_from_env() -> Result<Vec<String>, FailpointsError> {
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return Ok(Vec::new());
    };
    let mut armed = Vec::new();
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let invalid = |reason: String| FailpointsError {
            entry: entry.to_owned(),
            reason,
        };
        let (name, actions) = entry
            .split_once('=')
            .ok_or_else(|| invalid("no '='".into()))?;
        fail::cfg(name.trim(), actions.trim()).map_err(invalid)?;
        armed.push(name.trim().to_owned());
    }
    Ok(armed)
}

/// Dies at `point` as `kill -9` would kill the process.
#[cfg(feature = "failpoints")]
pub fn crash(point: &str) -> ! {
    // stderr is unbuffered: the line is out before the signal.
    eprintln!("crash point {point}: killing this process with SIGKILL");
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    // Not reached: SIGKILL cannot be caught or ignored.
    std::process::abort()
}
