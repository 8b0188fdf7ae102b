//! Page chrome, shared widgets and the embedded stylesheet and script.

use super::session::FlashKind;
use super::{CSRF_FIELD, UiUser};
use crate::error::ApiError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const STYLE_CSS: &str = include_str!("static/app.css");
pub const UI_JS: &str = include_str!("static/app.js");
/// Busts browser caches when the assets change with a release.
const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

pub async fn css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

pub async fn js() -> Response {
    asset(UI_JS, "text/javascript; charset=utf-8")
}

/// The hidden CSRF field every form carries.
pub fn csrf(user: &UiUser) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(user.csrf); }
}

/// A whole page. `live` is the URL the page's fragments poll, if any.
pub fn page(title: &str, user: Option<&UiUser>, live: Option<&str>, body: Markup) -> Markup {
    let flash = user.and_then(|u| u.take_flash());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Caelus" }
                link rel="stylesheet" href={ "/ui/static/app.css?v=" (ASSET_VERSION) };
                script src={ "/ui/static/app.js?v=" (ASSET_VERSION) } defer {}
            }
            body data-live=[live] {
                header.top {
                    a.brand href="/ui/deployments" { "Caelus" }
                    @if let Some(u) = user {
                        nav {
                            a href="/ui/deployments" { "Deployments" }
                            a href="/ui/catalog" { "Catalog" }
                        }
                        div.who {
                            span #whoami title={ "token " (u.actor.token_name) } {
                                (u.actor.token_name) " · " (u.actor.tenant_label()) " · " (u.actor.role.as_str())
                            }
                            form.inline method="post" action="/ui/logout" {
                                (csrf(u))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    @if let Some((kind, msg)) = flash {
                        div.flash.(match kind { FlashKind::Info => "info", FlashKind::Error => "bad" }) role="status" { (msg) }
                    }
                    (body)
                }
            }
        }
    }
}

/// An API error as the page shows it: the detail and each field at fault.
pub fn error_box(e: &ApiError) -> Markup {
    html! {
        div.error role="alert" data-status=(e.status.as_u16()) {
            strong { (e.status.as_u16()) " " (e.status.canonical_reason().unwrap_or("Error")) }
            ": " (e.detail)
            @if !e.errors.is_empty() {
                ul.fields {
                    @for f in &e.errors {
                        li data-field=(f.field) { code { (f.field) } ": " (f.reason) }
                    }
                }
            }
        }
    }
}

/// A page that is only an error, with the error's status.
pub fn error_page(user: Option<&UiUser>, e: &ApiError) -> Response {
    let status = e.status;
    let body = page(
        status.canonical_reason().unwrap_or("Error"),
        user,
        None,
        html! {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            (error_box(e))
            p { a href="/ui/deployments" { "Back to deployments" } }
        },
    );
    respond(status, body)
}

/// An HTML response with a status.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
}

/// The CSS class of a phase badge.
pub fn phase_class(phase: &str) -> &'static str {
    match phase {
        "Ready" => "ok",
        "Pending" | "Installing" | "Upgrading" | "RollingBack" | "Deleting" => "busy",
        "Degraded" => "warn",
        "Failed" | "DeletionBlocked" => "bad",
        _ => "idle",
    }
}

pub fn phase_badge(phase: &str) -> Markup {
    html! { span.badge.(phase_class(phase)) data-phase=(phase) { (phase) } }
}

pub fn health_class(health: &str) -> &'static str {
    match health {
        "Healthy" => "ok",
        "Progressing" | "Unknown" => "busy",
        "Degraded" | "Suspended" => "warn",
        _ => "bad",
    }
}

pub fn lifecycle_class(lifecycle: &str) -> &'static str {
    match lifecycle {
        "published" => "ok",
        "deprecated" => "warn",
        "retired" => "bad",
        _ => "idle",
    }
}

pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// "3m", "2h", "5d": how long ago (or, negative, how far ahead) `s` is.
pub fn human_delta(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub fn age(s: &str) -> String {
    parse_time(s)
        .map(|t| human_delta((OffsetDateTime::now_utc() - t).whole_seconds()))
        .unwrap_or_default()
}

/// A timestamp with its relative form, e.g. "2025-01-01T10:00:00Z (3m ago)".
pub fn when(s: &str) -> Markup {
    let rel = parse_time(s).map(|t| {
        let d = (OffsetDateTime::now_utc() - t).whole_seconds();
        if d >= 0 {
            format!("{} ago", human_delta(d))
        } else {
            format!("in {}", human_delta(d))
        }
    });
    html! { time datetime=(s) title=(s) { (rel.unwrap_or_else(|| s.to_string())) } }
}

/// YAML for a JSON value, as users edit it ("{}" for an empty object).
pub fn to_yaml(v: &serde_json::Value) -> String {
    if v.as_object().is_some_and(|o| o.is_empty()) || v.is_null() {
        return String::new();
    }
    yaml_serde::to_string(v).unwrap_or_else(|_| v.to_string())
}

/// Values typed in a textarea: YAML or JSON (JSON is YAML); empty means `{}`.
pub fn parse_values(field: &str, text: &str) -> Result<serde_json::Value, ApiError> {
    if text.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    let v: serde_json::Value = yaml_serde::from_str(text).map_err(|e| {
        ApiError::invalid(caelus_core::FieldError::new(
            field,
            format!("is not valid YAML or JSON: {e}"),
        ))
    })?;
    match v {
        serde_json::Value::Null => Ok(serde_json::json!({})),
        v @ serde_json::Value::Object(_) => Ok(v),
        _ => Err(ApiError::invalid(caelus_core::FieldError::new(
            field,
            "must be a mapping of value paths (e.g. 'replicaCount: 2')",
        ))),
    }
}

/// A read-only code block.
pub fn code_block(text: &str) -> Markup {
    html! { pre.code { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_from_yaml_or_json_and_must_be_mappings() {
        assert_eq!(parse_values("values", "").unwrap(), serde_json::json!({}));
        assert_eq!(
            parse_values("values", "replicaCount: 2\n").unwrap(),
            serde_json::json!({"replicaCount": 2})
        );
        assert_eq!(
            parse_values("values", "{\"a\": {\"b\": true}}").unwrap(),
            serde_json::json!({"a": {"b": true}})
        );
        let e = parse_values("values", "- 1\n- 2").unwrap_err();
        assert_eq!(e.errors[0].field, "values");
        let e = parse_values("values", "a: [").unwrap_err();
        assert!(e.errors[0].reason.contains("not valid YAML"));
    }

    #[test]
    fn deltas_are_short() {
        assert_eq!(human_delta(5), "5s");
        assert_eq!(human_delta(-125), "2m");
        assert_eq!(human_delta(7200), "2h");
        assert_eq!(human_delta(3 * 86400), "3d");
    }
}
