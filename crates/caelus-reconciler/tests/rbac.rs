//! The chart's RBAC is least privilege, judged by what Caelus actually does:
//! a worker and an orphan scanner whose only rights are the ClusterRole that
//! `deploy/chart` renders (kubesim authorizes their token as the RBAC
//! authorizer would) install, upgrade, run hooks, correct drift, write
//! projections, clean orphans (an object and a projection) and uninstall; every grant of the ClusterRole
//! is used along the way, and nothing but the orphan scan's probing lists
//! (of kinds Caelus was not granted, so cannot have created) is refused.

mod harness;

use caelus_core::status::Phase;
use caelus_core::template::Capabilities;
use caelus_engine::{Engine, EngineConfig};
use caelus_helm::RenderRequest;
use caelus_helm::render::{kind_of, name_of};
use caelus_reconciler::{OrphanScanner, ProjectorConfig, Reconciler};
use caelus_store::Backend;
use harness::{Harness, fast_worker};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::{PolicyRule, ResourceRequest};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "caelus-service-account-token";
const USER: &str = "system:serviceaccount:caelus-system:caelus";
const INSTALLATION: &str = "test-install";

/// The kinds the test charts (web, hooks) create, as the chart's
/// `rbac.templateKinds` would list them.
fn template_kinds() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["configmaps", "services"]},
        {"apiGroups": ["apps"], "resources": ["deployments"]},
        {"apiGroups": ["batch"], "resources": ["jobs"]},
    ])
}

/// The rules of the ClusterRole `deploy/chart` renders.
async fn chart_cluster_role(h: &Harness) -> Vec<PolicyRule> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/chart");
    let chart = h.helm.load_path(&dir).await.unwrap();
    let req = RenderRequest::for_revision(
        json!({"rbac": {"templateKinds": template_kinds()}}),
        "caelus",
        "caelus-system",
        1,
        "installer",
    );
    let rendered = h.helm.render(&chart, &req).await.unwrap();
    let role = rendered
        .objects
        .iter()
        .find(|o| kind_of(o) == "ClusterRole" && name_of(o) == "caelus")
        .expect("the chart renders ClusterRole/caelus");
    serde_json::from_value(role["rules"].clone()).unwrap()
}

/// Every (verb, group, resource) the rules grant.
fn grants(rules: &[PolicyRule]) -> BTreeSet<ResourceRequest> {
    let mut out = BTreeSet::new();
    for r in rules {
        for v in &r.verbs {
            for g in &r.api_groups {
                for res in &r.resources {
                    out.insert(ResourceRequest {
                        verb: v.clone(),
                        group: g.clone(),
                        resource: res.clone(),
                    });
                }
            }
        }
    }
    out
}

