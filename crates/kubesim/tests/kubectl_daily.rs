//! The real kubectl: the everyday commands the other suites leave out —
//! client-side (three-way) `apply`, `apply --server-side` conflicts and
//! `--force-conflicts`, `diff`, `replace`, `edit`, and `get` output formats
//! (`yaml`, `jsonpath`, `custom-columns`, `--sort-by`), and aggregated discovery.

mod common;

use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

const CM_V1: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels: {app: web, tier: front}
data: {a: "1", b: "2"}
"#;

/// kubectl's client-side apply is a three-way merge of the last applied
/// configuration (the `kubectl.kubernetes.io/last-applied-configuration`
/// annotation), the new manifest and the live object: what the manifest
/// dropped is removed, what others added stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_is_a_three_way_merge() {
    let s = common::start(kubesim::Config::default()).await;
    let out = s.kubectl_ok(&["apply", "-f", "-"], Some(CM_V1)).await;
    assert!(out.contains("configmap/cfg created"), "{out}");
    // Someone else adds a label and a key.
    s.kubectl_ok(&["label", "cm", "cfg", "owner=ops"], None)
        .await;
    s.kubectl_ok(
        &[
            "patch",
            "cm",
            "cfg",
            "--type=merge",
            "-p",
            r#"{"data":{"extra":"x"}}"#,
        ],
        None,
    )
    .await;
    // The manifest drops label tier and key b, and changes a.
    let v2 = CM_V1
        .replace(", tier: front", "")
        .replace(r#"{a: "1", b: "2"}"#, r#"{a: "10"}"#);
    let out = s.kubectl_ok(&["apply", "-f", "-"], Some(&v2)).await;
    assert!(out.contains("configmap/cfg configured"), "{out}");
    let cm = json(
        &s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"], None)
            .await,
    );
    assert_eq!(cm["data"], serde_json::json!({"a": "10", "extra": "x"}));
    let labels = &cm["metadata"]["labels"];
    assert_eq!(labels, &serde_json::json!({"app": "web", "owner": "ops"}));
    let last: Value = serde_json::from_str(
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("last-applied annotation"),
    )
    .unwrap();
    assert_eq!(last["data"], serde_json::json!({"a": "10"}));
    // Applying the same manifest again changes nothing.
    let out = s.kubectl_ok(&["apply", "-f", "-"], Some(&v2)).await;
    assert!(out.contains("configmap/cfg unchanged"), "{out}");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_and_force_conflicts() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(
        &["apply", "--server-side", "--field-manager=alice", "-f", "-"],
        Some(CM_V1),
    )
    .await;
    let theirs = CM_V1.replace(r#"a: "1""#, r#"a: "9""#);
    let out = s
        .kubectl(
            &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
            Some(&theirs),
        )
        .await;
    assert!(!out.ok, "a conflicting apply must fail");
    assert!(
        out.stderr.contains("Apply failed with 1 conflict")
            && out.stderr.contains(r#"conflict with "alice": .data.a"#),
        "{}",
        out.stderr
    );
    // The same values from another manager are no conflict: bob co-owns them.
    s.kubectl_ok(
        &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
        Some(CM_V1),
    )
    .await;
    let out = s
        .kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--field-manager=bob",
                "--force-conflicts",
                "-f",
                "-",
            ],
            Some(&theirs),
        )
        .await;
    assert!(out.contains("configmap/cfg serverside-applied"), "{out}");
    let cm = json(
        &s.kubectl_ok(
            &["get", "cm", "cfg", "-o", "json", "--show-managed-fields"],
            None,
        )
        .await,
    );
    assert_eq!(cm["data"]["a"], "9");
    let owns_a = |m: &str| {
        cm["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["manager"] == m && e["fieldsV1"]["f:data"]["f:a"].is_object())
    };
    assert!(
        owns_a("bob") && !owns_a("alice"),
        "{}",
        cm["metadata"]["managedFields"]
    );
    s.sim.shutdown().await;
}

/// `kubectl diff` dry-runs the apply on the server and diffs the answer:
/// exit 1 with the change, exit 0 when there is none; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_replace_and_edit() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(CM_V1)).await;
    let same = s.kubectl(&["diff", "-f", "-"], Some(CM_V1)).await;
    assert!(
        same.ok && same.stdout.is_empty(),
        "diff of the same: ok={} {}{}",
        same.ok,
        same.stdout,
        same.stderr
    );
    let changed = CM_V1.replace(r#"b: "2""#, r#"b: "3""#);
    let diff = s.kubectl(&["diff", "-f", "-"], Some(&changed)).await;
    assert!(!diff.ok, "a difference exits 1");
    assert!(
        diff.stdout.contains(r#"-  b: "2""#) && diff.stdout.contains(r#"+  b: "3""#),
        "{}\n{}",
        diff.stdout,
        diff.stderr
    );
    let cm = json(
        &s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"], None)
            .await,
    );
    assert_eq!(cm["data"]["b"], "2", "diff stored nothing");
    // Server-side: the dry-run apply meets kubectl-client-side-apply's
    // ownership of .data.b, as on a real server, unless forced.
    let sdiff = s
        .kubectl(&["diff", "--server-side", "-f", "-"], Some(&changed))
        .await;
    assert!(
        sdiff
            .stderr
            .contains(r#"conflict with "kubectl-client-side-apply" using v1: .data.b"#),
        "{}",
        sdiff.stderr
    );
    let sdiff = s
        .kubectl(
            &["diff", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&changed),
        )
        .await;
    assert!(
        !sdiff.ok && sdiff.stdout.contains(r#"+  b: "3""#),
        "{}",
        sdiff.stdout
    );

    // replace: the whole object, keys missing from the manifest go away.
    let replaced = CM_V1.replace(r#"{a: "1", b: "2"}"#, r#"{c: "3"}"#);
    let out = s.kubectl_ok(&["replace", "-f", "-"], Some(&replaced)).await;
    assert!(out.contains("configmap/cfg replaced"), "{out}");
    let cm = json(
        &s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"], None)
            .await,
    );
    assert_eq!(cm["data"], serde_json::json!({"c": "3"}));
    let out = s
        .kubectl(
            &["replace", "-f", "-"],
            Some(&replaced.replace("name: cfg", "name: nope")),
        )
        .await;
    assert!(!out.ok && out.stderr.contains("NotFound"), "{}", out.stderr);

    // edit: kubectl hands the object to $KUBE_EDITOR and PUTs the result.
    let editor = s.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/c: \"3\"/c: \"edited\"/' \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["edit", "cm", "cfg"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("configmap/cfg edited"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = json(
        &s.kubectl_ok(&["get", "cm", "cfg", "-o", "json"], None)
            .await,
    );
    assert_eq!(cm["data"]["c"], "edited");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_output_formats_and_sorting() {
    let s = common::start(kubesim::Config::default()).await;
    for (name, size) in [("b-mid", "5"), ("a-big", "9"), ("c-small", "1")] {
        s.kubectl_ok(
            &[
                "create",
                "configmap",
                name,
                &format!("--from-literal=size={size}"),
            ],
            None,
        )
        .await;
        s.kubectl_ok(&["label", "cm", name, &format!("size={size}")], None)
            .await;
    }
    let yaml = s
        .kubectl_ok(&["get", "cm", "a-big", "-o", "yaml"], None)
        .await;
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("  size: \"9\""),
        "{yaml}"
    );
    let jp = s
        .kubectl_ok(
            &[
                "get",
                "cm",
                "-l",
                "size",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.data.size};{end}",
            ],
            None,
        )
        .await;
    assert_eq!(jp, "a-big=9;b-mid=5;c-small=1;");
    let sorted = s
        .kubectl_ok(
            &[
                "get",
                "cm",
                "-l",
                "size",
                "--sort-by=.data.size",
                "-o",
                "custom-columns=NAME:.metadata.name,SIZE:.data.size",
            ],
            None,
        )
        .await;
    let rows: Vec<Vec<&str>> = sorted
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["NAME", "SIZE"],
            vec!["c-small", "1"],
            vec!["b-mid", "5"],
            vec!["a-big", "9"]
        ],
        "{sorted}"
    );
    let names = s
        .kubectl_ok(
            &[
                "get",
                "cm",
                "-l",
                "size",
                "--sort-by=.metadata.name",
                "-o",
                "name",
            ],
            None,
        )
        .await;
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["configmap/a-big", "configmap/b-mid", "configmap/c-small"]
    );
    s.sim.shutdown().await;
}

