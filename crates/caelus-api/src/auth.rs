//! Bearer-token authentication and the two roles.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use caelus_store::tokens;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
    pub tenant: String,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// How the actor appears in events and history.
    pub fn label(&self) -> String {
        format!("token:{} ({})", self.token_name, self.tenant)
    }

    /// The tenant a deployment query is restricted to: none for admins.
    pub fn tenant_scope(&self) -> Option<&str> {
        (!self.is_admin()).then_some(self.tenant.as_str())
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

/// Resolves a secret to its actor, if the token exists and is not revoked.
pub async fn authenticate(state: &AppState, secret: &str) -> Result<Actor, ApiError> {
    let mut conn = state.store.conn().await?;
    let token = tokens::find_active_by_hash(&mut conn, &hash_token(secret))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token is invalid or has been revoked"))?;
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

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts)?;
        authenticate(state, secret).await
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
