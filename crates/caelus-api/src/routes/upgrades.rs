//! Explicit upgrades and rollbacks: every policy rule is checked, and the data
//! continuity preflight compares the current and target renders, before the
//! request becomes a new generation for the reconciler.

use super::Audit;
use crate::auth::Actor;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::routes::deployments::{check_values, owned};
use crate::state::AppState;
use crate::views::{DeploymentView, ListResponse};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use caelus_core::FieldError;
use caelus_core::change::{self, ChangeKind, DataDecision};
use caelus_core::upgrade::{self, DataRisk, RefusalKind, UpgradeCandidate, Verdict};
use caelus_helm::{RenderRequest, Rendered, RevisionPolicy};
use caelus_store::deployments::{self, Deployment};
use caelus_store::revisions::{self, Revision};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{StoreError, now_ms, queue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// The version to move to: newer, of the same product, published or deprecated.
    pub to_version: String,
    /// New user values; by default the current ones are carried over.
    #[schema(value_type = Option<Object>)]
    pub values: Option<Value>,
    /// Only compute and return the plan.
    #[serde(default)]
    pub dry_run: bool,
    /// Proceed although data-continuity checks refuse (admins only; recorded).
    #[serde(default)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The revision to restore (its template version and values).
    pub revision: i64,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Only compute and return the plan.
    #[serde(default)]
    pub dry_run: bool,
    /// Proceed although data-continuity checks refuse (admins only; recorded).
    #[serde(default)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectChange {
    /// `Kind/name`
    pub object: String,
    /// Changed fields: `{path, from, to}`.
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<upgrade::FieldChange>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyResult {
    pub rule: String,
    pub passed: bool,
    pub message: String,
}

/// What an upgrade or rollback would do, compared with the deployed revision.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpgradePlan {
    pub from_version: String,
    pub to_version: String,
    pub create: Vec<String>,
    pub update: Vec<ObjectChange>,
    pub delete: Vec<String>,
    /// Dropped by the target but kept (`helm.sh/resource-policy: keep`).
    pub keep: Vec<String>,
    pub unchanged: usize,
    /// `Kind/name (events)` of the target's upgrade (or rollback) hooks.
    pub hooks: Vec<String>,
    pub policy: Vec<PolicyResult>,
    #[schema(value_type = Vec<Object>)]
    pub data_risks: Vec<DataRisk>,
    /// How StatefulSet changes Kubernetes forbids are carried out keeping the
    /// data (template capability `statefulset_updates: recreate`), in order.
    pub statefulset_steps: Vec<String>,
    pub warnings: Vec<String>,
    /// Whether the request would be accepted as it is.
    pub allowed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpgradeTarget {
    pub version: String,
    pub lifecycle: String,
    pub allowed: bool,
    /// Why it is not allowed (empty when allowed).
    pub reasons: Vec<String>,
    pub warnings: Vec<String>,
}

pub(crate) fn refusal_error(v: &Verdict) -> ApiError {
    let first = &v.refusals[0];
    let detail = v
        .refusals
        .iter()
        .map(|r| r.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    match first.kind {
        RefusalKind::Forbidden => ApiError::forbidden(detail),
        RefusalKind::Conflict => ApiError::conflict(detail),
        RefusalKind::Invalid => ApiError::invalid(FieldError::new(
            match first.rule {
                "newer-target" | "published-target" | "same-product" => "to_version",
                "deployed-revision" => "revision",
                _ => "body",
            },
            detail,
        )),
    }
}

fn candidate<'a>(
    d: &'a Deployment,
    target: &'a TemplateVersion,
    actor: &Actor,
) -> UpgradeCandidate<'a> {
    UpgradeCandidate {
        deployment_product: &d.product_slug,
        // What runs decides what is newer: after an automatic rollback the
        // desired version is the failed target, and going to it again is allowed.
        current_version: d.running_version.as_deref().unwrap_or(&d.version),
        desired: d.desired_state,
        target_product: &target.product_slug,
        target_version: &target.version,
        target_lifecycle: target.lifecycle,
        target_requires_admin: target.capabilities.upgrade_requires_admin,
        actor_is_admin: actor.is_admin(),
    }
}

