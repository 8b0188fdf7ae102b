//! API tokens. Only a SHA-256 hash of each token is stored: tokens are long random
//! strings, so a fast hash is enough, and a database leak reveals no usable token.

use crate::page::{Cursor, Page, paginate};
use crate::{Conn, Result, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: String,
    pub name: String,
    /// `admin` or `tenant`.
    pub role: String,
    /// The tenant a tenant token acts for; admin tokens carry none.
    pub tenant: Option<String>,
    pub token_hash: String,
    /// First characters of the secret, to recognise a token without storing it.
    pub prefix: String,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// After this instant the token no longer authenticates; `None`: never expires.
    pub expires_at: Option<i64>,
    /// The last successful authentication, at a resolution of [`LAST_USED_RESOLUTION_MS`].
    pub last_used_at: Option<i64>,
}

/// `last_used_at` is written at most this often per token, so a busy client costs
/// one small write a minute, not one per request.
pub const LAST_USED_RESOLUTION_MS: i64 = 60_000;

impl Token {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

fn from_row(r: &AnyRow) -> Result<Token> {
    Ok(Token {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        tenant: r.try_get("tenant")?,
        token_hash: r.try_get("token_hash")?,
        prefix: r.try_get("prefix")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

pub async fn insert(conn: &mut Conn, t: &Token) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, name, role, tenant, token_hash, prefix, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.role)
    .bind(&t.tenant)
    .bind(&t.token_hash)
    .bind(&t.prefix)
    .bind(&t.created_by)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(conn)
    .await
    .map_err(StoreError::unique("a token with that secret"))?;
    Ok(())
}

/// The not-revoked token with this hash (the caller checks its expiry, so it can
/// say "expired" rather than "invalid").
pub async fn find_active_by_hash(conn: &mut Conn, hash: &str) -> Result<Option<Token>> {
    sqlx::query("SELECT * FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(hash)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Token>> {
    sqlx::query("SELECT * FROM tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn list(conn: &mut Conn, limit: i64, after: Option<&Cursor>) -> Result<Page<Token>> {
    let (key, id) = after.map_or((i64::MIN, String::new()), |c| (c.key, c.id.clone()));
    let rows = sqlx::query(
        "SELECT * FROM tokens WHERE (created_at > $1 OR (created_at = $1 AND id > $2))
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(key)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(paginate(items, limit, |t| Cursor {
        key: t.created_at,
        id: t.id.clone(),
    }))
}

/// Revokes a token; revoking twice is refused so the caller learns it was already gone.
pub async fn revoke(conn: &mut Conn, id: &str, at: i64) -> Result<()> {
    let done =
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(conn)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("active token {id}")));
    }
    Ok(())
}

pub async fn count_active_admins(conn: &mut Conn) -> Result<i64> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM tokens WHERE role = 'admin' AND revoked_at IS NULL")
            .fetch_one(conn)
            .await?;
    Ok(row.try_get("n")?)
}

/// Records a successful authentication at `now`, unless one was recorded less than
/// [`LAST_USED_RESOLUTION_MS`] ago (then nothing is written). Returns whether it wrote.
pub async fn touch_last_used(conn: &mut Conn, id: &str, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE tokens SET last_used_at = $1
         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
    )
    .bind(now)
    .bind(id)
    .bind(now - LAST_USED_RESOLUTION_MS)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
