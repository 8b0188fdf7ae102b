//! What to do when a pass fails, decided in one place: retry with backoff,
//! roll back to the last good revision, or stall until the deployment changes.

use crate::revision::RevisionKind;
use crate::status::ReadyReason;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a failure may pass without anything changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// 5xx, 429, timeouts, conflicts, connection errors: the same request may succeed later.
    Transient,
    /// Health timeout, failed hook, invalid object, render error, policy: it fails
    /// the same way again until something changes (or the cluster heals itself).
    Deterministic,
}

/// What a failure means for the attempt, beyond its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The API server or the registry failed or refused a call.
    Api,
    /// Objects did not become healthy, or a hook failed: what was applied runs badly.
    Unhealthy,
    /// Refused before anything was applied (render error, policy, invalid
    /// object): only a change to the deployment can help.
    NeedsChange,
}

impl FailureKind {
    pub const ALL: [FailureKind; 3] = [
        FailureKind::Api,
        FailureKind::Unhealthy,
        FailureKind::NeedsChange,
    ];
}

/// What the failed pass was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureOrigin {
    Install,
    Upgrade,
    /// An explicit rollback (a revision restoring an earlier one).
    Rollback,
    /// Re-applying the running revision to correct drift: no hooks, no new revision.
    DriftCorrection,
}

impl FailureOrigin {
    pub const ALL: [FailureOrigin; 4] = [
        FailureOrigin::Install,
        FailureOrigin::Upgrade,
        FailureOrigin::Rollback,
        FailureOrigin::DriftCorrection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureOrigin::Install => "install",
            FailureOrigin::Upgrade => "upgrade",
            FailureOrigin::Rollback => "rollback",
            FailureOrigin::DriftCorrection => "drift-correction",
        }
    }
}

impl From<RevisionKind> for FailureOrigin {
    fn from(k: RevisionKind) -> Self {
        match k {
            RevisionKind::Install => FailureOrigin::Install,
            RevisionKind::Upgrade => FailureOrigin::Upgrade,
            RevisionKind::Rollback => FailureOrigin::Rollback,
        }
    }
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Remedy {
    /// Try the same thing again after a backoff.
    Retry,
    /// Re-apply the last good revision (pre/post-rollback hooks).
    RollBack,
    /// Wait for a change to the deployment (or an explicit retry).
    Stall,
}

/// The facts the decision rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAttempt {
    pub origin: FailureOrigin,
    pub class: FailureClass,
    pub kind: FailureKind,
    /// Failed attempts at this generation, this one included (1 = first failure).
    pub attempts: u32,
    /// A revision that ran successfully exists to roll back to.
    pub has_last_good: bool,
}

/// The template's and the worker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemediationPolicy {
    /// Template capability: roll a failed upgrade back to the last good revision.
    pub rollback_on_failure: bool,
    /// How many transient failures are retried before rollback is considered.
    pub transient_retries: u32,
}

pub fn remediate(f: &FailedAttempt, p: &RemediationPolicy) -> Remedy {
    // A correction restores what already runs: rolling it back is meaningless
    // and stalling would leave drift in place, so it is retried as a correction.
    if f.origin == FailureOrigin::DriftCorrection {
        return Remedy::Retry;
    }
    // Nothing was applied; the running revision (if any) keeps running.
    if f.kind == FailureKind::NeedsChange {
        return Remedy::Stall;
    }
    if f.class == FailureClass::Transient && f.attempts <= p.transient_retries {
        return Remedy::Retry;
    }
    // Only an upgrade rolls back: a failed install has nothing to go back to
    // and a failed explicit rollback must not roll back again.
    if f.origin == FailureOrigin::Upgrade && p.rollback_on_failure && f.has_last_good {
        return Remedy::RollBack;
    }
    Remedy::Retry
}

/// The failure of the current generation, as the deployment records it: what
/// was attempted, why it failed and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FailureRecord {
    pub generation: i64,
    pub origin: FailureOrigin,
    pub class: FailureClass,
    /// Ready's reason when it failed, e.g. `HealthCheckFailed`.
    pub reason: String,
    pub message: String,
    pub remedy: Remedy,
    /// The revision that failed (the target), when a revision was attempted.
    pub revision: Option<i64>,
    /// The template version the failed attempt tried to run.
    pub target_version: Option<String>,
}

