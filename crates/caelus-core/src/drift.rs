//! Drift as pure comparisons (design §5 step 5).
//!
//! [`drifted_fields`] answers "does the live object still hold what Caelus
//! applied?": only fields present in the applied object are looked at, so
//! defaults and fields other managers own never count; list items are
//! matched by the API server's own keys ([`ListKeys`]); values are compared
//! after the server's normalization (quantities in canonical form, zero
//! values it omits); fields a template says to ignore are skipped.
//!
//! [`object_diff`] is the two-sided diff the upgrade plan shows, and what
//! settles a suspected drift: live versus the server's answer to a dry-run
//! apply ([`confirmed_changes`]).

use crate::list_keys::{ListKeys, ListType, item_label, same_item};
use crate::quantity;
use crate::template::DriftIgnoreRule;
use crate::upgrade::FieldChange;
use serde_json::Value;
use std::collections::BTreeSet;

/// Metadata the API server owns; never compared.
pub const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Path segments under which strings are resource quantities.
const QUANTITY_PARENTS: &[&str] = &[
    "requests",
    "limits",
    "hard",
    "capacity",
    "overhead",
    "default",
    "defaultRequest",
    "max",
    "min",
    "maxLimitRequestRatio",
];

/// Fields that hold an int-or-string: `8080` and `"8080"` are one port.
const INT_OR_STRING: &[&str] = &[
    "targetPort",
    "port",
    "maxSurge",
    "maxUnavailable",
    "minAvailable",
    "partition",
];

/// A JSON pointer (RFC 6901) split into unescaped segments; `*` matches
/// any one segment.
fn pointer_segments(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Checks a template's ignore rule: a kind and JSON pointers.
pub fn validate_ignore_pointer(pointer: &str) -> Result<(), String> {
    match pointer_segments(pointer) {
        Some(segments) if segments.iter().all(|s| !s.is_empty()) => Ok(()),
        _ => Err(format!(
            "'{pointer}' is not a JSON pointer to a field (like /spec/replicas)"
        )),
    }
}

/// The pointers that apply to an object of `kind`.
pub fn ignored_pointers(rules: &[DriftIgnoreRule], kind: &str) -> Vec<Vec<String>> {
    rules
        .iter()
        .filter(|r| r.kind.as_deref().is_none_or(|k| k == kind))
        .flat_map(|r| r.paths.iter())
        .filter_map(|p| pointer_segments(p))
        .collect()
}

fn is_ignored(ignored: &[Vec<String>], pointer: &[String]) -> bool {
    ignored.iter().any(|rule| {
        rule.len() <= pointer.len() && rule.iter().zip(pointer).all(|(r, p)| r == "*" || r == p)
    })
}

/// Removes ignored fields from an object before it is re-applied, so a
/// correction leaves them to whoever owns them now.
pub fn strip_ignored(obj: &mut Value, ignored: &[Vec<String>]) {
    for rule in ignored {
        strip(obj, rule);
    }
}

fn strip(v: &mut Value, rule: &[String]) {
    let Some((first, rest)) = rule.split_first() else {
        return;
    };
    let children: Vec<&mut Value> = match v {
        Value::Object(m) if rest.is_empty() => {
            if first == "*" {
                m.clear();
            } else {
                m.remove(first);
            }
            return;
        }
        Value::Object(m) => m
            .iter_mut()
            .filter(|(k, _)| first == "*" || *k == first)
            .map(|(_, v)| v)
            .collect(),
        Value::Array(a) if rest.is_empty() => {
            if first == "*" {
                a.clear();
            } else if let Ok(i) = first.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
            return;
        }
        Value::Array(a) => a
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| first == "*" || first.parse::<usize>().ok() == Some(*i))
            .map(|(_, v)| v)
            .collect(),
        _ => return,
    };
    for child in children {
        strip(child, rest);
    }
}

/// Joins a field name onto a display path: `spec.replicas`,
/// `metadata.labels["app.kubernetes.io/name"]`.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else if key.contains('.') || key.contains('/') {
        format!("{path}[\"{key}\"]")
    } else {
        format!("{path}.{key}")
    }
}

/// The zero values Go's `omitempty` drops: applying them and finding
/// nothing is not drift.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn holds_quantity(names: &[String]) -> bool {
    names.last().is_some_and(|k| k == "sizeLimit")
        || names
            .iter()
            .any(|segment| QUANTITY_PARENTS.contains(&segment.as_str()))
}

