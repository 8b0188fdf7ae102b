//! `kubectl get` prints the server's Table columns: built-in kinds with
//! kubectl's usual columns (`-o wide` adds the priority-1 ones), custom
//! resources with their CRD's `additionalPrinterColumns` (the real Caelus
//! CRDs from deploy/chart/crds), `includeObject`, and Table watches.

mod common;

use serde_json::Value;

const WORKLOADS: &str = r#"
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
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1", b: "2"}
"#;

/// The header line's words (multi-word headers split, as kubectl pads with spaces).
fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The words of the row whose NAME (or, with `-A`, second word) is `name`.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|w| {
            w.first().map(String::as_str) == Some(name)
                || w.get(1).map(String::as_str) == Some(name)
        })
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
}

fn words(s: &[&str]) -> Vec<String> {
    s.iter().map(|w| w.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_kinds_print_kubectls_columns() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(WORKLOADS)).await;
    s.kubectl_ok(
        &["rollout", "status", "deployment/web", "--timeout=20s"],
        None,
    )
    .await;

    let out = s.kubectl_ok(&["get", "deploy"], None).await;
    assert_eq!(
        header(&out),
        words(&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
        "{out}"
    );
    assert_eq!(
        row(&out, "web")[..4],
        words(&["web", "2/2", "2", "2"]),
        "{out}"
    );

    let out = s.kubectl_ok(&["get", "deploy", "-o", "wide"], None).await;
    assert_eq!(
        header(&out),
        words(&[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]),
        "{out}"
    );
    assert_eq!(
        row(&out, "web")[5..],
        words(&["web", "nginx:1.27", "app=web"]),
        "{out}"
    );

    let out = s.kubectl_ok(&["get", "pods", "-o", "wide"], None).await;
    assert_eq!(
        header(&out),
        words(&[
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]),
        "{out}"
    );
    let pod = out
        .lines()
        .find(|l| l.starts_with("web-"))
        .unwrap_or_else(|| panic!("no web pod:\n{out}"));
    let cells: Vec<&str> = pod.split_whitespace().collect();
    assert_eq!(cells[1..4], ["1/1", "Running", "0"], "{out}");
    assert_eq!(cells[6..], ["kubesim-node", "<none>", "<none>"], "{out}");

    let out = s.kubectl_ok(&["get", "svc", "web"], None).await;
    assert_eq!(
        header(&out),
        words(&[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]),
        "{out}"
    );
    let svc = row(&out, "web");
    assert_eq!(svc[1], "ClusterIP", "{out}");
    assert!(svc[2].parse::<std::net::Ipv4Addr>().is_ok(), "{out}");
    assert_eq!(svc[3..5], words(&["<none>", "80/TCP"]), "{out}");

    let out = s.kubectl_ok(&["get", "cm"], None).await;
    assert_eq!(header(&out), words(&["NAME", "DATA", "AGE"]), "{out}");
    assert_eq!(row(&out, "settings")[1], "2", "{out}");
    assert_eq!(row(&out, "kube-root-ca.crt")[1], "1", "{out}");

    s.kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=user=u",
        ],
        None,
    )
    .await;
    let out = s.kubectl_ok(&["get", "secret", "creds"], None).await;
    assert_eq!(
        header(&out),
        words(&["NAME", "TYPE", "DATA", "AGE"]),
        "{out}"
    );
    assert_eq!(row(&out, "creds")[1..3], words(&["Opaque", "1"]), "{out}");

    let out = s.kubectl_ok(&["get", "ns", "default"], None).await;
    assert_eq!(header(&out), words(&["NAME", "STATUS", "AGE"]), "{out}");
    assert_eq!(row(&out, "default")[1], "Active", "{out}");

    // --sort-by asks for whole objects (includeObject=Object) and still prints the columns.
    let out = s
        .kubectl_ok(&["get", "cm", "--sort-by=.metadata.name"], None)
        .await;
    assert_eq!(header(&out), words(&["NAME", "DATA", "AGE"]), "{out}");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_answers_carry_the_requested_object() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(WORKLOADS)).await;
    let client = s.client().await;
    let get = |path: &str| {
        http::Request::get(path)
            .header(
                "Accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .body(Vec::new())
            .unwrap()
    };
    let table: Value = serde_json::from_str(
        &client
            .request_text(get("/api/v1/namespaces/default/configmaps"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["columnDefinitions"][0]["name"], "Name");
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    assert_eq!(table["columnDefinitions"][1]["name"], "Data");
    assert!(table["metadata"]["resourceVersion"].is_string(), "{table}");
    let settings = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "settings")
        .unwrap();
    assert_eq!(settings["cells"][1], 2);
    // The default, includeObject=Metadata: PartialObjectMetadata.
    assert_eq!(settings["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(settings["object"]["metadata"]["name"], "settings");
    assert!(settings["object"].get("data").is_none());

    let one: Value = serde_json::from_str(
        &client
            .request_text(get(
                "/api/v1/namespaces/default/configmaps/settings?includeObject=Object",
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    assert_eq!(one["rows"][0]["object"]["kind"], "ConfigMap");
    assert_eq!(one["rows"][0]["object"]["data"]["a"], "1");

    let none: Value = serde_json::from_str(
        &client
            .request_text(get(
                "/apis/apps/v1/namespaces/default/deployments?includeObject=None",
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(none["rows"][0]["cells"][0], "web");
    assert!(none["rows"][0].get("object").is_none(), "{none}");
    s.sim.shutdown().await;
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      additionalPrinterColumns:
        - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
        - {name: Size, type: integer, jsonPath: .spec.size}
        - {name: First, type: string, jsonPath: '.spec.parts[0].name', priority: 1}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
    - name: v2
      served: true
      storage: false
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec:
  size: 3
  parts: [{name: gear}, {name: spring}]
status:
  conditions: [{type: Progressing, status: "True"}, {type: Ready, status: "False"}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_print_their_crds_columns() {
    let s = common::start(kubesim::Config::default()).await;
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/chart/crds");
    s.kubectl_ok(&["apply", "-f", crds], None).await;
    s.kubectl_ok(&["create", "namespace", "acme"], None).await;
    let deployment = r#"
apiVersion: caelus.io/v1alpha1
kind: CaelusDeployment
metadata: {name: shop, namespace: acme}
spec: {tenant: acme, product: nginx, version: 1.2.3, desiredState: present}
"#;
    s.kubectl_ok(&["apply", "-f", "-"], Some(deployment)).await;
    s.kubectl_ok(
        &[
            "patch",
            "caelusdeployment",
            "shop",
            "-n",
            "acme",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Ready","readyObjects":"3/4"}}"#,
        ],
        None,
    )
    .await;
    let out = s
        .kubectl_ok(&["get", "caelusdeployments", "-A"], None)
        .await;
    assert_eq!(
        header(&out),
        words(&[
            "NAMESPACE",
            "NAME",
            "TENANT",
            "PRODUCT",
            "VERSION",
            "PHASE",
            "READY",
            "AGE"
        ]),
        "{out}"
    );
    assert_eq!(
        row(&out, "shop")[..7],
        words(&["acme", "shop", "acme", "nginx", "1.2.3", "Ready", "3/4"]),
        "{out}"
    );

    let template = r#"
apiVersion: caelus.io/v1alpha1
kind: CaelusTemplate
metadata: {name: nginx-1.2.3}
spec: {product: nginx, version: 1.2.3, chartDigest: "sha256:abc"}
"#;
    s.kubectl_ok(&["apply", "-f", "-"], Some(template)).await;
    s.kubectl_ok(
        &[
            "patch",
            "caelustemplate",
            "nginx-1.2.3",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"lifecycle":"published"}}"#,
        ],
        None,
    )
    .await;
    let out = s.kubectl_ok(&["get", "caelustemplates"], None).await;
    // Declared columns without an Age: NAME is prepended, no AGE added.
    assert_eq!(
        header(&out),
        words(&["NAME", "PRODUCT", "VERSION", "LIFECYCLE", "DIGEST"]),
        "{out}"
    );
    assert_eq!(
        row(&out, "nginx-1.2.3"),
        words(&["nginx-1.2.3", "nginx", "1.2.3", "published", "sha256:abc"]),
        "{out}"
    );

    // A filter JSONPath, an integer column, a priority-1 column only with
    // -o wide, and a version without columns (NAME and AGE).
    s.kubectl_ok(&["apply", "-f", "-"], Some(WIDGET_CRD)).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(WIDGET)).await;
    let out = s.kubectl_ok(&["get", "widgets"], None).await;
    assert_eq!(header(&out), words(&["NAME", "READY", "SIZE"]), "{out}");
    assert_eq!(row(&out, "w1"), words(&["w1", "False", "3"]), "{out}");
    let out = s.kubectl_ok(&["get", "widgets", "-o", "wide"], None).await;
    assert_eq!(
        header(&out),
        words(&["NAME", "READY", "SIZE", "FIRST"]),
        "{out}"
    );
    assert_eq!(row(&out, "w1")[3], "gear", "{out}");
    let out = s.kubectl_ok(&["get", "widgets.v2.example.com"], None).await;
    assert_eq!(header(&out), words(&["NAME", "AGE"]), "{out}");
    assert_eq!(row(&out, "w1").len(), 2, "{out}");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_rows_with_the_columns() {
    let s = common::start(kubesim::Config::default()).await;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["get", "configmaps", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {k: v, l: w, m: x}\n";
    s.kubectl_ok(&["create", "-f", "-"], Some(cm)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(header(&stdout), words(&["NAME", "DATA", "AGE"]), "{stdout}");
    assert_eq!(row(&stdout, "watched")[1], "3", "{stdout}");
    // The header is printed once.
    assert_eq!(stdout.matches("NAME").count(), 1, "{stdout}");
    s.sim.shutdown().await;
}

const MORE_KINDS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: pg, image: postgres:17}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {nodeSelector: {kubernetes.io/os: linux}, containers: [{name: a, image: busybox}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: j, image: busybox}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: nginx
  tls: [{hosts: [a.example.com]}]
  rules: [{host: a.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_builtin_kinds_print_their_columns() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(MORE_KINDS)).await;
    for w in ["statefulset/db", "daemonset/agent"] {
        s.kubectl_ok(&["rollout", "status", w, "--timeout=20s"], None)
            .await;
    }
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
    let get = |args: &'static [&'static str]| s.kubectl_ok(args, None);

    let out = get(&["get", "sts"]).await;
    assert_eq!(header(&out), words(&["NAME", "READY", "AGE"]), "{out}");
    assert_eq!(row(&out, "db")[1], "1/1", "{out}");

    let out = get(&["get", "ds"]).await;
    assert_eq!(
        header(&out),
        words(&[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ]),
        "{out}"
    );
    assert_eq!(
        row(&out, "agent")[1..7],
        words(&["1", "1", "1", "1", "1", "kubernetes.io/os=linux"]),
        "{out}"
    );

    let out = get(&["get", "jobs"]).await;
    assert_eq!(
        header(&out),
        words(&["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]),
        "{out}"
    );
    assert_eq!(
        row(&out, "once")[1..3],
        words(&["Complete", "1/1"]),
        "{out}"
    );
    let out = get(&["get", "pods", "-l", "job-name=once"]).await;
    assert!(
        out.lines().nth(1).unwrap_or_default().contains("Completed"),
        "{out}"
    );

    let out = get(&["get", "pvc"]).await;
    assert_eq!(
        header(&out),
        words(&[
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]),
        "{out}"
    );
    let pvc = row(&out, "data-db-0");
    assert_eq!(pvc[1], "Bound", "{out}");
    assert_eq!(
        pvc[3..7],
        words(&["1Gi", "RWO", "standard", "<unset>"]),
        "{out}"
    );

    let out = get(&["get", "sa", "default"]).await;
    assert_eq!(header(&out), words(&["NAME", "SECRETS", "AGE"]), "{out}");

    let out = get(&["get", "ingress"]).await;
    assert_eq!(
        header(&out),
        words(&["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]),
        "{out}"
    );
    assert_eq!(
        row(&out, "web")[1..3],
        words(&["nginx", "a.example.com"]),
        "{out}"
    );
    assert!(out.contains("80, 443"), "{out}");

    let out = get(&["get", "events"]).await;
    assert_eq!(
        header(&out)[..5],
        words(&["LAST", "SEEN", "TYPE", "REASON", "OBJECT"]),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("SuccessfulCreate") && l.contains("job/once")),
        "{out}"
    );
    s.sim.shutdown().await;
}
