//! Role-based access control for the clients a test restricts, so it can
//! check what a client needs: a bearer token maps to a user and the
//! `PolicyRule`s granted to it (what its ClusterRoles say); its resource
//! requests are authorized the way the RBAC authorizer does it, and every one
//! is recorded, allowed or denied. Requests without such a token are not
//! restricted (kubesim's kubeconfig is cluster-admin).
//!
//! Matching follows `RuleAllows` in Kubernetes
//! (`pkg/apis/rbac/v1/evaluation_helpers.go`): verb, API group, resource
//! (`resource/subresource` for subresources, `*/subresource` and `*`
//! wildcards) and, when a rule names any, the object's name. Server-side
//! apply is authorized as `patch`, even when it creates the object.
//! Non-resource URLs (`/api`, `/apis`, `/openapi/v3`, `/version`) are not
//! checked: every authenticated user may read them through the default
//! `system:discovery` and `system:public-info-viewer` ClusterRoles.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::ApiError;

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyRule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

/// A resource request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceRequest {
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    /// Plural name, `resource/subresource` for a subresource.
    pub resource: String,
}

/// How often a restricted user made one request, and how often it was refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    pub allowed: u64,
    pub denied: u64,
}

struct Subject {
    user: String,
    rules: Vec<PolicyRule>,
}

#[derive(Default)]
pub struct Rbac {
    /// Bearer token → the user it authenticates and what that user may do.
    tokens: Mutex<HashMap<String, Subject>>,
    /// user → request → counts.
    log: Mutex<BTreeMap<String, BTreeMap<ResourceRequest, RequestCount>>>,
}

fn any_or(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

impl PolicyRule {
    /// Whether this rule allows `verb` on `resource` (`resource/sub`) of
    /// `group`, for the object `name` (empty for lists and creates).
    pub fn allows(&self, verb: &str, group: &str, resource: &str, name: &str) -> bool {
        let sub = resource.split_once('/').map(|(_, s)| s);
        let resource_ok = self.resources.iter().any(|r| {
            r == "*" || r == resource || sub.is_some_and(|s| r.strip_prefix("*/") == Some(s))
        });
        any_or(&self.verbs, verb)
            && any_or(&self.api_groups, group)
            && resource_ok
            && (self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name))
    }
}

impl Rbac {
    /// Requests bearing `token` are made by `user` and may do only what `rules` allow.
    pub fn restrict(&self, token: &str, user: &str, rules: Vec<PolicyRule>) {
        self.tokens.lock().unwrap().insert(
            token.to_string(),
            Subject {
                user: user.to_string(),
                rules,
            },
        );
    }

    /// Every resource request `user` made, with how often it was allowed and denied.
    pub fn requests_of(&self, user: &str) -> BTreeMap<ResourceRequest, RequestCount> {
        self.log
            .lock()
            .unwrap()
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// Authorizes one request of the client presenting `token` (none: not
    /// restricted). `Err` is the API server's 403 Status.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize(
        &self,
        token: Option<&str>,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let tokens = self.tokens.lock().unwrap();
        let Some(subject) = token.and_then(|t| tokens.get(t)) else {
            return Ok(());
        };
        let allowed = subject
            .rules
            .iter()
            .any(|r| r.allows(verb, group, resource, name));
        let mut log = self.log.lock().unwrap();
        let count = log
            .entry(subject.user.clone())
            .or_default()
            .entry(ResourceRequest {
                verb: verb.to_string(),
                group: group.to_string(),
                resource: resource.to_string(),
            })
            .or_default();
        if allowed {
            count.allowed += 1;
            return Ok(());
        }
        count.denied += 1;
        Err(forbidden(
            &subject.user,
            verb,
            group,
            resource,
            namespace,
            name,
        ))
    }
}

/// The authorizer's refusal, worded as the API server words it
/// (`apiserver/pkg/endpoints/handlers/responsewriters/errors.go`):
/// `deployments.apps "web" is forbidden: User "u" cannot get resource
/// "deployments" in API group "apps" in the namespace "ns"`.
fn forbidden(
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> ApiError {
    let base = resource.split('/').next().unwrap_or(resource);
    let qualified = if group.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{group}")
    };
    let what = if name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{name}\"")
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut details = json!({"name": name, "kind": base});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(
            403,
            "Forbidden",
            format!(
                "{what} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            api_groups: v(groups),
            resources: v(resources),
            verbs: v(verbs),
            resource_names: vec![],
        }
    }

    #[test]
    fn rules_match_like_the_rbac_authorizer() {
        let r = rule(&["apps"], &["deployments"], &["get", "patch"]);
        assert!(r.allows("get", "apps", "deployments", "web"));
        assert!(!r.allows("delete", "apps", "deployments", "web"));
        assert!(!r.allows("get", "", "deployments", "web"));
        // A subresource is its own resource: granting the object is not granting its status.
        assert!(!r.allows("patch", "apps", "deployments/status", "web"));
        let sub = rule(&["*"], &["*/status"], &["patch"]);
        assert!(sub.allows("patch", "caelus.io", "caelusdeployments/status", "x"));
        assert!(!sub.allows("patch", "caelus.io", "caelusdeployments", "x"));
        let named = PolicyRule {
            resource_names: vec!["only".into()],
            ..rule(&[""], &["configmaps"], &["*"])
        };
        assert!(named.allows("delete", "", "configmaps", "only"));
        assert!(!named.allows("delete", "", "configmaps", "other"));
        assert!(!named.allows("list", "", "configmaps", ""));
    }

    #[test]
    fn refusals_are_recorded_and_worded_as_the_api_server_does() {
        let rbac = Rbac::default();
        rbac.restrict(
            "t",
            "system:serviceaccount:caelus:caelus",
            vec![rule(&[""], &["namespaces"], &["get"])],
        );
        assert!(
            rbac.authorize(None, "delete", "", "secrets", Some("x"), "s")
                .is_ok()
        );
        assert!(
            rbac.authorize(Some("t"), "get", "", "namespaces", None, "a")
                .is_ok()
        );
        let e = rbac
            .authorize(
                Some("t"),
                "patch",
                "apps",
                "deployments",
                Some("d-1"),
                "web",
            )
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:caelus:caelus\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"d-1\""
        );
        let log = rbac.requests_of("system:serviceaccount:caelus:caelus");
        assert_eq!(log.len(), 2);
        let patch = ResourceRequest {
            verb: "patch".into(),
            group: "apps".into(),
            resource: "deployments".into(),
        };
        assert_eq!(
            log[&patch],
            RequestCount {
                allowed: 0,
                denied: 1
            }
        );
    }
}
