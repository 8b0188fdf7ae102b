//! Ownership through the whole control plane: an upgrade whose chart now
//! renders names that someone else's objects already use is refused before
//! anything of it is written, the deployment says which objects and whose
//! they are, and the objects stay byte-for-byte as the real `kubectl` saw them.

mod harness;

use caelus_core::status::{CONDITION_READY, CONDITION_STALLED, ConditionStatus, Phase};
use caelus_core::template::Capabilities;
use caelus_store::Backend;
use harness::Harness;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const WEB_ALLOW: &[&str] = &["replicaCount", "ingress.*", "settings.*", "config.*"];

/// The real kubectl against the simulator, run off the async runtime.
struct Kubectl {
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(sim: &kubesim::Server) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl {
            _dir: dir,
            kubeconfig,
        }
    }

    async fn ok(&self, args: &[&str], stdin: Option<String>) -> String {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::process::{Command, Stdio};
            let mut child = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("kubectl");
            if let Some(input) = stdin {
                let mut pipe = child.stdin.take().unwrap();
                pipe.write_all(input.as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .await
        .unwrap()
    }

    async fn create(&self, obj: Value) {
        self.ok(&["create", "-f", "-"], Some(obj.to_string())).await;
    }

    async fn get_json(&self, kind: &str, name: &str, ns: &str) -> String {
        self.ok(&["get", kind, name, "-n", ns, "-o", "json"], None)
            .await
    }
}

#[tokio::test]
async fn objects_of_others_with_names_the_chart_uses_are_refused_untouched_and_named_in_the_status()
{
    let h = Harness::start(Backend::Sqlite).await;
    let t = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let uid = h.create(&t, "shop", json!({})).await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    let (ns, full) = (d.namespace_name.clone(), format!("{}-web", d.release_name));
    let kubectl = Kubectl::new(&h.sim);

    // The names the chart renders once settings and ingress are enabled:
    // one taken by hand, one by another deployment of this installation.
    kubectl
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{full}-settings"), "namespace": ns},
            "data": {"theme": "the operator's own"}}))
        .await;
    kubectl
        .create(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": full, "namespace": ns, "labels": {
                "app.kubernetes.io/managed-by": "caelus",
                "caelus.io/deployment-uid": "0b5e0000-0000-4000-8000-00000000beef",
                "caelus.io/installation": "test-install"}},
            "spec": {"rules": [{"host": "other.example.com", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}]}}),
        )
        .await;
    let settings = kubectl
        .get_json("configmap", &format!("{full}-settings"), &ns)
        .await;
    let ingress = kubectl.get_json("ingress", &full, &ns).await;
    let deployment = kubectl.get_json("deployment", &full, &ns).await;

    h.update(
        &uid,
        json!({"replicaCount": 3, "settings": {"enabled": true}, "ingress": {"enabled": true}}),
    )
    .await;
    let d = h
        .wait_until(&uid, Duration::from_secs(30), "the refused upgrade", |d| {
            d.phase == Phase::Failed && d.observed_generation == d.generation
        })
        .await;

    let ready = d
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .unwrap();
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason, "OwnershipConflict");
    for named in [
        format!("ConfigMap/{full}-settings in {ns} already exists and belongs to no one"),
        format!(
            "Ingress/{full} in {ns} already exists and belongs to deployment 0b5e0000-0000-4000-8000-00000000beef"
        ),
    ] {
        assert!(
            ready.message.contains(&named),
            "{named} in: {}",
            ready.message
        );
    }
    let stalled = d
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_STALLED)
        .unwrap();
    assert_eq!(stalled.status, ConditionStatus::True, "not retried blindly");
    assert_eq!(d.due_at, None);
    let failure = d.failure.as_ref().unwrap();
    assert_eq!(failure.reason, "OwnershipConflict");
    assert_eq!(d.current_revision, Some(1), "revision 1 keeps running");

    // Nothing of revision 2 was written: the others' objects and this
    // deployment's own Deployment (still 1 replica) are exactly as before.
    assert_eq!(
        kubectl
            .get_json("configmap", &format!("{full}-settings"), &ns)
            .await,
        settings
    );
    assert_eq!(kubectl.get_json("ingress", &full, &ns).await, ingress);
    assert_eq!(kubectl.get_json("deployment", &full, &ns).await, deployment);

    // The failed revision's inventory does not claim the others' names, so
    // no later prune could ever reach for them.
    let revisions = h.revisions(&uid).await;
    let failed = revisions.iter().find(|r| r.number == 2).unwrap();
    let inventory = failed.inventory.to_string();
    assert!(!inventory.contains("Ingress"), "{inventory}");
    h.stop().await;
}
