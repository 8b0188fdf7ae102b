//! In-cluster operation: the real `caelus server` and `caelus worker`, started
//! as `deploy/chart` starts them (its container args and environment) and
//! given no kubeconfig, find the cluster as a pod does: from
//! `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's token, CA and
//! namespace under /var/run/secrets/kubernetes.io/serviceaccount. kube-rs
//! reads that fixed path, so each process runs in a private mount namespace
//! (`unshare --mount`) where a test directory is mounted there. The cluster is
//! kubesim over HTTPS (certificate from testdata/kubesim-tls), authorizing the
//! token with the rules of the chart's ClusterRole.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use caelus_helm::RenderRequest;
use caelus_helm::render::{kind_of, name_of};
use caelus_helm::testing::{TestRegistry, push_test_chart};
use caelus_store::testing::TestDb;
use kubesim::PolicyRule;
use serde_json::{Value, json};

mod support;

use support::{CAELUS, Running, eventually, free_port, ok, temp_dir};

const SA_TOKEN: &str = "caelus-service-account-token";
const SA_NAMESPACE: &str = "caelus-system";
const SA_USER: &str = "system:serviceaccount:caelus-system:caelus";
/// Not the CLI's default (`caelus`), so the namespace label shows the chart's
/// `CAELUS_INSTALLATION_ID` reached the worker.
const INSTALLATION: &str = "incluster-test";
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tls_file(name: &str) -> PathBuf {
    repo_root().join("testdata/kubesim-tls").join(name)
}

/// One container of the chart's rendering: its args, and its environment with
/// the literal values (those from secrets or the Downward API are the pod's).
struct Container {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// What `helm install caelus deploy/chart -n caelus-system` renders: the
/// ClusterRole's rules, and the API server's and the worker's containers.
async fn render_chart(helm: &caelus_helm::HelmEngine) -> (Vec<PolicyRule>, Container, Container) {
    let chart = helm
        .load_path(&repo_root().join("deploy/chart"))
        .await
        .unwrap();
    let req = RenderRequest::for_revision(
        json!({"installationId": INSTALLATION, "database": {"existingSecret": "caelus-db"}, "postgresql": {"enabled": false}}),
        "caelus",
        SA_NAMESPACE,
        1,
        "installer",
    );
    let rendered = helm.render(&chart, &req).await.unwrap();
    let find = |kind: &str, name: &str| {
        rendered
            .objects
            .iter()
            .find(|o| kind_of(o) == kind && name_of(o) == name)
            .unwrap_or_else(|| panic!("the chart renders {kind}/{name}"))
            .clone()
    };
    let rules = serde_json::from_value(find("ClusterRole", "caelus")["rules"].clone()).unwrap();
    let container = |deployment: &str| {
        let d = find("Deployment", deployment);
        let pod = &d["spec"]["template"]["spec"];
        // The pod runs as the chart's ServiceAccount, with its token mounted.
        assert_eq!(pod["serviceAccountName"], "caelus", "{pod:#}");
        assert_ne!(pod["automountServiceAccountToken"], false, "{pod:#}");
        let c = &pod["containers"][0];
        Container {
            args: c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
            env: c["env"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
                .collect(),
        }
    };
    (rules, container("caelus-api"), container("caelus-worker"))
}

/// The service account's files, as the kubelet mounts them.
fn service_account_dir(dir: &Path) -> PathBuf {
    let sa = dir.join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), SA_TOKEN).unwrap();
    std::fs::copy(tls_file("ca.crt"), sa.join("ca.crt")).unwrap();
    std::fs::write(sa.join("namespace"), SA_NAMESPACE).unwrap();
    sa
}

