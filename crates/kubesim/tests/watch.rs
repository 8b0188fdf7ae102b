//! Watch semantics clients rely on, through kube-rs.

mod common;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// A label-selected watch sees an object leave the selection as DELETED
/// (carrying its previous labels) and enter it as ADDED, as the API
/// server's watch cache sends them.
#[tokio::test]
async fn a_selected_watch_sees_objects_leave_and_enter_the_selection() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "moving", "labels": {"team": "a"}}, "data": {"k": "1"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv = cms
        .get("moving")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let label = |team: &str| Patch::Merge(json!({"metadata": {"labels": {"team": team}}}));
    let pp = PatchParams::default();
    let stream = cms
        .watch(&WatchParams::default().labels("team=a").timeout(5), &rv)
        .await
        .unwrap();
    cms.patch("moving", &pp, &Patch::Merge(json!({"data": {"k": "2"}})))
        .await
        .unwrap();
    let left = cms.patch("moving", &pp, &label("b")).await.unwrap();
    cms.patch("moving", &pp, &Patch::Merge(json!({"data": {"k": "3"}})))
        .await
        .unwrap();
    cms.patch("moving", &pp, &label("a")).await.unwrap();
    cms.delete("moving", &DeleteParams::default())
        .await
        .unwrap();
    let events: Vec<(String, String, String, String)> = stream
        .take(4)
        .map(|e| {
            let (t, c) = match e.unwrap() {
                WatchEvent::Added(c) => ("ADDED", c),
                WatchEvent::Modified(c) => ("MODIFIED", c),
                WatchEvent::Deleted(c) => ("DELETED", c),
                other => panic!("unexpected {other:?}"),
            };
            let labels = c.metadata.labels.clone().unwrap_or_default();
            (
                t.to_string(),
                labels.get("team").cloned().unwrap_or_default(),
                c.data
                    .unwrap_or_default()
                    .get("k")
                    .cloned()
                    .unwrap_or_default(),
                c.metadata.resource_version.unwrap_or_default(),
            )
        })
        .collect()
        .await;
    let kinds: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|(t, team, k, _)| (t.as_str(), team.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("MODIFIED", "a", "2"),
            // Leaving: the previous content, at the change's resourceVersion.
            ("DELETED", "a", "2"),
            ("ADDED", "a", "3"),
            ("DELETED", "a", "3"),
        ]
    );
    assert_eq!(events[1].3, left.metadata.resource_version.unwrap());
    s.sim.shutdown().await;
}

/// Values charts get wrong are refused with the API server's 422 causes.
#[tokio::test]
async fn bad_values_are_refused_with_the_api_servers_causes() {
    let s = common::start(kubesim::Config::default()).await;
    let client = s.client().await;
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bad", "labels": {"app": "bad value!"}},
        "spec": {"replicas": -5, "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 70000}]}]}}},
    });
    let err = deps
        .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
        .await
        .unwrap_err();
    let kube::Error::Api(e) = err else {
        panic!("{err}")
    };
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message
            .starts_with("Deployment.apps \"bad\" is invalid: ["),
        "{}",
        e.message
    );
    for part in [
        "metadata.labels: Invalid value: \"bad value!\": a valid label must be an empty string",
        "spec.replicas: Invalid value: -5: must be greater than or equal to 0",
        "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ] {
        assert!(e.message.contains(part), "{part} in {}", e.message);
    }
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client, "default");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 0}]}});
    let err = svcs
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(e) = err else {
        panic!("{err}")
    };
    assert!(
        e.message.ends_with(
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        ),
        "{}",
        e.message
    );
    s.sim.shutdown().await;
}
