//! The API error envelope: one [`ApiError`] type, one [`ErrorCode`] enum mapped to one HTTP
//! status in one `match`, and the JSON body every failing request gets:
//! `{"success":false,"error":{"code","message","details","timestamp","requestId"}}`
//! (STYLE.md §4). The request id comes from the request-id middleware through a task-local;
//! handlers never thread it by hand. Store and cache errors become 5xx here: their chain is
//! logged inside the request span and the client gets a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::cache::CacheError;
use crate::store::StoreError;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the request's future.
    pub(crate) static REQUEST_ID: String;
}

/// A machine-readable error code; serializes as `SCREAMING_SNAKE_CASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No `Authorization: Bearer` header on a protected route.
    AuthTokenMissing,
    /// The bearer token does not parse or verify.
    AuthTokenInvalid,
    /// The bearer token verified but its lifetime is over.
    AuthTokenExpired,
    /// The API token or session was revoked.
    AuthTokenRevoked,
    /// Wrong username or password, or a refresh token that is not valid.
    AuthCredentialsInvalid,
    /// The principal lacks the permission the route needs.
    AuthInsufficientPermissions,
    /// The route cannot be used with this kind of credential or role (API tokens cannot
    /// manage tokens; `api_only` sessions can only manage tokens).
    AuthRoleRestricted,
    /// A field or parameter is missing or invalid; `details` names it.
    ValidationFailed,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// No route matches the path.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// No camera with this id is visible to the caller.
    CameraNotFound,
    /// Another camera already has this serial number.
    CameraSerialDuplicate,
    /// The camera is disabled, so it cannot stream.
    CameraInactive,
    /// An ABR ladder was asked for while every transcode slot of the node (cluster) is in
    /// use (`--abr-max-cameras`), or ABR is off (`--abr-ladder off`).
    TranscodeBudgetFull,
    /// No user with this id.
    UserNotFound,
    /// Another user already has this username.
    UsernameDuplicate,
    /// An admin tried to delete, disable or demote their own account (which would lock them
    /// out); another admin has to do it.
    UserSelfLockout,
    /// No API token with this id is visible to the caller.
    TokenNotFound,
    /// The user already has the most live API tokens allowed; revoke one first.
    TokenLimitReached,
    /// No layout with this id among the caller's.
    LayoutNotFound,
    /// No alert with this id in the caller's reach.
    AlertNotFound,
    /// No notification channel with this id in the caller's reach.
    ChannelNotFound,
    /// No delivery with this id (in the state the route needs).
    DeliveryNotFound,
    /// The user has the most layouts allowed.
    LayoutLimitReached,
    /// No alert rule with this id in the caller's reach.
    AlertRuleNotFound,
    /// The scope (company, camera, type) has a rule already; change that one.
    AlertRuleDuplicate,
    /// No recording with this id is visible to the caller (or nothing recorded in the range).
    RecordingNotFound,
    /// The company is not the caller's (only admins reach every company).
    CompanyNotFound,
    /// The recording is still being written.
    RecordingInProgress,
    /// The recording is being moved between tiers or deleted.
    RecordingBusy,
    /// A signed URL's signature is missing or does not match.
    UrlSignatureInvalid,
    /// A signed URL's lifetime is over.
    UrlExpired,
    /// The `Range` header asks for bytes the file does not have.
    RangeNotSatisfiable,
    /// The node runs alone (no `--node-id`): there is no cluster to change.
    ClusterNotEnabled,
    /// No cluster member with this id.
    NodeNotFound,
    /// A node-to-node request is unsigned or signed with another cluster secret, or stale.
    ClusterAuthInvalid,
    /// Too many requests in the current window.
    RateLimitExceeded,
    /// The database or cache cannot be reached.
    ServiceUnavailable,
    /// A bug or an unexpected failure; details are in the server log.
    InternalError,
}

