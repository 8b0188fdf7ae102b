//! Field ownership as the API server keeps it, driven by kube-rs: co-ownership
//! of identical applied values, client writes to `managedFields`, and the
//! patch types custom resources accept.

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn client(s: &common::Sim) -> kube::Client {
    kube::Client::try_from(kube::Config::new(s.sim.url().parse().unwrap())).unwrap()
}

fn managers(cm: &ConfigMap) -> Vec<(String, String, Value)> {
    cm.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
                e.fields_v1
                    .as_ref()
                    .map(|f| f.0.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn apply_cm(data: Value) -> Patch<Value> {
    Patch::Apply(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data}),
    )
}

/// https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts:
/// appliers that set a field to the same value share it; it stays until its
/// last owner lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_applied_values_are_co_owned() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&s), "default");
    let a = PatchParams::apply("team-a");
    let b = PatchParams::apply("team-b");

    let first = cms
        .patch("shared", &a, &apply_cm(json!({"x": "1", "y": "1"})))
        .await
        .unwrap();
    // The same value from another manager: no conflict, and b becomes a co-owner.
    let second = cms
        .patch("shared", &b, &apply_cm(json!({"x": "1"})))
        .await
        .unwrap();
    assert_ne!(
        first.metadata.resource_version, second.metadata.resource_version,
        "gaining a co-owner is a write"
    );
    let owners = managers(&second);
    let owns_x = |m: &str| {
        owners
            .iter()
            .any(|(n, op, f)| n == m && op == "Apply" && f["f:data"]["f:x"].is_object())
    };
    assert!(owns_x("team-a") && owns_x("team-b"), "{owners:?}");

    // A different value from b while a still owns x conflicts.
    let err = cms
        .patch("shared", &b, &apply_cm(json!({"x": "2"})))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(st) => {
            assert_eq!(st.code, 409);
            assert!(st.message.contains("team-a"), "{}", st.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // a stops applying x: b still owns it, so it stays.
    let kept = cms
        .patch("shared", &a, &apply_cm(json!({"y": "1"})))
        .await
        .unwrap();
    assert_eq!(kept.data.as_ref().unwrap()["x"], "1");
    // Now b alone owns x and may change it.
    let changed = cms
        .patch("shared", &b, &apply_cm(json!({"x": "2"})))
        .await
        .unwrap();
    assert_eq!(changed.data.as_ref().unwrap()["x"], "2");
    // Re-applying the same configuration changes nothing, not even the resourceVersion.
    let again = cms
        .patch("shared", &b, &apply_cm(json!({"x": "2"})))
        .await
        .unwrap();
    assert_eq!(
        changed.metadata.resource_version,
        again.metadata.resource_version
    );
    s.sim.shutdown().await;
}

/// https://kubernetes.io/docs/reference/using-api/server-side-apply/#clearing-managedfields:
/// managedFields a client writes replace the server's; `[{}]` strips them; an
/// empty list (a client unaware of the field) leaves them alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_write_managed_fields() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&s), "default");
    cms.patch(
        "shared",
        &PatchParams::apply("team-a"),
        &apply_cm(json!({"x": "1"})),
    )
    .await
    .unwrap();

    // An empty list keeps them.
    let kept = cms
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"managedFields": []}})),
        )
        .await
        .unwrap();
    assert_eq!(managers(&kept).len(), 1, "{:?}", managers(&kept));

    // Rewriting them hands x to another manager: that manager's apply of
    // another value no longer conflicts with team-a.
    let mut cm = cms.get("shared").await.unwrap();
    let mut entry = cm.metadata.managed_fields.as_ref().unwrap()[0].clone();
    entry.manager = Some("migrated".into());
    cm.metadata.managed_fields = Some(vec![entry]);
    let replaced = cms
        .replace("shared", &PostParams::default(), &cm)
        .await
        .unwrap();
    let owners = managers(&replaced);
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].0, "migrated");
    cms.patch(
        "shared",
        &PatchParams::apply("migrated"),
        &apply_cm(json!({"x": "2"})),
    )
    .await
    .expect("migrated owns x now");

    // `[{}]` clears them.
    let cleared = cms
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"managedFields": [{}]}})),
        )
        .await
        .unwrap();
    assert!(
        cleared.metadata.managed_fields.is_none(),
        "{:?}",
        managers(&cleared)
    );
    assert_eq!(cleared.data.as_ref().unwrap()["x"], "2");
    // With no owner left, anyone may apply another value.
    cms.patch(
        "shared",
        &PatchParams::apply("team-c"),
        &apply_cm(json!({"x": "3"})),
    )
    .await
    .expect("nobody owns x");
    s.sim.shutdown().await;
}

/// Strategic merge needs the Go types' patch strategies, which custom
/// resources do not have: the API server's CRD handler answers 415 and lists
/// the patch types it takes (JSON patch, merge patch, apply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_on_a_custom_resource_is_unsupported() {
    let s = common::start(kubesim::Config::default()).await;
    let c = client(&s);
    let crd: Value = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let crds: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )),
    );
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(c, "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 1}
    }))
    .unwrap();
    widgets.create(&PostParams::default(), &w).await.unwrap();

    let err = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(st) => {
            assert_eq!(st.code, 415);
            assert_eq!(st.reason, "UnsupportedMediaType");
            assert_eq!(
                st.message,
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            );
        }
        other => panic!("expected 415, got {other:?}"),
    }
    // A merge patch works, and the refused patch changed nothing before it.
    let patched = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["size"], 3);
    s.sim.shutdown().await;
}
