use super::{Audit, page_params};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{ListResponse, PageQuery, TemplateVersionView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use caelus_core::FieldErrors;
use caelus_core::allowlist::Allowlist;
use caelus_core::chart_ref;
use caelus_core::lifecycle::{self, Lifecycle};
use caelus_core::template::{Capabilities, FrozenSpec, check_change, parse_version};
use caelus_store::products::{self, Product};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{Conn, StoreError, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateVersion {
    /// Semantic version, e.g. `1.2.0`.
    pub version: String,
    /// The chart pinned by manifest digest: `oci://host[:port]/path/chart@sha256:<64 hex>`.
    pub chart: String,
    /// Value paths a user may set: exact (`replicaCount`) or subtrees (`resources.*`).
    #[serde(default)]
    pub values_allowlist: Vec<String>,
    /// Defaults applied under the user's values.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub default_values: Value,
    /// JSON schema for values.
    #[schema(value_type = Option<Object>)]
    pub values_schema: Option<Value>,
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Publish at once instead of creating a draft.
    #[serde(default)]
    pub publish: bool,
}

fn empty_object() -> Value {
    json!({})
}

/// A change to a draft; omitted fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplateVersion {
    pub chart: Option<String>,
    pub values_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub default_values: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub values_schema: Option<Value>,
    pub capabilities: Option<Capabilities>,
}

struct CheckedSpec {
    chart_ref: String,
    chart_digest: String,
    chart_name: String,
}

fn check_spec(
    errors: &mut FieldErrors,
    chart: &str,
    allowlist: &[String],
    default_values: &Value,
    values_schema: Option<&Value>,
    capabilities: &Capabilities,
) -> Option<CheckedSpec> {
    let parsed = match chart_ref::parse_pinned("chart", chart) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.0.push(e);
            None
        }
    };
    if let Err(es) = Allowlist::parse("values_allowlist", allowlist) {
        errors.0.extend(es);
    }
    if !default_values.is_object() {
        errors.push("default_values", "must be a JSON object");
    }
    if values_schema.is_some_and(|s| !s.is_object()) {
        errors.push("values_schema", "must be a JSON schema object");
    }
    errors.check(capabilities.validate("capabilities"));
    parsed.map(|r| CheckedSpec {
        chart_ref: r.to_string(),
        chart_digest: r.digest().unwrap_or_default().to_string(),
        chart_name: r.chart_name().to_string(),
    })
}

fn frozen(t: &TemplateVersion) -> FrozenSpec<'_> {
    FrozenSpec {
        chart_ref: &t.chart_ref,
        values_schema: t.values_schema.as_ref(),
        values_allowlist: &t.values_allowlist,
        capabilities: &t.capabilities,
        default_values: &t.default_values,
    }
}

fn immutable(t: &TemplateVersion, candidate: &TemplateVersion) -> ApiResult<()> {
    check_change(
        &t.product_slug,
        &t.version,
        t.lifecycle,
        &frozen(t),
        &frozen(candidate),
    )
    .map_err(|e| ApiError::conflict(e.to_string()))
}

async fn product_or_404(conn: &mut Conn, slug: &str) -> ApiResult<Product> {
    products::get(conn, slug)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product '{slug}'")))
}

/// Reads a version the actor may see: tenants see only deployable ones.
pub(crate) async fn visible_version(
    conn: &mut Conn,
    actor: &Actor,
    product: &str,
    version: &str,
) -> ApiResult<TemplateVersion> {
    templates::get(conn, product, version)
        .await?
        .filter(|t| actor.is_admin() || t.lifecycle.is_visible_to_tenants())
        .ok_or_else(|| ApiError::not_found(format!("version {version} of product '{product}'")))
}

