//! Ownership before every write, on kubesim, judged with the real `kubectl`:
//! objects someone else owns are refused before anything of the revision is
//! written and stay byte-for-byte as they were; hooks never replace them;
//! prune and uninstall never delete an object recreated by someone else.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use caelus_core::ownership::Owner;
use caelus_engine::{EngineError, UninstallRequest};
use caelus_helm::{Hook, HookDeletePolicy, HookEvent};
use common::*;
use serde_json::{Value, json};

/// The real kubectl against the simulator, off the async runtime.
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

    /// Runs kubectl; (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<String>) -> (bool, String, String) {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || run_kubectl(&kubeconfig, &args, stdin))
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str], stdin: Option<String>) -> String {
        let (ok, out, err) = self.run(args, stdin).await;
        assert!(ok, "kubectl {args:?}: {err}");
        out
    }

    async fn create(&self, obj: Value) {
        self.ok(&["create", "-f", "-"], Some(obj.to_string())).await;
    }

    /// The object exactly as the API server returns it (kubectl -o json).
    async fn get_json(&self, args: &[&str]) -> String {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        self.ok(&a, None).await
    }

    async fn exists(&self, args: &[&str]) -> bool {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        self.run(&a, None).await.0
    }
}

fn run_kubectl(
    kubeconfig: &Path,
    args: &[String],
    stdin: Option<String>,
) -> (bool, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn uid_of(json_text: &str) -> String {
    let v: Value = serde_json::from_str(json_text).unwrap();
    v["metadata"]["uid"].as_str().unwrap().to_string()
}

fn labelled_for(uid: &str, installation: &str, obj: Value) -> Value {
    let mut obj = obj;
    obj["metadata"]["labels"] = json!({
        "app.kubernetes.io/managed-by": "caelus",
        "caelus.io/deployment-uid": uid,
        "caelus.io/installation": installation,
    });
    obj
}

fn cm(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns}, "data": data})
}

fn cluster_role(name: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": {"name": name},
           "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
}

#[tokio::test]
async fn objects_of_someone_else_are_refused_untouched_and_named_before_any_write() {
    let env = start().await;
    let kubectl = Kubectl::new(&env.sim);
    let ns = "d-own";
    env.engine.ensure_namespace(&target(ns)).await.unwrap();
    // Created by hand (no ownership labels), and by another deployment.
    kubectl
        .create(cm(ns, "web-config", json!({"owner": "a human"})))
        .await;
    kubectl
        .create(labelled_for(
            "uid-other",
            "test-install",
            cm(ns, "shared", json!({"owner": "another deployment"})),
        ))
        .await;
    let before_hand = kubectl
        .get_json(&["configmap", "web-config", "-n", ns])
        .await;
    let before_other = kubectl.get_json(&["configmap", "shared", "-n", ns]).await;

    env.sim.reset_stats();
    let objects = vec![
        configmap("fresh", json!({"a": "1"})),
        configmap("web-config", json!({"owner": "caelus"})),
        configmap("shared", json!({"owner": "caelus"})),
        service("web"),
    ];
    let err = env
        .engine
        .apply(request(ns, objects), |_| {})
        .await
        .unwrap_err();
    let EngineError::NotOwned { conflicts } = &err else {
        panic!("expected an ownership refusal, got {err:?}");
    };
    let named: Vec<(String, Owner)> = conflicts
        .iter()
        .map(|c| (c.object.to_string(), c.owner.clone()))
        .collect();
    assert_eq!(
        named,
        [
            (format!("ConfigMap/web-config in {ns}"), Owner::Unmanaged),
            (
                format!("ConfigMap/shared in {ns}"),
                Owner::Deployment {
                    uid: "uid-other".into()
                }
            ),
        ]
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "ConfigMap/web-config in {ns} already exists and belongs to no one"
        )) && message.contains(&format!(
            "ConfigMap/shared in {ns} already exists and belongs to deployment uid-other"
        )),
        "{message}"
    );
    assert_eq!(
        err.failure_kind(),
        caelus_core::remediation::FailureKind::NeedsChange
    );

    // Nothing of the revision was written, not even the objects nobody owns.
    assert_eq!(env.sim.stats().writes(), 0, "{:?}", env.sim.stats());
    assert!(!kubectl.exists(&["configmap", "fresh", "-n", ns]).await);
    assert!(!kubectl.exists(&["service", "web", "-n", ns]).await);
    assert_eq!(
        kubectl
            .get_json(&["configmap", "web-config", "-n", ns])
            .await,
        before_hand
    );
    assert_eq!(
        kubectl.get_json(&["configmap", "shared", "-n", ns]).await,
        before_other
    );

    // The deployment's own objects are applied as always once the names are free.
    let objects = vec![configmap("fresh", json!({"a": "1"})), service("web")];
    env.engine
        .apply(request(ns, objects.clone()), |_| {})
        .await
        .unwrap();
    // …and re-applied: they are this deployment's now.
    env.engine
        .apply(request(ns, objects), |_| {})
        .await
        .unwrap();
}

