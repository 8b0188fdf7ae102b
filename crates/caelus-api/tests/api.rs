//! The API over HTTP against a real server, on SQLite and PostgreSQL.

mod common;

use caelus_store::Backend;
use common::{DIGEST_A, Server};
use reqwest::Method;
use serde_json::{Value, json};

use caelus_store::on_both_backends;

on_both_backends!(
    malformed_and_unknown_and_oversized_bodies_are_refused_and_nothing_is_stored,
    invalid_names_and_chart_references_name_the_field,
    values_outside_the_allowlist_are_refused_naming_every_path,
    published_versions_are_immutable,
    lifecycle_moves_only_forward,
    missing_or_invalid_tokens_are_401,
    tenants_never_see_or_touch_each_others_deployments,
    tenants_read_only_deployable_templates_and_cannot_administer,
    deployment_changes_bump_generation_and_are_audited,
    lists_paginate_with_cursors,
    tokens_are_stored_hashed_and_revocable,
    health_openapi_and_docs_are_served,
);

async fn malformed_and_unknown_and_oversized_bodies_are_refused_and_nothing_is_stored(b: Backend) {
    let s = Server::start(b).await;
    let events_before = s.count("events").await;

    let r = s
        .raw(
            Method::POST,
            "/api/v1/products",
            Some(&s.admin),
            Some("application/json"),
            b"{\"slug\": ".to_vec(),
        )
        .await;
    assert!(
        r.problem(400)["detail"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );

    let r = s
        .post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "wiki", "name": "Wiki", "colour": "blue"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["colour"]);
    assert!(
        r.body["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown field")
    );

    let r = s
        .post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "wiki", "name": 5}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["name"]);

    let huge = json!({"slug": "wiki", "name": "x".repeat(caelus_api::BODY_LIMIT_BYTES + 10)});
    s.post("/api/v1/products", &s.admin, huge)
        .await
        .problem(413);

    let r = s
        .raw(
            Method::POST,
            "/api/v1/products",
            Some(&s.admin),
            Some("text/plain"),
            b"slug=wiki".to_vec(),
        )
        .await;
    r.problem(415);

    // A body that is valid JSON but nested wrongly for a deployment.
    s.seed_catalog().await;
    let before = s.count("deployments").await;
    let r = s
        .post(
            "/api/v1/deployments",
            &s.admin,
            json!({"name": "x", "product": "wiki", "version": "1.0.0", "values": [1]}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["values"]);
    assert_eq!(s.count("deployments").await, before);
    assert_eq!(s.count("products").await, 1);
    // Two writes succeeded (product + version), each with one event; the refusals wrote none.
    assert_eq!(s.count("events").await, events_before + 2);
}

