//! The adoption endpoint's contract without a cluster: admins only, bad
//! bodies refused naming the field, unknown deployments 404, and a clear 503
//! when the server has no cluster. (Adoption itself: caelus-engine's
//! tests/ownership.rs and caelus-cli's tests/adopt_cli.rs.)

mod common;

use caelus_store::Backend;
use caelus_store::on_both_backends;
use common::Server;
use serde_json::json;

on_both_backends!(adoption_is_for_admins_and_checks_its_body);

async fn adoption_is_for_admins_and_checks_its_body(b: Backend) {
    let s = Server::start(b).await;
    let tenant = s.tenant("acme").await;
    let path = "/api/v1/deployments/00000000-0000-4000-8000-000000000000/adopt";
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "web"});
    s.post(path, &tenant, body.clone()).await.problem(403);

    let empty = s
        .post(
            path,
            &s.admin,
            json!({"apiVersion": "v1", "kind": "", "name": "web"}),
        )
        .await;
    empty.problem(422);
    assert_eq!(empty.fields(), ["kind"]);
    let missing = s
        .post(
            path,
            &s.admin,
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        )
        .await;
    missing.problem(422);
    assert!(
        missing.body.to_string().contains("name"),
        "{}",
        missing.body
    );
    let unknown = s
        .post(
            path,
            &s.admin,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "web", "force": true}),
        )
        .await;
    unknown.problem(422);
    assert!(
        unknown.body.to_string().contains("force"),
        "{}",
        unknown.body
    );

    s.post(path, &s.admin, body.clone()).await.problem(404);

    s.seed_catalog().await;
    let created = s
        .post(
            "/api/v1/deployments",
            &s.admin,
            json!({"name": "w", "product": "wiki", "version": "1.0.0", "tenant": "acme"}),
        )
        .await;
    let uid = created.ok(201)["uid"].as_str().unwrap().to_string();
    let r = s
        .post(&format!("/api/v1/deployments/{uid}/adopt"), &s.admin, body)
        .await;
    let problem = r.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("no cluster"),
        "{problem}"
    );
}
