//! The chart and the binary agree: every Caelus container `deploy/chart`
//! renders (the migrations hook, the API, the worker, the orphan-cleanup
//! CronJob) is started as the real `caelus` binary with the container's own
//! args and environment, and does its job — the migrations run, the API
//! answers its readiness probe on the port the chart names, the worker its
//! liveness probe, the CronJob's command reaches the API with a token made
//! as NOTES.txt says.
//! Every `CAELUS_*` variable the chart sets is one the command reads.
//!
//! What a pod would get from the cluster is supplied by the test: the
//! Secrets' values, the pod name, loopback addresses instead of `0.0.0.0` and
//! the Service's DNS name, temporary directories for the volumes, and
//! kubesim's kubeconfig instead of the service account (kubesim serves plain
//! HTTP; in-cluster configuration needs HTTPS).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use caelus_helm::RenderRequest;
use caelus_helm::render::{kind_of, name_of};
use serde_json::{Value, json};

mod support;

use support::{CAELUS, free_port, stop_gracefully, temp_dir};

const NAMESPACE: &str = "caelus-system";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        stop_gracefully(&mut self.0);
    }
}

/// The one container of each pod template, by the object's name.
fn containers(objects: &[Value]) -> BTreeMap<String, Value> {
    objects
        .iter()
        .filter_map(|o| {
            let spec = match kind_of(o) {
                "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                "Deployment" | "Job" => &o["spec"]["template"]["spec"],
                _ => return None,
            };
            let c = spec["containers"].as_array()?;
            assert_eq!(c.len(), 1, "{}", name_of(o));
            Some((name_of(o).to_string(), c[0].clone()))
        })
        .collect()
}

fn args_of(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The container's environment as the kubelet would resolve it, from the
/// Secrets and Downward API values given.
fn env_of(container: &Value, secrets: &BTreeMap<(&str, &str), String>) -> BTreeMap<String, String> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
                let key = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
                secrets
                    .get(&key)
                    .unwrap_or_else(|| panic!("no Secret {key:?} for {name}"))
                    .clone()
            } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
                "caelus-worker-7d9f-x2x4q".to_string()
            } else {
                panic!("unexpected env source {e}")
            };
            (name, value)
        })
        .collect()
}

/// The container port named `name`.
fn port_named(container: &Value, name: &str) -> u16 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name}: {container}"))["containerPort"]
        .as_u64()
        .unwrap() as u16
}

/// `caelus ARGS --help`: the args parse (clap stops at `--help` only after
/// every argument before it was accepted) and every `CAELUS_*` variable in
/// `env` is one the command reads, but those in `unread`.
fn check_accepted(what: &str, args: &[String], env: &BTreeMap<String, String>, unread: &[&str]) {
    let out = Command::new(CAELUS)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: caelus {args:?} refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in env
        .keys()
        .filter(|k| k.starts_with("CAELUS_") && !unread.contains(&k.as_str()))
    {
        assert!(
            help.contains(&format!("[env: {name}")),
            "{what}: the chart sets {name}, which `caelus {}` does not read:\n{help}",
            args.join(" ")
        );
    }
}

