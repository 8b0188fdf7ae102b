//! The policy on real third-party charts (`../shared/charts`, see its
//! README), rendered by the real Helm engine through the one render seam:
//! what a baseline Pod Security level and the cluster-scope rule must
//! refuse is refused, naming the object and field, and is accepted with the
//! capability that allows it; every other chart passes under baseline with
//! its default values.

use std::path::PathBuf;

use caelus_core::render_policy::{RenderCapabilities, Rule, Violation};
use caelus_core::template::PodSecurityLevel;
use caelus_helm::{HelmEngine, RenderRequest, RevisionKind, RevisionPolicy};
use serde_json::{Value, json};

fn shared_charts() -> Option<PathBuf> {
    let dir = caelus_helm::testing::repo_root().join("../shared/charts");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: {} is absent (the real third-party charts live there)",
            dir.display()
        );
        None
    }
}

fn request(values: Value) -> RenderRequest {
    RenderRequest {
        values,
        release_name: "rel".into(),
        namespace: "team-a".into(),
        revision: 1,
        kind: RevisionKind::Install,
        kube_version: Some("v1.32.0".into()),
        deployment_uid: "3f1c2b7e-0000-4000-8000-000000000002".into(),
        lookup: None,
    }
}

async fn violations(
    engine: &HelmEngine,
    dir: &std::path::Path,
    chart: &str,
    values: Value,
    caps: RenderCapabilities,
) -> Vec<Violation> {
    let chart = engine.load_path(&dir.join(chart)).await.unwrap();
    engine
        .render_revision(&chart, &request(values), &RevisionPolicy { caps })
        .await
        .unwrap()
        .violations
}

fn caps(level: PodSecurityLevel, cluster: bool) -> RenderCapabilities {
    RenderCapabilities {
        allow_cluster_scoped: cluster,
        pod_security: level,
        ..Default::default()
    }
}

#[tokio::test]
async fn real_charts_meet_the_policy_or_are_refused_for_what_they_need() {
    let Some(dir) = shared_charts() else { return };
    let data = tempfile::tempdir().unwrap();
    let engine = caelus_helm::testing::engine(data.path()).unwrap();
    use PodSecurityLevel::{Baseline, Privileged};

    // node-exporter reads the node: host network, host PID, the host's
    // root filesystem. Refused under baseline, naming each field.
    let v = violations(
        &engine,
        &dir,
        "prometheus-node-exporter",
        json!({}),
        caps(Baseline, false),
    )
    .await;
    let pod: Vec<&Violation> = v.iter().filter(|v| v.rule == Rule::PodSecurity).collect();
    assert_eq!(pod.len(), 1, "{v:?}");
    assert_eq!(pod[0].kind, "DaemonSet");
    for field in ["spec.hostNetwork", "spec.hostPID", "hostPath"] {
        assert!(
            pod[0].message.contains(field),
            "{field}: {}",
            pod[0].message
        );
    }
    assert_eq!(
        v.len(),
        1,
        "nothing else is refused: {}",
        caelus_core::render_policy::describe(&v)
    );
    let v = violations(
        &engine,
        &dir,
        "prometheus-node-exporter",
        json!({}),
        caps(Privileged, false),
    )
    .await;
    assert!(
        v.is_empty(),
        "accepted under privileged: {}",
        caelus_core::render_policy::describe(&v)
    );

    // Cluster-scoped RBAC (and ingress-nginx's webhook and IngressClass):
    // refused without allow_cluster_scoped, accepted with it.
    for chart in ["kube-state-metrics", "ingress-nginx"] {
        let v = violations(&engine, &dir, chart, json!({}), caps(Baseline, false)).await;
        assert!(!v.is_empty(), "{chart}");
        assert!(
            v.iter()
                .any(|v| v.kind == "ClusterRole" && v.rule == Rule::ClusterScoped),
            "{chart}: {}",
            caelus_core::render_policy::describe(&v)
        );
        assert!(
            v.iter()
                .all(|v| matches!(v.rule, Rule::ClusterScoped | Rule::RbacBinding)),
            "{chart}: only its cluster-scoped objects (and the bindings to its own ClusterRoles) are refused: {}",
            caelus_core::render_policy::describe(&v)
        );
        let v = violations(&engine, &dir, chart, json!({}), caps(Baseline, true)).await;
        assert!(
            v.is_empty(),
            "{chart} accepted with allow_cluster_scoped: {}",
            caelus_core::render_policy::describe(&v)
        );
    }
    let v = violations(
        &engine,
        &dir,
        "ingress-nginx",
        json!({}),
        caps(Baseline, false),
    )
    .await;
    assert!(
        v.iter().any(|v| v.hook.is_some()),
        "ingress-nginx's hook objects are checked too: {}",
        caelus_core::render_policy::describe(&v)
    );

    // Everything else passes under baseline with its defaults.
    for chart in [
        "nginx",
        "postgresql",
        "postgresql-old",
        "redis",
        "wordpress",
    ] {
        let v = violations(&engine, &dir, chart, json!({}), caps(Baseline, false)).await;
        assert!(
            v.is_empty(),
            "{chart}: {}",
            caelus_core::render_policy::describe(&v)
        );
    }
    // grafana creates a ClusterRole by default (to read dashboards from
    // every namespace); `rbac.namespaced: true` is its documented switch to
    // a Role of its own namespace, which a namespace-bound deployment needs.
    for chart in ["grafana", "grafana-old"] {
        let v = violations(&engine, &dir, chart, json!({}), caps(Baseline, false)).await;
        assert!(
            v.iter()
                .all(|v| v.rule == Rule::ClusterScoped || v.rule == Rule::RbacBinding)
                && !v.is_empty(),
            "{chart}: {}",
            caelus_core::render_policy::describe(&v)
        );
        let v = violations(
            &engine,
            &dir,
            chart,
            json!({"rbac": {"namespaced": true}}),
            caps(Baseline, false),
        )
        .await;
        assert!(
            v.is_empty(),
            "{chart} with rbac.namespaced: {}",
            caelus_core::render_policy::describe(&v)
        );
    }
}
