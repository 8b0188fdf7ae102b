//! Drift latency: with every deployment Ready and the scheduled resync a day away, someone
//! scales a deployment's Deployment by hand; how long until Caelus has put it back? Only the
//! watch-driven path can answer in time, so this measures that path end to end: kubesim's
//! watch event → the worker's change feed (debounced) → a pass → the correcting apply.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The replica count the drift sets; the web chart renders 1 by default.
const DRIFTED_REPLICAS: i64 = 7;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DriftResult {
    /// Deployments drifted, one after the other (each corrected before the next).
    pub samples: usize,
    /// Corrected within the timeout.
    pub corrected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The value at quantile `q` (0..=1) of sorted `xs`, nearest rank.
pub(crate) fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

fn replicas(
    sim: &kubesim::Server,
    info: &kubesim::resources::ResourceInfo,
    ns: &str,
    name: &str,
) -> i64 {
    sim.api()
        .get(info, ns, name)
        .ok()
        .and_then(|d| d["spec"]["replicas"].as_i64())
        .unwrap_or(-1)
}

/// Drifts the Deployment in `samples` of `namespaces` (spread evenly over them) with a merge
/// patch by another field manager, as `kubectl scale` would, and times each until its
/// replicas are back. Polls kubesim in-process every 2 ms, so the figure is Caelus's.
pub async fn measure(
    sim: &kubesim::Server,
    namespaces: &[String],
    samples: usize,
    timeout: Duration,
) -> Result<DriftResult> {
    let api = sim.api();
    let Some(info) = api.resource("apps", "v1", "deployments") else {
        bail!("kubesim serves no apps/v1 deployments");
    };
    let samples = samples.min(namespaces.len());
    let step = (namespaces.len() / samples.max(1)).max(1);
    let mut took_ms = Vec::with_capacity(samples);
    for ns in namespaces.iter().step_by(step).take(samples) {
        let list = api.list(&info, Some(ns), &Default::default())?;
        let Some(name) = list["items"][0]["metadata"]["name"]
            .as_str()
            .map(String::from)
        else {
            bail!("no Deployment in namespace {ns}");
        };
        let before = replicas(sim, &info, ns, &name);
        let opts = kubesim::api::WriteOptions {
            field_manager: Some("kubectl-scale".into()),
            ..Default::default()
        };
        let patch: Value = json!({"spec": {"replicas": DRIFTED_REPLICAS}});
        let start = Instant::now();
        api.patch(
            &info,
            ns,
            &name,
            kubesim::api::PatchType::Merge,
            &patch,
            None,
            &opts,
        )?;
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if replicas(sim, &info, ns, &name) == before {
                took_ms.push(start.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if start.elapsed() > timeout {
                eprintln!("  drift in {ns} not corrected after {timeout:?}");
                break;
            }
        }
    }
    let corrected = took_ms.len();
    took_ms.sort_by(f64::total_cmp);
    Ok(DriftResult {
        samples,
        corrected,
        p50_ms: quantile(&took_ms, 0.5),
        p99_ms: quantile(&took_ms, 0.99),
        max_ms: took_ms.last().copied().unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank_quantiles() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.5), 50.0);
        assert_eq!(quantile(&xs, 0.99), 99.0);
        assert_eq!(quantile(&xs, 1.0), 100.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
