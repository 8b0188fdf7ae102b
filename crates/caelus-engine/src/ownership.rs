//! Ownership before every write (design §8): the engine reads the live
//! object before it creates, patches or deletes anything, and leaves alone
//! what is not this deployment's (the rule is `caelus_core::ownership`).
//!
//! - Applies (objects and hooks) are checked all together before the first
//!   write of a revision: one foreign object refuses the whole revision,
//!   naming every conflict, and nothing of it is written.
//! - Deletes (hook replacement and cleanup, prune, uninstall) go only to an
//!   object just read and found to be ours, with that object's uid as a
//!   precondition (`DeleteOptions.preconditions.uid`): if it was deleted and
//!   recreated by someone else meanwhile, the API server answers 409 and the
//!   new object stays.
//!
//! There is a window between the read and a server-side apply (SSA has no
//! "must be this uid" precondition), which the check narrows to one round
//! trip; deletes have none.

use std::fmt;

use caelus_core::ownership::{Owner, Stamp, owner_of, refusal};
use caelus_helm::HookEvent;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{DeleteParams, Preconditions};
use serde_json::Value;

use crate::Engine;
use crate::calls::Target;
use crate::error::{EngineError, Result, describe, is_not_found};
use crate::object::{
    DEPLOYMENT_UID_LABEL, INSTALLATION_LABEL, MANAGED_BY_LABEL, ObjectRef, annotation, label,
};

/// Helm's ownership annotations, read to name a Helm release as the owner.
const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";

/// The ownership metadata of a live object.
pub(crate) fn stamp_of(live: &Value) -> Stamp<'_> {
    Stamp {
        deployment_uid: label(live, DEPLOYMENT_UID_LABEL),
        installation: label(live, INSTALLATION_LABEL),
        managed_by: label(live, MANAGED_BY_LABEL),
        helm_release: annotation(live, HELM_RELEASE_NAME),
        helm_release_namespace: annotation(live, HELM_RELEASE_NAMESPACE),
    }
}

/// One object a revision would write that belongs to someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipConflict {
    pub object: ObjectRef,
    /// Set when the object is a hook of this event.
    pub hook: Option<HookEvent>,
    pub owner: Owner,
}

impl fmt::Display for OwnershipConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let object = match self.hook {
            Some(event) => format!("{} hook {}", event.as_str(), self.object),
            None => self.object.to_string(),
        };
        f.write_str(&refusal(&object, &self.owner))
    }
}

/// What a guarded delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnedDelete {
    Deleted,
    /// Nothing of that name exists.
    Gone,
    /// It exists but is not this deployment's: left in place.
    NotOurs(Owner),
    /// It was deleted and recreated between the read and the delete (the
    /// uid precondition failed): the new object is left in place.
    Replaced,
}

/// A live object that is this deployment's, as just read.
pub(crate) struct Live {
    pub owner: Owner,
    pub uid: Option<String>,
}

impl Engine {
    /// The owner of the live object `t` names, `None` when it does not exist.
    pub(crate) async fn live_owner(
        &self,
        t: &Target,
        deployment_uid: &str,
    ) -> Result<Option<Live>> {
        Ok(self.get(t).await?.map(|live| Live {
            owner: owner_of(
                &stamp_of(&live),
                deployment_uid,
                &self.config().installation_id,
            ),
            uid: live["metadata"]["uid"].as_str().map(str::to_string),
        }))
    }

