//! Helm's `lookup`, scoped to one namespace.
//!
//! Bitnami charts (and many others) `lookup` their own Secrets on upgrade;
//! rendering without a cluster makes them fail (`PASSWORDS ERROR`). Giving
//! Helm Caelus's own cluster credentials would let a template — or a tenant
//! value evaluated by `tpl` — read any namespace. So Helm gets a kubeconfig
//! for a small read-only endpoint on loopback, served by this process:
//!
//! - the kubeconfig's server URL carries a random token, registered for the
//!   duration of one render and bound to that render's namespace;
//! - only GETs are served; what a GET may read is decided by
//!   [`caelus_core::lookup_scope::classify`]: discovery, and namespaced
//!   objects of the token's own namespace. Everything else is answered
//!   `404 NotFound` (a Kubernetes `Status`), which Helm's `lookup` returns
//!   as an empty result, as for an object that does not exist;
//! - allowed reads are forwarded to the cluster with Caelus's client, bounded
//!   in time and size.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use caelus_core::lookup_scope::{LookupAccess, classify};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one forwarded read may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer forwarded to Helm (a list of big Secrets stays below).
const MAX_BODY_BYTES: usize = 16 << 20;

/// The loopback endpoint. Started once per engine, on first use.
pub(crate) struct LookupProxy {
    addr: SocketAddr,
    scopes: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LookupProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ProxyState {
    client: kube::Client,
    scopes: Arc<Mutex<HashMap<String, String>>>,
}

impl LookupProxy {
    pub(crate) async fn start(client: kube::Client) -> std::io::Result<LookupProxy> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let scopes = Arc::new(Mutex::new(HashMap::new()));
        let app = Router::new()
            .route("/lookup/{token}/{*path}", axum::routing::any(forward))
            .with_state(ProxyState {
                client,
                scopes: scopes.clone(),
            });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the lookup endpoint stopped");
            }
        });
        Ok(LookupProxy { addr, scopes, task })
    }

    /// A kubeconfig that reads `namespace` only, valid while the scope lives.
    pub(crate) fn scope(&self, namespace: &str) -> LookupScope {
        let token = uuid::Uuid::new_v4().simple().to_string();
        lock(&self.scopes).insert(token.clone(), namespace.to_string());
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "caelus-lookup", "cluster": {
                "server": format!("http://{}/lookup/{token}", self.addr)}}],
            "users": [{"name": "caelus-lookup", "user": {}}],
            "contexts": [{"name": "caelus-lookup", "context": {
                "cluster": "caelus-lookup", "user": "caelus-lookup", "namespace": namespace}}],
            "current-context": "caelus-lookup",
        })
        .to_string();
        LookupScope {
            scopes: self.scopes.clone(),
            token,
            kubeconfig,
        }
    }
}

/// One render's access; the token stops working when this is dropped.
pub struct LookupScope {
    scopes: Arc<Mutex<HashMap<String, String>>>,
    token: String,
    kubeconfig: String,
}

impl LookupScope {
    /// What to put on the render request.
    pub fn cluster(&self) -> caelus_helm::LookupCluster {
        caelus_helm::LookupCluster {
            kubeconfig: self.kubeconfig.clone(),
        }
    }
}

impl Drop for LookupScope {
    fn drop(&mut self) {
        lock(&self.scopes).remove(&self.token);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Kubernetes `Status` answer.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn forward(
    State(state): State<ProxyState>,
    Path((token, _)): Path<(String, String)>,
    method: Method,
    uri: Uri,
) -> Response {
    let Some(namespace) = lock(&state.scopes).get(&token).cloned() else {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "this lookup token is not (or no longer) valid",
        );
    };
    if method != Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Helm's lookup is read-only here",
        );
    }
    // The API path is what follows `/lookup/{token}`.
    let prefix = format!("/lookup/{token}");
    let path = uri.path().strip_prefix(&prefix).unwrap_or("");
    match classify(path, uri.query(), &namespace) {
        LookupAccess::NotFound => {
            tracing::debug!(
                path,
                namespace,
                "lookup outside the namespace answered not found"
            );
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "not found (lookups read only the deployment's own namespace)",
            )
        }
        LookupAccess::Discovery | LookupAccess::OwnNamespace => {
            let target = match uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            };
            match tokio::time::timeout(FORWARD_TIMEOUT, read(&state.client, &target)).await {
                Ok(Ok((code, body))) => {
                    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Ok(Err(message)) => status(StatusCode::BAD_GATEWAY, "InternalError", &message),
                Err(_) => status(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Timeout",
                    "the cluster did not answer the lookup in time",
                ),
            }
        }
    }
}

async fn read(client: &kube::Client, target: &str) -> Result<(StatusCode, Bytes), String> {
    let request = http::Request::get(target)
        .header(header::ACCEPT, "application/json")
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| e.to_string())?;
    let response = client.send(request).await.map_err(|e| e.to_string())?;
    let code = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the cluster's answer: {e}"))?
        .to_bytes();
    Ok((code, body))
}
