//! RBAC objects a chart may render.
//!
//! A binding grants its subjects the permissions of a role. Inside its own
//! namespace a chart may bind its own Roles; a ClusterRole only when the
//! template lists it in `allowed_cluster_roles` (binding `admin` or
//! `cluster-admin` in the namespace would let the chart's pods remove the
//! namespace's isolation objects) or when the chart renders that ClusterRole
//! itself under `allow_cluster_scoped`. Subjects are only ServiceAccounts of
//! the deployment's namespace: a binding naming users, groups or another
//! namespace's accounts hands the deployment's permissions to someone else.
//! Roles may not grant writes on the isolation objects, nor the
//! `escalate`, `bind` and `impersonate` verbs that step around RBAC's own
//! escalation check. Pure; see [`crate::render_policy`] for how findings
//! become refusals.

use std::collections::BTreeSet;

use serde_json::Value;

/// What the RBAC rules need to know about the template and the render.
#[derive(Debug, Clone, Copy)]
pub struct RbacContext<'a> {
    pub namespace: &'a str,
    /// ClusterRoles the template allows bindings to (capability).
    pub allowed_cluster_roles: &'a [String],
    /// May the chart create cluster-scoped objects (its own ClusterRoles)?
    pub allow_cluster_scoped: bool,
    /// Names of the ClusterRoles this same render creates.
    pub rendered_cluster_roles: &'a BTreeSet<String>,
}

/// Resources whose writes would undo the namespace's isolation.
pub const ISOLATION_RESOURCES: &[&str] = &[
    "resourcequotas",
    "limitranges",
    "networkpolicies",
    "namespaces",
];

/// Verbs that step around RBAC's escalation prevention.
pub const ESCALATING_VERBS: &[&str] = &["escalate", "bind", "impersonate"];

