//! The Helm SDK contender: N `helm install`s of the same chart into N namespaces on the
//! same kubesim, through libhelm_c (Helm v4's Go SDK with client-go — the engine inside
//! Flux's helm-controller and `helm install` itself), CONCURRENCY at a time, each with
//! `wait=watcher`. Driven by `scripts/helm_sdk_installs.py` in the helm-python-sdk
//! virtualenv that `scripts/install-python-clients` makes at `.tools/py`.

use crate::reconcile::{BenchChart, Requests};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Releases to install (one per namespace).
    #[arg(long, default_value_t = 1000)]
    releases: usize,
    /// Installs in flight at once.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Latency kubesim adds to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// The chart (the same one the Caelus contender deploys).
    #[arg(long, value_enum, default_value_t = BenchChart::Podinfo)]
    chart: BenchChart,
    /// Also write the results as JSON here (for `caelus-bench report`).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What the Python driver prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DriverOutput {
    seconds: f64,
    installed: usize,
    failed: usize,
    errors: Vec<String>,
    install_p50_secs: f64,
    install_max_secs: f64,
    cpu_secs: f64,
    max_rss_kib: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HelmSdkResult {
    pub releases: usize,
    pub concurrency: usize,
    pub latency_ms: u64,
    pub chart: Option<BenchChart>,
    /// From the first install starting to the last one deployed (all waited for).
    pub all_ready_secs: f64,
    pub releases_per_sec: f64,
    pub installed: usize,
    pub failed: usize,
    pub errors: Vec<String>,
    pub install_p50_secs: f64,
    pub install_max_secs: f64,
    /// The Helm SDK's process (Python + libhelm_c).
    pub cpu_secs: f64,
    pub peak_rss_kib: u64,
    /// This process: kubesim serving the requests.
    pub kubesim_cpu_secs: f64,
    pub requests: Requests,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub async fn run(args: Args) -> Result<()> {
    let result = measure(&args).await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    println!(
        "Helm SDK: {} releases, concurrency {}, latency {} ms: {:.1}s ({:.1} releases/s), {} failed; \
         {} requests ({:.1}/release) {:?}; CPU {:.1}s, peak RSS {:.1} MiB",
        result.releases,
        result.concurrency,
        result.latency_ms,
        result.all_ready_secs,
        result.releases_per_sec,
        result.failed,
        result.requests.total,
        result.requests.total as f64 / result.releases.max(1) as f64,
        result.requests.by_verb,
        result.cpu_secs,
        result.peak_rss_kib as f64 / 1024.0
    );
    Ok(())
}

async fn measure(args: &Args) -> Result<HelmSdkResult> {
    let root = repo_root();
    let python = root.join(".tools/py/bin/python");
    if !python.is_file() {
        bail!(
            "{} not found: run scripts/install-python-clients",
            python.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("caelus-bench-helm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sim = kubesim::Server::start(kubesim::Config::default()).await?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    if args.latency_ms > 0 {
        sim.faults().set(kubesim::FaultConfig {
            latency: vec![kubesim::LatencyFault {
                millis: args.latency_ms,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let (chart_dir, _, _) = args.chart.source();
    eprintln!(
        "Helm SDK: installing {} releases, {} at a time, {} ms latency…",
        args.releases, args.concurrency, args.latency_ms
    );
    sim.reset_stats();
    let me = std::process::id();
    let cpu0 = crate::procfs::cpu_seconds(me).unwrap_or(0.0);
    let out = tokio::process::Command::new(&python)
        .arg(root.join("crates/caelus-bench/scripts/helm_sdk_installs.py"))
        .arg(&kubeconfig)
        .arg(root.join(chart_dir))
        .arg(args.releases.to_string())
        .arg(args.concurrency.to_string())
        // Helm keeps its cache and config under HOME.
        .env("HOME", &dir)
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run the Helm SDK driver")?;
    let kubesim_cpu_secs = crate::procfs::cpu_seconds(me).unwrap_or(0.0) - cpu0;
    let requests: Requests = sim.stats().into();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!(
            "the Helm SDK driver failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let driver: DriverOutput = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "unexpected output of the Helm SDK driver: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(HelmSdkResult {
        releases: args.releases,
        concurrency: args.concurrency,
        latency_ms: args.latency_ms,
        chart: Some(args.chart),
        all_ready_secs: driver.seconds,
        releases_per_sec: driver.installed as f64 / driver.seconds.max(f64::EPSILON),
        installed: driver.installed,
        failed: driver.failed,
        errors: driver.errors,
        install_p50_secs: driver.install_p50_secs,
        install_max_secs: driver.install_max_secs,
        cpu_secs: driver.cpu_secs,
        peak_rss_kib: driver.max_rss_kib,
        kubesim_cpu_secs,
        requests,
    })
}
