//! `/metrics` in the Prometheus text format, and the HTTP middleware that times
//! every request by its matched route.
//!
//! The process registry ([`caelus_metrics::global`]) holds what is recorded as it
//! happens (HTTP requests here; reconcile passes, retries, drift corrections and
//! Kubernetes API requests in a worker in the same process). What lives in the
//! database — queue depth, the oldest due deployment, deployments by phase — is
//! read at scrape time, so every API server and worker reports the same truth.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use caelus_core::status::Phase;
use caelus_helm::HelmEngine;
use caelus_metrics::Registry;
use caelus_store::{Store, deployments, now_ms, queue};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sqlx::Row;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// What a scrape reads besides the process registry.
#[derive(Clone)]
pub struct MetricsSource {
    pub store: Store,
    /// The Helm engine whose cache statistics to report (the process's own).
    pub helm: Option<HelmEngine>,
    /// When set, a scrape must send `Authorization: Bearer <this>`.
    pub bearer: Option<String>,
}

/// The `method` label: one of the methods HTTP defines, or `other`, so requests
/// with invented methods cannot grow the label set without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Times a request and records it by method, matched route and status.
/// Requests that matched no route are recorded as route `unmatched`.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    caelus_metrics::global().http_request(
        method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// The whole exposition: the process registry, then what is read from the database
/// and the Helm engine now.
pub async fn render(source: &MetricsSource) -> Result<String, caelus_store::StoreError> {
    let mut registry = caelus_metrics::global().registry();
    register_database(&source.store, &mut registry).await?;
    if let Some(helm) = &source.helm {
        register_helm(helm, &mut registry);
    }
    Ok(caelus_metrics::encode(&registry))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
}

/// Gauges read from the database at scrape time: the queue and deployments by phase.
async fn register_database(
    store: &Store,
    registry: &mut Registry,
) -> Result<(), caelus_store::StoreError> {
    let now = now_ms();
    let mut conn = store.conn().await?;
    let depth = deployments::count_due(&mut conn, now).await?;
    let oldest = queue::next_due_at(&mut conn)
        .await?
        .filter(|at| *at <= now)
        .map_or(0.0, |at| (now - at) as f64 / 1000.0);
    let rows = sqlx::query(
        "SELECT phase, COUNT(*) AS n FROM deployments WHERE deleted_at IS NULL GROUP BY phase",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(caelus_store::StoreError::from)?;
    let by_phase: Family<PhaseLabels, Gauge> = Family::default();
    // Every phase is reported, zeros included, so dashboards need no absent() tricks.
    for p in Phase::ALL {
        by_phase
            .get_or_create(&PhaseLabels {
                phase: p.as_str().into(),
            })
            .set(0);
    }
    for r in rows {
        let phase: String = r.try_get("phase").map_err(caelus_store::StoreError::from)?;
        let n: i64 = r.try_get("n").map_err(caelus_store::StoreError::from)?;
        by_phase.get_or_create(&PhaseLabels { phase }).set(n);
    }
    let queue_depth: Gauge = Gauge::default();
    queue_depth.set(depth);
    let oldest_age: Gauge<f64, AtomicU64> = Gauge::default();
    oldest_age.set(oldest);
    registry.register(
        "caelus_queue_depth",
        "Deployments whose reconcile is due now (waiting or running)",
        queue_depth,
    );
    registry.register(
        "caelus_queue_oldest_due_age_seconds",
        "How long the longest-waiting due deployment has been due (0 when none is due)",
        oldest_age,
    );
    registry.register(
        "caelus_deployments",
        "Deployments (not yet deleted) by phase",
        by_phase,
    );
    Ok(())
}

/// The Helm engine's cache statistics, read at scrape time.
fn register_helm(helm: &HelmEngine, registry: &mut Registry) {
    let stats = helm.cache_stats();
    let requests: Family<ResultLabels, Counter> = Family::default();
    requests
        .get_or_create(&ResultLabels {
            result: "hit".into(),
        })
        .inc_by(stats.render_hits);
    requests
        .get_or_create(&ResultLabels {
            result: "miss".into(),
        })
        .inc_by(stats.render_misses);
    let entries: Family<CacheLabels, Gauge> = Family::default();
    entries
        .get_or_create(&CacheLabels {
            cache: "chart".into(),
        })
        .set(stats.charts_in_memory as i64);
    entries
        .get_or_create(&CacheLabels {
            cache: "render".into(),
        })
        .set(stats.renders_in_memory as i64);
    registry.register(
        "caelus_chart_cache_requests",
        "Helm render cache lookups (keyed by chart digest, values, release and namespace), by result",
        requests,
    );
    registry.register(
        "caelus_chart_cache_entries",
        "Entries held in memory by the Helm engine's caches",
        entries,
    );
}

/// Whether the request may scrape: always without a configured token, else only
/// with `Authorization: Bearer <token>` (compared without an early exit).
fn scrape_allowed(source: &MetricsSource, headers: &axum::http::HeaderMap) -> bool {
    let Some(expected) = &source.bearer else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| crate::ui::session::same_secret(token.trim(), expected))
}

async fn scrape(State(source): State<MetricsSource>, headers: axum::http::HeaderMap) -> Response {
    if !scrape_allowed(&source, &headers) {
        return crate::error::ApiError::unauthorized(
            "/metrics requires 'Authorization: Bearer <metrics token>' on this server",
        )
        .into_response();
    }
    match render(&source).await {
        Ok(text) => ([(header::CONTENT_TYPE, caelus_metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics scrape could not read the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the database: {e}\n"),
            )
                .into_response()
        }
    }
}

/// `GET /metrics` over `source`, ready to merge into any router.
pub fn router<S>(source: MetricsSource) -> Router<S> {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(source)
}

/// A metrics-only HTTP server, for processes without the API (`caelus worker`).
/// It also answers `GET /healthz` (the process serves requests), the
/// worker's liveness probe in the chart; unlike `/metrics` it does not need
/// the database, so a database outage does not restart every worker.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: MetricsSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app: Router = router(source)
        .route("/healthz", get(crate::routes::health::healthz))
        .layer(axum::middleware::from_fn(track_http));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for junk in ["FOO", "BREW", "get", "X-ANYTHING"] {
            assert_eq!(
                method_label(&Method::from_bytes(junk.as_bytes()).unwrap()),
                "other"
            );
        }
    }
}
