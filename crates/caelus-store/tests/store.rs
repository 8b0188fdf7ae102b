//! The store suite: every test runs on SQLite and on PostgreSQL.

use caelus_core::lifecycle::Lifecycle;
use caelus_core::status::{DesiredState, Phase};
use caelus_core::template::Capabilities;
use caelus_store::deployments::{self, ListFilter, NewDeployment};
use caelus_store::events::{self, NewEvent};
use caelus_store::products::{self, Product};
use caelus_store::revisions::{self, NewRevision};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::testing::TestDb;
use caelus_store::tokens::{self, Token};
use caelus_store::{Backend, Cursor, Store, StoreError, now_ms};
use serde_json::json;

use caelus_store::on_both_backends;

on_both_backends!(
    products_are_unique_by_slug_and_paginate,
    template_versions_round_trip_and_published_ones_cannot_be_rewritten,
    lifecycle_moves_are_guarded_by_the_current_state,
    deployments_are_scoped_to_their_tenant,
    desired_state_changes_bump_generation_and_make_work_due,
    deployment_names_are_unique_per_tenant,
    revisions_number_themselves,
    events_are_ordered_per_deployment,
    tokens_are_found_by_hash_until_revoked,
    a_rolled_back_transaction_leaves_nothing,
);

fn product(slug: &str, created_at: i64) -> Product {
    Product {
        id: uuid::Uuid::new_v4().to_string(),
        slug: slug.into(),
        name: format!("{slug} name"),
        description: String::new(),
        created_at,
    }
}

fn version(p: &Product, v: &str, lifecycle: Lifecycle) -> TemplateVersion {
    TemplateVersion {
        id: uuid::Uuid::new_v4().to_string(),
        product_id: p.id.clone(),
        product_slug: p.slug.clone(),
        version: v.into(),
        chart_ref: format!(
            "oci://127.0.0.1:5000/charts/{}@sha256:{}",
            p.slug,
            "a".repeat(64)
        ),
        chart_digest: format!("sha256:{}", "a".repeat(64)),
        chart_metadata: json!({"name": p.slug}),
        default_values: json!({"replicaCount": 1}),
        values_schema: None,
        values_allowlist: vec!["replicaCount".into()],
        capabilities: Capabilities::default(),
        lifecycle,
        created_at: now_ms(),
        updated_at: now_ms(),
    }
}

async fn seed(store: &Store) -> (Product, TemplateVersion) {
    let mut c = store.conn().await.unwrap();
    let p = product("wiki", now_ms());
    products::insert(&mut c, &p).await.unwrap();
    let v = version(&p, "1.0.0", Lifecycle::Published);
    templates::insert(&mut c, &v).await.unwrap();
    (p, v)
}

fn new_deployment(tv: &TemplateVersion, tenant: &str, name: &str, now: i64) -> NewDeployment {
    let uid = uuid::Uuid::new_v4().to_string();
    NewDeployment {
        namespace_name: caelus_core::identity::namespace_name(&uid).unwrap(),
        release_name: caelus_core::identity::release_name(&uid).unwrap(),
        uid,
        tenant: tenant.into(),
        display_name: name.into(),
        product_id: tv.product_id.clone(),
        template_version_id: tv.id.clone(),
        user_values: json!({"replicaCount": 2}),
        now,
    }
}

