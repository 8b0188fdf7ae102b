//! The web UI: server-rendered pages under `/ui` (maud), no external assets.
//!
//! Every action calls the same handler the JSON API runs (`routes::*`), so the
//! UI shares its validation, tenant isolation, transactions and audit events.
//! Sign-in exchanges an API token for a session cookie (see [`session`]; sessions
//! live in the database, so any replica serves them); every form carries the
//! session's CSRF token and is refused with 403 without it.

mod catalog;
mod deployments;
mod layout;
pub mod session;
mod upgrade;

use crate::auth::{self, Actor};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use caelus_store::Store;
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use session::{FlashKind, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL};

pub use layout::{STYLE_CSS, UI_JS};

/// The `/ui` pages. Sessions are rows in the database, shared by every replica.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/deployments") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/deployments") }))
        .route("/ui/static/app.css", get(layout::css))
        .route("/ui/static/app.js", get(layout::js))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route(
            "/ui/deployments",
            get(deployments::list_page).post(deployments::create),
        )
        .route("/ui/deployments/rows", get(deployments::rows_fragment))
        .route("/ui/deployments/{uid}", get(deployments::detail_page))
        .route(
            "/ui/deployments/{uid}/live",
            get(deployments::detail_fragment),
        )
        .route(
            "/ui/deployments/{uid}/values",
            post(deployments::update_values),
        )
        .route(
            "/ui/deployments/{uid}/delete",
            get(deployments::delete_page).post(deployments::delete),
        )
        .route(
            "/ui/deployments/{uid}/connection",
            post(deployments::reveal_connection),
        )
        .route("/ui/deployments/{uid}/upgrade", post(upgrade::upgrade))
        .route("/ui/deployments/{uid}/rollback", post(upgrade::rollback))
        .route("/ui/catalog", get(catalog::catalog_page))
        .route("/ui/catalog/products", post(catalog::create_product))
        .route("/ui/catalog/versions", post(catalog::publish_version))
        .route(
            "/ui/catalog/{product}/{version}/deploy",
            get(catalog::deploy_page),
        )
        .route(
            "/ui/catalog/{product}/{version}/{action}",
            post(catalog::lifecycle),
        )
        .layer(axum::middleware::map_response(security_headers))
}

/// No framing, no third-party anything, no caching of pages that show private state.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A cookie's value from the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure_suffix(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, path: &str, max_age: u64) -> String {
    format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        secure_suffix(headers)
    )
}

/// Appends a `Set-Cookie` to `resp`. Names, paths and our generated values are
/// ASCII; should one ever not be, the cookie is left out (and logged) rather
/// than taking the request down.
fn add_cookie(
    resp: &mut Response,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) {
    match HeaderValue::from_str(&set_cookie(headers, name, value, path, max_age)) {
        Ok(v) => {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Err(e) => tracing::error!(error = %e, cookie = name, "cookie is not a valid header value"),
    }
}

/// A signed-in user: the session and the actor its token resolves to now.
pub struct UiUser {
    pub actor: Actor,
    pub sid: String,
    pub csrf: String,
    store: Store,
    /// The one-time message read (and cleared) when this page request arrived.
    flash: Option<(FlashKind, String)>,
}

impl UiUser {
    /// Leaves a message for the next page. A failure to store it is logged, not
    /// shown: the action it reports has already happened.
    pub async fn flash(&self, kind: FlashKind, message: impl Into<String>) {
        let message = message.into();
        if let Err(e) = session::flash(&self.store, &self.sid, kind, &message).await {
            tracing::warn!(error = %e, "could not store the session's message");
        }
    }

    pub fn take_flash(&self) -> Option<(FlashKind, String)> {
        self.flash.clone()
    }
}

/// Fragments polled by pages (`/live`, `/rows`): they answer 401 rather than
/// redirect, and never consume the session's one-time message.
fn is_fragment(parts: &Parts) -> bool {
    parts.uri.path().ends_with("/live") || parts.uri.path().ends_with("/rows")
}

fn to_login(parts: &Parts) -> Response {
    if is_fragment(parts) {
        return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
    }
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/ui/deployments");
    let target = if parts.method == axum::http::Method::GET {
        format!("/ui/login?next={}", urlencode(next))
    } else {
        "/ui/login".to_string()
    };
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(sid) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_string) else {
            return Err(to_login(parts));
        };
        let store = state.store.clone();
        let session = match session::get(&store, &sid).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(to_login(parts)),
            Err(e) => return Err(layout::error_page(None, &ApiError::from(e))),
        };
        match auth::authenticate_token_id(state, &session.token_id).await {
            Ok(actor) => {
                let flash = if parts.method == axum::http::Method::GET && !is_fragment(parts) {
                    session::take_flash(&store, &sid).await.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "could not read the session's message");
                        None
                    })
                } else {
                    None
                };
                Ok(UiUser {
                    actor,
                    sid,
                    csrf: session.csrf,
                    store,
                    flash,
                })
            }
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                // The token was revoked or expired: the session ends with it.
                if let Err(e) = session::remove(&store, &sid).await {
                    tracing::warn!(error = %e, "could not end a session");
                }
                Err(to_login(parts))
            }
            Err(e) => Err(layout::error_page(None, &e)),
        }
    }
}

/// A form POST from a signed-in user whose CSRF token matched; `T` is the form.
pub struct UiForm<T> {
    pub user: UiUser,
    pub form: T,
}

pub const CSRF_FIELD: &str = "_csrf";

fn csrf_refused(reason: &str) -> Response {
    let err = ApiError::forbidden(format!(
        "the form was refused: {reason}. Reload the page and try again."
    ));
    layout::error_page(None, &err)
}