/// `caelus ARGS` as a pod runs it: in its own mount namespace, with a fresh
/// tmpfs on /var/run (so nothing of the host's is changed) and `sa` mounted at
/// the service account's path; the environment is only what is set here (no
/// KUBECONFIG, and a HOME without ~/.kube).
fn in_pod(sa: &Path, home: &Path, api_port: u16, args: &[String]) -> Command {
    let probe = Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = Command::new("unshare");
    if !probe {
        // Not root: a user namespace where we are, for the mounts.
        cmd.arg("--map-root-user");
    }
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs tmpfs /var/run && mkdir -p {SERVICE_ACCOUNT_DIR} && \
             mount --bind \"$0\" {SERVICE_ACCOUNT_DIR} && exec \"$@\""
        ))
        .arg(sa)
        .arg(CAELUS)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", api_port.to_string())
        .env(
            "CAELUS_HELM_LIB",
            std::env::var_os("CAELUS_HELM_LIB")
                .unwrap_or_else(|| repo_root().join(".tools/helm/libhelm_c.so").into()),
        );
    cmd
}

/// The chart's container environment, with this machine's places for what
/// is the pod's own (the data dir, HOME, the metrics port).
fn chart_env(cmd: &mut Command, c: &Container, data_dir: &Path, db_url: &str) {
    for (k, v) in &c.env {
        match k.as_str() {
            "CAELUS_DATA_DIR" => cmd.env(k, data_dir),
            "HOME" => cmd,
            "CAELUS_METRICS_LISTEN" => cmd.env(k, format!("127.0.0.1:{}", free_port())),
            "CAELUS_LISTEN" => cmd, // set by the caller
            _ => cmd.env(k, v),
        };
    }
    // From the chart's database Secret.
    cmd.env("CAELUS_DATABASE_URL", db_url);
}

