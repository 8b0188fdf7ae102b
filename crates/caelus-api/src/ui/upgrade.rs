//! Upgrade (with a dry-run preview) and rollback, through the API's handlers.

use super::deployments::{Extras, render_detail};
use super::layout::{self, csrf};
use super::session::FlashKind;
use super::{UiForm, UiUser};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::upgrades::{self as api, RollbackRequest, UpgradeRequest};
use crate::state::AppState;
use crate::views::DeploymentView;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use caelus_core::FieldError;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

/// What the upgrade form had in it.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct UpgradeInput {
    #[serde(default)]
    pub to_version: String,
    #[serde(default)]
    pub values: String,
    /// `preview` (dry run) or `upgrade`.
    #[serde(default)]
    pub action: String,
    pub allow_data_loss: Option<String>,
}

fn list_of(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or_else(|| o.get("object").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_else(|| x.to_string()),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The dry-run plan as the page shows it.
fn plan_view(plan: &Value) -> Markup {
    let allowed = plan["allowed"].as_bool().unwrap_or(false);
    let section = |title: &str, items: Vec<String>| {
        html! {
            @if !items.is_empty() {
                h4 { (title) " (" (items.len()) ")" }
                ul { @for i in &items { li { code { (i) } } } }
            }
        }
    };
    let updates: Vec<String> = plan["update"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    let changes = o["changes"]
                        .as_array()
                        .map(|c| {
                            c.iter()
                                .filter_map(|f| f["path"].as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    format!(
                        "{}{}",
                        o["object"].as_str().unwrap_or("?"),
                        if changes.is_empty() {
                            String::new()
                        } else {
                            format!(": {changes}")
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    html! {
        div.plan #upgrade-plan data-allowed=(allowed) {
            h3 { "Plan: " (plan["from_version"].as_str().unwrap_or("?")) " → " (plan["to_version"].as_str().unwrap_or("?")) " "
                @if allowed { span.badge.ok { "allowed" } } @else { span.badge.bad { "refused" } }
            }
            p.muted { (plan["unchanged"].as_u64().unwrap_or(0)) " objects unchanged." }
            (section("Create", list_of(&plan["create"])))
            (section("Update", updates))
            (section("Delete", list_of(&plan["delete"])))
            (section("Keep (resource-policy keep)", list_of(&plan["keep"])))
            (section("Hooks", list_of(&plan["hooks"])))
            (section("Data risks", list_of(&plan["data_risks"])))
            (section("Warnings", list_of(&plan["warnings"])))
            @if let Some(policy) = plan["policy"].as_array() {
                @if !policy.is_empty() {
                    h4 { "Policy" }
                    ul.policy {
                        @for p in policy {
                            li {
                                @if p["passed"].as_bool().unwrap_or(false) { span.badge.ok { "pass" } } @else { span.badge.bad { "fail" } }
                                " " code { (p["rule"].as_str().unwrap_or("")) } " " (p["message"].as_str().unwrap_or(""))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The upgrade form: allowed targets to pick from, refused ones with the reasons.
pub async fn panel(state: &AppState, user: &UiUser, v: &DeploymentView, extras: &Extras) -> Markup {
    let targets = api::list_upgrade_targets(
        State(state.clone()),
        user.actor.clone(),
        Path(v.uid.clone()),
    )
    .await;
    let targets = match targets {
        Ok(Json(t)) => t.items,
        Err(e) => return layout::error_box(&e),
    };
    let input = &extras.upgrade;
    let (allowed, refused): (Vec<_>, Vec<_>) = targets.iter().partition(|t| t.allowed);
    html! {
        p { "Running " strong { (v.product) " " (v.version) } "." }
        @if allowed.is_empty() {
            p.muted #no-upgrade { "No version can be upgraded to now." }
        } @else {
            form method="post" action={ "/ui/deployments/" (v.uid) "/upgrade" } #upgrade-form {
                (csrf(user))
                label for="to_version" { "Target version" }
                select #to_version name="to_version" required {
                    @for t in &allowed {
                        option value=(t.version) selected[input.to_version == t.version] {
                            (t.version) " (" (t.lifecycle) ")"
                            @if !t.warnings.is_empty() { " — " (t.warnings.join("; ")) }
                        }
                    }
                }
                label for="upgrade-values" { "New values (empty: keep the current ones)" }
                textarea #upgrade-values name="values" rows="3" spellcheck="false" { (input.values) }
                @if user.actor.is_admin() {
                    label.check {
                        input type="checkbox" name="allow_data_loss" value="true" checked[input.allow_data_loss.is_some()];
                        " Allow data loss (admin override; recorded)"
                    }
                }
                div.row {
                    button type="submit" name="action" value="preview" #preview-upgrade { "Preview (dry run)" }
                    button.primary type="submit" name="action" value="upgrade" #do-upgrade { "Upgrade" }
                }
            }
        }
        @if let Some(plan) = &extras.plan { (plan_view(plan)) }
        @if !refused.is_empty() {
            h3 { "Not allowed" }
            ul.refused {
                @for t in &refused {
                    li data-version=(t.version) {
                        strong { (t.version) } " (" (t.lifecycle) "): " (t.reasons.join("; "))
                    }
                }
            }
        }
    }
}

async fn body_json(resp: Response) -> Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 8 * 1024 * 1024)
        .await
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

pub async fn upgrade(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    UiForm { user, form }: UiForm<UpgradeInput>,
) -> Response {
    let dry_run = form.action == "preview";
    let result = async {
        let values = if form.values.trim().is_empty() {
            None
        } else {
            Some(layout::parse_values("values", &form.values)?)
        };
        if form.to_version.trim().is_empty() {
            return Err(ApiError::invalid(FieldError::new(
                "to_version",
                "choose a version",
            )));
        }
        api::upgrade_deployment(
            State(state.clone()),
            user.actor.clone(),
            Path(uid.clone()),
            ApiJson(UpgradeRequest {
                to_version: form.to_version.trim().to_string(),
                values,
                dry_run,
                allow_data_loss: form.allow_data_loss.is_some(),
            }),
        )
        .await
    }
    .await;
    match result {
        Ok(resp) if dry_run || resp.status() == StatusCode::OK => {
            let plan = body_json(resp).await;
            let extras = Extras {
                upgrade: form,
                plan: Some(plan),
                ..Default::default()
            };
            render_detail(&state, &user, &uid, extras, StatusCode::OK).await
        }
        Ok(resp) => {
            let view = body_json(resp).await;
            let mut msg = format!(
                "Upgrade to {} requested: generation {}",
                form.to_version,
                view["generation"].as_i64().unwrap_or_default()
            );
            for w in list_of(&view["warnings"]) {
                msg.push_str(&format!(" — {w}"));
            }
            user.flash(FlashKind::Info, msg).await;
            Redirect::to(&format!("/ui/deployments/{uid}")).into_response()
        }
        Err(e) => {
            let status = e.status;
            let extras = Extras {
                error: Some(e),
                error_for: "upgrade",
                upgrade: form,
                ..Default::default()
            };
            render_detail(&state, &user, &uid, extras, status).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    pub revision: String,
}

pub async fn rollback(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    UiForm { user, form }: UiForm<RollbackForm>,
) -> Response {
    let result = async {
        let revision: i64 = form.revision.trim().parse().map_err(|_| {
            ApiError::invalid(FieldError::new("revision", "must be a revision number"))
        })?;
        api::rollback_deployment(
            State(state.clone()),
            user.actor.clone(),
            Path(uid.clone()),
            ApiJson(RollbackRequest {
                revision,
                dry_run: false,
                allow_data_loss: false,
            }),
        )
        .await
        .map(|r| (revision, r))
    }
    .await;
    match result {
        Ok((revision, _)) => {
            user.flash(
                FlashKind::Info,
                format!("Rollback to revision {revision} requested"),
            )
            .await;
            Redirect::to(&format!("/ui/deployments/{uid}")).into_response()
        }
        Err(e) => {
            let status = e.status;
            let extras = Extras {
                error: Some(e),
                error_for: "rollback",
                ..Default::default()
            };
            render_detail(&state, &user, &uid, extras, status).await
        }
    }
}
