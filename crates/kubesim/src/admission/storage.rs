//! Storage admission: DefaultStorageClass (a PVC without a class gets the
//! default one) and PersistentVolumeClaimResize (a claim may only grow when
//! its StorageClass has `allowVolumeExpansion: true`), with the plugins'
//! messages (plugin/pkg/admission/storage/...).
//! <https://kubernetes.io/docs/concepts/storage/persistent-volumes/#expanding-persistent-volumes-claims>

use serde_json::{Value, json};

use crate::quantity;
use crate::store::Inner;

/// The default StorageClass kubesim starts with; it allows expansion.
pub const DEFAULT_CLASS: &str = "standard";
/// A StorageClass without `allowVolumeExpansion`.
pub const FIXED_CLASS: &str = "fixed";

const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

fn classes(g: &Inner) -> Vec<Value> {
    let Some(info) = g.registry.find("storage.k8s.io", "v1", "storageclasses") else {
        return vec![];
    };
    g.range(info, None, None)
        .map(|(_, o)| (**o).clone())
        .collect()
}

/// Sets `spec.storageClassName` of a new claim that names none (an empty
/// string means "no class" and is kept).
pub fn default_class(g: &Inner, pvc: &mut Value) {
    if pvc["spec"]
        .get("storageClassName")
        .is_some_and(|v| !v.is_null())
    {
        return;
    }
    let mut defaults: Vec<Value> = classes(g)
        .into_iter()
        .filter(|c| c["metadata"]["annotations"][DEFAULT_ANNOTATION] == "true")
        .collect();
    // Several defaults: the newest wins (as since Kubernetes 1.26).
    defaults.sort_by(|a, b| {
        a["metadata"]["creationTimestamp"]
            .as_str()
            .cmp(&b["metadata"]["creationTimestamp"].as_str())
    });
    if let Some(c) = defaults.last()
        && pvc["spec"].is_object()
    {
        pvc["spec"]["storageClassName"] = json!(c["metadata"]["name"]);
    }
}

fn storage(pvc: &Value) -> Option<quantity::Quantity> {
    quantity::from_json(&pvc["spec"]["resources"]["requests"]["storage"])
}

/// Refuses growing a claim whose class does not allow expansion.
pub fn check_resize(g: &Inner, old: &Value, new: &Value) -> Option<String> {
    let (Some(o), Some(n)) = (storage(old), storage(new)) else {
        return None;
    };
    if n <= o {
        return None;
    }
    let class = new["spec"]["storageClassName"].as_str().unwrap_or_default();
    let allowed = classes(g)
        .iter()
        .any(|c| c["metadata"]["name"] == class && c["allowVolumeExpansion"] == true);
    (!allowed).then(|| {
        "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize".to_string()
    })
}
