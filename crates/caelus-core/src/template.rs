//! Template versions: what an admin publishes, and the rule that published ones never change.

use crate::FieldError;
use crate::lifecycle::Lifecycle;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Pod Security Standard level set on the deployment's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    Privileged,
    #[default]
    Baseline,
    Restricted,
}

/// What the reconciler does when live objects drift from what Caelus applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    /// Report and re-apply: the database wins.
    #[default]
    Correct,
    /// Report only.
    Warn,
    /// Do not look.
    Off,
}

fn default_true() -> bool {
    true
}

fn default_health_timeout() -> u32 {
    300
}

/// Fields of a template's objects that others legitimately own (an
/// autoscaler's `/spec/replicas`, a webhook's injected annotation): neither
/// reported as drift nor reverted by a correction. Like Flux's
/// `driftDetection.ignore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftIgnoreRule {
    /// The kind the rule applies to (`Deployment`); every kind when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// JSON pointers (RFC 6901) into the object as rendered, like
    /// `/spec/replicas`; a `*` segment matches any one field or list position.
    pub paths: Vec<String>,
}

/// Capability flags of a template version: what deployments of it may do and need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Only an admin may upgrade a deployment to this version.
    #[serde(default)]
    pub upgrade_requires_admin: bool,
    /// The chart may create cluster-scoped objects (ClusterRole, …).
    #[serde(default)]
    pub allow_cluster_scoped: bool,
    /// ClusterRoles the chart's RoleBindings (and, with
    /// `allow_cluster_scoped`, ClusterRoleBindings) may reference; by
    /// default none (see `caelus_core::rbac`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cluster_roles: Vec<String>,
    /// Pod Security level: every rendered pod template is checked against
    /// it, and the namespace enforces it.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    #[serde(default)]
    pub drift_mode: DriftMode,
    /// Roll back to the last good revision when an upgrade fails.
    #[serde(default = "default_true")]
    pub rollback_on_failure: bool,
    /// How long a revision may take to become healthy.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_seconds: u32,
    /// Fields drift detection leaves alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift_ignore: Vec<DriftIgnoreRule>,
    /// Secret keys a deployment's owner may read (`GET …/connection`), audited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_secrets: Vec<crate::reach::ConnectionSecret>,
    /// Deleting a deployment keeps its namespace and PersistentVolumeClaims
    /// unless the request says otherwise (`keep_volumes=false`); `purge`
    /// removes them. Off by default: a delete deletes.
    #[serde(default)]
    pub keep_volumes_on_delete: bool,
    /// StatefulSet changes Kubernetes forbids (claim growth, selector,
    /// serviceName, podManagementPolicy): refused (the default), or carried
    /// out keeping the data (`recreate`, see `caelus_core::statefulset`).
    #[serde(default)]
    pub statefulset_updates: crate::statefulset::StatefulSetUpdates,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            upgrade_requires_admin: false,
            allow_cluster_scoped: false,
            allowed_cluster_roles: Vec::new(),
            pod_security: PodSecurityLevel::default(),
            drift_mode: DriftMode::default(),
            rollback_on_failure: true,
            health_timeout_seconds: default_health_timeout(),
            drift_ignore: Vec::new(),
            connection_secrets: Vec::new(),
            keep_volumes_on_delete: false,
            statefulset_updates: Default::default(),
        }
    }
}

impl Capabilities {
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        if !(1..=86_400).contains(&self.health_timeout_seconds) {
            return Err(FieldError::new(
                format!("{field}.health_timeout_seconds"),
                "must be between 1 and 86400 seconds",
            ));
        }
        for (i, c) in self.connection_secrets.iter().enumerate() {
            c.validate(&format!("{field}.connection_secrets[{i}]"))?;
        }
        for (i, role) in self.allowed_cluster_roles.iter().enumerate() {
            // ClusterRole names are path segments: non-empty, no '/' or '%',
            // not '.' or '..' (`system:` names contain ':', which is fine).
            let bad = role.is_empty()
                || role.len() > 253
                || role == "."
                || role == ".."
                || role.contains(['/', '%'])
                || role.chars().any(char::is_whitespace);
            if bad {
                return Err(FieldError::new(
                    format!("{field}.allowed_cluster_roles[{i}]"),
                    "must be a ClusterRole name (like view), without '/', '%' or spaces",
                ));
            }
        }
        for (i, rule) in self.drift_ignore.iter().enumerate() {
            let at = format!("{field}.drift_ignore[{i}]");
            if rule.paths.is_empty() {
                return Err(FieldError::new(
                    format!("{at}.paths"),
                    "must name at least one field (a JSON pointer like /spec/replicas)",
                ));
            }
            if rule.kind.as_deref() == Some("") {
                return Err(FieldError::new(
                    format!("{at}.kind"),
                    "must be a kind (like Deployment) or left out for every kind",
                ));
            }
            for (j, path) in rule.paths.iter().enumerate() {
                crate::drift::validate_ignore_pointer(path)
                    .map_err(|reason| FieldError::new(format!("{at}.paths[{j}]"), reason))?;
            }
        }
        Ok(())
    }
}

