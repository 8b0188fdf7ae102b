//! Engine settings: who Caelus is (field manager, installation id) and the
//! isolation every deployment namespace gets.

use std::time::Duration;

/// Settings of one engine (one Caelus installation).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Written into the `caelus.io/installation` label of every namespace.
    pub installation_id: String,
    /// Server-side apply field manager (`caelus`).
    pub field_manager: String,
    /// ResourceQuota of every deployment namespace; `None` for none.
    pub quota: Option<QuotaDefaults>,
    /// LimitRange (container defaults) of every namespace; `None` for none.
    pub limit_range: Option<LimitRangeDefaults>,
    /// Namespaces whose pods may reach deployment pods through the
    /// default-deny NetworkPolicy (e.g. the ingress controller's).
    pub ingress_namespaces: Vec<String>,
    /// Objects of one kind applied (or read for health) at once.
    pub apply_concurrency: usize,
    /// How often health and hook Jobs are polled (at most; the first
    /// re-checks come sooner, since most objects settle within moments).
    pub health_poll_interval: Duration,
}

impl EngineConfig {
    /// Pause before poll number `round` (0-based): 100 ms, doubling up to
    /// `health_poll_interval`.
    pub(crate) fn poll_pause(&self, round: u32) -> Duration {
        let quick = Duration::from_millis(100).saturating_mul(1 << round.min(16));
        quick.min(self.health_poll_interval)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            installation_id: "caelus".into(),
            field_manager: "caelus".into(),
            quota: Some(QuotaDefaults::default()),
            limit_range: Some(LimitRangeDefaults::default()),
            ingress_namespaces: Vec::new(),
            apply_concurrency: 8,
            health_poll_interval: Duration::from_secs(2),
        }
    }
}

/// `ResourceQuota.spec.hard` of each namespace, as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub requests_cpu: String,
    pub requests_memory: String,
    pub limits_cpu: String,
    pub limits_memory: String,
    pub requests_storage: String,
    pub pods: u32,
    pub persistent_volume_claims: u32,
    pub services: u32,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        QuotaDefaults {
            requests_cpu: "4".into(),
            requests_memory: "8Gi".into(),
            limits_cpu: "8".into(),
            limits_memory: "16Gi".into(),
            requests_storage: "100Gi".into(),
            pods: 50,
            persistent_volume_claims: 20,
            services: 20,
        }
    }
}

/// Container defaults of each namespace's LimitRange, so pods without
/// resources still count against the quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRangeDefaults {
    pub default_request_cpu: String,
    pub default_request_memory: String,
    pub default_limit_cpu: String,
    pub default_limit_memory: String,
}

impl Default for LimitRangeDefaults {
    fn default() -> Self {
        LimitRangeDefaults {
            default_request_cpu: "100m".into(),
            default_request_memory: "128Mi".into(),
            default_limit_cpu: "500m".into(),
            default_limit_memory: "512Mi".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_starts_quick_and_backs_off_to_the_interval() {
        let c = EngineConfig {
            health_poll_interval: Duration::from_secs(2),
            ..Default::default()
        };
        let pauses: Vec<u128> = (0..7).map(|r| c.poll_pause(r).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(c.poll_pause(u32::MAX), Duration::from_secs(2));
    }
}