impl FailureRecord {
    pub fn ready_reason(&self) -> Option<ReadyReason> {
        ReadyReason::parse(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RemediationPolicy = RemediationPolicy {
        rollback_on_failure: true,
        transient_retries: 3,
    };

    /// The expected decision, stated independently of `remediate`'s order of checks.
    fn expected(f: &FailedAttempt, p: &RemediationPolicy) -> Remedy {
        let transient_left =
            f.class == FailureClass::Transient && f.attempts <= p.transient_retries;
        match (f.origin, f.kind) {
            (FailureOrigin::DriftCorrection, _) => Remedy::Retry,
            (_, FailureKind::NeedsChange) => Remedy::Stall,
            _ if transient_left => Remedy::Retry,
            (FailureOrigin::Upgrade, _) if p.rollback_on_failure && f.has_last_good => {
                Remedy::RollBack
            }
            _ => Remedy::Retry,
        }
    }

    #[test]
    fn every_combination() {
        let mut seen = std::collections::HashSet::new();
        for origin in FailureOrigin::ALL {
            for class in [FailureClass::Transient, FailureClass::Deterministic] {
                for kind in FailureKind::ALL {
                    for attempts in [1, 3, 4, 100] {
                        for has_last_good in [false, true] {
                            for rollback_on_failure in [false, true] {
                                let f = FailedAttempt {
                                    origin,
                                    class,
                                    kind,
                                    attempts,
                                    has_last_good,
                                };
                                let p = RemediationPolicy {
                                    rollback_on_failure,
                                    ..POLICY
                                };
                                let r = remediate(&f, &p);
                                assert_eq!(r, expected(&f, &p), "{f:?} {p:?}");
                                seen.insert(r);
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(seen.len(), 3, "every remedy is reachable");
    }

    #[test]
    fn a_burst_of_transient_errors_is_retried_before_rollback_is_considered() {
        let f = |attempts| FailedAttempt {
            origin: FailureOrigin::Upgrade,
            class: FailureClass::Transient,
            kind: FailureKind::Api,
            attempts,
            has_last_good: true,
        };
        for a in 1..=3 {
            assert_eq!(remediate(&f(a), &POLICY), Remedy::Retry);
        }
        assert_eq!(remediate(&f(4), &POLICY), Remedy::RollBack);
    }

    #[test]
    fn a_never_healthy_upgrade_rolls_back_at_once_per_the_template() {
        let f = FailedAttempt {
            origin: FailureOrigin::Upgrade,
            class: FailureClass::Deterministic,
            kind: FailureKind::Unhealthy,
            attempts: 1,
            has_last_good: true,
        };
        assert_eq!(remediate(&f, &POLICY), Remedy::RollBack);
        let off = RemediationPolicy {
            rollback_on_failure: false,
            ..POLICY
        };
        assert_eq!(remediate(&f, &off), Remedy::Retry);
    }

    #[test]
    fn a_failed_drift_correction_is_retried_as_a_correction() {
        for class in [FailureClass::Transient, FailureClass::Deterministic] {
            let f = FailedAttempt {
                origin: FailureOrigin::DriftCorrection,
                class,
                kind: FailureKind::Unhealthy,
                attempts: 50,
                has_last_good: true,
            };
            assert_eq!(remediate(&f, &POLICY), Remedy::Retry);
        }
    }

    #[test]
    fn records_serialize_with_kebab_words() {
        let r = FailureRecord {
            generation: 3,
            origin: FailureOrigin::DriftCorrection,
            class: FailureClass::Transient,
            reason: "ApplyFailed".into(),
            message: "boom".into(),
            remedy: Remedy::RollBack,
            revision: None,
            target_version: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["origin"], "drift-correction");
        assert_eq!(v["remedy"], "roll-back");
        assert_eq!(v["class"], "transient");
        assert_eq!(serde_json::from_value::<FailureRecord>(v).unwrap(), r);
    }
}
