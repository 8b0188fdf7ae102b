//! Certify before publish, on a server without a cluster (the canary items are
//! skipped with a warning; the canary itself: caelus-cli's tests/certify.rs):
//! a good chart passes, a bad one fails with each item named, and a server
//! that requires certification refuses to publish without a passing one
//! unless an admin skips it, on the record.

mod common;

use caelus_store::Backend;
use caelus_store::on_both_backends;
use common::Server;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    a_good_chart_is_certified_and_then_published,
    a_bad_chart_fails_with_each_item_named_and_publishing_needs_an_override,
    certification_is_admin_only_for_drafts_and_a_changed_draft_is_certified_again,
    deployment_tests_need_a_cluster,
    the_catalog_page_shows_a_versions_checklist,
);

async fn required(b: Backend) -> Server {
    Server::start_with(b, |s| s.with_required_certification(true)).await
}

fn item<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["check"] == check)
        .unwrap_or_else(|| panic!("no item {check} in {report}"))
}

async fn product(s: &Server, slug: &str) {
    s.post(
        "/api/v1/products",
        &s.admin,
        json!({"slug": slug, "name": slug}),
    )
    .await
    .ok(201);
}

async fn draft(s: &Server, slug: &str, chart: &str, version: &str) {
    let (reference, _) = s.chart(chart, version).await;
    s.post(
        &format!("/api/v1/products/{slug}/versions"),
        &s.admin,
        json!({"version": version, "chart": reference, "values_allowlist": ["testHook"]}),
    )
    .await
    .ok(201);
}

