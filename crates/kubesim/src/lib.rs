//! kubesim: a Kubernetes API server simulator for tests and local
//! development, in the spirit of KWOK. Real `kubectl` and kube-rs accept it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = kubesim::Server::start(kubesim::Config::default()).await?;
//! println!("{}", sim.url()); // http://127.0.0.1:PORT
//! sim.write_kubeconfig("/tmp/kubeconfig")?;
//! sim.faults().add_error(kubesim::ErrorFault { verb: Some("create".into()), code: 503, ..Default::default() });
//! assert_eq!(sim.stats().verb("create"), 0);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules follow the API server's ideas: [`store`] (objects, resourceVersion,
//! event history), [`api`] (verbs and metadata rules), [`kinds`] (per-kind
//! behaviour behind one trait), [`conversion`] (served versions), [`managed_fields`]
//! (server-side apply), [`patch`], [`discovery`], [`openapi`], [`controllers`]
//! (workloads, namespaces, garbage collection), [`faults`], [`http`] and
//! [`tls`] (HTTPS, for clients configured in-cluster).

pub mod admission;
pub mod api;
pub mod controllers;
pub mod conversion;
pub mod defaults;
pub mod discovery;
pub mod errors;
pub mod faults;
pub mod http;
pub mod kinds;
pub mod managed_fields;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod quantity;
pub mod rbac;
pub mod request_validation;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod server;
pub mod stats;
pub mod store;
pub mod structural;
pub mod subresources;
pub mod table;
pub mod tls;
pub mod validation;
pub mod values;
pub mod wire;

pub use controllers::workloads_annotations::{JOB_FAIL, NEVER_READY};
pub use errors::ApiError;
pub use faults::{ErrorFault, FaultConfig, Faults, LatencyFault, StuckFinalizer, TimeoutFault};
pub use rbac::{PolicyRule, Rbac, RequestCount, ResourceRequest};
pub use server::{Config, Server, kubeconfig_yaml};
pub use stats::StatsSnapshot;
pub use tls::TlsConfig;
