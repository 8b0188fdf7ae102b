//! The long-running processes: server, worker, dev; and the offline admin commands.

use crate::cli::{
    AdminCreateTokenArgs, DatabaseArgs, DevArgs, HelmArgs, ReconcileArgs, ServerArgs, WorkerArgs,
};
use anyhow::{Context, Result};
use caelus_api::AppState;
use caelus_api::auth::{Role, hash_token};
use caelus_store::{Store, tokens};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn open(db: &DatabaseArgs, migrate: bool) -> Result<Store> {
    let store = Store::connect(&db.database_url)
        .await
        .context("cannot open the database")?;
    if migrate {
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
    }
    Ok(store)
}

pub async fn migrate(db: DatabaseArgs) -> Result<()> {
    open(&db, true).await?;
    println!("migrations applied");
    Ok(())
}

pub async fn admin_create_token(args: AdminCreateTokenArgs) -> Result<()> {
    let store = open(&args.db, true).await?;
    let role = Role::parse(args.role.as_str()).expect("clap restricts roles");
    let mut tx = store.begin().await?;
    let created = caelus_api::routes::tokens::issue(
        &mut tx,
        &args.name,
        role,
        args.tenant.as_deref(),
        "bootstrap",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    tx.commit().await?;
    eprintln!(
        "created {} token '{}' (id {}, tenant {}); the secret is shown once:",
        created.token.role,
        created.token.name,
        created.token.id,
        created.token.tenant.as_deref().unwrap_or("none")
    );
    println!("{}", created.secret);
    Ok(())
}

/// Loads the Helm engine as `caelus server` and `caelus worker` configure it.
pub fn load_helm_with(
    args: &HelmArgs,
    loading: caelus_helm::LibraryLoading,
) -> Result<caelus_helm::HelmEngine> {
    let helm = load_helm_limited(
        &args.data_dir,
        args.helm_lib.as_deref(),
        args.render_limits(),
        loading,
    )?;
    if let Some(path) = &args.registries {
        for (host, s) in crate::chart_push::read_registries(path)? {
            helm.set_registry(&host, s);
        }
    }
    Ok(helm)
}

/// Loads the Helm engine with its chart cache under `data_dir`.
pub fn load_helm(data_dir: &Path, lib: Option<&Path>) -> Result<caelus_helm::HelmEngine> {
    load_helm_limited(
        data_dir,
        lib,
        caelus_helm::RenderLimits::default(),
        caelus_helm::LibraryLoading::AtStart,
    )
}

fn load_helm_limited(
    data_dir: &Path,
    lib: Option<&Path>,
    limits: caelus_helm::RenderLimits,
    loading: caelus_helm::LibraryLoading,
) -> Result<caelus_helm::HelmEngine> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let mut config = caelus_helm::EngineConfig::new(data_dir);
    config.library_path = lib.map(Path::to_path_buf);
    config.render_limits = limits;
    config.library_loading = loading;
    Ok(caelus_helm::HelmEngine::load(config)?)
}

