//! Upgrade and rollback policy, as pure rules: each check has its own refusal,
//! and the data-continuity preflight compares two renders object by object.

use crate::lifecycle::Lifecycle;
use crate::list_keys::ListKeys;
use crate::status::DesiredState;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a request is refused, with the HTTP status class it maps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// `forbidden` (403), `conflict` (409) or `invalid` (422).
    pub kind: RefusalKind,
    pub rule: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefusalKind {
    Forbidden,
    Conflict,
    Invalid,
}

/// What the upgrade rules look at.
#[derive(Debug, Clone)]
pub struct UpgradeCandidate<'a> {
    pub deployment_product: &'a str,
    pub current_version: &'a str,
    pub desired: DesiredState,
    pub target_product: &'a str,
    pub target_version: &'a str,
    pub target_lifecycle: Lifecycle,
    pub target_requires_admin: bool,
    pub actor_is_admin: bool,
}

/// The result of the rules: refusals (any one blocks) and warnings (advice).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub refusals: Vec<Refusal>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.refusals.is_empty()
    }
}

fn refuse(v: &mut Verdict, kind: RefusalKind, rule: &'static str, message: String) {
    v.refusals.push(Refusal {
        kind,
        rule,
        message,
    });
}

/// Every upgrade rule, evaluated; none short-circuits, so a caller sees all reasons.
pub fn check_upgrade(c: &UpgradeCandidate<'_>) -> Verdict {
    let mut v = Verdict::default();
    // First: a deployment on its way out answers every upgrade the same way.
    if c.desired == DesiredState::Absent {
        refuse(
            &mut v,
            RefusalKind::Conflict,
            "not-deleting",
            "the deployment is being deleted; it can no longer be upgraded".into(),
        );
    }
    if c.target_product != c.deployment_product {
        refuse(
            &mut v,
            RefusalKind::Invalid,
            "same-product",
            format!(
                "version {} belongs to product '{}', but this deployment runs product '{}'",
                c.target_version, c.target_product, c.deployment_product
            ),
        );
    }
    match c.target_lifecycle {
        Lifecycle::Published => {}
        Lifecycle::Deprecated => v.warnings.push(format!(
            "version {} is deprecated; prefer a newer version if there is one",
            c.target_version
        )),
        Lifecycle::Draft => refuse(
            &mut v,
            RefusalKind::Invalid,
            "published-target",
            format!(
                "version {} is a draft: only published or deprecated versions can be upgraded to",
                c.target_version
            ),
        ),
        Lifecycle::Retired => refuse(
            &mut v,
            RefusalKind::Invalid,
            "published-target",
            format!(
                "version {} is retired: it takes no new upgrades",
                c.target_version
            ),
        ),
    }
    match (
        semver::Version::parse(c.current_version),
        semver::Version::parse(c.target_version),
    ) {
        (Ok(cur), Ok(target)) if target <= cur => refuse(
            &mut v,
            RefusalKind::Invalid,
            "newer-target",
            if target == cur {
                format!("the deployment already runs version {cur}")
            } else {
                format!(
                    "version {target} is older than the running {cur}: going back is a rollback; roll back to an earlier revision instead"
                )
            },
        ),
        (Ok(_), Ok(_)) => {}
        _ => refuse(
            &mut v,
            RefusalKind::Invalid,
            "newer-target",
            format!(
                "cannot compare versions {} and {}",
                c.current_version, c.target_version
            ),
        ),
    }
    if c.target_requires_admin && !c.actor_is_admin {
        refuse(
            &mut v,
            RefusalKind::Forbidden,
            "admin-required",
            format!(
                "upgrading to version {} requires an admin: ask one to run it",
                c.target_version
            ),
        );
    }
    v
}

/// What the rollback rules look at: the revision asked for and the version it ran.
#[derive(Debug, Clone)]
pub struct RollbackCandidate<'a> {
    pub desired: DesiredState,
    pub revision: i64,
    /// The revision was deployed successfully once (only those can be restored).
    pub revision_succeeded: bool,
    /// It is the revision running now, and nothing newer is pending.
    pub revision_is_current: bool,
    pub target_version: &'a str,
    pub target_lifecycle: Lifecycle,
    pub target_requires_admin: bool,
    pub actor_is_admin: bool,
}

