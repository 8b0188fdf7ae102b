//! The reconciler's decisions, as pure functions: classify a deployment into one
//! release state, map each state to exactly one action, and time the next pass.

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
    /// The last pass at `observed_generation` failed.
    pub last_pass_failed: bool,
    /// Policy refused the render of this generation: retrying cannot help.
    pub stalled_generation: Option<i64>,
}

/// The small set of states a release can be in (Flux helm-controller style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseState {
    /// Desired absent and already removed: nothing left to do.
    AbsentAndGone,
    /// Desired absent; objects or namespace may remain.
    Deleting,
    /// Policy refused this generation's render; waits for a new generation.
    Stalled,
    /// Nothing has ever been deployed.
    NeedsInstall,
    /// A new generation is waiting to be applied.
    NeedsUpgrade,
    /// The last attempt at the current generation failed.
    Failed,
    /// The current generation's upgrade failed and was rolled back: the last
    /// good revision runs; no retry until the desired state changes.
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
    /// Render and apply a new revision (install kind).
    Install,
    /// Render and apply a new revision (upgrade kind).
    Upgrade,
    /// Retry the failed revision of the current generation.
    Retry,
    /// Compare live objects with what was applied; correct per drift mode.
    CheckDrift,
}

pub fn classify(f: &Facts) -> ReleaseState {
    if f.desired == DesiredState::Absent {
        return if f.phase == Phase::Deleted {
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
    if f.phase == Phase::Degraded {
        return ReleaseState::RolledBack;
    }
    if f.last_pass_failed {
        return ReleaseState::Failed;
    }
    if !f.has_deployed_revision {
        return ReleaseState::NeedsInstall;
    }
    ReleaseState::Deployed
}

pub fn action_for(state: ReleaseState) -> Action {
    match state {
        ReleaseState::AbsentAndGone | ReleaseState::Stalled => Action::None,
        ReleaseState::Deleting => Action::Uninstall,
        ReleaseState::NeedsInstall => Action::Install,
        ReleaseState::NeedsUpgrade => Action::Upgrade,
        ReleaseState::Failed => Action::Retry,
        // What runs after a rollback is the last good revision: keep it converged.
        ReleaseState::Deployed | ReleaseState::RolledBack => Action::CheckDrift,
    }
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
            last_pass_failed: false,
            stalled_generation: None,
        }
    }

    #[test]
    fn new_deployment_installs() {
        assert_eq!(classify(&facts()), ReleaseState::NeedsInstall);
        assert_eq!(action_for(ReleaseState::NeedsInstall), Action::Install);
    }

    #[test]
    fn failed_first_install_is_still_an_install_after_a_new_generation() {
        let f = Facts {
            generation: 2,
            observed_generation: 1,
            last_pass_failed: true,
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
        assert_eq!(classify(&f), ReleaseState::NeedsUpgrade);
        assert_eq!(action_for(classify(&f)), Action::Upgrade);
    }

    #[test]
    fn failure_at_the_current_generation_retries() {
        let f = Facts {
            generation: 2,
            observed_generation: 2,
            has_deployed_revision: true,
            last_pass_failed: true,
            phase: Phase::Failed,
            ..facts()
        };
        assert_eq!(classify(&f), ReleaseState::Failed);
        assert_eq!(action_for(ReleaseState::Failed), Action::Retry);
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
        assert_eq!(classify(&f), ReleaseState::Deployed);
        assert_eq!(action_for(ReleaseState::Deployed), Action::CheckDrift);
    }

    #[test]
    fn a_rolled_back_generation_is_not_retried_but_kept_converged() {
        let f = Facts {
            generation: 3,
            observed_generation: 3,
            has_deployed_revision: true,
            last_pass_failed: true,
            phase: Phase::Degraded,
            ..facts()
        };
        assert_eq!(classify(&f), ReleaseState::RolledBack);
        assert_eq!(action_for(ReleaseState::RolledBack), Action::CheckDrift);
        let next = Facts { generation: 4, ..f };
        assert_eq!(classify(&next), ReleaseState::NeedsUpgrade);
    }

    #[test]
    fn stalled_waits_for_a_new_generation_only() {
        let f = Facts {
            stalled_generation: Some(1),
            ..facts()
        };
        assert_eq!(classify(&f), ReleaseState::Stalled);
        assert_eq!(action_for(ReleaseState::Stalled), Action::None);
        let moved_on = Facts {
            generation: 2,
            stalled_generation: Some(1),
            ..facts()
        };
        assert_eq!(classify(&moved_on), ReleaseState::NeedsInstall);
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
        assert_eq!(classify(&f), ReleaseState::Deleting);
        assert_eq!(action_for(ReleaseState::Deleting), Action::Uninstall);
        let gone = Facts {
            phase: Phase::Deleted,
            ..f
        };
        assert_eq!(classify(&gone), ReleaseState::AbsentAndGone);
        assert_eq!(action_for(ReleaseState::AbsentAndGone), Action::None);
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
