use super::{Audit, page_params};
use crate::auth::Actor;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{ListResponse, PageQuery, TemplateVersionView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use caelus_core::allowlist::Allowlist;
use caelus_core::certification::{self, CertificationReport, PublishBasis};
use caelus_core::chart_ref;
use caelus_core::lifecycle::{self, Lifecycle};
use caelus_core::template::{Capabilities, FrozenSpec, check_change, parse_version};
use caelus_core::{FieldError, FieldErrors};
use caelus_store::products::{self, Product};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{Conn, StoreError, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateVersion {
    /// Semantic version, e.g. `1.2.0`.
    pub version: String,
    /// The chart: `oci://host[:port]/path/chart:TAG` (resolved to its manifest digest
    /// now, once) or `…/chart@sha256:<64 hex>`. Its default values, values schema and
    /// metadata are read from the chart itself.
    pub chart: String,
    /// Value paths a user may set: exact (`replicaCount`) or subtrees (`resources.*`).
    #[serde(default)]
    pub values_allowlist: Vec<String>,
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Publish at once instead of creating a draft.
    #[serde(default)]
    pub publish: bool,
    /// With `publish`, on a server that requires certification: publish
    /// without one (recorded in the audit event). Otherwise create a draft,
    /// certify it, then publish it.
    #[serde(default)]
    pub skip_certification: bool,
}

/// Query of the publish operation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublishQuery {
    /// Publish without a passing certification (admin; recorded in the audit event).
    #[serde(default)]
    pub skip_certification: bool,
}

/// Whether a draft may be published on `report`: a 409 naming why not.
fn publish_basis(
    state: &AppState,
    t: &TemplateVersion,
    report: Option<Value>,
    skip: bool,
) -> ApiResult<PublishBasis> {
    // An unreadable report certifies nothing.
    let report: Option<CertificationReport> = report.and_then(|r| serde_json::from_value(r).ok());
    certification::publish_basis(
        state.require_certification,
        report.as_ref(),
        &t.chart_digest,
        skip,
    )
    .map_err(|why| {
        ApiError::conflict(format!(
            "version {} of '{}' cannot be published: {why}",
            t.version, t.product_slug
        ))
    })
}

fn basis_name(b: &PublishBasis) -> &'static str {
    match b {
        PublishBasis::NotRequired => "not-required",
        PublishBasis::Certified => "certified",
        PublishBasis::Skipped => "skipped",
    }
}

/// A change to a draft; omitted fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplateVersion {
    /// A new chart (tag or digest); re-read from the registry.
    pub chart: Option<String>,
    pub values_allowlist: Option<Vec<String>>,
    pub capabilities: Option<Capabilities>,
}

/// Checks the admin's part of a spec; the chart part is checked by pulling it.
fn check_spec(
    errors: &mut FieldErrors,
    chart: &str,
    allowlist: &[String],
    capabilities: &Capabilities,
) {
    if let Err(e) = chart_ref::parse("chart", chart) {
        errors.0.push(e);
    }
    if let Err(es) = Allowlist::parse("values_allowlist", allowlist) {
        errors.0.extend(es);
    }
    errors.check(capabilities.validate("capabilities"));
}