/// The render request of a revision of `d`. With a cluster, `lookup`
/// answers from the deployment's namespace as it will for the worker, so
/// charts that look up their Secrets preview too; the scope must live as
/// long as the render.
async fn revision_request(
    state: &AppState,
    d: &Deployment,
    values: &Value,
    revision: i64,
) -> (RenderRequest, Option<caelus_engine::LookupScope>) {
    let mut request = RenderRequest::for_revision(
        values.clone(),
        &d.release_name,
        &d.namespace_name,
        revision,
        &d.uid,
    );
    let scope = match &state.cluster {
        Some(engine) => engine.scope_lookups(&mut request).await,
        None => None,
    };
    (request, scope)
}

async fn render(
    state: &AppState,
    d: &Deployment,
    version: &TemplateVersion,
    values: &Value,
    revision: i64,
) -> ApiResult<Arc<Rendered>> {
    let chart = charts::chart_of(&state.helm, version).await?;
    let (request, scope) = revision_request(state, d, values, revision).await;
    let rendered = state
        .helm
        .render(&chart, &request)
        .await
        .map_err(|e| charts::chart_error("values", e));
    drop(scope);
    rendered
}

fn all_objects(r: &Rendered) -> Vec<Value> {
    let mut objects = r.crds.clone();
    objects.extend(r.objects.iter().cloned());
    objects
}

