//! The catalog: products and their versions; admins publish, deprecate, retire;
//! anyone deploys.

use super::layout::{self, csrf, error_box, respond};
use super::session::FlashKind;
use super::{UiForm, UiUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::routes::products::{self as product_api, CreateProduct};
use crate::routes::templates::{self as template_api, CreateTemplateVersion};
use crate::state::AppState;
use crate::views::{PageQuery, ProductView, TemplateVersionView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

fn all() -> Query<PageQuery> {
    Query(PageQuery {
        limit: Some(500),
        cursor: None,
    })
}

async fn load_catalog(
    state: &AppState,
    user: &UiUser,
) -> ApiResult<Vec<(ProductView, Vec<TemplateVersionView>)>> {
    let Json(products) =
        product_api::list_products(State(state.clone()), user.actor.clone(), all()).await?;
    let mut out = Vec::new();
    for p in products.items {
        let Json(versions) = template_api::list_template_versions(
            State(state.clone()),
            user.actor.clone(),
            Path(p.slug.clone()),
            all(),
        )
        .await?;
        let mut versions = versions.items;
        // Each version's checklist, as certified.
        let mut conn = state.store.conn().await?;
        for v in &mut versions {
            v.certification =
                caelus_store::templates::certification_by_version(&mut conn, &p.slug, &v.version)
                    .await?;
        }
        drop(conn);
        versions.sort_by(|a, b| {
            let v = |s: &str| semver::Version::parse(s).ok();
            v(&b.version).cmp(&v(&a.version))
        });
        out.push((p, versions));
    }
    Ok(out)
}

/// Inputs of the admin forms, kept when a submission fails.
#[derive(Debug, Default, Deserialize)]
pub struct PublishForm {
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub chart: String,
    #[serde(default)]
    pub allowlist: String,
    /// `publish` (default) or `draft`.
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProductForm {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Default)]
struct CatalogExtras {
    error: Option<ApiError>,
    error_for: &'static str,
    publish: PublishForm,
    product: ProductForm,
    filter: CatalogFilter,
}

/// `?q=…&lifecycle=…` of the catalog page.
#[derive(Debug, Default, Deserialize)]
pub struct CatalogFilter {
    /// Words that must all appear (any case) in the product's slug, name,
    /// description or a version's chart name.
    #[serde(default)]
    pub q: String,
    /// Only versions in this lifecycle (`draft`, `published`, `deprecated`, `retired`).
    #[serde(default)]
    pub lifecycle: String,
}

impl CatalogFilter {
    fn is_empty(&self) -> bool {
        self.q.trim().is_empty() && self.lifecycle.is_empty()
    }

    /// The products and versions the filter keeps; with a lifecycle, a product
    /// none of whose versions is in it is dropped.
    fn apply(
        &self,
        catalog: Vec<(ProductView, Vec<TemplateVersionView>)>,
    ) -> Vec<(ProductView, Vec<TemplateVersionView>)> {
        let words: Vec<String> = self.q.split_whitespace().map(str::to_lowercase).collect();
        catalog
            .into_iter()
            .filter_map(|(p, versions)| {
                let mut text = format!("{} {} {}", p.slug, p.name, p.description);
                for v in &versions {
                    if let Some(name) = v.chart_metadata["name"].as_str() {
                        text.push(' ');
                        text.push_str(name);
                    }
                }
                let text = text.to_lowercase();
                if !words.iter().all(|w| text.contains(w.as_str())) {
                    return None;
                }
                if self.lifecycle.is_empty() {
                    return Some((p, versions));
                }
                let kept: Vec<_> = versions
                    .into_iter()
                    .filter(|v| v.lifecycle.as_str() == self.lifecycle)
                    .collect();
                (!kept.is_empty()).then_some((p, kept))
            })
            .collect()
    }
}

fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}…", &hex[..12]),
        _ => d.to_string(),
    }
}

