//! OpenAPI v3 documents generated from the resource table.
//!
//! kubectl fetches `/openapi/v3` (an index) and the document of each group
//! version it writes to. What it needs from them: every kind's PATCH
//! operation tagged with `x-kubernetes-group-version-kind` and declaring the
//! `fieldValidation` query parameter (then kubectl leaves validation to the
//! server), and a schema per kind. Built-in kinds get their real schemas
//! ([`crate::wire::schemas`]); CRD schemas are served as given.

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
