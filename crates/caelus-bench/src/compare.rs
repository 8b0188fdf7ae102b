//! The side-by-side sections of `docs/benchmarks.md`: the summary table, Caelus against
//! the Helm SDK on the same kubesim (same chart, concurrency and injected latency), the
//! scale curve, and the API under load. All figures come from one `scripts/bench` run.

use crate::api_load::ApiLoadResult;
use crate::helm_sdk::HelmSdkResult;
use crate::reconcile::{Database, ReconcileResult};
use std::fmt::Write as _;

type Out = std::fmt::Result;

/// What one run of the benchmark produced for the comparisons.
pub struct Runs<'a> {
    /// Caelus deploying the podinfo chart (the Helm SDK contest).
    pub caelus: &'a [ReconcileResult],
    pub helm: &'a [HelmSdkResult],
    /// PostgreSQL runs at growing counts, with 1 and 2 workers.
    pub scale: &'a [ReconcileResult],
    pub api: Option<&'a ApiLoadResult>,
}

fn db(r: &ReconcileResult) -> &'static str {
    match r.database {
        Some(Database::Postgres) => "PostgreSQL",
        _ => "SQLite",
    }
}

fn per(total: u64, n: usize) -> f64 {
    total as f64 / n.max(1) as f64
}

/// The best Caelus run at the same concurrency and latency as `h`.
fn caelus_for<'a>(runs: &'a Runs, h: &HelmSdkResult) -> Option<&'a ReconcileResult> {
    runs.caelus
        .iter()
        .filter(|c| c.concurrency == h.concurrency && c.latency_ms == h.latency_ms)
        .max_by(|a, b| a.deployments_per_sec.total_cmp(&b.deployments_per_sec))
}

/// The table at the top: each contender's figure and its ratio to Caelus.
pub fn summary(w: &mut String, runs: &Runs, flux_secs: f64) -> Out {
    writeln!(w, "## Summary")?;
    writeln!(w)?;
    writeln!(
        w,
        "Every row below is from this one run on this machine, except Flux's, which is the published \
         figure from other hardware (see the notes). \"Ratio\" is Caelus's rate divided by the \
         contender's at the same concurrency and injected latency (> 1: Caelus is faster)."
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "| contender | setup | figure | Caelus at the same setup | ratio to Caelus |"
    )?;
    writeln!(w, "|---|---|---:|---:|---:|")?;
    for h in runs.helm {
        let c = caelus_for(runs, h);
        writeln!(
            w,
            "| Helm SDK (libhelm_c, `wait=watcher`) | {} releases of podinfo, concurrency {}, {} ms latency | {:.1} releases/s, {:.1} requests/release | {} | {} |",
            h.releases,
            h.concurrency,
            h.latency_ms,
            h.releases_per_sec,
            per(h.requests.total, h.releases),
            c.map_or("–".into(), |c| format!(
                "{:.1} deployments/s ({}), {:.1} requests/deployment",
                c.deployments_per_sec,
                db(c),
                per(c.requests.total, c.deployments)
            )),
            c.map_or("–".into(), |c| format!(
                "{:.1}×",
                c.deployments_per_sec / h.releases_per_sec.max(f64::EPSILON)
            )),
        )?;
    }
    if let Some(c) = runs
        .caelus
        .iter()
        .filter(|c| c.latency_ms == 0)
        .max_by(|a, b| a.deployments_per_sec.total_cmp(&b.deployments_per_sec))
    {
        writeln!(
            w,
            "| Flux helm-controller v2.5.0 (published, 16-core runner + kind) | 1000 HelmReleases of podinfo, concurrency 10 | {:.1} releases/s | {:.1} deployments/s | {:.1}× (different machines) |",
            1000.0 / flux_secs,
            c.deployments_per_sec,
            c.deployments_per_sec / (1000.0 / flux_secs)
        )?;
    }
    if let Some(big) = runs.scale.iter().max_by_key(|r| (r.deployments, r.workers)) {
        writeln!(
            w,
            "| Caelus at scale | {} deployments, PostgreSQL, {} worker(s) | {} to all Ready | – | – |",
            big.deployments,
            big.workers,
            crate::report::secs(big.all_ready_secs)
        )?;
    }
    if let Some(big) = runs
        .scale
        .iter()
        .filter(|r| r.drift.is_some())
        .max_by_key(|r| (r.deployments, r.workers))
    {
        writeln!(
            w,
            "| Caelus drift correction | {} deployments, PostgreSQL, {} worker(s) | {} | – | – |",
            big.deployments,
            big.workers,
            drift_cell(big)
        )?;
    }
    if let Some(api) = runs.api {
        for r in api.runs.iter().filter(|r| r.rate == 1000) {
            writeln!(
                w,
                "| Caelus API | `{}` at 1000 requests/s, {} deployments | p99 {:.2} ms, {} errors | – | – |",
                r.endpoint, api.deployments, r.p99_ms, r.errors
            )?;
        }
    }
    writeln!(w)
}

