//! OpenAPI documents generated from the resource table.
//!
//! kubectl fetches `/openapi/v3` (an index) and the document of each group
//! version it writes to. What it needs from them: every kind's PATCH
//! operation tagged with `x-kubernetes-group-version-kind` and declaring the
//! `fieldValidation` query parameter (then kubectl leaves validation to the
//! server), and a schema per kind. Built-in kinds get their real schemas
//! ([`crate::wire::schemas`]); CRD schemas are served as given.
//! `/openapi/v2` is the same content as one Swagger 2.0 document ([`v2`]).

use serde_json::{Map, Value, json};

use crate::resources::{Registry, ResourceInfo};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn doc_hash(reg: &Registry, group: &str, version: &str) -> String {
    let names: Vec<Value> = reg
        .in_group_version(group, version)
        .iter()
        .map(|r| json!([r.resource, r.kind, r.schema]))
        .collect();
    crate::meta::short_hash(&Value::Array(names)).to_uppercase()
}

pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in reg.groups() {
        for v in versions {
            let p = gv_path(&group, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", doc_hash(reg, &group, &v))}),
            );
        }
    }
    json!({ "paths": paths })
}

fn schema_name(r: &ResourceInfo) -> String {
    if r.crd.is_none()
        && let Some(name) = crate::wire::schemas::schema_name(&r.api_version(), &r.kind)
    {
        return name;
    }
    let g = if r.group.is_empty() { "core" } else { &r.group };
    format!("io.kubesim.{g}.{}.{}", r.version, r.kind)
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(r: &ResourceInfo, action: &str, verb: &str, params: &[&str], body: bool) -> Value {
    let mut op = json!({
        "operationId": format!("{verb}{}", r.kind),
        "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(r))}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    });
    if body {
        let ct = if verb == "patch" {
            json!({
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
            })
        } else {
            json!({"*/*": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(r))}}})
        };
        op["requestBody"] = json!({"content": ct});
    }
    op
}

