//! The LimitRanger admission plugin: `LimitRange` defaults for containers
//! (`default` → limits, `defaultRequest` → requests) and `min`/`max`
//! constraints for Containers, Pods and PersistentVolumeClaims, with the
//! plugin's annotation and messages (plugin/pkg/admission/limitranger).
//! <https://kubernetes.io/docs/concepts/policy/limit-range/>

use serde_json::{Value, json};

use crate::quantity::{self, Quantity};

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn limits_of<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten())
        .filter(move |l| l["type"] == kind)
}

/// Applies container defaults to a Pod (create only, as the plugin does).
pub fn default_pod(ranges: &[Value], pod: &mut Value) {
    let mut notes = Vec::new();
    for (list, kind) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        let Some(cs) = pod["spec"][list].as_array_mut() else {
            continue;
        };
        for c in cs {
            let cname = c["name"].as_str().unwrap_or_default().to_string();
            let mut set_requests = Vec::new();
            let mut set_limits = Vec::new();
            for l in limits_of(ranges, "Container") {
                for (src, dst, set) in [
                    ("default", "limits", &mut set_limits),
                    ("defaultRequest", "requests", &mut set_requests),
                ] {
                    for (res, q) in l[src].as_object().into_iter().flatten() {
                        if c["resources"][dst][res].is_null() {
                            c["resources"][dst][res] = q.clone();
                            set.push(res.clone());
                        }
                    }
                }
            }
            set_requests.sort();
            set_requests.dedup();
            set_limits.sort();
            set_limits.dedup();
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {kind} {cname}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!(
                    "{} limit for {kind} {cname}",
                    set_limits.join(", ")
                ));
            }
        }
    }
    if !notes.is_empty() {
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = json!({});
        }
        pod["metadata"]["annotations"][ANNOTATION] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

fn q(v: &Value) -> Option<Quantity> {
    quantity::from_json(v)
}

/// min/max checks of one resource list against one limit item.
fn check(
    errs: &mut Vec<String>,
    l: &Value,
    kind: &str,
    requests: &Value,
    limits: &Value,
    limit_word: bool,
) {
    for (res, min) in l["min"].as_object().into_iter().flatten() {
        let Some(min) = q(min) else { continue };
        match q(&requests[res]) {
            None => errs.push(format!(
                "minimum {res} usage per {kind} is {min}.  No request is specified"
            )),
            Some(r) if r < min => errs.push(format!(
                "minimum {res} usage per {kind} is {min}, but request is {r}"
            )),
            _ => {}
        }
    }
    for (res, max) in l["max"].as_object().into_iter().flatten() {
        let Some(max) = q(max) else { continue };
        let (value, word) = if limit_word {
            (q(&limits[res]), "limit")
        } else {
            (q(&requests[res]), "request")
        };
        match value {
            None if limit_word => errs.push(format!(
                "maximum {res} usage per {kind} is {max}.  No limit is specified"
            )),
            Some(v) if v > max => errs.push(format!(
                "maximum {res} usage per {kind} is {max}, but {word} is {v}"
            )),
            _ => {}
        }
    }
}

/// Constraint violations of a Pod (Container and Pod limits).
pub fn validate_pod(ranges: &[Value], pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().into_iter().flatten())
        .collect();
    for l in limits_of(ranges, "Container") {
        for c in &containers {
            check(
                &mut errs,
                l,
                "Container",
                &c["resources"]["requests"],
                &c["resources"]["limits"],
                true,
            );
        }
    }
    for l in limits_of(ranges, "Pod") {
        let mut req = json!({});
        let mut lim = json!({});
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            for (dst, src) in [(&mut req, "requests"), (&mut lim, "limits")] {
                for (res, v) in c["resources"][src].as_object().into_iter().flatten() {
                    let sum = q(&dst[res])
                        .unwrap_or_default()
                        .plus(q(v).unwrap_or_default());
                    dst[res] = json!(sum.canonical());
                }
            }
        }
        check(&mut errs, l, "Pod", &req, &lim, true);
    }
    errs
}

/// Constraint violations of a PersistentVolumeClaim's storage request.
pub fn validate_pvc(ranges: &[Value], pvc: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = &pvc["spec"]["resources"]["requests"];
    for l in limits_of(ranges, "PersistentVolumeClaim") {
        check(&mut errs, l, "PersistentVolumeClaim", req, req, false);
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Vec<Value> {
        vec![json!({"spec": {"limits": [{
            "type": "Container",
            "default": {"cpu": "500m", "memory": "512Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "max": {"cpu": "2"},
        }]}})]
    }

    #[test]
    fn defaults_fill_only_what_the_container_left_out() {
        let mut pod = json!({"metadata": {}, "spec": {"containers": [
            {"name": "app", "resources": {"requests": {"cpu": "250m"}}},
        ]}});
        default_pod(&range(), &mut pod);
        let r = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(r["requests"], json!({"cpu": "250m", "memory": "128Mi"}));
        assert_eq!(r["limits"], json!({"cpu": "500m", "memory": "512Mi"}));
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: memory request for container app; cpu, memory limit for container app"
        );
    }

    #[test]
    fn max_is_enforced_with_the_plugins_message() {
        let pod = json!({"spec": {"containers": [
            {"name": "app", "resources": {"limits": {"cpu": "4"}, "requests": {"cpu": "1"}}},
        ]}});
        assert_eq!(
            validate_pod(&range(), &pod),
            ["maximum cpu usage per Container is 2, but limit is 4"]
        );
    }
}