#[test]
fn server_and_worker_run_in_cluster_on_the_service_account() {
    let dir = temp_dir("incluster");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::postgres());
    let registry = TestRegistry::start().expect("docker-registry (scripts/install-registry)");
    let (chart_ref, _) = rt
        .block_on(push_test_chart(&registry, "web", "1.0.0"))
        .unwrap();
    let (rules, api_container, worker_container) =
        rt.block_on(render_chart(&registry.engine().unwrap()));
    assert_eq!(api_container.args[0], "server");
    assert_eq!(worker_container.args[0], "worker");
    for c in [&api_container, &worker_container] {
        assert!(
            c.env
                .contains(&("CAELUS_INSTALLATION_ID".into(), INSTALLATION.into())),
            "the chart passes the installation id: {:?}",
            c.env
        );
    }

    // The cluster, over HTTPS only; the token is the chart's ServiceAccount.
    let sim = rt
        .block_on(kubesim::Server::start(kubesim::Config {
            tls: Some(
                kubesim::TlsConfig::from_files(
                    &tls_file("server.crt"),
                    &tls_file("server.key"),
                    Some(&tls_file("ca.crt")),
                )
                .unwrap(),
            ),
            ..Default::default()
        }))
        .unwrap();
    // The projection CRDs come from the chart's crds/, installed by Helm as an admin.
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml())?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let admin = caelus_engine::Engine::new(kube::Client::try_from(config)?, Default::default());
        anyhow::Ok(admin.install_crds().await?)
    })
    .unwrap();
    sim.rbac().restrict(SA_TOKEN, SA_USER, rules);
    sim.reset_stats();
    let sa = service_account_dir(&dir);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let api_port = sim.addr().port();

    // A bootstrap token, then the API server as the chart runs it.
    let token = support::admin_token(&db.url, "ops");
    let port = free_port();
    let mut server = in_pod(&sa, &home, api_port, &api_container.args);
    chart_env(&mut server, &api_container, &dir.join("server"), &db.url);
    let server_log = dir.join("server.log");
    let server = Running {
        child: server
            .arg("--require-certification=false")
            .env("CAELUS_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAELUS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&server_log).unwrap())
            .spawn()
            .expect("unshare (util-linux)"),
        url: format!("http://127.0.0.1:{port}"),
        token,
        chart_repository: None,
    };
    eventually("the API server", || {
        let out = Command::new(CAELUS)
            .args(["status", "--url", &server.url])
            .output()
            .unwrap();
        out.status.success().then(String::new)
    });

    // The worker, as the chart runs it (the pod's name from the Downward API).
    let mut worker = in_pod(&sa, &home, api_port, &worker_container.args);
    chart_env(&mut worker, &worker_container, &dir.join("worker"), &db.url);
    let worker_log = dir.join("worker.log");
    let _worker = Running {
        child: worker
            .env("CAELUS_WORKER_ID", "caelus-worker-7d9f-abcde")
            .env("CAELUS_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&worker_log).unwrap())
            .spawn()
            .expect("unshare (util-linux)"),
        url: String::new(),
        token: String::new(),
        chart_repository: None,
    };

    ok(&server, &["product", "create", "web", "--name", "Web"]);
    ok(
        &server,
        &["template", "publish", "web", "1.0.0", "--chart", &chart_ref],
    );
    let created: Value = serde_json::from_str(&ok(
        &server,
        &[
            "deployment",
            "create",
            "--product",
            "web",
            "--version",
            "1.0.0",
            "--name",
            "site",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let uid = created["uid"].as_str().unwrap().to_string();
    let logs = || {
        format!(
            "server:\n{}\nworker:\n{}",
            std::fs::read_to_string(&server_log).unwrap_or_default(),
            std::fs::read_to_string(&worker_log).unwrap_or_default()
        )
    };
    let shown = eventually("the deployment Ready", || {
        let d: Value =
            serde_json::from_str(&ok(&server, &["deployment", "show", &uid, "-o", "json"]))
                .unwrap();
        (d["status"]["phase"] == "Ready").then(|| d.to_string())
    });
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let ns = shown["namespace"].as_str().unwrap();

    // The worker created the chart's objects in kubesim, in a namespace of
    // the chart's installation id.
    let info = |group: &str, resource: &str| sim.api().info_for(group, resource).unwrap();
    let namespace = sim.api().get(&info("", "namespaces"), "", ns).unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["caelus.io/installation"], INSTALLATION,
        "{namespace:#}"
    );
    let name = format!("{}-web", shown["release"].as_str().unwrap());
    let live = sim
        .api()
        .get(&info("apps", "deployments"), ns, &name)
        .unwrap_or_else(|e| panic!("{e:?}\n{}", logs()));
    assert_eq!(live["status"]["availableReplicas"], 1, "{live:#}");

    // The server reads the cluster in-cluster too: the endpoints need it (503 without).
    let endpoints: Value = serde_json::from_str(&ok(
        &server,
        &["deployment", "endpoints", &uid, "-o", "json"],
    ))
    .unwrap();
    assert!(
        endpoints.to_string().contains(&name),
        "the chart's Service: {endpoints:#}"
    );

    // Every request kubesim served carried the service account's token, and
    // the chart's ClusterRole allowed each one.
    let requests = sim.rbac().requests_of(SA_USER);
    let by_token: u64 = requests.values().map(|c| c.allowed + c.denied).sum();
    let denied: Vec<_> = requests.iter().filter(|(_, c)| c.denied > 0).collect();
    assert!(denied.is_empty(), "refused: {denied:?}\n{}", logs());
    assert_eq!(sim.stats().total, by_token, "{:?}", sim.stats());
    let applied = requests
        .get(&kubesim::ResourceRequest {
            verb: "patch".into(),
            group: "apps".into(),
            resource: "deployments".into(),
        })
        .map_or(0, |c| c.allowed);
    assert!(applied >= 1, "{requests:?}");

    drop(_worker);
    drop(server);
    rt.block_on(sim.shutdown());
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Outside a cluster and without a kubeconfig, the worker stops at once with
/// an error naming both ways to give it one, and why each failed.
#[test]
fn without_kubeconfig_or_cluster_the_worker_says_what_it_tried() {
    let dir = temp_dir("incluster-none");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(CAELUS)
        .args(["worker", "--database-url"])
        .arg(format!("sqlite://{}", dir.join("caelus.db").display()))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .env_remove("CAELUS_KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("CAELUS_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(caelus_cli::processes::NO_CLUSTER),
        "{stderr}"
    );
    // kube-rs's reasons: the kubeconfig it looked for, and the missing pod environment.
    let kubeconfig = home.join(".kube/config");
    assert!(
        stderr.contains(&format!("{:?}", kubeconfig.display().to_string())),
        "{stderr}"
    );
    assert!(
        stderr.contains("in-cluster: (failed to read an incluster environment variable"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