impl ErrorCode {
    /// The HTTP status this code is always sent with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::AuthTokenMissing
            | Self::AuthTokenInvalid
            | Self::AuthTokenExpired
            | Self::AuthTokenRevoked
            | Self::AuthCredentialsInvalid
            | Self::ClusterAuthInvalid => StatusCode::UNAUTHORIZED,
            Self::AuthInsufficientPermissions
            | Self::AuthRoleRestricted
            | Self::UrlSignatureInvalid
            | Self::UrlExpired => StatusCode::FORBIDDEN,
            Self::RecordingNotFound | Self::CompanyNotFound | Self::NodeNotFound => {
                StatusCode::NOT_FOUND
            }
            Self::RecordingInProgress | Self::RecordingBusy => StatusCode::CONFLICT,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::ValidationFailed => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound
            | Self::CameraNotFound
            | Self::UserNotFound
            | Self::TokenNotFound
            | Self::LayoutNotFound
            | Self::AlertNotFound
            | Self::ChannelNotFound
            | Self::DeliveryNotFound
            | Self::AlertRuleNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::CameraSerialDuplicate
            | Self::UsernameDuplicate
            | Self::UserSelfLockout
            | Self::TokenLimitReached
            | Self::LayoutLimitReached
            | Self::AlertRuleDuplicate
            | Self::CameraInactive
            | Self::TranscodeBudgetFull
            | Self::ClusterNotEnabled => StatusCode::CONFLICT,
            Self::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A refused credential (`camstream_auth_failures_total`): a wrong password, a token
    /// that does not verify or is expired or revoked, a badly signed node-to-node request.
    /// A missing token is not one: a browser without a session sends none.
    pub(crate) fn is_auth_failure(self) -> bool {
        matches!(
            self,
            Self::AuthCredentialsInvalid
                | Self::AuthTokenInvalid
                | Self::AuthTokenExpired
                | Self::AuthTokenRevoked
                | Self::ClusterAuthInvalid
        )
    }

    /// The code as it appears on the wire (`CAMERA_NOT_FOUND`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthTokenMissing => "AUTH_TOKEN_MISSING",
            Self::AuthTokenInvalid => "AUTH_TOKEN_INVALID",
            Self::AuthTokenExpired => "AUTH_TOKEN_EXPIRED",
            Self::AuthTokenRevoked => "AUTH_TOKEN_REVOKED",
            Self::AuthCredentialsInvalid => "AUTH_CREDENTIALS_INVALID",
            Self::AuthInsufficientPermissions => "AUTH_INSUFFICIENT_PERMISSIONS",
            Self::AuthRoleRestricted => "AUTH_ROLE_RESTRICTED",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::CameraNotFound => "CAMERA_NOT_FOUND",
            Self::CameraSerialDuplicate => "CAMERA_SERIAL_DUPLICATE",
            Self::CameraInactive => "CAMERA_INACTIVE",
            Self::TranscodeBudgetFull => "TRANSCODE_BUDGET_FULL",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::UsernameDuplicate => "USERNAME_DUPLICATE",
            Self::UserSelfLockout => "USER_SELF_LOCKOUT",
            Self::TokenNotFound => "TOKEN_NOT_FOUND",
            Self::TokenLimitReached => "TOKEN_LIMIT_REACHED",
            Self::LayoutNotFound => "LAYOUT_NOT_FOUND",
            Self::AlertNotFound => "ALERT_NOT_FOUND",
            Self::ChannelNotFound => "CHANNEL_NOT_FOUND",
            Self::DeliveryNotFound => "DELIVERY_NOT_FOUND",
            Self::LayoutLimitReached => "LAYOUT_LIMIT_REACHED",
            Self::AlertRuleNotFound => "ALERT_RULE_NOT_FOUND",
            Self::AlertRuleDuplicate => "ALERT_RULE_DUPLICATE",
            Self::RecordingNotFound => "RECORDING_NOT_FOUND",
            Self::CompanyNotFound => "COMPANY_NOT_FOUND",
            Self::RecordingInProgress => "RECORDING_IN_PROGRESS",
            Self::RecordingBusy => "RECORDING_BUSY",
            Self::UrlSignatureInvalid => "URL_SIGNATURE_INVALID",
            Self::UrlExpired => "URL_EXPIRED",
            Self::RangeNotSatisfiable => "RANGE_NOT_SATISFIABLE",
            Self::ClusterNotEnabled => "CLUSTER_NOT_ENABLED",
            Self::NodeNotFound => "NODE_NOT_FOUND",
            Self::ClusterAuthInvalid => "CLUSTER_AUTH_INVALID",
            Self::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// An API failure: what the client is told, plus extra headers (`Retry-After`, ...).
#[derive(Debug)]
pub struct ApiError {
    /// The error code (decides the status).
    pub code: ErrorCode,
    /// Human-readable text for the client.
    pub message: String,
    /// Structured details (field names, limits), or `null`.
    pub details: serde_json::Value,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// The cause of a 5xx, logged and never sent.
    source: Option<String>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: serde_json::Value::Null,
            headers: Vec::new(),
            source: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A 400 `VALIDATION_FAILED` naming one field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(ErrorCode::ValidationFailed, format!("{field}: {message}"))
            .with_details(serde_json::json!({ "fields": [{ "field": field, "message": message }] }))
    }

