//! Writes the read-only projections (`CaelusDeployment`, `CaelusTemplate`)
//! from database rows, throttled, and puts back hand edits.
//!
//! - A pass ends → [`Projector::deployment_changed`] queues its uid. Queued
//!   keys coalesce (one write however often a deployment changed meanwhile),
//!   and a write happens only when the projection built from the row differs
//!   from what this worker last wrote, so a quiet resync costs nothing.
//! - Every write request takes a token from one bucket (`writes_per_second`),
//!   so 1000 deployments changing at once are projected at a bounded rate.
//! - Template projections are written by the workers (not the API server, so
//!   the API server needs no cluster credentials and a publish never waits on
//!   the cluster): a short periodic sync reads the template rows and queues
//!   those whose projection changed (a lifecycle change, a new version).
//! - The watch on projections never feeds a decision: it only says that a
//!   projection was written by another field manager (a `kubectl edit`) or
//!   deleted; the projector then rebuilds it from the row, replaces it, and
//!   records an event.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caelus_core::throttle::TokenBucket;
use caelus_engine::{
    DEPLOYMENT_PROJECTION_KIND, DeploymentView, Engine, Projection, ProjectionKey, ProjectionSeen,
    TemplateView,
};
use caelus_store::deployments::{self, Deployment};
use caelus_store::events::{self, NewEvent};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{Store, now_ms};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{Notify, watch};

/// How projections are written.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Average projection write requests per second (all kinds together).
    pub writes_per_second: f64,
    /// Requests allowed at once before the rate applies.
    pub burst: u32,
    /// How often template rows are compared with their projections.
    pub template_sync: Duration,
    /// When a failed write is tried again.
    pub retry_after: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            writes_per_second: 20.0,
            burst: 20,
            template_sync: Duration::from_secs(10),
            retry_after: Duration::from_secs(5),
        }
    }
}

/// What this worker last wrote for one key.
#[derive(Debug, Clone)]
struct Written {
    fingerprints: (u64, u64),
    kind: &'static str,
    namespace: Option<String>,
    name: String,
    /// resourceVersions of our own recent writes: watch events carrying
    /// them are our own echo.
    versions: VecDeque<String>,
}

#[derive(Default)]
struct State {
    order: VecDeque<ProjectionKey>,
    queued: HashSet<ProjectionKey>,
    /// Latest watch sighting per key waiting to be looked at.
    sightings: HashMap<ProjectionKey, ProjectionSeen>,
    written: HashMap<ProjectionKey, Written>,
}

pub struct Projector {
    store: Store,
    engine: Engine,
    config: ProjectorConfig,
    state: Mutex<State>,
    wake: Notify,
    started: Instant,
    bucket: Mutex<TokenBucket>,
}

const SYSTEM: &str = "system";

fn deployment_view(d: &Deployment) -> DeploymentView {
    DeploymentView {
        uid: d.uid.clone(),
        namespace: d.namespace_name.clone(),
        tenant: d.tenant.clone(),
        display_name: d.display_name.clone(),
        product: d.product_slug.clone(),
        version: d.version.clone(),
        template_version_id: d.template_version_id.clone(),
        desired_state: d.desired_state.as_str().to_string(),
        generation: d.generation,
        values: d.user_values.clone(),
        phase: d.phase.as_str().to_string(),
        message: d.message.clone(),
        observed_generation: d.observed_generation,
        revision: d.current_revision,
        last_error: d.last_error.clone(),
        conditions: serde_json::to_value(&d.conditions).unwrap_or_default(),
        objects: d.object_health.clone(),
    }
}

fn template_view(t: &TemplateVersion) -> TemplateView {
    TemplateView {
        id: t.id.clone(),
        product: t.product_slug.clone(),
        version: t.version.clone(),
        chart_ref: t.chart_ref.clone(),
        chart_digest: t.chart_digest.clone(),
        values_allowlist: t.values_allowlist.clone(),
        lifecycle: t.lifecycle.as_str().to_string(),
    }
}

/// What the rows say a key's projection should be.
enum Desired {
    Present(Box<Projection>, Subject),
    /// None; a deployment tombstone still says where its projection was
    /// (a namespace kept with `--keep-volumes` outlives the deployment).
    Absent(Option<Location>),
}

