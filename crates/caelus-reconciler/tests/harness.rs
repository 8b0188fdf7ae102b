//! A whole control plane in one test: a throwaway database, a real OCI registry
//! with the repository's test charts, the real Helm engine, kubesim, and a worker.

#![allow(dead_code)]

use caelus_core::lifecycle::Lifecycle;
use caelus_core::status::Phase;
use caelus_core::template::Capabilities;
use caelus_engine::{Engine, EngineConfig};
use caelus_helm::testing::{TestRegistry, push_test_chart};
use caelus_helm::{ChartReference, HelmEngine};
use caelus_reconciler::{Reconciler, WorkerConfig};
use caelus_store::deployments::{self, Deployment, NewDeployment};
use caelus_store::events::{self, Event, NewEvent};
use caelus_store::products::{self, Product};
use caelus_store::revisions::{self, Revision};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::testing::TestDb;
use caelus_store::{Backend, now_ms};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

pub struct Harness {
    pub db: TestDb,
    pub registry: TestRegistry,
    pub helm: HelmEngine,
    pub sim: kubesim::Server,
    pub kube: kube::Client,
    pub wake: Arc<Notify>,
    workers: Vec<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

pub fn fast_worker() -> WorkerConfig {
    WorkerConfig {
        poll: Duration::from_millis(200),
        resync: Duration::from_secs(3600),
        backoff: caelus_core::reconcile::Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
            jitter: 0.2,
        },
        deletion_recheck: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(2),
        ..Default::default()
    }
}

impl Harness {
    pub async fn start(backend: Backend) -> Harness {
        Self::start_with(backend, fast_worker()).await
    }

