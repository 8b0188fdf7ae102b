//! The HTTP API under load: a real `caelus server` on PostgreSQL holding N deployments,
//! driven at a fixed request rate (open loop: requests start on schedule whether or not
//! earlier ones have answered, and each latency is measured from its scheduled start, so
//! a slow server cannot hide its queueing) for a few seconds per endpoint and rate.

use crate::procfs;
use crate::reconcile::{Api, Proc, free_port};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Deployments in the database (created through the API; no worker runs).
    #[arg(long, default_value_t = 10_000)]
    deployments: usize,
    /// Request rates to drive, per second (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "500,1000")]
    rates: Vec<u32>,
    /// Seconds per endpoint and rate.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The caelus binary (default: target/release/caelus in the repository).
    #[arg(long)]
    caelus: Option<PathBuf>,
    /// Also write the results as JSON here (for `caelus-bench report`).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadRun {
    pub endpoint: String,
    pub rate: u32,
    pub seconds: u64,
    pub requests: usize,
    pub errors: usize,
    /// The first error seen, if any (status or transport error).
    pub first_error: Option<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU seconds of the API server per 1000 requests.
    pub server_cpu_ms_per_request: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApiLoadResult {
    pub deployments: usize,
    pub server_peak_rss_kib: u64,
    pub runs: Vec<LoadRun>,
}

/// One endpoint to drive: a GET with the headers it needs.
struct Target {
    name: String,
    url: String,
    auth: Auth,
}

enum Auth {
    Bearer(String),
    Cookie(String),
}

pub async fn run(args: Args) -> Result<()> {
    let caelus = args
        .caelus
        .clone()
        .unwrap_or_else(|| crate::reconcile::repo_root().join("target/release/caelus"));
    if !caelus.is_file() {
        bail!("{} not found: build it first", caelus.display());
    }
    let dir = std::env::temp_dir().join(format!("caelus-bench-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(&args, &caelus, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let result = result?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    for r in &result.runs {
        println!(
            "{:<40} {:>5}/s: {} requests, {} errors, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            r.endpoint, r.rate, r.requests, r.errors, r.p50_ms, r.p99_ms, r.max_ms
        );
        if let Some(e) = &r.first_error {
            println!("    first error: {e}");
        }
    }
    Ok(())
}

async fn measure(
    args: &Args,
    caelus: &std::path::Path,
    dir: &std::path::Path,
) -> Result<ApiLoadResult> {
    let db = caelus_store::testing::TestDb::postgres().await;
    let out = Command::new(caelus)
        .args([
            "admin",
            "create-token",
            "--name",
            "bench",
            "--database-url",
            &db.url,
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "caelus admin create-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    let port = free_port()?;
    let log = dir.join("server.log");
    let child = Command::new(caelus)
        .args(["server", "--database-url", &db.url, "--no-migrate"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("server"))
        .env("CAELUS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let mut server = Proc {
        child,
        name: "server",
        log,
    };
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
        base: format!("http://127.0.0.1:{port}"),
        token: token.clone(),
    };
    api.wait_up().await?;

    let _registry = seed(&api, dir, args.deployments).await?;
    server.check_alive()?;
    let one: serde_json::Value = api.get("/api/v1/deployments", &[("limit", "1")]).await?;
    let uid = one["items"][0]["uid"]
        .as_str()
        .context("no deployment listed")?
        .to_string();
    let cookie = ui_session(&api.base, &token).await?;
    let targets = [
        Target {
            name: "GET /api/v1/deployments?limit=100".into(),
            url: format!("{}/api/v1/deployments?limit=100", api.base),
            auth: Auth::Bearer(token.clone()),
        },
        Target {
            name: "GET /api/v1/deployments/{uid}".into(),
            url: format!("{}/api/v1/deployments/{uid}", api.base),
            auth: Auth::Bearer(token.clone()),
        },
        Target {
            name: "GET /ui/deployments (the UI page)".into(),
            url: format!("{}/ui/deployments", api.base),
            auth: Auth::Cookie(cookie),
        },
    ];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let mut runs = Vec::new();
    for target in &targets {
        for &rate in &args.rates {
            eprintln!("  {} at {rate}/s for {}s…", target.name, args.seconds);
            let cpu0 = procfs::cpu_seconds(server.pid()).unwrap_or(0.0);
            let mut run = drive(&http, target, rate, Duration::from_secs(args.seconds)).await;
            let cpu = procfs::cpu_seconds(server.pid()).unwrap_or(0.0) - cpu0;
            run.server_cpu_ms_per_request = cpu * 1000.0 / run.requests.max(1) as f64;
            runs.push(run);
            server.check_alive()?;
        }
    }
    Ok(ApiLoadResult {
        deployments: args.deployments,
        server_peak_rss_kib: procfs::peak_rss_kib(server.pid()).unwrap_or(0),
        runs,
    })
}

/// N deployments through the API (8 in flight) of the web chart, published from a real
/// local registry. No worker runs, so they stay Pending: listing them costs the API the
/// same as listing Ready ones (the same rows and columns).
async fn seed(api: &Api, dir: &std::path::Path, n: usize) -> Result<Proc> {
    let registry_port = free_port()?;
    let child = caelus_helm::local_registry::spawn(&dir.join("registry"), registry_port, None)
        .context("cannot start docker-registry (scripts/install-registry)")?;
    let registry = Proc {
        child,
        name: "registry",
        log: dir.join("registry/registry.log"),
    };
    let pusher = caelus_helm::HelmEngine::load(caelus_helm::EngineConfig::new(dir.join("pusher")))?;
    pusher
        .push_chart_dir(
            &crate::reconcile::repo_root().join("testdata/charts/web/1.0.0"),
            &format!("oci://127.0.0.1:{registry_port}/charts"),
        )
        .await?;
    api.post(
        "/api/v1/products",
        &json!({"slug": "web", "name": "Web", "description": "load"}),
    )
    .await?;
    api.post(
        "/api/v1/products/web/versions",
        &json!({
            "version": "1.0.0",
            "chart": format!("oci://127.0.0.1:{registry_port}/charts/web:1.0.0"),
            "values_allowlist": ["replicaCount"],
            "publish": true,
            // The benchmark measures reconciling, not certifying (the server requires a
            // certification before publishing unless an admin skips it).
            "skip_certification": true,
        }),
    )
    .await?;
    eprintln!("creating {n} deployments…");
    let results = futures::stream::iter(0..n)
        .map(|i| async move {
            api.post(
                "/api/v1/deployments",
                &json!({"name": format!("site-{i:05}"), "product": "web", "version": "1.0.0"}),
            )
            .await
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
        bail!("creating deployments failed: {e}");
    }
    Ok(registry)
}

/// Signs in to the web UI as a browser does (login page's CSRF cookie + form) and
/// returns the `Cookie` header value of the session.
async fn ui_session(base: &str, token: &str) -> Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = http.get(format!("{base}/ui/login")).send().await?;
    let cookies = set_cookies(&page);
    let html = page.text().await?;
    let csrf = html
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF field on the sign-in page")?
        .to_string();
    let resp = http
        .post(format!("{base}/ui/login"))
        .header("Origin", base)
        .header("Cookie", cookies.join("; "))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("token", token),
            ("_csrf", csrf.as_str()),
            ("next", "/ui/deployments"),
        ]))
        .send()
        .await?;
    if !resp.status().is_redirection() {
        bail!("UI sign-in answered {}", resp.status());
    }
    let session: Vec<String> = set_cookies(&resp)
        .into_iter()
        .filter(|c| !c.ends_with('='))
        .collect();
    if session.is_empty() {
        bail!("UI sign-in set no session cookie");
    }
    Ok(session.join("; "))
}

