//! Web UI sessions. They live in the database so that any API replica serves any
//! signed-in browser, without sticky sessions. Only a SHA-256 of the session id
//! is stored (the cookie holds the id): a database leak yields no usable cookie.
//! A session names the API token it signed in with, never the token's secret.

use crate::{Conn, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq)]
pub struct UiSession {
    pub id_hash: String,
    pub token_id: String,
    /// The per-session CSRF token every form must echo.
    pub csrf: String,
    /// A one-time message for the next page: (kind, text).
    pub flash: Option<(String, String)>,
    pub created_at: i64,
    pub expires_at: i64,
}

fn from_row(r: &AnyRow) -> Result<UiSession> {
    let kind: Option<String> = r.try_get("flash_kind")?;
    let message: Option<String> = r.try_get("flash_message")?;
    Ok(UiSession {
        id_hash: r.try_get("id_hash")?,
        token_id: r.try_get("token_id")?,
        csrf: r.try_get("csrf")?,
        flash: kind.zip(message),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

pub async fn insert(conn: &mut Conn, s: &UiSession) -> Result<()> {
    sqlx::query(
        "INSERT INTO ui_sessions (id_hash, token_id, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&s.id_hash)
    .bind(&s.token_id)
    .bind(&s.csrf)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The session with this id hash, if it has not expired at `now`.
pub async fn get_live(conn: &mut Conn, id_hash: &str, now: i64) -> Result<Option<UiSession>> {
    sqlx::query("SELECT * FROM ui_sessions WHERE id_hash = $1 AND expires_at > $2")
        .bind(id_hash)
        .bind(now)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Ends one session (sign-out). Returns whether it existed.
pub async fn delete(conn: &mut Conn, id_hash: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every session of a token (it was revoked or expired).
pub async fn delete_for_token(conn: &mut Conn, token_id: &str) -> Result<u64> {
    let done = sqlx::query("DELETE FROM ui_sessions WHERE token_id = $1")
        .bind(token_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Forgets sessions that expired before `now`; returns how many.
pub async fn delete_expired(conn: &mut Conn, now: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Sets the one-time message of a session (replacing any unread one).
pub async fn set_flash(conn: &mut Conn, id_hash: &str, kind: &str, message: &str) -> Result<()> {
    sqlx::query("UPDATE ui_sessions SET flash_kind = $1, flash_message = $2 WHERE id_hash = $3")
        .bind(kind)
        .bind(message)
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads and clears the one-time message. Cleared only if unchanged, so a message
/// set by a concurrent request (another replica) is not lost unread.
pub async fn take_flash(conn: &mut Conn, id_hash: &str) -> Result<Option<(String, String)>> {
    let row = sqlx::query("SELECT * FROM ui_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(flash) = row
        .as_ref()
        .map(from_row)
        .transpose()?
        .and_then(|s| s.flash)
    else {
        return Ok(None);
    };
    let done = sqlx::query(
        "UPDATE ui_sessions SET flash_kind = NULL, flash_message = NULL
         WHERE id_hash = $1 AND flash_kind = $2 AND flash_message = $3",
    )
    .bind(id_hash)
    .bind(&flash.0)
    .bind(&flash.1)
    .execute(conn)
    .await?;
    Ok((done.rows_affected() == 1).then_some(flash))
}
