//! Certify before publish and `helm test`, end to end with `caelus dev
//! --require-certification` (kubesim, the real Helm engine, the real kubectl):
//! a good chart passes the checklist and its canary (installed, tested,
//! upgraded from the previous published version, deleted); a bad one fails
//! with each item named; publishing is refused without a passing
//! certification unless `--skip-certification`; `deployment test` passes, and
//! exits 1 when a test fails.

use std::path::PathBuf;

mod support;

use support::{Running, cli, ok, start_dev_with, temp_dir, wait_ready};

fn chart(name: &str, version: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/charts")
        .join(name)
        .join(version)
        .to_string_lossy()
        .into_owned()
}

fn namespaces(dir: &std::path::Path) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("data/kubeconfig"))
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The RESULT of check `check` in a printed checklist.
fn result_of(checklist: &str, check: &str) -> String {
    checklist
        .lines()
        .find(|l| l.split_whitespace().next() == Some(check))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no {check} in\n{checklist}"))
        .to_string()
}

fn publish(
    r: &Running,
    repository: &str,
    product: &str,
    chart_dir: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let mut args = vec![
        "template",
        "publish",
        product,
        "1.0.0",
        "--chart",
        chart_dir,
        "--chart-repository",
        repository,
    ];
    args.extend_from_slice(extra);
    cli(r, &args)
}

#[test]
fn certify_canary_publish_and_test_end_to_end() {
    let dir = temp_dir("certify");
    let r = start_dev_with(&dir.join("data"), &["--require-certification"]);
    wait_ready(&r.url);
    let repository = r
        .chart_repository
        .clone()
        .expect("dev printed its registry");
    ok(&r, &["product", "create", "shop", "--name", "Shop"]);

    // Publishing at once is refused without a certification...
    let (success, _, err) = publish(&r, &repository, "shop", &chart("certified", "1.0.0"), &[]);
    assert!(!success);
    assert!(err.contains("not been certified"), "{err}");
    // ...unless an admin skips it, on the record.
    let (success, _, err) = publish(
        &r,
        &repository,
        "shop",
        &chart("certified", "1.0.0"),
        &["--skip-certification"],
    );
    assert!(success, "{err}");
    let audit: serde_json::Value = ok(
        &r,
        &[
            "events",
            "list",
            "--action",
            "template.publish",
            "-o",
            "json",
        ],
    )
    .parse()
    .unwrap();
    assert_eq!(
        audit["items"][0]["details"]["certification"], "skipped",
        "{audit}"
    );

    // A good chart: every item passes, the canary included.
    ok(
        &r,
        &[
            "template",
            "create",
            "shop",
            "1.1.0",
            "--chart",
            &chart("certified", "1.1.0"),
            "--chart-repository",
            &repository,
            "--allow",
            "testHook",
        ],
    );
    let report = ok(&r, &["template", "certify", "shop", "1.1.0"]);
    for check in [
        "policy.isolation",
        "policy.pod-security",
        "resources",
        "probes",
        "images.pinned",
        "values.schema",
        "data-continuity",
        "canary.install",
        "canary.tests",
        "canary.upgrade",
        "canary.delete",
    ] {
        assert_eq!(result_of(&report, check), "pass", "{check}:\n{report}");
    }
    assert!(report.contains("certification: passed"), "{report}");
    assert!(report.contains("from 1.0.0"), "{report}");
    assert!(report.contains("Job/canary-test-web"), "{report}");
    // The canaries are gone.
    assert!(
        !namespaces(&dir).contains("caelus-certify-"),
        "{}",
        namespaces(&dir)
    );
    // The report is on the version.
    let shown = ok(&r, &["template", "show", "shop", "1.1.0"]);
    assert_eq!(result_of(&shown, "canary.tests"), "pass", "{shown}");
    ok(&r, &["template", "publish", "shop", "1.1.0"]);

    // A bad chart fails, each item named; publishing it is refused.
    ok(&r, &["product", "create", "agent", "--name", "Agent"]);
    ok(
        &r,
        &[
            "template",
            "create",
            "agent",
            "1.0.0",
            "--chart",
            &chart("uncertified", "1.0.0"),
            "--chart-repository",
            &repository,
        ],
    );
    let (success, report, err) = cli(&r, &["template", "certify", "agent", "1.0.0"]);
    assert!(!success, "{report}");
    assert!(err.contains("did not pass certification"), "{err}");
    for check in [
        "images.pinned",
        "resources",
        "policy.pod-security",
        "probes",
        "values.schema",
    ] {
        assert_eq!(result_of(&report, check), "fail", "{check}:\n{report}");
    }
    assert!(report.contains("image \"busybox\" is untagged"), "{report}");
    assert!(report.contains("privileged"), "{report}");
    assert!(report.contains("certification: FAILED"), "{report}");
    let (success, _, err) = cli(&r, &["template", "publish", "agent", "1.0.0"]);
    assert!(!success);
    assert!(err.contains("certification failed"), "{err}");

    // helm test: the deployment's test Job passes; recorded on the timeline.
    let created = ok(
        &r,
        &[
            "deployment",
            "create",
            "--product",
            "shop",
            "--version",
            "1.1.0",
            "--name",
            "web",
            "--wait",
            "--timeout",
            "120",
            "-o",
            "json",
        ],
    );
    let created: serde_json::Value = created.parse().unwrap();
    let uid = created["uid"].as_str().unwrap().to_string();
    let tested = ok(&r, &["deployment", "test", &uid]);
    assert!(
        tested.contains("-test-web") && tested.contains("passed"),
        "{tested}"
    );
    let events = ok(&r, &["deployment", "events", &uid]);
    assert!(events.contains("deployment.test"), "{events}");

    // A test that does not succeed (a bare Pod, which kubesim never
    // terminates) fails after the timeout: exit status 1, and on the timeline.
    let values = dir.join("pod.yaml");
    std::fs::write(&values, "testHook: pod\n").unwrap();
    ok(
        &r,
        &[
            "deployment",
            "update",
            &uid,
            "--values",
            values.to_str().unwrap(),
            "--wait",
            "--timeout",
            "120",
        ],
    );
    let (success, out, err) = cli(&r, &["deployment", "test", &uid, "--timeout", "2"]);
    assert!(!success, "{out}");
    assert!(
        out.contains("failed") && out.contains("did not complete"),
        "{out}"
    );
    assert!(err.contains("a test of deployment"), "{err}");
    let events = ok(&r, &["deployment", "events", &uid, "-o", "json"]);
    assert!(events.contains("deployment.test.failed"), "{events}");
}