/// Caelus and the Helm SDK, side by side per concurrency and latency.
pub fn contest(w: &mut String, runs: &Runs) -> Out {
    if runs.helm.is_empty() {
        return Ok(());
    }
    let n = runs.helm[0].releases;
    writeln!(w, "## Caelus and the Helm SDK on the same kubesim")?;
    writeln!(w)?;
    writeln!(
        w,
        "Both install `testdata/charts/podinfo` ({n} times: flux-benchmark's podinfo objects — a \
         Deployment scaled to 0, ServiceAccount, Service, Ingress — plus a ConfigMap) into one \
         namespace each, on the same in-process kubesim, with kubesim adding the given latency to every \
         request (what a real API server costs). **Helm SDK**: `caelus-bench helm-sdk` runs \
         `crates/caelus-bench/scripts/helm_sdk_installs.py`: libhelm_c (Helm v4's Go SDK and \
         client-go) through the helm-python-sdk wheel, CONCURRENCY installs at a time in threads, \
         one Helm configuration per release (release Secrets in the release's namespace, as \
         `helm install -n` and helm-controller do), `create_namespace`, `wait=watcher`, client-go \
         throttling at helm-controller's defaults (50 QPS, burst 300). **Caelus**: `caelus-bench \
         reconcile --chart podinfo`: real `caelus server` + `caelus worker --concurrency \
         CONCURRENCY`; creates through the API, time until the API shows all Ready. Caelus also \
         creates each namespace's isolation objects (ResourceQuota, LimitRange, NetworkPolicy), which \
         Helm does not."
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "| latency | concurrency | contender | all Ready | per second | requests per release (by verb) | peak RSS | CPU | failed |"
    )?;
    writeln!(w, "|---:|---:|---|---:|---:|---|---:|---:|---:|")?;
    let mut keys: Vec<(u64, usize)> = runs
        .helm
        .iter()
        .map(|h| (h.latency_ms, h.concurrency))
        .chain(runs.caelus.iter().map(|c| (c.latency_ms, c.concurrency)))
        .collect();
    keys.sort();
    keys.dedup();
    let verbs = |by: &std::collections::BTreeMap<String, u64>, n: usize| -> String {
        by.iter()
            .map(|(v, c)| format!("{v} {:.1}", per(*c, n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (lat, conc) in keys {
        for h in runs
            .helm
            .iter()
            .filter(|h| h.latency_ms == lat && h.concurrency == conc)
        {
            writeln!(
                w,
                "| {lat} ms | {conc} | Helm SDK | {} | {:.1} | {:.1} ({}) | {} | {:.1} s | {} |",
                crate::report::secs(h.all_ready_secs),
                h.releases_per_sec,
                per(h.requests.total, h.releases),
                verbs(&h.requests.by_verb, h.releases),
                crate::report::mib(h.peak_rss_kib),
                h.cpu_secs,
                h.failed
            )?;
        }
        for c in runs
            .caelus
            .iter()
            .filter(|c| c.latency_ms == lat && c.concurrency == conc)
        {
            writeln!(
                w,
                "| {lat} ms | {conc} | Caelus, {} | {} | {:.1} | {:.1} ({}) | {} (server + worker) | {:.1} s | {} |",
                db(c),
                crate::report::secs(c.all_ready_secs),
                c.deployments_per_sec,
                per(c.requests.total, c.deployments),
                verbs(&c.requests.by_verb, c.deployments),
                crate::report::mib(c.server_peak_rss_kib + c.worker_peak_rss_kib),
                c.server_cpu_secs + c.worker_cpu_secs,
                c.retried
            )?;
        }
    }
    writeln!(w)?;
    writeln!(
        w,
        "\"failed\": Helm installs that returned an error; for Caelus, passes that failed and were \
         retried. CPU: the Helm driver process (Python + libhelm_c), or caelus server + worker."
    )?;
    writeln!(w)
}

/// The per-deployment cost as the count grows.
pub fn scale(w: &mut String, runs: &Runs) -> Out {
    if runs.scale.is_empty() {
        return Ok(());
    }
    writeln!(w, "## Scale curve (PostgreSQL)")?;
    writeln!(w)?;
    writeln!(
        w,
        "`caelus-bench reconcile --database postgres --workers W --deployments N` with the web chart; \
         per-deployment figures divide the phase's totals by N. Flat columns mean the cost per \
         deployment does not grow with the count."
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "| deployments | workers | create → all Ready | deployments/s | worker CPU per deployment | peak RSS, server + workers | database size (per deployment) | quiet resync: writes | quiet resync: worker CPU per deployment | drift corrected: p50 / p99 / max (samples) |"
    )?;
    writeln!(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut rows: Vec<&ReconcileResult> = runs.scale.iter().collect();
    rows.sort_by_key(|r| (r.workers, r.deployments));
    for r in rows {
        let n = r.deployments.max(1) as f64;
        writeln!(
            w,
            "| {} | {} | {} | {:.1} | {:.2} ms | {} | {:.1} MiB ({:.1} KiB) | {} | {:.2} ms | {} |",
            r.deployments,
            r.workers,
            crate::report::secs(r.all_ready_secs),
            r.deployments_per_sec,
            r.worker_cpu_secs * 1000.0 / n,
            crate::report::mib(r.server_peak_rss_kib + r.worker_peak_rss_kib),
            r.database_bytes as f64 / 1024.0 / 1024.0,
            r.database_bytes as f64 / 1024.0 / n,
            r.resync.requests.writes,
            r.resync.worker_cpu_secs * 1000.0 / n,
            drift_cell(r),
        )?;
    }
    writeln!(w)?;
    writeln!(
        w,
        "Drift: with every deployment Ready and the scheduled resync a day away, the benchmark drifts \
         deployments one at a time by hand (a scaled Deployment, an edited ConfigMap, a deleted \
         Service or a deleted namespace, drawn at random) and times each until Caelus has corrected \
         it; see [Drift: detection to correction](#drift-detection-to-correction). Run alone: \
         `caelus-bench reconcile --deployments N --drift-samples S` (`scripts/bench`: `DRIFT_SAMPLES`)."
    )?;
    writeln!(w)
}

fn drift_cell(r: &ReconcileResult) -> String {
    match &r.drift {
        Some(d) if d.samples > 0 => format!(
            "{:.0} / {:.0} / {:.0} ms ({}{})",
            d.p50_ms,
            d.p99_ms,
            d.max_ms,
            d.samples,
            if d.corrected < d.samples {
                format!(
                    ", {} not corrected in {} s",
                    d.samples - d.corrected,
                    if d.timeout_secs > 0 {
                        d.timeout_secs
                    } else {
                        30
                    }
                )
            } else {
                String::new()
            }
        ),
        _ => "–".into(),
    }
}

/// Latency of the read endpoints at fixed request rates.
pub fn api(w: &mut String, runs: &Runs) -> Out {
    let Some(api) = runs.api else { return Ok(()) };
    writeln!(w, "## The API under load")?;
    writeln!(w)?;
    writeln!(
        w,
        "`caelus-bench api-load --deployments {}`: a release `caelus server` on PostgreSQL holding {} \
         deployments; each endpoint is driven open-loop at a fixed rate (requests start on schedule, \
         latency measured from the scheduled start, so queueing shows). The driver runs on the same 2 \
         cores as the server and PostgreSQL. Peak RSS of the server over all runs: {}.",
        api.deployments,
        api.deployments,
        crate::report::mib(api.server_peak_rss_kib)
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "| endpoint | rate | requests | errors | p50 | p99 | max | server CPU per request |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &api.runs {
        writeln!(
            w,
            "| `{}` | {}/s | {} | {}{} | {:.2} ms | {:.2} ms | {:.1} ms | {:.2} ms |",
            r.endpoint,
            r.rate,
            r.requests,
            r.errors,
            r.first_error
                .as_deref()
                .map_or(String::new(), |e| format!(" (first: {e})")),
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.server_cpu_ms_per_request
        )?;
    }
    writeln!(w)
}

/// Drift from detection to correction: latency per kind of drift, and what one correction
/// costs, for each run that drew several kinds (`reconcile --drift-samples`).
pub fn drift(w: &mut String, runs: &[&ReconcileResult]) -> Out {
    let runs: Vec<(&ReconcileResult, &crate::drift::DriftResult)> = runs
        .iter()
        .filter_map(|r| {
            r.drift
                .as_ref()
                .filter(|d| !d.by_kind.is_empty())
                .map(|d| (*r, d))
        })
        .collect();
    if runs.is_empty() {
        return Ok(());
    }
    writeln!(w, "## Drift: detection to correction")?;
    writeln!(w)?;
    let (r0, d0) = runs[0];
    writeln!(
        w,
        "`caelus-bench reconcile --deployments {} --database postgres --drift-samples {} [--drift-seed SEED]` \
         (`scripts/bench`: `DRIFT_SAMPLES`, `DRIFT_SEED`). With every deployment Ready, the quiet resync \
         done and the next scheduled resync a day away (worker `--resync-seconds 86400`), the benchmark \
         first counts kubesim's requests over {:.0} s of quiet (nothing changed: the writes must be 0). \
         Then it drifts {} distinct deployments one after the other, each by one of four kinds drawn \
         uniformly by a seeded generator (the seed is below; `--drift-seed` repeats a run): \
         `kubectl scale` of the Deployment (a merge patch of `spec.replicas` by another field \
         manager), an edit of the chart's ConfigMap (`data.GREETING`), a deleted Service, and a \
         deleted namespace (kubesim's namespace controller empties it, then it is gone). Each is \
         timed until corrected: the field back at the value Caelus applied, the Service back, or, \
         for a namespace, the namespace and every object that was in it back and the deployment \
         `Ready` again in Caelus's database after the drift. Only the watch-driven path can do \
         this in time: kubesim's watch event → the worker's change feed (debounced) → a pass \
         (drift check, dry-run confirmation) → the correcting apply. The benchmark changes and \
         polls (every 2 ms) kubesim in-process, so neither is counted in kubesim's requests, which \
         are reset before the first drift and read 2 s after the last; CPU is `utime + stime` of \
         the worker and API server processes over the same phase. Per-correction figures divide \
         the phase's totals by the corrections. A sample not corrected in {} s is given up.",
        r0.deployments,
        d0.samples,
        d0.quiet_secs,
        d0.samples,
        if d0.timeout_secs > 0 {
            d0.timeout_secs
        } else {
            30
        },
    )?;
    writeln!(w)?;
    for (r, d) in runs {
        writeln!(
            w,
            "### {} deployments, {}, {} worker(s), {} drifts (seed {})",
            r.deployments,
            match r.database {
                Some(crate::reconcile::Database::Postgres) => "PostgreSQL",
                _ => "SQLite",
            },
            r.workers,
            d.samples,
            d.seed.unwrap_or_default()
        )?;
        writeln!(w)?;
        writeln!(w, "| drift | samples | corrected | p50 | p99 | max |")?;
        writeln!(w, "|---|---:|---:|---:|---:|---:|")?;
        let all = crate::drift::KindLatency {
            kind: None,
            samples: d.samples,
            corrected: d.corrected,
            p50_ms: d.p50_ms,
            p99_ms: d.p99_ms,
            max_ms: d.max_ms,
        };
        for k in d.by_kind.iter().chain(std::iter::once(&all)) {
            writeln!(
                w,
                "| {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
                k.kind.map_or("**all**", |k| k.label()),
                k.samples,
                k.corrected,
                k.p50_ms,
                k.p99_ms,
                k.max_ms
            )?;
        }
        writeln!(w)?;
        let per = d.corrected.max(1);
        writeln!(w, "| per correction | |")?;
        writeln!(w, "|---|---:|")?;
        if let Some(req) = &d.requests {
            writeln!(
                w,
                "| kubesim requests | {:.1} ({:.1} writes) |",
                req.total as f64 / per as f64,
                req.writes as f64 / per as f64
            )?;
            for (verb, count) in &req.by_verb {
                writeln!(
                    w,
                    "| &nbsp;&nbsp;{verb} | {:.2} ({count} in all) |",
                    *count as f64 / per as f64
                )?;
            }
        }
        writeln!(
            w,
            "| CPU time, worker | {:.1} ms |",
            d.worker_cpu_secs * 1000.0 / per as f64
        )?;
        writeln!(
            w,
            "| CPU time, API server | {:.1} ms |",
            d.server_cpu_secs * 1000.0 / per as f64
        )?;
        if let Some(q) = &d.quiet_requests {
            writeln!(
                w,
                "| quiet state before the drifts ({:.0} s): kubesim writes | **{}** (of {} requests) |",
                d.quiet_secs, q.writes, q.total
            )?;
        }
        writeln!(w)?;
        if let Some(req) = &d.requests {
            let by: Vec<String> = req
                .by_resource
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(
                w,
                "Requests of the drift phase by verb and resource: {}.",
                by.join(", ")
            )?;
            writeln!(w)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{DriftKind, DriftResult, KindLatency};

    #[test]
    fn the_drift_section_shows_each_kind_the_costs_and_the_quiet_writes() {
        let run = ReconcileResult {
            deployments: 1000,
            workers: 1,
            database: Some(Database::Postgres),
            drift: Some(DriftResult {
                samples: 2,
                corrected: 2,
                p50_ms: 900.0,
                p99_ms: 1000.0,
                max_ms: 1000.0,
                seed: Some(7),
                by_kind: vec![
                    KindLatency {
                        kind: Some(DriftKind::Scale),
                        samples: 1,
                        corrected: 1,
                        p50_ms: 900.0,
                        p99_ms: 900.0,
                        max_ms: 900.0,
                    },
                    KindLatency {
                        kind: Some(DriftKind::NamespaceDelete),
                        samples: 1,
                        corrected: 1,
                        p50_ms: 1000.0,
                        p99_ms: 1000.0,
                        max_ms: 1000.0,
                    },
                ],
                requests: Some(crate::reconcile::Requests {
                    total: 20,
                    writes: 8,
                    by_verb: [("get".to_string(), 12), ("patch".to_string(), 8)].into(),
                    by_resource: Default::default(),
                }),
                worker_cpu_secs: 0.02,
                quiet_secs: 10.0,
                quiet_requests: Some(Default::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut md = String::new();
        drift(&mut md, &[&run]).unwrap();
        assert!(md.contains("## Drift: detection to correction"));
        assert!(md.contains("(seed 7)"));
        assert!(
            md.contains("| `kubectl scale` of the Deployment | 1 | 1 | 900 ms | 900 ms | 900 ms |")
        );
        assert!(md.contains("| namespace deleted | 1 | 1 | 1000 ms |"));
        assert!(md.contains("| **all** | 2 | 2 | 900 ms | 1000 ms | 1000 ms |"));
        assert!(md.contains("| kubesim requests | 10.0 (4.0 writes) |"));
        assert!(md.contains("| &nbsp;&nbsp;get | 6.00 (12 in all) |"));
        assert!(md.contains("| CPU time, worker | 10.0 ms |"));
        assert!(md.contains("kubesim writes | **0** (of 0 requests) |"));

        // A run from before the kinds existed (scale only) has no such section.
        let mut old = run.clone();
        old.drift.as_mut().unwrap().by_kind.clear();
        let mut md = String::new();
        drift(&mut md, &[&old]).unwrap();
        assert!(md.is_empty());
    }
}
