//! The engine against kubesim in-process: what a user of Caelus relies on.

mod common;

use std::time::Duration;

use caelus_engine::{EngineError, NamespaceTarget, Progress, UninstallRequest, UninstallStatus};
use caelus_helm::{HookDeletePolicy, HookEvent};
use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

#[tokio::test]
async fn namespace_is_created_with_its_isolation_objects_idempotently() {
    let env = start().await;
    let ns = target("d-iso");
    env.engine.ensure_namespace(&ns).await.unwrap();

    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let live = namespaces.get("d-iso").await.unwrap();
    let labels = live.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "caelus");
    assert_eq!(labels["caelus.io/deployment-uid"], "uid-d-iso");
    assert_eq!(labels["caelus.io/installation"], "test-install");
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    assert_eq!(
        labels["pod-security.kubernetes.io/enforce-version"],
        "latest"
    );

    let get = |api_version: &'static str, kind: &'static str, name: &'static str| {
        let api = dynamic(&env.client, "d-iso", api_version, kind);
        async move { serde_json::to_value(api.get(name).await.unwrap()).unwrap() }
    };
    let quota = get("v1", "ResourceQuota", "caelus-quota").await;
    assert_eq!(quota["spec"]["hard"]["pods"], "50");
    let limits = get("v1", "LimitRange", "caelus-limits").await;
    assert_eq!(limits["spec"]["limits"][0]["default"]["memory"], "512Mi");
    let policy = get(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "caelus-default-deny-ingress",
    )
    .await;
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][1]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["ingress-nginx"])
    );

    // Converging again changes nothing (no new resourceVersion).
    let rv = live.metadata.resource_version;
    env.engine.ensure_namespace(&ns).await.unwrap();
    assert_eq!(
        namespaces
            .get("d-iso")
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv
    );

    // A namespace Caelus does not own is never taken over.
    let foreign = NamespaceTarget {
        name: "default".into(),
        ..target("x")
    };
    let err = env.engine.ensure_namespace(&foreign).await.unwrap_err();
    assert!(matches!(err, EngineError::Policy(_)), "{err}");
    let default = namespaces.get("default").await.unwrap();
    assert!(
        !default
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("caelus.io/deployment-uid")
    );
    env.sim.shutdown().await;
}

fn web_set(image: &str) -> Vec<Value> {
    vec![
        configmap("web-config", json!({"greeting": "hello"})),
        service("web"),
        deployment("web", image, json!({})),
    ]
}

