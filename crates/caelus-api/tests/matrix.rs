//! Every endpoint in the OpenAPI document × {tenant A, tenant B, admin}.
//!
//! Each operation has one row (the test fails if the document gains an
//! operation without one, or a row names an operation it no longer has): the
//! request each actor makes and the statuses each may get. Tenant B aims at
//! tenant A's deployment and must get 404 with nothing of A's in the answer —
//! another tenant's deployment does not exist, it is never "forbidden" — and
//! A's deployment must be byte-for-byte as before. Endpoints tenants may not use
//! at all answer 403.

mod common;

use caelus_store::{Backend, on_both_backends};
use common::Server;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

on_both_backends!(every_endpoint_for_tenant_a_tenant_b_and_admin);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Tenant B, aiming at tenant A's deployment.
    Other,
    /// Tenant A, on its own deployment.
    Owner,
    Admin,
}

struct Fixture {
    a: String,
    b: String,
    /// Tenant A's deployment that tenant B and then A itself aim at.
    a_uid: String,
    /// Another of A's deployments, for the admin (A may delete the first).
    a_uid_for_admin: String,
    /// A token the admin may revoke.
    spare_token: String,
    /// A chart reference the admin may create a version from.
    chart: String,
}

impl Fixture {
    fn token<'a>(&'a self, s: &'a Server, who: Who) -> &'a str {
        match who {
            Who::Other => &self.b,
            Who::Owner => &self.a,
            Who::Admin => &s.admin,
        }
    }

    fn uid(&self, who: Who) -> &str {
        match who {
            Who::Admin => &self.a_uid_for_admin,
            _ => &self.a_uid,
        }
    }
}

const TENANT_FORBIDDEN: &[u16] = &[403];
const EVERYONE_OK: &[u16] = &[200];
const NOT_FOUND: &[u16] = &[404];

