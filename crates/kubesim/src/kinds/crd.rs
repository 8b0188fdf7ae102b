//! CustomResourceDefinitions: checked names, `Established` as soon as they
//! are stored, their resources served from then on and deleted with them.

use serde_json::{Value, json};

use super::KindBehaviour;
use crate::errors::Cause;
use crate::meta::{name_of, now_rfc3339};
use crate::resources::ResourceInfo;
use crate::store::StoreGuard;

pub struct CustomResourceDefinition;

impl KindBehaviour for CustomResourceDefinition {
    fn validate_create(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let spec = &obj["spec"];
        let group = spec["group"].as_str().unwrap_or_default();
        let plural = spec["names"]["plural"].as_str().unwrap_or_default();
        if group.is_empty() {
            causes.push(Cause::required("spec.group", ""));
        }
        if plural.is_empty() {
            causes.push(Cause::required("spec.names.plural", ""));
        }
        if spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            causes.push(Cause::required("spec.names.kind", ""));
        }
        let expected = format!("{plural}.{group}");
        let name = crate::meta::name_of(obj);
        if !plural.is_empty() && !group.is_empty() && name != expected {
            causes.push(Cause::invalid(
                "metadata.name",
                &format!("{name:?}"),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        if spec["versions"].as_array().is_none_or(Vec::is_empty) {
            causes.push(Cause::invalid(
                "spec.versions",
                "null",
                "must have exactly one version marked as storage version",
            ));
        }
    }

    fn on_create(&self, obj: &mut Value, _allocate_ip: &dyn Fn() -> String) {
        crd_status(obj);
    }

    fn on_update(&self, _old: &Value, new: &mut Value) {
        crd_status(new);
    }

    fn after_commit(&self, g: &mut StoreGuard, _created: bool, stored: &Value) {
        let infos = ResourceInfo::from_crd(stored);
        g.registry.set_crd(name_of(stored), infos);
    }

    fn after_remove(&self, g: &mut StoreGuard, gone: &Value) {
        // A deleted CRD takes its custom resources with it.
        let crd_name = name_of(gone).to_string();
        let served: Vec<ResourceInfo> = g
            .registry
            .all()
            .iter()
            .filter(|r| r.crd.as_deref() == Some(&crd_name))
            .cloned()
            .collect();
        if let Some(first) = served.first() {
            g.remove_all(first);
        }
        g.registry.set_crd(&crd_name, vec![]);
    }
}

/// A CRD is accepted and established as soon as it is stored.
fn crd_status(obj: &mut Value) {
    let now = now_rfc3339();
    let storage = obj["spec"]["versions"]
        .as_array()
        .and_then(|vs| {
            vs.iter()
                .find(|v| v["storage"] == json!(true))
                .or(vs.first())
        })
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut names = obj["spec"]["names"].clone();
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!(
            "{}List",
            names["kind"].as_str().unwrap_or_default()
        ));
    }
    let old_time = |t: &str| {
        obj["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == t))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(String::from)
            .unwrap_or_else(|| now.clone())
    };
    let status = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": old_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": old_time("Established")},
        ],
        "storedVersions": [storage],
    });
    obj["status"] = status;
}
