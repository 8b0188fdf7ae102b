//! The deploy action: render, check policy, apply a new revision (install,
//! upgrade, explicit rollback, or a retry of the current generation), and on
//! failure either retry, stall, or roll back to the last good revision.

use crate::Reconciler;
use crate::commit::Commit;
use crate::pass::{
    Loaded, PassError, PassResultOf, SYSTEM, inventory_from, inventory_json, manifest_of,
    objects_of, rfc3339, union,
};
use crate::status::{set, set_ready};
use caelus_core::remediation::{
    FailedAttempt, FailureClass, FailureKind, FailureOrigin, FailureRecord, RemediationPolicy,
    Remedy, remediate,
};
use caelus_core::revision::{RevisionKind, RevisionOutcome};
use caelus_core::statefulset::{StatefulSetUpdates, recreations};
use caelus_core::status::{
    CONDITION_DRIFTED, CONDITION_RECONCILING, CONDITION_STALLED, ConditionStatus, ObjectHealth,
    Phase, ReadyReason, reason,
};
use caelus_engine::{ApplyRequest, EngineError, NamespaceTarget, ObjectRef};
use caelus_helm::{HelmError, HookEvent};
use caelus_store::deployments::Deployment;
use caelus_store::events;
use caelus_store::now_ms;
use caelus_store::queue::{self, Lease, PassResult};
use caelus_store::revisions::{self, FinishedRevision, NewRevision, Revision};
use caelus_store::templates::TemplateVersion;
use serde_json::json;
use std::time::Duration;

/// Why a deploy attempt did not succeed, classified for [`remediate`].
pub(crate) struct Failure {
    pub reason: ReadyReason,
    pub class: FailureClass,
    pub kind: FailureKind,
    pub message: String,
    pub health: Option<Vec<ObjectHealth>>,
}

fn helm_failure(e: HelmError) -> Failure {
    let kind = e.failure_kind();
    Failure {
        reason: if kind == FailureKind::NeedsChange {
            ReadyReason::RenderFailed
        } else {
            ReadyReason::ChartUnavailable
        },
        class: e.failure_class(),
        kind,
        message: e.to_string(),
        health: None,
    }
}

fn engine_failure(e: EngineError) -> Failure {
    let reason = match &e {
        EngineError::HookFailed { .. } => ReadyReason::HookFailed,
        EngineError::HealthTimeout { .. } | EngineError::Unhealthy { .. } => {
            ReadyReason::HealthCheckFailed
        }
        EngineError::Policy(_) => ReadyReason::PolicyViolation,
        EngineError::NotOwned { .. } => ReadyReason::OwnershipConflict,
        _ => ReadyReason::ApplyFailed,
    };
    let message = match &e {
        EngineError::Policy(m) => m.clone(),
        _ => e.to_string(),
    };
    Failure {
        reason,
        class: e.failure_class(),
        kind: e.failure_kind(),
        health: e.health().map(<[ObjectHealth]>::to_vec),
        message,
    }
}

/// What a failed attempt at revision `number` is: the facts remediation needs.
struct Attempt<'a> {
    kind: RevisionKind,
    number: i64,
    version: &'a TemplateVersion,
    last: Option<&'a Revision>,
    /// What this attempt tried to apply (so a later pass can prune it).
    attempted: &'a [ObjectRef],
}

fn hook_events(kind: RevisionKind) -> (HookEvent, HookEvent) {
    match kind {
        RevisionKind::Rollback => (HookEvent::PreRollback, HookEvent::PostRollback),
        RevisionKind::Upgrade => (HookEvent::PreUpgrade, HookEvent::PostUpgrade),
        RevisionKind::Install => (HookEvent::PreInstall, HookEvent::PostInstall),
    }
}

fn health_timeout(version: &TemplateVersion) -> Duration {
    Duration::from_secs(u64::from(version.capabilities.health_timeout_seconds))
}

