//! How the API server identifies the items of a list, per field: the
//! `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` extensions (and
//! the older `x-kubernetes-patch-merge-key`) of the cluster's OpenAPI v3
//! schema. Server-side apply merges lists by these keys
//! (<https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy>),
//! so a comparison of what Caelus applied with what is live must match items
//! the same way: `volumeMounts` by `mountPath` (one volume may be mounted at
//! several paths), container `ports` by `containerPort` + `protocol` (53/TCP
//! and 53/UDP are two items), `env` by `name`.
//!
//! The keys come from the cluster when it serves a schema for the kind
//! ([`ListKeys::from_openapi`]); for fields it does not describe, a built-in
//! table of the core kinds' lists is the fallback ([`fallback_list_type`]).

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// How a list's items are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// One value: replaced and compared whole (`args`, `tolerations`).
    Atomic,
    /// A set of scalars (`metadata.finalizers`).
    Set,
    /// Items identified by these key fields.
    Map(Vec<String>),
}

/// The list types of one kind, by field path (field names from the object's
/// root, list items transparent: `spec.template.spec.containers.ports`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListKeys {
    by_path: BTreeMap<String, ListType>,
}

/// How deep a schema is followed: Kubernetes kinds nest lists at most ~10
/// levels; `JSONSchemaProps` refers to itself and must not loop.
const MAX_DEPTH: usize = 16;

impl ListKeys {
    /// No schema: every list is typed by the built-in table.
    pub fn fallback() -> ListKeys {
        ListKeys::default()
    }

    /// Whether the cluster's schema described any list of this kind.
    pub fn from_schema(&self) -> bool {
        !self.by_path.is_empty()
    }

    /// The list keys of the kind `group`/`version`/`kind` in one OpenAPI v3
    /// group-version document (`/openapi/v3/apis/apps/v1`): the schema under
    /// `components.schemas` tagged with that `x-kubernetes-group-version-kind`,
    /// followed through `$ref`s. `None` when the document has no such kind.
    pub fn from_openapi(doc: &Value, group: &str, version: &str, kind: &str) -> Option<ListKeys> {
        let schemas = doc["components"]["schemas"].as_object()?;
        let (name, root) = schemas.iter().find(|(_, s)| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g["group"] == group && g["version"] == version && g["kind"] == kind)
        })?;
        let mut keys = ListKeys::default();
        let mut seen = HashSet::from([name.clone()]);
        collect(schemas, root, &mut Vec::new(), &mut seen, &mut keys.by_path);
        Some(keys)
    }

    /// The list type at `path`: the schema's word when it described the
    /// field, else the built-in table, else `None` (unknown).
    pub fn list_type(&self, path: &[&str]) -> Option<ListType> {
        self.by_path
            .get(&path.join("."))
            .cloned()
            .or_else(|| fallback_list_type(path))
    }
}

/// Follows `$ref` (direct or in a one-element `allOf`, as Kubernetes writes it).
fn resolve<'a>(
    schemas: &'a serde_json::Map<String, Value>,
    schema: &'a Value,
) -> (&'a Value, Option<&'a str>) {
    let reference = schema["$ref"].as_str().or_else(|| {
        schema["allOf"]
            .as_array()
            .and_then(|all| all.iter().find_map(|s| s["$ref"].as_str()))
    });
    match reference.and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => match schemas.get(name) {
            Some(s) => (s, Some(name)),
            None => (schema, None),
        },
        None => (schema, None),
    }
}

fn list_type_of(schema: &Value) -> ListType {
    let keys = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    };
    match schema["x-kubernetes-list-type"].as_str() {
        Some("map") => ListType::Map(keys(&schema["x-kubernetes-list-map-keys"])),
        Some("set") => ListType::Set,
        Some(_) => ListType::Atomic,
        None => match schema["x-kubernetes-patch-merge-key"].as_str() {
            Some(key) => ListType::Map(vec![key.to_string()]),
            None => ListType::Atomic,
        },
    }
}