async fn audit(s: &Server, action: &str) -> Vec<Value> {
    let events = s.get("/api/v1/events?limit=200", &s.admin).await;
    events.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

async fn a_good_chart_is_certified_and_then_published(b: Backend) {
    let s = required(b).await;
    product(&s, "shop").await;
    // 1.0.0 is published at once: there is nothing to certify yet, so only
    // with an admin's recorded skip.
    let (reference, _) = s.chart("certified", "1.0.0").await;
    let refused = s
        .post(
            "/api/v1/products/shop/versions",
            &s.admin,
            json!({"version": "1.0.0", "chart": reference, "publish": true}),
        )
        .await;
    assert!(
        refused.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("not been certified"),
        "{}",
        refused.body
    );
    assert_eq!(s.count("template_versions").await, 0);
    s.post(
        "/api/v1/products/shop/versions",
        &s.admin,
        json!({"version": "1.0.0", "chart": reference, "publish": true, "skip_certification": true}),
    )
    .await
    .ok(201);
    let skipped = audit(&s, "template.publish").await;
    assert_eq!(skipped[0]["details"]["certification"], "skipped");

    draft(&s, "shop", "certified", "1.1.0").await;
    let report = s
        .post(
            "/api/v1/products/shop/versions/1.1.0/certify",
            &s.admin,
            json!({}),
        )
        .await;
    let report = report.ok(200).clone();
    assert_eq!(report["passed"], true, "{report}");
    for check in [
        "policy.isolation",
        "policy.pod-security",
        "resources",
        "probes",
        "images.pinned",
        "values.schema",
        "data-continuity",
    ] {
        assert_eq!(item(&report, check)["status"], "pass", "{check}: {report}");
    }
    assert!(
        item(&report, "data-continuity")["reason"]
            .as_str()
            .unwrap()
            .contains("from 1.0.0")
    );
    // No cluster: the canary is skipped, said so, and does not fail it.
    for check in [
        "canary.install",
        "canary.tests",
        "canary.upgrade",
        "canary.delete",
    ] {
        let i = item(&report, check);
        assert_eq!(i["status"], "warn");
        assert_eq!(i["reason"], "skipped (no cluster)");
    }
    // The report is stored on the version.
    let shown = s
        .get("/api/v1/products/shop/versions/1.1.0", &s.admin)
        .await;
    assert_eq!(shown.ok(200)["certification"], report);

    // Certified: publishing needs no override, and says on what grounds.
    let published = s
        .post(
            "/api/v1/products/shop/versions/1.1.0/publish",
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(published.ok(200)["lifecycle"], "published");
    assert_eq!(published.body["certification"]["passed"], true);
    let publishes = audit(&s, "template.publish").await;
    assert!(
        publishes
            .iter()
            .any(|e| e["details"]["certification"] == "certified"),
        "{publishes:?}"
    );
    assert_eq!(audit(&s, "template.certify").await.len(), 1);
}

async fn a_bad_chart_fails_with_each_item_named_and_publishing_needs_an_override(b: Backend) {
    let s = required(b).await;
    product(&s, "agent").await;
    draft(&s, "agent", "uncertified", "1.0.0").await;
    // Not certified yet: refused.
    let refused = s
        .post(
            "/api/v1/products/agent/versions/1.0.0/publish",
            &s.admin,
            json!({}),
        )
        .await;
    assert!(
        refused.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("has not been certified")
    );

    let report = s
        .post(
            "/api/v1/products/agent/versions/1.0.0/certify",
            &s.admin,
            json!({}),
        )
        .await;
    let report = report.ok(200).clone();
    assert_eq!(report["passed"], false, "{report}");
    let reason = |check: &str| {
        let i = item(&report, check);
        assert_eq!(i["status"], "fail", "{check}: {i}");
        i["reason"].as_str().unwrap().to_string()
    };
    assert!(
        reason("images.pinned")
            .contains("Deployment/canary-agent container \"agent\" image \"busybox\" is untagged"),
        "{report}"
    );
    assert!(reason("resources").contains("\"agent\" has no resource requests and limits"));
    let privileged = reason("policy.pod-security");
    assert!(privileged.contains("privileged"), "{privileged}");
    assert!(reason("probes").contains("no readiness probe"));
    assert!(reason("values.schema").contains("values.schema.json"));
    assert_eq!(item(&report, "policy.isolation")["status"], "pass");

    // Failed: refused, naming the failed checks.
    let refused = s
        .post(
            "/api/v1/products/agent/versions/1.0.0/publish",
            &s.admin,
            json!({}),
        )
        .await;
    let detail = refused.problem(409)["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("certification failed")
            && detail.contains("images.pinned")
            && detail.contains("resources"),
        "{detail}"
    );
    let shown = s
        .get("/api/v1/products/agent/versions/1.0.0", &s.admin)
        .await;
    assert_eq!(shown.ok(200)["lifecycle"], "draft");

    // Granting the privileged level fixes the policy item, not the others:
    // the changed draft is certified again and still fails.
    s.call(
        Method::PATCH,
        "/api/v1/products/agent/versions/1.0.0",
        &s.admin,
        Some(json!({"capabilities": {"pod_security": "privileged"}})),
    )
    .await
    .ok(200);
    let again = s
        .post(
            "/api/v1/products/agent/versions/1.0.0/certify",
            &s.admin,
            json!({}),
        )
        .await;
    let again = again.ok(200).clone();
    assert_eq!(again["passed"], false);
    assert_eq!(item(&again, "policy.pod-security")["status"], "pass");
    assert_eq!(item(&again, "images.pinned")["status"], "fail");
    s.post(
        "/api/v1/products/agent/versions/1.0.0/publish",
        &s.admin,
        json!({}),
    )
    .await
    .problem(409);

    // An admin may override; the audit event records it.
    let overridden = s
        .call(
            Method::POST,
            "/api/v1/products/agent/versions/1.0.0/publish?skip_certification=true",
            &s.admin,
            None,
        )
        .await;
    assert_eq!(overridden.ok(200)["lifecycle"], "published");
    let publishes = audit(&s, "template.publish").await;
    assert_eq!(publishes.len(), 1);
    assert_eq!(publishes[0]["details"]["certification"], "skipped");
    assert!(
        publishes[0]["message"]
            .as_str()
            .unwrap()
            .contains("certification skipped"),
        "{}",
        publishes[0]
    );
}

async fn certification_is_admin_only_for_drafts_and_a_changed_draft_is_certified_again(b: Backend) {
    let s = required(b).await;
    product(&s, "shop").await;
    draft(&s, "shop", "certified", "1.0.0").await;
    let tenant = s.tenant("acme").await;
    s.post(
        "/api/v1/products/shop/versions/1.0.0/certify",
        &tenant,
        json!({}),
    )
    .await
    .problem(403);
    s.post(
        "/api/v1/products/shop/versions/9.9.9/certify",
        &s.admin,
        json!({}),
    )
    .await
    .problem(404);
    let report = s
        .post(
            "/api/v1/products/shop/versions/1.0.0/certify",
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(report.ok(200)["passed"], true, "{}", report.body);
    assert_eq!(
        item(&report.body, "data-continuity")["reason"],
        "no previous published version to upgrade from"
    );

    // A change to the draft forgets its certification: publishing is refused again.
    let (other, _) = s.chart("certified", "1.1.0").await;
    s.call(
        Method::PATCH,
        "/api/v1/products/shop/versions/1.0.0",
        &s.admin,
        Some(json!({"chart": other})),
    )
    .await
    .ok(200);
    let shown = s
        .get("/api/v1/products/shop/versions/1.0.0", &s.admin)
        .await;
    assert_eq!(shown.ok(200)["certification"], Value::Null);
    s.post(
        "/api/v1/products/shop/versions/1.0.0/publish",
        &s.admin,
        json!({}),
    )
    .await
    .problem(409);
    s.post(
        "/api/v1/products/shop/versions/1.0.0/certify",
        &s.admin,
        json!({}),
    )
    .await
    .ok(200);
    s.post(
        "/api/v1/products/shop/versions/1.0.0/publish",
        &s.admin,
        json!({}),
    )
    .await
    .ok(200);
    // Only drafts are certified.
    s.post(
        "/api/v1/products/shop/versions/1.0.0/certify",
        &s.admin,
        json!({}),
    )
    .await
    .problem(409);
}

async fn deployment_tests_need_a_cluster(b: Backend) {
    // A server that does not require certification publishes as before.
    let s = Server::start(b).await;
    s.seed_catalog().await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let d = s.create_deployment(&acme, "blog").await;
    let uid = d["uid"].as_str().unwrap();
    s.post(
        &format!("/api/v1/deployments/{uid}/test"),
        &globex,
        json!({}),
    )
    .await
    .problem(404);
    let body = s
        .post(&format!("/api/v1/deployments/{uid}/test"), &acme, json!({}))
        .await;
    assert!(
        body.problem(503)["detail"]
            .as_str()
            .unwrap()
            .contains("no cluster")
    );
    let bad = s
        .post(
            &format!("/api/v1/deployments/{uid}/test?timeout_seconds=0"),
            &acme,
            json!({}),
        )
        .await;
    assert_eq!(bad.problem(400)["errors"][0]["field"], "timeout_seconds");
}

/// A signed-in admin's browser, enough for the catalog: cookies kept, no redirects followed.
struct Admin {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Admin {
    async fn sign_in(s: &Server) -> Admin {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = http
            .get(format!("{}/ui/login", s.base))
            .send()
            .await
            .unwrap();
        let mut cookie = Admin::cookies(&login);
        let csrf = Admin::csrf(&login.text().await.unwrap());
        let signed = http
            .post(format!("{}/ui/login", s.base))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([("_csrf", csrf.as_str()), ("token", &s.admin)])
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 303);
        let fresh = Admin::cookies(&signed);
        if !fresh.is_empty() {
            cookie = fresh;
        }
        Admin {
            http,
            base: s.base.clone(),
            cookie,
        }
    }

    fn cookies(resp: &reqwest::Response) -> String {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn csrf(body: &str) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let i = body.find(marker).expect("a CSRF field") + marker.len();
        body[i..i + 64].to_string()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, csrf: &str) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("_csrf", csrf)]).unwrap())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

async fn the_catalog_page_shows_a_versions_checklist(b: Backend) {
    let s = required(b).await;
    product(&s, "agent").await;
    draft(&s, "agent", "uncertified", "1.0.0").await;
    let admin = Admin::sign_in(&s).await;
    let (status, page) = admin.get("/ui/catalog").await;
    assert_eq!(status, 200);
    // A draft offers Certify; no checklist before the first certification.
    assert!(page.contains("/ui/catalog/agent/1.0.0/certify"), "{page}");
    assert!(!page.contains("data-certified"));

    let csrf = Admin::csrf(&page);
    assert_eq!(
        admin.post("/ui/catalog/agent/1.0.0/certify", &csrf).await,
        303
    );
    let (_, page) = admin.get("/ui/catalog").await;
    assert!(page.contains("data-certified=\"failed\""), "{page}");
    assert!(
        page.contains("failed certification: "),
        "the flash says so: {page}"
    );
    for (check, status) in [
        ("images.pinned", "fail"),
        ("resources", "fail"),
        ("policy.pod-security", "fail"),
        ("policy.isolation", "pass"),
        ("canary.install", "warn"),
    ] {
        assert!(
            page.contains(&format!("data-check=\"{check}\" data-status=\"{status}\"")),
            "{check} {status}: {page}"
        );
    }
    assert!(page.contains("is untagged"), "the reasons are shown");
}
