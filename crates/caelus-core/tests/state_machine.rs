//! Property test of the reconciler's pure state machine (issue 11): random
//! sequences of API actions and injected failures, executed the way the
//! reconciler executes each action. Asserts that every state picks exactly one
//! action that its preconditions allow, and that a deployment converges once
//! failures stop (a user's `retry` being the way out of Stalled/RolledBack).

use caelus_core::reconcile::{Action, Facts, Failed, ReleaseState, next_action};
use caelus_core::remediation::{
    FailedAttempt, FailureClass, FailureKind, FailureOrigin, RemediationPolicy, Remedy, remediate,
};
use caelus_core::revision::RevisionKind;
use caelus_core::status::{DesiredState, Phase};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const POLICY: RemediationPolicy = RemediationPolicy {
    rollback_on_failure: true,
    transient_retries: 2,
};

/// A deployment row plus the little of the cluster that matters here.
#[derive(Debug, Clone)]
struct Model {
    desired: DesiredState,
    generation: i64,
    observed: i64,
    phase: Phase,
    has_deployed: bool,
    failure: Option<Failed>,
    stalled_generation: Option<i64>,
    rollback_requested: bool,
    attempts: u32,
    drifted: bool,
}

#[derive(Debug, Clone, Copy)]
enum Api {
    Update,
    Upgrade,
    Rollback,
    Delete,
    Retry,
    DriftInCluster,
}

impl Model {
    fn new() -> Model {
        Model {
            desired: DesiredState::Present,
            generation: 1,
            observed: 0,
            phase: Phase::Pending,
            has_deployed: false,
            failure: None,
            stalled_generation: None,
            rollback_requested: false,
            attempts: 0,
            drifted: false,
        }
    }

    fn facts(&self) -> Facts {
        Facts {
            desired: self.desired,
            generation: self.generation,
            observed_generation: self.observed,
            phase: self.phase,
            has_deployed_revision: self.has_deployed,
            failure: self.failure.filter(|_| self.observed == self.generation),
            stalled_generation: self.stalled_generation,
            rollback_requested: self.rollback_requested,
        }
    }

    /// What the API does; each accepted write makes a new generation, as the API does.
    fn api(&mut self, a: Api) {
        if self.desired == DesiredState::Absent {
            return; // every change is refused once deleting
        }
        match a {
            Api::Update | Api::Upgrade => self.rollback_requested = false,
            Api::Rollback if self.has_deployed => self.rollback_requested = true,
            Api::Rollback => return,
            Api::Delete => self.desired = DesiredState::Absent,
            // Retry re-runs the current desired state as a new generation.
            Api::Retry => {}
            Api::DriftInCluster => {
                self.drifted = self.has_deployed;
                return;
            }
        }
        self.generation += 1;
    }

    fn remedy(
        &self,
        origin: FailureOrigin,
        fail: (FailureClass, FailureKind),
        attempts: u32,
    ) -> Remedy {
        remediate(
            &FailedAttempt {
                origin,
                class: fail.0,
                kind: fail.1,
                attempts,
                has_last_good: self.has_deployed,
            },
            &POLICY,
        )
    }

