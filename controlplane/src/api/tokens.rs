//! `/api/v1/tokens`: API tokens of the calling user (admins see and revoke everyone's). The
//! secret is returned once at creation and stored as a digest; permissions must be ones the
//! owner's role may grant, and its rate limit at most the owner's own limit and the
//! server's `--max-token-rate-limit`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Envelope, Json, Path, ok, text};
use super::guard::Principal;
use crate::auth::secret::{self, Kind};
use crate::clock::{now_ms, parse_rfc3339, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::rbac::{Permission, Permissions, Role};
use crate::state::AppState;
use crate::store::ApiToken;

/// Tokens per user.
const MAX_TOKENS_PER_USER: usize = 100;

/// A token as listed (no secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenView {
    id: String,
    user_id: String,
    name: String,
    remark: Option<String>,
    /// The visible start of the secret (`cst_` + 12 characters).
    prefix: String,
    permissions: Vec<Permission>,
    /// Requests per hour.
    rate_limit: i64,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> Self {
        Self {
            id: t.id.clone(),
            user_id: t.user_id.clone(),
            name: t.name.clone(),
            remark: t.remark.clone(),
            prefix: format!("cst_{}", t.prefix),
            permissions: t.permissions.0.clone(),
            rate_limit: t.rate_limit,
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            created_at: rfc3339(t.created_at),
        }
    }
}

/// A new token with its secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedToken {
    #[serde(flatten)]
    token: TokenView,
    /// The secret: `Authorization: Bearer <token>`. Not retrievable later.
    token_secret: String,
}

/// A token request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateToken {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    name: String,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 1024
    )]
    remark: Option<String>,
    #[schema(min_items = 1)]
    permissions: Vec<Permission>,
    /// Requests per hour (default from the server config). At most the creator's own limit
    /// and the server's `--max-token-rate-limit` (400 `VALIDATION_FAILED` above it); the
    /// served document's `maximum` is this server's cap.
    #[schema(minimum = 1, maximum = 1_000_000)]
    rate_limit: Option<i64>,
    /// RFC 3339 expiry, in the future (400 otherwise); none = never.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// New permissions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SetPermissions {
    #[schema(min_items = 1)]
    permissions: Vec<Permission>,
}

fn check_permissions(role: Role, wanted: &[Permission]) -> Result<Permissions, ApiError> {
    if wanted.is_empty() {
        return Err(ApiError::validation("permissions", "must not be empty"));
    }
    let grantable = role.token_grantable();
    let refused: Vec<&str> = wanted
        .iter()
        .filter(|p| !grantable.contains(p))
        .map(|p| p.as_str())
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::new(
            ErrorCode::AuthInsufficientPermissions,
            "cannot grant permissions beyond your role",
        )
        .with_details(serde_json::json!({ "field": "permissions", "refused": refused })));
    }
    let mut set: Vec<Permission> = Vec::new();
    for p in wanted {
        if !set.contains(p) {
            set.push(*p);
        }
    }
    Ok(Permissions(set))
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::TokenNotFound, "token not found")
}

/// The token if the caller may manage it (its owner, or an admin).
async fn visible(state: &AppState, p: &Principal, id: &str) -> Result<ApiToken, ApiError> {
    let t = state.store.get_api_token(id).await?.ok_or_else(not_found)?;
    if t.user_id == p.user_id || p.role == Role::Admin {
        Ok(t)
    } else {
        Err(not_found())
    }
}

/// List API tokens.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "listTokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, description = "Tokens", body = Envelope<Vec<TokenView>>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let owner = (principal.role != Role::Admin).then_some(principal.user_id.as_str());
    let tokens = state.store.list_api_tokens(owner).await?;
    let views: Vec<TokenView> = tokens.iter().map(TokenView::from).collect();
    Ok(ok(views).into_response())
}

/// Create an API token.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "createToken", tag = "tokens", security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; the secret is in tokenSecret", body = Envelope<CreatedToken>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = crate::error::ErrorEnvelope),
        (status = 409, description = "TOKEN_LIMIT_REACHED: the user has 100 live tokens", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateToken>,
) -> Result<Response, ApiError> {
    text("name", &req.name, 128)?;
    if let Some(r) = &req.remark {
        text("remark", r, 1024)?;
    }
    let permissions = check_permissions(principal.role, &req.permissions)?;
    // A token works for its creator: it may not be faster than they are, nor than the
    // server allows any token to be.
    let cap = state.config.token_rate_cap();
    let rate_limit = req
        .rate_limit
        .unwrap_or_else(|| i64::from(state.config.default_token_rate_limit).min(cap));
    if !(1..=cap).contains(&rate_limit) {
        return Err(ApiError::validation(
            "rateLimit",
            format!("must be between 1 and {cap} (your own limit and the server's token cap)"),
        ));
    }
    let now = now_ms();
    let expires_at = match &req.expires_at {
        Some(s) => {
            let t = parse_rfc3339(s)
                .ok_or_else(|| ApiError::validation("expiresAt", "not an RFC 3339 time"))?;
            if t <= now {
                return Err(ApiError::validation("expiresAt", "must be in the future"));
            }
            Some(t)
        }
        None => None,
    };
    let existing = state
        .store
        .list_api_tokens(Some(&principal.user_id))
        .await?;
    if existing.iter().filter(|t| t.revoked_at.is_none()).count() >= MAX_TOKENS_PER_USER {
        // A state of the account, not a field of the request: 409.
        return Err(ApiError::new(
            ErrorCode::TokenLimitReached,
            format!("at most {MAX_TOKENS_PER_USER} live tokens per user"),
        )
        .with_details(serde_json::json!({ "limit": MAX_TOKENS_PER_USER })));
    }
    let g = secret::generate(Kind::ApiToken);
    let token = ApiToken {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: principal.user_id.clone(),
        name: req.name,
        remark: req.remark,
        prefix: g.prefix,
        secret_hash: g.hash,
        permissions,
        rate_limit,
        expires_at,
        last_used_at: None,
        revoked_at: None,
        created_at: now,
    };
    state.store.create_api_token(&token).await?;
    Ok((
        StatusCode::CREATED,
        ok(CreatedToken {
            token: TokenView::from(&token),
            token_secret: g.secret,
        }),
    )
        .into_response())
}

/// Revoke an API token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revokeToken", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = Envelope<TokenView>),
        (status = 404, description = "TOKEN_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&state, &principal, &id).await?;
    state.store.revoke_api_token(&id, now_ms()).await?;
    let t = state
        .store
        .get_api_token(&id)
        .await?
        .ok_or_else(not_found)?;
    Ok(ok(TokenView::from(&t)).into_response())
}

/// Replace an API token's permissions.
#[utoipa::path(put, path = "/api/v1/tokens/{id}/permissions", operation_id = "setTokenPermissions", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id")),
    request_body = SetPermissions,
    responses(
        (status = 200, description = "Updated", body = Envelope<TokenView>),
        (status = 404, description = "TOKEN_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn set_permissions(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<SetPermissions>,
) -> Result<Response, ApiError> {
    let t = visible(&state, &principal, &id).await?;
    // The owner's role bounds the token, also when an admin edits someone else's.
    let owner_role = if t.user_id == principal.user_id {
        principal.role
    } else {
        state
            .store
            .get_user(&t.user_id)
            .await?
            .map_or(Role::Viewer, |u| u.role)
    };
    let permissions = check_permissions(owner_role, &req.permissions)?;
    let t = state
        .store
        .set_api_token_permissions(&id, &permissions)
        .await?
        .ok_or_else(not_found)?;
    Ok(ok(TokenView::from(&t)).into_response())
}