#[tokio::test]
async fn another_installations_object_is_refused_even_with_the_same_deployment_uid() {
    let env = start().await;
    let kubectl = Kubectl::new(&env.sim);
    let ns = "d-inst";
    env.engine.ensure_namespace(&target(ns)).await.unwrap();
    kubectl
        .create(labelled_for(
            &format!("uid-{ns}"),
            "staging",
            cm(ns, "web", json!({})),
        ))
        .await;
    let before = kubectl.get_json(&["configmap", "web", "-n", ns]).await;
    let err = env
        .engine
        .apply(request(ns, vec![configmap("web", json!({}))]), |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("belongs to deployment uid-d-inst of Caelus installation staging"),
        "{err}"
    );
    assert_eq!(
        kubectl.get_json(&["configmap", "web", "-n", ns]).await,
        before
    );
}

fn cluster_role_hook(name: &str, event: HookEvent) -> Hook {
    let mut object = cluster_role(name);
    object["metadata"]["annotations"] = json!({"helm.sh/hook": event.as_str()});
    Hook {
        kind: "ClusterRole".into(),
        name: name.into(),
        template: format!("templates/{name}.yaml"),
        events: vec![event],
        weight: 0,
        delete_policies: vec![HookDeletePolicy::BeforeHookCreation],
        object,
    }
}

#[tokio::test]
async fn a_before_hook_creation_hook_never_deletes_a_foreign_object() {
    let env = start().await;
    let kubectl = Kubectl::new(&env.sim);
    let ns = "d-hook";
    env.engine.ensure_namespace(&target(ns)).await.unwrap();
    // An operator's ClusterRole that a chart's hook happens to name.
    kubectl.create(cluster_role("operator-edit")).await;
    let before = kubectl.get_json(&["clusterrole", "operator-edit"]).await;

    let mut req = request(ns, vec![configmap("app", json!({}))]);
    req.hooks = vec![cluster_role_hook("operator-edit", HookEvent::PreInstall)];
    env.sim.reset_stats();
    let err = env.engine.apply(req, |_| {}).await.unwrap_err();
    assert!(
        err.to_string().starts_with(
            "pre-install hook ClusterRole/operator-edit already exists and belongs to no one"
        ),
        "{err}"
    );
    assert_eq!(env.sim.stats().writes(), 0, "refused before any write");
    assert!(!kubectl.exists(&["configmap", "app", "-n", ns]).await);

    // Uninstall runs pre-delete hooks without a revision check first: the
    // hook itself refuses to replace the foreign object.
    let err = env
        .engine
        .uninstall(&UninstallRequest {
            namespace: ns.into(),
            deployment_uid: format!("uid-{ns}"),
            inventory: vec![],
            hooks: vec![cluster_role_hook("operator-edit", HookEvent::PreDelete)],
            hook_timeout: Duration::from_secs(5),
            keep_volumes: false,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("pre-delete hook ClusterRole/operator-edit already exists"),
        "{err}"
    );
    assert_eq!(
        kubectl.get_json(&["clusterrole", "operator-edit"]).await,
        before
    );
    assert!(
        kubectl.exists(&["namespace", ns]).await,
        "uninstall stopped at the hook"
    );
}

#[tokio::test]
async fn prune_never_deletes_an_object_recreated_by_someone_else() {
    let env = start().await;
    let kubectl = Kubectl::new(&env.sim);
    let ns = "d-prune";
    env.engine.ensure_namespace(&target(ns)).await.unwrap();
    let first = vec![
        configmap("a", json!({})),
        configmap("b", json!({})),
        configmap("c", json!({})),
    ];
    let outcome = env.engine.apply(request(ns, first), |_| {}).await.unwrap();
    let inventory = outcome.inventory;

    // b: deleted and recreated by hand (no Caelus labels).
    kubectl
        .ok(&["delete", "configmap", "b", "-n", ns], None)
        .await;
    kubectl.create(cm(ns, "b", json!({"mine": "yes"}))).await;
    let b_before = kubectl.get_json(&["configmap", "b", "-n", ns]).await;

    // c: replaced by a perfect copy, Caelus's labels included, between the
    // engine's read and its delete. Only the uid tells them apart, and the
    // delete's uid precondition does. The delete is held back by injected
    // latency; the swap goes straight to the simulator's store.
    env.sim.faults().set(kubesim::FaultConfig {
        latency: vec![kubesim::LatencyFault {
            verb: Some("delete".into()),
            resource: Some("configmaps".into()),
            millis: 1500,
        }],
        ..Default::default()
    });
    env.sim.reset_stats();
    let mut req = request(ns, vec![configmap("a", json!({}))]);
    req.previous_inventory = inventory;
    let engine = env.engine.clone();
    let upgrade = tokio::spawn(async move { engine.apply(req, |_| {}).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.sim.stats().verb_resource("delete", "configmaps") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no delete was sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let api = env.sim.api();
    let info = api.resource("", "v1", "configmaps").unwrap();
    let old_c = api.get(&info, ns, "c").unwrap();
    api.delete(&info, ns, "c", &Default::default()).unwrap();
    let mut copy = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": ns, "labels": old_c["metadata"]["labels"].clone()},
        "data": old_c["data"].clone()});
    copy["metadata"]["labels"]["recreated"] = json!("by-someone-else");
    api.create(&info, ns, copy, &Default::default()).unwrap();

    let outcome = upgrade.await.unwrap().unwrap();
    env.sim.faults().clear();
    let names =
        |v: &[caelus_engine::ObjectRef]| v.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&outcome.pruned), Vec::<String>::new());
    let mut not_owned = names(&outcome.not_owned);
    not_owned.sort();
    assert_eq!(not_owned, ["b", "c"]);
    assert_eq!(
        kubectl.get_json(&["configmap", "b", "-n", ns]).await,
        b_before
    );
    let c_now = kubectl.get_json(&["configmap", "c", "-n", ns]).await;
    assert!(c_now.contains("by-someone-else"), "{c_now}");
    assert_ne!(uid_of(&c_now), old_c["metadata"]["uid"].as_str().unwrap());
}

