//! Explicit upgrades and rollbacks end to end: the real API and reconciler in
//! one process, kubesim, a real registry with the StatefulSet test chart.

use caelus_api::AppState;
use caelus_api::auth::Role;
use caelus_cli::cli::ReconcileArgs;
use caelus_helm::testing::{TestRegistry, push_test_chart};
use caelus_store::testing::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Platform {
    base: String,
    admin: String,
    http: reqwest::Client,
    registry: TestRegistry,
    /// The engine the API and the worker share (to empty its caches).
    helm: caelus_helm::HelmEngine,
    sim: kubesim::Server,
    _db: TestDb,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Platform {
    async fn start() -> Platform {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::sqlite().await;
        let registry = TestRegistry::start().expect("docker-registry");
        let helm =
            caelus_helm::testing::engine(&registry.temp_dir().join("cache")).expect("libhelm_c");
        let sim = kubesim::Server::start(kubesim::Config::default())
            .await
            .unwrap();
        let admin = {
            let mut tx = db.store.begin().await.unwrap();
            let t = caelus_api::routes::tokens::issue(&mut tx, "ops", Role::Admin, None, "test")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            t.secret
        };
        let state = AppState::new(db.store.clone(), helm.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
        let args = ReconcileArgs {
            concurrency: 2,
            resync_seconds: 3600,
            lease_seconds: 30,
            installation_id: "test".into(),
            ingress_namespaces: vec![],
            projections: false,
            projection_writes_per_second: 20.0,
        };
        let reconciler: Arc<caelus_reconciler::Reconciler> = caelus_cli::processes::reconciler(
            db.store.clone(),
            helm.clone(),
            client,
            &args,
            None,
            state.wake_workers.clone(),
        );
        // Previews render with Helm's lookup scoped as the worker's renders are.
        let state = state.with_cluster(reconciler.engine.clone());
        let mut api_stop = stop_rx.clone();
        tokio::spawn(caelus_api::serve(listener, state, async move {
            let _ = api_stop.changed().await;
        }));
        tokio::spawn(reconciler.run(stop_rx));
        Platform {
            base,
            admin,
            http: reqwest::Client::new(),
            registry,
            helm,
            sim,
            _db: db,
            stop,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        self.call(reqwest::Method::GET, path, token, None).await.1
    }

    async fn publish(&self, version: &str, body: Value) {
        let (chart, _) = push_test_chart(&self.registry, "stateful", version)
            .await
            .unwrap();
        let mut req = json!({"version": version, "chart": chart, "publish": true, "values_allowlist": ["replicaCount", "persistence.*"]});
        for (k, v) in body.as_object().unwrap() {
            req[k] = v.clone();
        }
        let (status, body) = self
            .post("/api/v1/products/db/versions", &self.admin, req)
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn catalog(&self) {
        let (s, _) = self
            .post(
                "/api/v1/products",
                &self.admin,
                json!({"slug": "db", "name": "Redis"}),
            )
            .await;
        assert_eq!(s, 201);
        self.publish("1.0.0", json!({})).await;
        self.publish("2.0.0", json!({})).await;
        // A broken release: its pods never become ready. Short health timeout.
        self.publish(
            "3.0.0",
            json!({"capabilities": {"health_timeout_seconds": 3}}),
        )
        .await;
    }

    async fn tenant(&self, name: &str) -> String {
        let (_, t) = self
            .post(
                "/api/v1/tokens",
                &self.admin,
                json!({"name": name, "role": "tenant", "tenant": name}),
            )
            .await;
        t["secret"].as_str().unwrap().to_string()
    }

    async fn wait(
        &self,
        uid: &str,
        token: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let d = self.get(&format!("/api/v1/deployments/{uid}"), token).await;
            if check(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {d:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a deployment as `token` and waits until it is Ready: (uid, namespace).
    async fn deploy_ready(&self, token: &str, body: Value) -> (String, String) {
        let (s, d) = self.post("/api/v1/deployments", token, body).await;
        assert_eq!(s, 201, "{d}");
        let uid = d["uid"].as_str().unwrap().to_string();
        let ns = d["namespace"].as_str().unwrap().to_string();
        self.wait_settled(&uid, token, "Ready").await;
        (uid, ns)
    }

    async fn wait_settled(&self, uid: &str, token: &str, phase: &str) -> Value {
        self.wait(uid, token, phase, |d| {
            d["status"]["phase"] == phase && d["observed_generation"] == d["generation"]
        })
        .await
    }

    /// name -> (uid, phase) of the PVCs in a namespace.
    async fn pvcs(&self, ns: &str) -> BTreeMap<String, (String, String)> {
        let client =
            kube::Client::try_from(kube::Config::new(self.sim.url().parse().unwrap())).unwrap();
        let api: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
            kube::Api::namespaced(client, ns);
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| {
                let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
                (p.metadata.name.unwrap(), (p.metadata.uid.unwrap(), phase))
            })
            .collect()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[tokio::test]
async fn upgrades_keep_data_failed_upgrades_roll_back_and_history_tells_it_all() {
    let p = Platform::start().await;
    p.catalog().await;
    let t = p.tenant("acme").await;
    let (uid, ns) = p
        .deploy_ready(
            &t,
            json!({"name": "cache", "product": "db", "version": "1.0.0"}),
        )
        .await;
    let volumes = p.pvcs(&ns).await;
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    assert!(volumes.values().all(|(_, phase)| phase == "Bound"));

    // Dry run: the plan, and nothing changes.
    let (s, plan) = p
        .post(
            &format!("/api/v1/deployments/{uid}/upgrade"),
            &t,
            json!({"to_version": "2.0.0", "dry_run": true}),
        )
        .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["allowed"], true);
    let update = plan["update"].as_array().unwrap();
    let sts = update
        .iter()
        .find(|u| u["object"].as_str().unwrap().starts_with("StatefulSet/"))
        .unwrap();
    assert!(
        sts["changes"].to_string().contains("REDIS_APPENDONLY"),
        "{sts}"
    );
    assert!(
        plan["policy"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["passed"] == true),
        "{plan}"
    );
    assert_eq!(
        p.get(&format!("/api/v1/deployments/{uid}"), &t).await["generation"],
        1
    );

    // 1.0.0 -> 2.0.0: the same PVC objects, still bound.
    let (s, body) = p
        .post(
            &format!("/api/v1/deployments/{uid}/upgrade"),
            &t,
            json!({"to_version": "2.0.0"}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let d = p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(d["version"], "2.0.0");
    assert_eq!(d["status"]["current_revision"], 2);
    assert_eq!(
        p.pvcs(&ns).await,
        volumes,
        "the upgrade must keep the same volumes"
    );

    // 2.0.0 -> 3.0.0 never becomes healthy: rolled back to revision 2, Degraded with the reason.
    let (s, body) = p
        .post(
            &format!("/api/v1/deployments/{uid}/upgrade"),
            &t,
            json!({"to_version": "3.0.0"}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let d = p.wait_settled(&uid, &t, "Degraded").await;
    let message = d["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("3.0.0") && message.contains("Rolled back to revision 2"),
        "{message}"
    );
    assert_eq!(d["status"]["current_revision"], 2);
    assert_eq!(
        p.pvcs(&ns).await,
        volumes,
        "the rollback must keep the same volumes"
    );
    let history = p
        .get(&format!("/api/v1/deployments/{uid}/revisions"), &t)
        .await;
    let rows: Vec<(i64, String, String)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["number"].as_i64().unwrap(),
                r["version"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (3, "3.0.0".into(), "failed".into()),
            (2, "2.0.0".into(), "deployed".into()),
            (1, "1.0.0".into(), "superseded".into())
        ]
    );
    assert!(
        history["items"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not healthy"),
        "{history}"
    );
    assert!(
        history["items"][0]["requested_by"]
            .as_str()
            .unwrap()
            .contains("acme")
    );
    // Degraded is not retried: it stays, with the restored revision kept converged.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let still = p.get(&format!("/api/v1/deployments/{uid}"), &t).await;
    assert_eq!(still["status"]["phase"], "Degraded");
    assert_eq!(
        p.get(&format!("/api/v1/deployments/{uid}/revisions"), &t)
            .await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Manual rollback to revision 1: a new revision of kind rollback, data kept.
    let (s, body) = p
        .post(
            &format!("/api/v1/deployments/{uid}/rollback"),
            &t,
            json!({"revision": 1}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let d = p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(d["version"], "1.0.0");
    assert_eq!(d["status"]["current_revision"], 4);
    let history = p
        .get(&format!("/api/v1/deployments/{uid}/revisions"), &t)
        .await;
    assert_eq!(history["items"][0]["kind"], "rollback");
    assert_eq!(history["items"][0]["outcome"], "deployed");
    assert_eq!(
        p.pvcs(&ns).await,
        volumes,
        "a manual rollback must keep the same volumes"
    );
    let events = p
        .get(&format!("/api/v1/deployments/{uid}/events?limit=500"), &t)
        .await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "deployment.upgrade",
        "reconcile.rolled-back",
        "deployment.rollback",
    ] {
        assert!(actions.contains(&a), "{actions:?}");
    }
}

#[tokio::test]
async fn upgrade_policy_refuses_with_one_reason_per_rule() {
    let p = Platform::start().await;
    p.catalog().await;
    let (chart, _) = push_test_chart(&p.registry, "stateful", "2.0.0")
        .await
        .unwrap();
    let (s, _) = p
        .post(
            "/api/v1/products/db/versions",
            &p.admin,
            json!({"version": "2.5.0", "chart": chart, "publish": true, "values_allowlist": ["replicaCount", "persistence.*"],
                   "capabilities": {"upgrade_requires_admin": true}}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = p
        .post(
            "/api/v1/products/db/versions",
            &p.admin,
            json!({"version": "4.0.0-rc.1", "chart": chart}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = p
        .post(
            "/api/v1/products/db/versions",
            &p.admin,
            json!({"version": "2.8.0", "chart": chart, "publish": true, "values_allowlist": []}),
        )
        .await;
    assert_eq!(s, 201);
    let t = p.tenant("acme").await;
    let (_, d) = p
        .post("/api/v1/deployments", &t, json!({"name": "c", "product": "db", "version": "2.0.0", "values": {"replicaCount": 1}}))
        .await;
    let uid = d["uid"].as_str().unwrap().to_string();
    p.wait_settled(&uid, &t, "Ready").await;
    let up = |v: &str| json!({"to_version": v});
    let path = format!("/api/v1/deployments/{uid}/upgrade");

    let (s, b) = p.post(&path, &t, up("1.0.0")).await;
    assert_eq!(s, 422);
    assert!(b["detail"].as_str().unwrap().contains("rollback"), "{b}");
    let (s, b) = p.post(&path, &t, up("2.5.0")).await;
    assert_eq!(s, 403);
    assert!(
        b["detail"].as_str().unwrap().contains("requires an admin"),
        "{b}"
    );
    let (s, _) = p.post(&path, &t, up("4.0.0-rc.1")).await;
    assert_eq!(
        s, 422,
        "a draft is not a target (and is invisible to tenants)"
    );
    let (s, b) = p.post(&path, &p.admin, up("4.0.0-rc.1")).await;
    assert_eq!(s, 422);
    assert!(b["detail"].as_str().unwrap().contains("draft"), "{b}");
    let (s, b) = p.post(&path, &t, up("2.8.0")).await;
    assert_eq!(s, 422);
    assert!(
        b["detail"].as_str().unwrap().contains("replicaCount")
            && b["detail"].as_str().unwrap().contains("new values"),
        "{b}"
    );
    // The data-continuity preflight: a volumeClaimTemplates change is refused, naming the object.
    let (s, b) = p
        .post(
            &path,
            &t,
            json!({"to_version": "3.0.0", "values": {"persistence": {"size": "5Gi"}}}),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("StatefulSet/")
            && b["detail"]
                .as_str()
                .unwrap()
                .contains("volumeClaimTemplates"),
        "{b}"
    );
    let (s, _) = p
        .post(&path, &t, json!({"to_version": "3.0.0", "values": {"persistence": {"size": "5Gi"}}, "allow_data_loss": true}))
        .await;
    assert_eq!(s, 403, "only admins may accept data loss");
    // Nothing above changed the deployment.
    let d = p.get(&format!("/api/v1/deployments/{uid}"), &t).await;
    assert_eq!(d["generation"], 1);

    // The targets listing says which are allowed and why the others are not.
    let targets = p
        .get(&format!("/api/v1/deployments/{uid}/upgrades"), &t)
        .await;
    let by_version: BTreeMap<String, Value> = targets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["version"].as_str().unwrap().to_string(), t.clone()))
        .collect();
    assert_eq!(by_version["3.0.0"]["allowed"], true);
    assert_eq!(by_version["2.5.0"]["allowed"], false);
    assert!(
        by_version["1.0.0"]["reasons"]
            .to_string()
            .contains("rollback")
    );
    assert!(
        !by_version.contains_key("4.0.0-rc.1"),
        "tenants do not see drafts"
    );

    // An admin may accept the risk; it is recorded.
    let (s, b) = p
        .post(&path, &p.admin, json!({"to_version": "3.0.0", "values": {"persistence": {"size": "5Gi"}}, "allow_data_loss": true}))
        .await;
    assert_eq!(s, 202, "{b}");
    let events = p
        .get(&format!("/api/v1/deployments/{uid}/events"), &p.admin)
        .await;
    let upgrade = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "deployment.upgrade")
        .unwrap();
    assert_eq!(upgrade["details"]["allow_data_loss"], true);
    assert!(
        upgrade["message"]
            .as_str()
            .unwrap()
            .contains("allow_data_loss")
    );

    // Deleting: no more upgrades.
    p.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/deployments/{uid}"),
        &t,
        None,
    )
    .await;
    let (s, _) = p.post(&path, &t, up("3.0.0")).await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn two_racing_upgrades_never_both_win() {
    let p = Platform::start().await;
    p.catalog().await;
    let (_, d) = p
        .post(
            "/api/v1/deployments",
            &p.admin,
            json!({"name": "c", "product": "db", "version": "1.0.0"}),
        )
        .await;
    let uid = d["uid"].as_str().unwrap().to_string();
    p.wait_settled(&uid, &p.admin, "Ready").await;
    let path = format!("/api/v1/deployments/{uid}/upgrade");
    let body = json!({"to_version": "2.0.0"});
    let (a, b) = tokio::join!(
        p.post(&path, &p.admin, body.clone()),
        p.post(&path, &p.admin, body.clone())
    );
    let statuses = [a.0.as_u16(), b.0.as_u16()];
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}: {} / {}",
        a.1,
        b.1
    );
    let loser = if a.0 == 202 { &b } else { &a };
    assert!(matches!(loser.0.as_u16(), 409 | 422), "{}", loser.1);
    let d = p.wait_settled(&uid, &p.admin, "Ready").await;
    assert_eq!(d["generation"], 2);
    let history = p
        .get(&format!("/api/v1/deployments/{uid}/revisions"), &p.admin)
        .await;
    assert_eq!(
        history["items"].as_array().unwrap().len(),
        2,
        "one revision per generation"
    );
}

/// Issue 11: after an automatic rollback the deployment shows what runs and
/// the failed target; the target can be retried (`retry`, or `upgrade` to it
/// again), and `rollback` to the running revision gives the target up.
#[tokio::test]
async fn a_rolled_back_upgrade_shows_what_runs_and_can_be_retried() {
    let p = Platform::start().await;
    p.catalog().await;
    let t = p.tenant("acme").await;
    let (uid, ns) = p
        .deploy_ready(
            &t,
            json!({"name": "cache", "product": "db", "version": "2.0.0"}),
        )
        .await;
    let volumes = p.pvcs(&ns).await;
    let retry = format!("/api/v1/deployments/{uid}/retry");
    let (s, b) = p.post(&retry, &t, json!({})).await;
    assert_eq!(s, 409, "nothing failed yet: {b}");
    assert!(
        b["detail"].as_str().unwrap().contains("nothing to retry"),
        "{b}"
    );

    let upgrade = format!("/api/v1/deployments/{uid}/upgrade");
    let (s, b) = p.post(&upgrade, &t, json!({"to_version": "3.0.0"})).await;
    assert_eq!(s, 202, "{b}");
    let d = p.wait_settled(&uid, &t, "Degraded").await;
    // What runs, what was asked for, and why it does not run.
    assert_eq!(d["version"], "2.0.0", "{d:#}");
    assert_eq!(d["desired_version"], "3.0.0");
    assert_eq!(d["status"]["current_revision"], 1);
    let failure = &d["status"]["failure"];
    assert_eq!(failure["target_version"], "3.0.0", "{d:#}");
    assert_eq!(failure["revision"], 2);
    assert_eq!(failure["remedy"], "roll-back");
    assert_eq!(failure["reason"], "HealthCheckFailed");
    let ready = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["reason"], "RolledBack");

    // `upgrade --to` the failed target is an explicit retry: allowed again.
    let (s, b) = p
        .post(
            &upgrade,
            &t,
            json!({"to_version": "3.0.0", "dry_run": true}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["allowed"], true, "{b}");
    assert_eq!(b["from_version"], "2.0.0");

    // `retry` re-attempts it now: a new generation and a new failed revision.
    let generation = d["generation"].as_i64().unwrap();
    let (s, b) = p.post(&retry, &t, json!({})).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["generation"], generation + 1);
    let d = p
        .wait(&uid, &t, "the retry rolled back", |d| {
            d["status"]["phase"] == "Degraded" && d["observed_generation"] == generation + 1
        })
        .await;
    assert_eq!(d["status"]["failure"]["revision"], 3, "{d:#}");
    assert_eq!(d["version"], "2.0.0");
    let events = p
        .get(&format!("/api/v1/deployments/{uid}/events?limit=500"), &t)
        .await;
    let retried = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "deployment.retry")
        .expect("the retry is on the timeline");
    assert_eq!(retried["details"]["failed_revision"], 2, "{retried}");

    // Rolling back to the revision that runs gives the failed target up.
    let (s, b) = p
        .post(
            &format!("/api/v1/deployments/{uid}/rollback"),
            &t,
            json!({"revision": 1}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let d = p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(d["version"], "2.0.0");
    assert_eq!(d["desired_version"], "2.0.0");
    assert!(d["status"]["failure"].is_null(), "{d:#}");
    let (s, b) = p
        .post(
            &format!("/api/v1/deployments/{uid}/rollback"),
            &t,
            json!({"revision": d["status"]["current_revision"]}),
        )
        .await;
    assert_eq!(s, 409, "restoring what runs changes nothing: {b}");
    let (s, _) = p.post(&retry, &t, json!({})).await;
    assert_eq!(s, 409);

    // A values update gets the same data-continuity preflight as an upgrade,
    // and the same dry-run plan.
    let (s, plan) = p
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/deployments/{uid}"),
            &t,
            Some(json!({"values": {"persistence": {"size": "5Gi"}}, "dry_run": true})),
        )
        .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["allowed"], false, "{plan}");
    assert!(
        plan["data_risks"].to_string().contains("StatefulSet/"),
        "{plan}"
    );
    let continuity = plan["policy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "data-continuity")
        .unwrap();
    assert_eq!(continuity["passed"], false, "{plan}");
    let (s, b) = p
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/deployments/{uid}"),
            &t,
            Some(json!({"values": {"persistence": {"size": "5Gi"}}})),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    let detail = b["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("update refused") && detail.contains("StatefulSet/"),
        "{b}"
    );
    let (s, _) = p
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/deployments/{uid}"),
            &t,
            Some(json!({"values": {"persistence": {"size": "5Gi"}}, "allow_data_loss": true})),
        )
        .await;
    assert_eq!(s, 403, "only admins may accept data loss");
    assert_eq!(
        p.get(&format!("/api/v1/deployments/{uid}"), &t).await["generation"],
        d["generation"],
        "refused updates change nothing"
    );
    assert_eq!(p.pvcs(&ns).await, volumes, "the same volumes throughout");

    // Deleting with keep_volumes: Retained, the same claims; purge removes them.
    let purge = format!("/api/v1/deployments/{uid}/purge");
    let (s, _) = p.post(&purge, &t, json!({})).await;
    assert_eq!(s, 409, "nothing to purge while it runs");
    let (s, b) = p
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/deployments/{uid}?keep_volumes=true"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let d = p.wait_settled(&uid, &t, "Retained").await;
    assert_eq!(p.pvcs(&ns).await, volumes, "kept, with the same uids");
    for name in volumes.keys() {
        assert!(
            d["status"]["message"]
                .as_str()
                .unwrap()
                .contains(name.as_str()),
            "{d:#}"
        );
    }
    let (s, b) = p.post(&purge, &t, json!({})).await;
    assert_eq!(s, 202, "{b}");
    p.wait_settled(&uid, &t, "Deleted").await;
    assert!(p.pvcs(&ns).await.is_empty());
}

/// Issue 11, re-adoption over the API: a deployment deleted with
/// `keep_volumes` is `Retained`; `restore` (its owner, with new values) makes
/// it present again in the same namespace, and the StatefulSet's claims are
/// the kept ones (same uids). Only a `Retained` deployment can be restored,
/// another tenant never sees it, and bad values are refused naming the field.
#[tokio::test]
async fn a_kept_deployment_is_restored_onto_the_same_volumes() {
    let p = Platform::start().await;
    let (s, _) = p
        .post(
            "/api/v1/products",
            &p.admin,
            json!({"slug": "db", "name": "Redis"}),
        )
        .await;
    assert_eq!(s, 201);
    p.publish("1.0.0", json!({})).await;
    let t = p.tenant("acme").await;
    let other = p.tenant("globex").await;
    let (uid, ns) = p.deploy_ready(&t, json!({"name": "cache", "product": "db", "version": "1.0.0", "values": {"replicaCount": 2}})).await;
    let volumes = p.pvcs(&ns).await;
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    let restore = format!("/api/v1/deployments/{uid}/restore");

    let (s, b) = p.post(&restore, &t, json!({})).await;
    assert_eq!(s, 409, "nothing to restore while it runs: {b}");
    assert!(
        b["detail"].as_str().unwrap().contains("not Retained"),
        "{b}"
    );
    let (s, b) = p
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/deployments/{uid}?keep_volumes=true"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let retained = p.wait_settled(&uid, &t, "Retained").await;
    assert_eq!(p.pvcs(&ns).await, volumes);

    let (s, _) = p.post(&restore, &other, json!({})).await;
    assert_eq!(s, 404, "another tenant's deployment does not exist for it");
    let (s, b) = p
        .post(
            &restore,
            &t,
            json!({"values": {"image": {"repository": "evil/redis"}}}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("values"), "{b}");
    assert_eq!(
        p.get(&format!("/api/v1/deployments/{uid}"), &t).await["status"]["phase"],
        "Retained",
        "a refused restore changes nothing"
    );

    let (s, b) = p
        .post(&restore, &t, json!({"values": {"replicaCount": 3}}))
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(
        b["generation"],
        retained["generation"].as_i64().unwrap() + 1
    );
    let (s, b) = p.post(&restore, &t, json!({})).await;
    assert_eq!(s, 409, "restored once: {b}");
    let d = p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(d["namespace"], ns.as_str());
    let now = p.pvcs(&ns).await;
    assert_eq!(now.len(), 3, "a third replica, a third claim: {now:?}");
    for (name, (claim_uid, _)) in &volumes {
        assert_eq!(&now[name].0, claim_uid, "{name} is the kept claim");
        assert_eq!(now[name].1, "Bound", "{name}");
    }

    let history = p
        .get(&format!("/api/v1/deployments/{uid}/revisions"), &t)
        .await;
    let newest = &history["items"][0];
    assert_eq!(newest["kind"], "install", "{history:#}");
    assert_eq!(newest["outcome"], "deployed", "{history:#}");
    assert_eq!(newest["values"]["replicaCount"], 3, "{history:#}");
    assert_eq!(d["status"]["current_revision"], newest["number"]);
    let events = p
        .get(&format!("/api/v1/deployments/{uid}/events?limit=500"), &t)
        .await;
    let restored = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "deployment.restore")
        .expect("the restore is on the timeline");
    assert!(
        restored["actor"].as_str().unwrap().contains("acme"),
        "{restored}"
    );
    assert_eq!(restored["details"]["values_changed"], true, "{restored}");

    // Kept again, and its version retired since: a tenant may not install a
    // retired version, so only an admin can bring the data back.
    let (s, b) = p
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/deployments/{uid}?keep_volumes=true"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 202, "{b}");
    p.wait_settled(&uid, &t, "Retained").await;
    let (s, b) = p
        .post(
            "/api/v1/products/db/versions/1.0.0/retire",
            &p.admin,
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = p.post(&restore, &t, json!({})).await;
    assert_eq!(s, 403, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("retired"), "{b}");
    let (s, b) = p.post(&restore, &p.admin, json!({})).await;
    assert_eq!(s, 202, "an admin may restore onto a retired version: {b}");
    p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(p.pvcs(&ns).await.len(), 3);
}

/// The preflight compares with what runs as its revision stored it: with the
/// running version's chart gone from the registry and every cache, an
/// upgrade still plans and goes through, keeping the volumes.
#[tokio::test]
async fn an_upgrade_plans_from_the_stored_manifest_when_the_running_chart_is_gone() {
    let p = Platform::start().await;
    let (s, _) = p
        .post(
            "/api/v1/products",
            &p.admin,
            json!({"slug": "db", "name": "Redis"}),
        )
        .await;
    assert_eq!(s, 201);
    p.publish("1.0.0", json!({})).await;
    p.publish("2.0.0", json!({})).await;
    let t = p.tenant("acme").await;
    let (uid, ns) = p
        .deploy_ready(
            &t,
            json!({"name": "cache", "product": "db", "version": "1.0.0"}),
        )
        .await;
    let volumes = p.pvcs(&ns).await;

    // 1.0.0's chart can no longer be pulled: its manifest is gone from the
    // registry, and nothing is cached.
    let v1 = p.get("/api/v1/products/db/versions/1.0.0", &p.admin).await;
    let digest: caelus_helm::Digest = v1["chart_digest"].as_str().unwrap().parse().unwrap();
    std::fs::remove_file(p.registry.blob_path(&digest)).unwrap();
    p.helm.clear_caches();
    let _ = std::fs::remove_dir_all(p.registry.temp_dir().join("cache/charts/repositories"));
    let reference: caelus_helm::ChartReference = v1["chart"].as_str().unwrap().parse().unwrap();
    assert!(
        p.helm.pull(&reference).await.is_err(),
        "1.0.0 is still reachable"
    );

    let upgrade = format!("/api/v1/deployments/{uid}/upgrade");
    let (s, plan) = p
        .post(
            &upgrade,
            &t,
            json!({"to_version": "2.0.0", "dry_run": true}),
        )
        .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["allowed"], true, "{plan}");
    assert!(
        plan["update"].to_string().contains("REDIS_APPENDONLY"),
        "the plan compares with what runs: {plan}"
    );
    let (s, b) = p.post(&upgrade, &t, json!({"to_version": "2.0.0"})).await;
    assert_eq!(s, 202, "{b}");
    let d = p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(d["version"], "2.0.0");
    assert_eq!(p.pvcs(&ns).await, volumes);
}

/// With `statefulset_updates: recreate`, a values update that grows the
/// claim template is no data risk: the plan lists the re-creation steps, a
/// tenant may run it, and the claims keep their uids.
#[tokio::test]
async fn a_claim_growth_is_planned_as_a_recreation_and_keeps_the_volumes() {
    let p = Platform::start().await;
    let (s, _) = p
        .post(
            "/api/v1/products",
            &p.admin,
            json!({"slug": "db", "name": "Redis"}),
        )
        .await;
    assert_eq!(s, 201);
    p.publish(
        "1.0.0",
        json!({"capabilities": {"statefulset_updates": "recreate"}}),
    )
    .await;
    let t = p.tenant("acme").await;
    let (uid, ns) = p
        .deploy_ready(
            &t,
            json!({"name": "cache", "product": "db", "version": "1.0.0"}),
        )
        .await;
    let volumes = p.pvcs(&ns).await;
    let path = format!("/api/v1/deployments/{uid}");
    let grow = json!({"values": {"persistence": {"size": "2Gi"}}});
    let mut dry = grow.clone();
    dry["dry_run"] = json!(true);
    let (s, plan) = p.call(reqwest::Method::PATCH, &path, &t, Some(dry)).await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["allowed"], true, "{plan}");
    assert_eq!(plan["data_risks"], json!([]), "{plan}");
    let steps: Vec<&str> = plan["statefulset_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(steps.len(), 3, "{plan}");
    assert!(
        steps[0].starts_with("grow PersistentVolumeClaims data-"),
        "{steps:?}"
    );
    assert!(steps[1].contains("propagationPolicy Orphan"), "{steps:?}");
    let (s, b) = p.call(reqwest::Method::PATCH, &path, &t, Some(grow)).await;
    assert_eq!(s, 200, "{b}");
    p.wait(&uid, &t, "Ready at generation 2", |d| {
        d["status"]["phase"] == "Ready" && d["observed_generation"] == 2
    })
    .await;
    assert_eq!(p.pvcs(&ns).await, volumes, "the same claims, the same uids");

    // Claims of a class that cannot expand: refused up front, with the reason.
    let (s, d) = p
        .post(
            "/api/v1/deployments",
            &t,
            json!({"name": "cold", "product": "db", "version": "1.0.0",
                   "values": {"persistence": {"storageClassName": "fixed"}}}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let cold = d["uid"].as_str().unwrap().to_string();
    p.wait_settled(&cold, &t, "Ready").await;
    let (s, b) = p
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/deployments/{cold}"),
            &t,
            Some(json!({"values": {"persistence": {"storageClassName": "fixed", "size": "2Gi"}}})),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("its StorageClass fixed does not allow volume expansion"),
        "{b}"
    );
    assert_eq!(
        p.get(&format!("/api/v1/deployments/{cold}"), &t).await["generation"],
        1
    );
}

/// The charts of `../shared/charts` (real third-party charts), when present.
fn shared_chart(name: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/charts")
        .join(name);
    if dir.join("Chart.yaml").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} is absent (the real third-party charts live in ../shared/charts)",
            dir.display()
        );
        None
    }
}

impl Platform {
    /// name -> data of the Opaque Secrets in a namespace (generated passwords).
    async fn secrets(
        &self,
        ns: &str,
    ) -> BTreeMap<String, BTreeMap<String, k8s_openapi::ByteString>> {
        let client =
            kube::Client::try_from(kube::Config::new(self.sim.url().parse().unwrap())).unwrap();
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, ns);
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|s| s.type_.as_deref() == Some("Opaque"))
            .map(|s| (s.metadata.name.unwrap(), s.data.unwrap_or_default()))
            .collect()
    }
}

/// Pushes `dir` (a chart directory) as `version` and publishes it as product `wp`.
async fn publish_chart_dir(p: &Platform, dir: &std::path::Path, name: &str, version: &str) {
    let copy = p.registry.temp_dir().join(format!("{name}-{version}"));
    let _ = std::fs::remove_dir_all(&copy);
    assert!(
        std::process::Command::new("cp")
            .arg("-r")
            .arg(dir)
            .arg(&copy)
            .status()
            .unwrap()
            .success()
    );
    let chart_yaml = copy.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                format!("version: {version}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&chart_yaml, text).unwrap();
    p.registry
        .engine()
        .unwrap()
        .push_chart_dir(&copy, &p.registry.repository())
        .await
        .unwrap();
    let chart = format!("{}/{name}:{version}", p.registry.repository());
    let (s, b) = p
        .post(
            "/api/v1/products/wp/versions",
            &p.admin,
            json!({"version": version, "chart": chart, "publish": true,
                   "values_allowlist": ["persistence.*", "wordpressBlogName"],
                   "capabilities": {"health_timeout_seconds": 60}}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
}

/// Issue 11's must-show on bitnami wordpress (+ mariadb): installed with
/// defaults; updated and upgraded with no passwords in the values (Helm's
/// `lookup` finds the generated Secrets in the deployment's namespace); an
/// update that disables persistence is refused naming the PVC, and goes
/// through for an admin with `allow_data_loss` (recorded).
#[tokio::test]
async fn bitnami_wordpress_updates_and_upgrades_through_scoped_lookups_and_keeps_its_volume() {
    let Some(wordpress) = shared_chart("wordpress") else {
        return;
    };
    let p = Platform::start().await;
    let (s, _) = p
        .post(
            "/api/v1/products",
            &p.admin,
            json!({"slug": "wp", "name": "WordPress"}),
        )
        .await;
    assert_eq!(s, 201);
    publish_chart_dir(&p, &wordpress, "wordpress", "27.0.0").await;
    publish_chart_dir(&p, &wordpress, "wordpress", "27.0.1").await;
    let t = p.tenant("acme").await;
    let (uid, ns) = p
        .deploy_ready(
            &t,
            json!({"name": "blog", "product": "wp", "version": "27.0.0"}),
        )
        .await;
    let volumes = p.pvcs(&ns).await;
    let wp_pvc = volumes
        .keys()
        .find(|n| n.ends_with("-wordpress"))
        .unwrap_or_else(|| panic!("the wordpress PVC: {volumes:?}"))
        .clone();
    assert!(
        volumes.keys().any(|n| n.starts_with("data-")),
        "mariadb's claim: {volumes:?}"
    );
    let passwords = p.secrets(&ns).await;
    assert!(!passwords.is_empty());

    // An update without passwords: rendered as an upgrade, lookup finds them.
    let path = format!("/api/v1/deployments/{uid}");
    let (s, b) = p
        .call(
            reqwest::Method::PATCH,
            &path,
            &t,
            Some(json!({"values": {"wordpressBlogName": "Caelus"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let d = p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(d["generation"], 2);
    assert_eq!(p.secrets(&ns).await, passwords, "the passwords are kept");

    // An upgrade, the same way.
    let (s, b) = p
        .post(
            &format!("/api/v1/deployments/{uid}/upgrade"),
            &t,
            json!({"to_version": "27.0.1"}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let d = p.wait_settled(&uid, &t, "Ready").await;
    assert_eq!(d["version"], "27.0.1");
    assert_eq!(p.secrets(&ns).await, passwords);
    assert_eq!(p.pvcs(&ns).await, volumes);

    // Disabling persistence would delete the PVC: refused, naming it.
    let off = json!({"values": {"wordpressBlogName": "Caelus", "persistence": {"enabled": false}}});
    let (s, b) = p
        .call(reqwest::Method::PATCH, &path, &t, Some(off.clone()))
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("PersistentVolumeClaim/{wp_pvc}")),
        "{b}"
    );
    assert_eq!(p.pvcs(&ns).await, volumes, "same PVC names and uids");
    let mut forced = off.clone();
    forced["allow_data_loss"] = json!(true);
    let (s, _) = p
        .call(reqwest::Method::PATCH, &path, &t, Some(forced.clone()))
        .await;
    assert_eq!(s, 403, "a tenant cannot accept data loss");
    let (s, b) = p
        .call(reqwest::Method::PATCH, &path, &p.admin, Some(forced))
        .await;
    assert_eq!(s, 200, "{b}");
    p.wait(&uid, &t, "the PVC removed", |d| {
        d["status"]["phase"] == "Ready" && d["observed_generation"] == d["generation"]
    })
    .await;
    let events = p.get(&format!("{path}/events?limit=500"), &p.admin).await;
    let update = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["action"] == "deployment.update")
        .unwrap();
    assert_eq!(update["details"]["allow_data_loss"], true, "{update}");
    assert!(update["message"].as_str().unwrap().contains(&wp_pvc));
}