/// Runs `caelus` with exactly `env` (plus PATH and the Helm library the
/// image ships in place).
fn command(args: &[String], env: &BTreeMap<String, String>) -> Command {
    let mut c = Command::new(CAELUS);
    c.args(args).env_clear().envs(env);
    for keep in ["PATH", "CAELUS_HELM_LIB"] {
        if let Ok(v) = std::env::var(keep) {
            c.env(keep, v);
        }
    }
    c
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn wait_http_ok(url: &str, log: &Path) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caelus_container_of_the_chart_runs_with_its_args_and_env() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = temp_dir("chart-commands");
    let chart_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/chart");
    let helm = caelus_helm::testing::engine(&dir.join("helm")).expect("libhelm_c");
    let chart = helm.load_path(&chart_dir).await.unwrap();
    let values = json!({
        "postgresql": {"enabled": false},
        "database": {"existingSecret": "pg"},
        "orphanCleanup": {"enabled": true, "tokenSecret": "ops"},
    });
    let rendered = helm
        .render(
            &chart,
            &RenderRequest::for_revision(values, "caelus", NAMESPACE, 1, "installer"),
        )
        .await
        .unwrap();
    let objects: Vec<Value> = rendered
        .objects
        .iter()
        .cloned()
        .chain(rendered.hooks.iter().map(|h| h.object.clone()))
        .collect();
    let containers = containers(&objects);
    assert_eq!(
        containers.keys().collect::<Vec<_>>(),
        [
            "caelus-api",
            "caelus-migrate",
            "caelus-orphan-cleanup",
            "caelus-worker"
        ]
    );

    let db = caelus_store::testing::TestDb::postgres().await;
    let mut secrets = BTreeMap::new();
    secrets.insert(("pg", "url"), db.url.clone());

    // Volumes: the chart mounts the data directory and /tmp.
    let local_dirs = |env: &mut BTreeMap<String, String>, name: &str| {
        for (var, sub) in [("CAELUS_DATA_DIR", "data"), ("HOME", "tmp")] {
            if env.contains_key(var) {
                let d = dir.join(name).join(sub);
                std::fs::create_dir_all(&d).unwrap();
                env.insert(var.into(), d.display().to_string());
            }
        }
    };

    // 1. The migrations hook migrates the (empty) database.
    let migrate = &containers["caelus-migrate"];
    let args = args_of(migrate);
    let mut env = env_of(migrate, &secrets);
    // The chart gives every process one shared block; migrations need the URL only.
    let shared = [
        "CAELUS_DATA_DIR",
        "CAELUS_INSTALLATION_ID",
        "CAELUS_LOG_FORMAT",
    ];
    check_accepted("migrate hook", &args, &env, &shared);
    local_dirs(&mut env, "migrate");
    let out = command(&args, &env).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));

    let sim = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    // 2. The API server: it listens where the chart's probes look.
    let api = &containers["caelus-api"];
    let args = args_of(api);
    let mut env = env_of(api, &secrets);
    check_accepted("API", &args, &env, &[]);
    let http = port_named(api, "http");
    assert_eq!(env["CAELUS_LISTEN"], format!("0.0.0.0:{http}"));
    assert_eq!(api["readinessProbe"]["httpGet"]["port"], "http");
    let api_port = free_port();
    env.insert("CAELUS_LISTEN".into(), format!("127.0.0.1:{api_port}"));
    env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
    local_dirs(&mut env, "api");
    // The first admin token, made as NOTES.txt says: `caelus admin create-token`
    // exec'd in the API container (its environment names the database). It
    // goes into the CronJob's Secret.
    let notes = rendered.notes.as_deref().unwrap();
    let line = notes
        .lines()
        .find(|l| l.contains("caelus admin create-token"))
        .unwrap_or_else(|| panic!("NOTES.txt says how to create a token: {notes}"));
    assert!(line.contains("exec deploy/caelus-api --"), "{line}");
    let exec: Vec<String> = line
        .split(" -- caelus ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let out = command(&exec, &env).output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    secrets.insert(
        ("ops", "token"),
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    );
    let api_log = dir.join("api.log");
    let _api = Proc(
        command(&args, &env)
            .stderr(std::fs::File::create(&api_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let probe = api["readinessProbe"]["httpGet"]["path"].as_str().unwrap();
    wait_http_ok(&format!("http://127.0.0.1:{api_port}{probe}"), &api_log).await;

    // 3. The worker: its liveness probe on its metrics port.
    let worker = &containers["caelus-worker"];
    let args = args_of(worker);
    let mut env = env_of(worker, &secrets);
    check_accepted("worker", &args, &env, &[]);
    let metrics = port_named(worker, "metrics");
    assert_eq!(env["CAELUS_METRICS_LISTEN"], format!("0.0.0.0:{metrics}"));
    assert_eq!(worker["livenessProbe"]["httpGet"]["port"], "metrics");
    let metrics_port = free_port();
    env.insert(
        "CAELUS_METRICS_LISTEN".into(),
        format!("127.0.0.1:{metrics_port}"),
    );
    env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
    local_dirs(&mut env, "worker");
    let worker_log = dir.join("worker.log");
    let _worker = Proc(
        command(&args, &env)
            .stderr(std::fs::File::create(&worker_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let probe = worker["livenessProbe"]["httpGet"]["path"].as_str().unwrap();
    wait_http_ok(
        &format!("http://127.0.0.1:{metrics_port}{probe}"),
        &worker_log,
    )
    .await;
    // It logs as the chart asks (JSON) and names itself after its pod.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(&worker_log).unwrap_or_default();
        if let Some(started) = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["fields"]["message"] == "worker started")
        {
            assert!(
                started["fields"]["worker"]
                    .as_str()
                    .unwrap()
                    .starts_with("caelus-worker-7d9f-x2x4q"),
                "{started}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "worker did not start: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 4. The CronJob's command reaches the API (the Service, here on
    // loopback) with the token from its Secret, and cleans for real.
    let cleanup = &containers["caelus-orphan-cleanup"];
    let args = args_of(cleanup);
    let mut env = env_of(cleanup, &secrets);
    check_accepted("orphan cleanup", &args, &env, &[]);
    assert_eq!(
        env["CAELUS_URL"],
        format!("http://caelus.{NAMESPACE}.svc:80")
    );
    env.insert("CAELUS_URL".into(), format!("http://127.0.0.1:{api_port}"));
    local_dirs(&mut env, "cleanup");
    let out = command(&args, &env).output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("deleted 0") || text.contains("no orphans"),
        "{text}"
    );
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
