//! Discovery documents generated from the resource table.
//!
//! Both forms are served: the per-group-version `APIResourceList`s behind
//! `APIVersions`/`APIGroupList`, and the aggregated form
//! (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, KEP-3352) that kubectl
//! v1.32 and client-go ask `/api` and `/apis` for first, answered only when the
//! `Accept` header names it (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`)
//! and built from the same `APIResourceList`s so the two never disagree.

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceInfo};

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(&g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = reg.groups().into_iter().find(|(g, _)| g == group)?;
    let mut v = group_json(&g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn resource_json(r: &ResourceInfo) -> Value {
    let mut v = json!({
        "name": r.resource,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    v
}

pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let rs = reg.in_group_version(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in rs {
        resources.push(resource_json(r));
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.resource),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        let scaled = matches!(
            (r.group.as_str(), r.resource.as_str()),
            ("apps", "deployments" | "statefulsets" | "replicasets")
                | ("", "replicationcontrollers")
        ) || r.crd.is_some() && r.scale;
        if scaled {
            resources.push(json!({
                "name": format!("{}/scale", r.resource),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.group.is_empty() && r.resource == "pods" {
            resources.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
        if r.group.is_empty() && r.resource == "namespaces" {
            resources.push(json!({
                "name": "namespaces/finalize",
                "singularName": "",
                "namespaced": false,
                "kind": "Namespace",
                "verbs": ["update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// The media type of aggregated discovery v2, as client-go's `isV2ContentType` checks it.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        parts.next() == Some("application/json") && {
            let params: Vec<&str> = parts.collect();
            ["g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"]
                .iter()
                .all(|p| params.contains(p))
        }
    })
}

/// One `APIResourceDiscovery` with its subresources, from the plain entries
/// (`deployments`, `deployments/status`, ...).
fn aggregated_resources(group: &str, version: &str, plain: &[Value]) -> Vec<Value> {
    let kind_of = |e: &Value| {
        json!({
            "group": e["group"].as_str().unwrap_or(group),
            "version": e["version"].as_str().unwrap_or(version),
            "kind": e["kind"],
        })
    };
    let mut out: Vec<Value> = Vec::new();
    for e in plain {
        let name = e["name"].as_str().unwrap_or_default();
        let scope = if e["namespaced"].as_bool() == Some(true) {
            "Namespaced"
        } else {
            "Cluster"
        };
        match name.split_once('/') {
            None => {
                let mut r = json!({
                    "resource": name,
                    "responseKind": kind_of(e),
                    "scope": scope,
                    "singularResource": e["singularName"],
                    "verbs": e["verbs"],
                });
                for k in ["shortNames", "categories"] {
                    if let Some(v) = e.get(k) {
                        r[k] = v.clone();
                    }
                }
                out.push(r);
            }
            Some((parent, sub)) => {
                if let Some(p) = out.iter_mut().find(|r| r["resource"] == parent) {
                    let subs = p
                        .as_object_mut()
                        .expect("an object")
                        .entry("subresources")
                        .or_insert_with(|| json!([]));
                    if let Some(a) = subs.as_array_mut() {
                        a.push(json!({
                            "subresource": sub,
                            "responseKind": kind_of(e),
                            "verbs": e["verbs"],
                        }));
                    }
                }
            }
        }
    }
    out
}

/// The aggregated document of `/api` (`core`) or `/apis`.
pub fn aggregated(reg: &Registry, core: bool) -> Value {
    let mut items = Vec::new();
    for (group, versions) in reg.groups() {
        if group.is_empty() != core {
            continue;
        }
        let vs: Vec<Value> = versions
            .iter()
            .filter_map(|v| {
                let list = resource_list(reg, &group, v)?;
                let plain = list["resources"].as_array().cloned().unwrap_or_default();
                Some(json!({
                    "version": v,
                    "resources": aggregated_resources(&group, v, &plain),
                    "freshness": "Current",
                }))
            })
            .collect();
        let mut metadata = json!({"creationTimestamp": null});
        if !core {
            metadata["name"] = json!(group);
        }
        items.push(json!({"metadata": metadata, "versions": vs}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}