pub async fn server(args: ServerArgs) -> Result<()> {
    let helm = load_helm_with(
        &args.helm,
        if args.helm_at_start {
            caelus_helm::LibraryLoading::AtStart
        } else {
            caelus_helm::LibraryLoading::OnFirstUse
        },
    )?;
    let store = open(&args.db, !args.no_migrate).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "API listening");
    let mut state = AppState::new(store.clone(), helm)
        .with_metrics_token(args.metrics_token.clone())
        .with_required_certification(args.require_certification);
    // A cluster is optional for the API server: only the orphan, endpoints and
    // connection endpoints and --install-crds need one.
    let client = match kube_client(args.kubeconfig.as_deref()).await {
        Ok(c) => Some(c),
        Err(e) if args.kubeconfig.is_none() && !args.install_crds => {
            tracing::info!(error = %format!("{e:#}"), "no cluster configured: the orphan, endpoints and connection endpoints answer 503");
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(client) = client {
        let engine = caelus_engine::Engine::new(
            client,
            caelus_engine::EngineConfig {
                installation_id: args.installation_id.clone(),
                ..Default::default()
            },
        );
        if args.install_crds {
            engine
                .install_crds()
                .await
                .context("cannot install the projection CRDs")?;
            tracing::info!("projection CRDs installed");
        }
        state = state.with_cluster(engine.clone());
        state = state.with_orphans(caelus_reconciler::OrphanScanner {
            store,
            engine,
            min_age: args.orphans.min_age,
        });
    }
    caelus_api::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// The worker's optional periodic orphan scan: logs what it finds, and
/// deletes it when `clean` (audited as the worker).
async fn scan_orphans_every(
    scanner: caelus_reconciler::OrphanScanner,
    every: Duration,
    clean: bool,
    actor: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let result = if clean {
            scanner.clean(true, &actor).await.map(|r| r.deleted)
        } else {
            scanner.scan().await
        };
        match result {
            Ok(found) => {
                for f in &found {
                    tracing::warn!(kind = %f.kind, namespace = ?f.namespace, name = %f.name,
                        reason = %f.reason, deleted = clean, "orphan");
                }
                tracing::info!(
                    orphans = found.len(),
                    deleted = clean,
                    "orphan scan finished"
                );
            }
            Err(e) => tracing::warn!(error = %e, "orphan scan failed"),
        }
    }
}

/// Why there is no client, before kube-rs's reasons for each source.
pub const NO_CLUSTER: &str = "no Kubernetes cluster configured: pass --kubeconfig \
    (CAELUS_KUBECONFIG), set KUBECONFIG or write ~/.kube/config, or run in a pod with a \
    service account (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT and \
    /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace})";

/// A Kubernetes client: from a kubeconfig file, or inferred as `kube::Config::infer`
/// does: KUBECONFIG or ~/.kube/config, else the in-cluster service account
/// (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token and CA mounted under
/// /var/run/secrets/kubernetes.io/serviceaccount, re-read as the token rotates).
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        // kube-rs names both failures: the kubeconfig's and the in-cluster one's.
        None => kube::Config::infer().await.context(NO_CLUSTER)?,
    };
    // Every request to the API server is counted by verb and status code.
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&caelus_metrics::KubeMetricsLayer::global())
        .build())
}

/// A reconciler over `store`, driving the cluster behind `client`.
pub fn reconciler(
    store: Store,
    helm: caelus_helm::HelmEngine,
    client: kube::Client,
    args: &ReconcileArgs,
    worker_id: Option<String>,
    wake: Arc<Notify>,
) -> Arc<caelus_reconciler::Reconciler> {
    let engine = caelus_engine::Engine::new(
        client,
        caelus_engine::EngineConfig {
            installation_id: args.installation_id.clone(),
            ingress_namespaces: args.ingress_namespaces.clone(),
            ..Default::default()
        },
    );
    let projector = args.projections.then(|| {
        caelus_reconciler::Projector::new(
            store.clone(),
            engine.clone(),
            caelus_reconciler::ProjectorConfig {
                writes_per_second: args.projection_writes_per_second,
                burst: args.projection_writes_per_second.ceil().clamp(1.0, 1000.0) as u32,
                ..Default::default()
            },
        )
    });
    Arc::new(caelus_reconciler::Reconciler {
        store,
        helm,
        engine,
        projector,
        config: caelus_reconciler::WorkerConfig {
            id: worker_id.unwrap_or_else(|| caelus_reconciler::WorkerConfig::default().id),
            concurrency: args.concurrency.max(1),
            resync: Duration::from_secs(args.resync_seconds.max(1)),
            lease: Duration::from_secs(args.lease_seconds.max(3)),
            ..Default::default()
        },
        wake,
    })
}

