//! Drift that is exact and immediate: list shapes that name-keyed matching
//! gets wrong cause no false drift and their real changes are found; hand
//! edits, deletions and a deleted namespace are noticed from the watches and
//! corrected with the scheduled resync ten minutes away; ignore rules.

mod harness;

use caelus_core::status::{ConditionStatus, Phase};
use caelus_core::template::{Capabilities, DriftIgnoreRule, DriftMode};
use caelus_store::Backend;
use caelus_store::deployments::Deployment;
use harness::{Harness, fast_worker};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

const WEB_ALLOW: &[&str] = &["replicaCount", "config.*"];
const SOON: Duration = Duration::from_secs(20);

fn condition<'a>(d: &'a Deployment, t: &str) -> Option<&'a caelus_core::status::Condition> {
    d.conditions.iter().find(|c| c.type_ == t)
}

/// A worker whose scheduled resync is ten minutes away: whatever is found
/// sooner was found from the watches.
fn watch_only_worker() -> caelus_reconciler::WorkerConfig {
    let mut w = fast_worker();
    w.resync = Duration::from_secs(600);
    w.resync_jitter = 0.0;
    w
}

async fn api(h: &Harness, api_version: &str, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let (ar, _) = kube::discovery::pinned_kind(&h.kube, &gvk).await.unwrap();
    match ns {
        Some(ns) => Api::namespaced_with(h.kube.clone(), ns, &ar),
        None => Api::all_with(h.kube.clone(), &ar),
    }
}

