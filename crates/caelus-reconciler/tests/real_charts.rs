//! Unmodified third-party charts (`../shared/charts`) that install under the
//! default policy, installed with their default values and left alone through
//! three resyncs: no false drift, not one write call. These are the charts
//! whose shapes broke the first drift comparison (bitnami wordpress's mariadb
//! mounts one emptyDir at several paths).

mod harness;

use caelus_core::status::Phase;
use caelus_core::template::Capabilities;
use caelus_store::Backend;
use harness::{Harness, fast_worker};
use serde_json::json;
use std::time::Duration;

/// The shared charts that install under the default policy with default values.
/// Left out, and why: grafana, kube-state-metrics and ingress-nginx create
/// cluster-scoped RBAC by default; prometheus-node-exporter needs host
/// namespaces and hostPath (privileged); postgresql-old and grafana-old are the
/// older versions of charts listed here.
const CHARTS: &[&str] = &["nginx", "redis", "postgresql", "wordpress"];

#[tokio::test]
async fn shared_charts_with_default_values_show_no_drift_and_resyncs_write_nothing() {
    let charts: Vec<(&str, std::path::PathBuf)> = CHARTS
        .iter()
        .filter_map(|c| caelus_helm::testing::shared_chart(c).map(|dir| (*c, dir)))
        .collect();
    if charts.is_empty() {
        eprintln!("skipped: ../shared/charts is absent");
        return;
    }
    let mut worker = fast_worker();
    // Frequent resyncs: each one must find nothing and write nothing.
    worker.resync = Duration::from_millis(500);
    worker.resync_jitter = 0.0;
    let h = Harness::start_with(Backend::Sqlite, worker).await;

    let mut uids = Vec::new();
    for (name, dir) in &charts {
        let t = h
            .publish_path(name, dir, "1.0.0", &[], Capabilities::default())
            .await;
        uids.push((*name, h.create(&t, name, json!({})).await));
    }
    for (name, uid) in &uids {
        h.wait_until(
            uid,
            Duration::from_secs(120),
            &format!("{name} Ready"),
            |d| d.phase == Phase::Ready && d.observed_generation == d.generation,
        )
        .await;
    }

    // Let the last rollouts' status updates settle, then count from zero.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.sim.reset_stats();
    for _ in 0..3 {
        for (name, uid) in &uids {
            let seen = h.get(uid).await.updated_at;
            h.wait_until(
                uid,
                Duration::from_secs(30),
                &format!("a resync of {name}"),
                |d| d.updated_at > seen,
            )
            .await;
        }
    }
    let stats = h.sim.stats();
    assert_eq!(
        stats.writes(),
        0,
        "resyncs of unchanged charts wrote: {:?}",
        stats.by_resource
    );
    for (name, uid) in &uids {
        let drift: Vec<String> = h
            .events(uid)
            .await
            .into_iter()
            .filter(|e| e.action.starts_with("drift."))
            .map(|e| format!("{}: {}", e.action, e.message))
            .collect();
        assert!(drift.is_empty(), "false drift in {name}: {drift:#?}");
        assert_eq!(h.get(uid).await.phase, Phase::Ready, "{name}");
    }
    h.stop().await;
}