/// An `application/x-www-form-urlencoded` body (every byte outside the unreserved set
/// percent-encoded).
fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `name=value` of each Set-Cookie header.
fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_string)
        .collect()
}

/// Drives `target` at `rate` requests/s for `duration`, open loop.
async fn drive(http: &reqwest::Client, target: &Target, rate: u32, duration: Duration) -> LoadRun {
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let total = (duration.as_secs_f64() * f64::from(rate)) as usize;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let req = match &target.auth {
            Auth::Bearer(t) => http.get(&target.url).bearer_auth(t),
            Auth::Cookie(c) => http.get(&target.url).header("Cookie", c),
        };
        let (latencies, errors, first_error) =
            (latencies.clone(), errors.clone(), first_error.clone());
        tasks.spawn(async move {
            let outcome = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    resp.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                }
                Ok(resp) => Err(format!("HTTP {}", resp.status())),
                Err(e) => Err(format!("{e:?}")),
            };
            if let Err(e) = &outcome
                && let Ok(mut first) = first_error.lock()
            {
                first.get_or_insert_with(|| e.clone());
            }
            if outcome.is_ok() {
                let took = scheduled.elapsed().as_secs_f64() * 1000.0;
                if let Ok(mut l) = latencies.lock() {
                    l.push(took);
                }
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // Reap finished requests as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_by(f64::total_cmp);
    let pct = |q: f64| crate::drift::quantile(&l, q);
    LoadRun {
        endpoint: target.name.clone(),
        rate,
        seconds: duration.as_secs(),
        requests: total,
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
        first_error: first_error.lock().ok().and_then(|f| f.clone()),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: l.last().copied().unwrap_or(0.0),
        server_cpu_ms_per_request: 0.0,
    }
}
