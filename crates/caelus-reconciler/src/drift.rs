//! The drift action on a deployed release: compare the live objects with
//! what the running revision applied, report or correct per the template's
//! drift mode, and follow object health between deploys.

use crate::Reconciler;
use crate::commit::{Commit, unchanged};
use crate::pass::{PassError, PassResultOf, applied_by, inventory_from, objects_of};
use crate::status::{self, ready_reason, set, set_ready};
use caelus_core::drift::{ignored_pointers, strip_ignored};
use caelus_core::reconcile::{DriftResponse, drift_response};
use caelus_core::remediation::{
    FailedAttempt, FailureOrigin, FailureRecord, RemediationPolicy, Remedy, remediate,
};
use caelus_core::status::{
    CONDITION_DRIFTED, ConditionStatus, ObjectHealth, Phase, ReadyReason, reason,
};
use caelus_core::template::{DriftIgnoreRule, DriftMode};
use caelus_engine::{ApplyRequest, Drift, Engine, EngineError, NamespaceTarget};
use caelus_helm::{HelmEngine, HelmError, HookEvent};
use caelus_store::deployments::Deployment;
use caelus_store::queue::{Lease, PassResult};
use caelus_store::revisions::Revision;
use caelus_store::templates::TemplateVersion;
use serde_json::json;
use std::time::Duration;

