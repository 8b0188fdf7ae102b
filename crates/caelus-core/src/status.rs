//! The deployment status model (design §4): a phase plus Kubernetes-style conditions.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What the database asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    Present,
    Absent,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Present => "present",
            DesiredState::Absent => "absent",
        }
    }
}

impl FromStr for DesiredState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "present" => Ok(DesiredState::Present),
            "absent" => Ok(DesiredState::Absent),
            _ => Err(format!("unknown desired state '{s}'")),
        }
    }
}

/// Where a deployment stands, as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Installing,
    Upgrading,
    RollingBack,
    Ready,
    Degraded,
    Failed,
    Deleting,
    DeletionBlocked,
    Deleted,
    /// Deleted with `keep_volumes`: the objects are gone, the namespace stays
    /// with its PersistentVolumeClaims until `purge`.
    Retained,
}

impl Phase {
    pub const ALL: [Phase; 11] = [
        Phase::Pending,
        Phase::Installing,
        Phase::Upgrading,
        Phase::RollingBack,
        Phase::Ready,
        Phase::Degraded,
        Phase::Failed,
        Phase::Deleting,
        Phase::DeletionBlocked,
        Phase::Deleted,
        Phase::Retained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Installing => "Installing",
            Phase::Upgrading => "Upgrading",
            Phase::RollingBack => "RollingBack",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Deleting => "Deleting",
            Phase::DeletionBlocked => "DeletionBlocked",
            Phase::Deleted => "Deleted",
            Phase::Retained => "Retained",
        }
    }

    /// Phases in which a deployment's objects are being removed or are gone.
    pub fn is_deleting(self) -> bool {
        matches!(
            self,
            Phase::Deleting | Phase::DeletionBlocked | Phase::Deleted | Phase::Retained
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown phase '{s}'"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// A Kubernetes-style condition. `last_transition_time` is RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
    pub observed_generation: i64,
}

pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_RECONCILING: &str = "Reconciling";
pub const CONDITION_STALLED: &str = "Stalled";
pub const CONDITION_DRIFTED: &str = "Drifted";

/// Why `Ready` has its status. The status is derived from the reason (as
/// Flux's helm-controller summarises its conditions into Ready), so a writer
/// names what happened and can never pair a success reason with `False`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadyReason {
    /// A revision was applied and became healthy.
    Deployed,
    /// Objects that were unhealthy after deploying are healthy again.
    Healthy,
    /// Objects that were healthy stopped being so (seen on a resync).
    Unhealthy,
    /// Live objects no longer hold what Caelus applied (being corrected, or
    /// reported under drift mode warn).
    Drifted,
    /// An upgrade failed and the last good revision was restored.
    RolledBack,
    /// Everything was removed.
    Deleted,
    /// Helm could not render the chart with these values.
    RenderFailed,
    /// The chart could not be fetched.
    ChartUnavailable,
    /// Policy refused the rendered objects.
    PolicyViolation,
    /// An object the revision would write already exists and belongs to
    /// someone else (another deployment, installation, or no one).
    OwnershipConflict,
    /// A Helm hook did not succeed.
    HookFailed,
    /// Objects did not become healthy in time, or failed.
    HealthCheckFailed,
    /// The API server refused or failed a write.
    ApplyFailed,
    /// The pass hit a state it cannot act on (recorded instead of crashing).
    InternalError,
}

