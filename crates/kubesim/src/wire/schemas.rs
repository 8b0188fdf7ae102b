//! OpenAPI v3 schemas of the built-in kinds, in the API server's shape:
//! `components.schemas` keyed like `io.k8s.api.apps.v1.Deployment`, message
//! references as `allOf: [{$ref}]`, `x-kubernetes-group-version-kind` on
//! kinds, and the list/map/patch extensions kube-openapi derives from the
//! upstream `+listType`, `+listMapKey`, `+patchMergeKey`, `+patchStrategy`,
//! `+mapType` markers
//! (<https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy>).
//! Generated from the same table as the protobuf codec ([`super::types`]).

use std::collections::{BTreeSet, VecDeque};

use serde_json::{Map, Value, json};

use super::types::{Field, Types, types};

const REF_PREFIX: &str = "#/components/schemas/";

/// The schema name of a built-in kind, e.g. `io.k8s.api.apps.v1.Deployment`.
pub fn schema_name(api_version: &str, kind: &str) -> Option<String> {
    let t = types().ok()?;
    let m = t.kinds.get(&format!("{api_version}/{kind}"))?;
    Some(t.openapi_name(m))
}

/// The schemas for a built-in kind and its list: `(kind schema name, every
/// schema they reference)`. `None` for kinds without a message (CRDs).
pub fn components(api_version: &str, kind: &str) -> Option<(String, Map<String, Value>)> {
    let t = types().ok()?;
    let root = t.kinds.get(&format!("{api_version}/{kind}"))?.clone();
    let list = format!("{root}List");
    let mut out = Map::new();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([root.clone()]);
    if t.messages.contains_key(&list) {
        queue.push_back(list.clone());
    }
    while let Some(m) = queue.pop_front() {
        if !seen.insert(m.clone()) {
            continue;
        }
        let mut refs = Vec::new();
        let mut schema = message_schema(t, &m, &mut refs);
        if let Some((av, k)) = t.kind_of(&m) {
            let (group, version) = av.split_once('/').unwrap_or(("", av.as_str()));
            if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert("apiVersion".into(), json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}));
                props.insert("kind".into(), json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}));
            }
            schema["x-kubernetes-group-version-kind"] =
                json!([{"group": group, "kind": k, "version": version}]);
        }
        out.insert(t.openapi_name(&m), schema);
        queue.extend(refs);
    }
    Some((t.openapi_name(&root), out))
}

fn message_ref(t: &Types, ty: &str, refs: &mut Vec<String>) -> Value {
    refs.push(ty.to_string());
    json!({"$ref": format!("{REF_PREFIX}{}", t.openapi_name(ty))})
}

fn message_schema(t: &Types, name: &str, refs: &mut Vec<String>) -> Value {
    let msg = t.messages.get(name);
    let mut schema = match special(name) {
        Some(s) => s,
        None => {
            let mut props = Map::new();
            collect_properties(t, name, &mut props, refs);
            let mut s = json!({"type": "object", "properties": props});
            if let Some(m) = msg.filter(|m| !m.required.is_empty()) {
                s["required"] = json!(m.required);
            }
            s
        }
    };
    if let Some(d) = msg.and_then(|m| m.description.as_deref()) {
        schema["description"] = json!(d);
    }
    schema
}

/// Fields of a message, with embedded (`json:",inline"`) structs flattened.
fn collect_properties(
    t: &Types,
    name: &str,
    props: &mut Map<String, Value>,
    refs: &mut Vec<String>,
) {
    let Some(msg) = t.messages.get(name) else {
        return;
    };
    for f in &msg.fields {
        if f.inline {
            collect_properties(t, f.ty.as_deref().unwrap_or_default(), props, refs);
            continue;
        }
        props.insert(f.json.clone(), field_schema(t, f, refs));
    }
}

