//! Structural schemas of CustomResourceDefinitions: what the API server does
//! with a custom resource before it stores it
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/>,
//! sections "Field pruning", "Defaulting" and "Validation"):
//!
//! 1. **pruning**: fields the schema does not declare are dropped, unless the
//!    level says `x-kubernetes-preserve-unknown-fields: true`; `apiVersion`,
//!    `kind` and `metadata` stay at the root and in
//!    `x-kubernetes-embedded-resource` objects; a non-nullable `null` is
//!    dropped too ("Null values for fields that either don't specify the
//!    nullable flag, or give it a false value, will be pruned before
//!    defaulting happens");
//! 2. **defaulting**: a missing field whose parent exists gets its `default`;
//! 3. **validation**: `type` (and `x-kubernetes-int-or-string`), `nullable`,
//!    `required`, `enum`, `minimum`/`maximum` (and their `exclusive*`), with
//!    the field errors apiextensions-apiserver answers (422 naming the path:
//!    `spec.size: Invalid value: "big": spec.size in body must be of type
//!    integer: "string"`).
//!
//! The same walk finds the fields pruning would drop, for `fieldValidation`
//! (`Strict` refuses them, `Warn` answers warnings).

use serde_json::Value;

use crate::errors::Cause;

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn embedded(schema: &Value) -> bool {
    schema["x-kubernetes-embedded-resource"].as_bool() == Some(true)
}

fn nullable(schema: &Value) -> bool {
    schema["nullable"].as_bool() == Some(true)
}

/// The schema of `key` inside an object of `schema`, if declared.
fn property<'s>(schema: &'s Value, key: &str) -> Option<&'s Value> {
    if let Some(p) = schema["properties"].get(key) {
        return Some(p);
    }
    match &schema["additionalProperties"] {
        s @ Value::Object(_) => Some(s),
        _ => None,
    }
}