#[tokio::test]
async fn uninstall_never_deletes_a_cluster_scoped_object_recreated_by_someone_else() {
    let env = start().await;
    let kubectl = Kubectl::new(&env.sim);
    let ns = "d-gone";
    env.engine.ensure_namespace(&target(ns)).await.unwrap();
    let outcome = env
        .engine
        .apply(
            request(
                ns,
                vec![cluster_role("d-gone-reader"), configmap("a", json!({}))],
            ),
            |_| {},
        )
        .await
        .unwrap();
    kubectl
        .ok(&["delete", "clusterrole", "d-gone-reader"], None)
        .await;
    kubectl.create(cluster_role("d-gone-reader")).await;
    let before = kubectl.get_json(&["clusterrole", "d-gone-reader"]).await;

    let status = env
        .engine
        .uninstall(&UninstallRequest {
            namespace: ns.into(),
            deployment_uid: format!("uid-{ns}"),
            inventory: outcome.inventory,
            hooks: vec![],
            hook_timeout: Duration::from_secs(5),
            keep_volumes: false,
        })
        .await
        .unwrap();
    assert_eq!(status, caelus_engine::UninstallStatus::Gone);
    assert!(!kubectl.exists(&["namespace", ns]).await);
    assert_eq!(
        kubectl.get_json(&["clusterrole", "d-gone-reader"]).await,
        before
    );
}

