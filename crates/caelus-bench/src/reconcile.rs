//! N deployments from API create to Ready with real `caelus server` + `caelus worker`
//! processes on kubesim, then one quiet resync round of all N.

use crate::procfs;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    Sqlite,
    Postgres,
}

/// The chart every deployment runs (the same chart the Helm SDK contender installs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchChart {
    /// testdata/charts/web/1.0.0: a Deployment, a Service and a ConfigMap.
    Web,
    /// testdata/charts/podinfo: flux-benchmark's podinfo objects (Deployment scaled to 0,
    /// ServiceAccount, Service, Ingress) plus a ConfigMap.
    Podinfo,
}

impl BenchChart {
    /// (directory under the repository, chart name, chart version)
    pub fn source(self) -> (&'static str, &'static str, &'static str) {
        match self {
            BenchChart::Web => ("testdata/charts/web/1.0.0", "web", "1.0.0"),
            BenchChart::Podinfo => ("testdata/charts/podinfo", "podinfo", "6.7.1"),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Deployments to create.
    #[arg(long, default_value_t = 1000)]
    deployments: usize,
    /// sqlite: a file in a temp dir; postgres: a fresh schema in CAELUS_TEST_DATABASE_URL.
    #[arg(long, value_enum, default_value_t = Database::Sqlite)]
    database: Database,
    /// The worker's --concurrency (reconciles at once).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// `caelus worker` processes (each with --concurrency); PostgreSQL only for more than 1.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The chart of every deployment.
    #[arg(long, value_enum, default_value_t = BenchChart::Web)]
    chart: BenchChart,
    /// Latency kubesim adds to every request, in milliseconds (what a real API server costs).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Create requests in flight at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// The caelus binary (default: target/release/caelus in the repository).
    #[arg(long)]
    caelus: Option<PathBuf>,
    /// Give up when not all are Ready after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// After the quiet resync, drift this many deployments one after the other (each by
    /// one of four kinds drawn at random: a scaled Deployment, an edited ConfigMap, a
    /// deleted Service, a deleted namespace) and time each until Caelus has corrected it.
    #[arg(long, default_value_t = 0)]
    drift_samples: usize,
    /// Seed of the drift draw (default: from the clock; the report names it).
    #[arg(long)]
    drift_seed: Option<u64>,
    /// Give up on one drift sample after this many seconds.
    #[arg(long, default_value_t = 60)]
    drift_timeout: u64,
    /// Before the drifts: seconds of quiet (nothing changed, no resync due) whose kubesim
    /// writes are counted; they must be 0.
    #[arg(long, default_value_t = 10)]
    quiet_secs: u64,
    /// Also write the results as JSON here (for `caelus-bench report`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Workers write the read-only projections (`--install-crds`, as the chart
    /// installs the CRDs); `--projections=false` measures without them.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    projections: bool,
}

/// Requests kubesim served, by verb and by "verb resource".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Requests {
    pub total: u64,
    pub writes: u64,
    pub by_verb: BTreeMap<String, u64>,
    pub by_resource: BTreeMap<String, u64>,
}

impl From<kubesim::StatsSnapshot> for Requests {
    fn from(s: kubesim::StatsSnapshot) -> Self {
        Requests {
            total: s.total,
            writes: s.writes(),
            by_verb: s.by_verb,
            by_resource: s.by_resource,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResyncResult {
    /// Deployments that finished a pass in the round.
    pub passes: usize,
    /// From the first to the last pass finishing (database timestamps).
    pub round_secs: f64,
    /// From making all due to the last pass finishing (includes the worker's wake-up).
    pub total_secs: f64,
    pub requests: Requests,
    pub worker_cpu_secs: f64,
    pub server_cpu_secs: f64,
    /// This process: kubesim serving the requests (and the bench's own polling).
    pub kubesim_cpu_secs: f64,
    /// Still Ready after the round.
    pub ready_after: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileResult {
    pub database: Option<Database>,
    pub topology: String,
    pub deployments: usize,
    pub concurrency: usize,
    #[serde(default = "one")]
    pub workers: usize,
    #[serde(default)]
    pub chart: Option<BenchChart>,
    #[serde(default)]
    pub latency_ms: u64,
    pub parallel: usize,
    /// Size of the database after the run (SQLite file, or the PostgreSQL schema's tables).
    #[serde(default)]
    pub database_bytes: u64,
    /// Objects per deployment in the cluster: namespace, its isolation objects, the chart's.
    pub objects_per_deployment: usize,
    /// Time to send all create requests (the API answering, not the reconcile).
    pub submit_secs: f64,
    pub first_ready_secs: f64,
    /// From the first create request to all Ready.
    pub all_ready_secs: f64,
    pub deployments_per_sec: f64,
    pub ready: usize,
    /// Passes that failed and were retried (from the events), during the create phase.
    pub retried: usize,
    pub requests: Requests,
    /// The API server's resident set once up, before anything has needed
    /// its Helm engine (loaded at the first publish; `caelus server` loads
    /// it on first use).
    #[serde(default)]
    pub server_rss_kib_started: u64,
    /// Resident set of each process when idle before the first create (the
    /// server has published the chart, so its Helm engine is loaded).
    pub server_rss_kib_idle: u64,
    pub worker_rss_kib_idle: u64,
    pub server_peak_rss_kib: u64,
    pub worker_peak_rss_kib: u64,
    pub server_rss_kib_after: u64,
    pub worker_rss_kib_after: u64,
    pub server_cpu_secs: f64,
    pub worker_cpu_secs: f64,
    pub kubesim_cpu_secs: f64,
    pub resync: ResyncResult,
    /// Watch-driven drift correction (`--drift-samples`), with the resync a day away.
    #[serde(default)]
    pub drift: Option<crate::drift::DriftResult>,
    /// Whether the workers wrote projections (`None`: a run from before they existed).
    #[serde(default)]
    pub projections: Option<bool>,
    /// With projections: from all Ready until every deployment's projection
    /// said Ready (the throttled writes catching up); their requests are in `requests`.
    #[serde(default)]
    pub projections_settled_secs: f64,
}

/// Requests for the projections (`CaelusDeployment`, `CaelusTemplate`), status included.
pub fn projection_requests(r: &Requests) -> u64 {
    r.by_resource
        .iter()
        .filter(|(k, _)| k.contains("caelusdeployments") || k.contains("caelustemplates"))
        .map(|(_, v)| v)
        .sum()
}

/// Process names of the workers (`caelus worker` is the subcommand; the name labels logs).
const WORKER_NAMES: &[&str] = &["worker", "worker-2", "worker-3", "worker-4"];

fn one() -> usize {
    1
}

/// A child process killed and reaped on drop.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) name: &'static str,
    pub(crate) log: PathBuf,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "caelus {} exited ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The HTTP API as the benchmark's client.
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req.bearer_auth(&self.token).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {body}");
        }
        Ok(body)
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub(crate) async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// Every deployment in `phase` (all pages).
    async fn list(&self, phase: Option<&str>) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("limit", "500")];
            if let Some(p) = phase {
                q.push(("phase", p));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let page = self.get("/api/v1/deployments", &q).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(items),
            }
        }
    }

