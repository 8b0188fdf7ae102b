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
    pub tenant: String,
    pub token_hash: String,
    /// First characters of the secret, to recognise a token without storing it.
    pub prefix: String,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
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
    })
}

pub async fn insert(conn: &mut Conn, t: &Token) -> Result<()> {
    sqlx::query(
        "INSERT INTO tokens (id, name, role, tenant, token_hash, prefix, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.role)
    .bind(&t.tenant)
    .bind(&t.token_hash)
    .bind(&t.prefix)
    .bind(&t.created_by)
    .bind(t.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::unique("a token with that secret"))?;
    Ok(())
}

/// The live (not revoked) token with this hash.
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
