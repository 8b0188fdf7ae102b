//! apiVersion/kind → API resource and scope, from the cluster's discovery.
//! Discovery runs once and is cached; an unknown kind refreshes it (a CRD
//! installed since) before the kind is reported as unknown.

use std::sync::{Arc, RwLock};

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Discovery, Scope};

use crate::error::{EngineError, Result};

/// A kind the cluster serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Resolved {
    pub ar: ApiResource,
    pub namespaced: bool,
}

impl Resolved {
    /// The API for objects of this kind in `namespace` (ignored for
    /// cluster-scoped kinds).
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &self.ar),
            _ => Api::all_with(client.clone(), &self.ar),
        }
    }
}

pub(crate) struct Resolver {
    client: Client,
    cache: RwLock<Option<Arc<Discovery>>>,
    /// One refresh at a time; others wait for it and reuse its answer.
    refresh: tokio::sync::Mutex<()>,
}

fn gvk_of(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

fn lookup(discovery: &Discovery, gvk: &GroupVersionKind) -> Option<Resolved> {
    discovery.resolve_gvk(gvk).map(|(ar, caps)| Resolved {
        ar,
        namespaced: caps.scope == Scope::Namespaced,
    })
}

impl Resolver {
    pub fn new(client: Client) -> Self {
        Resolver {
            client,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Arc<Discovery>> {
        self.cache.read().expect("discovery lock").clone()
    }

    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Resolved> {
        let gvk = gvk_of(api_version, kind);
        let before = self.cached();
        if let Some(r) = before.as_deref().and_then(|d| lookup(d, &gvk)) {
            return Ok(r);
        }
        let _guard = self.refresh.lock().await;
        // Someone else may have refreshed while we waited for the lock.
        let now = self.cached();
        let fresh = match (&before, &now) {
            (Some(a), Some(b)) if !Arc::ptr_eq(a, b) => b.clone(),
            (None, Some(b)) => b.clone(),
            _ => {
                let d = Arc::new(self.run_discovery().await?);
                *self.cache.write().expect("discovery lock") = Some(d.clone());
                d
            }
        };
        lookup(&fresh, &gvk).ok_or_else(|| EngineError::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })
    }

    /// A fresh discovery (also replacing the cache): for a scan that must
    /// see every kind the cluster serves now.
    pub async fn refreshed(&self) -> Result<Arc<Discovery>> {
        let _guard = self.refresh.lock().await;
        let d = Arc::new(self.run_discovery().await?);
        *self.cache.write().expect("discovery lock") = Some(d.clone());
        Ok(d)
    }

    /// Aggregated discovery (two requests) when the server offers it, the
    /// per-group walk otherwise. A server may answer the aggregated request
    /// with the plain `APIGroupList` (content negotiation lets it); kube-rs
    /// then reads no groups at all, so an answer without the core group
    /// counts as "not offered".
    async fn run_discovery(&self) -> Result<Discovery> {
        match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) if d.has_group("") => return Ok(d),
            Ok(_) => tracing::debug!("aggregated discovery not offered, walking groups"),
            Err(e) => {
                tracing::debug!(error = %e, "aggregated discovery unavailable, walking groups")
            }
        }
        Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(|e| EngineError::api("discovery", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_grouped_api_versions_split_into_group_and_version() {
        let g = gvk_of("v1", "ConfigMap");
        assert_eq!((g.group.as_str(), g.version.as_str()), ("", "v1"));
        let g = gvk_of("networking.k8s.io/v1", "NetworkPolicy");
        assert_eq!(
            (g.group.as_str(), g.version.as_str()),
            ("networking.k8s.io", "v1")
        );
    }
}
