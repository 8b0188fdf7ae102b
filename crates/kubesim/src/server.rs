//! Starting and stopping a simulator: the library entry point.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::api::{Api, WriteOptions};
use crate::faults::Faults;
use crate::rbac::Rbac;
use crate::stats::{Stats, StatsSnapshot};
use crate::store::Store;
use crate::tls::{TlsConfig, TlsListener};

/// Simulator settings. `Config::default()` listens on 127.0.0.1 with a
/// random port, rolls workloads out immediately and runs the controllers.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// How long Deployments/StatefulSets/DaemonSets/Jobs/Pods take to become
    /// ready (per generation).
    pub rollout_delay: Duration,
    /// Events kept for watch resumption; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// How often watches that asked for bookmarks receive one.
    pub bookmark_interval: Duration,
    /// Run the simulated controllers (workloads, namespaces, GC).
    pub controllers: bool,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rollout_delay: Duration::ZERO,
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(1),
            controllers: true,
            tls: None,
        }
    }
}

/// State shared by the HTTP handlers.
pub struct Shared {
    pub api: Arc<Api>,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
    pub rbac: Arc<Rbac>,
    pub config: Config,
    pub addr: SocketAddr,
}

/// A running simulator.
pub struct Server {
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The namespaces and objects every cluster starts with.
fn seed(api: &Api) {
    let ns = api.info_for("", "namespaces").expect("built in");
    let sa = api.info_for("", "serviceaccounts").expect("built in");
    let opts = WriteOptions {
        field_manager: Some("kube-apiserver".into()),
        ..Default::default()
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = api.create(&ns, "", json!({"metadata": {"name": name}}), &opts);
        let _ = api.create(&sa, name, json!({"metadata": {"name": "default"}}), &opts);
    }
    // A default StorageClass that allows volume expansion and one that does not.
    if let Some(sc) = api.info_for("storage.k8s.io", "storageclasses") {
        for (name, default, expand) in [
            (crate::admission::storage::DEFAULT_CLASS, true, true),
            (crate::admission::storage::FIXED_CLASS, false, false),
        ] {
            let mut obj = json!({
                "metadata": {"name": name},
                "provisioner": "sim.kubesim.dev/simulated",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": expand,
            });
            if default {
                obj["metadata"]["annotations"] =
                    json!({"storageclass.kubernetes.io/is-default-class": "true"});
            }
            let _ = api.create(&sc, "", obj, &opts);
        }
    }
    if let Some(node) = api.info_for("", "nodes") {
        let _ = api.create(
            &node,
            "",
            json!({"metadata": {"name": "kubesim-node", "labels": {"kubernetes.io/hostname": "kubesim-node", "kubernetes.io/os": "linux"}}}),
            &opts,
        );
    }
}

impl Server {
    /// Binds `config.listen` and starts serving.
    pub async fn start(config: Config) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        // Before anything is spawned: a bad certificate or key fails the start.
        let tls = config.tls.as_ref().map(TlsConfig::acceptor).transpose()?;
        let store = Arc::new(Store::new(config.watch_history));
        let api = Arc::new(Api::new(store));
        seed(&api);
        let shared = Arc::new(Shared {
            api: api.clone(),
            faults: Arc::new(Faults::new()),
            stats: Arc::new(Stats::default()),
            rbac: Arc::new(Rbac::default()),
            config: config.clone(),
            addr,
        });
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let app = crate::http::router(shared.clone());
        let mut srx = rx.clone();
        let stopped = async move {
            let _ = srx.changed().await;
        };
        tasks.push(match tls {
            Some(acceptor) => tokio::spawn(async move {
                let _ = axum::serve(TlsListener::new(listener, acceptor), app)
                    .with_graceful_shutdown(stopped)
                    .await;
            }),
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await;
            }),
        });
        if config.controllers {
            tasks.push(tokio::spawn(crate::controllers::run(
                api,
                config.rollout_delay,
                rx,
            )));
        }
        Ok(Server {
            shared,
            shutdown,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.shared.addr)
    }

    /// A kubeconfig (context `kubesim`, namespace `default`, no auth) that
    /// kubectl and kube-rs accept; over TLS it trusts [`TlsConfig::trust_pem`]
    /// and presents [`ADMIN_TOKEN`].
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = self.shared.config.tls.as_ref().map(TlsConfig::trust_pem);
        kubeconfig_yaml_trusting(&self.url(), ca)
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Fault injection controls (also at `/kubesim/faults`).
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Request counters (also at `GET /kubesim/stats`).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Role-based access control for the bearer tokens a test restricts
    /// (requests without one are not restricted).
    pub fn rbac(&self) -> &Rbac {
        &self.shared.rbac
    }

    pub fn reset_stats(&self) {
        self.shared.stats.reset()
    }

    /// Direct access to the API semantics (bypasses HTTP, faults and stats).
    pub fn api(&self) -> &Api {
        &self.shared.api
    }

    /// Stops serving; open watches end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.shared.faults.drop_watches_now();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// The bearer token of [`Server::kubeconfig_yaml`] over TLS.
pub const ADMIN_TOKEN: &str = "kubesim-admin";

pub fn kubeconfig_yaml(url: &str) -> String {
    kubeconfig_yaml_trusting(url, None)
}

/// [`kubeconfig_yaml`], trusting the PEM CA bundle `ca` for an `https` URL.
fn kubeconfig_yaml_trusting(url: &str, ca: Option<&[u8]>) -> String {
    use base64::Engine as _;
    let (ca, user) = match ca {
        Some(pem) => (
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            ),
            // Over https, kubectl prompts for a username and password when the
            // user has no credentials; any token not restricted through
            // `Server::rbac` acts as cluster-admin.
            format!("\n    token: {ADMIN_TOKEN}"),
        ),
        None => (String::new(), " {}".to_string()),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubesim
  cluster:
    server: {url}{ca}
contexts:
- name: kubesim
  context:
    cluster: kubesim
    user: kubesim
    namespace: default
current-context: kubesim
users:
- name: kubesim
  user:{user}
"
    )
}