/// Create a template version (admin): a draft, or published at once with `publish: true`.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions", tag = "templates",
    operation_id = "create_template_version",
    params(("product" = String, Path, description = "Product slug")),
    request_body = CreateTemplateVersion,
    responses((status = 201, body = TemplateVersionView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path(product): Path<String>,
    ApiJson(req): ApiJson<CreateTemplateVersion>,
) -> ApiResult<(StatusCode, Json<TemplateVersionView>)> {
    actor.require_admin("create template versions")?;
    let mut errors = FieldErrors::new();
    if let Err(e) = parse_version("version", &req.version) {
        errors.0.push(e);
    }
    let spec = check_spec(
        &mut errors,
        &req.chart,
        &req.values_allowlist,
        &req.default_values,
        req.values_schema.as_ref(),
        &req.capabilities,
    );
    errors.into_result()?;
    let spec = spec.expect("no errors means the chart parsed");

    let mut tx = state.store.begin().await?;
    let p = product_or_404(&mut tx, &product).await?;
    let now = now_ms();
    let lifecycle = if req.publish {
        Lifecycle::Published
    } else {
        Lifecycle::Draft
    };
    let candidate = TemplateVersion {
        id: uuid::Uuid::new_v4().to_string(),
        product_id: p.id.clone(),
        product_slug: p.slug.clone(),
        version: req.version.clone(),
        chart_ref: spec.chart_ref,
        chart_digest: spec.chart_digest,
        chart_metadata: json!({"name": spec.chart_name}),
        default_values: req.default_values,
        values_schema: req.values_schema,
        values_allowlist: req.values_allowlist,
        capabilities: req.capabilities,
        lifecycle,
        created_at: now,
        updated_at: now,
    };
    if let Some(existing) = templates::get(&mut tx, &p.slug, &req.version).await? {
        immutable(&existing, &candidate)?;
        return Err(ApiError::conflict(match existing.lifecycle {
            Lifecycle::Draft => format!(
                "version {} of product '{}' already exists as a draft; change it with PATCH or publish it",
                existing.version, p.slug
            ),
            lc => format!(
                "version {} of product '{}' already exists and is {lc}",
                existing.version, p.slug
            ),
        }));
    }
    templates::insert(&mut tx, &candidate).await?;
    Audit {
        actor: &actor,
        action: if req.publish {
            "template.publish"
        } else {
            "template.create"
        },
        subject: format!("product/{}/version/{}", p.slug, candidate.version),
        deployment_uid: None,
        tenant: None,
        message: format!(
            "created version {} of '{}' as {}",
            candidate.version, p.slug, lifecycle
        ),
        details: json!({"chart": candidate.chart_ref}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((StatusCode::CREATED, Json(candidate.into())))
}

/// List a product's versions (tenants see published and deprecated ones).
#[utoipa::path(get, path = "/api/v1/products/{product}/versions", tag = "templates",
    operation_id = "list_template_versions",
    params(("product" = String, Path, description = "Product slug"), PageQuery),
    responses((status = 200, body = ListResponse<TemplateVersionView>), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_template_versions(
    State(state): State<AppState>,
    actor: Actor,
    Path(product): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ListResponse<TemplateVersionView>>> {
    let (limit, cursor) = page_params(&q)?;
    let mut conn = state.store.conn().await?;
    let p = product_or_404(&mut conn, &product).await?;
    let page = templates::list(&mut conn, &p.id, !actor.is_admin(), limit, cursor.as_ref()).await?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Show a template version.
#[utoipa::path(get, path = "/api/v1/products/{product}/versions/{version}", tag = "templates",
    operation_id = "get_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version")),
    responses((status = 200, body = TemplateVersionView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
) -> ApiResult<Json<TemplateVersionView>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(
        visible_version(&mut conn, &actor, &product, &version)
            .await?
            .into(),
    ))
}

/// Change a draft version (admin). Published versions are immutable: 409.
#[utoipa::path(patch, path = "/api/v1/products/{product}/versions/{version}", tag = "templates",
    operation_id = "update_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version")),
    request_body = UpdateTemplateVersion,
    responses((status = 200, body = TemplateVersionView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdateTemplateVersion>,
) -> ApiResult<Json<TemplateVersionView>> {
    actor.require_admin("change template versions")?;
    let mut tx = state.store.begin().await?;
    let existing = visible_version(&mut tx, &actor, &product, &version).await?;
    let mut next = existing.clone();
    if let Some(c) = req.chart {
        next.chart_ref = c;
    }
    if let Some(a) = req.values_allowlist {
        next.values_allowlist = a;
    }
    if let Some(d) = req.default_values {
        next.default_values = d;
    }
    if req.values_schema.is_some() {
        next.values_schema = req.values_schema;
    }
    if let Some(c) = req.capabilities {
        next.capabilities = c;
    }
    let mut errors = FieldErrors::new();
    let spec = check_spec(
        &mut errors,
        &next.chart_ref,
        &next.values_allowlist,
        &next.default_values,
        next.values_schema.as_ref(),
        &next.capabilities,
    );
    errors.into_result()?;
    let spec = spec.expect("no errors means the chart parsed");
    next.chart_ref = spec.chart_ref;
    next.chart_digest = spec.chart_digest;
    immutable(&existing, &next)?;
    if next == existing {
        return Ok(Json(existing.into()));
    }
    next.updated_at = now_ms();
    templates::update_draft(&mut tx, &next).await?;
    Audit {
        actor: &actor,
        action: "template.update",
        subject: format!("product/{product}/version/{version}"),
        deployment_uid: None,
        tenant: None,
        message: format!("changed draft version {version} of '{product}'"),
        details: json!({"chart": next.chart_ref}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Json(next.into()))
}

async fn move_lifecycle(
    state: AppState,
    actor: Actor,
    product: String,
    version: String,
    to: Lifecycle,
) -> ApiResult<Json<TemplateVersionView>> {
    actor.require_admin(&format!("move template versions to {to}"))?;
    let mut tx = state.store.begin().await?;
    let mut t = visible_version(&mut tx, &actor, &product, &version).await?;
    let from = t.lifecycle;
    lifecycle::transition(from, to).map_err(|e| ApiError::conflict(e.to_string()))?;
    let now = now_ms();
    templates::set_lifecycle(&mut tx, &t.id, from, to, now).await?;
    Audit {
        actor: &actor,
        action: match to {
            Lifecycle::Published => "template.publish",
            Lifecycle::Deprecated => "template.deprecate",
            _ => "template.retire",
        },
        subject: format!("product/{product}/version/{version}"),
        deployment_uid: None,
        tenant: None,
        message: format!("version {version} of '{product}': {from} → {to}"),
        details: json!({"from": from, "to": to}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    t.lifecycle = to;
    t.updated_at = now;
    Ok(Json(t.into()))
}

/// Publish a draft version (admin): it becomes immutable and deployable.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/publish", tag = "templates",
    operation_id = "publish_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version")),
    responses((status = 200, body = TemplateVersionView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn publish_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
) -> ApiResult<Json<TemplateVersionView>> {
    move_lifecycle(state, actor, product, version, Lifecycle::Published).await
}

/// Deprecate a published version (admin): still deployable, with a warning.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/deprecate", tag = "templates",
    operation_id = "deprecate_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version")),
    responses((status = 200, body = TemplateVersionView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn deprecate_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
) -> ApiResult<Json<TemplateVersionView>> {
    move_lifecycle(state, actor, product, version, Lifecycle::Deprecated).await
}

/// Retire a version (admin): no new deployments or upgrades to it.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/retire", tag = "templates",
    operation_id = "retire_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version")),
    responses((status = 200, body = TemplateVersionView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retire_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
) -> ApiResult<Json<TemplateVersionView>> {
    move_lifecycle(state, actor, product, version, Lifecycle::Retired).await
}
