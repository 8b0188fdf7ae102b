//! The real `caelus` binary: `caelus dev` installs the projection CRDs into
//! its kubesim and projects deployments; `caelus orphans scan|clean` find and
//! remove a leftover through the admin API, recording who did it.

mod support;

use support::{cli, eventually, kubectl, ok, start_dev_with, temp_dir};

#[test]
fn dev_projects_deployments_and_the_cli_cleans_a_leftover_on_confirm() {
    let dir = temp_dir("orphans-cli");
    // Everything in this test is seconds old.
    let r = start_dev_with(&dir, &["--min-age", "0s"]);
    eventually("the demo catalog", || {
        let (success, out, _) = cli(&r, &["template", "list", "web"]);
        (success && out.contains("1.0.0")).then_some(out)
    });
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
            "shop",
            "--wait",
            "--timeout",
            "60",
            "-o",
            "json",
        ],
    );
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let uid = created["uid"].as_str().unwrap().to_string();
    let ns = created["namespace"].as_str().unwrap().to_string();

    // kubectl users see the deployment and the catalog without the Caelus CLI.
    let columns = "custom-columns=NAME:.metadata.name,TENANT:.spec.tenant,PRODUCT:.spec.product,\
VERSION:.spec.version,PHASE:.status.phase";
    eventually("the deployment's projection", || {
        let (success, out) = kubectl(
            &dir,
            &["get", "caelusdeployments", "-A", "-o", columns],
            None,
        );
        (success && out.contains(&uid) && out.contains("Ready")).then_some(out)
    });
    eventually("the templates' projections", || {
        let (success, out) = kubectl(
            &dir,
            &[
                "get",
                "caelustemplates",
                "-o",
                "custom-columns=PRODUCT:.spec.product,VERSION:.spec.version,LIFECYCLE:.status.lifecycle",
            ],
            None,
        );
        (success && out.contains("2.0.0") && out.contains("published")).then_some(out)
    });

    // A leftover, labelled as Caelus labels what it applies (installation
    // `caelus`, dev's default), that the deployment's inventory does not list.
    let leftover = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leftover\n  namespace: {ns}\n  labels:\n    \
app.kubernetes.io/managed-by: caelus\n    caelus.io/deployment-uid: {uid}\n    caelus.io/installation: caelus\n"
    );
    let (applied, out) = kubectl(&dir, &["apply", "-f", "-"], Some(&leftover));
    assert!(applied, "{out}");

    let scan = ok(&r, &["orphans", "scan"]);
    assert!(scan.lines().next().unwrap().starts_with("KIND"), "{scan}");
    assert!(
        scan.contains("leftover")
            && scan.contains("not in its live deployment's current inventory"),
        "{scan}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&r, &["orphans", "scan", "-o", "json"])).unwrap();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{json}");
    assert_eq!(items[0]["kind"], "ConfigMap");
    assert_eq!(items[0]["namespace"], ns.as_str());

    let dry = ok(&r, &["orphans", "clean"]);
    assert!(dry.contains("dry run: would delete 1"), "{dry}");
    assert!(kubectl(&dir, &["get", "configmap", "leftover", "-n", &ns], None).0);

    let done = ok(&r, &["orphans", "clean", "--confirm"]);
    assert!(done.contains("deleted 1"), "{done}");
    let (exists, out) = kubectl(&dir, &["get", "configmap", "leftover", "-n", &ns], None);
    assert!(!exists && out.contains("NotFound"), "{out}");
    let events = ok(&r, &["deployment", "events", &uid]);
    let line = events
        .lines()
        .find(|l| l.contains("orphan.delete"))
        .unwrap_or_else(|| panic!("no orphan.delete event: {events}"));
    assert!(line.contains("token:dev-admin"), "{line}");
    assert_eq!(ok(&r, &["orphans", "scan"]).trim(), "no orphans");
}
