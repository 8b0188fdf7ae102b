//! The Caelus HTTP API: JSON over axum, OpenAPI generated from the handlers,
//! errors as `application/problem+json`.

pub mod auth;
pub mod charts;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;
pub mod state;
pub mod ui;
pub mod views;

pub use state::AppState;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use error::ApiError;
use routes::{
    adoption, audit, certification, deployments, diff, health, hook_tests, orphans, products,
    reach, templates, tokens, upgrades,
};
use std::future::Future;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest request body accepted.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(products::create_product, products::list_products))
        .routes(routes!(products::get_product))
        .routes(routes!(
            templates::create_template_version,
            templates::list_template_versions
        ))
        .routes(routes!(
            templates::get_template_version,
            templates::update_template_version
        ))
        .routes(routes!(templates::publish_template_version))
        .routes(routes!(templates::deprecate_template_version))
        .routes(routes!(templates::retire_template_version))
        .routes(routes!(templates::render_template_version))
        .routes(routes!(certification::certify_template_version))
        .routes(routes!(
            deployments::create_deployment,
            deployments::list_deployments
        ))
        .routes(routes!(
            deployments::get_deployment,
            deployments::update_deployment,
            deployments::delete_deployment
        ))
        .routes(routes!(deployments::list_deployment_revisions))
        .routes(routes!(deployments::list_deployment_events))
        .routes(routes!(reach::get_deployment_notes))
        .routes(routes!(reach::get_deployment_endpoints))
        .routes(routes!(reach::get_deployment_connection))
        .routes(routes!(diff::get_deployment_diff))
        .routes(routes!(upgrades::upgrade_deployment))
        .routes(routes!(upgrades::list_upgrade_targets))
        .routes(routes!(upgrades::rollback_deployment))
        .routes(routes!(upgrades::retry_deployment))
        .routes(routes!(deployments::purge_deployment))
        .routes(routes!(deployments::restore_deployment))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(audit::list_events))
        .routes(routes!(orphans::scan_orphans))
        .routes(routes!(orphans::clean_orphans))
        .routes(routes!(adoption::adopt_object))
        .routes(routes!(hook_tests::test_deployment))
}

fn finish_openapi(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("Caelus API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Run catalog products on Kubernetes. Authenticate with 'Authorization: Bearer <token>'. \
             Errors are application/problem+json naming the field at fault.",
        ))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    api
}

/// The OpenAPI 3.1 document of this API.
pub fn openapi() -> OpenApi {
    let (_, api) = api_router().split_for_parts();
    finish_openapi(api)
}

/// The whole HTTP surface: API, OpenAPI document and its docs page.
pub fn router(state: AppState) -> Router {
    let (router, api) = api_router().split_for_parts();
    let api = finish_openapi(api);
    let docs: Router<AppState> = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .url("/api/v1/openapi.json", api)
        .into();
    let metrics = metrics::router(metrics::MetricsSource {
        store: state.store.clone(),
        helm: Some(state.helm.clone()),
        bearer: state.metrics_token.clone(),
    });
    router
        .merge(docs)
        .merge(ui::router())
        .merge(metrics)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint").into_response()
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this endpoint does not accept that method",
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With the peer address, so failed authentications are limited per client.
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
