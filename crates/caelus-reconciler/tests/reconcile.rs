//! The reconciler end to end on kubesim: install, upgrade with prune and keep,
//! hooks, drift, policy, deletion with finalizers, faults, worker takeover.

mod harness;

use caelus_core::status::{ConditionStatus, Phase};
use caelus_core::template::{Capabilities, DriftMode};
use caelus_store::Backend;
use harness::{Harness, fast_worker};
use serde_json::json;
use std::time::Duration;

const WEB_ALLOW: &[&str] = &["replicaCount", "ingress.*", "settings.*", "config.*"];

fn condition(
    d: &caelus_store::deployments::Deployment,
    t: &str,
) -> Option<(ConditionStatus, String)> {
    d.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status, c.message.clone()))
}

async fn install_upgrade_prune_keep_and_delete(backend: Backend) {
    let h = Harness::start(backend).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h
        .create(
            &t,
            "shop",
            json!({"replicaCount": 2, "ingress": {"enabled": true}, "settings": {"enabled": true}}),
        )
        .await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    let release = d.release_name.clone();
    assert_eq!(d.current_revision, Some(1));
    assert_eq!(condition(&d, "Ready").unwrap().0, ConditionStatus::True);
    assert!(
        d.object_health.iter().all(|o| o.health == "Healthy"),
        "{:?}",
        d.object_health
    );
    assert!(d.object_health.iter().any(|o| o.kind == "Ingress"));

    // The namespace and its isolation objects.
    let namespace = h.live("v1", "Namespace", None, &ns).await.unwrap();
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "caelus");
    assert_eq!(labels["caelus.io/deployment-uid"], uid.as_str());
    assert_eq!(labels["caelus.io/installation"], "test-install");
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    assert!(
        h.live("v1", "ResourceQuota", Some(&ns), "caelus-quota")
            .await
            .is_some()
    );
    assert!(
        h.live("v1", "LimitRange", Some(&ns), "caelus-limits")
            .await
            .is_some()
    );
    let policy = h
        .live(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&ns),
            "caelus-default-deny-ingress",
        )
        .await
        .unwrap();
    assert!(policy.to_string().contains("ingress-nginx"), "{policy}");
    let deployment = h
        .live(
            "apps/v1",
            "Deployment",
            Some(&ns),
            &format!("{release}-web"),
        )
        .await
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(
        deployment["metadata"]["managedFields"]
            .to_string()
            .contains("\"caelus\"")
    );

    // New values: a new generation and revision; the Ingress is pruned, the kept ConfigMap stays.
    h.update(&uid, json!({"replicaCount": 3})).await;
    let d = h
        .wait_until(&uid, Duration::from_secs(30), "revision 2", |d| {
            d.current_revision == Some(2) && d.phase == Phase::Ready
        })
        .await;
    assert_eq!(d.observed_generation, 2);
    assert!(
        h.live(
            "networking.k8s.io/v1",
            "Ingress",
            Some(&ns),
            &format!("{release}-web")
        )
        .await
        .is_none()
    );
    assert!(
        h.live(
            "v1",
            "ConfigMap",
            Some(&ns),
            &format!("{release}-web-settings")
        )
        .await
        .is_some()
    );
    let deployment = h
        .live(
            "apps/v1",
            "Deployment",
            Some(&ns),
            &format!("{release}-web"),
        )
        .await
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    let revisions = h.revisions(&uid).await;
    let outcomes: Vec<(i64, &str)> = revisions
        .iter()
        .map(|r| (r.number, r.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [(2, "deployed"), (1, "superseded")]);
    assert_eq!(revisions[0].requested_by, "token:test (acme)");
    assert!(
        revisions[0]
            .manifest_hash
            .as_deref()
            .unwrap()
            .starts_with("sha256:")
    );

    // Delete: objects and namespace go, the row stays as a tombstone with its history.
    h.delete(&uid).await;
    let d = h.wait_phase(&uid, Phase::Deleted).await;
    assert!(d.deleted_at.is_some());
    assert_eq!(d.due_at, None);
    assert!(h.live("v1", "Namespace", None, &ns).await.is_none());
    let actions: Vec<String> = h.events(&uid).await.into_iter().map(|e| e.action).collect();
    assert!(
        actions.contains(&"reconcile.deployed".to_string())
            && actions.contains(&"reconcile.deleted".to_string())
    );
    h.stop().await;
}

