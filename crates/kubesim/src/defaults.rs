//! Built-in defaulting of pod specs (in Pods and workload templates),
//! Services and LimitRanges, as k8s.io/kubernetes pkg/apis/core/v1/defaults.go
//! and the DefaultTolerationSeconds admission plugin set them. Defaults only
//! fill fields the client left unset, and they are applied after field
//! ownership is computed, so no client's field manager owns them (as on a
//! real server, where defaulting happens before the managed-fields diff of
//! the server's own changes).

use serde_json::{Value, json};

fn set_if_missing(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        let absent = m.get(key).is_none_or(Value::is_null);
        if absent {
            m.insert(key.to_string(), value);
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    set_if_missing(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_missing(c, "terminationMessagePolicy", json!("File"));
    let policy = image_pull_policy(c["image"].as_str().unwrap_or_default());
    set_if_missing(c, "imagePullPolicy", json!(policy));
    set_if_missing(c, "resources", json!({}));
    for p in c["ports"].as_array_mut().into_iter().flatten() {
        set_if_missing(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &mut c[probe];
        if p.is_object() {
            set_if_missing(p, "timeoutSeconds", json!(1));
            set_if_missing(p, "periodSeconds", json!(10));
            set_if_missing(p, "successThreshold", json!(1));
            set_if_missing(p, "failureThreshold", json!(3));
            if p["httpGet"].is_object() {
                set_if_missing(&mut p["httpGet"], "scheme", json!("HTTP"));
                set_if_missing(&mut p["httpGet"], "path", json!("/"));
            }
        }
    }
}

/// `SetDefaults_PodSpec`: applies to Pods and to pod templates.
pub fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_if_missing(spec, "restartPolicy", json!("Always"));
    set_if_missing(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_missing(spec, "schedulerName", json!("default-scheduler"));
    set_if_missing(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_missing(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            container(c);
        }
    }
    for v in spec["volumes"].as_array_mut().into_iter().flatten() {
        for (src, mode) in [("secret", 420), ("configMap", 420), ("projected", 420)] {
            if v[src].is_object() {
                set_if_missing(&mut v[src], "defaultMode", json!(mode));
            }
        }
    }
}

/// `SetDefaults_Pod` on top of the spec defaults: requests default to
/// limits, service links on, and the DefaultTolerationSeconds tolerations.
pub fn pod(obj: &mut Value) {
    if !obj["spec"].is_object() {
        return;
    }
    pod_spec(&mut obj["spec"]);
    set_if_missing(&mut obj["spec"], "enableServiceLinks", json!(true));
    set_if_missing(
        &mut obj["spec"],
        "preemptionPolicy",
        json!("PreemptLowerPriority"),
    );
    set_if_missing(&mut obj["spec"], "priority", json!(0));
    for list in ["initContainers", "containers"] {
        for c in obj["spec"][list].as_array_mut().into_iter().flatten() {
            let limits = c["resources"]["limits"].as_object().cloned();
            for (res, q) in limits.into_iter().flatten() {
                if c["resources"]["requests"][&res].is_null() {
                    c["resources"]["requests"][&res] = q;
                }
            }
        }
    }
    let tolerations = obj["spec"]["tolerations"].as_array().cloned();
    let mut t = tolerations.unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !t.iter().any(|x| x["key"] == key) {
            t.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    obj["spec"]["tolerations"] = json!(t);
}

/// The pod template spec of a workload, if it has one (never created).
pub fn template_spec<'a>(group: &str, resource: &str, obj: &'a mut Value) -> Option<&'a mut Value> {
    let path: &[&str] = match (group, resource) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs")
        | ("", "replicationcontrollers") => &["spec", "template", "spec"],
        ("batch", "cronjobs") => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    };
    let mut cur = obj;
    for p in path {
        cur = cur.get_mut(*p)?;
    }
    cur.is_object().then_some(cur)
}

/// Service defaults beyond type and sessionAffinity.
pub fn service(obj: &mut Value) {
    let spec = &mut obj["spec"];
    for p in spec["ports"].as_array_mut().into_iter().flatten() {
        set_if_missing(p, "protocol", json!("TCP"));
    }
    if spec["type"] != "ExternalName" {
        set_if_missing(spec, "ipFamilies", json!(["IPv4"]));
        set_if_missing(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_if_missing(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if spec["type"] == "NodePort" || spec["type"] == "LoadBalancer" {
        set_if_missing(spec, "externalTrafficPolicy", json!("Cluster"));
    }
}

/// `SetDefaults_LimitRangeItem`: a Container item's default limit comes
/// from max, its default request from the default limit, then from min.
pub fn limit_range(obj: &mut Value) {
    for item in obj["spec"]["limits"].as_array_mut().into_iter().flatten() {
        if item["type"] != "Container" {
            continue;
        }
        let mut default = item["default"].as_object().cloned().unwrap_or_default();
        for (k, v) in item["max"].as_object().into_iter().flatten() {
            default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut request = item["defaultRequest"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (k, v) in default.iter() {
            request.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in item["min"].as_object().into_iter().flatten() {
            request.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if !default.is_empty() {
            item["default"] = Value::Object(default);
        }
        if !request.is_empty() {
            item["defaultRequest"] = Value::Object(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(image_pull_policy("registry:5000/app"), "Always");
        assert_eq!(image_pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn pod_defaults_fill_only_unset_fields() {
        let mut p = json!({"spec": {"restartPolicy": "Never", "containers": [
            {"name": "a", "image": "busybox", "resources": {"limits": {"cpu": "1"}}},
        ]}});
        pod(&mut p);
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(p["spec"]["securityContext"], json!({}));
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn limit_range_items_default_like_the_api_server() {
        let mut lr = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}});
        limit_range(&mut lr);
        assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
        assert_eq!(
            lr["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "2", "memory": "64Mi"})
        );
    }
}
