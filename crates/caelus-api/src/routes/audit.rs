//! The global audit log: every API write and every control-plane action, for admins.

use super::page_params;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::{EventView, ListResponse, PageQuery};
use axum::Json;
use axum::extract::{Query, State};
use caelus_store::events::{self, EventFilter};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Items per page (1–500, default 50).
    pub limit: Option<i64>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Only this actor's events: `token:<name>` (any tenant suffix) or a full label.
    pub actor: Option<String>,
    /// Only this action, e.g. `deployment.create`.
    pub action: Option<String>,
    /// Only events of this tenant.
    pub tenant: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Only events before this instant (RFC 3339).
    pub until: Option<String>,
}

fn instant(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::bad_request(
                        field,
                        format!("'{v}' is not an RFC 3339 time such as 2026-01-31T12:00:00Z"),
                    )
                })
        })
        .transpose()
}

/// A filter value that was given must say something: an empty one is refused
/// rather than read as "everything".
fn non_empty(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.trim().is_empty() => Err(ApiError::bad_request(
            field,
            "must not be empty: omit it to match every value",
        )),
        v => Ok(v),
    }
}

/// The global audit log (admin), newest first: who did what to which tenant's
/// objects, and what the control plane did on its own.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", operation_id = "list_events",
    params(AuditQuery),
    responses((status = 200, body = ListResponse<EventView>), (status = 400, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_events(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<ListResponse<EventView>>> {
    actor.require_admin("read the global audit log")?;
    let (limit, cursor) = page_params(&PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    })?;
    let since = instant("since", q.since.as_deref())?;
    let until = instant("until", q.until.as_deref())?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(ApiError::bad_request("until", "must be later than since"));
    }
    let filter = EventFilter {
        actor: non_empty("actor", q.actor)?,
        action: non_empty("action", q.action)?,
        tenant: non_empty("tenant", q.tenant)?,
        since,
        until,
    };
    let mut conn = state.store.conn().await?;
    let page = events::list_filtered(&mut conn, &filter, limit, cursor.as_ref()).await?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}
