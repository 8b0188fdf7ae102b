//! Helm engine benchmark: pulls and renders per second, render cache miss
//! vs hit. Writes `docs/benchmarks-helm.md`.
//!
//! cargo run --release -p caelus-helm --features test-support --bin helm-bench [-- --renders N]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use caelus_helm::testing::{TestRegistry, push_test_chart, repo_root};
use caelus_helm::{ChartReference, EngineConfig, HelmEngine, RenderRequest, RevisionKind};
use serde_json::json;

fn request(i: usize) -> RenderRequest {
    RenderRequest {
        values: json!({"replicaCount": 1 + i % 5, "config": {"greeting": format!("hello {i}")}}),
        release_name: "bench".into(),
        namespace: "bench".into(),
        revision: 1,
        kind: RevisionKind::Install,
        kube_version: Some("v1.32.0".into()),
        deployment_uid: "00000000-0000-4000-8000-000000000000".into(),
        lookup: None,
    }
}

struct Row {
    what: String,
    count: usize,
    elapsed: Duration,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn micros_each(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.count as f64
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut renders = 500usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--renders" {
            renders = args.next().ok_or("--renders needs a number")?.parse()?;
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let registry = TestRegistry::start()?;
    let (tagged, digest) = push_test_chart(&registry, "web", "1.0.0").await?;
    let pinned = tagged.parse::<ChartReference>()?.with_digest(digest);
    let data = tempfile::tempdir()?;
    let mut rows = Vec::new();

    // Pulls: from the registry (cold), from the disk cache, from memory.
    let pulls = 20;
    let mut cold = Duration::ZERO;
    let mut disk = Duration::ZERO;
    for i in 0..pulls {
        let dir = data.path().join(format!("pull-{i}"));
        let engine = HelmEngine::load(EngineConfig::new(&dir))?;
        let t = Instant::now();
        engine.pull(&pinned).await?;
        cold += t.elapsed();
        drop(engine);
        let engine = HelmEngine::load(EngineConfig::new(&dir))?;
        let t = Instant::now();
        engine.pull(&pinned).await?;
        disk += t.elapsed();
    }
    rows.push(Row {
        what: "pull by digest from registry (verify, write cache, load)".into(),
        count: pulls,
        elapsed: cold,
    });
    rows.push(Row {
        what: "pull from disk cache (checksum, load)".into(),
        count: pulls,
        elapsed: disk,
    });

    let engine = HelmEngine::load(EngineConfig::new(data.path().join("main")))?;
    let chart = engine.pull(&pinned).await?;
    let t = Instant::now();
    for _ in 0..1000 {
        engine.pull(&pinned).await?;
    }
    rows.push(Row {
        what: "pull from memory cache".into(),
        count: 1000,
        elapsed: t.elapsed(),
    });

    // Renders, sequential: every request distinct (miss), then repeated (hit).
    let t = Instant::now();
    for i in 0..renders {
        engine.render(&chart, &request(i)).await?;
    }
    rows.push(Row {
        what: "render, cache miss, 1 task".into(),
        count: renders,
        elapsed: t.elapsed(),
    });

    let hot = request(0);
    let t = Instant::now();
    for _ in 0..renders * 10 {
        engine.render(&chart, &hot).await?;
    }
    rows.push(Row {
        what: "render, cache hit, 1 task".into(),
        count: renders * 10,
        elapsed: t.elapsed(),
    });

    // Renders in parallel from many tasks (distinct inputs: all misses).
    let fresh = HelmEngine::load(EngineConfig::new(data.path().join("parallel")))?;
    let chart = fresh.pull(&pinned).await?;
    let tasks = 16;
    let t = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (engine, chart) = (fresh.clone(), chart.clone());
        let per_task = renders / tasks;
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                engine
                    .render(&chart, &request(1_000_000 + task * per_task + i))
                    .await?;
            }
            Ok::<_, caelus_helm::HelmError>(per_task)
        }));
    }
    let mut done = 0;
    for h in handles {
        done += h.await??;
    }
    rows.push(Row {
        what: format!(
            "render, cache miss, {tasks} tasks (pool of {})",
            cores.max(2)
        ),
        count: done,
        elapsed: t.elapsed(),
    });

    let stats = engine.cache_stats();
    let lib = engine.library()?;
    let mut md = String::new();
    writeln!(md, "# Helm engine benchmark")?;
    writeln!(md)?;
    writeln!(
        md,
        "Written by `cargo run --release -p caelus-helm --features test-support --bin helm-bench`. \
         Chart: `testdata/charts/web/1.0.0` (ConfigMap, Service, Deployment), pushed to a local \
         `docker-registry` on loopback. libhelm_c {} (Helm {}), {cores} CPU core(s). \
         Numbers are from one run on this machine; compare runs on the same machine only.",
        lib.c_version(),
        lib.sdk_version()
    )?;
    writeln!(md)?;
    writeln!(md, "| operation | count | per second | µs each |")?;
    writeln!(md, "|---|---:|---:|---:|")?;
    for r in &rows {
        writeln!(
            md,
            "| {} | {} | {:.0} | {:.1} |",
            r.what,
            r.count,
            r.per_second(),
            r.micros_each()
        )?;
    }
    writeln!(md)?;
    writeln!(
        md,
        "A cache miss calls Helm's engine (template execution, ~all of the cost) and then splits, \
         parses, labels, sorts and hashes the output. A hit is a hash of the values plus a map lookup \
         and returns the shared `Arc<Rendered>`. Render cache counters on the sequential engine: \
         {} hits, {} misses.",
        stats.render_hits, stats.render_misses
    )?;
    let out = repo_root().join("docs").join("benchmarks-helm.md");
    std::fs::create_dir_all(out.parent().expect("docs dir"))?;
    std::fs::write(&out, &md)?;
    print!("{md}");
    eprintln!("wrote {}", out.display());
    Ok(())
}
