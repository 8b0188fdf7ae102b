//! The chart that installs Caelus itself (`deploy/chart`), judged by the real
//! Helm engine: it lints, renders with several value sets, every Caelus pod
//! meets Pod Security `restricted`, and the schema refuses an unknown value.

use caelus_helm::render::{kind_of, name_of};
use caelus_helm::{HelmEngine, RenderRequest, Rendered};
use serde_json::{Value, json};
use std::path::PathBuf;

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/chart")
}

async fn setup() -> (tempfile::TempDir, HelmEngine, caelus_helm::Chart) {
    let dir = tempfile::tempdir().unwrap();
    let engine = caelus_helm::testing::engine(dir.path()).expect("libhelm_c");
    let loaded = engine.load_path(&chart_dir()).await.unwrap();
    // Lint reads an archive: package the directory as `helm package` would.
    let archive = engine.package(&loaded, dir.path()).await.unwrap();
    let chart = engine.load_path(&archive).await.unwrap();
    (dir, engine, chart)
}

async fn render(
    engine: &HelmEngine,
    chart: &caelus_helm::Chart,
    values: Value,
) -> std::sync::Arc<Rendered> {
    let req = RenderRequest::for_revision(values, "caelus", "caelus-system", 1, "installer");
    engine.render(chart, &req).await.unwrap()
}

fn kinds(r: &Rendered) -> Vec<String> {
    let mut k: Vec<String> = r
        .objects
        .iter()
        .chain(r.hooks.iter().map(|h| &h.object))
        .map(|o| format!("{}/{}", kind_of(o), name_of(o)))
        .collect();
    k.sort();
    k
}

