//! What differs between the live objects of a deployment and what Caelus
//! applied: the drift pass's own comparison, asked for by a person.

use super::deployments::owned;
use super::reach::{cluster, cluster_error};
use super::upgrades::ObjectChange;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use caelus_core::drift::hide_secret_values;
use caelus_core::status::DesiredState;
use caelus_core::template::DriftMode;
use caelus_reconciler::CompareError;
use caelus_store::{revisions, templates};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentDiff {
    /// The revision whose objects were compared: the one running.
    pub revision: i64,
    /// The template version of that revision.
    pub version: String,
    /// What the worker does about drift.
    pub drift_mode: DriftMode,
    /// Every object Caelus applied is there, holding what Caelus applied.
    pub in_sync: bool,
    /// Objects Caelus applied that are gone (`Kind/name`).
    pub missing: Vec<String>,
    /// Objects whose fields differ, per field `{path, from, to}`: `from` is
    /// the live value, `to` what Caelus applied (what a correction restores).
    /// A Secret's values are shown as `(hidden)`.
    pub changed: Vec<ObjectChange>,
}

/// Live vs what Caelus applied, per object, by the comparison the drift pass
/// makes (only fields Caelus applied, list items by the API server's keys,
/// the template's ignore rules, suspicions confirmed by a server-side dry
/// run). Read-only, whatever the drift mode.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/diff", tag = "deployments",
    operation_id = "get_deployment_diff",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 200, body = DeploymentDiff), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_deployment_diff(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<Json<DeploymentDiff>> {
    let (d, last, version) = {
        let mut conn = state.store.conn().await?;
        let d = owned(&mut conn, &actor, &uid).await?;
        // Like the other reads from the cluster: 503 without one, whatever the deployment.
        cluster(&state)?;
        if d.desired_state == DesiredState::Absent {
            return Err(ApiError::conflict(format!(
                "deployment {uid} is deleted or being deleted: there is nothing to compare"
            )));
        }
        let last = revisions::last_deployed(&mut conn, &uid)
            .await?
            .ok_or_else(|| {
                ApiError::conflict(format!(
                    "deployment {uid} has no deployed revision yet: there is nothing to compare"
                ))
            })?;
        let version = templates::get_by_id(&mut conn, &last.template_version_id)
            .await?
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "revision {} of {uid} refers to a missing template version",
                    last.number
                ))
            })?;
        (d, last, version)
    };
    let engine = cluster(&state)?;
    let drifts =
        caelus_reconciler::live_drift(&state.store, &state.helm, engine, &d, &version, &last)
            .await
            .map_err(|e| match e {
                CompareError::Cluster(e) => cluster_error(e),
                render => ApiError::unavailable(render.to_string()),
            })?;
    let mut missing = Vec::new();
    let mut changed = Vec::new();
    for drift in drifts {
        let object = format!("{}/{}", drift.object.kind, drift.object.name);
        if drift.missing {
            missing.push(object);
        } else {
            let mut changes = drift.changes;
            hide_secret_values(&drift.object.kind, &mut changes);
            changed.push(ObjectChange { object, changes });
        }
    }
    Ok(Json(DeploymentDiff {
        revision: last.number,
        version: version.version,
        drift_mode: version.capabilities.drift_mode,
        in_sync: missing.is_empty() && changed.is_empty(),
        missing,
        changed,
    }))
}
