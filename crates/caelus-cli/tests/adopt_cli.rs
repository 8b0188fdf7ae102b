//! Adoption with the real `caelus` binary, the real `kubectl` and `caelus
//! dev`: an upgrade whose chart now renders a name an unlabelled Ingress
//! already uses is refused and says so; `caelus deployment adopt` labels that
//! Ingress as the deployment's (audited), and the retried revision takes it
//! over.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{free_port, stop_gracefully, temp_dir};

const CAELUS: &str = env!("CARGO_BIN_EXE_caelus");

struct Running {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child);
    }
}

fn start_dev(data_dir: &Path) -> Running {
    let mut child = Command::new(CAELUS)
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--registry-port",
            &free_port().to_string(),
            // Everything in this test is seconds old.
            "--min-age",
            "0s",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("CAELUS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start caelus dev");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut found = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("export CAELUS_URL=") {
            let (u, t) = rest.split_once(" CAELUS_TOKEN=").unwrap();
            found = Some((u.to_string(), t.to_string()));
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let (url, token) = found.expect("caelus dev printed its URL and token");
    Running { child, url, token }
}

fn cli(r: &Running, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(CAELUS)
        .args(args)
        .env("CAELUS_URL", &r.url)
        .env("CAELUS_TOKEN", &r.token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(r: &Running, args: &[&str]) -> String {
    let (success, out, err) = cli(r, args);
    assert!(success, "caelus {args:?} failed: {err}");
    out
}

fn kubectl(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn eventually(what: &str, mut check: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn show(r: &Running, uid: &str) -> serde_json::Value {
    serde_json::from_str(&ok(r, &["deployment", "show", uid, "-o", "json"])).unwrap()
}

#[test]
fn a_refused_object_is_adopted_explicitly_and_then_taken_over() {
    let dir = temp_dir("adopt-cli");
    let r = start_dev(&dir);
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