/// The request `who` makes for operation `id` (path template `path`), and the
/// statuses it may answer.
fn case(id: &str, path: &str, fx: &Fixture, who: Who) -> (Option<Value>, String, &'static [u16]) {
    let path = path
        .replace("{uid}", fx.uid(who))
        .replace("{product}", "wiki")
        .replace("{id}", &fx.spare_token);
    let admin = who == Who::Admin;
    let tenant = !admin;
    let on_deployment = |owner: &'static [u16], admin_ok: &'static [u16]| match who {
        Who::Other => NOT_FOUND,
        Who::Owner => owner,
        Who::Admin => admin_ok,
    };
    let (body, path, expect): (Option<Value>, String, &'static [u16]) = match id {
        "healthz" | "readyz" => (None, path, EVERYONE_OK),
        // The catalog: tenants read published versions; only admins change it.
        "list_products" | "get_product" | "list_template_versions" => (None, path, EVERYONE_OK),
        "get_template_version" => (None, path.replace("{version}", "1.0.0"), EVERYONE_OK),
        "render_template_version" => (
            Some(json!({"values": {"replicaCount": 1}})),
            path.replace("{version}", "1.0.0"),
            EVERYONE_OK,
        ),
        "create_product" => (
            Some(json!({"slug": "made-by-matrix", "name": "x"})),
            path,
            if tenant { TENANT_FORBIDDEN } else { &[201] },
        ),
        "create_template_version" => (
            Some(json!({"version": "2.0.0", "chart": fx.chart})),
            path,
            if tenant { TENANT_FORBIDDEN } else { &[201] },
        ),
        // 2.0.0 is the admin's draft (created above, same round): edit it, publish it,
        // deprecate it, retire it.
        "update_template_version" => (
            Some(json!({"values_allowlist": ["replicaCount"]})),
            path.replace("{version}", "2.0.0"),
            if tenant { TENANT_FORBIDDEN } else { &[200] },
        ),
        "publish_template_version" | "deprecate_template_version" | "retire_template_version" => (
            None,
            path.replace("{version}", "2.0.0"),
            if tenant { TENANT_FORBIDDEN } else { &[200] },
        ),
        // Certify the admin's draft 2.0.0 before it is published (no cluster:
        // the canary is skipped, the checklist still runs).
        "certify_template_version" => (
            None,
            path.replace("{version}", "2.0.0"),
            if tenant { TENANT_FORBIDDEN } else { &[200] },
        ),
        "create_token" => (
            Some(json!({"name": "matrix", "role": "tenant", "tenant": "acme"})),
            path,
            if tenant { TENANT_FORBIDDEN } else { &[201] },
        ),
        "list_tokens" | "list_events" => {
            (None, path, if tenant { TENANT_FORBIDDEN } else { &[200] })
        }
        "revoke_token" => (None, path, if tenant { TENANT_FORBIDDEN } else { &[204] }),
        // No cluster in this test: the admin is told so (503); tenants are refused first.
        "scan_orphans" => (None, path, if tenant { TENANT_FORBIDDEN } else { &[503] }),
        "clean_orphans" => (
            Some(json!({})),
            path,
            if tenant { TENANT_FORBIDDEN } else { &[503] },
        ),
        // Collections: scoping is checked on the answers below.
        "list_deployments" => (None, path, EVERYONE_OK),
        "create_deployment" => match who {
            // On another tenant's behalf: refused.
            Who::Other => (
                Some(
                    json!({"name": "sneaky", "product": "wiki", "version": "1.0.0", "tenant": "acme"}),
                ),
                path,
                TENANT_FORBIDDEN,
            ),
            Who::Owner => (
                Some(json!({"name": "a-extra", "product": "wiki", "version": "1.0.0"})),
                path,
                &[201],
            ),
            Who::Admin => (
                Some(
                    json!({"name": "for-acme", "product": "wiki", "version": "1.0.0", "tenant": "acme"}),
                ),
                path,
                &[201],
            ),
        },
        // One deployment: the owner and admins reach it, tenant B never.
        "get_deployment"
        | "list_deployment_revisions"
        | "list_deployment_events"
        | "get_deployment_notes"
        | "list_upgrade_targets" => (None, path, on_deployment(&[200], &[200])),
        // Read from the cluster, which this test has none of: past the tenant check,
        // the owner and admins are told so (503).
        "get_deployment_endpoints"
        | "get_deployment_connection"
        | "test_deployment"
        | "get_deployment_diff" => (None, path, on_deployment(&[503], &[503])),
        "update_deployment" => (
            Some(json!({"values": {"replicaCount": 3}})),
            path,
            on_deployment(&[200], &[200]),
        ),
        // It already runs 1.0.0, and has no revision 1 yet: refused as invalid,
        // which proves the caller got past the tenant check.
        "upgrade_deployment" => (
            Some(json!({"to_version": "1.0.0"})),
            path,
            on_deployment(&[422], &[422]),
        ),
        "rollback_deployment" => (
            Some(json!({"revision": 1})),
            path,
            on_deployment(&[422], &[422]),
        ),
        "delete_deployment" => (None, path, on_deployment(&[202], &[202])),
        // Nothing failed and nothing is retained: past the tenant check, the
        // owner and admins are told there is nothing to do (409).
        "retry_deployment" => (Some(json!({})), path, on_deployment(&[409], &[409])),
        "purge_deployment" => (None, path, on_deployment(&[409], &[409])),
        // Not Retained (it was never deleted): nothing to restore (409).
        "restore_deployment" => (Some(json!({})), path, on_deployment(&[409], &[409])),
        // Admins only; this test has no cluster, so an admin is told so (503).
        "adopt_object" => (
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x"})),
            path,
            if tenant { TENANT_FORBIDDEN } else { &[503] },
        ),
        other => panic!(
            "the OpenAPI document has operation {other} ({path}) without a row in this matrix: \
             add one saying what each actor may do"
        ),
    };
    (body, path, expect)
}

/// Runs the deleting operation last, and the version's lifecycle in order.
fn order(id: &str) -> u8 {
    match id {
        "create_template_version" => 1,
        "update_template_version" => 2,
        "certify_template_version" => 2,
        "publish_template_version" => 3,
        "deprecate_template_version" => 4,
        "retire_template_version" => 5,
        "delete_deployment" => 9,
        _ => 0,
    }
}

