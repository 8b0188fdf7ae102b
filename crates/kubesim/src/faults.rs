//! Fault injection for tests. Everything is off by default. Faults apply to
//! client requests at the HTTP layer only; the simulated controllers are
//! never affected.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::ApiError;

/// Injected error responses for matching requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorFault {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; `None` matches every verb.
    pub verb: Option<String>,
    /// Plural resource name (`configmaps`); `None` matches every resource.
    pub resource: Option<String>,
    /// 500, 503 or 429 (any code is accepted).
    pub code: u16,
    /// Probability in [0, 1] that a matching request fails (default 1).
    pub rate: Option<f64>,
    /// Seconds for `Retry-After` (429 defaults to 1).
    pub retry_after_seconds: Option<u64>,
    /// Stop after this many injected failures.
    pub count: Option<u64>,
}

/// Added latency before matching requests are served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LatencyFault {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub millis: u64,
}

/// A write that times out: the client waits `millis` and gets a 504.
/// With `commit: true` the write still happens (the ambiguous case clients
/// must handle by re-reading).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimeoutFault {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub millis: u64,
    pub commit: bool,
    pub count: Option<u64>,
}

/// A finalizer added to every object created for `resource` (optionally only
/// names with a prefix). The simulator never removes it; only clients can.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StuckFinalizer {
    pub resource: String,
    pub name_prefix: Option<String>,
    pub finalizer: String,
}

/// The whole fault configuration (`POST /kubesim/faults` body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultConfig {
    pub errors: Vec<ErrorFault>,
    pub latency: Vec<LatencyFault>,
    pub timeouts: Vec<TimeoutFault>,
    /// Close every watch stream this long after it started.
    pub drop_watches_after_millis: Option<u64>,
    pub stuck_finalizers: Vec<StuckFinalizer>,
}

fn matches(v: &Option<String>, r: &Option<String>, verb: &str, resource: &str) -> bool {
    v.as_deref().is_none_or(|x| x == verb) && r.as_deref().is_none_or(|x| x == resource)
}

/// What to do with a request before serving it.
#[derive(Debug, Default)]
pub struct Decision {
    pub delay: Duration,
    pub error: Option<ApiError>,
    /// Time out after this long; commit the write first when `.1`.
    pub timeout: Option<(Duration, bool)>,
}

#[derive(Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    /// Counters of injected failures per error/timeout rule index.
    used: Mutex<Vec<u64>>,
    rng: AtomicU64,
    /// Bumped by `drop_watches_now` so running watch streams end.
    watch_epoch: tokio::sync::watch::Sender<u64>,
}

impl Faults {
    pub fn new() -> Faults {
        Faults {
            rng: AtomicU64::new(0x9E3779B97F4A7C15),
            ..Default::default()
        }
    }

    pub fn set(&self, cfg: FaultConfig) {
        *self.used.lock().unwrap() = vec![0; cfg.errors.len() + cfg.timeouts.len()];
        *self.config.lock().unwrap() = cfg;
    }

    pub fn get(&self) -> FaultConfig {
        self.config.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// Adds one error rule to the current configuration.
    pub fn add_error(&self, e: ErrorFault) {
        let mut c = self.get();
        c.errors.push(e);
        self.set(c);
    }

    /// Ends every open watch stream now (clients see the stream close).
    pub fn drop_watches_now(&self) {
        self.watch_epoch.send_modify(|e| *e += 1);
    }

    pub fn watch_epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch_epoch.subscribe()
    }

    pub fn drop_watches_after(&self) -> Option<Duration> {
        self.config
            .lock()
            .unwrap()
            .drop_watches_after_millis
            .map(Duration::from_millis)
    }

    pub fn stuck_finalizers(&self, resource: &str, name: &str) -> Vec<String> {
        self.config
            .lock()
            .unwrap()
            .stuck_finalizers
            .iter()
            .filter(|s| {
                s.resource == resource
                    && s.name_prefix.as_deref().is_none_or(|p| name.starts_with(p))
            })
            .map(|s| s.finalizer.clone())
            .collect()
    }

    fn random(&self) -> f64 {
        // xorshift64: deterministic enough for tests, no extra dependency.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn decide(&self, verb: &str, resource: &str) -> Decision {
        let cfg = self.config.lock().unwrap();
        let mut used = self.used.lock().unwrap();
        let mut d = Decision::default();
        for l in &cfg.latency {
            if matches(&l.verb, &l.resource, verb, resource) {
                d.delay += Duration::from_millis(l.millis);
            }
        }
        for (i, e) in cfg.errors.iter().enumerate() {
            if !matches(&e.verb, &e.resource, verb, resource) {
                continue;
            }
            if e.count.is_some_and(|c| used[i] >= c) {
                continue;
            }
            if self.random() >= e.rate.unwrap_or(1.0) {
                continue;
            }
            used[i] += 1;
            d.error = Some(match e.code {
                429 => ApiError::too_many_requests(e.retry_after_seconds.unwrap_or(1)),
                503 => ApiError {
                    retry_after: e.retry_after_seconds,
                    ..ApiError::service_unavailable(
                        "the server is currently unable to handle the request (injected by kubesim)",
                    )
                },
                500 => ApiError::internal("injected by kubesim"),
                c => ApiError::new(c, "InternalError", format!("injected error {c} by kubesim")),
            });
            return d;
        }
        let base = cfg.errors.len();
        for (i, t) in cfg.timeouts.iter().enumerate() {
            if matches(&t.verb, &t.resource, verb, resource)
                && t.count.is_none_or(|c| used[base + i] < c)
            {
                used[base + i] += 1;
                d.timeout = Some((Duration::from_millis(t.millis), t.commit));
                break;
            }
        }
        d
    }
}
