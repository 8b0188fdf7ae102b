pub mod adoption;
pub mod audit;
pub mod certification;
pub mod deployments;
pub mod diff;
pub mod health;
pub mod hook_tests;
pub mod orphans;
pub mod products;
pub mod reach;
pub mod templates;
pub mod tokens;
pub mod upgrades;

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::views::PageQuery;
use caelus_store::page::{MAX_LIMIT, clamp_limit};
use caelus_store::{Conn, Cursor, events, now_ms};
use serde_json::Value;

/// Validates `limit` and decodes `cursor`, naming the parameter on error.
pub(crate) fn page_params(q: &PageQuery) -> ApiResult<(i64, Option<Cursor>)> {
    if let Some(limit) = q.limit
        && !(1..=MAX_LIMIT).contains(&limit)
    {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            Cursor::decode(c)
                .map_err(|_| ApiError::bad_request("cursor", "is not a cursor this server issued"))
        })
        .transpose()?;
    Ok((clamp_limit(q.limit), cursor))
}

/// A page of rows fetched with `limit + 1`: keeps `limit`, and when more remain
/// the next cursor is the last kept row's number (revision number, event id),
/// which the list endpoints take back as `before` / `after`.
pub(crate) fn numbered_page<T, V: From<T> + utoipa::ToSchema>(
    mut rows: Vec<T>,
    limit: i64,
    number: impl Fn(&T) -> i64,
) -> crate::views::ListResponse<V> {
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| number(r).to_string())
    } else {
        None
    };
    crate::views::ListResponse {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }
}

/// One audit event, written in the same transaction as the change it records.
pub(crate) struct Audit<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub subject: String,
    pub deployment_uid: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub message: String,
    pub details: Value,
}

impl Audit<'_> {
    pub async fn write(self, conn: &mut Conn) -> ApiResult<()> {
        let label = self.actor.label();
        events::insert(
            conn,
            &events::NewEvent {
                deployment_uid: self.deployment_uid,
                tenant: self.tenant,
                subject: self.subject,
                action: self.action,
                actor: &label,
                message: self.message,
                details: self.details,
            },
            now_ms(),
        )
        .await?;
        Ok(())
    }
}
