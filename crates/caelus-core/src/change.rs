//! One set of rules for every change that produces a new render — a values
//! update, an upgrade, a rollback and a retry: the data-continuity decision
//! (with its admin-only override), when a retry makes sense, and when a
//! rollback target is already what runs. The API and the UI only gather the
//! facts; the refusals are decided here.

use crate::remediation::{FailureRecord, Remedy};
use crate::status::DesiredState;
use crate::upgrade::{DataRisk, Refusal, RefusalKind};
use serde::Serialize;

/// The change a request makes to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// New user values on the same template version.
    Update,
    /// A newer template version.
    Upgrade,
    /// An earlier revision's version and values.
    Rollback,
    /// The current generation again, now.
    Retry,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Update => "update",
            ChangeKind::Upgrade => "upgrade",
            ChangeKind::Rollback => "rollback",
            ChangeKind::Retry => "retry",
        }
    }

    /// The Helm hook event family the change runs (`pre-`/`post-` prefixed).
    pub fn hook_event(self) -> &'static str {
        match self {
            ChangeKind::Rollback => "rollback",
            _ => "upgrade",
        }
    }
}

/// What the preflight decided about persistent data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDecision {
    /// Nothing persistent is deleted, renamed, re-templated or shrunk.
    Safe,
    /// Data may be lost, and an admin said so with `allow_data_loss`: the
    /// change goes ahead and the event records it.
    Overridden,
}

/// The data-continuity rule, the same for update, upgrade, rollback and
/// retry: any risk refuses the change unless an admin passes
/// `allow_data_loss` (a tenant passing it is refused, so the override is
/// never silently ignored).
pub fn check_data_continuity(
    kind: ChangeKind,
    risks: &[DataRisk],
    allow_data_loss: bool,
    actor_is_admin: bool,
) -> Result<DataDecision, Refusal> {
    if risks.is_empty() {
        return Ok(DataDecision::Safe);
    }
    if allow_data_loss && !actor_is_admin {
        return Err(Refusal {
            kind: RefusalKind::Forbidden,
            rule: "data-loss-needs-admin",
            message: "only an admin may pass allow_data_loss".into(),
        });
    }
    if allow_data_loss {
        return Ok(DataDecision::Overridden);
    }
    Err(Refusal {
        kind: RefusalKind::Conflict,
        rule: "data-continuity",
        message: format!(
            "{} refused to protect persistent data: {}. An admin may pass allow_data_loss to proceed.",
            kind.as_str(),
            describe_risks(risks)
        ),
    })
}

/// The risks as one sentence, each naming its object.
pub fn describe_risks(risks: &[DataRisk]) -> String {
    risks
        .iter()
        .map(|r| r.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The current generation's failure, if the record is about it.
pub fn current_failure(generation: i64, failure: Option<&FailureRecord>) -> Option<&FailureRecord> {
    failure.filter(|f| f.generation == generation)
}

/// The current generation failed and the last good revision was restored:
/// what runs is older than what is desired.
pub fn is_rolled_back(generation: i64, failure: Option<&FailureRecord>) -> bool {
    current_failure(generation, failure).is_some_and(|f| f.remedy == Remedy::RollBack)
}

/// What `retry` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryFacts<'a> {
    pub desired: DesiredState,
    pub generation: i64,
    pub observed_generation: i64,
    pub failure: Option<&'a FailureRecord>,
    /// `Stalled` is true at the current generation (e.g. policy refused it).
    pub stalled: bool,
}

/// A retry re-attempts a generation that failed, stalled or was rolled back,
/// now and with a fresh backoff; anything else has nothing to retry.
pub fn check_retry(f: &RetryFacts<'_>) -> Result<(), Refusal> {
    let conflict = |message: String| {
        Err(Refusal {
            kind: RefusalKind::Conflict,
            rule: "retryable",
            message,
        })
    };
    if f.desired == DesiredState::Absent {
        return conflict("the deployment is being deleted; there is nothing to retry".into());
    }
    if f.stalled || current_failure(f.generation, f.failure).is_some() {
        return Ok(());
    }
    if f.observed_generation < f.generation {
        return conflict(format!(
            "generation {} is being applied and has not failed; there is nothing to retry yet",
            f.generation
        ));
    }
    conflict(format!(
        "generation {} did not fail; there is nothing to retry",
        f.generation
    ))
}

/// What a rollback request to revision `target` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreFacts<'a> {
    pub target: i64,
    pub current_revision: Option<i64>,
    pub generation: i64,
    pub observed_generation: i64,
    pub failure: Option<&'a FailureRecord>,
}

