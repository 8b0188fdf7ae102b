//! Browser sessions: a random id in an HttpOnly, SameSite=Strict cookie, mapped
//! in memory to the API token it signed in with and a per-session CSRF token.
//! The token never reaches the browser again after sign-in; every request
//! re-authenticates it, so a revoked token ends its sessions at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "caelus_session";
pub const LOGIN_CSRF_COOKIE: &str = "caelus_login_csrf";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept at once; the oldest are dropped beyond it.
const MAX_SESSIONS: usize = 10_000;

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

#[derive(Debug, Clone)]
pub struct Session {
    /// The API token the user signed in with.
    pub secret: String,
    pub csrf: String,
    pub expires: Instant,
    flash: Option<(FlashKind, String)>,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `secret`; returns its id.
    pub fn create(&self, secret: &str) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                secret: secret.to_string(),
                csrf: random_token(),
                expires: now + SESSION_TTL,
                flash: None,
            },
        );
        id
    }

    /// The live session with this id, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// A one-time message shown on the next page.
    pub fn flash(&self, id: &str, kind: FlashKind, message: impl Into<String>) {
        if let Some(s) = self.lock().get_mut(id) {
            s.flash = Some((kind, message.into()));
        }
    }

    pub fn take_flash(&self, id: &str) -> Option<(FlashKind, String)> {
        self.lock().get_mut(id).and_then(|s| s.flash.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_flash_once() {
        let s = Sessions::default();
        let id = s.create("cae_x");
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.secret, "cae_x");
        assert_ne!(got.csrf, id);
        s.flash(&id, FlashKind::Info, "hello");
        assert_eq!(s.take_flash(&id).unwrap().1, "hello");
        assert!(s.take_flash(&id).is_none());
        s.lock().get_mut(&id).unwrap().expires = Instant::now() - Duration::from_secs(1);
        assert!(s.get(&id).is_none());
        assert!(s.get("nope").is_none());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
