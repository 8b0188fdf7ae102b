//! `GET /api/v1/deployments/{uid}/diff` against kubesim with a real worker:
//! what a drift pass would find, per object and field, for the owner and
//! admins only, with the template's ignore rules honoured.

mod common;

use caelus_store::Backend;
use common::Server;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn engine(sim: &kubesim::Server) -> caelus_engine::Engine {
    let config = kube::Config::new(sim.url().parse().unwrap());
    caelus_engine::Engine::new(
        kube::Client::try_from(config).unwrap(),
        caelus_engine::EngineConfig {
            installation_id: "diff-test".into(),
            health_poll_interval: Duration::from_millis(200),
            ..Default::default()
        },
    )
}

fn worker(s: &Server, sim: &kubesim::Server) -> Arc<caelus_reconciler::Reconciler> {
    Arc::new(caelus_reconciler::Reconciler {
        store: s.db.store.clone(),
        helm: s.helm.clone(),
        engine: engine(sim),
        config: caelus_reconciler::WorkerConfig {
            poll: Duration::from_millis(200),
            // Only the watches start drift checks: the diff must not depend on a resync.
            resync: Duration::from_secs(3600),
            ..Default::default()
        },
        wake: Arc::new(tokio::sync::Notify::new()),
        projector: None,
    })
}

fn kube_api(
    sim: &kubesim::Server,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client, ns, &resource)
}

/// A published version of product `slug` (the web chart) with these capabilities.
async fn publish(s: &Server, slug: &str, capabilities: Value) {
    s.post(
        "/api/v1/products",
        &s.admin,
        json!({"slug": slug, "name": slug}),
    )
    .await
    .ok(201);
    let (chart, _) = s.chart("web", "1.0.0").await;
    s.post(
        &format!("/api/v1/products/{slug}/versions"),
        &s.admin,
        json!({
            "version": "1.0.0",
            "chart": chart,
            "values_allowlist": ["replicaCount"],
            "capabilities": capabilities,
            "publish": true
        }),
    )
    .await
    .ok(201);
}

