//! A hostile chart on kubesim: `testdata/charts/hostile` renders whatever
//! its allowlisted `extraObjects` value holds (the common extraObjects
//! pattern). Each attack of issue 10 is refused before anything of the
//! revision is written — the deployment is Stalled with a reason naming the
//! object (and hook event) and the rule — and the cluster is unchanged: the
//! other tenant's namespace and isolation objects, a pre-existing
//! ClusterRole and an installed cluster-scoped CRD read byte-for-byte the
//! same through the real `kubectl`.

mod harness;

use caelus_core::status::{ConditionStatus, Phase};
use caelus_core::template::Capabilities;
use caelus_store::Backend;
use harness::Harness;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

const WEB_ALLOW: &[&str] = &["replicaCount", "ingress.*", "settings.*", "config.*"];

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(h: &Harness) -> Kubectl {
        let kubeconfig = h.registry.temp_dir().join("hostile-kubeconfig");
        h.sim.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl { kubeconfig }
    }

    /// Runs kubectl without blocking the runtime kubesim serves from.
    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl is installed");
        {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                pipe.write_all(text.as_bytes()).await.unwrap();
            }
        }
        let out = child.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn stalled_message(d: &caelus_store::deployments::Deployment) -> String {
    let c = d
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("a Stalled condition");
    assert_eq!(c.status, ConditionStatus::True, "{c:?}");
    c.message.clone()
}

/// What the attacks must leave alone, as `kubectl` prints it.
async fn snapshot(k: &Kubectl, victim_ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    out.push(
        k.ok(&["get", "namespace", victim_ns, "-o", "json"], None)
            .await,
    );
    out.push(
        k.ok(
            &[
                "get",
                "resourcequota,limitrange,networkpolicy,configmap",
                "-n",
                victim_ns,
                "-o",
                "json",
            ],
            None,
        )
        .await,
    );
    out.push(
        k.ok(&["get", "clusterrole", "operator-role", "-o", "json"], None)
            .await,
    );
    out.push(
        k.ok(&["get", "clusterrolebindings", "-o", "name"], None)
            .await,
    );
    out.push(k.ok(&["get", "gadgets", "-o", "name"], None).await);
    out.push(k.ok(&["get", "namespaces", "-o", "name"], None).await);
    out
}

