//! Policy on rendered chart objects: what a deployment may create.
//!
//! A deployment owns one namespace. Its chart may not create namespaces,
//! may not put objects into other namespaces, and may create cluster-scoped
//! objects (ClusterRoles, CRDs, webhooks, ...) only when the template's
//! capabilities allow it. Pure: objects come in as JSON values, violations
//! go out; the reconciler shows them as `Stalled`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a template version is allowed to render (from its capability flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderCapabilities {
    /// May create cluster-scoped objects (ClusterRole, CRDs, webhooks, ...).
    pub allow_cluster_scoped: bool,
}

/// Which rule an object broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// `Namespace` objects are refused always: Caelus owns the namespace.
    NamespaceObject,
    /// Cluster-scoped kinds need the `allow_cluster_scoped` capability.
    ClusterScoped,
    /// `metadata.namespace` must be empty or the deployment's own.
    ForeignNamespace,
    /// The object has no kind or no name, so it cannot be checked or applied.
    Malformed,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NamespaceObject => "namespace-object",
            Rule::ClusterScoped => "cluster-scoped",
            Rule::ForeignNamespace => "foreign-namespace",
            Rule::Malformed => "malformed",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refused object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: String,
    pub name: String,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?}: {} ({})",
            self.kind, self.name, self.message, self.rule
        )
    }
}

impl std::error::Error for Violation {}

/// Built-in cluster-scoped kinds (as served by Kubernetes 1.3x), keyed by
/// kind. Custom resources are cluster-scoped when a CRD in the same render
/// says so (see [`check_rendered`]).
pub const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "ClusterRoleList",
    "ClusterTrustBundle",
    "ComponentStatus",
    "CustomResourceDefinition",
    "FlowSchema",
    "IPAddress",
    "IngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "SelfSubjectAccessReview",
    "SelfSubjectReview",
    "SelfSubjectRulesReview",
    "ServiceCIDR",
    "StorageClass",
    "StorageVersionMigration",
    "SubjectAccessReview",
    "TokenReview",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
    "DeviceClass",
];

/// True for built-in cluster-scoped kinds.
pub fn is_cluster_scoped_kind(kind: &str) -> bool {
    CLUSTER_SCOPED_KINDS.contains(&kind)
}

/// Check every rendered object (ordinary objects, hooks and CRDs alike)
/// against the rules for a deployment in `namespace`. Returns all
/// violations, in input order; empty means the render may be applied.
///
/// CRDs among `objects` with `spec.scope: Cluster` make their own kind
/// cluster-scoped for this check, so a chart cannot slip a cluster-scoped
/// custom resource past the rule.
pub fn check_rendered(
    objects: &[Value],
    namespace: &str,
    caps: &RenderCapabilities,
) -> Vec<Violation> {
    let cluster_custom_kinds = cluster_scoped_custom_kinds(objects);
    objects
        .iter()
        .filter_map(|o| check_object(o, namespace, caps, &cluster_custom_kinds))
        .collect()
}

/// Like [`check_rendered`], as a `Result` for callers that stop at the
/// first refusal but still want the whole list.
pub fn ensure_allowed(
    objects: &[Value],
    namespace: &str,
    caps: &RenderCapabilities,
) -> Result<(), Vec<Violation>> {
    let v = check_rendered(objects, namespace, caps);
    if v.is_empty() { Ok(()) } else { Err(v) }
}