async fn merge(h: &Harness, api_version: &str, kind: &str, ns: &str, name: &str, patch: Value) {
    api(h, api_version, kind, Some(ns))
        .await
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// A hand edit of a Deployment's first container: read, change, replace (PUT).
async fn edit_container(h: &Harness, ns: &str, name: &str, change: impl Fn(&mut Value)) {
    let deployments = api(h, "apps/v1", "Deployment", Some(ns)).await;
    let live = deployments.get(name).await.unwrap();
    let mut obj = serde_json::to_value(&live).unwrap();
    change(&mut obj["spec"]["template"]["spec"]["containers"][0]);
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    deployments
        .replace(name, &Default::default(), &obj)
        .await
        .unwrap();
}

/// Drift events (detected) so far.
async fn detected(h: &Harness, uid: &str) -> Vec<String> {
    h.events(uid)
        .await
        .into_iter()
        .filter(|e| e.action == "drift.detected")
        .map(|e| e.message)
        .collect()
}

/// Waits until `n` drift corrections are recorded; returns the last detection.
async fn corrected(h: &Harness, uid: &str, n: usize) -> String {
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let events = h.events(uid).await;
        let done = events
            .iter()
            .filter(|e| e.action == "drift.corrected")
            .count();
        if done >= n {
            return detected(h, uid).await.pop().unwrap_or_default();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drift not corrected ({done} of {n}): {:#?}",
            events
                .iter()
                .map(|e| format!("{}: {}", e.action, e.message))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn list_shapes_keyed_by_the_server_cause_no_false_drift_and_real_changes_are_found() {
    let mut worker = watch_only_worker();
    // Frequent resyncs: each one must find nothing and write nothing.
    worker.resync = Duration::from_millis(300);
    let h = Harness::start_with(Backend::Sqlite, worker).await;
    let t = h
        .publish("dns", "lists", "1.0.0", &[], Capabilities::default())
        .await;
    let uid = h.create(&t, "dns", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-dns", d.release_name));

    tokio::time::sleep(Duration::from_millis(500)).await;
    h.sim.reset_stats();
    let passes_before = h.get(&uid).await.updated_at;
    // At least three resyncs.
    for _ in 0..3 {
        let seen = h.get(&uid).await.updated_at;
        h.wait_until(&uid, SOON, "a resync", |d| d.updated_at > seen)
            .await;
    }
    assert!(h.get(&uid).await.updated_at > passes_before);
    let stats = h.sim.stats();
    assert_eq!(stats.writes(), 0, "resyncs wrote: {:?}", stats.by_verb);
    assert!(
        detected(&h, &uid).await.is_empty(),
        "false drift: {:?}",
        detected(&h, &uid).await
    );

    // A real change in each shape is found, named by its key, and corrected.
    edit_container(&h, &ns, &name, |c| {
        for m in c["volumeMounts"].as_array_mut().unwrap() {
            if m["mountPath"] == "/var/cache/nginx" {
                m["subPath"] = json!("elsewhere");
            }
        }
    })
    .await;
    let found = corrected(&h, &uid, 1).await;
    assert!(
        found.contains("volumeMounts[mountPath=/var/cache/nginx].subPath"),
        "{found}"
    );
    edit_container(&h, &ns, &name, |c| {
        c["ports"]
            .as_array_mut()
            .unwrap()
            .retain(|p| p["protocol"] != "UDP");
    })
    .await;
    let found = corrected(&h, &uid, 2).await;
    assert!(
        found.contains("ports[containerPort=53,protocol=UDP]"),
        "{found}"
    );
    edit_container(&h, &ns, &name, |c| {
        for e in c["env"].as_array_mut().unwrap() {
            if e["name"] == "POD_NAME" {
                e["valueFrom"]["fieldRef"]["fieldPath"] = json!("spec.nodeName");
            }
        }
    })
    .await;
    let found = corrected(&h, &uid, 3).await;
    assert!(
        found.contains("env[name=POD_NAME].valueFrom.fieldRef.fieldPath"),
        "{found}"
    );

    // Everything is back as applied.
    let live = h
        .live("apps/v1", "Deployment", Some(&ns), &name)
        .await
        .unwrap();
    let c = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["ports"].as_array().unwrap().len(), 3, "{c}");
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/var/cache/nginx" && m["subPath"] == "cache"),
        "{c}"
    );
    h.stop().await;
}

#[tokio::test]
async fn hand_edits_and_deletions_are_noticed_from_the_watches_and_corrected() {
    let h = Harness::start_with(Backend::Sqlite, watch_only_worker()).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({"replicaCount": 2})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));

    // Scaled by hand.
    merge(
        &h,
        "apps/v1",
        "Deployment",
        &ns,
        &name,
        json!({"spec": {"replicas": 7}}),
    )
    .await;
    let found = corrected(&h, &uid, 1).await;
    assert!(
        found.contains(&format!("Deployment/{name}: changed spec.replicas")),
        "{found}"
    );
    let live = h
        .live("apps/v1", "Deployment", Some(&ns), &name)
        .await
        .unwrap();
    assert_eq!(live["spec"]["replicas"], 2);
    let d = h.get(&uid).await;
    let drifted = condition(&d, "Drifted").unwrap();
    assert_eq!(drifted.status, ConditionStatus::False);
    assert_eq!(drifted.reason, "Corrected");
    assert!(drifted.message.contains(&format!("Deployment/{name}")));
    assert_eq!(d.phase, Phase::Ready);

    // A ConfigMap edited.
    merge(
        &h,
        "v1",
        "ConfigMap",
        &ns,
        &name,
        json!({"data": {"GREETING": "hacked"}}),
    )
    .await;
    let found = corrected(&h, &uid, 2).await;
    assert!(found.contains("data.GREETING"), "{found}");
    let live = h.live("v1", "ConfigMap", Some(&ns), &name).await.unwrap();
    assert_eq!(live["data"]["GREETING"], "hello");

    // A Service deleted.
    api(&h, "v1", "Service", Some(&ns))
        .await
        .delete(&name, &Default::default())
        .await
        .unwrap();
    let found = corrected(&h, &uid, 3).await;
    assert!(
        found.contains(&format!("Service/{name}: deleted")),
        "{found}"
    );
    assert!(h.live("v1", "Service", Some(&ns), &name).await.is_some());

    // The whole namespace deleted: back with its objects once it is gone.
    api(&h, "v1", "Namespace", None)
        .await
        .delete(&ns, &Default::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ns_live = h.live("v1", "Namespace", None, &ns).await;
        let restored = ns_live
            .as_ref()
            .is_some_and(|n| n["metadata"]["deletionTimestamp"].is_null())
            && h.live("v1", "ConfigMap", Some(&ns), &name).await.is_some()
            && h.live("apps/v1", "Deployment", Some(&ns), &name)
                .await
                .is_some();
        if restored {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "namespace not restored; events {:#?}",
            h.events(&uid)
                .await
                .iter()
                .map(|e| format!("{}: {}", e.action, e.message))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = detected(&h, &uid).await;
    assert!(
        all.iter()
            .any(|m| m.contains(&format!("Namespace/{ns}: deleted"))
                || m.contains(&format!("ConfigMap/{name}: deleted"))),
        "{all:#?}"
    );
    h.wait_until(&uid, SOON, "Ready again", |d| d.phase == Phase::Ready)
        .await;
    h.stop().await;
}

#[tokio::test]
async fn warn_mode_leaves_ready_at_once_naming_the_object_and_changes_nothing() {
    let h = Harness::start_with(Backend::Sqlite, watch_only_worker()).await;
    let caps = Capabilities {
        drift_mode: DriftMode::Warn,
        ..Default::default()
    };
    let t = h.publish("web", "web", "1.0.0", WEB_ALLOW, caps).await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));
    merge(
        &h,
        "v1",
        "ConfigMap",
        &ns,
        &name,
        json!({"data": {"GREETING": "hacked"}}),
    )
    .await;
    let d = h
        .wait_until(&uid, SOON, "Drifted=True from the watch", |d| {
            condition(d, "Drifted").is_some_and(|c| c.status == ConditionStatus::True)
        })
        .await;
    assert_eq!(d.phase, Phase::Degraded);
    let ready = condition(&d, "Ready").unwrap();
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "Drifted");
    assert!(
        ready.message.contains(&format!("ConfigMap/{name}")),
        "{}",
        ready.message
    );
    let live = h.live("v1", "ConfigMap", Some(&ns), &name).await.unwrap();
    assert_eq!(live["data"]["GREETING"], "hacked");
    // Put back by hand: Ready again, from the watch as well.
    merge(
        &h,
        "v1",
        "ConfigMap",
        &ns,
        &name,
        json!({"data": {"GREETING": "hello"}}),
    )
    .await;
    let d = h
        .wait_until(&uid, SOON, "in sync again", |d| d.phase == Phase::Ready)
        .await;
    assert_eq!(
        condition(&d, "Drifted").unwrap().status,
        ConditionStatus::False
    );
    h.stop().await;
}