/// A POST must come from this site: refuse a cross-origin `Origin` header outright.
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, rest)| rest == host)
}

fn form_csrf(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v)
}

async fn read_body(req: Request) -> Result<Bytes, Response> {
    Bytes::from_request(req, &())
        .await
        .map_err(|r| layout::error_page(None, &ApiError::bad_request("body", r.body_text())))
}

impl<T: DeserializeOwned> FromRequest<AppState> for UiForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        if !same_origin(&parts) {
            return Err(csrf_refused("it was posted from another site"));
        }
        let user = UiUser::from_request_parts(&mut parts, state).await?;
        let bytes = read_body(Request::from_parts(parts, body)).await?;
        match form_csrf(&bytes) {
            Some(token) if session::same_secret(&token, &user.csrf) => {}
            Some(_) => return Err(csrf_refused("its CSRF token does not match this session")),
            None => return Err(csrf_refused("it carries no CSRF token")),
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            layout::error_page(Some(&user), &ApiError::bad_request("form", e.to_string()))
        })?;
        Ok(UiForm { user, form })
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|v| v.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Where to go after sign-in: only a path inside the UI, never another site, and
/// only visible ASCII (a control character or raw non-ASCII byte cannot go into a
/// `Location` header; it is ignored, not answered with a 500).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/ui/deployments".to_string(),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    pub next: Option<String>,
}

fn login_form(csrf: &str, next: &str, error: Option<&ApiError>) -> Markup {
    html! {
        section.narrow {
            h1 { "Sign in to Caelus" }
            p.muted { "Paste an API token (" code { "caelus token create" } ", or the admin token " code { "caelus dev" } " prints)." }
            @if let Some(e) = error { (layout::error_box(e)) }
            form method="post" action="/ui/login" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required autofocus placeholder="cae_…";
                button.primary type="submit" { "Sign in" }
            }
        }
    }
}

fn login_response(
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    error: Option<&ApiError>,
) -> Response {
    // Login CSRF: a random value in a Strict cookie that the form must echo.
    let csrf = session::random_token();
    let body = layout::page("Sign in", None, None, login_form(&csrf, next, error));
    let mut resp = layout::respond(status, body);
    add_cookie(
        &mut resp,
        headers,
        LOGIN_CSRF_COOKIE,
        &csrf,
        "/ui/login",
        3600,
    );
    resp
}

async fn login_page(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    login_response(
        &headers,
        StatusCode::OK,
        &safe_next(q.next.as_deref()),
        None,
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers.clone();
    let addr = auth::client_addr(&parts.extensions);
    if !same_origin(&parts) {
        return csrf_refused("it was posted from another site");
    }
    let bytes = match read_body(Request::from_parts(parts, body)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form: LoginForm = match serde_urlencoded::from_bytes(&bytes) {
        Ok(f) => f,
        Err(e) => return layout::error_page(None, &ApiError::bad_request("form", e.to_string())),
    };
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE);
    match (form.csrf.as_deref(), expected) {
        (Some(sent), Some(exp)) if session::same_secret(sent, exp) => {}
        (None, _) => return csrf_refused("it carries no CSRF token"),
        _ => return csrf_refused("its CSRF token does not match"),
    }
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim();
    if token.is_empty() {
        let e = ApiError::invalid(caelus_core::FieldError::new("token", "enter an API token"));
        return login_response(&headers, e.status, &next, Some(&e));
    }
    match auth::authenticate_from(&state, addr, token).await {
        Ok(actor) => {
            let sid = match session::create(&state.store, &actor.token_id).await {
                Ok(sid) => sid,
                Err(e) => return layout::error_page(None, &ApiError::from(e)),
            };
            tracing::info!(token = %actor.token_name, tenant = %actor.tenant_label(), "ui sign-in");
            let mut resp = Redirect::to(&next).into_response();
            let ttl = SESSION_TTL.as_secs();
            add_cookie(&mut resp, &headers, SESSION_COOKIE, &sid, "/ui", ttl);
            add_cookie(&mut resp, &headers, LOGIN_CSRF_COOKIE, "", "/ui/login", 0);
            resp
        }
        Err(e) => {
            let e = if e.status == StatusCode::UNAUTHORIZED {
                ApiError {
                    errors: vec![caelus_core::FieldError::new(
                        "token",
                        "is invalid or has been revoked",
                    )],
                    ..e
                }
            } else {
                e
            };
            let mut resp = login_response(&headers, e.status, &next, Some(&e));
            if let Some(secs) = e.retry_after
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

async fn logout(
    headers: HeaderMap,
    UiForm { user, .. }: UiForm<serde::de::IgnoredAny>,
) -> Response {
    if let Err(e) = session::remove(&user.store, &user.sid).await {
        return layout::error_page(Some(&user), &ApiError::from(e));
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    add_cookie(&mut resp, &headers, SESSION_COOKIE, "", "/ui", 0);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_redirects_stay_on_this_site_and_in_the_ui() {
        assert_eq!(safe_next(Some("/ui/catalog?q=wiki")), "/ui/catalog?q=wiki");
        for refused in [
            None,
            Some(""),
            Some("https://evil.example/ui/"),
            Some("//evil.example/ui/"),
            Some("/ui//evil.example"),
            Some("/ui/\\evil"),
            Some("/ui/a\r\nSet-Cookie: x=y"),
            Some("/ui/a\u{7f}"),
            Some("/ui/\u{e9}t\u{e9}"),
            Some("/ui/a b"),
            Some("/api/v1/tokens"),
        ] {
            assert_eq!(safe_next(refused), "/ui/deployments", "{refused:?}");
        }
    }
}