#[tokio::test]
async fn ordered_apply_becomes_healthy_and_reapply_is_idempotent() {
    let env = start().await;
    env.engine.ensure_namespace(&target("d-web")).await.unwrap();
    let rec = Recorder::default();
    let out = env
        .engine
        .apply(request("d-web", web_set("nginx:1.27")), rec.sink())
        .await
        .unwrap();

    let kinds: Vec<&str> = out.inventory.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "Deployment"]);
    assert!(
        out.health.iter().all(|h| h.health == "Healthy"),
        "{:?}",
        out.health
    );
    let applied: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|p| match p {
            Progress::Applied { object, .. } => Some(object.kind),
            _ => None,
        })
        .collect();
    // ConfigMap and Service go out together, the Deployment after both
    // (its pods read them when they start).
    assert_eq!(applied.len(), 3);
    assert_eq!(applied[2], "Deployment", "{applied:?}");
    assert!(matches!(
        rec.events().last(),
        Some(Progress::Health { ready: 3, total: 3 })
    ));

    // Objects carry Caelus's labels and field manager.
    let web = live(&env.client, &oref("apps/v1", "Deployment", "d-web", "web"))
        .await
        .unwrap();
    assert_eq!(
        web["metadata"]["labels"]["caelus.io/deployment-uid"],
        "uid-d-web"
    );
    assert!(
        web["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "caelus" && m["operation"] == "Apply")
    );

    // The same set again: nothing changes on the server.
    let rvs = |out: &caelus_engine::ApplyOutcome| {
        let client = env.client.clone();
        let inventory = out.inventory.clone();
        async move {
            let mut rvs = Vec::new();
            for r in &inventory {
                rvs.push(live(&client, r).await.unwrap()["metadata"]["resourceVersion"].clone());
            }
            rvs
        }
    };
    let before = rvs(&out).await;
    let again = env
        .engine
        .apply(request("d-web", web_set("nginx:1.27")), |_| {})
        .await
        .unwrap();
    assert_eq!(again.inventory, out.inventory);
    assert_eq!(rvs(&again).await, before);

    // An upgrade (new image) rolls out and is healthy at the new generation.
    let mut req = request("d-web", web_set("nginx:1.28"));
    req.previous_inventory = out.inventory.clone();
    let upgraded = env.engine.apply(req, |_| {}).await.unwrap();
    assert!(upgraded.health.iter().all(|h| h.health == "Healthy"));
    let web = live(&env.client, &oref("apps/v1", "Deployment", "d-web", "web"))
        .await
        .unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    assert_eq!(
        web["status"]["observedGeneration"],
        web["metadata"]["generation"]
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn objects_dropped_from_the_render_are_pruned_unless_kept() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-prune"))
        .await
        .unwrap();
    let mut kept = configmap("keep-me", json!({"a": "1"}));
    kept["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
    let first = vec![
        configmap("stays", json!({})),
        configmap("goes", json!({})),
        kept,
        deployment("worker", "busybox", json!({})),
    ];
    let out1 = env
        .engine
        .apply(request("d-prune", first.clone()), |_| {})
        .await
        .unwrap();

    assert_eq!(out1.inventory.len(), 4);
    // The inventory as the reconciler computes it from rendered objects
    // (no namespaces) after a failed pass works as well as the engine's.
    let mut req = request("d-prune", vec![configmap("stays", json!({}))]);
    req.previous_inventory = caelus_engine::inventory_of(&first).unwrap();
    assert!(req.previous_inventory.iter().all(|r| r.namespace.is_none()));
    let rec = Recorder::default();
    let out2 = env.engine.apply(req, rec.sink()).await.unwrap();

    let names =
        |v: &[caelus_engine::ObjectRef]| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    // Reverse install order: the Deployment before the ConfigMap.
    assert_eq!(names(&out2.pruned), ["worker", "goes"]);
    assert_eq!(names(&out2.kept), ["keep-me"]);
    assert_eq!(names(&out2.inventory), ["stays"]);
    let at = |kind: &str, name: &str| {
        let api_version = if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        };
        oref(api_version, kind, "d-prune", name)
    };
    assert!(live(&env.client, &at("ConfigMap", "goes")).await.is_none());
    assert!(
        live(&env.client, &at("Deployment", "worker"))
            .await
            .is_none()
    );
    assert!(
        live(&env.client, &at("ConfigMap", "keep-me"))
            .await
            .is_some()
    );
    assert!(live(&env.client, &at("ConfigMap", "stays")).await.is_some());
    assert!(
        rec.events()
            .iter()
            .any(|p| matches!(p, Progress::Kept { object } if object.name == "keep-me"))
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn hooks_run_in_weight_order_and_are_cleaned_per_policy() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-hooks"))
        .await
        .unwrap();
    let mut req = request("d-hooks", vec![configmap("app", json!({}))]);
    req.hooks = vec![
        hook_job(
            "migrate",
            HookEvent::PreInstall,
            5,
            vec![HookDeletePolicy::HookSucceeded],
            false,
        ),
        hook_job(
            "backup",
            HookEvent::PreInstall,
            -1,
            vec![HookDeletePolicy::BeforeHookCreation],
            false,
        ),
        hook_job(
            "smoke",
            HookEvent::PostInstall,
            0,
            vec![HookDeletePolicy::BeforeHookCreation],
            false,
        ),
        hook_job(
            "not-now",
            HookEvent::PreUpgrade,
            0,
            vec![HookDeletePolicy::BeforeHookCreation],
            false,
        ),
    ];
    let rec = Recorder::default();
    env.engine.apply(req.clone(), rec.sink()).await.unwrap();

    let steps: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|p| match p {
            Progress::HookSucceeded { event, name, .. } => Some(format!("{event} {name}")),
            Progress::Applied { object, .. } => Some(format!("apply {}", object.name)),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            "pre-install backup",
            "pre-install migrate",
            "apply app",
            "post-install smoke"
        ]
    );
    let job = |name: &str| oref("batch/v1", "Job", "d-hooks", name);
    // hook-succeeded: deleted once done; before-hook-creation: left until next time.
    assert!(live(&env.client, &job("migrate")).await.is_none());
    let backup = live(&env.client, &job("backup")).await.unwrap();
    assert!(live(&env.client, &job("not-now")).await.is_none());

    // Next run: the previous `backup` Job is replaced, not reused.
    env.engine.apply(req, |_| {}).await.unwrap();
    let again = live(&env.client, &job("backup")).await.unwrap();
    assert_ne!(again["metadata"]["uid"], backup["metadata"]["uid"]);
    env.sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_hook_fails_the_apply_with_its_message() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-fail"))
        .await
        .unwrap();
    let mut req = request("d-fail", vec![configmap("app", json!({}))]);
    req.hooks = vec![
        hook_job(
            "db-migrate",
            HookEvent::PreInstall,
            0,
            vec![HookDeletePolicy::BeforeHookCreation],
            true,
        ),
        hook_job(
            "cleanup",
            HookEvent::PreInstall,
            1,
            vec![HookDeletePolicy::HookFailed],
            true,
        ),
    ];
    let err = env.engine.apply(req.clone(), |_| {}).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "pre-install hook Job/db-migrate failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
    );
    assert!(!err.is_transient());
    // Nothing after a failed pre-hook is applied.
    assert!(
        live(&env.client, &oref("v1", "ConfigMap", "d-fail", "app"))
            .await
            .is_none()
    );
    // The failed Job stays for inspection (no hook-failed policy) ...
    assert!(
        live(
            &env.client,
            &oref("batch/v1", "Job", "d-fail", "db-migrate")
        )
        .await
        .is_some()
    );

    // ... while a hook-failed Job is deleted once it fails.
    req.hooks.remove(0);
    let err = env.engine.apply(req, |_| {}).await.unwrap_err();
    assert!(
        matches!(err, EngineError::HookFailed { ref name, .. } if name == "cleanup"),
        "{err}"
    );
    assert!(
        live(&env.client, &oref("batch/v1", "Job", "d-fail", "cleanup"))
            .await
            .is_none()
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn health_timeout_names_the_objects_that_never_became_ready() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-slow"))
        .await
        .unwrap();
    let objects = vec![
        configmap("fine", json!({})),
        deployment("stuck", "nginx", json!({kubesim::NEVER_READY: "true"})),
    ];
    let mut req = request("d-slow", objects);
    req.health_timeout = Duration::from_millis(600);
    let err = env.engine.apply(req, |_| {}).await.unwrap_err();
    match &err {
        EngineError::HealthTimeout {
            unhealthy, health, ..
        } => {
            assert_eq!(unhealthy.len(), 1);
            assert_eq!(
                (unhealthy[0].kind.as_str(), unhealthy[0].name.as_str()),
                ("Deployment", "stuck")
            );
            assert_eq!(unhealthy[0].message, "0 of 2 updated replicas available");
            assert_eq!(health.len(), 2);
        }
        other => panic!("expected a health timeout, got {other}"),
    }
    assert_eq!(
        err.to_string(),
        "not healthy after 600ms: Deployment/stuck Progressing (0 of 2 updated replicas available)"
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn drift_names_changed_fields_and_deleted_objects() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-drift"))
        .await
        .unwrap();
    let objects = web_set("nginx:1.27");
    env.engine
        .apply(request("d-drift", objects.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!(
        env.engine.detect_drift("d-drift", &objects).await.unwrap(),
        vec![]
    );

    // Let the watches warm up, then cut them: they resume on their own.
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.sim.faults().drop_watches_now();

    // Someone edits a managed field and deletes an object by hand.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "d-drift");
    cms.patch(
        "web-config",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"greeting": "hacked", "extra": "x"}})),
    )
    .await
    .unwrap();
    dynamic(&env.client, "d-drift", "v1", "Service")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();

    // The shared watch delivers the edits within moments.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let drifts = loop {
        let drifts = env.engine.detect_drift("d-drift", &objects).await.unwrap();
        if drifts.len() == 2 || tokio::time::Instant::now() > deadline {
            break drifts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(drifts.len(), 2, "{drifts:?}");
    assert_eq!(drifts[0].object.name, "web-config");
    assert!(!drifts[0].missing);
    assert_eq!(drifts[0].fields, ["data.greeting"]);
    assert_eq!(
        (drifts[1].object.kind.as_str(), drifts[1].missing),
        ("Service", true)
    );

    // Re-applying corrects both.
    env.engine
        .apply(request("d-drift", objects.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!(
        env.engine.detect_drift("d-drift", &objects).await.unwrap(),
        vec![]
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn a_quiet_drift_check_sends_no_requests_once_the_watches_are_warm() {
    let env = start().await;
    let mut sets = Vec::new();
    for i in 0..3 {
        let ns = format!("d-quiet-{i}");
        env.engine.ensure_namespace(&target(&ns)).await.unwrap();
        let objects = web_set("nginx:1.27");
        env.engine
            .apply(request(&ns, objects.clone()), |_| {})
            .await
            .unwrap();
        sets.push((ns, objects));
    }
    // The first check starts one watch per kind (shared by all namespaces).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        env.sim.reset_stats();
        for (ns, objects) in &sets {
            let isolation = env.engine.namespace_drift(&target(ns)).await.unwrap();
            assert!(isolation.is_empty(), "{isolation:?}");
            assert!(
                env.engine
                    .detect_drift(ns, objects)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let stats = env.sim.stats();
        assert_eq!(stats.writes(), 0, "drift checks never write: {stats:?}");
        if stats.total == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "watch caches never warmed: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.sim.shutdown().await;
}

/// A rollout is followed through the shared watch, as Helm's `wait=watcher`
/// follows it: once the kind's watch is warm, waiting for a changed
/// Deployment to roll out reads nothing from the API server and ends when
/// the controller reports, not at the next poll.
#[tokio::test]
async fn a_rollout_is_followed_through_the_watch_not_by_polling() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-roll"))
        .await
        .unwrap();
    let first = web_set("nginx:1.27");
    env.engine
        .apply(request("d-roll", first.clone()), |_| {})
        .await
        .unwrap();
    // Warm: a drift check answers from the caches alone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        env.sim.reset_stats();
        env.engine.detect_drift("d-roll", &first).await.unwrap();
        if env.sim.stats().total == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "watch caches never warmed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    env.sim.reset_stats();
    let out = env
        .engine
        .apply(request("d-roll", web_set("nginx:1.28")), |_| {})
        .await
        .unwrap();
    assert!(
        out.health.iter().all(|h| h.health == "Healthy"),
        "{:?}",
        out.health
    );
    let stats = env.sim.stats();
    // One ownership read of each object before it is written (what is
    // not labelled as Caelus's is not in the caches); none for health.
    for resource in ["configmaps", "services", "deployments"] {
        assert_eq!(stats.verb_resource("get", resource), 1, "{stats:?}");
    }
    assert_eq!(stats.verb("get"), 3, "{stats:?}");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn uninstall_removes_everything_and_the_namespace() {
    let env = start().await;
    env.engine.ensure_namespace(&target("d-bye")).await.unwrap();
    let out = env
        .engine
        .apply(request("d-bye", web_set("nginx:1.27")), |_| {})
        .await
        .unwrap();
    let req = UninstallRequest {
        namespace: "d-bye".into(),
        deployment_uid: "uid-d-bye".into(),
        inventory: out.inventory,
        hooks: vec![hook_job(
            "farewell",
            HookEvent::PreDelete,
            0,
            vec![HookDeletePolicy::HookSucceeded],
            false,
        )],
        hook_timeout: Duration::from_secs(5),
        keep_volumes: false,
    };
    assert_eq!(
        env.engine.uninstall(&req).await.unwrap(),
        UninstallStatus::Gone
    );
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    assert!(namespaces.get_opt("d-bye").await.unwrap().is_none());
    // Idempotent: asking again reports the same.
    assert_eq!(
        env.engine.uninstall(&req).await.unwrap(),
        UninstallStatus::Gone
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn a_stuck_finalizer_blocks_deletion_visibly_until_removed() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-stuck"))
        .await
        .unwrap();
    let mut held = configmap("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let out = env
        .engine
        .apply(request("d-stuck", vec![held]), |_| {})
        .await
        .unwrap();
    let req = UninstallRequest {
        namespace: "d-stuck".into(),
        deployment_uid: "uid-d-stuck".into(),
        inventory: out.inventory,
        hooks: vec![],
        hook_timeout: Duration::from_secs(5),
        keep_volumes: false,
    };
    let status = env.engine.uninstall(&req).await.unwrap();
    let UninstallStatus::Terminating { message } = status else {
        panic!("expected Terminating, got {status:?}");
    };
    assert!(
        message.contains("example.com/hold in 1 resource instances"),
        "{message}"
    );

    // Caelus never strips it; a human does, then the namespace goes.
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "d-stuck");
    let cm = cms.get("held").await.unwrap();
    assert_eq!(
        cm.metadata.finalizers.as_deref(),
        Some(&["example.com/hold".to_string()][..])
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match env.engine.uninstall(&req).await.unwrap() {
            UninstallStatus::Gone => break,
            UninstallStatus::Terminating { message } => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still terminating: {message}"
                );
            }
            other => panic!("volumes were not asked to be kept: {other:?}"),
        }
    }
    env.sim.shutdown().await;
}

#[tokio::test]
async fn transient_api_errors_are_retried_then_reported_as_transient() {
    let env = start().await;
    env.engine
        .ensure_namespace(&target("d-faults"))
        .await
        .unwrap();
    let fault = |count| kubesim::ErrorFault {
        verb: Some("patch".into()),
        resource: Some("configmaps".into()),
        code: 500,
        count,
        ..Default::default()
    };
    // One failed request is absorbed by the engine's own short retry.
    env.sim.faults().add_error(fault(Some(1)));
    env.engine
        .apply(request("d-faults", web_set("nginx:1.27")), |_| {})
        .await
        .unwrap();

    // A lasting outage fails the pass with a transient error naming the object.
    env.sim.faults().clear();
    env.sim.faults().add_error(fault(None));
    let err = env
        .engine
        .apply(request("d-faults", web_set("nginx:1.27")), |_| {})
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .starts_with("apply ConfigMap/web-config in d-faults: "),
        "{err}"
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn a_custom_resource_applies_after_its_crd_in_the_same_set() {
    let env = start().await;
    env.engine.ensure_namespace(&target("d-crd")).await.unwrap();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let out = env
        .engine
        .apply(request("d-crd", vec![crd, widget]), |_| {})
        .await
        .unwrap();
    let kinds: Vec<(&str, Option<&str>)> = out
        .inventory
        .iter()
        .map(|r| (r.kind.as_str(), r.namespace.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("CustomResourceDefinition", None),
            ("Widget", Some("d-crd"))
        ]
    );
    assert!(
        out.health.iter().all(|h| h.health == "Healthy"),
        "{:?}",
        out.health
    );

    // A kind nobody defines fails before anything is written.
    let gadget =
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}});
    let err = env
        .engine
        .apply(
            request("d-crd", vec![configmap("before", json!({})), gadget]),
            |_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown kind Gadget in example.com/v1: the cluster does not serve it"
    );
    assert!(
        live(&env.client, &oref("v1", "ConfigMap", "d-crd", "before"))
            .await
            .is_none()
    );
    env.sim.shutdown().await;
}

#[tokio::test]
async fn a_refused_object_fails_with_the_api_servers_message() {
    let env = start().await;
    env.engine.ensure_namespace(&target("d-bad")).await.unwrap();
    // A Job's pod template is immutable: a chart that changes it on upgrade
    // is refused by the API server, and the error says so.
    let job = |image: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
               "spec": {"template": {"spec": {"restartPolicy": "Never",
                   "containers": [{"name": "run", "image": image}]}}}})
    };
    env.engine
        .apply(request("d-bad", vec![job("busybox")]), |_| {})
        .await
        .unwrap();
    let err = env
        .engine
        .apply(request("d-bad", vec![job("alpine")]), |_| {})
        .await
        .unwrap_err();
    match &err {
        EngineError::Object { verb, code, .. } => {
            assert_eq!((*verb, *code), ("apply", 422), "{err}")
        }
        other => panic!("expected an object error, got {other}"),
    }
    let text = err.to_string();
    assert!(text.starts_with("apply Job/once in d-bad: "), "{text}");
    assert!(text.contains("field is immutable"), "{text}");
    assert!(!err.is_transient());
    env.sim.shutdown().await;
}

/// The reconciler spawns engine calls on a multi-threaded runtime: their
/// futures must be `Send`. Checked at compile time.
#[allow(dead_code)]
fn engine_futures_are_send(
    engine: caelus_engine::Engine,
    req: caelus_engine::ApplyRequest,
    uninstall: UninstallRequest,
) {
    fn send<T: Send>(_: T) {}
    let ns = target("x");
    send(engine.ensure_namespace(&ns));
    send(engine.namespace_drift(&ns));
    send(engine.apply(req, |_| {}));
    send(engine.detect_drift("x", &[]));
    send(engine.uninstall(&uninstall));
}
