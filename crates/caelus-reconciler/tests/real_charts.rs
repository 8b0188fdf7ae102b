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
use serde_json::{Value, json};
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

/// `name -> uid` of the PersistentVolumeClaims in `ns`.
async fn claim_uids(h: &Harness, ns: &str) -> std::collections::BTreeMap<String, String> {
    kube::Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(h.kube.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.metadata.name.unwrap(), c.metadata.uid.unwrap()))
        .collect()
}

/// Installs shared chart `old` as 1.0.0 and upgrades it to `new` (2.0.0)
/// with `values`: Ready on the new version with the same claims (uids).
async fn upgrade_keeps_claims(h: &Harness, product: &str, old: &str, new: &str, values: Value) {
    let (Some(old_dir), Some(new_dir)) = (
        caelus_helm::testing::shared_chart(old),
        caelus_helm::testing::shared_chart(new),
    ) else {
        eprintln!("skipped: ../shared/charts is absent");
        return;
    };
    let v1 = h
        .publish_path(product, &old_dir, "1.0.0", &[], Capabilities::default())
        .await;
    let v2 = h
        .publish_path(product, &new_dir, "2.0.0", &[], Capabilities::default())
        .await;
    let uid = h.create(&v1, product, values.clone()).await;
    let d = h
        .wait_until(
            &uid,
            Duration::from_secs(120),
            &format!("{old} Ready"),
            |d| d.phase == Phase::Ready && d.observed_generation == 1,
        )
        .await;
    let before = claim_uids(h, &d.namespace_name).await;
    assert!(!before.is_empty(), "{old} has no claim");
    {
        let mut c = h.db.store.conn().await.unwrap();
        assert!(
            caelus_store::deployments::set_desired_if_generation(
                &mut c,
                &uid,
                1,
                &v2.id,
                &values,
                None,
                caelus_store::now_ms()
            )
            .await
            .unwrap()
        );
    }
    h.wake.notify_one();
    let d = h
        .wait_until(
            &uid,
            Duration::from_secs(120),
            &format!("{new} Ready"),
            |d| d.phase == Phase::Ready && d.observed_generation == 2,
        )
        .await;
    assert_eq!(d.current_revision, Some(2), "{}", d.message);
    assert_eq!(
        claim_uids(h, &d.namespace_name).await,
        before,
        "{old} -> {new} changed the claims"
    );
}

/// Issue 11's must-show: bitnami postgresql 16.7 -> 17.1 (a StatefulSet with
/// volumeClaimTemplates) and grafana 9 -> 10 (a PVC, RBAC namespaced) upgrade
/// to Ready with their PersistentVolumeClaims unchanged.
#[tokio::test]
async fn postgresql_and_grafana_chart_upgrades_keep_their_claims() {
    let h = Harness::start(Backend::Sqlite).await;
    upgrade_keeps_claims(&h, "postgresql", "postgresql-old", "postgresql", json!({})).await;
    upgrade_keeps_claims(
        &h,
        "grafana",
        "grafana-old",
        "grafana",
        json!({"rbac": {"namespaced": true}, "persistence": {"enabled": true}}),
    )
    .await;
    h.stop().await;
}