#[tokio::test]
async fn sqlite_install_upgrade_prune_keep_and_delete() {
    install_upgrade_prune_keep_and_delete(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_install_upgrade_prune_keep_and_delete() {
    install_upgrade_prune_keep_and_delete(Backend::Postgres).await;
}

#[tokio::test]
async fn hooks_run_and_are_cleaned_and_a_failing_hook_fails_the_pass_with_retries() {
    let h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish(
            "app",
            "hooks",
            "1.0.0",
            &["failMigration", "message"],
            Capabilities {
                // Without automatic rollback a failed upgrade is Failed and retried with backoff.
                rollback_on_failure: false,
                ..Default::default()
            },
        )
        .await;
    let uid = h.create(&t, "app", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    // Hooks ran in order (pre-install before post-install) and, being
    // hook-succeeded, their Jobs were deleted once they completed.
    let hooks: Vec<String> = h
        .events(&uid)
        .await
        .into_iter()
        .filter(|e| e.action == "hook.succeeded")
        .map(|e| e.message)
        .collect();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert!(
        hooks[0].contains("pre-install hook Job/") && hooks[0].contains("db-init"),
        "{hooks:?}"
    );
    assert!(
        hooks[1].contains("post-install hook Job/") && hooks[1].contains("smoke-test"),
        "{hooks:?}"
    );
    for job in ["db-init", "smoke-test"] {
        let name = format!("{}-{job}", d.release_name);
        assert!(
            h.live("batch/v1", "Job", Some(&ns), &name).await.is_none(),
            "{name} was not cleaned up"
        );
    }
    assert!(
        h.live(
            "v1",
            "ConfigMap",
            Some(&ns),
            &format!("{}-settings", d.release_name)
        )
        .await
        .is_some()
    );

    h.update(&uid, json!({"failMigration": true})).await;
    let d = h
        .wait_until(&uid, Duration::from_secs(30), "a failed upgrade", |d| {
            d.phase == Phase::Failed && d.observed_generation == 2
        })
        .await;
    let err = d.last_error.clone().unwrap();
    assert!(
        err.contains("pre-upgrade hook Job/") && err.contains("db-migrate"),
        "{err}"
    );
    assert!(d.attempts >= 1);
    assert!(d.due_at.is_some(), "a failed hook is retried");
    assert_eq!(d.current_revision, Some(1), "revision 1 is still what runs");
    // Retries back off and count up, reusing the one revision of this generation.
    let d = h
        .wait_until(&uid, Duration::from_secs(30), "a second attempt", |d| {
            d.attempts >= 2
        })
        .await;
    assert_eq!(d.phase, Phase::Failed);
    let revisions = h.revisions(&uid).await;
    assert_eq!(revisions.iter().filter(|r| r.generation == 2).count(), 1);
    assert_eq!(revisions[0].outcome.as_str(), "failed");
    let failures = h
        .events(&uid)
        .await
        .into_iter()
        .filter(|e| e.action == "reconcile.failed")
        .count();
    assert!(failures >= 2);

    // A new generation resets the retry count and succeeds.
    h.update(&uid, json!({"failMigration": false})).await;
    let d = h
        .wait_until(&uid, Duration::from_secs(30), "recovery", |d| {
            d.phase == Phase::Ready && d.observed_generation == 3
        })
        .await;
    assert_eq!(d.attempts, 0);
    assert_eq!(d.current_revision, Some(3));
    h.stop().await;
}

#[tokio::test]
async fn drift_is_corrected_and_a_quiet_resync_makes_no_write_calls() {
    let mut worker = fast_worker();
    worker.resync = Duration::from_millis(400);
    worker.resync_jitter = 0.0;
    let h = Harness::start_with(Backend::Sqlite, worker).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({"replicaCount": 2})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));

    // Quiet resyncs: several passes, not one write to the API server.
    tokio::time::sleep(Duration::from_millis(600)).await;
    h.sim.reset_stats();
    let before = h.get(&uid).await.updated_at;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = h.sim.stats();
    assert!(h.get(&uid).await.updated_at > before, "no resync pass ran");
    assert_eq!(
        stats.writes(),
        0,
        "a quiet resync wrote to the API server: {:?}",
        stats.by_verb
    );

    // Someone scales the Deployment by hand: drift is reported and corrected.
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(h.kube.clone(), &ns);
    deployments
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    let found = h
        .wait_event(&uid, "drift.detected", Duration::from_secs(10))
        .await;
    assert!(found.message.contains("spec.replicas"), "{}", found.message);
    h.wait_event(&uid, "drift.corrected", Duration::from_secs(10))
        .await;
    let live = h
        .live("apps/v1", "Deployment", Some(&ns), &name)
        .await
        .unwrap();
    assert_eq!(live["spec"]["replicas"], 2);

    // A managed object deleted by hand comes back.
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.kube.clone(), &ns);
    configmaps.delete(&name, &Default::default()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.live("v1", "ConfigMap", Some(&ns), &name).await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "deleted ConfigMap was not restored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = h.events(&uid).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "drift.detected" && e.message.contains("deleted")),
        "{events:#?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn drift_mode_warn_reports_and_leaves_the_change() {
    let mut worker = fast_worker();
    worker.resync = Duration::from_millis(300);
    let h = Harness::start_with(Backend::Sqlite, worker).await;
    let caps = Capabilities {
        drift_mode: DriftMode::Warn,
        ..Default::default()
    };
    let t = h.publish("web", "web", "1.0.0", WEB_ALLOW, caps).await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.kube.clone(), &ns);
    configmaps
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"data": {"GREETING": "hacked"}})),
        )
        .await
        .unwrap();
    let d = h
        .wait_until(&uid, Duration::from_secs(10), "Drifted=True", |d| {
            d.conditions
                .iter()
                .any(|c| c.type_ == "Drifted" && c.status == ConditionStatus::True)
        })
        .await;
    assert!(
        condition(&d, "Drifted")
            .unwrap()
            .1
            .contains("data.GREETING"),
        "{:?}",
        d.conditions
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let live = h.live("v1", "ConfigMap", Some(&ns), &name).await.unwrap();
    assert_eq!(
        live["data"]["GREETING"], "hacked",
        "warn mode must not correct"
    );
    let reports = h
        .events(&uid)
        .await
        .into_iter()
        .filter(|e| e.action == "drift.detected")
        .count();
    assert_eq!(
        reports, 1,
        "the same drift is reported once, not every resync"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_render_refused_by_policy_stalls_without_retries() {
    let h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish("rbac", "clusterrole", "1.0.0", &[], Capabilities::default())
        .await;
    let uid = h.create(&t, "rbac", json!({})).await;
    let d = h
        .wait_until(&uid, Duration::from_secs(20), "Stalled", |d| {
            d.phase == Phase::Failed
        })
        .await;
    let (status, message) = condition(&d, "Stalled").unwrap();
    assert_eq!(status, ConditionStatus::True);
    assert!(message.contains("ClusterRole"), "{message}");
    assert_eq!(d.due_at, None, "a stalled generation is not retried");
    assert!(
        h.live("v1", "Namespace", None, &d.namespace_name)
            .await
            .is_none(),
        "nothing applied"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.events(&uid)
            .await
            .iter()
            .filter(|e| e.action == "reconcile.stalled")
            .count(),
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn a_stuck_finalizer_blocks_deletion_visibly_until_removed() {
    let h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.kube.clone(), &ns);
    configmaps
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await
        .unwrap();
    h.delete(&uid).await;
    let d = h
        .wait_until(&uid, Duration::from_secs(20), "DeletionBlocked", |d| {
            d.phase == Phase::DeletionBlocked
        })
        .await;
    assert!(d.message.contains("example.com/hold"), "{}", d.message);
    assert!(h.live("v1", "Namespace", None, &ns).await.is_some());
    configmaps
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    h.wait_phase(&uid, Phase::Deleted).await;
    assert!(h.live("v1", "Namespace", None, &ns).await.is_none());
    h.stop().await;
}

#[tokio::test]
async fn deployments_converge_despite_api_errors_and_latency_without_a_hot_loop() {
    let mut worker = fast_worker();
    worker.concurrency = 4;
    let h = Harness::start_with(Backend::Sqlite, worker).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    h.sim.faults().set(kubesim::FaultConfig {
        errors: vec![kubesim::ErrorFault {
            code: 500,
            rate: Some(0.2),
            ..Default::default()
        }],
        latency: vec![kubesim::LatencyFault {
            millis: 20,
            ..Default::default()
        }],
        ..Default::default()
    });
    h.sim.reset_stats();
    let mut uids = Vec::new();
    for i in 0..6 {
        uids.push(
            h.create(&t, &format!("shop-{i}"), json!({"replicaCount": 1}))
                .await,
        );
    }
    for uid in &uids {
        h.wait_until(uid, Duration::from_secs(60), "Ready under faults", |d| {
            d.phase == Phase::Ready
        })
        .await;
    }
    let stats = h.sim.stats();
    let total: u64 = stats.by_verb.values().sum();
    // Generous bound: a hot loop would make thousands of requests.
    assert!(
        total < 2000,
        "{total} requests for 6 deployments: {:?}",
        stats.by_verb
    );
    let retried = {
        let mut n = 0;
        for uid in &uids {
            n += h
                .events(uid)
                .await
                .iter()
                .filter(|e| e.action == "reconcile.failed")
                .count();
        }
        n
    };
    eprintln!("requests: {total}, failed attempts recorded: {retried}");
    h.sim.faults().clear();
    h.stop().await;
}

#[tokio::test]
async fn a_killed_worker_s_deployment_is_taken_over_after_its_lease_expires() {
    let mut slow = fast_worker();
    slow.lease = Duration::from_secs(2);
    let mut h = Harness::start_with(Backend::Postgres, slow.clone()).await;
    // Every apply is slow, so the pass is mid-flight when the worker dies.
    h.sim.faults().set(kubesim::FaultConfig {
        latency: vec![kubesim::LatencyFault {
            verb: Some("patch".into()),
            millis: 300,
            ..Default::default()
        }],
        ..Default::default()
    });
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({})).await;
    h.wait_until(&uid, Duration::from_secs(10), "claimed", |d| {
        d.lease_owner.is_some()
    })
    .await;
    h.kill_worker(0);
    let held = h.get(&uid).await;
    h.sim.faults().clear();
    h.add_worker(slow);
    let d = h.wait_phase(&uid, Phase::Ready).await;
    assert_ne!(d.lease_owner, held.lease_owner);
    let revisions = h.revisions(&uid).await;
    assert_eq!(
        revisions.len(),
        1,
        "exactly one revision for the one generation: {revisions:?}"
    );
    assert_eq!(revisions[0].outcome.as_str(), "deployed");
    h.stop().await;
}

#[tokio::test]
async fn a_graceful_shutdown_releases_in_flight_leases_for_another_worker() {
    let mut worker = fast_worker();
    worker.lease = Duration::from_secs(60);
    worker.shutdown_grace = Duration::from_millis(100);
    let mut h = Harness::start_with(Backend::Sqlite, worker.clone()).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    // Slow applies keep the pass in flight past the shutdown grace period.
    h.sim.faults().set(kubesim::FaultConfig {
        latency: vec![kubesim::LatencyFault {
            verb: Some("patch".into()),
            millis: 400,
            ..Default::default()
        }],
        ..Default::default()
    });
    let uid = h.create(&t, "shop", json!({})).await;
    h.wait_until(&uid, Duration::from_secs(10), "claimed", |d| {
        d.lease_owner.is_some()
    })
    .await;
    h.stop_workers().await;
    let d = h.get(&uid).await;
    assert_eq!(
        d.lease_owner, None,
        "the lease must be released, not left to expire (60s)"
    );
    assert!(d.due_at.is_some());
    h.sim.faults().clear();
    h.add_worker(worker);
    h.wait_phase(&uid, Phase::Ready).await;
    h.stop().await;
}

#[tokio::test]
async fn health_lost_after_ready_is_seen_on_resync_and_recovers() {
    let mut worker = fast_worker();
    worker.resync = Duration::from_millis(300);
    let h = Harness::start_with(Backend::Sqlite, worker).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, name) = (d.namespace_name.clone(), format!("{}-web", d.release_name));
    // Someone else's change (a field Caelus never set) makes the rollout stall:
    // not drift, but the deployment is no longer healthy.
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(h.kube.clone(), &ns);
    let stall = json!({"spec": {"template": {"metadata": {"annotations": {"sim.kubesim.dev/never-ready": "true"}}}}});
    deployments
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(stall),
        )
        .await
        .unwrap();
    let d = h
        .wait_until(&uid, Duration::from_secs(15), "Degraded", |d| {
            d.phase == Phase::Degraded
        })
        .await;
    assert!(
        d.message.contains("Deployment/") && d.message.contains("2 of 3"),
        "{}",
        d.message
    );
    assert!(
        d.object_health
            .iter()
            .any(|o| o.kind == "Deployment" && o.health != "Healthy")
    );
    h.wait_event(&uid, "health.degraded", Duration::from_secs(5))
        .await;
    let unstall = json!({"spec": {"template": {"metadata": {"annotations": {"sim.kubesim.dev/never-ready": null}}}}});
    deployments
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(unstall),
        )
        .await
        .unwrap();
    h.wait_until(&uid, Duration::from_secs(15), "Ready again", |d| {
        d.phase == Phase::Ready
    })
    .await;
    h.wait_event(&uid, "health.recovered", Duration::from_secs(5))
        .await;
    h.stop().await;
}