/// What is deployed now (empty if nothing was ever deployed): the manifest
/// the running revision stored when it was applied, so a chart that can no
/// longer be pulled never blocks the preflight; rendered again only for
/// revisions from before manifests were stored.
async fn current_objects(
    state: &AppState,
    d: &Deployment,
) -> ApiResult<(Vec<Value>, Option<Revision>)> {
    let mut conn = state.store.conn().await?;
    let Some(last) = revisions::last_deployed(&mut conn, &d.uid).await? else {
        return Ok((Vec::new(), None));
    };
    let stored = match revisions::manifest(&mut conn, &d.uid, last.number).await {
        Ok(bytes) => bytes.and_then(|b| serde_json::from_slice::<Rendered>(&b).ok()),
        Err(StoreError::Corrupt(e)) => {
            tracing::warn!(error = %e, "the stored manifest cannot be read; rendering again");
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(applied) = stored {
        return Ok((all_objects(&applied), Some(last)));
    }
    let version = templates::get_by_id(&mut conn, &last.template_version_id)
        .await?
        .ok_or_else(|| {
            ApiError::internal("deployed revision refers to a missing template version")
        })?;
    drop(conn);
    let rendered = render(state, d, &version, &last.user_values, last.number).await?;
    Ok((all_objects(&rendered), Some(last)))
}

/// Renders both sides, checks policy and data continuity, and builds the plan:
/// the same preflight for an update, an upgrade, a rollback and a retry.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn preflight(
    state: &AppState,
    actor: &Actor,
    d: &Deployment,
    target: &TemplateVersion,
    values: &Value,
    mut verdict: Verdict,
    allow_data_loss: bool,
    kind: ChangeKind,
) -> ApiResult<(UpgradePlan, Vec<DataRisk>)> {
    let (current, last) = current_objects(state, d).await?;
    let next_number = last.as_ref().map_or(1, |r| r.number + 1);
    // The one render seam: every object of the target revision (CRDs,
    // objects, hooks of every event) through core's policy.
    let chart = charts::chart_of(&state.helm, target).await?;
    let (request, scope) = revision_request(state, d, values, next_number).await;
    let checked = state
        .helm
        .render_revision(
            &chart,
            &request,
            &RevisionPolicy::from(&target.capabilities),
        )
        .await
        .map_err(|e| charts::chart_error("values", e))?;
    drop(scope);
    let violations = checked.violations;
    let rendered = checked.rendered;
    let target_objects = all_objects(&rendered);
    let statefulset_updates = target.capabilities.statefulset_updates;
    let mut risks = upgrade::data_continuity_with(&current, &target_objects, statefulset_updates);
    let recreations =
        if statefulset_updates == caelus_core::statefulset::StatefulSetUpdates::Recreate {
            caelus_core::statefulset::recreations(&current, &target_objects)
        } else {
            Vec::new()
        };
    // Claims whose StorageClass cannot expand are refused here already, with
    // the reason; the worker checks again before its first write.
    if let Some(engine) = &state.cluster {
        for r in recreations.iter().filter(|r| !r.grow.is_empty()) {
            match engine
                .statefulset_recreation_refusals(&d.namespace_name, r)
                .await
            {
                Ok(refusals) => risks.extend(refusals.into_iter().map(|message| DataRisk {
                    kind: "StatefulSet".into(),
                    name: r.name.clone(),
                    message,
                })),
                Err(e) => tracing::warn!(error = %e, "cannot check whether the claims can grow"),
            }
        }
    }
    let statefulset_steps: Vec<String> = recreations.iter().flat_map(|r| r.steps()).collect();
    let plan = upgrade::plan(&current, &target_objects);
    let hook_event = kind.hook_event();
    // The version rules are about moving to another version: only an upgrade
    // (and, for its lifecycle and admin-only targets, a rollback) is judged by them.
    let version_rules: &[&str] = match kind {
        ChangeKind::Upgrade => &[
            "same-product",
            "published-target",
            "newer-target",
            "admin-required",
        ],
        ChangeKind::Rollback => &["same-product", "published-target", "admin-required"],
        ChangeKind::Update | ChangeKind::Retry => &[],
    };
    let mut policy: Vec<PolicyResult> = version_rules
        .iter()
        .chain(&["not-deleting"])
        .map(|rule| {
            let refusal = verdict.refusals.iter().find(|r| r.rule == *rule);
            PolicyResult {
                rule: rule.to_string(),
                passed: refusal.is_none(),
                message: refusal.map(|r| r.message.clone()).unwrap_or_default(),
            }
        })
        .collect();
    policy.push(PolicyResult {
        rule: "rendered-objects".into(),
        passed: violations.is_empty(),
        message: caelus_core::render_policy::describe(&violations),
    });
    let data = change::check_data_continuity(kind, &risks, allow_data_loss, actor.is_admin());
    let data_ok = data.is_ok();
    policy.push(PolicyResult {
        rule: "data-continuity".into(),
        passed: risks.is_empty(),
        message: match &data {
            Ok(DataDecision::Safe) => String::new(),
            Ok(DataDecision::Overridden) => "overridden with allow_data_loss".into(),
            Err(_) => change::describe_risks(&risks),
        },
    });
    if allow_data_loss && !risks.is_empty() {
        verdict
            .warnings
            .push("allow_data_loss is set: persistent data may be lost; this is recorded".into());
    }
    let plan = UpgradePlan {
        // What runs is what the plan starts from.
        from_version: d
            .running_version
            .clone()
            .unwrap_or_else(|| d.version.clone()),
        to_version: target.version.clone(),
        create: plan.create,
        update: plan
            .update
            .into_iter()
            .map(|(object, changes)| ObjectChange { object, changes })
            .collect(),
        delete: plan.delete,
        keep: plan.keep,
        unchanged: plan.unchanged,
        hooks: rendered
            .hooks
            .iter()
            .filter(|h| h.events.iter().any(|e| e.as_str().ends_with(hook_event)))
            .map(|h| {
                let events: Vec<&str> = h.events.iter().map(|e| e.as_str()).collect();
                format!("{}/{} ({})", h.kind, h.name, events.join(", "))
            })
            .collect(),
        allowed: verdict.allowed() && violations.is_empty() && data_ok,
        policy,
        data_risks: risks.clone(),
        statefulset_steps,
        warnings: verdict.warnings,
    };
    Ok((plan, risks))
}

/// Refuses what the plan found, most fundamental first: the render's policy,
/// then the data-continuity rule of core. Returns whether data loss was
/// knowingly allowed (for the event).
pub(crate) fn refuse_if_needed(
    actor: &Actor,
    plan: &UpgradePlan,
    risks: &[DataRisk],
    allow_data_loss: bool,
    kind: ChangeKind,
    field: &str,
) -> ApiResult<bool> {
    if let Some(p) = plan
        .policy
        .iter()
        .find(|p| p.rule == "rendered-objects" && !p.passed)
    {
        return Err(ApiError::invalid(FieldError::new(
            field,
            format!("the target's render is refused by policy: {}", p.message),
        )));
    }
    match change::check_data_continuity(kind, risks, allow_data_loss, actor.is_admin()) {
        Ok(decision) => Ok(decision == DataDecision::Overridden),
        Err(refusal) => Err(refusal_error(&Verdict {
            refusals: vec![refusal],
            warnings: Vec::new(),
        })),
    }
}

pub(crate) enum Reply {
    Plan(Box<UpgradePlan>),
    Accepted(Box<DeploymentView>),
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Plan(p) => (StatusCode::OK, Json(*p)).into_response(),
            Reply::Accepted(d) => (StatusCode::ACCEPTED, Json(*d)).into_response(),
        }
    }
}