/// Every rollback rule, evaluated; none short-circuits. The lifecycle and
/// permission rules are the upgrade's: a version that takes no new upgrades takes
/// no tenant's rollback either, and one that needs an admin to move to it needs
/// one whichever direction the move goes. An admin may still roll back to a
/// retired version (with a warning): retiring a version must not leave an admin
/// without a way back from a broken upgrade.
pub fn check_rollback(c: &RollbackCandidate<'_>) -> Verdict {
    let mut v = Verdict::default();
    if c.desired == DesiredState::Absent {
        refuse(
            &mut v,
            RefusalKind::Conflict,
            "not-deleting",
            "the deployment is being deleted; it can no longer be rolled back".into(),
        );
    }
    if !c.revision_succeeded {
        refuse(
            &mut v,
            RefusalKind::Invalid,
            "deployed-revision",
            format!(
                "revision {} never deployed successfully: only a revision that did can be restored",
                c.revision
            ),
        );
    }
    if c.revision_is_current {
        refuse(
            &mut v,
            RefusalKind::Conflict,
            "not-current",
            format!("revision {} is already the one running", c.revision),
        );
    }
    match c.target_lifecycle {
        Lifecycle::Published => {}
        Lifecycle::Deprecated => v.warnings.push(format!(
            "version {} is deprecated; plan an upgrade after the rollback",
            c.target_version
        )),
        Lifecycle::Draft => refuse(
            &mut v,
            RefusalKind::Invalid,
            "published-target",
            format!(
                "version {} is a draft: only published or deprecated versions can be moved to",
                c.target_version
            ),
        ),
        Lifecycle::Retired if c.actor_is_admin => v.warnings.push(format!(
            "version {} is retired; rolling back to it as an admin, plan an upgrade off it",
            c.target_version
        )),
        Lifecycle::Retired => refuse(
            &mut v,
            RefusalKind::Forbidden,
            "published-target",
            format!(
                "version {} is retired: it takes no new upgrades or rollbacks; ask an admin",
                c.target_version
            ),
        ),
    }
    if c.target_requires_admin && !c.actor_is_admin {
        refuse(
            &mut v,
            RefusalKind::Forbidden,
            "admin-required",
            format!(
                "moving to version {} requires an admin: ask one to run it",
                c.target_version
            ),
        );
    }
    v
}

/// A change that would lose or strand persistent data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataRisk {
    pub kind: String,
    pub name: String,
    pub message: String,
}

fn key(o: &Value) -> Option<(String, String)> {
    Some((
        o["kind"].as_str()?.to_string(),
        o["metadata"]["name"].as_str()?.to_string(),
    ))
}

fn is_kept(o: &Value) -> bool {
    o["metadata"]["annotations"]["helm.sh/resource-policy"].as_str() == Some("keep")
}

fn index(objects: &[Value]) -> BTreeMap<(String, String), &Value> {
    objects
        .iter()
        .filter_map(|o| key(o).map(|k| (k, o)))
        .collect()
}

/// Parses a Kubernetes quantity into bytes (for storage sizes).
pub fn quantity_bytes(q: &str) -> Option<f64> {
    crate::quantity::parse(q).map(crate::quantity::Quantity::as_f64)
}

use crate::statefulset::{IMMUTABLE_FIELDS as STATEFULSET_IMMUTABLE, StatefulSetUpdates};

fn vct_summary(sts: &Value) -> Value {
    // Compare what matters for the volumes: names and their specs.
    let mut out = Vec::new();
    for t in sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push(serde_json::json!({"name": t["metadata"]["name"], "spec": t["spec"]}));
    }
    Value::Array(out)
}

/// Compares the current render with the target's: every PVC or StatefulSet the
/// target deletes (or renames) and every change that would strand or shrink data.
pub fn data_continuity(current: &[Value], target: &[Value]) -> Vec<DataRisk> {
    data_continuity_with(current, target, StatefulSetUpdates::Refuse)
}