    /// One pass: the action the state machine picks, executed with an optional failure.
    fn pass(&mut self, fail: Option<(FailureClass, FailureKind)>) -> (ReleaseState, Action) {
        let facts = self.facts();
        let (state, action) = next_action(&facts);
        // Preconditions the reconciler relies on (it used to panic on the first).
        match action {
            Action::CheckDrift => assert!(self.has_deployed, "drift check without a revision"),
            Action::Deploy(kind) => {
                assert_eq!(
                    kind == RevisionKind::Install,
                    !self.has_deployed,
                    "{facts:?}"
                );
                assert_eq!(
                    kind == RevisionKind::Rollback,
                    self.has_deployed && self.rollback_requested,
                    "{facts:?}"
                );
            }
            Action::Uninstall => assert_eq!(self.desired, DesiredState::Absent),
            Action::None => {}
        }
        let g = self.generation;
        let attempts = if self.observed == g {
            self.attempts + 1
        } else {
            1
        };
        match action {
            Action::None => {}
            Action::Uninstall => match fail {
                Some(_) => self.attempts = attempts,
                None => self.phase = Phase::Deleted,
            },
            Action::Deploy(kind) => {
                self.observed = g;
                match fail {
                    None => {
                        self.has_deployed = true;
                        self.phase = Phase::Ready;
                        self.failure = None;
                        self.attempts = 0;
                        self.drifted = false;
                    }
                    Some(fail) => {
                        let origin = FailureOrigin::from(kind);
                        let remedy = self.remedy(origin, fail, attempts);
                        self.failure = Some(Failed { origin, remedy });
                        self.attempts = attempts;
                        match remedy {
                            Remedy::Retry => self.phase = Phase::Failed,
                            // The rollback itself is assumed to succeed here.
                            Remedy::RollBack => {
                                self.phase = Phase::Degraded;
                                self.attempts = 0;
                                self.drifted = false;
                            }
                            Remedy::Stall => {
                                self.phase = Phase::Failed;
                                self.stalled_generation = Some(g);
                                self.attempts = 0;
                            }
                        }
                    }
                }
            }
            Action::CheckDrift => {
                let rolled_back = matches!(
                    self.failure,
                    Some(Failed {
                        remedy: Remedy::RollBack,
                        ..
                    })
                );
                match (self.drifted, fail) {
                    (true, Some(fail)) => {
                        let origin = FailureOrigin::DriftCorrection;
                        let remedy = self.remedy(origin, fail, attempts);
                        assert_eq!(remedy, Remedy::Retry, "a correction is only retried");
                        // A rollback's record stays: the failed target is still shown.
                        if !rolled_back {
                            self.failure = Some(Failed { origin, remedy });
                        }
                        self.attempts = attempts;
                    }
                    _ => {
                        self.drifted = false;
                        if !rolled_back {
                            self.failure = None;
                            self.attempts = 0;
                        }
                    }
                }
            }
        }
        (state, action)
    }
}

fn random_failure(rng: &mut StdRng) -> (FailureClass, FailureKind) {
    let class = if rng.random_bool(0.6) {
        FailureClass::Transient
    } else {
        FailureClass::Deterministic
    };
    let kind = match rng.random_range(0..3) {
        0 => FailureKind::Api,
        1 => FailureKind::Unhealthy,
        _ => FailureKind::NeedsChange,
    };
    (class, kind)
}

fn random_api(rng: &mut StdRng) -> Api {
    match rng.random_range(0..20) {
        0..=4 => Api::Update,
        5..=8 => Api::Upgrade,
        9..=11 => Api::Rollback,
        12..=14 => Api::Retry,
        15..=18 => Api::DriftInCluster,
        _ => Api::Delete,
    }
}

#[test]
fn random_histories_keep_one_valid_action_per_state_and_converge_once_failures_stop() {
    for seed in 0..3000u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut m = Model::new();
        let mut history = Vec::new();
        for _ in 0..rng.random_range(1..40) {
            if rng.random_bool(0.3) {
                let a = random_api(&mut rng);
                history.push(format!("{a:?}"));
                m.api(a);
            } else {
                let fail = rng.random_bool(0.5).then(|| random_failure(&mut rng));
                let (state, action) = m.pass(fail);
                history.push(format!("pass {fail:?} -> {state:?}/{action:?}"));
            }
        }
        // Failures stop. A present deployment reaches Ready at its generation;
        // a stalled or rolled-back one needs the user's retry, which is given.
        let mut settled = false;
        for _ in 0..12 {
            let (state, action) = m.pass(None);
            match state {
                ReleaseState::Stalled | ReleaseState::RolledBack => m.api(Api::Retry),
                ReleaseState::Deployed if m.desired == DesiredState::Present => {
                    assert_eq!(action, Action::CheckDrift);
                    settled = true;
                    break;
                }
                ReleaseState::AbsentAndGone => {
                    assert_eq!(action, Action::None);
                    settled = true;
                    break;
                }
                _ => {}
            }
        }
        assert!(settled, "seed {seed} did not converge: {m:?}\n{history:#?}");
        if m.desired == DesiredState::Present {
            assert_eq!(m.phase, Phase::Ready, "seed {seed}");
            assert_eq!(m.observed, m.generation, "seed {seed}");
            assert!(m.failure.is_none(), "seed {seed}");
        }
    }
}
