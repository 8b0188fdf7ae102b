//! `docs/benchmarks.md`: the end-to-end results next to Flux's published figure, and
//! the Helm engine and kubesim benchmarks, in one document.

use crate::reconcile::{Database, ReconcileResult};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON results of `caelus-bench reconcile --json` (repeatable; one column each).
    #[arg(long = "reconcile", required = true)]
    reconcile: Vec<PathBuf>,
    /// Caelus runs of the Helm SDK contest (`reconcile --chart podinfo --json`; repeatable).
    #[arg(long = "contest-caelus")]
    contest_caelus: Vec<PathBuf>,
    /// Helm SDK runs (`helm-sdk --json`; repeatable).
    #[arg(long = "contest-helm")]
    contest_helm: Vec<PathBuf>,
    /// Scale-curve runs (`reconcile --database postgres --workers W --json`; repeatable).
    #[arg(long = "scale")]
    scale: Vec<PathBuf>,
    /// The API load run (`api-load --json`).
    #[arg(long)]
    api_load: Option<PathBuf>,
    /// Markdown printed by helm-bench.
    #[arg(long)]
    helm: Option<PathBuf>,
    /// Markdown printed by kubesim-bench.
    #[arg(long)]
    kubesim: Option<PathBuf>,
    /// How kubesim-bench was run (its object count), for the text.
    #[arg(long)]
    kubesim_command: Option<String>,
    /// Where to write the document.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
}

/// `drift-report`: only the drift section, for a document kept by hand.
#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// JSON results of `caelus-bench reconcile --drift-samples S --json` (repeatable).
    #[arg(required = true)]
    results: Vec<PathBuf>,
}

/// Prints the "Drift: detection to correction" section with the date, commit and machine.
pub fn drift_only(args: DriftArgs) -> Result<()> {
    let results: Vec<ReconcileResult> = read_all(&args.results)?;
    let mut md = String::new();
    crate::compare::drift(&mut md, &results.iter().collect::<Vec<_>>())?;
    if md.is_empty() {
        anyhow::bail!("no run with drift samples of several kinds");
    }
    print!("{md}");
    println!(
        "Run on {} at commit `{}`. Machine: {}. Release build; one run.",
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        sh("git", &["rev-parse", "--short", "HEAD"]),
        machine()
    );
    Ok(())
}

/// Flux's published helm-controller figure for 1000 HelmReleases (issue 5).
const FLUX_SECS: f64 = 8.0 * 60.0 + 12.0;
const FLUX_MIB: f64 = 400.0;

fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    format!(
        "{cpus} CPU cores (`nproc`; {model}), {:.1} GiB memory, Linux {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        sh("uname", &["-r"])
    )
}

pub(crate) fn secs(s: f64) -> String {
    if s >= 60.0 {
        format!("{}m{:02.0}s ({s:.1} s)", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1} s")
    }
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn name(r: &ReconcileResult) -> &'static str {
    match r.database {
        Some(Database::Postgres) => "PostgreSQL",
        _ => "SQLite",
    }
}

/// Demotes a benchmark's own Markdown one level (`#` → `###`) to nest it here.
fn nest(md: &str) -> String {
    md.lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("##{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each JSON file parsed as a `T`.
fn read_all<T: serde::de::DeserializeOwned>(paths: &[PathBuf]) -> Result<Vec<T>> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("cannot parse {}", p.display()))
        })
        .collect()
}