fn as_quantity(v: &Value) -> Option<quantity::Quantity> {
    match v {
        Value::Number(n) => quantity::parse(&n.to_string()),
        Value::String(s) => quantity::parse(s),
        _ => None,
    }
}

/// Equal after the server's normalization of the field at `names`.
fn scalar_eq(a: &Value, l: &Value, names: &[String]) -> bool {
    if a == l {
        return true;
    }
    if let (Some(x), Some(y)) = (a.as_f64(), l.as_f64()) {
        return x == y;
    }
    if holds_quantity(names) {
        return matches!((as_quantity(a), as_quantity(l)), (Some(x), Some(y)) if x == y);
    }
    if names
        .last()
        .is_some_and(|k| INT_OR_STRING.contains(&k.as_str()))
    {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        return text(a).is_some() && text(a) == text(l);
    }
    false
}

/// How the items of a list are matched: the schema's (or table's) word,
/// else by `name` when every item has one (the Kubernetes convention),
/// else as one atomic value.
fn list_type_at(keys: &ListKeys, names: &[String], items: &[&Value]) -> ListType {
    let path: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Some(t) = keys.list_type(&path) {
        return t;
    }
    if !items.is_empty() && items.iter().all(|i| i["name"].is_string()) {
        ListType::Map(vec!["name".into()])
    } else {
        ListType::Atomic
    }
}

struct Compare<'a> {
    keys: &'a ListKeys,
    ignored: Vec<Vec<String>>,
    out: Vec<FieldChange>,
}

impl Compare<'_> {
    fn change(&mut self, path: &str, live: Option<&Value>, applied: Option<&Value>) {
        self.out.push(FieldChange {
            path: path.to_string(),
            from: live.cloned(),
            to: applied.cloned(),
        });
    }

    /// `names`: field names from the root (for list types and quantities);
    /// `pointer`: the JSON pointer in the applied object (for ignore rules).
    fn walk(
        &mut self,
        path: &str,
        names: &mut Vec<String>,
        pointer: &mut Vec<String>,
        applied: &Value,
        live: Option<&Value>,
    ) {
        if is_ignored(&self.ignored, pointer) {
            return;
        }
        let live = live.filter(|l| !l.is_null());
        match (applied, live) {
            // `null` in an apply means "not set by me": nothing to compare.
            (Value::Null, _) => {}
            (a, None) if is_zero(a) => {}
            (a, None) => self.change(path, None, Some(a)),
            (Value::Object(a), Some(Value::Object(l))) => {
                for (k, v) in a {
                    names.push(k.clone());
                    pointer.push(k.clone());
                    self.walk(&join(path, k), names, pointer, v, l.get(k));
                    names.pop();
                    pointer.pop();
                }
            }
            (Value::Array(a), Some(Value::Array(l))) => self.list(path, names, pointer, a, l),
            (a, Some(l)) => {
                if !scalar_eq(a, l, names) {
                    self.change(path, Some(l), Some(a));
                }
            }
        }
    }

    fn list(
        &mut self,
        path: &str,
        names: &mut Vec<String>,
        pointer: &mut Vec<String>,
        applied: &[Value],
        live: &[Value],
    ) {
        let items: Vec<&Value> = applied.iter().collect();
        match list_type_at(self.keys, names, &items) {
            ListType::Map(keys) if applied.iter().all(Value::is_object) => {
                for (i, a) in applied.iter().enumerate() {
                    let here = format!("{path}{}", item_label(a, &keys));
                    pointer.push(i.to_string());
                    if !is_ignored(&self.ignored, pointer) {
                        match live.iter().find(|l| same_item(a, l, &keys)) {
                            Some(l) => self.walk(&here, names, pointer, a, Some(l)),
                            None => self.change(&here, None, Some(a)),
                        }
                    }
                    pointer.pop();
                }
            }
            ListType::Set => {
                let missing = applied
                    .iter()
                    .any(|a| !live.iter().any(|l| scalar_eq(a, l, names)));
                if missing {
                    self.change(
                        path,
                        Some(&Value::Array(live.to_vec())),
                        Some(&Value::Array(applied.to_vec())),
                    );
                }
            }
            // Atomic: one value, so the same length and each item equal
            // (items compared field by field: the server defaults inside them).
            _ => {
                let same = applied.len() == live.len()
                    && applied.iter().zip(live).enumerate().all(|(i, (a, l))| {
                        let mut inner = Compare {
                            keys: self.keys,
                            ignored: Vec::new(),
                            out: Vec::new(),
                        };
                        pointer.push(i.to_string());
                        inner.walk(path, names, pointer, a, Some(l));
                        pointer.pop();
                        inner.out.is_empty()
                    });
                if !same {
                    self.change(
                        path,
                        Some(&Value::Array(live.to_vec())),
                        Some(&Value::Array(applied.to_vec())),
                    );
                }
            }
        }
    }
}

