//! StatefulSet changes Kubernetes forbids on an update (volumeClaimTemplates,
//! selector, serviceName, podManagementPolicy), and how Caelus carries them
//! out when a template opts in (`statefulset_updates: recreate`): grow the
//! existing claims in place, delete the StatefulSet with `propagationPolicy:
//! Orphan` (pods and claims stay), and re-create it from the new render.
//! The claims are never deleted or re-created, so their uids never change.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// What a template allows for StatefulSet changes Kubernetes forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatefulSetUpdates {
    /// Refused by the data-continuity preflight (the safe default).
    #[default]
    Refuse,
    /// Carried out by orphaning re-creation, growing claims in place.
    Recreate,
}

/// StatefulSet spec fields the API server refuses to change.
pub const IMMUTABLE_FIELDS: &[&str] = &[
    "selector",
    "serviceName",
    "podManagementPolicy",
    "volumeClaimTemplates",
];

/// One volumeClaimTemplate whose claims grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimGrowth {
    /// The template's name: its claims are `<template>-<statefulset>-<ordinal>`.
    pub template: String,
    pub from: String,
    pub to: String,
}

/// How a forbidden change to one StatefulSet is carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recreate {
    pub name: String,
    /// The immutable fields that change.
    pub fields: Vec<String>,
    pub grow: Vec<ClaimGrowth>,
    /// The selector changes: the re-created StatefulSet cannot adopt the old
    /// pods, so they are deleted (their claims stay and are mounted again).
    pub replace_pods: bool,
}

impl Recreate {
    /// The steps, in order, as a plan shows them.
    pub fn steps(&self) -> Vec<String> {
        let mut steps: Vec<String> = self
            .grow
            .iter()
            .map(|g| {
                format!(
                    "grow PersistentVolumeClaims {}-{}-* in place from {} to {} (their StorageClass must allow volume expansion)",
                    g.template, self.name, g.from, g.to
                )
            })
            .collect();
        steps.push(format!(
            "delete StatefulSet/{} with propagationPolicy Orphan (pods and PersistentVolumeClaims stay)",
            self.name
        ));
        if self.replace_pods {
            steps.push(format!(
                "delete the pods of StatefulSet/{} (the selector changes; their claims stay)",
                self.name
            ));
        }
        steps.push(format!(
            "re-create StatefulSet/{} from the new render ({} changed)",
            self.name,
            self.fields.join(", ")
        ));
        steps
    }
}

/// What a change from `current` to `target` (one StatefulSet's renders) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// No immutable field changes: an ordinary update.
    Update,
    /// Only possible by re-creation, which keeps the data.
    Recreate(Recreate),
    /// Not possible without losing or stranding data, even by re-creation.
    Refused(String),
}

fn templates(sts: &Value) -> Vec<(String, Value)> {
    sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                t["spec"].clone(),
            )
        })
        .collect()
}

fn storage(spec: &Value) -> Option<&str> {
    spec["resources"]["requests"]["storage"].as_str()
}

