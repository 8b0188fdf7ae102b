//! Policy on rendered chart objects: what a deployment may create.
//!
//! A deployment owns one namespace and nothing beyond it. One check,
//! [`check_rendered`], runs over every object a revision renders — CRDs,
//! ordinary objects and hooks of every event — before anything of that
//! revision is written, wherever a revision is rendered (the reconciler,
//! upgrade and rollback plans, previews, publishing). Each rule below is its
//! own function with its own refusal; the capability flag that relaxes it,
//! if any, is named on the rule. Pure: objects come in as JSON values,
//! violations go out; the reconciler shows them as `Stalled`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pod_security;
use crate::rbac::{self, RbacContext};
use crate::template::{Capabilities, PodSecurityLevel};

/// Names of the isolation objects Caelus puts in every deployment's
/// namespace (the engine applies them; charts may not reuse the names).
pub const QUOTA_NAME: &str = "caelus-quota";
pub const LIMIT_RANGE_NAME: &str = "caelus-limits";
pub const NETWORK_POLICY_NAME: &str = "caelus-default-deny-ingress";

/// `(kind, name)` of each isolation object.
pub const ISOLATION_OBJECTS: &[(&str, &str)] = &[
    ("ResourceQuota", QUOTA_NAME),
    ("LimitRange", LIMIT_RANGE_NAME),
    ("NetworkPolicy", NETWORK_POLICY_NAME),
];

/// The label and annotation domain Caelus marks ownership with
/// (`caelus.io/deployment-uid`, `caelus.io/installation`, ...).
pub const RESERVED_DOMAIN: &str = "caelus.io";

/// What a template version is allowed to render (from its capability flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderCapabilities {
    /// May create cluster-scoped objects (ClusterRole, CRDs, webhooks, ...).
    pub allow_cluster_scoped: bool,
    /// ClusterRoles that RoleBindings and ClusterRoleBindings may reference.
    pub allowed_cluster_roles: Vec<String>,
    /// The Pod Security Standard every pod template must meet.
    pub pod_security: PodSecurityLevel,
}

impl From<&Capabilities> for RenderCapabilities {
    fn from(c: &Capabilities) -> Self {
        RenderCapabilities {
            allow_cluster_scoped: c.allow_cluster_scoped,
            allowed_cluster_roles: c.allowed_cluster_roles.clone(),
            pod_security: c.pod_security,
        }
    }
}

/// Where objects of a kind live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One rendered object as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct PolicyObject<'a> {
    pub object: &'a Value,
    /// The hook's events (`pre-install, post-install`) when the object is
    /// a hook: hooks are checked like every other object, and named so.
    pub hook: Option<&'a str>,
}

impl<'a> PolicyObject<'a> {
    pub fn plain(object: &'a Value) -> Self {
        PolicyObject { object, hook: None }
    }
}

/// Who is rendering: the deployment's namespace, the template's
/// capabilities, and the labels Caelus itself writes on every object.
#[derive(Debug, Clone, Copy)]
pub struct PolicyContext<'a> {
    pub namespace: &'a str,
    pub caps: &'a RenderCapabilities,
    /// `(key, value)` of the ownership labels Caelus sets on every rendered
    /// object (`caelus.io/deployment-uid` = this deployment's uid): the
    /// only reserved-domain metadata a rendered object may carry.
    pub own_labels: &'a [(&'a str, &'a str)],
}

/// Which rule an object broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The object has no kind or no name, so it cannot be checked or applied.
    Malformed,
    /// `Namespace` objects are refused always: Caelus owns the namespace.
    NamespaceObject,
    /// Cluster-scoped kinds need the `allow_cluster_scoped` capability.
    ClusterScoped,
    /// `metadata.namespace` must be empty or the deployment's own.
    ForeignNamespace,
    /// The names of Caelus's isolation objects are refused always.
    ReservedName,
    /// Labels and annotations of Caelus's domain are refused always.
    ReservedMetadata,
    /// Bindings: own Roles or `allowed_cluster_roles`, own ServiceAccounts.
    RbacBinding,
    /// Roles may not grant writes on isolation objects or escalating verbs.
    RbacRole,
    /// Pod templates must meet the template's `pod_security` level.
    PodSecurity,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Malformed => "malformed",
            Rule::NamespaceObject => "namespace-object",
            Rule::ClusterScoped => "cluster-scoped",
            Rule::ForeignNamespace => "foreign-namespace",
            Rule::ReservedName => "reserved-name",
            Rule::ReservedMetadata => "reserved-metadata",
            Rule::RbacBinding => "rbac-binding",
            Rule::RbacRole => "rbac-role",
            Rule::PodSecurity => "pod-security",
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
    /// The hook's events when the object is a hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)?;
        if let Some(h) = &self.hook {
            write!(f, " ({h} hook)")?;
        }
        write!(f, ": {} ({})", self.message, self.rule)
    }
}

