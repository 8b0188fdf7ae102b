use caelus_store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Woken after every write that makes a deployment due, so an in-process
    /// worker starts at once instead of at its next poll.
    pub wake_workers: Arc<Notify>,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            wake_workers: Arc::new(Notify::new()),
        }
    }
}
