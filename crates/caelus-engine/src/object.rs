//! Object identity ([`ObjectRef`], stored on revisions as the inventory) and
//! small helpers over rendered objects as JSON.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};

/// Label on everything Caelus creates; the drift watches select on it.
pub const MANAGED_BY_LABEL: &str = caelus_helm::render::MANAGED_BY_LABEL;
pub const MANAGED_BY_VALUE: &str = caelus_helm::render::MANAGED_BY_VALUE;
pub const DEPLOYMENT_UID_LABEL: &str = caelus_helm::render::DEPLOYMENT_UID_LABEL;
/// Label naming the Caelus installation that owns a namespace.
pub const INSTALLATION_LABEL: &str = "caelus.io/installation";
/// Helm's annotation that keeps an object when it leaves the release.
pub const RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";

/// One object Caelus applied: what a revision's inventory lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The reference of an object as rendered (namespace as written in it).
    pub fn from_object(obj: &Value) -> Result<ObjectRef> {
        let field = |v: &Value, what: &str| -> Result<String> {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| EngineError::InvalidObject(format!("object without {what}: {obj}")))
        };
        Ok(ObjectRef {
            api_version: field(&obj["apiVersion"], "apiVersion")?,
            kind: field(&obj["kind"], "kind")?,
            namespace: obj["metadata"]["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            name: field(&obj["metadata"]["name"], "metadata.name")?,
        })
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// Identity across API versions: an object moving from `v1beta1` to `v1`
    /// of its group is the same object, not one to prune and one to create.
    pub(crate) fn same_object(&self, other: &ObjectRef) -> bool {
        self.group() == other.group()
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} in {ns}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The inventory an apply of `objects` produces (their references, in
/// order). The reconciler uses it to record what a failed pass may have
/// created, so a later pass can still prune it.
pub fn inventory_of(objects: &[Value]) -> Result<Vec<ObjectRef>> {
    objects.iter().map(ObjectRef::from_object).collect()
}

pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

pub(crate) fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["labels"][key].as_str()
}

/// Sets a string label, creating `metadata.labels` when needed.
pub(crate) fn set_label(obj: &mut Value, key: &str, value: &str) {
    if !obj["metadata"]["labels"].is_object() {
        obj["metadata"]["labels"] = Value::Object(Default::default());
    }
    obj["metadata"]["labels"][key] = Value::String(value.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inventory_entries_round_trip_as_camel_case_json() {
        let r = ObjectRef::from_object(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d-1"}
        }))
        .unwrap();
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "d-1", "name": "web"})
        );
        assert_eq!(serde_json::from_value::<ObjectRef>(j).unwrap(), r);
        assert_eq!(r.group(), "apps");
        assert_eq!(r.to_string(), "Deployment/web in d-1");
    }

    #[test]
    fn objects_without_identity_are_refused() {
        let e =
            ObjectRef::from_object(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
    }

    #[test]
    fn same_object_ignores_the_api_version() {
        let a = ObjectRef {
            api_version: "autoscaling/v1".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: Some("n".into()),
            name: "x".into(),
        };
        let b = ObjectRef {
            api_version: "autoscaling/v2".into(),
            ..a.clone()
        };
        assert!(a.same_object(&b));
    }
}
