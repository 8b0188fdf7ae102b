//! Data safety on the reconciler's side (issue 11): revisions keep what they
//! applied, so a chart that can no longer be pulled never blocks a drift
//! check or an uninstall; StatefulSet changes Kubernetes forbids are carried
//! out keeping every claim, or refused with the reason.

mod harness;

use caelus_core::statefulset::StatefulSetUpdates;
use caelus_core::status::Phase;
use caelus_core::template::{Capabilities, DriftMode};
use caelus_helm::ChartReference;
use caelus_store::Backend;
use caelus_store::revisions;
use harness::Harness;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::json;
use std::collections::BTreeMap;
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

/// `name -> (uid, requested storage)` of the claims in `ns`.
async fn claims(h: &Harness, ns: &str) -> BTreeMap<String, (String, String)> {
    kube::Api::<PersistentVolumeClaim>::namespaced(h.kube.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| {
            let size = c.spec.unwrap().resources.unwrap().requests.unwrap()["storage"]
                .0
                .clone();
            (c.metadata.name.unwrap(), (c.metadata.uid.unwrap(), size))
        })
        .collect()
}

async fn statefulset_uid(h: &Harness, ns: &str, name: &str) -> String {
    h.live("apps/v1", "StatefulSet", Some(ns), name)
        .await
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Installs test chart `stateful` (2 replicas, a 1Gi claim each) with the
/// given capability and claim class, then asks for 2Gi claims.
async fn grow_claims(
    h: &Harness,
    updates: StatefulSetUpdates,
    class: &str,
) -> (String, String, BTreeMap<String, (String, String)>, String) {
    let t = h
        .publish(
            "db",
            "stateful",
            "1.0.0",
            &["persistence.*"],
            Capabilities {
                statefulset_updates: updates,
                health_timeout_seconds: 20,
                ..Default::default()
            },
        )
        .await;
    let values = |size: &str| json!({"persistence": {"size": size, "storageClassName": class}});
    let uid = h.create(&t, "db", values("1Gi")).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    let before = claims(h, &ns).await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.values().all(|(_, size)| size == "1Gi"));
    let sts = format!("{}-stateful", d.release_name);
    let sts_uid = statefulset_uid(h, &ns, &sts).await;
    h.update(&uid, values("2Gi")).await;
    (uid, ns, before, sts_uid)
}

/// `statefulset_updates: recreate`: a storage growth of volumeClaimTemplates
/// (which Kubernetes refuses on an update) grows each claim in place, re-creates
/// the StatefulSet (orphaning delete) and ends Ready with the same claims.
#[tokio::test]
async fn a_claim_template_growth_recreates_the_statefulset_keeping_the_claims() {
    let h = Harness::start(Backend::Sqlite).await;
    let (uid, ns, before, sts_uid) =
        grow_claims(&h, StatefulSetUpdates::Recreate, "standard").await;
    let d = h
        .wait_until(
            &uid,
            Duration::from_secs(60),
            "Ready at generation 2",
            |d| d.phase == Phase::Ready && d.observed_generation == 2,
        )
        .await;
    let after = claims(&h, &ns).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (name, (uid, size)) in &after {
        assert_eq!(uid, &before[name].0, "{name} was re-created");
        assert_eq!(size, "2Gi", "{name}");
    }
    let sts = format!("{}-stateful", d.release_name);
    let live = h
        .live("apps/v1", "StatefulSet", Some(&ns), &sts)
        .await
        .unwrap();
    assert_ne!(live["metadata"]["uid"], sts_uid.as_str(), "not re-created");
    assert_eq!(
        live["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
    let event = h
        .wait_event(&uid, "statefulset.recreated", Duration::from_secs(1))
        .await;
    assert!(
        event.message.contains("grew PersistentVolumeClaim/")
            && event.message.contains("propagationPolicy Orphan"),
        "{}",
        event.message
    );
    h.stop().await;
}

/// The same growth on claims whose StorageClass does not allow expansion:
/// refused with the reason before anything is written.
#[tokio::test]
async fn a_claim_growth_is_refused_when_the_storage_class_cannot_expand() {
    let h = Harness::start(Backend::Sqlite).await;
    let (uid, ns, before, sts_uid) = grow_claims(&h, StatefulSetUpdates::Recreate, "fixed").await;
    let d = h
        .wait_until(&uid, Duration::from_secs(60), "refused", |d| {
            d.observed_generation == 2 && d.failure.is_some()
        })
        .await;
    let failure = d.failure.unwrap();
    assert!(
        failure
            .message
            .contains("its StorageClass fixed does not allow volume expansion"),
        "{failure:?}"
    );
    assert_eq!(failure.reason, "PolicyViolation");
    assert_eq!(claims(&h, &ns).await, before, "the claims are untouched");
    let sts = format!("{}-stateful", d.release_name);
    assert_eq!(statefulset_uid(&h, &ns, &sts).await, sts_uid);
    h.stop().await;
}

/// Without the capability the StatefulSet is never deleted: the change fails
/// as Kubernetes refuses it, and the claims stay as they were.
#[tokio::test]
async fn without_the_capability_a_claim_growth_is_not_carried_out() {
    let h = Harness::start(Backend::Sqlite).await;
    let (uid, ns, before, sts_uid) = grow_claims(&h, StatefulSetUpdates::Refuse, "standard").await;
    let d = h
        .wait_until(&uid, Duration::from_secs(60), "refused", |d| {
            d.observed_generation == 2 && d.failure.is_some()
        })
        .await;
    assert_ne!(d.phase, Phase::Ready);
    assert!(
        d.failure.as_ref().unwrap().message.contains("forbidden"),
        "{:?}",
        d.failure
    );
    assert_eq!(claims(&h, &ns).await, before);
    let sts = format!("{}-stateful", d.release_name);
    assert_eq!(statefulset_uid(&h, &ns, &sts).await, sts_uid);
    assert!(
        !h.events(&uid)
            .await
            .iter()
            .any(|e| e.action == "statefulset.recreated")
    );
    h.stop().await;
}
