//! The real `caelus` binary: `caelus dev` on an empty data dir, and the CLI driving it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Running, cli, ok, start_dev, temp_dir, wait_ready};

const CAELUS: &str = env!("CARGO_BIN_EXE_caelus");

#[test]
fn dev_starts_on_an_empty_data_dir_and_the_cli_tour_works() {
    let dir = temp_dir("e2e-tour");
    let r = start_dev(&dir);
    wait_ready(&r.url);
    assert!(dir.join("caelus.db").exists());
    let readyz = ok(&r, &["status", "-o", "json"]);
    assert!(readyz.contains("\"ready\""), "{readyz}");

    // caelus dev published its demo catalog into the empty database.
    let deadline = Instant::now() + Duration::from_secs(30);
    let versions = loop {
        let (success, out, _) = cli(&r, &["template", "list", "web"]);
        if success && out.contains("2.0.0") {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "demo catalog not published: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        versions.contains("1.0.0") && versions.contains("@sha256:"),
        "{versions}"
    );
    let manifest = ok(&r, &["template", "render", "web", "1.0.0"]);
    assert!(
        manifest.contains("kind: Deployment") && manifest.contains("kind: Service"),
        "{manifest}"
    );

    let values = dir.join("values.yaml");
    std::fs::write(&values, "replicaCount: 2\n").unwrap();
    let created = ok(
        &r,
        &[
            "deployment",
            "create",
            "--product",
            "web",
            "--version",
            "1.0.0",
            "--name",
            "my wiki",
            "--values",
            values.to_str().unwrap(),
            "--wait",
            "--timeout",
            "60",
            "-o",
            "json",
        ],
    );
    // The API answers at once (Pending); --wait follows the reconciler to Ready.
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let uid = created["uid"].as_str().unwrap();
    assert_eq!(created["status"]["phase"], "Pending");

    let list = ok(&r, &["deployment", "list"]);
    assert!(list.lines().next().unwrap().starts_with("UID"));
    assert!(list.contains(uid) && list.contains("Ready"), "{list}");
    let show = ok(&r, &["deployment", "show", uid]);
    assert!(
        show.contains("Phase:       Ready")
            && show.contains("Objects:")
            && show.contains("Healthy"),
        "{show}"
    );
    // The namespace Caelus made, seen by the real kubectl through dev's kubeconfig.
    let namespace = created["namespace"].as_str().unwrap();
    let kubectl = Command::new("kubectl")
        .args([
            "--kubeconfig",
            dir.join("kubeconfig").to_str().unwrap(),
            "get",
            "ns",
            namespace,
        ])
        .output()
        .expect("kubectl");
    assert!(
        kubectl.status.success(),
        "{}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    assert!(String::from_utf8_lossy(&kubectl.stdout).contains(namespace));

    std::fs::write(&values, "replicaCount: 3\n").unwrap();
    // The plan first, as for an upgrade: what would change, and nothing does.
    let plan = ok(
        &r,
        &[
            "deployment",
            "update",
            uid,
            "--values",
            values.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(
        plan.starts_with("Plan: 1.0.0 -> 1.0.0 (allowed)")
            && plan.contains("Deployment/")
            && plan.contains("replicas"),
        "{plan}"
    );
    let show = ok(&r, &["deployment", "show", uid]);
    assert!(
        show.contains("Revision:    1"),
        "a dry run changed it: {show}"
    );
    let yaml = ok(
        &r,
        &[
            "deployment",
            "update",
            uid,
            "--values",
            values.to_str().unwrap(),
            "--wait",
            "-o",
            "yaml",
        ],
    );
    assert!(yaml.contains("generation: 2"), "{yaml}");
    let show = ok(&r, &["deployment", "show", uid]);
    assert!(show.contains("Revision:    2"), "{show}");

    // Bad input: a clear error, naming the field, and a failing exit code.
    std::fs::write(&values, "hostNetwork: true\n").unwrap();
    let (success, _, err) = cli(
        &r,
        &[
            "deployment",
            "update",
            uid,
            "--values",
            values.to_str().unwrap(),
        ],
    );
    assert!(!success);
    assert!(err.contains("422") && err.contains("hostNetwork"), "{err}");

    ok(&r, &["deployment", "delete", uid, "--wait"]);
    let gone = ok(&r, &["deployment", "list", "--include-deleted"]);
    assert!(gone.contains("Deleted"), "{gone}");
    let events = ok(&r, &["deployment", "events", uid]);
    for action in [
        "deployment.create",
        "deployment.update",
        "deployment.delete",
    ] {
        assert!(events.contains(action), "{events}");
    }
    let history = ok(&r, &["deployment", "history", uid]);
    assert!(history.starts_with("REVISION"), "{history}");

    let tok = ok(
        &r,
        &[
            "token", "create", "--name", "alice", "--role", "tenant", "--tenant", "acme", "-o",
            "json",
        ],
    );
    let tok: serde_json::Value = serde_json::from_str(&tok).unwrap();
    let tenant = Running {
        child: Command::new("true").spawn().unwrap(),
        url: r.url.clone(),
        token: tok["secret"].as_str().unwrap().to_string(),
        chart_repository: None,
    };
    let (success, _, err) = cli(&tenant, &["deployment", "show", uid]);
    assert!(
        !success && err.contains("404"),
        "tenant saw another tenant's deployment: {err}"
    );
    ok(&r, &["token", "revoke", tok["id"].as_str().unwrap()]);
    let (success, _, err) = cli(&tenant, &["product", "list"]);
    assert!(!success && err.contains("401"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dev_keeps_its_admin_token_across_restarts() {
    let dir = temp_dir("e2e-restart");
    let first = start_dev(&dir);
    wait_ready(&first.url);
    let token = first.token.clone();
    drop(first);
    let second = start_dev(&dir);
    wait_ready(&second.url);
    assert_eq!(second.token, token);
    ok(&second, &["product", "list"]);
    let mode = std::fs::metadata(dir.join("admin-token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_on_postgres_with_an_offline_bootstrap_token() {
    let admin_url = std::env::var("CAELUS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| caelus_store::testing::DEFAULT_TEST_DATABASE_URL.to_string());
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A schema of its own, so parallel runs never share tables.
    let db = rt.block_on(caelus_store::testing::TestDb::postgres());
    let out = Command::new(CAELUS)
        .args([
            "admin",
            "create-token",
            "--role",
            "admin",
            "--name",
            "ops",
            "--database-url",
            &db.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("cae_"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown once"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CAELUS)
        .args([
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db.url,
        ])
        .env("CAELUS_LOG", "warn")
        .spawn()
        .unwrap();
    let r = Running {
        child,
        url: format!("http://127.0.0.1:{port}"),
        token,
        chart_repository: None,
    };
    wait_ready(&r.url);
    ok(&r, &["product", "create", "db", "--name", "Postgres"]);
    let out = ok(&r, &["product", "show", "db", "-o", "json"]);
    assert!(out.contains("\"slug\": \"db\""), "{out}");
    drop(r);
    let _ = admin_url;
    drop(db);
}

#[test]
fn registry_credentials_come_from_the_registries_file() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = caelus_helm::testing::TestRegistry::start_with_auth().unwrap();
    let (chart, _) = rt
        .block_on(caelus_helm::testing::push_test_chart(
            &registry, "web", "1.0.0",
        ))
        .unwrap();
    let dir = temp_dir("e2e-registries");
    let db = format!("sqlite://{}", dir.join("caelus.db").display());
    let out = Command::new(CAELUS)
        .args(["admin", "create-token", "--database-url", &db])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let settings = dir.join("registries.yaml");
    std::fs::write(
        &settings,
        format!(
            "{}:\n  credentials:\n    username: {}\n    password: {}\n",
            registry.host(),
            caelus_helm::testing::TEST_USERNAME,
            caelus_helm::testing::TEST_PASSWORD
        ),
    )
    .unwrap();
    let start = |registries: Option<&Path>| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(CAELUS);
        cmd.args([
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db,
        ])
        .arg("--data-dir")
        .arg(dir.join(format!("data-{port}")))
        // This test is about registry credentials: its version is published uncertified.
        .arg("--require-certification=false")
        .env("CAELUS_LOG", "warn");
        if let Some(r) = registries {
            cmd.arg("--registries").arg(r);
        }
        let r = Running {
            child: cmd.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
            token: token.clone(),
            chart_repository: None,
        };
        wait_ready(&r.url);
        r
    };
    let without = start(None);
    ok(&without, &["product", "create", "web", "--name", "Web"]);
    let (success, _, err) = cli(
        &without,
        &["template", "publish", "web", "1.0.0", "--chart", &chart],
    );
    assert!(
        !success && err.contains("502") && err.contains("refused access"),
        "{err}"
    );
    drop(without);
    let with = start(Some(&settings));
    let out = ok(
        &with,
        &["template", "publish", "web", "1.0.0", "--chart", &chart],
    );
    assert!(out.contains("published") && out.contains("web"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_logs_are_json_lines_when_asked() {
    let dir = temp_dir("e2e-jsonlogs");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(CAELUS)
        .args([
            "server",
            "--log-format",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("caelus.db").display()))
        .arg("--data-dir")
        .arg(&dir)
        .env("CAELUS_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first = BufReader::new(stderr).lines().next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
    assert_eq!(line["level"], "INFO");
    assert!(
        line["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("listening"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