async fn invalid_names_and_chart_references_name_the_field(b: Backend) {
    let s = Server::start(b).await;
    let r = s
        .post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "Team Wiki", "name": " padded"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["slug", "name"]);

    s.post(
        "/api/v1/products",
        &s.admin,
        json!({"slug": "wiki", "name": "Wiki"}),
    )
    .await
    .ok(201);
    let (web, _) = s.chart("web", "1.0.0").await;
    let unknown_tag = web.replace(":1.0.0", ":9.9.9");
    let unknown_digest = format!("{}@{DIGEST_A}", web.trim_end_matches(":1.0.0"));
    for (chart, hint) in [
        (unknown_tag.as_str(), "not found"),
        (unknown_digest.as_str(), "not found"),
        (
            "oci://127.0.0.1:5000/charts/web@sha256:1234",
            "64 lowercase hex",
        ),
        ("https://charts.example.com/web-1.0.0.tgz", "oci://"),
        ("oci://127.0.0.1:5000/charts/web", "names no version"),
    ] {
        let r = s
            .post(
                "/api/v1/products/wiki/versions",
                &s.admin,
                json!({"version": "1.0.0", "chart": chart}),
            )
            .await;
        r.problem(422);
        assert_eq!(r.fields(), ["chart"]);
        let reason = r.body["errors"][0]["reason"].as_str().unwrap();
        assert!(reason.contains(hint), "{chart}: {reason}");
    }
    let r = s
        .post(
            "/api/v1/products/wiki/versions",
            &s.admin,
            json!({"version": "v1", "chart": web, "values_allowlist": ["ok", "bad..path"]}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["version", "values_allowlist[1]"]);
    assert_eq!(s.count("template_versions").await, 0);

    s.seed_catalog_version_only().await;
    let r = s
        .post(
            "/api/v1/deployments",
            &s.admin,
            json!({"name": "", "product": "wiki", "version": "1.0.0"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["name"]);
    let r = s
        .post(
            "/api/v1/deployments",
            &s.admin,
            json!({"name": "ok", "product": "wiki", "version": "9.9.9"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["version"]);
    assert_eq!(s.count("deployments").await, 0);
}

impl Server {
    async fn seed_catalog_version_only(&self) {
        let (chart, _) = self.chart("web", "1.0.0").await;
        self.post(
            "/api/v1/products/wiki/versions",
            &self.admin,
            json!({"version": "1.0.0", "chart": chart, "values_allowlist": ["replicaCount"], "publish": true}),
        )
        .await
        .ok(201);
    }
}

async fn values_outside_the_allowlist_are_refused_naming_every_path(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let r = s
        .post(
            "/api/v1/deployments",
            &s.admin,
            json!({"name": "w", "product": "wiki", "version": "1.0.0",
                   "values": {"replicaCount": 1, "resources": {"limits": {"cpu": "1"}},
                              "hostNetwork": true, "image": {"repository": "evil"}}}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["values"]);
    let reason = r.body["errors"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("hostNetwork") && reason.contains("image.repository"),
        "{reason}"
    );
    assert!(
        !reason.contains("replicaCount") && !reason.contains("resources"),
        "{reason}"
    );
    assert_eq!(s.count("deployments").await, 0);

    // The same rule guards updates, and a refused update changes nothing.
    let d = s.create_deployment(&s.admin, "w").await;
    let uid = d["uid"].as_str().unwrap();
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/deployments/{uid}"),
            &s.admin,
            Some(json!({"values": {"hostPID": true}})),
        )
        .await;
    r.problem(422);
    let now = s.get(&format!("/api/v1/deployments/{uid}"), &s.admin).await;
    assert_eq!(now.body["values"], json!({"replicaCount": 2}));
    assert_eq!(now.body["generation"], 1);
}

async fn published_versions_are_immutable(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    // Pushing a chart again makes a new artifact (a new digest), so 1.0.0 is
    // re-submitted by the digest it was published with.
    let stored = s
        .get("/api/v1/products/wiki/versions/1.0.0", &s.admin)
        .await;
    let digest1 = stored.body["chart_digest"].as_str().unwrap().to_string();
    let web1 = stored.body["chart"].as_str().unwrap().to_string();
    assert!(web1.ends_with(&digest1));
    assert_eq!(stored.body["chart_metadata"]["name"], "web");
    let (web2, digest2) = s.chart("web", "2.0.0").await;

    // Publishing the identical spec again is refused as a duplicate, not as a change.
    let allow = json!(["replicaCount", "resources.*"]);
    let same =
        json!({"version": "1.0.0", "chart": web1, "values_allowlist": allow, "publish": true});
    let r = s
        .post("/api/v1/products/wiki/versions", &s.admin, same)
        .await;
    assert!(
        r.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    let changed =
        json!({"version": "1.0.0", "chart": web2, "values_allowlist": allow, "publish": true});
    let r = s
        .post("/api/v1/products/wiki/versions", &s.admin, changed)
        .await;
    let detail = r.problem(409)["detail"].as_str().unwrap();
    assert!(
        detail.contains("immutable") && detail.contains("publish a new version (e.g. 1.0.1)"),
        "{detail}"
    );

    let patch = json!({"values_allowlist": ["everything.*"]});
    let r = s
        .call(
            Method::PATCH,
            "/api/v1/products/wiki/versions/1.0.0",
            &s.admin,
            Some(patch),
        )
        .await;
    assert!(
        r.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("values_allowlist")
    );
    let v = s
        .get("/api/v1/products/wiki/versions/1.0.0", &s.admin)
        .await;
    assert_eq!(v.body["chart_digest"], digest1.as_str());
    assert_eq!(v.body["values_allowlist"], allow);

    // Drafts may change until they are published.
    s.post(
        "/api/v1/products/wiki/versions",
        &s.admin,
        json!({"version": "1.1.0", "chart": web1}),
    )
    .await
    .ok(201);
    let r = s
        .call(
            Method::PATCH,
            "/api/v1/products/wiki/versions/1.1.0",
            &s.admin,
            Some(json!({"chart": web2})),
        )
        .await;
    assert_eq!(r.ok(200)["chart_digest"], digest2.as_str());
}

async fn lifecycle_moves_only_forward(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let base = "/api/v1/products/wiki/versions/1.0.0";
    let r = s
        .post(&format!("{base}/publish"), &s.admin, json!({}))
        .await;
    assert!(
        r.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("already in that state")
    );
    assert_eq!(
        s.post(&format!("{base}/deprecate"), &s.admin, json!({}))
            .await
            .ok(200)["lifecycle"],
        "deprecated"
    );
    assert_eq!(
        s.post(&format!("{base}/retire"), &s.admin, json!({}))
            .await
            .ok(200)["lifecycle"],
        "retired"
    );
    let r = s
        .post(&format!("{base}/publish"), &s.admin, json!({}))
        .await;
    assert!(
        r.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("only moves forward")
    );
    assert_eq!(s.get(base, &s.admin).await.body["lifecycle"], "retired");

    // Retired versions take no new deployments.
    let r = s
        .post(
            "/api/v1/deployments",
            &s.admin,
            json!({"name": "late", "product": "wiki", "version": "1.0.0"}),
        )
        .await;
    r.problem(422);
    assert!(r.body["detail"].as_str().unwrap().contains("retired"));
}

async fn missing_or_invalid_tokens_are_401(b: Backend) {
    let s = Server::start(b).await;
    let r = s
        .raw(Method::GET, "/api/v1/products", None, None, vec![])
        .await;
    r.problem(401);
    let r = s.get("/api/v1/products", "cae_not-a-real-token").await;
    r.problem(401);
    let r = s
        .raw(
            Method::POST,
            "/api/v1/products",
            None,
            Some("application/json"),
            br#"{"slug":"x","name":"x"}"#.to_vec(),
        )
        .await;
    r.problem(401);
    assert_eq!(s.count("products").await, 0);
    // Health endpoints need no token.
    assert_eq!(
        s.raw(Method::GET, "/healthz", None, None, vec![])
            .await
            .status,
        200
    );
}

async fn tenants_never_see_or_touch_each_others_deployments(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let a = s.tenant("acme").await;
    let bee = s.tenant("globex").await;
    let d = s.create_deployment(&a, "acme wiki").await;
    assert_eq!(d["tenant"], "acme");
    let uid = d["uid"].as_str().unwrap();
    s.create_deployment(&bee, "globex wiki").await;

    let list = s.get("/api/v1/deployments", &bee).await;
    let names: Vec<&str> = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["globex wiki"]);
    // A tenant's tenant filter cannot widen its view.
    let list = s.get("/api/v1/deployments?tenant=acme", &bee).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 1);

    let path = format!("/api/v1/deployments/{uid}");
    for reply in [
        s.get(&path, &bee).await,
        s.call(
            Method::PATCH,
            &path,
            &bee,
            Some(json!({"values": {"replicaCount": 9}})),
        )
        .await,
        s.call(Method::DELETE, &path, &bee, None).await,
        s.get(&format!("{path}/revisions"), &bee).await,
        s.get(&format!("{path}/events"), &bee).await,
    ] {
        let body = reply.problem(404);
        assert!(!body.to_string().contains("acme"), "leaked: {body}");
    }
    // Creating on another tenant's behalf is refused.
    let r = s
        .post(
            "/api/v1/deployments",
            &bee,
            json!({"name": "sneaky", "product": "wiki", "version": "1.0.0", "tenant": "acme"}),
        )
        .await;
    r.problem(403);

    let still = s.get(&path, &a).await;
    assert_eq!(still.ok(200)["values"], json!({"replicaCount": 2}));
    assert_eq!(still.body["desired_state"], "present");
    assert_eq!(still.body["generation"], 1);
    let all = s.get("/api/v1/deployments", &s.admin).await;
    assert_eq!(all.ok(200)["items"].as_array().unwrap().len(), 2);
}

async fn tenants_read_only_deployable_templates_and_cannot_administer(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let (web2, _) = s.chart("web", "2.0.0").await;
    s.post(
        "/api/v1/products/wiki/versions",
        &s.admin,
        json!({"version": "2.0.0-beta.1", "chart": web2}),
    )
    .await
    .ok(201);
    let t = s.tenant("acme").await;
    let versions = s.get("/api/v1/products/wiki/versions", &t).await;
    let seen: Vec<&str> = versions.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["1.0.0"]);
    s.get("/api/v1/products/wiki/versions/2.0.0-beta.1", &t)
        .await
        .problem(404);
    let r = s
        .post(
            "/api/v1/deployments",
            &t,
            json!({"name": "x", "product": "wiki", "version": "2.0.0-beta.1"}),
        )
        .await;
    r.problem(422);

    s.post(
        "/api/v1/products",
        &t,
        json!({"slug": "mine", "name": "Mine"}),
    )
    .await
    .problem(403);
    s.post(
        "/api/v1/products/wiki/versions/2.0.0-beta.1/publish",
        &t,
        json!({}),
    )
    .await
    .problem(403);
    s.get("/api/v1/tokens", &t).await.problem(403);
    s.post(
        "/api/v1/tokens",
        &t,
        json!({"name": "root", "role": "admin"}),
    )
    .await
    .problem(403);
    assert_eq!(s.count("products").await, 1);
    assert_eq!(s.count("tokens").await, 2);
}

async fn deployment_changes_bump_generation_and_are_audited(b: Backend) {
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let t = s.tenant("acme").await;
    let d = s.create_deployment(&t, "wiki one").await;
    let uid = d["uid"].as_str().unwrap().to_string();
    assert_eq!(d["status"]["phase"], "Pending");
    assert_eq!(d["desired_state"], "present");
    assert_eq!(d["generation"], 1);
    let ns = d["namespace"].as_str().unwrap();
    assert_eq!(ns, format!("caelus-{}", uid.replace('-', "")));
    assert!(d["release"].as_str().unwrap().starts_with("d-"));

    let path = format!("/api/v1/deployments/{uid}");
    let r = s
        .call(
            Method::PATCH,
            &path,
            &t,
            Some(json!({"values": {"replicaCount": 3}})),
        )
        .await;
    assert_eq!(r.ok(200)["generation"], 2);
    assert_eq!(r.body["namespace"], ns);
    // The same values again are not a change.
    let r = s
        .call(
            Method::PATCH,
            &path,
            &t,
            Some(json!({"values": {"replicaCount": 3}})),
        )
        .await;
    assert_eq!(r.ok(200)["generation"], 2);
    // Renaming is not a change of desired state.
    let r = s
        .call(Method::PATCH, &path, &t, Some(json!({"name": "wiki uno"})))
        .await;
    assert_eq!(r.ok(200)["generation"], 2);
    assert_eq!(r.body["name"], "wiki uno");

    let r = s.call(Method::DELETE, &path, &t, None).await;
    assert_eq!(r.ok(202)["desired_state"], "absent");
    assert_eq!(r.body["generation"], 3);
    assert_eq!(r.body["status"]["phase"], "Deleting");
    let r = s.call(Method::DELETE, &path, &t, None).await;
    assert_eq!(r.ok(202)["generation"], 3);
    let r = s
        .call(
            Method::PATCH,
            &path,
            &t,
            Some(json!({"values": {"replicaCount": 1}})),
        )
        .await;
    r.problem(409);

    let events = s.get(&format!("{path}/events"), &t).await;
    let items = events.ok(200)["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "deployment.create",
            "deployment.update",
            "deployment.update",
            "deployment.delete"
        ]
    );
    assert!(
        items.iter().all(|e| e["actor"] == "token:acme (acme)"),
        "{items:?}"
    );
    let revisions = s.get(&format!("{path}/revisions"), &t).await;
    assert_eq!(revisions.ok(200)["items"], json!([]));
}

async fn lists_paginate_with_cursors(b: Backend) {
    let s = Server::start(b).await;
    for i in 0..5 {
        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": format!("p{i}"), "name": format!("P{i}")}),
        )
        .await
        .ok(201);
    }
    let mut seen = Vec::new();
    let mut url = "/api/v1/products?limit=2".to_string();
    loop {
        let page = s.get(&url, &s.admin).await;
        let body = page.ok(200);
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["slug"].as_str().unwrap().to_string()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/products?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4"]);
    let r = s.get("/api/v1/products?cursor=garbage!", &s.admin).await;
    r.problem(400);
    assert_eq!(r.fields(), ["cursor"]);
    let r = s.get("/api/v1/products?limit=0", &s.admin).await;
    r.problem(400);
    assert_eq!(r.fields(), ["limit"]);
    let r = s.get("/api/v1/deployments?phase=Sleeping", &s.admin).await;
    r.problem(400);
    assert_eq!(r.fields(), ["phase"]);
}

async fn tokens_are_stored_hashed_and_revocable(b: Backend) {
    use sqlx::Row;
    let s = Server::start(b).await;
    let created = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "ci", "role": "tenant", "tenant": "acme"}),
        )
        .await;
    let secret = created.ok(201)["secret"].as_str().unwrap().to_string();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("cae_"));

    let rows = sqlx::query("SELECT token_hash, prefix FROM tokens")
        .fetch_all(s.db.store.pool())
        .await
        .unwrap();
    for row in rows {
        let hash: String = row.try_get("token_hash").unwrap();
        assert!(!hash.contains(&secret[4..]), "a secret is stored in clear");
        assert_eq!(hash.len(), 64);
    }
    let list = s.get("/api/v1/tokens", &s.admin).await;
    assert!(
        !list.ok(200).to_string().contains(&secret[4..]),
        "list leaks a secret"
    );

    s.get("/api/v1/products", &secret).await.ok(200);
    s.call(
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        &s.admin,
        None,
    )
    .await
    .ok(204);
    s.get("/api/v1/products", &secret).await.problem(401);
    s.call(
        Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        &s.admin,
        None,
    )
    .await
    .problem(404);

    let r = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "t", "role": "tenant"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["tenant"]);
    let r = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "t", "role": "root"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["role"]);

    // The last admin token cannot be revoked: that would lock everyone out.
    let tokens = s.get("/api/v1/tokens", &s.admin).await;
    let admin_id = tokens.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.call(
        Method::DELETE,
        &format!("/api/v1/tokens/{admin_id}"),
        &s.admin,
        None,
    )
    .await
    .problem(409);
    s.get("/api/v1/products", &s.admin).await.ok(200);
}

