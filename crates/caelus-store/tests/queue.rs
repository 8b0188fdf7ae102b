//! The work queue on both backends: claims, leases, takeover, fencing.

use caelus_core::lifecycle::Lifecycle;
use caelus_core::status::Phase;
use caelus_core::template::Capabilities;
use caelus_store::deployments::{self, NewDeployment};
use caelus_store::products::{self, Product};
use caelus_store::queue::{self, PassResult};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::testing::TestDb;
use caelus_store::{Backend, Store, StoreError};
use serde_json::json;

use caelus_store::on_both_backends;

on_both_backends!(
    claims_take_the_longest_due_first_and_never_twice,
    an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out,
    a_generation_change_during_a_pass_keeps_the_deployment_due,
    released_leases_are_due_again_at_once,
    a_deployment_in_flight_is_not_claimable_until_its_lease_ends,
    cluster_changes_make_deployments_due_unless_a_pass_holds_them,
);

async fn seed(store: &Store, due: &[i64]) -> Vec<String> {
    let mut c = store.conn().await.unwrap();
    let p = Product {
        id: uuid::Uuid::new_v4().to_string(),
        slug: "wiki".into(),
        name: "Wiki".into(),
        description: String::new(),
        created_at: 0,
    };
    products::insert(&mut c, &p).await.unwrap();
    let v = TemplateVersion {
        id: uuid::Uuid::new_v4().to_string(),
        product_id: p.id.clone(),
        product_slug: p.slug.clone(),
        version: "1.0.0".into(),
        chart_ref: "oci://r/c@sha256:x".into(),
        chart_digest: "sha256:x".into(),
        chart_metadata: json!({}),
        default_values: json!({}),
        values_schema: None,
        values_allowlist: vec![],
        capabilities: Capabilities::default(),
        lifecycle: Lifecycle::Published,
        created_at: 0,
        updated_at: 0,
    };
    templates::insert(&mut c, &v).await.unwrap();
    let mut uids = Vec::new();
    for (i, at) in due.iter().enumerate() {
        let uid = uuid::Uuid::new_v4().to_string();
        deployments::insert(
            &mut c,
            &NewDeployment {
                namespace_name: caelus_core::identity::namespace_name(&uid).unwrap(),
                release_name: caelus_core::identity::release_name(&uid).unwrap(),
                uid: uid.clone(),
                tenant: "acme".into(),
                display_name: format!("d{i}"),
                product_id: p.id.clone(),
                template_version_id: v.id.clone(),
                user_values: json!({}),
                now: *at,
            },
        )
        .await
        .unwrap();
        uids.push(uid);
    }
    uids
}

fn ready(generation: i64, next_due: Option<i64>) -> PassResult {
    PassResult {
        phase: Phase::Ready,
        message: "ready".into(),
        conditions: vec![],
        object_health: vec![],
        observed_generation: generation,
        current_revision: Some(1),
        last_error: None,
        attempts: 0,
        next_due,
        deleted: false,
        failure: None,
    }
}

