//! `helm test` for a deployment: the running revision's `helm.sh/hook: test`
//! hooks, run in its namespace, the result on the deployment's timeline.

use super::Audit;
use super::deployments::owned;
use crate::auth::Actor;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use caelus_core::revision::RevisionKind;
use caelus_core::status::Phase;
use caelus_helm::{Hook, HookEvent, RenderRequest, RevisionPolicy};
use caelus_store::deployments::Deployment;
use caelus_store::{StoreError, revisions, templates};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// How long a test hook may run when the caller does not say.
pub const DEFAULT_TEST_TIMEOUT_SECONDS: u64 = 300;
const MAX_TEST_TIMEOUT_SECONDS: u64 = 3600;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestQuery {
    /// How long each test Pod or Job may take, in seconds (default 300, at most 3600).
    pub timeout_seconds: Option<u64>,
}

/// One test hook's result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestHookView {
    pub kind: String,
    pub name: String,
    pub passed: bool,
    /// `succeeded`, or why it failed.
    pub message: String,
}

impl From<caelus_engine::TestResult> for TestHookView {
    fn from(r: caelus_engine::TestResult) -> Self {
        Self {
            kind: r.kind,
            name: r.name,
            passed: r.passed,
            message: r.message,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestRunView {
    /// The revision whose tests ran (the running one).
    pub revision: i64,
    /// True when every test passed (also when the chart has none).
    pub passed: bool,
    /// One entry per test hook, in the order they ran (empty: the chart has no tests).
    pub tests: Vec<TestHookView>,
}

fn cluster(state: &AppState) -> ApiResult<&caelus_engine::Engine> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "this server has no cluster configured (start it with --kubeconfig, or in-cluster)",
        )
    })
}

/// The `test` hooks of a render, through the one render seam (policy
/// checked); `Err` names why they cannot run.
pub(crate) async fn test_hooks(
    state: &AppState,
    version: &templates::TemplateVersion,
    request: &RenderRequest,
) -> ApiResult<Vec<Hook>> {
    let chart = charts::chart_of(&state.helm, version).await?;
    let checked = state
        .helm
        .render_revision(
            &chart,
            request,
            &RevisionPolicy::from(&version.capabilities),
        )
        .await
        .map_err(|e| charts::chart_error("values", e))?;
    if let Some(refusal) = checked.refusal() {
        return Err(ApiError::conflict(refusal));
    }
    Ok(checked
        .rendered
        .hooks
        .iter()
        .filter(|h| h.events.contains(&HookEvent::Test))
        .cloned()
        .collect())
}

/// The render request of `d`'s running revision, with `lookup` scoped to its
/// namespace as the worker renders it.
async fn running_request(
    engine: &caelus_engine::Engine,
    d: &Deployment,
    rev: &revisions::Revision,
) -> (RenderRequest, Option<caelus_engine::LookupScope>) {
    let mut request = RenderRequest::for_revision(
        rev.user_values.clone(),
        &d.release_name,
        &d.namespace_name,
        rev.number,
        &d.uid,
    );
    request.kind = if rev.kind == RevisionKind::Install {
        caelus_helm::RevisionKind::Install
    } else {
        caelus_helm::RevisionKind::Upgrade
    };
    let scope = engine.scope_lookups(&mut request).await;
    (request, scope)
}

/// Run the chart's test hooks (`helm test`) against the running revision
/// (owner or admin; the deployment must be Ready). Each result is recorded
/// on the deployment's timeline.
#[utoipa::path(post, path = "/api/v1/deployments/{uid}/test", tag = "deployments",
    operation_id = "test_deployment",
    params(("uid" = String, Path, description = "Deployment uid"), TestQuery),
    responses((status = 200, body = TestRunView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn test_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    Query(q): Query<TestQuery>,
) -> ApiResult<Json<TestRunView>> {
    let timeout = q.timeout_seconds.unwrap_or(DEFAULT_TEST_TIMEOUT_SECONDS);
    if timeout == 0 || timeout > MAX_TEST_TIMEOUT_SECONDS {
        return Err(ApiError::bad_request(
            "timeout_seconds",
            format!("must be between 1 and {MAX_TEST_TIMEOUT_SECONDS}"),
        ));
    }
    let (d, rev, version) = {
        let mut conn = state.store.conn().await?;
        let d = owned(&mut conn, &actor, &uid).await?;
        cluster(&state)?;
        if d.phase != Phase::Ready {
            return Err(ApiError::conflict(format!(
                "deployment {uid} is {}: tests run against a Ready deployment",
                d.phase
            )));
        }
        let number = d.current_revision.ok_or_else(|| {
            ApiError::conflict(format!("deployment {uid} has no running revision"))
        })?;
        let rev = revisions::get(&mut conn, &uid, number)
            .await?
            .ok_or_else(|| ApiError::internal(format!("revision {number} of {uid} is gone")))?;
        let version = templates::get_by_id(&mut conn, &rev.template_version_id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("template of revision {number} is gone")))?;
        (d, rev, version)
    };
    let engine = cluster(&state)?;
    let (request, scope) = running_request(engine, &d, &rev).await;
    let hooks = test_hooks(&state, &version, &request).await;
    drop(scope);
    let hooks = hooks?;
    let results = engine
        .run_tests(
            &d.namespace_name,
            &d.uid,
            &hooks,
            Duration::from_secs(timeout),
        )
        .await
        .map_err(|e| ApiError::unavailable(format!("the tests could not run: {e}")))?;
    let tests: Vec<TestHookView> = results.into_iter().map(Into::into).collect();
    let passed = tests.iter().all(|t| t.passed);

    // The timeline: one event per test, then the verdict, in one transaction.
    let mut tx = state.store.begin().await?;
    for t in &tests {
        Audit {
            actor: &actor,
            action: if t.passed {
                "deployment.test.passed"
            } else {
                "deployment.test.failed"
            },
            subject: format!("deployment/{uid}"),
            deployment_uid: Some(&uid),
            tenant: Some(&d.tenant),
            message: format!(
                "test {}/{} {}: {}",
                t.kind,
                t.name,
                if t.passed { "passed" } else { "failed" },
                t.message
            ),
            details: json!({"revision": rev.number, "kind": t.kind, "name": t.name, "passed": t.passed}),
        }
        .write(&mut tx)
        .await?;
    }
    let failed = tests.iter().filter(|t| !t.passed).count();
    Audit {
        actor: &actor,
        action: "deployment.test",
        subject: format!("deployment/{uid}"),
        deployment_uid: Some(&uid),
        tenant: Some(&d.tenant),
        message: match (tests.len(), failed) {
            (0, _) => format!("revision {}: the chart has no test hooks", rev.number),
            (n, 0) => format!("revision {}: all {n} test(s) passed", rev.number),
            (n, f) => format!("revision {}: {f} of {n} test(s) failed", rev.number),
        },
        details: json!({"revision": rev.number, "passed": passed, "tests": tests}),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Json(TestRunView {
        revision: rev.number,
        passed,
        tests,
    }))
}
