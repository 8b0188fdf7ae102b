//! Deployments: the table, the detail page, and their actions.

use super::layout::{self, csrf, error_box, phase_badge, respond, when};
use super::session::FlashKind;
use super::{UiForm, UiUser, upgrade, urlencode};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::routes::deployments::{
    self as api, CreateDeployment, DeploymentListQuery, EventQuery, RevisionQuery, UpdateDeployment,
};
use crate::routes::diff::{self as diff_api, DeploymentDiff};
use crate::routes::products as product_api;
use crate::routes::reach;
use crate::routes::templates as template_api;
use crate::state::AppState;
use crate::views::{DeploymentView, EventView, ListResponse, PageQuery, RevisionView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    pub phase: Option<String>,
    pub product: Option<String>,
    pub cursor: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn fetch_list(
    state: &AppState,
    user: &UiUser,
    p: &ListParams,
) -> ApiResult<ListResponse<DeploymentView>> {
    let Json(list) = api::list_deployments(
        State(state.clone()),
        user.actor.clone(),
        Query(DeploymentListQuery {
            limit: Some(100),
            cursor: non_empty(&p.cursor),
            phase: non_empty(&p.phase),
            product: non_empty(&p.product),
            tenant: None,
            include_deleted: None,
        }),
    )
    .await?;
    Ok(list)
}

fn ready_objects(v: &DeploymentView) -> (usize, usize) {
    let total = v.status.objects.len();
    let ready = v
        .status
        .objects
        .iter()
        .filter(|o| o.health == "Healthy")
        .count();
    (ready, total)
}

fn rows(items: &[DeploymentView], admin: bool) -> Markup {
    html! {
        @if items.is_empty() {
            tr { td.muted colspan=(if admin { 7 } else { 6 }) { "No deployments." } }
        }
        @for d in items {
            @let (ready, total) = ready_objects(d);
            tr data-uid=(d.uid) {
                td { a href={ "/ui/deployments/" (d.uid) } { (d.name) } }
                td { (d.product) }
                td { (d.version) }
                td { (phase_badge(&d.status.phase)) }
                td.num data-ready={ (ready) "/" (total) } { (ready) "/" (total) }
                td { (layout::age(&d.created_at)) }
                @if admin { td { (d.tenant) } }
            }
        }
    }
}

fn list_query(p: &ListParams) -> String {
    let mut q = Vec::new();
    if let Some(ph) = non_empty(&p.phase) {
        q.push(format!("phase={}", urlencode(&ph)));
    }
    if let Some(pr) = non_empty(&p.product) {
        q.push(format!("product={}", urlencode(&pr)));
    }
    if let Some(c) = non_empty(&p.cursor) {
        q.push(format!("cursor={}", urlencode(&c)));
    }
    q.join("&")
}

pub async fn list_page(
    State(state): State<AppState>,
    user: UiUser,
    Query(p): Query<ListParams>,
) -> Response {
    let admin = user.actor.is_admin();
    let products = product_api::list_products(
        State(state.clone()),
        user.actor.clone(),
        Query(PageQuery {
            limit: Some(500),
            cursor: None,
        }),
    )
    .await
    .map(|Json(l)| l.items)
    .unwrap_or_default();
    let result = fetch_list(&state, &user, &p).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status,
    };
    let phase = non_empty(&p.phase).unwrap_or_default();
    let product = non_empty(&p.product).unwrap_or_default();
    let query = list_query(&p);
    let live = format!("/ui/deployments/rows?{query}");
    let body = html! {
        div.heading {
            h1 { "Deployments" }
            a.button href="/ui/catalog" { "New deployment" }
        }
        form.filters method="get" action="/ui/deployments" {
            label { "Phase "
                select name="phase" {
                    option value="" selected[phase.is_empty()] { "any" }
                    @for ph in caelus_core::status::Phase::ALL {
                        option value=(ph.as_str()) selected[phase == ph.as_str()] { (ph.as_str()) }
                    }
                }
            }
            label { "Product "
                select name="product" {
                    option value="" selected[product.is_empty()] { "any" }
                    @for pr in &products {
                        option value=(pr.slug) selected[product == pr.slug] { (pr.slug) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @match &result {
            Err(e) => (error_box(e)),
            Ok(list) => {
                div.scroll {
                    table.list #deployments {
                        thead { tr {
                            th { "Name" } th { "Product" } th { "Version" } th { "Phase" }
                            th { "Ready" } th { "Age" }
                            @if admin { th { "Tenant" } }
                        } }
                        tbody #deployment-rows { (rows(&list.items, admin)) }
                    }
                }
                @if let Some(next) = &list.next_cursor {
                    p { a href={ "/ui/deployments?" (list_query(&ListParams { cursor: Some(next.clone()), ..ListParams { phase: p.phase.clone(), product: p.product.clone(), cursor: None } })) } { "Next page →" } }
                }
            }
        }
    };
    respond(
        status,
        layout::page("Deployments", Some(&user), Some(&live), body),
    )
}

/// The table body, for live updates of the list.
pub async fn rows_fragment(
    State(state): State<AppState>,
    user: UiUser,
    Query(p): Query<ListParams>,
) -> Response {
    match fetch_list(&state, &user, &p).await {
        Ok(list) => Json(json!({
            "fragments": {"deployment-rows": rows(&list.items, user.actor.is_admin()).into_string()}
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Everything the detail page shows about a deployment.
pub struct Detail {
    pub view: DeploymentView,
    pub revisions: Vec<RevisionView>,
    pub events: Vec<EventView>,
    /// Its Services and Ingresses, or why they cannot be shown (no cluster).
    pub endpoints: Result<Vec<caelus_core::reach::Endpoint>, String>,
    /// Secret keys its template lets the owner read (values only on reveal).
    pub connection_declared: Vec<caelus_core::reach::ConnectionSecret>,
    /// While it is Drifted: live vs what Caelus applied, or why that cannot
    /// be shown (no cluster, the cluster did not answer).
    pub drift: Option<Result<DeploymentDiff, String>>,
}

/// Events shown on the page (the newest).
const EVENTS_SHOWN: usize = 100;

pub async fn load(state: &AppState, user: &UiUser, uid: &str) -> ApiResult<Detail> {
    let Json(view) = api::get_deployment(
        State(state.clone()),
        user.actor.clone(),
        Path(uid.to_string()),
    )
    .await?;
    let Json(revisions) = api::list_deployment_revisions(
        State(state.clone()),
        user.actor.clone(),
        Path(uid.to_string()),
        Query(RevisionQuery {
            limit: Some(50),
            before: None,
        }),
    )
    .await?;
    // The timeline is oldest first; page through to its end and keep the newest.
    let mut events: Vec<EventView> = Vec::new();
    let mut after = None;
    for _ in 0..20 {
        let Json(page) = api::list_deployment_events(
            State(state.clone()),
            user.actor.clone(),
            Path(uid.to_string()),
            Query(EventQuery {
                limit: Some(500),
                after,
            }),
        )
        .await?;
        let more = page.next_cursor.is_some();
        after = page.items.last().map(|e| e.id).or(after);
        events.extend(page.items);
        if events.len() > EVENTS_SHOWN {
            events.drain(..events.len() - EVENTS_SHOWN);
        }
        if !more {
            break;
        }
    }
    events.reverse();
    let endpoints = reach::get_deployment_endpoints(
        State(state.clone()),
        user.actor.clone(),
        Path(uid.to_string()),
    )
    .await
    .map(|Json(list)| list.items)
    .map_err(|e| e.detail);
    let connection_declared = template_api::get_template_version(
        State(state.clone()),
        user.actor.clone(),
        Path((view.product.clone(), view.version.clone())),
    )
    .await
    .map(|Json(t)| t.capabilities.connection_secrets)
    .unwrap_or_default();
    // Only while Drifted: the comparison reads the cluster (and may ask it
    // for a dry run), and the page polls.
    let drift = if is_drifted(&view) {
        Some(
            diff_api::get_deployment_diff(
                State(state.clone()),
                user.actor.clone(),
                Path(uid.to_string()),
            )
            .await
            .map(|Json(d)| d)
            .map_err(|e| e.detail),
        )
    } else {
        None
    };
    Ok(Detail {
        view,
        revisions: revisions.items,
        events,
        endpoints,
        connection_declared,
        drift,
    })
}

fn summary(v: &DeploymentView) -> Markup {
    let s = &v.status;
    let (ready, total) = ready_objects(v);
    html! {
        div.phase-line {
            (phase_badge(&s.phase))
            span #status-message { (s.message) }
        }
        dl.facts {
            dt { "Product" } dd { (v.product) " " (v.version) }
            @if v.desired_version != v.version {
                dt { "Desired version" } dd #desired-version { (v.desired_version) }
            }
            @if let Some(f) = &s.failure {
                dt { "Failed target" }
                dd #failed-target {
                    @if let Some(t) = &f.target_version { (t) " " }
                    @if let Some(r) = f.revision { "(revision " (r) ") " }
                    (f.reason) ": " (f.message)
                    @if f.remedy == caelus_core::remediation::Remedy::RollBack { " — rolled back" }
                }
            }
            dt { "Tenant" } dd { (v.tenant) }
            dt { "Ready objects" } dd #ready-objects { (ready) "/" (total) }
            dt { "Generation" } dd { (v.generation) " (observed " (v.observed_generation) ")" }
            dt { "Current revision" } dd #current-revision { @if let Some(r) = s.current_revision { (r) } @else { "—" } }
            dt { "Namespace" } dd { code { (v.namespace) } }
            dt { "Desired state" } dd { (v.desired_state) }
            @if let Some(next) = &s.next_attempt_at {
                dt { @if s.last_error.is_some() { "Next retry" } @else { "Next check" } }
                dd { (when(next)) }
            }
            dt { "Failed attempts" } dd { (s.attempts) }
            dt { "Created" } dd { (when(&v.created_at)) }
        }
        @if let Some(err) = &s.last_error {
            div.error.last-error { strong { "Last error: " } (err) }
        }
    }
}

fn conditions(v: &DeploymentView) -> Markup {
    html! {
        @if v.status.conditions.is_empty() {
            p.muted { "No conditions yet." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Type" } th { "Status" } th { "Reason" } th { "Message" } th { "Since" } } }
                tbody {
                    @for c in &v.status.conditions {
                        tr {
                            td { (c.type_) }
                            td { span.badge.(cond_class(&c.type_, &c.status)) { (c.status) } }
                            td { (c.reason) }
                            td { (c.message) }
                            td { (when(&c.last_transition_time)) }
                        }
                    }
                }
            } }
        }
    }
}

fn cond_class(type_: &str, status: &str) -> &'static str {
    // Ready=True is good; Stalled/Drifted=True are bad; Reconciling=True is busy.
    match (type_, status) {
        ("Ready", "True") => "ok",
        ("Ready", _) => "warn",
        ("Reconciling", "True") => "busy",
        (_, "True") => "bad",
        _ => "idle",
    }
}

fn is_drifted(v: &DeploymentView) -> bool {
    v.status
        .conditions
        .iter()
        .any(|c| c.type_ == "Drifted" && c.status == "True")
}

/// While Drifted: what differs, per object and field, as `deployment diff`
/// shows it (live, then what Caelus applied and a correction restores).
fn drift(d: &Detail) -> Markup {
    let show = |v: &Option<serde_json::Value>| match v {
        None => "(none)".to_string(),
        Some(v) => v.to_string(),
    };
    html! {
        @match &d.drift {
            None => {}
            Some(result) => section.card #drift-card {
                h2 { "Drift" }
                @match result {
                    Err(why) => p.muted { "The difference cannot be shown: " (why) },
                    Ok(diff) if diff.in_sync => p.muted {
                        "The live objects hold what Caelus applied again (revision "
                        (diff.revision) ")."
                    },
                    Ok(diff) => {
                        p.muted {
                            "Live objects vs what Caelus applied (revision " (diff.revision)
                            ", drift mode " (drift_mode(diff)) ")."
                        }
                        div.scroll { table #drift-table {
                            thead { tr { th { "Object" } th { "Field" } th { "Live" } th { "Applied" } } }
                            tbody {
                                @for m in &diff.missing {
                                    tr { td { (m) } td.muted { "(the whole object)" } td { "deleted" } td { "present" } }
                                }
                                @for o in &diff.changed {
                                    @for c in &o.changes {
                                        tr {
                                            td { (o.object) }
                                            td { code { (c.path) } }
                                            td.wrap { code { (show(&c.from)) } }
                                            td.wrap { code { (show(&c.to)) } }
                                        }
                                    }
                                }
                            }
                        } }
                    },
                }
            },
        }
    }
}

fn drift_mode(diff: &DeploymentDiff) -> String {
    serde_json::to_value(diff.drift_mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn objects(v: &DeploymentView) -> Markup {
    html! {
        @if v.status.objects.is_empty() {
            p.muted { "No objects reported yet." }
        } @else {
            div.scroll { table #objects-table {
                thead { tr { th { "Kind" } th { "Name" } th { "Health" } th { "Message" } } }
                tbody {
                    @for o in &v.status.objects {
                        tr {
                            td { (o.kind) }
                            td { (o.name) }
                            td { span.badge.(layout::health_class(&o.health)) { (o.health) } }
                            td { (o.message) }
                        }
                    }
                }
            } }
        }
    }
}

fn history(user: &UiUser, d: &Detail) -> Markup {
    let v = &d.view;
    let can_roll_back = v.desired_state == "present";
    html! {
        @if d.revisions.is_empty() {
            p.muted { "No revisions yet." }
        } @else {
            div.scroll { table #revisions {
                thead { tr { th { "#" } th { "Kind" } th { "Version" } th { "Outcome" } th { "Requested by" } th { "Started" } th { "Error" } th {} } }
                tbody {
                    @for r in &d.revisions {
                        tr data-revision=(r.number) {
                            td { (r.number) }
                            td { (r.kind) }
                            td { (r.version) }
                            td { span.badge.(outcome_class(&r.outcome)) { (r.outcome) } }
                            td { (r.requested_by) }
                            td { (when(&r.started_at)) }
                            td.wrap { (r.error.as_deref().unwrap_or("")) }
                            td {
                                @if can_roll_back && v.status.current_revision != Some(r.number)
                                    && matches!(r.outcome.as_str(), "deployed" | "superseded") {
                                    form.inline method="post" action={ "/ui/deployments/" (v.uid) "/rollback" } {
                                        (csrf(user))
                                        input type="hidden" name="revision" value=(r.number);
                                        button.small type="submit" { "Roll back to " (r.number) }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "deployed" => "ok",
        "pending" => "busy",
        "failed" => "bad",
        _ => "idle",
    }
}

fn events(d: &Detail) -> Markup {
    html! {
        @if d.events.is_empty() {
            p.muted { "No events." }
        } @else {
            ol.timeline {
                @for e in &d.events {
                    li data-action=(e.action) {
                        span.when { (when(&e.at)) }
                        " "
                        code { (e.action) }
                        " "
                        span { (e.message) }
                        " "
                        span.muted { "— " (e.actor) }
                    }
                }
            }
        }
    }
}

/// The running revision's rendered NOTES.txt: how to reach what the chart runs.
fn notes(d: &Detail) -> Markup {
    let current = d.view.status.current_revision;
    let notes = d
        .revisions
        .iter()
        .find(|r| Some(r.number) == current)
        .and_then(|r| r.notes.as_deref());
    html! {
        @match (current, notes) {
            (_, Some(text)) => {
                p.muted { "From the chart's NOTES.txt, revision " (current.unwrap_or_default()) }
                (layout::code_block(text.trim_end()))
            }
            (None, None) => p.muted { "Shown once a revision is deployed." },
            (Some(_), None) => p.muted { "The chart has no NOTES.txt." },
        }
    }
}

/// Services (DNS name, ports, addresses) and Ingress URLs, from the cluster.
fn endpoints(d: &Detail) -> Markup {
    html! {
        @match &d.endpoints {
            Err(why) => p.muted { "Endpoints are not available: " (why) },
            Ok(list) if list.is_empty() => p.muted { "The deployment has no Services or Ingresses." },
            Ok(list) => div.scroll { table #endpoints-table {
                thead { tr { th { "Kind" } th { "Name" } th { "Type" } th { "Address" } th { "Ports" } } }
                tbody {
                    @for e in list {
                        tr {
                            td { (e.kind) }
                            td { (e.name) }
                            td { (e.type_) }
                            td.wrap {
                                @for url in &e.urls { a href=(url) { (url) } " " }
                                @if let Some(dns) = &e.dns_name { code { (dns) } " " }
                                @for a in &e.addresses { code { (a) } " " }
                            }
                            td { (e.ports.join(", ")) }
                        }
                    }
                }
            } },
        }
    }
}

/// The template's connection details: masked until revealed (each reveal is audited).
fn connection(
    user: &UiUser,
    d: &Detail,
    revealed: Option<&crate::routes::reach::ConnectionView>,
) -> Markup {
    let uid = &d.view.uid;
    html! {
        @if d.connection_declared.is_empty() {
            p.muted { "The template declares no connection details." }
        } @else if let Some(c) = revealed {
            div.scroll { table #connection-table {
                thead { tr { th { "Secret" } th { "Key" } th { "Value" } } }
                tbody {
                    @for item in &c.items {
                        @for (k, v) in &item.values {
                            tr { td { (item.secret) } td { (k) } td { code.secret { (v) } } }
                        }
                        @for k in &item.missing {
                            tr { td { (item.secret) } td { (k) } td.muted { "(missing)" } }
                        }
                    }
                }
            } }
            p.muted { "This read is recorded in the deployment's events." }
        } @else {
            div.scroll { table #connection-table {
                thead { tr { th { "Secret" } th { "Key" } th { "Value" } } }
                tbody {
                    @for c in &d.connection_declared {
                        @for k in &c.keys {
                            tr { td { (c.name_for(&d.view.release)) } td { (k) } td { "••••••••" } }
                        }
                    }
                }
            } }
            form.inline method="post" action={ "/ui/deployments/" (uid) "/connection" } {
                (csrf(user))
                button.small #reveal-connection type="submit" { "Reveal" }
            }
        }
    }
}

/// What the page polls: the parts that change while a deployment moves.
fn fragments(user: &UiUser, d: &Detail) -> serde_json::Value {
    json!({
        "phase": d.view.status.phase,
        "fragments": {
            "summary": summary(&d.view).into_string(),
            "notes": notes(d).into_string(),
            "endpoints": endpoints(d).into_string(),
            "conditions": conditions(&d.view).into_string(),
            "drift": drift(d).into_string(),
            "objects": objects(&d.view).into_string(),
            "history": history(user, d).into_string(),
            "events": events(d).into_string(),
        }
    })
}

/// What an action failed with, and what the user had typed, to show again.
#[derive(Default)]
pub struct Extras {
    pub error: Option<ApiError>,
    /// Which form the error belongs to: `values`, `upgrade` or `rollback`.
    pub error_for: &'static str,
    pub values_text: Option<String>,
    pub upgrade: upgrade::UpgradeInput,
    pub plan: Option<serde_json::Value>,
    /// Connection details the user chose to reveal.
    pub connection: Option<crate::routes::reach::ConnectionView>,
}

pub async fn render_detail(
    state: &AppState,
    user: &UiUser,
    uid: &str,
    extras: Extras,
    status: StatusCode,
) -> Response {
    let d = match load(state, user, uid).await {
        Ok(d) => d,
        Err(e) => return layout::error_page(Some(user), &e),
    };
    let v = &d.view;
    let present = v.desired_state == "present";
    let err_for = |which: &str| {
        extras
            .error
            .as_ref()
            .filter(|_| extras.error_for == which)
            .map(error_box)
    };
    let values_text = extras
        .values_text
        .clone()
        .unwrap_or_else(|| layout::to_yaml(&v.values));
    let upgrade_panel = if present {
        Some(upgrade::panel(state, user, v, &extras).await)
    } else {
        None
    };
    let live = format!("/ui/deployments/{uid}/live");
    let body = html! {
        p.crumbs { a href="/ui/deployments" { "Deployments" } " / " }
        div.heading {
            h1 #deployment-name { (v.name) }
            @if present {
                a.button.danger href={ "/ui/deployments/" (v.uid) "/delete" } { "Delete…" }
            }
        }
        @for w in &v.warnings { div.flash.warn { (w) } }
        @if let Some(e) = err_for("") { (e) }
        section.card #summary { (summary(v)) }
        section.card #notes-card {
            h2 { "Notes" }
            div #notes { (notes(&d)) }
        }
        div.grid {
            section.card #endpoints-card {
                h2 { "Endpoints" }
                div #endpoints { (endpoints(&d)) }
            }
            section.card #connection-card {
                h2 { "Connection details" }
                @if let Some(e) = err_for("connection") { (e) }
                (connection(user, &d, extras.connection.as_ref()))
            }
        }
        div #drift { (drift(&d)) }
        div.grid {
            section.card {
                h2 { "Conditions" }
                div #conditions { (conditions(v)) }
            }
            section.card {
                h2 { "Objects" }
                div #objects { (objects(v)) }
            }
        }
        @if present {
            div.grid {
                section.card #values-card {
                    h2 { "Values" }
                    @if let Some(e) = err_for("values") { (e) }
                    form method="post" action={ "/ui/deployments/" (v.uid) "/values" } {
                        (csrf(user))
                        label for="values" { "User values (YAML or JSON; only allowed paths)" }
                        textarea #values name="values" rows="8" spellcheck="false" { (values_text) }
                        button.primary type="submit" { "Update values" }
                    }
                }
                @if let Some(panel) = upgrade_panel {
                    section.card #upgrade-card {
                        h2 { "Upgrade" }
                        @if let Some(e) = err_for("upgrade") { (e) }
                        (panel)
                    }
                }
            }
        } @else {
            section.card {
                h2 { "Values" }
                (layout::code_block(&layout::to_yaml(&v.values)))
            }
        }
        section.card {
            h2 { "Revision history" }
            @if let Some(e) = err_for("rollback") { (e) }
            div #history { (history(user, &d)) }
        }
        section.card {
            h2 { "Events" }
            div #events { (events(&d)) }
        }
    };
    respond(status, layout::page(&v.name, Some(user), Some(&live), body))
}

pub async fn detail_page(
    State(state): State<AppState>,
    user: UiUser,
    Path(uid): Path<String>,
) -> Response {
    render_detail(&state, &user, &uid, Extras::default(), StatusCode::OK).await
}

pub async fn detail_fragment(
    State(state): State<AppState>,
    user: UiUser,
    Path(uid): Path<String>,
) -> Response {
    match load(&state, &user, &uid).await {
        Ok(d) => Json(fragments(&user, &d)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The reveal button: nothing but the CSRF token.
#[derive(Debug, Deserialize)]
pub struct RevealForm {}

/// Reveals the connection details on the page, through the API handler (audited there).
pub async fn reveal_connection(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    UiForm { user, form: _ }: UiForm<RevealForm>,
) -> Response {
    let result = reach::get_deployment_connection(
        State(state.clone()),
        user.actor.clone(),
        Path(uid.clone()),
    )
    .await;
    let (extras, status) = match result {
        Ok(Json(c)) => (
            Extras {
                connection: Some(c),
                ..Extras::default()
            },
            StatusCode::OK,
        ),
        Err(e) => {
            let status = e.status;
            (
                Extras {
                    error: Some(e),
                    error_for: "connection",
                    ..Extras::default()
                },
                status,
            )
        }
    };
    render_detail(&state, &user, &uid, extras, status).await
}

#[derive(Debug, Deserialize)]
pub struct ValuesForm {
    #[serde(default)]
    pub values: String,
}

pub async fn update_values(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    UiForm { user, form }: UiForm<ValuesForm>,
) -> Response {
    let result = async {
        let values = layout::parse_values("values", &form.values)?;
        api::update_deployment(
            State(state.clone()),
            user.actor.clone(),
            Path(uid.clone()),
            ApiJson(UpdateDeployment {
                values: Some(values),
                name: None,
                allow_data_loss: false,
                dry_run: false,
            }),
        )
        .await
    }
    .await;
    match result {
        Ok(Json(v)) => {
            let message = match v {
                api::UpdateReply::Deployment(d) => {
                    format!("Values updated: generation {}", d.generation)
                }
                // Not asked for here (no dry run), but named if it ever is.
                api::UpdateReply::Plan(_) => "Values checked; nothing changed".to_string(),
            };
            user.flash(FlashKind::Info, message).await;
            Redirect::to(&format!("/ui/deployments/{uid}")).into_response()
        }
        Err(e) => {
            let status = e.status;
            let extras = Extras {
                error: Some(e),
                error_for: "values",
                values_text: Some(form.values),
                ..Default::default()
            };
            render_detail(&state, &user, &uid, extras, status).await
        }
    }
}

pub async fn delete_page(
    State(state): State<AppState>,
    user: UiUser,
    Path(uid): Path<String>,
) -> Response {
    let v = match api::get_deployment(State(state.clone()), user.actor.clone(), Path(uid)).await {
        Ok(Json(v)) => v,
        Err(e) => return layout::error_page(Some(&user), &e),
    };
    let body = html! {
        section.narrow.card {
            h1 { "Delete " (v.name) "?" }
            p { "Caelus removes every object of this deployment and its namespace "
                code { (v.namespace) } ". Persistent data in it is deleted too. This cannot be undone." }
            form method="post" action={ "/ui/deployments/" (v.uid) "/delete" } {
                (csrf(&user))
                button.danger type="submit" #confirm-delete { "Delete " (v.name) }
                " "
                a href={ "/ui/deployments/" (v.uid) } { "Cancel" }
            }
        }
    };
    respond(
        StatusCode::OK,
        layout::page("Delete", Some(&user), None, body),
    )
}

pub async fn delete(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    UiForm { user, .. }: UiForm<serde::de::IgnoredAny>,
) -> Response {
    match api::delete_deployment(
        State(state.clone()),
        user.actor.clone(),
        Path(uid.clone()),
        Query(api::DeleteQuery { keep_volumes: None }),
    )
    .await
    {
        Ok(_) => {
            user.flash(FlashKind::Info, "Deletion requested").await;
            Redirect::to(&format!("/ui/deployments/{uid}")).into_response()
        }
        Err(e) => layout::error_page(Some(&user), &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    pub product: String,
    pub version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub values: String,
    pub tenant: Option<String>,
}

/// Create a deployment from the catalog's deploy form.
pub async fn create(
    State(state): State<AppState>,
    UiForm { user, form }: UiForm<CreateForm>,
) -> Response {
    let result = async {
        let values = layout::parse_values("values", &form.values)?;
        api::create_deployment(
            State(state.clone()),
            user.actor.clone(),
            ApiJson(CreateDeployment {
                name: form.name.trim().to_string(),
                product: form.product.clone(),
                version: form.version.clone(),
                values,
                tenant: non_empty(&form.tenant),
            }),
        )
        .await
    }
    .await;
    match result {
        Ok((_, Json(v))) => {
            let mut msg = format!("Deployment '{}' created", v.name);
            for w in &v.warnings {
                msg.push_str(&format!(" — {w}"));
            }
            user.flash(FlashKind::Info, msg).await;
            Redirect::to(&format!("/ui/deployments/{}", v.uid)).into_response()
        }
        Err(e) => {
            super::catalog::render_deploy(
                &state,
                &user,
                &form.product,
                &form.version,
                super::catalog::DeployInput {
                    name: form.name,
                    values: form.values,
                    tenant: form.tenant.unwrap_or_default(),
                },
                Some(e),
            )
            .await
        }
    }
}
