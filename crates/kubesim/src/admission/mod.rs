//! Admission as a default kube-apiserver runs it for the kinds clients
//! create: mutating ServiceAccount and LimitRanger, then validating
//! LimitRanger, PodSecurity and ResourceQuota (last, as in the API server's
//! plugin order). Admission sees the object after defaulting, inside the
//! store lock, so quota checks and the usage they count are consistent.
//! <https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/>

pub mod limit_range;
pub mod pod_security;
pub mod quota;
pub mod storage;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::errors::{ApiError, ApiResult};
use crate::meta;
use crate::resources::ResourceInfo;
use crate::store::{EventType, Inner};

/// `Warning` headers collected while serving one request.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    pub fn push(&self, w: String) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !v.contains(&w) {
            v.push(w);
        }
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn objects_in(g: &Inner, resource: &str, ns: &str) -> Vec<Value> {
    let Some(info) = g.registry.find("", "v1", resource) else {
        return vec![];
    };
    g.range(info, Some(ns), None)
        .map(|(_, o)| (**o).clone())
        .collect()
}

fn namespace(g: &Inner, ns: &str) -> Option<Value> {
    let info = g.registry.find("", "v1", "namespaces")?;
    g.get(info, "", ns).map(|o| (**o).clone())
}

fn is_pod(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.resource == "pods"
}

/// Total quota usage of a namespace, from the stored objects.
fn namespace_usage(g: &Inner, ns: &str) -> quota::Usage {
    let mut total = quota::Usage::new();
    for ((group, resource), obj) in g.in_namespace(ns) {
        if !quota::is_counted(&group, &resource) {
            continue;
        }
        for (k, v) in quota::usage(&group, &resource, &obj) {
            let cur = total.get(&k).copied().unwrap_or_default();
            total.insert(k, cur.plus(v));
        }
    }
    total
}

/// ServiceAccount admission: the pod runs as its namespace's `default`
/// ServiceAccount unless it names one, which must exist, and gets the
/// projected API token volume (`kube-api-access-*`) unless automount is off.
fn service_account(
    g: &Inner,
    info: &ResourceInfo,
    ns: &str,
    display_name: &str,
    pod: &mut Value,
) -> ApiResult<()> {
    let sa_name = pod["spec"]["serviceAccountName"]
        .as_str()
        .or(pod["spec"]["serviceAccount"].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    pod["spec"]["serviceAccountName"] = json!(sa_name);
    pod["spec"]["serviceAccount"] = json!(sa_name);
    let sa = g
        .registry
        .find("", "v1", "serviceaccounts")
        .and_then(|i| g.get(i, ns, &sa_name))
        .cloned();
    let Some(sa) = sa else {
        return Err(ApiError::forbidden(
            info,
            display_name,
            &format!(
                "error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found"
            ),
        ));
    };
    let automount = match &pod["spec"]["automountServiceAccountToken"] {
        Value::Bool(b) => *b,
        _ => sa["automountServiceAccountToken"] != false,
    };
    let has_token_mount = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
        });
    if !automount || has_token_mount {
        return Ok(());
    }
    let volume = format!("kube-api-access-{}", meta::random_suffix(5));
    let v = json!({
        "name": volume,
        "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]},
    });
    if !pod["spec"]["volumes"].is_array() {
        pod["spec"]["volumes"] = json!([]);
    }
    if let Some(vs) = pod["spec"]["volumes"].as_array_mut() {
        vs.push(v);
    }
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            if !c["volumeMounts"].is_array() {
                c["volumeMounts"] = json!([]);
            }
            if let Some(ms) = c["volumeMounts"].as_array_mut() {
                ms.push(json!({"name": volume, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}));
            }
        }
    }
    Ok(())
}

