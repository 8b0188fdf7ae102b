//! The API's use of the Helm engine: inspecting charts at publish time, checking
//! values against a chart's schema, previewing renders. Maps Helm's errors to
//! problem reports: the caller's mistakes are 4xx naming the field, a registry
//! that is down is 502, our own failures 500.

use crate::error::ApiError;
use caelus_core::FieldError;
use caelus_core::values::coalesce;
use caelus_helm::{Chart, ChartReference, HelmEngine, HelmError, InspectedChart};
use caelus_store::templates::TemplateVersion;
use serde_json::Value;

/// Maps a Helm failure about the chart named in `field`.
pub fn chart_error(field: &str, e: HelmError) -> ApiError {
    match e {
        HelmError::RegistryUnreachable { .. }
        | HelmError::Registry { .. }
        | HelmError::Unauthorized { .. } => ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "registry",
            e.to_string(),
        ),
        HelmError::DigestMismatch { .. } => ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "registry-digest-mismatch",
            e.to_string(),
        ),
        e if e.is_client_error() => ApiError::invalid(FieldError::new(field, e.to_string())),
        e => ApiError::internal(e),
    }
}

/// Resolve (a tag becomes its manifest digest), pull, lint and read a chart.
pub async fn inspect(
    helm: &HelmEngine,
    field: &str,
    reference: &str,
) -> Result<InspectedChart, ApiError> {
    let parsed: ChartReference = reference
        .parse()
        .map_err(|e: HelmError| ApiError::invalid(FieldError::new(field, e.to_string())))?;
    helm.inspect(&parsed)
        .await
        .map_err(|e| chart_error(field, e))
}

/// The chart of a stored template version (pulled by digest; cached).
pub async fn chart_of(helm: &HelmEngine, version: &TemplateVersion) -> Result<Chart, ApiError> {
    let reference: ChartReference = version.chart_ref.parse().map_err(|e: HelmError| {
        ApiError::internal(format!("stored chart reference is invalid: {e}"))
    })?;
    helm.pull(&reference)
        .await
        .map_err(|e| chart_error("version", e))
}

/// Checks user values against the chart's JSON schema, as Helm does: on the
/// user's values coalesced over the chart's defaults.
pub async fn check_schema(
    helm: &HelmEngine,
    version: &TemplateVersion,
    field: &str,
    values: &Value,
) -> Result<(), ApiError> {
    if version.values_schema.is_none() {
        return Ok(());
    }
    let chart = chart_of(helm, version).await?;
    let merged = coalesce(&version.default_values, values);
    helm.validate_values(&chart, &merged)
        .await
        .map_err(|e| match e {
            HelmError::InvalidValues { message } => ApiError::invalid(FieldError::new(
                field,
                format!("the chart's values schema refuses these values: {message}"),
            )),
            other => chart_error("version", other),
        })
}
