//! Caelus's own engine installs the chart that installs Caelus
//! (`deploy/chart`) onto kubesim, upgrades it and uninstalls it, in a
//! namespace whose Pod Security admission enforces `restricted` — so every
//! Caelus pod is judged by the cluster, not only by the chart test.
//! kubesim runs no containers: its controllers make the Deployments and the
//! StatefulSet ready, bind the PVC and complete the migrations Job, after
//! admitting their Pods. What this shows is that the objects are valid and
//! settle, not that the images run.

mod common;

use std::time::Duration;

use caelus_core::template::PodSecurityLevel;
use caelus_engine::{
    ApplyRequest, Engine, EngineConfig, NamespaceTarget, UninstallRequest, UninstallStatus,
    inventory_of,
};
use caelus_helm::{HookEvent, RenderRequest, Rendered};
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

const NS: &str = "caelus-system";
const UID: &str = "caelus-self";

fn chart_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/chart")
}

/// Caelus's engine renders without a cluster to ask, so Helm's `lookup`
/// finds nothing: the bundled database's password is set, not generated.
fn values(extra: Value) -> Value {
    let mut v = json!({"postgresql": {"password": "not-generated"}});
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            v.insert(k.clone(), x.clone());
        }
    }
    v
}

async fn render(
    helm: &caelus_helm::HelmEngine,
    chart: &caelus_helm::Chart,
    values: Value,
    revision: i64,
) -> std::sync::Arc<Rendered> {
    let req = RenderRequest::for_revision(values, "caelus", NS, revision, UID);
    helm.render(chart, &req).await.unwrap()
}

fn request(r: &Rendered, revision: i64, previous: Vec<caelus_engine::ObjectRef>) -> ApplyRequest {
    // CRDs first, as Helm installs them (crds/ before any template).
    let mut objects = r.crds.clone();
    objects.extend(r.objects.iter().cloned());
    let (pre, post) = if revision == 1 {
        (HookEvent::PreInstall, HookEvent::PostInstall)
    } else {
        (HookEvent::PreUpgrade, HookEvent::PostUpgrade)
    };
    ApplyRequest {
        namespace: NS.into(),
        deployment_uid: UID.into(),
        objects,
        hooks: r.hooks.clone(),
        pre_event: pre,
        post_event: post,
        previous_inventory: previous,
        health_timeout: Duration::from_secs(30),
        namespace_created: false,
    }
}

async fn live(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Vec<Value> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, version, kind),
        plural,
    );
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

fn by_name<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items
        .iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[tokio::test]
async fn the_engine_installs_upgrades_and_uninstalls_the_installer_chart() {
    let dir = tempfile::tempdir().unwrap();
    let helm = caelus_helm::testing::engine(dir.path()).expect("libhelm_c");
    let chart = helm.load_path(&chart_dir()).await.unwrap();
    let env = common::start().await;
    let engine = Engine::new(
        common::client_for(&env.sim).await,
        EngineConfig {
            installation_id: "bootstrap".into(),
            // The chart sets its own resources; no namespace quota in the way.
            quota: None,
            limit_range: None,
            health_poll_interval: Duration::from_millis(50),
            ..Default::default()
        },
    );
    engine
        .ensure_namespace(&NamespaceTarget {
            name: NS.into(),
            deployment_uid: UID.into(),
            pod_security: PodSecurityLevel::Restricted,
        })
        .await
        .unwrap();

    // Install: CRDs, objects, the post-install migrations Job (bundled PostgreSQL).
    let first = render(&helm, &chart, values(json!({})), 1).await;
    let installed = engine
        .apply(request(&first, 1, vec![]), |_| {})
        .await
        .expect("install settles");
    assert!(
        installed.health.iter().all(|h| h.health == "Healthy"),
        "{:?}",
        installed.health
    );
    let c = &env.client;
    let crds = live(
        c,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    )
    .await;
    for name in ["caelusdeployments.caelus.io", "caelustemplates.caelus.io"] {
        by_name(&crds, name);
    }
    let deployments = live(c, "apps/v1", "Deployment", "deployments", Some(NS)).await;
    for name in ["caelus-api", "caelus-worker"] {
        let d = by_name(&deployments, name);
        assert_eq!(d["status"]["readyReplicas"], 2, "{name}: {}", d["status"]);
    }
    let sts = live(c, "apps/v1", "StatefulSet", "statefulsets", Some(NS)).await;
    assert_eq!(
        by_name(&sts, "caelus-postgresql")["status"]["readyReplicas"],
        1
    );
    let pvcs = live(
        c,
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        Some(NS),
    )
    .await;
    assert_eq!(
        by_name(&pvcs, "data-caelus-postgresql-0")["status"]["phase"],
        "Bound"
    );
    // Pods were admitted under `restricted` (kubesim's Pod Security admission refuses others).
    let pods = live(c, "v1", "Pod", "pods", Some(NS)).await;
    assert!(pods.len() >= 5, "{} pods", pods.len());
    // The migrations hook ran and, hook-succeeded, was deleted.
    let jobs = live(c, "batch/v1", "Job", "jobs", Some(NS)).await;
    assert!(
        jobs.iter()
            .all(|j| j["metadata"]["name"] != "caelus-migrate")
    );

    // Upgrade: 3 API and 3 worker replicas, Ingress on, the pre-upgrade migrations.
    let second = render(
        &helm,
        &chart,
        values(json!({"api": {"replicas": 3}, "worker": {"replicas": 3},
                      "ingress": {"enabled": true, "host": "caelus.test"}})),
        2,
    )
    .await;
    let upgraded = engine
        .apply(request(&second, 2, installed.inventory.clone()), |_| {})
        .await
        .expect("upgrade settles");
    let deployments = live(c, "apps/v1", "Deployment", "deployments", Some(NS)).await;
    for name in ["caelus-api", "caelus-worker"] {
        assert_eq!(
            by_name(&deployments, name)["status"]["readyReplicas"],
            3,
            "{name}"
        );
    }
    let ingresses = live(c, "networking.k8s.io/v1", "Ingress", "ingresses", Some(NS)).await;
    by_name(&ingresses, "caelus");
    let secret = &live(c, "v1", "Secret", "secrets", Some(NS)).await;
    assert!(
        secret
            .iter()
            .any(|s| s["metadata"]["name"] == "caelus-database")
    );

    // Uninstall: everything but the CRDs (Helm keeps CRDs too), then the namespace.
    let inventory: Vec<_> = inventory_of(&second.objects).unwrap();
    assert_eq!(
        inventory.len() + second.crds.len(),
        upgraded.inventory.len()
    );
    let mut status = engine
        .uninstall(&UninstallRequest {
            namespace: NS.into(),
            deployment_uid: UID.into(),
            inventory: inventory.clone(),
            hooks: second.hooks.clone(),
            hook_timeout: Duration::from_secs(10),
            keep_volumes: false,
        })
        .await
        .unwrap();
    for _ in 0..100 {
        if status == UninstallStatus::Gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = engine
            .uninstall(&UninstallRequest {
                namespace: NS.into(),
                deployment_uid: UID.into(),
                inventory: inventory.clone(),
                hooks: vec![],
                hook_timeout: Duration::from_secs(10),
                keep_volumes: false,
            })
            .await
            .unwrap();
    }
    assert_eq!(status, UninstallStatus::Gone);
    let cluster_roles = live(
        c,
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        None,
    )
    .await;
    assert!(
        cluster_roles
            .iter()
            .all(|r| r["metadata"]["name"] != "caelus")
    );
    let crds = live(
        c,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    )
    .await;
    by_name(&crds, "caelusdeployments.caelus.io");
}