async fn every_endpoint_for_tenant_a_tenant_b_and_admin(backend: Backend) {
    let s = Server::start(backend).await;
    s.seed_catalog().await;
    let (chart, _) = s.chart("web", "2.0.0").await;
    let a = s.tenant("acme").await;
    let b = s.tenant("globex").await;
    let a_dep = s.create_deployment(&a, "acme private wiki").await;
    let a_dep2 = s.create_deployment(&a, "acme second wiki").await;
    let b_dep = s.create_deployment(&b, "globex wiki").await;
    let spare = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            json!({"name": "spare", "role": "tenant", "tenant": "globex"}),
        )
        .await;
    let fx = Fixture {
        a,
        b,
        a_uid: a_dep["uid"].as_str().unwrap().to_string(),
        a_uid_for_admin: a_dep2["uid"].as_str().unwrap().to_string(),
        spare_token: spare.ok(201)["id"].as_str().unwrap().to_string(),
        chart,
    };

    let doc = serde_json::to_value(caelus_api::openapi()).unwrap();
    let mut ops: Vec<(String, Method, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                ops.push((id.to_string(), m, path.clone()));
            }
        }
    }
    ops.sort_by_key(|(id, _, _)| (order(id), id.clone()));
    assert!(
        ops.len() >= 30,
        "the document lists {} operations",
        ops.len()
    );
    let ids: BTreeSet<&str> = ops.iter().map(|(id, _, _)| id.as_str()).collect();
    for needed in [
        "scan_orphans",
        "clean_orphans",
        "list_events",
        "rollback_deployment",
    ] {
        assert!(ids.contains(needed), "{needed} is not in the document");
    }

    let before = s
        .get(&format!("/api/v1/deployments/{}", fx.a_uid), &fx.a)
        .await
        .body
        .clone();
    // (A's uid may appear: tenant B sent it, and "deployment <uid> was not found"
    // tells B nothing it did not know.)
    let secret_words = ["acme private wiki", "acme"];
    let mut failures = Vec::new();
    for who in [Who::Other, Who::Owner, Who::Admin] {
        if who == Who::Owner {
            // Tenant B's whole round changed nothing of A's.
            let now = s
                .get(&format!("/api/v1/deployments/{}", fx.a_uid), &fx.a)
                .await
                .body
                .clone();
            assert_eq!(now, before, "tenant B changed tenant A's deployment");
        }
        for (id, method, template) in &ops {
            let (body, path, expect) = case(id, template, &fx, who);
            let token = fx.token(&s, who);
            let r = s.call(method.clone(), &path, token, body).await;
            let status = r.status.as_u16();
            if !expect.contains(&status) {
                failures.push(format!(
                    "{who:?} {method} {path} ({id}): {status}, expected one of {expect:?}: {}",
                    r.body
                ));
                continue;
            }
            if status >= 400 {
                assert_eq!(
                    r.content_type, "application/problem+json",
                    "{id}: {}",
                    r.body
                );
            }
            if who == Who::Other {
                let text = r.body.to_string();
                if id != "list_deployments"
                    && let Some(w) = secret_words.iter().find(|w| text.contains(**w))
                {
                    failures.push(format!("{id}: tenant B's answer leaks '{w}': {text}"));
                }
            }
            if id == "list_deployments" {
                let tenants: BTreeSet<String> = r.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["tenant"].as_str().unwrap().to_string())
                    .collect();
                let want: BTreeSet<String> = match who {
                    Who::Other => ["globex".to_string()].into(),
                    Who::Owner => ["acme".to_string()].into(),
                    Who::Admin => ["acme".to_string(), "globex".to_string()].into(),
                };
                if tenants != want {
                    failures.push(format!("{who:?} lists deployments of {tenants:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Tenant B's own deployment was never touched by anyone's round but its own.
    let b_now = s
        .get(
            &format!("/api/v1/deployments/{}", b_dep["uid"].as_str().unwrap()),
            &fx.b,
        )
        .await;
    assert_eq!(b_now.ok(200)["generation"], 1);
}