/// Every field set in `applied` whose value in `live` differs or is gone
/// (`from` is the live value, `to` the applied one). `status` and
/// server-owned metadata are never compared; `ignore` rules of the object's
/// kind are skipped. Callers fold write-only fields first (a Secret's
/// `stringData` becomes `data`).
pub fn drifted_fields(
    applied: &Value,
    live: &Value,
    keys: &ListKeys,
    ignore: &[DriftIgnoreRule],
) -> Vec<FieldChange> {
    let kind = applied["kind"].as_str().unwrap_or_default();
    let mut c = Compare {
        keys,
        ignored: ignored_pointers(ignore, kind),
        out: Vec::new(),
    };
    let Some(fields) = applied.as_object() else {
        return c.out;
    };
    let (mut names, mut pointer) = (Vec::new(), Vec::new());
    for (key, value) in fields {
        match key.as_str() {
            "status" => {}
            "metadata" => {
                let Some(meta) = value.as_object() else {
                    continue;
                };
                for (k, v) in meta {
                    if SERVER_METADATA.contains(&k.as_str()) {
                        continue;
                    }
                    names.extend(["metadata".to_string(), k.clone()]);
                    pointer.extend(["metadata".to_string(), k.clone()]);
                    c.walk(
                        &join("metadata", k),
                        &mut names,
                        &mut pointer,
                        v,
                        live["metadata"].get(k),
                    );
                    names.clear();
                    pointer.clear();
                }
            }
            _ => {
                names.push(key.clone());
                pointer.push(key.clone());
                c.walk(key, &mut names, &mut pointer, value, live.get(key));
                names.clear();
                pointer.clear();
            }
        }
    }
    c.out
}

/// Leaf-level differences from `from` to `to`, both sides looked at, list
/// items paired by the API server's keys: what the upgrade plan shows and
/// how live is compared with a dry-run's answer.
pub fn object_diff(from: &Value, to: &Value, keys: &ListKeys) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff("", &mut Vec::new(), Some(from), Some(to), keys, &mut out);
    out
}

fn diff(
    path: &str,
    names: &mut Vec<String>,
    a: Option<&Value>,
    b: Option<&Value>,
    keys: &ListKeys,
    out: &mut Vec<FieldChange>,
) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let fields: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in fields {
                names.push(k.clone());
                diff(&join(path, k), names, x.get(k), y.get(k), keys, out);
                names.pop();
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            let items: Vec<&Value> = x.iter().chain(y).collect();
            match list_type_at(keys, names, &items) {
                ListType::Map(k) if items.iter().all(|i| i.is_object()) => {
                    for old in x {
                        let here = format!("{path}{}", item_label(old, &k));
                        let new = y.iter().find(|n| same_item(old, n, &k));
                        diff(&here, names, Some(old), new, keys, out);
                    }
                    for new in y.iter().filter(|n| !x.iter().any(|o| same_item(o, n, &k))) {
                        let here = format!("{path}{}", item_label(new, &k));
                        diff(&here, names, None, Some(new), keys, out);
                    }
                }
                _ if x != y => out.push(FieldChange {
                    path: path.to_string(),
                    from: a.cloned(),
                    to: b.cloned(),
                }),
                _ => {}
            }
        }
        (x, y) if x != y => out.push(FieldChange {
            path: path.to_string(),
            from: x.cloned(),
            to: y.cloned(),
        }),
        _ => {}
    }
}

/// What a re-apply would change, from the server's own answer: the live
/// object against the result of a dry-run apply of what Caelus applied,
/// without server-owned metadata and status. Empty means the suspicion was
/// a misreading (a normalization the comparison did not know).
pub fn confirmed_changes(live: &Value, would_be: &Value, keys: &ListKeys) -> Vec<FieldChange> {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
        }
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in SERVER_METADATA {
                meta.remove(*k);
            }
        }
        v
    };
    object_diff(&strip(live), &strip(would_be), keys)
}

/// Shown instead of a Secret's values in a diff.
pub const HIDDEN: &str = "(hidden)";

