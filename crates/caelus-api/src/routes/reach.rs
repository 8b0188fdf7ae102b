//! How to reach what a deployment runs: the chart's rendered NOTES.txt.

use super::deployments::owned;
use crate::auth::Actor;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use caelus_store::revisions;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotesView {
    /// The revision the notes belong to: the one running (null before the first deploy).
    pub revision: Option<i64>,
    /// The chart's NOTES.txt as Helm rendered it for that revision (null if it has none).
    pub notes: Option<String>,
}

/// The rendered NOTES.txt of the deployment's running revision.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/notes", tag = "deployments",
    operation_id = "get_deployment_notes",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 200, body = NotesView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_deployment_notes(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<Json<NotesView>> {
    let mut conn = state.store.conn().await?;
    let d = owned(&mut conn, &actor, &uid).await?;
    let notes = match d.current_revision {
        Some(number) => revisions::get(&mut conn, &uid, number)
            .await?
            .and_then(|r| r.notes),
        None => None,
    };
    Ok(Json(NotesView {
        revision: d.current_revision,
        notes,
    }))
}
