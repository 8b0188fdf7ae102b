//! Caelus workers (design §5). A worker claims due deployments from the
//! database with a lease, runs one idempotent pass per deployment (classify,
//! then one action), writes the outcome fenced by the lease, and schedules the
//! next pass: a resync after success, a backoff after failure.

mod commit;
mod deploy;
mod drift;
mod orphans;
mod pass;
mod progress;
mod projector;
mod status;
mod uninstall;

use caelus_core::reconcile::Backoff;
use caelus_engine::Engine;
use caelus_helm::HelmEngine;
use caelus_store::{Store, now_ms, queue};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

pub use drift::{CompareError, live_drift};
pub use orphans::{CleanReport, Finding, Kept, OrphanError, OrphanScanner};
pub use pass::PassError;
pub use projector::{Projector, ProjectorConfig};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Identifies this worker in leases and logs.
    pub id: String,
    /// Passes run at once.
    pub concurrency: usize,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// When a healthy deployment is checked again (drift), ± `resync_jitter`.
    pub resync: Duration,
    pub resync_jitter: f64,
    pub backoff: Backoff,
    /// Transient failures (5xx, 429, timeouts, conflicts) of one generation
    /// retried with backoff before a rollback is considered.
    pub transient_retries: u32,
    /// Longest sleep between queue polls (wake-ups usually come sooner).
    pub poll: Duration,
    /// How often a namespace that is still terminating is looked at again.
    pub deletion_recheck: Duration,
    /// How long a shutdown waits for in-flight passes before releasing their leases.
    pub shutdown_grace: Duration,
    /// After the first change, later ones the cluster watches report are
    /// gathered this long before the deployments they touch are made due (a
    /// rollout is many events).
    pub change_debounce: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: format!("worker-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            concurrency: 4,
            lease: Duration::from_secs(30),
            resync: Duration::from_secs(300),
            resync_jitter: 0.1,
            backoff: Backoff::default(),
            transient_retries: 5,
            poll: Duration::from_secs(5),
            deletion_recheck: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(20),
            change_debounce: Duration::from_secs(1),
        }
    }
}

/// Everything a pass needs; shared by the worker's tasks.
pub struct Reconciler {
    pub store: Store,
    pub helm: HelmEngine,
    pub engine: Engine,
    pub config: WorkerConfig,
    /// Woken by in-process API writes (and by PostgreSQL notifications).
    /// Wakers call [`Notify::notify_one`]: it leaves a permit when the worker
    /// is busy, so a wake-up that arrives mid-claim is not lost (one from
    /// `notify_waiters` would be).
    pub wake: Arc<Notify>,
    /// Writes the deployments' read-only projections; `None` turns them off.
    pub projector: Option<Arc<Projector>>,
}

/// A uniform random number in [0, 1), for jitter.
fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() >> 75;
    bits as f64 / (1u64 << 53) as f64
}