/// Classifies a StatefulSet change. Re-creation keeps every claim, so a
/// claim template may only grow its storage: a template added, removed or
/// renamed, or any other claim field changed, would strand or lose data.
pub fn classify(current: &Value, target: &Value) -> Change {
    let name = target["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let fields: Vec<String> = IMMUTABLE_FIELDS
        .iter()
        .filter(|f| match **f {
            "volumeClaimTemplates" => templates(current) != templates(target),
            f => current["spec"][f] != target["spec"][f],
        })
        .map(|f| f.to_string())
        .collect();
    if fields.is_empty() {
        return Change::Update;
    }
    let (cur, tgt) = (templates(current), templates(target));
    let names = |ts: &[(String, Value)]| ts.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(&cur) != names(&tgt) {
        return Change::Refused(format!(
            "StatefulSet/{name} would change its volumeClaimTemplates from [{}] to [{}]: existing claims would be stranded",
            names(&cur).join(", "),
            names(&tgt).join(", ")
        ));
    }
    let mut grow = Vec::new();
    for ((template, a), (_, b)) in cur.iter().zip(&tgt) {
        if a == b {
            continue;
        }
        let strip = |s: &Value| {
            let mut s = s.clone();
            if let Some(r) = s["resources"]["requests"].as_object_mut() {
                r.remove("storage");
            }
            s
        };
        if strip(a) != strip(b) {
            return Change::Refused(format!(
                "StatefulSet/{name} would change volumeClaimTemplate {template} beyond its storage size: existing claims cannot follow"
            ));
        }
        let (Some(from), Some(to)) = (storage(a), storage(b)) else {
            return Change::Refused(format!(
                "StatefulSet/{name}: volumeClaimTemplate {template} must request a storage size"
            ));
        };
        let bytes = |q: &str| crate::quantity::parse(q).map(crate::quantity::Quantity::as_f64);
        match (bytes(from), bytes(to)) {
            (Some(f), Some(t)) if t > f => grow.push(ClaimGrowth {
                template: template.clone(),
                from: from.to_string(),
                to: to.to_string(),
            }),
            (Some(_), Some(_)) => {
                return Change::Refused(format!(
                    "StatefulSet/{name} would shrink the claims of {template} from {from} to {to}: volumes can only grow"
                ));
            }
            _ => {
                return Change::Refused(format!(
                    "StatefulSet/{name}: volumeClaimTemplate {template} has a storage size that does not parse"
                ));
            }
        }
    }
    Change::Recreate(Recreate {
        name,
        replace_pods: fields.iter().any(|f| f == "selector"),
        fields,
        grow,
    })
}

/// The re-creations a change between two renders needs: every StatefulSet
/// both renders have whose change is [`Change::Recreate`].
pub fn recreations(current: &[Value], target: &[Value]) -> Vec<Recreate> {
    let is_sts = |o: &&Value| o["kind"] == "StatefulSet";
    target
        .iter()
        .filter(is_sts)
        .filter_map(|t| {
            let c = current
                .iter()
                .filter(is_sts)
                .find(|c| c["metadata"]["name"] == t["metadata"]["name"])?;
            match classify(c, t) {
                Change::Recreate(r) => Some(r),
                _ => None,
            }
        })
        .collect()
}

/// Whether a claim may be grown: what its StorageClass says (`None` when
/// the claim names a class the cluster does not have).
pub fn expansion_refusal(
    claim: &str,
    class: &str,
    allows_expansion: Option<bool>,
) -> Option<String> {
    match allows_expansion {
        Some(true) => None,
        Some(false) => Some(format!(
            "PersistentVolumeClaim/{claim} cannot grow: its StorageClass {class} does not allow volume expansion (allowVolumeExpansion is not true); nothing was changed"
        )),
        None if class.is_empty() => Some(format!(
            "PersistentVolumeClaim/{claim} cannot grow: it has no StorageClass, so it cannot be expanded; nothing was changed"
        )),
        None => Some(format!(
            "PersistentVolumeClaim/{claim} cannot grow: its StorageClass {class} does not exist; nothing was changed"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(size: &str, service: &str, selector: &str) -> Value {
        json!({"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {
            "serviceName": service,
            "selector": {"matchLabels": {"app": selector}},
            "template": {"spec": {"containers": [{"name": "db", "image": "pg:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}]}})
    }

    #[test]
    fn changes_kubernetes_allows_are_plain_updates() {
        let mut next = sts("1Gi", "db", "db");
        next["spec"]["template"]["spec"]["containers"][0]["image"] = json!("pg:17");
        next["spec"]["replicas"] = json!(3);
        assert_eq!(classify(&sts("1Gi", "db", "db"), &next), Change::Update);
    }

    #[test]
    fn storage_growth_is_a_recreation_that_grows_the_claims() {
        let Change::Recreate(r) = classify(&sts("1Gi", "db", "db"), &sts("2Gi", "db", "db")) else {
            panic!("not a recreation");
        };
        assert_eq!(r.fields, ["volumeClaimTemplates"]);
        assert_eq!(
            r.grow,
            [ClaimGrowth {
                template: "data".into(),
                from: "1Gi".into(),
                to: "2Gi".into()
            }]
        );
        assert!(!r.replace_pods);
        let steps = r.steps();
        assert_eq!(steps.len(), 3, "{steps:?}");
        assert!(steps[0].starts_with("grow PersistentVolumeClaims data-db-*"));
        assert!(steps[1].contains("propagationPolicy Orphan"));
        assert!(steps[2].starts_with("re-create StatefulSet/db"));
    }

    #[test]
    fn service_and_selector_changes_recreate_and_a_new_selector_replaces_pods() {
        let Change::Recreate(r) = classify(&sts("1Gi", "db", "db"), &sts("1Gi", "db-hl", "db2"))
        else {
            panic!("not a recreation");
        };
        assert_eq!(r.fields, ["selector", "serviceName"]);
        assert!(r.grow.is_empty() && r.replace_pods);
        assert!(r.steps().iter().any(|s| s.starts_with("delete the pods")));
    }

    #[test]
    fn shrinking_renaming_or_reshaping_claims_is_refused() {
        let cur = sts("2Gi", "db", "db");
        let Change::Refused(m) = classify(&cur, &sts("1Gi", "db", "db")) else {
            panic!()
        };
        assert!(
            m.contains("shrink") && m.contains("2Gi") && m.contains("1Gi"),
            "{m}"
        );
        let mut renamed = sts("2Gi", "db", "db");
        renamed["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] = json!("storage");
        assert!(matches!(classify(&cur, &renamed), Change::Refused(m) if m.contains("stranded")));
        let mut class = sts("2Gi", "db", "db");
        class["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = json!("fast");
        assert!(
            matches!(classify(&cur, &class), Change::Refused(m) if m.contains("beyond its storage size"))
        );
    }

    #[test]
    fn recreations_pair_statefulsets_by_name() {
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "db"}});
        let found = recreations(
            &[cm.clone(), sts("1Gi", "db", "db")],
            &[cm, sts("3Gi", "db", "db")],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].grow[0].to, "3Gi");
        assert!(recreations(&[], &[sts("3Gi", "db", "db")]).is_empty());
    }

    #[test]
    fn expansion_needs_a_class_that_allows_it() {
        assert_eq!(expansion_refusal("data-db-0", "standard", Some(true)), None);
        let m = expansion_refusal("data-db-0", "fixed", Some(false)).unwrap();
        assert!(
            m.contains("StorageClass fixed does not allow volume expansion"),
            "{m}"
        );
        assert!(
            expansion_refusal("data-db-0", "", None)
                .unwrap()
                .contains("no StorageClass")
        );
        assert!(
            expansion_refusal("data-db-0", "gone", None)
                .unwrap()
                .contains("does not exist")
        );
    }
}
