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
use caelus_metrics::Encoder;
use caelus_store::{Store, deployments, now_ms, queue};
use sqlx::Row;
use std::future::Future;
use std::time::Instant;

/// What a scrape reads besides the process registry.
#[derive(Clone)]
pub struct MetricsSource {
    pub store: Store,
    /// The Helm engine whose cache statistics to report (the process's own).
    pub helm: Option<HelmEngine>,
}

/// Times a request and records it by method, matched route and status.
/// Requests that matched no route are recorded as route `unmatched`.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    caelus_metrics::global().http_request(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// The whole exposition: the process registry, then what is read from the database
/// and the Helm engine now.
pub async fn render(source: &MetricsSource) -> Result<String, caelus_store::StoreError> {
    let mut e = Encoder::new();
    caelus_metrics::global().encode(&mut e);
    encode_database(&source.store, &mut e).await?;
    if let Some(helm) = &source.helm {
        encode_helm(helm, &mut e);
    }
    Ok(e.finish())
}

async fn encode_database(store: &Store, e: &mut Encoder) -> Result<(), caelus_store::StoreError> {
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
    let mut by_phase: Vec<(String, i64)> = Phase::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), 0))
        .collect();
    for r in rows {
        let phase: String = r.try_get("phase").map_err(caelus_store::StoreError::from)?;
        let n: i64 = r.try_get("n").map_err(caelus_store::StoreError::from)?;
        match by_phase.iter_mut().find(|(p, _)| *p == phase) {
            Some(slot) => slot.1 = n,
            None => by_phase.push((phase, n)),
        }
    }

    e.family(
        "caelus_queue_depth",
        "gauge",
        "Deployments whose reconcile is due now (waiting or running).",
    );
    e.sample("caelus_queue_depth", &[], depth as f64);
    e.family(
        "caelus_queue_oldest_due_age_seconds",
        "gauge",
        "How long the longest-waiting due deployment has been due (0 when none is due).",
    );
    e.sample("caelus_queue_oldest_due_age_seconds", &[], oldest);
    e.family(
        "caelus_deployments",
        "gauge",
        "Deployments (not yet deleted) by phase.",
    );
    for (phase, n) in &by_phase {
        e.sample("caelus_deployments", &[("phase", phase)], *n as f64);
    }
    Ok(())
}

fn encode_helm(helm: &HelmEngine, e: &mut Encoder) {
    let stats = helm.cache_stats();
    e.family(
        "caelus_chart_cache_requests_total",
        "counter",
        "Helm render cache lookups (keyed by chart digest, values, release and namespace), by result.",
    );
    e.sample(
        "caelus_chart_cache_requests_total",
        &[("result", "hit")],
        stats.render_hits as f64,
    );
    e.sample(
        "caelus_chart_cache_requests_total",
        &[("result", "miss")],
        stats.render_misses as f64,
    );
    e.family(
        "caelus_chart_cache_entries",
        "gauge",
        "Entries held in memory by the Helm engine's caches.",
    );
    e.sample(
        "caelus_chart_cache_entries",
        &[("cache", "chart")],
        stats.charts_in_memory as f64,
    );
    e.sample(
        "caelus_chart_cache_entries",
        &[("cache", "render")],
        stats.renders_in_memory as f64,
    );
}

async fn scrape(State(source): State<MetricsSource>) -> Response {
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
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: MetricsSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app: Router = router(source).layer(axum::middleware::from_fn(track_http));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
