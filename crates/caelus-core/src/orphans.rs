//! Which cluster objects Caelus left behind (design §9): the pure rule an
//! orphan scan applies to every object carrying this installation's label,
//! given what the database says at that moment. The adapter re-asks it with
//! a fresh read of the database right before it deletes anything.
//!
//! Never an orphan: anything without this installation's label (or labelled
//! for another installation), anything younger than the grace period,
//! anything another object owns (the garbage collector's job), and anything
//! the database still accounts for.

use std::fmt;
use std::time::Duration;

/// Identity of an object across API versions: (group, kind, namespace, name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// What an object is, for the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A deployment namespace.
    Namespace,
    /// An object inside a namespace.
    Namespaced,
    /// A cluster-scoped object a chart created (allowed by a capability).
    ClusterScoped,
    /// A `CaelusDeployment` projection of this deployment uid.
    DeploymentProjection { uid: String },
    /// A `CaelusTemplate` projection of this template version id.
    TemplateProjection { template_version_id: String },
}

/// One object as the scan saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: ObjectKey,
    pub shape: Shape,
    /// The `caelus.io/installation` label, if any.
    pub installation: Option<String>,
    /// The `caelus.io/deployment-uid` label, if any.
    pub deployment_uid: Option<String>,
    /// Time since `metadata.creationTimestamp`.
    pub age: Duration,
    /// Has `metadata.ownerReferences`: its owner's deletion collects it.
    pub owned: bool,
    /// Carries `helm.sh/hook`: a hook of its deployment.
    pub hook: bool,
    /// Being deleted (`deletionTimestamp` set), with the finalizers that hold it.
    pub terminating: Option<Vec<String>>,
}

/// What the database says about one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentRecord {
    /// No row.
    Missing,
    /// The row is a tombstone (phase `Deleted`).
    Deleted,
    /// The row exists and is not `Deleted` (including one being deleted).
    Live {
        namespace: String,
        /// Its desired state is absent (Deleting, DeletionBlocked).
        being_deleted: bool,
        /// Its current inventory plus its isolation objects: everything
        /// Caelus put in the namespace for it.
        accounted: Vec<ObjectKey>,
        /// A worker holds an unexpired lease on it to deploy a generation
        /// not deployed yet: the pass may be applying objects no inventory
        /// lists (the revision that lists them commits with the pass).
        /// A pass that only checks drift applies nothing new.
        pass_in_flight: bool,
    },
}

/// What the database says about the rows a candidate may belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The deployment the candidate belongs to: the one whose namespace it
    /// is (or is in), else the one its uid label names.
    pub deployment: DeploymentRecord,
    /// For template projections: whether the template version row exists.
    pub template_exists: bool,
}

/// Why something is an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    DeploymentMissing,
    DeploymentDeleted,
    NotInInventory,
    UnknownTemplate,
    /// A namespace held by finalizers while its deployment is being deleted.
    DeletionBlocked,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::DeploymentMissing => "its deployment does not exist in the database",
            Reason::DeploymentDeleted => "its deployment is Deleted",
            Reason::NotInInventory => {
                "not in its live deployment's current inventory (left behind, e.g. by a crash mid-prune)"
            }
            Reason::UnknownTemplate => "its template version does not exist in the database",
            Reason::DeletionBlocked => {
                "its deployment is being deleted and the namespace is held by finalizers"
            }
        })
    }
}

/// Why something is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// No `caelus.io/installation` label, or another installation's.
    NotOurs,
    /// Younger than the grace period: a creation may be in flight.
    TooYoung,
    /// Another object owns it.
    Owned,
    /// The database accounts for it.
    Accounted,
    /// Its deployment's new generation is being deployed and may include it.
    PassInFlight,
    /// A namespaced object inside a namespace that is itself the orphan:
    /// deleting the namespace removes it.
    InOrphanNamespace,
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Keep::NotOurs => "not labelled for this installation",
            Keep::TooYoung => "younger than the grace period",
            Keep::Owned => "another object owns it",
            Keep::Accounted => "the database accounts for it now",
            Keep::PassInFlight => {
                "its deployment's new generation is being deployed and may include it"
            }
            Keep::InOrphanNamespace => "its namespace is the orphan",
        })
    }
}

