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
    only_a_retained_deployment_is_restored_and_then_installs_again,
    deployment_names_are_unique_per_tenant,
    revisions_number_themselves,
    events_are_ordered_per_deployment,
    tokens_are_found_by_hash_until_revoked,
    token_use_is_recorded_at_most_once_a_minute,
    the_audit_log_filters_and_pages_newest_first,
    ui_sessions_expire_end_and_carry_one_flash,
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
    // An empty tenant is a tenant with no deployments, never "every tenant".
    let empty = ListFilter {
        tenant: Some(String::new()),
        ..Default::default()
    };
    assert!(
        deployments::list(&mut c, &empty, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        deployments::get(&mut c, &a.uid, Some(""))
            .await
            .unwrap()
            .is_none()
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

/// `restore` (issue 11): only from `Retained` (and not once a purge was
/// asked for); present again at a new generation with its values, and with
/// no revision deployed any more, so the next pass is an install.
async fn only_a_retained_deployment_is_restored_and_then_installs_again(b: Backend) {
    let db = TestDb::new(b).await;
    let (_, v) = seed(&db.store).await;
    let mut c = db.store.conn().await.unwrap();
    // The worker's pass that ends Retained, as far as these rows go.
    async fn retained(c: &mut caelus_store::Conn, uid: &str) {
        sqlx::query(
            "UPDATE deployments SET phase = 'Retained', observed_generation = generation WHERE uid = $1",
        )
        .bind(uid)
        .execute(c)
        .await
        .unwrap();
    }
    let d = new_deployment(&v, "acme", "one", 1000);
    deployments::insert(&mut c, &d).await.unwrap();
    let values = json!({"replicaCount": 1});
    let n = revisions::insert_next(
        &mut c,
        &NewRevision {
            deployment_uid: &d.uid,
            generation: 1,
            template_version_id: &v.id,
            user_values: &values,
            requested_by: "token:ops",
            started_at: 1000,
            kind: revisions::RevisionKind::Install,
        },
    )
    .await
    .unwrap();
    revisions::finish(
        &mut c,
        &d.uid,
        n,
        &revisions::FinishedRevision {
            outcome: revisions::RevisionOutcome::Deployed,
            manifest_hash: None,
            inventory: &json!([]),
            error: None,
            finished_at: 1100,
        },
    )
    .await
    .unwrap();
    assert!(
        !deployments::restore(&mut c, &d.uid, &values, 1500)
            .await
            .unwrap(),
        "it runs"
    );
    assert!(
        deployments::set_absent_keeping(&mut c, &d.uid, true, 2000)
            .await
            .unwrap()
    );
    assert!(
        !deployments::restore(&mut c, &d.uid, &values, 2500)
            .await
            .unwrap(),
        "still being deleted"
    );
    retained(&mut c, &d.uid).await;
    let before = deployments::get(&mut c, &d.uid, None)
        .await
        .unwrap()
        .unwrap();

    let restored_values = json!({"replicaCount": 3});
    assert!(
        deployments::restore(&mut c, &d.uid, &restored_values, 3000)
            .await
            .unwrap()
    );
    assert!(
        !deployments::restore(&mut c, &d.uid, &values, 3100)
            .await
            .unwrap(),
        "once"
    );
    let got = deployments::get(&mut c, &d.uid, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.desired_state, DesiredState::Present);
    assert_eq!(got.generation, before.generation + 1);
    assert_eq!(got.phase, Phase::Pending);
    assert_eq!(got.user_values, restored_values);
    assert_eq!(got.due_at, Some(3000));
    assert!(!got.keep_volumes);
    assert_eq!(
        got.current_revision, None,
        "nothing runs until it is installed"
    );
    assert!(
        revisions::last_deployed(&mut c, &d.uid)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        revisions::get(&mut c, &d.uid, n)
            .await
            .unwrap()
            .unwrap()
            .outcome,
        revisions::RevisionOutcome::Superseded
    );

    // A purge, once asked for, is not undone by a restore.
    let other = new_deployment(&v, "acme", "two", 1000);
    deployments::insert(&mut c, &other).await.unwrap();
    assert!(
        deployments::set_absent_keeping(&mut c, &other.uid, true, 2000)
            .await
            .unwrap()
    );
    retained(&mut c, &other.uid).await;
    assert!(deployments::purge(&mut c, &other.uid, 2500).await.unwrap());
    assert!(
        !deployments::restore(&mut c, &other.uid, &values, 3000)
            .await
            .unwrap()
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

    // The applied manifest is kept (compressed) and read back as written.
    assert_eq!(revisions::manifest(&mut c, &d.uid, 2).await.unwrap(), None);
    let manifest = serde_json::to_vec(
        &json!({"objects": vec![json!({"kind": "ConfigMap", "data": {"k": "v"}}); 200]}),
    )
    .unwrap();
    revisions::set_manifest(&mut c, &d.uid, 2, &manifest)
        .await
        .unwrap();
    assert_eq!(
        revisions::manifest(&mut c, &d.uid, 2).await.unwrap(),
        Some(manifest.clone())
    );
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT manifest FROM revisions WHERE deployment_uid = $1 AND number = 2",
    )
    .bind(&d.uid)
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert!(
        stored.len() * 10 < manifest.len(),
        "stored uncompressed: {} of {} bytes",
        stored.len(),
        manifest.len()
    );
    assert_eq!(revisions::manifest(&mut c, &d.uid, 3).await.unwrap(), None);
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
        tenant: Some("acme".into()),
        token_hash: "h1".into(),
        prefix: "cae_abcd".into(),
        created_by: "bootstrap".into(),
        created_at: now_ms(),
        revoked_at: None,
        expires_at: None,
        last_used_at: None,
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

async fn token_use_is_recorded_at_most_once_a_minute(b: Backend) {
    let db = TestDb::new(b).await;
    let mut c = db.store.conn().await.unwrap();
    let t = Token {
        id: uuid::Uuid::new_v4().to_string(),
        name: "ops".into(),
        role: "admin".into(),
        tenant: None,
        token_hash: "h".into(),
        prefix: "cae_x".into(),
        created_by: "test".into(),
        created_at: 1000,
        revoked_at: None,
        expires_at: Some(5000),
        last_used_at: None,
    };
    tokens::insert(&mut c, &t).await.unwrap();
    let got = tokens::get(&mut c, &t.id).await.unwrap().unwrap();
    assert_eq!(got.tenant, None);
    assert_eq!(got.expires_at, Some(5000));
    assert!(!got.is_expired(4999));
    assert!(got.is_expired(5000));
    assert!(
        tokens::touch_last_used(&mut c, &t.id, 100_000)
            .await
            .unwrap()
    );
    assert!(
        !tokens::touch_last_used(&mut c, &t.id, 130_000)
            .await
            .unwrap()
    );
    assert!(
        tokens::touch_last_used(&mut c, &t.id, 160_000)
            .await
            .unwrap()
    );
    let got = tokens::get(&mut c, &t.id).await.unwrap().unwrap();
    assert_eq!(got.last_used_at, Some(160_000));
}

async fn the_audit_log_filters_and_pages_newest_first(b: Backend) {
    use caelus_store::events::EventFilter;
    let db = TestDb::new(b).await;
    let mut c = db.store.conn().await.unwrap();
    for (i, (tenant, action, actor)) in [
        (Some("acme"), "deployment.create", "token:ci (acme)"),
        (Some("globex"), "deployment.create", "token:cid (globex)"),
        (None, "product.create", "token:ops (admin)"),
        (Some("acme"), "deployment.delete", "token:ci (acme)"),
        (Some(""), "odd", "system"),
    ]
    .into_iter()
    .enumerate()
    {
        events::insert(
            &mut c,
            &NewEvent {
                deployment_uid: None,
                tenant,
                subject: "x".into(),
                action,
                actor,
                message: String::new(),
                details: json!({}),
            },
            1000 * (i as i64 + 1),
        )
        .await
        .unwrap();
    }
    // SQLite's pool has one connection: give it back before `list` takes it.
    drop(c);
    let store = db.store.clone();
    let list = |f: EventFilter| {
        let store = store.clone();
        async move {
            let mut c = store.conn().await.unwrap();
            events::list_filtered(&mut c, &f, 10, None)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.at / 1000)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(EventFilter::default()).await, [5, 4, 3, 2, 1]);
    let acme = EventFilter {
        tenant: Some("acme".into()),
        ..Default::default()
    };
    assert_eq!(list(acme).await, [4, 1]);
    // An empty tenant matches the empty tenant only.
    let empty = EventFilter {
        tenant: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(list(empty).await, [5]);
    let ci = EventFilter {
        actor: Some("token:ci".into()),
        ..Default::default()
    };
    assert_eq!(list(ci).await, [4, 1]);
    let exact = EventFilter {
        actor: Some("token:cid (globex)".into()),
        ..Default::default()
    };
    assert_eq!(list(exact).await, [2]);
    let window = EventFilter {
        action: Some("deployment.create".into()),
        since: Some(2000),
        until: Some(5000),
        ..Default::default()
    };
    assert_eq!(list(window).await, [2]);
    // Pages of two, by cursor.
    let mut c = db.store.conn().await.unwrap();
    let p1 = events::list_filtered(&mut c, &EventFilter::default(), 2, None)
        .await
        .unwrap();
    let cursor = Cursor::decode(p1.next_cursor.as_ref().unwrap()).unwrap();
    let p2 = events::list_filtered(&mut c, &EventFilter::default(), 2, Some(&cursor))
        .await
        .unwrap();
    let ats: Vec<i64> = p1
        .items
        .iter()
        .chain(&p2.items)
        .map(|e| e.at / 1000)
        .collect();
    assert_eq!(ats, [5, 4, 3, 2]);
}

async fn ui_sessions_expire_end_and_carry_one_flash(b: Backend) {
    use caelus_store::ui_sessions::{self, UiSession};
    let db = TestDb::new(b).await;
    let mut c = db.store.conn().await.unwrap();
    let s = UiSession {
        id_hash: "hash-1".into(),
        token_id: "tok-1".into(),
        csrf: "csrf-1".into(),
        flash: None,
        created_at: 1000,
        expires_at: 2000,
    };
    ui_sessions::insert(&mut c, &s).await.unwrap();
    ui_sessions::insert(
        &mut c,
        &UiSession {
            id_hash: "hash-2".into(),
            expires_at: 9000,
            ..s.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ui_sessions::get_live(&mut c, "hash-1", 1999).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        ui_sessions::get_live(&mut c, "hash-1", 2000).await.unwrap(),
        None
    );
    ui_sessions::set_flash(&mut c, "hash-2", "info", "saved")
        .await
        .unwrap();
    assert_eq!(
        ui_sessions::take_flash(&mut c, "hash-2").await.unwrap(),
        Some(("info".into(), "saved".into()))
    );
    assert_eq!(
        ui_sessions::take_flash(&mut c, "hash-2").await.unwrap(),
        None
    );
    assert_eq!(ui_sessions::delete_expired(&mut c, 5000).await.unwrap(), 1);
    assert!(ui_sessions::delete(&mut c, "hash-2").await.unwrap());
    assert!(!ui_sessions::delete(&mut c, "hash-2").await.unwrap());
    ui_sessions::insert(
        &mut c,
        &UiSession {
            id_hash: "hash-3".into(),
            expires_at: 9000,
            ..s.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ui_sessions::delete_for_token(&mut c, "tok-1")
            .await
            .unwrap(),
        1
    );
}
