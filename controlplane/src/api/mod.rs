//! The HTTP API: the router with every `/api/v1` route, docs and `/metrics`, and the layers
//! around it (request id and metrics outermost, panic catcher, body limit, auth guard on
//! matched routes). Route access rules live in [`routes::ROUTES`]; handlers live in one
//! file per resource.

mod alert_rules;
mod alerts;
mod analytics;
mod audit;
mod auth;
mod cameras;
mod cluster;
mod docs;
mod extract;
pub mod guard;
mod layouts;
mod notifications;
mod observe;
mod recordings;
mod retention;
pub mod routes;
mod spec;
mod tokens;
mod users;
mod vod;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) use observe::HTTP_DURATION;

/// The documented routes and their OpenAPI document.
fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let parts = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::set_permissions))
        .routes(routes!(cameras::list, cameras::create))
        .routes(routes!(cameras::get, cameras::update, cameras::delete))
        .routes(routes!(cameras::rotate_key))
        .routes(routes!(cameras::stream_hls))
        .routes(routes!(cameras::stream_webrtc))
        .routes(routes!(cameras::status))
        .routes(routes!(cameras::health_series))
        .routes(routes!(cameras::analytics))
        .routes(routes!(cameras::recording_start))
        .routes(routes!(cameras::recording_stop))
        .routes(routes!(recordings::list))
        .routes(routes!(recordings::get, recordings::delete))
        .routes(routes!(recordings::signed_url))
        .routes(routes!(vod::download))
        .routes(routes!(recordings::timeline))
        .routes(routes!(recordings::playback))
        .routes(routes!(recordings::export))
        .routes(routes!(recordings::create_bookmark))
        .routes(routes!(retention::get, retention::put_default))
        .routes(routes!(retention::put_camera, retention::delete_camera))
        .routes(routes!(retention::put_company, retention::delete_company))
        .routes(routes!(retention::run))
        .routes(routes!(audit::list))
        .routes(routes!(vod::playlist))
        .routes(routes!(vod::export))
        .routes(routes!(vod::media))
        .routes(routes!(analytics::dashboard))
        .routes(routes!(analytics::camera_metrics))
        .routes(routes!(analytics::storage_usage))
        .routes(routes!(cluster::status))
        .routes(routes!(cluster::applied_state))
        .routes(routes!(cluster::drain))
        .routes(routes!(cluster::remove))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(ws::connect))
        .routes(routes!(alert_rules::list, alert_rules::create))
        .routes(routes!(alert_rules::defaults))
        .routes(routes!(
            alert_rules::get,
            alert_rules::update,
            alert_rules::delete
        ))
        .routes(routes!(layouts::list, layouts::create))
        .routes(routes!(layouts::get, layouts::update, layouts::delete))
        .routes(routes!(
            notifications::list_channels,
            notifications::create_channel
        ))
        .routes(routes!(
            notifications::get_channel,
            notifications::update_channel,
            notifications::delete_channel
        ))
        .routes(routes!(notifications::list_deliveries))
        .routes(routes!(notifications::list_dead_letters))
        .routes(routes!(notifications::retry_dead_letter))
        .routes(routes!(
            notifications::get_preferences,
            notifications::put_preferences
        ))
        .split_for_parts();
    let (router, mut doc) = parts;
    spec::complete(&mut doc);
    (router, doc)
}

/// The OpenAPI document (3.1).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().1
}

/// Builds the router over shared state.
pub(crate) fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes();
    let mut doc = serde_json::to_value(&openapi).unwrap_or_default();
    spec::serve_limits(&mut doc, state.config.token_rate_cap());
    let json: Arc<str> = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|_| "{}".to_owned())
        .into();
    let openapi_json = move || {
        let json = json.clone();
        async move {
            (
                [(header::CONTENT_TYPE, "application/json")],
                json.to_string(),
            )
        }
    };
    let limit = state.config.max_body_bytes;
    api.route("/api/v1/cluster/join", post(cluster::join))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/docs", get(docs::index))
        .route("/api/docs/{file}", get(docs::asset))
        .route("/metrics", get(docs::metrics))
        .route_layer(from_fn_with_state(state.clone(), guard::guard))
        .fallback(observe::not_found)
        .method_not_allowed_fallback(observe::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(from_fn(observe::observe))
        .with_state(state)
}
