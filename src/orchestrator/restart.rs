//! The restart policy (pure): whether, and when, a slot whose task ended gets a new one.
//!
//! ```text
//!  task ended ──▶ condition? ── none, or on-failure and it completed ──▶ Never
//!                    │ any / on-failure and it failed
//!                    ▼
//!           max attempts used? ── yes ──▶ Never (the slot stays finished)
//!                    │ no
//!                    ▼
//!           lost with its node (orphaned)? ── yes ──▶ At(ended): no delay
//!                    │ no
//!                    ▼
//!           At(ended + delay × 2^(quick failures before it), capped)
//! ```
//!
//! Docker's rules, with three choices of ours:
//! * **A lost task is replaced at once.** A task orphaned because its node went down or
//!   left did not fail; its node did. The condition and `MaxAttempts` still apply (it counts
//!   as an attempt), but the delay does not: it exists to slow a crash loop, and waiting
//!   here only lengthens the outage. (Docker waits the delay, 5 s by default, which is part
//!   of its ≈ 20 s from a node's death to its tasks running elsewhere.) A loss also breaks
//!   the backoff streak, like a stop on request.
//! * **Exponential backoff.** Docker waits `Delay` (default 5 s) before every restart. We
//!   double it for each failure in a row of a task that ran less than
//!   [`Defaults::backoff_reset`](super::Defaults), up to [`Defaults::max_restart_delay`]
//!   (never below the policy's own delay). A task that ran long enough starts over at `Delay`.
//!   The streak is read from the slot's history, so it is at most the retention limit long.
//! * **Decisions are reproducible.** Attempts within `Window` are counted back from the time
//!   the task ended, not from now, so a slot that gave up stays given up (as in Docker) even
//!   though the orchestrator re-evaluates every slot on every pass.
//!
//! Attempts are counted per spec version, as Docker does: after `service update`, a slot
//! starts with a clean record.

use std::time::Duration;

use super::Defaults;
use crate::types::Timestamp;
use crate::types::service::{self, TaskState};

/// `RestartPolicy.Condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    None,
    OnFailure,
    /// Docker's default.
    #[default]
    Any,
}

/// A service's restart policy with Docker's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub condition: Condition,
    /// Nanoseconds before the first restart.
    pub delay: i64,
    /// 0: no limit.
    pub max_attempts: u64,
    /// Nanoseconds; 0: attempts are counted over the slot's whole life.
    pub window: i64,
}

impl RestartPolicy {
    pub fn of(spec: Option<&service::RestartPolicy>, defaults: &Defaults) -> RestartPolicy {
        let spec = spec.cloned().unwrap_or_default();
        RestartPolicy {
            condition: match spec.condition.as_str() {
                "none" => Condition::None,
                "on-failure" => Condition::OnFailure,
                _ => Condition::Any,
            },
            delay: spec
                .delay
                .unwrap_or_else(|| nanos(defaults.restart_delay))
                .max(0),
            max_attempts: spec.max_attempts.unwrap_or(0),
            window: spec.window.unwrap_or(0).max(0),
        }
    }
}

/// One task of a slot as the policy sees it (statuses as this pass will leave them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub state: TaskState,
    /// When it reached `state` (its status timestamp).
    pub ended_at: Timestamp,
    pub created_at: Timestamp,
    pub attempt: u64,
    pub spec_version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The slot is finished: no new task.
    Never,
    /// A new task, not before this time.
    At(Timestamp),
}

/// Whether the slot gets a new task after `history[0]` ended on its own (complete, failed,
/// rejected, orphaned). `history`: the slot's tasks, newest first.
pub fn decide(policy: &RestartPolicy, history: &[Record], defaults: &Defaults) -> Decision {
    let Some(last) = history.first() else {
        return Decision::At(Timestamp(0));
    };
    let wanted = match policy.condition {
        Condition::None => false,
        Condition::OnFailure => last.state != TaskState::Complete,
        Condition::Any => true,
    };
    let exhausted =
        policy.max_attempts > 0 && attempts_used(policy, history) >= policy.max_attempts;
    if !wanted || exhausted {
        return Decision::Never;
    }
    if last.state == TaskState::Orphaned {
        return Decision::At(last.ended_at);
    }
    Decision::At(Timestamp(
        last.ended_at
            .0
            .saturating_add(delay(policy, history, defaults)),
    ))
}

/// Restarts that count against `MaxAttempts`.
fn attempts_used(policy: &RestartPolicy, history: &[Record]) -> u64 {
    let Some(last) = history.first() else {
        return 0;
    };
    if policy.window == 0 {
        return last.attempt;
    }
    let since = last.ended_at.0.saturating_sub(policy.window);
    history
        .iter()
        .filter(|r| {
            r.attempt >= 1
                && r.spec_version == last.spec_version
                && (since..=last.ended_at.0).contains(&r.created_at.0)
        })
        .count() as u64
}

/// The backoff: `delay × 2^(quick failures in a row − 1)`, capped.
fn delay(policy: &RestartPolicy, history: &[Record], defaults: &Defaults) -> i64 {
    let reset = nanos(defaults.backoff_reset);
    let quick = history
        .iter()
        .take_while(|r| {
            r.state.is_terminal()
                && r.state != TaskState::Shutdown
                && r.state != TaskState::Orphaned
                && r.ended_at.0.saturating_sub(r.created_at.0) < reset
        })
        .count();
    let doublings = quick.saturating_sub(1).min(32) as u32;
    let backed_off = policy
        .delay
        .saturating_mul(1i64 << doublings)
        .min(nanos(defaults.max_restart_delay));
    backed_off.max(policy.delay)
}