pub fn run(args: Args) -> Result<()> {
    let results: Vec<ReconcileResult> = read_all(&args.reconcile)?;
    let contest_caelus: Vec<ReconcileResult> = read_all(&args.contest_caelus)?;
    let contest_helm: Vec<crate::helm_sdk::HelmSdkResult> = read_all(&args.contest_helm)?;
    let scale: Vec<ReconcileResult> = read_all(&args.scale)?;
    let api_load: Vec<crate::api_load::ApiLoadResult> = read_all(args.api_load.as_slice())?;
    let compared = crate::compare::Runs {
        caelus: &contest_caelus,
        helm: &contest_helm,
        scale: &scale,
        api: api_load.first(),
    };
    let n = results.first().map_or(0, |r| r.deployments);
    let mut md = String::new();
    let w = &mut md;
    writeln!(w, "# Benchmarks")?;
    writeln!(w)?;
    writeln!(
        w,
        "Written by `scripts/bench` on {} at commit `{}`. Machine: {}. \
         Release builds; one run of each; compare numbers from the same machine only. \
         Earlier standalone results: [Helm engine](benchmarks-helm.md), [kubesim](benchmarks-kubesim.md).",
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        sh("git", &["rev-parse", "--short", "HEAD"]),
        machine()
    )?;
    writeln!(w)?;
    crate::compare::summary(w, &compared, FLUX_SECS)?;
    crate::compare::contest(w, &compared)?;
    crate::compare::scale(w, &compared)?;
    let drifted: Vec<&ReconcileResult> = results.iter().chain(scale.iter()).collect();
    crate::compare::drift(w, &drifted)?;
    crate::compare::api(w, &compared)?;
    writeln!(w, "## Caelus end to end: {n} deployments on kubesim")?;
    writeln!(w)?;
    writeln!(
        w,
        "`cargo run --release -p caelus-bench -- reconcile --deployments {n} [--database postgres]`. \
         The benchmark starts kubesim in its own process, a local `docker-registry` holding \
         `testdata/charts/web/1.0.0` (a Deployment, a Service and a ConfigMap), the database, and the \
         real release binaries `caelus server` and `caelus worker` (worker `--concurrency {}`). \
         It creates {n} deployments through `POST /api/v1/deployments` ({} requests in flight) and \
         polls `GET /api/v1/deployments?phase=Ready` every 0.5 s until all are Ready. \
         Each deployment becomes a namespace with {} objects (namespace, ResourceQuota, LimitRange, \
         NetworkPolicy and the chart's), server-side applied, then waited for until healthy. \
         Peak RSS is the kernel's `VmHWM` of each caelus process; CPU time is `utime + stime` from \
         `/proc/PID/stat` over the phase. kubesim's requests are its own counters \
         (`/kubesim/stats`), reset at the start of each phase.",
        results.first().map_or(0, |r| r.concurrency),
        results.first().map_or(0, |r| r.parallel),
        results.first().map_or(0, |r| r.objects_per_deployment),
    )?;
    writeln!(w)?;

    // Create → Ready, side by side with Flux.
    write!(w, "| {n} deployments, create → Ready |")?;
    for r in &results {
        write!(w, " Caelus, {} |", name(r))?;
    }
    writeln!(
        w,
        " Flux helm-controller, 1000 HelmReleases (published) | target (issue 5) |"
    )?;
    write!(w, "|---|")?;
    for _ in &results {
        write!(w, "---:|")?;
    }
    writeln!(w, "---:|---:|")?;
    let row = |w: &mut String,
               label: &str,
               f: &dyn Fn(&ReconcileResult) -> String,
               flux: &str,
               target: &str|
     -> std::fmt::Result {
        write!(w, "| {label} |")?;
        for r in &results {
            write!(w, " {} |", f(r))?;
        }
        writeln!(w, " {flux} | {target} |")
    };
    row(
        w,
        "first create → all Ready",
        &|r| secs(r.all_ready_secs),
        &secs(FLUX_SECS),
        "< 60 s",
    )?;
    row(
        w,
        "deployments/s",
        &|r| format!("{:.1}", r.deployments_per_sec),
        &format!("{:.1}", 1000.0 / FLUX_SECS),
        "> 16.7",
    )?;
    row(
        w,
        "all creates answered by the API",
        &|r| secs(r.submit_secs),
        "–",
        "",
    )?;
    row(
        w,
        "first deployment Ready",
        &|r| secs(r.first_ready_secs),
        "–",
        "",
    )?;
    row(
        w,
        "peak RSS, worker (the reconciler)",
        &|r| mib(r.worker_peak_rss_kib),
        &format!("{FLUX_MIB:.0} MiB"),
        "< 150 MiB",
    )?;
    row(
        w,
        "RSS of the worker, idle before the first create",
        &|r| mib(r.worker_rss_kib_idle),
        "–",
        "",
    )?;
    row(
        w,
        "peak RSS, API server",
        &|r| mib(r.server_peak_rss_kib),
        "–",
        "",
    )?;
    row(
        w,
        "peak RSS, server + worker",
        &|r| mib(r.server_peak_rss_kib + r.worker_peak_rss_kib),
        "–",
        "< 150 MiB",
    )?;
    row(
        w,
        "RSS of the API server at start (Helm engine not loaded yet)",
        &|r| mib(r.server_rss_kib_started),
        "–",
        "",
    )?;
    row(
        w,
        "RSS of the API server after the publish (Helm engine loaded), before the first create",
        &|r| mib(r.server_rss_kib_idle),
        "–",
        "",
    )?;
    row(
        w,
        "CPU time, worker",
        &|r| format!("{:.1} s", r.worker_cpu_secs),
        "–",
        "",
    )?;
    row(
        w,
        "CPU time, API server",
        &|r| format!("{:.1} s", r.server_cpu_secs),
        "–",
        "",
    )?;
    row(
        w,
        "CPU time, kubesim + benchmark driver",
        &|r| format!("{:.1} s", r.kubesim_cpu_secs),
        "–",
        "",
    )?;
    row(
        w,
        "API server requests per deployment",
        &|r| format!("{:.1}", r.requests.total as f64 / r.deployments as f64),
        "–",
        "",
    )?;
    if results.iter().any(|r| r.projections == Some(true)) {
        row(
            w,
            "&nbsp;&nbsp;of which projections (throttled, coalesced)",
            &|r| {
                let p = crate::reconcile::projection_requests(&r.requests);
                format!(
                    "{p} ({:.2}/dep., +{:.0}%)",
                    p as f64 / r.deployments as f64,
                    100.0 * p as f64 / (r.requests.total - p).max(1) as f64
                )
            },
            "–",
            "< +100% (projections must not double the load)",
        )?;
    }
    let verbs = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];
    for verb in verbs {
        if results
            .iter()
            .all(|r| !r.requests.by_verb.contains_key(verb))
        {
            continue;
        }
        row(
            w,
            &format!("&nbsp;&nbsp;{verb} (total)"),
            &|r| {
                let c = r.requests.by_verb.get(verb).copied().unwrap_or(0);
                format!("{c} ({:.2}/dep.)", c as f64 / r.deployments as f64)
            },
            "",
            "",
        )?;
    }
    row(
        w,
        "failed passes (retried)",
        &|r| r.retried.to_string(),
        "–",
        "",
    )?;
    writeln!(w)?;

    // Requests by resource, for the first result (they do not depend on the database).
    if let Some(r) = results.first() {
        writeln!(
            w,
            "Requests by verb and resource ({}): {}.",
            name(r),
            r.requests
                .by_resource
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(w)?;
    }

    writeln!(w, "### One quiet resync of all {n}")?;
    writeln!(w)?;
    writeln!(
        w,
        "With every deployment Ready and nothing changed, the benchmark makes all {n} due at once \
         (`UPDATE deployments SET due_at = now`, plus a notification on PostgreSQL; the worker runs with \
         `--resync-seconds 86400`, so no other pass interferes) and waits until each has finished \
         one pass. Each pass re-renders (render cache), compares the live objects with what was \
         applied, and writes its status row. Nothing may be written to the API server."
    )?;
    writeln!(w)?;
    write!(w, "| quiet resync of {n} |")?;
    for r in &results {
        write!(w, " Caelus, {} |", name(r))?;
    }
    writeln!(w)?;
    write!(w, "|---|")?;
    for _ in &results {
        write!(w, "---:|")?;
    }
    writeln!(w)?;
    let rrow =
        |w: &mut String, label: &str, f: &dyn Fn(&ReconcileResult) -> String| -> std::fmt::Result {
            write!(w, "| {label} |")?;
            for r in &results {
                write!(w, " {} |", f(r))?;
            }
            writeln!(w)
        };
    rrow(w, "passes", &|r| r.resync.passes.to_string())?;
    rrow(w, "first to last pass", &|r| secs(r.resync.round_secs))?;
    rrow(w, "due → last pass (incl. worker wake-up)", &|r| {
        secs(r.resync.total_secs)
    })?;
    rrow(w, "API server requests", &|r| {
        format!(
            "{} ({:.2}/dep.)",
            r.resync.requests.total,
            r.resync.requests.total as f64 / r.deployments as f64
        )
    })?;
    for verb in verbs {
        if results
            .iter()
            .all(|r| !r.resync.requests.by_verb.contains_key(verb))
        {
            continue;
        }
        rrow(w, &format!("&nbsp;&nbsp;{verb}"), &|r| {
            r.resync
                .requests
                .by_verb
                .get(verb)
                .copied()
                .unwrap_or(0)
                .to_string()
        })?;
    }
    rrow(w, "**write calls**", &|r| {
        format!("**{}**", r.resync.requests.writes)
    })?;
    rrow(w, "CPU time, worker", &|r| {
        format!(
            "{:.2} s ({:.2} ms/dep.)",
            r.resync.worker_cpu_secs,
            r.resync.worker_cpu_secs * 1000.0 / r.deployments as f64
        )
    })?;
    rrow(w, "CPU time, API server", &|r| {
        format!("{:.2} s", r.resync.server_cpu_secs)
    })?;
    rrow(w, "CPU time, kubesim + benchmark driver", &|r| {
        format!("{:.2} s", r.resync.kubesim_cpu_secs)
    })?;
    rrow(w, "still Ready after", &|r| {
        r.resync.ready_after.to_string()
    })?;
    writeln!(w)?;

    writeln!(w, "### Reading the numbers")?;
    writeln!(w)?;
    let first = results.first();
    let idle = first.map_or(0, |r| r.worker_rss_kib_idle);
    for line in [
        format!(
            "**Memory.** The worker loads the Helm engine (`libhelm_c`, Helm's Go runtime) at start and \
             sits at ~{} before doing any work; its growth over {n} deployments is what reconciling \
             costs. The API server loads the engine at the first request that needs it: it starts at \
             ~{} and reaches ~{} once the benchmark has published its chart through it (pull, lint, \
             inspect), the difference being what loading on first use saves an API replica that has \
             not published, checked a values schema or previewed a plan since it started.",
            mib(idle),
            mib(first.map_or(0, |r| r.server_rss_kib_started)),
            mib(first.map_or(0, |r| r.server_rss_kib_idle)),
        ),
        "**SQLite, first Ready.** With `caelus server` and `caelus worker` as separate processes on one \
         SQLite file, an API write cannot wake the worker (PostgreSQL's `LISTEN/NOTIFY` does); an idle \
         worker finds new work at its next poll (at most 5 s). `caelus dev` runs both in one process \
         and wakes at once. Once busy, the worker claims the next deployment as soon as a slot frees."
            .to_string(),
        "**Requests.** Per deployment: one server-side apply (`patch`) for each of the 7 objects, one \
         `get` of the namespace, and health reads of the chart's objects until they are healthy. \
         No `create`, `update` or `delete`: everything is applied."
            .to_string(),
        "**Quiet resync.** The drift check compares against per-kind watch caches (one label-selected \
         watch per kind), which a worker starts with its first drift check, i.e. in this round: the \
         `list` calls (pages of 500) and `watch` calls are those caches starting, and the `get` calls \
         are objects read before their kind's cache had finished its first list (a GET is also made \
         to confirm a suspected difference). A later round on the same worker starts with warm \
         caches (not measured here). Status rows are still written to the database (`updated_at`, next \
         resync)."
            .to_string(),
        "**Variance.** One run each. On this machine repeated runs of 1000 deployments have varied by \
         about a third (13–16 s on SQLite, 16–21 s on PostgreSQL in three runs each); PostgreSQL, kubesim and the \
         benchmark driver share the same 2 cores with caelus."
            .to_string(),
    ] {
        writeln!(w, "- {line}")?;
    }
    writeln!(w)?;

    writeln!(w, "### What differs from Flux's figure")?;
    writeln!(w)?;
    writeln!(
        w,
        "Flux's number is from [fluxcd/flux-benchmark](https://github.com/fluxcd/flux-benchmark) \
         (its RESULTS.md): 8m12s and 400 MiB for 1000 HelmReleases as quoted in issue 5; the tables \
         there for Flux v2.2 and v2.3 list 8m1s–8m2s with 490–620 Mi. It is a comparison of scale, \
         not a like-for-like race:"
    )?;
    writeln!(w)?;
    for line in [
        "**kubesim is not a real API server.** It keeps objects in memory (no etcd), has no admission, \
         authn/authz or protobuf, and answers in microseconds; a real kube-apiserver adds milliseconds \
         per request and its own CPU. The requests per deployment are the portable figure: multiply \
         by a real API server's latency to estimate.",
        "**No real pods.** kubesim's simulated controllers report a Deployment available right after \
         it is applied: no scheduling, image pulls or kubelet. Flux's benchmark installed podinfo with \
         `replicas: 0`, so it waited for no pods either, but on a real cluster with real controllers.",
        "**Different work per release.** Flux's helm-controller runs a Helm SDK install (a release \
         Secret per revision, Helm's own waits), and source-controller fetches the chart first; Caelus \
         renders with the same Helm engine, applies with server-side apply, keeps revisions in its \
         database, and pulls the one chart digest once from a loopback registry into a \
         content-addressed cache.",
        "**Different machines.** Flux's run used a GitHub-hosted 16-core runner with a 3-node kind \
         cluster, helm-controller limited to 2 CPUs / 1 GiB with concurrency 10; here everything \
         (kubesim, PostgreSQL, the registry, the benchmark driver and both caelus processes) shares \
         the 2 cores above, and the worker runs with its default concurrency.",
        "**Memory is measured differently.** Flux reports the controller container's maximum memory \
         (cgroup, which counts page cache); ours is each process's peak resident set (`VmHWM`).",
    ] {
        writeln!(w, "- {line}")?;
    }
    writeln!(w)?;

    if let Some(path) = &args.helm {
        let text = std::fs::read_to_string(path)?;
        writeln!(w, "## Helm engine")?;
        writeln!(w)?;
        writeln!(w, "{}", nest(&text).trim_end())?;
        writeln!(w)?;
    }
    if let Some(path) = &args.kubesim {
        let text = std::fs::read_to_string(path)?;
        writeln!(w, "## kubesim")?;
        writeln!(w)?;
        if let Some(cmd) = &args.kubesim_command {
            writeln!(w, "`{cmd}`.")?;
            writeln!(w)?;
        }
        writeln!(w, "{}", nest(&text).trim_end())?;
        writeln!(w)?;
    }
    std::fs::write(&args.out, &md)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_headings_move_down_two_levels() {
        assert_eq!(nest("# A\ntext\n## B"), "### A\ntext\n#### B");
    }

    #[test]
    fn durations_read_like_flux_s() {
        assert_eq!(secs(492.0), "8m12s (492.0 s)");
        assert_eq!(secs(41.25), "41.2 s");
    }
}
