//! Read-only projections on kubesim, judged by the real `kubectl`: they show
//! the rows' columns, follow status and lifecycle changes, a hand edit is put
//! back and recorded, and a deleted deployment takes its projection along.

mod harness;

use caelus_core::lifecycle::Lifecycle;
use caelus_core::status::Phase;
use caelus_core::template::Capabilities;
use caelus_reconciler::ProjectorConfig;
use caelus_store::{Backend, now_ms, templates};
use harness::{Harness, fast_worker};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WEB_ALLOW: &[&str] = &["replicaCount", "ingress.*", "settings.*", "config.*"];

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(h: &Harness) -> Kubectl {
        let kubeconfig = h.registry.temp_dir().join("kubeconfig");
        h.sim.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl { kubeconfig }
    }

    /// Runs kubectl (without blocking: kubesim runs on this test's runtime);
    /// (success, stdout, stderr).
    async fn run(&self, args: &[&str], editor: Option<&Path>) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        if let Some(e) = editor {
            cmd.env("KUBE_EDITOR", e);
        }
        let out = cmd.output().await.expect("kubectl is installed");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None).await;
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }

    /// Waits until kubectl's output satisfies `check`.
    async fn wait_for(&self, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, out, err) = self.run(args, None).await;
            if check(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; kubectl {args:?} says: {out}{err}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn projecting() -> ProjectorConfig {
    ProjectorConfig {
        template_sync: Duration::from_millis(200),
        retry_after: Duration::from_millis(200),
        ..Default::default()
    }
}

const DEPLOYMENT_COLUMNS: &str = "custom-columns=NAMESPACE:.metadata.namespace,TENANT:.spec.tenant,\
PRODUCT:.spec.product,VERSION:.spec.version,PHASE:.status.phase,READY:.status.readyObjects,\
GEN:.spec.generation,OBSERVED:.status.observedGeneration";

async fn projections_follow_rows_revert_edits_and_go_with_their_deployment(backend: Backend) {
    let mut h = Harness::start(backend).await;
    h.stop_workers().await;
    let r = h.reconciler_with(fast_worker(), Some(projecting()));
    r.engine.install_crds().await.unwrap();
    h.run_worker(r);
    let k = Kubectl::new(&h);

    // The CRDs' printer columns are what `kubectl get` shows.
    let columns = k
        .ok(&[
            "get",
            "crd",
            "caelusdeployments.caelus.io",
            "-o",
            "jsonpath={.spec.versions[0].additionalPrinterColumns[*].jsonPath}",
        ])
        .await;
    assert_eq!(
        columns,
        ".spec.tenant .spec.product .spec.version .status.phase .status.readyObjects .metadata.creationTimestamp"
    );
    let columns = k
        .ok(&[
            "get",
            "crd",
            "caelustemplates.caelus.io",
            "-o",
            "jsonpath={.spec.versions[0].additionalPrinterColumns[*].jsonPath}",
        ])
        .await;
    assert_eq!(
        columns,
        ".spec.product .spec.version .status.lifecycle .spec.chartDigest"
    );
    // (kubesim prints no server-side tables, so the default `kubectl get`
    // shows only NAME and AGE there; a real API server prints these columns.
    // Below, custom columns with the same paths stand in for them.)

    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({"replicaCount": 1})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let ns = d.namespace_name.clone();
    let total = d.object_health.len();
    let out = k
        .wait_for(
            &["get", "caelusdeployments", "-A", "-o", DEPLOYMENT_COLUMNS],
            "Ready projection",
            |o| o.contains("Ready"),
        )
        .await;
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [
            ns.as_str(),
            "acme",
            "web",
            "1.0.0",
            "Ready",
            &format!("{total}/{total}"),
            "1",
            "1"
        ]
    );

    // The template's projection: product, version, lifecycle, digest.
    let tcols = "custom-columns=PRODUCT:.spec.product,VERSION:.spec.version,\
LIFECYCLE:.status.lifecycle,DIGEST:.spec.chartDigest";
    let out = k
        .wait_for(
            &["get", "caelustemplates", "-o", tcols],
            "template projection",
            |o| o.contains("published"),
        )
        .await;
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["web", "1.0.0", "published", t.chart_digest.as_str()]);

    // A new generation shows up in spec and status.
    h.update(&uid, json!({"replicaCount": 2})).await;
    h.wait_phase(&uid, Phase::Ready).await;
    k.wait_for(
        &[
            "get",
            "caelusdeployment",
            &uid,
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.generation}/{.status.observedGeneration}/{.spec.values.replicaCount}",
        ],
        "generation 2 projected",
        |o| o == "2/2/2",
    )
    .await;

    // Retiring the version is projected.
    {
        let mut c = h.db.store.conn().await.unwrap();
        templates::set_lifecycle(
            &mut c,
            &t.id,
            Lifecycle::Published,
            Lifecycle::Retired,
            now_ms(),
        )
        .await
        .unwrap();
    }
    k.wait_for(
        &["get", "caelustemplates", "-o", tcols],
        "retired projection",
        |o| o.contains("retired"),
    )
    .await;

    // A `kubectl edit` is put back and recorded.
    let editor = h.registry.temp_dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i -e 's/^  tenant: acme$/  tenant: mallory/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (ok, out, err) = k
        .run(
            &["edit", "caelusdeployment", &uid, "-n", &ns],
            Some(&editor),
        )
        .await;
    assert!(ok, "kubectl edit failed: {err}\n{out}");
    let event = h
        .wait_event(&uid, "projection.reverted", Duration::from_secs(30))
        .await;
    assert!(event.message.contains("kubectl-edit"), "{}", event.message);
    assert_eq!(event.actor, "system");
    // Counted: the writes, and the write that put the edit back.
    let metrics = caelus_metrics::encode(&caelus_metrics::global().registry());
    for outcome in ["applied", "reverted"] {
        assert!(
            metrics.contains(&format!(
                "caelus_projection_writes_total{{kind=\"CaelusDeployment\",outcome=\"{outcome}\"}}"
            )),
            "{metrics}"
        );
    }
    k.wait_for(
        &[
            "get",
            "caelusdeployment",
            &uid,
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.tenant}",
        ],
        "tenant put back",
        |o| o == "acme",
    )
    .await;
    // And a status patch through the status subresource too.
    k.ok(&[
        "patch",
        "caelusdeployment",
        &uid,
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ])
    .await;
    k.wait_for(
        &[
            "get",
            "caelusdeployment",
            &uid,
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.phase}",
        ],
        "status put back",
        |o| o == "Ready",
    )
    .await;

    // Deleting the deployment removes its projection.
    h.delete(&uid).await;
    h.wait_phase(&uid, Phase::Deleted).await;
    k.wait_for(
        &["get", "caelusdeployments", "-A", "-o", "name"],
        "projection gone",
        |o| o.trim().is_empty(),
    )
    .await;
    h.stop().await;
}

#[tokio::test]
async fn sqlite_projections_follow_rows_revert_edits_and_go_with_their_deployment() {
    projections_follow_rows_revert_edits_and_go_with_their_deployment(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_projections_follow_rows_revert_edits_and_go_with_their_deployment() {
    projections_follow_rows_revert_edits_and_go_with_their_deployment(Backend::Postgres).await;
}