impl Reconciler {
    /// Runs until `stop` turns true, then finishes or releases in-flight passes.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let projector = self
            .projector
            .clone()
            .map(|p| tokio::spawn(p.run(stop.clone())));
        let mut passes: JoinSet<()> = JoinSet::new();
        let mut leases: HashMap<tokio::task::Id, queue::Lease> = HashMap::new();
        tracing::info!(worker = %self.config.id, concurrency = self.config.concurrency, "worker started");
        // Watch events make the deployments they touch due at once; the
        // scheduled resync stays as the safety net.
        let changes = pass::AbortOnDrop(tokio::spawn(
            self.clone().follow_changes(self.engine.subscribe_changes()),
        ));
        loop {
            // Fill free slots with due deployments.
            while passes.len() < self.config.concurrency {
                let owner = format!("{}:{}", self.config.id, uuid::Uuid::new_v4().simple());
                let lease_ms = self.config.lease.as_millis() as i64;
                caelus_metrics::global().queue_poll();
                match queue::claim_one(&self.store, &owner, now_ms(), lease_ms).await {
                    Ok(Some(lease)) => {
                        let me = self.clone();
                        let held = lease.clone();
                        let handle = passes.spawn(async move {
                            let uid = lease.uid.clone();
                            let projector = me.projector.clone();
                            me.pass(lease).await;
                            // After the pass committed its status.
                            if let Some(p) = projector {
                                p.deployment_changed(&uid);
                            }
                        });
                        leases.insert(handle.id(), held);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim work");
                        break;
                    }
                }
            }
            let sleep = if passes.len() < self.config.concurrency {
                self.sleep_until_next_due().await
            } else {
                self.config.poll
            };
            tokio::select! {
                _ = stop.changed() => break,
                Some(done) = passes.join_next_with_id(), if !passes.is_empty() => {
                    let id = match &done { Ok((id, _)) => *id, Err(e) => e.id() };
                    leases.remove(&id);
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        drop(changes);
        self.shut_down(passes, leases).await;
        if let Some(p) = projector {
            let _ = p.await;
        }
    }

    /// Follows the engine's change feed. The first change after a quiet spell
    /// makes its deployment due at once (a hand edit is corrected without
    /// waiting); what arrives in the `change_debounce` window after it is
    /// gathered and made due together (a rollout is many events). A deployment
    /// whose pass is in flight is asked again after the next window: its pass
    /// may have looked before the change.
    async fn follow_changes(self: Arc<Self>, mut changes: mpsc::Receiver<String>) {
        let mut pending: BTreeSet<String> = BTreeSet::new();
        loop {
            if pending.is_empty() {
                match changes.recv().await {
                    Some(uid) => pending = self.make_due_now(vec![uid]).await,
                    None => return,
                };
            }
            let window = tokio::time::sleep(self.config.change_debounce);
            tokio::pin!(window);
            loop {
                tokio::select! {
                    _ = &mut window => break,
                    uid = changes.recv() => match uid {
                        Some(uid) => { pending.insert(uid); }
                        None => return,
                    },
                }
            }
            pending = self
                .make_due_now(std::mem::take(&mut pending).into_iter().collect())
                .await;
        }
    }

    /// Makes `uids` due now and wakes a worker; returns those whose pass is in
    /// flight (to be asked again).
    async fn make_due_now(&self, uids: Vec<String>) -> BTreeSet<String> {
        if uids.is_empty() {
            return BTreeSet::new();
        }
        match queue::make_due(&self.store, &uids, now_ms()).await {
            Ok(made) => {
                if !made.due.is_empty() {
                    tracing::debug!(deployments = ?made.due, "cluster changed: due now");
                    self.wake.notify_one();
                }
                made.in_flight.into_iter().collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot make changed deployments due");
                BTreeSet::new()
            }
        }
    }

    async fn sleep_until_next_due(&self) -> Duration {
        let next = match self.store.conn().await {
            Ok(mut conn) => queue::next_claimable_at(&mut conn, now_ms())
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        match next {
            Some(at) => Duration::from_millis(
                (at - now_ms()).clamp(10, self.config.poll.as_millis() as i64) as u64,
            ),
            None => self.config.poll,
        }
    }

    /// Graceful shutdown: give passes time to finish, then abort the rest and
    /// release their leases so another worker takes them at once.
    async fn shut_down(
        &self,
        mut passes: JoinSet<()>,
        mut leases: HashMap<tokio::task::Id, queue::Lease>,
    ) {
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        while !passes.is_empty() {
            tokio::select! {
                Some(Ok((id, _))) = passes.join_next_with_id() => { leases.remove(&id); }
                _ = &mut grace => break,
            }
        }
        passes.abort_all();
        for lease in leases.values() {
            let _ = queue::release(&self.store, lease).await;
        }
        tracing::info!(worker = %self.config.id, "worker stopped");
    }

    fn resync_at(&self) -> i64 {
        let d = caelus_core::reconcile::resync_delay(
            self.config.resync,
            self.config.resync_jitter,
            random_unit(),
        );
        now_ms() + d.as_millis() as i64
    }

    /// When to retry after failure number `attempts`; every call schedules a retry.
    fn retry_at(&self, attempts: i64) -> i64 {
        caelus_metrics::global().retry();
        let d = self
            .config
            .backoff
            .delay(attempts.clamp(1, 64) as u32, random_unit());
        now_ms() + d.as_millis() as i64
    }
}

/// Listens for PostgreSQL notifications from API servers in other processes
/// and wakes the worker. Reconnects with a pause if the connection drops.
pub async fn forward_pg_notifications(
    database_url: String,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match sqlx::postgres::PgListener::connect(&database_url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(queue::NOTIFY_CHANNEL).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            n = listener.recv() => match n {
                                Ok(_) => wake.notify_one(),
                                Err(e) => { tracing::warn!(error = %e, "notification stream broke"); break; }
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect for notifications"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
