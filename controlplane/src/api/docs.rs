//! API documentation and metrics endpoints: the OpenAPI 3.1 document generated from the
//! handlers (utoipa) at `/api/v1/openapi.json`, a Swagger UI at `/api/docs` whose assets are
//! compiled into the binary (swagger-ui-dist from npm, see `assets/swagger-ui/SOURCE.txt`), so
//! it works with no internet, and the Prometheus text exposition at `/metrics`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::extract::Path;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The document's frame; paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "camstream control plane",
        version = "1",
        description = "Cameras, stream keys, signed playback, recordings, users, API tokens and analytics. \
            Authenticate with `Authorization: Bearer <access JWT or API token>`. Errors use \
            `{\"success\":false,\"error\":{\"code\",\"message\",\"details\",\"timestamp\",\"requestId\"}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Login, refresh, logout"),
        (name = "users", description = "User management (admin)"),
        (name = "tokens", description = "API tokens"),
        (name = "alerts", description = "Alerts of the caller's tenant and their acknowledgement"),
        (name = "layouts", description = "Live grid layouts of the calling user (the dashboard)"),
        (name = "notifications", description = "Notification channels, deliveries, dead letters and the caller's preferences"),
        (name = "cameras", description = "Camera fleet"),
        (name = "streams", description = "Playback and live status"),
        (name = "analytics", description = "Figures from the data plane"),
        (name = "recordings", description = "Recordings, timelines, signed downloads, VOD playback, retention, audit"),
        (name = "cluster", description = "Cluster members, leader and placement; drain and remove nodes (admin)"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Access JWT from /auth/login, or an API token (cst_...)",
                    ))
                    .build(),
            ),
        );
    }
}

const INDEX: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>camstream API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/api/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
</script>
</body>
</html>
"##;

const BUNDLE_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

/// The Swagger UI page.
pub(crate) async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

/// A Swagger UI asset.
pub(crate) async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, ctype) = match file.as_str() {
        "swagger-ui-bundle.js" => (BUNDLE_JS, "application/javascript"),
        "swagger-ui.css" => (CSS, "text/css"),
        _ => return Err(ApiError::new(ErrorCode::NotFound, "no such asset")),
    };
    let mut r = ([(header::CONTENT_TYPE, ctype)], body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    Ok(r)
}

/// Prometheus metrics.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
