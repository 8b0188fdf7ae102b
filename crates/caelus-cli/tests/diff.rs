//! `caelus deployment diff` end to end with `caelus dev` (kubesim) and the real
//! `kubectl`: exit status 0 in sync, 1 drifted (the `argocd app diff`
//! convention), the changed field named as the upgrade plan names it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::{CAELUS, Running, ok, start_dev, temp_dir, wait_ready};

/// `caelus deployment diff UID [more]`: (exit status, stdout, stderr).
fn diff(r: &Running, uid: &str, more: &[&str]) -> (i32, String, String) {
    let out = Command::new(CAELUS)
        .args(["deployment", "diff", uid])
        .args(more)
        .env("CAELUS_URL", &r.url)
        .env("CAELUS_TOKEN", &r.token)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn diff_exits_0_in_sync_and_1_drifted_naming_the_field() {
    let dir = temp_dir("diff");
    let r = start_dev(&dir.join("data"));
    wait_ready(&r.url);
    let repository = r
        .chart_repository
        .clone()
        .expect("dev printed its registry");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/charts/web/1.0.0");
    // Drift mode warn: the worker reports drift and leaves it, so it can be looked at.
    let caps = dir.join("caps.yaml");
    std::fs::write(&caps, "drift_mode: warn\n").unwrap();
    ok(&r, &["product", "create", "shop", "--name", "Shop"]);
    ok(
        &r,
        &[
            "template",
            "publish",
            "shop",
            "1.0.0",
            "--chart",
            chart.to_str().unwrap(),
            "--chart-repository",
            &repository,
            "--capabilities",
            caps.to_str().unwrap(),
            "--allow",
            "replicaCount",
        ],
    );
    let values = dir.join("values.yaml");
    std::fs::write(&values, "replicaCount: 2\n").unwrap();
    let created: serde_json::Value = ok(
        &r,
        &[
            "deployment",
            "create",
            "--product",
            "shop",
            "--version",
            "1.0.0",
            "--name",
            "shop",
            "--values",
            values.to_str().unwrap(),
            "--wait",
            "--timeout",
            "60",
            "-o",
            "json",
        ],
    )
    .parse()
    .unwrap();
    let uid = created["uid"].as_str().unwrap().to_string();
    let ns = created["namespace"].as_str().unwrap().to_string();
    let name = format!("{}-web", created["release"].as_str().unwrap());

    // In sync: status 0, said in one line.
    let (status, out, err) = diff(&r, &uid, &[]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("revision 1") && out.contains("in sync"),
        "{out}"
    );
    assert!(
        !out.contains("Changed") && !out.contains("Missing"),
        "{out}"
    );

    // Scaled by hand with kubectl (kubesim has no /scale: a merge patch).
    let kubeconfig = dir.join("data/kubeconfig");
    kubectl(
        &kubeconfig,
        &[
            "-n",
            &ns,
            "patch",
            "deployment",
            &name,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":5}}"#,
        ],
    );
    let (status, out, err) = diff(&r, &uid, &[]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(out.contains("DRIFTED"), "{out}");
    // The upgrade plan's format: the object, then `path: live -> applied`.
    assert!(
        out.contains(&format!(
            "Changed (live -> applied):\n  Deployment/{name}\n    spec.replicas: 5 -> 2\n"
        )),
        "{out}"
    );
    // Drift is the answer, not an error.
    assert!(!err.contains("error"), "{err}");

    // -o json: the same, for scripts; the same status.
    let (status, out, _) = diff(&r, &uid, &["-o", "json"]);
    assert_eq!(status, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["in_sync"], false);
    assert_eq!(v["drift_mode"], "warn");
    assert_eq!(v["changed"][0]["object"], format!("Deployment/{name}"));
    assert_eq!(v["changed"][0]["changes"][0]["path"], "spec.replicas");
    assert_eq!(v["changed"][0]["changes"][0]["from"], 5);
    assert_eq!(v["changed"][0]["changes"][0]["to"], 2);

    // Warn mode changed nothing: still 5 once the worker has reported it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let show: serde_json::Value = ok(&r, &["deployment", "show", &uid, "-o", "json"])
            .parse()
            .unwrap();
        if show["status"]["phase"] == "Degraded" {
            break;
        }
        assert!(Instant::now() < deadline, "never reported: {show:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let replicas = kubectl(
        &kubeconfig,
        &[
            "-n",
            &ns,
            "get",
            "deployment",
            &name,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!(replicas, "5");

    // A deleted Service is listed as missing.
    kubectl(&kubeconfig, &["-n", &ns, "delete", "service", &name]);
    let (status, out, _) = diff(&r, &uid, &[]);
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains(&format!(
            "Missing (deleted from the cluster; a correction re-creates):\n  Service/{name}\n"
        )),
        "{out}"
    );

    // An unknown deployment is an error (status 1, on stderr), not a diff.
    let (status, out, err) = diff(&r, "d-nosuch", &[]);
    assert_eq!(status, 1);
    assert!(out.is_empty() && err.contains("not found"), "{out}{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
