//! Adoption (admin): the one way an existing object Caelus did not create
//! becomes a deployment's. Caelus refuses to write objects it does not own
//! (docs/security.md, "Ownership"); when a chart's object name is already
//! taken by an object an admin wants the deployment to take over, the admin
//! adopts it: the object is labelled as the deployment's, the adoption is
//! audited, and the deployment gets a new generation so a refused revision
//! is tried again.

use super::Audit;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use caelus_core::FieldError;
use caelus_core::status::DesiredState;
use caelus_engine::{EngineError, ObjectRef};
use caelus_store::{StoreError, deployments, now_ms, queue};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdoptRequest {
    /// e.g. `v1`, `networking.k8s.io/v1`.
    pub api_version: String,
    /// e.g. `ConfigMap`.
    pub kind: String,
    /// The object's name: in the deployment's namespace, or cluster-scoped.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdoptView {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// False when the object already was the deployment's (nothing changed).
    pub adopted: bool,
    /// Who owned it before, in words (`no one (…)`, `Helm release x in y`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_owner: Option<String>,
    /// The deployment's generation after the adoption.
    pub generation: i64,
}

fn required(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty").into());
    }
    Ok(())
}

fn adopt_error(e: EngineError) -> ApiError {
    match e {
        EngineError::NotOwned { .. } => ApiError::conflict(e.to_string()),
        EngineError::UnknownKind { .. } => {
            ApiError::invalid(FieldError::new("kind", e.to_string()))
        }
        EngineError::Policy(m) => ApiError::invalid(FieldError::new("name", m)),
        EngineError::Object { code: 404, .. } => {
            ApiError::invalid(FieldError::new("name", e.to_string()))
        }
        EngineError::Object { code: 409, .. } => {
            ApiError::conflict(format!("{e}; it changed while being adopted, try again"))
        }
        e if e.is_transient() => ApiError::unavailable(format!("the cluster did not answer: {e}")),
        e => ApiError::internal(e),
    }
}

/// Adopt an existing object into a deployment (admin): label it as the
/// deployment's so its next apply may write it. Objects of another Caelus
/// deployment or installation are refused (409); the adoption is audited and
/// gives the deployment a new generation.
#[utoipa::path(post, path = "/api/v1/deployments/{uid}/adopt", tag = "deployments", operation_id = "adopt_object",
    params(("uid" = String, Path, description = "Deployment uid")),
    request_body = AdoptRequest,
    responses((status = 200, body = AdoptView), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn adopt_object(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<AdoptRequest>,
) -> ApiResult<Json<AdoptView>> {
    actor.require_admin("adopt objects into a deployment")?;
    required("apiVersion", &req.api_version)?;
    required("kind", &req.kind)?;
    required("name", &req.name)?;
    let d = deployments::get(&mut *state.store.conn().await?, &uid, None)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("deployment {uid}")))?;
    if d.desired_state == DesiredState::Absent {
        return Err(ApiError::conflict(format!(
            "deployment {uid} is being deleted; it adopts nothing"
        )));
    }
    let engine = &state
        .orphans
        .as_ref()
        .ok_or_else(|| {
            ApiError::unavailable(
                "this API server has no cluster: start it in a cluster or with --kubeconfig",
            )
        })?
        .engine;
    let object = ObjectRef {
        api_version: req.api_version.clone(),
        kind: req.kind.clone(),
        namespace: None,
        name: req.name.clone(),
    };
    let outcome = engine
        .adopt(&d.namespace_name, &d.uid, &object)
        .await
        .map_err(adopt_error)?;
    let namespace = outcome.object.namespace.clone();
    let previous_owner = outcome.previous_owner.as_ref().map(ToString::to_string);
    let mut generation = d.generation;
    if let Some(previous) = &previous_owner {
        let mut tx = state.store.begin().await?;
        // A new generation: a revision refused for this object is tried again.
        deployments::set_desired_values(
            &mut tx,
            &uid,
            &d.template_version_id,
            &d.user_values,
            now_ms(),
        )
        .await?;
        generation += 1;
        let shown = match &namespace {
            Some(ns) => format!("{}/{} in {ns}", req.kind, req.name),
            None => format!("{}/{}", req.kind, req.name),
        };
        Audit {
            actor: &actor,
            action: "deployment.adopt",
            subject: format!("deployment/{uid}"),
            deployment_uid: Some(&uid),
            tenant: Some(&d.tenant),
            message: format!("adopted {shown}, which belonged to {previous}"),
            details: json!({"apiVersion": req.api_version, "kind": req.kind, "namespace": namespace,
                            "name": req.name, "previousOwner": previous, "generation": generation}),
        }
        .write(&mut tx)
        .await?;
        queue::notify_workers(&mut tx, state.store.backend()).await?;
        tx.commit().await.map_err(StoreError::from)?;
        state.wake_workers.notify_one();
    }
    Ok(Json(AdoptView {
        api_version: req.api_version,
        kind: req.kind,
        namespace,
        name: req.name,
        adopted: previous_owner.is_some(),
        previous_owner,
        generation,
    }))
}