/// Restoring the revision that runs is refused only when it changes nothing:
/// after an automatic rollback the desired state is the failed target, so
/// "roll back to what runs" is a real change (it gives up the target).
pub fn check_restore(f: &RestoreFacts<'_>) -> Result<(), Refusal> {
    let in_sync = f.observed_generation == f.generation;
    if f.current_revision == Some(f.target)
        && in_sync
        && current_failure(f.generation, f.failure).is_none()
    {
        return Err(Refusal {
            kind: RefusalKind::Conflict,
            rule: "not-running",
            message: format!("revision {} is already the one running", f.target),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::{FailureClass, FailureOrigin};

    fn risk() -> DataRisk {
        DataRisk {
            kind: "PersistentVolumeClaim".into(),
            name: "wp-data".into(),
            message: "PersistentVolumeClaim/wp-data would be deleted or renamed: its volume and data would be deleted".into(),
        }
    }

    fn failure(generation: i64, remedy: Remedy) -> FailureRecord {
        FailureRecord {
            generation,
            origin: FailureOrigin::Upgrade,
            class: FailureClass::Deterministic,
            reason: "HealthCheckFailed".into(),
            message: "not healthy".into(),
            remedy,
            revision: Some(3),
            target_version: Some("3.0.0".into()),
        }
    }

    #[test]
    fn data_risks_refuse_every_kind_of_change_alike() {
        for kind in [
            ChangeKind::Update,
            ChangeKind::Upgrade,
            ChangeKind::Rollback,
            ChangeKind::Retry,
        ] {
            assert_eq!(
                check_data_continuity(kind, &[], false, false),
                Ok(DataDecision::Safe)
            );
            let refused = check_data_continuity(kind, &[risk()], false, true).unwrap_err();
            assert_eq!(refused.kind, RefusalKind::Conflict);
            assert!(refused.message.contains("PersistentVolumeClaim/wp-data"));
            assert!(refused.message.starts_with(kind.as_str()));
            let tenant = check_data_continuity(kind, &[risk()], true, false).unwrap_err();
            assert_eq!(tenant.kind, RefusalKind::Forbidden);
            assert_eq!(
                check_data_continuity(kind, &[risk()], true, true),
                Ok(DataDecision::Overridden)
            );
        }
    }

    fn retry_facts(failure: Option<&FailureRecord>) -> RetryFacts<'_> {
        RetryFacts {
            desired: DesiredState::Present,
            generation: 3,
            observed_generation: 3,
            failure,
            stalled: false,
        }
    }

    #[test]
    fn failed_rolled_back_and_stalled_generations_can_be_retried() {
        for remedy in [Remedy::Retry, Remedy::RollBack, Remedy::Stall] {
            let f = failure(3, remedy);
            assert_eq!(check_retry(&retry_facts(Some(&f))), Ok(()), "{remedy:?}");
        }
        let stalled = RetryFacts {
            stalled: true,
            ..retry_facts(None)
        };
        assert_eq!(check_retry(&stalled), Ok(()));
    }

    #[test]
    fn nothing_to_retry_is_a_conflict() {
        let old = failure(2, Remedy::RollBack);
        let ready = check_retry(&retry_facts(Some(&old))).unwrap_err();
        assert!(ready.message.contains("did not fail"), "{ready:?}");
        let busy = RetryFacts {
            observed_generation: 2,
            ..retry_facts(None)
        };
        assert!(
            check_retry(&busy)
                .unwrap_err()
                .message
                .contains("being applied")
        );
        let f = failure(3, Remedy::Retry);
        let gone = RetryFacts {
            desired: DesiredState::Absent,
            ..retry_facts(Some(&f))
        };
        assert!(check_retry(&gone).unwrap_err().message.contains("deleted"));
    }

    #[test]
    fn restoring_what_runs_is_refused_unless_a_rollback_left_the_target_behind() {
        let facts = RestoreFacts {
            target: 2,
            current_revision: Some(2),
            generation: 3,
            observed_generation: 3,
            failure: None,
        };
        assert_eq!(check_restore(&facts).unwrap_err().rule, "not-running");
        let f = failure(3, Remedy::RollBack);
        assert!(is_rolled_back(3, Some(&f)));
        assert!(!is_rolled_back(4, Some(&f)));
        let rolled_back = RestoreFacts {
            failure: Some(&f),
            ..facts
        };
        assert_eq!(check_restore(&rolled_back), Ok(()));
        let earlier = RestoreFacts { target: 1, ..facts };
        assert_eq!(check_restore(&earlier), Ok(()));
    }
}