/// Where a projection is: kind, namespace, name.
#[derive(Debug, Clone)]
struct Location(&'static str, Option<String>, String);

/// Whom an event about a projection is recorded for.
struct Subject {
    deployment_uid: Option<String>,
    tenant: Option<String>,
    subject: String,
}

impl Projector {
    pub fn new(store: Store, engine: Engine, config: ProjectorConfig) -> Arc<Projector> {
        Arc::new(Projector {
            bucket: Mutex::new(TokenBucket::new(
                config.writes_per_second,
                config.burst,
                Duration::ZERO,
            )),
            store,
            engine,
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            started: Instant::now(),
        })
    }

    /// A pass of deployment `uid` ended: its projection may need a write.
    pub fn deployment_changed(&self, uid: &str) {
        self.enqueue(ProjectionKey::Deployment(uid.to_string()));
    }

    fn enqueue(&self, key: ProjectionKey) {
        if let Ok(mut s) = self.state.lock()
            && s.queued.insert(key.clone())
        {
            s.order.push_back(key);
        }
        self.wake.notify_one();
    }

    fn next(&self) -> Option<(ProjectionKey, Option<ProjectionSeen>)> {
        let mut s = self.state.lock().ok()?;
        let key = s.order.pop_front()?;
        s.queued.remove(&key);
        let sighting = s.sightings.remove(&key);
        Some((key, sighting))
    }

    /// Keys waiting to be projected (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.state.lock().map(|s| s.order.len()).unwrap_or(0)
    }

    /// Runs until `stop` turns true: the write loop, the watch on
    /// projections and the template sync.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let watcher = tokio::spawn(self.clone().watch_loop());
        let templates = tokio::spawn(self.clone().template_loop());
        loop {
            while let Some((key, sighting)) = self.next() {
                if *stop.borrow() {
                    break;
                }
                self.handle(key, sighting).await;
            }
            tokio::select! {
                _ = stop.changed() => break,
                _ = self.wake.notified() => {}
            }
        }
        watcher.abort();
        templates.abort();
    }

    async fn watch_loop(self: Arc<Self>) {
        let mut stream = std::pin::pin!(self.engine.watch_projections());
        while let Some(seen) = stream.next().await {
            let key = seen.key.clone();
            let ours = self
                .state
                .lock()
                .ok()
                .and_then(|s| {
                    s.written
                        .get(&key)
                        .map(|w| w.versions.contains(&seen.resource_version))
                })
                .unwrap_or(false);
            if ours && !seen.deleted {
                continue;
            }
            // Only deletions and others' writes need a look; an unknown
            // version written by Caelus alone is another worker's write.
            if !seen.deleted && seen.other_managers.is_empty() {
                continue;
            }
            if let Ok(mut s) = self.state.lock() {
                s.sightings.insert(key.clone(), seen);
            }
            self.enqueue(key);
        }
    }

    async fn template_loop(self: Arc<Self>) {
        loop {
            if let Err(e) = self.sync_templates().await {
                tracing::warn!(error = %e, "cannot read template versions for their projections");
            }
            tokio::time::sleep(self.config.template_sync).await;
        }
    }

    /// Queues every template version whose projection differs from what was
    /// last written (or was never written by this worker).
    pub async fn sync_templates(&self) -> Result<(), caelus_store::StoreError> {
        let mut conn = self.store.conn().await?;
        let rows = templates::list_past_draft(&mut conn).await?;
        drop(conn);
        let installation = &self.engine.config().installation_id;
        for t in rows {
            let p = Projection::of_template(installation, &template_view(&t));
            let unchanged = self.state.lock().ok().is_some_and(|s| {
                s.written
                    .get(&p.key)
                    .is_some_and(|w| w.fingerprints == p.fingerprints())
            });
            if !unchanged {
                self.enqueue(p.key);
            }
        }
        Ok(())
    }

    async fn desired(&self, key: &ProjectionKey) -> Result<Desired, caelus_store::StoreError> {
        let mut conn = self.store.conn().await?;
        let installation = &self.engine.config().installation_id;
        Ok(match key {
            ProjectionKey::Deployment(uid) => match deployments::get(&mut conn, uid, None).await? {
                Some(d) if d.phase == caelus_core::status::Phase::Deleted => Desired::Absent(Some(
                    Location(DEPLOYMENT_PROJECTION_KIND, Some(d.namespace_name), d.uid),
                )),
                Some(d) => Desired::Present(
                    Box::new(Projection::of_deployment(
                        installation,
                        &deployment_view(&d),
                    )),
                    Subject {
                        deployment_uid: Some(d.uid.clone()),
                        tenant: Some(d.tenant.clone()),
                        subject: format!("deployment/{}", d.uid),
                    },
                ),
                None => Desired::Absent(None),
            },
            ProjectionKey::Template(id) => match templates::get_by_id(&mut conn, id).await? {
                Some(t) if t.lifecycle != caelus_core::lifecycle::Lifecycle::Draft => {
                    Desired::Present(
                        Box::new(Projection::of_template(installation, &template_view(&t))),
                        Subject {
                            deployment_uid: None,
                            tenant: None,
                            subject: format!("template/{}/{}", t.product_slug, t.version),
                        },
                    )
                }
                _ => Desired::Absent(None),
            },
        })
    }

    async fn throttle(&self) {
        let wait = match self.bucket.lock() {
            Ok(mut b) => b.take(self.started.elapsed()),
            Err(_) => Duration::ZERO,
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    fn retry_later(self: &Arc<Self>, key: ProjectionKey) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.config.retry_after).await;
            me.enqueue(key);
        });
    }

    fn forget(&self, key: &ProjectionKey) -> Option<Written> {
        self.state
            .lock()
            .ok()
            .and_then(|mut s| s.written.remove(key))
    }

    fn remember(&self, p: &Projection, version: String) {
        if let Ok(mut s) = self.state.lock() {
            let w = s.written.entry(p.key.clone()).or_insert_with(|| Written {
                fingerprints: (0, 0),
                kind: p.kind,
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                versions: VecDeque::new(),
            });
            w.fingerprints = p.fingerprints();
            w.namespace = p.namespace.clone();
            w.name = p.name.clone();
            w.versions.push_back(version);
            while w.versions.len() > 4 {
                w.versions.pop_front();
            }
        }
    }

    async fn handle(self: &Arc<Self>, key: ProjectionKey, sighting: Option<ProjectionSeen>) {
        let desired = match self.desired(&key).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, ?key, "cannot read the row of a projection");
                self.retry_later(key);
                return;
            }
        };
        match (desired, sighting) {
            (Desired::Absent(at), _) => self.remove(&key, at).await,
            (Desired::Present(p, subject), Some(seen)) if seen.deleted => {
                self.forget(&key);
                // The row says it should be there (a deployment being
                // deleted takes its projection with its namespace).
                let wanted = !matches!(&key, ProjectionKey::Deployment(_))
                    || p.spec["desiredState"] == "present";
                if wanted && self.write(&p, true, true).await {
                    self.record(&subject, "projection.recreated", &p, &[]).await;
                }
            }
            (Desired::Present(p, subject), Some(seen)) => self.revert(&p, &subject, &seen).await,
            (Desired::Present(p, _), None) => {
                let last = self
                    .state
                    .lock()
                    .ok()
                    .and_then(|s| s.written.get(&key).map(|w| w.fingerprints));
                let now = p.fingerprints();
                let (main, status) = match last {
                    Some(last) => (last.0 != now.0, last.1 != now.1),
                    None => (true, true),
                };
                if (main || status) && !self.write(&p, main, status).await {
                    self.retry_later(key);
                }
            }
        }
    }

    /// Applies `p` (the parts asked for); `false` on failure (logged, counted).
    async fn write(&self, p: &Projection, main: bool, status: bool) -> bool {
        for _ in 0..(u8::from(main) + u8::from(status)) {
            self.throttle().await;
        }
        let metrics = caelus_metrics::global();
        match self.engine.write_projection(p, main, status).await {
            Ok(version) => {
                metrics.projection_write(p.kind, "applied");
                self.remember(p, version);
                true
            }
            Err(e) => {
                metrics.projection_write(p.kind, "error");
                self.forget(&p.key);
                // A deployment on its way out loses its namespace (and the
                // projection with it): nothing to write there any more.
                if p.spec["desiredState"] == "absent" {
                    tracing::debug!(error = %e, name = %p.name, "projection of a deployment being deleted not written");
                    return true;
                }
                tracing::warn!(error = %e, kind = p.kind, name = %p.name, "cannot write projection");
                false
            }
        }
    }

    async fn remove(&self, key: &ProjectionKey, at: Option<Location>) {
        let written = self
            .forget(key)
            .map(|w| Location(w.kind, w.namespace, w.name));
        let Some(Location(kind, namespace, name)) = written.or(at) else {
            return;
        };
        self.throttle().await;
        match self
            .engine
            .delete_projection(kind, namespace.as_deref(), &name)
            .await
        {
            Ok(true) => caelus_metrics::global().projection_write(kind, "deleted"),
            Ok(false) => {}
            Err(e) => {
                caelus_metrics::global().projection_write(kind, "error");
                tracing::warn!(error = %e, %name, "cannot delete projection");
            }
        }
    }

    /// Someone else wrote a projection: replace it with the row's view.
    async fn revert(&self, p: &Projection, subject: &Subject, seen: &ProjectionSeen) {
        self.throttle().await;
        self.throttle().await;
        match self
            .engine
            .replace_projection(p, &seen.resource_version)
            .await
        {
            Ok(Some(version)) => {
                caelus_metrics::global().projection_write(p.kind, "reverted");
                self.remember(p, version);
                self.record(subject, "projection.reverted", p, &seen.other_managers)
                    .await;
            }
            // Changed again meanwhile: the next sighting will say by whom.
            Ok(None) => {}
            Err(e) => {
                caelus_metrics::global().projection_write(p.kind, "error");
                tracing::warn!(error = %e, name = %p.name, "cannot revert projection");
            }
        }
    }

    async fn record(&self, s: &Subject, action: &str, p: &Projection, managers: &[String]) {
        let what = match &p.namespace {
            Some(ns) => format!("{} {ns}/{}", p.kind, p.name),
            None => format!("{} {}", p.kind, p.name),
        };
        let message = if action == "projection.reverted" {
            format!(
                "{what} was changed by {}; put back to the database's state (projections are read-only)",
                managers.join(", ")
            )
        } else {
            format!("{what} was deleted; written again from the database")
        };
        let event = NewEvent {
            deployment_uid: s.deployment_uid.as_deref(),
            tenant: s.tenant.as_deref(),
            subject: s.subject.clone(),
            action,
            actor: SYSTEM,
            message,
            details: json!({"kind": p.kind, "namespace": p.namespace, "name": p.name, "managers": managers}),
        };
        let result = match self.store.conn().await {
            Ok(mut c) => events::insert(&mut c, &event, now_ms()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record a projection event");
        }
    }
}
