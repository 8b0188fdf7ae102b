//! Drift latency: with every deployment Ready and the scheduled resync a day away, someone
//! changes what Caelus applied by hand — scales a Deployment (`kubectl scale`), edits a
//! ConfigMap, deletes a Service or deletes the whole namespace; how long until Caelus has
//! put it back? Only the watch-driven path can answer in time, so this measures that path
//! end to end: kubesim's watch event → the worker's change feed (debounced) → a pass → the
//! correcting apply. Which drift hits which deployment is drawn from a seeded generator,
//! and the seed is reported, so a run can be repeated.

use crate::reconcile::Requests;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The replica count the scale drift sets; the web chart renders 1 by default.
const DRIFTED_REPLICAS: i64 = 7;

/// What a person did by hand to one deployment's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// `kubectl scale` of the Deployment (a merge patch of `spec.replicas`).
    Scale,
    /// An edit of the chart's ConfigMap (`kubectl edit`: a value under `data` changed).
    ConfigMapEdit,
    /// `kubectl delete service`.
    ServiceDelete,
    /// `kubectl delete namespace`: the namespace and everything in it.
    NamespaceDelete,
}

impl DriftKind {
    pub const ALL: [DriftKind; 4] = [
        DriftKind::Scale,
        DriftKind::ConfigMapEdit,
        DriftKind::ServiceDelete,
        DriftKind::NamespaceDelete,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DriftKind::Scale => "`kubectl scale` of the Deployment",
            DriftKind::ConfigMapEdit => "ConfigMap edited",
            DriftKind::ServiceDelete => "Service deleted",
            DriftKind::NamespaceDelete => "namespace deleted",
        }
    }
}

/// Latency of one kind of drift (or of all, `kind: None`), from the change to corrected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KindLatency {
    pub kind: Option<DriftKind>,
    pub samples: usize,
    pub corrected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DriftResult {
    /// Deployments drifted, one after the other (each corrected before the next).
    pub samples: usize,
    /// Corrected within the timeout.
    pub corrected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The generator's seed: which kind hit which deployment.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Per kind, in `DriftKind::ALL` order (kinds never drawn are left out).
    #[serde(default)]
    pub by_kind: Vec<KindLatency>,
    /// Give up on one sample after this long.
    #[serde(default)]
    pub timeout_secs: u64,
    /// kubesim's requests over the whole drift phase (counters reset before the first
    /// drift; the bench's own changes go in-process and are not counted).
    #[serde(default)]
    pub requests: Option<Requests>,
    /// CPU time (utime + stime) of the workers and of the API server over the drift phase.
    #[serde(default)]
    pub worker_cpu_secs: f64,
    #[serde(default)]
    pub server_cpu_secs: f64,
    /// The quiet window before the first drift: nothing changed, no resync due.
    #[serde(default)]
    pub quiet_secs: f64,
    #[serde(default)]
    pub quiet_requests: Option<Requests>,
}

/// The value at quantile `q` (0..=1) of sorted `xs`, nearest rank.
pub(crate) fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

/// SplitMix64: a small, well-mixed generator, enough to draw drifts reproducibly.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is negligible for small n.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The drift plan for a seed: `samples` distinct deployments out of `deployments` (indexes),
/// each with a kind drawn uniformly from the four. At most one drift per deployment, so a
/// deleted namespace is never drifted again while it comes back.
pub(crate) fn plan(seed: u64, deployments: usize, samples: usize) -> Vec<(usize, DriftKind)> {
    let mut rng = SplitMix64::new(seed);
    let samples = samples.min(deployments);
    // Partial Fisher–Yates: the first `samples` slots become a random distinct choice.
    let mut idx: Vec<usize> = (0..deployments).collect();
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let j = i + rng.below(deployments - i);
        idx.swap(i, j);
        let kind = DriftKind::ALL[rng.below(DriftKind::ALL.len())];
        out.push((idx[i], kind));
    }
    out
}

/// Latency figures of `took_ms` (unsorted) out of `samples`.
pub(crate) fn latency(
    kind: Option<DriftKind>,
    samples: usize,
    mut took_ms: Vec<f64>,
) -> KindLatency {
    took_ms.sort_by(f64::total_cmp);
    KindLatency {
        kind,
        samples,
        corrected: took_ms.len(),
        p50_ms: quantile(&took_ms, 0.5),
        p99_ms: quantile(&took_ms, 0.99),
        max_ms: took_ms.last().copied().unwrap_or(0.0),
    }
}

/// The kubesim resources the drifts touch, looked up once.
struct Kinds {
    namespaces: kubesim::resources::ResourceInfo,
    deployments: kubesim::resources::ResourceInfo,
    configmaps: kubesim::resources::ResourceInfo,
    services: kubesim::resources::ResourceInfo,
    /// Every namespaced kind a deployment of the web chart has objects of.
    contents: Vec<kubesim::resources::ResourceInfo>,
}

