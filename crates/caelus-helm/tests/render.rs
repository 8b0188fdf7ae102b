//! Rendering each test chart with the real library.

use std::sync::Arc;

use caelus_helm::render::{DEPLOYMENT_UID_LABEL, MANAGED_BY_LABEL, kind_of, name_of};
use caelus_helm::testing::chart_dir;
use caelus_helm::{
    Chart, HelmEngine, HelmError, HookDeletePolicy, HookEvent, RenderRequest, Rendered,
    RevisionKind,
};
use serde_json::{Value, json};

fn setup() -> (tempfile::TempDir, HelmEngine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = caelus_helm::testing::engine(dir.path())
        .expect("libhelm_c loads; run scripts/install-helm-lib");
    (dir, engine)
}

fn request(values: Value, kind: RevisionKind, revision: u32) -> RenderRequest {
    RenderRequest {
        values,
        release_name: "shop".into(),
        namespace: "team-a".into(),
        revision,
        kind,
        kube_version: Some("v1.32.0".into()),
        deployment_uid: "3f1c2b7e-0000-4000-8000-000000000001".into(),
        lookup: None,
    }
}

async fn load(engine: &HelmEngine, name: &str, version: &str) -> Chart {
    engine.load_path(&chart_dir(name, version)).await.unwrap()
}

async fn render(engine: &HelmEngine, name: &str, version: &str, values: Value) -> Arc<Rendered> {
    let chart = load(engine, name, version).await;
    engine
        .render(&chart, &request(values, RevisionKind::Install, 1))
        .await
        .unwrap()
}

