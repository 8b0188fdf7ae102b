//! The kubectl commands an operator types daily about workloads and Pods,
//! with the real kubectl: run, expose, scale, rollout
//! status/restart/history/undo, set image, label, annotate, logs, wait,
//! describe, get pods, delete --cascade, auth can-i, get -w.

mod common;

use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 80}]}]
"#;

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_scale_history_and_undo() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(DEPLOYMENT)).await;
    let out = s
        .kubectl_ok(
            &["rollout", "status", "deployment/web", "--timeout=20s"],
            None,
        )
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    // Pods exist, are Running and Ready, and `get pods` shows them.
    let pods = s
        .kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"], None)
        .await;
    assert_eq!(lines(&pods).len(), 2, "{pods}");
    s.kubectl_ok(
        &[
            "wait",
            "--for=condition=Ready",
            "pod",
            "-l",
            "app=web",
            "--timeout=20s",
        ],
        None,
    )
    .await;

    // scale through /scale, then wait on a jsonpath.
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=3"], None)
        .await;
    s.kubectl_ok(
        &[
            "wait",
            "--for=jsonpath={.status.readyReplicas}=3",
            "deployment/web",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    let scale = json(
        &s.kubectl_ok(
            &[
                "get",
                "--raw",
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
            ],
            None,
        )
        .await,
    );
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");

    // set image makes revision 2; restart makes revision 3.
    s.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.28"], None)
        .await;
    s.kubectl_ok(
        &["rollout", "status", "deployment/web", "--timeout=20s"],
        None,
    )
    .await;
    s.kubectl_ok(&["rollout", "restart", "deployment/web"], None)
        .await;
    s.kubectl_ok(
        &["rollout", "status", "deployment/web", "--timeout=20s"],
        None,
    )
    .await;
    let d = json(
        &s.kubectl_ok(&["get", "deployment", "web", "-o", "json"], None)
            .await,
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let history = s
        .kubectl_ok(&["rollout", "history", "deployment/web"], None)
        .await;
    for rev in ["1", "2", "3"] {
        assert!(
            history
                .lines()
                .any(|l| l.split_whitespace().next() == Some(rev)),
            "{history}"
        );
    }
    let rev2 = s
        .kubectl_ok(
            &["rollout", "history", "deployment/web", "--revision=2"],
            None,
        )
        .await;
    assert!(rev2.contains("nginx:1.28"), "{rev2}");

    // undo to revision 1: the old ReplicaSet comes back as revision 4.
    s.kubectl_ok(
        &["rollout", "undo", "deployment/web", "--to-revision=1"],
        None,
    )
    .await;
    s.kubectl_ok(
        &["rollout", "status", "deployment/web", "--timeout=20s"],
        None,
    )
    .await;
    let d = json(
        &s.kubectl_ok(&["get", "deployment", "web", "-o", "json"], None)
            .await,
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
    let pods = json(
        &s.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"], None)
            .await,
    );
    let images: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["nginx:1.27"; 3]);

    // Built-in defaults landed where the client set nothing, owned by no client manager.
    assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    let describe = s.kubectl_ok(&["describe", "deployment", "web"], None).await;
    assert!(describe.contains("ScalingReplicaSet"), "{describe}");

    // Foreground deletion waits for the ReplicaSets and Pods to go.
    s.kubectl_ok(
        &[
            "delete",
            "deployment",
            "web",
            "--cascade=foreground",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    let left = s
        .kubectl_ok(&["get", "rs,pods", "-l", "app=web", "-o", "name"], None)
        .await;
    assert_eq!(lines(&left), Vec::<&str>::new());
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_expose_logs_label_annotate_and_can_i() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(
        &["run", "shell", "--image=busybox:1.36", "--labels=app=shell"],
        None,
    )
    .await;
    s.kubectl_ok(
        &[
            "wait",
            "--for=condition=Ready",
            "pod/shell",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    let logs = s.kubectl_ok(&["logs", "shell"], None).await;
    assert!(
        logs.contains("kubesim: container shell of pod default/shell started (image busybox:1.36)"),
        "{logs}"
    );
    let tail = s.kubectl_ok(&["logs", "shell", "--tail=1"], None).await;
    assert_eq!(lines(&tail).len(), 1, "{tail}");
    s.kubectl_ok(
        &["expose", "pod", "shell", "--port=8080", "--name=shell"],
        None,
    )
    .await;
    let svc = json(
        &s.kubectl_ok(&["get", "svc", "shell", "-o", "json"], None)
            .await,
    );
    assert_eq!(svc["spec"]["selector"]["app"], "shell");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ipFamilies"], serde_json::json!(["IPv4"]));
    s.kubectl_ok(&["label", "pod", "shell", "tier=debug"], None)
        .await;
    s.kubectl_ok(&["annotate", "pod", "shell", "note=hello"], None)
        .await;
    let p = json(
        &s.kubectl_ok(&["get", "pod", "shell", "-o", "json"], None)
            .await,
    );
    assert_eq!(p["metadata"]["labels"]["tier"], "debug");
    assert_eq!(p["metadata"]["annotations"]["note"], "hello");
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(
        p["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    s.kubectl_ok(&["apply", "-f", "-"], Some(DEPLOYMENT)).await;
    let logs = s.kubectl_ok(&["logs", "deployment/web"], None).await;
    assert!(
        logs.contains("kubesim: container web of pod default/web-"),
        "{logs}"
    );

    let yes = s
        .kubectl_ok(&["auth", "can-i", "create", "pods"], None)
        .await;
    assert_eq!(yes.trim(), "yes");
    let yes = s
        .kubectl_ok(
            &[
                "auth",
                "can-i",
                "delete",
                "deployments",
                "-n",
                "kube-system",
            ],
            None,
        )
        .await;
    assert_eq!(yes.trim(), "yes");

    // delete --wait waits for the pod to go; wait --for=delete sees it gone.
    s.kubectl_ok(&["delete", "pod", "shell"], None).await;
    s.kubectl_ok(&["wait", "--for=delete", "pod/shell", "--timeout=5s"], None)
        .await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_daemonsets_and_jobs_run_pods() {
    let s = common::start(kubesim::Config::default()).await;
    let manifests = r#"
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
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: busybox}]
"#;
    s.kubectl_ok(&["apply", "-f", "-"], Some(manifests)).await;
    s.kubectl_ok(
        &["rollout", "status", "statefulset/db", "--timeout=20s"],
        None,
    )
    .await;
    s.kubectl_ok(
        &["rollout", "status", "daemonset/agent", "--timeout=20s"],
        None,
    )
    .await;
    s.kubectl_ok(
        &[
            "wait",
            "--for=condition=Complete",
            "job/once",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    let db = json(
        &s.kubectl_ok(&["get", "pod", "db-1", "-o", "json"], None)
            .await,
    );
    assert_eq!(db["spec"]["hostname"], "db-1");
    assert_eq!(db["spec"]["subdomain"], "db");
    assert_eq!(
        db["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "db-1"
    );
    assert!(
        db["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == "data-db-1"),
        "{db}"
    );
    let agent = json(
        &s.kubectl_ok(&["get", "pods", "-l", "app=agent", "-o", "json"], None)
            .await,
    );
    assert_eq!(agent["items"].as_array().unwrap().len(), 1);
    assert_eq!(agent["items"][0]["spec"]["nodeName"], "kubesim-node");
    let job_pods = json(
        &s.kubectl_ok(&["get", "pods", "-l", "job-name=once", "-o", "json"], None)
            .await,
    );
    let phases: Vec<&str> = job_pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"]["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["Succeeded", "Succeeded"]);
    s.kubectl_ok(&["scale", "statefulset/db", "--replicas=1"], None)
        .await;
    s.kubectl_ok(&["wait", "--for=delete", "pod/db-1", "--timeout=20s"], None)
        .await;
    s.sim.shutdown().await;
}