impl Kinds {
    fn new(api: &kubesim::api::Api) -> Result<Self> {
        let get = |g: &str, v: &str, r: &str| {
            api.resource(g, v, r)
                .ok_or_else(|| anyhow::anyhow!("kubesim serves no {g}/{v} {r}"))
        };
        let contents = [
            ("", "v1", "configmaps"),
            ("", "v1", "services"),
            ("", "v1", "resourcequotas"),
            ("", "v1", "limitranges"),
            ("apps", "v1", "deployments"),
            ("networking.k8s.io", "v1", "networkpolicies"),
        ]
        .iter()
        .filter_map(|(g, v, r)| api.resource(g, v, r))
        .collect();
        Ok(Kinds {
            namespaces: get("", "v1", "namespaces")?,
            deployments: get("apps", "v1", "deployments")?,
            configmaps: get("", "v1", "configmaps")?,
            services: get("", "v1", "services")?,
            contents,
        })
    }
}

fn first_name(
    api: &kubesim::api::Api,
    info: &kubesim::resources::ResourceInfo,
    ns: &str,
    pick: impl Fn(&Value) -> bool,
) -> Result<String> {
    let list = api.list(info, Some(ns), &Default::default())?;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| pick(i))
        .and_then(|i| i["metadata"]["name"].as_str())
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("no {} in namespace {ns}", info.resource))
}

fn live(
    api: &kubesim::api::Api,
    info: &kubesim::resources::ResourceInfo,
    ns: &str,
    name: &str,
) -> Option<Value> {
    api.get(info, ns, name)
        .ok()
        .filter(|o| o["metadata"]["deletionTimestamp"].is_null())
}

/// The check that says a drift is corrected, prepared before the drift.
enum Corrected {
    /// This field of this object has this value again.
    Field {
        info: kubesim::resources::ResourceInfo,
        name: String,
        pointer: &'static str,
        value: Value,
    },
    /// This object exists again.
    Exists {
        info: kubesim::resources::ResourceInfo,
        name: String,
    },
    /// The namespace and every object that was in it exist again, and the deployment is
    /// Ready again in Caelus's database after the drift.
    Namespace {
        objects: Vec<(kubesim::resources::ResourceInfo, String)>,
    },
}

/// Drifts `samples` of the deployments in `namespaces` (one after the other, each kind
/// drawn by `plan(seed, ..)`) and times each until Caelus has corrected it. Polls kubesim
/// in-process every 2 ms (in-process calls are not counted as requests), so the figure is
/// Caelus's.
pub async fn measure(
    sim: &kubesim::Server,
    store: &caelus_store::Store,
    namespaces: &[String],
    samples: usize,
    seed: u64,
    timeout: Duration,
) -> Result<DriftResult> {
    let api = sim.api();
    let kinds = Kinds::new(api)?;
    let plan = plan(seed, namespaces.len(), samples);
    let mut took: Vec<(DriftKind, f64)> = Vec::with_capacity(plan.len());
    let by_hand = kubesim::api::WriteOptions {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    for (i, kind) in &plan {
        let ns = namespaces[*i].as_str();
        let check = match kind {
            DriftKind::Scale => {
                let name = first_name(api, &kinds.deployments, ns, |_| true)?;
                let before = live(api, &kinds.deployments, ns, &name)
                    .map(|d| d["spec"]["replicas"].clone())
                    .unwrap_or(Value::Null);
                Corrected::Field {
                    info: kinds.deployments.clone(),
                    name,
                    pointer: "/spec/replicas",
                    value: before,
                }
            }
            DriftKind::ConfigMapEdit => {
                // The chart's own ConfigMap (not the kept settings one).
                let name = first_name(api, &kinds.configmaps, ns, |c| {
                    !c["data"]["GREETING"].is_null()
                })?;
                let before = live(api, &kinds.configmaps, ns, &name)
                    .map(|c| c["data"]["GREETING"].clone())
                    .unwrap_or(Value::Null);
                Corrected::Field {
                    info: kinds.configmaps.clone(),
                    name,
                    pointer: "/data/GREETING",
                    value: before,
                }
            }
            DriftKind::ServiceDelete => Corrected::Exists {
                info: kinds.services.clone(),
                name: first_name(api, &kinds.services, ns, |_| true)?,
            },
            DriftKind::NamespaceDelete => {
                let mut objects = vec![(kinds.namespaces.clone(), ns.to_string())];
                for info in &kinds.contents {
                    let list = api.list(info, Some(ns), &Default::default())?;
                    for item in list["items"].as_array().into_iter().flatten() {
                        if let Some(n) = item["metadata"]["name"].as_str() {
                            objects.push((info.clone(), n.to_string()));
                        }
                    }
                }
                Corrected::Namespace { objects }
            }
        };
        let start = Instant::now();
        let start_ms = caelus_store::now_ms();
        match (kind, &check) {
            (DriftKind::Scale, Corrected::Field { info, name, .. }) => {
                api.patch(
                    info,
                    ns,
                    name,
                    kubesim::api::PatchType::Merge,
                    &json!({"spec": {"replicas": DRIFTED_REPLICAS}}),
                    None,
                    &kubesim::api::WriteOptions {
                        field_manager: Some("kubectl-scale".into()),
                        ..Default::default()
                    },
                )?;
            }
            (DriftKind::ConfigMapEdit, Corrected::Field { info, name, .. }) => {
                api.patch(
                    info,
                    ns,
                    name,
                    kubesim::api::PatchType::Merge,
                    &json!({"data": {"GREETING": "edited by hand"}}),
                    None,
                    &by_hand,
                )?;
            }
            (DriftKind::ServiceDelete, Corrected::Exists { info, name }) => {
                api.delete(info, ns, name, &Default::default())?;
            }
            (DriftKind::NamespaceDelete, _) => {
                api.delete(&kinds.namespaces, "", ns, &Default::default())?;
            }
            _ => bail!("drift {kind:?} without its check"),
        }
        let mut objects_back = false;
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let done = match &check {
                Corrected::Field {
                    info,
                    name,
                    pointer,
                    value,
                } => live(api, info, ns, name).is_some_and(|o| o.pointer(pointer) == Some(value)),
                Corrected::Exists { info, name } => live(api, info, ns, name).is_some(),
                Corrected::Namespace { objects } => {
                    objects_back = objects_back
                        || objects.iter().all(|(info, name)| {
                            let obj_ns = if info.namespaced { ns } else { "" };
                            live(api, info, obj_ns, name).is_some()
                        });
                    objects_back && ready_since(store, ns, start_ms).await
                }
            };
            if done {
                took.push((*kind, start.elapsed().as_secs_f64() * 1000.0));
                break;
            }
            if start.elapsed() > timeout {
                eprintln!("  {kind:?} drift in {ns} not corrected after {timeout:?}");
                break;
            }
        }
    }
    let overall = latency(None, plan.len(), took.iter().map(|(_, ms)| *ms).collect());
    let by_kind = DriftKind::ALL
        .iter()
        .filter_map(|k| {
            let n = plan.iter().filter(|(_, kind)| kind == k).count();
            (n > 0).then(|| {
                latency(
                    Some(*k),
                    n,
                    took.iter()
                        .filter(|(kind, _)| kind == k)
                        .map(|(_, ms)| *ms)
                        .collect(),
                )
            })
        })
        .collect();
    Ok(DriftResult {
        samples: overall.samples,
        corrected: overall.corrected,
        p50_ms: overall.p50_ms,
        p99_ms: overall.p99_ms,
        max_ms: overall.max_ms,
        seed: Some(seed),
        by_kind,
        timeout_secs: timeout.as_secs(),
        ..Default::default()
    })
}