/// Issue 11's panic scenario: a failed drift correction used to be taken for a
/// failed deploy, re-deployed the running revision with upgrade hooks, and a
/// rollback of that marked the running revision failed, so the next pass
/// panicked. A failed correction is now retried as a correction: no hooks,
/// no new revision, the running revision stays deployed.
#[tokio::test]
async fn a_failed_drift_correction_is_retried_as_a_correction_not_a_deploy() {
    let mut worker = fast_worker();
    worker.resync = Duration::from_millis(300);
    worker.resync_jitter = 0.0;
    let h = Harness::start_with(Backend::Sqlite, worker).await;
    let t = h
        .publish(
            "app",
            "hooks",
            "1.0.0",
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
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.kube.clone(), &ns);
    let name = configmaps.list(&Default::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    // The engine tries each write 3 times: the next 6 ConfigMap writes fail
    // two whole attempts, the correction and (before the fix) the re-deploy;
    // the rollback that followed then broke the release.
    h.sim.faults().set(kubesim::FaultConfig {
        errors: vec![kubesim::ErrorFault {
            verb: Some("patch".into()),
            resource: Some("configmaps".into()),
            code: 500,
            count: Some(6),
            ..Default::default()
        }],
        ..Default::default()
    });
    configmaps.delete(&name, &Default::default()).await.unwrap();
    h.wait_event(&uid, "drift.correction-failed", Duration::from_secs(20))
        .await;
    h.wait_event(&uid, "drift.corrected", Duration::from_secs(20))
        .await;
    let d = h
        .wait_until(
            &uid,
            Duration::from_secs(20),
            "Ready, correction done",
            |d| d.phase == Phase::Ready && d.failure.is_none() && d.last_error.is_none(),
        )
        .await;
    assert_eq!(d.current_revision, Some(1));
    assert!(h.live("v1", "ConfigMap", Some(&ns), &name).await.is_some());
    let revisions = h.revisions(&uid).await;
    assert_eq!(
        revisions.len(),
        1,
        "a correction made a revision: {revisions:?}"
    );
    assert_eq!(revisions[0].outcome.as_str(), "deployed");
    let events = h.events(&uid).await;
    assert!(
        !events.iter().any(|e| e.message.contains("pre-upgrade")
            || e.action == "reconcile.rolled-back"
            || e.action == "reconcile.deployed" && e.details["revision"] != 1),
        "a correction ran upgrade hooks or a deploy: {events:#?}"
    );
    h.sim.faults().clear();
    h.stop().await;
}

/// A burst of transient API errors during an upgrade is retried with backoff
/// (up to the configured count) and ends Ready on the target, never rolled back.
#[tokio::test]
async fn transient_errors_during_an_upgrade_are_retried_without_a_rollback() {
    let h = Harness::start(Backend::Sqlite).await;
    let v1 = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&v1, "shop", json!({"replicaCount": 1})).await;
    h.wait_phase(&uid, Phase::Ready).await;
    h.sim.faults().set(kubesim::FaultConfig {
        errors: vec![kubesim::ErrorFault {
            verb: Some("patch".into()),
            resource: Some("deployments".into()),
            code: 500,
            count: Some(4),
            ..Default::default()
        }],
        ..Default::default()
    });
    h.update(&uid, json!({"replicaCount": 2})).await;
    let d = h
        .wait_until(
            &uid,
            Duration::from_secs(60),
            "Ready at generation 2",
            |d| d.phase == Phase::Ready && d.observed_generation == 2,
        )
        .await;
    assert_eq!(d.current_revision, Some(2));
    let events = h.events(&uid).await;
    let failed = events
        .iter()
        .filter(|e| e.action == "reconcile.failed")
        .count();
    assert!(failed >= 1, "no transient failure was seen: {events:#?}");
    assert!(
        !events.iter().any(|e| e.action == "reconcile.rolled-back"),
        "{events:#?}"
    );
    h.sim.faults().clear();
    h.stop().await;
}

