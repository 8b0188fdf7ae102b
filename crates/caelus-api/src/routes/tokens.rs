use super::{Audit, page_params};
use crate::auth::{Actor, Role, display_prefix, generate_token, hash_token};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{CreatedTokenView, ListResponse, PageQuery, TokenView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use caelus_core::FieldErrors;
use caelus_core::duration::parse_duration_secs;
use caelus_core::names::{validate_display_name, validate_tenant};
use caelus_store::tokens::{self, Token};
use caelus_store::{Conn, StoreError, now_ms, ui_sessions};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, e.g. `ci` or `alice`.
    pub name: String,
    pub role: Role,
    /// The tenant a `tenant` token acts for (required for that role; admin tokens
    /// carry none).
    pub tenant: Option<String>,
    /// How long the token is valid, e.g. `12h`, `30d`, `2w` (default: no expiry).
    pub expires_in: Option<String>,
}

/// Creates a token row and returns it with its secret. Shared with the offline
/// bootstrap (`caelus admin create-token`), which has no HTTP actor.
pub async fn issue(
    conn: &mut Conn,
    name: &str,
    role: Role,
    tenant: Option<&str>,
    created_by: &str,
) -> ApiResult<CreatedTokenView> {
    issue_expiring(conn, name, role, tenant, None, created_by).await
}

/// [`issue`] with an optional lifetime (`expires_in`, e.g. `30d`).
pub async fn issue_expiring(
    conn: &mut Conn,
    name: &str,
    role: Role,
    tenant: Option<&str>,
    expires_in: Option<&str>,
    created_by: &str,
) -> ApiResult<CreatedTokenView> {
    let mut errors = FieldErrors::new();
    errors.check(validate_display_name("name", name));
    let tenant = match (role, tenant) {
        (Role::Tenant, Some(t)) => {
            errors.check(validate_tenant("tenant", t));
            Some(t.to_string())
        }
        (Role::Tenant, None) => {
            errors.push("tenant", "is required for tenant tokens");
            None
        }
        (Role::Admin, Some(_)) => {
            errors.push(
                "tenant",
                "must not be set for admin tokens: an admin acts for every tenant",
            );
            None
        }
        (Role::Admin, None) => None,
    };
    let now = now_ms();
    let expires_at = match expires_in.map(|e| parse_duration_secs("expires_in", e)) {
        Some(Ok(secs)) => Some(now + (secs as i64) * 1000),
        Some(Err(e)) => {
            errors.check(Err(e));
            None
        }
        None => None,
    };
    errors.into_result()?;
    let secret = generate_token();
    let token = Token {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        role: role.as_str().to_string(),
        tenant,
        token_hash: hash_token(&secret),
        prefix: display_prefix(&secret),
        created_by: created_by.to_string(),
        created_at: now,
        revoked_at: None,
        expires_at,
        last_used_at: None,
    };
    tokens::insert(conn, &token).await?;
    Ok(CreatedTokenView {
        token: token.into(),
        secret,
    })
}

/// Create an API token (admin). The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", operation_id = "create_token",
    request_body = CreateToken,
    responses((status = 201, body = CreatedTokenView), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedTokenView>)> {
    actor.require_admin("manage tokens")?;
    let mut tx = state.store.begin().await?;
    let created = issue_expiring(
        &mut tx,
        &req.name,
        req.role,
        req.tenant.as_deref(),
        req.expires_in.as_deref(),
        &actor.label(),
    )
    .await?;
    Audit {
        actor: &actor,
        action: "token.create",
        subject: format!("token/{}", created.token.id),
        deployment_uid: None,
        tenant: created.token.tenant.as_deref(),
        message: format!(
            "created {} token '{}'",
            created.token.role, created.token.name
        ),
        details: json!({"role": created.token.role, "tenant": created.token.tenant,
                        "expires_at": created.token.expires_at}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List API tokens (admin); secrets are never shown.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    params(PageQuery),
    responses((status = 200, body = ListResponse<TokenView>), (status = 403, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ListResponse<TokenView>>> {
    actor.require_admin("manage tokens")?;
    let (limit, cursor) = page_params(&q)?;
    let mut conn = state.store.conn().await?;
    let page = tokens::list(&mut conn, limit, cursor.as_ref()).await?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Revoke an API token (admin). The last active admin token cannot be revoked.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    actor.require_admin("manage tokens")?;
    let mut tx = state.store.begin().await?;
    let token = tokens::get(&mut tx, &id)
        .await?
        .filter(|t| t.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found(format!("active token {id}")))?;
    if token.role == Role::Admin.as_str() && tokens::count_active_admins(&mut tx).await? <= 1 {
        return Err(ApiError::conflict(
            "this is the last active admin token; create another admin token before revoking it",
        ));
    }
    tokens::revoke(&mut tx, &id, now_ms()).await?;
    // Its UI sessions end with it, on every replica.
    ui_sessions::delete_for_token(&mut tx, &id).await?;
    Audit {
        actor: &actor,
        action: "token.revoke",
        subject: format!("token/{id}"),
        deployment_uid: None,
        tenant: token.tenant.as_deref(),
        message: format!("revoked token '{}'", token.name),
        details: json!({}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(StatusCode::NO_CONTENT)
}
