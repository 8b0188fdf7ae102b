//! kubectl's typed `create` generators: they send protobuf bodies
//! (`application/vnd.kubernetes.protobuf`), which kubesim decodes into the
//! same objects a JSON client would have created.

mod common;

use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Runs a `kubectl create …` generator and returns the stored object.
async fn create_then_get(s: &common::Sim, create: &[&str], get: &[&str]) -> Value {
    s.kubectl_ok(create, None).await;
    let mut args = vec!["get"];
    args.extend_from_slice(get);
    args.extend_from_slice(&["-o", "json"]);
    json(&s.kubectl_ok(&args, None).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_namespace_configmap_and_secrets() {
    let s = common::start(kubesim::Config::default()).await;
    let ns = create_then_get(
        &s,
        &["create", "namespace", "team-a"],
        &["namespace", "team-a"],
    )
    .await;
    assert_eq!(ns["metadata"]["name"], "team-a");
    assert_eq!(ns["status"]["phase"], "Active");

    let cm = create_then_get(
        &s,
        &[
            "create",
            "configmap",
            "cfg",
            "-n",
            "team-a",
            "--from-literal=a=1",
            "--from-literal=empty=",
        ],
        &["configmap", "cfg", "-n", "team-a"],
    )
    .await;
    assert_eq!(cm["data"]["a"], "1");
    // Map values keep their empty strings (only omitempty fields are dropped).
    assert_eq!(cm["data"]["empty"], "");
    assert_eq!(cm["metadata"]["namespace"], "team-a");
    assert!(cm["metadata"]["creationTimestamp"].is_string());

    let secret = create_then_get(
        &s,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=s3cr3t",
        ],
        &["secret", "creds"],
    )
    .await;
    // (`type` is left empty by kubectl; defaulting it to Opaque is the
    // API server's defaulting, not part of the wire format.)
    assert_eq!(secret["data"]["password"], "czNjcjN0"); // base64 of s3cr3t

    let reg = create_then_get(
        &s,
        &[
            "create",
            "secret",
            "docker-registry",
            "pull",
            "--docker-server=r.example.com",
            "--docker-username=u",
            "--docker-password=p",
        ],
        &["secret", "pull"],
    )
    .await;
    assert_eq!(reg["type"], "kubernetes.io/dockerconfigjson");
    assert!(reg["data"][".dockerconfigjson"].is_string());
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_secret_tls() {
    let s = common::start(kubesim::Config::default()).await;
    let (key, crt) = (s.dir.path().join("tls.key"), s.dir.path().join("tls.crt"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=web",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl is installed")
        .status
        .success();
    assert!(ok, "openssl made a certificate");
    let cert_arg = format!("--cert={}", crt.display());
    let key_arg = format!("--key={}", key.display());
    let tls = create_then_get(
        &s,
        &["create", "secret", "tls", "web-tls", &cert_arg, &key_arg],
        &["secret", "web-tls"],
    )
    .await;
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert!(
        tls["data"]["tls.crt"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(
        tls["data"]["tls.key"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_workloads() {
    let s = common::start(kubesim::Config::default()).await;
    let d = create_then_get(
        &s,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=3",
            "--port=80",
        ],
        &["deployment", "web"],
    )
    .await;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    assert_eq!(c["ports"][0]["containerPort"], 80);
    // The simulated controller rolls it out.
    s.kubectl_ok(
        &["rollout", "status", "deployment/web", "--timeout=30s"],
        None,
    )
    .await;

    // replicas: 0 is a pointer field set to zero, not an omitted one.
    let zero = create_then_get(
        &s,
        &[
            "create",
            "deployment",
            "idle",
            "--image=nginx",
            "--replicas=0",
        ],
        &["deployment", "idle"],
    )
    .await;
    assert_eq!(zero["spec"]["replicas"], 0);

    let job = create_then_get(
        &s,
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ],
        &["job", "once"],
    )
    .await;
    let jc = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(jc["command"], serde_json::json!(["echo", "hi"]));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

    let cj = create_then_get(
        &s,
        &[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=0 3 * * *",
        ],
        &["cronjob", "nightly"],
    )
    .await;
    assert_eq!(cj["spec"]["schedule"], "0 3 * * *");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_access_objects() {
    let s = common::start(kubesim::Config::default()).await;
    let sa = create_then_get(
        &s,
        &["create", "serviceaccount", "bot"],
        &["serviceaccount", "bot"],
    )
    .await;
    assert_eq!(sa["metadata"]["name"], "bot");

    let role = create_then_get(
        &s,
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,configmaps",
        ],
        &["role", "reader"],
    )
    .await;
    let rule = &role["rules"][0];
    assert_eq!(rule["verbs"], serde_json::json!(["get", "list"]));
    assert_eq!(rule["resources"], serde_json::json!(["pods", "configmaps"]));
    assert_eq!(rule["apiGroups"], serde_json::json!([""]));

    let rb = create_then_get(
        &s,
        &[
            "create",
            "rolebinding",
            "bot-reads",
            "--role=reader",
            "--serviceaccount=default:bot",
        ],
        &["rolebinding", "bot-reads"],
    )
    .await;
    assert_eq!(rb["roleRef"]["name"], "reader");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert_eq!(rb["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(rb["subjects"][0]["namespace"], "default");

    let quota = create_then_get(
        &s,
        &[
            "create",
            "quota",
            "small",
            "--hard=cpu=2,memory=1Gi,pods=10",
        ],
        &["resourcequota", "small"],
    )
    .await;
    assert_eq!(quota["spec"]["hard"]["cpu"], "2");
    assert_eq!(quota["spec"]["hard"]["memory"], "1Gi");
    assert_eq!(quota["spec"]["hard"]["pods"], "10");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_network_and_policy_objects() {
    let s = common::start(kubesim::Config::default()).await;
    let pdb = create_then_get(
        &s,
        &[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=50%",
        ],
        &["pdb", "web"],
    )
    .await;
    // IntOrString keeps its string form; a number stays a number below.
    assert_eq!(pdb["spec"]["minAvailable"], "50%");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"]["app"], "web");
    let pdb2 = create_then_get(
        &s,
        &[
            "create",
            "pdb",
            "db",
            "--selector=app=db",
            "--max-unavailable=1",
        ],
        &["pdb", "db"],
    )
    .await;
    assert_eq!(pdb2["spec"]["maxUnavailable"], 1);

    let ing = create_then_get(
        &s,
        &[
            "create",
            "ingress",
            "web",
            "--class=nginx",
            "--rule=web.example.com/=web:80",
        ],
        &["ingress", "web"],
    )
    .await;
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    let rule = &ing["spec"]["rules"][0];
    assert_eq!(rule["host"], "web.example.com");
    let path = &rule["http"]["paths"][0];
    assert_eq!(path["pathType"], "Exact");
    assert_eq!(path["backend"]["service"]["name"], "web");
    assert_eq!(path["backend"]["service"]["port"]["number"], 80);

    let svc = create_then_get(
        &s,
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
        &["service", "web"],
    )
    .await;
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["port"], 80);
    assert_eq!(port["targetPort"], 8080);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(svc["spec"]["clusterIP"].is_string());
    let np = create_then_get(
        &s,
        &["create", "service", "nodeport", "edge", "--tcp=443:8443"],
        &["service", "edge"],
    )
    .await;
    assert_eq!(np["spec"]["type"], "NodePort");
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_dry_run_server_and_delete_use_protobuf_too() {
    let s = common::start(kubesim::Config::default()).await;
    s.kubectl_ok(
        &[
            "create",
            "configmap",
            "probe",
            "--from-literal=a=1",
            "--dry-run=server",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let out = s.kubectl(&["get", "configmap", "probe"], None).await;
    assert!(!out.ok, "a server-side dry run persists nothing");
    s.kubectl_ok(&["create", "configmap", "gone", "--from-literal=a=1"], None)
        .await;
    // An existing name is refused with the API server's message.
    let again = s
        .kubectl(&["create", "configmap", "gone", "--from-literal=a=1"], None)
        .await;
    assert!(
        again.stderr.contains("configmaps \"gone\" already exists"),
        "{}",
        again.stderr
    );
    s.kubectl_ok(&["delete", "configmap", "gone"], None).await;
    s.sim.shutdown().await;
}