impl std::error::Error for Violation {}

/// Built-in cluster-scoped kinds (as served by Kubernetes 1.3x), keyed by
/// kind: the scope of a preview without a cluster. A deployment's revision
/// is judged by the cluster's own discovery instead (the engine resolves
/// every kind before the first write), so an installed cluster-scoped
/// custom kind is not mistaken for a namespaced one.
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

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Scopes declared by the CRDs of a render: `(group, kind)` → scope.
pub fn crd_scopes(objects: &[PolicyObject<'_>]) -> Vec<(String, String, Scope)> {
    objects
        .iter()
        .map(|o| o.object)
        .filter(|o| str_at(o, "/kind") == "CustomResourceDefinition")
        .filter(|o| !str_at(o, "/spec/names/kind").is_empty())
        .map(|o| {
            let scope = if str_at(o, "/spec/scope") == "Cluster" {
                Scope::Cluster
            } else {
                Scope::Namespaced
            };
            (
                str_at(o, "/spec/group").to_string(),
                str_at(o, "/spec/names/kind").to_string(),
                scope,
            )
        })
        .collect()
}

/// The scope of a kind without a cluster (previews): the built-in table,
/// else the render's own CRDs, else namespaced.
pub fn static_scope(crds: &[(String, String, Scope)], api_version: &str, kind: &str) -> Scope {
    let group = group_of(api_version);
    if let Some((_, _, s)) = crds.iter().find(|(g, k, _)| g == group && k == kind) {
        return *s;
    }
    if is_cluster_scoped_kind(kind) {
        Scope::Cluster
    } else {
        Scope::Namespaced
    }
}

/// Check every rendered object (CRDs, ordinary objects and hooks alike)
/// against the rules for a deployment in `ctx.namespace`. `scope_of`
/// answers where a kind (`apiVersion`, `kind`) lives: the cluster's
/// discovery for a revision, [`static_scope`] for a preview. Returns all
/// violations, in input order; empty means the render may be applied.
pub fn check_rendered(
    objects: &[PolicyObject<'_>],
    ctx: &PolicyContext<'_>,
    scope_of: &dyn Fn(&str, &str) -> Scope,
) -> Vec<Violation> {
    let rendered_cluster_roles: BTreeSet<String> = objects
        .iter()
        .filter(|o| str_at(o.object, "/kind") == "ClusterRole")
        .map(|o| str_at(o.object, "/metadata/name").to_string())
        .collect();
    let rbac_ctx = RbacContext {
        namespace: ctx.namespace,
        allowed_cluster_roles: &ctx.caps.allowed_cluster_roles,
        allow_cluster_scoped: ctx.caps.allow_cluster_scoped,
        rendered_cluster_roles: &rendered_cluster_roles,
    };
    let mut out = Vec::new();
    for o in objects {
        check_object(o, ctx, &rbac_ctx, scope_of, &mut out);
    }
    out
}

/// [`check_rendered`] with the static scope (built-in table and the
/// render's CRDs): for previews without a cluster.
pub fn check_rendered_static(
    objects: &[PolicyObject<'_>],
    ctx: &PolicyContext<'_>,
) -> Vec<Violation> {
    let crds = crd_scopes(objects);
    check_rendered(objects, ctx, &|av, k| static_scope(&crds, av, k))
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

fn check_object(
    o: &PolicyObject<'_>,
    ctx: &PolicyContext<'_>,
    rbac_ctx: &RbacContext<'_>,
    scope_of: &dyn Fn(&str, &str) -> Scope,
    out: &mut Vec<Violation>,
) {
    let obj = o.object;
    let kind = str_at(obj, "/kind");
    let name = str_at(obj, "/metadata/name");
    // generateName objects are named by the server; show that instead.
    let shown_name = if name.is_empty() {
        str_at(obj, "/metadata/generateName")
    } else {
        name
    };
    let mut push = |rule: Rule, message: String| {
        out.push(Violation {
            kind: kind.to_string(),
            name: shown_name.to_string(),
            hook: o.hook.map(str::to_string),
            rule,
            message,
        })
    };
    if kind.is_empty() || shown_name.is_empty() {
        return push(
            Rule::Malformed,
            "rendered object has no kind or no metadata.name".into(),
        );
    }
    if let Some(m) = namespace_object(kind, ctx.namespace) {
        return push(Rule::NamespaceObject, m);
    }
    match scope_of(str_at(obj, "/apiVersion"), kind) {
        Scope::Cluster => {
            if let Some(m) = cluster_scoped(kind, ctx.caps) {
                push(Rule::ClusterScoped, m);
            }
        }
        Scope::Namespaced => {
            if let Some(m) = foreign_namespace(obj, ctx.namespace) {
                push(Rule::ForeignNamespace, m);
            }
        }
    }
    if let Some(m) = reserved_name(kind, name) {
        push(Rule::ReservedName, m);
    }
    for m in reserved_metadata(obj, ctx.own_labels) {
        push(Rule::ReservedMetadata, m);
    }
    for m in rbac::check_binding(obj, rbac_ctx) {
        push(Rule::RbacBinding, m);
    }
    for m in rbac::check_role(obj) {
        push(Rule::RbacRole, m);
    }
    if let Some(m) = pod_security_of(obj, ctx.caps.pod_security) {
        push(Rule::PodSecurity, m);
    }
}

/// Rule [`Rule::NamespaceObject`]: never, whatever the capabilities.
pub fn namespace_object(kind: &str, namespace: &str) -> Option<String> {
    (kind == "Namespace").then(|| {
        format!(
            "charts may not create namespaces; Caelus creates and owns the deployment's namespace {namespace:?}"
        )
    })
}

/// Rule [`Rule::ClusterScoped`]: relaxed by `allow_cluster_scoped`.
pub fn cluster_scoped(kind: &str, caps: &RenderCapabilities) -> Option<String> {
    (!caps.allow_cluster_scoped).then(|| {
        format!(
            "{kind} is cluster-scoped, and this template's capabilities do not allow cluster-scoped objects (allow_cluster_scoped)"
        )
    })
}

/// Rule [`Rule::ForeignNamespace`]: never, whatever the capabilities.
pub fn foreign_namespace(obj: &Value, namespace: &str) -> Option<String> {
    let object_ns = str_at(obj, "/metadata/namespace");
    (!object_ns.is_empty() && object_ns != namespace).then(|| {
        format!(
            "metadata.namespace is {object_ns:?}, but this deployment may only create objects in {namespace:?}"
        )
    })
}

/// Rule [`Rule::ReservedName`]: never, whatever the capabilities.
pub fn reserved_name(kind: &str, name: &str) -> Option<String> {
    ISOLATION_OBJECTS
        .iter()
        .any(|(k, n)| *k == kind && *n == name)
        .then(|| {
            format!(
                "{kind} {name:?} is one of the isolation objects Caelus puts in every deployment's namespace; choose another name"
            )
        })
}

fn is_reserved_key(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    domain == RESERVED_DOMAIN || domain.ends_with(&format!(".{RESERVED_DOMAIN}"))
}

/// Rule [`Rule::ReservedMetadata`]: labels and annotations of Caelus's own
/// domain on the object or its pod template, unless they are the ones
/// Caelus itself writes, with its values. Never, whatever the capabilities.
pub fn reserved_metadata(obj: &Value, own_labels: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut metas = vec![("metadata", &obj["metadata"])];
    if let Some((path, template)) = pod_security::pod_template_of(obj)
        && !path.is_empty()
    {
        metas.push((path, &template["metadata"]));
    }
    let template_path = |p: &str| {
        if p == "metadata" {
            "metadata".to_string()
        } else {
            format!("{p}.metadata")
        }
    };
    for (path, meta) in metas {
        for field in ["labels", "annotations"] {
            let Some(map) = meta[field].as_object() else {
                continue;
            };
            for (key, value) in map {
                if !is_reserved_key(key) {
                    continue;
                }
                let ours = field == "labels"
                    && own_labels
                        .iter()
                        .any(|(k, v)| *k == key.as_str() && value.as_str() == Some(*v));
                if !ours {
                    out.push(format!(
                        "{}.{field}[{key:?}] is in Caelus's reserved {RESERVED_DOMAIN} domain; only Caelus sets these (ownership)",
                        template_path(path)
                    ));
                }
            }
        }
    }
    out
}

/// Rule [`Rule::PodSecurity`]: every finding of the level on the object's
/// pod template, naming container and field. Relaxed only by the
/// template's `pod_security` level.
pub fn pod_security_of(obj: &Value, level: PodSecurityLevel) -> Option<String> {
    let (path, template) = pod_security::pod_template_of(obj)?;
    let findings = pod_security::check_pod_template(level, template);
    if findings.is_empty() {
        return None;
    }
    let level_name = match level {
        PodSecurityLevel::Privileged => "privileged",
        PodSecurityLevel::Baseline => "baseline",
        PodSecurityLevel::Restricted => "restricted",
    };
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" in {path}")
    };
    Some(format!(
        "violates Pod Security {level_name:?}{at}: {}",
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NS: &str = "team-a";
    const UID: &str = "uid-a";
    const OWN: &[(&str, &str)] = &[("caelus.io/deployment-uid", UID)];

    fn deny() -> RenderCapabilities {
        RenderCapabilities::default()
    }

    fn allow() -> RenderCapabilities {
        RenderCapabilities {
            allow_cluster_scoped: true,
            ..Default::default()
        }
    }

    fn check_with(objects: &[Value], caps: &RenderCapabilities) -> Vec<Violation> {
        let objs: Vec<PolicyObject> = objects.iter().map(PolicyObject::plain).collect();
        let ctx = PolicyContext {
            namespace: NS,
            caps,
            own_labels: OWN,
        };
        check_rendered_static(&objs, &ctx)
    }

    fn rules(v: &[Violation]) -> Vec<Rule> {
        v.iter().map(|v| v.rule).collect()
    }

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

    fn deployment(pod_spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}})
    }

    #[test]
    fn ordinary_namespaced_objects_pass() {
        let objects = vec![
            obj("ConfigMap", "a"),
            obj("Service", "b"),
            obj_ns("Secret", "c", NS),
            deployment(json!({"containers": [{"name": "web", "image": "nginx"}]})),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d",
                   "labels": {"caelus.io/deployment-uid": UID, "app.kubernetes.io/managed-by": "caelus"}}}),
        ];
        assert_eq!(check_with(&objects, &deny()), vec![]);
        assert!(check_with(&[], &deny()).is_empty());
    }

    #[test]
    fn namespace_objects_are_refused_whatever_the_capabilities() {
        for caps in [deny(), allow()] {
            for name in ["team-b", NS] {
                let v = check_with(&[obj("Namespace", name)], &caps);
                assert_eq!(rules(&v), vec![Rule::NamespaceObject]);
                assert_eq!(
                    (v[0].kind.as_str(), v[0].name.as_str()),
                    ("Namespace", name)
                );
            }
        }
    }

    #[test]
    fn cluster_scoped_kinds_need_the_capability() {
        let objects = vec![
            obj("ClusterRole", "reader"),
            obj("CustomResourceDefinition", "widgets.example.com"),
            obj("ValidatingWebhookConfiguration", "hook"),
            obj("PriorityClass", "high"),
            obj("PersistentVolume", "pv1"),
            obj("IngressClass", "nginx"),
        ];
        let v = check_with(&objects, &deny());
        assert_eq!(v.len(), objects.len());
        assert!(v.iter().all(|v| v.rule == Rule::ClusterScoped));
        assert!(v[0].message.contains("allow_cluster_scoped"));
        assert!(check_with(&objects, &allow()).is_empty());
        // metadata.namespace on a cluster-scoped object is ignored by Kubernetes.
        assert!(check_with(&[obj_ns("ClusterRole", "r", "elsewhere")], &allow()).is_empty());
    }

    #[test]
    fn the_cluster_decides_the_scope_of_installed_custom_kinds() {
        // A custom kind the static table does not know, installed in the
        // cluster as cluster-scoped by someone else's CRD.
        let gadget =
            json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}});
        let objs = [PolicyObject::plain(&gadget)];
        let caps = deny();
        let ctx = PolicyContext {
            namespace: NS,
            caps: &caps,
            own_labels: OWN,
        };
        assert!(check_rendered_static(&objs, &ctx).is_empty());
        let cluster = |_: &str, k: &str| {
            if k == "Gadget" {
                Scope::Cluster
            } else {
                Scope::Namespaced
            }
        };
        assert_eq!(
            rules(&check_rendered(&objs, &ctx, &cluster)),
            vec![Rule::ClusterScoped]
        );
    }

    #[test]
    fn custom_resources_of_the_renders_own_crds_follow_their_scope() {
        let gadget =
            json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}});
        let v = check_with(&[crd("Gadget", "Cluster"), gadget.clone()], &deny());
        assert_eq!(rules(&v), vec![Rule::ClusterScoped, Rule::ClusterScoped]);
        assert_eq!(v[1].kind, "Gadget");
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "other"}});
        let v = check_with(&[widget], &deny());
        assert_eq!(rules(&v), vec![Rule::ForeignNamespace]);
    }

    #[test]
    fn foreign_namespaces_are_refused_even_with_cluster_capability() {
        for caps in [deny(), allow()] {
            let v = check_with(
                &[
                    obj_ns("ConfigMap", "leak", "kube-system"),
                    obj_ns("Secret", "ok", NS),
                ],
                &caps,
            );
            assert_eq!(rules(&v), vec![Rule::ForeignNamespace]);
            assert!(v[0].message.contains("kube-system") && v[0].message.contains(NS));
        }
    }

    #[test]
    fn isolation_object_names_are_reserved() {
        for (kind, name) in ISOLATION_OBJECTS {
            let v = check_with(
                &[json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}})],
                &allow(),
            );
            assert_eq!(rules(&v), vec![Rule::ReservedName], "{kind}");
            assert!(v[0].message.contains("isolation objects"));
        }
        // Other names of the same kinds, and the names on other kinds, pass.
        assert!(
            check_with(
                &[
                    obj("ResourceQuota", "app-quota"),
                    obj("ConfigMap", QUOTA_NAME)
                ],
                &deny()
            )
            .is_empty()
        );
    }

    #[test]
    fn caelus_metadata_is_reserved() {
        let forged = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
            "labels": {"caelus.io/deployment-uid": "someone-else", "caelus.io/installation": "x"},
            "annotations": {"projections.caelus.io/owner": "y", "example.com/ok": "z"}}});
        let v = check_with(&[forged], &allow());
        assert_eq!(rules(&v), vec![Rule::ReservedMetadata; 3]);
        assert!(
            v[0].message
                .contains("metadata.labels[\"caelus.io/deployment-uid\"]"),
            "{}",
            v[0].message
        );
        let pod_labels = deployment(json!({"containers": []}));
        let mut pod_labels = pod_labels;
        pod_labels["spec"]["template"]["metadata"]["labels"]["caelus.io/deployment-uid"] =
            json!("other");
        let v = check_with(&[pod_labels], &deny());
        assert_eq!(rules(&v), vec![Rule::ReservedMetadata]);
        assert!(
            v[0].message.starts_with("spec.template.metadata.labels"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn bindings_follow_the_rbac_rules() {
        let rb = |role_kind: &str, role: &str| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b"}, "roleRef": {"kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]})
        };
        assert!(check_with(&[rb("Role", "app")], &deny()).is_empty());
        let v = check_with(&[rb("ClusterRole", "cluster-admin")], &deny());
        assert_eq!(rules(&v), vec![Rule::RbacBinding]);
        let caps = RenderCapabilities {
            allowed_cluster_roles: vec!["view".into()],
            ..Default::default()
        };
        assert!(check_with(&[rb("ClusterRole", "view")], &caps).is_empty());
        let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "pwn"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]});
        assert_eq!(
            rules(&check_with(std::slice::from_ref(&crb), &deny())),
            vec![Rule::ClusterScoped, Rule::RbacBinding]
        );
        assert_eq!(
            rules(&check_with(&[crb], &allow())),
            vec![Rule::RbacBinding]
        );
        // A chart's own ClusterRole, bound under allow_cluster_scoped.
        let own = vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ksm"},
                   "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "ksm"},
                   "roleRef": {"kind": "ClusterRole", "name": "ksm"},
                   "subjects": [{"kind": "ServiceAccount", "name": "ksm", "namespace": NS}]}),
        ];
        assert!(check_with(&own, &allow()).is_empty());
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["delete"]}]});
        assert_eq!(rules(&check_with(&[role], &deny())), vec![Rule::RbacRole]);
    }

    #[test]
    fn pod_templates_meet_the_templates_level() {
        let host = deployment(
            json!({"hostNetwork": true, "containers": [{"name": "web", "securityContext": {"privileged": true}}]}),
        );
        let v = check_with(std::slice::from_ref(&host), &deny());
        assert_eq!(rules(&v), vec![Rule::PodSecurity]);
        let m = &v[0].message;
        assert!(
            m.starts_with("violates Pod Security \"baseline\" in spec.template: "),
            "{m}"
        );
        assert!(
            m.contains("spec.hostNetwork")
                && m.contains("container \"web\" containers[0].securityContext.privileged"),
            "{m}"
        );
        let privileged = RenderCapabilities {
            pod_security: PodSecurityLevel::Privileged,
            ..Default::default()
        };
        assert!(check_with(&[host], &privileged).is_empty());
        let restricted = RenderCapabilities {
            pod_security: PodSecurityLevel::Restricted,
            ..Default::default()
        };
        let plain = deployment(json!({"containers": [{"name": "web"}]}));
        assert_eq!(
            rules(&check_with(&[plain], &restricted)),
            vec![Rule::PodSecurity]
        );
    }

    #[test]
    fn hooks_are_checked_and_named_with_their_events() {
        let hook = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}});
        let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "pwn"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "User", "name": "me"}]});
        let objs = [
            PolicyObject {
                object: &hook,
                hook: Some("pre-install"),
            },
            PolicyObject {
                object: &crb,
                hook: Some("test"),
            },
        ];
        let caps = deny();
        let ctx = PolicyContext {
            namespace: NS,
            caps: &caps,
            own_labels: OWN,
        };
        let v = check_rendered_static(&objs, &ctx);
        assert_eq!(
            rules(&v),
            vec![
                Rule::NamespaceObject,
                Rule::ClusterScoped,
                Rule::RbacBinding,
                Rule::RbacBinding
            ]
        );
        assert_eq!(v[0].hook.as_deref(), Some("pre-install"));
        let text = v[0].to_string();
        assert!(
            text.starts_with(
                "Namespace \"team-b\" (pre-install hook): charts may not create namespaces"
            ),
            "{text}"
        );
        assert!(text.ends_with("(namespace-object)"), "{text}");
        assert!(describe(&v).contains("ClusterRoleBinding \"pwn\" (test hook)"));
    }

    #[test]
    fn malformed_and_generate_name() {
        let v = check_with(
            &[
                json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
                json!({"kind": "ConfigMap"}),
            ],
            &allow(),
        );
        assert_eq!(rules(&v), vec![Rule::Malformed, Rule::Malformed]);
        let o = json!({"kind": "Job", "metadata": {"generateName": "migrate-", "namespace": "x"}});
        let v = check_with(&[o], &deny());
        assert_eq!(
            (v[0].name.as_str(), v[0].rule),
            ("migrate-", Rule::ForeignNamespace)
        );
    }

    #[test]
    fn rule_names_are_stable() {
        let names: Vec<&str> = [
            Rule::Malformed,
            Rule::NamespaceObject,
            Rule::ClusterScoped,
            Rule::ForeignNamespace,
            Rule::ReservedName,
            Rule::ReservedMetadata,
            Rule::RbacBinding,
            Rule::RbacRole,
            Rule::PodSecurity,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        assert_eq!(
            names,
            vec![
                "malformed",
                "namespace-object",
                "cluster-scoped",
                "foreign-namespace",
                "reserved-name",
                "reserved-metadata",
                "rbac-binding",
                "rbac-role",
                "pod-security"
            ]
        );
        assert_eq!(
            serde_json::to_value(Rule::PodSecurity).unwrap(),
            json!("pod-security")
        );
    }

    #[test]
    fn capabilities_map_onto_render_capabilities() {
        let c = Capabilities {
            allow_cluster_scoped: true,
            allowed_cluster_roles: vec!["view".into()],
            pod_security: PodSecurityLevel::Restricted,
            ..Default::default()
        };
        let r = RenderCapabilities::from(&c);
        assert!(r.allow_cluster_scoped);
        assert_eq!(r.allowed_cluster_roles, vec!["view".to_string()]);
        assert_eq!(r.pod_security, PodSecurityLevel::Restricted);
        assert!(!RenderCapabilities::default().allow_cluster_scoped);
    }
}
