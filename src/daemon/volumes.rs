//! `/volumes`: the node's named volumes (agent::volumes) behind the API. Removal and prune
//! run with the containers' volume users, under the lock container creation takes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::agent::containers::Containers;
use crate::agent::volumes::{VolumeError, VolumeFilter};
use crate::api::ApiError;
use crate::types::volume::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};

/// Docker's status codes for volume errors.
pub(super) fn volume_error(e: VolumeError) -> ApiError {
    let message = e.to_string();
    match e {
        VolumeError::NotFound { .. } => ApiError::not_found(message),
        VolumeError::InUse { .. } => ApiError::conflict(message),
        VolumeError::BadName(_)
        | VolumeError::UnknownDriver { .. }
        | VolumeError::BadOption { .. }
        | VolumeError::BadFilter(_) => ApiError::bad_request(message),
        VolumeError::Io { .. } => ApiError::internal(message),
    }
}

/// Run a blocking volume operation off the async threads.
async fn blocking<T: Send + 'static>(
    containers: &Arc<Containers>,
    op: impl FnOnce(&Containers) -> Result<T, VolumeError> + Send + 'static,
) -> Result<T, ApiError> {
    let containers = containers.clone();
    tokio::task::spawn_blocking(move || op(&containers))
        .await
        .map_err(|e| ApiError::internal(format!("volume task failed: {e}")))?
        .map_err(volume_error)
}

pub(super) async fn list(
    containers: &Arc<Containers>,
    filters: BTreeMap<String, Vec<String>>,
) -> Result<VolumeListResponse, ApiError> {
    let filter = VolumeFilter::for_list(&filters).map_err(volume_error)?;
    blocking(containers, move |c| {
        let volumes = c.with_volume_users(|volumes, users| {
            volumes
                .list()
                .into_iter()
                .filter(|v| filter.matches(v, users.get(&v.name).is_some_and(|u| !u.is_empty())))
                .collect()
        });
        Ok(VolumeListResponse {
            volumes,
            warnings: Vec::new(),
        })
    })
    .await
}

pub(super) async fn create(
    containers: &Arc<Containers>,
    request: VolumeCreateRequest,
) -> Result<Volume, ApiError> {
    blocking(containers, move |c| c.volumes().create(request)).await
}

pub(super) async fn inspect(
    containers: &Arc<Containers>,
    name: String,
) -> Result<Volume, ApiError> {
    blocking(containers, move |c| c.volumes().get(&name)).await
}

pub(super) async fn remove(
    containers: &Arc<Containers>,
    name: String,
    force: bool,
) -> Result<(), ApiError> {
    blocking(containers, move |c| {
        c.with_volume_users(|volumes, users| volumes.remove(&name, force, users))
    })
    .await
}

pub(super) async fn prune(
    containers: &Arc<Containers>,
    filters: BTreeMap<String, Vec<String>>,
) -> Result<VolumePruneResponse, ApiError> {
    let filter = VolumeFilter::for_prune(&filters).map_err(volume_error)?;
    blocking(containers, move |c| {
        let report = c.with_volume_users(|volumes, users| volumes.prune(&filter, users));
        Ok(VolumePruneResponse {
            volumes_deleted: report.deleted,
            space_reclaimed: report.bytes,
        })
    })
    .await
}