/// kubectl v1.32 asks `/api` and `/apis` for aggregated discovery
/// (`apidiscovery.k8s.io/v2`) and, given it, needs no per-group-version
/// request; what it learns matches the plain documents, CRDs included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_aggregated() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(
        &["apply", "-f", "-"],
        Some(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
        ),
    )
    .await;
    let client = s.client().await;
    let req = http::Request::get("/apis")
        .header(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let doc: Value = client.request(req).await.unwrap();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    let example = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "example.com")
        .expect("the CRD's group");
    let widgets = &example["versions"][0]["resources"][0];
    assert_eq!(widgets["resource"], "widgets");
    assert_eq!(widgets["scope"], "Cluster");
    assert_eq!(
        widgets["responseKind"],
        serde_json::json!({"group": "example.com", "version": "v1", "kind": "Widget"})
    );
    assert_eq!(widgets["subresources"][0]["subresource"], "status");

    // kubectl takes it: no per-group-version discovery request follows.
    let out = s
        .kubectl(&["get", "deployments,widgets", "-A", "-v=6"], None)
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains("/apis?timeout") && !out.stderr.contains("/apis/apps/v1?timeout"),
        "{}",
        out.stderr
    );
    let listed = s.kubectl_ok(&["api-resources", "-o", "name"], None).await;
    for r in [
        "deployments.apps",
        "widgets.example.com",
        "configmaps",
        "namespaces",
    ] {
        assert!(listed.lines().any(|l| l == r), "{r} missing from {listed}");
    }
    let short = s.kubectl_ok(&["get", "wd", "-o", "name"], None).await;
    assert!(short.is_empty(), "{short}");
    s.sim.shutdown().await;
}