async fn health_openapi_and_docs_are_served(b: Backend) {
    let s = Server::start(b).await;
    assert_eq!(
        s.raw(Method::GET, "/readyz", None, None, vec![]).await.body["status"],
        "ready"
    );
    let doc = s
        .raw(Method::GET, "/api/v1/openapi.json", None, None, vec![])
        .await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let ops: Vec<String> = doc.body["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| {
            item.as_object()
                .unwrap()
                .values()
                .filter_map(|op| op["operationId"].as_str().map(String::from))
        })
        .collect();
    for op in [
        "create_deployment",
        "list_deployment_events",
        "revoke_token",
        "publish_template_version",
    ] {
        assert!(ops.contains(&op.to_string()), "{op} missing from {ops:?}");
    }
    let page = reqwest::get(format!("{}/docs/", s.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger"));
    let r = s.raw(Method::GET, "/api/v1/nope", None, None, vec![]).await;
    r.problem(404);
    let _: Value = doc.body;
}

/// Issue 4 on the API: publishing resolves tags to digests through the real
/// registry, values meet both the allowlist and the chart's schema, and a
/// registry that is down stores nothing.
mod helm {
    use super::*;

    #[tokio::test]
    async fn publishing_by_tag_stores_the_manifest_digest_and_the_charts_own_metadata() {
        let s = Server::start(Backend::Sqlite).await;
        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "db", "name": "DB"}),
        )
        .await
        .ok(201);
        let (tag_ref, digest) = s.chart("schema", "1.0.0").await;
        let r = s
            .post(
                "/api/v1/products/db/versions",
                &s.admin,
                json!({"version": "1.0.0", "chart": tag_ref, "publish": true}),
            )
            .await;
        let v = r.ok(201);
        assert_eq!(v["chart_digest"], digest.as_str());
        assert!(
            v["chart"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/charts/schema@{digest}")),
            "{v}"
        );
        assert_eq!(v["default_values"]["mode"], "small");
        assert_eq!(
            v["values_schema"]["required"],
            json!(["replicaCount", "mode", "image"])
        );
        assert_eq!(v["chart_metadata"]["version"], "1.0.0");
    }

    /// Supply chain: a version names a repository and a digest, and the
    /// repository must serve that digest. Repository A's chart is already
    /// cached (published first); naming repository B with A's digest is
    /// refused with B's own answer, on the field that named it.
    #[tokio::test]
    async fn publishing_a_digest_the_named_repository_does_not_serve_is_refused() {
        let s = Server::start(Backend::Sqlite).await;
        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "db", "name": "DB"}),
        )
        .await
        .ok(201);
        let (in_a, digest) = s.chart("schema", "1.0.0").await;
        let (in_b, _) = s.chart("web", "1.0.0").await;
        s.post(
            "/api/v1/products/db/versions",
            &s.admin,
            json!({"version": "1.0.0", "chart": in_a, "publish": true}),
        )
        .await
        .ok(201);
        let repo_b = in_b.rsplit_once(':').unwrap().0;
        let r = s
            .post(
                "/api/v1/products/db/versions",
                &s.admin,
                json!({"version": "1.0.1", "chart": format!("{repo_b}@{digest}"), "publish": true}),
            )
            .await;
        r.problem(422);
        assert_eq!(r.fields(), ["chart"]);
        let reason = r.body["errors"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("charts/web") && reason.contains("not found"),
            "the registry's answer about repository B: {reason}"
        );
        // Nothing was stored for 1.0.1.
        let listed = s.get("/api/v1/products/db/versions", &s.admin).await;
        let versions = listed.ok(200).to_string();
        assert!(!versions.contains("1.0.1"), "{versions}");
    }

    #[tokio::test]
    async fn values_must_pass_the_allowlist_and_then_the_charts_schema() {
        let s = Server::start(Backend::Sqlite).await;
        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "db", "name": "DB"}),
        )
        .await
        .ok(201);
        let (chart, _) = s.chart("schema", "1.0.0").await;
        s.post(
            "/api/v1/products/db/versions",
            &s.admin,
            json!({"version": "1.0.0", "chart": chart, "publish": true, "values_allowlist": ["replicaCount", "mode"]}),
        )
        .await
        .ok(201);
        let create = |values: Value| json!({"name": "d", "product": "db", "version": "1.0.0", "values": values});

        let r = s
            .post(
                "/api/v1/deployments",
                &s.admin,
                create(json!({"replicaCount": 0})),
            )
            .await;
        r.problem(422);
        assert_eq!(r.fields(), ["values"]);
        let reason = r.body["errors"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("replicaCount") && reason.contains("minimum"),
            "{reason}"
        );

        let r = s
            .post(
                "/api/v1/deployments",
                &s.admin,
                create(json!({"mode": "huge"})),
            )
            .await;
        r.problem(422);
        assert!(
            r.body["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("mode"),
            "{}",
            r.body
        );

        // The allowlist is checked first: image is not user-settable at all.
        let r = s
            .post(
                "/api/v1/deployments",
                &s.admin,
                create(json!({"image": {"repository": ""}})),
            )
            .await;
        r.problem(422);
        assert!(
            r.body["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("allowlist")
        );
        assert_eq!(s.count("deployments").await, 0);

        let d = s
            .post(
                "/api/v1/deployments",
                &s.admin,
                create(json!({"replicaCount": 3, "mode": "large"})),
            )
            .await;
        let uid = d.ok(201)["uid"].as_str().unwrap().to_string();
        let r = s
            .call(
                Method::PATCH,
                &format!("/api/v1/deployments/{uid}"),
                &s.admin,
                Some(json!({"values": {"replicaCount": 11}})),
            )
            .await;
        r.problem(422);
        let now = s.get(&format!("/api/v1/deployments/{uid}"), &s.admin).await;
        assert_eq!(
            now.body["values"],
            json!({"replicaCount": 3, "mode": "large"})
        );
    }

    #[tokio::test]
    async fn a_stopped_registry_is_a_clear_error_and_stores_nothing() {
        let mut s = Server::start(Backend::Sqlite).await;
        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "wiki", "name": "Wiki"}),
        )
        .await
        .ok(201);
        let (chart, _) = s.chart("web", "1.0.0").await;
        s.registry.stop();
        let r = s
            .post(
                "/api/v1/products/wiki/versions",
                &s.admin,
                json!({"version": "1.0.0", "chart": chart}),
            )
            .await;
        let detail = r.problem(502)["detail"].as_str().unwrap();
        assert!(detail.contains("unreachable"), "{detail}");
        assert_eq!(s.count("template_versions").await, 0);
    }

    #[tokio::test]
    async fn render_preview_shows_objects_hooks_and_policy() {
        let s = Server::start(Backend::Sqlite).await;
        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "hooks", "name": "Hooks"}),
        )
        .await
        .ok(201);
        let (chart, _) = s.chart("hooks", "1.0.0").await;
        s.post(
            "/api/v1/products/hooks/versions",
            &s.admin,
            json!({"version": "1.0.0", "chart": chart, "publish": true}),
        )
        .await
        .ok(201);
        let r = s
            .post(
                "/api/v1/products/hooks/versions/1.0.0/render",
                &s.admin,
                json!({}),
            )
            .await;
        let v = r.ok(200);
        assert!(!v["objects"].as_array().unwrap().is_empty());
        assert!(
            v["hooks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h.as_str().unwrap().contains("pre-install")),
            "{v}"
        );
        assert!(v["manifest"].as_str().unwrap().contains("kind: Job"));
        assert_eq!(v["policy_violations"], json!([]));

        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "rbac", "name": "RBAC"}),
        )
        .await
        .ok(201);
        let (chart, _) = s.chart("clusterrole", "1.0.0").await;
        // Publishing checks the chart with its defaults: a ClusterRole
        // without allow_cluster_scoped is refused, naming object and rule.
        let r = s
            .post(
                "/api/v1/products/rbac/versions",
                &s.admin,
                json!({"version": "1.0.0", "chart": chart, "publish": true}),
            )
            .await;
        let detail = r.problem(422)["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains("ClusterRole") && detail.contains("(cluster-scoped)"),
            "{detail}"
        );
        assert_eq!(r.fields(), vec!["capabilities"]);
        s.post(
            "/api/v1/products/rbac/versions",
            &s.admin,
            json!({"version": "1.0.0", "chart": chart}),
        )
        .await
        .ok(201);
        s.post(
            "/api/v1/products/rbac/versions/1.0.0/publish",
            &s.admin,
            json!({}),
        )
        .await
        .problem(422);
        let r = s
            .post(
                "/api/v1/products/rbac/versions/1.0.0/render",
                &s.admin,
                json!({}),
            )
            .await;
        let violations = r.ok(200)["policy_violations"].as_array().unwrap().clone();
        assert!(
            violations
                .iter()
                .any(|v| v.as_str().unwrap().contains("ClusterRole")),
            "{violations:?}"
        );
    }

    async fn hostile_catalog(s: &Server) {
        s.post(
            "/api/v1/products",
            &s.admin,
            json!({"slug": "hostile", "name": "Hostile"}),
        )
        .await
        .ok(201);
        let (chart, _) = s.chart("hostile", "1.0.0").await;
        s.post(
            "/api/v1/products/hostile/versions",
            &s.admin,
            json!({"version": "1.0.0", "chart": chart, "publish": true,
                   "values_allowlist": ["extraObjects", "copies"]}),
        )
        .await
        .ok(201);
    }

    #[tokio::test]
    async fn render_preview_lists_every_violation_of_a_hostile_chart_including_hooks() {
        let s = Server::start(Backend::Sqlite).await;
        hostile_catalog(&s).await;
        let tenant = s.tenant("mallory").await;
        let r = s
            .post(
                "/api/v1/products/hostile/versions/1.0.0/render",
                &tenant,
                json!({"values": {"extraObjects": [
                    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": "pwn", "annotations": {"helm.sh/hook": "pre-install"}},
                     "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                     "subjects": [{"kind": "User", "name": "mallory"}]},
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "someone-else"}},
                    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"helm.sh/hook": "test"}},
                     "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x"}]}},
                ]}}),
            )
            .await;
        let v = r.ok(200);
        let violations: Vec<String> = v["policy_violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let has = |t: &str| violations.iter().any(|v| v.contains(t));
        assert!(
            has("ClusterRoleBinding \"pwn\" (pre-install hook)") && has("(cluster-scoped)"),
            "{violations:?}"
        );
        assert!(has("subjects[0] is User \"mallory\""), "{violations:?}");
        assert!(
            has("Namespace \"someone-else\"") && has("(namespace-object)"),
            "{violations:?}"
        );
        assert!(
            has("Pod \"p\" (test hook)") && has("spec.hostNetwork"),
            "{violations:?}"
        );
        // Harmless values: nothing to report.
        let r = s
            .post(
                "/api/v1/products/hostile/versions/1.0.0/render",
                &tenant,
                json!({"values": {"copies": 2}}),
            )
            .await;
        assert_eq!(r.ok(200)["policy_violations"], json!([]));
    }

    #[tokio::test]
    async fn a_huge_range_in_a_value_is_refused_with_a_small_answer() {
        let s = Server::start(Backend::Sqlite).await;
        hostile_catalog(&s).await;
        let tenant = s.tenant("mallory").await;
        // 200k ConfigMaps would be ~18 MB of manifest: past the output bound.
        for copies in [200_000, 4_999] {
            let r = s
                .post(
                    "/api/v1/products/hostile/versions/1.0.0/render",
                    &tenant,
                    json!({"values": {"copies": copies}}),
                )
                .await;
            let body = r.problem(422);
            let size = serde_json::to_vec(body).unwrap().len();
            assert!(
                size < 4096,
                "the refusal is small, not the manifest: {size} bytes"
            );
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("rendering refused"), "{detail}");
            if copies == 4_999 {
                // 4999 copies and the settings ConfigMap.
                assert!(
                    detail.contains("5000 objects") && detail.contains("limit: 2000 objects"),
                    "{detail}"
                );
            } else {
                assert!(detail.contains("bytes"), "{detail}");
            }
            assert_eq!(r.fields(), vec!["values"]);
        }
        // Asked again, the same input is refused without rendering again.
        let r = s
            .post(
                "/api/v1/products/hostile/versions/1.0.0/render",
                &tenant,
                json!({"values": {"copies": 200_000}}),
            )
            .await;
        assert!(
            r.problem(422)["detail"]
                .as_str()
                .unwrap()
                .contains("earlier refusal")
        );
        let r = s
            .post(
                "/api/v1/products/hostile/versions/1.0.0/render",
                &tenant,
                json!({"values": {"copies": 3}}),
            )
            .await;
        assert_eq!(r.ok(200)["objects"].as_array().unwrap().len(), 4);
    }
}