/// [`data_continuity`] under a template's `statefulset_updates`: with
/// `recreate`, a forbidden StatefulSet change that re-creation carries out
/// keeping every claim (see [`crate::statefulset::classify`]) is no risk;
/// what re-creation cannot do still is.
pub fn data_continuity_with(
    current: &[Value],
    target: &[Value],
    statefulset_updates: StatefulSetUpdates,
) -> Vec<DataRisk> {
    let cur = index(current);
    let tgt = index(target);
    let mut risks = Vec::new();
    let risk = |kind: &str, name: &str, message: String| DataRisk {
        kind: kind.into(),
        name: name.into(),
        message,
    };
    for ((kind, name), obj) in &cur {
        let persistent = kind == "PersistentVolumeClaim" || kind == "StatefulSet";
        if !persistent {
            continue;
        }
        let Some(next) = tgt.get(&(kind.clone(), name.clone())) else {
            if !is_kept(obj) {
                let why = if kind == "StatefulSet" {
                    "its PersistentVolumeClaims would be orphaned"
                } else {
                    "its volume and data would be deleted"
                };
                risks.push(risk(
                    kind,
                    name,
                    format!("{kind}/{name} would be deleted or renamed: {why}"),
                ));
            }
            continue;
        };
        if kind == "StatefulSet" && statefulset_updates == StatefulSetUpdates::Recreate {
            if let crate::statefulset::Change::Refused(message) =
                crate::statefulset::classify(obj, next)
            {
                risks.push(risk(kind, name, message));
            }
        } else if kind == "StatefulSet" {
            if vct_summary(obj) != vct_summary(next) {
                risks.push(risk(
                    kind,
                    name,
                    format!("StatefulSet/{name} would change its volumeClaimTemplates, which Kubernetes does not allow and which strands existing volumes"),
                ));
            }
            for field in STATEFULSET_IMMUTABLE
                .iter()
                .filter(|f| **f != "volumeClaimTemplates")
            {
                if obj["spec"][field] != next["spec"][field] {
                    risks.push(risk(
                        kind,
                        name,
                        format!("StatefulSet/{name} would change spec.{field}, an immutable field: it would have to be deleted and re-created"),
                    ));
                }
            }
        } else {
            let size = |o: &Value| {
                o["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .and_then(quantity_bytes)
            };
            if let (Some(a), Some(b)) = (size(obj), size(next))
                && b < a
            {
                risks.push(risk(
                    kind,
                    name,
                    format!(
                        "PersistentVolumeClaim/{name} would shrink from {} to {}: volumes can only grow",
                        obj["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("?"),
                        next["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("?")
                    ),
                ));
            }
            for field in [
                "storageClassName",
                "accessModes",
                "volumeName",
                "volumeMode",
            ] {
                if obj["spec"][field] != next["spec"][field] {
                    risks.push(risk(
                        kind,
                        name,
                        format!("PersistentVolumeClaim/{name} would change spec.{field}, which is immutable: the claim would have to be re-created"),
                    ));
                }
            }
        }
    }
    risks
}

/// One changed field of an object, for a dry-run plan.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FieldChange {
    pub path: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

/// Leaf-level differences between two versions of one object. List items
/// are paired by the API server's keys (the built-in table: a plan is made
/// before anything reaches a cluster), so a diff says
/// `containers[name=web].image` or `volumeMounts[mountPath=/data].subPath`,
/// not "the whole list".
pub fn field_diff(current: &Value, target: &Value) -> Vec<FieldChange> {
    field_diff_with(current, target, &ListKeys::fallback())
}

/// [`field_diff`] with list keys read from a cluster's schema.
pub fn field_diff_with(current: &Value, target: &Value, keys: &ListKeys) -> Vec<FieldChange> {
    let mut out = crate::drift::object_diff(current, target, keys);
    // Server-owned or Caelus-owned metadata says nothing about the change.
    out.retain(|c| !c.path.starts_with("status") && c.path != "metadata.labels[\"helm.sh/chart\"]");
    out
}

/// The object-level plan between two renders.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub create: Vec<String>,
    pub update: Vec<(String, Vec<FieldChange>)>,
    pub delete: Vec<String>,
    /// Objects the target drops but that are kept (`helm.sh/resource-policy: keep`).
    pub keep: Vec<String>,
    pub unchanged: usize,
}

pub fn plan(current: &[Value], target: &[Value]) -> Plan {
    let cur = index(current);
    let tgt = index(target);
    let mut p = Plan::default();
    for ((kind, name), obj) in &tgt {
        let label = format!("{kind}/{name}");
        match cur.get(&(kind.clone(), name.clone())) {
            None => p.create.push(label),
            Some(old) => {
                let changes = field_diff(old, obj);
                if changes.is_empty() {
                    p.unchanged += 1;
                } else {
                    p.update.push((label, changes));
                }
            }
        }
    }
    for ((kind, name), obj) in &cur {
        if !tgt.contains_key(&(kind.clone(), name.clone())) {
            let label = format!("{kind}/{name}");
            if is_kept(obj) {
                p.keep.push(label)
            } else {
                p.delete.push(label)
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate() -> UpgradeCandidate<'static> {
        UpgradeCandidate {
            deployment_product: "db",
            current_version: "1.0.0",
            desired: DesiredState::Present,
            target_product: "db",
            target_version: "2.0.0",
            target_lifecycle: Lifecycle::Published,
            target_requires_admin: false,
            actor_is_admin: false,
        }
    }

    fn rules(v: &Verdict) -> Vec<&'static str> {
        v.refusals.iter().map(|r| r.rule).collect()
    }

    fn rollback() -> RollbackCandidate<'static> {
        RollbackCandidate {
            desired: DesiredState::Present,
            revision: 1,
            revision_succeeded: true,
            revision_is_current: false,
            target_version: "1.0.0",
            target_lifecycle: Lifecycle::Published,
            target_requires_admin: false,
            actor_is_admin: false,
        }
    }

    #[test]
    fn rollback_follows_the_upgrade_lifecycle_and_permission_rules() {
        assert!(check_rollback(&rollback()).allowed());
        let deprecated = RollbackCandidate {
            target_lifecycle: Lifecycle::Deprecated,
            ..rollback()
        };
        let v = check_rollback(&deprecated);
        assert!(v.allowed());
        assert_eq!(v.warnings.len(), 1);
        // A tenant cannot roll back to a retired version; an admin can, warned.
        let retired = RollbackCandidate {
            target_lifecycle: Lifecycle::Retired,
            ..rollback()
        };
        let v = check_rollback(&retired);
        assert_eq!(rules(&v), ["published-target"]);
        assert_eq!(v.refusals[0].kind, RefusalKind::Forbidden);
        assert!(v.refusals[0].message.contains("retired"));
        let v = check_rollback(&RollbackCandidate {
            actor_is_admin: true,
            ..retired
        });
        assert!(v.allowed());
        assert!(v.warnings[0].contains("retired"));
        let admin_only = RollbackCandidate {
            target_requires_admin: true,
            ..rollback()
        };
        assert_eq!(rules(&check_rollback(&admin_only)), ["admin-required"]);
        assert!(
            check_rollback(&RollbackCandidate {
                actor_is_admin: true,
                ..admin_only
            })
            .allowed()
        );
    }

    #[test]
    fn rollback_refuses_failed_current_and_deleting_with_every_reason() {
        let v = check_rollback(&RollbackCandidate {
            desired: DesiredState::Absent,
            revision_succeeded: false,
            revision_is_current: true,
            target_lifecycle: Lifecycle::Retired,
            ..rollback()
        });
        assert_eq!(
            rules(&v),
            [
                "not-deleting",
                "deployed-revision",
                "not-current",
                "published-target"
            ]
        );
        assert_eq!(v.refusals[0].kind, RefusalKind::Conflict);
    }

    #[test]
    fn a_newer_published_version_of_the_same_product_is_allowed() {
        let v = check_upgrade(&candidate());
        assert!(v.allowed(), "{v:?}");
        assert!(v.warnings.is_empty());
    }

    #[test]
    fn each_rule_refuses_with_its_own_message() {
        let other = UpgradeCandidate {
            target_product: "wiki",
            ..candidate()
        };
        assert_eq!(rules(&check_upgrade(&other)), ["same-product"]);
        let draft = UpgradeCandidate {
            target_lifecycle: Lifecycle::Draft,
            ..candidate()
        };
        assert_eq!(rules(&check_upgrade(&draft)), ["published-target"]);
        let retired = UpgradeCandidate {
            target_lifecycle: Lifecycle::Retired,
            ..candidate()
        };
        assert!(
            check_upgrade(&retired).refusals[0]
                .message
                .contains("retired")
        );
        let older = UpgradeCandidate {
            target_version: "0.9.0",
            ..candidate()
        };
        let v = check_upgrade(&older);
        assert_eq!(rules(&v), ["newer-target"]);
        assert!(v.refusals[0].message.contains("rollback"));
        let same = UpgradeCandidate {
            target_version: "1.0.0",
            ..candidate()
        };
        assert!(
            check_upgrade(&same).refusals[0]
                .message
                .contains("already runs")
        );
        let admin_only = UpgradeCandidate {
            target_requires_admin: true,
            ..candidate()
        };
        let v = check_upgrade(&admin_only);
        assert_eq!(v.refusals[0].kind, RefusalKind::Forbidden);
        assert!(v.refusals[0].message.contains("requires an admin"));
        assert!(
            check_upgrade(&UpgradeCandidate {
                actor_is_admin: true,
                ..admin_only
            })
            .allowed()
        );
        let deleting = UpgradeCandidate {
            desired: DesiredState::Absent,
            ..candidate()
        };
        assert_eq!(
            check_upgrade(&deleting).refusals[0].kind,
            RefusalKind::Conflict
        );
    }

    #[test]
    fn all_reasons_are_reported_together() {
        let bad = UpgradeCandidate {
            target_product: "wiki",
            target_version: "0.1.0",
            target_lifecycle: Lifecycle::Draft,
            ..candidate()
        };
        assert_eq!(
            rules(&check_upgrade(&bad)),
            ["same-product", "published-target", "newer-target"]
        );
    }

    #[test]
    fn deprecated_targets_warn() {
        let v = check_upgrade(&UpgradeCandidate {
            target_lifecycle: Lifecycle::Deprecated,
            ..candidate()
        });
        assert!(v.allowed());
        assert!(v.warnings[0].contains("deprecated"));
    }

    fn sts(name: &str, size: &str, service: &str) -> Value {
        json!({"kind": "StatefulSet", "metadata": {"name": name}, "spec": {
            "serviceName": service, "selector": {"matchLabels": {"app": "db"}},
            "template": {"spec": {"containers": [{"name": "db", "image": "db:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": size}}}}]}})
    }

    fn pvc(name: &str, size: &str) -> Value {
        json!({"kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    }

    #[test]
    fn template_only_changes_keep_data() {
        let mut next = sts("db", "1Gi", "db-headless");
        next["spec"]["template"]["spec"]["containers"][0]["image"] = json!("db:2");
        assert!(data_continuity(&[sts("db", "1Gi", "db-headless")], &[next]).is_empty());
    }

    #[test]
    fn deleting_or_renaming_persistent_objects_is_a_risk_unless_kept() {
        let risks = data_continuity(
            &[sts("db", "1Gi", "h"), pvc("cache", "1Gi")],
            &[sts("db2", "1Gi", "h")],
        );
        let names: Vec<&str> = risks.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["cache", "db"]);
        assert!(risks[1].message.contains("orphaned"));
        let mut kept = pvc("cache", "1Gi");
        kept["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
        assert!(data_continuity(&[kept], &[]).is_empty());
    }

    #[test]
    fn volume_claim_template_and_immutable_field_changes_are_risks() {
        let risks = data_continuity(&[sts("db", "1Gi", "h")], &[sts("db", "2Gi", "h")]);
        assert_eq!(risks.len(), 1);
        assert!(risks[0].message.contains("volumeClaimTemplates"));
        let risks = data_continuity(&[sts("db", "1Gi", "h")], &[sts("db", "1Gi", "other")]);
        assert!(risks[0].message.contains("spec.serviceName"));
    }

    #[test]
    fn with_recreate_only_what_recreation_cannot_do_is_a_risk() {
        let recreate = |a, b| data_continuity_with(&[a], &[b], StatefulSetUpdates::Recreate);
        assert!(recreate(sts("db", "1Gi", "h"), sts("db", "2Gi", "h")).is_empty());
        assert!(recreate(sts("db", "1Gi", "h"), sts("db", "1Gi", "other")).is_empty());
        let risks = recreate(sts("db", "2Gi", "h"), sts("db", "1Gi", "h"));
        assert!(risks[0].message.contains("shrink"), "{risks:?}");
        // Deleting the StatefulSet is a risk whatever the capability.
        let risks =
            data_continuity_with(&[sts("db", "1Gi", "h")], &[], StatefulSetUpdates::Recreate);
        assert!(risks[0].message.contains("orphaned"), "{risks:?}");
    }

    #[test]
    fn pvcs_may_grow_but_not_shrink() {
        assert!(data_continuity(&[pvc("d", "1Gi")], &[pvc("d", "2Gi")]).is_empty());
        let risks = data_continuity(&[pvc("d", "2Gi")], &[pvc("d", "1500Mi")]);
        assert!(
            risks[0].message.contains("shrink from 2Gi to 1500Mi"),
            "{risks:?}"
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("1Gi"), Some(1073741824.0));
        assert_eq!(quantity_bytes("500M"), Some(5e8));
        assert_eq!(quantity_bytes("10"), Some(10.0));
        assert!(quantity_bytes("1Zi").is_none());
    }

    #[test]
    fn named_lists_are_diffed_item_by_item() {
        let a = json!({"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "s:1"}]}});
        let b = json!({"spec": {"containers": [{"name": "web", "image": "nginx:2"}, {"name": "side", "image": "s:1"}]}});
        let d = field_diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "spec.containers[name=web].image");
        let c = json!({"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}});
        assert_eq!(field_diff(&a, &c)[0].path, "spec.containers[name=side]");
        let args = field_diff(&json!({"args": ["a"]}), &json!({"args": ["b"]}));
        assert_eq!(args[0].path, "args");
        // Mounts of one volume at several paths are items of their own.
        let mounts = |sub: &str| {
            json!({"spec": {"containers": [{"name": "web", "volumeMounts": [
            {"name": "v", "mountPath": "/a", "subPath": "a"},
            {"name": "v", "mountPath": "/b", "subPath": sub}]}]}})
        };
        let d = field_diff(&mounts("b"), &mounts("c"));
        assert_eq!(
            d.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
            ["spec.containers[name=web].volumeMounts[mountPath=/b].subPath"]
        );
        let chart = |v: &str| json!({"metadata": {"labels": {"helm.sh/chart": v}}});
        assert!(field_diff(&chart("web-1"), &chart("web-2")).is_empty());
    }

    #[test]
    fn plans_name_creates_updates_deletes_and_kept_objects() {
        let cm = |name: &str, v: &str| json!({"kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": v}});
        let mut keep = cm("settings", "x");
        keep["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
        let p = plan(
            &[cm("a", "1"), cm("b", "1"), keep, cm("same", "1")],
            &[cm("a", "2"), cm("c", "1"), cm("same", "1")],
        );
        assert_eq!(p.create, ["ConfigMap/c"]);
        assert_eq!(p.delete, ["ConfigMap/b"]);
        assert_eq!(p.keep, ["ConfigMap/settings"]);
        assert_eq!(p.unchanged, 1);
        assert_eq!(p.update[0].0, "ConfigMap/a");
        assert_eq!(
            p.update[0].1,
            vec![FieldChange {
                path: "data.k".into(),
                from: Some(json!("1")),
                to: Some(json!("2"))
            }]
        );
    }
}
