//! One reconcile pass of one deployment: classify, then exactly one action.

use crate::Reconciler;
use crate::status::{self, stalled_generation, with};
use caelus_core::reconcile::{Action, DriftResponse, Facts, action_for, classify, drift_response};
use caelus_core::render_policy::{RenderCapabilities, check_rendered, describe};
use caelus_core::status::{
    CONDITION_DRIFTED, CONDITION_READY, CONDITION_RECONCILING, CONDITION_STALLED, ConditionStatus,
    DesiredState, ObjectHealth, Phase,
};
use caelus_engine::{
    ApplyRequest, Drift, EngineError, NamespaceTarget, ObjectRef, Progress, UninstallRequest,
    UninstallStatus,
};
use caelus_helm::{ChartReference, HelmError, HookEvent, RenderRequest, Rendered};
use caelus_store::deployments::{self, Deployment};
use caelus_store::events::{self, NewEvent};
use caelus_store::queue::{self, Lease, PassResult};
use caelus_store::revisions::{self, NewRevision, Revision, RevisionOutcome};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{StoreError, now_ms};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("deployment {0} refers to a template version that does not exist")]
    MissingVersion(String),
}

impl From<sqlx::Error> for PassError {
    fn from(e: sqlx::Error) -> Self {
        PassError::Store(e.into())
    }
}

type PassResultOf<T> = Result<T, PassError>;

const SYSTEM: &str = "system";

/// Why a deploy attempt did not succeed.
enum Failure {
    /// Retrying cannot help until the desired state changes (policy, render).
    Stall {
        reason: &'static str,
        message: String,
    },
    /// Worth retrying with backoff.
    Retry {
        reason: &'static str,
        message: String,
        health: Option<Vec<ObjectHealth>>,
    },
}

fn helm_failure(e: HelmError) -> Failure {
    if matches!(
        e,
        HelmError::Render { .. } | HelmError::BadManifest { .. } | HelmError::InvalidValues { .. }
    ) {
        Failure::Stall {
            reason: "RenderFailed",
            message: e.to_string(),
        }
    } else {
        Failure::Retry {
            reason: "ChartUnavailable",
            message: e.to_string(),
            health: None,
        }
    }
}

fn engine_failure(e: EngineError) -> Failure {
    let reason = match &e {
        EngineError::HookFailed { .. } => "HookFailed",
        EngineError::HealthTimeout { .. } | EngineError::Unhealthy { .. } => "HealthCheckFailed",
        EngineError::Policy(_) => "PolicyViolation",
        _ => "ApplyFailed",
    };
    if let EngineError::Policy(m) = &e {
        return Failure::Stall {
            reason,
            message: m.clone(),
        };
    }
    Failure::Retry {
        reason,
        health: e.health().map(<[ObjectHealth]>::to_vec),
        message: e.to_string(),
    }
}

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

fn inventory_json(inventory: &[ObjectRef]) -> Value {
    serde_json::to_value(inventory).unwrap_or_else(|_| json!([]))
}

fn inventory_from(revision: Option<&Revision>) -> Vec<ObjectRef> {
    revision
        .and_then(|r| serde_json::from_value(r.inventory.clone()).ok())
        .unwrap_or_default()
}

/// Everything one pass reads before it acts.
struct Loaded {
    d: Deployment,
    version: TemplateVersion,
    last_deployed: Option<Revision>,
}

impl Reconciler {
    pub(crate) async fn pass(self: Arc<Self>, lease: Lease) {
        let span =
            tracing::info_span!("reconcile", uid = %lease.uid, generation = lease.generation);
        async move {
            // Dropped with the pass, even if the pass itself is aborted.
            let _renewer = AbortOnDrop(self.spawn_renewer(lease.clone()));
            let started = Instant::now();
            let result = self.reconcile(&lease).await;
            let seconds = started.elapsed().as_secs_f64();
            let metrics = caelus_metrics::global();
            match &result {
                Ok(outcome) => metrics.reconcile_finished(outcome, seconds),
                Err(PassError::Store(StoreError::LeaseLost(_))) => metrics.reconcile_finished("lease-lost", seconds),
                Err(_) => metrics.reconcile_finished("error", seconds),
            }
            match result {
                Ok(outcome) => {
                    tracing::info!(outcome, ms = started.elapsed().as_millis() as u64, "pass finished")
                }
                Err(PassError::Store(StoreError::LeaseLost(_))) => {
                    tracing::warn!("lease lost during the pass; another worker owns this deployment now")
                }
                Err(e) => {
                    tracing::error!(error = %e, "pass could not record its outcome; releasing the lease");
                    let _ = queue::release(&self.store, &lease).await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Renews the lease every third of its length while the pass runs.
    fn spawn_renewer(self: &Arc<Self>, lease: Lease) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let every = me.config.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let expires = now_ms() + me.config.lease.as_millis() as i64;
                if let Err(e) = queue::renew(&me.store, &lease, expires).await {
                    tracing::warn!(error = %e, "lease renewal failed");
                    return;
                }
            }
        })
    }