fn collect(
    schemas: &serde_json::Map<String, Value>,
    schema: &Value,
    path: &mut Vec<String>,
    seen: &mut HashSet<String>,
    out: &mut BTreeMap<String, ListType>,
) {
    if path.len() > MAX_DEPTH {
        return;
    }
    let (schema, name) = resolve(schemas, schema);
    if let Some(name) = name
        && !seen.insert(name.to_string())
    {
        return;
    }
    if schema["type"] == "array" || schema.get("items").is_some() {
        if !path.is_empty() {
            out.insert(path.join("."), list_type_of(schema));
        }
        collect(schemas, &schema["items"], path, seen, out);
    } else if let Some(properties) = schema["properties"].as_object() {
        for (field, sub) in properties {
            path.push(field.clone());
            collect(schemas, sub, path, seen, out);
            path.pop();
        }
    }
    if let Some(name) = name {
        seen.remove(name);
    }
}

/// The built-in table: the associative and set lists of the core kinds
/// (from the Kubernetes API types' `listType`/`listMapKey` markers) that
/// charts write. `path` is the chain of field names to the list.
pub fn fallback_list_type(path: &[&str]) -> Option<ListType> {
    let last = *path.last()?;
    let parent = if path.len() >= 2 {
        path[path.len() - 2]
    } else {
        ""
    };
    let map = |keys: &[&str]| Some(ListType::Map(keys.iter().map(|k| k.to_string()).collect()));
    let in_container = matches!(
        parent,
        "containers" | "initContainers" | "ephemeralContainers"
    );
    match last {
        "finalizers" if parent == "metadata" => Some(ListType::Set),
        "ownerReferences" if parent == "metadata" => map(&["uid"]),
        "containers" | "initContainers" | "ephemeralContainers" => map(&["name"]),
        "ports" if in_container => map(&["containerPort", "protocol"]),
        // A Service's ports.
        "ports" if parent == "spec" => map(&["port", "protocol"]),
        "env" if in_container => map(&["name"]),
        "volumeMounts" if in_container => map(&["mountPath"]),
        "volumeDevices" if in_container => map(&["devicePath"]),
        "resizePolicy" if in_container => map(&["resourceName"]),
        "volumes" if parent == "spec" => map(&["name"]),
        "imagePullSecrets" => map(&["name"]),
        "hostAliases" => map(&["ip"]),
        "readinessGates" => map(&["conditionType"]),
        "resourceClaims" if parent == "spec" => map(&["name"]),
        "topologySpreadConstraints" => map(&["topologyKey", "whenUnsatisfiable"]),
        "conditions" if parent == "status" => map(&["type"]),
        // Lists of plain values and lists the API types mark atomic.
        "args" | "command" | "tolerations" | "accessModes" | "policyTypes" | "rules"
        | "subjects" | "ingress" | "egress" | "tls" | "items" | "sources" => Some(ListType::Atomic),
        _ => None,
    }
}

/// The value of one key field of an item, with the default the API server
/// fills in before matching (port protocols are TCP unless said otherwise).
pub fn key_value(item: &Value, key: &str) -> Option<Value> {
    match item.get(key) {
        Some(v) if !v.is_null() => Some(v.clone()),
        _ if key == "protocol" => Some(Value::from("TCP")),
        _ => None,
    }
}

/// Whether two items of an associative list are the same item.
pub fn same_item(a: &Value, b: &Value, keys: &[String]) -> bool {
    keys.iter().all(|k| key_value(a, k) == key_value(b, k))
}