async fn products_are_unique_by_slug_and_paginate(b: Backend) {
    let db = TestDb::new(b).await;
    let mut c = db.store.conn().await.unwrap();
    for i in 0..5 {
        products::insert(&mut c, &product(&format!("p{i}"), 1000 + i))
            .await
            .unwrap();
    }
    let dup = products::insert(&mut c, &product("p1", 5))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::AlreadyExists(ref w) if w.contains("p1")),
        "{dup}"
    );

    let first = products::list(&mut c, 2, None).await.unwrap();
    assert_eq!(
        first
            .items
            .iter()
            .map(|p| p.slug.as_str())
            .collect::<Vec<_>>(),
        ["p0", "p1"]
    );
    let cursor = Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
    let second = products::list(&mut c, 2, Some(&cursor)).await.unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|p| p.slug.as_str())
            .collect::<Vec<_>>(),
        ["p2", "p3"]
    );
    let cursor = Cursor::decode(second.next_cursor.as_deref().unwrap()).unwrap();
    let third = products::list(&mut c, 2, Some(&cursor)).await.unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.next_cursor.is_none());
    assert_eq!(
        products::get(&mut c, "p3").await.unwrap().unwrap().name,
        "p3 name"
    );
    assert!(products::get(&mut c, "nope").await.unwrap().is_none());
}

async fn template_versions_round_trip_and_published_ones_cannot_be_rewritten(b: Backend) {
    let db = TestDb::new(b).await;
    let mut c = db.store.conn().await.unwrap();
    let p = product("db", now_ms());
    products::insert(&mut c, &p).await.unwrap();
    let mut draft = version(&p, "1.0.0", Lifecycle::Draft);
    draft.values_schema = Some(json!({"type": "object"}));
    templates::insert(&mut c, &draft).await.unwrap();
    let got = templates::get(&mut c, "db", "1.0.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, draft);

    draft.values_allowlist.push("resources.*".into());
    templates::update_draft(&mut c, &draft).await.unwrap();
    assert_eq!(
        templates::get_by_id(&mut c, &draft.id)
            .await
            .unwrap()
            .unwrap()
            .values_allowlist,
        vec!["replicaCount", "resources.*"]
    );

    templates::set_lifecycle(
        &mut c,
        &draft.id,
        Lifecycle::Draft,
        Lifecycle::Published,
        now_ms(),
    )
    .await
    .unwrap();
    draft.chart_digest = format!("sha256:{}", "b".repeat(64));
    assert!(templates::update_draft(&mut c, &draft).await.is_err());
    let stored = templates::get(&mut c, "db", "1.0.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.chart_digest, format!("sha256:{}", "a".repeat(64)));
    assert_eq!(stored.lifecycle, Lifecycle::Published);

    let again = templates::insert(&mut c, &version(&p, "1.0.0", Lifecycle::Draft)).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists(_))));

    templates::insert(&mut c, &version(&p, "2.0.0", Lifecycle::Draft))
        .await
        .unwrap();
    let all = templates::list(&mut c, &p.id, false, 10, None)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let visible = templates::list(&mut c, &p.id, true, 10, None)
        .await
        .unwrap();
    assert_eq!(
        visible
            .items
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["1.0.0"]
    );
}

async fn lifecycle_moves_are_guarded_by_the_current_state(b: Backend) {
    let db = TestDb::new(b).await;
    let (_, v) = seed(&db.store).await;
    let mut c = db.store.conn().await.unwrap();
    // Someone else already deprecated it: a move checked from `draft` must not apply.
    assert!(
        templates::set_lifecycle(
            &mut c,
            &v.id,
            Lifecycle::Draft,
            Lifecycle::Published,
            now_ms()
        )
        .await
        .is_err()
    );
    templates::set_lifecycle(
        &mut c,
        &v.id,
        Lifecycle::Published,
        Lifecycle::Deprecated,
        now_ms(),
    )
    .await
    .unwrap();
    let got = templates::get_by_id(&mut c, &v.id).await.unwrap().unwrap();
    assert_eq!(got.lifecycle, Lifecycle::Deprecated);
}

