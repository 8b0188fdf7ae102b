//! Process metrics with `prometheus-client`.
//!
//! One set of families per process ([`global`]) that the API server, the
//! reconciler and the Kubernetes client record into. Values that live in the
//! database (queue depth, deployments by phase) are not kept here: a scrape
//! builds a [`Registry`] from [`Metrics::registry`], adds its own gauges read at
//! that moment, and [`encode`]s it (OpenMetrics text).
//!
//! Recording is cheap (atomics; a short lock the first time a label set is seen)
//! and never fails, so it can sit on every hot path.

mod kube;

pub use kube::{KubeMetrics, KubeMetricsLayer, kube_verb};
pub use prometheus_client::registry::Registry;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::OnceLock;

/// Buckets (seconds) for reconcile passes: a no-op pass takes milliseconds, an
/// install that waits for health can take minutes.
pub const RECONCILE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Buckets (seconds) for HTTP requests.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct OrphanLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeLabels {
    verb: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS.iter().copied())
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS.iter().copied())
}

/// Everything this process records. Use [`global`] in programs; tests may make their own.
/// Families are reference-counted: a registry built from them sees later recordings.
#[derive(Debug)]
pub struct Metrics {
    reconcile: HistogramFamily<OutcomeLabels>,
    retries: Counter,
    drift_corrections: Counter,
    queue_polls: Counter,
    kube_requests: Family<KubeLabels, Counter>,
    http: HistogramFamily<HttpLabels>,
    projection_writes: Family<ProjectionLabels, Counter>,
    orphans: Family<OrphanLabels, Gauge>,
    orphans_seen: std::sync::Mutex<std::collections::BTreeSet<OrphanLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            reconcile: Family::new_with_constructor(reconcile_histogram),
            retries: Counter::default(),
            drift_corrections: Counter::default(),
            queue_polls: Counter::default(),
            kube_requests: Family::default(),
            http: Family::new_with_constructor(http_histogram),
            projection_writes: Family::default(),
            orphans: Family::default(),
            orphans_seen: Default::default(),
        }
    }

    /// One reconcile pass ended with `outcome` (the pass's outcome string, e.g.
    /// `installed`, `idle`, `failed`, `error`) after `seconds`.
    pub fn reconcile_finished(&self, outcome: &str, seconds: f64) {
        self.reconcile
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .observe(seconds.max(0.0));
    }

    /// A failed attempt was scheduled for a retry after backoff.
    pub fn retry(&self) {
        self.retries.inc();
    }

    /// Drift was found and corrected by re-applying.
    pub fn drift_corrected(&self) {
        self.drift_corrections.inc();
    }

    /// A worker asked the work queue for a due deployment (one claim query).
    pub fn queue_poll(&self) {
        self.queue_polls.inc();
    }

    pub fn queue_polls(&self) -> u64 {
        self.queue_polls.get()
    }

    /// One request to the Kubernetes API answered with `code` (`error` when none came back).
    pub fn kube_request(&self, verb: &str, code: &str) {
        self.kube_requests
            .get_or_create(&KubeLabels {
                verb: verb.to_string(),
                code: code.to_string(),
            })
            .inc();
    }

    /// One HTTP request served, by method, matched route and status.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status: status.to_string(),
            })
            .observe(seconds.max(0.0));
    }

    /// One projection request: `kind` is `CaelusDeployment` or `CaelusTemplate`,
    /// `outcome` one of `applied`, `deleted`, `reverted`, `error`.
    pub fn projection_write(&self, kind: &str, outcome: &str) {
        self.projection_writes
            .get_or_create(&ProjectionLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn projection_writes(&self, kind: &str, outcome: &str) -> u64 {
        self.projection_writes
            .get_or_create(&ProjectionLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .get()
    }

    /// Orphans the last scan found, by kind (`Namespace`, `ConfigMap`, …).
    /// Kinds the scan no longer finds are set to 0.
    pub fn set_orphans(&self, counts: &std::collections::BTreeMap<String, i64>) {
        let known: Vec<OrphanLabels> = self
            .orphans_seen
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for labels in known {
            if !counts.contains_key(&labels.kind) {
                self.orphans.get_or_create(&labels).set(0);
            }
        }
        for (kind, n) in counts {
            let labels = OrphanLabels { kind: kind.clone() };
            self.orphans.get_or_create(&labels).set(*n);
            if let Ok(mut seen) = self.orphans_seen.lock() {
                seen.insert(labels);
            }
        }
    }

    pub fn retries(&self) -> u64 {
        self.retries.get()
    }

    pub fn drift_corrections(&self) -> u64 {
        self.drift_corrections.get()
    }

    /// A registry holding this process's families (counters get `_total` on encode).
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "caelus_reconcile_duration_seconds",
            "Duration of reconcile passes, by outcome",
            self.reconcile.clone(),
        );
        r.register(
            "caelus_reconcile_retries",
            "Failed attempts scheduled for a retry after backoff",
            self.retries.clone(),
        );
        r.register(
            "caelus_drift_corrections",
            "Drifted deployments re-applied to match the database",
            self.drift_corrections.clone(),
        );
        r.register(
            "caelus_queue_polls",
            "Claim queries workers sent to the work queue",
            self.queue_polls.clone(),
        );
        r.register(
            "caelus_kube_requests",
            "Requests to the Kubernetes API, by verb and response code",
            self.kube_requests.clone(),
        );
        r.register(
            "caelus_http_request_duration_seconds",
            "Duration of HTTP requests served, by method, matched route and status",
            self.http.clone(),
        );
        r.register(
            "caelus_projection_writes",
            "Requests writing read-only projections (CaelusDeployment, CaelusTemplate), by kind and outcome",
            self.projection_writes.clone(),
        );
        r.register(
            "caelus_orphans",
            "Orphans (objects of this installation the database does not account for) found by the last scan, by kind",
            self.orphans.clone(),
        );
        r
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new)
}

/// Encodes a registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_encoded_with_their_labels() {
        let m = Metrics::new();
        m.reconcile_finished("installed", 0.2);
        m.reconcile_finished("installed", 7.0);
        m.retry();
        m.retry();
        m.drift_corrected();
        m.kube_request("patch", "200");
        m.http_request("GET", "/api/v1/deployments/{uid}", 200, 0.003);
        let text = encode(&m.registry());
        assert!(
            text.contains("# TYPE caelus_reconcile_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("caelus_reconcile_duration_seconds_count{outcome=\"installed\"} 2"),
            "{text}"
        );
        assert!(text.contains("caelus_reconcile_retries_total 2"), "{text}");
        assert!(text.contains("caelus_drift_corrections_total 1"), "{text}");
        assert!(
            text.contains("caelus_kube_requests_total{verb=\"patch\",code=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("caelus_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/deployments/{uid}\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn a_registry_sees_recordings_made_after_it_was_built() {
        let m = Metrics::new();
        let registry = m.registry();
        m.retry();
        assert!(encode(&registry).contains("caelus_reconcile_retries_total 1"));
    }

    #[test]
    fn global_is_one_set_of_families() {
        let before = global().retries();
        global().retry();
        assert_eq!(global().retries(), before + 1);
    }
}
