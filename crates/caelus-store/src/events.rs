//! The append-only timeline per deployment; also the audit log of every API write.

use crate::error::{json_col, to_json};
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