async fn deployments_are_scoped_to_their_tenant(b: Backend) {
    let db = TestDb::new(b).await;
    let (_, v) = seed(&db.store).await;
    let mut c = db.store.conn().await.unwrap();
    let a = new_deployment(&v, "acme", "one", 1000);
    let other = new_deployment(&v, "globex", "two", 2000);
    deployments::insert(&mut c, &a).await.unwrap();
    deployments::insert(&mut c, &other).await.unwrap();

    let got = deployments::get(&mut c, &a.uid, Some("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.display_name, "one");
    assert_eq!(got.product_slug, "wiki");
    assert_eq!(got.version, "1.0.0");
    assert_eq!(got.desired_state, DesiredState::Present);
    assert_eq!((got.generation, got.observed_generation), (1, 0));
    assert_eq!(got.phase, Phase::Pending);
    assert_eq!(got.due_at, Some(1000));
    assert_eq!(got.user_values, json!({"replicaCount": 2}));
    assert!(
        deployments::get(&mut c, &a.uid, Some("globex"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        deployments::get(&mut c, &a.uid, None)
            .await
            .unwrap()
            .is_some()
    );

    let acme = ListFilter {
        tenant: Some("acme".into()),
        ..Default::default()
    };
    let page = deployments::list(&mut c, &acme, 10, None).await.unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|d| d.uid.as_str())
            .collect::<Vec<_>>(),
        [a.uid.as_str()]
    );
    let all = deployments::list(&mut c, &ListFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let by_phase = ListFilter {
        phase: Some(Phase::Ready),
        ..Default::default()
    };
    assert!(
        deployments::list(&mut c, &by_phase, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let by_product = ListFilter {
        product_slug: Some("wiki".into()),
        ..Default::default()
    };
    assert_eq!(
        deployments::list(&mut c, &by_product, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

async fn desired_state_changes_bump_generation_and_make_work_due(b: Backend) {
    let db = TestDb::new(b).await;
    let (_, v) = seed(&db.store).await;
    let mut c = db.store.conn().await.unwrap();
    let d = new_deployment(&v, "acme", "one", 1000);
    deployments::insert(&mut c, &d).await.unwrap();

    deployments::set_desired_values(&mut c, &d.uid, &v.id, &json!({"replicaCount": 5}), 2000)
        .await
        .unwrap();
    let got = deployments::get(&mut c, &d.uid, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.generation, 2);
    assert_eq!(got.due_at, Some(2000));
    assert_eq!(got.user_values, json!({"replicaCount": 5}));

    assert!(deployments::set_absent(&mut c, &d.uid, 3000).await.unwrap());
    assert!(!deployments::set_absent(&mut c, &d.uid, 4000).await.unwrap());
    let got = deployments::get(&mut c, &d.uid, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.desired_state, DesiredState::Absent);
    assert_eq!(got.generation, 3);
    assert_eq!(got.phase, Phase::Deleting);
    // Values of a deployment being deleted cannot change.
    assert!(
        deployments::set_desired_values(&mut c, &d.uid, &v.id, &json!({}), 5000)
            .await
            .is_err()
    );
}

async fn deployment_names_are_unique_per_tenant(b: Backend) {
    let db = TestDb::new(b).await;
    let (_, v) = seed(&db.store).await;
    let mut c = db.store.conn().await.unwrap();
    deployments::insert(&mut c, &new_deployment(&v, "acme", "same", 1))
        .await
        .unwrap();
    deployments::insert(&mut c, &new_deployment(&v, "globex", "same", 2))
        .await
        .unwrap();
    let dup = deployments::insert(&mut c, &new_deployment(&v, "acme", "same", 3))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::AlreadyExists(ref w) if w.contains("'same'")),
        "{dup}"
    );
}

async fn revisions_number_themselves(b: Backend) {
    let db = TestDb::new(b).await;
    let (_, v) = seed(&db.store).await;
    let mut c = db.store.conn().await.unwrap();
    let d = new_deployment(&v, "acme", "one", 1);
    deployments::insert(&mut c, &d).await.unwrap();
    let values = json!({"replicaCount": 1});
    for expected in 1..=3 {
        let n = revisions::insert_next(
            &mut c,
            &NewRevision {
                deployment_uid: &d.uid,
                generation: expected,
                template_version_id: &v.id,
                user_values: &values,
                requested_by: "token:ops",
                started_at: expected,
                kind: revisions::RevisionKind::Upgrade,
            },
        )
        .await
        .unwrap();
        assert_eq!(n, expected);
    }
    let list = revisions::list(&mut c, &d.uid, None, 10).await.unwrap();
    assert_eq!(list.iter().map(|r| r.number).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(list[0].version, "1.0.0");
    assert_eq!(list[0].outcome, revisions::RevisionOutcome::Pending);
    assert_eq!(
        revisions::list(&mut c, &d.uid, Some(2), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // The rendered NOTES.txt is kept on its revision.
    assert_eq!(list[0].notes, None);
    revisions::set_notes(&mut c, &d.uid, 2, Some("Open http://shop.example/"))
        .await
        .unwrap();
    let two = revisions::get(&mut c, &d.uid, 2).await.unwrap().unwrap();
    assert_eq!(two.notes.as_deref(), Some("Open http://shop.example/"));
    assert_eq!(
        revisions::get(&mut c, &d.uid, 3)
            .await
            .unwrap()
            .unwrap()
            .notes,
        None
    );
    assert!(revisions::get(&mut c, &d.uid, 9).await.unwrap().is_none());
}

async fn events_are_ordered_per_deployment(b: Backend) {
    let db = TestDb::new(b).await;
    let mut c = db.store.conn().await.unwrap();
    for (i, uid) in ["a", "b", "a"].iter().enumerate() {
        events::insert(
            &mut c,
            &NewEvent {
                deployment_uid: Some(uid),
                tenant: Some("acme"),
                subject: format!("deployment/{uid}"),
                action: "deployment.update",
                actor: "token:ops",
                message: format!("step {i}"),
                details: json!({"i": i}),
            },
            i as i64,
        )
        .await
        .unwrap();
    }
    let a = events::list_for_deployment(&mut c, "a", 0, 10)
        .await
        .unwrap();
    assert_eq!(
        a.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
        ["step 0", "step 2"]
    );
    assert_eq!(a[1].details, json!({"i": 2}));
    let after = events::list_for_deployment(&mut c, "a", a[0].id, 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(events::list_all(&mut c, 0, 10).await.unwrap().len(), 3);
}

async fn tokens_are_found_by_hash_until_revoked(b: Backend) {
    let db = TestDb::new(b).await;
    let mut c = db.store.conn().await.unwrap();
    let t = Token {
        id: uuid::Uuid::new_v4().to_string(),
        name: "ci".into(),
        role: "tenant".into(),
        tenant: "acme".into(),
        token_hash: "h1".into(),
        prefix: "cae_abcd".into(),
        created_by: "bootstrap".into(),
        created_at: now_ms(),
        revoked_at: None,
    };
    tokens::insert(&mut c, &t).await.unwrap();
    assert_eq!(
        tokens::find_active_by_hash(&mut c, "h1")
            .await
            .unwrap()
            .unwrap()
            .id,
        t.id
    );
    assert!(
        tokens::find_active_by_hash(&mut c, "h2")
            .await
            .unwrap()
            .is_none()
    );
    tokens::revoke(&mut c, &t.id, now_ms()).await.unwrap();
    assert!(
        tokens::find_active_by_hash(&mut c, "h1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        tokens::revoke(&mut c, &t.id, now_ms()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        tokens::get(&mut c, &t.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(tokens::list(&mut c, 10, None).await.unwrap().items.len(), 1);
}

async fn a_rolled_back_transaction_leaves_nothing(b: Backend) {
    let db = TestDb::new(b).await;
    {
        let mut tx = db.store.begin().await.unwrap();
        products::insert(&mut tx, &product("ghost", 1))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    let mut tx = db.store.begin().await.unwrap();
    products::insert(&mut tx, &product("real", 1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // SQLite runs on one connection: take it only once the transaction is done.
    let mut c = db.store.conn().await.unwrap();
    assert!(products::get(&mut c, "ghost").await.unwrap().is_none());
    assert!(products::get(&mut c, "real").await.unwrap().is_some());
}
