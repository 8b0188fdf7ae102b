//! Two real `caelus server` processes on one PostgreSQL database, as the chart
//! runs several API replicas behind a Service without sticky sessions: a UI
//! sign-in on one is honoured by the other, a form posted to either carries
//! the session's CSRF token, and signing out on one ends the session on both.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::redirect::Policy;

mod support;

use support::{CAELUS, admin_token, free_port, stop_gracefully, temp_dir};

/// A `caelus server` process, stopped on drop.
struct ApiProcess {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child);
    }
}

impl ApiProcess {
    fn start(dir: &Path, name: &str, database_url: &str) -> ApiProcess {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(CAELUS)
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--database-url")
            .arg(database_url)
            .arg("--data-dir")
            .arg(dir.join(name))
            // No cluster for either: the UI needs none, and no kubeconfig of the
            // machine's is picked up.
            .env("KUBECONFIG", dir.join("no-kubeconfig"))
            .env("CAELUS_LOG", "warn")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start caelus server");
        ApiProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "caelus server exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "caelus server not ready: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One browser: its cookies, whichever server it talks to.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
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
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie.join("; "))
        };
        let resp = req.send().await.unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
        Page {
            status: resp.status(),
            location: resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, on: &ApiProcess, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", on.base));
        self.send(req).await
    }

    async fn post(&mut self, on: &ApiProcess, path: &str, form: &[(&str, &str)]) -> Page {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        let req = self
            .http
            .post(format!("{}{path}", on.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        self.send(req).await
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_sign_in_on_one_server_process_is_honoured_by_another() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = temp_dir("ui-sessions");
    let db = caelus_store::testing::TestDb::postgres().await;
    let token = admin_token(&db.url, "night-operator");

    // A migrates the database; B finds it migrated. Nothing else is shared.
    let mut a = ApiProcess::start(&dir, "a", &db.url);
    a.wait_ready().await;
    let mut b = ApiProcess::start(&dir, "b", &db.url);
    b.wait_ready().await;

    // Sign in on A.
    let mut browser = Browser::new();
    let login = browser.get(&a, "/ui/login").await;
    assert_eq!(login.status, 200);
    let csrf = login.csrf();
    let signed_in = browser
        .post(&a, "/ui/login", &[("_csrf", &csrf), ("token", &token)])
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert!(browser.cookies.contains_key("caelus_session"));

    // The same cookie is a signed-in session on B, with the same CSRF token.
    let on_b = browser.get(&b, "/ui/deployments").await;
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert!(on_b.body.contains("night-operator"), "{}", on_b.body);
    let on_a = browser.get(&a, "/ui/deployments").await;
    assert_eq!(on_a.csrf(), on_b.csrf());

    // A browser without the cookie is sent to sign in by either.
    let mut stranger = Browser::new();
    for server in [&a, &b] {
        let p = stranger.get(server, "/ui/deployments").await;
        assert_eq!(p.status, 303);
        assert!(p.location.unwrap().starts_with("/ui/login"));
    }

    // Sign out on B (a form: B checks the CSRF token A's page carried) ends
    // the session on A too: the same cookie, replayed, is no longer signed in.
    let sid = browser.cookies["caelus_session"].clone();
    let out = browser
        .post(&b, "/ui/logout", &[("_csrf", &on_a.csrf())])
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    browser.cookies.insert("caelus_session".into(), sid);
    let after = browser.get(&a, "/ui/deployments").await;
    assert_eq!(after.status, 303, "{}", after.body);
    assert!(after.location.unwrap().starts_with("/ui/login"));
    let _ = std::fs::remove_dir_all(&dir);
}