/// The rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep(Keep),
    /// Delete it.
    Orphan(Reason),
    /// An orphan already being deleted but held by finalizers: reported with
    /// them, never forced (Caelus does not strip finalizers).
    Stuck {
        reason: Reason,
        finalizers: Vec<String>,
    },
}

impl Verdict {
    /// Whether a scan lists it.
    pub fn is_reported(&self) -> bool {
        !matches!(self, Verdict::Keep(_))
    }
}

/// Judges one candidate of installation `installation_id`.
pub fn judge(installation_id: &str, min_age: Duration, c: &Candidate, facts: &Facts) -> Verdict {
    if c.installation.as_deref() != Some(installation_id) {
        return Verdict::Keep(Keep::NotOurs);
    }
    if c.age < min_age {
        return Verdict::Keep(Keep::TooYoung);
    }
    if c.owned {
        return Verdict::Keep(Keep::Owned);
    }
    let reason = match &c.shape {
        Shape::TemplateProjection { .. } => {
            if facts.template_exists {
                return Verdict::Keep(Keep::Accounted);
            }
            Reason::UnknownTemplate
        }
        Shape::Namespace | Shape::DeploymentProjection { .. } => match &facts.deployment {
            DeploymentRecord::Missing => Reason::DeploymentMissing,
            DeploymentRecord::Deleted => Reason::DeploymentDeleted,
            // Reported so an operator sees what holds it; the deployment's
            // own passes keep waiting for it (and never strip finalizers).
            DeploymentRecord::Live {
                being_deleted: true,
                ..
            } if c.shape == Shape::Namespace && c.terminating.is_some() => Reason::DeletionBlocked,
            DeploymentRecord::Live { .. } => return Verdict::Keep(Keep::Accounted),
        },
        Shape::Namespaced | Shape::ClusterScoped => match &facts.deployment {
            DeploymentRecord::Missing | DeploymentRecord::Deleted
                if c.shape == Shape::Namespaced =>
            {
                return Verdict::Keep(Keep::InOrphanNamespace);
            }
            DeploymentRecord::Missing => Reason::DeploymentMissing,
            DeploymentRecord::Deleted => Reason::DeploymentDeleted,
            DeploymentRecord::Live {
                accounted,
                pass_in_flight,
                ..
            } => {
                // Hooks are run and deleted by their deployment's passes
                // (per their delete policy, and all at uninstall).
                if c.hook || accounted.iter().any(|k| same_object(k, &c.key)) {
                    return Verdict::Keep(Keep::Accounted);
                }
                // Whatever the grace period: the inventory catches up only
                // when the pass commits. Once the lease lapses (a crashed
                // worker), what the pass left behind is judged again.
                if *pass_in_flight {
                    return Verdict::Keep(Keep::PassInFlight);
                }
                Reason::NotInInventory
            }
        },
    };
    match &c.terminating {
        Some(finalizers) => Verdict::Stuck {
            reason,
            finalizers: finalizers.clone(),
        },
        None => Verdict::Orphan(reason),
    }
}

