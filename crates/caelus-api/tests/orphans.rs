//! The orphan endpoints' contract without a cluster: admins only, bad bodies
//! refused naming the field, and a clear 503 when the server has no cluster.
//! (The scan and clean themselves: caelus-reconciler's tests/orphans.rs and
//! caelus-cli's tests/orphans_cli.rs.)

mod common;

use caelus_store::Backend;
use caelus_store::on_both_backends;
use common::Server;
use serde_json::json;

on_both_backends!(orphan_endpoints_are_for_admins_and_say_when_there_is_no_cluster);

async fn orphan_endpoints_are_for_admins_and_say_when_there_is_no_cluster(b: Backend) {
    let s = Server::start(b).await;
    let tenant = s.tenant("acme").await;
    s.get("/api/v1/orphans", &tenant).await.problem(403);
    s.post("/api/v1/orphans/clean", &tenant, json!({"confirm": true}))
        .await
        .problem(403);

    let unknown = s
        .post(
            "/api/v1/orphans/clean",
            &s.admin,
            json!({"confirm": true, "force": true}),
        )
        .await;
    unknown.problem(422);
    assert!(
        unknown.body.to_string().contains("force"),
        "{}",
        unknown.body
    );
    let wrong_type = s
        .post("/api/v1/orphans/clean", &s.admin, json!({"confirm": "yes"}))
        .await;
    wrong_type.problem(422);
    assert_eq!(wrong_type.fields(), ["confirm"]);

    let scan = s.get("/api/v1/orphans", &s.admin).await;
    let body = scan.problem(503);
    assert!(
        body["detail"].as_str().unwrap().contains("no cluster"),
        "{body}"
    );
    s.post("/api/v1/orphans/clean", &s.admin, json!({}))
        .await
        .problem(503);
}
