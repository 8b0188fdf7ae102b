use crate::auth::AuthLimiter;
use caelus_core::auth_limit::FailureLimit;
use caelus_helm::HelmEngine;
use caelus_store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The Helm engine: resolves and pulls charts, validates values, renders.
    pub helm: HelmEngine,
    /// Woken after every write that makes a deployment due, so an in-process
    /// worker starts at once instead of at its next poll.
    pub wake_workers: Arc<Notify>,
    /// The orphan scanner, when this server has a cluster to scan
    /// (`None`: the orphan endpoints answer 503).
    pub orphans: Option<caelus_reconciler::OrphanScanner>,
    /// The cluster, when this server has one: endpoints and connection details
    /// are read from it (`None`: those endpoints answer 503), and previews
    /// (upgrade, update, rollback and retry plans) render with Helm's `lookup`
    /// scoped to the deployment's namespace, as the worker does (`None`:
    /// lookups are empty, as in `helm template`).
    pub cluster: Option<caelus_engine::Engine>,
    /// Failed authentications per client address (API bearer auth and UI sign-in).
    pub auth_limiter: Arc<AuthLimiter>,
    /// When set, `GET /metrics` requires `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    /// Publishing a draft needs a passing certification of its chart (or an
    /// admin's recorded `skip_certification`). Off unless asked for.
    pub require_certification: bool,
}

impl AppState {
    pub fn new(store: Store, helm: HelmEngine) -> Self {
        Self {
            store,
            helm,
            wake_workers: Arc::new(Notify::new()),
            orphans: None,
            cluster: None,
            auth_limiter: Arc::new(AuthLimiter::new(FailureLimit::default())),
            metrics_token: None,
            require_certification: false,
        }
    }

    /// Makes publishing require a passing certification (`caelus server`'s default).
    pub fn with_required_certification(mut self, required: bool) -> Self {
        self.require_certification = required;
        self
    }

    /// Limits failed authentications per client address to `limit`.
    pub fn with_auth_limit(mut self, limit: FailureLimit) -> Self {
        self.auth_limiter = Arc::new(AuthLimiter::new(limit));
        self
    }

    /// Makes `GET /metrics` require this bearer token (`None`: open, the default).
    pub fn with_metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Reads endpoints and connection details from `engine`'s cluster, and
    /// renders previews against it (scoped lookups).
    pub fn with_cluster(mut self, engine: caelus_engine::Engine) -> Self {
        self.cluster = Some(engine);
        self
    }

    /// Serves the orphan endpoints with `scanner`.
    /// (A server that scans a cluster for orphans also previews against it.)
    pub fn with_orphans(mut self, scanner: caelus_reconciler::OrphanScanner) -> Self {
        if self.cluster.is_none() {
            self.cluster = Some(scanner.engine.clone());
        }
        self.orphans = Some(scanner);
        self
    }
}
