//! The ResourceQuota admission plugin and the quota controller's usage
//! accounting: object counts (`pods`, `services`, `count/deployments.apps`
//! ...) and compute/storage totals (`requests.cpu`, `limits.memory`,
//! `requests.storage`, `<class>.storageclass.storage.k8s.io/requests.storage`).
//! Messages as plugin/pkg/admission/resourcequota/controller.go and the pod
//! evaluator (pkg/quota/v1/evaluator/core/pods.go);
//! <https://kubernetes.io/docs/concepts/policy/resource-quotas/>.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::quantity::{self, Quantity};

pub type Usage = BTreeMap<String, Quantity>;

/// Whether a Pod still counts against quota (terminal pods do not).
fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    )
}

fn add(u: &mut Usage, name: &str, q: Quantity) {
    let cur = u.get(name).copied().unwrap_or_default();
    u.insert(name.to_string(), cur.plus(q));
}

/// The quota usage one object contributes (`group`/`resource` say what it is).
pub fn usage(group: &str, resource: &str, obj: &Value) -> Usage {
    let mut u = Usage::new();
    let count_name = if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    };
    if group.is_empty() && resource == "pods" && !pod_counts(obj) {
        return u;
    }
    add(&mut u, &count_name, Quantity::from_int(1));
    match (group, resource) {
        ("", "pods") => {
            add(&mut u, "pods", Quantity::from_int(1));
            for (k, v) in pod_compute(obj) {
                add(&mut u, &k, v);
            }
        }
        ("", "services") => {
            add(&mut u, "services", Quantity::from_int(1));
            match obj["spec"]["type"].as_str() {
                Some("LoadBalancer") => {
                    add(&mut u, "services.loadbalancers", Quantity::from_int(1));
                    let ports = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
                    add(
                        &mut u,
                        "services.nodeports",
                        Quantity::from_int(ports as i64),
                    );
                }
                Some("NodePort") => {
                    let ports = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
                    add(
                        &mut u,
                        "services.nodeports",
                        Quantity::from_int(ports as i64),
                    );
                }
                _ => {}
            }
        }
        ("", "persistentvolumeclaims") => {
            add(&mut u, "persistentvolumeclaims", Quantity::from_int(1));
            let storage = quantity::from_json(&obj["spec"]["resources"]["requests"]["storage"])
                .unwrap_or_default();
            add(&mut u, "requests.storage", storage);
            if let Some(class) = obj["spec"]["storageClassName"].as_str() {
                let prefix = format!("{class}.storageclass.storage.k8s.io/");
                add(
                    &mut u,
                    &format!("{prefix}persistentvolumeclaims"),
                    Quantity::from_int(1),
                );
                add(&mut u, &format!("{prefix}requests.storage"), storage);
            }
        }
        ("", r @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            add(&mut u, r, Quantity::from_int(1));
        }
        _ => {}
    }
    u
}

/// requests/limits of a pod: the sum of its containers, at least each init
/// container's (they run one at a time).
fn pod_compute(pod: &Value) -> Usage {
    let sum = |cs: &Value| {
        let mut u = Usage::new();
        for c in cs.as_array().into_iter().flatten() {
            for (src, prefix) in [("requests", "requests."), ("limits", "limits.")] {
                for (res, v) in c["resources"][src].as_object().into_iter().flatten() {
                    let Some(q) = quantity::from_json(v) else {
                        continue;
                    };
                    add(&mut u, &format!("{prefix}{res}"), q);
                    if src == "requests" && (res == "cpu" || res == "memory") {
                        add(&mut u, res, q);
                    }
                }
            }
        }
        u
    };
    let mut total = sum(&pod["spec"]["containers"]);
    for c in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (k, v) in sum(&json!([c])) {
            if total.get(&k).is_none_or(|t| *t < v) {
                total.insert(k, v);
            }
        }
    }
    total
}

/// Resources whose per-container requests/limits a quota requires to be set.
const MUST_SPECIFY: &[&str] = &[
    "cpu",
    "limits.cpu",
    "limits.memory",
    "memory",
    "requests.cpu",
    "requests.memory",
];

