//! The reconciler's decisions, as pure functions: classify a deployment into one
//! release state, map each state to exactly one action, and time the next pass.

use crate::remediation::{FailureOrigin, Remedy};
use crate::revision::RevisionKind;
use crate::status::{DesiredState, Phase};
use crate::template::DriftMode;
use std::time::Duration;

/// What the database and the last pass say about a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub desired: DesiredState,
    pub generation: i64,
    pub observed_generation: i64,
    pub phase: Phase,
    /// A revision was deployed successfully at some point (something is installed).
    pub has_deployed_revision: bool,
    /// The current generation's failure and what was done about it, if it failed.
    pub failure: Option<Failed>,
    /// Policy refused the render of this generation: retrying cannot help.
    pub stalled_generation: Option<i64>,
    /// The current generation restores an earlier revision (`rollback`).
    pub rollback_requested: bool,
}

/// A failure of the current generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    pub origin: FailureOrigin,
    pub remedy: Remedy,
}

/// The small set of states a release can be in (Flux helm-controller style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseState {
    /// Desired absent and already removed: nothing left to do.
    AbsentAndGone,
    /// Desired absent; objects or namespace may remain.
    Deleting,
    /// This generation cannot succeed without a change; waits for one (or a retry).
    Stalled,
    /// Nothing has ever been deployed.
    NeedsInstall,
    /// A new generation is waiting to be applied.
    NeedsUpgrade,
    /// The last attempt at the current generation failed and is retried.
    Failed,
    /// Correcting drift failed; the correction is retried (never a new revision).
    CorrectionFailed,
    /// The current generation's upgrade failed and was rolled back: the last
    /// good revision runs; no retry until the desired state changes (or a retry).
    RolledBack,
    /// Deployed at the current generation; the cluster must be checked for drift.
    Deployed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Do nothing and schedule nothing.
    None,
    /// Remove everything (hooks, objects, namespace) and report progress.
    Uninstall,
    /// Render and apply the current generation's revision, of this kind: it
    /// decides the hooks that run and Helm's `.Release.IsInstall/IsUpgrade`.
    Deploy(RevisionKind),
    /// Compare live objects with what the running revision applied; correct per
    /// drift mode. Only chosen when a deployed revision exists.
    CheckDrift,
}

impl RevisionKind {
    /// What the next revision of a deployment is, decided here only: an
    /// install while nothing was ever deployed, else an upgrade, or a rollback
    /// when the generation restores an earlier revision.
    pub fn next(has_deployed_revision: bool, rollback_requested: bool) -> RevisionKind {
        match (has_deployed_revision, rollback_requested) {
            (false, _) => RevisionKind::Install,
            (true, true) => RevisionKind::Rollback,
            (true, false) => RevisionKind::Upgrade,
        }
    }

    /// Helm's `.Release.IsInstall` for a render of a revision of this kind
    /// (`.Release.IsUpgrade` is its negation, as in `helm upgrade`).
    pub fn is_install(self) -> bool {
        self == RevisionKind::Install
    }
}

pub fn classify(f: &Facts) -> ReleaseState {
    if f.desired == DesiredState::Absent {
        // Retained (deleted keeping volumes) is the end of its generation;
        // `purge` makes a new one, which removes the rest.
        let retained = f.phase == Phase::Retained && f.observed_generation == f.generation;
        return if f.phase == Phase::Deleted || retained {
            ReleaseState::AbsentAndGone
        } else {
            ReleaseState::Deleting
        };
    }
    if f.stalled_generation == Some(f.generation) {
        return ReleaseState::Stalled;
    }
    if f.observed_generation < f.generation {
        return if f.has_deployed_revision {
            ReleaseState::NeedsUpgrade
        } else {
            ReleaseState::NeedsInstall
        };
    }
    match f.failure {
        Some(Failed {
            remedy: Remedy::Stall,
            ..
        }) => return ReleaseState::Stalled,
        // What runs after a rollback or a failed correction is a deployed
        // revision; without one, the only way forward is to deploy again.
        Some(Failed {
            remedy: Remedy::RollBack,
            ..
        }) if f.has_deployed_revision => return ReleaseState::RolledBack,
        Some(Failed {
            origin: FailureOrigin::DriftCorrection,
            ..
        }) if f.has_deployed_revision => return ReleaseState::CorrectionFailed,
        Some(_) => return ReleaseState::Failed,
        None => {}
    }
    if !f.has_deployed_revision {
        return ReleaseState::NeedsInstall;
    }
    ReleaseState::Deployed
}