fn describe_drift(drifts: &[Drift]) -> String {
    drifts
        .iter()
        .map(|d| {
            let what = if d.missing {
                "deleted".to_string()
            } else {
                format!("changed {}", d.fields.join(", "))
            };
            format!("{}/{}: {what}", d.object.kind, d.object.name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Reconciler {
    /// Checks the running revision `last` for drift (and corrects it per the
    /// drift mode). A failed correction is recorded as its own failure origin
    /// and retried as a correction: no hooks, no new revision.
    pub(crate) async fn check_drift(
        &self,
        lease: &Lease,
        d: Deployment,
        desired_version: TemplateVersion,
        last: Revision,
    ) -> PassResultOf<&'static str> {
        let mode = desired_version.capabilities.drift_mode;
        if mode == DriftMode::Off {
            self.finish_unchanged(lease, &d, Some(self.resync_at()))
                .await?;
            return Ok("in-sync");
        }
        let version = if last.template_version_id == desired_version.id {
            desired_version
        } else {
            self.version_of(&last)
                .await?
                .ok_or_else(|| PassError::MissingVersion(d.uid.clone()))?
        };
        // What the running revision applied, as stored with it.
        let rendered = match self.applied(&d, &version, &last).await {
            Ok(r) => r,
            Err(e) => {
                // Cannot know what was applied: try again later without touching anything.
                tracing::warn!(error = %e, "cannot read or render the deployed revision for a drift check");
                self.finish_unchanged(lease, &d, Some(self.retry_at(1)))
                    .await?;
                return Ok("drift-check-deferred");
            }
        };
        let objects = objects_of(&rendered);
        let ignore = &version.capabilities.drift_ignore;
        let namespace = NamespaceTarget {
            name: d.namespace_name.clone(),
            deployment_uid: d.uid.clone(),
            pod_security: version.capabilities.pod_security,
        };
        let (drifts, health) = match inspect(&self.engine, &namespace, &objects, ignore).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "drift check failed");
                self.finish_unchanged(lease, &d, Some(self.retry_at(1)))
                    .await?;
                return Ok("drift-check-deferred");
            }
        };
        let g = d.generation;
        match drift_response(mode, !drifts.is_empty()) {
            DriftResponse::Nothing => {
                let mut r = unchanged(&d, Some(self.resync_at()));
                clear_correction_failure(&d, &mut r);
                if status::is_true(&d.conditions, CONDITION_DRIFTED) {
                    set(
                        &mut r.conditions,
                        CONDITION_DRIFTED,
                        ConditionStatus::False,
                        reason::IN_SYNC,
                        "",
                        g,
                    );
                }
                let change = settle_health(&d, &mut r, health);
                let mut commit = Commit::new();
                if let Some((action, message)) = change {
                    commit = commit.event(action, message, json!({"generation": g}));
                }
                self.commit(lease, &d, commit.result(r)).await?;
                Ok("in-sync")
            }
            DriftResponse::Report => {
                let description = describe_drift(&drifts);
                let already = d.conditions.iter().any(|c| {
                    c.type_ == CONDITION_DRIFTED
                        && c.status == ConditionStatus::True
                        && c.message == description
                });
                let mut r = unchanged(&d, Some(self.resync_at()));
                r.object_health = health;
                mark_drifted(
                    &d,
                    &mut r,
                    reason::DRIFT_DETECTED,
                    &description,
                    format!("Drifted (not corrected, drift mode warn): {description}"),
                );
                let commit = Commit::new()
                    .event_if(
                        !already,
                        "drift.detected",
                        format!("drift found (mode warn, not corrected): {description}"),
                        json!({"objects": drifts.len()}),
                    )
                    .result(r);
                self.commit(lease, &d, commit).await?;
                Ok("drift-reported")
            }
            DriftResponse::Correct => {
                let description = describe_drift(&drifts);
                // Out of Ready before anything is re-applied: the drift is
                // visible while the correction runs.
                let mut showing = unchanged(&d, None);
                mark_drifted(
                    &d,
                    &mut showing,
                    reason::DRIFT_DETECTED,
                    &description,
                    format!("Drifted, correcting: {description}"),
                );
                let found = Commit::new()
                    .event(
                        "drift.detected",
                        format!("drift found: {description}"),
                        json!({"objects": drifts.len()}),
                    )
                    .status(showing.phase, showing.message, showing.conditions);
                self.commit(lease, &d, found).await?;
                // Ignored fields stay as whoever changed them left them.
                let objects = objects
                    .into_iter()
                    .map(|mut o| {
                        let kind = o["kind"].as_str().unwrap_or_default().to_string();
                        strip_ignored(&mut o, &ignored_pointers(ignore, &kind));
                        o
                    })
                    .collect();
                let mut request = ApplyRequest {
                    namespace: d.namespace_name.clone(),
                    deployment_uid: d.uid.clone(),
                    objects,
                    // Hooks belong to install/upgrade; correcting drift re-applies objects only.
                    hooks: Vec::new(),
                    pre_event: HookEvent::PreUpgrade,
                    post_event: HookEvent::PostUpgrade,
                    previous_inventory: inventory_from(Some(&last)),
                    health_timeout: Duration::from_secs(u64::from(
                        version.capabilities.health_timeout_seconds,
                    )),
                    namespace_created: false,
                };
                // A deleted namespace comes back first, with its isolation objects.
                let applied = match self.engine.ensure_namespace(&namespace).await {
                    Ok(created) => {
                        request.namespace_created = created;
                        self.engine.apply(request, |_| {}).await
                    }
                    Err(e) => Err(e),
                };
                match applied {
                    Ok(outcome) => {
                        let mut r = unchanged(&d, Some(self.resync_at()));
                        clear_correction_failure(&d, &mut r);
                        set(
                            &mut r.conditions,
                            CONDITION_DRIFTED,
                            ConditionStatus::False,
                            reason::CORRECTED,
                            &description,
                            g,
                        );
                        if leaves_ready(&d) {
                            let message = format!("Drift corrected: {description}");
                            r.phase = Phase::Ready;
                            r.message = message.clone();
                            set_ready(&mut r.conditions, ReadyReason::Healthy, &message, g);
                        }
                        r.object_health = outcome.health;
                        let commit = Commit::new()
                            .event(
                                "drift.corrected",
                                format!("re-applied revision {}: {description}", last.number),
                                json!({"revision": last.number}),
                            )
                            .result(r);
                        self.commit(lease, &d, commit).await?;
                        caelus_metrics::global().drift_corrected();
                        Ok("drift-corrected")
                    }
                    Err(e) => {
                        let attempts = d.attempts + 1;
                        let at = self.retry_at(attempts);
                        let mut r = unchanged(&d, Some(at));
                        mark_drifted(
                            &d,
                            &mut r,
                            reason::CORRECTION_FAILED,
                            &description,
                            format!("Drifted, correction failed (retrying): {description}"),
                        );
                        r.attempts = attempts;
                        r.last_error = Some(e.to_string());
                        // A rollback's record stays: it names the failed target.
                        if !rolled_back(&d) {
                            r.failure = Some(FailureRecord {
                                generation: g,
                                origin: FailureOrigin::DriftCorrection,
                                class: e.failure_class(),
                                reason: ReadyReason::ApplyFailed.as_str().to_string(),
                                message: e.to_string(),
                                remedy: remediate(
                                    &FailedAttempt {
                                        origin: FailureOrigin::DriftCorrection,
                                        class: e.failure_class(),
                                        kind: e.failure_kind(),
                                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                                        has_last_good: true,
                                    },
                                    &RemediationPolicy {
                                        rollback_on_failure: version
                                            .capabilities
                                            .rollback_on_failure,
                                        transient_retries: self.config.transient_retries,
                                    },
                                ),
                                revision: Some(last.number),
                                target_version: Some(last.version.clone()),
                            });
                        }
                        let commit = Commit::new()
                            .event(
                                "drift.correction-failed",
                                format!("could not correct drift: {e}"),
                                json!({"attempts": attempts}),
                            )
                            .result(r);
                        self.commit(lease, &d, commit).await?;
                        Ok("drift-correction-failed")
                    }
                }
            }
        }
    }
}

/// Drift of the namespace and its isolation objects, then of the
/// release's objects, and the objects' health: all read-only.
async fn inspect(
    engine: &Engine,
    namespace: &NamespaceTarget,
    objects: &[serde_json::Value],
    ignore: &[DriftIgnoreRule],
) -> Result<(Vec<Drift>, Vec<ObjectHealth>), EngineError> {
    let mut drifts = engine.namespace_drift(namespace).await?;
    let live = engine
        .inspect_live_with(&namespace.name, objects, ignore)
        .await?;
    drifts.extend(live.drifts);
    Ok((drifts, live.health))
}