/// A version's certification checklist: each item with its result and reason.
fn checklist(report: &serde_json::Value) -> Markup {
    let passed = report["passed"] == true;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    html! {
        details.checklist data-certified=(if passed { "passed" } else { "failed" }) {
            summary {
                "Certification "
                span.badge.(if passed { "ok" } else { "bad" }) { (if passed { "passed" } else { "failed" }) }
                " " span.muted { (text(&report["certified_at"])) " by " (text(&report["certified_by"])) }
            }
            table {
                thead { tr { th { "Check" } th { "Result" } th { "Reason" } } }
                tbody {
                    @for item in report["items"].as_array().into_iter().flatten() {
                        @let status = text(&item["status"]);
                        tr data-check=(text(&item["check"])) data-status=(status) {
                            td { code { (text(&item["check"])) } }
                            td { span.badge.(match status.as_str() { "pass" => "ok", "warn" => "warn", _ => "bad" }) { (status) } }
                            td.wrap { (text(&item["reason"])) }
                        }
                    }
                }
            }
        }
    }
}

fn version_row(user: &UiUser, p: &ProductView, t: &TemplateVersionView) -> Markup {
    let lc = t.lifecycle.as_str();
    let admin = user.actor.is_admin();
    let deployable = matches!(lc, "published" | "deprecated");
    html! {
        tr data-version=(t.version) {
            td { (t.version) }
            td {
                span.badge.(layout::lifecycle_class(lc)) data-lifecycle=(lc) { (lc) }
                @if let Some(report) = &t.certification { (checklist(report)) }
            }
            td { code title=(t.chart_digest) { (short_digest(&t.chart_digest)) } }
            td.wrap {
                @if t.values_allowlist.is_empty() { span.muted { "none" } }
                @for (i, a) in t.values_allowlist.iter().enumerate() {
                    @if i > 0 { ", " }
                    code { (a) }
                }
            }
            td.actions {
                @if deployable {
                    a.button.small href={ "/ui/catalog/" (p.slug) "/" (t.version) "/deploy" } { "Deploy" }
                }
                @if admin {
                    @for (action, label, allowed) in [
                        ("certify", "Certify", lc == "draft"),
                        ("publish", "Publish", lc == "draft"),
                        ("deprecate", "Deprecate", lc == "published"),
                        ("retire", "Retire", lc == "published" || lc == "deprecated"),
                    ] {
                        @if allowed {
                            form.inline method="post" action={ "/ui/catalog/" (p.slug) "/" (t.version) "/" (action) } {
                                (csrf(user))
                                button.small.(if action == "retire" { "danger" } else { "" }) type="submit" { (label) }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn render_catalog(
    state: &AppState,
    user: &UiUser,
    extras: CatalogExtras,
    status: StatusCode,
) -> Response {
    let all_products = match load_catalog(state, user).await {
        Ok(c) => c,
        Err(e) => return layout::error_page(Some(user), &e),
    };
    // The publish form lists every product, whatever the filter shows.
    let slugs: Vec<String> = all_products.iter().map(|(p, _)| p.slug.clone()).collect();
    let unfiltered = all_products.is_empty();
    let catalog = extras.filter.apply(all_products);
    let q = &extras.filter.q;
    let lifecycle = &extras.filter.lifecycle;
    let admin = user.actor.is_admin();
    let err_for = |which: &str| {
        extras
            .error
            .as_ref()
            .filter(|_| extras.error_for == which)
            .map(error_box)
    };
    let f = &extras.publish;
    let body = html! {
        h1 { "Catalog" }
        form.row #catalog-filter method="get" action="/ui/catalog" {
            input #catalog-q type="search" name="q" value=(q) placeholder="Search products and charts";
            select #catalog-lifecycle name="lifecycle" {
                option value="" selected[lifecycle.is_empty()] { "Any lifecycle" }
                @for l in caelus_core::lifecycle::Lifecycle::ALL {
                    option value=(l.as_str()) selected[lifecycle == l.as_str()] { (l.as_str()) }
                }
            }
            button type="submit" { "Filter" }
            @if !extras.filter.is_empty() { a href="/ui/catalog" { "Clear" } }
        }
        @if unfiltered { p.muted { "No products yet." } }
        @else if catalog.is_empty() { p.muted #no-match { "No products match." } }
        @for (p, versions) in &catalog {
            section.card.product data-product=(p.slug) {
                h2 { (p.name) " " small.muted { (p.slug) } }
                @if !p.description.is_empty() { p { (p.description) } }
                @if versions.is_empty() {
                    p.muted { "No versions available." }
                } @else {
                    div.scroll { table {
                        thead { tr { th { "Version" } th { "Lifecycle" } th { "Chart digest" } th { "Allowed values" } th {} } }
                        tbody { @for t in versions { (version_row(user, p, t)) } }
                    } }
                }
            }
        }
        @if admin {
            div.grid {
                section.card #publish-card {
                    h2 { "Publish a version" }
                    @if let Some(e) = err_for("publish") { (e) }
                    form method="post" action="/ui/catalog/versions" {
                        (csrf(user))
                        label for="pub-product" { "Product" }
                        select #pub-product name="product" required {
                            @for slug in &slugs {
                                option value=(slug) selected[&f.product == slug] { (slug) }
                            }
                        }
                        label for="pub-version" { "Version (semver)" }
                        input #pub-version name="version" value=(f.version) placeholder="1.2.0" required;
                        label for="pub-chart" { "Chart reference" }
                        input #pub-chart name="chart" value=(f.chart) placeholder="oci://registry/charts/web:1.2.0" required;
                        label for="pub-allowlist" { "Allowed value paths (one per line: " code { "replicaCount" } ", " code { "resources.*" } ")" }
                        textarea #pub-allowlist name="allowlist" rows="4" spellcheck="false" { (f.allowlist) }
                        div.row {
                            button.primary type="submit" name="mode" value="publish" { "Publish" }
                            button type="submit" name="mode" value="draft" { "Save as draft" }
                        }
                    }
                }
                section.card #product-card {
                    h2 { "New product" }
                    @if let Some(e) = err_for("product") { (e) }
                    form method="post" action="/ui/catalog/products" {
                        (csrf(user))
                        label for="prod-slug" { "Slug" }
                        input #prod-slug name="slug" value=(extras.product.slug) placeholder="wiki" required;
                        label for="prod-name" { "Name" }
                        input #prod-name name="name" value=(extras.product.name) required;
                        label for="prod-description" { "Description" }
                        input #prod-description name="description" value=(extras.product.description);
                        button.primary type="submit" { "Create product" }
                    }
                }
            }
        }
        @if let Some(e) = err_for("lifecycle") { (e) }
    };
    respond(status, layout::page("Catalog", Some(user), None, body))
}

pub async fn catalog_page(
    State(state): State<AppState>,
    user: UiUser,
    Query(filter): Query<CatalogFilter>,
) -> Response {
    let extras = CatalogExtras {
        filter,
        ..CatalogExtras::default()
    };
    render_catalog(&state, &user, extras, StatusCode::OK).await
}

pub async fn create_product(
    State(state): State<AppState>,
    UiForm { user, form }: UiForm<ProductForm>,
) -> Response {
    let result = product_api::create_product(
        State(state.clone()),
        user.actor.clone(),
        ApiJson(CreateProduct {
            slug: form.slug.trim().to_string(),
            name: form.name.trim().to_string(),
            description: form.description.trim().to_string(),
        }),
    )
    .await;
    match result {
        Ok((_, Json(p))) => {
            user.flash(FlashKind::Info, format!("Product '{}' created", p.slug))
                .await;
            Redirect::to("/ui/catalog").into_response()
        }
        Err(e) => {
            let status = e.status;
            let extras = CatalogExtras {
                error: Some(e),
                error_for: "product",
                product: form,
                ..Default::default()
            };
            render_catalog(&state, &user, extras, status).await
        }
    }
}

pub async fn publish_version(
    State(state): State<AppState>,
    UiForm { user, form }: UiForm<PublishForm>,
) -> Response {
    let allowlist: Vec<String> = form
        .allowlist
        .lines()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let publish = form.mode.as_deref() != Some("draft");
    let result = template_api::create_template_version(
        State(state.clone()),
        user.actor.clone(),
        Path(form.product.clone()),
        ApiJson(CreateTemplateVersion {
            version: form.version.trim().to_string(),
            chart: form.chart.trim().to_string(),
            values_allowlist: allowlist,
            capabilities: Default::default(),
            publish,
            skip_certification: false,
        }),
    )
    .await;
    match result {
        Ok((_, Json(t))) => {
            user.flash(
                FlashKind::Info,
                format!(
                    "Version {} of '{}' is {} (chart {})",
                    t.version,
                    t.product,
                    t.lifecycle.as_str(),
                    short_digest(&t.chart_digest)
                ),
            )
            .await;
            Redirect::to("/ui/catalog").into_response()
        }
        Err(e) => {
            let status = e.status;
            let extras = CatalogExtras {
                error: Some(e),
                error_for: "publish",
                publish: form,
                ..Default::default()
            };
            render_catalog(&state, &user, extras, status).await
        }
    }
}

pub async fn lifecycle(
    State(state): State<AppState>,
    Path((product, version, action)): Path<(String, String, String)>,
    UiForm { user, .. }: UiForm<serde::de::IgnoredAny>,
) -> Response {
    let s = State(state.clone());
    let a = user.actor.clone();
    let path = Path((product.clone(), version.clone()));
    if action == "certify" {
        return certify(&state, &user, path).await;
    }
    let no_skip = Query(template_api::PublishQuery {
        skip_certification: false,
    });
    let result = match action.as_str() {
        "publish" => template_api::publish_template_version(s, a, path, no_skip).await,
        "deprecate" => template_api::deprecate_template_version(s, a, path).await,
        "retire" => template_api::retire_template_version(s, a, path).await,
        _ => Err(ApiError::not_found(format!("catalog action '{action}'"))),
    };
    match result {
        Ok(Json(t)) => {
            user.flash(
                FlashKind::Info,
                format!(
                    "Version {} of '{}' is now {}",
                    t.version,
                    t.product,
                    t.lifecycle.as_str()
                ),
            )
            .await;
            Redirect::to("/ui/catalog").into_response()
        }
        Err(e) => {
            let status = e.status;
            let extras = CatalogExtras {
                error: Some(e),
                error_for: "lifecycle",
                ..Default::default()
            };
            render_catalog(&state, &user, extras, status).await
        }
    }
}

/// Certifies a draft and shows the catalog with its checklist.
async fn certify(state: &AppState, user: &UiUser, path: Path<(String, String)>) -> Response {
    let (product, version) = path.0.clone();
    match crate::routes::certification::certify_template_version(
        State(state.clone()),
        user.actor.clone(),
        path,
    )
    .await
    {
        Ok(Json(report)) => {
            user.flash(
                if report.passed {
                    FlashKind::Info
                } else {
                    FlashKind::Error
                },
                if report.passed {
                    format!("Version {version} of '{product}' passed certification")
                } else {
                    format!(
                        "Version {version} of '{product}' failed certification: {}",
                        report.failed_checks().join(", ")
                    )
                },
            )
            .await;
            Redirect::to("/ui/catalog").into_response()
        }
        Err(e) => {
            let status = e.status;
            let extras = CatalogExtras {
                error: Some(e),
                error_for: "lifecycle",
                ..Default::default()
            };
            render_catalog(state, user, extras, status).await
        }
    }
}

/// What the deploy form had in it.
#[derive(Debug, Default)]
pub struct DeployInput {
    pub name: String,
    pub values: String,
    pub tenant: String,
}

pub async fn render_deploy(
    state: &AppState,
    user: &UiUser,
    product: &str,
    version: &str,
    input: DeployInput,
    error: Option<ApiError>,
) -> Response {
    let t = match template_api::get_template_version(
        State(state.clone()),
        user.actor.clone(),
        Path((product.to_string(), version.to_string())),
    )
    .await
    {
        Ok(Json(t)) => t,
        Err(e) => return layout::error_page(Some(user), &e),
    };
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let body = html! {
        p.crumbs { a href="/ui/catalog" { "Catalog" } " / " (t.product) " / " (t.version) }
        h1 { "Deploy " (t.product) " " (t.version) }
        @if t.lifecycle.as_str() == "deprecated" {
            div.flash.warn { "This version is deprecated; prefer a newer one." }
        }
        div.grid {
            section.card {
                @if let Some(e) = &error { (error_box(e)) }
                form method="post" action="/ui/deployments" #deploy-form {
                    (csrf(user))
                    input type="hidden" name="product" value=(t.product);
                    input type="hidden" name="version" value=(t.version);
                    label for="name" { "Name" }
                    input #name name="name" value=(input.name) required placeholder="my wiki";
                    @if user.actor.is_admin() {
                        label for="tenant" { "Tenant (empty: " (caelus_core::names::SYSTEM_TENANT) ", which no tenant token sees)" }
                        input #tenant name="tenant" value=(input.tenant);
                    }
                    label for="values" { "Values (YAML or JSON)" }
                    textarea #values name="values" rows="8" spellcheck="false" placeholder="replicaCount: 2" { (input.values) }
                    button.primary type="submit" { "Create deployment" }
                }
            }
            section.card {
                h2 { "Allowed values" }
                @if t.values_allowlist.is_empty() {
                    p.muted { "This version allows no user values." }
                } @else {
                    ul { @for a in &t.values_allowlist { li { code { (a) } } } }
                }
                details {
                    summary { "Chart defaults" }
                    (layout::code_block(&layout::to_yaml(&t.default_values)))
                }
                p.muted { "Chart " code { (t.chart) } }
            }
        }
    };
    respond(status, layout::page("Deploy", Some(user), None, body))
}

pub async fn deploy_page(
    State(state): State<AppState>,
    user: UiUser,
    Path((product, version)): Path<(String, String)>,
) -> Response {
    render_deploy(
        &state,
        &user,
        &product,
        &version,
        DeployInput::default(),
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use caelus_core::lifecycle::Lifecycle;
    use serde_json::json;

    fn product(slug: &str, description: &str) -> ProductView {
        ProductView {
            slug: slug.into(),
            name: format!("{slug} app"),
            description: description.into(),
            created_at: String::new(),
        }
    }

    fn version(v: &str, chart: &str, lifecycle: Lifecycle) -> TemplateVersionView {
        TemplateVersionView {
            product: String::new(),
            version: v.into(),
            chart: String::new(),
            chart_digest: String::new(),
            chart_metadata: json!({"name": chart}),
            default_values: json!({}),
            values_schema: None,
            values_allowlist: Vec::new(),
            capabilities: Default::default(),
            lifecycle,
            created_at: String::new(),
            updated_at: String::new(),
            certification: None,
        }
    }

    fn shown(q: &str, lifecycle: &str) -> Vec<(String, Vec<String>)> {
        let catalog = vec![
            (
                product("wiki", "Team knowledge base"),
                vec![
                    version("2.0.0", "mediawiki", Lifecycle::Draft),
                    version("1.0.0", "mediawiki", Lifecycle::Published),
                ],
            ),
            (
                product("db", "PostgreSQL"),
                vec![version("1.0.0", "postgresql", Lifecycle::Deprecated)],
            ),
        ];
        let filter = CatalogFilter {
            q: q.into(),
            lifecycle: lifecycle.into(),
        };
        filter
            .apply(catalog)
            .into_iter()
            .map(|(p, vs)| (p.slug, vs.into_iter().map(|v| v.version).collect()))
            .collect()
    }

    #[test]
    fn the_catalog_filters_by_words_and_lifecycle() {
        let slugs = |rows: Vec<(String, Vec<String>)>| -> Vec<String> {
            rows.into_iter().map(|(s, _)| s).collect()
        };
        assert_eq!(slugs(shown("", "")), ["wiki", "db"]);
        assert_eq!(slugs(shown("KNOWLEDGE", "")), ["wiki"]);
        assert_eq!(slugs(shown("postgresql", "")), ["db"], "chart names count");
        assert_eq!(
            slugs(shown("team db", "")),
            Vec::<String>::new(),
            "all words"
        );
        assert_eq!(
            shown("", "published"),
            [("wiki".to_string(), vec!["1.0.0".to_string()])]
        );
        assert_eq!(slugs(shown("", "retired")), Vec::<String>::new());
    }
}