pub fn document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let rs = reg.in_group_version(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    for r in rs {
        let base = format!("/{}", gv_path(group, version));
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.resource)
        } else {
            format!("{base}/{}", r.resource)
        };
        paths.insert(
            coll.clone(),
            json!({
                "get": operation(r, "list", "list", &["labelSelector", "fieldSelector", "limit", "continue", "watch", "resourceVersion"], false),
                "post": operation(r, "post", "create", &write, true),
                "delete": operation(r, "deletecollection", "deletecollection", &["labelSelector", "fieldSelector", "propagationPolicy"], false),
            }),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": operation(r, "get", "read", &["pretty"], false),
                "put": operation(r, "put", "replace", &write, true),
                "patch": operation(r, "patch", "patch", &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"], true),
                "delete": operation(r, "delete", "delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"], false),
            }),
        );
        if r.has_status {
            paths.insert(
                format!("{coll}/{{name}}/status"),
                json!({
                    "get": operation(r, "get", "read", &["pretty"], false),
                    "put": operation(r, "put", "replace", &write, true),
                    "patch": operation(r, "patch", "patch", &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"], true),
                }),
            );
        }
        if r.crd.is_none()
            && let Some((_, components)) =
                crate::wire::schemas::components(&r.api_version(), &r.kind)
        {
            // Built-ins: the real schemas (see wire::schemas).
            schemas.extend(components);
            continue;
        }
        let mut schema = r.schema.clone().unwrap_or_else(|| {
            json!({
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                },
                "x-kubernetes-preserve-unknown-fields": true,
            })
        });
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        schemas.insert(schema_name(r), schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The media types `/openapi/v2` answers in. The API server (kube-openapi
/// `handler.go`) also serves the gnostic protobuf form
/// (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`); kubesim
/// serves JSON only, so a client that accepts nothing else gets what
/// kube-openapi answers an unsupported `Accept`: 406 Not Acceptable.
pub fn v2_accepts_json(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|r| {
            matches!(
                r.split(';').next().unwrap_or_default().trim(),
                "application/json" | "application/*" | "*/*"
            )
        })
}

/// The OpenAPI v2 (Swagger 2.0) document of `/openapi/v2`: every served
/// group-version in one document, converted from the same v3 documents
/// (so both describe the same resources and schemas), in the API server's
/// v2 shape: `definitions` keyed `io.k8s.api.apps.v1.Deployment`,
/// `#/definitions/` references with their description beside them, body and
/// path parameters, `consumes`/`produces`.
pub fn v2(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (group, versions) in reg.groups() {
        for v in versions {
            let Some(doc) = document(reg, &group, &v) else {
                continue;
            };
            for (p, item) in doc["paths"].as_object().into_iter().flatten() {
                paths.insert(p.clone(), v2_path_item(p, item));
            }
            let schemas = doc["components"]["schemas"].as_object();
            for (name, schema) in schemas.into_iter().flatten() {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| v2_schema(schema));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    })
}

fn v2_path_item(path: &str, item: &Value) -> Value {
    let mut out = Map::new();
    for (method, op) in item.as_object().into_iter().flatten() {
        out.insert(method.clone(), v2_operation(method, op));
    }
    // Path parameters are declared once per path, as the API server does.
    let params: Vec<Value> = ["name", "namespace"]
        .iter()
        .filter(|p| path.contains(&format!("{{{p}}}")))
        .map(|p| {
            json!({"uniqueItems": true, "type": "string", "description": format!("{p} of the resource"),
                "name": p, "in": "path", "required": true})
        })
        .collect();
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    Value::Object(out)
}

fn v2_operation(method: &str, op: &Value) -> Value {
    let mut out = Map::new();
    for k in [
        "operationId",
        "x-kubernetes-action",
        "x-kubernetes-group-version-kind",
    ] {
        if let Some(v) = op.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut q = p["schema"].clone();
            q["name"] = p["name"].clone();
            q["in"] = p["in"].clone();
            q
        })
        .collect();
    let body = &op["requestBody"]["content"];
    if let Some((_, media)) = body.as_object().and_then(|m| m.iter().next()) {
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": v2_schema(&media["schema"])}));
    }
    out.insert("parameters".into(), Value::Array(params));
    let consumes: Vec<&String> = match body.as_object() {
        Some(m) if method == "patch" => m.keys().collect(),
        _ => Vec::new(),
    };
    out.insert(
        "consumes".into(),
        if consumes.is_empty() {
            json!(["*/*"])
        } else {
            json!(consumes)
        },
    );
    out.insert(
        "produces".into(),
        json!([
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf"
        ]),
    );
    out.insert("schemes".into(), json!(["https"]));
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut resp = json!({"description": r["description"]});
        if let Some(s) = r["content"]["application/json"].get("schema") {
            resp["schema"] = v2_schema(s);
        }
        responses.insert(code.clone(), resp);
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

/// A v3 schema in Swagger 2.0 terms: `$ref`s into `#/definitions/`, a lone
/// `allOf` reference unwrapped (v2 puts the description beside `$ref`),
/// int-or-string and quantities as strings, and what Swagger 2.0 lacks
/// (`nullable`, `oneOf`, `anyOf`, `not`) dropped, as the API server's v2
/// publishing of CRD schemas does.
fn v2_schema(s: &Value) -> Value {
    let Value::Object(m) = s else {
        return s.clone();
    };
    let mut out = Map::new();
    if let Some(Value::Array(all)) = m.get("allOf")
        && all.len() == 1
        && all[0].get("$ref").is_some()
    {
        out.insert("$ref".into(), v2_schema(&all[0])["$ref"].clone());
    }
    if let Some(one) = m.get("oneOf").and_then(Value::as_array) {
        // IntOrString (format int-or-string) and Quantity: strings in v2.
        if one.iter().any(|o| o["type"] == "string") {
            out.insert("type".into(), json!("string"));
        }
    }
    for (k, v) in m {
        match k.as_str() {
            "allOf" if out.contains_key("$ref") => {}
            "nullable" | "oneOf" | "anyOf" | "not" => {}
            "$ref" => {
                let r = v.as_str().unwrap_or_default();
                let r = r.replace("#/components/schemas/", "#/definitions/");
                out.insert(k.clone(), json!(r));
            }
            "properties" | "patternProperties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(n, p)| (n.clone(), v2_schema(p)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" => {
                out.insert(k.clone(), v2_schema(v));
            }
            "allOf" => {
                out.insert(
                    k.clone(),
                    Value::Array(v.as_array().into_iter().flatten().map(v2_schema).collect()),
                );
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_negotiates_like_kube_openapi() {
        assert!(v2_accepts_json(""));
        assert!(v2_accepts_json("application/json, */*"));
        assert!(v2_accepts_json("*/*"));
        assert!(!v2_accepts_json(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
    }

    #[test]
    fn v3_schemas_become_swagger_2() {
        let v3 = json!({"type": "object", "properties": {
            "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.X"}], "description": "d", "default": {}},
            "n": {"type": "integer", "nullable": true},
            "q": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "l": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/io.k8s.Y"}]}},
        }});
        assert_eq!(
            v2_schema(&v3),
            json!({"type": "object", "properties": {
                "spec": {"$ref": "#/definitions/io.k8s.X", "description": "d", "default": {}},
                "n": {"type": "integer"},
                "q": {"type": "string"},
                "l": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.Y"}},
            }})
        );
    }
}