    pub(crate) async fn wait_up(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("caelus server did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn cpu(pid: u32) -> f64 {
    procfs::cpu_seconds(pid).unwrap_or(0.0)
}

/// CPU seconds of all worker processes together.
fn cpu_all(procs: &[Proc]) -> f64 {
    procs.iter().map(|p| cpu(p.pid())).sum()
}

/// A per-process figure summed over the worker processes.
fn sum(procs: &[Proc], f: impl Fn(u32) -> u64) -> u64 {
    procs.iter().map(|p| f(p.pid())).sum()
}

/// Bytes the benchmark's database takes: the SQLite file (+ WAL), or the relations of
/// the PostgreSQL test schema (tables, indexes, TOAST).
async fn database_size(store: &caelus_store::Store, db: Database, dir: &Path) -> u64 {
    match db {
        Database::Sqlite => ["caelus.db", "caelus.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum(),
        Database::Postgres => sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r'",
        )
        .fetch_one(store.pool())
        .await
        .map_or(0, |b| b.max(0) as u64),
    }
}

pub async fn run(args: Args) -> Result<()> {
    let caelus = args
        .caelus
        .clone()
        .unwrap_or_else(|| repo_root().join("target/release/caelus"));
    if !caelus.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p caelus-cli --bin caelus)",
            caelus.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("caelus-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&args, &caelus, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let result = result?;

    let text = serde_json::to_string_pretty(&result)?;
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    print_summary(&result);
    Ok(())
}

async fn run_in(args: &Args, caelus: &Path, dir: &Path) -> Result<ReconcileResult> {
    let n = args.deployments;
    let me = std::process::id();
    // The cluster, in this process.
    let sim = kubesim::Server::start(kubesim::Config::default()).await?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;

    // The chart, in a real OCI registry.
    let registry_port = free_port()?;
    let registry = caelus_helm::local_registry::spawn(&dir.join("registry"), registry_port, None)
        .context("cannot start docker-registry (scripts/install-registry)")?;
    let _registry = Proc {
        child: registry,
        name: "registry",
        log: dir.join("registry/registry.log"),
    };
    let pusher = caelus_helm::HelmEngine::load(caelus_helm::EngineConfig::new(dir.join("pusher")))?;
    let (chart_dir, chart_name, chart_version) = args.chart.source();
    pusher
        .push_chart_dir(
            &repo_root().join(chart_dir),
            &format!("oci://127.0.0.1:{registry_port}/charts"),
        )
        .await?;
    if args.workers > 1 && args.database == Database::Sqlite {
        bail!("more than one worker needs PostgreSQL (--database postgres)");
    }

    // The database.
    let (store, url, _pg) = match args.database {
        Database::Sqlite => {
            let url = format!("sqlite://{}", dir.join("caelus.db").display());
            let store = caelus_store::Store::connect(&url).await?;
            store.migrate().await?;
            (store, url, None)
        }
        Database::Postgres => {
            let db = caelus_store::testing::TestDb::postgres().await;
            (db.store.clone(), db.url.clone(), Some(db))
        }
    };
    let out = Command::new(caelus)
        .args([
            "admin",
            "create-token",
            "--name",
            "bench",
            "--database-url",
            &url,
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "caelus admin create-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = String::from_utf8(out.stdout)?.trim().to_string();

    // The real processes.
    let port = free_port()?;
    let spawn = |name: &'static str, extra: &[&str]| -> Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        // "worker-2" is a second `caelus worker`.
        let subcommand = name.split('-').next().unwrap_or(name);
        let child = Command::new(caelus)
            .arg(subcommand)
            .args(["--database-url", &url])
            .arg("--data-dir")
            .arg(dir.join(name))
            .args(extra)
            .env("CAELUS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", caelus.display()))?;
        Ok(Proc { child, name, log })
    };
    let mut server = spawn(
        "server",
        &["--listen", &format!("127.0.0.1:{port}"), "--no-migrate"],
    )?;
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.parallel * 2)
            .build()?,
        base: format!("http://127.0.0.1:{port}"),
        token,
    };
    api.wait_up().await?;
    let server_rss_kib_started = procfs::rss_kib(server.pid()).unwrap_or(0);
    // No natural resync during the run: the quiet round below is triggered explicitly.
    let mut workers = (0..args.workers)
        .map(|i| {
            spawn(
                WORKER_NAMES[i.min(WORKER_NAMES.len() - 1)],
                &[
                    "--kubeconfig",
                    kubeconfig.to_str().context("path")?,
                    "--concurrency",
                    &args.concurrency.to_string(),
                    "--resync-seconds",
                    "86400",
                    if args.projections {
                        "--install-crds"
                    } else {
                        "--projections=false"
                    },
                ],
            )
        })
        .collect::<Result<Vec<_>>>()?;

