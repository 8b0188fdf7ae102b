//! Template version lifecycle: draft → published → deprecated → retired, forward only.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Editable; not visible to tenants, cannot be deployed.
    Draft,
    /// Immutable; deployable.
    Published,
    /// Immutable; still deployable and upgradable-to, with a warning.
    Deprecated,
    /// Immutable; no new deployments or upgrades to it. Running ones keep running.
    Retired,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 4] = [
        Lifecycle::Draft,
        Lifecycle::Published,
        Lifecycle::Deprecated,
        Lifecycle::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Draft => "draft",
            Lifecycle::Published => "published",
            Lifecycle::Deprecated => "deprecated",
            Lifecycle::Retired => "retired",
        }
    }

    /// Once published, the chart, schema, allowlist and capabilities are frozen.
    pub fn is_immutable(self) -> bool {
        self != Lifecycle::Draft
    }

    /// Versions new deployments may use.
    pub fn is_deployable(self) -> bool {
        matches!(self, Lifecycle::Published | Lifecycle::Deprecated)
    }

    /// Versions a tenant may see in the catalog.
    pub fn is_visible_to_tenants(self) -> bool {
        self.is_deployable()
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lifecycle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lifecycle::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("unknown lifecycle state '{s}'"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot move template version from {from} to {to}: {reason}")]
pub struct IllegalTransition {
    pub from: Lifecycle,
    pub to: Lifecycle,
    pub reason: &'static str,
}

/// Checks one lifecycle move. Only forward moves that make sense are allowed:
/// a draft is published; a published version is deprecated or retired; a deprecated one retired.
pub fn transition(from: Lifecycle, to: Lifecycle) -> Result<Lifecycle, IllegalTransition> {
    use Lifecycle::*;
    let reason = match (from, to) {
        (Draft, Published)
        | (Published, Deprecated)
        | (Published, Retired)
        | (Deprecated, Retired) => {
            return Ok(to);
        }
        (a, b) if a == b => "it is already in that state",
        (a, b) if b < a => {
            "the lifecycle only moves forward (draft → published → deprecated → retired)"
        }
        (Draft, _) => "a draft must be published first",
        _ => "that move is not allowed",
    };
    Err(IllegalTransition { from, to, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifecycle::*;

    #[test]
    fn allowed_moves() {
        assert_eq!(transition(Draft, Published), Ok(Published));
        assert_eq!(transition(Published, Deprecated), Ok(Deprecated));
        assert_eq!(transition(Published, Retired), Ok(Retired));
        assert_eq!(transition(Deprecated, Retired), Ok(Retired));
    }

    #[test]
    fn every_other_move_is_refused_with_a_reason() {
        let allowed = [
            (Draft, Published),
            (Published, Deprecated),
            (Published, Retired),
            (Deprecated, Retired),
        ];
        for from in Lifecycle::ALL {
            for to in Lifecycle::ALL {
                let r = transition(from, to);
                assert_eq!(r.is_ok(), allowed.contains(&(from, to)), "{from} -> {to}");
                if let Err(e) = r {
                    assert!(!e.reason.is_empty());
                    assert!(e.to_string().contains(from.as_str()));
                }
            }
        }
    }

    #[test]
    fn backwards_says_forward_only() {
        let e = transition(Retired, Published).unwrap_err();
        assert!(e.reason.contains("only moves forward"));
    }

    #[test]
    fn round_trips_names() {
        for l in Lifecycle::ALL {
            assert_eq!(l.as_str().parse::<Lifecycle>(), Ok(l));
        }
        assert!("gone".parse::<Lifecycle>().is_err());
    }

    #[test]
    fn only_drafts_are_mutable_and_only_published_or_deprecated_deployable() {
        assert!(!Draft.is_immutable());
        assert!(Published.is_immutable() && Deprecated.is_immutable() && Retired.is_immutable());
        assert!(!Draft.is_deployable() && !Retired.is_deployable());
        assert!(Published.is_deployable() && Deprecated.is_deployable());
    }
}