/// Checks a template version string: strict semver, no leading 'v'.
pub fn parse_version(field: &str, version: &str) -> Result<semver::Version, FieldError> {
    semver::Version::parse(version).map_err(|e| {
        FieldError::new(
            field,
            format!("'{version}' is not a semantic version (e.g. 1.2.3): {e}"),
        )
    })
}

/// The parts of a template version that are frozen once it is published.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenSpec<'a> {
    pub chart_ref: &'a str,
    pub values_schema: Option<&'a Value>,
    pub values_allowlist: &'a [String],
    pub capabilities: &'a Capabilities,
    pub default_values: &'a Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "template version {version} of product '{product}' is {lifecycle} and immutable (attempted to change: {}); publish a new version (e.g. {next}) with the change instead",
    changed.join(", ")
)]
pub struct ImmutableVersion {
    pub product: String,
    pub version: String,
    pub lifecycle: Lifecycle,
    pub changed: Vec<&'static str>,
    pub next: String,
}

/// Which frozen fields differ between two specs.
pub fn changed_fields(old: &FrozenSpec<'_>, new: &FrozenSpec<'_>) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.chart_ref != new.chart_ref {
        changed.push("chart");
    }
    if old.values_schema != new.values_schema {
        changed.push("values_schema");
    }
    if old.values_allowlist != new.values_allowlist {
        changed.push("values_allowlist");
    }
    if old.capabilities != new.capabilities {
        changed.push("capabilities");
    }
    if old.default_values != new.default_values {
        changed.push("default_values");
    }
    changed
}

