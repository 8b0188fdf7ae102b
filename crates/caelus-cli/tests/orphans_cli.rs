//! The real `caelus` binary: `caelus dev` installs the projection CRDs into
//! its kubesim and projects deployments; `caelus orphans scan|clean` find and
//! remove a leftover through the admin API, recording who did it.

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

#[test]
fn dev_projects_deployments_and_the_cli_cleans_a_leftover_on_confirm() {
    let dir = temp_dir("orphans-cli");
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
