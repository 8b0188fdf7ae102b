//! Process metrics in the Prometheus text format (exposition format 0.0.4).
//!
//! One registry per process ([`global`]) that the API server, the reconciler and
//! the Kubernetes client record into. Values that live in the database (queue
//! depth, deployments by phase) are not kept here: the `/metrics` handler reads
//! them at scrape time and appends them with the same [`Encoder`].
//!
//! Recording is cheap (an atomic add, or a short mutex for labelled series) and
//! never fails, so it can sit on every hot path.

mod kube;

pub use kube::{KubeMetrics, KubeMetricsLayer, kube_verb};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Buckets (seconds) for reconcile passes: a no-op pass takes milliseconds, an
/// install that waits for health can take minutes.
pub const RECONCILE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Buckets (seconds) for HTTP requests.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// Everything this process records. Use [`global`] in programs; tests may make their own.
#[derive(Debug)]
pub struct Metrics {
    reconcile: Mutex<BTreeMap<String, Histogram>>,
    retries: AtomicU64,
    drift_corrections: AtomicU64,
    kube_requests: Mutex<BTreeMap<(String, String), u64>>,
    http: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while recording cannot leave a counter half-written in a way that matters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            reconcile: Mutex::new(BTreeMap::new()),
            retries: AtomicU64::new(0),
            drift_corrections: AtomicU64::new(0),
            kube_requests: Mutex::new(BTreeMap::new()),
            http: Mutex::new(BTreeMap::new()),
        }
    }

    /// One reconcile pass ended with `outcome` (the pass's outcome string, e.g.
    /// `installed`, `idle`, `failed`, `error`) after `seconds`.
    pub fn reconcile_finished(&self, outcome: &str, seconds: f64) {
        lock(&self.reconcile)
            .entry(outcome.to_string())
            .or_insert_with(|| Histogram::new(RECONCILE_BUCKETS))
            .observe(seconds);
    }

    /// A failed attempt was scheduled for a retry after backoff.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Drift was found and corrected by re-applying.
    pub fn drift_corrected(&self) {
        self.drift_corrections.fetch_add(1, Ordering::Relaxed);
    }

    /// One request to the Kubernetes API. `code` is the HTTP status, or `error`
    /// when no response arrived (connection refused, timeout).
    pub fn kube_request(&self, verb: &str, code: &str) {
        *lock(&self.kube_requests)
            .entry((verb.to_string(), code.to_string()))
            .or_insert(0) += 1;
    }

    /// One HTTP request served: `route` is the matched route template
    /// (`/api/v1/deployments/{uid}`), never the raw path, so cardinality stays bounded.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        lock(&self.http)
            .entry((method.to_string(), route.to_string(), status))
            .or_insert_with(|| Histogram::new(HTTP_BUCKETS))
            .observe(seconds);
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn drift_corrections(&self) -> u64 {
        self.drift_corrections.load(Ordering::Relaxed)
    }

    /// Appends every family this registry holds.
    pub fn encode(&self, e: &mut Encoder) {
        e.family(
            "caelus_reconcile_duration_seconds",
            "histogram",
            "Duration of reconcile passes, by outcome.",
        );
        for (outcome, h) in lock(&self.reconcile).iter() {
            e.histogram(
                "caelus_reconcile_duration_seconds",
                &[("outcome", outcome)],
                h,
            );
        }
        e.family(
            "caelus_reconcile_retries_total",
            "counter",
            "Failed attempts scheduled for a retry after backoff.",
        );
        e.sample("caelus_reconcile_retries_total", &[], self.retries() as f64);
        e.family(
            "caelus_drift_corrections_total",
            "counter",
            "Drifted objects re-applied to match the database.",
        );
        e.sample(
            "caelus_drift_corrections_total",
            &[],
            self.drift_corrections() as f64,
        );
        e.family(
            "caelus_kube_requests_total",
            "counter",
            "Requests to the Kubernetes API, by verb and response code.",
        );
        for ((verb, code), n) in lock(&self.kube_requests).iter() {
            e.sample(
                "caelus_kube_requests_total",
                &[("verb", verb), ("code", code)],
                *n as f64,
            );
        }
        e.family(
            "caelus_http_request_duration_seconds",
            "histogram",
            "Duration of HTTP requests served, by method, matched route and status.",
        );
        for ((method, route, status), h) in lock(&self.http).iter() {
            e.histogram(
                "caelus_http_request_duration_seconds",
                &[
                    ("method", method),
                    ("route", route),
                    ("status", &status.to_string()),
                ],
                h,
            );
        }
    }
}

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new)
}

/// The Prometheus content type of [`Encoder`] output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes the Prometheus text exposition format.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `# HELP` and `# TYPE` lines; call once per family, before its samples.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", fmt_value(value));
    }

    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, bound) in h.bounds.iter().enumerate() {
            cumulative += h.counts[i];
            let le = fmt_value(*bound);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, cumulative as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let m = Metrics::new();
        m.reconcile_finished("installed", 0.02);
        m.reconcile_finished("installed", 3.0);
        m.reconcile_finished("installed", 1000.0);
        m.reconcile_finished("idle", 0.001);
        let mut e = Encoder::new();
        m.encode(&mut e);
        let text = e.finish();
        assert!(text.contains("# TYPE caelus_reconcile_duration_seconds histogram"));
        assert!(text.contains(
            "caelus_reconcile_duration_seconds_bucket{outcome=\"installed\",le=\"0.01\"} 0\n"
        ));
        assert!(text.contains(
            "caelus_reconcile_duration_seconds_bucket{outcome=\"installed\",le=\"0.025\"} 1\n"
        ));
        assert!(text.contains(
            "caelus_reconcile_duration_seconds_bucket{outcome=\"installed\",le=\"5\"} 2\n"
        ));
        assert!(text.contains(
            "caelus_reconcile_duration_seconds_bucket{outcome=\"installed\",le=\"+Inf\"} 3\n"
        ));
        assert!(
            text.contains("caelus_reconcile_duration_seconds_count{outcome=\"installed\"} 3\n")
        );
        assert!(
            text.contains("caelus_reconcile_duration_seconds_sum{outcome=\"installed\"} 1003.02\n")
        );
        assert!(text.contains("caelus_reconcile_duration_seconds_count{outcome=\"idle\"} 1\n"));
    }

    #[test]
    fn counters_and_label_escaping() {
        let m = Metrics::new();
        m.retry();
        m.retry();
        m.drift_corrected();
        m.kube_request("get", "200");
        m.kube_request("get", "200");
        m.kube_request("patch", "409");
        m.http_request("GET", "/a\"b\\c\nd", 200, 0.003);
        let mut e = Encoder::new();
        m.encode(&mut e);
        let text = e.finish();
        assert!(text.contains("caelus_reconcile_retries_total 2\n"));
        assert!(text.contains("caelus_drift_corrections_total 1\n"));
        assert!(text.contains("caelus_kube_requests_total{verb=\"get\",code=\"200\"} 2\n"));
        assert!(text.contains("caelus_kube_requests_total{verb=\"patch\",code=\"409\"} 1\n"));
        assert!(text.contains(
            "caelus_http_request_duration_seconds_count{method=\"GET\",route=\"/a\\\"b\\\\c\\nd\",status=\"200\"} 1\n"
        ));
        // Every non-comment line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
        }
    }

    #[test]
    fn values_format_like_prometheus() {
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(f64::INFINITY), "+Inf");
        assert_eq!(fmt_value(f64::NAN), "NaN");
    }

    #[test]
    fn global_is_one_registry() {
        let before = global().retries();
        global().retry();
        assert!(global().retries() > before);
    }
}
