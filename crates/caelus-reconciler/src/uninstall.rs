//! The uninstall action: pre-delete hooks, objects in reverse install order,
//! the namespace; a namespace that stays Terminating is reported, never forced.

use crate::Reconciler;
use crate::commit::{Commit, unchanged};
use crate::pass::{Loaded, PassResultOf, inventory_from, rfc3339, union};
use crate::status::{set, set_ready};
use caelus_core::status::{CONDITION_RECONCILING, ConditionStatus, Phase, ReadyReason, reason};
use caelus_engine::{UninstallRequest, UninstallStatus};
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
        // Pre-delete hooks come from the render of what is deployed.
        let hooks = match &l.last_deployed {
            Some(last) => match self.version_of(last).await? {
                Some(v) => match self
                    .render(&d, &v, &last.user_values, last.number, last.kind)
                    .await
                {
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
        };
        let g = d.generation;
        match self.engine.uninstall(&request).await {
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
