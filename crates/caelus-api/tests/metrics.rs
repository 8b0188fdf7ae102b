//! `/metrics` scraped while a real worker reconciles against kubesim through a
//! Kubernetes client wrapped in `KubeMetricsLayer`.

mod common;

use caelus_store::Backend;
use common::Server;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            let v = match v {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l}")),
            };
            (k.to_string(), v)
        })
        .collect()
}

fn families(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

async fn scrape(s: &Server) -> String {
    let resp = reqwest::get(format!("{}/metrics", s.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], caelus_metrics::CONTENT_TYPE);
    resp.text().await.unwrap()
}

fn worker(s: &Server, sim: &kubesim::Server) -> Arc<caelus_reconciler::Reconciler> {
    let config = kube::Config::new(sim.url().parse().unwrap());
    // The wiring `caelus worker` and `caelus dev` use: the metrics layer in the client stack.
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&caelus_metrics::KubeMetricsLayer::global())
        .build();
    let engine = caelus_engine::Engine::new(
        client,
        caelus_engine::EngineConfig {
            installation_id: "metrics-test".into(),
            health_poll_interval: Duration::from_millis(200),
            ..Default::default()
        },
    );
    Arc::new(caelus_reconciler::Reconciler {
        store: s.db.store.clone(),
        helm: s.helm.clone(),
        engine,
        config: caelus_reconciler::WorkerConfig {
            poll: Duration::from_millis(200),
            resync: Duration::from_secs(3600),
            ..Default::default()
        },
        wake: Arc::new(tokio::sync::Notify::new()),
        projector: None,
    })
}

#[tokio::test]
async fn metrics_report_queue_phases_http_kube_and_cache_with_sensible_values() {
    let s = Server::start(Backend::Sqlite).await;
    s.seed_catalog().await;
    let acme = s.tenant("acme").await;
    let a = s.create_deployment(&acme, "one").await;
    s.create_deployment(&acme, "two").await;
    // Nothing reconciles yet: both are due and waiting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = scrape(&s).await;
    let f = families(&text);
    // Labelled families appear with their first series (reconcile, kube requests:
    // after the worker runs, checked below). OpenMetrics names a counter family
    // without its `_total` sample suffix.
    for (name, kind) in [
        ("caelus_reconcile_retries", "counter"),
        ("caelus_drift_corrections", "counter"),
        ("caelus_http_request_duration_seconds", "histogram"),
        ("caelus_queue_depth", "gauge"),
        ("caelus_queue_oldest_due_age_seconds", "gauge"),
        ("caelus_deployments", "gauge"),
        ("caelus_chart_cache_requests", "counter"),
        ("caelus_chart_cache_entries", "gauge"),
    ] {
        assert_eq!(
            f.get(name).map(String::as_str),
            Some(kind),
            "{name}\n{text}"
        );
    }
    let v = samples(&text);
    assert_eq!(v["caelus_queue_depth"], 2.0, "{text}");
    assert!(v["caelus_queue_oldest_due_age_seconds"] >= 0.04, "{text}");
    assert_eq!(v["caelus_deployments{phase=\"Pending\"}"], 2.0);
    assert_eq!(v["caelus_deployments{phase=\"Ready\"}"], 0.0);
    // The API requests above, by matched route (never the raw path) and status.
    let created = v["caelus_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/deployments\",status=\"201\"}"];
    assert!(created >= 2.0, "{text}");
    assert_eq!(
        created,
        v["caelus_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"POST\",route=\"/api/v1/deployments\",status=\"201\"}"]
    );
    assert!(
        !text.contains(a["uid"].as_str().unwrap()),
        "no uids as labels"
    );

    // A worker reconciles both to Ready through the instrumented client.
    let sim = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker(&s, &sim).run(stop_rx));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = samples(&scrape(&s).await);
        if v["caelus_deployments{phase=\"Ready\"}"] == 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "deployments never became Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = scrape(&s).await;
    let v = samples(&text);
    let get = |k: &str| v.get(k).copied().unwrap_or(0.0);
    assert_eq!(get("caelus_queue_depth"), 0.0, "{text}");
    assert_eq!(v["caelus_queue_oldest_due_age_seconds"], 0.0);
    assert_eq!(v["caelus_deployments{phase=\"Pending\"}"], 0.0);
    // Server-side apply and reads went through the layer; nothing failed to connect.
    let applied = get("caelus_kube_requests_total{verb=\"apply\",code=\"200\"}")
        + get("caelus_kube_requests_total{verb=\"apply\",code=\"201\"}");
    assert!(
        applied >= 6.0,
        "two deployments of three objects each\n{text}"
    );
    assert!(
        v.keys()
            .any(|k| k.starts_with("caelus_kube_requests_total{verb=\"get\"")),
        "{text}"
    );
    assert!(!text.contains("code=\"error\""), "{text}");
    // Two renders of the same chart: at least one miss; the chart is cached.
    assert!(
        v["caelus_chart_cache_requests_total{result=\"miss\"}"] >= 1.0,
        "{text}"
    );
    assert!(
        v["caelus_chart_cache_entries{cache=\"chart\"}"] >= 1.0,
        "{text}"
    );
    let f = families(&text);
    assert_eq!(
        f["caelus_reconcile_duration_seconds"], "histogram",
        "{text}"
    );
    assert_eq!(f["caelus_kube_requests"], "counter", "{text}");
    // Both installs were timed as reconcile passes, in a consistent histogram.
    assert!(
        get("caelus_reconcile_duration_seconds_count{outcome=\"installed\"}") >= 2.0,
        "{text}"
    );
    for (k, count) in v
        .iter()
        .filter(|(k, _)| k.starts_with("caelus_reconcile_duration_seconds_count"))
    {
        let labels = k
            .trim_start_matches("caelus_reconcile_duration_seconds_count{")
            .trim_end_matches('}');
        let inf = v[&format!("caelus_reconcile_duration_seconds_bucket{{le=\"+Inf\",{labels}}}")];
        assert_eq!(*count, inf, "{text}");
        assert!(v[&format!("caelus_reconcile_duration_seconds_sum{{{labels}}}")] >= 0.0);
    }
    let _ = stop.send(true);
    let _ = running.await;
    sim.shutdown().await;
}

#[tokio::test]
async fn unmatched_requests_are_one_route() {
    let s = Server::start(Backend::Sqlite).await;
    for i in 0..3 {
        reqwest::get(format!("{}/no/such/path/{i}", s.base))
            .await
            .unwrap();
    }
    let text = scrape(&s).await;
    assert!(
        text.contains("route=\"unmatched\",status=\"404\""),
        "{text}"
    );
    assert!(!text.contains("/no/such/path"));
}