/// `apply --prune` deletes the labelled objects a manifest no longer has;
/// kubectl resolves its default allowlist (ReplicationControllers included)
/// through discovery first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_prune_deletes_what_the_manifest_dropped() {
    let s = common::start(kubesim::Config::default()).await;
    let both = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {app: p}}\n---\n\
                apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, labels: {app: p}}\n";
    let only_a = both.split("---").next().unwrap();
    s.kubectl_ok(&["apply", "--prune", "-l", "app=p", "-f", "-"], Some(both))
        .await;
    let out = s
        .kubectl_ok(
            &["apply", "--prune", "-l", "app=p", "-f", "-"],
            Some(only_a),
        )
        .await;
    assert!(out.contains("configmap/b pruned"), "{out}");
    let left = s
        .kubectl_ok(&["get", "cm", "-l", "app=p", "-o", "name"], None)
        .await;
    assert_eq!(left.trim(), "configmap/a");
    s.sim.shutdown().await;
}

/// `kubectl autoscale` (v1.32) writes an autoscaling/v1 HPA; the API server
/// stores it as v2 (`targetCPUUtilizationPercentage` becomes a CPU
/// `Utilization` metric) and serves both, converting on every read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscale_writes_v1_and_reads_as_v2() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["create", "deployment", "web", "--image=nginx"], None)
        .await;
    let out = s
        .kubectl_ok(
            &[
                "autoscale",
                "deployment",
                "web",
                "--min=1",
                "--max=3",
                "--cpu-percent=80",
            ],
            None,
        )
        .await;
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/web autoscaled"),
        "{out}"
    );
    let out = s.kubectl_ok(&["get", "hpa"], None).await;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(
        lines[1][..6],
        ["web", "Deployment/web", "cpu: <unknown>/80%", "1", "3", "0"],
        "{out}"
    );
    // kubectl reads the preferred version, v2.
    let v2 = json(
        &s.kubectl_ok(&["get", "hpa", "web", "-o", "json"], None)
            .await,
    );
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        serde_json::json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(v2["spec"]["scaleTargetRef"]["name"], "web");
    // A v2 edit is visible through v1: the CPU metric as the percentage, the
    // metric v1 cannot express in the round-trip annotation.
    s.kubectl_ok(
        &[
            "patch",
            "hpa",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"metrics":[
                {"type":"Pods","pods":{"metric":{"name":"qps"},"target":{"type":"AverageValue","averageValue":"10"}}},
                {"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":60}}}]}}"#,
        ],
        None,
    )
    .await;
    let path = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web";
    let v1 = json(&s.kubectl_ok(&["get", "--raw", path], None).await);
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(v1["spec"]["maxReplicas"], 3);
    assert!(v1["spec"].get("metrics").is_none(), "{v1}");
    assert_eq!(v1["status"]["currentReplicas"], 0);
    let others: Value = serde_json::from_str(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .expect("other metrics annotation"),
    )
    .unwrap();
    assert_eq!(
        others,
        serde_json::json!([{"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}])
    );
    let out = s.kubectl_ok(&["get", "hpa", "web"], None).await;
    assert!(out.contains("<unknown>/10, cpu: <unknown>/60%"), "{out}");
    s.sim.shutdown().await;
}

const TWO_CONTAINERS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: pair}
spec:
  selector: {matchLabels: {app: pair}}
  template:
    metadata: {labels: {app: pair}}
    spec:
      containers:
      - {name: a, image: "nginx:1"}
      - {name: b, image: "redis:1"}
"#;

async fn container_names(s: &common::Sim) -> String {
    s.kubectl_ok(
        &[
            "get",
            "deploy",
            "pair",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}",
        ],
        None,
    )
    .await
}

/// Reordering a list in a manifest: client-side `apply` sends only
/// `$setElementOrder/containers` (the items themselves are unchanged), and
/// the server must follow it (strategic-merge-patch.md, "$setElementOrder").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reorders_lists_with_set_element_order() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(&["apply", "-f", "-"], Some(TWO_CONTAINERS))
        .await;
    assert_eq!(container_names(&s).await, "a b");
    let swapped = TWO_CONTAINERS.replace(
        "      - {name: a, image: \"nginx:1\"}\n      - {name: b, image: \"redis:1\"}",
        "      - {name: b, image: \"redis:1\"}\n      - {name: a, image: \"nginx:1\"}",
    );
    assert_ne!(swapped, TWO_CONTAINERS);
    let out = s.kubectl_ok(&["apply", "-f", "-"], Some(&swapped)).await;
    assert!(out.contains("deployment.apps/pair configured"), "{out}");
    assert_eq!(container_names(&s).await, "b a");
    // kubectl patch with the directive and a new item placed between.
    s.kubectl_ok(
        &[
            "patch",
            "deploy",
            "pair",
            "-p",
            r#"{"spec":{"template":{"spec":{
                "$setElementOrder/containers":[{"name":"b"},{"name":"c"},{"name":"a"}],
                "containers":[{"name":"c","image":"busybox:1"}]}}}}"#,
        ],
        None,
    )
    .await;
    assert_eq!(container_names(&s).await, "b c a");
    s.sim.shutdown().await;
}
