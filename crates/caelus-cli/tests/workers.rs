//! Real `caelus` processes reconciling against kubesim: two `caelus worker`s on one
//! PostgreSQL database surviving a SIGKILL, and drift made with the real `kubectl`
//! corrected by `caelus dev`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::{free_port, stop_gracefully, temp_dir};

const CAELUS: &str = env!("CARGO_BIN_EXE_caelus");

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Proc {
    /// SIGKILL, no chance to release leases.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        stop_gracefully(&mut self.0);
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The client side: `caelus …` with the URL and token in the environment.
struct Api {
    url: String,
    token: String,
}

impl Api {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(CAELUS)
            .args(args)
            .env("CAELUS_URL", &self.url)
            .env("CAELUS_TOKEN", &self.token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (success, out, err) = self.run(args);
        assert!(success, "caelus {args:?} failed: {err}");
        out
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("caelus {args:?}: {e}: {out}"))
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (success, _, err) = self.run(&["status"]);
            if success {
                return;
            }
            assert!(Instant::now() < deadline, "API not ready: {err}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether the process has libhelm_c mapped.
fn maps_helm(p: &Proc) -> bool {
    std::fs::read_to_string(format!("/proc/{}/maps", p.0.id()))
        .unwrap()
        .contains("libhelm_c")
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The id a worker logs at start (`--log-format json`, "worker started").
fn worker_id(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && v["fields"]["message"] == "worker started"
                && let Some(id) = v["fields"]["worker"].as_str()
            {
                return id.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "worker did not start: {}",
            log_tail(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_workers_on_postgres_survive_a_sigkill_and_every_deployment_is_ready_once() {
    const DEPLOYMENTS: usize = 8;
    let dir = temp_dir("workers-pg");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(caelus_store::testing::TestDb::postgres());

    // The cluster: kubesim in this process, reached through a kubeconfig file.
    let sim = rt
        .block_on(kubesim::Server::start(kubesim::Config::default()))
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    // The chart: the repository's web chart pushed to a real OCI registry.
    let registry_port = free_port();
    let _registry = Proc(
        caelus_helm::local_registry::spawn(&dir.join("registry"), registry_port, None)
            .expect("docker-registry (scripts/install-registry)"),
    );
    let pusher = caelus_helm::HelmEngine::load(caelus_helm::EngineConfig::new(dir.join("pusher")))
        .expect("Helm engine (CAELUS_HELM_LIB or .tools/helm)");
    rt.block_on(pusher.push_chart_dir(
        &repo_root().join("testdata/charts/web/1.0.0"),
        &format!("oci://127.0.0.1:{registry_port}/charts"),
    ))
    .unwrap();

    // A bootstrap token straight in the database, then the API server.
    let token = support::admin_token(&db.url, "ops");
    let port = free_port();
    let server_log = dir.join("server.log");
    let server = Proc(
        Command::new(CAELUS)
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            // This test is about workers: its versions are published uncertified.
            .arg("--require-certification=false")
            .arg("--database-url")
            .arg(&db.url)
            .arg("--data-dir")
            .arg(dir.join("server"))
            .env("CAELUS_LOG", "warn")
            .stderr(std::fs::File::create(&server_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let api = Api {
        url: format!("http://127.0.0.1:{port}"),
        token,
    };
    api.wait_up();

    // Two workers sharing the database; a short lease so takeover is quick.
    let start_worker = |n: usize| {
        let log = dir.join(format!("worker{n}.log"));
        let child = Command::new(CAELUS)
            .args(["worker", "--log-format", "json", "--lease-seconds", "3"])
            .arg("--database-url")
            .arg(&db.url)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--data-dir")
            .arg(dir.join(format!("worker{n}")))
            .env("CAELUS_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (Proc(child), log)
    };
    let (mut doomed, doomed_log) = start_worker(0);
    let (survivor, survivor_log) = start_worker(1);
    let doomed_id = worker_id(&doomed_log);
    let survivor_id = worker_id(&survivor_log);
    assert_ne!(doomed_id, survivor_id);

    // Workers load the Helm engine (Helm's Go runtime) at start: they render at
    // once. The API server loads it at the first request that needs it.
    assert!(
        maps_helm(&survivor),
        "a worker loads the Helm engine at start"
    );
    assert!(
        !maps_helm(&server),
        "the API server loaded the Helm engine before anything needed it"
    );

    api.ok(&["product", "create", "web", "--name", "Web"]);
    api.ok(&[
        "template",
        "publish",
        "web",
        "1.0.0",
        "--chart",
        &format!("oci://127.0.0.1:{registry_port}/charts/web:1.0.0"),
        "--allow",
        "replicaCount",
    ]);
    assert!(
        maps_helm(&server),
        "publishing (pull, lint, inspect) loads the Helm engine in the API server"
    );

    // Every apply is slow, so passes are in flight when a worker dies.
    sim.faults().set(kubesim::FaultConfig {
        latency: vec![kubesim::LatencyFault {
            verb: Some("patch".into()),
            millis: 300,
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut uids = Vec::new();
    for i in 0..DEPLOYMENTS {
        let created = api.json(&[
            "deployment",
            "create",
            "--product",
            "web",
            "--version",
            "1.0.0",
            "--name",
            &format!("site {i}"),
        ]);
        uids.push(created["uid"].as_str().unwrap().to_string());
    }

    // Wait until the doomed worker holds a lease on a pass that has not finished.
    let deadline = Instant::now() + Duration::from_secs(30);
    let held: Vec<String> = loop {
        let held = rt.block_on(async {
            let mut conn = db.store.conn().await.unwrap();
            let mut held = Vec::new();
            for uid in &uids {
                let d = caelus_store::deployments::get(&mut conn, uid, None)
                    .await
                    .unwrap()
                    .unwrap();
                if d.lease_owner
                    .as_deref()
                    .is_some_and(|o| o.starts_with(&format!("{doomed_id}:")))
                {
                    held.push(uid.clone());
                }
            }
            held
        });
        if !held.is_empty() {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "worker 0 never claimed a deployment: {}",
            log_tail(&doomed_log)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    doomed.kill();
    let killed_at = Instant::now();
    let patches_when_killed = sim.stats().verb("patch");
    assert!(
        patches_when_killed > 0,
        "no apply had started when the worker was killed"
    );

    // The survivor takes over once the dead worker's leases expire.
    let deadline = Instant::now() + Duration::from_secs(120);
    let list = loop {
        let list = api.json(&["deployment", "list", "--limit", "100"]);
        let items = list["items"].as_array().unwrap();
        let ready = items
            .iter()
            .filter(|d| d["status"]["phase"] == "Ready")
            .count();
        if ready == DEPLOYMENTS {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "{ready}/{DEPLOYMENTS} Ready after the kill; survivor log:\n{}\n{list:#}",
            log_tail(&survivor_log)
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    sim.faults().clear();
    eprintln!(
        "all {DEPLOYMENTS} Ready {:?} after the kill ({} held by the killed worker)",
        killed_at.elapsed(),
        held.len()
    );

    for d in list["items"].as_array().unwrap() {
        let uid = d["uid"].as_str().unwrap();
        assert_eq!(d["generation"], 1, "{d:#}");
        assert_eq!(d["observed_generation"], 1, "{d:#}");
        assert_eq!(d["status"]["current_revision"], 1, "{d:#}");
        let revisions = api.json(&["deployment", "history", uid]);
        let revisions = revisions["items"].as_array().unwrap();
        assert_eq!(
            revisions.len(),
            1,
            "exactly one revision for the one generation of {uid}: {revisions:#?}"
        );
        assert_eq!(revisions[0]["generation"], 1);
        assert_eq!(revisions[0]["outcome"], "deployed", "{revisions:#?}");
    }

    // What the killed worker held, the survivor finished: the chart's objects exist.
    let client = rt
        .block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            anyhow::Ok(kube::Client::try_from(config)?)
        })
        .unwrap();
    for uid in &held {
        let d = api.json(&["deployment", "show", uid]);
        let ns = d["namespace"].as_str().unwrap();
        let name = format!("{}-web", d["release"].as_str().unwrap());
        let live: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
            client.clone(),
            ns,
            &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "apps",
                "v1",
                "Deployment",
            )),
        );
        let obj = rt.block_on(live.get(&name)).unwrap();
        assert_eq!(obj.data["status"]["availableReplicas"], 1, "{obj:?}");
    }

    drop(survivor);
    rt.block_on(sim.shutdown());
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `caelus dev` and reads the URL and token it prints.
fn start_dev(data_dir: &Path, extra: &[&str]) -> (Proc, Api) {
    let mut child = Command::new(CAELUS)
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--registry-port",
            &free_port().to_string(),
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env("CAELUS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start caelus dev");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut api = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("export CAELUS_URL=") {
            let (url, token) = rest.split_once(" CAELUS_TOKEN=").unwrap();
            api = Some(Api {
                url: url.to_string(),
                token: token.to_string(),
            });
            break;
        }
    }
    // Keep draining dev's output so it never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (
        Proc(child),
        api.expect("caelus dev printed its URL and token"),
    )
}

/// Polls the deployment's events until one has `action`; returns it.
fn wait_event(api: &Api, uid: &str, action: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = api.json(&["deployment", "events", uid, "--limit", "200"]);
        if let Some(e) = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action && pred(e))
        {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {action} event for {uid}: {events:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn drift_made_with_kubectl_is_reported_and_corrected() {
    let dir = temp_dir("workers-drift");
    let (_dev, api) = start_dev(&dir, &["--resync-seconds", "1"]);
    api.wait_up();
    let kubeconfig = dir.join("kubeconfig");

    // The demo catalog is published by dev shortly after it starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api.run(&["template", "list", "web"]).1.contains("1.0.0") {
        assert!(Instant::now() < deadline, "demo catalog not published");
        std::thread::sleep(Duration::from_millis(200));
    }
    let values = dir.join("values.yaml");
    std::fs::write(&values, "replicaCount: 2\n").unwrap();
    let created = api.json(&[
        "deployment",
        "create",
        "--product",
        "web",
        "--version",
        "1.0.0",
        "--name",
        "drifty",
        "--values",
        values.to_str().unwrap(),
        "--wait",
        "--timeout",
        "60",
    ]);
    let uid = created["uid"].as_str().unwrap();
    let ns = created["namespace"].as_str().unwrap();
    let name = format!("{}-web", created["release"].as_str().unwrap());
    let replicas = |kubeconfig: &Path| {
        kubectl(
            kubeconfig,
            &[
                "-n",
                ns,
                "get",
                "deployment",
                &name,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        )
    };
    assert_eq!(replicas(&kubeconfig), "2");

    // Someone scales the Deployment by hand (kubesim has no /scale: a merge patch).
    kubectl(
        &kubeconfig,
        &[
            "-n",
            ns,
            "patch",
            "deployment",
            &name,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":5}}"#,
        ],
    );
    let detected = wait_event(&api, uid, "drift.detected", |e| {
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("Deployment/{name}: changed spec.replicas"))
    });
    let detected_id = detected["id"].as_i64().unwrap();
    wait_event(&api, uid, "drift.corrected", |e| {
        e["id"].as_i64().unwrap() > detected_id
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while replicas(&kubeconfig) != "2" {
        assert!(
            Instant::now() < deadline,
            "spec.replicas was not restored to 2"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Someone deletes a managed ConfigMap: it comes back.
    let before = api.json(&["deployment", "events", uid, "--limit", "200"]);
    let last_id = before["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .max()
        .unwrap();
    kubectl(&kubeconfig, &["-n", ns, "delete", "configmap", &name]);
    let deleted = wait_event(&api, uid, "drift.detected", |e| {
        e["id"].as_i64().unwrap() > last_id
    });
    let message = deleted["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("ConfigMap/{name}: deleted")),
        "{deleted:#}"
    );
    wait_event(&api, uid, "drift.corrected", |e| {
        e["id"].as_i64().unwrap() > deleted["id"].as_i64().unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "-n",
                ns,
                "get",
                "configmap",
                &name,
                "-o",
                "jsonpath={.data.GREETING}",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deleted ConfigMap was not restored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let show = api.json(&["deployment", "show", uid]);
    assert_eq!(show["status"]["phase"], "Ready", "{show:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
