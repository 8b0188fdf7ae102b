//! A `tower::Layer` for the Kubernetes client's HTTP stack that counts requests
//! by Kubernetes verb and response code into a [`Metrics`] registry.
//!
//! ```ignore
//! let client = kube::client::ClientBuilder::try_from(config)?
//!     .with_layer(&caelus_metrics::KubeMetricsLayer::global())
//!     .build();
//! ```

use crate::Metrics;
use http::{Method, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Wraps a service so each request is counted in `caelus_kube_requests_total`.
#[derive(Debug, Clone, Copy)]
pub struct KubeMetricsLayer {
    metrics: &'static Metrics,
}

impl KubeMetricsLayer {
    /// Records into [`crate::global`].
    pub fn global() -> Self {
        Self {
            metrics: crate::global(),
        }
    }

    /// Records into another registry (tests).
    pub fn new(metrics: &'static Metrics) -> Self {
        Self { metrics }
    }
}

impl Default for KubeMetricsLayer {
    fn default() -> Self {
        Self::global()
    }
}

impl<S> tower::Layer<S> for KubeMetricsLayer {
    type Service = KubeMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KubeMetrics {
            inner,
            metrics: self.metrics,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KubeMetrics<S> {
    inner: S,
    metrics: &'static Metrics,
}

impl<S, B, R> tower::Service<Request<B>> for KubeMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let verb = kube_verb(
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
            content_type,
        );
        let metrics = self.metrics;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            match &result {
                Ok(resp) => metrics.kube_request(verb, resp.status().as_str()),
                Err(_) => metrics.kube_request(verb, "error"),
            }
            result
        })
    }
}

/// The Kubernetes verb of a request, as the API server's audit log would name it:
/// `get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete`,
/// `deletecollection`; `discovery` for `/api`, `/apis`, `/version`, `/openapi`.
pub fn kube_verb(method: &Method, path: &str, query: &str, content_type: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // What follows the group/version: [namespaces, ns,] resource [, name [, subresource]]
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    if rest.is_empty() {
        return if *method == Method::GET {
            "discovery"
        } else {
            "other"
        };
    }
    let rest = match rest {
        ["namespaces", _ns, inner @ ..] if !inner.is_empty() => inner,
        r => r,
    };
    let collection = rest.len() == 1;
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    match *method {
        Method::GET if watch => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{Layer, Service, ServiceExt};

    #[test]
    fn verbs_follow_the_api_path_grammar() {
        let g = Method::GET;
        assert_eq!(kube_verb(&g, "/api", "", ""), "discovery");
        assert_eq!(kube_verb(&g, "/apis/apps/v1", "", ""), "discovery");
        assert_eq!(kube_verb(&g, "/version", "", ""), "discovery");
        assert_eq!(kube_verb(&g, "/api/v1/namespaces", "", ""), "list");
        assert_eq!(kube_verb(&g, "/api/v1/namespaces/ns1", "", ""), "get");
        assert_eq!(kube_verb(&g, "/api/v1/namespaces/ns1/pods", "", ""), "list");
        assert_eq!(
            kube_verb(
                &g,
                "/apis/apps/v1/namespaces/ns1/deployments",
                "watch=true&resourceVersion=5",
                ""
            ),
            "watch"
        );
        assert_eq!(
            kube_verb(&g, "/apis/apps/v1/namespaces/ns1/deployments/web", "", ""),
            "get"
        );
        assert_eq!(
            kube_verb(
                &Method::PATCH,
                "/apis/apps/v1/namespaces/ns1/deployments/web",
                "fieldManager=caelus",
                "application/apply-patch+yaml"
            ),
            "apply"
        );
        assert_eq!(
            kube_verb(
                &Method::PATCH,
                "/api/v1/namespaces/ns1/services/web",
                "",
                "application/merge-patch+json"
            ),
            "patch"
        );
        assert_eq!(
            kube_verb(&Method::POST, "/api/v1/namespaces", "", ""),
            "create"
        );
        assert_eq!(
            kube_verb(&Method::DELETE, "/api/v1/namespaces/ns1", "", ""),
            "delete"
        );
        assert_eq!(
            kube_verb(&Method::DELETE, "/api/v1/namespaces/ns1/pods", "", ""),
            "deletecollection"
        );
        assert_eq!(
            kube_verb(&Method::PUT, "/api/v1/namespaces/ns1/finalize", "", ""),
            "update"
        );
    }

    #[tokio::test]
    async fn the_layer_counts_responses_and_errors() {
        static M: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
        let m = M.get_or_init(Metrics::new);
        let ok = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::builder().status(404).body(()).unwrap())
        });
        let mut svc = KubeMetricsLayer::new(m).layer(ok);
        let req = Request::get("/api/v1/namespaces/x").body(()).unwrap();
        svc.ready().await.unwrap().call(req).await.unwrap();
        let failing =
            tower::service_fn(|_req: Request<()>| async { Err::<Response<()>, _>("refused") });
        let mut svc = KubeMetricsLayer::new(m).layer(failing);
        let req = Request::post("/api/v1/namespaces").body(()).unwrap();
        assert!(svc.ready().await.unwrap().call(req).await.is_err());
        let text = crate::encode(&m.registry());
        assert!(text.contains("caelus_kube_requests_total{verb=\"get\",code=\"404\"} 1\n"));
        assert!(text.contains("caelus_kube_requests_total{verb=\"create\",code=\"error\"} 1\n"));
    }
}
