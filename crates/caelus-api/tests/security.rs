//! The security edge over HTTP: tenant names, tenant scoping of admin-made
//! deployments, rollback rules, failed-authentication limits, token expiry and
//! last use, the global audit log, and the metrics endpoint's bounds and token.

mod common;

use caelus_core::auth_limit::FailureLimit;
use caelus_core::revision::{RevisionKind, RevisionOutcome};
use caelus_store::revisions::{self, FinishedRevision, NewRevision};
use caelus_store::{Backend, now_ms, on_both_backends};
use common::Server;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    tenant_names_are_validated_and_reserved_ones_refused,
    admin_deployments_belong_to_the_named_or_the_system_tenant,
    a_tenant_cannot_roll_back_to_a_retired_version,
    tokens_expire_and_record_their_last_use,
    admins_read_the_global_audit_log_with_filters_and_pages,
);

async fn tenant_names_are_validated_and_reserved_ones_refused(b: Backend) {
    let s = Server::start(b).await;
    for (tenant, why) in [
        ("", "must not be empty"),
        ("admin", "reserved"),
        ("system", "reserved"),
        ("caelus", "reserved"),
        ("caelus-ops", "reserved"),
        ("Acme", "not a valid tenant name"),
        ("a_b", "not a valid tenant name"),
    ] {
        let r = s
            .post(
                "/api/v1/tokens",
                &s.admin,
                json!({"name": "t", "role": "tenant", "tenant": tenant}),
            )
            .await;
        r.problem(422);
        assert_eq!(r.fields(), ["tenant"], "{tenant}");
        assert!(
            r.body["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .contains(why),
            "{tenant}: {}",
            r.body
        );
    }
    // Admin tokens carry no tenant.
    let r = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "ops", "role": "admin", "tenant": "acme"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["tenant"]);
    let r = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "ops", "role": "admin"}),
        )
        .await;
    assert_eq!(r.ok(201)["tenant"], serde_json::Value::Null);
    // Nothing was stored by the refusals: the bootstrap admin and the one admin.
    assert_eq!(s.count("tokens").await, 2);
}

async fn admin_deployments_belong_to_the_named_or_the_system_tenant(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let acme = s.tenant("acme").await;
    let mine = s.create_deployment(&s.admin, "ops wiki").await;
    assert_eq!(mine["tenant"], "system");
    let uid = mine["uid"].as_str().unwrap();
    let named = s
        .post(
            "/api/v1/deployments",
            &s.admin,
            json!({"name": "for acme", "product": "wiki", "version": "1.0.0", "tenant": "acme"}),
        )
        .await;
    assert_eq!(named.ok(201)["tenant"], "acme");
    for reserved in ["admin", "system", "caelus-x", ""] {
        let r = s
            .post(
                "/api/v1/deployments",
                &s.admin,
                json!({"name": "bad", "product": "wiki", "version": "1.0.0", "tenant": reserved}),
            )
            .await;
        r.problem(422);
        assert_eq!(r.fields(), ["tenant"], "{reserved}");
    }
    // The tenant sees only its own; the system tenant's deployment is not found.
    let list = s.get("/api/v1/deployments", &acme).await;
    let names: Vec<_> = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["for acme"]);
    s.get(&format!("/api/v1/deployments/{uid}"), &acme)
        .await
        .problem(404);
    s.call(
        Method::DELETE,
        &format!("/api/v1/deployments/{uid}"),
        &acme,
        None,
    )
    .await
    .problem(404);
    // An admin's empty tenant filter is refused, never read as "all".
    let r = s.get("/api/v1/deployments?tenant=", &s.admin).await;
    r.problem(400);
    assert_eq!(r.fields(), ["tenant"]);
    let system = s.get("/api/v1/deployments?tenant=system", &s.admin).await;
    assert_eq!(system.ok(200)["items"].as_array().unwrap().len(), 1);
}