    pub async fn start_with(backend: Backend, worker: WorkerConfig) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::new(backend).await;
        let registry = TestRegistry::start().expect("docker-registry (scripts/install-registry)");
        let helm = caelus_helm::testing::engine(&registry.temp_dir().join("worker-cache"))
            .expect("libhelm_c");
        let sim = kubesim::Server::start(kubesim::Config::default())
            .await
            .unwrap();
        let kube = client_for(&sim);
        let mut h = Harness {
            db,
            registry,
            helm,
            sim,
            kube,
            wake: Arc::new(Notify::new()),
            workers: Vec::new(),
        };
        h.add_worker(worker);
        h
    }

    pub fn reconciler(&self, worker: WorkerConfig) -> Arc<Reconciler> {
        self.reconciler_with(worker, None)
    }

    /// A reconciler that also writes projections (see tests/projections.rs).
    pub fn reconciler_with(
        &self,
        worker: WorkerConfig,
        projections: Option<caelus_reconciler::ProjectorConfig>,
    ) -> Arc<Reconciler> {
        let engine = Engine::new(
            client_for(&self.sim),
            EngineConfig {
                installation_id: "test-install".into(),
                ingress_namespaces: vec!["ingress-nginx".into()],
                health_poll_interval: Duration::from_millis(200),
                ..Default::default()
            },
        );
        Arc::new(Reconciler {
            store: self.db.store.clone(),
            helm: self.helm.clone(),
            projector: projections.map(|c| {
                caelus_reconciler::Projector::new(self.db.store.clone(), engine.clone(), c)
            }),
            engine,
            config: worker,
            wake: self.wake.clone(),
        })
    }

    /// Starts one more worker; returns its index.
    pub fn add_worker(&mut self, worker: WorkerConfig) -> usize {
        let r = self.reconciler(worker);
        self.run_worker(r)
    }

    /// Starts a reconciler built by [`Harness::reconciler_with`]; returns its index.
    pub fn run_worker(&mut self, r: Arc<Reconciler>) -> usize {
        let (tx, rx) = watch::channel(false);
        let handle = tokio::spawn(r.run(rx));
        self.workers.push((tx, handle));
        self.workers.len() - 1
    }

    /// Kills a worker without any shutdown (like SIGKILL): its leases stay held.
    pub fn kill_worker(&mut self, i: usize) {
        self.workers[i].1.abort();
    }

    /// Graceful stop of every worker (as on SIGTERM), keeping the rest running.
    pub async fn stop_workers(&mut self) {
        for (tx, handle) in self.workers.drain(..) {
            let _ = tx.send(true);
            let _ = handle.await;
        }
    }

    /// The cluster restarts with nothing in it, at the same address (as a
    /// cluster whose etcd was lost): clients and watches reconnect to it.
    pub async fn restart_cluster_empty(&mut self) {
        let addr = self.sim.addr();
        let placeholder = kubesim::Server::start(kubesim::Config::default())
            .await
            .unwrap();
        std::mem::replace(&mut self.sim, placeholder)
            .shutdown()
            .await;
        let fresh = kubesim::Server::start(kubesim::Config {
            listen: addr,
            ..Default::default()
        })
        .await
        .unwrap();
        std::mem::replace(&mut self.sim, fresh).shutdown().await;
    }

    pub async fn stop(mut self) {
        for (tx, handle) in self.workers.drain(..) {
            let _ = tx.send(true);
            let _ = handle.await;
        }
    }

    /// Pushes a test chart and publishes it as `product`/`version`.
    pub async fn publish(
        &self,
        product: &str,
        chart: &str,
        version: &str,
        allow: &[&str],
        caps: Capabilities,
    ) -> TemplateVersion {
        let (reference, _) = push_test_chart(&self.registry, chart, version)
            .await
            .unwrap();
        self.publish_reference(product, &reference, version, allow, caps)
            .await
    }

    /// Pushes the chart in directory `dir` (e.g. one of `../shared/charts`) and
    /// publishes it as `product`/`version`.
    pub async fn publish_path(
        &self,
        product: &str,
        dir: &std::path::Path,
        version: &str,
        allow: &[&str],
        caps: Capabilities,
    ) -> TemplateVersion {
        let (reference, _) = caelus_helm::testing::push_chart_path(&self.registry, dir)
            .await
            .unwrap();
        self.publish_reference(product, &reference, version, allow, caps)
            .await
    }

    async fn publish_reference(
        &self,
        product: &str,
        reference: &str,
        version: &str,
        allow: &[&str],
        caps: Capabilities,
    ) -> TemplateVersion {
        let inspected = self
            .helm
            .inspect(&reference.parse::<ChartReference>().unwrap())
            .await
            .unwrap();
        let mut c = self.db.store.conn().await.unwrap();
        let p = match products::get(&mut c, product).await.unwrap() {
            Some(p) => p,
            None => {
                let p = Product {
                    id: uuid::Uuid::new_v4().to_string(),
                    slug: product.into(),
                    name: product.into(),
                    description: String::new(),
                    created_at: now_ms(),
                };
                products::insert(&mut c, &p).await.unwrap();
                p
            }
        };
        let t = TemplateVersion {
            id: uuid::Uuid::new_v4().to_string(),
            product_id: p.id.clone(),
            product_slug: p.slug.clone(),
            version: version.into(),
            chart_ref: inspected.reference.to_string(),
            chart_digest: inspected.digest.to_string(),
            chart_metadata: json!({"name": inspected.info.name}),
            default_values: inspected.info.default_values.clone(),
            values_schema: inspected.info.values_schema.clone(),
            values_allowlist: allow.iter().map(|s| s.to_string()).collect(),
            capabilities: caps,
            lifecycle: Lifecycle::Published,
            created_at: now_ms(),
            updated_at: now_ms(),
        };
        templates::insert(&mut c, &t).await.unwrap();
        t
    }

    async fn audit(&self, uid: &str, action: &str) {
        let mut c = self.db.store.conn().await.unwrap();
        events::insert(
            &mut c,
            &NewEvent {
                deployment_uid: Some(uid),
                tenant: Some("acme"),
                subject: format!("deployment/{uid}"),
                action,
                actor: "token:test (acme)",
                message: action.into(),
                details: json!({}),
            },
            now_ms(),
        )
        .await
        .unwrap();
    }

    pub async fn create(&self, t: &TemplateVersion, name: &str, values: Value) -> String {
        let uid = uuid::Uuid::new_v4().to_string();
        {
            let mut c = self.db.store.conn().await.unwrap();
            deployments::insert(
                &mut c,
                &NewDeployment {
                    namespace_name: caelus_core::identity::namespace_name(&uid).unwrap(),
                    release_name: caelus_core::identity::release_name(&uid).unwrap(),
                    uid: uid.clone(),
                    tenant: "acme".into(),
                    display_name: name.into(),
                    product_id: t.product_id.clone(),
                    template_version_id: t.id.clone(),
                    user_values: values,
                    now: now_ms(),
                },
            )
            .await
            .unwrap();
        }
        self.audit(&uid, "deployment.create").await;
        self.wake.notify_one();
        uid
    }

    pub async fn update(&self, uid: &str, values: Value) {
        {
            let mut c = self.db.store.conn().await.unwrap();
            let d = deployments::get(&mut c, uid, None).await.unwrap().unwrap();
            deployments::set_desired_values(&mut c, uid, &d.template_version_id, &values, now_ms())
                .await
                .unwrap();
        }
        self.audit(uid, "deployment.update").await;
        self.wake.notify_one();
    }

    pub async fn delete(&self, uid: &str) {
        {
            let mut c = self.db.store.conn().await.unwrap();
            deployments::set_absent(&mut c, uid, now_ms())
                .await
                .unwrap();
        }
        self.wake.notify_one();
    }

    pub async fn get(&self, uid: &str) -> Deployment {
        let mut c = self.db.store.conn().await.unwrap();
        deployments::get(&mut c, uid, None).await.unwrap().unwrap()
    }

    pub async fn events(&self, uid: &str) -> Vec<Event> {
        let mut c = self.db.store.conn().await.unwrap();
        events::list_for_deployment(&mut c, uid, 0, 1000)
            .await
            .unwrap()
    }

    pub async fn revisions(&self, uid: &str) -> Vec<Revision> {
        let mut c = self.db.store.conn().await.unwrap();
        revisions::list(&mut c, uid, None, 100).await.unwrap()
    }

    /// Waits until `check` holds for the deployment; panics with its state after `timeout`.
    pub async fn wait_until(
        &self,
        uid: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Deployment) -> bool,
    ) -> Deployment {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.get(uid).await;
            if check(&d) {
                return d;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: phase {} gen {}/{} attempts {} message {:?} error {:?}",
                    d.phase,
                    d.observed_generation,
                    d.generation,
                    d.attempts,
                    d.message,
                    d.last_error
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_phase(&self, uid: &str, phase: Phase) -> Deployment {
        self.wait_until(uid, Duration::from_secs(30), phase.as_str(), |d| {
            d.phase == phase && d.observed_generation == d.generation
        })
        .await
    }

    /// Waits for an event with this action; returns it.
    pub async fn wait_event(&self, uid: &str, action: &str, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self
                .events(uid)
                .await
                .into_iter()
                .find(|e| e.action == action)
            {
                return e;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .events(uid)
                    .await
                    .iter()
                    .map(|e| format!("{}: {}", e.action, e.message))
                    .collect();
                panic!("no {action} event; saw {seen:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A live object as JSON, or None.
    pub async fn live(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (ar, _) = kube::discovery::pinned_kind(&self.kube, &gvk)
            .await
            .unwrap();
        let api: kube::Api<kube::api::DynamicObject> = match namespace {
            Some(ns) => kube::Api::namespaced_with(self.kube.clone(), ns, &ar),
            None => kube::Api::all_with(self.kube.clone(), &ar),
        };
        api.get_opt(name)
            .await
            .unwrap()
            .map(|o| serde_json::to_value(o).unwrap())
    }
}

pub fn client_for(sim: &kubesim::Server) -> kube::Client {
    let config = kube::Config::new(sim.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}
