//! kubesim over HTTPS (`Config::tls`, `--tls-cert`/`--tls-key`), as in-cluster
//! clients need it: kube-rs and the real kubectl verify the serving
//! certificate against the test CA in `testdata/kubesim-tls`, and the bearer
//! token they present reaches RBAC.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const TOKEN: &str = "sa-token";
const USER: &str = "system:serviceaccount:caelus-system:caelus";

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kubesim-tls")
}

fn tls() -> kubesim::TlsConfig {
    let d = testdata();
    kubesim::TlsConfig::from_files(
        &d.join("server.crt"),
        &d.join("server.key"),
        Some(&d.join("ca.crt")),
    )
    .unwrap()
}

/// A kube-rs client from `yaml` (a kubeconfig).
async fn client_from(yaml: &str) -> kube::Client {
    let kc = Kubeconfig::from_yaml(yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The simulator's kubeconfig with the user presenting `TOKEN`.
fn with_token(yaml: &str) -> String {
    let admin = format!("    token: {}\n", kubesim::server::ADMIN_TOKEN);
    assert!(yaml.contains(&admin), "{yaml}");
    yaml.replace(&admin, &format!("    token: {TOKEN}\n"))
}

#[tokio::test]
async fn kube_rs_speaks_https_with_the_ca_and_its_token_reaches_rbac() {
    let s = common::start(kubesim::Config {
        tls: Some(tls()),
        ..Default::default()
    })
    .await;
    assert!(
        s.sim.url().starts_with("https://127.0.0.1:"),
        "{}",
        s.sim.url()
    );
    let yaml = s.sim.kubeconfig_yaml();
    assert!(yaml.contains("certificate-authority-data: "), "{yaml}");
    s.sim.rbac().restrict(
        TOKEN,
        USER,
        vec![kubesim::PolicyRule {
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            verbs: vec!["*".into()],
            resource_names: vec![],
        }],
    );
    let client = client_from(&with_token(&yaml)).await;

    // A watch streams over the TLS connection while a create goes over another.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut events = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "over-tls"}, "data": {"k": "v"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let added = loop {
        match events
            .try_next()
            .await
            .unwrap()
            .expect("the watch stays open")
        {
            WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("over-tls") => break cm,
            // The namespace's kube-root-ca.crt, from before.
            WatchEvent::Added(_) | WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(added.metadata.name.as_deref(), Some("over-tls"));
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"kube-system".to_string()), "{names:?}");

    // RBAC saw the token: the requests are the service account's.
    let log = s.sim.rbac().requests_of(USER);
    let count = |verb: &str, resource: &str| {
        log.get(&kubesim::ResourceRequest {
            verb: verb.into(),
            group: String::new(),
            resource: resource.into(),
        })
        .map_or(0, |c| c.allowed)
    };
    assert_eq!(count("create", "configmaps"), 1, "{log:?}");
    assert_eq!(count("watch", "configmaps"), 1, "{log:?}");
    assert_eq!(count("list", "namespaces"), 1, "{log:?}");
    s.sim.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let s = common::start(kubesim::Config {
        tls: Some(tls()),
        ..Default::default()
    })
    .await;
    // The kubeconfig without its CA: kube-rs falls back to the system's roots.
    let yaml = s.sim.kubeconfig_yaml();
    let untrusting: String = yaml
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    let client = client_from(&untrusting).await;
    let err = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    let chain = format!("{err:?}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("certificate"),
        "{chain}"
    );
    // Plain HTTP to the TLS port gets no API answer either.
    let http = kube::Client::try_from(kube::Config::new(
        s.sim.url().replace("https://", "http://").parse().unwrap(),
    ))
    .unwrap();
    assert!(
        Api::<Namespace>::all(http)
            .list(&ListParams::default())
            .await
            .is_err()
    );
    s.sim.shutdown().await;
}

#[tokio::test]
async fn a_key_that_is_not_pem_fails_the_start() {
    let mut bad = tls();
    bad.key_pem = b"not a key".to_vec();
    let err = kubesim::Server::start(kubesim::Config {
        tls: Some(bad),
        ..Default::default()
    })
    .await
    .err()
    .expect("no server with a bad key");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("TLS key"), "{err}");
}

/// The binary with `--tls-cert/--tls-key/--tls-ca` writes a kubeconfig the
/// real kubectl (Go's TLS stack, offering h2) uses as is.
#[tokio::test]
async fn the_binary_serves_https_to_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let d = testdata();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .arg("--tls-cert")
        .arg(d.join("server.crt"))
        .arg("--tls-key")
        .arg(d.join("server.key"))
        .arg("--tls-ca")
        .arg(d.join("ca.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::eventually(30, "the kubeconfig", || async {
        std::fs::read_to_string(&kubeconfig)
            .ok()
            .filter(|k| k.contains("https://127.0.0.1:"))
    })
    .await;
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["get", "namespace", "kube-system", "-o", "name"])
        .output()
        .expect("kubectl is installed");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/kube-system"
    );
}