/// Cluster-scoped inventory entries carry no namespace; namespaced ones may
/// have been recorded before their namespace was filled in.
fn same_object(accounted: &ObjectKey, seen: &ObjectKey) -> bool {
    accounted.group == seen.group
        && accounted.kind == seen.kind
        && accounted.name == seen.name
        && (accounted.namespace.is_none() || accounted.namespace == seen.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn key(kind: &str, ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: kind.into(),
            namespace: ns.map(str::to_string),
            name: name.into(),
        }
    }

    fn candidate(shape: Shape, k: ObjectKey) -> Candidate {
        Candidate {
            key: k,
            shape,
            installation: Some("prod".into()),
            deployment_uid: Some("u1".into()),
            age: 2 * HOUR,
            owned: false,
            hook: false,
            terminating: None,
        }
    }

    fn live(accounted: Vec<ObjectKey>) -> Facts {
        live_deleting(accounted, false)
    }

    fn live_deleting(accounted: Vec<ObjectKey>, being_deleted: bool) -> Facts {
        Facts {
            deployment: DeploymentRecord::Live {
                namespace: "d-u1".into(),
                being_deleted,
                accounted,
                pass_in_flight: false,
            },
            template_exists: false,
        }
    }

    fn of(deployment: DeploymentRecord) -> Facts {
        Facts {
            deployment,
            template_exists: false,
        }
    }

    #[test]
    fn the_rule_table() {
        let ns = || candidate(Shape::Namespace, key("Namespace", None, "d-u1"));
        let cm = || candidate(Shape::Namespaced, key("ConfigMap", Some("d-u1"), "old"));
        let cr = || candidate(Shape::ClusterScoped, key("ClusterRole", None, "u1-reader"));
        let dp = || {
            candidate(
                Shape::DeploymentProjection { uid: "u1".into() },
                key("CaelusDeployment", Some("d-u1"), "u1"),
            )
        };
        let tp = || {
            candidate(
                Shape::TemplateProjection {
                    template_version_id: "t1".into(),
                },
                key("CaelusTemplate", None, "web-1.0.0"),
            )
        };
        use DeploymentRecord::{Deleted, Missing};
        let orphan = Verdict::Orphan;
        let keep = Verdict::Keep;
        let cases: Vec<(&str, Candidate, Facts, Verdict)> = vec![
            (
                "namespace of a missing deployment",
                ns(),
                of(Missing),
                orphan(Reason::DeploymentMissing),
            ),
            (
                "namespace of a Deleted deployment",
                ns(),
                of(Deleted),
                orphan(Reason::DeploymentDeleted),
            ),
            (
                "namespace of a live deployment",
                ns(),
                live(vec![]),
                keep(Keep::Accounted),
            ),
            (
                "namespace of a deployment being deleted is still accounted",
                ns(),
                live_deleting(vec![], true),
                keep(Keep::Accounted),
            ),
            (
                "left-over object of a live deployment",
                cm(),
                live(vec![]),
                orphan(Reason::NotInInventory),
            ),
            (
                "inventory object",
                cm(),
                live(vec![key("ConfigMap", Some("d-u1"), "old")]),
                keep(Keep::Accounted),
            ),
            (
                "same name, other kind is not the inventory object",
                cm(),
                live(vec![key("Secret", Some("d-u1"), "old")]),
                orphan(Reason::NotInInventory),
            ),
            (
                "object inside an orphan namespace",
                cm(),
                of(Missing),
                keep(Keep::InOrphanNamespace),
            ),
            (
                "cluster object of a missing deployment",
                cr(),
                of(Missing),
                orphan(Reason::DeploymentMissing),
            ),
            (
                "cluster object of a Deleted deployment",
                cr(),
                of(Deleted),
                orphan(Reason::DeploymentDeleted),
            ),
            (
                "cluster object in the inventory (no namespace recorded)",
                cr(),
                live(vec![key("ClusterRole", None, "u1-reader")]),
                keep(Keep::Accounted),
            ),
            (
                "cluster object not in the inventory",
                cr(),
                live(vec![]),
                orphan(Reason::NotInInventory),
            ),
            (
                "projection of a missing deployment",
                dp(),
                of(Missing),
                orphan(Reason::DeploymentMissing),
            ),
            (
                "projection of a live deployment",
                dp(),
                live(vec![]),
                keep(Keep::Accounted),
            ),
            (
                "projection of an unknown template",
                tp(),
                of(Missing),
                orphan(Reason::UnknownTemplate),
            ),
            (
                "projection of a known template",
                tp(),
                Facts {
                    deployment: Missing,
                    template_exists: true,
                },
                keep(Keep::Accounted),
            ),
        ];
        for (name, c, facts, want) in cases {
            assert_eq!(judge("prod", HOUR, &c, &facts), want, "{name}");
        }
    }

    #[test]
    fn never_touched_unlabelled_foreign_young_or_owned() {
        let base = candidate(Shape::Namespace, key("Namespace", None, "d-u1"));
        let missing = of(DeploymentRecord::Missing);
        let unlabelled = Candidate {
            installation: None,
            ..base.clone()
        };
        let foreign = Candidate {
            installation: Some("staging".into()),
            ..base.clone()
        };
        let young = Candidate {
            age: Duration::from_secs(59 * 60),
            ..base.clone()
        };
        let owned = Candidate {
            owned: true,
            ..base.clone()
        };
        assert_eq!(
            judge("prod", HOUR, &unlabelled, &missing),
            Verdict::Keep(Keep::NotOurs)
        );
        assert_eq!(
            judge("prod", HOUR, &foreign, &missing),
            Verdict::Keep(Keep::NotOurs)
        );
        assert_eq!(
            judge("prod", HOUR, &young, &missing),
            Verdict::Keep(Keep::TooYoung)
        );
        assert_eq!(
            judge("prod", HOUR, &owned, &missing),
            Verdict::Keep(Keep::Owned)
        );
        assert!(!judge("prod", HOUR, &young, &missing).is_reported());
        // The grace period is a floor: exactly min_age old is judged.
        let aged = Candidate { age: HOUR, ..base };
        assert!(judge("prod", HOUR, &aged, &missing).is_reported());
    }

    #[test]
    fn hooks_of_a_live_deployment_are_its_own() {
        let hook = Candidate {
            hook: true,
            ..candidate(Shape::Namespaced, key("Job", Some("d-u1"), "migrate"))
        };
        assert_eq!(
            judge("prod", HOUR, &hook, &live(vec![])),
            Verdict::Keep(Keep::Accounted)
        );
    }

    #[test]
    fn what_a_deploying_pass_applies_is_kept_until_its_lease_lapses() {
        let fresh = candidate(Shape::Namespaced, key("ConfigMap", Some("d-u1"), "new"));
        let mut facts = live(vec![]);
        if let DeploymentRecord::Live { pass_in_flight, .. } = &mut facts.deployment {
            *pass_in_flight = true;
        }
        // Even with no grace period at all.
        assert_eq!(
            judge("prod", Duration::ZERO, &fresh, &facts),
            Verdict::Keep(Keep::PassInFlight)
        );
        assert_eq!(
            judge("prod", Duration::ZERO, &fresh, &live(vec![])),
            Verdict::Orphan(Reason::NotInInventory)
        );
    }

    #[test]
    fn a_terminating_orphan_is_reported_with_its_finalizers_not_deleted_again() {
        let ns = Candidate {
            terminating: Some(vec!["kubernetes".into()]),
            ..candidate(Shape::Namespace, key("Namespace", None, "d-u1"))
        };
        let v = judge("prod", HOUR, &ns, &of(DeploymentRecord::Deleted));
        assert_eq!(
            v,
            Verdict::Stuck {
                reason: Reason::DeploymentDeleted,
                finalizers: vec!["kubernetes".into()]
            }
        );
        assert!(v.is_reported());
        let blocked = judge("prod", HOUR, &ns, &live_deleting(vec![], true));
        assert_eq!(
            blocked,
            Verdict::Stuck {
                reason: Reason::DeletionBlocked,
                finalizers: vec!["kubernetes".into()]
            }
        );
        // A live deployment's namespace terminating is the deployment's business.
        assert_eq!(
            judge("prod", HOUR, &ns, &live(vec![])),
            Verdict::Keep(Keep::Accounted)
        );
    }
}