#[tokio::test]
async fn adoption_is_explicit_labels_only_the_named_object_and_never_takes_another_deployments() {
    let env = start().await;
    let kubectl = Kubectl::new(&env.sim);
    let ns = "d-adopt";
    let uid = format!("uid-{ns}");
    env.engine.ensure_namespace(&target(ns)).await.unwrap();
    kubectl
        .create(cm(ns, "web", json!({"kept": "by the adopter"})))
        .await;
    kubectl
        .create(labelled_for(
            "uid-other",
            "test-install",
            cm(ns, "theirs", json!({})),
        ))
        .await;
    let web = caelus_engine::ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: None,
        name: "web".into(),
    };
    // Refused until adopted.
    let objects = vec![configmap("web", json!({"greeting": "hi"}))];
    assert!(matches!(
        env.engine.apply(request(ns, objects.clone()), |_| {}).await,
        Err(EngineError::NotOwned { .. })
    ));

    let adopted = env.engine.adopt(ns, &uid, &web).await.unwrap();
    assert_eq!(adopted.object.namespace.as_deref(), Some(ns));
    assert_eq!(adopted.previous_owner, Some(Owner::Unmanaged));
    let live: Value =
        serde_json::from_str(&kubectl.get_json(&["configmap", "web", "-n", ns]).await).unwrap();
    assert_eq!(
        live["metadata"]["labels"]["caelus.io/deployment-uid"],
        uid.as_str()
    );
    assert_eq!(
        live["metadata"]["labels"]["caelus.io/installation"],
        "test-install"
    );
    assert_eq!(
        live["data"],
        json!({"kept": "by the adopter"}),
        "only labels change"
    );
    // Adopting again changes nothing.
    let again = env.engine.adopt(ns, &uid, &web).await.unwrap();
    assert_eq!(again.previous_owner, None);
    // Now the deployment's apply may write it.
    env.engine
        .apply(request(ns, objects), |_| {})
        .await
        .unwrap();
    let live: Value =
        serde_json::from_str(&kubectl.get_json(&["configmap", "web", "-n", ns]).await).unwrap();
    assert_eq!(live["data"]["greeting"], "hi");

    // Another deployment's object is never adopted, nor anything elsewhere.
    let before = kubectl.get_json(&["configmap", "theirs", "-n", ns]).await;
    let theirs = caelus_engine::ObjectRef {
        name: "theirs".into(),
        ..web.clone()
    };
    let err = env.engine.adopt(ns, &uid, &theirs).await.unwrap_err();
    assert!(
        err.to_string().contains("belongs to deployment uid-other"),
        "{err}"
    );
    assert_eq!(
        kubectl.get_json(&["configmap", "theirs", "-n", ns]).await,
        before
    );
    let elsewhere = caelus_engine::ObjectRef {
        namespace: Some("kube-system".into()),
        ..web.clone()
    };
    assert!(matches!(
        env.engine.adopt(ns, &uid, &elsewhere).await,
        Err(EngineError::Policy(_))
    ));
    let missing = caelus_engine::ObjectRef {
        name: "nothing".into(),
        ..web
    };
    assert!(matches!(
        env.engine.adopt(ns, &uid, &missing).await,
        Err(EngineError::Object { code: 404, .. })
    ));
}

#[tokio::test]
async fn a_namespace_created_by_the_pass_reads_nothing_back_but_what_kubernetes_puts_in_it() {
    let env = start().await;
    let ns = "d-fresh";
    let created = env.engine.ensure_namespace(&target(ns)).await.unwrap();
    assert!(created, "the namespace did not exist");
    assert!(
        !env.engine.ensure_namespace(&target(ns)).await.unwrap(),
        "a second pass finds it"
    );

    // Nothing in a namespace this pass created can be anyone else's, and a
    // ConfigMap or Service is healthy as the apply answers it: no reads at all.
    env.sim.reset_stats();
    let mut req = request(
        ns,
        vec![configmap("web", json!({"a": "1"})), service("web")],
    );
    req.namespace_created = true;
    let outcome = env.engine.apply(req, |_| {}).await.unwrap();
    assert_eq!(outcome.health.len(), 2);
    let stats = env.sim.stats();
    assert_eq!(stats.verb("get"), 0, "{stats:?}");
    assert_eq!(stats.verb("patch"), 2, "{stats:?}");

    // Except what Kubernetes creates in every new namespace: a chart's
    // `default` ServiceAccount is someone else's object there, refused.
    let other = "d-fresh-sa";
    assert!(env.engine.ensure_namespace(&target(other)).await.unwrap());
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default"}, "automountServiceAccountToken": false});
    let mut req = request(other, vec![sa]);
    req.namespace_created = true;
    let err = env.engine.apply(req, |_| {}).await.unwrap_err();
    let EngineError::NotOwned { conflicts } = &err else {
        panic!("expected an ownership refusal, got {err:?}");
    };
    assert_eq!(
        conflicts[0].object.to_string(),
        format!("ServiceAccount/default in {other}")
    );
    assert_eq!(conflicts[0].owner, Owner::Unmanaged);
}
