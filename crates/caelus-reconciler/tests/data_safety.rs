//! Data safety on the reconciler's side (issue 11): revisions keep what they
//! applied, so a chart that can no longer be pulled never blocks a drift
//! check or an uninstall.

mod harness;

use caelus_core::status::Phase;
use caelus_core::template::{Capabilities, DriftMode};
use caelus_helm::ChartReference;
use caelus_store::Backend;
use caelus_store::revisions;
use harness::Harness;
use serde_json::json;
use std::time::Duration;

/// Each deployed revision stores its manifest; with the registry gone and
/// every chart cache emptied, drift is still found and corrected from it,
/// and the deployment is still uninstalled with its delete hooks.
#[tokio::test]
async fn drift_and_uninstall_work_from_the_stored_manifest_when_the_chart_is_gone() {
    let mut h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish(
            "app",
            "hooks",
            "1.1.0",
            &["message"],
            Capabilities {
                drift_mode: DriftMode::Correct,
                ..Default::default()
            },
        )
        .await;
    let uid = h.create(&t, "app", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    let stored = {
        let mut c = h.db.store.conn().await.unwrap();
        revisions::manifest(&mut c, &uid, 1).await.unwrap()
    };
    let stored: caelus_helm::Rendered =
        serde_json::from_slice(&stored.expect("revision 1 stores its manifest")).unwrap();
    assert!(
        stored.objects.iter().any(|o| o["kind"] == "ConfigMap")
            && stored.hooks.iter().any(|h| h.name.ends_with("-pre-delete")),
        "{stored:#?}"
    );
    assert_eq!(
        h.revisions(&uid).await[0].manifest_hash.as_deref(),
        Some(stored.manifest_hash.as_str())
    );

    // The chart can no longer be pulled: no registry, no cached archive.
    h.registry.stop();
    h.helm.clear_caches();
    std::fs::remove_dir_all(
        h.registry
            .temp_dir()
            .join("worker-cache/charts/repositories"),
    )
    .unwrap();
    let reference: ChartReference = t.chart_ref.parse().unwrap();
    assert!(
        h.helm.pull(&reference).await.is_err(),
        "the chart is still reachable"
    );

    // Drift: a deleted ConfigMap is found and put back from what was applied.
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.kube.clone(), &ns);
    let name = format!("{}-settings", d.release_name);
    assert!(h.live("v1", "ConfigMap", Some(&ns), &name).await.is_some());
    configmaps.delete(&name, &Default::default()).await.unwrap();
    caelus_store::queue::make_due(
        &h.db.store,
        std::slice::from_ref(&uid),
        caelus_store::now_ms(),
    )
    .await
    .unwrap();
    h.wake.notify_one();
    h.wait_event(&uid, "drift.corrected", Duration::from_secs(30))
        .await;
    assert!(h.live("v1", "ConfigMap", Some(&ns), &name).await.is_some());
    assert_eq!(h.get(&uid).await.phase, Phase::Ready);

    // Uninstall: the delete hooks come from the stored manifest too.
    h.delete(&uid).await;
    h.wait_phase(&uid, Phase::Deleted).await;
    let hooks: Vec<String> = h
        .events(&uid)
        .await
        .into_iter()
        .filter(|e| e.action == "hook.succeeded" && e.message.starts_with("uninstall:"))
        .map(|e| e.message)
        .collect();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert!(h.live("v1", "Namespace", None, &ns).await.is_none());
    h.stop().await;
}
