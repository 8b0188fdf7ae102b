//! Re-adoption with the real `caelus` binary, the real `kubectl` and `caelus
//! dev` (issue 11): `deployment delete --keep-volumes --wait` ends `Retained`
//! with the StatefulSet's claims kept; `deployment restore --values F --wait`
//! re-creates the deployment in its namespace onto those same claims.

use std::path::Path;
use std::process::{Command, Output};

mod support;

use support::{CAELUS, kubectl, ok, start_dev, temp_dir, wait_ready};

/// `caelus ARGS` with the config file under `home` and no CAELUS_* connection variables.
fn caelus(home: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(CAELUS)
        .args(args)
        .env_remove("CAELUS_URL")
        .env_remove("CAELUS_TOKEN")
        .env_remove("CAELUS_CONTEXT")
        .env_remove("CAELUS_CHART_REPOSITORY")
        .env_remove("CAELUS_REGISTRIES")
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("XDG_CONFIG_HOME", home)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "caelus {args:?} failed: {stdout}{stderr}"
    );
    stdout
}

/// name -> uid of the PersistentVolumeClaims in `ns`, as `kubectl` lists them.
fn claims(data: &Path, ns: &str) -> Vec<(String, String)> {
    let (listed, out) = kubectl(
        data,
        &[
            "get",
            "pvc",
            "-n",
            ns,
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{"\n"}{end}"#,
        ],
        None,
    );
    assert!(listed, "{out}");
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, u)| (n.to_string(), u.to_string()))
        .collect()
}

#[test]
fn a_deployment_deleted_keeping_volumes_is_restored_onto_the_same_claims() {
    let dir = temp_dir("restore-cli");
    let data = dir.join("data");
    let r = start_dev(&data);
    wait_ready(&r.url);
    let repository = r
        .chart_repository
        .clone()
        .expect("dev printed its registry");
    let home = dir.join("home");
    caelus(
        &home,
        &[
            "login",
            "--url",
            &r.url,
            "--token",
            &r.token,
            "--chart-repository",
            &repository,
        ],
    );
    ok(&r, &["product", "create", "db", "--name", "Redis"]);
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/charts/stateful/1.0.0");
    caelus(
        &home,
        &[
            "template",
            "publish",
            "db",
            "1.0.0",
            "--chart",
            chart.to_str().unwrap(),
            "--allow",
            "replicaCount",
        ],
    );
    let uid = ok(
        &r,
        &[
            "deployment",
            "create",
            "--product",
            "db",
            "--version",
            "1.0.0",
            "--name",
            "cache",
            "--wait",
            "--timeout",
            "120",
            "-o",
            "jsonpath={.uid}",
        ],
    );
    let show = |uid: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&r, &["deployment", "show", uid, "-o", "json"])).unwrap()
    };
    let ns = show(&uid)["namespace"].as_str().unwrap().to_string();
    let kept = claims(&data, &ns);
    assert_eq!(kept.len(), 2, "{kept:?}");

    ok(
        &r,
        &[
            "deployment",
            "delete",
            &uid,
            "--keep-volumes",
            "--wait",
            "--timeout",
            "120",
        ],
    );
    let d = show(&uid);
    assert_eq!(d["status"]["phase"], "Retained", "{d:#}");
    assert_eq!(claims(&data, &ns), kept);

    let values = dir.join("values.yaml");
    std::fs::write(&values, "replicaCount: 2\n").unwrap();
    ok(
        &r,
        &[
            "deployment",
            "restore",
            &uid,
            "--values",
            values.to_str().unwrap(),
            "--wait",
            "--timeout",
            "120",
        ],
    );
    let d = show(&uid);
    assert_eq!(d["status"]["phase"], "Ready", "{d:#}");
    assert_eq!(d["namespace"], ns.as_str());
    assert_eq!(claims(&data, &ns), kept, "the same claims, the same uids");
    let events = ok(&r, &["deployment", "events", &uid]);
    assert!(
        events.lines().any(|l| l.contains("deployment.restore")),
        "{events}"
    );

    // Restoring what runs is refused, and says why.
    let (success, _, err) = support::cli(&r, &["deployment", "restore", &uid]);
    assert!(!success);
    assert!(err.contains("not Retained"), "{err}");
}
