//! The append-only timeline per deployment; also the audit log of every API write.

use crate::error::{json_col, to_json};
use crate::page::{Cursor, Page, paginate};
use crate::{Conn, Result};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub at: i64,
    pub deployment_uid: Option<String>,
    pub tenant: Option<String>,
    /// What the event is about, e.g. `product/wiki` or `deployment/<uid>`.
    pub subject: String,
    /// Dotted verb, e.g. `deployment.create`.
    pub action: String,
    /// Who did it: `token:<name>` for API callers, `system` for the control plane itself.
    pub actor: String,
    pub message: String,
    pub details: Value,
}

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub deployment_uid: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub subject: String,
    pub action: &'a str,
    pub actor: &'a str,
    pub message: String,
    pub details: Value,
}

fn from_row(r: &AnyRow) -> Result<Event> {
    Ok(Event {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        deployment_uid: r.try_get("deployment_uid")?,
        tenant: r.try_get("tenant")?,
        subject: r.try_get("subject")?,
        action: r.try_get("action")?,
        actor: r.try_get("actor")?,
        message: r.try_get("message")?,
        details: json_col("details", &r.try_get::<String, _>("details")?)?,
    })
}

pub async fn insert(conn: &mut Conn, e: &NewEvent<'_>, at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (at, deployment_uid, tenant, subject, action, actor, message, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(e.deployment_uid)
    .bind(e.tenant)
    .bind(&e.subject)
    .bind(e.action)
    .bind(e.actor)
    .bind(&e.message)
    .bind(to_json(&e.details))
    .execute(conn)
    .await?;
    Ok(())
}

/// Events of one deployment after `after_id`, oldest first, at most `limit`.
pub async fn list_for_deployment(
    conn: &mut Conn,
    uid: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT * FROM events WHERE deployment_uid = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(uid)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The whole audit log after `after_id`, oldest first.
pub async fn list_all(conn: &mut Conn, after_id: i64, limit: i64) -> Result<Vec<Event>> {
    let rows = sqlx::query("SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT $2")
        .bind(after_id)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The actor of the newest event on a deployment not written by `except`
/// (the control plane itself): who asked for the current desired state.
pub async fn latest_actor(conn: &mut Conn, uid: &str, except: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT actor FROM events WHERE deployment_uid = $1 AND actor <> $2 ORDER BY id DESC LIMIT 1")
        .bind(uid)
        .bind(except)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.try_get("actor")).transpose()?)
}

/// Filters of the global audit log; each `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// `token:<name>` matches that token's events whatever tenant suffix the label
    /// carries; a full label (`token:ci (acme)`, `system`) matches exactly.
    pub actor: Option<String>,
    pub action: Option<String>,
    pub tenant: Option<String>,
    /// Events at or after this instant (ms).
    pub since: Option<i64>,
    /// Events before this instant (ms).
    pub until: Option<i64>,
}

/// The global audit log, newest first, `limit` at a time; `after` is the cursor of
/// the previous page (its last, oldest, event id).
pub async fn list_filtered(
    conn: &mut Conn,
    f: &EventFilter,
    limit: i64,
    after: Option<&Cursor>,
) -> Result<Page<Event>> {
    let before_id = after.map_or(i64::MAX, |c| c.key);
    let actor = f.actor.clone().unwrap_or_default();
    let actor_prefix = format!("{actor} (");
    // Each optional filter binds a "given" flag next to its value, so the text is
    // fixed and an empty value never matches everything.
    let rows = sqlx::query(
        "SELECT * FROM events WHERE id < $1
           AND ($2 = 0 OR actor = $3 OR substr(actor, 1, CAST($4 AS INTEGER)) = $5)
           AND ($6 = 0 OR action = $7)
           AND ($8 = 0 OR tenant = $9)
           AND ($10 = 0 OR at >= $11)
           AND ($12 = 0 OR at < $13)
         ORDER BY id DESC LIMIT $14",
    )
    .bind(before_id)
    .bind(i64::from(f.actor.is_some()))
    .bind(&actor)
    .bind(actor_prefix.chars().count() as i64)
    .bind(&actor_prefix)
    .bind(i64::from(f.action.is_some()))
    .bind(f.action.clone().unwrap_or_default())
    .bind(i64::from(f.tenant.is_some()))
    .bind(f.tenant.clone().unwrap_or_default())
    .bind(i64::from(f.since.is_some()))
    .bind(f.since.unwrap_or_default())
    .bind(i64::from(f.until.is_some()))
    .bind(f.until.unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(paginate(items, limit, |e| Cursor {
        key: e.id,
        id: String::new(),
    }))
}
