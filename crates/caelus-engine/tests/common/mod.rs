//! Shared helpers: kubesim in-process, a kube client from its kubeconfig,
//! an engine, and small object builders.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use caelus_core::template::PodSecurityLevel;
use caelus_engine::{ApplyRequest, Engine, EngineConfig, NamespaceTarget, ObjectRef, Progress};
use caelus_helm::{Hook, HookDeletePolicy, HookEvent};
use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

pub struct Env {
    pub sim: kubesim::Server,
    /// A client separate from the engine's, playing a human with kubectl.
    pub client: kube::Client,
    pub engine: Engine,
}

pub async fn client_for(sim: &kubesim::Server) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).expect("kubesim kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("client config");
    kube::Client::try_from(config).expect("client")
}

pub fn config() -> EngineConfig {
    EngineConfig {
        installation_id: "test-install".into(),
        ingress_namespaces: vec!["ingress-nginx".into()],
        apply_concurrency: 4,
        health_poll_interval: Duration::from_millis(50),
        ..Default::default()
    }
}

pub async fn start() -> Env {
    let sim = kubesim::Server::start(kubesim::Config::default())
        .await
        .expect("start kubesim");
    let engine = Engine::new(client_for(&sim).await, config());
    let client = client_for(&sim).await;
    Env {
        sim,
        client,
        engine,
    }
}

pub fn target(name: &str) -> NamespaceTarget {
    NamespaceTarget {
        name: name.into(),
        deployment_uid: format!("uid-{name}"),
        pod_security: PodSecurityLevel::Baseline,
    }
}

pub fn request(ns: &str, objects: Vec<Value>) -> ApplyRequest {
    ApplyRequest {
        namespace: ns.into(),
        deployment_uid: format!("uid-{ns}"),
        objects,
        hooks: vec![],
        pre_event: HookEvent::PreInstall,
        post_event: HookEvent::PostInstall,
        previous_inventory: vec![],
        health_timeout: Duration::from_secs(10),
        namespace_created: false,
    }
}

pub fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "caelus"}},
           "data": data})
}

pub fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "caelus"}},
           "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

pub fn deployment(name: &str, image: &str, pod_annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "caelus"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": pod_annotations},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }
    }})
}

/// A hook Job; `fail` makes kubesim fail it.
pub fn hook_job(
    name: &str,
    event: HookEvent,
    weight: i32,
    policies: Vec<HookDeletePolicy>,
    fail: bool,
) -> Hook {
    let annotations = if fail {
        json!({kubesim::JOB_FAIL: "true"})
    } else {
        json!({})
    };
    Hook {
        kind: "Job".into(),
        name: name.into(),
        template: format!("templates/{name}.yaml"),
        events: vec![event],
        weight,
        delete_policies: policies,
        object: json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "annotations": {"helm.sh/hook": event.as_str()}},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}}}}),
    }
}

/// Records progress events.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Progress>>>);

impl Recorder {
    pub fn sink(&self) -> impl Fn(Progress) + Send + Sync + use<> {
        let events = self.0.clone();
        move |p| events.lock().unwrap().push(p)
    }

    pub fn events(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }
}

pub fn dynamic(
    client: &kube::Client,
    ns: &str,
    api_version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ConfigMap" => "configmaps",
        "Service" => "services",
        "Deployment" => "deployments",
        "Job" => "jobs",
        "ResourceQuota" => "resourcequotas",
        "LimitRange" => "limitranges",
        "NetworkPolicy" => "networkpolicies",
        other => panic!("no plural for {other}"),
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// The live object as JSON, `None` when absent.
pub async fn live(client: &kube::Client, r: &ObjectRef) -> Option<Value> {
    let api = dynamic(
        client,
        r.namespace.as_deref().unwrap(),
        &r.api_version,
        &r.kind,
    );
    api.get_opt(&r.name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

pub fn oref(api_version: &str, kind: &str, ns: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some(ns.into()),
        name: name.into(),
    }
}
