//! Real `caelus server` processes: a UI sign-in on one is honoured by another on
//! the same database (SQLite file and PostgreSQL), and the CLI's token expiry and
//! audit-log commands against a running server.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod support;
use support::{admin_token, free_port, stop_gracefully, temp_dir};

const CAELUS: &str = env!("CARGO_BIN_EXE_caelus");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        stop_gracefully(&mut self.0);
    }
}

/// `caelus server` on `database_url`, waited for until ready; returns its URL.
fn server(dir: &Path, name: &str, database_url: &str) -> (Proc, String) {
    let port = free_port();
    let child = Command::new(CAELUS)
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(database_url)
        .arg("--data-dir")
        .arg(dir.join(name))
        .env("CAELUS_LOG", "warn")
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = Command::new(CAELUS)
            .args(["status", "--url", &url, "-o", "json"])
            .output()
            .unwrap()
            .status
            .success();
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not start: {}",
            std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Proc(child), url)
}

fn cli(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(CAELUS)
        .args(args)
        .env("CAELUS_URL", url)
        .env("CAELUS_TOKEN", token)
        .env_remove("CAELUS_CONTEXT")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn cli_json(url: &str, token: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let (ok, out, err) = cli(url, token, &args);
    assert!(ok, "caelus {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("caelus {args:?}: {e}: {out}"))
}

/// Signs in on `a`, then uses the cookie on `b`, then signs out on `b` and checks `a`.
async fn sign_in_on_one_use_on_the_other(a: &str, b: &str, token: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie_of = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")) && !v.contains("Max-Age=0"))
            .map(|v| v.split(';').next().unwrap().to_string())
    };
    let csrf_of = |page: &str| {
        let marker = "name=\"_csrf\" value=\"";
        let i = page.find(marker).expect("a CSRF field") + marker.len();
        page[i..i + 64].to_string()
    };
    let login = http.get(format!("{a}/ui/login")).send().await.unwrap();
    let login_cookie = cookie_of(&login, "caelus_login_csrf").unwrap();
    let csrf = csrf_of(&login.text().await.unwrap());
    let signed_in = http
        .post(format!("{a}/ui/login"))
        .header("cookie", login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}&token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = cookie_of(&signed_in, "caelus_session").expect("a session cookie");

    // The other process serves the session.
    let page = http
        .get(format!("{b}/ui/deployments"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("ops"), "{page}");
    // And accepts its forms: sign out there.
    let out = http
        .post(format!("{b}/ui/logout"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={}", csrf_of(&page)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    // The first process no longer knows it either.
    let after = http
        .get(format!("{a}/ui/deployments"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    assert!(
        after.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui/login")
    );
}

#[test]
fn a_ui_sign_in_on_one_server_process_is_honoured_by_another_on_sqlite() {
    let dir = temp_dir("sessions-sqlite");
    let url = format!("sqlite://{}", dir.join("caelus.db").display());
    let token = admin_token(&url, "ops");
    let (_a, a) = server(&dir, "a", &url);
    let (_b, b) = server(&dir, "b", &url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(sign_in_on_one_use_on_the_other(&a, &b, &token));
}

#[test]
fn a_ui_sign_in_on_one_server_process_is_honoured_by_another_on_postgres() {
    let dir = temp_dir("sessions-pg");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(caelus_store::testing::TestDb::postgres());
    let token = admin_token(&db.url, "ops");
    let (_a, a) = server(&dir, "a", &db.url);
    let (_b, b) = server(&dir, "b", &db.url);
    rt.block_on(sign_in_on_one_use_on_the_other(&a, &b, &token));
}

#[test]
fn tokens_expire_and_admins_read_the_audit_log_from_the_cli() {
    let dir = temp_dir("security-cli");
    let db_url = format!("sqlite://{}", dir.join("caelus.db").display());
    let admin = admin_token(&db_url, "ops");
    let (_server, url) = server(&dir, "server", &db_url);

    // --expires-in: a lifetime; a bad one is refused naming the flag's field.
    let t = cli_json(
        &url,
        &admin,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "tenant",
            "--tenant",
            "acme",
            "--expires-in",
            "30d",
        ],
    );
    assert!(t["expires_at"].is_string(), "{t}");
    let (ok, _, err) = cli(
        &url,
        &admin,
        &[
            "token",
            "create",
            "--name",
            "x",
            "--role",
            "tenant",
            "--tenant",
            "acme",
            "--expires-in",
            "soon",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("expires_in") && err.contains("'soon'"),
        "{err}"
    );
    // Reserved tenants are refused from the CLI as from the API.
    let (ok, _, err) = cli(
        &url,
        &admin,
        &[
            "token", "create", "--name", "x", "--role", "tenant", "--tenant", "system",
        ],
    );
    assert!(!ok);
    assert!(err.contains("reserved"), "{err}");
    // The listing shows expiry (and last use, once used).
    let secret = t["secret"].as_str().unwrap();
    cli_json(&url, secret, &["deployment", "list"]);
    let (ok, table, err) = cli(&url, &admin, &["token", "list", "-o", "wide"]);
    assert!(ok, "{err}");
    assert!(
        table.contains("EXPIRES") && table.contains("LAST USED"),
        "{table}"
    );
    let list = cli_json(&url, &admin, &["token", "list"]);
    let row = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == t["id"])
        .unwrap()
        .clone();
    assert!(row["last_used_at"].is_string(), "{row}");

    // A token that expires stops working, and the CLI says why.
    let brief = cli_json(
        &url,
        &admin,
        &[
            "token",
            "create",
            "--name",
            "brief",
            "--role",
            "tenant",
            "--tenant",
            "acme",
            "--expires-in",
            "1s",
        ],
    );
    std::thread::sleep(Duration::from_millis(1200));
    let (ok, _, err) = cli(
        &url,
        brief["secret"].as_str().unwrap(),
        &["deployment", "list"],
    );
    assert!(!ok);
    assert!(err.contains("expired"), "{err}");

    // The audit log, with filters.
    let all = cli_json(&url, &admin, &["events", "list"]);
    let actions: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["token.create", "token.create"], "{all}");
    let acme = cli_json(
        &url,
        &admin,
        &[
            "events",
            "list",
            "--tenant",
            "acme",
            "--action",
            "token.create",
            "--actor",
            "token:ops",
            "--since",
            "1h",
        ],
    );
    assert_eq!(acme["items"].as_array().unwrap().len(), 2);
    let none = cli_json(&url, &admin, &["events", "list", "--until", "1h"]);
    assert!(none["items"].as_array().unwrap().is_empty());
    let page = cli_json(&url, &admin, &["events", "list", "--limit", "1"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = cli_json(
        &url,
        &admin,
        &["events", "list", "--limit", "1", "--cursor", cursor],
    );
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    let (ok, table, _) = cli(&url, &admin, &["events", "list"]);
    assert!(
        ok && table.contains("TENANT") && table.contains("token.create"),
        "{table}"
    );
    // Tenants may not read it; a bad time is refused before any request.
    let (ok, _, err) = cli(&url, secret, &["events", "list"]);
    assert!(!ok && err.contains("admin"), "{err}");
    let (ok, _, err) = cli(&url, &admin, &["events", "list", "--since", "yesterday"]);
    assert!(!ok && err.contains("--since"), "{err}");
}
