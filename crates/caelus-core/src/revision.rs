//! Revision words shared by the store, the reconciler, the API and the UI:
//! what kind of change a revision is and how it ended, as types, not strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a revision exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevisionKind {
    /// Nothing was deployed before it.
    Install,
    /// It replaces a deployed revision with a new version or new values.
    Upgrade,
    /// An explicit rollback: it restores an earlier revision's version and values.
    Rollback,
}

impl RevisionKind {
    pub const ALL: [RevisionKind; 3] = [
        RevisionKind::Install,
        RevisionKind::Upgrade,
        RevisionKind::Rollback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevisionKind::Install => "install",
            RevisionKind::Upgrade => "upgrade",
            RevisionKind::Rollback => "rollback",
        }
    }
}

/// How a revision ended (Helm's release statuses, in Caelus's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevisionOutcome {
    /// A pass is working on it.
    Pending,
    /// It runs.
    Deployed,
    /// It was attempted and did not succeed.
    Failed,
    /// It ran until a newer revision was deployed.
    Superseded,
    /// It failed and the deployment went back to an earlier revision.
    RolledBack,
}

impl RevisionOutcome {
    pub const ALL: [RevisionOutcome; 5] = [
        RevisionOutcome::Pending,
        RevisionOutcome::Deployed,
        RevisionOutcome::Failed,
        RevisionOutcome::Superseded,
        RevisionOutcome::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevisionOutcome::Pending => "pending",
            RevisionOutcome::Deployed => "deployed",
            RevisionOutcome::Failed => "failed",
            RevisionOutcome::Superseded => "superseded",
            RevisionOutcome::RolledBack => "rolled-back",
        }
    }

    /// The revision ran at some point, so it is a sensible rollback target.
    pub fn has_run(self) -> bool {
        matches!(
            self,
            RevisionOutcome::Deployed | RevisionOutcome::Superseded
        )
    }
}

macro_rules! words {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::ALL
                    .into_iter()
                    .find(|k| k.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " '{}'"), s))
            }
        }
    };
}

words!(RevisionKind, "revision kind");
words!(RevisionOutcome, "revision outcome");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_match_serde() {
        for k in RevisionKind::ALL {
            assert_eq!(k.as_str().parse::<RevisionKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for o in RevisionOutcome::ALL {
            assert_eq!(o.as_str().parse::<RevisionOutcome>(), Ok(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert!("reinstall".parse::<RevisionKind>().is_err());
    }

    #[test]
    fn only_revisions_that_ran_are_restorable() {
        let ran: Vec<_> = RevisionOutcome::ALL
            .into_iter()
            .filter(|o| o.has_run())
            .collect();
        assert_eq!(
            ran,
            [RevisionOutcome::Deployed, RevisionOutcome::Superseded]
        );
    }
}