#[tokio::test]
async fn every_attack_of_a_hostile_chart_is_refused_before_any_write() {
    let h = Harness::start(Backend::Sqlite).await;
    let k = Kubectl::new(&h);

    // Another tenant's deployment, with its namespace and isolation objects.
    let web = h
        .publish("web", "web", "1.0.0", WEB_ALLOW, Capabilities::default())
        .await;
    let victim = h.create(&web, "victim", json!({})).await;
    let victim_ns = h.wait_phase(&victim, Phase::Ready).await.namespace_name;

    // An operator's ClusterRole and an installed cluster-scoped custom kind.
    k.ok(
        &["apply", "-f", "-"],
        Some(
            r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "operator-role"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}"#,
        ),
    )
    .await;
    k.ok(
        &["apply", "-f", "-"],
        Some(
            r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "gadgets.example.com"},
                "spec": {"group": "example.com", "scope": "Cluster",
                  "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
                  "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#,
        ),
    )
    .await;
    // Served once the CRD is established.
    for _ in 0..100 {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&k.kubeconfig)
            .args(["get", "gadgets"]);
        if cmd.output().await.unwrap().status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = snapshot(&k, &victim_ns).await;

    let hostile = h
        .publish(
            "hostile",
            "hostile",
            "1.0.0",
            &["extraObjects", "copies"],
            Capabilities::default(),
        )
        .await;

    let hook = |events: &str, policy: &str| json!({"helm.sh/hook": events, "helm.sh/hook-delete-policy": policy});
    let pod = |spec: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "miner"},
               "spec": {"selector": {"matchLabels": {"app": "m"}},
                        "template": {"metadata": {"labels": {"app": "m"}}, "spec": spec}}})
    };
    // (attack, object, what the refusal must name)
    let attacks: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "a pre-install hook binding cluster-admin",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "pwn", "annotations": hook("pre-install", "hook-succeeded")},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "{{ .Release.Namespace }}"}]}),
            vec![
                "ClusterRoleBinding \"pwn\" (pre-install hook)",
                "(cluster-scoped)",
                "(rbac-binding)",
            ],
        ),
        (
            "a Namespace hook named after another tenant's namespace",
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": victim_ns, "labels": {"pwned": "yes"},
                                "annotations": hook("pre-install", "hook-succeeded")}}),
            vec!["Namespace", "(pre-install hook)", "(namespace-object)"],
        ),
        (
            "a before-hook-creation hook replacing an operator's ClusterRole",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "operator-role", "annotations": hook("post-install", "before-hook-creation")},
                   "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
            vec![
                "ClusterRole \"operator-role\" (post-install hook)",
                "(cluster-scoped)",
            ],
        ),
        (
            "an instance of an installed cluster-scoped custom kind",
            json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}}),
            vec!["Gadget \"g1\"", "(cluster-scoped)"],
        ),
        (
            "a ResourceQuota reusing the isolation object's name",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "caelus-quota"},
                   "spec": {"hard": {"pods": "1000"}}}),
            vec!["ResourceQuota \"caelus-quota\"", "(reserved-name)"],
        ),
        (
            "a NetworkPolicy opening another tenant's namespace",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "caelus-default-deny-ingress", "namespace": victim_ns},
                   "spec": {"podSelector": {}, "ingress": [{}]}}),
            vec![
                "NetworkPolicy \"caelus-default-deny-ingress\"",
                "(foreign-namespace)",
                "(reserved-name)",
            ],
        ),
        (
            "a privileged pod on the host network with the node's root",
            pod(json!({"hostNetwork": true,
                       "containers": [{"name": "miner", "image": "x", "securityContext": {"privileged": true}}],
                       "volumes": [{"name": "root", "hostPath": {"path": "/"}}]})),
            vec![
                "Deployment \"miner\"",
                "spec.hostNetwork",
                "spec.volumes[0].hostPath",
                "container \"miner\" containers[0].securityContext.privileged",
                "(pod-security)",
            ],
        ),
        (
            "a RoleBinding to cluster-admin in its own namespace",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "admin"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": "default"}]}),
            vec!["RoleBinding \"admin\"", "cluster-admin", "(rbac-binding)"],
        ),
        (
            "a privileged test hook",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "probe", "annotations": {"helm.sh/hook": "test"}},
                   "spec": {"hostPID": true, "containers": [{"name": "probe", "image": "x"}]}}),
            vec![
                "Pod \"probe\" (test hook)",
                "spec.hostPID",
                "(pod-security)",
            ],
        ),
        (
            "an object claiming the other deployment's ownership label",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "forged", "namespace": "{{ .Release.Namespace }}",
                                "labels": {"caelus.io/deployment-uid": victim}}}),
            vec![
                "ConfigMap \"forged\"",
                "caelus.io/deployment-uid",
                "(reserved-metadata)",
            ],
        ),
    ];

    for (i, (attack, object, named)) in attacks.into_iter().enumerate() {
        // Deployment names are unique per tenant until a deleted one is gone.
        let name = format!("attacker-{i}");
        let uid = h
            .create(&hostile, &name, json!({"extraObjects": [object]}))
            .await;
        let d = h
            .wait_until(&uid, Duration::from_secs(20), attack, |d| {
                d.phase == Phase::Failed
                    && d.conditions
                        .iter()
                        .any(|c| c.type_ == "Stalled" && c.status == ConditionStatus::True)
            })
            .await;
        let message = stalled_message(&d);
        assert!(message.contains("refused by policy"), "{attack}: {message}");
        for text in named {
            assert!(
                message.contains(text),
                "{attack}: {text:?} not in {message}"
            );
        }
        assert_eq!(d.due_at, None, "{attack}: a policy refusal is not retried");
        assert!(
            h.live("v1", "Namespace", None, &d.namespace_name)
                .await
                .is_none(),
            "{attack}: nothing of the revision was written, not even its namespace"
        );
        h.delete(&uid).await;
    }

    let after = snapshot(&k, &victim_ns).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "the cluster changed");
    }
    h.stop().await;
}

#[tokio::test]
async fn the_same_chart_with_harmless_values_installs() {
    let h = Harness::start(Backend::Sqlite).await;
    let hostile = h
        .publish(
            "hostile",
            "hostile",
            "1.0.0",
            &["extraObjects", "copies"],
            Capabilities::default(),
        )
        .await;
    let uid = h
        .create(
            &hostile,
            "fine",
            json!({"copies": 2, "extraObjects": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}, "data": {"a": "b"}},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
                 "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                 "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "{{ .Release.Namespace }}"}]},
            ]}),
        )
        .await;
    let d = h.wait_phase(&uid, Phase::Ready).await;
    assert!(
        h.live("v1", "ConfigMap", Some(&d.namespace_name), "extra")
            .await
            .is_some()
    );
    h.stop().await;
}