/// Writes the new generation, guarded by the generation the checks ran against.
#[allow(clippy::too_many_arguments)]
async fn commit_change(
    state: &AppState,
    actor: &Actor,
    d: &Deployment,
    target: &TemplateVersion,
    values: &Value,
    rollback_to: Option<i64>,
    action: &str,
    message: String,
    details: Value,
    warnings: Vec<String>,
) -> ApiResult<DeploymentView> {
    let mut tx = state.store.begin().await?;
    let won = deployments::set_desired_if_generation(
        &mut tx,
        &d.uid,
        d.generation,
        &target.id,
        values,
        rollback_to,
        now_ms(),
    )
    .await?;
    if !won {
        return Err(ApiError::conflict(format!(
            "deployment {} changed while this request was checked (another upgrade or change won); read it again and retry",
            d.uid
        )));
    }
    let updated = deployments::get(&mut tx, &d.uid, None)
        .await?
        .ok_or_else(|| ApiError::internal("deployment vanished inside its transaction"))?;
    Audit {
        actor,
        action,
        subject: format!("deployment/{}", d.uid),
        deployment_uid: Some(&d.uid),
        tenant: Some(&d.tenant),
        message,
        details,
    }
    .write(&mut tx)
    .await?;
    queue::notify_workers(&mut tx, state.store.backend()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.wake_workers.notify_one();
    let mut view = DeploymentView::from(updated);
    view.warnings = warnings;
    Ok(view)
}

/// Upgrade a deployment to a newer template version (or preview it with `dry_run`).
#[utoipa::path(post, path = "/api/v1/deployments/{uid}/upgrade", tag = "deployments", operation_id = "upgrade_deployment",
    params(("uid" = String, Path, description = "Deployment uid")),
    request_body = UpgradeRequest,
    responses((status = 202, body = DeploymentView, description = "Accepted: a new generation"),
              (status = 200, body = UpgradePlan, description = "The plan (dry run)"),
              (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn upgrade_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<UpgradeRequest>,
) -> ApiResult<Response> {
    let d = owned(&mut *state.store.conn().await?, &actor, &uid).await?;
    let target = templates::get(
        &mut *state.store.conn().await?,
        &d.product_slug,
        &req.to_version,
    )
    .await?
    .filter(|t| {
        actor.is_admin()
            || t.lifecycle.is_visible_to_tenants()
            || t.lifecycle == caelus_core::lifecycle::Lifecycle::Retired
    })
    .ok_or_else(|| {
        ApiError::invalid(FieldError::new(
            "to_version",
            format!(
                "product '{}' has no version {}",
                d.product_slug, req.to_version
            ),
        ))
    })?;
    let verdict = upgrade::check_upgrade(&candidate(&d, &target, &actor));
    if !verdict.allowed() && !req.dry_run {
        return Err(refusal_error(&verdict));
    }
    let values = req.values.clone().unwrap_or_else(|| d.user_values.clone());
    let values_field = if req.values.is_some() {
        "values"
    } else {
        "values (carried over)"
    };
    if let Err(mut e) = check_values("values", &target, &values) {
        if req.values.is_none() {
            e.reason = format!("{}; pass new values with `values`", e.reason);
        }
        e.field = values_field
            .split(' ')
            .next()
            .unwrap_or("values")
            .to_string();
        return Err(ApiError::invalid(e));
    }
    if let Err(mut e) = charts::check_schema(&state.helm, &target, "values", &values).await {
        if req.values.is_none() {
            e.detail = format!(
                "{}; the current values do not fit version {}: pass new values with `values`",
                e.detail, target.version
            );
        }
        return Err(e);
    }
    if !verdict.allowed() {
        // Dry run of a refused upgrade: show why, without rendering anything.
        return Err(refusal_error(&verdict));
    }
    let (plan, risks) = preflight(
        &state,
        &actor,
        &d,
        &target,
        &values,
        verdict,
        req.allow_data_loss,
        ChangeKind::Upgrade,
    )
    .await?;
    if req.dry_run {
        return Ok(Reply::Plan(Box::new(plan)).into_response());
    }
    let overridden = refuse_if_needed(
        &actor,
        &plan,
        &risks,
        req.allow_data_loss,
        ChangeKind::Upgrade,
        "to_version",
    )?;
    let from = d.running_version.as_deref().unwrap_or(&d.version);
    let message = if overridden {
        format!(
            "upgrade from {from} to {} requested WITH allow_data_loss: {}",
            target.version,
            change::describe_risks(&risks)
        )
    } else {
        format!("upgrade from {from} to {} requested", target.version)
    };
    let view = commit_change(
        &state,
        &actor,
        &d,
        &target,
        &values,
        None,
        "deployment.upgrade",
        message,
        json!({"from": from, "to": target.version, "allow_data_loss": overridden, "data_risks": risks}),
        plan.warnings,
    )
    .await?;
    Ok(Reply::Accepted(Box::new(view)).into_response())
}

/// Which versions this deployment may be upgraded to, and why the others may not.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/upgrades", tag = "deployments", operation_id = "list_upgrade_targets",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 200, body = ListResponse<UpgradeTarget>), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_upgrade_targets(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<Json<ListResponse<UpgradeTarget>>> {
    let mut conn = state.store.conn().await?;
    let d = owned(&mut conn, &actor, &uid).await?;
    let page = templates::list(
        &mut conn,
        &d.product_id,
        !actor.is_admin(),
        caelus_store::page::MAX_LIMIT,
        None,
    )
    .await?;
    let mut items: Vec<UpgradeTarget> = page
        .items
        .iter()
        // Every version but the one that runs: after a rollback the failed
        // target is listed (and allowed) again.
        .filter(|t| t.version != d.running_version.as_deref().unwrap_or(&d.version))
        .map(|t| {
            let mut v = upgrade::check_upgrade(&candidate(&d, t, &actor));
            if let Err(e) = check_values("values", t, &d.user_values) {
                v.refusals.push(upgrade::Refusal {
                    kind: RefusalKind::Invalid,
                    rule: "values",
                    message: format!(
                        "the current values do not fit: {}; pass new values",
                        e.reason
                    ),
                });
            }
            UpgradeTarget {
                version: t.version.clone(),
                lifecycle: t.lifecycle.to_string(),
                allowed: v.allowed(),
                reasons: v.refusals.iter().map(|r| r.message.clone()).collect(),
                warnings: v.warnings,
            }
        })
        .collect();
    items.sort_by(|a, b| {
        let parse = |s: &str| semver::Version::parse(s).ok();
        parse(&b.version).cmp(&parse(&a.version))
    });
    Ok(Json(ListResponse {
        items,
        next_cursor: None,
    }))
}

/// Roll a deployment back to an earlier good revision (its version and values).
#[utoipa::path(post, path = "/api/v1/deployments/{uid}/rollback", tag = "deployments", operation_id = "rollback_deployment",
    params(("uid" = String, Path, description = "Deployment uid")),
    request_body = RollbackRequest,
    responses((status = 202, body = DeploymentView), (status = 200, body = UpgradePlan, description = "The plan (dry run)"),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn rollback_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let d = owned(&mut conn, &actor, &uid).await?;
    let history = revisions::list(&mut conn, &uid, None, 10_000).await?;
    let rev = history
        .iter()
        .find(|r| r.number == req.revision)
        .ok_or_else(|| {
            ApiError::invalid(FieldError::new(
                "revision",
                format!("deployment {uid} has no revision {}", req.revision),
            ))
        })?;
    let target = templates::get_by_id(&mut conn, &rev.template_version_id)
        .await?
        .ok_or_else(|| ApiError::internal("revision refers to a missing template version"))?;
    drop(conn);
    let verdict = upgrade::check_rollback(&upgrade::RollbackCandidate {
        desired: d.desired_state,
        revision: rev.number,
        revision_succeeded: rev.outcome.has_run(),
        // After an automatic rollback, restoring what runs is a real change.
        revision_is_current: change::check_restore(&change::RestoreFacts {
            target: rev.number,
            current_revision: d.current_revision,
            generation: d.generation,
            observed_generation: d.observed_generation,
            failure: d.failure.as_ref(),
        })
        .is_err(),
        target_version: &target.version,
        target_lifecycle: target.lifecycle,
        target_requires_admin: target.capabilities.upgrade_requires_admin,
        actor_is_admin: actor.is_admin(),
    });
    // As for upgrades, a dry run of a refused rollback answers the refusal.
    if !verdict.allowed() {
        return Err(refusal_error(&verdict));
    }
    let values = rev.user_values.clone();
    let (plan, risks) = preflight(
        &state,
        &actor,
        &d,
        &target,
        &values,
        verdict,
        req.allow_data_loss,
        ChangeKind::Rollback,
    )
    .await?;
    if req.dry_run {
        return Ok(Reply::Plan(Box::new(plan)).into_response());
    }
    let overridden = refuse_if_needed(
        &actor,
        &plan,
        &risks,
        req.allow_data_loss,
        ChangeKind::Rollback,
        "revision",
    )?;
    let view = commit_change(
        &state,
        &actor,
        &d,
        &target,
        &values,
        Some(rev.number),
        "deployment.rollback",
        format!("rollback to revision {} ({} {}) requested", rev.number, d.product_slug, target.version),
        json!({"revision": rev.number, "to": target.version, "allow_data_loss": overridden, "data_risks": risks}),
        plan.warnings,
    )
    .await?;
    Ok(Reply::Accepted(Box::new(view)).into_response())
}

/// Re-attempt a deployment's failed, stalled or rolled-back generation now,
/// with a fresh backoff: a new generation with the same desired version and
/// values (a retried rollback stays a rollback). The data-continuity
/// preflight runs as for any change that renders anew.
#[utoipa::path(post, path = "/api/v1/deployments/{uid}/retry", tag = "deployments", operation_id = "retry_deployment",
    params(("uid" = String, Path, description = "Deployment uid")),
    request_body = RetryRequest,
    responses((status = 202, body = DeploymentView, description = "Accepted: a new generation"),
              (status = 200, body = UpgradePlan, description = "The plan (dry run)"),
              (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retry_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<RetryRequest>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let d = owned(&mut conn, &actor, &uid).await?;
    change::check_retry(&change::RetryFacts {
        desired: d.desired_state,
        generation: d.generation,
        observed_generation: d.observed_generation,
        failure: d.failure.as_ref(),
        stalled: d.conditions.iter().any(|c| {
            c.type_ == caelus_core::status::CONDITION_STALLED
                && c.status == caelus_core::status::ConditionStatus::True
                && c.observed_generation == d.generation
        }),
    })
    .map_err(|refusal| {
        refusal_error(&Verdict {
            refusals: vec![refusal],
            warnings: Vec::new(),
        })
    })?;
    let target = templates::get_by_id(&mut conn, &d.template_version_id)
        .await?
        .ok_or_else(|| ApiError::internal("deployment refers to a missing template version"))?;
    drop(conn);
    let values = d.user_values.clone();
    let (plan, risks) = preflight(
        &state,
        &actor,
        &d,
        &target,
        &values,
        Verdict::default(),
        req.allow_data_loss,
        ChangeKind::Retry,
    )
    .await?;
    if req.dry_run {
        return Ok(Reply::Plan(Box::new(plan)).into_response());
    }
    let overridden = refuse_if_needed(
        &actor,
        &plan,
        &risks,
        req.allow_data_loss,
        ChangeKind::Retry,
        "body",
    )?;
    let failed = change::current_failure(d.generation, d.failure.as_ref());
    let message = match failed {
        Some(f) => format!(
            "retry of generation {} ({} {}) requested after: {}",
            d.generation, d.product_slug, target.version, f.message
        ),
        None => format!(
            "retry of generation {} ({} {}) requested",
            d.generation, d.product_slug, target.version
        ),
    };
    let view = commit_change(
        &state,
        &actor,
        &d,
        &target,
        &values,
        d.rollback_to,
        "deployment.retry",
        message,
        json!({"retried_generation": d.generation, "version": target.version, "failed_revision": failed.and_then(|f| f.revision), "allow_data_loss": overridden, "data_risks": risks}),
        plan.warnings,
    )
    .await?;
    Ok(Reply::Accepted(Box::new(view)).into_response())
}
