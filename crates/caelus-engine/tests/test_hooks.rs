//! `helm test` on kubesim: a revision's `test` hooks run in the deployment's
//! namespace, labelled as its objects, each judged by how it ends, cleaned up
//! per its delete policy; other hooks do not run, and another owner's object
//! of the same name is never replaced.

mod common;

use std::time::Duration;

use caelus_engine::EngineError;
use caelus_helm::{Hook, HookDeletePolicy, HookEvent};
use common::*;
use kube::api::{Api, PostParams};
use serde_json::json;

fn test_pod(name: &str) -> Hook {
    Hook {
        kind: "Pod".into(),
        name: name.into(),
        template: format!("templates/{name}.yaml"),
        events: vec![HookEvent::Test],
        weight: 5,
        delete_policies: vec![HookDeletePolicy::BeforeHookCreation],
        object: json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": {"helm.sh/hook": "test"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "busybox:1.36"}]}}),
    }
}

#[tokio::test]
async fn test_hooks_run_each_judged_by_how_it_ends_and_cleaned_per_policy() {
    let env = start().await;
    let ns = target("d-tests");
    env.engine.ensure_namespace(&ns).await.unwrap();
    let uid = ns.deployment_uid.clone();

    let hooks = vec![
        // Passes, then goes (hook-succeeded).
        hook_job(
            "t-pass",
            HookEvent::Test,
            0,
            vec![HookDeletePolicy::HookSucceeded],
            false,
        ),
        // Fails, and stays for a look (no hook-failed policy).
        hook_job(
            "t-fail",
            HookEvent::Test,
            1,
            vec![HookDeletePolicy::BeforeHookCreation],
            true,
        ),
        // A bare Pod: kubesim runs it Ready but never ends it. Running is not
        // passing: it fails when the time is up.
        test_pod("t-pod"),
        // Not a test: never runs here.
        hook_job(
            "pre",
            HookEvent::PreInstall,
            -5,
            vec![HookDeletePolicy::BeforeHookCreation],
            false,
        ),
    ];
    let results = env
        .engine
        .run_tests("d-tests", &uid, &hooks, Duration::from_secs(3))
        .await
        .unwrap();
    let summary: Vec<(&str, bool)> = results
        .iter()
        .map(|r| (r.name.as_str(), r.passed))
        .collect();
    assert_eq!(
        summary,
        [("t-pass", true), ("t-fail", false), ("t-pod", false)]
    );
    assert_eq!(results[0].message, "succeeded");
    assert!(
        results[2].message.contains("did not complete"),
        "{results:?}"
    );

    let job = |name: &str| oref("batch/v1", "Job", "d-tests", name);
    assert!(live(&env.client, &job("t-pass")).await.is_none());
    let failed = live(&env.client, &job("t-fail")).await.expect("kept");
    assert_eq!(
        failed["metadata"]["labels"]["caelus.io/deployment-uid"],
        uid
    );
    assert_eq!(
        failed["metadata"]["labels"]["caelus.io/installation"],
        "test-install"
    );
    assert!(live(&env.client, &job("pre")).await.is_none());

    // Run again: the failed instance is replaced (before-hook-creation), not patched.
    let before = failed["metadata"]["uid"].clone();
    env.engine
        .run_tests("d-tests", &uid, &hooks[1..2], Duration::from_secs(3))
        .await
        .unwrap();
    let again = live(&env.client, &job("t-fail")).await.unwrap();
    assert_ne!(again["metadata"]["uid"], before);

    // A Job of the same name that someone else made is not touched.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(env.client.clone(), "d-tests");
    let theirs: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t-theirs"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "x", "image": "busybox:1.36"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &theirs).await.unwrap();
    let err = env
        .engine
        .run_tests(
            "d-tests",
            &uid,
            &[hook_job(
                "t-theirs",
                HookEvent::Test,
                0,
                vec![HookDeletePolicy::BeforeHookCreation],
                false,
            )],
            Duration::from_secs(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotOwned { .. }), "{err}");
    let still = live(&env.client, &job("t-theirs")).await.unwrap();
    assert!(still["metadata"]["labels"]["caelus.io/deployment-uid"].is_null());
    env.sim.shutdown().await;
}

/// grafana's test: a `hook-succeeded` ServiceAccount and a test Pod that
/// runs as it. Helm deletes `hook-succeeded` hooks once all of the event's
/// hooks ran, so the ServiceAccount is still there when the test needs it.
#[tokio::test]
async fn hook_succeeded_objects_stay_until_every_hook_of_the_event_ran() {
    let env = start().await;
    let ns = target("d-sa");
    env.engine.ensure_namespace(&ns).await.unwrap();
    let uid = ns.deployment_uid.clone();
    let policies = vec![
        HookDeletePolicy::BeforeHookCreation,
        HookDeletePolicy::HookSucceeded,
    ];
    let account = Hook {
        kind: "ServiceAccount".into(),
        name: "t-sa".into(),
        template: "templates/tests/sa.yaml".into(),
        events: vec![HookEvent::Test],
        weight: 0,
        delete_policies: policies.clone(),
        object: json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "t-sa", "annotations": {"helm.sh/hook": "test"}}}),
    };
    let mut job = hook_job("t-sa-job", HookEvent::Test, 0, policies, false);
    job.object["spec"]["template"]["spec"]["serviceAccountName"] = json!("t-sa");
    let results = env
        .engine
        .run_tests("d-sa", &uid, &[account, job], Duration::from_secs(5))
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.passed), "{results:?}");
    // Then both went, per their policy.
    assert!(
        live(&env.client, &oref("batch/v1", "Job", "d-sa", "t-sa-job"))
            .await
            .is_none()
    );
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(env.client.clone(), "d-sa");
    assert!(accounts.get_opt("t-sa").await.unwrap().is_none());
    env.sim.shutdown().await;
}