fn summary(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .map(|o| (kind_of(o).to_string(), name_of(o).to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn assert_labelled(r: &Rendered) {
    let all = r
        .objects
        .iter()
        .chain(r.crds.iter())
        .chain(r.hooks.iter().map(|h| &h.object));
    for o in all {
        let labels = &o["metadata"]["labels"];
        assert_eq!(labels[MANAGED_BY_LABEL], "caelus", "{o}");
        assert_eq!(
            labels[DEPLOYMENT_UID_LABEL], "3f1c2b7e-0000-4000-8000-000000000001",
            "{o}"
        );
    }
}

#[tokio::test]
async fn web_renders_in_install_order_with_notes() {
    let (_d, engine) = setup();
    let r = render(&engine, "web", "1.0.0", json!({})).await;
    assert_eq!(
        summary(&r.objects),
        pairs(&[
            ("ConfigMap", "shop-web"),
            ("Service", "shop-web"),
            ("Deployment", "shop-web")
        ])
    );
    assert!(r.hooks.is_empty());
    assert!(r.crds.is_empty());
    assert_labelled(&r);
    let notes = r.notes.as_deref().unwrap();
    assert!(notes.contains("namespace team-a"), "{notes}");
    let deploy = &r.objects[2];
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25.0"
    );
    // Pod template labels are the chart's own; only object metadata is relabelled.
    assert!(
        deploy["spec"]["template"]["metadata"]["labels"]
            .get(MANAGED_BY_LABEL)
            .is_none()
    );
    assert!(r.manifest_hash.starts_with("sha256:"));
}

#[tokio::test]
async fn web_ingress_is_optional_and_values_apply() {
    let (_d, engine) = setup();
    let r = render(
        &engine,
        "web",
        "1.0.0",
        json!({"ingress": {"enabled": true, "host": "shop.example.com"}, "replicaCount": 3}),
    )
    .await;
    let kinds: Vec<&str> = r.objects.iter().map(kind_of).collect();
    assert_eq!(kinds, vec!["ConfigMap", "Service", "Deployment", "Ingress"]);
    assert_eq!(r.objects[3]["spec"]["rules"][0]["host"], "shop.example.com");
    assert_eq!(r.objects[2]["spec"]["replicas"], 3);
}

#[tokio::test]
async fn web_2_adds_a_config_key() {
    let (_d, engine) = setup();
    let v1 = render(&engine, "web", "1.0.0", json!({})).await;
    let v2 = render(&engine, "web", "2.0.0", json!({})).await;
    assert_eq!(summary(&v1.objects), summary(&v2.objects));
    assert!(v1.objects[0]["data"].get("FAREWELL").is_none());
    assert_eq!(v2.objects[0]["data"]["FAREWELL"], "goodbye");
    assert_ne!(v1.manifest_hash, v2.manifest_hash);
}

#[tokio::test]
async fn stateful_has_claim_templates_and_headless_service() {
    let (_d, engine) = setup();
    for version in ["1.0.0", "2.0.0"] {
        let r = render(
            &engine,
            "stateful",
            version,
            json!({"persistence": {"size": "5Gi"}}),
        )
        .await;
        assert_eq!(
            summary(&r.objects),
            pairs(&[
                ("Service", "shop-stateful-headless"),
                ("StatefulSet", "shop-stateful")
            ])
        );
        assert_eq!(r.objects[0]["spec"]["clusterIP"], "None");
        let sts = &r.objects[1];
        assert_eq!(sts["spec"]["serviceName"], "shop-stateful-headless");
        let claim = &sts["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["metadata"]["name"], "data");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
        let env = &sts["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env.is_array(), version == "2.0.0");
    }
}

#[tokio::test]
async fn hooks_are_split_out_with_events_weights_and_policies() {
    let (_d, engine) = setup();
    let chart = load(&engine, "hooks", "1.0.0").await;
    let r = engine
        .render(&chart, &request(json!({}), RevisionKind::Install, 1))
        .await
        .unwrap();
    assert_eq!(
        summary(&r.objects),
        pairs(&[("ConfigMap", "shop-settings")])
    );
    let hooks: Vec<(&str, Vec<HookEvent>, i32)> = r
        .hooks
        .iter()
        .map(|h| (h.name.as_str(), h.events.clone(), h.weight))
        .collect();
    assert_eq!(
        hooks,
        vec![
            ("shop-db-init", vec![HookEvent::PreInstall], -5),
            ("shop-db-migrate", vec![HookEvent::PreUpgrade], 0),
            ("shop-smoke-test", vec![HookEvent::PostInstall], 5),
        ]
    );
    assert_eq!(
        r.hooks[0].delete_policies,
        vec![HookDeletePolicy::HookSucceeded]
    );
    assert_eq!(
        r.hooks[1].delete_policies,
        vec![
            HookDeletePolicy::BeforeHookCreation,
            HookDeletePolicy::HookSucceeded
        ]
    );
    assert!(r.hooks.iter().all(|h| h.kind == "Job"));
    assert_eq!(r.hooks_for(HookEvent::PreInstall).count(), 1);
    assert_labelled(&r);

    // An upgrade sees its revision number.
    let up = engine
        .render(&chart, &request(json!({}), RevisionKind::Upgrade, 7))
        .await
        .unwrap();
    let migrate = up.hooks_for(HookEvent::PreUpgrade).next().unwrap();
    let cmd = migrate.object["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap();
    assert_eq!(cmd, "echo migrating 7");
}

#[tokio::test]
async fn parent_renders_subchart_and_crds_of_both() {
    let (_d, engine) = setup();
    let r = render(&engine, "parent", "1.0.0", json!({})).await;
    assert_eq!(
        summary(&r.objects),
        pairs(&[
            ("ConfigMap", "shop-child"),
            ("Deployment", "shop-parent"),
            ("Widget", "shop-widget")
        ])
    );
    assert_eq!(r.objects[0]["data"]["message"], "from the parent");
    assert_eq!(r.objects[0]["data"]["environment"], "test");
    let crds: Vec<&str> = r.crds.iter().map(name_of).collect();
    assert!(
        crds.contains(&"widgets.example.com") && crds.contains(&"gadgets.example.com"),
        "{crds:?}"
    );
    assert_eq!(
        r.notes.as_deref().map(str::trim),
        Some("parent 1.0.0 installed as shop.")
    );
    assert_labelled(&r);

    // The dependency's condition turns it off.
    let off = render(
        &engine,
        "parent",
        "1.0.0",
        json!({"child": {"enabled": false}}),
    )
    .await;
    assert!(summary(&off.objects).iter().all(|(k, _)| k != "ConfigMap"));

    let chart = load(&engine, "parent", "1.0.0").await;
    let info = engine.chart_info(&chart).await.unwrap();
    assert_eq!(info.dependencies, vec!["child@0.1.0".to_string()]);
    assert_eq!(info.crds.len(), 2);
}

#[tokio::test]
async fn clusterrole_renders_cluster_scoped_rbac() {
    let (_d, engine) = setup();
    let r = render(&engine, "clusterrole", "1.0.0", json!({})).await;
    assert_eq!(
        summary(&r.objects),
        pairs(&[
            ("ServiceAccount", "shop-reader"),
            ("ClusterRole", "team-a-shop-reader"),
            ("ClusterRoleBinding", "team-a-shop-reader"),
        ])
    );
}

#[tokio::test]
async fn schema_validation_reports_helms_message_with_the_path() {
    let (_d, engine) = setup();
    let chart = load(&engine, "schema", "1.0.0").await;
    engine.validate_values(&chart, &json!({})).await.unwrap();
    engine
        .validate_values(&chart, &json!({"replicaCount": 3, "mode": "large"}))
        .await
        .unwrap();

    let err = engine
        .validate_values(&chart, &json!({"replicaCount": 0}))
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::InvalidValues { .. }), "{err:?}");
    assert!(err.is_client_error());
    let msg = err.to_string();
    assert!(
        msg.contains("/replicaCount") && msg.contains("minimum"),
        "{msg}"
    );

    let err = engine
        .validate_values(&chart, &json!({"image": {"extra": true}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/image"), "{err}");

    // Rendering enforces the schema too.
    let err = engine
        .render(
            &chart,
            &request(json!({"mode": "huge"}), RevisionKind::Install, 1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::InvalidValues { .. }), "{err:?}");
    assert!(err.to_string().contains("/mode"), "{err}");

    // Charts without a schema accept anything.
    let web = load(&engine, "web", "1.0.0").await;
    engine
        .validate_values(&web, &json!({"anything": [1, 2]}))
        .await
        .unwrap();
}

#[tokio::test]
async fn renders_of_archives_are_cached() {
    let (dir, engine) = setup();
    let chart = load(&engine, "web", "1.0.0").await;
    let archive = engine.package(&chart, dir.path()).await.unwrap();
    let chart = engine.load_path(&archive).await.unwrap();
    let req = request(json!({"replicaCount": 2}), RevisionKind::Install, 1);
    let a = engine.render(&chart, &req).await.unwrap();
    let b = engine.render(&chart, &req).await.unwrap();
    assert!(Arc::ptr_eq(&a, &b), "second render is a cache hit");
    let stats = engine.cache_stats();
    assert_eq!((stats.render_hits, stats.render_misses), (1, 1));

    // Any input change misses; equal values in another key order hit.
    let mut other = req.clone();
    other.kind = RevisionKind::Upgrade;
    other.revision = 2;
    let c = engine.render(&chart, &other).await.unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(
        a.manifest_hash, c.manifest_hash,
        "web does not use revision fields"
    );
    let mut reordered = req.clone();
    reordered.values = serde_json::from_str(r#"{"replicaCount": 2}"#).unwrap();
    engine.render(&chart, &reordered).await.unwrap();
    assert_eq!(engine.cache_stats().render_hits, 2);
}

#[tokio::test]
async fn template_errors_are_render_errors() {
    let (dir, engine) = setup();
    let src = dir.path().join("broken");
    std::fs::create_dir_all(src.join("templates")).unwrap();
    std::fs::write(
        src.join("Chart.yaml"),
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        src.join("templates/cm.yaml"),
        "{{ required \"need a name\" .Values.name }}\n",
    )
    .unwrap();
    let chart = engine.load_path(&src).await.unwrap();
    let err = engine
        .render(&chart, &request(json!({}), RevisionKind::Install, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::Render { .. }), "{err:?}");
    assert!(err.to_string().contains("need a name"), "{err}");

    let err = engine
        .load_path(&dir.path().join("missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::ChartLoad { .. }), "{err:?}");
}