impl ReadyReason {
    pub const ALL: [ReadyReason; 14] = [
        ReadyReason::Deployed,
        ReadyReason::Healthy,
        ReadyReason::Unhealthy,
        ReadyReason::Drifted,
        ReadyReason::RolledBack,
        ReadyReason::Deleted,
        ReadyReason::RenderFailed,
        ReadyReason::ChartUnavailable,
        ReadyReason::PolicyViolation,
        ReadyReason::OwnershipConflict,
        ReadyReason::HookFailed,
        ReadyReason::HealthCheckFailed,
        ReadyReason::ApplyFailed,
        ReadyReason::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReadyReason::Deployed => "Deployed",
            ReadyReason::Healthy => "Healthy",
            ReadyReason::Unhealthy => "Unhealthy",
            ReadyReason::Drifted => "Drifted",
            ReadyReason::RolledBack => "RolledBack",
            ReadyReason::Deleted => "Deleted",
            ReadyReason::RenderFailed => "RenderFailed",
            ReadyReason::ChartUnavailable => "ChartUnavailable",
            ReadyReason::PolicyViolation => "PolicyViolation",
            ReadyReason::OwnershipConflict => "OwnershipConflict",
            ReadyReason::HookFailed => "HookFailed",
            ReadyReason::HealthCheckFailed => "HealthCheckFailed",
            ReadyReason::ApplyFailed => "ApplyFailed",
            ReadyReason::InternalError => "InternalError",
        }
    }

    /// Ready's status for this reason.
    pub fn status(self) -> ConditionStatus {
        match self {
            ReadyReason::Deployed | ReadyReason::Healthy => ConditionStatus::True,
            _ => ConditionStatus::False,
        }
    }

    pub fn parse(s: &str) -> Option<ReadyReason> {
        ReadyReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Reasons of the other conditions (`Reconciling`, `Stalled`, `Drifted`).
pub mod reason {
    /// The pass reached what was asked.
    pub const SUCCEEDED: &str = "Succeeded";
    pub const ROLLED_BACK: &str = "RolledBack";
    pub const STALLED: &str = "Stalled";
    pub const RETRY_SCHEDULED: &str = "RetryScheduled";
    pub const DELETED: &str = "Deleted";
    pub const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";
    pub const IN_SYNC: &str = "InSync";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const CORRECTED: &str = "Corrected";
    pub const CORRECTION_FAILED: &str = "CorrectionFailed";
}

/// Sets a condition the way Kubernetes does: the transition time only moves
/// when the status changes, so "since when" stays true.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let time = if existing.status == new.status {
                existing.last_transition_time.clone()
            } else {
                new.last_transition_time.clone()
            };
            *existing = Condition {
                last_transition_time: time,
                ..new
            };
        }
        None => conditions.push(new),
    }
}

/// Health of one applied object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    pub kind: String,
    pub name: String,
    pub health: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, time: &str, reason: &str) -> Condition {
        Condition {
            type_: CONDITION_READY.into(),
            status,
            reason: reason.into(),
            message: String::new(),
            last_transition_time: time.into(),
            observed_generation: 1,
        }
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut cs = vec![];
        set_condition(&mut cs, cond(ConditionStatus::False, "t1", "Installing"));
        set_condition(&mut cs, cond(ConditionStatus::False, "t2", "Waiting"));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, "t1");
        assert_eq!(cs[0].reason, "Waiting");
        set_condition(&mut cs, cond(ConditionStatus::True, "t3", "Ready"));
        assert_eq!(cs[0].last_transition_time, "t3");
    }

    #[test]
    fn ready_is_true_only_for_success_reasons() {
        for r in ReadyReason::ALL {
            assert_eq!(ReadyReason::parse(r.as_str()), Some(r));
            let success = matches!(r, ReadyReason::Deployed | ReadyReason::Healthy);
            assert_eq!(r.status() == ConditionStatus::True, success, "{r:?}");
        }
    }

    #[test]
    fn phases_round_trip() {
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>(), Ok(p));
        }
        assert_eq!("ready".parse::<Phase>(), Ok(Phase::Ready));
        assert!("Sleeping".parse::<Phase>().is_err());
    }

    #[test]
    fn condition_serializes_like_kubernetes() {
        let v = serde_json::to_value(cond(ConditionStatus::True, "t", "Ok")).unwrap();
        assert_eq!(v["type"], "Ready");
        assert_eq!(v["status"], "True");
        assert_eq!(v["lastTransitionTime"], "t");
        assert_eq!(v["observedGeneration"], 1);
    }
}
