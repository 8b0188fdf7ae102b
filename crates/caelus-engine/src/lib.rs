//! Caelus's apply engine: turns rendered objects into a converged, healthy
//! namespace on any conformant Kubernetes cluster (kube-rs), and reports
//! what drifted or what blocks a deletion.
//!
//! One [`Engine`] per process, cloned freely. The reconciler calls, per pass:
//! [`Engine::ensure_namespace`], then [`Engine::apply`] (hooks, ordered
//! server-side apply, prune, health) or [`Engine::detect_drift`], and
//! [`Engine::uninstall`] when a deployment is deleted.

mod apply;
mod calls;
mod config;
mod drift;
mod error;
mod health;
mod hooks;
mod lookup;
mod namespace;
mod object;
mod openapi;
mod orphans;
mod ownership;
mod projection;
mod prune;
mod reach;
mod resolve;
mod scope;
mod statefulset;
mod uninstall;
mod watches;

use std::sync::Arc;

pub use apply::{ApplyOutcome, ApplyRequest, Progress};
pub use config::{EngineConfig, LimitRangeDefaults, QuotaDefaults};
pub use drift::{Drift, LiveState, drifted_fields};
pub use error::{EngineError, Result};
pub use health::{FAILED, HEALTHY, MISSING, PROGRESSING, object_health};
pub use hooks::TestResult;
pub use lookup::LookupScope;
pub use namespace::{
    LIMIT_RANGE_NAME, NETWORK_POLICY_NAME, NamespaceTarget, QUOTA_NAME, isolation_objects,
};
pub use object::{
    DEPLOYMENT_UID_LABEL, INSTALLATION_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectRef,
    RESOURCE_POLICY_ANNOTATION, inventory_of,
};
pub use orphans::{ExactDelete, LabelledObject};
pub use ownership::{Adoption, OwnershipConflict};
pub use projection::{
    CRDS, DEPLOYMENT_PROJECTION_KIND, DeploymentView, PROJECTION_API_VERSION, PROJECTION_GROUP,
    Projection, ProjectionKey, ProjectionSeen, TEMPLATE_PROJECTION_KIND, TEMPLATE_VERSION_LABEL,
    TemplateView, template_projection_name,
};
pub use scope::ScopeTable;
pub use uninstall::{UninstallRequest, UninstallStatus};

/// The apply engine. Cheap to clone; clones share discovery and the drift
/// watches, which stop when the last clone is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    config: EngineConfig,
    resolver: resolve::Resolver,
    watches: watches::Watches,
    openapi: openapi::OpenApiKeys,
    /// Helm's namespace-scoped `lookup` endpoint, started on first use.
    lookup: tokio::sync::OnceCell<lookup::LookupProxy>,
}

impl Engine {
    pub fn new(client: kube::Client, config: EngineConfig) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                resolver: resolve::Resolver::new(client.clone()),
                watches: watches::Watches::new(client.clone()),
                openapi: openapi::OpenApiKeys::new(client.clone()),
                lookup: tokio::sync::OnceCell::new(),
                client,
                config,
            }),
        }
    }

    /// Deployment uids whose objects (or namespace) someone else changed,
    /// as the shared watches see it: a change to anything but status, a
    /// deletion, an object gone after a re-list. Debounce before acting; a
    /// new subscription replaces the previous one.
    pub fn subscribe_changes(&self) -> tokio::sync::mpsc::Receiver<String> {
        self.inner.watches.subscribe()
    }

    /// Access for one render's Helm `lookup`: reads of `namespace` only
    /// (see the `lookup` module). Valid until the scope is dropped.
    pub async fn lookup_scope(&self, namespace: &str) -> std::io::Result<LookupScope> {
        let proxy = self
            .inner
            .lookup
            .get_or_try_init(|| lookup::LookupProxy::start(self.inner.client.clone()))
            .await?;
        Ok(proxy.scope(namespace))
    }

    /// Points `request`'s Helm `lookup` at its own namespace, as `helm
    /// upgrade` reads the cluster. The returned scope must outlive the render;
    /// when the lookup endpoint cannot start, the render runs with empty
    /// lookups (as `helm template`) and a warning says so.
    pub async fn scope_lookups(
        &self,
        request: &mut caelus_helm::RenderRequest,
    ) -> Option<LookupScope> {
        match self.lookup_scope(&request.namespace).await {
            Ok(scope) => {
                request.lookup = Some(scope.cluster());
                Some(scope)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the lookup endpoint is unavailable; rendering with empty lookups");
                None
            }
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    fn client(&self) -> &kube::Client {
        &self.inner.client
    }
}