/// The real grafana charts from ../shared/charts: the canary installs grafana,
/// upgrades a second one from grafana-old, and runs grafana's own test hooks
/// (a ServiceAccount, ConfigMap and the test Pod that runs as them). kubesim
/// never ends a bare Pod, so that test cannot pass here: it is reported as
/// failed after the template's health timeout, naming the Pod.
#[test]
fn grafana_is_certified_with_a_canary_upgraded_from_grafana_old() {
    let (Some(old), Some(new)) = (
        caelus_helm::testing::shared_chart("grafana-old"),
        caelus_helm::testing::shared_chart("grafana"),
    ) else {
        eprintln!("skipped: ../shared/charts is absent");
        return;
    };
    let dir = temp_dir("certify-grafana");
    let r = start_dev_with(&dir.join("data"), &[]);
    wait_ready(&r.url);
    let repository = r
        .chart_repository
        .clone()
        .expect("dev printed its registry");
    // grafana has a ClusterRole; a short health timeout bounds the test Pod's wait.
    let caps = dir.join("caps.yaml");
    std::fs::write(
        &caps,
        "allow_cluster_scoped: true\nhealth_timeout_seconds: 5\n",
    )
    .unwrap();
    let caps = caps.to_str().unwrap();
    ok(&r, &["product", "create", "graf", "--name", "Grafana"]);
    ok(
        &r,
        &[
            "template",
            "publish",
            "graf",
            "9.0.0",
            "--chart",
            old.to_str().unwrap(),
            "--chart-repository",
            &repository,
            "--capabilities",
            caps,
        ],
    );
    ok(
        &r,
        &[
            "template",
            "create",
            "graf",
            "10.0.0",
            "--chart",
            new.to_str().unwrap(),
            "--chart-repository",
            &repository,
            "--capabilities",
            caps,
        ],
    );
    let (success, report, _) = cli(&r, &["template", "certify", "graf", "10.0.0"]);
    assert!(!success, "{report}");
    for (check, want) in [
        ("policy.isolation", "pass"),
        ("policy.pod-security", "pass"),
        ("images.pinned", "pass"),
        ("data-continuity", "pass"),
        ("canary.install", "pass"),
        ("canary.upgrade", "pass"),
        ("canary.delete", "pass"),
        // grafana sets no resources by default and ships no values schema.
        ("resources", "fail"),
        ("values.schema", "fail"),
        ("canary.tests", "fail"),
    ] {
        assert_eq!(result_of(&report, check), want, "{check}:\n{report}");
    }
    assert!(report.contains("upgraded from 9.0.0"), "{report}");
    assert!(
        report.contains("Pod/canary-grafana-test: did not complete"),
        "the test ran (its ServiceAccount was there) and timed out: {report}"
    );
    assert!(
        !namespaces(&dir).contains("caelus-certify-"),
        "{}",
        namespaces(&dir)
    );
}