fn pod_specs(r: &Rendered) -> Vec<(String, Value)> {
    r.objects
        .iter()
        .chain(r.hooks.iter().map(|h| &h.object))
        .filter_map(|o| {
            let spec = match kind_of(o) {
                "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                "Deployment" | "StatefulSet" | "Job" => &o["spec"]["template"]["spec"],
                _ => return None,
            };
            Some((name_of(o).to_string(), spec.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_installer_chart_lints_and_ships_the_projection_crds() {
    let (_d, engine, chart) = setup().await;
    let lint = engine.lint(&chart).await.unwrap();
    assert!(!lint.has_errors(), "{:?}", lint.messages);
    let r = render(&engine, &chart, json!({})).await;
    let crds: Vec<&str> = r.crds.iter().map(name_of).collect();
    assert_eq!(
        crds,
        ["caelusdeployments.caelus.io", "caelustemplates.caelus.io"]
    );
    assert!(
        r.notes
            .as_deref()
            .unwrap()
            .contains("kubectl get caelusdeployments -A")
    );
}

#[tokio::test]
async fn the_installer_chart_renders_with_each_value_set() {
    let (_d, engine, chart) = setup().await;
    let defaults = kinds(&*render(&engine, &chart, json!({})).await);
    for want in [
        "ClusterRole/caelus",
        "ClusterRoleBinding/caelus",
        "Deployment/caelus-api",
        "Deployment/caelus-worker",
        "Job/caelus-migrate",
        "NetworkPolicy/caelus",
        "PodDisruptionBudget/caelus-api",
        "Secret/caelus-database",
        "Service/caelus",
        "ServiceAccount/caelus",
        "StatefulSet/caelus-postgresql",
    ] {
        assert!(
            defaults.iter().any(|k| k == want),
            "{want} missing: {defaults:?}"
        );
    }
    assert!(
        !defaults
            .iter()
            .any(|k| k.starts_with("Ingress/") || k.starts_with("CronJob/"))
    );

    // An existing PostgreSQL: no bundled database, the Secret named is used.
    let external = render(
        &engine,
        &chart,
        json!({"database": {"existingSecret": "pg"}, "postgresql": {"enabled": false}}),
    )
    .await;
    let k = kinds(&external);
    assert!(
        !k.iter()
            .any(|k| k.contains("postgresql") || k == "Secret/caelus-database"),
        "{k:?}"
    );
    let api = external
        .objects
        .iter()
        .find(|o| kind_of(o) == "Deployment" && name_of(o) == "caelus-api")
        .unwrap();
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "pg"
    );

    // Ingress on, 3 API and 3 worker replicas, the cleanup CronJob.
    let big = render(
        &engine,
        &chart,
        json!({"ingress": {"enabled": true, "host": "caelus.test"}, "api": {"replicas": 3},
               "worker": {"replicas": 3}, "orphanCleanup": {"enabled": true, "tokenSecret": "ops"}}),
    )
    .await;
    let k = kinds(&big);
    assert!(
        k.contains(&"Ingress/caelus".to_string())
            && k.contains(&"CronJob/caelus-orphan-cleanup".to_string()),
        "{k:?}"
    );
    for name in ["caelus-api", "caelus-worker"] {
        let d = big
            .objects
            .iter()
            .find(|o| kind_of(o) == "Deployment" && name_of(o) == name)
            .unwrap();
        assert_eq!(d["spec"]["replicas"], 3, "{name}");
    }
    let cron = big
        .objects
        .iter()
        .find(|o| kind_of(o) == "CronJob")
        .unwrap();
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["orphans", "clean", "--confirm"])
    );
}

#[tokio::test]
async fn every_caelus_pod_meets_pod_security_restricted() {
    let (_d, engine, chart) = setup().await;
    let r = render(
        &engine,
        &chart,
        json!({"orphanCleanup": {"enabled": true, "tokenSecret": "ops"}}),
    )
    .await;
    let pods = pod_specs(&r);
    assert!(pods.len() >= 5, "{pods:?}");
    for (name, spec) in pods {
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for c in spec["containers"].as_array().unwrap() {
            let s = &c["securityContext"];
            assert_eq!(s["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(s["capabilities"]["drop"], json!(["ALL"]), "{name}");
            if !name.contains("postgresql") {
                // PostgreSQL writes its data directory and socket; Caelus writes only its volume.
                assert_eq!(s["readOnlyRootFilesystem"], true, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn the_schema_refuses_an_unknown_value() {
    let (_d, engine, chart) = setup().await;
    engine
        .validate_values(&chart, &json!({"api": {"replicas": 2}}))
        .await
        .unwrap();
    let typo = engine
        .validate_values(&chart, &json!({"api": {"replica": 2}}))
        .await
        .unwrap_err();
    assert!(typo.to_string().contains("replica"), "{typo}");
    assert!(
        engine
            .validate_values(&chart, &json!({"ingres": {}}))
            .await
            .is_err()
    );
    assert!(
        engine
            .validate_values(&chart, &json!({"api": {"replicas": 0}}))
            .await
            .is_err()
    );
}

/// The optional ServiceMonitor scrapes what serves metrics: each endpoint's
/// port is a named port of a Service the monitor selects (by the Service's
/// labels), and that Service's target port is a named container port of the
/// pods it selects — the API's `http`, each worker's `metrics`.
#[tokio::test]
async fn the_service_monitor_reaches_the_api_and_every_worker() {
    let (_d, engine, chart) = setup().await;
    let r = render(
        &engine,
        &chart,
        json!({"metrics": {"serviceMonitor": {"enabled": true}}}),
    )
    .await;
    let monitor = r
        .objects
        .iter()
        .find(|o| kind_of(o) == "ServiceMonitor")
        .expect("a ServiceMonitor");
    let matches = |selector: &Value, labels: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    let services: Vec<&Value> = r
        .objects
        .iter()
        .filter(|o| kind_of(o) == "Service")
        .filter(|s| {
            matches(
                &monitor["spec"]["selector"]["matchLabels"],
                &s["metadata"]["labels"],
            )
        })
        .collect();
    let pods: Vec<&Value> = r
        .objects
        .iter()
        .filter(|o| kind_of(o) == "Deployment")
        .collect();
    let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
    let mut scraped = Vec::new();
    for e in endpoints {
        let port = e["port"].as_str().unwrap();
        let (service, service_port) = services
            .iter()
            .find_map(|s| {
                s["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == port)
                    .map(|p| (s, p))
            })
            .unwrap_or_else(|| panic!("no selected Service has a port named {port}"));
        let target = service_port["targetPort"].as_str().unwrap();
        for d in &pods {
            let template = &d["spec"]["template"];
            if !matches(
                &service["spec"]["selector"],
                &template["metadata"]["labels"],
            ) {
                continue;
            }
            let container = &template["spec"]["containers"][0];
            assert!(
                container["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == target),
                "{} has no port {target}",
                name_of(d)
            );
            scraped.push(format!("{}:{target}", name_of(d)));
        }
    }
    scraped.sort();
    assert_eq!(scraped, ["caelus-api:http", "caelus-worker:metrics"]);
}