/// Keys an object keeps regardless of its schema.
fn always_kept(key: &str, root_or_embedded: bool) -> bool {
    root_or_embedded && matches!(key, "apiVersion" | "kind" | "metadata")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The paths of the fields pruning would drop (`spec.foo`, `spec.items[0].bar`).
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    fn walk(schema: &Value, v: &Value, path: &str, keep_meta: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let keep_all = preserves_unknown(schema);
                for (k, child) in m {
                    if always_kept(k, keep_meta) {
                        continue;
                    }
                    match property(schema, k) {
                        Some(s) => walk(s, child, &join(path, k), embedded(s), out),
                        None if keep_all => {}
                        None => out.push(join(path, k)),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                    for (i, item) in items.iter().enumerate() {
                        walk(s, item, &format!("{path}[{i}]"), embedded(s), out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, obj, "", true, &mut out);
    out
}

/// Drops undeclared fields and non-nullable nulls.
pub fn prune(schema: &Value, obj: &mut Value) {
    fn walk(schema: &Value, v: &mut Value, keep_meta: bool) {
        match v {
            Value::Object(m) => {
                let keep_all = preserves_unknown(schema);
                m.retain(|k, child| {
                    if always_kept(k, keep_meta) {
                        return true;
                    }
                    match property(schema, k) {
                        Some(s) => !child.is_null() || nullable(s),
                        None => keep_all,
                    }
                });
                for (k, child) in m.iter_mut() {
                    if always_kept(k, keep_meta) {
                        continue;
                    }
                    if let Some(s) = property(schema, k) {
                        walk(s, child, embedded(s));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                    for item in items.iter_mut() {
                        walk(s, item, embedded(s));
                    }
                }
            }
            _ => {}
        }
    }
    walk(schema, obj, true);
}

/// Sets the `default` of every missing field whose parent object exists.
pub fn default(schema: &Value, obj: &mut Value) {
    match obj {
        Value::Object(m) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, s) in props {
                    if !m.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, child) in m.iter_mut() {
                if let Some(s) = property(schema, k) {
                    default(s, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for item in items.iter_mut() {
                    default(s, item);
                }
            }
        }
        _ => {}
    }
}

/// The OpenAPI type name of a JSON value, as kube-openapi's validator names it.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A scalar as Go's `%v`/`%q` prints it in a field error.
fn printed(v: &Value) -> String {
    v.to_string()
}

fn type_matches(schema: &Value, v: &Value) -> bool {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        return matches!(type_of(v), "integer" | "string");
    }
    match schema["type"].as_str() {
        None | Some("") => true,
        Some("number") => v.is_number(),
        Some(t) => type_of(v) == t,
    }
}

/// Field errors of an (already pruned and defaulted) object.
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    fn walk(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
        if v.is_null() {
            // Non-nullable nulls were pruned; what is left is nullable.
            return;
        }
        if !type_matches(schema, v) {
            // field.TypeInvalid with kube-openapi's InvalidType: the value
            // printed is the actual type's name; int-or-string is
            // `anyOf: [integer, string]`, named "integer,string".
            let want = schema["type"].as_str().unwrap_or("integer,string");
            let got = type_of(v);
            out.push(Cause {
                reason: "FieldValueTypeInvalid".into(),
                message: format!(
                    "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
                ),
                field: path.into(),
            });
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(v)
        {
            let list: Vec<String> = allowed.iter().map(printed).collect();
            out.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    printed(v),
                    list.join(", ")
                ),
                field: path.into(),
            });
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = schema["minimum"].as_f64() {
                let exclusive = schema["exclusiveMinimum"].as_bool() == Some(true);
                if n < min || exclusive && n == min {
                    let op = if exclusive {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    out.push(Cause::invalid(
                        path,
                        &v.to_string(),
                        &format!("{path} in body should be {op} {}", schema["minimum"]),
                    ));
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                let exclusive = schema["exclusiveMaximum"].as_bool() == Some(true);
                if n > max || exclusive && n == max {
                    let op = if exclusive {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    out.push(Cause::invalid(
                        path,
                        &v.to_string(),
                        &format!("{path} in body should be {op} {}", schema["maximum"]),
                    ));
                }
            }
        }
        match v {
            Value::Object(m) => {
                for r in schema["required"].as_array().into_iter().flatten() {
                    if let Some(r) = r.as_str()
                        && !m.contains_key(r)
                    {
                        out.push(Cause::required(&join(path, r), ""));
                    }
                }
                for (k, child) in m {
                    if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(s) = property(schema, k) {
                        walk(s, child, &join(path, k), out);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                    for (i, item) in items.iter().enumerate() {
                        walk(s, item, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, obj, "", &mut out);
    out
}

/// Prunes, defaults and validates a custom resource with its version's schema.
pub fn admit(schema: &Value, obj: &mut Value) -> Vec<Cause> {
    let metadata = obj.get("metadata").cloned();
    prune(schema, obj);
    default(schema, obj);
    // metadata is ObjectMeta, never pruned or defaulted by the CRD schema.
    if let (Some(m), Some(o)) = (metadata, obj.as_object_mut()) {
        o.insert("metadata".into(), m);
    }
    validate(schema, obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "items": {"type": "array", "items": {
                            "type": "object", "properties": {"name": {"type": "string"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "note": {"type": "string", "nullable": true}
                    }
                }
            }
        })
    }

    #[test]
    fn prunes_undeclared_fields_but_keeps_preserved_ones() {
        let mut o = json!({
            "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
            "top": 1,
            "spec": {"size": 2, "foo": 1, "extra": {"any": {"thing": 1}},
                     "items": [{"name": "a", "bar": 1}], "labels": {"k": "v"},
                     "mode": null, "note": null}
        });
        assert_eq!(
            unknown_fields(&schema(), &o),
            vec!["spec.foo", "spec.items[0].bar", "top"]
        );
        assert!(admit(&schema(), &mut o).is_empty());
        assert_eq!(
            o,
            json!({
                "apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
                "spec": {"size": 2, "extra": {"any": {"thing": 1}}, "items": [{"name": "a"}],
                         "labels": {"k": "v"}, "mode": "safe", "note": null}
            })
        );
    }

    #[test]
    fn validates_with_the_api_servers_field_errors() {
        let mut o = json!({"spec": {"size": "big", "mode": "slow", "port": true}});
        let lines: Vec<String> = admit(&schema(), &mut o).iter().map(Cause::line).collect();
        assert_eq!(
            lines,
            vec![
                "spec.mode: Unsupported value: \"slow\": supported values: \"fast\", \"safe\"",
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
                "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
            ]
        );
        let mut o = json!({"spec": {"size": 11}});
        let lines: Vec<String> = admit(&schema(), &mut o).iter().map(Cause::line).collect();
        assert_eq!(
            lines,
            vec![
                "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
            ]
        );
        let mut o = json!({"spec": {}});
        let lines: Vec<String> = admit(&schema(), &mut o).iter().map(Cause::line).collect();
        assert_eq!(lines, vec!["spec.size: Required value"]);
    }
}