/// `must specify limits.cpu for: app; requests.cpu for: app` for a pod
/// missing values a quota tracks.
fn pod_constraints(hard: &Value, pod: &Value) -> Option<String> {
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for res in MUST_SPECIFY {
        if hard.get(*res).is_none() {
            continue;
        }
        let (src, name) = match res.split_once('.') {
            Some((s, n)) => (s, n),
            None => ("requests", *res),
        };
        for list in ["initContainers", "containers"] {
            for c in pod["spec"][list].as_array().into_iter().flatten() {
                if c["resources"][src][name].is_null() {
                    missing
                        .entry(res.to_string())
                        .or_default()
                        .push(c["name"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .into_iter()
        .map(|(res, mut names)| {
            names.sort();
            names.dedup();
            format!("{res} for: {}", names.join(","))
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

fn pretty(u: &Usage) -> String {
    u.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn hard_of(quota: &Value) -> Usage {
    quota["spec"]["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| quantity::from_json(v).map(|q| (k.clone(), q)))
        .collect()
}

/// Checks one write against the namespace's quotas. `delta` is the added
/// usage (create: the object's usage; update: what grew); `used` gives each
/// quota's current usage. Returns the refusal message if any quota is exceeded.
pub fn check(
    quotas: &[Value],
    used: impl Fn(&Value) -> Usage,
    delta: &Usage,
    pod: Option<&Value>,
) -> Option<String> {
    for quota in quotas {
        let qname = quota["metadata"]["name"].as_str().unwrap_or_default();
        let hard = hard_of(quota);
        if let Some(pod) = pod
            && let Some(msg) = pod_constraints(&quota["spec"]["hard"], pod)
        {
            return Some(format!("failed quota: {qname}: {msg}"));
        }
        let requested: Usage = delta
            .iter()
            .filter(|(k, v)| hard.contains_key(*k) && !v.is_zero())
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if requested.is_empty() {
            continue;
        }
        let current = used(quota);
        let exceeded: Vec<&String> = requested
            .iter()
            .filter(|(k, v)| {
                let now = current.get(*k).copied().unwrap_or_default();
                now.plus(**v) > hard[*k]
            })
            .map(|(k, _)| k)
            .collect();
        if exceeded.is_empty() {
            continue;
        }
        let mask = |u: &Usage| -> Usage {
            exceeded
                .iter()
                .map(|k| (k.to_string(), u.get(*k).copied().unwrap_or_default()))
                .collect()
        };
        return Some(format!(
            "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
            pretty(&mask(&requested)),
            pretty(&mask(&current)),
            pretty(&mask(&hard)),
        ));
    }
    None
}

/// `status` of a quota given the namespace's total usage.
pub fn status(quota: &Value, total: &Usage) -> Value {
    let hard = hard_of(quota);
    let mut h = serde_json::Map::new();
    let mut u = serde_json::Map::new();
    for (k, v) in &hard {
        h.insert(k.clone(), json!(v.canonical()));
        u.insert(
            k.clone(),
            json!(total.get(k).copied().unwrap_or_default().canonical()),
        );
    }
    json!({"hard": h, "used": u})
}

/// The (group, resource) pairs whose objects can count against a quota.
pub fn is_counted(group: &str, resource: &str) -> bool {
    !(group.is_empty() && (resource == "events" || resource == "namespaces"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(hard: Value) -> Value {
        json!({"metadata": {"name": "q"}, "spec": {"hard": hard}})
    }

    #[test]
    fn exceeding_a_count_uses_the_plugins_message() {
        let qs = [quota(json!({"pods": "2", "services": "5"}))];
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        let delta = usage("", "pods", &pod);
        let used = |_: &Value| Usage::from([("pods".to_string(), Quantity::from_int(2))]);
        assert_eq!(
            check(&qs, used, &delta, Some(&pod)).unwrap(),
            "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        );
    }

    #[test]
    fn compute_quotas_require_requests_and_sum_them() {
        let qs = [quota(json!({"requests.cpu": "1", "limits.memory": "1Gi"}))];
        let bare = json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}]}});
        assert_eq!(
            check(
                &qs,
                |_| Usage::new(),
                &usage("", "pods", &bare),
                Some(&bare)
            )
            .unwrap(),
            "failed quota: q: must specify limits.memory for: a,b; requests.cpu for: a,b"
        );
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "600m"}, "limits": {"memory": "512Mi"}}},
        ]}});
        let used = |_: &Value| {
            Usage::from([
                ("requests.cpu".to_string(), Quantity::parse("500m").unwrap()),
                (
                    "limits.memory".to_string(),
                    Quantity::parse("256Mi").unwrap(),
                ),
            ])
        };
        assert_eq!(
            check(&qs, used, &usage("", "pods", &pod), Some(&pod)).unwrap(),
            "exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
        );
    }

    #[test]
    fn status_reports_hard_and_used_for_tracked_names() {
        let q = quota(json!({"pods": "10", "requests.storage": "10Gi"}));
        let total = Usage::from([
            ("pods".to_string(), Quantity::from_int(3)),
            ("configmaps".to_string(), Quantity::from_int(1)),
        ]);
        assert_eq!(
            status(&q, &total),
            json!({"hard": {"pods": "10", "requests.storage": "10Gi"}, "used": {"pods": "3", "requests.storage": "0"}})
        );
    }
}
