use super::{Audit, page_params, upgrades};
use crate::auth::Actor;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{DeploymentView, EventView, ListResponse, PageQuery, RevisionView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use caelus_core::allowlist::{self, Allowlist};
use caelus_core::change::ChangeKind;
use caelus_core::names::{SYSTEM_TENANT, validate_display_name, validate_tenant};
use caelus_core::status::{DesiredState, Phase};
use caelus_core::{FieldError, FieldErrors, identity};
use caelus_store::deployments::{self, Deployment, ListFilter, NewDeployment};
use caelus_store::templates::{self, TemplateVersion};
use caelus_store::{Conn, StoreError, events, now_ms, queue, revisions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// Display name, unique per tenant. Never used for Kubernetes names.
    pub name: String,
    /// Product slug.
    pub product: String,
    /// A published (or deprecated) version of the product.
    pub version: String,
    /// User values; only paths in the version's allowlist.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub values: Value,
    /// Owner tenant. Tenant tokens: their own (the default). Admins: a tenant name,
    /// or omitted for the reserved `system` tenant, which no tenant token matches.
    pub tenant: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDeployment {
    /// Replaces the user values (a new generation).
    #[schema(value_type = Option<Object>)]
    pub values: Option<Value>,
    /// New display name.
    pub name: Option<String>,
    /// Proceed although the new values would delete or change persistent
    /// volumes (admins only; recorded in the event).
    #[serde(default)]
    pub allow_data_loss: bool,
    /// Only compute and return the plan of the values change (as an
    /// upgrade's dry run does); nothing is written.
    #[serde(default)]
    pub dry_run: bool,
}

/// What `update_deployment` answers: the deployment, or with `dry_run` the plan.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum UpdateReply {
    Deployment(Box<DeploymentView>),
    Plan(Box<upgrades::UpgradePlan>),
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeploymentListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Only deployments in this phase.
    pub phase: Option<String>,
    /// Only deployments of this product.
    pub product: Option<String>,
    /// Only this tenant's deployments (admins).
    pub tenant: Option<String>,
    /// Include deleted deployments (tombstones).
    pub include_deleted: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevisionQuery {
    pub limit: Option<i64>,
    /// Only revisions numbered below this.
    pub before: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    pub limit: Option<i64>,
    /// Only events with an id above this (for following a timeline).
    pub after: Option<i64>,
}

pub(crate) fn check_values(
    field: &str,
    t: &TemplateVersion,
    values: &Value,
) -> Result<(), FieldError> {
    let list = Allowlist::parse("values_allowlist", &t.values_allowlist).map_err(|_| {
        FieldError::new(
            field,
            "the template version's allowlist is unreadable; ask an admin",
        )
    })?;
    allowlist::check_values(field, &list, values)
}

/// Reads a deployment the actor may see. Another tenant's is "not found", never "forbidden".
pub(crate) async fn owned(conn: &mut Conn, actor: &Actor, uid: &str) -> ApiResult<Deployment> {
    let not_found = || ApiError::not_found(format!("deployment {uid}"));
    if !identity::is_deployment_uid(uid) {
        return Err(not_found());
    }
    deployments::get(conn, uid, actor.tenant_scope())
        .await?
        .ok_or_else(not_found)
}

async fn reload(conn: &mut Conn, uid: &str) -> ApiResult<Deployment> {
    deployments::get(conn, uid, None).await?.ok_or_else(|| {
        ApiError::internal(format!("deployment {uid} vanished inside its transaction"))
    })
}

/// Create a deployment: one instance of one template version, in its own namespace.
#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments", operation_id = "create_deployment",
    request_body = CreateDeployment,
    responses((status = 201, body = DeploymentView), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_deployment(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateDeployment>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    let mut errors = FieldErrors::new();
    errors.check(validate_display_name("name", &req.name));
    let tenant = match (actor.tenant_scope(), req.tenant) {
        (Some(""), _) => {
            return Err(ApiError::forbidden(
                "this tenant token names no tenant; ask an admin for a new token",
            ));
        }
        // A tenant token creates for its own tenant only.
        (Some(own), Some(t)) if t != own => {
            return Err(ApiError::forbidden(
                "a tenant token creates deployments only for its own tenant",
            ));
        }
        (Some(own), _) => own.to_string(),
        // An admin names the tenant, which must be a real tenant name…
        (None, Some(t)) => {
            errors.check(validate_tenant("tenant", &t));
            t
        }
        // …or the deployment belongs to the system tenant, which no tenant token matches.
        (None, None) => SYSTEM_TENANT.to_string(),
    };
    if !req.values.is_object() {
        errors.push("values", "must be a JSON object");
    }
    errors.into_result()?;

    let version = templates::get(&mut *state.store.conn().await?, &req.product, &req.version)
        .await?
        .filter(|t| actor.is_admin() || t.lifecycle.is_visible_to_tenants())
        .ok_or_else(|| {
            ApiError::invalid(FieldError::new(
                "version",
                format!("product '{}' has no version {}", req.product, req.version),
            ))
        })?;
    if !version.lifecycle.is_deployable() {
        return Err(ApiError::invalid(FieldError::new(
            "version",
            format!(
                "version {} of '{}' is {}: only published or deprecated versions can be deployed",
                version.version, version.product_slug, version.lifecycle
            ),
        )));
    }
    check_values("values", &version, &req.values)?;
    charts::check_schema(&state.helm, &version, "values", &req.values).await?;
    let mut warnings = Vec::new();
    if version.lifecycle == caelus_core::lifecycle::Lifecycle::Deprecated {
        warnings.push(format!(
            "version {} of '{}' is deprecated; prefer a newer version",
            version.version, version.product_slug
        ));
    }

    let uid = uuid::Uuid::new_v4().to_string();
    // A fresh v4 uuid always names a namespace and a release; should the rule
    // ever disagree, the request fails cleanly instead of the server panicking.
    let (namespace_name, release_name) =
        match (identity::namespace_name(&uid), identity::release_name(&uid)) {
            (Some(ns), Some(rel)) => (ns, rel),
            _ => {
                return Err(ApiError::internal(
                    "could not name the deployment's namespace",
                ));
            }
        };
    let mut tx = state.store.begin().await?;
    let new = NewDeployment {
        namespace_name,
        release_name,
        uid: uid.clone(),
        tenant: tenant.clone(),
        display_name: req.name.clone(),
        product_id: version.product_id.clone(),
        template_version_id: version.id.clone(),
        user_values: req.values,
        now: now_ms(),
    };
    deployments::insert(&mut tx, &new).await?;
    Audit {
        actor: &actor,
        action: "deployment.create",
        subject: format!("deployment/{uid}"),
        deployment_uid: Some(&uid),
        tenant: Some(&tenant),
        message: format!("created '{}' from {} {}", req.name, version.product_slug, version.version),
        details: json!({"product": version.product_slug, "version": version.version, "generation": 1}),
    }
    .write(&mut tx)
    .await?;
    let created = reload(&mut tx, &uid).await?;
    queue::notify_workers(&mut tx, state.store.backend()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.wake_workers.notify_one();
    let mut view = DeploymentView::from(created);
    view.warnings = warnings;
    Ok((StatusCode::CREATED, Json(view)))
}

/// List deployments: a tenant sees its own, an admin all.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", operation_id = "list_deployments",
    params(DeploymentListQuery),
    responses((status = 200, body = ListResponse<DeploymentView>), (status = 400, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_deployments(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<DeploymentListQuery>,
) -> ApiResult<Json<ListResponse<DeploymentView>>> {
    let (limit, cursor) = page_params(&PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    })?;
    let phase = q
        .phase
        .as_deref()
        .map(|p| {
            p.parse::<Phase>()
                .map_err(|e| ApiError::bad_request("phase", e))
        })
        .transpose()?;
    let tenant = match (actor.tenant_scope(), q.tenant) {
        (Some(own), _) => Some(own.to_string()),
        (None, Some(t)) if t.is_empty() => {
            return Err(ApiError::bad_request(
                "tenant",
                "must not be empty: omit it to list every tenant's deployments",
            ));
        }
        (None, t) => t,
    };
    let filter = ListFilter {
        tenant,
        phase,
        product_slug: q.product,
        include_deleted: q.include_deleted.unwrap_or(false),
    };
    let mut conn = state.store.conn().await?;
    let page = deployments::list(&mut conn, &filter, limit, cursor.as_ref()).await?;
    Ok(Json(ListResponse {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Show a deployment with its status.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}", tag = "deployments", operation_id = "get_deployment",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 200, body = DeploymentView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let mut conn = state.store.conn().await?;
    Ok(Json(owned(&mut conn, &actor, &uid).await?.into()))
}

/// Change a deployment's values (a new generation) or display name.
#[utoipa::path(patch, path = "/api/v1/deployments/{uid}", tag = "deployments", operation_id = "update_deployment",
    params(("uid" = String, Path, description = "Deployment uid")),
    request_body = UpdateDeployment,
    responses((status = 200, body = UpdateReply, description = "The deployment; with `dry_run`, the plan of the values change"),
              (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<UpdateDeployment>,
) -> ApiResult<Json<UpdateReply>> {
    if let Some(name) = &req.name {
        validate_display_name("name", name)?;
    }
    if req.dry_run {
        return Ok(Json(UpdateReply::Plan(Box::new(
            preview_update(&state, &actor, &uid, &req).await?,
        ))));
    }
    // Values are checked (the schema may need the chart from the registry) and
    // the data-continuity preflight renders both sides before the transaction
    // opens; the transaction re-reads the row and refuses if it moved meanwhile.
    let mut checked = None;
    if let Some(values) = &req.values {
        let current = owned(&mut *state.store.conn().await?, &actor, &uid).await?;
        let version = templates::get_by_id(
            &mut *state.store.conn().await?,
            &current.template_version_id,
        )
        .await?
        .ok_or_else(|| ApiError::internal("deployment refers to a missing template version"))?;
        check_values("values", &version, values)?;
        charts::check_schema(&state.helm, &version, "values", values).await?;
        if *values != current.user_values && current.desired_state == DesiredState::Present {
            let (plan, risks) = upgrades::preflight(
                &state,
                &actor,
                &current,
                &version,
                values,
                Default::default(),
                req.allow_data_loss,
                ChangeKind::Update,
            )
            .await?;
            let overridden = upgrades::refuse_if_needed(
                &actor,
                &plan,
                &risks,
                req.allow_data_loss,
                ChangeKind::Update,
                "values",
            )?;
            checked = Some((current.generation, overridden, risks));
        }
    }
    let mut tx = state.store.begin().await?;
    let current = owned(&mut tx, &actor, &uid).await?;
    if current.desired_state == DesiredState::Absent {
        return Err(ApiError::conflict(format!(
            "deployment {uid} is being deleted; it can no longer change"
        )));
    }
    let mut changes = Vec::new();
    if let Some(values) = &req.values
        && *values != current.user_values
    {
        let version = templates::get_by_id(&mut tx, &current.template_version_id)
            .await?
            .ok_or_else(|| ApiError::internal("deployment refers to a missing template version"))?;
        check_values("values", &version, values)?;
        if checked.as_ref().map(|c| c.0) != Some(current.generation) {
            return Err(ApiError::conflict(format!(
                "deployment {uid} changed while this request was checked; read it again and retry"
            )));
        }
        deployments::set_desired_values(&mut tx, &uid, &version.id, values, now_ms()).await?;
        changes.push("values");
    }
    if let Some(name) = &req.name
        && *name != current.display_name
    {
        deployments::rename(&mut tx, &uid, name, now_ms()).await?;
        changes.push("name");
    }
    if changes.is_empty() {
        return Ok(Json(UpdateReply::Deployment(Box::new(current.into()))));
    }
    let updated = reload(&mut tx, &uid).await?;
    let (overridden, risks) = match &checked {
        Some((_, overridden, risks)) if changes.contains(&"values") => (*overridden, risks.clone()),
        _ => (false, Vec::new()),
    };
    let message = if overridden {
        format!(
            "changed {} WITH allow_data_loss: {}",
            changes.join(" and "),
            caelus_core::change::describe_risks(&risks)
        )
    } else {
        format!("changed {}", changes.join(" and "))
    };
    Audit {
        actor: &actor,
        action: "deployment.update",
        subject: format!("deployment/{uid}"),
        deployment_uid: Some(&uid),
        tenant: Some(&current.tenant),
        message,
        details: json!({"changed": changes, "generation": updated.generation, "allow_data_loss": overridden, "data_risks": risks}),
    }
    .write(&mut tx)
    .await?;
    if changes.contains(&"values") {
        queue::notify_workers(&mut tx, state.store.backend()).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    if changes.contains(&"values") {
        state.wake_workers.notify_one();
    }
    Ok(Json(UpdateReply::Deployment(Box::new(updated.into()))))
}

/// The plan of an update's values change, by the same preflight a real
/// update runs (policy, data continuity), without writing anything.
async fn preview_update(
    state: &AppState,
    actor: &Actor,
    uid: &str,
    req: &UpdateDeployment,
) -> ApiResult<upgrades::UpgradePlan> {
    let values = req.values.as_ref().ok_or_else(|| {
        ApiError::invalid(FieldError::new(
            "values",
            "a dry run previews a values change: pass the new values",
        ))
    })?;
    let current = owned(&mut *state.store.conn().await?, actor, uid).await?;
    if current.desired_state == DesiredState::Absent {
        return Err(ApiError::conflict(format!(
            "deployment {uid} is being deleted; it can no longer change"
        )));
    }
    let version = templates::get_by_id(
        &mut *state.store.conn().await?,
        &current.template_version_id,
    )
    .await?
    .ok_or_else(|| ApiError::internal("deployment refers to a missing template version"))?;
    check_values("values", &version, values)?;
    charts::check_schema(&state.helm, &version, "values", values).await?;
    let (plan, _) = upgrades::preflight(
        state,
        actor,
        &current,
        &version,
        values,
        Default::default(),
        req.allow_data_loss,
        ChangeKind::Update,
    )
    .await?;
    Ok(plan)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Keep the namespace and its PersistentVolumeClaims (phase `Retained`)
    /// until `purge`. Default: the template's `keep_volumes_on_delete`
    /// (off unless the template says so: a delete deletes).
    pub keep_volumes: Option<bool>,
}

/// Delete a deployment: desired state becomes absent; the reconciler removes it
/// (or, with `keep_volumes`, everything but its volumes).
#[utoipa::path(delete, path = "/api/v1/deployments/{uid}", tag = "deployments", operation_id = "delete_deployment",
    params(("uid" = String, Path, description = "Deployment uid"), DeleteQuery),
    responses((status = 202, body = DeploymentView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    let mut tx = state.store.begin().await?;
    let current = owned(&mut tx, &actor, &uid).await?;
    let keep_volumes = match q.keep_volumes {
        Some(keep) => keep,
        None => templates::get_by_id(&mut tx, &current.template_version_id)
            .await?
            .is_some_and(|t| t.capabilities.keep_volumes_on_delete),
    };
    if !deployments::set_absent_keeping(&mut tx, &uid, keep_volumes, now_ms()).await? {
        // Already being deleted: deleting again changes nothing.
        return Ok((StatusCode::ACCEPTED, Json(current.into())));
    }
    let updated = reload(&mut tx, &uid).await?;
    Audit {
        actor: &actor,
        action: "deployment.delete",
        subject: format!("deployment/{uid}"),
        deployment_uid: Some(&uid),
        tenant: Some(&current.tenant),
        message: if keep_volumes {
            "deletion requested, keeping the namespace and its volumes".into()
        } else {
            "deletion requested".into()
        },
        details: json!({"generation": updated.generation, "keep_volumes": keep_volumes}),
    }
    .write(&mut tx)
    .await?;
    queue::notify_workers(&mut tx, state.store.backend()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.wake_workers.notify_one();
    Ok((StatusCode::ACCEPTED, Json(updated.into())))
}

/// A deployment's release history, newest first.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/revisions", tag = "deployments",
    operation_id = "list_deployment_revisions",
    params(("uid" = String, Path, description = "Deployment uid"), RevisionQuery),
    responses((status = 200, body = ListResponse<RevisionView>), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_deployment_revisions(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    Query(q): Query<RevisionQuery>,
) -> ApiResult<Json<ListResponse<RevisionView>>> {
    let (limit, _) = page_params(&PageQuery {
        limit: q.limit,
        cursor: None,
    })?;
    let mut conn = state.store.conn().await?;
    owned(&mut conn, &actor, &uid).await?;
    let items = revisions::list(&mut conn, &uid, q.before, limit + 1).await?;
    Ok(Json(super::numbered_page(items, limit, |r| r.number)))
}

/// A deployment's event timeline, oldest first.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/events", tag = "deployments",
    operation_id = "list_deployment_events",
    params(("uid" = String, Path, description = "Deployment uid"), EventQuery),
    responses((status = 200, body = ListResponse<EventView>), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list_deployment_events(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<ListResponse<EventView>>> {
    let (limit, _) = page_params(&PageQuery {
        limit: q.limit,
        cursor: None,
    })?;
    let mut conn = state.store.conn().await?;
    owned(&mut conn, &actor, &uid).await?;
    let items =
        events::list_for_deployment(&mut conn, &uid, q.after.unwrap_or(0), limit + 1).await?;
    Ok(Json(super::numbered_page(items, limit, |e| e.id)))
}

/// Remove what a deletion with `keep_volumes` kept: the namespace and its
/// PersistentVolumeClaims of a `Retained` deployment.
#[utoipa::path(post, path = "/api/v1/deployments/{uid}/purge", tag = "deployments", operation_id = "purge_deployment",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 202, body = DeploymentView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn purge_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    let mut tx = state.store.begin().await?;
    let current = owned(&mut tx, &actor, &uid).await?;
    if !deployments::purge(&mut tx, &uid, now_ms()).await? {
        return Err(ApiError::conflict(format!(
            "deployment {uid} is {}, not Retained: only a deployment deleted with keep_volumes has anything to purge",
            current.phase
        )));
    }
    let updated = reload(&mut tx, &uid).await?;
    Audit {
        actor: &actor,
        action: "deployment.purge",
        subject: format!("deployment/{uid}"),
        deployment_uid: Some(&uid),
        tenant: Some(&current.tenant),
        message: format!(
            "purge requested: namespace {} and its volumes go",
            current.namespace_name
        ),
        details: json!({"generation": updated.generation}),
    }
    .write(&mut tx)
    .await?;
    queue::notify_workers(&mut tx, state.store.backend()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.wake_workers.notify_one();
    Ok((StatusCode::ACCEPTED, Json(updated.into())))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreDeployment {
    /// User values of the re-created deployment; default: the values it had
    /// when it was deleted. Charts that generate passwords render new ones
    /// on an install unless the values carry them.
    #[schema(value_type = Option<Object>)]
    pub values: Option<Value>,
}

/// Re-create a `Retained` deployment in place: desired state present again
/// (a new generation); the reconciler installs into the kept namespace, where
/// the chart's PersistentVolumeClaims re-adopt the kept volumes (same claims,
/// same data).
#[utoipa::path(post, path = "/api/v1/deployments/{uid}/restore", tag = "deployments", operation_id = "restore_deployment",
    params(("uid" = String, Path, description = "Deployment uid")),
    request_body = RestoreDeployment,
    responses((status = 202, body = DeploymentView), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn restore_deployment(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<RestoreDeployment>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    let current = owned(&mut *state.store.conn().await?, &actor, &uid).await?;
    let not_retained = |d: &Deployment| {
        ApiError::conflict(format!(
            "deployment {uid} is {}, not Retained: only a deployment deleted with keep_volumes (and not purged) can be restored",
            d.phase
        ))
    };
    if current.phase != Phase::Retained || !current.keep_volumes {
        return Err(not_retained(&current));
    }
    let values = req.values.unwrap_or_else(|| current.user_values.clone());
    let version = templates::get_by_id(
        &mut *state.store.conn().await?,
        &current.template_version_id,
    )
    .await?
    .ok_or_else(|| ApiError::internal("deployment refers to a missing template version"))?;
    // A restore installs that version again: as for a rollback, a version that
    // takes no new deployments takes no tenant's restore; an admin may still
    // bring the data back (and plan an upgrade off it).
    if !version.lifecycle.is_deployable() && !actor.is_admin() {
        return Err(ApiError::forbidden(format!(
            "version {} of '{}' is {}: it takes no new installs; ask an admin to restore this deployment",
            version.version, version.product_slug, version.lifecycle
        )));
    }
    check_values("values", &version, &values)?;
    charts::check_schema(&state.helm, &version, "values", &values).await?;

    let mut tx = state.store.begin().await?;
    if !deployments::restore(&mut tx, &uid, &values, now_ms()).await? {
        // Changed since it was read (a purge or another restore won the race).
        let now = reload(&mut tx, &uid).await?;
        return Err(not_retained(&now));
    }
    let updated = reload(&mut tx, &uid).await?;
    let volumes: Vec<&str> = current
        .object_health
        .iter()
        .filter(|o| o.kind == "PersistentVolumeClaim")
        .map(|o| o.name.as_str())
        .collect();
    Audit {
        actor: &actor,
        action: "deployment.restore",
        subject: format!("deployment/{uid}"),
        deployment_uid: Some(&uid),
        tenant: Some(&current.tenant),
        message: format!(
            "restore requested: reinstalling into namespace {} onto the kept volumes {}",
            current.namespace_name,
            volumes.join(", ")
        ),
        details: json!({
            "generation": updated.generation,
            "volumes": volumes,
            "values_changed": values != current.user_values,
        }),
    }
    .write(&mut tx)
    .await?;
    queue::notify_workers(&mut tx, state.store.backend()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.wake_workers.notify_one();
    Ok((StatusCode::ACCEPTED, Json(updated.into())))
}
