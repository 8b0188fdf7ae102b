//! The worker's periodic orphan scan, as the real `caelus worker` runs it on
//! kubesim (with `--install-crds`, which puts the projection CRDs in place):
//! `--orphan-scan-interval` alone reports what it finds and deletes nothing;
//! with `--orphan-clean` it deletes the orphan, audited as the worker;
//! neither ever touches an unlabelled namespace or another installation's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

mod support;

use support::{CAELUS, stop_gracefully, temp_dir};

const INSTALLATION: &str = "ops-install";

/// A `caelus worker`, stopped on drop.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        stop_gracefully(&mut self.0);
    }
}

fn start_worker(
    dir: &Path,
    db_url: &str,
    kubeconfig: &Path,
    name: &str,
    extra: &[&str],
) -> (Worker, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(CAELUS)
        .args(["worker", "--log-format", "json", "--install-crds"])
        .args(["--installation-id", INSTALLATION, "--worker-id", name])
        .args(["--orphan-scan-interval", "1s", "--min-age", "0s"])
        .args(extra)
        .arg("--database-url")
        .arg(db_url)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--data-dir")
        .arg(dir.join(name))
        .env("CAELUS_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start caelus worker");
    (Worker(child), log)
}

/// The JSON log lines a worker wrote so far.
fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// Waits until the worker has logged `n` finished scans; returns its log.
async fn scans_finished(log: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = log_lines(log);
        if lines
            .iter()
            .filter(|l| message(l) == "orphan scan finished")
            .count()
            >= n
        {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{n} orphan scans not finished: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_namespace(namespaces: &Api<Namespace>, name: &str, labels: Value) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// Whether the namespace is still there and not being deleted.
async fn standing(namespaces: &Api<Namespace>, name: &str) -> bool {
    namespaces
        .get_opt(name)
        .await
        .unwrap()
        .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_scans_periodically_and_cleans_only_when_told() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = temp_dir("orphan-scan-worker");
    let db = caelus_store::testing::TestDb::sqlite().await;
    let sim = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let namespaces: Api<Namespace> = Api::all(client);

    // The namespace of a deployment this installation's database never had,
    // labelled as Caelus labels its namespaces: an orphan. Next to it, one
    // without labels and one of another installation: never orphans here.
    let ghost_uid = "0b6f4d1e-0000-4000-8000-00000000beef";
    let ghost = caelus_core::identity::namespace_name(ghost_uid).unwrap();
    let labels = |installation: &str| {
        json!({"app.kubernetes.io/managed-by": "caelus",
               "caelus.io/deployment-uid": ghost_uid,
               "caelus.io/installation": installation})
    };
    create_namespace(&namespaces, &ghost, labels(INSTALLATION)).await;
    create_namespace(&namespaces, "d-theirs", labels("another-install")).await;
    create_namespace(&namespaces, "d-plain", json!({})).await;

    // Report only: the orphan is logged with its reason, scan after scan, and kept.
    let (reporter, log) = start_worker(&dir, &db.url, &kubeconfig, "reporter", &[]);
    let lines = scans_finished(&log, 2).await;
    drop(reporter);
    // --install-crds put the projection CRDs in place.
    let crds = sim
        .api()
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .unwrap();
    let names: Vec<String> = sim.api().list(&crds, None, &Default::default()).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for crd in ["caelusdeployments.caelus.io", "caelustemplates.caelus.io"] {
        assert!(names.iter().any(|n| n == crd), "{crd} missing: {names:?}");
    }
    let reported: Vec<&Value> = lines.iter().filter(|l| message(l) == "orphan").collect();
    assert!(!reported.is_empty(), "{lines:#?}");
    for l in &reported {
        assert_eq!(l["fields"]["name"], ghost.as_str(), "{l}");
        assert_eq!(l["fields"]["kind"], "Namespace", "{l}");
        assert_eq!(l["fields"]["deleted"], false, "{l}");
        assert!(
            l["fields"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("does not exist")),
            "{l}"
        );
    }
    let finished = lines
        .iter()
        .find(|l| message(l) == "orphan scan finished")
        .unwrap();
    assert_eq!(finished["fields"]["orphans"], 1, "{finished}");
    assert!(
        standing(&namespaces, &ghost).await,
        "report-only deleted it"
    );

    // --orphan-clean: deleted, and the deletion recorded as the worker's.
    let (cleaner, log) = start_worker(&dir, &db.url, &kubeconfig, "cleaner", &["--orphan-clean"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while standing(&namespaces, &ghost).await {
        assert!(
            Instant::now() < deadline,
            "the orphan was not deleted: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The audit event is written right after the delete is accepted: the
    // namespace can be seen terminating a moment before it commits.
    let mut conn = db.store.conn().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = caelus_store::events::list_all(&mut conn, 0, 100)
            .await
            .unwrap();
        if events.iter().any(|e| e.action == "orphan.delete") || Instant::now() >= deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deleted: Vec<_> = events
        .iter()
        .filter(|e| e.action == "orphan.delete")
        .collect();
    assert_eq!(deleted.len(), 1, "{events:#?}");
    assert!(
        deleted[0].actor.starts_with("worker:cleaner"),
        "{}",
        deleted[0].actor
    );
    assert!(
        deleted[0].message.contains(&ghost),
        "{}",
        deleted[0].message
    );
    // Later scans find nothing; the others' namespaces stand.
    let lines = scans_finished(&log, 3).await;
    drop(cleaner);
    let last = lines
        .iter()
        .rfind(|l| message(l) == "orphan scan finished")
        .unwrap();
    assert_eq!(last["fields"]["orphans"], 0, "{last}");
    assert!(standing(&namespaces, "d-theirs").await);
    assert!(standing(&namespaces, "d-plain").await);

    // Cleaning is only ever part of a periodic scan the operator asked for.
    let out = Command::new(CAELUS)
        .args(["worker", "--orphan-clean", "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--orphan-scan-interval"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
