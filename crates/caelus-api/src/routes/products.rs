use super::{Audit, page_params};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{ListResponse, PageQuery, ProductView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use caelus_core::FieldErrors;
use caelus_core::names::{validate_display_name, validate_slug, validate_text};
use caelus_store::now_ms;
use caelus_store::products::{self, Product};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// URL-safe identifier: a DNS-1123 label.
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Create a product (admin).
#[utoipa::path(post, path = "/api/v1/products", tag = "products", operation_id = "create_product",
    request_body = CreateProduct,
    responses((status = 201, body = ProductView), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_product(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateProduct>,
) -> ApiResult<(StatusCode, Json<ProductView>)> {
    actor.require_admin("create products")?;
    let mut errors = FieldErrors::new();
    errors.check(validate_slug("slug", &req.slug));
    errors.check(validate_display_name("name", &req.name));
    errors.check(validate_text("description", &req.description, 2000));
    errors.into_result()?;

    let product = Product {
        id: uuid::Uuid::new_v4().to_string(),
        slug: req.slug,
        name: req.name,
        description: req.description,
        created_at: now_ms(),
    };
    let mut tx = state.store.begin().await?;
    products::insert(&mut tx, &product).await?;
    Audit {
        actor: &actor,
        action: "product.create",
        subject: format!("product/{}", product.slug),
        deployment_uid: None,
        tenant: None,
        message: format!("created product '{}'", product.slug),
        details: json!({"name": product.name}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(caelus_store::StoreError::from)?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

/// List products.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", operation_id = "list_products",
    params(PageQuery),
    responses((status = 200, body = ListResponse<ProductView>)),
    security(("bearer" = [])))]
pub async fn list_products(
    State(state): State<AppState>,
    _actor: Actor,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ListResponse<ProductView>>> {
    let (limit, cursor) = page_params(&q)?;
    let mut conn = state.store.conn().await?;
    let page = products::list(&mut conn, limit, cursor.as_ref()).await?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Show a product.
#[utoipa::path(get, path = "/api/v1/products/{product}", tag = "products", operation_id = "get_product",
    params(("product" = String, Path, description = "Product slug")),
    responses((status = 200, body = ProductView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_product(
    State(state): State<AppState>,
    _actor: Actor,
    Path(slug): Path<String>,
) -> ApiResult<Json<ProductView>> {
    let mut conn = state.store.conn().await?;
    let p = products::get(&mut conn, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product '{slug}'")))?;
    Ok(Json(p.into()))
}