/// Hooks as `helm uninstall` and `helm test` run them (issue 11): pre-delete
/// before the objects go, post-delete after them and before the namespace,
/// both on the timeline; a `test` hook is never applied by a reconcile.
#[tokio::test]
async fn delete_hooks_run_in_order_and_test_hooks_are_never_applied() {
    let h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish(
            "app",
            "hooks",
            "1.1.0",
            &["message"],
            Capabilities::default(),
        )
        .await;
    let uid = h.create(&t, "app", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let test_pod = format!("{}-test-connection", d.release_name);
    assert!(
        h.live("v1", "Pod", Some(&d.namespace_name), &test_pod)
            .await
            .is_none(),
        "a test hook is not part of a deploy"
    );
    h.update(&uid, json!({"message": "again"})).await;
    let d = h
        .wait_until(&uid, Duration::from_secs(30), "the upgrade", |d| {
            d.phase == Phase::Ready && d.observed_generation == 2
        })
        .await;
    assert!(
        h.live("v1", "Pod", Some(&d.namespace_name), &test_pod)
            .await
            .is_none(),
        "nor of an upgrade"
    );

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
    assert!(
        hooks[0].contains("pre-delete hook Job/") && hooks[0].ends_with("-pre-delete succeeded"),
        "{hooks:?}"
    );
    assert!(
        hooks[1].contains("post-delete hook Job/") && hooks[1].ends_with("-post-delete succeeded"),
        "{hooks:?}"
    );
    assert!(
        h.live("v1", "Namespace", None, &d.namespace_name)
            .await
            .is_none()
    );
}

/// Helm's `lookup` during a render reads the deployment's own namespace and
/// nothing else (issue 11): another namespace's Secret, a list across
/// namespaces and a cluster-scoped object all look absent — also when a
/// tenant value evaluated by `tpl` asks for them.
#[tokio::test]
async fn lookups_read_the_own_namespace_only() {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    let h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish(
            "probe",
            "lookup",
            "1.0.0",
            &["note"],
            Capabilities::default(),
        )
        .await;
    // Another tenant's namespace with a Secret worth stealing.
    let namespaces: kube::Api<Namespace> = kube::Api::all(h.kube.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "victim"}})).unwrap(),
        )
        .await
        .unwrap();
    // `data` is base64: "s3cret" and "mine".
    let secret = |name: &str, token: &str| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"token": token}}))
            .unwrap()
    };
    kube::Api::<Secret>::namespaced(h.kube.clone(), "victim")
        .create(&Default::default(), &secret("stolen", "czNjcmV0"))
        .await
        .unwrap();
    let uid = h.create(&t, "probe", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    kube::Api::<Secret>::namespaced(h.kube.clone(), &d.namespace_name)
        .create(&Default::default(), &secret("given", "bWluZQ=="))
        .await
        .unwrap();
    let steal = r#"{{ dig "data" "token" "none" (lookup "v1" "Secret" "victim" "stolen") }}"#;
    h.update(&uid, json!({"note": steal})).await;
    let d = h
        .wait_until(&uid, Duration::from_secs(30), "the update", |d| {
            d.phase == Phase::Ready && d.observed_generation == 2
        })
        .await;
    let seen = h
        .live(
            "v1",
            "ConfigMap",
            Some(&d.namespace_name),
            &format!("{}-seen", d.release_name),
        )
        .await
        .unwrap();
    // Secret data as Helm's lookup returns it: base64 of "mine".
    assert_eq!(seen["data"]["own"], "bWluZQ==", "{seen}");
    assert_eq!(seen["data"]["other"], "none", "{seen}");
    assert_eq!(seen["data"]["everywhere"], "false", "{seen}");
    assert_eq!(seen["data"]["namespace"], "none", "{seen}");
    assert_eq!(seen["data"]["note"], "none", "{seen}");
}

