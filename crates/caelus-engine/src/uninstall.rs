//! Deleting a deployment: pre-delete hooks, objects in reverse install
//! order, post-delete hooks, then the namespace (or, keeping volumes, every
//! object but the PersistentVolumeClaims, and the namespace stays). A namespace that stays Terminating is reported
//! with its own conditions (which finalizers, on how many objects); Caelus
//! never strips finalizers. Calling again re-checks.

use std::time::Duration;

use caelus_helm::{Hook, HookEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Engine;
use crate::apply::Progress;
use crate::error::{EngineError, Result};
use crate::object::{DEPLOYMENT_UID_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectRef, label};
use crate::ownership::OwnedDelete;
use crate::prune::reverse_install_order;

/// What to delete.
#[derive(Debug, Clone)]
pub struct UninstallRequest {
    pub namespace: String,
    pub deployment_uid: String,
    /// The inventory of the last applied revision.
    pub inventory: Vec<ObjectRef>,
    /// The render's hooks: `pre-delete` ones run before the objects are
    /// deleted, `post-delete` ones after them, before the namespace goes.
    pub hooks: Vec<Hook>,
    /// How long each delete hook may take.
    pub hook_timeout: Duration,
    /// Keep the namespace and its PersistentVolumeClaims (the chart's own and
    /// those StatefulSets made): every other object goes.
    pub keep_volumes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum UninstallStatus {
    /// The namespace no longer exists.
    Gone,
    /// The namespace is still being deleted; `message` quotes its conditions.
    Terminating { message: String },
    /// `keep_volumes`: the objects are gone; the namespace stays with these
    /// PersistentVolumeClaims (names).
    Retained { volumes: Vec<String> },
}

/// Namespace conditions that explain a slow deletion, most telling first.
const BLOCKING_CONDITIONS: &[&str] = &[
    "NamespaceFinalizersRemaining",
    "NamespaceContentRemaining",
    "NamespaceDeletionContentFailure",
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
];

/// Why a Terminating namespace is still there, in its own words.
pub(crate) fn terminating_message(ns: &Value) -> String {
    let name = ns["metadata"]["name"].as_str().unwrap_or_default();
    let conditions = ns["status"]["conditions"].as_array();
    let reasons: Vec<String> = BLOCKING_CONDITIONS
        .iter()
        .filter_map(|t| {
            conditions?
                .iter()
                .find(|c| c["type"] == *t && c["status"] == "True")
        })
        .filter_map(|c| c["message"].as_str().map(str::to_string))
        .collect();
    if !reasons.is_empty() {
        return format!("namespace {name} is terminating: {}", reasons.join("; "));
    }
    let finalizers: Vec<&str> = ns["spec"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if finalizers.is_empty() {
        format!("namespace {name} is terminating")
    } else {
        format!(
            "namespace {name} is terminating, waiting for finalizers: {}",
            finalizers.join(", ")
        )
    }
}

impl Engine {
    pub async fn uninstall(&self, req: &UninstallRequest) -> Result<UninstallStatus> {
        self.uninstall_with_progress(req, &|_: Progress| {}).await
    }

    /// [`Self::uninstall`], reporting the hooks it runs (`pre-delete` before
    /// the objects go, `post-delete` after them and before the namespace, as
    /// `helm uninstall` runs them).
    pub async fn uninstall_with_progress(
        &self,
        req: &UninstallRequest,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<UninstallStatus> {
        let ns_ref = ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: req.namespace.clone(),
        };
        let ns_target = self.target(&ns_ref, &req.namespace).await?;
        let live = self.get(&ns_target).await?;
        if let Some(ns) = &live {
            let ours = label(ns, MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE)
                && label(ns, DEPLOYMENT_UID_LABEL) == Some(req.deployment_uid.as_str());
            if !ours {
                return Err(EngineError::Policy(format!(
                    "namespace {} is not this deployment's; refusing to delete it",
                    req.namespace
                )));
            }
        }
        let active = live
            .as_ref()
            .is_some_and(|ns| !ns["metadata"]["deletionTimestamp"].is_string());

        if active {
            self.run_hook_list(
                &req.namespace,
                &req.deployment_uid,
                &req.hooks,
                HookEvent::PreDelete,
                req.hook_timeout,
                progress,
            )
            .await?;
        }
        let mut inventory = req.inventory.clone();
        reverse_install_order(&mut inventory);
        if req.keep_volumes {
            inventory.retain(|o| o.kind != "PersistentVolumeClaim");
        }
        for oref in &inventory {
            let target = match self.target(oref, &req.namespace).await {
                Ok(t) => t,
                Err(EngineError::UnknownKind { .. }) => continue,
                Err(e) => return Err(e),
            };
            // Namespaced objects go with a namespace that is already going.
            if target.kind.namespaced && !active {
                continue;
            }
            // Only what is still this deployment's, by the uid just read: a
            // cluster-scoped object recreated by someone else stays.
            match self.delete_owned(&target, &req.deployment_uid).await? {
                OwnedDelete::Deleted | OwnedDelete::Gone => {}
                OwnedDelete::NotOurs(owner) => {
                    tracing::warn!(object = %target.oref, %owner, "not deleted: it belongs to someone else now");
                }
                OwnedDelete::Replaced => {}
            }
        }
        if active {
            // Post-delete hooks run in the namespace, which still exists.
            self.run_hook_list(
                &req.namespace,
                &req.deployment_uid,
                &req.hooks,
                HookEvent::PostDelete,
                req.hook_timeout,
                progress,
            )
            .await?;
            if req.keep_volumes {
                let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
                    kube::Api::namespaced(self.client().clone(), &req.namespace);
                let volumes = claims
                    .list(&Default::default())
                    .await
                    .map_err(|e| EngineError::api("listing the kept volumes", e))?
                    .items
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .collect();
                return Ok(UninstallStatus::Retained { volumes });
            }
        }
        if let Some(ns) = live.as_ref().filter(|_| active) {
            // The namespace read and checked above, and no other.
            let uid = ns["metadata"]["uid"].as_str().map(str::to_string);
            self.delete_exact_uid(&ns_target, uid).await?;
        }
        if live.is_none() {
            return Ok(UninstallStatus::Gone);
        }
        // Empty namespaces usually go within moments; look a few times
        // before reporting Terminating (the reconciler re-checks later).
        for attempt in 0..5 {
            match self.get(&ns_target).await? {
                None => return Ok(UninstallStatus::Gone),
                Some(ns) if attempt == 4 => {
                    return Ok(UninstallStatus::Terminating {
                        message: terminating_message(&ns),
                    });
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        unreachable!("the last attempt returns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminating_message_quotes_the_namespace_conditions() {
        let ns = json!({
            "metadata": {"name": "d-1", "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Terminating", "conditions": [
                {"type": "NamespaceDeletionContentFailure", "status": "False", "message": "All content successfully deleted"},
                {"type": "NamespaceContentRemaining", "status": "True",
                 "message": "Some resources are remaining: configmaps. has 1 resource instances"},
                {"type": "NamespaceFinalizersRemaining", "status": "True",
                 "message": "Some content in the namespace has finalizers remaining: example.com/stuck in 1 resource instances"}
            ]}
        });
        assert_eq!(
            terminating_message(&ns),
            "namespace d-1 is terminating: Some content in the namespace has finalizers remaining: \
             example.com/stuck in 1 resource instances; Some resources are remaining: configmaps. has 1 resource instances"
        );
    }

    #[test]
    fn without_conditions_the_namespace_finalizers_are_named() {
        let ns = json!({"metadata": {"name": "d-1"}, "spec": {"finalizers": ["kubernetes"]}});
        assert_eq!(
            terminating_message(&ns),
            "namespace d-1 is terminating, waiting for finalizers: kubernetes"
        );
        let bare = json!({"metadata": {"name": "d-1"}});
        assert_eq!(terminating_message(&bare), "namespace d-1 is terminating");
    }

    #[test]
    fn status_serializes_with_a_state_tag() {
        assert_eq!(
            serde_json::to_value(UninstallStatus::Gone).unwrap(),
            json!({"state": "gone"})
        );
    }
}