    async fn load(&self, lease: &Lease) -> PassResultOf<Loaded> {
        let mut c = self.store.conn().await?;
        let d = deployments::get(&mut c, &lease.uid, None)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("deployment {}", lease.uid)))?;
        let version = templates::get_by_id(&mut c, &d.template_version_id)
            .await?
            .ok_or_else(|| PassError::MissingVersion(d.uid.clone()))?;
        let last_deployed = revisions::last_deployed(&mut c, &d.uid).await?;
        Ok(Loaded {
            d,
            version,
            last_deployed,
        })
    }

    async fn reconcile(&self, lease: &Lease) -> PassResultOf<&'static str> {
        let l = self.load(lease).await?;
        let facts = Facts {
            desired: l.d.desired_state,
            generation: l.d.generation,
            observed_generation: l.d.observed_generation,
            phase: l.d.phase,
            has_deployed_revision: l.last_deployed.is_some(),
            last_pass_failed: l.d.last_error.is_some() && l.d.observed_generation == l.d.generation,
            stalled_generation: stalled_generation(&l.d.conditions),
        };
        let state = classify(&facts);
        tracing::debug!(?state, "classified");
        match action_for(state) {
            Action::None => {
                self.finish_unchanged(lease, &l.d, None).await?;
                Ok("idle")
            }
            Action::Uninstall => self.uninstall(lease, l).await,
            Action::Install | Action::Upgrade | Action::Retry => self.deploy(lease, l).await,
            Action::CheckDrift => self.check_drift(lease, l).await,
        }
    }

    /// Writes the row back as it is, with a new due time.
    async fn finish_unchanged(
        &self,
        lease: &Lease,
        d: &Deployment,
        next_due: Option<i64>,
    ) -> PassResultOf<()> {
        let mut c = self.store.conn().await?;
        queue::finish(&mut c, lease, &unchanged(d, next_due), now_ms()).await?;
        Ok(())
    }

    async fn event(
        &self,
        conn: &mut caelus_store::Conn,
        d: &Deployment,
        action: &str,
        message: String,
        details: Value,
    ) -> PassResultOf<()> {
        events::insert(
            conn,
            &NewEvent {
                deployment_uid: Some(&d.uid),
                tenant: Some(&d.tenant),
                subject: format!("deployment/{}", d.uid),
                action,
                actor: SYSTEM,
                message,
                details,
            },
            now_ms(),
        )
        .await?;
        Ok(())
    }

    async fn chart(&self, version: &TemplateVersion) -> Result<caelus_helm::Chart, HelmError> {
        let reference: ChartReference = version.chart_ref.parse()?;
        self.helm.pull(&reference).await
    }

    async fn render(
        &self,
        d: &Deployment,
        version: &TemplateVersion,
        values: &Value,
        revision: i64,
    ) -> Result<Arc<Rendered>, HelmError> {
        let chart = self.chart(version).await?;
        self.helm
            .render(
                &chart,
                &RenderRequest::for_revision(
                    values.clone(),
                    &d.release_name,
                    &d.namespace_name,
                    revision,
                    &d.uid,
                ),
            )
            .await
    }

    /// The revision of this generation: created by the first attempt, reused by retries.
    async fn revision_for(&self, lease: &Lease, d: &Deployment, kind: &str) -> PassResultOf<i64> {
        let mut tx = self.store.begin().await?;
        queue::hold(&mut tx, lease).await?;
        let number = match revisions::for_generation(&mut tx, &d.uid, d.generation).await? {
            Some(r) => r.number,
            None => {
                let requested_by = self.requested_by(&mut tx, d).await?;
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

    /// Who asked for this generation: the actor of the newest API event.
    async fn requested_by(
        &self,
        conn: &mut caelus_store::Conn,
        d: &Deployment,
    ) -> PassResultOf<String> {
        Ok(events::latest_actor(conn, &d.uid, SYSTEM)
            .await?
            .unwrap_or_else(|| SYSTEM.to_string()))
    }

    async fn deploy(&self, lease: &Lease, l: Loaded) -> PassResultOf<&'static str> {
        let Loaded {
            d,
            version,
            last_deployed,
        } = l;
        let upgrading = last_deployed.is_some();
        // A generation made by an explicit rollback restores an earlier revision.
        let rolling_back = d.rollback_to.is_some() && upgrading;
        let (phase, kind) = match (rolling_back, upgrading) {
            (true, _) => (Phase::RollingBack, "rollback"),
            (false, true) => (Phase::Upgrading, "upgrade"),
            (false, false) => (Phase::Installing, "install"),
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

        let rendered = match self.render(&d, &version, &d.user_values, number).await {
            Ok(r) => r,
            Err(e) => {
                return self
                    .record_failure(
                        lease,
                        &d,
                        number,
                        last_deployed.as_ref(),
                        &[],
                        helm_failure(e),
                    )
                    .await;
            }
        };
        let mut objects = rendered.crds.clone();
        objects.extend(rendered.objects.iter().cloned());
        let caps = RenderCapabilities {
            allow_cluster_scoped: version.capabilities.allow_cluster_scoped,
        };
        let violations = check_rendered(&objects, &d.namespace_name, &caps);
        if !violations.is_empty() {
            let failure = Failure::Stall {
                reason: "PolicyViolation",
                message: format!(
                    "the rendered chart is refused by policy: {}",
                    describe(&violations)
                ),
            };
            return self
                .record_failure(lease, &d, number, last_deployed.as_ref(), &[], failure)
                .await;
        }

        let target = NamespaceTarget {
            name: d.namespace_name.clone(),
            deployment_uid: d.uid.clone(),
            pod_security: version.capabilities.pod_security,
        };
        if let Err(e) = self.engine.ensure_namespace(&target).await {
            return self
                .record_failure(
                    lease,
                    &d,
                    number,
                    last_deployed.as_ref(),
                    &[],
                    engine_failure(e),
                )
                .await;
        }
        let new_inventory = caelus_engine::inventory_of(&objects).unwrap_or_default();
        let (pre, post) = match kind {
            "rollback" => (HookEvent::PreRollback, HookEvent::PostRollback),
            "upgrade" => (HookEvent::PreUpgrade, HookEvent::PostUpgrade),
            _ => (HookEvent::PreInstall, HookEvent::PostInstall),
        };
        let request = ApplyRequest {
            namespace: d.namespace_name.clone(),
            deployment_uid: d.uid.clone(),
            objects,
            hooks: rendered.hooks.clone(),
            pre_event: pre,
            post_event: post,
            previous_inventory: inventory_from(last_deployed.as_ref()),
            health_timeout: Duration::from_secs(u64::from(
                version.capabilities.health_timeout_seconds,
            )),
        };
        let result = self
            .apply_with_progress(lease, &d, phase, number, request)
            .await?;
        match result {
            Ok(outcome) => {
                let mut tx = self.store.begin().await?;
                queue::hold(&mut tx, lease).await?;
                revisions::finish(
                    &mut tx,
                    &d.uid,
                    number,
                    &RevisionOutcome {
                        outcome: "deployed",
                        manifest_hash: Some(&rendered.manifest_hash),
                        inventory: &inventory_json(&outcome.inventory),
                        error: None,
                        finished_at: now_ms(),
                    },
                )
                .await?;
                let message = format!(
                    "Revision {number} ({} {}) deployed: {} objects healthy",
                    d.product_slug,
                    version.version,
                    outcome.health.len()
                );
                self.event(
                    &mut tx,
                    &d,
                    "reconcile.deployed",
                    message.clone(),
                    json!({"revision": number, "generation": d.generation, "pruned": outcome.pruned.len(), "kept": outcome.kept.len()}),
                )
                .await?;
                let g = d.generation;
                let mut conditions = with(
                    d.conditions.clone(),
                    CONDITION_READY,
                    ConditionStatus::True,
                    "Deployed",
                    &message,
                    g,
                );
                conditions = with(
                    conditions,
                    CONDITION_RECONCILING,
                    ConditionStatus::False,
                    "Succeeded",
                    "",
                    g,
                );
                conditions = with(
                    conditions,
                    CONDITION_STALLED,
                    ConditionStatus::False,
                    "Succeeded",
                    "",
                    g,
                );
                conditions = with(
                    conditions,
                    CONDITION_DRIFTED,
                    ConditionStatus::False,
                    "InSync",
                    "",
                    g,
                );
                let result = PassResult {
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
                };
                queue::finish(&mut tx, lease, &result, now_ms()).await?;
                tx.commit().await?;
                Ok(if upgrading { "upgraded" } else { "installed" })
            }
            Err(e) => {
                let failure = engine_failure(e);
                match (&last_deployed, &failure) {
                    // A failed upgrade goes back to the last good revision when the
                    // template says so; a failed rollback does not roll back again.
                    (Some(last), Failure::Retry { .. })
                        if kind == "upgrade" && version.capabilities.rollback_on_failure =>
                    {
                        self.roll_back(lease, &d, &version, number, last, &new_inventory, failure)
                            .await
                    }
                    _ => {
                        self.record_failure(
                            lease,
                            &d,
                            number,
                            last_deployed.as_ref(),
                            &new_inventory,
                            failure,
                        )
                        .await
                    }
                }
            }
        }
    }

    /// Runs one engine apply while its progress is written to the status, then
    /// records the hooks that ran on the event timeline.
    async fn apply_with_progress(
        &self,
        lease: &Lease,
        d: &Deployment,
        phase: Phase,
        number: i64,
        request: ApplyRequest,
    ) -> PassResultOf<Result<caelus_engine::ApplyOutcome, EngineError>> {
        let progress = ProgressWriter::start(self.store.clone(), lease.clone(), phase, number);
        let sender = progress.sender();
        let result = self.engine.apply(request, move |p| sender.send(p)).await;
        let hooks_done = progress.stop().await;
        if !hooks_done.is_empty() {
            let mut tx = self.store.begin().await?;
            queue::hold(&mut tx, lease).await?;
            for hook in &hooks_done {
                self.event(
                    &mut tx,
                    d,
                    "hook.succeeded",
                    format!("revision {number}: {hook}"),
                    json!({"revision": number}),
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(result)
    }

    /// After a failed upgrade to revision `failed`: re-apply the last good revision
    /// with pre/post-rollback hooks. The deployment ends Degraded, saying what failed
    /// and that it was rolled back; the failed revision is marked failed.
    #[allow(clippy::too_many_arguments)]
    async fn roll_back(
        &self,
        lease: &Lease,
        d: &Deployment,
        target_version: &TemplateVersion,
        failed: i64,
        last: &Revision,
        attempted: &[ObjectRef],
        failure: Failure,
    ) -> PassResultOf<&'static str> {
        let (reason, cause, health) = match failure {
            Failure::Retry {
                reason,
                message,
                health,
            } => (reason, message, health),
            Failure::Stall { reason, message } => (reason, message, None),
        };
        let restore_version = {
            let mut c = self.store.conn().await?;
            templates::get_by_id(&mut c, &last.template_version_id)
                .await?
                .ok_or_else(|| PassError::MissingVersion(d.uid.clone()))?
        };
        queue::report_progress(
            &self.store,
            lease,
            Phase::RollingBack,
            &format!(
                "Revision {failed} failed ({reason}); rolling back to revision {}",
                last.number
            ),
            health.as_deref(),
            now_ms(),
        )
        .await?;
        let rollback = async {
            let rendered = self
                .render(d, &restore_version, &last.user_values, last.number)
                .await
                .map_err(|e| e.to_string())?;
            let mut objects = rendered.crds.clone();
            objects.extend(rendered.objects.iter().cloned());
            // Prune what the failed revision added: the previous inventory is the union.
            let mut previous = inventory_from(Some(last));
            for o in attempted {
                if !previous.contains(o) {
                    previous.push(o.clone());
                }
            }
            let request = ApplyRequest {
                namespace: d.namespace_name.clone(),
                deployment_uid: d.uid.clone(),
                objects,
                hooks: rendered.hooks.clone(),
                pre_event: HookEvent::PreRollback,
                post_event: HookEvent::PostRollback,
                previous_inventory: previous,
                health_timeout: Duration::from_secs(u64::from(
                    restore_version.capabilities.health_timeout_seconds,
                )),
            };
            self.apply_with_progress(lease, d, Phase::RollingBack, last.number, request)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
        .await;
        let outcome = match rollback {
            Ok(outcome) => outcome,
            Err(rollback_error) => {
                let failure = Failure::Retry {
                    reason,
                    message: format!(
                        "{cause}; rolling back to revision {} also failed: {rollback_error}",
                        last.number
                    ),
                    health,
                };
                return self
                    .record_failure(lease, d, failed, Some(last), attempted, failure)
                    .await;
            }
        };
        let g = d.generation;
        let message = format!(
            "Upgrade to {} {} (revision {failed}) failed: {cause}. Rolled back to revision {} ({} {}).",
            d.product_slug,
            target_version.version,
            last.number,
            d.product_slug,
            restore_version.version
        );
        let mut tx = self.store.begin().await?;
        queue::hold(&mut tx, lease).await?;
        revisions::finish(
            &mut tx,
            &d.uid,
            failed,
            &RevisionOutcome {
                outcome: "failed",
                manifest_hash: None,
                inventory: &inventory_json(attempted),
                error: Some(&cause),
                finished_at: now_ms(),
            },
        )
        .await?;
        self.event(
            &mut tx,
            d,
            "reconcile.rolled-back",
            message.clone(),
            json!({"failed_revision": failed, "restored_revision": last.number, "reason": reason}),
        )
        .await?;
        let mut conditions = with(
            d.conditions.clone(),
            CONDITION_READY,
            ConditionStatus::False,
            "RolledBack",
            &message,
            g,
        );
        conditions = with(
            conditions,
            CONDITION_RECONCILING,
            ConditionStatus::False,
            "RolledBack",
            "",
            g,
        );
        conditions = with(
            conditions,
            CONDITION_STALLED,
            ConditionStatus::False,
            "RolledBack",
            "",
            g,
        );
        let result = PassResult {
            phase: Phase::Degraded,
            message,
            conditions,
            object_health: outcome.health,
            observed_generation: g,
            current_revision: Some(last.number),
            last_error: Some(cause),
            attempts: 0,
            next_due: Some(self.resync_at()),
            deleted: false,
        };
        queue::finish(&mut tx, lease, &result, now_ms()).await?;
        tx.commit().await?;
        Ok("rolled-back")
    }

    /// Records a failed attempt: the revision failed, the deployment Failed, and
    /// either a retry after backoff or (stalled) no retry until the next change.
    async fn record_failure(
        &self,
        lease: &Lease,
        d: &Deployment,
        number: i64,
        last_deployed: Option<&Revision>,
        attempted: &[ObjectRef],
        failure: Failure,
    ) -> PassResultOf<&'static str> {
        let g = d.generation;
        let attempts = if d.observed_generation == g {
            d.attempts + 1
        } else {
            1
        };
        // What may now exist in the cluster: the previous inventory plus what this
        // attempt tried to apply, so a later pass can still prune all of it.
        let mut inventory = inventory_from(last_deployed);
        for o in attempted {
            if !inventory.contains(o) {
                inventory.push(o.clone());
            }
        }
        let (reason, message, health, next_due, stalled, outcome) = match failure {
            Failure::Stall { reason, message } => (reason, message, None, None, true, "stalled"),
            Failure::Retry {
                reason,
                message,
                health,
            } => {
                let at = self.retry_at(attempts);
                (reason, message, health, Some(at), false, "failed")
            }
        };
        let mut tx = self.store.begin().await?;
        queue::hold(&mut tx, lease).await?;
        revisions::finish(
            &mut tx,
            &d.uid,
            number,
            &RevisionOutcome {
                outcome: "failed",
                manifest_hash: None,
                inventory: &inventory_json(&inventory),
                error: Some(&message),
                finished_at: now_ms(),
            },
        )
        .await?;
        let detail = match next_due {
            Some(at) => format!(
                "attempt {attempts} failed ({reason}): {message}; retrying at {}",
                rfc3339(at)
            ),
            None => format!("{reason}: {message}; waiting for a change to the deployment"),
        };
        self.event(
            &mut tx,
            d,
            if stalled {
                "reconcile.stalled"
            } else {
                "reconcile.failed"
            },
            detail,
            json!({"revision": number, "generation": g, "attempts": attempts, "reason": reason}),
        )
        .await?;
        let mut conditions = with(
            d.conditions.clone(),
            CONDITION_READY,
            ConditionStatus::False,
            reason,
            &message,
            g,
        );
        conditions = with(
            conditions,
            CONDITION_STALLED,
            if stalled {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason,
            if stalled { &message } else { "" },
            g,
        );
        conditions = with(
            conditions,
            CONDITION_RECONCILING,
            if stalled {
                ConditionStatus::False
            } else {
                ConditionStatus::True
            },
            if stalled { "Stalled" } else { "RetryScheduled" },
            "",
            g,
        );
        let result = PassResult {
            phase: Phase::Failed,
            message: message.clone(),
            conditions,
            object_health: health.unwrap_or_else(|| d.object_health.clone()),
            observed_generation: g,
            current_revision: last_deployed.map(|r| r.number),
            last_error: Some(message),
            attempts: if stalled { 0 } else { attempts },
            next_due,
            deleted: false,
        };
        queue::finish(&mut tx, lease, &result, now_ms()).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn check_drift(&self, lease: &Lease, l: Loaded) -> PassResultOf<&'static str> {
        let d = l.d;
        let last = l.last_deployed.expect("classified as deployed");
        let mode = l.version.capabilities.drift_mode;
        if mode == caelus_core::template::DriftMode::Off {
            self.finish_unchanged(lease, &d, Some(self.resync_at()))
                .await?;
            return Ok("in-sync");
        }
        let version = if last.template_version_id == l.version.id {
            l.version
        } else {
            let mut c = self.store.conn().await?;
            templates::get_by_id(&mut c, &last.template_version_id)
                .await?
                .ok_or_else(|| PassError::MissingVersion(d.uid.clone()))?
        };
        let rendered = match self
            .render(&d, &version, &last.user_values, last.number)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Cannot know what was applied: try again later without touching anything.
                tracing::warn!(error = %e, "cannot render the deployed revision for a drift check");
                self.finish_unchanged(lease, &d, Some(self.retry_at(1)))
                    .await?;
                return Ok("drift-check-deferred");
            }
        };
        let mut objects = rendered.crds.clone();
        objects.extend(rendered.objects.iter().cloned());
        let (drifts, health) = match self.engine.inspect_live(&d.namespace_name, &objects).await {
            Ok(live) => (live.drifts, live.health),
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
                if status::is_true(&d.conditions, CONDITION_DRIFTED) {
                    r.conditions = with(
                        r.conditions,
                        CONDITION_DRIFTED,
                        ConditionStatus::False,
                        "InSync",
                        "",
                        g,
                    );
                }
                let change = settle_health(&d, &mut r, health);
                let mut tx = self.store.begin().await?;
                queue::hold(&mut tx, lease).await?;
                if let Some((action, message)) = change {
                    self.event(&mut tx, &d, action, message, json!({"generation": g}))
                        .await?;
                }
                queue::finish(&mut tx, lease, &r, now_ms()).await?;
                tx.commit().await?;
                Ok("in-sync")
            }
            DriftResponse::Report => {
                let description = describe_drift(&drifts);
                let mut tx = self.store.begin().await?;
                queue::hold(&mut tx, lease).await?;
                let already = d.conditions.iter().any(|c| {
                    c.type_ == CONDITION_DRIFTED
                        && c.status == ConditionStatus::True
                        && c.message == description
                });
                if !already {
                    self.event(
                        &mut tx,
                        &d,
                        "drift.detected",
                        format!("drift found (mode warn, not corrected): {description}"),
                        json!({"objects": drifts.len()}),
                    )
                    .await?;
                }
                let mut r = unchanged(&d, Some(self.resync_at()));
                r.object_health = health;
                r.conditions = with(
                    r.conditions,
                    CONDITION_DRIFTED,
                    ConditionStatus::True,
                    "DriftDetected",
                    &description,
                    g,
                );
                r.message = format!("Drifted (not corrected, drift mode warn): {description}");
                queue::finish(&mut tx, lease, &r, now_ms()).await?;
                tx.commit().await?;
                Ok("drift-reported")
            }
            DriftResponse::Correct => {
                let description = describe_drift(&drifts);
                {
                    let mut tx = self.store.begin().await?;
                    queue::hold(&mut tx, lease).await?;
                    self.event(
                        &mut tx,
                        &d,
                        "drift.detected",
                        format!("drift found: {description}"),
                        json!({"objects": drifts.len()}),
                    )
                    .await?;
                    tx.commit().await?;
                }
                let request = ApplyRequest {
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
                };
                match self.engine.apply(request, |_| {}).await {
                    Ok(outcome) => {
                        let mut tx = self.store.begin().await?;
                        queue::hold(&mut tx, lease).await?;
                        self.event(
                            &mut tx,
                            &d,
                            "drift.corrected",
                            format!("re-applied revision {}: {description}", last.number),
                            json!({"revision": last.number}),
                        )
                        .await?;
                        let mut r = unchanged(&d, Some(self.resync_at()));
                        r.conditions = with(
                            r.conditions,
                            CONDITION_DRIFTED,
                            ConditionStatus::False,
                            "Corrected",
                            &description,
                            g,
                        );
                        r.object_health = outcome.health;
                        queue::finish(&mut tx, lease, &r, now_ms()).await?;
                        tx.commit().await?;
                        caelus_metrics::global().drift_corrected();
                        Ok("drift-corrected")
                    }
                    Err(e) => {
                        let mut tx = self.store.begin().await?;
                        queue::hold(&mut tx, lease).await?;
                        let attempts = d.attempts + 1;
                        let at = self.retry_at(attempts);
                        self.event(
                            &mut tx,
                            &d,
                            "drift.correction-failed",
                            format!("could not correct drift: {e}"),
                            json!({"attempts": attempts}),
                        )
                        .await?;
                        let mut r = unchanged(&d, Some(at));
                        r.conditions = with(
                            r.conditions,
                            CONDITION_DRIFTED,
                            ConditionStatus::True,
                            "CorrectionFailed",
                            &description,
                            g,
                        );
                        r.attempts = attempts;
                        r.last_error = Some(e.to_string());
                        queue::finish(&mut tx, lease, &r, now_ms()).await?;
                        tx.commit().await?;
                        Ok("drift-correction-failed")
                    }
                }
            }
        }
    }

    async fn uninstall(&self, lease: &Lease, l: Loaded) -> PassResultOf<&'static str> {
        let d = l.d;
        let newest = {
            let mut c = self.store.conn().await?;
            revisions::list(&mut c, &d.uid, None, 1)
                .await?
                .into_iter()
                .next()
        };
        if d.phase == Phase::Pending
            || d.phase == Phase::Deleting && newest.is_none() && d.observed_generation == 0
        {
            // Never applied anything: nothing to remove, but the namespace may exist.
        }
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
            Some(last) => {
                let version = {
                    let mut c = self.store.conn().await?;
                    templates::get_by_id(&mut c, &last.template_version_id).await?
                };
                match version {
                    Some(v) => match self.render(&d, &v, &last.user_values, last.number).await {
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
                }
            }
            None => Vec::new(),
        };
        let mut inventory = inventory_from(l.last_deployed.as_ref());
        for o in inventory_from(newest.as_ref()) {
            if !inventory.contains(&o) {
                inventory.push(o);
            }
        }
        let request = UninstallRequest {
            namespace: d.namespace_name.clone(),
            deployment_uid: d.uid.clone(),
            inventory,
            hooks,
            hook_timeout: Duration::from_secs(u64::from(
                l.version.capabilities.health_timeout_seconds,
            )),
        };
        match self.engine.uninstall(&request).await {
            Ok(UninstallStatus::Gone) => {
                let mut tx = self.store.begin().await?;
                queue::hold(&mut tx, lease).await?;
                self.event(
                    &mut tx,
                    &d,
                    "reconcile.deleted",
                    "namespace and objects removed".into(),
                    json!({"generation": d.generation}),
                )
                .await?;
                let g = d.generation;
                let conditions = with(
                    d.conditions.clone(),
                    CONDITION_READY,
                    ConditionStatus::False,
                    "Deleted",
                    "",
                    g,
                );
                let conditions = with(
                    conditions,
                    CONDITION_RECONCILING,
                    ConditionStatus::False,
                    "Deleted",
                    "",
                    g,
                );
                let result = PassResult {
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
                };
                queue::finish(&mut tx, lease, &result, now_ms()).await?;
                tx.commit().await?;
                Ok("deleted")
            }
            Ok(UninstallStatus::Terminating { message }) => {
                let mut tx = self.store.begin().await?;
                queue::hold(&mut tx, lease).await?;
                if d.phase != Phase::DeletionBlocked || d.message != message {
                    self.event(
                        &mut tx,
                        &d,
                        "reconcile.deletion-blocked",
                        message.clone(),
                        json!({}),
                    )
                    .await?;
                }
                let g = d.generation;
                let result = PassResult {
                    phase: Phase::DeletionBlocked,
                    message: format!(
                        "Namespace {} is still terminating: {message}",
                        d.namespace_name
                    ),
                    conditions: with(
                        d.conditions.clone(),
                        CONDITION_RECONCILING,
                        ConditionStatus::True,
                        "NamespaceTerminating",
                        &message,
                        g,
                    ),
                    object_health: Vec::new(),
                    observed_generation: g,
                    current_revision: d.current_revision,
                    last_error: None,
                    attempts: 0,
                    next_due: Some(now_ms() + self.config.deletion_recheck.as_millis() as i64),
                    deleted: false,
                };
                queue::finish(&mut tx, lease, &result, now_ms()).await?;
                tx.commit().await?;
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
        let mut tx = self.store.begin().await?;
        queue::hold(&mut tx, lease).await?;
        self.event(
            &mut tx,
            d,
            "reconcile.failed",
            format!(
                "deletion attempt {attempts} failed: {message}; retrying at {}",
                rfc3339(at)
            ),
            json!({"attempts": attempts}),
        )
        .await?;
        let mut r = unchanged(d, Some(at));
        r.phase = Phase::Deleting;
        r.message = message.clone();
        r.last_error = Some(message);
        r.attempts = attempts;
        queue::finish(&mut tx, lease, &r, now_ms()).await?;
        tx.commit().await?;
        Ok("deletion-failed")
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
    let rolled_back = d
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_READY && c.reason == "RolledBack");
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
            r.conditions = with(
                r.conditions.clone(),
                CONDITION_READY,
                ConditionStatus::False,
                "Unhealthy",
                &message,
                g,
            );
            Some(("health.degraded", message))
        }
        (Phase::Degraded, true) => {
            let message = format!("All {total} objects healthy again");
            r.phase = Phase::Ready;
            r.message = message.clone();
            r.conditions = with(
                r.conditions.clone(),
                CONDITION_READY,
                ConditionStatus::True,
                "Healthy",
                &message,
                g,
            );
            Some(("health.recovered", message))
        }
        (Phase::Degraded, false) => {
            r.message = degraded_message();
            None
        }
        _ => None,
    }
}

/// The deployment's current status, kept as it is.
fn unchanged(d: &Deployment, next_due: Option<i64>) -> PassResult {
    PassResult {
        phase: d.phase,
        message: d.message.clone(),
        conditions: d.conditions.clone(),
        object_health: d.object_health.clone(),
        observed_generation: d.observed_generation,
        current_revision: d.current_revision,
        last_error: d.last_error.clone(),
        attempts: d.attempts,
        next_due,
        deleted: d.desired_state == DesiredState::Absent && d.phase == Phase::Deleted,
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Turns the engine's progress callbacks into throttled status writes, so
/// `caelus deployment show --wait` sees "objects ready x/y" while a pass runs.
struct ProgressWriter {
    tx: tokio::sync::mpsc::UnboundedSender<Progress>,
    task: tokio::task::JoinHandle<()>,
    /// Hooks that completed, in order, for the event timeline.
    hooks: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ProgressSender {
    tx: tokio::sync::mpsc::UnboundedSender<Progress>,
    hooks: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ProgressSender {
    fn send(&self, p: Progress) {
        // Completed hooks are recorded here, synchronously, so none is lost
        // when the status writer stops.
        if let Progress::HookSucceeded { event, kind, name } = &p
            && let Ok(mut hooks) = self.hooks.lock()
        {
            hooks.push(format!("{} hook {kind}/{name} succeeded", event.as_str()));
        }
        let _ = self.tx.send(p);
    }
}

impl ProgressWriter {
    fn start(
        store: caelus_store::Store,
        lease: Lease,
        phase: Phase,
        revision: i64,
    ) -> ProgressWriter {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let hooks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn(async move {
            let mut last_write = Instant::now() - Duration::from_secs(1);
            let mut pending: Option<String> = None;
            loop {
                let next = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
                match next {
                    Ok(Some(p)) => {
                        let message = match p {
                            Progress::HookStarted { event, kind, name } => format!(
                                "Revision {revision}: running {} hook {kind}/{name}",
                                event.as_str()
                            ),
                            Progress::HookSucceeded { event, kind, name } => format!(
                                "Revision {revision}: {} hook {kind}/{name} succeeded",
                                event.as_str()
                            ),
                            Progress::Applied { done, total, .. } => {
                                format!("Revision {revision}: applied {done}/{total} objects")
                            }
                            Progress::Pruned { object } => format!(
                                "Revision {revision}: pruned {}/{}",
                                object.kind, object.name
                            ),
                            Progress::Kept { object } => format!(
                                "Revision {revision}: kept {}/{} (resource-policy keep)",
                                object.kind, object.name
                            ),
                            Progress::Health { ready, total } => {
                                format!("Revision {revision}: objects ready {ready}/{total}")
                            }
                        };
                        pending = Some(message);
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
                if let Some(m) = &pending
                    && last_write.elapsed() >= Duration::from_millis(300)
                {
                    if queue::report_progress(&store, &lease, phase, m, None, now_ms())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    pending = None;
                    last_write = Instant::now();
                }
            }
        });
        ProgressWriter { tx, task, hooks }
    }

    fn sender(&self) -> ProgressSender {
        ProgressSender {
            tx: self.tx.clone(),
            hooks: self.hooks.clone(),
        }
    }

    /// Stops writing; returns the hooks that completed, in order.
    async fn stop(self) -> Vec<String> {
        drop(self.tx);
        // The engine's callback may still hold a sender clone; don't wait for it.
        self.task.abort();
        let _ = self.task.await;
        // The task may have been aborted before draining the last messages.
        self.hooks.lock().map(|h| h.clone()).unwrap_or_default()
    }
}