/// The one action for a state.
pub fn action_for(state: ReleaseState, f: &Facts) -> Action {
    let next = RevisionKind::next(f.has_deployed_revision, f.rollback_requested);
    match state {
        ReleaseState::AbsentAndGone | ReleaseState::Stalled => Action::None,
        ReleaseState::Deleting => Action::Uninstall,
        ReleaseState::NeedsInstall | ReleaseState::NeedsUpgrade | ReleaseState::Failed => {
            Action::Deploy(next)
        }
        // What runs after a rollback is the last good revision: keep it converged.
        ReleaseState::Deployed | ReleaseState::RolledBack | ReleaseState::CorrectionFailed => {
            Action::CheckDrift
        }
    }
}

/// Classifies and picks the action in one step.
pub fn next_action(f: &Facts) -> (ReleaseState, Action) {
    let state = classify(f);
    (state, action_for(state, f))
}

/// What to do about drift found on a deployed release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftResponse {
    /// Nothing drifted, or drift checking is off.
    Nothing,
    /// Report only (`warn`).
    Report,
    /// Report and re-apply (`correct`).
    Correct,
}

pub fn drift_response(mode: DriftMode, drifted: bool) -> DriftResponse {
    match (mode, drifted) {
        (DriftMode::Off, _) | (_, false) => DriftResponse::Nothing,
        (DriftMode::Warn, true) => DriftResponse::Report,
        (DriftMode::Correct, true) => DriftResponse::Correct,
    }
}

/// Retry timing: exponential from `base`, capped, with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Fraction of the delay that is randomised (0.0–1.0).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (1 = first retry). `random` is in [0, 1):
    /// passed in so the rule stays a pure function.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        // Past 2^30 the cap has long been reached; bounding the exponent avoids overflow.
        let exp = attempt.saturating_sub(1).min(30) as i32;
        let capped = (self.base.as_secs_f64() * 2f64.powi(exp)).min(self.cap.as_secs_f64());
        // Jitter spreads retries of many deployments that failed together.
        let spread = capped * self.jitter;
        Duration::from_secs_f64((capped - spread + 2.0 * spread * random.clamp(0.0, 1.0)).max(0.0))
    }
}

