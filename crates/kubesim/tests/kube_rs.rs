//! kube-rs against kubesim: API semantics, controllers and faults.

mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
    )
    .unwrap()
}

fn deployment(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
        }
    })
}

#[tokio::test]
async fn ssa_conflict_between_managers_then_force_wins() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"key": "from-a", "a-only": "1"}});
    cms.patch(
        "shared",
        &PatchParams::apply("manager-a"),
        &Patch::Apply(&a),
    )
    .await
    .unwrap();
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"key": "from-b"}});
    let err = api_err(
        cms.patch(
            "shared",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(&b),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"manager-a\": .data.key"
    );
    let forced = cms
        .patch(
            "shared",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(&b),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["key"], "from-b");
    let mf = forced.metadata.managed_fields.unwrap();
    let owner_of = |m: &str| {
        mf.iter()
            .find(|e| e.manager.as_deref() == Some(m))
            .unwrap()
            .fields_v1
            .clone()
            .unwrap()
            .0
    };
    assert_eq!(owner_of("manager-b"), json!({"f:data": {"f:key": {}}}));
    assert_eq!(owner_of("manager-a"), json!({"f:data": {"f:a-only": {}}}));
    // An update by another manager moves ownership; a's re-apply of the
    // same field then conflicts with an Update manager.
    let mut cur = cms.get("shared").await.unwrap();
    cur.data
        .as_mut()
        .unwrap()
        .insert("a-only".into(), "edited".into());
    cms.replace(
        "shared",
        &PostParams {
            field_manager: Some("editor".into()),
            ..Default::default()
        },
        &cur,
    )
    .await
    .unwrap();
    let err = api_err(
        cms.patch(
            "shared",
            &PatchParams::apply("manager-a"),
            &Patch::Apply(&a),
        )
        .await
        .unwrap_err(),
    );
    assert!(err.message.starts_with("Apply failed with 2 conflicts: conflicts with \"editor\" using v1:\n- .data.a-only\nconflicts with \"manager-b\":\n- .data.key"), "{}", err.message);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let created = cms
        .create(&PostParams::default(), &cm("cc", json!({"a": "1"})))
        .await
        .unwrap();
    let mut first = created.clone();
    first.data.as_mut().unwrap().insert("a".into(), "2".into());
    let updated = cms
        .replace("cc", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    let mut stale = created.clone();
    stale.data.as_mut().unwrap().insert("a".into(), "3".into());
    let err = api_err(
        cms.replace("cc", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"cc\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Other canonical errors.
    let err = api_err(
        cms.create(&PostParams::default(), &cm("cc", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str(), err.message.as_str()),
        (409, "AlreadyExists", "configmaps \"cc\" already exists")
    );
    let err = api_err(
        cms.create(&PostParams::default(), &cm("Bad_Name", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(err.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", err.message);
    let other: Api<ConfigMap> = Api::namespaced(s.client().await, "missing");
    let err = api_err(
        other
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"missing\" not found")
    );
    s.sim.shutdown().await;
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for i in 0..7 {
        let mut c = cm(&format!("p{i}"), json!({}));
        c.metadata.labels = Some(
            [(
                "tier".to_string(),
                if i % 2 == 0 { "even" } else { "odd" }.to_string(),
            )]
            .into(),
        );
        cms.create(&PostParams::default(), &c).await.unwrap();
    }
    let even = cms
        .list(&ListParams::default().labels("tier=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let not_even = cms
        .list(&ListParams::default().labels("tier notin (even),tier"))
        .await
        .unwrap();
    assert_eq!(not_even.items.len(), 3);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=p3"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3).labels("tier");
    loop {
        let page = cms.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    s.sim.shutdown().await;
}

#[tokio::test]
async fn watch_resumes_from_resource_version_and_expires() {
    let s = common::start(kubesim::Config {
        watch_history: 20,
        ..Default::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let first = cms
        .create(&PostParams::default(), &cm("w0", json!({})))
        .await
        .unwrap();
    let rv0 = first.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &cm("w1", json!({})))
        .await
        .unwrap();
    cms.delete("w0", &DeleteParams::default()).await.unwrap();
    // Resume from rv0: exactly the later events, in order.
    let stream = cms
        .watch(&WatchParams::default().timeout(2), &rv0)
        .await
        .unwrap();
    let events: Vec<String> = stream
        .take(2)
        .map_ok(|e| match e {
            WatchEvent::Added(c) => format!("ADDED {}", c.metadata.name.unwrap()),
            WatchEvent::Deleted(c) => format!("DELETED {}", c.metadata.name.unwrap()),
            other => format!("{other:?}"),
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events, vec!["ADDED w1", "DELETED w0"]);
    // Push rv0 out of the bounded history: the watch gets 410 Expired.
    for i in 0..30 {
        cms.create(&PostParams::default(), &cm(&format!("f{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut stream = cms
        .watch(&WatchParams::default().timeout(2), &rv0)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message
                    .starts_with(&format!("too old resource version: {rv0} (")),
                "{}",
                e.message
            );
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // A resourceVersion this cluster never reached (it restarted empty): the
    // watch cache's "too large resource version", as an ERROR event.
    let ahead = (rv0.parse::<u64>().unwrap() + 1000).to_string();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(2), &ahead)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (504, "Timeout"));
            assert!(
                e.message
                    .starts_with(&format!("Too large resource version: {ahead}, current: ")),
                "{}",
                e.message
            );
        }
        other => panic!("expected too large, got {other:?}"),
    }
    // Bookmarks are sent when asked for.
    let latest = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(3), &latest)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        stream.next().await.unwrap().unwrap(),
        WatchEvent::Bookmark(_)
    ));
    s.sim.shutdown().await;
}

#[tokio::test]
async fn statefulset_pvcs_survive_statefulset_deletion() {
    let s = common::start(kubesim::Config::default()).await;
    let client = s.client().await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client, "default");
    let obj = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}
    });
    sts.patch("db", &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .unwrap();
    let ready = common::eventually(5, "sts ready", || async {
        let st = sts.get("db").await.unwrap().status?;
        (st.ready_replicas == Some(3)).then_some(st)
    })
    .await;
    assert_eq!(ready.current_revision, ready.update_revision);
    common::eventually(5, "pvcs bound", || async {
        let l = pvcs.list(&ListParams::default()).await.unwrap();
        let names: Vec<String> = l
            .items
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        let bound = l
            .items
            .iter()
            .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"));
        (names == ["data-db-0", "data-db-1", "data-db-2"] && bound).then_some(())
    })
    .await;
    // Scale down keeps the claims.
    sts.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    sts.delete("db", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sts.get_opt("db").await.unwrap().is_none());
    assert_eq!(
        pvcs.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    s.sim.shutdown().await;
}

/// Deleted with `propagationPolicy: Orphan`, a StatefulSet leaves its pods
/// and claims; created again (with a larger claim template, which an update
/// may not change), it adopts the same pods, as Kubernetes' ClaimPods does.
#[tokio::test]
async fn an_orphaning_delete_keeps_pods_that_the_recreated_statefulset_adopts() {
    let s = common::start(kubesim::Config::default()).await;
    let client = s.client().await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");
    let obj = |size: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}]}
        })
    };
    sts.patch(
        "db",
        &PatchParams::apply("test"),
        &Patch::Apply(&obj("1Gi")),
    )
    .await
    .unwrap();
    common::eventually(5, "sts ready", || async {
        let st = sts.get("db").await.unwrap().status?;
        (st.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let uids = || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = uids().await;
    assert_eq!(before.len(), 2);
    sts.delete("db", &DeleteParams::orphan()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sts.get_opt("db").await.unwrap().is_none());
    assert_eq!(uids().await, before, "orphaned pods stay");
    let orphan = pods.get("db-0").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    sts.patch(
        "db",
        &PatchParams::apply("test"),
        &Patch::Apply(&obj("2Gi")),
    )
    .await
    .unwrap();
    let new_uid = sts.get("db").await.unwrap().metadata.uid.unwrap();
    common::eventually(5, "adopted and ready", || async {
        let st = sts.get("db").await.unwrap().status?;
        (st.ready_replicas == Some(2)).then_some(())
    })
    .await;
    assert_eq!(uids().await, before, "the same pods, not new ones");
    let owners = pods
        .get("db-1")
        .await
        .unwrap()
        .metadata
        .owner_references
        .unwrap();
    assert_eq!(owners[0].uid, new_uid);
    s.sim.shutdown().await;
}

#[tokio::test]
async fn immutable_fields_are_rejected_with_api_server_messages() {
    let s = common::start(kubesim::Config::default()).await;
    let client = s.client().await;
    let pp = PatchParams::default();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let obj = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
        "spec": {"serviceName": "x", "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    sts.patch("x", &PatchParams::apply("t"), &Patch::Apply(&obj))
        .await
        .unwrap();
    let err = api_err(
        sts.patch(
            "x",
            &pp,
            &Patch::Merge(json!({"spec": {"serviceName": "y"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "StatefulSet.apps \"x\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
    );
    // Allowed fields may change.
    sts.patch(
        "x",
        &pp,
        &Patch::Merge(json!({"spec": {"replicas": 4, "minReadySeconds": 5}})),
    )
    .await
    .unwrap();

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    pvcs.create(
        &PostParams::default(),
        &serde_json::from_value(pvc).unwrap(),
    )
    .await
    .unwrap();
    let err = api_err(
        pvcs.patch(
            "p",
            &pp,
            &Patch::Merge(json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "PersistentVolumeClaim \"p\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
    );
    pvcs.patch(
        "p",
        &pp,
        &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})),
    )
    .await
    .unwrap();
    let err = api_err(
        pvcs.patch(
            "p",
            &pp,
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.message.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ),
        "{}",
        err.message
    );

    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(job).unwrap(),
    )
    .await
    .unwrap();
    let err = api_err(jobs.patch("j", &pp, &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "other"}]}}}}))).await.unwrap_err());
    assert!(
        err.message
            .starts_with("Job.batch \"j\" is invalid: spec.template: Invalid value: "),
        "{}",
        err.message
    );
    assert!(err.message.ends_with("field is immutable"));

    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = svcs.create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})).unwrap()).await.unwrap();
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    assert!(ip.starts_with("10.96."));
    let err = api_err(
        svcs.patch(
            "s",
            &pp,
            &Patch::Merge(json!({"spec": {"clusterIP": "10.0.0.99"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Service \"s\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.0.0.99\"}: may not change once set"
    );

    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut frozen = cm("frozen", json!({"a": "1"}));
    frozen.immutable = Some(true);
    cms.create(&PostParams::default(), &frozen).await.unwrap();
    let err = api_err(
        cms.patch("frozen", &pp, &Patch::Merge(json!({"data": {"a": "2"}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    s.sim.shutdown().await;
}

#[tokio::test]
async fn owner_reference_garbage_collection() {
    let s = common::start(kubesim::Config::default()).await;
    let client = s.client().await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    deps.patch(
        "gc",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("gc", json!({}))),
    )
    .await
    .unwrap();
    common::eventually(5, "replicaset", || async {
        (rss.list(&ListParams::default()).await.unwrap().items.len() == 1).then_some(())
    })
    .await;
    // Background: the owner goes at once, the dependent right after.
    deps.delete("gc", &DeleteParams::background())
        .await
        .unwrap();
    common::eventually(5, "background gc", || async {
        rss.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;

    // Foreground: the owner waits (foregroundDeletion) for a dependent that
    // is held by a finalizer, then goes when it is released.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut child = cm("child", json!({}));
    child.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.clone().unwrap(),
            block_owner_deletion: Some(true),
            ..Default::default()
        },
    ]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = cms.get("owner").await.unwrap();
    assert!(o.metadata.deletion_timestamp.is_some());
    assert_eq!(
        o.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(
        cms.get("child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    cms.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    common::eventually(5, "foreground gc", || async {
        cms.get_opt("owner").await.unwrap().is_none().then_some(())
    })
    .await;
    s.sim.shutdown().await;
}

#[tokio::test]
async fn workloads_roll_out_and_annotations_fail_them() {
    let s = common::start(kubesim::Config {
        rollout_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let client = s.client().await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deps.patch(
        "ok",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("ok", json!({}))),
    )
    .await
    .unwrap();
    deps.patch(
        "stuck",
        &PatchParams::apply("t"),
        &Patch::Apply(deployment("stuck", json!({kubesim::NEVER_READY: "true"}))),
    )
    .await
    .unwrap();
    let early = deps.get("ok").await.unwrap();
    let cond = |d: &Deployment, t: &str| {
        d.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_.as_deref() == Some(t)).cloned())
    };
    common::eventually(2, "progressing", || async {
        let d = deps.get("ok").await.unwrap();
        cond(&d, "Available").map(|c| assert!(c.status.is_some()))
    })
    .await;
    assert!(
        early
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .is_none()
    );
    let d = common::eventually(5, "available", || async {
        let d = deps.get("ok").await.unwrap();
        (cond(&d, "Available")?.status.as_deref() == Some("True")).then_some(d)
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas,
            st.observed_generation
        ),
        (Some(2), Some(2), Some(2), Some(2), Some(1))
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stuck = deps.get("stuck").await.unwrap();
    let c = cond(&stuck, "Available").unwrap();
    assert_eq!(
        (c.status.as_deref(), c.reason.as_deref()),
        (Some("False"), Some("MinimumReplicasUnavailable"))
    );

    let jobs: Api<Job> = Api::namespaced(client, "default");
    let job = |name: &str, ann: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 2, "template": {"metadata": {"annotations": ann}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    };
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(job("good", json!({}))).unwrap(),
    )
    .await
    .unwrap();
    jobs.create(
        &PostParams::default(),
        &serde_json::from_value(job("bad", json!({kubesim::JOB_FAIL: "true"}))).unwrap(),
    )
    .await
    .unwrap();
    let done = |name: &'static str, t: &'static str| {
        let jobs = jobs.clone();
        async move {
            common::eventually(5, name, || async {
                let j = jobs.get(name).await.unwrap();
                let c = j
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == t && c.status == "True")?
                    .clone();
                Some((j, c))
            })
            .await
        }
    };
    let (good, _) = done("good", "Complete").await;
    assert_eq!(good.status.unwrap().succeeded, Some(1));
    let (bad, c) = done("bad", "Failed").await;
    assert_eq!(c.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(bad.status.unwrap().failed, Some(3));
    s.sim.shutdown().await;
}

#[tokio::test]
async fn faults_are_observable_and_stats_count_verbs() {
    let s = common::start(kubesim::Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    s.sim.reset_stats();

    let raw: Api<ConfigMap> = Api::namespaced(s.client_no_retry().await, "default");

    // Error injection per verb/resource, limited by count.
    let fault = kubesim::ErrorFault {
        verb: Some("create".into()),
        resource: Some("configmaps".into()),
        code: 503,
        count: Some(1),
        ..Default::default()
    };
    s.sim.faults().add_error(fault.clone());
    let err = api_err(
        raw.create(&PostParams::default(), &cm("e", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (503, "ServiceUnavailable"));
    // kube-rs retries 503s by default: one failure, then success.
    s.sim.faults().set(kubesim::FaultConfig {
        errors: vec![fault],
        ..Default::default()
    });
    cms.create(&PostParams::default(), &cm("e", json!({})))
        .await
        .unwrap();
    assert_eq!(s.sim.stats().verb("create"), 3);
    s.sim.faults().clear();

    // 429 with Retry-After over plain HTTP, configured through the admin endpoint.
    let http = reqwest_like(&s.sim.url());
    http.post(
        "/kubesim/faults",
        r#"{"errors":[{"verb":"get","code":429,"retryAfterSeconds":7}]}"#,
    )
    .await;
    let (code, headers, _) = http.get("/api/v1/namespaces/default/configmaps/e").await;
    assert_eq!(code, 429);
    assert!(
        headers.to_lowercase().contains("retry-after: 7"),
        "{headers}"
    );
    http.delete("/kubesim/faults").await;

    // Latency.
    s.sim.faults().set(kubesim::FaultConfig {
        latency: vec![kubesim::LatencyFault {
            verb: Some("get".into()),
            millis: 300,
            ..Default::default()
        }],
        ..Default::default()
    });
    let t = Instant::now();
    cms.get("e").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    s.sim.faults().clear();

    // A write that times out but still happened.
    s.sim.faults().set(kubesim::FaultConfig {
        timeouts: vec![kubesim::TimeoutFault {
            verb: Some("create".into()),
            millis: 100,
            commit: true,
            ..Default::default()
        }],
        ..Default::default()
    });
    let err = api_err(
        raw.create(&PostParams::default(), &cm("slow", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 504);
    s.sim.faults().clear();
    assert!(cms.get_opt("slow").await.unwrap().is_some());

    // Dropped watch streams end early.
    s.sim.faults().set(kubesim::FaultConfig {
        drop_watches_after_millis: Some(200),
        ..Default::default()
    });
    let t = Instant::now();
    let stream = cms
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap();
    let n = stream.count().await;
    assert!(n >= 2, "initial ADDED events first");
    assert!(t.elapsed() < Duration::from_secs(5));
    s.sim.faults().clear();

    // A finalizer the simulator never clears.
    s.sim.faults().set(kubesim::FaultConfig {
        stuck_finalizers: vec![kubesim::StuckFinalizer {
            resource: "configmaps".into(),
            name_prefix: Some("stuck".into()),
            finalizer: "sim.kubesim.dev/stuck".into(),
        }],
        ..Default::default()
    });
    cms.create(&PostParams::default(), &cm("stuck-1", json!({})))
        .await
        .unwrap();
    cms.delete("stuck-1", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = cms.get("stuck-1").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        held.metadata.finalizers,
        Some(vec!["sim.kubesim.dev/stuck".to_string()])
    );
    s.sim.faults().clear();

    // Counters by verb.
    let st = s.sim.stats();
    assert_eq!(st.verb("create"), 5);
    assert_eq!(st.verb("list"), 0);
    assert_eq!(st.verb("delete"), 1);
    assert_eq!(st.verb("watch"), 1);
    assert_eq!(st.verb_resource("get", "configmaps"), 4);
    assert_eq!(st.writes(), 6);
    let (_, _, body) = http.get("/kubesim/stats").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["byVerb"]["create"], 5);
    s.sim.shutdown().await;
}

/// A tiny HTTP/1.1 client for the admin endpoints (no extra dependency).
struct Raw(String);

fn reqwest_like(url: &str) -> Raw {
    Raw(url.trim_start_matches("http://").to_string())
}

impl Raw {
    async fn send(&self, method: &str, path: &str, body: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(&self.0).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.0,
            body.len()
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut buf = String::new();
        sock.read_to_string(&mut buf).await.unwrap();
        let (head, body) = buf.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head.to_string(), body.to_string())
    }
    async fn get(&self, path: &str) -> (u16, String, String) {
        self.send("GET", path, "").await
    }
    async fn post(&self, path: &str, body: &str) -> (u16, String, String) {
        self.send("POST", path, body).await
    }
    async fn delete(&self, path: &str) -> (u16, String, String) {
        self.send("DELETE", path, "").await
    }
}
