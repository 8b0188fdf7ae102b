//! A real API server on a random port over a throwaway database.

#![allow(dead_code)]

use caelus_api::AppState;
use caelus_api::auth::Role;
use caelus_helm::testing::{TestRegistry, push_test_chart};
use caelus_store::Backend;
use caelus_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const DIGEST_A: &str =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const DIGEST_B: &str =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

pub struct Server {
    pub base: String,
    pub db: TestDb,
    pub admin: String,
    /// A real OCI registry with the repository's test charts pushed on demand.
    pub registry: TestRegistry,
    pub helm: caelus_helm::HelmEngine,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Reply {
    /// Asserts a problem+json answer with this status; returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:caelus:problem:")
        );
        assert!(!self.body["detail"].as_str().unwrap().is_empty());
        &self.body
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }

    /// The field names of a problem's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Server {
    pub async fn start(backend: Backend) -> Server {
        Self::start_with(backend, |s| s).await
    }

    /// A server whose state `configure` adjusts (limits, metrics token…).
    pub async fn start_with(
        backend: Backend,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::new(backend).await;
        let admin = {
            let mut tx = db.store.begin().await.unwrap();
            let t =
                caelus_api::routes::tokens::issue(&mut tx, "test-admin", Role::Admin, None, "test")
                    .await
                    .unwrap();
            tx.commit().await.unwrap();
            t.secret
        };
        let registry =
            TestRegistry::start().expect("start docker-registry (scripts/install-registry)");
        let helm = caelus_helm::testing::engine(&registry.temp_dir().join("api-cache"))
            .expect("load libhelm_c");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = configure(AppState::new(db.store.clone(), helm.clone()));
        tokio::spawn(caelus_api::serve(listener, state, async {
            let _ = rx.await;
        }));
        Server {
            base,
            db,
            admin,
            registry,
            helm,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let (ct, bytes) = match body {
            Some(b) => (Some("application/json"), serde_json::to_vec(&b).unwrap()),
            None => (None, Vec::new()),
        };
        self.raw(method, path, Some(token), ct, bytes).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Creates a tenant token and returns its secret.
    pub async fn tenant(&self, tenant: &str) -> String {
        let r = self
            .post(
                "/api/v1/tokens",
                &self.admin,
                json!({"name": tenant, "role": "tenant", "tenant": tenant}),
            )
            .await;
        r.ok(201)["secret"].as_str().unwrap().to_string()
    }

    /// Pushes test chart `name`/`version` and returns its tag reference and digest.
    pub async fn chart(&self, name: &str, version: &str) -> (String, String) {
        let (reference, digest) = push_test_chart(&self.registry, name, version)
            .await
            .unwrap();
        (reference, digest.to_string())
    }

    /// A product `wiki` with published version 1.0.0 allowing `replicaCount` and `resources.*`.
    pub async fn seed_catalog(&self) {
        self.post(
            "/api/v1/products",
            &self.admin,
            json!({"slug": "wiki", "name": "Team wiki"}),
        )
        .await
        .ok(201);
        let (chart, _) = self.chart("web", "1.0.0").await;
        self.post(
            "/api/v1/products/wiki/versions",
            &self.admin,
            json!({
                "version": "1.0.0",
                "chart": chart,
                "values_allowlist": ["replicaCount", "resources.*"],
                "publish": true
            }),
        )
        .await
        .ok(201);
    }

    pub async fn create_deployment(&self, token: &str, name: &str) -> Value {
        self.post(
            "/api/v1/deployments",
            token,
            json!({"name": name, "product": "wiki", "version": "1.0.0", "values": {"replicaCount": 2}}),
        )
        .await
        .ok(201)
        .clone()
    }

    /// Row counts straight from the database, to prove nothing was half-written.
    pub async fn count(&self, table: &str) -> i64 {
        use sqlx::Row;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(self.db.store.pool())
        .await
        .unwrap();
        row.try_get("n").unwrap()
    }
}

/// Another API server on the same database, with its own connection pool and
/// state, as a second replica (or process) would have.
pub struct Replica {
    pub base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn replica(&self) -> Replica {
        let store = caelus_store::Store::connect(&self.db.url)
            .await
            .expect("a second connection pool");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(store, self.helm.clone());
        tokio::spawn(caelus_api::serve(listener, state, async {
            let _ = rx.await;
        }));
        Replica {
            base,
            shutdown: Some(tx),
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
