//! How to reach what a deployment runs: the chart's rendered NOTES.txt, the
//! endpoints of its live Services and Ingresses, and the connection details
//! (Secret keys) its template lets the owner read.

use super::Audit;
use super::deployments::owned;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use caelus_store::{revisions, templates};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotesView {
    /// The revision the notes belong to: the one running (null before the first deploy).
    pub revision: Option<i64>,
    /// The chart's NOTES.txt as Helm rendered it for that revision (null if it has none).
    pub notes: Option<String>,
}

/// The rendered NOTES.txt of the deployment's running revision.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/notes", tag = "deployments",
    operation_id = "get_deployment_notes",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 200, body = NotesView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_deployment_notes(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<Json<NotesView>> {
    let mut conn = state.store.conn().await?;
    let d = owned(&mut conn, &actor, &uid).await?;
    let notes = match d.current_revision {
        Some(number) => revisions::get(&mut conn, &uid, number)
            .await?
            .and_then(|r| r.notes),
        None => None,
    };
    Ok(Json(NotesView {
        revision: d.current_revision,
        notes,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// The deployment's Services, then its Ingresses, as the cluster has them now.
    pub items: Vec<caelus_core::reach::Endpoint>,
}

pub(crate) fn cluster(state: &AppState) -> ApiResult<&caelus_engine::Engine> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "this server has no cluster configured (start it with --kubeconfig, or in-cluster)",
        )
    })
}

pub(crate) fn cluster_error(e: caelus_engine::EngineError) -> ApiError {
    ApiError::unavailable(format!("the cluster did not answer: {e}"))
}

/// How to reach the deployment: its Services (type, ports, in-cluster DNS name,
/// load balancer addresses) and Ingresses (URLs), read from the cluster.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/endpoints", tag = "deployments",
    operation_id = "get_deployment_endpoints",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 200, body = EndpointList), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_deployment_endpoints(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<Json<EndpointList>> {
    let d = {
        let mut conn = state.store.conn().await?;
        owned(&mut conn, &actor, &uid).await?
    };
    let items = cluster(&state)?
        .endpoints(&d.namespace_name, &d.uid)
        .await
        .map_err(cluster_error)?;
    Ok(Json(EndpointList { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionSecretView {
    /// The Secret's name in the deployment's namespace.
    pub secret: String,
    /// The declared keys the Secret has, with their values.
    pub values: BTreeMap<String, String>,
    /// Declared keys the Secret does not have (or the Secret does not exist yet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// One entry per Secret the template declares (`capabilities.connection_secrets`).
    pub items: Vec<ConnectionSecretView>,
}

/// The connection details the deployment's template declares (Secret keys, like a
/// database password), for the deployment's owner and admins. Every read is audited.
#[utoipa::path(get, path = "/api/v1/deployments/{uid}/connection", tag = "deployments",
    operation_id = "get_deployment_connection",
    params(("uid" = String, Path, description = "Deployment uid")),
    responses((status = 200, body = ConnectionView), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn get_deployment_connection(
    State(state): State<AppState>,
    actor: Actor,
    Path(uid): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    let (d, declared) = {
        let mut conn = state.store.conn().await?;
        let d = owned(&mut conn, &actor, &uid).await?;
        let version = templates::get_by_id(&mut conn, &d.template_version_id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("template of deployment {uid} is gone")))?;
        (d, version.capabilities.connection_secrets)
    };
    let engine = cluster(&state)?;
    let mut items = Vec::with_capacity(declared.len());
    for c in &declared {
        let name = c.name_for(&d.release_name);
        let data = engine
            .secret_data(&d.namespace_name, &name)
            .await
            .map_err(cluster_error)?
            .unwrap_or_default();
        let (present, missing): (Vec<&String>, Vec<&String>) =
            c.keys.iter().partition(|k| data.contains_key(*k));
        items.push(ConnectionSecretView {
            values: present
                .into_iter()
                .map(|k| (k.clone(), data[k].clone()))
                .collect(),
            missing: missing.into_iter().cloned().collect(),
            secret: name,
        });
    }
    // Nothing is answered unless the read is on the record.
    let mut tx = state.store.begin().await?;
    Audit {
        actor: &actor,
        action: "connection.read",
        subject: format!("deployment/{uid}"),
        deployment_uid: Some(&uid),
        tenant: Some(&d.tenant),
        message: format!(
            "connection details read: {}",
            items
                .iter()
                .map(|i| format!("{} ({})", i.secret, i.values.keys().cloned().collect::<Vec<_>>().join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        details: serde_json::json!({
            "secrets": items.iter().map(|i| serde_json::json!({"secret": i.secret, "keys": i.values.keys().collect::<Vec<_>>()})).collect::<Vec<_>>()
        }),
    }
    .write(&mut tx)
    .await?;
    tx.commit().await.map_err(caelus_store::StoreError::from)?;
    Ok(Json(ConnectionView { items }))
}
