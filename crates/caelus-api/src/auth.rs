//! Bearer-token authentication and the two roles.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use caelus_core::auth_limit::{FailureCount, FailureLimit, retry_after_secs};
use caelus_store::now_ms;
use caelus_store::tokens::{self, Token};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: catalog, tokens, every tenant's deployments.
    Admin,
    /// Its own deployments; reads published templates.
    Tenant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Tenant => "tenant",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "tenant" => Some(Role::Tenant),
            _ => None,
        }
    }
}

/// Who is calling: the token that authenticated the request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub token_id: String,
    pub token_name: String,
    pub role: Role,
    /// The tenant of a tenant token; admin tokens carry none.
    pub tenant: Option<String>,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The tenant to show for this actor: its own, or `admin` for admin tokens.
    pub fn tenant_label(&self) -> &str {
        self.tenant.as_deref().unwrap_or("admin")
    }

    /// How the actor appears in events and history.
    pub fn label(&self) -> String {
        format!("token:{} ({})", self.token_name, self.tenant_label())
    }

    /// The tenant a deployment query is restricted to: none for admins. A tenant
    /// token without a tenant (a row no API path writes) is restricted to the
    /// empty tenant, which owns nothing — never to "all".
    pub fn tenant_scope(&self) -> Option<&str> {
        (!self.is_admin()).then(|| self.tenant.as_deref().unwrap_or(""))
    }

    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "only an admin token may {action}; this token has the tenant role"
            )))
        }
    }
}

/// Failed authentications per client address, in this process (each replica
/// counts its own: the limit is a brake on guessing, not an exact quota).
#[derive(Debug)]
pub struct AuthLimiter {
    limit: FailureLimit,
    started: Instant,
    counts: Mutex<HashMap<IpAddr, FailureCount>>,
}

/// Addresses remembered at most; beyond it, closed windows are forgotten first.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

impl AuthLimiter {
    pub fn new(limit: FailureLimit) -> Self {
        AuthLimiter {
            limit,
            started: Instant::now(),
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, FailureCount>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `addr` must still wait, if it is blocked.
    pub fn blocked(&self, addr: IpAddr) -> Option<Duration> {
        self.limit.blocked(self.lock().get(&addr), self.now())
    }

    /// 429 with `Retry-After` when `addr` is blocked.
    pub fn check(&self, addr: IpAddr) -> Result<(), ApiError> {
        match self.blocked(addr) {
            None => Ok(()),
            Some(wait) => {
                let secs = retry_after_secs(wait);
                Err(ApiError::too_many_requests(
                    format!("too many failed authentications from this address; retry in {secs} s"),
                    secs,
                ))
            }
        }
    }

    pub fn record_failure(&self, addr: IpAddr) {
        let now = self.now();
        let mut counts = self.lock();
        if counts.len() >= MAX_TRACKED_ADDRESSES {
            counts.retain(|_, c| !self.limit.is_stale(c, now));
        }
        if counts.len() < MAX_TRACKED_ADDRESSES || counts.contains_key(&addr) {
            let next = self.limit.record_failure(counts.get(&addr), now);
            counts.insert(addr, next);
        }
    }
}

/// The client's address as the connection saw it (no proxy header is trusted:
/// a forged `X-Forwarded-For` would dodge the limit). Without connection info
/// (a router driven in-process) every request shares the unspecified address.
pub fn client_addr(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

pub const TOKEN_PREFIX: &str = "cae_";

/// A new secret: 244 random bits (two v4 UUIDs) behind a recognisable prefix.
pub fn generate_token() -> String {
    format!(
        "{TOKEN_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The first characters of a secret, safe to show: enough to tell tokens apart.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be 'Bearer <token>'",
        )),
    }
}

/// The actor of a token row, if it may act now: not revoked, not expired.
fn actor_of(token: Token, now: i64) -> Result<Actor, ApiError> {
    if token.revoked_at.is_some() {
        return Err(ApiError::unauthorized(
            "the token is invalid or has been revoked",
        ));
    }
    if token.is_expired(now) {
        return Err(ApiError::unauthorized(format!(
            "the token expired at {}; ask an admin for a new one",
            crate::views::rfc3339(token.expires_at.unwrap_or_default())
        )));
    }
    let role = Role::parse(&token.role).ok_or_else(|| {
        ApiError::internal(format!(
            "token {} has unknown role {}",
            token.id, token.role
        ))
    })?;
    Ok(Actor {
        token_id: token.id,
        token_name: token.name,
        role,
        tenant: token.tenant,
    })
}

/// Records the use of a token, at most once per resolution interval (the row
/// read for authentication says whether it is due, so most requests write nothing).
async fn note_use(conn: &mut caelus_store::Conn, token: &Token, now: i64) {
    let due = token
        .last_used_at
        .is_none_or(|at| at <= now - tokens::LAST_USED_RESOLUTION_MS);
    if due && let Err(e) = tokens::touch_last_used(conn, &token.id, now).await {
        // Bookkeeping only: a failed write must not fail the request.
        tracing::warn!(token = %token.id, error = %e, "could not record the token's last use");
    }
}

/// Resolves a secret to its actor, if the token exists, is not revoked and has
/// not expired. No rate limit: see [`authenticate_from`].
pub async fn authenticate(state: &AppState, secret: &str) -> Result<Actor, ApiError> {
    let mut conn = state.store.conn().await?;
    let now = now_ms();
    let token = tokens::find_active_by_hash(&mut conn, &hash_token(secret))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token is invalid or has been revoked"))?;
    note_use(&mut conn, &token, now).await;
    actor_of(token, now)
}

/// [`authenticate`] for a request from `addr`: refused with 429 while that address
/// is over its failure limit, and a failure counts against it.
pub async fn authenticate_from(
    state: &AppState,
    addr: IpAddr,
    secret: &str,
) -> Result<Actor, ApiError> {
    state.auth_limiter.check(addr)?;
    let result = authenticate(state, secret).await;
    if let Err(e) = &result
        && e.status == StatusCode::UNAUTHORIZED
    {
        state.auth_limiter.record_failure(addr);
    }
    result
}

/// The actor of a UI session's token, checked afresh (a revoked or expired token
/// ends its sessions at once).
pub async fn authenticate_token_id(state: &AppState, token_id: &str) -> Result<Actor, ApiError> {
    let mut conn = state.store.conn().await?;
    let now = now_ms();
    let token = tokens::get(&mut conn, token_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session's token no longer exists"))?;
    if token.revoked_at.is_none() && !token.is_expired(now) {
        note_use(&mut conn, &token, now).await;
    }
    actor_of(token, now)
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let addr = client_addr(&parts.extensions);
        // A blocked address is refused before its header is even read.
        state.auth_limiter.check(addr)?;
        let secret = bearer(parts)?;
        authenticate_from(state, addr, secret).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token(&a).len(), 64);
        assert!(!hash_token(&a).contains(&a[4..20]));
        assert_eq!(display_prefix(&a).len(), 10);
    }
}