/// Fills the chart-derived fields of a version from the inspected chart.
fn apply_chart(t: &mut TemplateVersion, chart: &caelus_helm::InspectedChart) {
    t.chart_ref = chart.reference.to_string();
    t.chart_digest = chart.digest.to_string();
    t.chart_metadata = json!({
        "name": chart.info.name,
        "version": chart.info.version,
        "app_version": chart.info.app_version,
        "description": chart.info.description,
        "kube_version": chart.info.kube_version,
        "dependencies": chart.info.dependencies,
        "crds": chart.info.crds.len(),
    });
    t.default_values = chart.info.default_values.clone();
    t.values_schema = chart.info.values_schema.clone();
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
    check_spec(
        &mut errors,
        &req.chart,
        &req.values_allowlist,
        &req.capabilities,
    );
    errors.into_result()?;

    // The registry is asked before the transaction opens: no connection is held
    // while a chart downloads.
    let p = product_or_404(&mut *state.store.conn().await?, &product).await?;
    let chart = charts::inspect(&state.helm, "chart", &req.chart).await?;

    let mut tx = state.store.begin().await?;
    let now = now_ms();
    let lifecycle = if req.publish {
        Lifecycle::Published
    } else {
        Lifecycle::Draft
    };
    let mut candidate = TemplateVersion {
        id: uuid::Uuid::new_v4().to_string(),
        product_id: p.id.clone(),
        product_slug: p.slug.clone(),
        version: req.version.clone(),
        chart_ref: String::new(),
        chart_digest: String::new(),
        chart_metadata: Value::Null,
        default_values: Value::Null,
        values_schema: None,
        values_allowlist: req.values_allowlist,
        capabilities: req.capabilities,
        lifecycle,
        created_at: now,
        updated_at: now,
    };
    apply_chart(&mut candidate, &chart);
    let basis = if req.publish {
        // A version created here has no certification yet.
        let basis = publish_basis(&state, &candidate, None, req.skip_certification)?;
        check_publishable(&state, &candidate).await?;
        Some(basis)
    } else {
        None
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
            "created version {} of '{}' as {} from chart {} {}",
            candidate.version, p.slug, lifecycle, chart.info.name, chart.info.version
        ),
        details: json!({"chart": candidate.chart_ref, "requested": req.chart,
                        "certification": basis.as_ref().map(basis_name)}),
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
    let t = visible_version(&mut conn, &actor, &product, &version).await?;
    let certification = templates::certification(&mut conn, &t.id).await?;
    let mut view = TemplateVersionView::from(t);
    view.certification = certification;
    Ok(Json(view))
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
    let existing =
        visible_version(&mut *state.store.conn().await?, &actor, &product, &version).await?;
    let mut next = existing.clone();
    if let Some(a) = req.values_allowlist {
        next.values_allowlist = a;
    }
    if let Some(c) = req.capabilities {
        next.capabilities = c;
    }
    let mut errors = FieldErrors::new();
    check_spec(
        &mut errors,
        req.chart.as_deref().unwrap_or(&existing.chart_ref),
        &next.values_allowlist,
        &next.capabilities,
    );
    errors.into_result()?;
    if let Some(c) = &req.chart {
        let chart = charts::inspect(&state.helm, "chart", c).await?;
        apply_chart(&mut next, &chart);
    }
    immutable(&existing, &next)?;
    if next == existing {
        return Ok(Json(existing.into()));
    }
    next.updated_at = now_ms();
    let mut tx = state.store.begin().await?;
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
    skip_certification: bool,
) -> ApiResult<Json<TemplateVersionView>> {
    actor.require_admin(&format!("move template versions to {to}"))?;
    if to == Lifecycle::Published {
        // Rendered before the transaction opens: no connection is held meanwhile.
        let mut conn = state.store.conn().await?;
        let t = visible_version(&mut conn, &actor, &product, &version).await?;
        if t.lifecycle == Lifecycle::Draft {
            // The certification first: it says what to do next (certify, or fix the chart).
            let report = templates::certification(&mut conn, &t.id).await?;
            drop(conn);
            publish_basis(&state, &t, report, skip_certification)?;
            check_publishable(&state, &t).await?;
        }
    }
    let mut tx = state.store.begin().await?;
    let mut t = visible_version(&mut tx, &actor, &product, &version).await?;
    let from = t.lifecycle;
    lifecycle::transition(from, to).map_err(|e| ApiError::conflict(e.to_string()))?;
    let report = templates::certification(&mut tx, &t.id).await?;
    let basis = if from == Lifecycle::Draft && to == Lifecycle::Published {
        Some(publish_basis(
            &state,
            &t,
            report.clone(),
            skip_certification,
        )?)
    } else {
        None
    };
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
        message: match &basis {
            Some(PublishBasis::Skipped) => {
                format!("version {version} of '{product}': {from} → {to} (certification skipped)")
            }
            _ => format!("version {version} of '{product}': {from} → {to}"),
        },
        details: json!({"from": from, "to": to, "certification": basis.as_ref().map(basis_name)}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    t.lifecycle = to;
    t.updated_at = now;
    let mut view = TemplateVersionView::from(t);
    view.certification = report;
    Ok(Json(view))
}

/// Publish a draft version (admin): it becomes immutable and deployable. A server
/// that requires certification refuses (409) a draft without a passing
/// certification of its chart, unless `skip_certification` (recorded).
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/publish", tag = "templates",
    operation_id = "publish_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version"), PublishQuery),
    responses((status = 200, body = TemplateVersionView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn publish_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
    Query(q): Query<PublishQuery>,
) -> ApiResult<Json<TemplateVersionView>> {
    move_lifecycle(
        state,
        actor,
        product,
        version,
        Lifecycle::Published,
        q.skip_certification,
    )
    .await
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
    move_lifecycle(state, actor, product, version, Lifecycle::Deprecated, false).await
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
    move_lifecycle(state, actor, product, version, Lifecycle::Retired, false).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderPreview {
    /// User values to render with (checked against the allowlist and schema).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub values: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// What a chart would produce: nothing is applied anywhere.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenderPreviewView {
    /// Release name and namespace used for the preview.
    pub release: String,
    pub namespace: String,
    /// The rendered objects (and hooks, CRDs) as one multi-document YAML.
    pub manifest: String,
    pub manifest_hash: String,
    /// `Kind/name` of each object, in install order.
    pub objects: Vec<String>,
    /// `Kind/name (events)` of each hook.
    pub hooks: Vec<String>,
    pub crds: usize,
    pub notes: Option<String>,
    /// Policy refusals a real deployment of this render would get.
    pub policy_violations: Vec<String>,
}

pub const PREVIEW_RELEASE: &str = "preview";
pub const PREVIEW_NAMESPACE: &str = "caelus-preview";
const PREVIEW_UID: &str = "00000000-0000-0000-0000-000000000000";

/// A first install of the preview release with `values`.
fn preview_request(values: Value) -> caelus_helm::RenderRequest {
    caelus_helm::RenderRequest {
        values,
        release_name: PREVIEW_RELEASE.into(),
        namespace: PREVIEW_NAMESPACE.into(),
        revision: 1,
        kind: caelus_helm::RevisionKind::Install,
        kube_version: None,
        deployment_uid: PREVIEW_UID.into(),
        lookup: None,
    }
}

/// The check at publish time: the chart with its default values must pass
/// the policy under the version's capabilities (the scope of kinds from
/// the built-in table; the worker checks again against the cluster).
async fn check_publishable(state: &AppState, t: &TemplateVersion) -> ApiResult<()> {
    let chart = charts::chart_of(&state.helm, t).await?;
    let checked = state
        .helm
        .render_revision(
            &chart,
            &preview_request(json!({})),
            &caelus_helm::RevisionPolicy::from(&t.capabilities),
        )
        .await
        .map_err(|e| charts::chart_error("chart", e))?;
    match checked.refusal() {
        None => Ok(()),
        Some(refusal) => Err(ApiError::invalid(FieldError::new(
            "capabilities",
            format!(
                "with its default values, {refusal}; grant the capability the rule names, or publish a chart that does not need it"
            ),
        ))),
    }
}

/// Render a version with values, for review: the manifest, hooks and policy result.
#[utoipa::path(post, path = "/api/v1/products/{product}/versions/{version}/render", tag = "templates",
    operation_id = "render_template_version",
    params(("product" = String, Path, description = "Product slug"), ("version" = String, Path, description = "Version")),
    request_body = RenderPreview,
    responses((status = 200, body = RenderPreviewView), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn render_template_version(
    State(state): State<AppState>,
    actor: Actor,
    Path((product, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<RenderPreview>,
) -> ApiResult<Json<RenderPreviewView>> {
    let t = visible_version(&mut *state.store.conn().await?, &actor, &product, &version).await?;
    crate::routes::deployments::check_values("values", &t, &req.values)?;
    charts::check_schema(&state.helm, &t, "values", &req.values).await?;
    let chart = charts::chart_of(&state.helm, &t).await?;
    let checked = state
        .helm
        .render_revision(
            &chart,
            &preview_request(req.values),
            &caelus_helm::RevisionPolicy::from(&t.capabilities),
        )
        .await
        .map_err(|e| charts::chart_error("values", e))?;
    let violations = &checked.violations;
    let rendered = &checked.rendered;
    let name = |o: &Value| {
        format!(
            "{}/{}",
            caelus_helm::render::kind_of(o),
            caelus_helm::render::name_of(o)
        )
    };
    Ok(Json(RenderPreviewView {
        release: PREVIEW_RELEASE.into(),
        namespace: PREVIEW_NAMESPACE.into(),
        manifest: rendered.to_yaml(),
        manifest_hash: rendered.manifest_hash.clone(),
        objects: rendered.objects.iter().map(name).collect(),
        hooks: rendered
            .hooks
            .iter()
            .map(|h| {
                let events: Vec<&str> = h.events.iter().map(|e| e.as_str()).collect();
                format!("{}/{} ({})", h.kind, h.name, events.join(", "))
            })
            .collect(),
        crds: rendered.crds.len(),
        notes: rendered.notes.clone(),
        policy_violations: violations.iter().map(ToString::to_string).collect(),
    }))
}
