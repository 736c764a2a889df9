//! Waiting on local containers behind the API (`POST /containers/{id}/wait`) and `--rm`
//! (Docker's AutoRemove). Each wait is one task driving an agent::wait future; it ends when
//! the condition holds, when its client goes away, or when the daemon stops.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::agent::containers::{ContainerError, Containers, Observed};
use crate::agent::wait::{Registered, WaitError, WaitSettings, finish, wait};
use crate::types::container::{ContainerWaitResponse, WaitCondition, WaitExitError};

/// Finish a registered wait in the background: the answer comes on the receiver. Dropping
/// the receiver (the HTTP body of a client that went away) ends the wait; so does `stop`,
/// which drops the sender unanswered.
pub(super) fn answer(
    containers: Arc<Containers>,
    registered: Registered,
    settings: WaitSettings,
    stop: CancellationToken,
) -> oneshot::Receiver<ContainerWaitResponse> {
    let (mut tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let outcome = tokio::select! {
            _ = tx.closed() => {
                tracing::debug!("a wait abandoned by its client");
                return;
            }
            outcome = finish(registered, containers, settings, stop) => outcome,
        };
        let response = match outcome {
            Ok(code) => ContainerWaitResponse {
                status_code: code,
                error: None,
            },
            Err(WaitError::ShuttingDown) => return,
            Err(e) => ContainerWaitResponse {
                status_code: -1,
                error: Some(WaitExitError {
                    message: e.to_string(),
                }),
            },
        };
        let _ = tx.send(response);
    });
    rx
}

/// `--rm`: remove container `id` (with its anonymous volumes) once it is no longer running.
/// Called after a successful start.
pub(super) fn auto_remove(
    containers: Arc<Containers>,
    id: String,
    settings: WaitSettings,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let waited = wait(
            containers.clone(),
            id.clone(),
            WaitCondition::NotRunning,
            settings,
            stop,
        )
        .await;
        match waited {
            Ok(_) => {}
            // Picked up again when the daemon starts (see `resume_auto_remove`).
            Err(WaitError::ShuttingDown) => return,
            Err(e) => tracing::warn!(container = %id, "auto-remove: cannot wait: {e}"),
        }
        let target = id.clone();
        let removed =
            tokio::task::spawn_blocking(move || containers.remove_with(&target, true, true)).await;
        match removed {
            // Removed already (`docker rm -f` came first): nothing to do.
            Ok(Ok(())) | Ok(Err(ContainerError::NotFound(_))) => {}
            Ok(Err(e)) => tracing::warn!(container = %id, "auto-remove: {e}"),
            Err(e) => tracing::warn!(container = %id, "auto-remove: {e}"),
        }
    });
}

/// At daemon start: `--rm` containers that were started before it went down (they outlive
/// the daemon) are watched again, and those that exited meanwhile removed.
pub(super) async fn resume_auto_remove(
    containers: Arc<Containers>,
    settings: WaitSettings,
    stop: CancellationToken,
) {
    let found = {
        let containers = containers.clone();
        tokio::task::spawn_blocking(move || {
            containers
                .list(true)
                .into_iter()
                .filter_map(|summary| {
                    let inspect = containers.inspect(&summary.id).ok()?;
                    let started = !matches!(containers.observe(&summary.id), Ok(Observed::Created));
                    (inspect.host_config.auto_remove && started).then_some(summary.id)
                })
                .collect::<Vec<String>>()
        })
        .await
        .unwrap_or_default()
    };
    for id in found {
        auto_remove(containers.clone(), id, settings, stop.clone());
    }
}
