//! Many renders in parallel from tokio tasks: no crash, and every handle is
//! freed afterwards. Its own test binary so no other test's handles count.

use std::sync::Arc;

use caelus_helm::testing::{TestRegistry, chart_dir, push_test_chart};
use caelus_helm::{ChartReference, EngineConfig, HelmEngine, RenderRequest, RevisionKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_renders_do_not_crash_or_leak() {
    let registry = TestRegistry::start().unwrap();
    let (tagged, digest) = push_test_chart(&registry, "web", "1.0.0").await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(data.path());
    config.max_concurrent_calls = 4;
    // Small caches so charts and renders are evicted and reloaded under load.
    config.render_cache_entries = 16;
    let engine = HelmEngine::load(config).unwrap();
    let baseline = registry.engine().unwrap().open_handles();

    let pinned: ChartReference = tagged
        .parse::<ChartReference>()
        .unwrap()
        .with_digest(digest);
    let mut tasks: Vec<tokio::task::JoinHandle<usize>> = Vec::new();
    // Two waves: the first fills the render cache, the second mostly hits.
    for i in (0..150u32).chain(0..150u32) {
        if i == 0 && !tasks.is_empty() {
            for t in tasks.drain(..) {
                let _: usize = t.await.unwrap();
            }
        }
        let engine = engine.clone();
        let pinned = pinned.clone();
        tasks.push(tokio::spawn(async move {
            // Mix shared pulled charts, fresh directory loads and misses.
            let chart = if i % 4 == 0 {
                engine
                    .load_path(&chart_dir("hooks", "1.0.0"))
                    .await
                    .unwrap()
            } else {
                engine.pull(&pinned).await.unwrap()
            };
            let req = RenderRequest {
                values: json!({"replicaCount": i % 3 + 1, "config": {"greeting": "hi"}}),
                release_name: format!("r{}", i % 2),
                namespace: "ns".into(),
                revision: 1,
                kind: if i % 2 == 0 {
                    RevisionKind::Install
                } else {
                    RevisionKind::Upgrade
                },
                kube_version: None,
                deployment_uid: "u".into(),
                lookup: None,
            };
            let r = engine.render(&chart, &req).await.unwrap();
            assert!(!r.objects.is_empty());
            if i % 10 == 0 {
                engine.validate_values(&chart, &req.values).await.unwrap();
                engine.chart_info(&chart).await.unwrap();
            }
            Arc::strong_count(&r)
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = engine.cache_stats();
    assert!(
        stats.render_hits > 0 && stats.render_misses > 0,
        "{stats:?}"
    );
    assert!(
        engine.open_handles() > baseline,
        "cached charts hold handles"
    );

    // Dropping the engine (and its caches) frees every chart and client.
    drop(engine);
    assert_eq!(registry.engine().unwrap().open_handles(), baseline);
    drop(registry);
    // The registry's own pushing engine is gone too: nothing left open.
    let probe = caelus_helm::testing::engine(data.path()).unwrap();
    assert_eq!(probe.open_handles(), 0);
}