    /// A 500 whose cause is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(ErrorCode::InternalError, "internal error");
        e.source = Some(format!("{cause:#}"));
        e
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                let mut api = Self::new(ErrorCode::ServiceUnavailable, "database unavailable");
                api.source = Some(e.to_string());
                api
            }
            other => Self::internal(other),
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        let mut api = Self::new(ErrorCode::ServiceUnavailable, "cache unavailable");
        api.source = Some(e.to_string());
        api
    }
}

/// The JSON body of an error response.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorEnvelope {
    /// Always `false`.
    success: bool,
    /// The error.
    error: ErrorBody,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    code: ErrorCode,
    /// Human-readable text.
    message: String,
    /// Structured details (`fields` naming the invalid fields, limits, ...), or `null`.
    #[schema(value_type = Option<Object>)]
    details: serde_json::Value,
    /// When the error happened (UTC, RFC 3339).
    #[schema(format = DateTime)]
    timestamp: String,
    /// The request id (also in the `x-request-id` response header).
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if self.code.is_auth_failure() {
            metrics::counter!("camstream_auth_failures_total", "code" => self.code.as_str())
                .increment(1);
        }
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        if status.is_server_error() {
            // 5xx: the operator needs the chain; the client gets the generic message.
            tracing::error!(code = self.code.as_str(), cause = ?self.source, "request failed");
        } else {
            tracing::debug!(code = self.code.as_str(), message = %self.message, "request refused");
        }
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code,
                message: self.message,
                details: self.details,
                timestamp: crate::clock::rfc3339_now(),
                request_id,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_on_the_wire() {
        for code in [
            ErrorCode::AuthTokenMissing,
            ErrorCode::CameraSerialDuplicate,
            ErrorCode::RateLimitExceeded,
            ErrorCode::InternalError,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }

    #[test]
    fn auth_failures() {
        assert!(ErrorCode::AuthCredentialsInvalid.is_auth_failure());
        assert!(ErrorCode::AuthTokenRevoked.is_auth_failure());
        assert!(!ErrorCode::AuthTokenMissing.is_auth_failure());
        assert!(!ErrorCode::AuthInsufficientPermissions.is_auth_failure());
        assert!(!ErrorCode::CameraNotFound.is_auth_failure());
    }

    #[test]
    fn statuses() {
        assert_eq!(
            ErrorCode::AuthTokenMissing.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ErrorCode::AuthRoleRestricted.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ErrorCode::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ErrorCode::RateLimitExceeded.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
