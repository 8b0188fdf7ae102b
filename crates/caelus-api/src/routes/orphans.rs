//! Orphans (admin): objects carrying this installation's label that the
//! database does not account for. A scan only reports; a clean is a dry run
//! unless `confirm` is true, and audits every deletion with the caller.

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use caelus_reconciler::{CleanReport, Finding, OrphanError, OrphanScanner};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One orphan: what, where, why, how old.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrphanView {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    /// Why it is an orphan.
    pub reason: String,
    pub age_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_uid: Option<String>,
    /// Being deleted but held by these finalizers (reported, never forced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck_on_finalizers: Option<Vec<String>>,
    /// What a stuck namespace's conditions say it waits for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// Only in a clean's `kept` list: why it was not deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_kept: Option<String>,
}

impl From<Finding> for OrphanView {
    fn from(f: Finding) -> Self {
        OrphanView {
            api_version: f.api_version,
            kind: f.kind,
            namespace: f.namespace,
            name: f.name,
            uid: f.uid,
            reason: f.reason,
            age_seconds: f.age_seconds,
            deployment_uid: f.deployment_uid,
            stuck_on_finalizers: f.stuck_on_finalizers,
            conditions: f.conditions,
            why_kept: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrphanList {
    pub items: Vec<OrphanView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanRequest {
    /// Delete for real; without it the clean is a dry run.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanView {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Deleted (in a dry run: what would be).
    pub deleted: Vec<OrphanView>,
    /// Found by the scan but kept, each with `whyKept`.
    pub kept: Vec<OrphanView>,
}

impl From<CleanReport> for CleanView {
    fn from(r: CleanReport) -> Self {
        CleanView {
            dry_run: r.dry_run,
            deleted: r.deleted.into_iter().map(Into::into).collect(),
            kept: r
                .kept
                .into_iter()
                .map(|k| OrphanView {
                    why_kept: Some(k.why_kept),
                    ..k.finding.into()
                })
                .collect(),
        }
    }
}

fn scanner(state: &AppState) -> ApiResult<&OrphanScanner> {
    state.orphans.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "this API server has no cluster to scan: start it in a cluster or with --kubeconfig",
        )
    })
}

fn scan_error(e: OrphanError) -> ApiError {
    match e {
        OrphanError::Store(e) => e.into(),
        OrphanError::Engine(e) if e.is_transient() => {
            ApiError::unavailable(format!("the cluster did not answer: {e}"))
        }
        OrphanError::Engine(e) => ApiError::internal(e),
    }
}

/// Scan for orphans (admin): lists them, deletes nothing.
#[utoipa::path(get, path = "/api/v1/orphans", tag = "orphans", operation_id = "scan_orphans",
    responses((status = 200, body = OrphanList), (status = 403, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn scan_orphans(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<OrphanList>> {
    actor.require_admin("scan for orphans")?;
    let found = scanner(&state)?.scan().await.map_err(scan_error)?;
    Ok(Json(OrphanList {
        items: found.into_iter().map(Into::into).collect(),
    }))
}

/// Clean orphans (admin): a dry run unless `confirm` is true. Each orphan is
/// deleted only if the database, re-read at that moment, still does not
/// account for it; every deletion is audited with the caller.
#[utoipa::path(post, path = "/api/v1/orphans/clean", tag = "orphans", operation_id = "clean_orphans",
    request_body = CleanRequest,
    responses((status = 200, body = CleanView), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn clean_orphans(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CleanRequest>,
) -> ApiResult<Json<CleanView>> {
    actor.require_admin("clean orphans")?;
    let report = scanner(&state)?
        .clean(req.confirm, &actor.label())
        .await
        .map_err(scan_error)?;
    Ok(Json(report.into()))
}
