//! Adoption with the real `caelus` binary, the real `kubectl` and `caelus
//! dev`: an upgrade whose chart now renders a name an unlabelled Ingress
//! already uses is refused and says so; `caelus deployment adopt` labels that
//! Ingress as the deployment's (audited), and the retried revision takes it
//! over.

mod support;

use support::{Running, cli, eventually, kubectl, ok, start_dev_with, temp_dir};

fn show(r: &Running, uid: &str) -> serde_json::Value {
    serde_json::from_str(&ok(r, &["deployment", "show", uid, "-o", "json"])).unwrap()
}

#[test]
fn a_refused_object_is_adopted_explicitly_and_then_taken_over() {
    let dir = temp_dir("adopt-cli");
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
    let ingress = format!("{}-web", created["release"].as_str().unwrap());

    // Someone made an Ingress by hand under the name the chart renders.
    let by_hand = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": ingress, "namespace": ns},
        "spec": {"rules": [{"host": "by-hand.example.com", "http": {"paths": [{"path": "/",
            "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"number": 80}}}}]}}]}});
    let (made, out) = kubectl(&dir, &["create", "-f", "-"], Some(&by_hand.to_string()));
    assert!(made, "{out}");

    let values = dir.join("values.json");
    std::fs::write(&values, r#"{"ingress": {"enabled": true}}"#).unwrap();
    ok(
        &r,
        &[
            "deployment",
            "update",
            &uid,
            "--values",
            values.to_str().unwrap(),
        ],
    );
    let refused = eventually("the refusal", || {
        let d = show(&r, &uid);
        let text = d.to_string();
        (d["status"]["phase"] == "Failed" && text.contains("OwnershipConflict")).then_some(text)
    });
    assert!(
        refused.contains(&format!(
            "Ingress/{ingress} in {ns} already exists and belongs to no one"
        )),
        "{refused}"
    );
    let (_, live) = kubectl(
        &dir,
        &["get", "ingress", &ingress, "-n", &ns, "-o", "json"],
        None,
    );
    assert!(live.contains("by-hand.example.com"), "untouched: {live}");

    // The admin (dev's token) adopts it.
    let adopted = ok(
        &r,
        &[
            "deployment",
            "adopt",
            &uid,
            "--api-version",
            "networking.k8s.io/v1",
            "--kind",
            "Ingress",
            "--name",
            &ingress,
        ],
    );
    assert!(
        adopted.lines().next().unwrap().starts_with("KIND"),
        "{adopted}"
    );
    assert!(adopted.contains("no one"), "{adopted}");

    let live = eventually("the Ingress taken over", || {
        let d = show(&r, &uid);
        let ready = d["status"]["phase"] == "Ready" && d["observed_generation"] == d["generation"];
        let (_, live) = kubectl(
            &dir,
            &["get", "ingress", &ingress, "-n", &ns, "-o", "json"],
            None,
        );
        (ready && live.contains("web.example.com")).then_some(live)
    });
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(
        live["metadata"]["labels"]["caelus.io/deployment-uid"],
        uid.as_str()
    );
    let events = ok(&r, &["deployment", "events", &uid]);
    let line = events
        .lines()
        .find(|l| l.contains("deployment.adopt"))
        .unwrap_or_else(|| panic!("no deployment.adopt event: {events}"));
    assert!(line.contains("token:dev-admin"), "{line}");
}
