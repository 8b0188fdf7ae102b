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
}

impl AppState {
    pub fn new(store: Store, helm: HelmEngine) -> Self {
        Self {
            store,
            helm,
            wake_workers: Arc::new(Notify::new()),
        }
    }
}
