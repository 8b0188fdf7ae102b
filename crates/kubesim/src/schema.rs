//! Just enough schema knowledge for strategic merge patch and server-side
//! apply: which lists are associative (merged by key), which are sets, and
//! which are atomic. Kubernetes takes this from the OpenAPI `x-kubernetes-list-*`
//! extensions and `patchMergeKey`s; the table below covers the built-in lists
//! that charts and controllers actually touch. Everything else is atomic.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars (`metadata.finalizers`).
    Set,
    /// Items identified by these key fields (SSA keys; the first is the
    /// strategic-merge `patchMergeKey`).
    Map(&'static [&'static str]),
}

/// `path` is the chain of field names from the object root to the list
/// (list item keys are not part of it), e.g. `["spec","template","spec","containers"]`.
pub fn list_type(path: &[&str]) -> ListType {
    let Some(&last) = path.last() else {
        return ListType::Atomic;
    };
    let parent = if path.len() >= 2 {
        path[path.len() - 2]
    } else {
        ""
    };
    match last {
        "finalizers" if parent == "metadata" => ListType::Set,
        "ownerReferences" if parent == "metadata" => ListType::Map(&["uid"]),
        "containers" | "initContainers" | "ephemeralContainers" => ListType::Map(&["name"]),
        "ports"
            if matches!(
                parent,
                "containers" | "initContainers" | "ephemeralContainers"
            ) =>
        {
            ListType::Map(&["containerPort", "protocol"])
        }
        "ports" if parent == "spec" => ListType::Map(&["port", "protocol"]),
        "env" => ListType::Map(&["name"]),
        "volumes" if parent == "spec" => ListType::Map(&["name"]),
        "volumeMounts" => ListType::Map(&["mountPath"]),
        "volumeDevices" => ListType::Map(&["devicePath"]),
        "imagePullSecrets" => ListType::Map(&["name"]),
        "hostAliases" => ListType::Map(&["ip"]),
        "conditions" if parent == "status" => ListType::Map(&["type"]),
        "topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        _ => ListType::Atomic,
    }
}

/// The value of one key field of a list item, with the defaults the API
/// server would have applied (port protocols default to TCP), so that an
/// applied item without `protocol` matches the stored, defaulted one.
pub fn key_value(item: &Value, key: &str) -> Value {
    match item.get(key) {
        Some(v) if !v.is_null() => v.clone(),
        _ if key == "protocol" => Value::from("TCP"),
        _ => Value::Null,
    }
}

/// Whether two items of an associative list have the same identity.
pub fn same_key(a: &Value, b: &Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| key_value(a, k) == key_value(b, k))
}

/// Fills defaults the real API server applies and that keys depend on.
pub fn apply_defaults(obj: &mut Value, path: &mut Vec<String>) {
    match obj {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                path.push(k.clone());
                if let Some(v) = m.get_mut(&k) {
                    apply_defaults(v, path);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            if let ListType::Map(keys) = list_type(&p)
                && keys.contains(&"protocol")
            {
                for it in items.iter_mut() {
                    if let Some(o) = it.as_object_mut()
                        && !o.contains_key("protocol")
                    {
                        o.insert("protocol".into(), Value::from("TCP"));
                    }
                }
            }
            for it in items.iter_mut() {
                apply_defaults(it, path);
            }
        }
        _ => {}
    }
}