/// A draft may change freely; anything else may not change at all.
pub fn check_change(
    product: &str,
    version: &str,
    lifecycle: Lifecycle,
    old: &FrozenSpec<'_>,
    new: &FrozenSpec<'_>,
) -> Result<(), ImmutableVersion> {
    let changed = changed_fields(old, new);
    if !lifecycle.is_immutable() || changed.is_empty() {
        return Ok(());
    }
    let next = semver::Version::parse(version)
        .map(|v| semver::Version::new(v.major, v.minor, v.patch + 1).to_string())
        .unwrap_or_else(|_| "a higher version".to_string());
    Err(ImmutableVersion {
        product: product.to_string(),
        version: version.to_string(),
        lifecycle,
        changed,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capabilities_defaults_are_safe() {
        let c: Capabilities = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c, Capabilities::default());
        assert!(!c.allow_cluster_scoped);
        assert!(c.rollback_on_failure);
        assert_eq!(c.drift_mode, DriftMode::Correct);
        assert_eq!(c.pod_security, PodSecurityLevel::Baseline);
    }

    #[test]
    fn capabilities_refuse_unknown_flags() {
        let r: Result<Capabilities, _> = serde_json::from_value(json!({"root_access": true}));
        assert!(r.unwrap_err().to_string().contains("root_access"));
    }

    #[test]
    fn health_timeout_bounds() {
        let c = Capabilities {
            health_timeout_seconds: 0,
            ..Default::default()
        };
        assert_eq!(
            c.validate("capabilities").unwrap_err().field,
            "capabilities.health_timeout_seconds"
        );
    }

    #[test]
    fn allowed_cluster_roles_default_to_none_and_are_names() {
        let c: Capabilities = serde_json::from_value(
            json!({"allowed_cluster_roles": ["view", "system:aggregate-to-view"]}),
        )
        .unwrap();
        assert!(c.validate("capabilities").is_ok());
        assert!(Capabilities::default().allowed_cluster_roles.is_empty());
        assert!(
            serde_json::to_value(Capabilities::default()).unwrap()["allowed_cluster_roles"]
                .is_null()
        );
        let bad = Capabilities {
            allowed_cluster_roles: vec!["view".into(), "a/b".into()],
            ..Default::default()
        };
        assert_eq!(
            bad.validate("capabilities").unwrap_err().field,
            "capabilities.allowed_cluster_roles[1]"
        );
    }

    #[test]
    fn drift_ignore_rules_name_json_pointers() {
        let with = |kind: Option<&str>, paths: &[&str]| Capabilities {
            drift_ignore: vec![DriftIgnoreRule {
                kind: kind.map(str::to_string),
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }],
            ..Default::default()
        };
        assert!(
            with(Some("Deployment"), &["/spec/replicas"])
                .validate("capabilities")
                .is_ok()
        );
        let e = with(Some("Deployment"), &["/spec/replicas", "spec.replicas"])
            .validate("capabilities")
            .unwrap_err();
        assert_eq!(e.field, "capabilities.drift_ignore[0].paths[1]");
        let e = with(None, &[]).validate("capabilities").unwrap_err();
        assert_eq!(e.field, "capabilities.drift_ignore[0].paths");
        let e = with(Some(""), &["/a"])
            .validate("capabilities")
            .unwrap_err();
        assert_eq!(e.field, "capabilities.drift_ignore[0].kind");
        // Stored and read back as part of the version's capabilities.
        let caps = with(Some("Deployment"), &["/spec/replicas"]);
        let json = serde_json::to_value(&caps).unwrap();
        assert_eq!(
            json["drift_ignore"],
            serde_json::json!([{"kind": "Deployment", "paths": ["/spec/replicas"]}])
        );
        assert_eq!(serde_json::from_value::<Capabilities>(json).unwrap(), caps);
        assert!(
            serde_json::to_value(Capabilities::default()).unwrap()["drift_ignore"].is_null(),
            "no rules: not written, so older rows read the same"
        );
    }

    #[test]
    fn versions_are_strict_semver() {
        assert!(parse_version("version", "1.2.3").is_ok());
        assert!(parse_version("version", "1.2.3-rc.1+build.5").is_ok());
        for bad in ["v1.2.3", "1.2", "latest", ""] {
            assert_eq!(parse_version("version", bad).unwrap_err().field, "version");
        }
    }

    fn spec<'a>(
        chart: &'a str,
        allow: &'a [String],
        caps: &'a Capabilities,
        defaults: &'a Value,
    ) -> FrozenSpec<'a> {
        FrozenSpec {
            chart_ref: chart,
            values_schema: None,
            values_allowlist: allow,
            capabilities: caps,
            default_values: defaults,
        }
    }

    #[test]
    fn published_versions_are_immutable_and_the_message_says_what_to_do() {
        let caps = Capabilities::default();
        let other_caps = Capabilities {
            allow_cluster_scoped: true,
            ..Default::default()
        };
        let allow = vec!["a".to_string()];
        let d = json!({});
        let old = spec("oci://r/c@sha256:1", &allow, &caps, &d);
        let new = spec("oci://r/c@sha256:2", &allow, &other_caps, &d);
        for lc in [
            Lifecycle::Published,
            Lifecycle::Deprecated,
            Lifecycle::Retired,
        ] {
            let e = check_change("wiki", "1.4.2", lc, &old, &new).unwrap_err();
            assert_eq!(e.changed, vec!["chart", "capabilities"]);
            let msg = e.to_string();
            assert!(msg.contains("immutable"), "{msg}");
            assert!(msg.contains("publish a new version (e.g. 1.4.3)"), "{msg}");
        }
        assert!(check_change("wiki", "1.4.2", Lifecycle::Draft, &old, &new).is_ok());
    }

    #[test]
    fn identical_resubmission_is_not_a_change() {
        let caps = Capabilities::default();
        let allow = vec![];
        let d = json!({"x": 1});
        let s = spec("oci://r/c@sha256:1", &allow, &caps, &d);
        assert!(check_change("wiki", "1.0.0", Lifecycle::Published, &s, &s.clone()).is_ok());
    }
}
