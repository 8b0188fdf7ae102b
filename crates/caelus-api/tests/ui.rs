//! The web UI over HTTP: sign-in sessions, cookie flags, CSRF, tenant isolation,
//! errors naming fields. (Browser behaviour is in tests/browser.)

mod common;

use caelus_store::{Backend, on_both_backends};
use common::Server;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use std::collections::HashMap;

/// A tiny cookie-keeping client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
    /// Every Set-Cookie header seen, to check flags.
    set_cookies: Vec<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    #[track_caller]
    fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let i = self.body.find(marker).expect("a CSRF field") + marker.len();
        self.body[i..i + 64].to_string()
    }
}

impl Browser {
    fn new(s: &Server) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: s.base.clone(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await.unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap().to_string();
            let (kv, attrs) = v.split_once(';').unwrap_or((&v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
            self.set_cookies.push(v.clone());
        }
        Page {
            status: resp.status(),
            location: resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        self.send(req).await
    }

    async fn sign_in(&mut self, token: &str) -> Page {
        let login = self.get("/ui/login").await;
        assert_eq!(login.status, 200);
        let csrf = login.csrf();
        self.post("/ui/login", &[("_csrf", &csrf), ("token", token)])
            .await
    }

    /// The session's CSRF token, read from any signed-in page.
    async fn csrf(&mut self) -> String {
        self.get("/ui/deployments").await.csrf()
    }
}

on_both_backends!(
    tenants_see_only_their_own_deployments_admins_see_all,
    a_sign_in_on_one_replica_is_honoured_by_another,
);

/// Two API servers, each with its own connection pool and state, on one database:
/// a session made on one serves pages, forms and flash messages on the other, and
/// signing out on either ends it on both. No sticky sessions needed.
async fn a_sign_in_on_one_replica_is_honoured_by_another(backend: Backend) {
    let s = Server::start(backend).await;
    s.seed_catalog().await;
    let replica = s.replica().await;
    let mut on_a = Browser::new(&s);
    assert_eq!(on_a.sign_in(&s.admin).await.status, 303);
    let sid = on_a.cookies["caelus_session"].clone();

    // The same browser (same cookie) now talks to the other replica.
    let mut on_b = Browser::new(&s);
    on_b.base = replica.base.clone();
    on_b.cookies = on_a.cookies.clone();
    let page = on_b.get("/ui/deployments").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("test-admin"));
    // The CSRF token is the session's, whichever replica rendered the form.
    assert_eq!(page.csrf(), on_a.csrf().await);

    // A form posted to B; its one-time message is shown by A.
    let csrf = on_b.csrf().await;
    let p = on_b
        .post(
            "/ui/deployments",
            &[
                ("_csrf", &csrf),
                ("product", "wiki"),
                ("version", "1.0.0"),
                ("name", "shared"),
                ("values", "replicaCount: 1"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let detail = p.location.unwrap();
    let shown = on_a.get(&detail).await;
    assert_eq!(shown.status, 200);
    assert!(
        shown.body.contains("class=\"flash info\""),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("shared&#39; created") || shown.body.contains("shared' created"));
    // Shown once, by whichever replica renders the next page.
    let again = on_b.get(&detail).await;
    assert!(!again.body.contains("class=\"flash"), "{}", again.body);

    // The database keeps only a hash of the session id.
    use sqlx::Row;
    let rows = sqlx::query("SELECT id_hash, token_id FROM ui_sessions")
        .fetch_all(s.db.store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].try_get("id_hash").unwrap();
    assert_ne!(stored, sid);
    assert_eq!(stored, caelus_api::ui::session::session_hash(&sid));

    // Sign out on B: A no longer knows the session either, and the row is gone.
    let csrf = on_b.csrf().await;
    assert_eq!(
        on_b.post("/ui/logout", &[("_csrf", &csrf)]).await.status,
        303
    );
    let p = on_a.get("/ui/deployments").await;
    assert_eq!(p.status, 303);
    assert!(p.location.unwrap().starts_with("/ui/login"));
    assert_eq!(s.count("ui_sessions").await, 0);
}

#[tokio::test]
async fn sign_in_redirects_with_control_characters_or_other_sites_are_ignored() {
    let s = Server::start(Backend::Sqlite).await;
    let mut b = Browser::new(&s);
    for next in [
        "/ui/deployments%0d%0aSet-Cookie:%20x=y",
        "/ui/%00",
        "/ui/%C3%A9",
        "//evil.example/ui/",
        "https://evil.example/",
    ] {
        let p = b.get(&format!("/ui/login?next={next}")).await;
        assert_eq!(p.status, 200, "{next}: {}", p.body);
        assert!(
            p.body.contains("name=\"next\" value=\"/ui/deployments\""),
            "{next}: {}",
            p.body
        );
    }
    let login = b.get("/ui/login").await;
    let csrf = login.csrf();
    let p = b
        .post(
            "/ui/login",
            &[
                ("_csrf", &csrf),
                ("token", &s.admin),
                ("next", "/ui/catalog\r\nSet-Cookie: x=y"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/ui/deployments"));
}

#[tokio::test]
async fn sign_in_gives_a_strict_httponly_session_and_sign_out_ends_it() {
    let s = Server::start(Backend::Sqlite).await;
    let mut b = Browser::new(&s);

    // Not signed in: pages send you to the sign-in page, remembering where you were.
    let p = b.get("/ui/deployments?phase=Ready").await;
    assert_eq!(p.status, 303);
    assert_eq!(
        p.location.as_deref(),
        Some("/ui/login?next=%2Fui%2Fdeployments%3Fphase%3DReady")
    );
    let p = b.get("/ui/deployments/rows").await;
    assert_eq!(p.status, 401);

    // A wrong token is refused, naming the field.
    let p = b.sign_in("cae_not-a-real-token").await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("data-field=\"token\""), "{}", p.body);
    assert!(!b.cookies.contains_key("caelus_session"));

    let p = b.sign_in(&s.admin).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/ui/deployments"));
    let session_cookie = b
        .set_cookies
        .iter()
        .find(|c| c.starts_with("caelus_session=") && !c.contains("Max-Age=0"))
        .expect("a session cookie")
        .clone();
    assert!(session_cookie.contains("; HttpOnly"), "{session_cookie}");
    assert!(
        session_cookie.contains("; SameSite=Strict"),
        "{session_cookie}"
    );
    assert!(session_cookie.contains("; Path=/ui"), "{session_cookie}");
    // The cookie holds a random session id, never the token.
    let sid = b.cookies["caelus_session"].clone();
    assert_eq!(sid.len(), 64);
    assert!(!session_cookie.contains(&s.admin));
    assert!(!sid.contains(&s.admin[4..20]));
    // Every cookie the UI sets is HttpOnly and Strict.
    for c in &b.set_cookies {
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }

    let p = b.get("/ui/deployments").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("test-admin"));
    assert_eq!(
        p.headers.get("x-frame-options").unwrap().to_str().unwrap(),
        "DENY"
    );
    assert!(
        p.headers
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(p.headers.get("cache-control").unwrap(), "no-store");
    // Pages load only their own assets.
    assert!(!p.body.contains("http://") && !p.body.contains("https://"));
    let css = b.get("/ui/static/app.css").await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );

    // Sign-in redirects only inside the UI.
    let mut other = Browser::new(&s);
    let login = other.get("/ui/login?next=https://evil.example/").await;
    let csrf = login.csrf();
    let p = other
        .post(
            "/ui/login",
            &[
                ("_csrf", &csrf),
                ("token", &s.admin),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/ui/deployments"));

    // Sign out: the session is gone server-side, not only in this browser.
    let csrf = b.csrf().await;
    let p = b.post("/ui/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(p.status, 303);
    assert!(!b.cookies.contains_key("caelus_session"));
    b.cookies.insert("caelus_session".into(), sid);
    let p = b.get("/ui/deployments").await;
    assert_eq!(p.status, 303);
    assert!(p.location.unwrap().starts_with("/ui/login"));
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions() {
    let s = Server::start(Backend::Sqlite).await;
    let created = s
        .post(
            "/api/v1/tokens",
            &s.admin,
            serde_json::json!({"name": "temp", "role": "tenant", "tenant": "acme"}),
        )
        .await;
    let body = created.ok(201).clone();
    let mut b = Browser::new(&s);
    assert_eq!(
        b.sign_in(body["secret"].as_str().unwrap()).await.status,
        303
    );
    assert_eq!(b.get("/ui/deployments").await.status, 200);
    s.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{}", body["id"].as_str().unwrap()),
        &s.admin,
        None,
    )
    .await;
    let p = b.get("/ui/deployments").await;
    assert_eq!(p.status, 303);
    assert!(p.location.unwrap().starts_with("/ui/login"));
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    s.seed_catalog().await;
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in(&s.admin).await.status, 303);
    let create = |csrf: Option<&str>| {
        let mut f = vec![
            ("product", "wiki".to_string()),
            ("version", "1.0.0".to_string()),
            ("name", "web".to_string()),
            ("values", "replicaCount: 2".to_string()),
        ];
        if let Some(c) = csrf {
            f.push(("_csrf", c.to_string()));
        }
        f
    };
    let as_refs = |f: &Vec<(&'static str, String)>| {
        f.iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect::<Vec<(&str, String)>>()
    };

    let form = as_refs(&create(None));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = b.post("/ui/deployments", &form).await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("CSRF"), "{}", p.body);

    let form = as_refs(&create(Some(&"0".repeat(64))));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = b.post("/ui/deployments", &form).await;
    assert_eq!(p.status, 403);

    // The right token, but posted from another site.
    let csrf = b.csrf().await;
    let form = as_refs(&create(Some(&csrf)));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let req = b
        .http
        .post(format!("{}/ui/deployments", b.base))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&form).unwrap());
    let p = b.send(req).await;
    assert_eq!(p.status, 403);
    // Signing out and sign-in need it too.
    assert_eq!(b.post("/ui/logout", &[]).await.status, 403);
    let mut fresh = Browser::new(&s);
    let p = fresh.post("/ui/login", &[("token", &s.admin)]).await;
    assert_eq!(p.status, 403);
    assert_eq!(s.count("deployments").await, 0);

    // With it, the deployment is created (through the API's own handler: audited).
    let p = b.post("/ui/deployments", &form).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(p.location.unwrap().starts_with("/ui/deployments/"));
    assert_eq!(s.count("deployments").await, 1);
    let events = s.count("events").await;
    assert!(events >= 1);
}

#[tokio::test]
async fn errors_from_the_api_name_the_fields_on_the_page() {
    let s = Server::start(Backend::Sqlite).await;
    s.seed_catalog().await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    let csrf = b.csrf().await;
    let p = b
        .post(
            "/ui/deployments",
            &[
                ("_csrf", &csrf),
                ("product", "wiki"),
                ("version", "1.0.0"),
                ("name", "web"),
                ("values", "replicaCount: 2\nimage:\n  tag: evil\n"),
            ],
        )
        .await;
    assert_eq!(p.status, 422);
    assert!(p.body.contains("data-field=\"values\""), "{}", p.body);
    assert!(p.body.contains("image.tag"), "{}", p.body);
    // What was typed is kept.
    assert!(p.body.contains("tag: evil"));
    let p = b
        .post(
            "/ui/deployments",
            &[
                ("_csrf", &csrf),
                ("product", "wiki"),
                ("version", "1.0.0"),
                ("name", "web"),
                ("values", "a: ["),
            ],
        )
        .await;
    assert_eq!(p.status, 422);
    assert!(p.body.contains("not valid YAML"));
    assert_eq!(s.count("deployments").await, 0);

    // Tenants cannot publish: the API's 403 is on the page.
    let acme = s.tenant("acme").await;
    let mut t = Browser::new(&s);
    t.sign_in(&acme).await;
    let catalog = t.get("/ui/catalog").await;
    assert!(!catalog.body.contains("Publish a version"));
    let csrf = catalog.csrf();
    let p = t
        .post("/ui/catalog/wiki/1.0.0/retire", &[("_csrf", &csrf)])
        .await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("only an admin"), "{}", p.body);
}

#[tokio::test]
async fn admins_publish_deprecate_and_retire_from_the_catalog() {
    let s = Server::start(Backend::Sqlite).await;
    s.seed_catalog().await;
    let (chart, digest) = s.chart("web", "2.0.0").await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    let csrf = b.get("/ui/catalog").await.csrf();
    let p = b
        .post(
            "/ui/catalog/versions",
            &[
                ("_csrf", &csrf),
                ("product", "wiki"),
                ("version", "2.0.0"),
                ("chart", &chart),
                ("allowlist", "replicaCount\nresources.*\n"),
                ("mode", "publish"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = b.get("/ui/catalog").await;
    assert!(page.body.contains(&digest[..19]), "{}", page.body);
    assert!(page.body.contains("is published (chart"), "{}", page.body);

    // A bad chart reference names the field.
    let p = b
        .post(
            "/ui/catalog/versions",
            &[
                ("_csrf", &csrf),
                ("product", "wiki"),
                ("version", "3.0.0"),
                ("chart", "http://nope"),
                ("allowlist", ""),
            ],
        )
        .await;
    assert_eq!(p.status, 422);
    assert!(p.body.contains("data-field=\"chart\""), "{}", p.body);

    let p = b
        .post("/ui/catalog/wiki/1.0.0/deprecate", &[("_csrf", &csrf)])
        .await;
    assert_eq!(p.status, 303);
    let p = b
        .post("/ui/catalog/wiki/1.0.0/retire", &[("_csrf", &csrf)])
        .await;
    assert_eq!(p.status, 303);
    let v = s
        .get("/api/v1/products/wiki/versions/1.0.0", &s.admin)
        .await;
    assert_eq!(v.ok(200)["lifecycle"], "retired");
    // Moving backwards is the API's 409, shown on the page.
    let p = b
        .post("/ui/catalog/wiki/1.0.0/deprecate", &[("_csrf", &csrf)])
        .await;
    assert_eq!(p.status, 409);
}

async fn tenants_see_only_their_own_deployments_admins_see_all(backend: Backend) {
    let s = Server::start(backend).await;
    s.seed_catalog().await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let mine = s.create_deployment(&acme, "acme-wiki").await;
    let theirs = s.create_deployment(&globex, "globex-wiki").await;
    let theirs_uid = theirs["uid"].as_str().unwrap();

    let mut a = Browser::new(&s);
    a.sign_in(&acme).await;
    let list = a.get("/ui/deployments").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("acme-wiki"));
    assert!(!list.body.contains("globex-wiki"));
    assert!(!list.body.contains(theirs_uid));
    assert!(
        !list.body.contains(">Tenant<"),
        "tenants see no tenant column"
    );
    let rows = a.get("/ui/deployments/rows").await;
    assert!(rows.body.contains("acme-wiki") && !rows.body.contains("globex-wiki"));
    // Another tenant's deployment does not exist, as in the API.
    let p = a.get(&format!("/ui/deployments/{theirs_uid}")).await;
    assert_eq!(p.status, 404);
    assert!(!p.body.contains("globex-wiki"));
    assert_eq!(
        a.get(&format!("/ui/deployments/{theirs_uid}/live"))
            .await
            .status,
        404
    );
    let csrf = a.csrf().await;
    let p = a
        .post(
            &format!("/ui/deployments/{theirs_uid}/delete"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 404);
    let p = a
        .post(
            &format!("/ui/deployments/{theirs_uid}/values"),
            &[("_csrf", &csrf), ("values", "replicaCount: 5")],
        )
        .await;
    assert_eq!(p.status, 404);
    let theirs_now = s
        .get(&format!("/api/v1/deployments/{theirs_uid}"), &s.admin)
        .await;
    assert_eq!(theirs_now.ok(200)["desired_state"], "present");
    assert_eq!(theirs_now.body["generation"], 1);
    // Its own detail page works, with the live fragment.
    let p = a
        .get(&format!(
            "/ui/deployments/{}",
            mine["uid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("acme-wiki"));
    let live = a
        .get(&format!(
            "/ui/deployments/{}/live",
            mine["uid"].as_str().unwrap()
        ))
        .await;
    let live: serde_json::Value = serde_json::from_str(&live.body).unwrap();
    assert_eq!(live["phase"], "Pending");
    assert!(
        live["fragments"]["summary"]
            .as_str()
            .unwrap()
            .contains("Pending")
    );

    // Filters.
    let p = a.get("/ui/deployments?phase=Ready").await;
    assert!(!p.body.contains("acme-wiki"));
    let p = a.get("/ui/deployments?phase=Pending&product=wiki").await;
    assert!(p.body.contains("acme-wiki"));
    let p = a.get("/ui/deployments?phase=Sleeping").await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("data-field=\"phase\""));

    let mut admin = Browser::new(&s);
    admin.sign_in(&s.admin).await;
    let list = admin.get("/ui/deployments").await;
    assert!(list.body.contains("acme-wiki") && list.body.contains("globex-wiki"));
    assert!(list.body.contains(">Tenant<"));
    assert!(list.body.contains(">globex<"));
}