const WRITE_VERBS: &[&str] = &[
    "*",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Problems of a RoleBinding or ClusterRoleBinding: its role reference and
/// each subject. Empty for any other kind.
pub fn check_binding(object: &Value, ctx: &RbacContext<'_>) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap_or("");
    if kind != "RoleBinding" && kind != "ClusterRoleBinding" {
        return Vec::new();
    }
    let mut out = Vec::new();
    let role_kind = object["roleRef"]["kind"].as_str().unwrap_or("");
    let role_name = object["roleRef"]["name"].as_str().unwrap_or("");
    match role_kind {
        // A RoleBinding's Role is always one of its own namespace.
        "Role" if kind == "RoleBinding" => {}
        "ClusterRole" => {
            let allowlisted = ctx.allowed_cluster_roles.iter().any(|r| r == role_name);
            let own = ctx.allow_cluster_scoped && ctx.rendered_cluster_roles.contains(role_name);
            if !allowlisted && !own {
                out.push(format!(
                    "roleRef names ClusterRole {role_name:?}, which is neither in the template's allowed_cluster_roles ({}) nor created by this chart under allow_cluster_scoped",
                    if ctx.allowed_cluster_roles.is_empty() {
                        "empty".to_string()
                    } else {
                        ctx.allowed_cluster_roles.join(", ")
                    }
                ));
            }
        }
        other => out.push(format!(
            "roleRef.kind {other:?} is not allowed in a {kind}; use a Role of this namespace or an allowed ClusterRole"
        )),
    }
    for (i, s) in object["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s_kind = s["kind"].as_str().unwrap_or("");
        let s_name = s["name"].as_str().unwrap_or("");
        let s_ns = s["namespace"].as_str().unwrap_or("");
        if s_kind != "ServiceAccount" {
            out.push(format!(
                "subjects[{i}] is {s_kind} {s_name:?}; only ServiceAccounts of namespace {:?} may be bound",
                ctx.namespace
            ));
        } else if !s_ns.is_empty() && s_ns != ctx.namespace {
            out.push(format!(
                "subjects[{i}] is ServiceAccount {s_ns}/{s_name}; only ServiceAccounts of namespace {:?} may be bound",
                ctx.namespace
            ));
        }
    }
    out
}

/// Problems of a Role or ClusterRole's rules. Empty for any other kind.
pub fn check_role(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap_or("");
    if kind != "Role" && kind != "ClusterRole" {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
        let verbs = strs(&rule["verbs"]);
        let resources = strs(&rule["resources"]);
        let escalating: Vec<&str> = verbs
            .iter()
            .copied()
            .filter(|v| ESCALATING_VERBS.contains(v))
            .collect();
        if !escalating.is_empty() {
            out.push(format!(
                "rules[{i}] grants {}; escalate, bind and impersonate are not allowed",
                escalating.join(", ")
            ));
            continue;
        }
        let writes = verbs.iter().any(|v| WRITE_VERBS.contains(v));
        let touched: Vec<&str> = resources
            .iter()
            .copied()
            .filter(|r| *r == "*" || ISOLATION_RESOURCES.contains(r))
            .collect();
        if writes && !touched.is_empty() {
            out.push(format!(
                "rules[{i}] grants writes on {}; the namespace's isolation objects are Caelus's alone",
                touched.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(allowed: &'a [String], own: &'a BTreeSet<String>, cluster: bool) -> RbacContext<'a> {
        RbacContext {
            namespace: "team-a",
            allowed_cluster_roles: allowed,
            allow_cluster_scoped: cluster,
            rendered_cluster_roles: own,
        }
    }

    fn binding(kind: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
        json!({"kind": kind, "metadata": {"name": "b"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
               "subjects": subjects})
    }

    fn sa(name: &str, ns: &str) -> Value {
        json!({"kind": "ServiceAccount", "name": name, "namespace": ns})
    }

    #[test]
    fn own_roles_and_own_service_accounts_pass() {
        let none = BTreeSet::new();
        let b = binding(
            "RoleBinding",
            "Role",
            "app",
            json!([sa("app", "team-a"), {"kind": "ServiceAccount", "name": "x"}]),
        );
        assert!(check_binding(&b, &ctx(&[], &none, false)).is_empty());
    }

    #[test]
    fn cluster_roles_need_the_allowlist() {
        let none = BTreeSet::new();
        let b = binding(
            "RoleBinding",
            "ClusterRole",
            "cluster-admin",
            json!([sa("app", "team-a")]),
        );
        let found = check_binding(&b, &ctx(&[], &none, true));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("\"cluster-admin\"")
                && found[0].contains("allowed_cluster_roles (empty)"),
            "{}",
            found[0]
        );
        let view = vec!["view".to_string()];
        let b = binding(
            "RoleBinding",
            "ClusterRole",
            "view",
            json!([sa("app", "team-a")]),
        );
        assert!(check_binding(&b, &ctx(&view, &none, false)).is_empty());
    }

    #[test]
    fn a_chart_may_bind_its_own_cluster_role_only_when_it_may_create_it() {
        let own: BTreeSet<String> = ["ksm".to_string()].into();
        let b = binding(
            "ClusterRoleBinding",
            "ClusterRole",
            "ksm",
            json!([sa("ksm", "team-a")]),
        );
        assert!(check_binding(&b, &ctx(&[], &own, true)).is_empty());
        assert_eq!(check_binding(&b, &ctx(&[], &own, false)).len(), 1);
        let admin = binding(
            "ClusterRoleBinding",
            "ClusterRole",
            "cluster-admin",
            json!([sa("ksm", "team-a")]),
        );
        assert_eq!(check_binding(&admin, &ctx(&[], &own, true)).len(), 1);
    }

    #[test]
    fn subjects_are_only_service_accounts_of_the_namespace() {
        let none = BTreeSet::new();
        let b = binding(
            "RoleBinding",
            "Role",
            "app",
            json!([sa("app", "team-b"), {"kind": "User", "name": "mallory"}, {"kind": "Group", "name": "system:authenticated"}]),
        );
        let found = check_binding(&b, &ctx(&[], &none, true));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("team-b/app"));
        assert!(found[1].contains("User \"mallory\""));
        assert!(found[2].starts_with("subjects[2] is Group"));
    }

    #[test]
    fn roles_may_not_touch_isolation_objects_or_escalate() {
        let role = json!({"kind": "Role", "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["delete"]},
            {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get", "list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        ]});
        let found = check_role(&role);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("rules[1] grants writes on networkpolicies"));
        assert!(found[1].starts_with("rules[3] grants escalate"));
        assert!(found[2].starts_with("rules[4] grants writes on *"));
        assert!(check_role(&json!({"kind": "ConfigMap"})).is_empty());
    }
}