/// Types whose JSON form is not their message (they have custom marshallers).
fn special(name: &str) -> Option<Value> {
    Some(match name {
        "apimachinery.pkg.api.resource.Quantity" => {
            json!({"oneOf": [{"type": "string"}, {"type": "number"}]})
        }
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            json!({"type": "string", "format": "date-time"})
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => json!({"type": "string"}),
        "apimachinery.pkg.util.intstr.IntOrString" => {
            json!({"oneOf": [{"type": "integer"}, {"type": "string"}], "format": "int-or-string"})
        }
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            json!({"type": "object"})
        }
        n if n.starts_with("apiextensions_apiserver.")
            && (n.ends_with(".JSON")
                || n.ends_with("JSONSchemaPropsOrArray")
                || n.ends_with("JSONSchemaPropsOrBool")
                || n.ends_with("JSONSchemaPropsOrStringArray")) =>
        {
            json!({"x-kubernetes-preserve-unknown-fields": true})
        }
        _ => return None,
    })
}

fn item_schema(t: &Types, f: &Field, refs: &mut Vec<String>, in_map: bool) -> Value {
    match f.kind.as_str() {
        "string" => json!({"type": "string", "default": ""}),
        "bytes" => json!({"type": "string", "format": "byte"}),
        "bool" => json!({"type": "boolean", "default": false}),
        "int32" => json!({"type": "integer", "format": "int32", "default": 0}),
        "int64" => json!({"type": "integer", "format": "int64", "default": 0}),
        "double" => json!({"type": "number", "format": "double", "default": 0}),
        _ => {
            let r = message_ref(t, f.ty.as_deref().unwrap_or_default(), refs);
            if in_map {
                r
            } else {
                json!({"allOf": [r], "default": {}})
            }
        }
    }
}

fn field_schema(t: &Types, f: &Field, refs: &mut Vec<String>) -> Value {
    let mut s = if f.map {
        json!({"type": "object", "additionalProperties": item_schema(t, f, refs, true)})
    } else if f.repeated {
        json!({"type": "array", "items": item_schema(t, f, refs, false)})
    } else {
        let mut s = item_schema(t, f, refs, false);
        if let Some(o) = s.as_object_mut() {
            // Scalars carry defaults only inside lists and maps.
            if f.kind != "message" || f.optional {
                o.remove("default");
            }
        }
        s
    };
    if let Some(d) = &f.description {
        s["description"] = json!(d);
    }
    if let Some(lt) = &f.list_type {
        s["x-kubernetes-list-type"] = json!(lt);
    }
    if let Some(keys) = &f.list_map_keys {
        s["x-kubernetes-list-map-keys"] = json!(keys);
    }
    if let Some(k) = &f.patch_merge_key {
        s["x-kubernetes-patch-merge-key"] = json!(k);
    }
    if let Some(p) = &f.patch_strategy {
        s["x-kubernetes-patch-strategy"] = json!(p);
    }
    if let Some(mt) = f.map_type.as_ref().or(f.struct_type.as_ref()) {
        s["x-kubernetes-map-type"] = json!(mt);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_schema_has_the_real_shape() {
        let (name, c) = components("apps/v1", "Deployment").unwrap();
        assert_eq!(name, "io.k8s.api.apps.v1.Deployment");
        let d = &c[&name];
        assert_eq!(
            d["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(
            d["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let spec = &c["io.k8s.api.apps.v1.DeploymentSpec"];
        assert_eq!(spec["required"], json!(["selector", "template"]));
        assert_eq!(spec["properties"]["replicas"]["format"], "int32");
        let pod = &c["io.k8s.api.core.v1.PodSpec"];
        let containers = &pod["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let ports = &c["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        // Embedded structs are flattened: a Volume has configMap directly.
        assert!(c["io.k8s.api.core.v1.Volume"]["properties"]["configMap"].is_object());
        assert!(c.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(c.contains_key("io.k8s.api.apps.v1.DeploymentList"));
        // Every reference resolves.
        let text = serde_json::to_string(&c).unwrap();
        for r in text.split(REF_PREFIX).skip(1) {
            let target = r.split('"').next().unwrap();
            assert!(c.contains_key(target), "dangling $ref {target}");
        }
    }

    #[test]
    fn custom_kinds_have_no_builtin_schema() {
        assert!(components("example.com/v1", "Widget").is_none());
    }
}