    /// Reads every target and refuses, before anything is written, when any
    /// of them exists and is not this deployment's. The error names them all.
    pub(crate) async fn check_ownership(
        &self,
        targets: &[(&Target, Option<HookEvent>)],
        deployment_uid: &str,
    ) -> Result<()> {
        // Reads go out concurrently (bounded, like applies); futures are
        // built in a loop for the reason `apply_in_order` gives.
        let mut reads = Vec::with_capacity(targets.len());
        for &(t, hook) in targets {
            reads.push(async move {
                let live = self.live_owner(t, deployment_uid).await?;
                Ok::<_, EngineError>(live.filter(|l| !l.owner.is_this()).map(|l| {
                    OwnershipConflict {
                        object: t.oref.clone(),
                        hook,
                        owner: l.owner,
                    }
                }))
            });
        }
        let conflicts: Vec<OwnershipConflict> = stream::iter(reads)
            .buffered(self.config().apply_concurrency.max(1))
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(EngineError::NotOwned { conflicts })
        }
    }

    /// Deletes `t` only if it exists and is this deployment's, guarded by
    /// the uid just read so a recreated object of the same name survives.
    pub(crate) async fn delete_owned(
        &self,
        t: &Target,
        deployment_uid: &str,
    ) -> Result<OwnedDelete> {
        let Some(live) = self.live_owner(t, deployment_uid).await? else {
            return Ok(OwnedDelete::Gone);
        };
        if !live.owner.is_this() {
            return Ok(OwnedDelete::NotOurs(live.owner));
        }
        self.delete_exact_uid(t, live.uid).await
    }

    /// Deletes the instance of `t` whose uid is `uid` (e.g. the hook Caelus
    /// just created), and nothing else.
    pub(crate) async fn delete_exact_uid(
        &self,
        t: &Target,
        uid: Option<String>,
    ) -> Result<OwnedDelete> {
        let api = t.kind.api(self.client(), t.oref.namespace.as_deref());
        let params = DeleteParams {
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        self.inner
            .watches
            .deleted(&t.kind, t.oref.namespace.as_deref(), &t.oref.name);
        match crate::calls::retry(|| api.delete(&t.oref.name, &params)).await {
            Ok(_) => Ok(OwnedDelete::Deleted),
            Err(e) if is_not_found(&e) => Ok(OwnedDelete::Gone),
            // "Precondition failed: UID in precondition: …": replaced since
            // it was read; whoever recreated it owns the new one.
            Err(e) if describe(&e).0 == 409 => {
                tracing::warn!(object = %t.oref, "not deleted: replaced by another object of the same name since it was read");
                Ok(OwnedDelete::Replaced)
            }
            Err(e) => Err(EngineError::object("delete", &t.oref, e)),
        }
    }
}

/// What an adoption did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The object, its namespace resolved (none when cluster-scoped).
    pub object: ObjectRef,
    /// Who owned it before it was labelled as the deployment's; `None` when
    /// it already was the deployment's (nothing written).
    pub previous_owner: Option<Owner>,
}

impl Engine {
    /// Adopts one existing object into a deployment — the explicit admin
    /// action that lets a later apply write an object Caelus did not create.
    /// It labels the live object as the deployment's (a merge patch guarded
    /// by the resourceVersion just read); the deployment's next apply then
    /// takes it over like its own. Namespaced objects must be in the
    /// deployment's namespace. Objects of another Caelus deployment or
    /// installation are never adopted: the two would fight over them.
    pub async fn adopt(
        &self,
        namespace: &str,
        deployment_uid: &str,
        object: &ObjectRef,
    ) -> Result<Adoption> {
        let t = self.target(object, namespace).await?;
        if let Some(ns) = t.oref.namespace.as_deref()
            && ns != namespace
        {
            return Err(EngineError::Policy(format!(
                "{} is in namespace {ns}; a deployment adopts only objects of its own namespace {namespace}",
                t.oref
            )));
        }
        let Some(live) = self.get(&t).await? else {
            return Err(EngineError::Object {
                verb: "adopt",
                object: Box::new(t.oref.clone()),
                code: 404,
                message: "no such object".into(),
                transient: false,
            });
        };
        let owner = owner_of(
            &stamp_of(&live),
            deployment_uid,
            &self.config().installation_id,
        );
        match owner {
            Owner::This => {
                return Ok(Adoption {
                    object: t.oref,
                    previous_owner: None,
                });
            }
            Owner::Deployment { .. } | Owner::Installation { .. } => {
                return Err(EngineError::NotOwned {
                    conflicts: vec![OwnershipConflict {
                        object: t.oref.clone(),
                        hook: None,
                        owner,
                    }],
                });
            }
            Owner::HelmRelease { .. } | Owner::Manager { .. } | Owner::Unmanaged => {}
        }
        let mut patch = serde_json::json!({"metadata": {
            "resourceVersion": live["metadata"]["resourceVersion"].clone(),
        }});
        crate::apply::label_as_ours(&mut patch, deployment_uid, &self.config().installation_id);
        let api = t.kind.api(self.client(), t.oref.namespace.as_deref());
        let params = kube::api::PatchParams {
            field_manager: Some(self.config().field_manager.clone()),
            ..Default::default()
        };
        api.patch(&t.oref.name, &params, &kube::api::Patch::Merge(&patch))
            .await
            .map_err(|e| EngineError::object("adopt", &t.oref, e))?;
        Ok(Adoption {
            object: t.oref,
            previous_owner: Some(owner),
        })
    }
}