/// A client presenting the service account's token.
async fn restricted_client(sim: &kubesim::Server) -> kube::Client {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\n\
contexts:\n- name: sim\n  context:\n    cluster: sim\n    user: caelus\ncurrent-context: sim\n\
users:\n- name: caelus\n  user:\n    token: {TOKEN}\n",
        sim.url()
    );
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn engine(client: kube::Client) -> Engine {
    Engine::new(
        client,
        EngineConfig {
            installation_id: INSTALLATION.into(),
            health_poll_interval: Duration::from_millis(200),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn the_chart_grants_exactly_what_the_engine_uses() {
    let mut h = Harness::start(Backend::Sqlite).await;
    h.stop_workers().await;
    let rules = chart_cluster_role(&h).await;
    // The CRDs come from the chart's crds/ (installed by Helm, as cluster admin).
    engine(harness::client_for(&h.sim))
        .install_crds()
        .await
        .unwrap();
    h.sim.rbac().restrict(TOKEN, USER, rules.clone());

    let client = restricted_client(&h.sim).await;
    let restricted = engine(client);
    let projector = caelus_reconciler::Projector::new(
        h.db.store.clone(),
        restricted.clone(),
        ProjectorConfig {
            template_sync: Duration::from_millis(200),
            retry_after: Duration::from_millis(200),
            ..Default::default()
        },
    );
    h.run_worker(Arc::new(Reconciler {
        store: h.db.store.clone(),
        helm: h.helm.clone(),
        engine: restricted.clone(),
        projector: Some(projector),
        config: fast_worker(),
        wake: h.wake.clone(),
    }));

    // Install and upgrade (with a prune: web 2.0.0 drops nothing, so change values).
    let web = h
        .publish(
            "web",
            "web",
            "1.0.0",
            &["replicaCount"],
            Capabilities::default(),
        )
        .await;
    let uid = h.create(&web, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    h.update(&uid, json!({"replicaCount": 2})).await;
    h.wait_until(&uid, Duration::from_secs(30), "upgraded", |d| {
        d.phase == Phase::Ready && d.observed_generation == d.generation && d.generation >= 2
    })
    .await;

    // Hooks: Jobs before and after install and before an upgrade.
    let hooks = h
        .publish(
            "app",
            "hooks",
            "1.0.0",
            &["message"],
            Capabilities::default(),
        )
        .await;
    let app = h.create(&hooks, "app", json!({})).await;
    h.wait_phase(&app, Phase::Ready).await;
    h.update(&app, json!({"message": "again"})).await;
    h.wait_until(&app, Duration::from_secs(30), "upgraded", |d| {
        d.phase == Phase::Ready && d.observed_generation == d.generation && d.generation >= 2
    })
    .await;

    // Drift: a hand edit (by an administrator) is seen and put back.
    let (ar, _) = kube::discovery::pinned_kind(
        &h.kube,
        &kube::api::GroupVersionKind::gvk("apps", "v1", "Deployment"),
    )
    .await
    .unwrap();
    let deployments: Api<DynamicObject> = Api::namespaced_with(h.kube.clone(), &ns, &ar);
    let name = deployments.list(&Default::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    deployments
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    h.wait_event(&uid, "drift.corrected", Duration::from_secs(20))
        .await;

    // An orphan: a ConfigMap of the deployment its inventory does not list.
    let (cm_ar, _) = kube::discovery::pinned_kind(
        &h.kube,
        &kube::api::GroupVersionKind::gvk("", "v1", "ConfigMap"),
    )
    .await
    .unwrap();
    let cms: Api<DynamicObject> = Api::namespaced_with(h.kube.clone(), &ns, &cm_ar);
    let leftover: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "leftover", "labels": {
            "app.kubernetes.io/managed-by": "caelus",
            "caelus.io/deployment-uid": uid,
            "caelus.io/installation": INSTALLATION,
        }},
    }))
    .unwrap();
    cms.create(&Default::default(), &leftover).await.unwrap();
    // And the projection of a template version the database does not know.
    let ghost = caelus_engine::Projection::of_template(
        INSTALLATION,
        &caelus_engine::TemplateView {
            id: uuid::Uuid::new_v4().to_string(),
            product: "ghost".into(),
            version: "9.9.9".into(),
            chart_ref: "oci://127.0.0.1/charts/ghost:9.9.9".into(),
            chart_digest: format!("sha256:{}", "0".repeat(64)),
            values_allowlist: vec![],
            lifecycle: "published".into(),
        },
    );
    let ct_ar = kube::discovery::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("caelus.io", "v1alpha1", "CaelusTemplate"),
        "caelustemplates",
    );
    let templates: Api<DynamicObject> = Api::all_with(h.kube.clone(), &ct_ar);
    templates
        .create(
            &Default::default(),
            &serde_json::from_value(ghost.main_body()).unwrap(),
        )
        .await
        .unwrap();
    let scanner = OrphanScanner {
        store: h.db.store.clone(),
        engine: restricted.clone(),
        min_age: Duration::ZERO,
    };
    let report = scanner.clean(true, "test").await.unwrap();
    for name in ["leftover", "ghost-9.9.9"] {
        assert!(
            report.deleted.iter().any(|f| f.name == name),
            "{name}: {report:#?}"
        );
    }

    // Uninstall both.
    h.delete(&uid).await;
    h.delete(&app).await;
    h.wait_phase(&uid, Phase::Deleted).await;
    h.wait_phase(&app, Phase::Deleted).await;
    let log = h.sim.rbac().requests_of(USER);
    h.stop().await;

    // Nothing the engine needed was refused: only the orphan scan's lists of
    // kinds outside the grants, which it skips.
    let denied: Vec<&ResourceRequest> = log
        .iter()
        .filter(|(_, c)| c.denied > 0)
        .map(|(r, _)| r)
        .collect();
    assert!(denied.iter().all(|r| r.verb == "list"), "{denied:#?}");
    assert!(
        !denied.is_empty(),
        "the scan probes every kind the cluster serves"
    );

    let used: BTreeSet<ResourceRequest> = log
        .iter()
        .filter(|(_, c)| c.allowed > 0)
        .map(|(r, _)| r.clone())
        .collect();
    let granted = grants(&rules);
    let template: BTreeSet<(String, String)> = template_kinds()
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| {
            let groups: Vec<String> = serde_json::from_value(k["apiGroups"].clone()).unwrap();
            let resources: Vec<String> = serde_json::from_value(k["resources"].clone()).unwrap();
            groups
                .into_iter()
                .flat_map(move |g| resources.clone().into_iter().map(move |r| (g.clone(), r)))
        })
        .collect();
    let is_template =
        |r: &ResourceRequest| template.contains(&(r.group.clone(), r.resource.clone()));

    // Caelus's own needs (namespaces, isolation objects, projections): the
    // grants are exactly what was used.
    let fixed_granted: BTreeSet<&ResourceRequest> =
        granted.iter().filter(|r| !is_template(r)).collect();
    let fixed_used: BTreeSet<&ResourceRequest> = used.iter().filter(|r| !is_template(r)).collect();
    assert_eq!(
        fixed_granted, fixed_used,
        "granted vs used (outside templateKinds)"
    );

    // The kinds charts create get one set of verbs (any of them may be an
    // ordinary object or a hook): each kind was used, and every verb granted
    // on them was used on some.
    for (g, r) in &template {
        assert!(
            used.iter().any(|u| &u.group == g && &u.resource == r),
            "{g}/{r} granted but never used"
        );
    }
    let verbs_granted: BTreeSet<&str> = granted
        .iter()
        .filter(|r| is_template(r))
        .map(|r| r.verb.as_str())
        .collect();
    let verbs_used: BTreeSet<&str> = used
        .iter()
        .filter(|r| is_template(r))
        .map(|r| r.verb.as_str())
        .collect();
    assert_eq!(
        verbs_granted, verbs_used,
        "verbs on templateKinds: granted vs used"
    );
}
