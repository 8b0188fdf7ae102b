//! Browser sessions: a random id in an HttpOnly, SameSite=Strict cookie. The
//! database keeps a SHA-256 of the id with the API token it signed in with (by
//! id, never the secret), a per-session CSRF token, an expiry and a one-time
//! message — so any API replica serves any session, and sign-out or a revoked
//! token ends it everywhere at once. Every request re-checks the token.

use caelus_store::ui_sessions::{self, UiSession};
use caelus_store::{Store, StoreError, now_ms};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub const SESSION_COOKIE: &str = "caelus_session";
pub const LOGIN_CSRF_COOKIE: &str = "caelus_login_csrf";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// A random value from the OS generator (two v4 UUIDs: 244 random bits).
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares secrets without an early exit.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Info,
    Error,
}

impl FlashKind {
    fn as_str(self) -> &'static str {
        match self {
            FlashKind::Info => "info",
            FlashKind::Error => "error",
        }
    }

    fn parse(s: &str) -> FlashKind {
        if s == "error" {
            FlashKind::Error
        } else {
            FlashKind::Info
        }
    }
}

/// What the database stores for a cookie value: its SHA-256 (hex).
pub fn session_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// A live session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_id: String,
    pub csrf: String,
}

/// Starts a session for token `token_id`; returns the cookie value (the id).
/// Expired sessions are swept on the way, so the table stays small.
pub async fn create(store: &Store, token_id: &str) -> Result<String, StoreError> {
    let id = random_token();
    let now = now_ms();
    let mut conn = store.conn().await?;
    ui_sessions::delete_expired(&mut conn, now).await?;
    ui_sessions::insert(
        &mut conn,
        &UiSession {
            id_hash: session_hash(&id),
            token_id: token_id.to_string(),
            csrf: random_token(),
            flash: None,
            created_at: now,
            expires_at: now + SESSION_TTL.as_millis() as i64,
        },
    )
    .await?;
    Ok(id)
}

/// The live session with this cookie value, if any.
pub async fn get(store: &Store, id: &str) -> Result<Option<Session>, StoreError> {
    let mut conn = store.conn().await?;
    Ok(
        ui_sessions::get_live(&mut conn, &session_hash(id), now_ms())
            .await?
            .map(|s| Session {
                token_id: s.token_id,
                csrf: s.csrf,
            }),
    )
}

/// Ends a session (sign-out, or its token stopped authenticating).
pub async fn remove(store: &Store, id: &str) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    ui_sessions::delete(&mut conn, &session_hash(id)).await?;
    Ok(())
}

/// A one-time message shown on the next page (whichever replica serves it).
pub async fn flash(
    store: &Store,
    id: &str,
    kind: FlashKind,
    message: &str,
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    ui_sessions::set_flash(&mut conn, &session_hash(id), kind.as_str(), message).await
}

pub async fn take_flash(
    store: &Store,
    id: &str,
) -> Result<Option<(FlashKind, String)>, StoreError> {
    let mut conn = store.conn().await?;
    Ok(ui_sessions::take_flash(&mut conn, &session_hash(id))
        .await?
        .map(|(k, m)| (FlashKind::parse(&k), m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_stored_hashed() {
        let id = random_token();
        assert_eq!(id.len(), 64);
        let h = session_hash(&id);
        assert_eq!(h, session_hash(&id));
        assert_ne!(h, id);
        assert_ne!(h, session_hash(&random_token()));
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