/// One line per violation, for a status message.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn str_at<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn cluster_scoped_custom_kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter(|o| str_at(o, "/kind") == "CustomResourceDefinition")
        .filter(|o| str_at(o, "/spec/scope") == "Cluster")
        .map(|o| str_at(o, "/spec/names/kind").to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

fn check_object(
    o: &Value,
    namespace: &str,
    caps: &RenderCapabilities,
    cluster_custom_kinds: &BTreeSet<String>,
) -> Option<Violation> {
    let kind = str_at(o, "/kind");
    let name = str_at(o, "/metadata/name");
    // generateName objects are named by the server; show that instead.
    let shown_name = if name.is_empty() {
        str_at(o, "/metadata/generateName")
    } else {
        name
    };
    let violation = |rule: Rule, message: String| Violation {
        kind: kind.to_string(),
        name: shown_name.to_string(),
        rule,
        message,
    };
    if kind.is_empty() || shown_name.is_empty() {
        return Some(violation(
            Rule::Malformed,
            "rendered object has no kind or no metadata.name".into(),
        ));
    }
    if kind == "Namespace" {
        return Some(violation(
            Rule::NamespaceObject,
            format!(
                "charts may not create namespaces; Caelus creates and owns the deployment's namespace {namespace:?}"
            ),
        ));
    }
    let cluster_scoped = is_cluster_scoped_kind(kind) || cluster_custom_kinds.contains(kind);
    if cluster_scoped {
        if !caps.allow_cluster_scoped {
            return Some(violation(
                Rule::ClusterScoped,
                format!(
                    "{kind} is cluster-scoped, and this template's capabilities do not allow cluster-scoped objects"
                ),
            ));
        }
        // Kubernetes ignores metadata.namespace on cluster-scoped objects.
        return None;
    }
    let object_ns = str_at(o, "/metadata/namespace");
    if !object_ns.is_empty() && object_ns != namespace {
        return Some(violation(
            Rule::ForeignNamespace,
            format!(
                "metadata.namespace is {object_ns:?}, but this deployment may only create objects in {namespace:?}"
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NS: &str = "team-a";
    const DENY: RenderCapabilities = RenderCapabilities {
        allow_cluster_scoped: false,
    };
    const ALLOW: RenderCapabilities = RenderCapabilities {
        allow_cluster_scoped: true,
    };

    fn obj(kind: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}})
    }

    fn obj_ns(kind: &str, name: &str, ns: &str) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}})
    }

    fn crd(kind: &str, scope: &str) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{}s.example.com", kind.to_lowercase())},
            "spec": {"group": "example.com", "scope": scope, "names": {"kind": kind, "plural": format!("{}s", kind.to_lowercase())}}
        })
    }

    #[test]
    fn ordinary_namespaced_objects_pass() {
        let objects = vec![
            obj("ConfigMap", "a"),
            obj("Service", "b"),
            obj_ns("Deployment", "c", NS),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "d", "namespace": ""}}),
        ];
        assert!(check_rendered(&objects, NS, &DENY).is_empty());
        assert!(ensure_allowed(&objects, NS, &DENY).is_ok());
    }

    #[test]
    fn empty_render_passes() {
        assert!(check_rendered(&[], NS, &DENY).is_empty());
    }

    #[test]
    fn namespace_objects_are_refused_even_when_cluster_scope_is_allowed() {
        for caps in [DENY, ALLOW] {
            let v = check_rendered(&[obj("Namespace", "team-b")], NS, &caps);
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].rule, Rule::NamespaceObject);
            assert_eq!(v[0].kind, "Namespace");
            assert_eq!(v[0].name, "team-b");
        }
    }

    #[test]
    fn the_deployments_own_namespace_object_is_refused_too() {
        let v = check_rendered(&[obj("Namespace", NS)], NS, &ALLOW);
        assert_eq!(v[0].rule, Rule::NamespaceObject);
    }

    #[test]
    fn cluster_scoped_kinds_need_the_capability() {
        let objects = vec![
            obj("ClusterRole", "reader"),
            obj("ClusterRoleBinding", "reader"),
            obj("CustomResourceDefinition", "widgets.example.com"),
            obj("ValidatingWebhookConfiguration", "hook"),
            obj("PriorityClass", "high"),
            obj("StorageClass", "fast"),
            obj("PersistentVolume", "pv1"),
            obj("IngressClass", "nginx"),
        ];
        let v = check_rendered(&objects, NS, &DENY);
        assert_eq!(v.len(), objects.len());
        assert!(v.iter().all(|v| v.rule == Rule::ClusterScoped));
        assert_eq!(v[0].kind, "ClusterRole");
        assert_eq!(v[0].name, "reader");
        assert!(check_rendered(&objects, NS, &ALLOW).is_empty());
    }

    #[test]
    fn cluster_scoped_objects_with_a_namespace_set_are_judged_by_scope() {
        // Kubernetes ignores the field on cluster-scoped objects.
        let o = obj_ns("ClusterRole", "r", "elsewhere");
        assert!(check_rendered(std::slice::from_ref(&o), NS, &ALLOW).is_empty());
        assert_eq!(check_rendered(&[o], NS, &DENY)[0].rule, Rule::ClusterScoped);
    }

    #[test]
    fn foreign_namespaces_are_refused_even_with_cluster_capability() {
        let objects = vec![
            obj_ns("ConfigMap", "leak", "kube-system"),
            obj_ns("Secret", "ok", NS),
        ];
        for caps in [DENY, ALLOW] {
            let v = check_rendered(&objects, NS, &caps);
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].rule, Rule::ForeignNamespace);
            assert_eq!(
                (v[0].kind.as_str(), v[0].name.as_str()),
                ("ConfigMap", "leak")
            );
            assert!(v[0].message.contains("kube-system"));
            assert!(v[0].message.contains(NS));
        }
    }

    #[test]
    fn custom_resources_follow_their_crd_scope() {
        let cluster = vec![crd("Gadget", "Cluster"), obj("Gadget", "g1")];
        let v = check_rendered(&cluster, NS, &DENY);
        // The CRD itself and its cluster-scoped instance.
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].kind.as_str(), v[1].rule),
            ("Gadget", Rule::ClusterScoped)
        );
        assert!(check_rendered(&cluster, NS, &ALLOW).is_empty());

        // Namespaced custom resources are judged like any namespaced object.
        let namespaced = vec![obj("Widget", "w1"), obj_ns("Widget", "w2", "other")];
        let v = check_rendered(&namespaced, NS, &DENY);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].name.as_str(), v[0].rule),
            ("w2", Rule::ForeignNamespace)
        );
    }

    #[test]
    fn unnamed_or_kindless_objects_are_malformed() {
        let v = check_rendered(
            &[
                json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
                json!({"kind": "ConfigMap"}),
            ],
            NS,
            &ALLOW,
        );
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| v.rule == Rule::Malformed));
    }

    #[test]
    fn generate_name_is_shown_when_there_is_no_name() {
        let o = json!({"kind": "Job", "metadata": {"generateName": "migrate-", "namespace": "x"}});
        let v = check_rendered(&[o], NS, &DENY);
        assert_eq!(v[0].name, "migrate-");
        assert_eq!(v[0].rule, Rule::ForeignNamespace);
    }

    #[test]
    fn every_violation_is_reported_in_order() {
        let objects = vec![
            obj("Namespace", "n"),
            obj("ConfigMap", "fine"),
            obj("ClusterRole", "cr"),
            obj_ns("Service", "svc", "other"),
        ];
        let v = check_rendered(&objects, NS, &DENY);
        let rules: Vec<Rule> = v.iter().map(|v| v.rule).collect();
        assert_eq!(
            rules,
            vec![
                Rule::NamespaceObject,
                Rule::ClusterScoped,
                Rule::ForeignNamespace
            ]
        );
        let err = ensure_allowed(&objects, NS, &DENY).unwrap_err();
        assert_eq!(err, v);
    }

    #[test]
    fn display_names_kind_name_and_rule() {
        let v = check_rendered(&[obj("ClusterRole", "reader")], NS, &DENY);
        let text = v[0].to_string();
        assert!(text.starts_with("ClusterRole \"reader\": "), "{text}");
        assert!(text.ends_with("(cluster-scoped)"), "{text}");
        let all = describe(&check_rendered(
            &[obj("Namespace", "a"), obj_ns("Pod", "p", "b")],
            NS,
            &DENY,
        ));
        assert!(
            all.contains("Namespace \"a\"") && all.contains("Pod \"p\"") && all.contains("; "),
            "{all}"
        );
    }

    #[test]
    fn rule_names_are_stable() {
        assert_eq!(Rule::NamespaceObject.to_string(), "namespace-object");
        assert_eq!(Rule::ClusterScoped.to_string(), "cluster-scoped");
        assert_eq!(Rule::ForeignNamespace.to_string(), "foreign-namespace");
        assert_eq!(
            serde_json::to_value(Rule::ForeignNamespace).unwrap(),
            json!("foreign-namespace")
        );
    }

    #[test]
    fn capabilities_default_to_deny() {
        assert!(!RenderCapabilities::default().allow_cluster_scoped);
    }

    #[test]
    fn cluster_scoped_kind_table() {
        assert!(is_cluster_scoped_kind("ClusterRole"));
        assert!(is_cluster_scoped_kind("Node"));
        assert!(!is_cluster_scoped_kind("Role"));
        assert!(!is_cluster_scoped_kind("Deployment"));
        assert!(!is_cluster_scoped_kind("Widget"));
    }
}
