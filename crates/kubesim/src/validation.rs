//! Per-kind defaulting and validation: the subset of the API server's
//! strategies that clients observe (defaults that appear on read, immutable
//! fields and their exact messages).

use serde_json::{Value, json};

use crate::errors::Cause;
use crate::resources::ResourceInfo;

/// Go's `%#v` of a string slice, used in clusterIP messages.
fn go_string_slice(v: &Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| format!("{:?}", s.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    format!("[]string{{{}}}", items.join(", "))
}

fn default_if_missing(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for p in &path[..path.len() - 1] {
        if !cur[*p].is_object() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    let last = path[path.len() - 1];
    if cur.get(last).is_none_or(Value::is_null) {
        cur[last] = value;
    }
}

/// Defaults applied on create and update, like the API server's defaulting.
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) {
    crate::schema::apply_defaults(obj, &mut Vec::new());
    if !info.group.is_empty() && info.crd.is_some() {
        return;
    }
    if let Some(spec) = crate::defaults::template_spec(&info.group, &info.resource, obj) {
        crate::defaults::pod_spec(spec);
    }
    match (info.group.as_str(), info.resource.as_str()) {
        ("", "pods") => crate::defaults::pod(obj),
        ("", "limitranges") => crate::defaults::limit_range(obj),
        ("", "namespaces") => {
            default_if_missing(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            let name = crate::meta::name_of(obj).to_string();
            default_if_missing(
                obj,
                &["metadata", "labels", "kubernetes.io/metadata.name"],
                json!(name),
            );
        }
        ("", "services") => {
            default_if_missing(obj, &["spec", "type"], json!("ClusterIP"));
            default_if_missing(obj, &["spec", "sessionAffinity"], json!("None"));
            crate::defaults::service(obj);
            if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                for p in ports {
                    if p.get("targetPort").is_none() {
                        p["targetPort"] = p["port"].clone();
                    }
                }
            }
        }
        ("apps", "deployments") => {
            default_if_missing(obj, &["spec", "replicas"], json!(1));
            default_if_missing(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default_if_missing(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            default_if_missing(
                obj,
                &["spec", "strategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        ("apps", "statefulsets") => {
            default_if_missing(obj, &["spec", "replicas"], json!(1));
            default_if_missing(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
            default_if_missing(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default_if_missing(
                obj,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default_if_missing(
                obj,
                &["spec", "persistentVolumeClaimRetentionPolicy"],
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        ("apps", "replicasets") => default_if_missing(obj, &["spec", "replicas"], json!(1)),
        ("apps", "daemonsets") => {
            default_if_missing(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default_if_missing(
                obj,
                &["spec", "updateStrategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
            );
        }
        ("batch", "jobs") => {
            default_if_missing(obj, &["spec", "backoffLimit"], json!(6));
            default_if_missing(obj, &["spec", "completions"], json!(1));
            default_if_missing(obj, &["spec", "parallelism"], json!(1));
            default_if_missing(obj, &["spec", "completionMode"], json!("NonIndexed"));
        }
        ("", "persistentvolumeclaims") => {
            default_if_missing(obj, &["spec", "volumeMode"], json!("Filesystem"));
        }
        // pkg/apis/autoscaling/v2/defaults.go: one replica at least, CPU at 80%.
        ("autoscaling", "horizontalpodautoscalers") => {
            default_if_missing(obj, &["spec", "minReplicas"], json!(1));
            if obj["spec"]["metrics"].as_array().is_none_or(Vec::is_empty) {
                obj["spec"]["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]);
            }
        }
        _ => {}
    }
}

/// Status a built-in object has as soon as it is created. The API server
/// serializes the Go status struct, which is never omitted (`omitempty` does
/// not drop structs), and integer fields without `omitempty` — the ones the
/// OpenAPI schema lists as `required` — appear as 0 (k8s.io/api
/// apps/v1, policy/v1, autoscaling/v2 `types.go`). Clients read e.g.
/// `deployment.status.readyReplicas` right after a create; a missing status
/// breaks typed clients that a real cluster never would.
pub fn initial_status(info: &ResourceInfo) -> Option<Value> {
    Some(match (info.group.as_str(), info.resource.as_str()) {
        ("", "namespaces") => json!({"phase": "Active"}),
        ("", "persistentvolumeclaims") => json!({"phase": "Pending"}),
        ("", "persistentvolumes") => json!({"phase": "Pending"}),
        ("", "pods") => json!({"phase": "Pending"}),
        ("", "services") => json!({"loadBalancer": {}}),
        ("", "replicationcontrollers") => json!({"replicas": 0}),
        ("", "resourcequotas") | ("", "nodes") => json!({}),
        ("apps", "deployments") => json!({}),
        ("apps", "statefulsets") | ("apps", "replicasets") => json!({"replicas": 0}),
        ("apps", "daemonsets") => json!({
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }),
        ("batch", "jobs") | ("batch", "cronjobs") => json!({}),
        ("networking.k8s.io", "ingresses") => json!({"loadBalancer": {}}),
        ("policy", "poddisruptionbudgets") => json!({
            "disruptionsAllowed": 0,
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "expectedPods": 0,
        }),
        ("autoscaling", "horizontalpodautoscalers") => json!({"desiredReplicas": 0}),
        _ => return None,
    })
}

/// Create-time validation beyond names.
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = crate::values::validate(info, obj);
    match (info.group.as_str(), info.resource.as_str()) {
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let spec = &obj["spec"];
            let group = spec["group"].as_str().unwrap_or_default();
            let plural = spec["names"]["plural"].as_str().unwrap_or_default();
            if group.is_empty() {
                causes.push(Cause::required("spec.group", ""));
            }
            if plural.is_empty() {
                causes.push(Cause::required("spec.names.plural", ""));
            }
            if spec["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                causes.push(Cause::required("spec.names.kind", ""));
            }
            let expected = format!("{plural}.{group}");
            let name = crate::meta::name_of(obj);
            if !plural.is_empty() && !group.is_empty() && name != expected {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &format!("{name:?}"),
                    "must be spec.names.plural+\".\"+spec.group",
                ));
            }
            if spec["versions"].as_array().is_none_or(Vec::is_empty) {
                causes.push(Cause::invalid(
                    "spec.versions",
                    "null",
                    "must have exactly one version marked as storage version",
                ));
            }
        }
        ("", "services") => {
            if let Some(t) = obj["spec"]["type"].as_str()
                && !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&t)
            {
                causes.push(Cause::not_supported(
                    "spec.type",
                    t,
                    &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
                ));
            }
        }
        ("apps", "deployments")
        | ("apps", "statefulsets")
        | ("apps", "daemonsets")
        | ("apps", "replicasets") => {
            if obj["spec"]["selector"].is_null() {
                causes.push(Cause::required("spec.selector", ""));
            } else {
                let sel = crate::selector::LabelSelector::from_object(&obj["spec"]["selector"]);
                let tmpl = json!({"metadata": {"labels": obj["spec"]["template"]["metadata"]["labels"].clone()}});
                if !sel.matches(&tmpl) {
                    let labels = &obj["spec"]["template"]["metadata"]["labels"];
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &format!(
                            "map[string]string{{{}}}",
                            labels
                                .as_object()
                                .map(|m| m
                                    .iter()
                                    .map(|(k, v)| format!("{k:?}:{v}"))
                                    .collect::<Vec<_>>()
                                    .join(", "))
                                .unwrap_or_default()
                        ),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
        _ => {}
    }
    causes
}

/// Update-time validation: immutable fields, with the API server's messages.
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = crate::values::validate(info, new);
    if crate::meta::is_deleting(old) {
        let old_f = crate::meta::finalizers(old);
        if crate::meta::finalizers(new)
            .iter()
            .any(|f| !old_f.contains(f))
        {
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    match (info.group.as_str(), info.resource.as_str()) {
        ("apps", "statefulsets") => {
            let strip = |v: &Value| {
                let mut s = v["spec"].clone();
                if let Some(m) = s.as_object_mut() {
                    for k in [
                        "replicas",
                        "ordinals",
                        "template",
                        "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                    ] {
                        m.remove(k);
                    }
                    // Templates are PersistentVolumeClaims whose TypeMeta and
                    // status the API server does not compare (they do not
                    // survive conversion to the internal type).
                    if let Some(ts) = m
                        .get_mut("volumeClaimTemplates")
                        .and_then(Value::as_array_mut)
                    {
                        for t in ts {
                            if let Some(t) = t.as_object_mut() {
                                t.remove("apiVersion");
                                t.remove("kind");
                                t.remove("status");
                            }
                        }
                    }
                }
                s
            };
            if strip(old) != strip(new) {
                causes.push(Cause::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        ("", "persistentvolumeclaims") => {
            let storage = |v: &Value| {
                v["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .map(String::from)
            };
            let strip = |v: &Value| {
                let mut s = v["spec"].clone();
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeName");
                    m.remove("volumeAttributesClassName");
                }
                if let Some(req) = s
                    .get_mut("resources")
                    .and_then(|r| r.get_mut("requests"))
                    .and_then(Value::as_object_mut)
                {
                    req.remove("storage");
                }
                s
            };
            if strip(old) != strip(new) {
                causes.push(Cause::forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
            if let (Some(o), Some(n)) = (storage(old), storage(new))
                && parse_quantity(&n) < parse_quantity(&o)
            {
                causes.push(Cause::forbidden(
                    "spec.resources.requests.storage",
                    "field can not be less than previous value",
                ));
            }
        }
        ("batch", "jobs") => {
            if old["spec"]["template"] != new["spec"]["template"] {
                causes.push(Cause::invalid(
                    "spec.template",
                    "core.PodTemplateSpec{...}",
                    "field is immutable",
                ));
            }
            if old["spec"]["completions"] != new["spec"]["completions"] {
                causes.push(Cause::invalid(
                    "spec.completions",
                    &new["spec"]["completions"].to_string(),
                    "field is immutable",
                ));
            }
        }
        ("", "services") => {
            let old_ip = &old["spec"]["clusterIP"];
            let new_ip = &new["spec"]["clusterIP"];
            // An update that omits clusterIP keeps it (as PUT with a cleared
            // field is defaulted back by kubectl); changing it is rejected.
            if old_ip.is_string() && new_ip.is_string() && old_ip != new_ip {
                causes.push(Cause::invalid(
                    "spec.clusterIPs[0]",
                    &go_string_slice(&json!([new_ip])),
                    "may not change once set",
                ));
            }
        }
        ("", "configmaps") | ("", "secrets") if old["immutable"] == json!(true) => {
            let msg = "field is immutable when `immutable` is set";
            if old["data"] != new["data"] {
                causes.push(Cause::forbidden("data", msg));
            }
            if old["binaryData"] != new["binaryData"] && info.resource == "configmaps" {
                causes.push(Cause::forbidden("binaryData", msg));
            }
            if old["stringData"] != new["stringData"] && !new["stringData"].is_null() {
                causes.push(Cause::forbidden("data", msg));
            }
            if new["immutable"] != json!(true) {
                causes.push(Cause::forbidden("immutable", msg));
            }
        }
        _ => {}
    }
    causes
}

/// Parses a resource quantity into bytes-ish units for comparison.
pub fn parse_quantity(q: &str) -> f64 {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().unwrap_or(0.0);
    let mult = match suffix {
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "m" => 1e-3,
        _ => 1.0,
    };
    n * mult
}
