//! Waiting for a local container: `POST /containers/{id}/wait?condition=…` and `--rm`.
//!
//! ```text
//!  subscribe to removals ─▶ observe ─▶ Waiter::see ─▶ met? ─▶ exit code
//!        ▲                                  │ not yet
//!        └── a removal event │ the init's pidfd turns readable │ a re-check timer
//! ```
//!
//! [`Waiter`] is the pure part: it is fed what each look at the container found and says
//! when the condition is met and with which exit code. [`begin`] registers a wait (blocking,
//! before the client is answered); [`finish`] drives it without a thread per waiter (the
//! pidfd is polled by tokio), so dropping the future (a client that went away) ends the
//! wait and frees everything it held.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::containers::{ContainerError, ContainerEvent, Containers, Observed};
use crate::types::container::WaitCondition;

/// How often a waiter looks again without being told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitSettings {
    /// While the helper records an exit: it takes a moment after the init is gone.
    pub exit_recorded: Duration,
    /// Otherwise: catches what no event announces (state changed behind the daemon's back,
    /// e.g. `swarm runtime delete`, or removals missed by a lagging subscriber).
    pub recheck: Duration,
}

impl Default for WaitSettings {
    fn default() -> Self {
        WaitSettings {
            exit_recorded: Duration::from_millis(10),
            recheck: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// Docker's wait semantics over successive looks at one container.
#[derive(Debug, Clone)]
pub struct Waiter {
    condition: WaitCondition,
    /// The last exit code seen; a container removed before it exited ended with 0.
    last_exit: Option<i64>,
    /// `next-exit`: the container was seen alive, so its next stop is the exit waited for.
    /// (A stopped container cannot be started again here, so one first seen stopped only
    /// ends the wait by being removed.)
    seen_alive: bool,
}

impl Waiter {
    pub fn new(condition: WaitCondition) -> Self {
        Waiter {
            condition,
            last_exit: None,
            seen_alive: false,
        }
    }

    /// Feed one look at the container: the exit code once the condition is met.
    pub fn see(&mut self, seen: Observed) -> Option<i64> {
        use Observed::*;
        use WaitCondition::*;
        match seen {
            Exited(code) | Dead(Some(code)) | Gone(Some(code)) => self.last_exit = Some(code),
            Created | Running => self.seen_alive = true,
            Exiting | Dead(None) | Gone(None) => {}
        }
        let code = self.last_exit.unwrap_or(0);
        let met = match (self.condition, seen) {
            // Removal ends every wait, as in Docker (a created container that is removed
            // never stops).
            (_, Gone(_)) => true,
            (NotRunning, Created | Exited(_) | Dead(_)) => true,
            (NextExit, Exited(_) | Dead(_)) => self.seen_alive,
            _ => false,
        };
        met.then_some(code)
    }

    /// A removal event: every condition is met, with the code the container ended with.
    pub fn removed(&mut self, exit_code: i64) -> i64 {
        self.last_exit = Some(exit_code);
        exit_code
    }
}

/// A wait registered with the container: subscribed to its removal and with its first look
/// taken. Made before the client is answered (see [`begin`]).
pub struct Registered {
    id: String,
    waiter: Waiter,
    events: tokio::sync::broadcast::Receiver<ContainerEvent>,
    first: Look,
}

/// The init's pidfd (if alive, opened before the look so that an exit after the look still
/// wakes us) and what the look found.
type Look = (Option<OwnedFd>, Observed);

/// Register a wait on container `id` (a full id): blocking (it reads the runtime's state).
/// Docker registers a waiter before it sends the wait's headers, and the docker CLI starts
/// the container as soon as it has them: the first look must come before, or a container
/// that runs and exits at once would be seen only stopped and `next-exit` never met.
pub fn begin(
    containers: &Containers,
    id: &str,
    condition: WaitCondition,
) -> Result<Registered, ContainerError> {
    let events = containers.subscribe();
    let first = look(containers, id)?;
    Ok(Registered {
        id: id.to_string(),
        waiter: Waiter::new(condition),
        events,
        first,
    })
}

/// Wait until the registered condition holds; the container's exit code. Ends early with
/// [`WaitError::ShuttingDown`] when `stop` is cancelled. Cancel-safe: dropping the future
/// leaves nothing behind.
pub async fn finish(
    registered: Registered,
    containers: Arc<Containers>,
    settings: WaitSettings,
    stop: CancellationToken,
) -> Result<i64, WaitError> {
    let Registered {
        id,
        mut waiter,
        mut events,
        first,
    } = registered;
    let mut next = Some(first);
    loop {
        let (exit_fd, seen) = match next.take() {
            Some(first) => first,
            None => {
                let (containers, id) = (containers.clone(), id.clone());
                tokio::task::spawn_blocking(move || look(&containers, &id))
                    .await
                    .map_err(|_| WaitError::ShuttingDown)??
            }
        };
        if let Some(code) = waiter.see(seen) {
            return Ok(code);
        }
        let exit_fd = match exit_fd {
            // Should tokio refuse it, the timer still catches the exit.
            Some(fd) if matches!(seen, Observed::Created | Observed::Running) => {
                crate::runtime::sys::async_pidfd(fd).ok()
            }
            _ => None,
        };
        let pause = if seen == Observed::Exiting {
            settings.exit_recorded
        } else {
            settings.recheck
        };
        tokio::select! {
            _ = stop.cancelled() => return Err(WaitError::ShuttingDown),
            event = events.recv() => match event {
                Ok(ContainerEvent::Removed { id: removed, exit_code }) if removed == id => {
                    return Ok(waiter.removed(exit_code));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                // The sender lives as long as `containers`, which we hold.
                Err(RecvError::Closed) => return Err(WaitError::ShuttingDown),
            },
            _ = exited(exit_fd.as_ref()) => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// [`begin`] and [`finish`] in one, for waits no client is waiting to hear about.
pub async fn wait(
    containers: Arc<Containers>,
    id: String,
    condition: WaitCondition,
    settings: WaitSettings,
    stop: CancellationToken,
) -> Result<i64, WaitError> {
    let registered = {
        let containers = containers.clone();
        tokio::task::spawn_blocking(move || begin(&containers, &id, condition))
            .await
            .map_err(|_| WaitError::ShuttingDown)??
    };
    finish(registered, containers, settings, stop).await
}

fn look(containers: &Containers, id: &str) -> Result<Look, ContainerError> {
    // No pidfd (whatever the reason) only means no early wake-up; the look decides.
    let fd = containers.exit_fd(id).ok().flatten();
    let seen = containers.observe(id)?;
    Ok((fd, seen))
}

/// Resolves when the pidfd turns readable (the process exited); never without one.
async fn exited(fd: Option<&AsyncFd<OwnedFd>>) {
    match fd {
        Some(fd) => {
            let _ = fd.readable().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Observed::*;
    use WaitCondition::*;

    fn run(condition: WaitCondition, looks: &[Observed]) -> Vec<Option<i64>> {
        let mut waiter = Waiter::new(condition);
        looks.iter().map(|seen| waiter.see(*seen)).collect()
    }

    #[test]
    fn t10_not_running_returns_at_once_unless_running() {
        assert_eq!(run(NotRunning, &[Created]), vec![Some(0)]);
        assert_eq!(run(NotRunning, &[Exited(3)]), vec![Some(3)]);
        assert_eq!(run(NotRunning, &[Dead(None)]), vec![Some(0)]);
        assert_eq!(
            run(NotRunning, &[Running, Exiting, Exited(137)]),
            vec![None, None, Some(137)]
        );
    }

    #[test]
    fn t10_next_exit_waits_through_the_start() {
        assert_eq!(
            run(NextExit, &[Created, Running, Exiting, Exited(2)]),
            vec![None, None, None, Some(2)]
        );
        // Started and exited between two looks: still the next exit.
        assert_eq!(run(NextExit, &[Created, Exited(5)]), vec![None, Some(5)]);
        // The runtime state vanished under a live container: it ended.
        assert_eq!(run(NextExit, &[Running, Dead(None)]), vec![None, Some(0)]);
        // `rm -f` killed it and is removing it: the code the removal recorded.
        assert_eq!(
            run(NextExit, &[Running, Dead(Some(137))]),
            vec![None, Some(137)]
        );
    }

    #[test]
    fn t10_next_exit_of_a_stopped_container_waits_for_its_removal() {
        assert_eq!(
            run(NextExit, &[Exited(1), Exited(1), Gone(None)]),
            vec![None, None, Some(1)]
        );
    }

    #[test]
    fn t10_removed_waits_past_the_exit_and_keeps_its_code() {
        assert_eq!(
            run(
                Removed,
                &[Created, Running, Exited(4), Dead(None), Gone(None)]
            ),
            vec![None, None, None, None, Some(4)]
        );
        // Exited and removed between two looks: the code removal recorded.
        assert_eq!(
            run(Removed, &[Running, Dead(Some(3)), Gone(Some(3))]),
            vec![None, None, Some(3)]
        );
        let mut waiter = Waiter::new(Removed);
        assert_eq!(waiter.see(Running), None);
        assert_eq!(waiter.removed(137), 137);
    }

    #[test]
    fn t10_removal_ends_every_wait() {
        for condition in [NotRunning, NextExit, Removed] {
            assert_eq!(run(condition, &[Running, Gone(None)]), vec![None, Some(0)]);
            assert_eq!(
                run(condition, &[Running, Gone(Some(9))]),
                vec![None, Some(9)]
            );
        }
    }

    #[test]
    fn t10_conditions_parse_by_dockers_names() {
        assert_eq!("".parse(), Ok(NotRunning));
        assert_eq!("not-running".parse(), Ok(NotRunning));
        assert_eq!("next-exit".parse(), Ok(NextExit));
        assert_eq!("removed".parse(), Ok(Removed));
        let bad = "sometime".parse::<WaitCondition>().unwrap_err();
        assert!(bad.contains("invalid condition: \"sometime\""), "{bad}");
    }
}