impl Reconciler {
    /// The revision of this generation: created by the first attempt, reused by retries.
    async fn revision_for(
        &self,
        lease: &Lease,
        d: &Deployment,
        kind: RevisionKind,
    ) -> PassResultOf<i64> {
        let mut tx = self.store.begin().await?;
        queue::hold(&mut tx, lease).await?;
        let existing = revisions::for_generation(&mut tx, &d.uid, d.generation).await?;
        let number = match existing {
            // A retry re-attempts the generation's own revision; one that ran
            // (deployed or superseded) is never re-used as a new attempt.
            Some(r) if !r.outcome.has_run() => r.number,
            _ => {
                // Who asked for this generation: the actor of the newest API event.
                let requested_by = events::latest_actor(&mut tx, &d.uid, SYSTEM)
                    .await?
                    .unwrap_or_else(|| SYSTEM.to_string());
                revisions::insert_next(
                    &mut tx,
                    &NewRevision {
                        deployment_uid: &d.uid,
                        generation: d.generation,
                        template_version_id: &d.template_version_id,
                        user_values: &d.user_values,
                        requested_by: &requested_by,
                        started_at: now_ms(),
                        kind,
                    },
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(number)
    }

    /// Deploys the current generation as a revision of `kind` (decided by
    /// the state machine, see [`RevisionKind::next`]).
    pub(crate) async fn deploy(
        &self,
        lease: &Lease,
        l: Loaded,
        kind: RevisionKind,
    ) -> PassResultOf<&'static str> {
        let Loaded {
            d,
            version,
            last_deployed,
        } = l;
        let phase = match kind {
            RevisionKind::Install => Phase::Installing,
            RevisionKind::Upgrade => Phase::Upgrading,
            RevisionKind::Rollback => Phase::RollingBack,
        };
        let number = self.revision_for(lease, &d, kind).await?;
        queue::report_progress(
            &self.store,
            lease,
            phase,
            &format!("Applying revision {number}"),
            None,
            now_ms(),
        )
        .await?;
        let last = last_deployed.as_ref();
        let mut attempt = Attempt {
            kind,
            number,
            version: &version,
            last,
            attempted: &[],
        };

        // The one render seam: every object (CRDs, objects, hooks of every
        // event) checked by core's policy, scopes from the cluster, before
        // anything of this revision is written.
        let checked = match self
            .render_revision(&d, &version, &d.user_values, number, kind)
            .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return self.failed(lease, &d, &attempt, engine_failure(e)).await,
            Err(e) => return self.failed(lease, &d, &attempt, helm_failure(e)).await,
        };
        if let Some(refusal) = checked.refusal() {
            let failure = Failure {
                reason: ReadyReason::PolicyViolation,
                class: FailureClass::Deterministic,
                kind: FailureKind::NeedsChange,
                message: refusal,
                health: None,
            };
            return self.failed(lease, &d, &attempt, failure).await;
        }
        let rendered = checked.rendered;
        let objects = objects_of(&rendered);

        let target = NamespaceTarget {
            name: d.namespace_name.clone(),
            deployment_uid: d.uid.clone(),
            pod_security: version.capabilities.pod_security,
        };
        let namespace_created = match self.engine.ensure_namespace(&target).await {
            Ok(created) => created,
            Err(e) => return self.failed(lease, &d, &attempt, engine_failure(e)).await,
        };
        let recreated = match self
            .prepare_statefulset_recreations(lease, &d, &version, last, &objects)
            .await?
        {
            Ok(steps) => steps,
            Err(failure) => return self.failed(lease, &d, &attempt, failure).await,
        };
        let new_inventory = caelus_engine::inventory_of(&objects).unwrap_or_default();
        let (pre_event, post_event) = hook_events(kind);
        let request = ApplyRequest {
            namespace: d.namespace_name.clone(),
            deployment_uid: d.uid.clone(),
            objects,
            hooks: rendered.hooks.clone(),
            pre_event,
            post_event,
            previous_inventory: inventory_from(last),
            health_timeout: health_timeout(&version),
            namespace_created,
        };
        let result = self
            .apply_with_progress(lease, &d, phase, number, request)
            .await?;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                // Refused for ownership before the first write: nothing of it
                // exists, and the names are someone else's, never to be pruned.
                if !matches!(e, EngineError::NotOwned { .. }) {
                    attempt.attempted = &new_inventory;
                }
                return self.failed(lease, &d, &attempt, engine_failure(e)).await;
            }
        };
        let message = format!(
            "Revision {number} ({} {}) deployed: {} objects healthy",
            d.product_slug,
            version.version,
            outcome.health.len()
        );
        let g = d.generation;
        let mut conditions = d.conditions.clone();
        set_ready(&mut conditions, ReadyReason::Deployed, &message, g);
        set(
            &mut conditions,
            CONDITION_RECONCILING,
            ConditionStatus::False,
            reason::SUCCEEDED,
            "",
            g,
        );
        set(
            &mut conditions,
            CONDITION_STALLED,
            ConditionStatus::False,
            reason::SUCCEEDED,
            "",
            g,
        );
        set(
            &mut conditions,
            CONDITION_DRIFTED,
            ConditionStatus::False,
            reason::IN_SYNC,
            "",
            g,
        );
        let inventory = inventory_json(&outcome.inventory);
        let commit = Commit::new()
            .revision(
                number,
                FinishedRevision {
                    outcome: RevisionOutcome::Deployed,
                    manifest_hash: Some(&rendered.manifest_hash),
                    inventory: &inventory,
                    error: None,
                    finished_at: now_ms(),
                },
            )
            .notes(number, rendered.notes.clone())
            .manifest(number, manifest_of(&rendered))
            .event_if(
                !recreated.is_empty(),
                "statefulset.recreated",
                format!("revision {number}: {}", recreated.join("; ")),
                json!({"revision": number, "steps": recreated}),
            )
            .event(
                "reconcile.deployed",
                message.clone(),
                json!({"revision": number, "generation": g, "pruned": outcome.pruned.len(), "kept": outcome.kept.len(),
                    // Dropped from the render but someone else's now: left in place.
                    "not_owned": outcome.not_owned.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            )
            .result(PassResult {
                phase: Phase::Ready,
                message,
                conditions,
                object_health: outcome.health,
                observed_generation: g,
                current_revision: Some(number),
                last_error: None,
                attempts: 0,
                next_due: Some(self.resync_at()),
                deleted: false,
                failure: None,
            });
        self.commit(lease, &d, commit).await?;
        Ok(match kind {
            RevisionKind::Install => "installed",
            RevisionKind::Upgrade | RevisionKind::Rollback => "upgraded",
        })
    }

    /// With `statefulset_updates: recreate`, the StatefulSet changes
    /// Kubernetes forbids (between what runs, as stored, and `objects`) are
    /// prepared keeping the data: claims grown in place, the StatefulSet
    /// deleted with its pods and claims orphaned; the apply re-creates it.
    /// Returns the steps done, or why it cannot be done.
    async fn prepare_statefulset_recreations(
        &self,
        lease: &Lease,
        d: &Deployment,
        version: &TemplateVersion,
        last: Option<&Revision>,
        objects: &[serde_json::Value],
    ) -> PassResultOf<Result<Vec<String>, Failure>> {
        let Some(last) = last else {
            return Ok(Ok(Vec::new()));
        };
        if version.capabilities.statefulset_updates != StatefulSetUpdates::Recreate {
            return Ok(Ok(Vec::new()));
        }
        let Some(running) = self.version_of(last).await? else {
            return Ok(Ok(Vec::new()));
        };
        let current = match self.applied(d, &running, last).await {
            Ok(r) => objects_of(&r),
            Err(e) => return Ok(Err(helm_failure(e))),
        };
        let mut done = Vec::new();
        for plan in recreations(&current, objects) {
            queue::report_progress(
                &self.store,
                lease,
                Phase::Upgrading,
                &plan.steps().join("; "),
                None,
                now_ms(),
            )
            .await?;
            match self
                .engine
                .recreate_statefulset(&d.namespace_name, &d.uid, &plan)
                .await
            {
                Ok(steps) => done.extend(steps),
                Err(e) => {
                    let mut failure = engine_failure(e);
                    if !done.is_empty() {
                        failure.message =
                            format!("{} (done before: {})", failure.message, done.join("; "));
                    }
                    return Ok(Err(failure));
                }
            }
        }
        Ok(Ok(done))
    }

    /// A failed attempt: remediation decides between retrying, rolling back
    /// and stalling; each path records the failure on the deployment.
    async fn failed(
        &self,
        lease: &Lease,
        d: &Deployment,
        attempt: &Attempt<'_>,
        failure: Failure,
    ) -> PassResultOf<&'static str> {
        let attempts = attempts_after_failure(d);
        // The last good revision must be another one than the attempt itself.
        let last_good = attempt.last.filter(|r| r.number != attempt.number);
        let remedy = remediate(
            &FailedAttempt {
                origin: FailureOrigin::from(attempt.kind),
                class: failure.class,
                kind: failure.kind,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                has_last_good: last_good.is_some(),
            },
            &RemediationPolicy {
                rollback_on_failure: attempt.version.capabilities.rollback_on_failure,
                transient_retries: self.config.transient_retries,
            },
        );
        match (remedy, last_good) {
            (Remedy::RollBack, Some(last)) => {
                self.roll_back(lease, d, attempt, last, failure).await
            }
            (remedy, _) => {
                self.record_failure(lease, d, attempt, failure, remedy)
                    .await
            }
        }
    }