/// How an item is named in a field path: `[mountPath=/data]`,
/// `[containerPort=53,protocol=UDP]`.
pub fn item_label(item: &Value, keys: &[String]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|k| {
            let v = match key_value(item, k) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            format!("{k}={v}")
        })
        .collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_built_in_table_keys_the_lists_that_name_matching_gets_wrong() {
        let t = |p: &str| fallback_list_type(&p.split('.').collect::<Vec<_>>());
        let map = |k: &[&str]| Some(ListType::Map(k.iter().map(|s| s.to_string()).collect()));
        let pod = "spec.template.spec";
        assert_eq!(t(&format!("{pod}.containers")), map(&["name"]));
        assert_eq!(
            t(&format!("{pod}.containers.volumeMounts")),
            map(&["mountPath"])
        );
        assert_eq!(
            t(&format!("{pod}.initContainers.ports")),
            map(&["containerPort", "protocol"])
        );
        assert_eq!(t("spec.ports"), map(&["port", "protocol"]));
        assert_eq!(t(&format!("{pod}.containers.env")), map(&["name"]));
        assert_eq!(t(&format!("{pod}.volumes")), map(&["name"]));
        assert_eq!(t("metadata.finalizers"), Some(ListType::Set));
        assert_eq!(t(&format!("{pod}.containers.args")), Some(ListType::Atomic));
        assert_eq!(t("data.whatever"), None);
    }

    /// The shape of the real `/openapi/v3/apis/apps/v1` document (abridged).
    fn apps_v1() -> Value {
        json!({"components": {"schemas": {
            "io.k8s.api.apps.v1.Deployment": {
                "type": "object",
                "properties": {"spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}]}},
                "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}]
            },
            "io.k8s.api.apps.v1.DeploymentSpec": {"type": "object", "properties": {
                "template": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"}]}}},
            "io.k8s.api.core.v1.PodTemplateSpec": {"type": "object", "properties": {
                "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]}}},
            "io.k8s.api.core.v1.PodSpec": {"type": "object", "properties": {
                "containers": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}]},
                    "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
                "tolerations": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "atomic"},
                "volumes": {"type": "array", "items": {"type": "object"}, "x-kubernetes-patch-merge-key": "name"}}},
            "io.k8s.api.core.v1.Container": {"type": "object", "properties": {
                "ports": {"type": "array", "items": {"type": "object"},
                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"], "x-kubernetes-list-type": "map"},
                "volumeMounts": {"type": "array", "items": {"type": "object"},
                    "x-kubernetes-list-map-keys": ["mountPath"], "x-kubernetes-list-type": "map"},
                "args": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
                "resources": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}]}}}
        }}})
    }

    #[test]
    fn keys_are_read_from_the_cluster_s_openapi_through_refs() {
        let keys = ListKeys::from_openapi(&apps_v1(), "apps", "v1", "Deployment").unwrap();
        assert!(keys.from_schema());
        let t = |p: &str| keys.list_type(&p.split('.').collect::<Vec<_>>());
        let pod = "spec.template.spec";
        assert_eq!(
            t(&format!("{pod}.containers.ports")),
            Some(ListType::Map(vec![
                "containerPort".into(),
                "protocol".into()
            ]))
        );
        assert_eq!(
            t(&format!("{pod}.containers.volumeMounts")),
            Some(ListType::Map(vec!["mountPath".into()]))
        );
        assert_eq!(t(&format!("{pod}.tolerations")), Some(ListType::Atomic));
        // Only a patch merge key: still associative.
        assert_eq!(
            t(&format!("{pod}.volumes")),
            Some(ListType::Map(vec!["name".into()]))
        );
        // A self-referencing schema ends; fields it does not describe fall back.
        assert_eq!(t("metadata.finalizers"), Some(ListType::Set));
        assert!(ListKeys::from_openapi(&apps_v1(), "apps", "v1", "StatefulSet").is_none());
    }

    #[test]
    fn schemas_that_describe_no_lists_leave_the_table_in_charge() {
        let open = json!({"components": {"schemas": {"io.kubesim.core.v1.ConfigMap": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "ConfigMap"}]}}}});
        let keys = ListKeys::from_openapi(&open, "", "v1", "ConfigMap").unwrap();
        assert!(!keys.from_schema());
        assert_eq!(keys, ListKeys::fallback());
    }

    #[test]
    fn items_match_by_every_key_with_the_protocol_default() {
        let keys = vec!["containerPort".to_string(), "protocol".to_string()];
        let tcp = json!({"containerPort": 53});
        let live_tcp = json!({"containerPort": 53, "protocol": "TCP"});
        let udp = json!({"containerPort": 53, "protocol": "UDP"});
        assert!(same_item(&tcp, &live_tcp, &keys));
        assert!(!same_item(&tcp, &udp, &keys));
        assert_eq!(item_label(&udp, &keys), "[containerPort=53,protocol=UDP]");
        assert_eq!(item_label(&tcp, &keys), "[containerPort=53,protocol=TCP]");
    }
}