pub async fn worker(args: WorkerArgs) -> Result<()> {
    let store = open(&args.db, false).await?;
    let helm = load_helm_with(&args.helm, caelus_helm::LibraryLoading::AtStart)?;
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    if store.backend() == caelus_store::Backend::Postgres {
        tokio::spawn(caelus_reconciler::forward_pg_notifications(
            args.db.database_url.clone(),
            wake.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        tracing::info!(addr = %listener.local_addr()?, "metrics listening");
        let source = caelus_api::metrics::MetricsSource {
            store: store.clone(),
            helm: Some(helm.clone()),
            bearer: args.metrics_token.clone(),
        };
        let mut stop = stop_rx.clone();
        tokio::spawn(caelus_api::metrics::serve(listener, source, async move {
            let _ = stop.changed().await;
        }));
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let reconciler = reconciler(
        store,
        helm,
        client,
        &args.reconcile,
        args.worker_id.clone(),
        wake,
    );
    if args.install_crds {
        reconciler
            .engine
            .install_crds()
            .await
            .context("cannot install the projection CRDs")?;
        tracing::info!("projection CRDs installed");
    }
    if let Some(every) = args.orphan_scan_interval {
        tokio::spawn(scan_orphans_every(
            caelus_reconciler::OrphanScanner {
                store: reconciler.store.clone(),
                engine: reconciler.engine.clone(),
                min_age: args.orphans.min_age,
            },
            every,
            args.orphan_clean,
            format!("worker:{}", reconciler.config.id),
            stop_rx.clone(),
        ));
    }
    reconciler.run(stop_rx).await;
    Ok(())
}

/// The dev admin token: kept in the data dir (mode 0600) so every `caelus dev` run
/// can print it; re-issued if the file is missing or its token was revoked.
async fn dev_admin_token(store: &Store, data_dir: &Path) -> Result<String> {
    let file = data_dir.join("admin-token");
    if let Ok(secret) = std::fs::read_to_string(&file) {
        let secret = secret.trim().to_string();
        let mut conn = store.conn().await?;
        if tokens::find_active_by_hash(&mut conn, &hash_token(&secret))
            .await?
            .is_some()
        {
            return Ok(secret);
        }
    }
    let mut tx = store.begin().await?;
    let created =
        caelus_api::routes::tokens::issue(&mut tx, "dev-admin", Role::Admin, None, "caelus dev")
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    tx.commit().await?;
    write_private(&file, &created.secret)?;
    Ok(created.secret)
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

pub async fn dev(args: DevArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let url = format!("sqlite://{}", data_dir.join("caelus.db").display());
    let store = open(&DatabaseArgs { database_url: url }, true).await?;
    let token = dev_admin_token(&store, &data_dir).await?;
    let helm = load_helm(&data_dir, args.helm_lib.as_deref())?;
    let registry =
        crate::dev_catalog::DevRegistry::start(&data_dir.join("registry"), args.registry_port);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(store.clone(), helm.clone())
        .with_required_certification(args.require_certification);
    let (stop_tx, stop_rx) = watch::channel(false);
    // The cluster: a real one if asked, else kubesim in this process.
    let (client, sim, kubeconfig) = match &args.kubeconfig {
        Some(path) => (kube_client(Some(path)).await?, None, path.clone()),
        None => {
            let sim = kubesim::Server::start(kubesim::Config::default()).await?;
            let path = data_dir.join("kubeconfig");
            sim.write_kubeconfig(&path)?;
            (kube_client(Some(&path)).await?, Some(sim), path)
        }
    };
    let reconciler = reconciler(
        store.clone(),
        helm.clone(),
        client,
        &args.reconcile,
        None,
        state.wake_workers.clone(),
    );
    if sim.is_some() {
        // The projection CRDs, so `kubectl get caelusdeployments -A` works at once.
        reconciler
            .engine
            .install_crds()
            .await
            .context("cannot install the projection CRDs")?;
    }
    let state = state.with_cluster(reconciler.engine.clone()).with_orphans(
        caelus_reconciler::OrphanScanner {
            store: store.clone(),
            engine: reconciler.engine.clone(),
            min_age: args.orphans.min_age,
        },
    );
    let worker = tokio::spawn(reconciler.run(stop_rx));

    println!("Caelus dev is running");
    println!("  web UI:   http://{addr}/ui  (sign in with the admin token below)");
    println!("  API:      http://{addr}/api/v1");
    println!("  API docs: http://{addr}/docs");
    println!("  data dir: {}", data_dir.display());
    match &sim {
        Some(sim) => println!(
            "  cluster:  kubesim at {} (kubectl --kubeconfig {})",
            sim.url(),
            kubeconfig.display()
        ),
        None => println!("  cluster:  {}", kubeconfig.display()),
    }
    if let Ok(registry) = &registry {
        println!("  registry: oci://{}/charts", registry.host());
    }
    println!(
        "  admin token (also in {}):",
        data_dir.join("admin-token").display()
    );
    println!("    export CAELUS_URL=http://{addr} CAELUS_TOKEN={token}");
    println!(
        "  or save it as a context, once (then `template publish --chart ./DIR` pushes here):"
    );
    match &registry {
        Ok(registry) => println!(
            "    caelus login --url http://{addr} --token {token} --chart-repository oci://{}/charts",
            registry.host()
        ),
        Err(_) => println!("    caelus login --url http://{addr} --token {token}"),
    }

    let server = tokio::spawn(caelus_api::serve(listener, state, shutdown_signal()));
    match &registry {
        Ok(registry) => {
            let client =
                crate::client::Client::new(&format!("http://{addr}"), Some(token.clone()))?;
            if let Err(e) = crate::dev_catalog::seed(&client, &helm, registry).await {
                tracing::warn!(error = %e, "could not publish the demo catalog");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no local registry: the demo catalog is not published")
        }
    }
    server.await??;
    drop(registry);
    let _ = stop_tx.send(true);
    worker.await?;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    store.close().await;
    Ok(())
}
