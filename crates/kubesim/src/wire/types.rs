//! The layout of every Kubernetes API message: protobuf tags and wire kinds
//! (from `k8s-pb`, i.e. upstream `generated.proto`), JSON names (from
//! `k8s-openapi`) and the upstream list/patch markers. Generated into
//! `k8s-types.json` by `crates/kubesim/gen/k8s_types.py`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Types {
    /// `apiVersion/Kind` → message name, e.g. `apps/v1/Deployment` → `api.apps.v1.Deployment`.
    pub kinds: HashMap<String, String>,
    pub messages: HashMap<String, Message>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub fields: Vec<Field>,
    /// The Go type name where prost's differs (`JSONSchemaProps`, `HTTPGetAction`).
    pub go_name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub required: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    pub tag: u32,
    /// The JSON name; empty for an embedded (`json:",inline"`) struct.
    pub json: String,
    /// `string`, `bytes`, `bool`, `int32`, `int64`, `double` or `message`.
    pub kind: String,
    #[serde(rename = "type")]
    pub ty: Option<String>,
    #[serde(default)]
    pub repeated: bool,
    /// A `map<string, kind>`.
    #[serde(default)]
    pub map: bool,
    #[serde(default)]
    pub inline: bool,
    #[serde(default)]
    pub optional: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Option<Vec<String>>,
    pub patch_merge_key: Option<String>,
    pub patch_strategy: Option<String>,
    pub map_type: Option<String>,
    pub struct_type: Option<String>,
    pub description: Option<String>,
}

static TYPES: OnceLock<Result<Types, String>> = OnceLock::new();

/// The embedded table; an error only if the generated file is corrupt.
pub fn types() -> Result<&'static Types, String> {
    TYPES
        .get_or_init(|| {
            serde_json::from_str(include_str!("k8s-types.json"))
                .map_err(|e| format!("k8s-types.json: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Types {
    /// The message for an object's `apiVersion` and `kind`; `…List` kinds map to
    /// the list message next to their item's.
    pub fn message_for(&self, api_version: &str, kind: &str) -> Option<&str> {
        if let Some(m) = self.kinds.get(&format!("{api_version}/{kind}")) {
            return Some(m);
        }
        let meta = match kind {
            // Options and Status travel under any group's version (client-go
            // registers them with every group; kubectl sends `v1`).
            "Status" | "DeleteOptions" | "ListOptions" | "GetOptions" | "CreateOptions"
            | "UpdateOptions" | "PatchOptions" | "WatchEvent" | "APIResourceList"
            | "APIGroupList" | "APIGroup" | "APIVersions" => {
                Some(format!("apimachinery.pkg.apis.meta.v1.{kind}"))
            }
            "Table" => Some("apimachinery.pkg.apis.meta.v1.Table".to_string()),
            _ => None,
        };
        if let Some(m) = meta {
            return self.messages.get_key_value(&m).map(|(k, _)| k.as_str());
        }
        let item = kind.strip_suffix("List")?;
        let item_msg = self.kinds.get(&format!("{api_version}/{item}"))?;
        let list = format!("{item_msg}List");
        self.messages.get_key_value(&list).map(|(k, _)| k.as_str())
    }

    /// `(apiVersion, kind)` of a message that is a kind (or a kind's list).
    pub fn kind_of(&self, message: &str) -> Option<(String, String)> {
        let (item, suffix) = match message.strip_suffix("List") {
            Some(item) if self.kinds.values().any(|m| m == item) => (item, "List"),
            _ => (message, ""),
        };
        self.kinds
            .iter()
            .find(|(_, m)| m.as_str() == item)
            .map(|(k, _)| {
                let (av, kind) = k.rsplit_once('/').unwrap_or(("", k));
                (av.to_string(), format!("{kind}{suffix}"))
            })
    }

    /// The schema name the real API server uses, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub fn openapi_name(&self, message: &str) -> String {
        // The Go name where prost renamed the type (`JSONSchemaProps`).
        let message = match self
            .messages
            .get(message)
            .and_then(|m| m.go_name.as_deref())
        {
            Some(go) => match message.rsplit_once('.') {
                Some((module, _)) => format!("{module}.{go}"),
                None => message.to_string(),
            },
            None => message.to_string(),
        };
        let message = message.as_str();
        if let Some(rest) = message.strip_prefix("apiextensions_apiserver.") {
            return format!("io.k8s.apiextensions-apiserver.{rest}");
        }
        if let Some(rest) = message.strip_prefix("kube_aggregator.") {
            return format!("io.k8s.kube-aggregator.{rest}");
        }
        format!("io.k8s.{message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_resolves_kinds() {
        let t = types().unwrap();
        assert_eq!(
            t.message_for("apps/v1", "Deployment"),
            Some("api.apps.v1.Deployment")
        );
        assert_eq!(
            t.message_for("v1", "ConfigMapList"),
            Some("api.core.v1.ConfigMapList")
        );
        assert_eq!(
            t.message_for("v1", "Status"),
            Some("apimachinery.pkg.apis.meta.v1.Status")
        );
        // Every message a field points at exists.
        for m in t.messages.values() {
            for f in &m.fields {
                if let Some(ty) = &f.ty {
                    assert!(t.messages.contains_key(ty), "missing {ty}");
                }
            }
        }
        assert_eq!(
            t.openapi_name("api.apps.v1.Deployment"),
            "io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(
            t.openapi_name("apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps"),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"
        );
    }
}
