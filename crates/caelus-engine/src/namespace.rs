//! One namespace per deployment, with its isolation: ownership and Pod
//! Security labels, a ResourceQuota, a LimitRange and a default-deny ingress
//! NetworkPolicy that admits the namespace itself and designated namespaces.

use caelus_core::template::PodSecurityLevel;
use serde_json::{Value, json};

use crate::Engine;
use crate::config::EngineConfig;
use crate::drift::Drift;
use crate::error::{EngineError, Result};
use crate::object::{
    DEPLOYMENT_UID_LABEL, INSTALLATION_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectRef, label,
};

// The names live in core: its policy refuses chart objects that reuse them.
pub use caelus_core::render_policy::{LIMIT_RANGE_NAME, NETWORK_POLICY_NAME, QUOTA_NAME};

/// The namespace of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceTarget {
    pub name: String,
    pub deployment_uid: String,
    pub pod_security: PodSecurityLevel,
}

fn level(l: PodSecurityLevel) -> &'static str {
    match l {
        PodSecurityLevel::Privileged => "privileged",
        PodSecurityLevel::Baseline => "baseline",
        PodSecurityLevel::Restricted => "restricted",
    }
}

/// The namespace and its isolation objects, in the order they are applied.
pub fn isolation_objects(config: &EngineConfig, ns: &NamespaceTarget) -> Vec<Value> {
    let labels = json!({
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        DEPLOYMENT_UID_LABEL: ns.deployment_uid,
        INSTALLATION_LABEL: config.installation_id,
    });
    let mut namespace_labels = labels.clone();
    namespace_labels["pod-security.kubernetes.io/enforce"] = json!(level(ns.pod_security));
    namespace_labels["pod-security.kubernetes.io/enforce-version"] = json!("latest");
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns.name, "labels": namespace_labels},
    })];
    let meta = |name: &str| json!({"name": name, "namespace": ns.name, "labels": labels});

    // Pods of the namespace itself, plus the designated namespaces, by the
    // immutable `kubernetes.io/metadata.name` label every namespace has.
    let mut from = vec![json!({"podSelector": {}})];
    if !config.ingress_namespaces.is_empty() {
        from.push(json!({"namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name",
            "operator": "In",
            "values": config.ingress_namespaces,
        }]}}));
    }
    out.push(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(NETWORK_POLICY_NAME),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": from}]},
    }));
    if let Some(q) = &config.quota {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta(QUOTA_NAME),
            "spec": {"hard": {
                "requests.cpu": q.requests_cpu,
                "requests.memory": q.requests_memory,
                "limits.cpu": q.limits_cpu,
                "limits.memory": q.limits_memory,
                "requests.storage": q.requests_storage,
                "pods": q.pods.to_string(),
                "persistentvolumeclaims": q.persistent_volume_claims.to_string(),
                "services": q.services.to_string(),
            }},
        }));
    }
    if let Some(l) = &config.limit_range {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": meta(LIMIT_RANGE_NAME),
            "spec": {"limits": [{
                "type": "Container",
                "default": {"cpu": l.default_limit_cpu, "memory": l.default_limit_memory},
                "defaultRequest": {"cpu": l.default_request_cpu, "memory": l.default_request_memory},
            }]},
        }));
    }
    out
}

impl Engine {
    /// Creates or converges the deployment's namespace and its isolation
    /// objects. Refuses a namespace that exists but belongs to someone else,
    /// and reports one that is still terminating (retry later). Answers
    /// whether the namespace was created now (see
    /// [`crate::ApplyRequest::namespace_created`]).
    pub async fn ensure_namespace(&self, ns: &NamespaceTarget) -> Result<bool> {
        let objects = isolation_objects(self.config(), ns);
        let ns_ref = ObjectRef::from_object(&objects[0])?;
        let ns_target = self.target(&ns_ref, &ns.name).await?;
        let existed = self.get(&ns_target).await?;
        if let Some(live) = &existed {
            check_owner(live, ns)?;
        }
        let applied = self.ssa(&ns_target, &objects[0]).await?;
        if applied["metadata"]["deletionTimestamp"].is_string() {
            return Err(EngineError::NamespaceTerminating(ns.name.clone()));
        }
        // Independent of each other: one round trip for all of them.
        let mut applies = Vec::with_capacity(objects.len() - 1);
        for obj in &objects[1..] {
            let t = self.target(&ObjectRef::from_object(obj)?, &ns.name).await?;
            applies.push(async move { self.ssa(&t, obj).await });
        }
        futures::future::try_join_all(applies).await?;
        Ok(existed.is_none())
    }