/// Admits a create: may mutate `obj`, refuses with the plugin's 403, and
/// returns the warnings to send.
pub fn admit_create(
    g: &Inner,
    info: &ResourceInfo,
    ns: &str,
    display_name: &str,
    obj: &mut Value,
) -> ApiResult<Vec<String>> {
    if !info.namespaced {
        return Ok(vec![]);
    }
    let name = display_name.to_string();
    let forbid = |msg: &str| ApiError::forbidden(info, &name, msg);
    let ranges = objects_in(g, "limitranges", ns);
    if is_pod(info) {
        service_account(g, info, ns, &name, obj)?;
        limit_range::default_pod(&ranges, obj);
        let errs = limit_range::validate_pod(&ranges, obj);
        if !errs.is_empty() {
            return Err(forbid(&aggregate(&errs)));
        }
    }
    if info.group.is_empty() && info.resource == "persistentvolumeclaims" {
        storage::default_class(g, obj);
        let errs = limit_range::validate_pvc(&ranges, obj);
        if !errs.is_empty() {
            return Err(forbid(&aggregate(&errs)));
        }
    }
    let mut warnings = Vec::new();
    if let Some(template) = pod_security::pod_template(&info.group, &info.resource, obj)
        && let Some(nso) = namespace(g, ns)
    {
        let out = pod_security::admit(&pod_security::policy(&nso), template, is_pod(info));
        if let Some(r) = out.refused {
            return Err(forbid(&r));
        }
        warnings = out.warnings;
    }
    check_quota(g, info, ns, None, obj).map_err(|m| forbid(&m))?;
    Ok(warnings)
}

/// `utilerrors.NewAggregate`: one error as is, several in brackets.
fn aggregate(errs: &[String]) -> String {
    if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

fn check_quota(
    g: &Inner,
    info: &ResourceInfo,
    ns: &str,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), String> {
    if !quota::is_counted(&info.group, &info.resource) {
        return Ok(());
    }
    let quotas = objects_in(g, "resourcequotas", ns);
    if quotas.is_empty() {
        return Ok(());
    }
    let mut delta = quota::usage(&info.group, &info.resource, new);
    if let Some(old) = old {
        let before = quota::usage(&info.group, &info.resource, old);
        delta = delta
            .into_iter()
            .map(|(k, v)| {
                let b = before.get(&k).copied().unwrap_or_default();
                (
                    k,
                    if v > b {
                        v.minus(b)
                    } else {
                        crate::quantity::Quantity::zero()
                    },
                )
            })
            .collect();
    }
    let total = namespace_usage(g, ns);
    let pod = (is_pod(info) && old.is_none()).then_some(new);
    match quota::check(&quotas, |_| total.clone(), &delta, pod) {
        Some(msg) => Err(msg),
        None => Ok(()),
    }
}

/// Admits an update of the main resource: PodSecurity for pod templates
/// (a Pod only when its images changed, as the plugin's significance check)
/// and quota for what grew.
pub fn admit_update(
    g: &Inner,
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
) -> ApiResult<Vec<String>> {
    if !info.namespaced {
        return Ok(vec![]);
    }
    let ns = meta::namespace_of(old).to_string();
    let name = meta::name_of(old).to_string();
    let forbid = |msg: &str| ApiError::forbidden(info, &name, msg);
    if info.group.is_empty()
        && info.resource == "persistentvolumeclaims"
        && let Some(msg) = storage::check_resize(g, old, new)
    {
        return Err(forbid(&msg));
    }
    let mut warnings = Vec::new();
    if let Some(template) = pod_security::pod_template(&info.group, &info.resource, new)
        && let Some(nso) = namespace(g, &ns)
    {
        let images = |o: &Value| {
            ["initContainers", "containers"]
                .iter()
                .flat_map(|k| o["spec"][*k].as_array().into_iter().flatten())
                .map(|c| c["image"].clone())
                .collect::<Vec<_>>()
        };
        if !is_pod(info) || images(old) != images(new) {
            let out = pod_security::admit(&pod_security::policy(&nso), template, is_pod(info));
            if let Some(r) = out.refused {
                return Err(forbid(&r));
            }
            warnings = out.warnings;
        }
    }
    check_quota(g, info, &ns, Some(old), new).map_err(|m| forbid(&m))?;
    Ok(warnings)
}

/// The quota controller: recomputes `status` of the namespace's quotas
/// from what is stored (called after every counted write).
pub fn refresh_quotas(g: &mut Inner, ns: &str) {
    let Some(info) = g.registry.find("", "v1", "resourcequotas").cloned() else {
        return;
    };
    let quotas: Vec<Value> = g
        .range(&info, Some(ns), None)
        .map(|(_, o)| (**o).clone())
        .collect();
    if quotas.is_empty() {
        return;
    }
    let total = namespace_usage(g, ns);
    for mut q in quotas {
        let status = quota::status(&q, &total);
        if q["status"] == status {
            continue;
        }
        q["status"] = status;
        g.put(&info, q, EventType::Modified);
    }
}
