//! The uninstall action: pre-delete hooks, objects in reverse install order,
//! post-delete hooks, the namespace; a namespace that stays Terminating is
//! reported, never forced. The delete hooks that ran are on the timeline.

use crate::Reconciler;
use crate::commit::{Commit, unchanged};
use crate::pass::{Loaded, PassResultOf, inventory_from, rfc3339, union};
use crate::status::{set, set_ready};
use caelus_core::status::{
    CONDITION_RECONCILING, ConditionStatus, ObjectHealth, Phase, ReadyReason, reason,
};
use caelus_engine::{Progress, UninstallRequest, UninstallStatus};
use caelus_store::deployments::Deployment;
use caelus_store::now_ms;
use caelus_store::queue::{self, Lease, PassResult};
use caelus_store::revisions;
use serde_json::json;
use std::time::Duration;

impl Reconciler {
    pub(crate) async fn uninstall(&self, lease: &Lease, l: Loaded) -> PassResultOf<&'static str> {
        let d = l.d;
        let newest = {
            let mut c = self.store.conn().await?;
            revisions::list(&mut c, &d.uid, None, 1)
                .await?
                .into_iter()
                .next()
        };
        queue::report_progress(
            &self.store,
            lease,
            if d.phase == Phase::DeletionBlocked {
                Phase::DeletionBlocked
            } else {
                Phase::Deleting
            },
            "Removing objects and namespace",
            None,
            now_ms(),
        )
        .await?;
        // Delete hooks come from what is deployed (its stored manifest). A
        // purge of a Retained deployment runs none: they ran when it was deleted.
        let purging = d.phase == Phase::Retained;
        let hooks = match &l.last_deployed {
            Some(_) if purging => Vec::new(),
            Some(last) => match self.version_of(last).await? {
                Some(v) => match self.applied(&d, &v, last).await {
                    Ok(r) => r.hooks.clone(),
                    Err(e) => {
                        return self
                            .deletion_failed(
                                lease,
                                &d,
                                format!("cannot render pre-delete hooks: {e}"),
                            )
                            .await;
                    }
                },
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        let request = UninstallRequest {
            namespace: d.namespace_name.clone(),
            deployment_uid: d.uid.clone(),
            inventory: union(
                inventory_from(l.last_deployed.as_ref()),
                &inventory_from(newest.as_ref()),
            ),
            hooks,
            hook_timeout: Duration::from_secs(u64::from(
                l.version.capabilities.health_timeout_seconds,
            )),
            keep_volumes: d.keep_volumes,
        };
        let g = d.generation;
        // The delete hooks that ran become timeline events, whatever the outcome.
        let ran = std::sync::Mutex::new(Vec::new());
        let record = |p: Progress| {
            if let Progress::HookSucceeded { event, kind, name } = p
                && let Ok(mut ran) = ran.lock()
            {
                ran.push(format!("{} hook {kind}/{name} succeeded", event.as_str()));
            }
        };
        let result = self.engine.uninstall_with_progress(&request, &record).await;
        let hooks_ran = ran.into_inner().unwrap_or_default();
        if !hooks_ran.is_empty() {
            let commit = hooks_ran.iter().fold(Commit::new(), |c, hook| {
                c.event(
                    "hook.succeeded",
                    format!("uninstall: {hook}"),
                    json!({"generation": g}),
                )
            });
            self.commit(lease, &d, commit).await?;
        }
        match result {
            Ok(UninstallStatus::Gone) => {
                let mut conditions = d.conditions.clone();
                set_ready(&mut conditions, ReadyReason::Deleted, "", g);
                set(
                    &mut conditions,
                    CONDITION_RECONCILING,
                    ConditionStatus::False,
                    reason::DELETED,
                    "",
                    g,
                );
                let commit = Commit::new()
                    .event(
                        "reconcile.deleted",
                        "namespace and objects removed".into(),
                        json!({"generation": g}),
                    )
                    .result(PassResult {
                        phase: Phase::Deleted,
                        message: "Deleted".into(),
                        conditions,
                        object_health: Vec::new(),
                        observed_generation: g,
                        current_revision: d.current_revision,
                        last_error: None,
                        attempts: 0,
                        next_due: None,
                        deleted: true,
                        failure: None,
                    });
                self.commit(lease, &d, commit).await?;
                Ok("deleted")
            }
            Ok(UninstallStatus::Retained { volumes }) => {
                let message = format!(
                    "Objects removed; namespace {} kept with {} volume(s): {}. `caelus deployment purge {}` removes them.",
                    d.namespace_name,
                    volumes.len(),
                    volumes.join(", "),
                    d.uid
                );
                let mut conditions = d.conditions.clone();
                set_ready(&mut conditions, ReadyReason::Deleted, &message, g);
                set(
                    &mut conditions,
                    CONDITION_RECONCILING,
                    ConditionStatus::False,
                    reason::DELETED,
                    "",
                    g,
                );
                let commit = Commit::new()
                    .event(
                        "reconcile.retained",
                        message.clone(),
                        json!({"generation": g, "volumes": volumes}),
                    )
                    .result(PassResult {
                        phase: Phase::Retained,
                        message,
                        conditions,
                        object_health: volumes
                            .iter()
                            .map(|name| ObjectHealth {
                                kind: "PersistentVolumeClaim".into(),
                                name: name.clone(),
                                health: "Retained".into(),
                                message: String::new(),
                            })
                            .collect(),
                        observed_generation: g,
                        current_revision: d.current_revision,
                        last_error: None,
                        attempts: 0,
                        next_due: None,
                        deleted: false,
                        failure: None,
                    });
                self.commit(lease, &d, commit).await?;
                Ok("retained")
            }
            Ok(UninstallStatus::Terminating { message }) => {
                let mut conditions = d.conditions.clone();
                set(
                    &mut conditions,
                    CONDITION_RECONCILING,
                    ConditionStatus::True,
                    reason::NAMESPACE_TERMINATING,
                    &message,
                    g,
                );
                let commit = Commit::new()
                    .event_if(
                        d.phase != Phase::DeletionBlocked || d.message != message,
                        "reconcile.deletion-blocked",
                        message.clone(),
                        json!({}),
                    )
                    .result(PassResult {
                        phase: Phase::DeletionBlocked,
                        message: format!(
                            "Namespace {} is still terminating: {message}",
                            d.namespace_name
                        ),
                        conditions,
                        object_health: Vec::new(),
                        observed_generation: g,
                        current_revision: d.current_revision,
                        last_error: None,
                        attempts: 0,
                        next_due: Some(now_ms() + self.config.deletion_recheck.as_millis() as i64),
                        deleted: false,
                        failure: d.failure.clone(),
                    });
                self.commit(lease, &d, commit).await?;
                Ok("deletion-blocked")
            }
            Err(e) => self.deletion_failed(lease, &d, e.to_string()).await,
        }
    }

    async fn deletion_failed(
        &self,
        lease: &Lease,
        d: &Deployment,
        message: String,
    ) -> PassResultOf<&'static str> {
        let attempts = d.attempts + 1;
        let at = self.retry_at(attempts);
        let mut r = unchanged(d, Some(at));
        r.phase = Phase::Deleting;
        r.message = message.clone();
        r.last_error = Some(message.clone());
        r.attempts = attempts;
        let commit = Commit::new()
            .event(
                "reconcile.failed",
                format!(
                    "deletion attempt {attempts} failed: {message}; retrying at {}",
                    rfc3339(at)
                ),
                json!({"attempts": attempts}),
            )
            .result(r);
        self.commit(lease, d, commit).await?;
        Ok("deletion-failed")
    }
}
