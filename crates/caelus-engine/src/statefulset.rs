//! Carries out a StatefulSet change Kubernetes forbids, keeping the data
//! (`caelus_core::statefulset`): grow the existing claims in place, delete
//! the StatefulSet with `propagationPolicy: Orphan` (pods and claims stay),
//! and leave the re-creation to the apply that follows. Every check runs
//! before the first write; each step is idempotent, so a failed attempt is
//! simply attempted again, and no step ever deletes a claim.

use std::time::{Duration, Instant};

use caelus_core::statefulset::{Recreate, expansion_refusal};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::Engine;
use crate::calls::retry;
use crate::error::{EngineError, Result, is_not_found};
use crate::object::DEPLOYMENT_UID_LABEL;

/// How long an orphaning delete may take to remove the StatefulSet.
const DELETE_TIMEOUT: Duration = Duration::from_secs(60);

/// `<prefix><ordinal>`: the names a StatefulSet gives its pods and claims.
fn is_ordinal_of(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn bytes(q: Option<&str>) -> Option<f64> {
    caelus_core::quantity::parse(q?).map(caelus_core::quantity::Quantity::as_f64)
}

impl Engine {
    /// Prepares the re-creation of StatefulSet `plan.name` in `namespace`
    /// (the apply that follows creates it from the new render). Returns the
    /// steps done, for the timeline. Refuses (nothing written) when the
    /// StatefulSet is not this deployment's or a claim cannot grow.
    pub async fn recreate_statefulset(
        &self,
        namespace: &str,
        deployment_uid: &str,
        plan: &Recreate,
    ) -> Result<Vec<String>> {
        let sets: kube::Api<StatefulSet> = kube::Api::namespaced(self.client().clone(), namespace);
        let live = match retry(|| sets.get(&plan.name)).await {
            Ok(s) => s,
            // Gone already (an earlier attempt got this far): the apply creates it.
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => {
                return Err(EngineError::api(
                    format!("reading StatefulSet/{}", plan.name),
                    e,
                ));
            }
        };
        let owner = live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(DEPLOYMENT_UID_LABEL));
        if owner.map(String::as_str) != Some(deployment_uid) {
            return Err(EngineError::Policy(format!(
                "StatefulSet/{} is not this deployment's; it is not re-created",
                plan.name
            )));
        }

        // Every claim that must grow, and whether its class allows it: all
        // checked before the first write.
        let claims: kube::Api<PersistentVolumeClaim> =
            kube::Api::namespaced(self.client().clone(), namespace);
        let (grow, refusals) = self.claims_to_grow(namespace, plan).await?;
        if !refusals.is_empty() {
            return Err(EngineError::Policy(format!(
                "StatefulSet/{} cannot be re-created keeping its data: {}",
                plan.name,
                refusals.join("; ")
            )));
        }

        let mut done = Vec::new();
        let params = PatchParams::default();
        for (name, to, from) in grow {
            let patch = Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": to}}}}));
            retry(|| claims.patch(&name, &params, &patch))
                .await
                .map_err(|e| {
                    EngineError::api(format!("growing PersistentVolumeClaim/{name}"), e)
                })?;
            done.push(format!(
                "grew PersistentVolumeClaim/{name} from {from} to {to}"
            ));
        }

        // Orphan: the pods keep running and the claims stay; the re-created
        // StatefulSet adopts the pods (or, for a new selector, starts new ones).
        let orphan = DeleteParams::orphan();
        match retry(|| sets.delete(&plan.name, &orphan)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(EngineError::api(
                    format!("deleting StatefulSet/{} (orphan)", plan.name),
                    e,
                ));
            }
        }
        let deadline = Instant::now() + DELETE_TIMEOUT;
        loop {
            match retry(|| sets.get_opt(&plan.name)).await {
                Ok(None) => break,
                Ok(Some(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(Some(_)) => {
                    return Err(EngineError::Api {
                        context: format!("deleting StatefulSet/{} (orphan)", plan.name),
                        code: 0,
                        message: format!("still present after {DELETE_TIMEOUT:?}"),
                        transient: true,
                    });
                }
                Err(e) => {
                    return Err(EngineError::api(
                        format!("reading StatefulSet/{}", plan.name),
                        e,
                    ));
                }
            }
        }
        done.push(format!(
            "deleted StatefulSet/{} with propagationPolicy Orphan (pods and claims kept)",
            plan.name
        ));

        if plan.replace_pods {
            let pods: kube::Api<Pod> = kube::Api::namespaced(self.client().clone(), namespace);
            let prefix = format!("{}-", plan.name);
            let background = DeleteParams::default();
            let list_all = ListParams::default();
            let list = retry(|| pods.list(&list_all))
                .await
                .map_err(|e| EngineError::api("listing pods", e))?;
            for pod in list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let controlled = pod
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.controller == Some(true));
                if !is_ordinal_of(&name, &prefix) || controlled {
                    continue;
                }
                match retry(|| pods.delete(&name, &background)).await {
                    Ok(_) => done.push(format!("deleted Pod/{name} (the selector changed)")),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(EngineError::api(format!("deleting Pod/{name}"), e)),
                }
            }
        }
        Ok(done)
    }

    /// Why the claims of `plan` cannot grow (their StorageClass does not
    /// allow expansion, or is missing); empty when they can. Read-only: the
    /// preflight asks it before a change is accepted.
    pub async fn statefulset_recreation_refusals(
        &self,
        namespace: &str,
        plan: &Recreate,
    ) -> Result<Vec<String>> {
        Ok(self.claims_to_grow(namespace, plan).await?.1)
    }

    /// The claims of `plan` smaller than their new size, as `(name, to,
    /// from)`, and the refusals of those whose class cannot expand.
    async fn claims_to_grow(
        &self,
        namespace: &str,
        plan: &Recreate,
    ) -> Result<(Vec<(String, String, String)>, Vec<String>)> {
        let claims: kube::Api<PersistentVolumeClaim> =
            kube::Api::namespaced(self.client().clone(), namespace);
        let list_all = ListParams::default();
        let all = retry(|| claims.list(&list_all))
            .await
            .map_err(|e| EngineError::api("listing PersistentVolumeClaims", e))?;
        let classes: kube::Api<StorageClass> = kube::Api::all(self.client().clone());
        let mut grow = Vec::new();
        let mut refusals = Vec::new();
        for g in &plan.grow {
            let prefix = format!("{}-{}-", g.template, plan.name);
            for claim in &all.items {
                let name = claim.metadata.name.clone().unwrap_or_default();
                if !is_ordinal_of(&name, &prefix) {
                    continue;
                }
                let spec = claim.spec.clone().unwrap_or_default();
                let now = spec
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage"))
                    .map(|q| q.0.clone());
                if bytes(now.as_deref()) >= bytes(Some(&g.to)) {
                    continue;
                }
                let class = spec.storage_class_name.clone().unwrap_or_default();
                let allows = if class.is_empty() {
                    None
                } else {
                    match retry(|| classes.get(&class)).await {
                        Ok(c) => Some(c.allow_volume_expansion == Some(true)),
                        Err(e) if is_not_found(&e) => None,
                        Err(e) => {
                            return Err(EngineError::api(
                                format!("reading StorageClass {class}"),
                                e,
                            ));
                        }
                    }
                };
                match expansion_refusal(&name, &class, allows) {
                    Some(refusal) => refusals.push(refusal),
                    None => grow.push((name, g.to.clone(), now.unwrap_or_default())),
                }
            }
        }
        Ok((grow, refusals))
    }
}

#[cfg(test)]
mod tests {
    use super::is_ordinal_of;

    #[test]
    fn only_ordinals_of_the_prefix_match() {
        assert!(is_ordinal_of("data-db-0", "data-db-"));
        assert!(is_ordinal_of("data-db-12", "data-db-"));
        assert!(!is_ordinal_of("data-db-", "data-db-"));
        assert!(!is_ordinal_of("data-db-replica-0", "data-db-"));
        assert!(!is_ordinal_of("data-dbx-0", "data-db-"));
    }
}
