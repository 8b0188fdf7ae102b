//! List semantics (https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list),
//! driven by kube-rs: continue tokens pinned to their list's snapshot,
//! `remainingItemCount`, `resourceVersionMatch=Exact|NotOlderThan`, and the
//! 410/504/422 answers a real API server gives, and field selectors checked per kind.

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, VersionMatch};
use serde_json::json;

fn cm(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": v}})).unwrap()
}

fn names_and_values(list: &kube::core::ObjectList<ConfigMap>) -> Vec<(String, String)> {
    list.items
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                c.data
                    .as_ref()
                    .and_then(|d| d.get("v").cloned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn status(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_from_one_snapshot() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client_no_retry().await, "paged");
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(s.client_no_retry().await);
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "paged"}})).unwrap(),
    )
    .await
    .unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), "old"))
            .await
            .unwrap();
    }
    // A page of two: the rest is counted and a continue token is handed out.
    // (The namespace also holds kube-root-ca.crt, which sorts last.)
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(
        names_and_values(&first),
        pairs(&[("c0", "old"), ("c1", "old")])
    );
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.clone().expect("a continue token");
    let snapshot_rv = first.metadata.resource_version.clone().unwrap();

    // Writes between pages...
    cms.patch(
        "c3",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "new"}})),
    )
    .await
    .unwrap();
    cms.delete("c2", &DeleteParams::default()).await.unwrap();
    cms.create(&PostParams::default(), &cm("c5", "new"))
        .await
        .unwrap();

    // ...are not seen by the later pages of the same list.
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        names_and_values(&second),
        pairs(&[("c2", "old"), ("c3", "old")])
    );
    assert_eq!(
        second.metadata.resource_version.as_deref(),
        Some(snapshot_rv.as_str())
    );
    let third = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    let names: Vec<String> = third
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["c4", "kube-root-ca.crt"]);
    assert!(
        third.metadata.continue_.is_none(),
        "the last page has no token"
    );

    // Exact: the state at that version. NotOlderThan: at least that new.
    let exact = cms
        .list(
            &ListParams::default()
                .labels("")
                .at(&snapshot_rv)
                .matching(VersionMatch::Exact),
        )
        .await
        .unwrap();
    assert_eq!(
        exact.metadata.resource_version.as_deref(),
        Some(snapshot_rv.as_str())
    );
    assert!(names_and_values(&exact).contains(&("c2".into(), "old".into())));
    assert!(
        !exact
            .items
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("c5"))
    );
    let fresh = cms
        .list(
            &ListParams::default()
                .at(&snapshot_rv)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert!(names_and_values(&fresh).contains(&("c3".into(), "new".into())));
    assert!(
        !fresh
            .items
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("c2"))
    );

    // A version the server has not reached: 504 with the storage message.
    let far = (snapshot_rv.parse::<u64>().unwrap() + 1000).to_string();
    let e = status(
        cms.list(&ListParams::default().at(&far).matching(VersionMatch::Exact))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (504, "Timeout"));
    assert!(
        e.message
            .starts_with(&format!("Too large resource version: {far}, current: ")),
        "{}",
        e.message
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_options_are_checked_and_old_versions_expire() {
    let s = common::start(kubesim::Config {
        watch_history: 10,
        ..Default::default()
    })
    .await;
    let client = s.client_no_retry().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();

    // resourceVersionMatch without resourceVersion (kube-rs will not send
    // it, so the request is made by hand).
    let req =
        http::Request::get("/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact")
            .body(Vec::new())
            .unwrap();
    let e = status(client.request::<serde_json::Value>(req).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    );
    let req = http::Request::get(
        "/api/v1/namespaces/default/configmaps?resourceVersion=0&resourceVersionMatch=Exact",
    )
    .body(Vec::new())
    .unwrap();
    let e = status(client.request::<serde_json::Value>(req).await.unwrap_err());
    assert!(
        e.message
            .contains(r#"resourceVersionMatch "exact" is forbidden for resourceVersion "0""#),
        "{}",
        e.message
    );

    // Push the version out of the retained history: an Exact list is 410.
    for i in 0..20 {
        cms.create(&PostParams::default(), &cm(&format!("n{i}"), "x"))
            .await
            .unwrap();
    }
    let e = status(
        cms.list(&ListParams::default().at(&rv).matching(VersionMatch::Exact))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
    assert_eq!(
        e.message,
        "The resourceVersion for the provided list is too old."
    );
    // NotOlderThan is still served, from the current state.
    let l = cms
        .list(
            &ListParams::default()
                .at(&rv)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert_eq!(l.items.len(), 22, "a, n0..n19 and kube-root-ca.crt");
    s.sim.shutdown().await;
}

/// Field selectors work only on the labels a kind supports (the API server's
/// field label conversions; a CRD's `selectableFields`); others are 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_are_checked_per_kind() {
    use k8s_openapi::api::core::v1::{Pod, Secret};
    let s = common::start(kubesim::Config::default()).await;
    let client = s.client_no_retry().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let e = status(
        pods.list(&ListParams::default().fields("spec.foo=bar"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        e.message,
        r#"Unable to find {"" "v1" "pods"} that match label selector "", field selector "spec.foo=bar": field label not supported: spec.foo"#
    );
    pods.list(&ListParams::default().fields("status.phase=Running,spec.nodeName=kubesim-node"))
        .await
        .expect("pods select by phase and node");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .list(&ListParams::default().fields("type=Opaque"))
        .await
        .expect("secrets select by type");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let e = status(
        cms.list(&ListParams::default().fields("data.a=1"))
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.ends_with("field label not supported: data.a"),
        "{}",
        e.message
    );
    cms.create(&PostParams::default(), &cm("picked", "1"))
        .await
        .unwrap();
    let l = cms
        .list(&ListParams::default().fields("metadata.name=picked"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);

    // A CRD's selectableFields.
    s.kubectl_ok(
        &["apply", "-f", "-"],
        Some(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields: [{jsonPath: .spec.color}]
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {color: {type: string}, size: {type: integer}}}
"#,
        ),
    )
    .await;
    s.kubectl_ok(
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: red}\nspec: {color: red, size: 1}\n"),
    )
    .await;
    let red = s
        .kubectl_ok(
            &[
                "get",
                "widgets",
                "--field-selector",
                "spec.color=red",
                "-o",
                "name",
            ],
            None,
        )
        .await;
    assert_eq!(red.trim(), "widget.example.com/red");
    let out = s
        .kubectl(&["get", "widgets", "--field-selector", "spec.size=1"], None)
        .await;
    assert!(
        !out.ok && out.stderr.contains("field label not supported: spec.size"),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}
