//! The one way a pass writes what it did: the revision's outcome, the
//! timeline events and the pass result, in one transaction fenced by the
//! lease, so a worker that lost its lease writes nothing at all.

use crate::Reconciler;
use crate::pass::{PassResultOf, SYSTEM};
use caelus_core::status::{Condition, Phase};
use caelus_store::deployments::Deployment;
use caelus_store::events::{self, NewEvent};
use caelus_store::now_ms;
use caelus_store::queue::{self, Lease, PassResult};
use caelus_store::revisions::{self, FinishedRevision};
use serde_json::Value;

/// What one fenced write contains; each part is optional.
#[derive(Default)]
pub(crate) struct Commit<'a> {
    revision: Option<(i64, FinishedRevision<'a>)>,
    notes: Option<(i64, Option<String>)>,
    manifest: Option<(i64, Vec<u8>)>,
    events: Vec<(&'static str, String, Value)>,
    status: Option<(Phase, String, Vec<Condition>)>,
    result: Option<PassResult>,
}

impl<'a> Commit<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records how revision `number` ended.
    pub fn revision(mut self, number: i64, outcome: FinishedRevision<'a>) -> Self {
        self.revision = Some((number, outcome));
        self
    }

    /// Records the chart's rendered NOTES.txt on revision `number`.
    pub fn notes(mut self, number: i64, notes: Option<String>) -> Self {
        self.notes = Some((number, notes));
        self
    }

    /// Records the manifest revision `number` applied (serialised), so later
    /// passes read what was applied instead of rendering the chart again.
    pub fn manifest(mut self, number: i64, manifest: Vec<u8>) -> Self {
        self.manifest = Some((number, manifest));
        self
    }

    /// Appends a system event to the deployment's timeline.
    pub fn event(mut self, action: &'static str, message: String, details: Value) -> Self {
        self.events.push((action, message, details));
        self
    }

    /// Appends `event` only when `when` holds.
    pub fn event_if(
        self,
        when: bool,
        action: &'static str,
        message: String,
        details: Value,
    ) -> Self {
        if when {
            self.event(action, message, details)
        } else {
            self
        }
    }

    /// Shows a status while the pass goes on (the lease stays held).
    pub fn status(mut self, phase: Phase, message: String, conditions: Vec<Condition>) -> Self {
        self.status = Some((phase, message, conditions));
        self
    }

    /// Writes the pass result and releases the lease.
    pub fn result(mut self, result: PassResult) -> Self {
        self.result = Some(result);
        self
    }
}

impl Reconciler {
    pub(crate) async fn commit(
        &self,
        lease: &Lease,
        d: &Deployment,
        c: Commit<'_>,
    ) -> PassResultOf<()> {
        let mut tx = self.store.begin().await?;
        queue::hold(&mut tx, lease).await?;
        if let Some((number, outcome)) = &c.revision {
            revisions::finish(&mut tx, &d.uid, *number, outcome).await?;
        }
        if let Some((number, notes)) = &c.notes {
            revisions::set_notes(&mut tx, &d.uid, *number, notes.as_deref()).await?;
        }
        if let Some((number, manifest)) = &c.manifest {
            revisions::set_manifest(&mut tx, &d.uid, *number, manifest).await?;
        }
        let subject = format!("deployment/{}", d.uid);
        for (action, message, details) in c.events {
            events::insert(
                &mut tx,
                &NewEvent {
                    deployment_uid: Some(&d.uid),
                    tenant: Some(&d.tenant),
                    subject: subject.clone(),
                    action,
                    actor: SYSTEM,
                    message,
                    details,
                },
                now_ms(),
            )
            .await?;
        }
        if let Some((phase, message, conditions)) = &c.status {
            queue::report_status(&mut tx, lease, *phase, message, conditions, now_ms()).await?;
        }
        if let Some(result) = &c.result {
            queue::finish(&mut tx, lease, result, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes the row back as it is, with a new due time.
    pub(crate) async fn finish_unchanged(
        &self,
        lease: &Lease,
        d: &Deployment,
        next_due: Option<i64>,
    ) -> PassResultOf<()> {
        self.commit(lease, d, Commit::new().result(unchanged(d, next_due)))
            .await
    }
}

impl Reconciler {
    /// Records a state the pass cannot act on (rows that contradict each
    /// other) on the deployment and retries later, instead of crashing the worker.
    pub(crate) async fn record_state_error(
        &self,
        lease: &Lease,
        d: &Deployment,
        message: &str,
    ) -> PassResultOf<&'static str> {
        tracing::error!(message, "inconsistent deployment state");
        let attempts = d.attempts + 1;
        let mut r = unchanged(d, Some(self.retry_at(attempts)));
        crate::status::set_ready(
            &mut r.conditions,
            caelus_core::status::ReadyReason::InternalError,
            message,
            d.generation,
        );
        r.last_error = Some(message.to_string());
        r.attempts = attempts;
        let commit = Commit::new()
            .event(
                "reconcile.error",
                message.to_string(),
                serde_json::json!({"attempts": attempts}),
            )
            .result(r);
        self.commit(lease, d, commit).await?;
        Ok("state-error")
    }
}

/// The deployment's current status, kept as it is.
pub(crate) fn unchanged(d: &Deployment, next_due: Option<i64>) -> PassResult {
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
        deleted: d.desired_state == caelus_core::status::DesiredState::Absent
            && d.phase == caelus_core::status::Phase::Deleted,
        failure: d.failure.clone(),
    }
}