    /// After a failed upgrade to revision `failed`: re-apply the last good revision
    /// with pre/post-rollback hooks. The deployment ends Degraded, saying what failed
    /// and that it was rolled back; the failed revision is marked failed.
    async fn roll_back(
        &self,
        lease: &Lease,
        d: &Deployment,
        attempt: &Attempt<'_>,
        last: &Revision,
        failure: Failure,
    ) -> PassResultOf<&'static str> {
        let failed = attempt.number;
        let attempted = attempt.attempted;
        let ready_reason = failure.reason;
        let cause = failure.message.clone();
        let health = failure.health.clone();
        let restore_version = self
            .version_of(last)
            .await?
            .ok_or_else(|| PassError::MissingVersion(d.uid.clone()))?;
        queue::report_progress(
            &self.store,
            lease,
            Phase::RollingBack,
            &format!(
                "Revision {failed} failed ({}); rolling back to revision {}",
                ready_reason.as_str(),
                last.number
            ),
            health.as_deref(),
            now_ms(),
        )
        .await?;
        let rollback = async {
            // The restored revision passes the same policy before it is written again.
            let checked = self
                .render_revision(
                    d,
                    &restore_version,
                    &last.user_values,
                    last.number,
                    last.kind,
                )
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if let Some(refusal) = checked.refusal() {
                return Err(refusal);
            }
            let rendered = checked.rendered;
            let manifest = manifest_of(&rendered);
            let request = ApplyRequest {
                namespace: d.namespace_name.clone(),
                deployment_uid: d.uid.clone(),
                objects: objects_of(&rendered),
                hooks: rendered.hooks.clone(),
                pre_event: HookEvent::PreRollback,
                post_event: HookEvent::PostRollback,
                // Prune what the failed revision added: the previous inventory is the union.
                previous_inventory: union(inventory_from(Some(last)), attempted),
                health_timeout: health_timeout(&restore_version),
                namespace_created: false,
            };
            let outcome = self
                .apply_with_progress(lease, d, Phase::RollingBack, last.number, request)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok((outcome, manifest))
        }
        .await;
        let (outcome, manifest) = match rollback {
            Ok(done) => done,
            Err(rollback_error) => {
                let failure = Failure {
                    message: format!(
                        "{cause}; rolling back to revision {} also failed: {rollback_error}",
                        last.number
                    ),
                    ..failure
                };
                return self
                    .record_failure(lease, d, attempt, failure, Remedy::Retry)
                    .await;
            }
        };
        let g = d.generation;
        let message = format!(
            "Upgrade to {} {} (revision {failed}) failed: {cause}. Rolled back to revision {} ({} {}).",
            d.product_slug,
            attempt.version.version,
            last.number,
            d.product_slug,
            restore_version.version
        );
        let mut conditions = d.conditions.clone();
        set_ready(&mut conditions, ReadyReason::RolledBack, &message, g);
        set(
            &mut conditions,
            CONDITION_RECONCILING,
            ConditionStatus::False,
            reason::ROLLED_BACK,
            "",
            g,
        );
        set(
            &mut conditions,
            CONDITION_STALLED,
            ConditionStatus::False,
            reason::ROLLED_BACK,
            "",
            g,
        );
        let inventory = inventory_json(attempted);
        let commit = Commit::new()
            .revision(
                failed,
                FinishedRevision {
                    outcome: RevisionOutcome::Failed,
                    manifest_hash: None,
                    inventory: &inventory,
                    error: Some(&cause),
                    finished_at: now_ms(),
                },
            )
            // What the restored revision applied now.
            .manifest(last.number, manifest)
            .event(
                "reconcile.rolled-back",
                message.clone(),
                json!({"failed_revision": failed, "restored_revision": last.number, "reason": ready_reason.as_str()}),
            )
            .result(PassResult {
                phase: Phase::Degraded,
                message,
                conditions,
                object_health: outcome.health,
                observed_generation: g,
                current_revision: Some(last.number),
                last_error: Some(cause.clone()),
                attempts: 0,
                next_due: Some(self.resync_at()),
                deleted: false,
                failure: Some(record(d, attempt, &failure, Remedy::RollBack)),
            });
        self.commit(lease, d, commit).await?;
        Ok("rolled-back")
    }

    /// Records a failed attempt: the revision failed, the deployment Failed, and
    /// either a retry after backoff or (stalled) no retry until the next change.
    async fn record_failure(
        &self,
        lease: &Lease,
        d: &Deployment,
        attempt: &Attempt<'_>,
        failure: Failure,
        remedy: Remedy,
    ) -> PassResultOf<&'static str> {
        let g = d.generation;
        let number = attempt.number;
        let last_deployed = attempt.last;
        let attempted = attempt.attempted;
        let attempts = attempts_after_failure(d);
        let failure_record = record(d, attempt, &failure, remedy);
        // What may now exist in the cluster: the previous inventory plus what this
        // attempt tried to apply, so a later pass can still prune all of it.
        let inventory = inventory_json(&union(inventory_from(last_deployed), attempted));
        let Failure {
            reason: ready_reason,
            message,
            health,
            ..
        } = failure;
        let stalled = remedy == Remedy::Stall;
        let (next_due, outcome) = if stalled {
            (None, "stalled")
        } else {
            (Some(self.retry_at(attempts)), "failed")
        };
        let detail = match next_due {
            Some(at) => format!(
                "attempt {attempts} failed ({}): {message}; retrying at {}",
                ready_reason.as_str(),
                rfc3339(at)
            ),
            None => format!(
                "{}: {message}; waiting for a change to the deployment",
                ready_reason.as_str()
            ),
        };
        let mut conditions = d.conditions.clone();
        set_ready(&mut conditions, ready_reason, &message, g);
        set(
            &mut conditions,
            CONDITION_STALLED,
            if stalled {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            ready_reason.as_str(),
            if stalled { &message } else { "" },
            g,
        );
        set(
            &mut conditions,
            CONDITION_RECONCILING,
            if stalled {
                ConditionStatus::False
            } else {
                ConditionStatus::True
            },
            if stalled {
                reason::STALLED
            } else {
                reason::RETRY_SCHEDULED
            },
            "",
            g,
        );
        let commit = Commit::new()
            .revision(
                number,
                FinishedRevision {
                    outcome: RevisionOutcome::Failed,
                    manifest_hash: None,
                    inventory: &inventory,
                    error: Some(&message),
                    finished_at: now_ms(),
                },
            )
            .event(
                if stalled {
                    "reconcile.stalled"
                } else {
                    "reconcile.failed"
                },
                detail,
                json!({"revision": number, "generation": g, "attempts": attempts, "reason": ready_reason.as_str()}),
            )
            .result(PassResult {
                phase: Phase::Failed,
                message: message.clone(),
                conditions,
                object_health: health.unwrap_or_else(|| d.object_health.clone()),
                observed_generation: g,
                current_revision: last_deployed.map(|r| r.number),
                last_error: Some(message.clone()),
                attempts: if stalled { 0 } else { attempts },
                next_due,
                deleted: false,
                failure: Some(failure_record),
            });
        self.commit(lease, d, commit).await?;
        Ok(outcome)
    }
}

/// Failed attempts at the current generation, this one included.
fn attempts_after_failure(d: &Deployment) -> i64 {
    if d.observed_generation == d.generation {
        d.attempts + 1
    } else {
        1
    }
}

/// The failure as the deployment shows it.
fn record(
    d: &Deployment,
    attempt: &Attempt<'_>,
    failure: &Failure,
    remedy: Remedy,
) -> FailureRecord {
    FailureRecord {
        generation: d.generation,
        origin: FailureOrigin::from(attempt.kind),
        class: failure.class,
        reason: failure.reason.as_str().to_string(),
        message: failure.message.clone(),
        remedy,
        revision: Some(attempt.number),
        target_version: Some(attempt.version.version.clone()),
    }
}
