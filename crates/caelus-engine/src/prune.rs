//! Pruning: objects of the previous inventory that the new render lacks are
//! deleted, in reverse install order, unless Helm's
//! `helm.sh/resource-policy: keep` says to leave them.

use caelus_helm::order::compare_kinds;

use crate::Engine;
use crate::apply::Progress;
use crate::error::{EngineError, Result};
use crate::object::{ObjectRef, RESOURCE_POLICY_ANNOTATION, annotation};
use crate::ownership::{OwnedDelete, stamp_of};
use caelus_core::ownership::owner_of;

/// Objects of `previous` absent from `current`, in reverse install order
/// (dependents such as Deployments before the ConfigMaps they mount).
pub(crate) fn prune_candidates(previous: &[ObjectRef], current: &[ObjectRef]) -> Vec<ObjectRef> {
    let mut gone: Vec<ObjectRef> = previous
        .iter()
        .filter(|p| !current.iter().any(|c| c.same_object(p)))
        .cloned()
        .collect();
    reverse_install_order(&mut gone);
    gone
}

/// Stable sort into the reverse of Helm's install order; objects of one
/// kind are deleted in reverse of the order they were applied.
pub(crate) fn reverse_install_order(objects: &mut [ObjectRef]) {
    objects.reverse();
    objects.sort_by(|a, b| compare_kinds(&b.kind, &a.kind));
}

impl Engine {
    /// Deletes the candidates that are still this deployment's; returns
    /// (pruned, kept, not owned). An object someone else owns now — another
    /// deployment's, or one deleted and recreated under the same name — is
    /// left in place: pruning never deletes what Caelus does not own, and
    /// the delete carries the uid just read.
    pub(crate) async fn prune(
        &self,
        namespace: &str,
        previous: &[ObjectRef],
        current: &[ObjectRef],
        deployment_uid: &str,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(Vec<ObjectRef>, Vec<ObjectRef>, Vec<ObjectRef>)> {
        // Resolve the previous inventory first so its namespaces compare
        // like the new one's (discovery is cached: no requests).
        let mut known = Vec::with_capacity(previous.len());
        for oref in previous {
            match self.target(oref, namespace).await {
                Ok(t) => known.push(t),
                // The kind is no longer served (its CRD went): nothing to delete.
                Err(EngineError::UnknownKind { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        let previous: Vec<ObjectRef> = known.iter().map(|t| t.oref.clone()).collect();
        let (mut pruned, mut kept, mut not_owned) = (Vec::new(), Vec::new(), Vec::new());
        for oref in prune_candidates(&previous, current) {
            let Some(target) = known.iter().find(|t| t.oref == oref) else {
                continue;
            };
            let Some(live) = self.get(target).await? else {
                continue;
            };
            let owner = owner_of(
                &stamp_of(&live),
                deployment_uid,
                &self.config().installation_id,
            );
            if !owner.is_this() {
                tracing::warn!(object = %oref, %owner, "not pruned: it belongs to someone else now");
                not_owned.push(oref);
                continue;
            }
            if annotation(&live, RESOURCE_POLICY_ANNOTATION) == Some("keep") {
                progress(Progress::Kept {
                    object: oref.clone(),
                });
                kept.push(oref);
                continue;
            }
            let uid = live["metadata"]["uid"].as_str().map(str::to_string);
            match self.delete_exact_uid(target, uid).await? {
                OwnedDelete::Deleted => {
                    progress(Progress::Pruned {
                        object: oref.clone(),
                    });
                    pruned.push(oref);
                }
                OwnedDelete::Gone => {}
                OwnedDelete::Replaced | OwnedDelete::NotOurs(_) => not_owned.push(oref),
            }
        }
        Ok((pruned, kept, not_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(api_version: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("n".into()),
            name: name.into(),
        }
    }

    #[test]
    fn objects_dropped_from_the_render_are_pruned_dependents_first() {
        let previous = vec![
            r("v1", "ConfigMap", "a"),
            r("v1", "ConfigMap", "b"),
            r("v1", "Service", "web"),
            r("apps/v1", "Deployment", "web"),
            r("apps/v1", "Deployment", "worker"),
        ];
        let current = vec![r("v1", "ConfigMap", "a"), r("apps/v1", "Deployment", "web")];
        assert_eq!(
            prune_candidates(&previous, &current),
            vec![
                r("apps/v1", "Deployment", "worker"),
                r("v1", "Service", "web"),
                r("v1", "ConfigMap", "b"),
            ]
        );
    }

    #[test]
    fn a_new_api_version_of_the_same_object_is_not_pruned() {
        let previous = vec![r("autoscaling/v1", "HorizontalPodAutoscaler", "web")];
        let current = vec![r("autoscaling/v2", "HorizontalPodAutoscaler", "web")];
        assert!(prune_candidates(&previous, &current).is_empty());
    }

    #[test]
    fn reverse_order_puts_unknown_kinds_first_and_keeps_same_kind_reversed() {
        let mut objs = vec![
            r("v1", "ConfigMap", "1"),
            r("v1", "ConfigMap", "2"),
            r("apps/v1", "Deployment", "d"),
            r("example.com/v1", "Widget", "w"),
        ];
        reverse_install_order(&mut objs);
        let names: Vec<&str> = objs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["w", "d", "2", "1"]);
    }
}