pub(super) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn record(state: TaskState, created: i64, ended: i64, attempt: u64) -> Record {
        Record {
            state,
            ended_at: Timestamp(ended * S),
            created_at: Timestamp(created * S),
            attempt,
            spec_version: 1,
        }
    }

    fn policy(condition: Condition, max_attempts: u64, window: i64) -> RestartPolicy {
        RestartPolicy {
            condition,
            delay: 5 * S,
            max_attempts,
            window: window * S,
        }
    }

    #[test]
    fn t10_docker_defaults_fill_an_empty_policy() {
        let d = Defaults::default();
        let p = RestartPolicy::of(None, &d);
        assert_eq!(p, policy(Condition::Any, 0, 0));
        let spec = service::RestartPolicy {
            condition: "on-failure".into(),
            delay: Some(0),
            max_attempts: Some(3),
            window: Some(60 * S),
        };
        let p = RestartPolicy::of(Some(&spec), &d);
        assert_eq!(
            (p.condition, p.delay, p.max_attempts, p.window),
            (Condition::OnFailure, 0, 3, 60 * S)
        );
    }

    #[test]
    fn t20_conditions() {
        let d = Defaults::default();
        let failed = [record(TaskState::Failed, 0, 100, 0)];
        let complete = [record(TaskState::Complete, 0, 100, 0)];
        let at = Decision::At(Timestamp(105 * S));
        assert_eq!(
            decide(&policy(Condition::None, 0, 0), &failed, &d),
            Decision::Never
        );
        assert_eq!(decide(&policy(Condition::OnFailure, 0, 0), &failed, &d), at);
        assert_eq!(
            decide(&policy(Condition::OnFailure, 0, 0), &complete, &d),
            Decision::Never
        );
        assert_eq!(decide(&policy(Condition::Any, 0, 0), &complete, &d), at);
        // Lost with its node: replaced at once, under the condition and max attempts.
        let lost = [record(TaskState::Orphaned, 0, 100, 0)];
        let now = Decision::At(Timestamp(100 * S));
        assert_eq!(decide(&policy(Condition::OnFailure, 0, 0), &lost, &d), now);
        assert_eq!(decide(&policy(Condition::Any, 0, 0), &lost, &d), now);
        assert_eq!(
            decide(&policy(Condition::None, 0, 0), &lost, &d),
            Decision::Never
        );
        let lost_again = [record(TaskState::Orphaned, 0, 100, 2)];
        assert_eq!(
            decide(&policy(Condition::Any, 2, 0), &lost_again, &d),
            Decision::Never
        );
    }

    #[test]
    fn t30_max_attempts_over_the_slots_life_or_within_the_window() {
        let d = Defaults::default();
        let p = policy(Condition::Any, 2, 0);
        let after = |attempt| [record(TaskState::Failed, 0, 100, attempt)];
        assert!(matches!(decide(&p, &after(1), &d), Decision::At(_)));
        assert_eq!(decide(&p, &after(2), &d), Decision::Never);

        // Two restarts within 60 s of the last failure: given up. Counted back from when it
        // ended, so the answer does not change as time goes by.
        let p = policy(Condition::Any, 2, 60);
        let history = [
            record(TaskState::Failed, 150, 160, 3),
            record(TaskState::Failed, 120, 140, 2),
            record(TaskState::Failed, 10, 110, 1),
        ];
        assert_eq!(decide(&p, &history, &d), Decision::Never);
        let history = [
            record(TaskState::Failed, 150, 160, 3),
            record(TaskState::Failed, 10, 140, 2),
        ];
        assert!(matches!(decide(&p, &history, &d), Decision::At(_)));
        // A new spec version starts a clean record.
        let mut fresh = history;
        fresh[0].spec_version = 2;
        fresh[0].attempt = 0;
        assert!(matches!(decide(&p, &fresh, &d), Decision::At(_)));
    }

    #[test]
    fn t40_backoff_doubles_for_quick_failures_and_is_capped() {
        let d = Defaults {
            max_restart_delay: Duration::from_secs(30),
            backoff_reset: Duration::from_secs(60),
            ..Defaults::default()
        };
        let p = policy(Condition::Any, 0, 0);
        // Newest first; each ran 1 s.
        let crash_loop: Vec<Record> = (0..6)
            .rev()
            .map(|i| record(TaskState::Failed, i * 10, i * 10 + 1, i as u64))
            .collect();
        let delays: Vec<i64> = (1..=6)
            .map(|n| match decide(&p, &crash_loop[6 - n..], &d) {
                Decision::At(t) => (t.0 - crash_loop[6 - n].ended_at.0) / S,
                Decision::Never => -1,
            })
            .collect();
        assert_eq!(delays, vec![5, 10, 20, 30, 30, 30]);

        // A task that ran for longer than `backoff_reset` starts over.
        let mut history = crash_loop.clone();
        history[0] = record(TaskState::Failed, 50, 500, 5);
        assert_eq!(decide(&p, &history, &d), Decision::At(Timestamp(505 * S)));
        // A task stopped on request breaks the streak too, and so does one lost with its node.
        let mut history = crash_loop;
        history[1].state = TaskState::Shutdown;
        assert_eq!(decide(&p, &history, &d), Decision::At(Timestamp(56 * S)));
        history[1].state = TaskState::Orphaned;
        assert_eq!(decide(&p, &history, &d), Decision::At(Timestamp(56 * S)));
    }
}