    api.post(
        "/api/v1/products",
        &json!({"slug": chart_name, "name": chart_name, "description": "benchmark"}),
    )
    .await?;
    api.post(
        &format!("/api/v1/products/{chart_name}/versions"),
        &json!({
            "version": chart_version,
            "chart": format!("oci://127.0.0.1:{registry_port}/charts/{chart_name}:{chart_version}"),
            "values_allowlist": ["replicaCount"],
            "publish": true,
            // The benchmark measures reconciling, not certifying (the server requires a
            // certification before publishing unless an admin skips it).
            "skip_certification": true,
        }),
    )
    .await?;
    // Let the workers finish starting (connect, discovery, watches) before the clock runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for w in &mut workers {
        w.check_alive()?;
    }
    if args.latency_ms > 0 {
        sim.faults().set(kubesim::FaultConfig {
            latency: vec![kubesim::LatencyFault {
                millis: args.latency_ms,
                ..Default::default()
            }],
            ..Default::default()
        });
    }

    // ---- N creates, as fast as the API takes them, until all are Ready.
    let server_rss_kib_idle = procfs::rss_kib(server.pid()).unwrap_or(0);
    let worker_rss_kib_idle = sum(&workers, |p| procfs::rss_kib(p).unwrap_or(0));
    sim.reset_stats();
    let (server_cpu0, worker_cpu0, me_cpu0) = (cpu(server.pid()), cpu_all(&workers), cpu(me));
    eprintln!(
        "creating {n} deployments ({} database, worker concurrency {})…",
        match args.database {
            Database::Sqlite => "SQLite",
            Database::Postgres => "PostgreSQL",
        },
        args.concurrency
    );
    let start = Instant::now();
    let creates = {
        let api = &api;
        futures::stream::iter(0..n)
            .map(move |i| async move {
                api.post(
                    "/api/v1/deployments",
                    &json!({"name": format!("site-{i:05}"), "product": chart_name, "version": chart_version}),
                )
                .await
            })
            .buffer_unordered(args.parallel.max(1))
            .collect::<Vec<_>>()
    };
    let poll = async {
        let mut first_ready = None;
        let mut last_report = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let ready = api.list(Some("Ready")).await?.len();
            if ready > 0 && first_ready.is_none() {
                first_ready = Some(start.elapsed());
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "  {:>5.1}s: {ready}/{n} Ready",
                    start.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
            if ready >= n {
                return anyhow::Ok((first_ready.unwrap_or_default(), start.elapsed(), ready));
            }
            if start.elapsed() > Duration::from_secs(args.timeout) {
                return Ok((first_ready.unwrap_or_default(), start.elapsed(), ready));
            }
        }
    };
    let submit = async {
        let results = creates.await;
        let took = start.elapsed();
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if let Some(e) = failed.first() {
            bail!("{} of {n} creates failed, e.g. {e}", failed.len());
        }
        Ok(took)
    };
    let (submit, polled) = tokio::join!(submit, poll);
    let submit = submit?;
    let (first_ready, all_ready, ready) = polled?;
    // Projection writes are throttled, so they may trail Ready: they belong
    // to this phase, not to the quiet resync measured next.
    let projections_settled = if args.projections && ready >= n {
        let settled = Instant::now();
        let deadline = settled + Duration::from_secs(args.timeout);
        while projected_ready(&sim) < n {
            if Instant::now() > deadline {
                bail!(
                    "only {}/{n} projections say Ready after {}s",
                    projected_ready(&sim),
                    args.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        settled.elapsed()
    } else {
        Duration::ZERO
    };
    let requests: Requests = sim.stats().into();
    let (server_cpu1, worker_cpu1, me_cpu1) = (cpu(server.pid()), cpu_all(&workers), cpu(me));
    server.check_alive()?;
    for w in &mut workers {
        w.check_alive()?;
    }
    if ready < n {
        let failed = api.list(Some("Failed")).await?.len();
        bail!(
            "only {ready}/{n} Ready after {}s ({failed} Failed); worker log:\n{}",
            args.timeout,
            workers
                .iter()
                .map(|w| tail(&w.log))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
    }
    eprintln!("  all {n} Ready after {:.1}s", all_ready.as_secs_f64());

    // Passes that failed and were retried, from the event timeline.
    let retried: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE action = 'reconcile.failed'")
            .fetch_one(store.pool())
            .await?;
    let retried = retried as usize;

    // Objects per deployment, from one namespace in the cluster.
    let objects_per_deployment = {
        let ready = api.list(Some("Ready")).await?;
        count_objects(&sim, ready[0]["namespace"].as_str().unwrap_or_default())
    };

    // ---- One quiet resync round: every deployment due now, nothing changed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sim.reset_stats();
    let (server_cpu2, worker_cpu2, me_cpu2) = (cpu(server.pid()), cpu_all(&workers), cpu(me));
    let t0 = caelus_store::now_ms();
    let made_due = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE deployments SET due_at = {t0} WHERE deleted_at IS NULL"
    )))
    .execute(store.pool())
    .await?;
    {
        let mut conn = store.conn().await?;
        caelus_store::queue::notify_workers(&mut conn, store.backend()).await?;
    }
    eprintln!("quiet resync of {} deployments…", made_due.rows_affected());
    let resync_start = Instant::now();
    let done_sql = format!(
        "SELECT COUNT(*) FROM deployments WHERE deleted_at IS NULL AND lease_owner IS NULL AND due_at > {t0}"
    );
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(done_sql.clone()))
            .fetch_one(store.pool())
            .await?;
        if done as usize >= n {
            break;
        }
        if resync_start.elapsed() > Duration::from_secs(args.timeout) {
            bail!(
                "resync round incomplete after {}s: {done}/{n}",
                args.timeout
            );
        }
    }
    let total_secs = resync_start.elapsed().as_secs_f64();
    let resync_requests: Requests = sim.stats().into();
    let (server_cpu3, worker_cpu3, me_cpu3) = (cpu(server.pid()), cpu_all(&workers), cpu(me));
    let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT MIN(updated_at), MAX(updated_at) FROM deployments WHERE updated_at >= {t0}"
    )))
    .fetch_one(store.pool())
    .await?;
    let passes: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM deployments WHERE updated_at >= {t0}"
    )))
    .fetch_one(store.pool())
    .await?;
    let ready_after = api.list(Some("Ready")).await?.len();
    for w in &mut workers {
        w.check_alive()?;
    }
    let database_bytes = database_size(&store, args.database, dir).await;

    // ---- Drift, corrected through the watches (the resync is a day away).
    let drift = if args.drift_samples > 0 {
        let namespaces: Vec<String> = api
            .list(Some("Ready"))
            .await?
            .iter()
            .filter_map(|d| d["namespace"].as_str().map(String::from))
            .collect();
        // A quiet spell first: nothing changed and nothing due, so no writes at all.
        tokio::time::sleep(Duration::from_secs(2)).await;
        sim.reset_stats();
        eprintln!("quiet: {}s with nothing changed…", args.quiet_secs);
        tokio::time::sleep(Duration::from_secs(args.quiet_secs)).await;
        let quiet: Requests = sim.stats().into();
        let seed = args
            .drift_seed
            .unwrap_or_else(|| caelus_store::now_ms() as u64);
        eprintln!("drift: {} samples, seed {seed}…", args.drift_samples);
        sim.reset_stats();
        let (server_cpu4, worker_cpu4) = (cpu(server.pid()), cpu_all(&workers));
        let mut d = crate::drift::measure(
            &sim,
            &store,
            &namespaces,
            args.drift_samples,
            seed,
            Duration::from_secs(args.drift_timeout),
        )
        .await?;
        // The last correction's pass may still be finishing (status, events): count it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        d.requests = Some(sim.stats().into());
        d.worker_cpu_secs = cpu_all(&workers) - worker_cpu4;
        d.server_cpu_secs = cpu(server.pid()) - server_cpu4;
        d.quiet_secs = args.quiet_secs as f64;
        d.quiet_requests = Some(quiet);
        for w in &mut workers {
            w.check_alive()?;
        }
        Some(d)
    } else {
        None
    };

    let result = ReconcileResult {
        database: Some(args.database),
        topology: format!(
            "caelus server + {} caelus worker{} (separate processes)",
            args.workers,
            if args.workers == 1 { "" } else { "s" }
        ),
        deployments: n,
        concurrency: args.concurrency,
        workers: args.workers,
        chart: Some(args.chart),
        latency_ms: args.latency_ms,
        parallel: args.parallel,
        database_bytes,
        objects_per_deployment,
        submit_secs: submit.as_secs_f64(),
        first_ready_secs: first_ready.as_secs_f64(),
        all_ready_secs: all_ready.as_secs_f64(),
        deployments_per_sec: n as f64 / all_ready.as_secs_f64(),
        ready,
        retried,
        requests,
        server_rss_kib_started,
        server_rss_kib_idle,
        worker_rss_kib_idle,
        server_peak_rss_kib: procfs::peak_rss_kib(server.pid()).unwrap_or(0),
        worker_peak_rss_kib: sum(&workers, |p| procfs::peak_rss_kib(p).unwrap_or(0)),
        server_rss_kib_after: procfs::rss_kib(server.pid()).unwrap_or(0),
        worker_rss_kib_after: sum(&workers, |p| procfs::rss_kib(p).unwrap_or(0)),
        server_cpu_secs: server_cpu1 - server_cpu0,
        worker_cpu_secs: worker_cpu1 - worker_cpu0,
        kubesim_cpu_secs: me_cpu1 - me_cpu0,
        resync: ResyncResult {
            passes: passes as usize,
            round_secs: match (first, last) {
                (Some(a), Some(b)) => (b - a) as f64 / 1000.0,
                _ => 0.0,
            },
            total_secs,
            requests: resync_requests,
            worker_cpu_secs: worker_cpu3 - worker_cpu2,
            server_cpu_secs: server_cpu3 - server_cpu2,
            kubesim_cpu_secs: me_cpu3 - me_cpu2,
            ready_after,
        },
        drift,
        projections: Some(args.projections),
        projections_settled_secs: projections_settled.as_secs_f64(),
    };
    drop(workers);
    drop(server);
    sim.shutdown().await;
    store.close().await;
    Ok(result)
}

