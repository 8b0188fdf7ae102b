//! Admission as a default kube-apiserver runs it, seen through the real
//! kubectl: Pod Security, ResourceQuota, LimitRange and ServiceAccount.

mod common;

use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{}}}\n",
        labels.join(", ")
    )
}

const PRIVILEGED_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: app
    image: busybox:1.36
    securityContext: {privileged: true}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_pod_is_refused_by_enforce_restricted_with_the_real_message() {
    let s = common::start(kubesim::Config::default()).await;
    let ns = namespace(
        "locked",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    s.kubectl_ok(&["apply", "-f", "-"], Some(&ns)).await;
    let out = s
        .kubectl(&["-n", "locked", "create", "-f", "-"], Some(PRIVILEGED_POD))
        .await;
    assert!(!out.ok, "a privileged pod must be refused: {}", out.stdout);
    assert!(
        out.stderr.contains(
            "pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": \
             allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             privileged (container \"app\" must not set securityContext.privileged=true), \
             runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        ),
        "{}",
        out.stderr
    );
    // The same pod is fine where no level is enforced.
    s.kubectl_ok(&["create", "-f", "-"], Some(PRIVILEGED_POD))
        .await;
    s.sim.shutdown().await;
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_answers_warnings_for_workload_templates() {
    let s = common::start(kubesim::Config::default()).await;
    let ns = namespace(
        "warned",
        &[
            ("pod-security.kubernetes.io/enforce", "baseline"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
    );
    s.kubectl_ok(&["apply", "-f", "-"], Some(&ns)).await;
    let out = s
        .kubectl(&["-n", "warned", "apply", "-f", "-"], Some(DEPLOYMENT))
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false)"
        ),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_refuses_what_exceeds_it_and_reports_usage() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(&namespace("q", &[])))
        .await;
    let quota = r#"
apiVersion: v1
kind: ResourceQuota
metadata: {name: small}
spec: {hard: {pods: "1", configmaps: "3", requests.cpu: "1"}}
"#;
    s.kubectl_ok(&["-n", "q", "apply", "-f", "-"], Some(quota))
        .await;
    let pod = |name: &str, cpu: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    resources: {{requests: {{cpu: {cpu}}}}}\n"
        )
    };
    // A compute quota requires the request to be set.
    let bare = "apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec:\n  containers: [{name: app, image: busybox}]\n";
    let out = s
        .kubectl(&["-n", "q", "create", "-f", "-"], Some(bare))
        .await;
    assert!(
        out.stderr.contains(
            "pods \"bare\" is forbidden: failed quota: small: must specify requests.cpu for: app"
        ),
        "{}",
        out.stderr
    );
    let out = s
        .kubectl(
            &["-n", "q", "create", "-f", "-"],
            Some(&pod("big", "1500m")),
        )
        .await;
    assert!(
        out.stderr.contains(
            "pods \"big\" is forbidden: exceeded quota: small, requested: requests.cpu=1500m, used: requests.cpu=0, limited: requests.cpu=1"
        ),
        "{}",
        out.stderr
    );
    s.kubectl_ok(&["-n", "q", "create", "-f", "-"], Some(&pod("one", "500m")))
        .await;
    let out = s
        .kubectl(&["-n", "q", "create", "-f", "-"], Some(&pod("two", "100m")))
        .await;
    assert!(
        out.stderr.contains(
            "pods \"two\" is forbidden: exceeded quota: small, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{}",
        out.stderr
    );
    // The quota's status follows what is stored (kube-root-ca.crt counts too).
    let q = json(
        &s.kubectl_ok(
            &["-n", "q", "get", "resourcequota", "small", "-o", "json"],
            None,
        )
        .await,
    );
    assert_eq!(q["status"]["used"]["pods"], "1");
    assert_eq!(q["status"]["used"]["requests.cpu"], "500m");
    assert_eq!(q["status"]["used"]["configmaps"], "1");
    assert_eq!(q["status"]["hard"]["requests.cpu"], "1");
    s.kubectl_ok(&["-n", "q", "delete", "pod", "one"], None)
        .await;
    let q = json(
        &s.kubectl_ok(
            &["-n", "q", "get", "resourcequota", "small", "-o", "json"],
            None,
        )
        .await,
    );
    assert_eq!(q["status"]["used"]["pods"], "0");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_range_defaults_and_limits_pods() {
    let s = common::start(kubesim::Config::default()).await;
    let lr = r#"
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 512Mi}
    defaultRequest: {cpu: 100m}
    max: {cpu: "2"}
"#;
    s.kubectl_ok(&["apply", "-f", "-"], Some(lr)).await;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers: [{name: app, image: busybox}]\n";
    s.kubectl_ok(&["create", "-f", "-"], Some(pod)).await;
    let p = json(
        &s.kubectl_ok(&["get", "pod", "plain", "-o", "json"], None)
            .await,
    );
    let r = &p["spec"]["containers"][0]["resources"];
    assert_eq!(r["limits"]["cpu"], "500m");
    assert_eq!(r["limits"]["memory"], "512Mi");
    assert_eq!(r["requests"]["cpu"], "100m");
    // defaultRequest.memory was defaulted from default.memory on the LimitRange.
    assert_eq!(r["requests"]["memory"], "512Mi");
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app"
    );
    let big = "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    resources: {limits: {cpu: \"4\"}}\n";
    let out = s.kubectl(&["create", "-f", "-"], Some(big)).await;
    assert!(
        out.stderr.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 2, but limit is 4"
        ),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_namespaces_get_the_default_service_account_and_root_ca() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(&namespace("fresh", &[])))
        .await;
    s.kubectl_ok(&["-n", "fresh", "get", "serviceaccount", "default"], None)
        .await;
    let cm = json(
        &s.kubectl_ok(
            &[
                "-n",
                "fresh",
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-o",
                "json",
            ],
            None,
        )
        .await,
    );
    assert!(
        cm["data"]["ca.crt"]
            .as_str()
            .unwrap()
            .contains("CERTIFICATE")
    );
    // Pods run as the default ServiceAccount, with the API token mounted.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: busybox}]\n";
    s.kubectl_ok(&["-n", "fresh", "create", "-f", "-"], Some(pod))
        .await;
    let p = json(
        &s.kubectl_ok(&["-n", "fresh", "get", "pod", "p", "-o", "json"], None)
            .await,
    );
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    // A named ServiceAccount must exist.
    let other = "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec:\n  serviceAccountName: robot\n  containers: [{name: app, image: busybox}]\n";
    let out = s
        .kubectl(&["-n", "fresh", "create", "-f", "-"], Some(other))
        .await;
    assert!(
        out.stderr.contains(
            "pods \"q\" is forbidden: error looking up service account fresh/robot: serviceaccount \"robot\" not found"
        ),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}

/// Polls `kubectl get ... -o json` until `done` accepts the object.
async fn until(s: &common::Sim, args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let out = s.kubectl(args, None).await;
        if out.ok {
            let v = json(&out.stdout);
            if done(&v) {
                return v;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("condition never met for kubectl {args:?}");
}

fn condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pod_shows_as_replica_failure_and_the_deployment_stays_unavailable() {
    let s = common::start(kubesim::Config::default()).await;
    let ns = namespace(
        "strict",
        &[
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
    );
    s.kubectl_ok(&["apply", "-f", "-"], Some(&ns)).await;
    // The Deployment itself is admitted, with the warning.
    let out = s
        .kubectl(&["-n", "strict", "apply", "-f", "-"], Some(DEPLOYMENT))
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Warning: would violate PodSecurity \"restricted:latest\""),
        "{}",
        out.stderr
    );
    let rs = until(
        &s,
        &[
            "-n",
            "strict",
            "get",
            "replicasets",
            "-l",
            "app=web",
            "-o",
            "json",
        ],
        |l| {
            l["items"]
                .as_array()
                .is_some_and(|i| !i.is_empty() && condition(&i[0], "ReplicaFailure").is_some())
        },
    )
    .await;
    let rs = &rs["items"][0];
    let failure = condition(rs, "ReplicaFailure").unwrap();
    assert_eq!(failure["status"], "True");
    assert_eq!(failure["reason"], "FailedCreate");
    let rs_name = rs["metadata"]["name"].as_str().unwrap();
    assert!(
        failure["message"].as_str().unwrap().starts_with(&format!(
            "pods \"{rs_name}-\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
        )),
        "{failure}"
    );
    let d = until(
        &s,
        &["-n", "strict", "get", "deployment", "web", "-o", "json"],
        |d| condition(d, "ReplicaFailure").is_some(),
    )
    .await;
    assert_eq!(condition(&d, "Available").unwrap()["status"], "False");
    assert_eq!(d["status"]["availableReplicas"], Value::Null);
    let pods = json(
        &s.kubectl_ok(&["-n", "strict", "get", "pods", "-o", "json"], None)
            .await,
    );
    assert_eq!(pods["items"], serde_json::json!([]));
    // The event the ReplicaSet controller records, as `kubectl describe` shows it.
    let events = json(
        &s.kubectl_ok(&["-n", "strict", "get", "events", "-o", "json"], None)
            .await,
    );
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "FailedCreate"
                && e["type"] == "Warning"
                && e["involvedObject"]["name"] == rs_name),
        "{events}"
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_run_pods_that_quota_counts() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(&namespace("apps", &[])))
        .await;
    let quota =
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {pods: \"2\"}}\n";
    s.kubectl_ok(&["-n", "apps", "apply", "-f", "-"], Some(quota))
        .await;
    let three = DEPLOYMENT.replace("replicas: 1", "replicas: 3");
    s.kubectl_ok(&["-n", "apps", "apply", "-f", "-"], Some(&three))
        .await;
    let pods = until(&s, &["-n", "apps", "get", "pods", "-o", "json"], |l| {
        l["items"]
            .as_array()
            .is_some_and(|i| i.len() == 2 && i.iter().all(|p| p["status"]["phase"] == "Running"))
    })
    .await;
    let pod = &pods["items"][0];
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["nodeName"], "kubesim-node");
    assert!(pod["metadata"]["labels"]["pod-template-hash"].is_string());
    let rs = until(&s, &["-n", "apps", "get", "rs", "-o", "json"], |l| {
        l["items"][0]["status"]["readyReplicas"] == 2
            && condition(&l["items"][0], "ReplicaFailure").is_some()
    })
    .await;
    let failure = condition(&rs["items"][0], "ReplicaFailure").unwrap();
    assert!(
        failure["message"].as_str().unwrap().ends_with(
            "is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        ),
        "{failure}"
    );
    // Scaling down within the quota clears the failure and the rollout completes.
    s.kubectl_ok(
        &["-n", "apps", "scale", "deployment", "web", "--replicas=2"],
        None,
    )
    .await;
    s.kubectl_ok(
        &[
            "-n",
            "apps",
            "rollout",
            "status",
            "deployment/web",
            "--timeout=20s",
        ],
        None,
    )
    .await;
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_grow_only_when_their_storage_class_allows_expansion() {
    let s = common::start(kubesim::Config::default()).await;
    let classes = json(
        &s.kubectl_ok(&["get", "storageclass", "-o", "json"], None)
            .await,
    );
    let class = |n: &str| {
        classes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["metadata"]["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        class("standard")["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(class("standard")["allowVolumeExpansion"], true);
    assert_eq!(class("fixed")["allowVolumeExpansion"], false);
    let pvc = |name: &str, class: Option<&str>, size: &str| {
        let class = class
            .map(|c| format!("  storageClassName: {c}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n"
        )
    };
    s.kubectl_ok(&["apply", "-f", "-"], Some(&pvc("grows", None, "1Gi")))
        .await;
    s.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&pvc("stays", Some("fixed"), "1Gi")),
    )
    .await;
    let grows = until(&s, &["get", "pvc", "grows", "-o", "json"], |p| {
        p["status"]["phase"] == "Bound"
    })
    .await;
    assert_eq!(grows["spec"]["storageClassName"], "standard");
    s.kubectl_ok(&["apply", "-f", "-"], Some(&pvc("grows", None, "2Gi")))
        .await;
    until(&s, &["get", "pvc", "grows", "-o", "json"], |p| {
        p["status"]["capacity"]["storage"] == "2Gi"
    })
    .await;
    until(&s, &["get", "pvc", "stays", "-o", "json"], |p| {
        p["status"]["phase"] == "Bound"
    })
    .await;
    let out = s
        .kubectl(
            &["apply", "-f", "-"],
            Some(&pvc("stays", Some("fixed"), "2Gi")),
        )
        .await;
    assert!(
        out.stderr.contains(
            "persistentvolumeclaims \"stays\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
        ),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_claim_templates_compare_without_type_meta() {
    let s = common::start(kubesim::Config::default()).await;
    let sts = |type_meta: &str| {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec:\n      containers: [{{name: db, image: postgres:16}}]\n  volumeClaimTemplates:\n  - {type_meta}metadata: {{name: data}}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {{requests: {{storage: 1Gi}}}}\n"
        )
    };
    s.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&sts("")))
        .await;
    // The same templates with apiVersion/kind spelled out are not a change
    // to an immutable field.
    s.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&sts(
            "apiVersion: v1\n    kind: PersistentVolumeClaim\n    ",
        )),
    )
    .await;
    let bigger = sts("").replace("storage: 1Gi", "storage: 5Gi");
    let out = s
        .kubectl(&["apply", "--server-side", "-f", "-"], Some(&bigger))
        .await;
    assert!(
        out.stderr
            .contains("updates to statefulset spec for fields other than"),
        "{}",
        out.stderr
    );
    s.sim.shutdown().await;
}