/// Hides the values of a Secret's `data` and `stringData` in `changes` (a
/// diff may be read by anyone who may see the deployment; the values are
/// for those its template lets read them, audited): the field is still
/// named, so a change is visible, but neither side's value is.
pub fn hide_secret_values(kind: &str, changes: &mut [FieldChange]) {
    if kind != "Secret" {
        return;
    }
    fn hide(v: &mut Value) {
        match v {
            Value::Object(m) => m.values_mut().for_each(hide),
            Value::Array(a) => a.iter_mut().for_each(hide),
            Value::Null => {}
            other => *other = Value::String(HIDDEN.into()),
        }
    }
    let holds_values = |path: &str| {
        ["data", "stringData"].iter().any(|field| {
            path.strip_prefix(field)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    };
    for c in changes.iter_mut().filter(|c| holds_values(&c.path)) {
        c.from.iter_mut().chain(c.to.iter_mut()).for_each(hide);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(changes: &[FieldChange]) -> Vec<&str> {
        changes.iter().map(|c| c.path.as_str()).collect()
    }

    fn fallback(applied: &Value, live: &Value) -> Vec<String> {
        drifted_fields(applied, live, &ListKeys::fallback(), &[])
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d-1",
                         "labels": {"app.kubernetes.io/managed-by": "caelus", "tier": "front"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "volumes": [{"name": "scratch", "emptyDir": {}}],
                        "containers": [
                        {"name": "app", "image": "nginx:1.27", "args": ["-g", "daemon off;"],
                         "ports": [{"containerPort": 53, "name": "dns"},
                                   {"containerPort": 53, "protocol": "UDP", "name": "dns-udp"}],
                         "env": [{"name": "MODE", "value": "prod"},
                                 {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                         "volumeMounts": [
                             {"name": "scratch", "mountPath": "/tmp", "subPath": "tmp"},
                             {"name": "scratch", "mountPath": "/var/cache", "subPath": "cache"},
                             {"name": "scratch", "mountPath": "/run", "subPath": "run"}],
                         "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}, "limits": {"cpu": 1}}},
                        {"name": "sidecar", "image": "busybox"}
                    ]}
                }
            }
        })
    }

    /// What the server returns for `deployment()`: defaults, server
    /// metadata, status, canonical quantities, items in another order,
    /// fields of other managers.
    fn live() -> Value {
        let mut l = deployment();
        l["metadata"]["uid"] = json!("u-1");
        l["metadata"]["resourceVersion"] = json!("42");
        l["metadata"]["generation"] = json!(3);
        l["metadata"]["managedFields"] = json!([{"manager": "caelus"}]);
        l["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        l["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}});
        let c = &mut l["spec"]["template"]["spec"]["containers"][0];
        c["resources"]["requests"]["cpu"] = json!("500m");
        c["resources"]["limits"]["cpu"] = json!("1");
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["ports"][0]["protocol"] = json!("TCP");
        c["env"][1]["valueFrom"]["fieldRef"]["apiVersion"] = json!("v1");
        let mounts = c["volumeMounts"].as_array_mut().unwrap();
        mounts.reverse();
        let ports = c["ports"].as_array_mut().unwrap();
        ports.reverse();
        l["spec"]["template"]["spec"]["volumes"][0]["emptyDir"] = json!({});
        l["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
        l["status"] = json!({"replicas": 2});
        l
    }

    fn container(l: &mut Value) -> &mut Value {
        &mut l["spec"]["template"]["spec"]["containers"][0]
    }

    #[test]
    fn an_untouched_object_with_server_defaults_has_no_drift() {
        assert_eq!(fallback(&deployment(), &live()), Vec::<String>::new());
    }

    #[test]
    fn one_volume_mounted_at_several_paths_is_matched_by_mount_path() {
        let mut l = live();
        // The mount at /var/cache now uses another subPath.
        let mounts = container(&mut l)["volumeMounts"].as_array_mut().unwrap();
        let at = mounts
            .iter()
            .position(|m| m["mountPath"] == "/var/cache")
            .unwrap();
        mounts[at]["subPath"] = json!("elsewhere");
        let changes = drifted_fields(&deployment(), &l, &ListKeys::fallback(), &[]);
        assert_eq!(
            paths(&changes),
            ["spec.template.spec.containers[name=app].volumeMounts[mountPath=/var/cache].subPath"]
        );
        assert_eq!(changes[0].from, Some(json!("elsewhere")));
        assert_eq!(changes[0].to, Some(json!("cache")));
        // A mount removed by hand is named by its path.
        container(&mut l)["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["mountPath"] != "/run");
        assert!(fallback(&deployment(), &l).contains(
            &"spec.template.spec.containers[name=app].volumeMounts[mountPath=/run]".to_string()
        ));
    }

    #[test]
    fn ports_with_one_number_on_tcp_and_udp_are_two_items() {
        let mut l = live();
        let ports = container(&mut l)["ports"].as_array_mut().unwrap();
        let udp = ports.iter().position(|p| p["protocol"] == "UDP").unwrap();
        ports[udp]["name"] = json!("renamed");
        assert_eq!(
            fallback(&deployment(), &l),
            ["spec.template.spec.containers[name=app].ports[containerPort=53,protocol=UDP].name"]
        );
        // Removing the UDP port leaves TCP 53 in place: only UDP is missing.
        container(&mut l)["ports"]
            .as_array_mut()
            .unwrap()
            .retain(|p| p["protocol"] != "UDP");
        assert_eq!(
            fallback(&deployment(), &l),
            ["spec.template.spec.containers[name=app].ports[containerPort=53,protocol=UDP]"]
        );
    }

    #[test]
    fn env_from_value_from_is_matched_by_name_and_compared_inside() {
        let mut l = live();
        container(&mut l)["env"][1]["valueFrom"]["fieldRef"]["fieldPath"] = json!("spec.nodeName");
        assert_eq!(
            fallback(&deployment(), &l),
            ["spec.template.spec.containers[name=app].env[name=POD].valueFrom.fieldRef.fieldPath"]
        );
    }

    #[test]
    fn changed_fields_are_named_and_values_kept() {
        let mut l = live();
        l["spec"]["replicas"] = json!(5);
        l["spec"]["template"]["spec"]["containers"][1]["image"] = json!("busybox:evil");
        let changes = drifted_fields(&deployment(), &l, &ListKeys::fallback(), &[]);
        assert_eq!(
            paths(&changes),
            [
                "spec.replicas",
                "spec.template.spec.containers[name=sidecar].image"
            ]
        );
        assert_eq!(changes[0].from, Some(json!(5)));
        assert_eq!(changes[0].to, Some(json!(2)));
    }

    #[test]
    fn removed_labels_count_and_label_keys_are_quoted() {
        let mut l = live();
        l["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/managed-by");
        assert_eq!(
            fallback(&deployment(), &l),
            ["metadata.labels[\"app.kubernetes.io/managed-by\"]"]
        );
    }

    #[test]
    fn atomic_lists_compare_whole_and_fields_added_by_others_are_not_drift() {
        let mut l = live();
        l["metadata"]["labels"]["added-by-someone"] = json!("x");
        container(&mut l)["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "X", "value": "1"}));
        assert!(fallback(&deployment(), &l).is_empty());
        container(&mut l)["args"] = json!(["-g"]);
        assert_eq!(
            fallback(&deployment(), &l),
            ["spec.template.spec.containers[name=app].args"]
        );
    }

    #[test]
    fn status_server_metadata_and_zero_values_are_not_drift() {
        let mut a = deployment();
        a["status"] = json!({"replicas": 9});
        a["metadata"]["resourceVersion"] = json!("1");
        a["spec"]["template"]["spec"]["hostNetwork"] = json!(false);
        a["spec"]["template"]["spec"]["initContainers"] = json!([]);
        a["spec"]["template"]["spec"]["containers"][1]["workingDir"] = json!("");
        a["spec"]["paused"] = Value::Null;
        assert!(fallback(&a, &live()).is_empty());
    }

    #[test]
    fn quantities_and_int_or_strings_compare_by_value() {
        let quota = |v: Value| json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"cpu": v}}});
        assert!(fallback(&quota(json!(2)), &quota(json!("2"))).is_empty());
        assert!(fallback(&quota(json!("2000m")), &quota(json!("2"))).is_empty());
        assert!(fallback(&quota(json!("1e3")), &quota(json!("1k"))).is_empty());
        assert_eq!(
            fallback(&quota(json!("2")), &quota(json!("3"))),
            ["spec.hard.cpu"]
        );
        let svc = |p: Value| json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": p}]}});
        assert!(fallback(&svc(json!(8080)), &svc(json!("8080"))).is_empty());
        assert_eq!(
            fallback(&svc(json!("http")), &svc(json!("web"))),
            ["spec.ports[port=80,protocol=TCP].targetPort"]
        );
        // Elsewhere strings are just strings: an image tag "1.0" is not "1".
        let tag = |t: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"tag": t}});
        assert_eq!(fallback(&tag("1.0"), &tag("1")), ["data.tag"]);
    }

    #[test]
    fn ignored_fields_are_neither_compared_nor_applied() {
        let mut l = live();
        l["spec"]["replicas"] = json!(9);
        container(&mut l)["image"] = json!("nginx:other");
        let rules = vec![
            DriftIgnoreRule {
                kind: Some("Deployment".into()),
                paths: vec!["/spec/replicas".into()],
            },
            DriftIgnoreRule {
                kind: Some("StatefulSet".into()),
                paths: vec!["/spec/template".into()],
            },
        ];
        let changes = drifted_fields(&deployment(), &l, &ListKeys::fallback(), &rules);
        assert_eq!(
            paths(&changes),
            ["spec.template.spec.containers[name=app].image"]
        );
        // Pointers use the applied object's list positions; `*` is any one.
        let any_image = vec![DriftIgnoreRule {
            kind: None,
            paths: vec![
                "/spec/replicas".into(),
                "/spec/template/spec/containers/*/image".into(),
            ],
        }];
        assert!(drifted_fields(&deployment(), &l, &ListKeys::fallback(), &any_image).is_empty());
        let mut body = deployment();
        strip_ignored(&mut body, &ignored_pointers(&any_image, "Deployment"));
        assert!(body["spec"].get("replicas").is_none());
        assert!(
            body["spec"]["template"]["spec"]["containers"][1]
                .get("image")
                .is_none()
        );
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][1]["name"],
            "sidecar"
        );
        assert!(validate_ignore_pointer("/spec/replicas").is_ok());
        assert!(validate_ignore_pointer("spec.replicas").is_err());
        assert!(validate_ignore_pointer("/spec//x").is_err());
    }

    #[test]
    fn the_two_sided_diff_pairs_items_by_key_and_drops_server_fields() {
        let keys = ListKeys::fallback();
        let mut to = live();
        let mounts = container(&mut to)["volumeMounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["mountPath"] != "/tmp");
        mounts.push(json!({"name": "scratch", "mountPath": "/srv", "subPath": "srv"}));
        let d = object_diff(&live(), &to, &keys);
        assert_eq!(
            paths(&d),
            [
                "spec.template.spec.containers[name=app].volumeMounts[mountPath=/tmp]",
                "spec.template.spec.containers[name=app].volumeMounts[mountPath=/srv]"
            ]
        );
        assert_eq!(d[0].to, None);
        assert_eq!(d[1].from, None);
        // The dry-run answer differs only in server metadata: no drift.
        let mut answer = live();
        answer["metadata"]["resourceVersion"] = json!("43");
        answer["metadata"]["generation"] = json!(4);
        assert!(confirmed_changes(&live(), &answer, &keys).is_empty());
        answer["spec"]["replicas"] = json!(3);
        assert_eq!(
            paths(&confirmed_changes(&live(), &answer, &keys)),
            ["spec.replicas"]
        );
    }

    #[test]
    fn secret_values_are_hidden_but_the_changed_keys_are_named() {
        let change = |path: &str, from: Value, to: Value| FieldChange {
            path: path.into(),
            from: Some(from),
            to: Some(to),
        };
        let mut changes = vec![
            change("data.password", json!("aHVudGVyMg=="), json!("b3RoZXI=")),
            change(
                "data",
                json!({"a": "eA=="}),
                json!({"a": "eQ==", "b": "eg=="}),
            ),
            change("metadata.labels.tier", json!("a"), json!("b")),
            change("dataset", json!("x"), json!("y")),
        ];
        changes[1].from = None;
        let mut secret = changes.clone();
        hide_secret_values("Secret", &mut secret);
        assert_eq!(secret[0].from, Some(json!(HIDDEN)));
        assert_eq!(secret[0].to, Some(json!(HIDDEN)));
        assert_eq!(secret[0].path, "data.password");
        assert_eq!(secret[1].from, None);
        assert_eq!(secret[1].to, Some(json!({"a": HIDDEN, "b": HIDDEN})));
        assert_eq!(secret[2], changes[2]);
        assert_eq!(secret[3], changes[3]);
        // A ConfigMap's data is no secret.
        let mut config = changes.clone();
        hide_secret_values("ConfigMap", &mut config);
        assert_eq!(config, changes);
    }
}
