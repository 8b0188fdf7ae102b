//! The orphan scan and clean on kubesim, against the real database: what
//! Caelus left behind (by hand here, and for real by a worker killed
//! mid-revision) is found with its reason, a dry run keeps it, a
//! confirmed clean removes it and records who; what is not this
//! installation's, or too young, or that the database accounts for by the
//! time of the delete, is never touched; a namespace stuck on a finalizer is
//! reported, not forced.

mod harness;

use caelus_core::status::Phase;
use caelus_core::template::Capabilities;
use caelus_engine::{Engine, EngineConfig};
use caelus_reconciler::{Finding, OrphanScanner};
use caelus_store::deployments::{self, NewDeployment};
use caelus_store::{Backend, now_ms};
use harness::{Harness, client_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

const WEB_ALLOW: &[&str] = &["replicaCount"];
const INSTALLATION: &str = "test-install";

fn scanner(h: &Harness, min_age: Duration) -> OrphanScanner {
    OrphanScanner {
        store: h.db.store.clone(),
        engine: Engine::new(
            client_for(&h.sim),
            EngineConfig {
                installation_id: INSTALLATION.into(),
                ..Default::default()
            },
        ),
        min_age,
    }
}

fn ours(uid: &str) -> serde_json::Value {
    json!({
        "app.kubernetes.io/managed-by": "caelus",
        "caelus.io/deployment-uid": uid,
        "caelus.io/installation": INSTALLATION,
    })
}

async fn create_configmap(h: &Harness, ns: &str, name: &str, labels: serde_json::Value) {
    let api: Api<ConfigMap> = Api::namespaced(h.kube.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
}

async fn create_namespace(h: &Harness, name: &str, labels: serde_json::Value) {
    let api: Api<Namespace> = Api::all(h.kube.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

async fn configmap_exists(h: &Harness, ns: &str, name: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(h.kube.clone(), ns);
    api.get_opt(name).await.unwrap().is_some()
}

fn names(found: &[Finding]) -> Vec<String> {
    let mut n: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "{}/{}/{}",
                f.kind,
                f.namespace.as_deref().unwrap_or("-"),
                f.name
            )
        })
        .collect();
    n.sort();
    n
}

async fn leftovers_are_found_cleaned_on_confirm_and_nothing_else_is_touched(backend: Backend) {
    let h = Harness::start(backend).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();

    // What a worker killed mid-prune leaves: an object of the deployment,
    // labelled as Caelus labels everything, that its inventory no longer lists.
    create_configmap(&h, &ns, "leftover", ours(&uid)).await;
    // Same name, no label; same name, another installation's label.
    create_namespace(&h, "team-a", json!({})).await;
    create_configmap(&h, "team-a", "leftover", json!({})).await;
    let mut foreign = ours(&uid);
    foreign["caelus.io/installation"] = json!("other-install");
    create_configmap(&h, "team-a", "leftover-foreign", foreign.clone()).await;
    create_namespace(&h, "d-foreign", foreign).await;
    // The namespace of a deployment the database never heard of.
    let ghost = uuid::Uuid::new_v4().to_string();
    let ghost_ns = caelus_core::identity::namespace_name(&ghost).unwrap();
    create_namespace(&h, &ghost_ns, ours(&ghost)).await;

    // Everything here is seconds old: with the default grace period nothing is an orphan.
    let careful = scanner(&h, Duration::from_secs(3600));
    assert!(careful.scan().await.unwrap().is_empty());
    // The grace period judges each object by its own age: a namespace made
    // now is left alone while the older ones next to it are listed.
    // (creationTimestamp has whole seconds: the margins allow for that.)
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let young_ns =
        caelus_core::identity::namespace_name(&uuid::Uuid::new_v4().to_string()).unwrap();
    create_namespace(&h, &young_ns, ours(&uuid::Uuid::new_v4().to_string())).await;
    let graced = scanner(&h, Duration::from_secs(3));
    assert_eq!(
        names(&graced.scan().await.unwrap()),
        [
            format!("ConfigMap/{ns}/leftover"),
            format!("Namespace/-/{ghost_ns}"),
        ]
    );
    let namespaces: Api<Namespace> = Api::all(h.kube.clone());
    namespaces
        .delete(&young_ns, &Default::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while namespaces.get_opt(&young_ns).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "{young_ns} not gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let s = scanner(&h, Duration::ZERO);
    let found = s.scan().await.unwrap();
    assert_eq!(
        names(&found),
        [
            format!("ConfigMap/{ns}/leftover"),
            format!("Namespace/-/{ghost_ns}"),
        ],
        "{found:#?}"
    );
    let leftover = found.iter().find(|f| f.name == "leftover").unwrap();
    assert!(
        leftover
            .reason
            .contains("not in its live deployment's current inventory"),
        "{}",
        leftover.reason
    );
    assert_eq!(leftover.deployment_uid.as_deref(), Some(uid.as_str()));
    let ghost_finding = found.iter().find(|f| f.kind == "Namespace").unwrap();
    assert!(
        ghost_finding.reason.contains("does not exist"),
        "{}",
        ghost_finding.reason
    );
    let metrics = caelus_metrics::encode(&caelus_metrics::global().registry());
    assert!(
        metrics.contains("caelus_orphans{kind=\"ConfigMap\"} 1"),
        "{metrics}"
    );

    // While a worker holds the deployment's lease to deploy a new generation,
    // its pass may be applying objects the inventory lists only once it
    // commits: kept, grace or not.
    let set_lease = |owner: Option<&'static str>, until: Option<i64>, generation: i64| {
        let pool = h.db.store.pool().clone();
        let uid = uid.clone();
        async move {
            sqlx::query(
                "UPDATE deployments SET lease_owner = $1, lease_expires_at = $2, generation = $3 \
                 WHERE uid = $4",
            )
            .bind(owner)
            .bind(until)
            .bind(generation)
            .bind(uid)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let deployed = d.generation;
    // A pass that only checks drift (its generation is deployed) protects nothing.
    set_lease(Some("worker-elsewhere"), Some(now_ms() + 60_000), deployed).await;
    assert_eq!(names(&s.scan().await.unwrap()), names(&found));
    set_lease(
        Some("worker-elsewhere"),
        Some(now_ms() + 60_000),
        deployed + 1,
    )
    .await;
    assert_eq!(
        names(&s.scan().await.unwrap()),
        [format!("Namespace/-/{ghost_ns}")]
    );
    let kept = s
        .clean_found(found.clone(), false, "token:ops (admin)")
        .await
        .unwrap();
    assert_eq!(names(&kept.deleted), [format!("Namespace/-/{ghost_ns}")]);
    let in_flight = kept
        .kept
        .iter()
        .find(|k| k.finding.name == "leftover")
        .unwrap();
    assert!(
        in_flight
            .why_kept
            .contains("new generation is being deployed"),
        "{}",
        in_flight.why_kept
    );
    assert!(configmap_exists(&h, &ns, "leftover").await);
    // A lease that lapsed (its worker died) protects nothing.
    set_lease(Some("worker-elsewhere"), Some(now_ms() - 1), deployed + 1).await;
    assert_eq!(names(&s.scan().await.unwrap()), names(&found));
    set_lease(None, None, deployed).await;

    // A dry run deletes nothing.
    let dry = s.clean(false, "token:ops (admin)").await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(names(&dry.deleted), names(&found));
    assert!(configmap_exists(&h, &ns, "leftover").await);

    // A deployment appears for the ghost namespace between the scan and the
    // delete: the clean re-reads the database and keeps its namespace.
    let found = s.scan().await.unwrap();
    {
        let mut c = h.db.store.conn().await.unwrap();
        deployments::insert(
            &mut c,
            &NewDeployment {
                uid: ghost.clone(),
                tenant: "acme".into(),
                display_name: "late".into(),
                product_id: t.product_id.clone(),
                template_version_id: t.id.clone(),
                user_values: json!({}),
                namespace_name: ghost_ns.clone(),
                release_name: caelus_core::identity::release_name(&ghost).unwrap(),
                now: now_ms(),
            },
        )
        .await
        .unwrap();
    }
    let report = s
        .clean_found(found, true, "token:ops (admin)")
        .await
        .unwrap();
    assert!(!report.dry_run);
    assert_eq!(names(&report.deleted), [format!("ConfigMap/{ns}/leftover")]);
    assert_eq!(report.kept.len(), 1);
    assert_eq!(report.kept[0].finding.name, ghost_ns);
    assert_eq!(report.kept[0].why_kept, "the database accounts for it now");
    let kept_ns = namespaces.get(&ghost_ns).await.unwrap();
    assert!(kept_ns.metadata.deletion_timestamp.is_none());

    // Removed, and recorded with who did it.
    assert!(!configmap_exists(&h, &ns, "leftover").await);
    let event = h
        .wait_event(&uid, "orphan.delete", Duration::from_secs(5))
        .await;
    assert_eq!(event.actor, "token:ops (admin)");
    assert!(event.message.contains("ConfigMap"), "{}", event.message);
    // The deployment itself is untouched; the others' objects are still there.
    assert_eq!(h.get(&uid).await.phase, Phase::Ready);
    assert!(configmap_exists(&h, "team-a", "leftover").await);
    assert!(configmap_exists(&h, "team-a", "leftover-foreign").await);
    assert!(namespaces.get_opt("d-foreign").await.unwrap().is_some());
    let left = s.scan().await.unwrap();
    assert!(left.is_empty(), "{left:#?}");
    h.stop().await;
}

#[tokio::test]
async fn sqlite_leftovers_are_found_cleaned_on_confirm_and_nothing_else_is_touched() {
    leftovers_are_found_cleaned_on_confirm_and_nothing_else_is_touched(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_leftovers_are_found_cleaned_on_confirm_and_nothing_else_is_touched() {
    leftovers_are_found_cleaned_on_confirm_and_nothing_else_is_touched(Backend::Postgres).await;
}

async fn a_namespace_stuck_on_a_finalizer_is_reported_not_forced(backend: Backend) {
    let h = Harness::start(backend).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    let held = format!("{}-web", d.release_name);
    let configmaps: Api<ConfigMap> = Api::namespaced(h.kube.clone(), &ns);
    configmaps
        .patch(
            &held,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await
        .unwrap();
    h.delete(&uid).await;
    h.wait_until(&uid, Duration::from_secs(20), "DeletionBlocked", |d| {
        d.phase == Phase::DeletionBlocked
    })
    .await;

    let s = scanner(&h, Duration::ZERO);
    let found = s.scan().await.unwrap();
    let stuck = found
        .iter()
        .find(|f| f.kind == "Namespace" && f.name == ns)
        .unwrap_or_else(|| panic!("stuck namespace not reported: {found:#?}"));
    assert!(stuck.stuck_on_finalizers.is_some(), "{stuck:#?}");
    assert!(
        stuck
            .conditions
            .iter()
            .any(|c| c.contains("example.com/hold")),
        "{stuck:#?}"
    );
    let report = s.clean(true, "token:ops (admin)").await.unwrap();
    assert!(report.deleted.iter().all(|f| f.name != ns), "{report:#?}");
    let kept = report.kept.iter().find(|k| k.finding.name == ns).unwrap();
    assert!(
        kept.why_kept.contains("never removes finalizers"),
        "{}",
        kept.why_kept
    );
    // Still there, still held: nothing stripped.
    let live = configmaps.get(&held).await.unwrap();
    assert_eq!(
        live.metadata.finalizers,
        Some(vec!["example.com/hold".to_string()])
    );
    assert!(h.live("v1", "Namespace", None, &ns).await.is_some());
    h.stop().await;
}

#[tokio::test]
async fn sqlite_a_namespace_stuck_on_a_finalizer_is_reported_not_forced() {
    a_namespace_stuck_on_a_finalizer_is_reported_not_forced(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_namespace_stuck_on_a_finalizer_is_reported_not_forced() {
    a_namespace_stuck_on_a_finalizer_is_reported_not_forced(Backend::Postgres).await;
}

/// A worker killed while a revision is in flight, after it applied a new
/// object: the next generation drops that object from the render, and its
/// pass prunes against the last *deployed* inventory, which never listed it.
/// The object stays behind; the scan finds it, a dry run keeps it, a
/// confirmed clean removes it and records who.
async fn a_worker_killed_mid_revision_leaves_an_object_the_scan_finds(backend: Backend) {
    let mut worker = harness::fast_worker();
    worker.lease = Duration::from_secs(2);
    let mut h = Harness::start_with(backend, worker.clone()).await;
    let t = h
        .publish(
            "web",
            "web",
            "1.0.0",
            &["replicaCount", "ingress"],
            Capabilities::default(),
        )
        .await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();

    // Generation 2 adds an Ingress and scales the Deployment. Health reads are
    // slow (the scaled Deployment is read until its controller has seen it),
    // so the revision is still in flight once the Ingress exists: then the
    // worker dies (no shutdown, its lease left to expire).
    h.sim.faults().set(kubesim::FaultConfig {
        latency: vec![kubesim::LatencyFault {
            verb: Some("get".into()),
            millis: 3000,
            ..Default::default()
        }],
        ..Default::default()
    });
    h.update(
        &uid,
        json!({"ingress": {"enabled": true}, "replicaCount": 2}),
    )
    .await;
    let ingresses = h
        .sim
        .api()
        .resource("networking.k8s.io", "v1", "ingresses")
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ingress = loop {
        let list = h
            .sim
            .api()
            .list(&ingresses, Some(&ns), &Default::default())
            .unwrap();
        if let Some(name) = list["items"][0]["metadata"]["name"].as_str() {
            break name.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no Ingress applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    h.kill_worker(0);
    assert_ne!(
        h.get(&uid).await.observed_generation,
        2,
        "revision 2 finished before the kill"
    );

    // Generation 3 drops it again; another worker takes over.
    h.update(
        &uid,
        json!({"ingress": {"enabled": false}, "replicaCount": 2}),
    )
    .await;
    h.sim.faults().clear();
    h.add_worker(worker);
    h.wait_until(&uid, Duration::from_secs(30), "generation 3 Ready", |d| {
        d.phase == Phase::Ready && d.observed_generation == 3
    })
    .await;
    assert!(
        h.live("networking.k8s.io/v1", "Ingress", Some(&ns), &ingress)
            .await
            .is_some(),
        "the Ingress was pruned after all: if passes now prune what an interrupted \
         attempt applied, this test needs another way to leave an object behind"
    );

    let s = scanner(&h, Duration::ZERO);
    let found = s.scan().await.unwrap();
    assert_eq!(
        names(&found),
        [format!("Ingress/{ns}/{ingress}")],
        "{found:#?}"
    );
    assert!(
        found[0]
            .reason
            .contains("not in its live deployment's current inventory"),
        "{}",
        found[0].reason
    );
    let dry = s.clean(false, "token:ops (admin)").await.unwrap();
    assert_eq!(names(&dry.deleted), names(&found));
    assert!(
        h.live("networking.k8s.io/v1", "Ingress", Some(&ns), &ingress)
            .await
            .is_some()
    );
    let done = s.clean(true, "token:ops (admin)").await.unwrap();
    assert_eq!(names(&done.deleted), names(&found));
    assert!(
        h.live("networking.k8s.io/v1", "Ingress", Some(&ns), &ingress)
            .await
            .is_none()
    );
    let event = h
        .wait_event(&uid, "orphan.delete", Duration::from_secs(5))
        .await;
    assert_eq!(event.actor, "token:ops (admin)");
    assert!(event.message.contains("Ingress"), "{}", event.message);
    // The deployment itself is untouched.
    assert_eq!(h.get(&uid).await.phase, Phase::Ready);
    h.stop().await;
}

#[tokio::test]
async fn sqlite_a_worker_killed_mid_revision_leaves_an_object_the_scan_finds() {
    a_worker_killed_mid_revision_leaves_an_object_the_scan_finds(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_worker_killed_mid_revision_leaves_an_object_the_scan_finds() {
    a_worker_killed_mid_revision_leaves_an_object_the_scan_finds(Backend::Postgres).await;
}