    /// Drift of the namespace and its isolation objects, read-only (from the
    /// shared watch caches once warm): what a quiet resync calls instead of
    /// [`Engine::ensure_namespace`], which always writes.
    pub async fn namespace_drift(&self, ns: &NamespaceTarget) -> Result<Vec<Drift>> {
        self.detect_drift(&ns.name, &isolation_objects(self.config(), ns))
            .await
    }
}

/// A namespace may only be taken over from the same deployment: never a
/// namespace someone created by hand, nor another deployment's.
fn check_owner(live: &Value, ns: &NamespaceTarget) -> Result<()> {
    if live["metadata"]["deletionTimestamp"].is_string() {
        return Err(EngineError::NamespaceTerminating(ns.name.clone()));
    }
    let managed = label(live, MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE);
    match label(live, DEPLOYMENT_UID_LABEL) {
        Some(uid) if managed && uid == ns.deployment_uid => Ok(()),
        Some(uid) if managed => Err(EngineError::Policy(format!(
            "namespace {} belongs to deployment {uid}, not {}",
            ns.name, ns.deployment_uid
        ))),
        _ => Err(EngineError::Policy(format!(
            "namespace {} exists and is not managed by Caelus",
            ns.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QuotaDefaults;

    fn target() -> NamespaceTarget {
        NamespaceTarget {
            name: "d-abc".into(),
            deployment_uid: "abc".into(),
            pod_security: PodSecurityLevel::Restricted,
        }
    }

    #[test]
    fn namespace_carries_ownership_and_pod_security_labels() {
        let cfg = EngineConfig {
            installation_id: "prod-1".into(),
            ..Default::default()
        };
        let objs = isolation_objects(&cfg, &target());
        let labels = &objs[0]["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "caelus");
        assert_eq!(labels["caelus.io/deployment-uid"], "abc");
        assert_eq!(labels["caelus.io/installation"], "prod-1");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(
            labels["pod-security.kubernetes.io/enforce-version"],
            "latest"
        );
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange"]
        );
        assert!(
            objs[1..]
                .iter()
                .all(|o| o["metadata"]["namespace"] == "d-abc")
        );
    }

    #[test]
    fn network_policy_denies_ingress_except_own_and_designated_namespaces() {
        let cfg = EngineConfig {
            ingress_namespaces: vec!["ingress-nginx".into()],
            ..Default::default()
        };
        let np = &isolation_objects(&cfg, &target())[1]["spec"];
        assert_eq!(np["podSelector"], json!({}));
        assert_eq!(np["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            np["ingress"],
            json!([{"from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                    "operator": "In", "values": ["ingress-nginx"]}]}}
            ]}])
        );
        let alone = &isolation_objects(&EngineConfig::default(), &target())[1]["spec"];
        assert_eq!(alone["ingress"], json!([{"from": [{"podSelector": {}}]}]));
    }

    #[test]
    fn quota_and_limits_follow_the_config_and_can_be_turned_off() {
        let cfg = EngineConfig {
            quota: Some(QuotaDefaults {
                pods: 7,
                ..Default::default()
            }),
            limit_range: None,
            ..Default::default()
        };
        let objs = isolation_objects(&cfg, &target());
        assert_eq!(objs.len(), 3);
        assert_eq!(objs[2]["spec"]["hard"]["pods"], "7");
        let none = EngineConfig {
            quota: None,
            limit_range: None,
            ..Default::default()
        };
        assert_eq!(isolation_objects(&none, &target()).len(), 2);
    }

    #[test]
    fn foreign_namespaces_are_never_taken_over() {
        let ns = |labels: Value| json!({"metadata": {"name": "d-abc", "labels": labels}});
        assert!(check_owner(&ns(json!({"app.kubernetes.io/managed-by": "caelus", "caelus.io/deployment-uid": "abc"})), &target()).is_ok());
        let other = check_owner(
            &ns(json!({"app.kubernetes.io/managed-by": "caelus", "caelus.io/deployment-uid": "xyz"})),
            &target(),
        )
        .unwrap_err();
        assert_eq!(
            other.to_string(),
            "refused by policy: namespace d-abc belongs to deployment xyz, not abc"
        );
        assert!(matches!(
            check_owner(&ns(json!({})), &target()),
            Err(EngineError::Policy(_))
        ));
    }
}
