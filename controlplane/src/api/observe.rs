//! Per-request plumbing outside auth: the request id (taken from a sane incoming
//! `X-Request-Id` or generated, echoed on every response and put in error bodies), the
//! `http{method,route,request_id}` tracing span, and the latency histogram
//! `camstream_http_request_duration_seconds{method,route,status}`. Also the 404/405
//! fallbacks, so unmatched requests get the error envelope too.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{ApiError, ErrorCode, REQUEST_ID};

/// The request-id header.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// The latency histogram's name.
pub(crate) const HTTP_DURATION: &str = "camstream_http_request_duration_seconds";

fn incoming_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    // Echoed into logs and headers: keep it short and printable.
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| v.to_owned())
}

/// The middleware (outermost `layer`).
pub(crate) async fn observe(req: Request, next: Next) -> Response {
    let id = incoming_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::debug_span!("http", method = %method, route = %route, request_id = %id);
    let start = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route, "status" => status.to_string())
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_us = elapsed.as_micros() as u64,
            "request done"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// 404 for unmatched paths.
pub(crate) async fn not_found() -> Response {
    ApiError::new(ErrorCode::NotFound, "no such route").into_response()
}

/// 405 for a path served with other methods.
pub(crate) async fn method_not_allowed() -> Response {
    ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed").into_response()
}
