//! The `/scale` subresource (autoscaling/v1 `Scale` over a replica count:
//! Deployments, StatefulSets, ReplicaSets, ReplicationControllers and CRDs
//! that declare `subresources.scale`) and `pods/{name}/log` (simulated
//! lines). <https://kubernetes.io/docs/reference/kubernetes-api/autoscaling-resources/scale-v1/>

use serde_json::{Value, json};

use crate::api::{Api, PatchType, WriteOptions};
use crate::errors::{ApiError, ApiResult};
use crate::patch;
use crate::resources::ResourceInfo;
use crate::store::Inner;

/// Where a resource keeps its replica counts and selector (dotted paths).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub selector: Option<String>,
}

pub fn scale_paths(g: &Inner, info: &ResourceInfo) -> Option<ScalePaths> {
    let builtin = matches!(
        (info.group.as_str(), info.resource.as_str()),
        ("apps", "deployments" | "statefulsets" | "replicasets") | ("", "replicationcontrollers")
    );
    if builtin {
        return Some(ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            selector: None,
        });
    }
    let crd_info = g
        .registry
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    let crd = g.get(crd_info, "", info.crd.as_deref()?)?;
    let version = crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == info.version.as_str())?;
    let s = &version["subresources"]["scale"];
    Some(ScalePaths {
        spec_replicas: s["specReplicasPath"].as_str()?.to_string(),
        status_replicas: s["statusReplicasPath"].as_str()?.to_string(),
        selector: s["labelSelectorPath"].as_str().map(String::from),
    })
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.')
        .split('.')
        .fold(v, |cur, k| &cur[k])
}

fn set_at(v: &mut Value, path: &str, value: Value) {
    let keys: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut cur = v;
    for k in &keys[..keys.len() - 1] {
        if !cur[*k].is_object() {
            cur[*k] = json!({});
        }
        cur = &mut cur[*k];
    }
    cur[keys[keys.len() - 1]] = value;
}

/// The selector string `kubectl get hpa`/`kubectl scale` see in `status`.
fn selector_string(obj: &Value, paths: &ScalePaths) -> Option<String> {
    if let Some(p) = &paths.selector {
        return at(obj, p).as_str().map(String::from);
    }
    let sel = &obj["spec"]["selector"];
    if sel.is_null() {
        return None;
    }
    if sel["matchLabels"].is_null() && sel["matchExpressions"].is_null() {
        // ReplicationControllers use a plain map.
        let parts: Vec<String> = sel
            .as_object()?
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        return Some(parts.join(","));
    }
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "DoesNotExist" => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    parts.sort();
    Some(parts.join(","))
}

fn to_scale(obj: &Value, paths: &ScalePaths) -> Value {
    let m = &obj["metadata"];
    let mut status = json!({"replicas": at(obj, &paths.status_replicas).as_i64().unwrap_or(0)});
    if let Some(s) = selector_string(obj, paths) {
        status["selector"] = json!(s);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": at(obj, &paths.spec_replicas).as_i64().unwrap_or(0)},
        "status": status,
    })
}

fn paths_or_404(api: &Api, info: &ResourceInfo) -> ApiResult<ScalePaths> {
    scale_paths(&api.lock(), info).ok_or_else(ApiError::no_route)
}

pub fn get_scale(api: &Api, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<Value> {
    let paths = paths_or_404(api, info)?;
    Ok(to_scale(&api.get(info, ns, name)?, &paths))
}

/// PUT or PATCH of `/scale`: the new `spec.replicas` lands on the object.
pub fn write_scale(
    api: &Api,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    change: ScaleChange<'_>,
    opts: &WriteOptions,
) -> ApiResult<Value> {
    let paths = paths_or_404(api, info)?;
    let obj = api.get(info, ns, name)?;
    let mut scale = to_scale(&obj, &paths);
    match change {
        ScaleChange::Replace(body) => {
            if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
                && !rv.is_empty()
                && Some(rv) != obj["metadata"]["resourceVersion"].as_str()
            {
                return Err(ApiError::conflict(info, name));
            }
            scale["spec"] = body["spec"].clone();
        }
        ScaleChange::Patch(PatchType::Json, body) => {
            patch::json_patch(&mut scale, body).map_err(|e| ApiError::new(422, "Invalid", e))?
        }
        ScaleChange::Patch(_, body) => patch::merge_patch(&mut scale, body),
    }
    let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
        return Err(ApiError::bad_request("spec.replicas: Required value"));
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            &scale_info(),
            name,
            vec![crate::errors::Cause::invalid(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut new = obj.clone();
    set_at(&mut new, &paths.spec_replicas, json!(replicas));
    let updated = api.update(info, ns, name, new, None, opts)?;
    Ok(to_scale(&updated, &paths))
}

/// How a `/scale` write changes the Scale.
pub enum ScaleChange<'a> {
    Replace(&'a Value),
    Patch(PatchType, &'a Value),
}

fn scale_info() -> ResourceInfo {
    ResourceInfo {
        group: "autoscaling".into(),
        version: "v1".into(),
        resource: "scale".into(),
        singular: "scale".into(),
        kind: "Scale".into(),
        namespaced: true,
        short_names: vec![],
        categories: vec![],
        has_status: false,
        has_generation: false,
        crd: None,
        schema: None,
        scale: false,
    }
}

/// `GET pods/{name}/log`: simulated lines per container (`container`,
/// `tailLines`, `timestamps` honoured), or the API server's 400 when a
/// multi-container pod is asked without a container.
pub fn pod_log(
    api: &Api,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    container: Option<&str>,
    tail: Option<usize>,
    timestamps: bool,
) -> ApiResult<String> {
    let pod = api.get(info, ns, name)?;
    let names: Vec<String> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let main: Vec<&String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .filter_map(|n| names.iter().find(|x| *x == n))
        .collect();
    let c = match container {
        Some(c) if names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if main.len() == 1 => main[0].clone(),
        None => {
            let list: Vec<&str> = main.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                list.join(" ")
            )));
        }
    };
    if pod["status"]["phase"] == "Pending" {
        return Err(ApiError::bad_request(format!(
            "container \"{c}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let image = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == c.as_str())
        .and_then(|x| x["image"].as_str())
        .unwrap_or_default()
        .to_string();
    let started = pod["status"]["startTime"].as_str().unwrap_or_default();
    let mut lines = vec![
        format!("kubesim: container {c} of pod {ns}/{name} started (image {image})"),
        format!("kubesim: simulated output of {c}"),
    ];
    if pod["status"]["phase"] == "Succeeded" || pod["status"]["phase"] == "Failed" {
        lines.push(format!("kubesim: container {c} exited"));
    }
    if timestamps {
        lines = lines
            .into_iter()
            .map(|l| format!("{started} {l}"))
            .collect();
    }
    if let Some(t) = tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}