async fn claims_take_the_longest_due_first_and_never_twice(b: Backend) {
    let db = TestDb::new(b).await;
    let uids = seed(&db.store, &[300, 100, 200, 10_000]).await;
    let s = &db.store;
    let a = queue::claim_one(s, "w1", 1000, 5000)
        .await
        .unwrap()
        .unwrap();
    let b2 = queue::claim_one(s, "w2", 1000, 5000)
        .await
        .unwrap()
        .unwrap();
    let c = queue::claim_one(s, "w1", 1000, 5000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!([&a.uid, &b2.uid, &c.uid], [&uids[1], &uids[2], &uids[0]]);
    assert_eq!(a.generation, 1);
    // Everything due is leased; the last one is not due yet.
    assert!(
        queue::claim_one(s, "w3", 1000, 5000)
            .await
            .unwrap()
            .is_none()
    );
    let mut conn = s.conn().await.unwrap();
    assert_eq!(queue::next_due_at(&mut conn).await.unwrap(), Some(100));
}

async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out(b: Backend) {
    let db = TestDb::new(b).await;
    seed(&db.store, &[100]).await;
    let s = &db.store;
    let old = queue::claim_one(s, "crashed", 1000, 5000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        queue::claim_one(s, "w2", 5999, 5000)
            .await
            .unwrap()
            .is_none()
    );
    let new = queue::claim_one(s, "w2", 6001, 5000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.uid, old.uid);

    let mut conn = s.conn().await.unwrap();
    let lost = queue::finish(&mut conn, &old, &ready(1, None), 6002)
        .await
        .unwrap_err();
    assert!(matches!(lost, StoreError::LeaseLost(_)));
    drop(conn);
    assert!(matches!(
        queue::renew(s, &old, 9000).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        queue::report_progress(s, &old, Phase::Failed, "stale", None, 6003).await,
        Err(StoreError::LeaseLost(_))
    ));

    queue::renew(s, &new, 20_000).await.unwrap();
    let mut conn = s.conn().await.unwrap();
    queue::finish(&mut conn, &new, &ready(1, Some(50_000)), 6004)
        .await
        .unwrap();
    let d = deployments::get(&mut conn, &new.uid, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.phase, Phase::Ready);
    assert_eq!(d.observed_generation, 1);
    assert_eq!(d.due_at, Some(50_000));
    assert_eq!(d.lease_owner, None);
}

async fn a_generation_change_during_a_pass_keeps_the_deployment_due(b: Backend) {
    let db = TestDb::new(b).await;
    let uids = seed(&db.store, &[100]).await;
    let s = &db.store;
    let lease = queue::claim_one(s, "w1", 1000, 5000)
        .await
        .unwrap()
        .unwrap();
    let mut conn = s.conn().await.unwrap();
    // An API write lands mid-pass: new values, generation 2, due at 1500.
    let tv = deployments::get(&mut conn, &uids[0], None)
        .await
        .unwrap()
        .unwrap()
        .template_version_id;
    deployments::set_desired_values(&mut conn, &uids[0], &tv, &json!({"a": 1}), 1500)
        .await
        .unwrap();
    let mut failed = ready(1, Some(99_000));
    failed.attempts = 3;
    queue::finish(&mut conn, &lease, &failed, 2000)
        .await
        .unwrap();
    let d = deployments::get(&mut conn, &uids[0], None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.generation, 2);
    assert_eq!(d.observed_generation, 1);
    assert_eq!(
        d.due_at,
        Some(2000),
        "the new generation must not wait for the resync"
    );
    assert_eq!(d.attempts, 0);
}

async fn released_leases_are_due_again_at_once(b: Backend) {
    let db = TestDb::new(b).await;
    seed(&db.store, &[100]).await;
    let s = &db.store;
    let lease = queue::claim_one(s, "w1", 1000, 60_000)
        .await
        .unwrap()
        .unwrap();
    queue::release(s, &lease).await.unwrap();
    let again = queue::claim_one(s, "w2", 1001, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.uid, lease.uid);
}

async fn a_deployment_in_flight_is_not_claimable_until_its_lease_ends(b: Backend) {
    let db = TestDb::new(b).await;
    seed(&db.store, &[100, 10_000]).await;
    let s = &db.store;
    // SQLite has one connection: take it for each read only.
    let next = |now: i64| async move {
        let mut conn = s.conn().await.unwrap();
        queue::next_claimable_at(&mut conn, now).await.unwrap()
    };
    assert_eq!(next(1000).await, Some(100));
    // Held until 6000: idle workers sleep until the lease could be taken
    // over (6001), not "due since 100" in a loop.
    let lease = queue::claim_one(s, "w1", 1000, 5000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next(1000).await, Some(6001));
    // Renewed past the other's due time: that one comes first.
    queue::renew(s, &lease, 20_000).await.unwrap();
    assert_eq!(next(1000).await, Some(10_000));
    // An expired lease no longer hides the deployment's own due time.
    assert_eq!(next(30_000).await, Some(100));
}

async fn cluster_changes_make_deployments_due_unless_a_pass_holds_them(b: Backend) {
    let db = TestDb::new(b).await;
    let uids = seed(&db.store, &[50_000, 100, 60_000]).await;
    let s = &db.store;
    // uids[1] is due at 100 and gets claimed: in flight.
    let lease = queue::claim_one(s, "w1", 1000, 5000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.uid, uids[1]);
    let asked = vec![
        uids[0].clone(),
        uids[1].clone(),
        "no-such-deployment".to_string(),
    ];
    let made = queue::make_due(s, &asked, 2000).await.unwrap();
    assert_eq!(made.due, [uids[0].clone()]);
    assert_eq!(made.in_flight, [uids[1].clone()]);
    let mut c = s.conn().await.unwrap();
    let due = |d: Option<caelus_store::deployments::Deployment>| d.unwrap().due_at;
    assert_eq!(
        due(deployments::get(&mut c, &uids[0], None).await.unwrap()),
        Some(2000)
    );
    // Not asked about: untouched.
    assert_eq!(
        due(deployments::get(&mut c, &uids[2], None).await.unwrap()),
        Some(60_000)
    );
    drop(c);
    // Due earlier than the change: keeps its time.
    queue::make_due(s, &[uids[0].clone()], 3000).await.unwrap();
    let mut c = s.conn().await.unwrap();
    assert_eq!(
        due(deployments::get(&mut c, &uids[0], None).await.unwrap()),
        Some(2000)
    );
}