/// `CaelusDeployment` projections whose status says Ready (kubesim in-process:
/// not counted as requests).
fn projected_ready(sim: &kubesim::Server) -> usize {
    let api = sim.api();
    let Some(info) = api.resource("caelus.io", "v1alpha1", "caelusdeployments") else {
        return 0;
    };
    api.list(&info, None, &Default::default())
        .ok()
        .and_then(|list| {
            list["items"].as_array().map(|items| {
                items
                    .iter()
                    .filter(|i| i["status"]["phase"] == "Ready")
                    .count()
            })
        })
        .unwrap_or(0)
}

/// Objects in namespace `ns` (plus the namespace itself), from kubesim in-process.
fn count_objects(sim: &kubesim::Server, ns: &str) -> usize {
    let kinds = [
        ("", "v1", "configmaps"),
        ("", "v1", "services"),
        ("", "v1", "resourcequotas"),
        ("", "v1", "limitranges"),
        ("apps", "v1", "deployments"),
        ("networking.k8s.io", "v1", "networkpolicies"),
    ];
    let api = sim.api();
    let mut count = 1; // the namespace
    for (group, version, resource) in kinds {
        let Some(info) = api.resource(group, version, resource) else {
            continue;
        };
        if let Ok(list) = api.list(&info, Some(ns), &Default::default()) {
            count += list["items"].as_array().map_or(0, Vec::len);
        }
    }
    count
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_summary(r: &ReconcileResult) {
    let n = r.deployments as f64;
    println!(
        "{} deployments, {:?}, worker concurrency {}",
        r.deployments, r.database, r.concurrency
    );
    println!(
        "  create → all Ready: {:.1}s ({:.1} deployments/s); creates submitted in {:.1}s; first Ready after {:.2}s",
        r.all_ready_secs, r.deployments_per_sec, r.submit_secs, r.first_ready_secs
    );
    println!(
        "  kubesim requests: {} ({:.1}/deployment) {:?}",
        r.requests.total,
        r.requests.total as f64 / n,
        r.requests.by_verb
    );
    if r.projections == Some(true) {
        let p = projection_requests(&r.requests);
        println!(
            "  of which projections: {p} ({:.2}/deployment, {:.0}% of the rest); all projected {:.1}s after all Ready",
            p as f64 / n,
            100.0 * p as f64 / (r.requests.total - p).max(1) as f64,
            r.projections_settled_secs
        );
    }
    println!(
        "  peak RSS: server {:.1} MiB, worker {:.1} MiB; CPU: server {:.1}s, worker {:.1}s, kubesim {:.1}s",
        mib(r.server_peak_rss_kib),
        mib(r.worker_peak_rss_kib),
        r.server_cpu_secs,
        r.worker_cpu_secs,
        r.kubesim_cpu_secs
    );
    println!(
        "  quiet resync of {}: {:.1}s, requests {} ({} writes) {:?}, worker CPU {:.2}s",
        r.resync.passes,
        r.resync.round_secs,
        r.resync.requests.total,
        r.resync.requests.writes,
        r.resync.requests.by_verb,
        r.resync.worker_cpu_secs
    );
    if let Some(d) = &r.drift {
        if let Some(q) = &d.quiet_requests {
            println!(
                "  quiet {:.0}s before the drifts: {} requests, {} writes",
                d.quiet_secs, q.total, q.writes
            );
        }
        println!(
            "  drift corrected: {}/{} samples (seed {}), p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            d.corrected,
            d.samples,
            d.seed.unwrap_or_default(),
            d.p50_ms,
            d.p99_ms,
            d.max_ms
        );
        for k in &d.by_kind {
            println!(
                "    {:?}: {}/{}, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                k.kind.unwrap_or(crate::drift::DriftKind::Scale),
                k.corrected,
                k.samples,
                k.p50_ms,
                k.p99_ms,
                k.max_ms
            );
        }
        if let Some(req) = &d.requests {
            let per = d.corrected.max(1) as f64;
            println!(
                "    per correction: {:.1} requests ({:.1} writes) {:?}; worker CPU {:.1} ms, server CPU {:.1} ms",
                req.total as f64 / per,
                req.writes as f64 / per,
                req.by_verb,
                d.worker_cpu_secs * 1000.0 / per,
                d.server_cpu_secs * 1000.0 / per
            );
        }
    }
}