/// When to check a healthy deployment again: `interval` ± `jitter` fraction.
pub fn resync_delay(interval: Duration, jitter: f64, random: f64) -> Duration {
    let base = interval.as_secs_f64();
    let spread = base * jitter;
    Duration::from_secs_f64(base - spread + 2.0 * spread * random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            desired: DesiredState::Present,
            generation: 1,
            observed_generation: 0,
            phase: Phase::Pending,
            has_deployed_revision: false,
            failure: None,
            stalled_generation: None,
            rollback_requested: false,
        }
    }

    const RETRY_UPGRADE: Failed = Failed {
        origin: FailureOrigin::Upgrade,
        remedy: Remedy::Retry,
    };

    #[test]
    fn new_deployment_installs() {
        assert_eq!(
            next_action(&facts()),
            (
                ReleaseState::NeedsInstall,
                Action::Deploy(RevisionKind::Install)
            )
        );
    }

    #[test]
    fn failed_first_install_is_still_an_install_after_a_new_generation() {
        let f = Facts {
            generation: 2,
            observed_generation: 1,
            failure: Some(RETRY_UPGRADE),
            ..facts()
        };
        assert_eq!(classify(&f), ReleaseState::NeedsInstall);
    }

    #[test]
    fn new_generation_on_a_deployed_release_upgrades() {
        let f = Facts {
            generation: 3,
            observed_generation: 2,
            has_deployed_revision: true,
            phase: Phase::Ready,
            ..facts()
        };
        assert_eq!(
            next_action(&f),
            (
                ReleaseState::NeedsUpgrade,
                Action::Deploy(RevisionKind::Upgrade)
            )
        );
        let rollback = Facts {
            rollback_requested: true,
            ..f
        };
        assert_eq!(
            next_action(&rollback).1,
            Action::Deploy(RevisionKind::Rollback)
        );
    }

    #[test]
    fn failure_at_the_current_generation_retries() {
        let f = Facts {
            generation: 2,
            observed_generation: 2,
            has_deployed_revision: true,
            failure: Some(RETRY_UPGRADE),
            phase: Phase::Failed,
            ..facts()
        };
        assert_eq!(
            next_action(&f),
            (ReleaseState::Failed, Action::Deploy(RevisionKind::Upgrade))
        );
    }

    #[test]
    fn deployed_and_current_checks_drift() {
        let f = Facts {
            generation: 2,
            observed_generation: 2,
            has_deployed_revision: true,
            phase: Phase::Ready,
            ..facts()
        };
        assert_eq!(
            next_action(&f),
            (ReleaseState::Deployed, Action::CheckDrift)
        );
    }

    #[test]
    fn a_rolled_back_generation_is_not_retried_but_kept_converged() {
        let f = Facts {
            generation: 3,
            observed_generation: 3,
            has_deployed_revision: true,
            failure: Some(Failed {
                origin: FailureOrigin::Upgrade,
                remedy: Remedy::RollBack,
            }),
            phase: Phase::Degraded,
            ..facts()
        };
        assert_eq!(
            next_action(&f),
            (ReleaseState::RolledBack, Action::CheckDrift)
        );
        let next = Facts { generation: 4, ..f };
        assert_eq!(classify(&next), ReleaseState::NeedsUpgrade);
    }

    #[test]
    fn stalled_waits_for_a_new_generation_only() {
        let f = Facts {
            stalled_generation: Some(1),
            ..facts()
        };
        assert_eq!(next_action(&f), (ReleaseState::Stalled, Action::None));
        let moved_on = Facts {
            generation: 2,
            stalled_generation: Some(1),
            ..facts()
        };
        assert_eq!(classify(&moved_on), ReleaseState::NeedsInstall);
    }

    #[test]
    fn retained_rests_until_a_purge() {
        let retained = Facts {
            desired: DesiredState::Absent,
            phase: Phase::Retained,
            generation: 3,
            observed_generation: 3,
            has_deployed_revision: true,
            ..facts()
        };
        assert_eq!(
            next_action(&retained),
            (ReleaseState::AbsentAndGone, Action::None)
        );
        let purge = Facts {
            generation: 4,
            ..retained
        };
        assert_eq!(
            next_action(&purge),
            (ReleaseState::Deleting, Action::Uninstall)
        );
    }

    #[test]
    fn absent_uninstalls_until_deleted() {
        let f = Facts {
            desired: DesiredState::Absent,
            phase: Phase::DeletionBlocked,
            has_deployed_revision: true,
            stalled_generation: Some(1),
            ..facts()
        };
        assert_eq!(next_action(&f), (ReleaseState::Deleting, Action::Uninstall));
        let gone = Facts {
            phase: Phase::Deleted,
            ..f
        };
        assert_eq!(
            next_action(&gone),
            (ReleaseState::AbsentAndGone, Action::None)
        );
    }

    /// The panic scenario of issue 11: a failed drift correction must not be
    /// taken for a failed deploy (no upgrade hooks, no new revision), and a
    /// state without a deployed revision must never lead to a drift check.
    #[test]
    fn a_failed_drift_correction_is_retried_as_a_correction() {
        let f = Facts {
            generation: 2,
            observed_generation: 2,
            has_deployed_revision: true,
            failure: Some(Failed {
                origin: FailureOrigin::DriftCorrection,
                remedy: Remedy::Retry,
            }),
            phase: Phase::Ready,
            ..facts()
        };
        assert_eq!(
            next_action(&f),
            (ReleaseState::CorrectionFailed, Action::CheckDrift)
        );
        for remedy in [Remedy::Retry, Remedy::RollBack] {
            for origin in FailureOrigin::ALL {
                let lost = Facts {
                    has_deployed_revision: false,
                    phase: Phase::Degraded,
                    failure: Some(Failed { origin, remedy }),
                    ..f.clone()
                };
                assert_eq!(
                    next_action(&lost),
                    (ReleaseState::Failed, Action::Deploy(RevisionKind::Install)),
                    "{origin:?} {remedy:?}"
                );
            }
        }
    }

    #[test]
    fn install_or_upgrade_is_decided_by_what_was_deployed() {
        assert_eq!(RevisionKind::next(false, false), RevisionKind::Install);
        assert_eq!(RevisionKind::next(false, true), RevisionKind::Install);
        assert_eq!(RevisionKind::next(true, false), RevisionKind::Upgrade);
        assert_eq!(RevisionKind::next(true, true), RevisionKind::Rollback);
        assert!(RevisionKind::Install.is_install());
        assert!(!RevisionKind::Rollback.is_install());
    }

    #[test]
    fn drift_modes() {
        assert_eq!(
            drift_response(DriftMode::Correct, true),
            DriftResponse::Correct
        );
        assert_eq!(drift_response(DriftMode::Warn, true), DriftResponse::Report);
        assert_eq!(drift_response(DriftMode::Off, true), DriftResponse::Nothing);
        assert_eq!(
            drift_response(DriftMode::Correct, false),
            DriftResponse::Nothing
        );
    }

    #[test]
    fn backoff_grows_exponentially_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
            jitter: 0.0,
        };
        let d: Vec<u64> = (1..=7).map(|a| b.delay(a, 0.5).as_secs()).collect();
        assert_eq!(d, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(1000, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn backoff_jitter_stays_within_its_band() {
        let b = Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(100),
            jitter: 0.2,
        };
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(8));
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(10));
        assert!(b.delay(1, 0.999) <= Duration::from_secs(12));
    }

    #[test]
    fn resync_jitter() {
        let i = Duration::from_secs(300);
        assert_eq!(resync_delay(i, 0.1, 0.0), Duration::from_secs(270));
        assert_eq!(resync_delay(i, 0.1, 1.0), Duration::from_secs(330));
    }
}