/// Whether the deployment in namespace `ns` finished a pass Ready at or after `since_ms`.
async fn ready_since(store: &caelus_store::Store, ns: &str, since_ms: i64) -> bool {
    // `ns` is one of the bench's own namespace names (DNS labels), safe to inline.
    let sql = format!(
        "SELECT COUNT(*) FROM deployments WHERE namespace_name = '{ns}' \
         AND phase = 'Ready' AND updated_at >= {since_ms}"
    );
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.5), 50.0);
        assert_eq!(quantile(&xs, 0.99), 99.0);
        assert_eq!(quantile(&xs, 1.0), 100.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_plan_is_the_same_for_the_same_seed_and_differs_for_another() {
        assert_eq!(plan(42, 1000, 100), plan(42, 1000, 100));
        assert_ne!(plan(42, 1000, 100), plan(43, 1000, 100));
    }

    #[test]
    fn a_plan_drifts_distinct_deployments_in_range_with_every_kind() {
        let p = plan(7, 1000, 100);
        assert_eq!(p.len(), 100);
        let mut targets: Vec<usize> = p.iter().map(|(i, _)| *i).collect();
        assert!(targets.iter().all(|i| *i < 1000));
        targets.sort_unstable();
        targets.dedup();
        assert_eq!(targets.len(), 100, "each deployment drifted at most once");
        for kind in DriftKind::ALL {
            let n = p.iter().filter(|(_, k)| *k == kind).count();
            // Uniform over four: 25 expected; far outside 5..=50 means the draw is broken.
            assert!((5..=50).contains(&n), "{kind:?} drawn {n} times of 100");
        }
    }

    #[test]
    fn a_plan_takes_no_more_samples_than_deployments() {
        let p = plan(1, 3, 10);
        let mut targets: Vec<usize> = p.iter().map(|(i, _)| *i).collect();
        targets.sort_unstable();
        assert_eq!(targets, vec![0, 1, 2]);
        assert!(plan(1, 0, 10).is_empty());
    }

    #[test]
    fn latency_counts_only_corrected_samples() {
        let l = latency(Some(DriftKind::Scale), 4, vec![30.0, 10.0, 20.0]);
        assert_eq!((l.samples, l.corrected), (4, 3));
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (20.0, 30.0, 30.0));
    }
}