async fn wait_for(s: &Server, uid: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = s
            .get(&format!("/api/v1/deployments/{uid}"), &s.admin)
            .await
            .body
            .clone();
        if pred(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "never {what}: {d:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition<'a>(d: &'a Value, type_: &str) -> Option<&'a Value> {
    d["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn the_diff_names_each_changed_field_and_missing_object_and_honours_ignore_rules() {
    let sim = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap();
    let cluster = engine(&sim);
    let s = Server::start_with(Backend::Sqlite, |state| state.with_cluster(cluster)).await;
    // Drift mode warn: the worker reports, so the drift stays to be looked at.
    publish(&s, "shop", json!({"drift_mode": "warn"})).await;
    // The same chart, its replicas left to an autoscaler.
    publish(
        &s,
        "scaled",
        json!({"drift_mode": "warn",
               "drift_ignore": [{"kind": "Deployment", "paths": ["/spec/replicas"]}]}),
    )
    .await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let create = |product: &'static str, name: &'static str| {
        let s = &s;
        let acme = acme.clone();
        async move {
            s.post(
                "/api/v1/deployments",
                &acme,
                json!({"name": name, "product": product, "version": "1.0.0",
                       "values": {"replicaCount": 2}}),
            )
            .await
            .ok(201)
            .clone()
        }
    };
    let shop = create("shop", "shop").await;
    let scaled = create("scaled", "scaled").await;
    let uid = shop["uid"].as_str().unwrap().to_string();
    let scaled_uid = scaled["uid"].as_str().unwrap().to_string();

    // Nothing is deployed yet: nothing to compare.
    let early = s
        .get(&format!("/api/v1/deployments/{uid}/diff"), &acme)
        .await;
    let detail = early.problem(409)["detail"].as_str().unwrap();
    assert!(detail.contains("no deployed revision"), "{detail}");

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker(&s, &sim).run(stop_rx));
    let ready = |d: &Value| d["status"]["phase"] == "Ready";
    let d = wait_for(&s, &uid, "Ready", ready).await;
    wait_for(&s, &scaled_uid, "Ready", ready).await;
    let ns = d["namespace"].as_str().unwrap().to_string();
    let name = format!("{}-web", d["release"].as_str().unwrap());

    // In sync: every object there, holding what Caelus applied.
    let diff = s
        .get(&format!("/api/v1/deployments/{uid}/diff"), &acme)
        .await;
    let v = diff.ok(200);
    assert_eq!(v["in_sync"], true, "{v:#}");
    assert_eq!(v["revision"], 1);
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["drift_mode"], "warn");
    assert_eq!(v["missing"], json!([]));
    assert_eq!(v["changed"], json!([]));

    // Scaled by hand, and the ConfigMap deleted.
    let deployments = |ns: &str| kube_api(&sim, "apps", "v1", "Deployment", "deployments", ns);
    deployments(&ns)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    kube_api(&sim, "", "v1", "ConfigMap", "configmaps", &ns)
        .delete(&name, &Default::default())
        .await
        .unwrap();
    let v = s
        .get(&format!("/api/v1/deployments/{uid}/diff"), &acme)
        .await
        .ok(200)
        .clone();
    assert_eq!(v["in_sync"], false, "{v:#}");
    assert_eq!(v["missing"], json!([format!("ConfigMap/{name}")]), "{v:#}");
    assert_eq!(
        v["changed"],
        json!([{"object": format!("Deployment/{name}"),
                "changes": [{"path": "spec.replicas", "from": 5, "to": 2}]}]),
        "{v:#}"
    );
    // The worker, in warn mode, reports the same objects and changes nothing.
    let d = wait_for(&s, &uid, "Drifted naming the Deployment", |d| {
        condition(d, "Drifted").is_some_and(|c| {
            c["status"] == "True"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("spec.replicas") && m.contains("ConfigMap"))
        })
    })
    .await;
    assert_eq!(d["status"]["phase"], "Degraded", "{d:#}");
    // An admin sees the same diff; another tenant does not see the deployment.
    let admin_view = s
        .get(&format!("/api/v1/deployments/{uid}/diff"), &s.admin)
        .await;
    assert_eq!(admin_view.ok(200), &v);
    let other = s
        .get(&format!("/api/v1/deployments/{uid}/diff"), &globex)
        .await;
    let body = other.problem(404).to_string();
    assert!(
        !body.contains(&name) && !body.contains("replicas"),
        "{body}"
    );

    // Put back by hand: in sync again.
    deployments(&ns)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let v = s
        .get(&format!("/api/v1/deployments/{uid}/diff"), &acme)
        .await
        .ok(200)
        .clone();
    assert_eq!(v["changed"], json!([]), "{v:#}");
    assert_eq!(v["missing"], json!([format!("ConfigMap/{name}")]), "{v:#}");

    // An ignored field changed by hand is no difference.
    let sd = wait_for(&s, &scaled_uid, "Ready", ready).await;
    let scaled_ns = sd["namespace"].as_str().unwrap().to_string();
    let scaled_name = format!("{}-web", sd["release"].as_str().unwrap());
    deployments(&scaled_ns)
        .patch(
            &scaled_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    let v = s
        .get(&format!("/api/v1/deployments/{scaled_uid}/diff"), &acme)
        .await
        .ok(200)
        .clone();
    assert_eq!(v["in_sync"], true, "{v:#}");

    // A deleted deployment has nothing to compare.
    s.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/deployments/{scaled_uid}"),
        &acme,
        None,
    )
    .await
    .ok(202);
    s.get(&format!("/api/v1/deployments/{scaled_uid}/diff"), &acme)
        .await
        .problem(409);

    let _ = stop.send(true);
    let _ = running.await;
    sim.shutdown().await;
}

#[tokio::test]
async fn without_a_cluster_the_diff_is_unavailable_and_other_tenants_see_nothing() {
    let s = Server::start(Backend::Sqlite).await;
    s.seed_catalog().await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let d = s.create_deployment(&acme, "one").await;
    let uid = d["uid"].as_str().unwrap();
    let detail = s
        .get(&format!("/api/v1/deployments/{uid}/diff"), &acme)
        .await
        .problem(503)["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("no cluster"), "{detail}");
    // Another tenant learns nothing, not even that a cluster is missing.
    s.get(&format!("/api/v1/deployments/{uid}/diff"), &globex)
        .await
        .problem(404);
}
