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
