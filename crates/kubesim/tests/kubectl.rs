//! Fidelity tests with the real kubectl binary.

mod common;

use serde_json::Value;

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: "1"}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres:16}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_builtins() {
    let s = common::start(kubesim::Config::default()).await;
    let ns = s.kubectl_ok(&["get", "namespaces"], None).await;
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    let sa = json(
        &s.kubectl_ok(&["get", "serviceaccounts", "-A", "-o", "json"], None)
            .await,
    );
    assert_eq!(sa["items"].as_array().unwrap().len(), 4);
    let res = s.kubectl_ok(&["api-resources", "-o", "name"], None).await;
    for r in [
        "deployments.apps",
        "jobs.batch",
        "leases.coordination.k8s.io",
        "poddisruptionbudgets.policy",
        "horizontalpodautoscalers.autoscaling",
        "clusterroles.rbac.authorization.k8s.io",
        "networkpolicies.networking.k8s.io",
    ] {
        assert!(res.lines().any(|l| l == r), "missing {r} in {res}");
    }
    let out = s.kubectl(&["get", "configmap", "nope"], None).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("configmaps \"nope\" not found"),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_server_side_multi_document_then_wait() {
    let s = common::start(kubesim::Config {
        rollout_delay: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // As on a real cluster, the custom resource cannot be mapped until its
    // CRD exists: the first apply creates everything else, the second the CR.
    let first = s
        .kubectl(&["apply", "--server-side", "-f", "-"], Some(MANIFEST))
        .await;
    assert!(
        first
            .stdout
            .contains("deployment.apps/web serverside-applied"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains(
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied"
    ));
    let second = s
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(MANIFEST))
        .await;
    assert!(
        second.contains("widget.example.com/w1 serverside-applied"),
        "{second}"
    );

    let w = json(&s.kubectl_ok(&["get", "wd", "w1", "-o", "json"], None).await);
    assert_eq!(w["spec"]["size"], 3);
    let cm = json(
        &s.kubectl_ok(
            &["get", "cm", "cfg", "-o", "json", "--show-managed-fields"],
            None,
        )
        .await,
    );
    let mf = &cm["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl");
    assert_eq!(mf["operation"], "Apply");
    assert_eq!(mf["fieldsV1"]["f:data"]["f:a"], serde_json::json!({}));

    let svc = json(
        &s.kubectl_ok(&["get", "svc", "web", "-o", "json"], None)
            .await,
    );
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96.")
    );

    s.kubectl_ok(
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    let d = json(
        &s.kubectl_ok(&["get", "deploy", "web", "-o", "json"], None)
            .await,
    );
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(d["status"]["observedGeneration"], 1);

    let pvcs = s.kubectl_ok(&["get", "pvc", "-o", "name"], None).await;
    assert!(
        pvcs.contains("persistentvolumeclaim/data-db-0")
            && pvcs.contains("persistentvolumeclaim/data-db-1"),
        "{pvcs}"
    );
    s.kubectl_ok(
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Bound",
            "pvc/data-db-1",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_label_delete() {
    let s = common::start(kubesim::Config::default()).await;
    let without_cr = MANIFEST
        .split("---\napiVersion: example.com/v1")
        .next()
        .unwrap();
    s.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(without_cr))
        .await;
    s.kubectl_ok(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}"#], None).await;
    let d = json(
        &s.kubectl_ok(&["get", "deploy", "web", "-o", "json"], None)
            .await,
    );
    let c = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        c.as_array().unwrap().len(),
        1,
        "strategic merge keeps one container: {c}"
    );
    assert_eq!(c[0]["image"], "nginx:1.28");
    assert_eq!(c[0]["ports"][0]["containerPort"], 80);
    assert_eq!(d["metadata"]["generation"], 2);

    s.kubectl_ok(
        &[
            "patch",
            "cm",
            "cfg",
            "--type=merge",
            "-p",
            r#"{"data":{"b":"2"}}"#,
        ],
        None,
    )
    .await;
    s.kubectl_ok(
        &[
            "patch",
            "cm",
            "cfg",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/data/a"}]"#,
        ],
        None,
    )
    .await;
    s.kubectl_ok(&["label", "cm", "cfg", "team=blue"], None)
        .await;
    let cm = json(
        &s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"], None)
            .await,
    );
    assert_eq!(cm["data"], serde_json::json!({"b": "2"}));
    assert_eq!(cm["metadata"]["labels"]["team"], "blue");
    let sel = s
        .kubectl_ok(
            &["get", "cm", "-l", "team in (blue,green)", "-o", "name"],
            None,
        )
        .await;
    assert_eq!(sel.trim(), "configmap/cfg");
    let sel = s
        .kubectl_ok(&["get", "cm", "-l", "team!=blue", "-o", "name"], None)
        .await;
    assert!(!sel.contains("cfg"), "{sel}");

    let out = s.kubectl_ok(&["delete", "cm", "cfg"], None).await;
    assert!(out.contains("configmap \"cfg\" deleted"), "{out}");
    // Deleting the Deployment garbage-collects its ReplicaSet.
    s.kubectl_ok(&["delete", "deployment", "web"], None).await;
    common::eventually(5, "replicaset GC", || async {
        let rs = s.kubectl_ok(&["get", "rs", "-o", "name"], None).await;
        rs.trim().is_empty().then_some(())
    })
    .await;
    let out = s.kubectl(&["get", "cm", "cfg"], None).await;
    assert!(!out.ok && out.stderr.contains("NotFound"), "{}", out.stderr);
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_events() {
    let s = common::start(kubesim::Config::default()).await;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args([
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {k: v}\n";
    s.kubectl_ok(&["create", "-f", "-"], Some(cm)).await;
    s.kubectl_ok(&["label", "cm", "watched", "x=y"], None).await;
    s.kubectl_ok(&["delete", "cm", "watched"], None).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map(|e| e.unwrap())
        // Every namespace also holds `kube-root-ca.crt`, as on a real cluster.
        .filter(|e| e["object"]["metadata"]["name"] != "kube-root-ca.crt")
        .map(|e| {
            format!(
                "{} configmap/{}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            "ADDED configmap/watched",
            "MODIFIED configmap/watched",
            "DELETED configmap/watched"
        ],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_with_finalized_configmap_stays_terminating() {
    let s = common::start(kubesim::Config::default()).await;
    let docs = r#"
apiVersion: v1
kind: Namespace
metadata: {name: doomed}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: held, namespace: doomed, finalizers: [example.com/block]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: free, namespace: doomed}
"#;
    s.kubectl_ok(&["apply", "-f", "-"], Some(docs)).await;
    s.kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"], None)
        .await;
    let ns = common::eventually(5, "namespace conditions", || async {
        let ns = json(
            &s.kubectl_ok(&["get", "ns", "doomed", "-o", "json"], None)
                .await,
        );
        ns["status"]["conditions"].is_array().then_some(ns)
    })
    .await;
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    let cond = |t: &str| {
        ns["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no {t} condition"))
    };
    let f = cond("NamespaceFinalizersRemaining");
    assert_eq!(f["status"], "True");
    assert_eq!(f["reason"], "SomeFinalizersRemain");
    assert_eq!(
        f["message"],
        "Some content in the namespace has finalizers remaining: example.com/block in 1 resource instances"
    );
    let c = cond("NamespaceContentRemaining");
    assert_eq!(c["reason"], "SomeResourcesRemain");
    assert_eq!(
        c["message"],
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        cond("NamespaceDeletionContentFailure")["reason"],
        "ContentDeleted"
    );
    // The unfinalized content is gone, the finalized one is marked deleted.
    let cms = json(
        &s.kubectl_ok(&["get", "cm", "-n", "doomed", "-o", "json"], None)
            .await,
    );
    let items = cms["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0]["metadata"]["deletionTimestamp"].is_string());
    // New content is refused while terminating.
    let out = s
        .kubectl(
            &["create", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: doomed}\n"),
        )
        .await;
    assert!(out.stderr.contains("configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"), "{}", out.stderr);
    // Releasing the finalizer lets the namespace go.
    s.kubectl_ok(
        &[
            "patch",
            "cm",
            "held",
            "-n",
            "doomed",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
        None,
    )
    .await;
    common::eventually(5, "namespace removal", || async {
        let out = s.kubectl(&["get", "ns", "doomed"], None).await;
        (!out.ok && out.stderr.contains("not found")).then_some(())
    })
    .await;
    s.sim.shutdown().await;
}