/// Why the live objects of a deployment could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cannot render what the running revision applied: {0}")]
    Render(#[from] HelmError),
    #[error("the cluster did not answer: {0}")]
    Cluster(#[from] EngineError),
}

/// What a drift pass would find now for `d`, whose running revision is
/// `last` (made from `version`): the namespace, its isolation objects and
/// the release's objects compared with the live ones by the pass's own
/// comparison (fields Caelus applied, list items by the server's keys, the
/// template's ignore rules, suspicions settled by a server-side dry run).
/// Read-only, whatever the drift mode.
pub async fn live_drift(
    store: &caelus_store::Store,
    helm: &HelmEngine,
    engine: &Engine,
    d: &Deployment,
    version: &TemplateVersion,
    last: &Revision,
) -> Result<Vec<Drift>, CompareError> {
    let rendered = applied_by(store, helm, engine, d, version, last).await?;
    let namespace = NamespaceTarget {
        name: d.namespace_name.clone(),
        deployment_uid: d.uid.clone(),
        pod_security: version.capabilities.pod_security,
    };
    let (drifts, _) = inspect(
        engine,
        &namespace,
        &objects_of(&rendered),
        &version.capabilities.drift_ignore,
    )
    .await?;
    Ok(drifts)
}

/// Whether drift takes this deployment out of Ready: a Ready one (or one
/// already out for drift); one Degraded after a rollback keeps that reason.
fn leaves_ready(d: &Deployment) -> bool {
    d.phase == Phase::Ready || ready_reason(&d.conditions) == Some(ReadyReason::Drifted)
}

/// Drifted=True naming the objects, and out of Ready.
fn mark_drifted(
    d: &Deployment,
    r: &mut PassResult,
    drifted_reason: &str,
    description: &str,
    message: String,
) {
    let g = d.generation;
    set(
        &mut r.conditions,
        CONDITION_DRIFTED,
        ConditionStatus::True,
        drifted_reason,
        description,
        g,
    );
    if leaves_ready(d) {
        r.phase = Phase::Degraded;
        set_ready(&mut r.conditions, ReadyReason::Drifted, description, g);
    }
    r.message = message;
}

/// The deployment is Degraded because an upgrade was rolled back.
fn rolled_back(d: &Deployment) -> bool {
    d.failure
        .as_ref()
        .is_some_and(|f| f.generation == d.generation && f.remedy == Remedy::RollBack)
        || ready_reason(&d.conditions) == Some(ReadyReason::RolledBack)
}

/// Once the live objects match again, a failed correction is resolved.
fn clear_correction_failure(d: &Deployment, r: &mut PassResult) {
    if d.failure
        .as_ref()
        .is_some_and(|f| f.origin == FailureOrigin::DriftCorrection)
    {
        r.failure = None;
        r.last_error = None;
        r.attempts = 0;
    }
}

/// Applies the health a resync read to the status. A deployment whose objects
/// stopped being healthy is Degraded (and Ready again when they recover); one
/// that is Degraded because an upgrade was rolled back stays so until it changes.
/// Returns the event to record when the phase moved.
fn settle_health(
    d: &Deployment,
    r: &mut PassResult,
    health: Vec<ObjectHealth>,
) -> Option<(&'static str, String)> {
    let rolled_back = rolled_back(d);
    let total = health.len();
    let unhealthy: Vec<String> = health
        .iter()
        .filter(|h| h.health != caelus_engine::HEALTHY)
        .map(|h| {
            if h.message.is_empty() {
                format!("{}/{} {}", h.kind, h.name, h.health)
            } else {
                format!("{}/{} {} ({})", h.kind, h.name, h.health, h.message)
            }
        })
        .collect();
    r.object_health = health;
    if rolled_back {
        return None;
    }
    let g = d.generation;
    let degraded_message = || {
        format!(
            "{} of {total} objects healthy: {}",
            total - unhealthy.len(),
            unhealthy.join("; ")
        )
    };
    match (d.phase, unhealthy.is_empty()) {
        (Phase::Ready, false) => {
            let message = degraded_message();
            r.phase = Phase::Degraded;
            r.message = message.clone();
            set_ready(&mut r.conditions, ReadyReason::Unhealthy, &message, g);
            Some(("health.degraded", message))
        }
        (Phase::Degraded, true) => {
            let message = format!("All {total} objects healthy again");
            r.phase = Phase::Ready;
            r.message = message.clone();
            set_ready(&mut r.conditions, ReadyReason::Healthy, &message, g);
            Some(("health.recovered", message))
        }
        (Phase::Degraded, false) => {
            r.message = degraded_message();
            None
        }
        _ => None,
    }
}
