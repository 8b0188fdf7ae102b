//! Reaching what you deployed, end to end with `caelus dev` and the CLI: the
//! endpoints of a real chart's Services and the connection details its template
//! declares (bitnami postgresql's generated password), readable by the owner and
//! admins only, each read in the audit trail.

use std::time::{Duration, Instant};

mod support;

use support::{CAELUS, Running, ok, start_dev, temp_dir, wait_ready};

/// One CLI command as `token`: (success, stdout, stderr).
fn cli_as(r: &Running, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(CAELUS)
        .args(args)
        .env("CAELUS_URL", &r.url)
        .env("CAELUS_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok_as(r: &Running, token: &str, args: &[&str]) -> String {
    let (success, out, err) = cli_as(r, token, args);
    assert!(success, "caelus {args:?} failed: {err}");
    out
}

fn tenant_token(r: &Running, tenant: &str) -> String {
    ok(
        r,
        &[
            "token", "create", "--name", tenant, "--role", "tenant", "--tenant", tenant, "-o",
            "json",
        ],
    )
    .parse::<serde_json::Value>()
    .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_owner_reads_endpoints_and_connection_details_and_every_read_is_audited() {
    let Some(chart) = caelus_helm::testing::shared_chart("postgresql") else {
        eprintln!("skipped: ../shared/charts is absent");
        return;
    };
    let dir = temp_dir("reach");
    let r = start_dev(&dir.join("data"));
    wait_ready(&r.url);
    let repository = r
        .chart_repository
        .clone()
        .expect("dev printed its registry");

    // The template declares which Secret keys a deployment's owner may read.
    let caps = dir.join("caps.yaml");
    std::fs::write(
        &caps,
        "connection_secrets:\n  - secret: \"{{release}}-postgresql\"\n    keys: [postgres-password, no-such-key]\n",
    )
    .unwrap();
    ok(&r, &["product", "create", "db", "--name", "PostgreSQL"]);
    ok(
        &r,
        &[
            "template",
            "publish",
            "db",
            "1.0.0",
            "--chart",
            chart.to_str().unwrap(),
            "--chart-repository",
            &repository,
            "--capabilities",
            caps.to_str().unwrap(),
        ],
    );
    // A malformed declaration is refused at publish, naming the field.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "connection_secrets:\n  - secret: \"{{name}}\"\n    keys: [a]\n",
    )
    .unwrap();
    let (success, _, err) = cli_as(
        &r,
        &r.token,
        &[
            "template",
            "publish",
            "db",
            "1.0.1",
            "--chart",
            chart.to_str().unwrap(),
            "--chart-repository",
            &repository,
            "--capabilities",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!success);
    assert!(
        err.contains("capabilities.connection_secrets[0].secret"),
        "{err}"
    );

    let acme = tenant_token(&r, "acme");
    let other = tenant_token(&r, "globex");
    let created = ok_as(
        &r,
        &acme,
        &[
            "deployment",
            "create",
            "--product",
            "db",
            "--version",
            "1.0.0",
            "--name",
            "orders",
            "--wait",
            "--timeout",
            "120",
            "-o",
            "json",
        ],
    );
    let created: serde_json::Value = created.parse().unwrap();
    let uid = created["uid"].as_str().unwrap().to_string();
    let ns = created["namespace"].as_str().unwrap().to_string();
    let release = created["release"].as_str().unwrap().to_string();

    // Endpoints: the chart's Services with their in-cluster DNS names and ports.
    let endpoints = ok_as(&r, &acme, &["deployment", "endpoints", &uid]);
    let header = endpoints.lines().next().unwrap();
    assert!(
        header.starts_with("KIND") && header.contains("DNS"),
        "{endpoints}"
    );
    assert!(
        endpoints.contains(&format!("{release}-postgresql.{ns}.svc.cluster.local"))
            && endpoints.contains("5432/TCP"),
        "{endpoints}"
    );
    assert!(endpoints.contains("Headless"), "{endpoints}");
    // `deployment show` has them too, under its summary.
    let show = ok_as(&r, &acme, &["deployment", "show", &uid]);
    let section = show
        .split_once("\nEndpoints:\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no Endpoints section in {show}"));
    assert!(
        section.starts_with("KIND")
            && section.contains(&format!("{release}-postgresql.{ns}.svc.cluster.local"))
            && section.contains("5432/TCP"),
        "{show}"
    );

    // Connection details: the generated password, as the chart stored it; a declared
    // key the Secret lacks is said to be missing.
    let secret = format!("{release}-postgresql");
    let json = ok_as(&r, &acme, &["deployment", "connection", &uid, "-o", "json"]);
    let v: serde_json::Value = json.parse().unwrap();
    assert_eq!(v["items"][0]["secret"], secret.as_str());
    let password = v["items"][0]["values"]["postgres-password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(password.len() >= 8, "{v}");
    assert_eq!(v["items"][0]["missing"], serde_json::json!(["no-such-key"]));
    let table = ok_as(&r, &acme, &["deployment", "connection", &uid]);
    assert!(
        table.contains(&secret) && table.contains(&password) && table.contains("(missing)"),
        "{table}"
    );
    // The password is the one in the cluster (read with the real kubectl).
    let kubeconfig = dir.join("data/kubeconfig");
    let out = std::process::Command::new("kubectl")
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "-n", &ns])
        .args([
            "get",
            "secret",
            &secret,
            "-o",
            "jsonpath={.data.postgres-password}",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b64 = String::from_utf8(out.stdout).unwrap();
    let decoded = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b64.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8(decoded.stdout).unwrap(), password);

    // Another tenant sees neither (404, as for everything of another tenant).
    for sub in ["endpoints", "connection"] {
        let (success, _, err) = cli_as(&r, &other, &["deployment", sub, &uid]);
        assert!(!success, "{sub} leaked to another tenant");
        assert!(err.contains("404") || err.contains("not found"), "{err}");
    }
    // Admins may read it too; every read is on the record, with who read it.
    ok(&r, &["deployment", "connection", &uid, "-o", "json"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let events = loop {
        let events = ok_as(&r, &acme, &["deployment", "events", &uid, "-o", "json"]);
        let v: serde_json::Value = events.parse().unwrap();
        let reads: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "connection.read")
            .map(|e| e["actor"].as_str().unwrap().to_string())
            .collect();
        if reads.len() >= 3 || Instant::now() > deadline {
            break reads;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events.iter().filter(|a| a.contains("acme")).count() == 2,
        "{events:?}"
    );
    assert!(events.iter().any(|a| a.contains("admin")), "{events:?}");
    // And in the global audit log, each naming the deployment and its tenant.
    let audit = ok(
        &r,
        &[
            "events",
            "list",
            "--action",
            "connection.read",
            "-o",
            "json",
        ],
    );
    let audit: serde_json::Value = audit.parse().unwrap();
    let audit = audit["items"].as_array().unwrap();
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert!(
        audit
            .iter()
            .all(|e| e["deployment_uid"] == uid.as_str() && e["tenant"] == "acme"),
        "{audit:?}"
    );
    assert!(
        audit[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{secret} (postgres-password)")),
        "{audit:?}"
    );
}