/// `delete --keep-volumes` (issue 11): the objects go, the namespace stays
/// with its PersistentVolumeClaims (same uids) and the deployment shows
/// `Retained` listing them; `purge` removes the rest.
#[tokio::test]
async fn keep_volumes_retains_the_claims_until_a_purge() {
    use caelus_store::deployments;
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish("db", "stateful", "1.0.0", &[], Capabilities::default())
        .await;
    let uid = h.create(&t, "db", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    let claims = || async {
        kube::Api::<PersistentVolumeClaim>::namespaced(h.kube.clone(), &ns)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| (c.metadata.name.unwrap(), c.metadata.uid.unwrap()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = claims().await;
    assert!(!before.is_empty());
    {
        let mut c = h.db.store.conn().await.unwrap();
        assert!(
            deployments::set_absent_keeping(&mut c, &uid, true, caelus_store::now_ms())
                .await
                .unwrap()
        );
    }
    h.wake.notify_one();
    let d = h.wait_phase(&uid, Phase::Retained).await;
    assert_eq!(claims().await, before, "the same claims, the same uids");
    assert!(
        h.live(
            "apps/v1",
            "StatefulSet",
            Some(&ns),
            &format!("{}-stateful", d.release_name)
        )
        .await
        .is_none(),
        "the objects are gone"
    );
    for name in before.keys() {
        assert!(d.message.contains(name.as_str()), "{}", d.message);
        assert!(
            d.object_health
                .iter()
                .any(|o| &o.name == name && o.health == "Retained")
        );
    }
    // Retained rests: a later pass changes nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.get(&uid).await.phase, Phase::Retained);

    {
        let mut c = h.db.store.conn().await.unwrap();
        assert!(
            deployments::purge(&mut c, &uid, caelus_store::now_ms())
                .await
                .unwrap()
        );
    }
    h.wake.notify_one();
    h.wait_phase(&uid, Phase::Deleted).await;
    assert!(h.live("v1", "Namespace", None, &ns).await.is_none());
}

/// A chart with both kinds of claims: one of its own (a PersistentVolumeClaim
/// object in the chart) and one per replica from a StatefulSet's
/// volumeClaimTemplates; a ConfigMap records `.Release.IsInstall`.
fn claims_chart(dir: &std::path::Path) {
    let files = [
        (
            "Chart.yaml",
            "apiVersion: v2\nname: claims\nversion: 1.0.0\nappVersion: \"1\"\n",
        ),
        ("values.yaml", "replicaCount: 1\nsize: 1Gi\n"),
        (
            "templates/pvc.yaml",
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {{ .Release.Name }}-files\nspec:\n  accessModes: [\"ReadWriteOnce\"]\n  resources:\n    requests:\n      storage: {{ .Values.size }}\n",
        ),
        (
            "templates/release.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-release\ndata:\n  install: {{ .Release.IsInstall | quote }}\n",
        ),
        (
            "templates/statefulset.yaml",
            r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .Release.Name }}-db
spec:
  serviceName: {{ .Release.Name }}-db
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: db
          image: redis:7
          volumeMounts:
            - name: data
              mountPath: /data
            - name: files
              mountPath: /files
      volumes:
        - name: files
          persistentVolumeClaim:
            claimName: {{ .Release.Name }}-files
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          app.kubernetes.io/instance: {{ .Release.Name }}
      spec:
        accessModes: ["ReadWriteOnce"]
        resources:
          requests:
            storage: {{ .Values.size }}
"#,
        ),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Re-adoption (issue 11): a deployment deleted with `--keep-volumes` and
/// then restored is installed again into its kept namespace, and the chart's
/// own claim and the StatefulSet's claims are the kept ones (same uids, the
/// data still there) — checked live; the restore is an install revision.
#[tokio::test]
async fn keep_volumes_then_restore_readopts_the_same_claims() {
    use caelus_core::revision::{RevisionKind, RevisionOutcome};
    use caelus_store::deployments;
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let h = Harness::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    claims_chart(dir.path());
    let t = h
        .publish_path(
            "claims",
            dir.path(),
            "1.0.0",
            &["replicaCount"],
            Capabilities::default(),
        )
        .await;
    let uid = h.create(&t, "db", json!({"replicaCount": 2})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, release) = (d.namespace_name.clone(), d.release_name.clone());
    let api = kube::Api::<PersistentVolumeClaim>::namespaced(h.kube.clone(), &ns);
    let claims = || async {
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| (c.metadata.name.unwrap(), c.metadata.uid.unwrap()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = claims().await;
    let expected: Vec<String> = vec![
        format!("{release}-files"),
        format!("data-{release}-db-0"),
        format!("data-{release}-db-1"),
    ];
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), expected);
    // Data on the volume stands for what a restore must keep: mark a claim.
    api.patch(
        &format!("{release}-files"),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"test/data": "kept"}}})),
    )
    .await
    .unwrap();

    {
        let mut c = h.db.store.conn().await.unwrap();
        assert!(
            deployments::set_absent_keeping(&mut c, &uid, true, caelus_store::now_ms())
                .await
                .unwrap()
        );
        // A restore before the deletion finished is refused: nothing was kept yet.
        assert!(
            !deployments::restore(&mut c, &uid, &json!({}), caelus_store::now_ms())
                .await
                .unwrap()
        );
    }
    h.wake.notify_one();
    h.wait_phase(&uid, Phase::Retained).await;
    assert_eq!(claims().await, before);
    let sts = format!("{release}-db");
    let old_sts = h.live("apps/v1", "StatefulSet", Some(&ns), &sts).await;
    assert!(old_sts.is_none(), "the objects are gone");

    {
        let mut c = h.db.store.conn().await.unwrap();
        assert!(
            deployments::restore(
                &mut c,
                &uid,
                &json!({"replicaCount": 2}),
                caelus_store::now_ms()
            )
            .await
            .unwrap()
        );
        // Restoring twice is not two restores.
        assert!(
            !deployments::restore(&mut c, &uid, &json!({}), caelus_store::now_ms())
                .await
                .unwrap()
        );
    }
    h.wake.notify_one();
    let d = h.wait_phase(&uid, Phase::Ready).await;
    assert_eq!(d.namespace_name, ns);
    assert!(!d.keep_volumes);
    assert_eq!(claims().await, before, "the same claims, the same uids");
    let files = api.get(&format!("{release}-files")).await.unwrap();
    assert_eq!(
        files
            .metadata
            .annotations
            .unwrap_or_default()
            .get("test/data"),
        Some(&"kept".to_string()),
        "the kept claim itself, not a new one of the same name"
    );
    let live_sts = h
        .live("apps/v1", "StatefulSet", Some(&ns), &sts)
        .await
        .unwrap();
    assert_eq!(live_sts["status"]["readyReplicas"], 2, "{live_sts}");
    let marker = h
        .live("v1", "ConfigMap", Some(&ns), &format!("{release}-release"))
        .await
        .unwrap();
    assert_eq!(marker["data"]["install"], "true", "a restore installs");

    let revisions = h.revisions(&uid).await;
    let newest = &revisions[0];
    assert_eq!(newest.kind, RevisionKind::Install);
    assert_eq!(newest.outcome, RevisionOutcome::Deployed);
    assert_eq!(d.current_revision, Some(newest.number));
    assert_eq!(
        revisions
            .iter()
            .filter(|r| r.outcome == RevisionOutcome::Deployed)
            .count(),
        1,
        "only the restored revision runs"
    );

    // Restored, it is an ordinary deployment again: a plain delete removes all.
    h.delete(&uid).await;
    h.wait_phase(&uid, Phase::Deleted).await;
    assert!(h.live("v1", "Namespace", None, &ns).await.is_none());
}