async fn a_tenant_cannot_roll_back_to_a_retired_version(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let acme = s.tenant("acme").await;
    let d = s.create_deployment(&acme, "wiki").await;
    let uid = d["uid"].as_str().unwrap().to_string();
    // Revision 1 ran 1.0.0 (as a worker would have recorded it).
    {
        let mut tx = s.db.store.begin().await.unwrap();
        let dep = caelus_store::deployments::get(&mut tx, &uid, None)
            .await
            .unwrap()
            .unwrap();
        let n = revisions::insert_next(
            &mut tx,
            &NewRevision {
                deployment_uid: &uid,
                generation: 1,
                template_version_id: &dep.template_version_id,
                user_values: &json!({"replicaCount": 2}),
                requested_by: "test",
                started_at: now_ms(),
                kind: RevisionKind::Install,
            },
        )
        .await
        .unwrap();
        revisions::finish(
            &mut tx,
            &uid,
            n,
            &FinishedRevision {
                outcome: RevisionOutcome::Deployed,
                manifest_hash: None,
                inventory: &json!([]),
                error: None,
                finished_at: now_ms(),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    s.post(
        "/api/v1/products/wiki/versions/1.0.0/deprecate",
        &s.admin,
        json!({}),
    )
    .await
    .ok(200);
    s.post(
        "/api/v1/products/wiki/versions/1.0.0/retire",
        &s.admin,
        json!({}),
    )
    .await
    .ok(200);
    let path = format!("/api/v1/deployments/{uid}/rollback");
    for dry_run in [false, true] {
        let r = s
            .post(&path, &acme, json!({"revision": 1, "dry_run": dry_run}))
            .await;
        let body = r.problem(403);
        assert!(
            body["detail"].as_str().unwrap().contains("retired"),
            "{body}"
        );
    }
    // Nothing changed.
    let now = s.get(&format!("/api/v1/deployments/{uid}"), &acme).await;
    assert_eq!(now.ok(200)["generation"], 1);
    // An admin may, warned (retiring must not strand a broken deployment).
    let plan = s
        .post(&path, &s.admin, json!({"revision": 1, "dry_run": true}))
        .await;
    let plan = plan.ok(200);
    assert!(plan["warnings"].to_string().contains("retired"), "{plan}");
    // Rollback to a revision that never deployed is refused naming the field.
    let r = s.post(&path, &acme, json!({"revision": 7})).await;
    r.problem(422);
    assert_eq!(r.fields(), ["revision"]);
}

async fn tokens_expire_and_record_their_last_use(b: Backend) {
    let s = Server::start(b).await;
    let r = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "long", "role": "tenant", "tenant": "acme", "expires_in": "30d"}),
        )
        .await;
    let long = r.ok(201).clone();
    let expires = time::OffsetDateTime::parse(
        long["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_days = (expires - time::OffsetDateTime::now_utc()).whole_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&in_days), "{in_days}");
    assert_eq!(long["last_used_at"], serde_json::Value::Null);

    for bad in ["30", "30x", "0d", "-1d", "9999d"] {
        let r = s
            .post(
                "/api/v1/tokens",
                &s.admin,
                json!({"name": "bad", "role": "tenant", "tenant": "acme", "expires_in": bad}),
            )
            .await;
        r.problem(422);
        assert_eq!(r.fields(), ["expires_in"], "{bad}");
    }

    // Use records last_used_at.
    let secret = long["secret"].as_str().unwrap();
    s.get("/api/v1/deployments", secret).await.ok(200);
    let list = s.get("/api/v1/tokens", &s.admin).await;
    let row = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == long["id"])
        .unwrap()
        .clone();
    assert!(row["last_used_at"].is_string(), "{row}");
    assert_eq!(row["expires_at"], long["expires_at"]);

    // A short-lived token stops working when it expires, saying so.
    let r = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "brief", "role": "tenant", "tenant": "acme", "expires_in": "1s"}),
        )
        .await;
    let brief = r.ok(201)["secret"].as_str().unwrap().to_string();
    s.get("/api/v1/deployments", &brief).await.ok(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = s.get("/api/v1/deployments", &brief).await;
    let body = r.problem(401);
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

async fn admins_read_the_global_audit_log_with_filters_and_pages(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    s.create_deployment(&acme, "a1").await;
    s.create_deployment(&acme, "a2").await;
    s.create_deployment(&globex, "g1").await;

    // Tenants may not read it.
    s.get("/api/v1/events", &acme).await.problem(403);

    let all = s.get("/api/v1/events", &s.admin).await;
    let items = all.ok(200)["items"].as_array().unwrap().clone();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first: the last deployment is first.
    assert_eq!(actions[0], "deployment.create");
    assert!(
        actions.contains(&"product.create") || actions.iter().any(|a| a.starts_with("template")),
        "{actions:?}"
    );
    let ids: Vec<i64> = items.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    let q = |query: &str| format!("/api/v1/events?{query}");
    let acme_events = s
        .get(&q("tenant=acme&action=deployment.create"), &s.admin)
        .await;
    let acme_events = acme_events.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(acme_events.len(), 2);
    assert!(acme_events.iter().all(|e| e["tenant"] == "acme"));
    // The actor filter matches a token by name, whatever its tenant suffix.
    let by_actor = s.get(&q("actor=token:globex"), &s.admin).await;
    let by_actor = by_actor.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(by_actor.len(), 1, "{by_actor:?}");
    assert_eq!(by_actor[0]["actor"], "token:globex (globex)");
    let exact = s.get(&q("actor=token:globex%20(globex)"), &s.admin).await;
    assert_eq!(exact.ok(200)["items"].as_array().unwrap().len(), 1);
    // Token names are not prefixes of each other.
    let none = s.get(&q("actor=token:glob"), &s.admin).await;
    assert!(none.ok(200)["items"].as_array().unwrap().is_empty());

    // Time window: everything is after an hour ago and before an hour from now.
    let hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = s
        .get(&q(&format!("since={}", urlencode(&hour_ago))), &s.admin)
        .await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), items.len());
    let r = s
        .get(&q(&format!("until={}", urlencode(&hour_ago))), &s.admin)
        .await;
    assert!(r.ok(200)["items"].as_array().unwrap().is_empty());

    // Keyset pages of 2 cover everything once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => q(&format!("limit=2&cursor={c}")),
            None => q("limit=2"),
        };
        let page = s.get(&path, &s.admin).await;
        let page = page.ok(200).clone();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // Bad filters name the parameter; an empty one is refused, not read as "all".
    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("tenant=", "tenant"),
        ("actor=", "actor"),
        ("cursor=nope", "cursor"),
        ("limit=0", "limit"),
        (
            "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
    ] {
        let r = s.get(&q(query), &s.admin).await;
        r.problem(400);
        assert_eq!(r.fields(), [field], "{query}");
    }
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn failed_authentication_is_rate_limited_per_address() {
    let s = Server::start_with(Backend::Sqlite, |state| {
        state.with_auth_limit(FailureLimit {
            max_failures: 3,
            window: Duration::from_secs(60),
        })
    })
    .await;
    for _ in 0..3 {
        s.get("/api/v1/deployments", "cae_wrong").await.problem(401);
    }
    let r = s.get("/api/v1/deployments", "cae_wrong").await;
    let body = r.problem(429);
    assert!(
        body["detail"].as_str().unwrap().contains("retry in"),
        "{body}"
    );
    // While blocked, even a correct token is refused: a guesser learns nothing.
    let raw = reqwest::Client::new()
        .get(format!("{}/api/v1/deployments", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    let retry: u64 = raw.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(raw.headers()["content-type"], "application/problem+json");

    // The UI sign-in shares the limit and answers 429 with Retry-After too.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .get(format!("{}/ui/login", s.base))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = login.text().await.unwrap();
    let marker = "name=\"_csrf\" value=\"";
    let i = page.find(marker).unwrap() + marker.len();
    let csrf = page[i..i + 64].to_string();
    let r = http
        .post(format!("{}/ui/login", s.base))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}&token={}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("too many failed authentications")
    );
    // Requests without credentials (health probes) are not authentication failures.
    let health = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_ui_sign_in_failure_counts_toward_the_limit() {
    let s = Server::start_with(Backend::Sqlite, |state| {
        state.with_auth_limit(FailureLimit {
            max_failures: 2,
            window: Duration::from_secs(60),
        })
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let login = http
            .get(format!("{}/ui/login", s.base))
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let page = login.text().await.unwrap();
        let marker = "name=\"_csrf\" value=\"";
        let i = page.find(marker).unwrap() + marker.len();
        let csrf = page[i..i + 64].to_string();
        let r = http
            .post(format!("{}/ui/login", s.base))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("_csrf={csrf}&token=cae_guess"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
    // …and the API from the same address is blocked with it.
    s.get("/api/v1/deployments", &s.admin).await.problem(429);
}

#[tokio::test]
async fn metrics_labels_stay_bounded_and_metrics_can_require_a_token() {
    let s = Server::start_with(Backend::Sqlite, |state| {
        state.with_metrics_token(Some("scrape-secret".into()))
    })
    .await;
    let http = reqwest::Client::new();
    for junk in ["FOO", "BREW", "X-JUNK-1"] {
        let m = reqwest::Method::from_bytes(junk.as_bytes()).unwrap();
        let _ = http
            .request(m, format!("{}/api/v1/deployments", s.base))
            .send()
            .await
            .unwrap();
    }
    let open = http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 401);
    assert_eq!(open.headers()["content-type"], "application/problem+json");
    let wrong = http
        .get(format!("{}/metrics", s.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let text = http
        .get(format!("{}/metrics", s.base))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    let text = text.text().await.unwrap();
    assert!(text.contains("method=\"other\""), "{text}");
    for junk in ["FOO", "BREW", "X-JUNK-1"] {
        assert!(
            !text.contains(&format!("method=\"{junk}\"")),
            "{junk} leaked into labels"
        );
    }
}