#[tokio::test]
async fn an_ignored_field_changed_by_hand_is_neither_reported_nor_reverted() {
    let h = Harness::start_with(Backend::Sqlite, watch_only_worker()).await;
    let caps = Capabilities {
        drift_ignore: vec![DriftIgnoreRule {
            kind: Some("Deployment".into()),
            paths: vec!["/spec/replicas".into()],
        }],
        ..Default::default()
    };
    let t = h.publish("web", "web", "1.0.0", WEB_ALLOW, caps).await;
    let uid = h.create(&t, "shop", json!({"replicaCount": 2})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));
    // An autoscaler's change, then a real drift that makes Caelus re-apply.
    merge(
        &h,
        "apps/v1",
        "Deployment",
        &ns,
        &name,
        json!({"spec": {"replicas": 5}}),
    )
    .await;
    merge(
        &h,
        "v1",
        "ConfigMap",
        &ns,
        &name,
        json!({"data": {"GREETING": "hacked"}}),
    )
    .await;
    let found = corrected(&h, &uid, 1).await;
    assert!(found.contains("data.GREETING"), "{found}");
    let all = detected(&h, &uid).await;
    assert!(
        all.iter().all(|m| !m.contains("spec.replicas")),
        "an ignored field was reported: {all:#?}"
    );
    let live = h
        .live("apps/v1", "Deployment", Some(&ns), &name)
        .await
        .unwrap();
    assert_eq!(live["spec"]["replicas"], 5, "an ignored field was reverted");
    let live = h.live("v1", "ConfigMap", Some(&ns), &name).await.unwrap();
    assert_eq!(live["data"]["GREETING"], "hello");
    h.stop().await;
}

/// A cluster that restarted empty answers the watches' resumption with
/// "too large resource version": they list again, and every object that
/// vanished is reported at once (the resync is ten minutes away).
#[tokio::test]
async fn a_cluster_that_restarted_empty_is_noticed_from_the_watches_and_rebuilt() {
    let mut h = Harness::start_with(Backend::Sqlite, watch_only_worker()).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({"replicaCount": 2})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));

    h.restart_cluster_empty().await;
    assert!(h.live("v1", "Namespace", None, &ns).await.is_none());
    // Noticed from the re-listed watches (the resync is ten minutes away),
    // and rebuilt: the namespace, then the release's objects.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rebuilt = h.live("v1", "Namespace", None, &ns).await.is_some()
            && h.live("v1", "ConfigMap", Some(&ns), &name).await.is_some()
            && h.live("v1", "Service", Some(&ns), &name).await.is_some()
            && h.live("apps/v1", "Deployment", Some(&ns), &name)
                .await
                .is_some_and(|d| d["spec"]["replicas"] == 2);
        if rebuilt {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not rebuilt; events {:#?}",
            h.events(&uid)
                .await
                .iter()
                .map(|e| format!("{}: {}", e.action, e.message))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found = detected(&h, &uid).await;
    assert!(found.iter().any(|m| m.contains("deleted")), "{found:#?}");
    h.wait_until(&uid, SOON, "Ready again", |d| d.phase == Phase::Ready)
        .await;
    h.stop().await;
}
