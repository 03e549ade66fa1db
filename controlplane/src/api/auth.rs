//! `/api/v1/auth/*`: login (with throttling per username and per client address), rotating
//! refresh tokens with reuse detection, logout, and `me`.
//!
//! A login creates a session: `session:{sid}` in the cache (renewed by each refresh), one
//! live refresh token in the store, and short access JWTs naming the session. Presenting an
//! already-rotated refresh token ends the whole session (it was stolen or replayed).

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Envelope, Json, ok};
use super::guard::{ClientAddr, Credential, Principal};
use super::users::UserView;
use crate::auth::keys::AccessClaims;
use crate::auth::password;
use crate::auth::secret::{self, Kind};
use crate::cache::keys;
use crate::clock::{ms, now_ms};
use crate::error::{ApiError, ErrorCode};
use crate::rbac::Permission;
use crate::state::AppState;
use crate::store::{RefreshToken, User};

/// Login credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// Login name.
    username: String,
    /// Password.
    password: String,
}

/// A refresh request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The refresh token from login or the previous refresh.
    refresh_token: String,
}

/// Tokens of a session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenPair {
    /// Access JWT for `Authorization: Bearer`.
    access_token: String,
    /// Single-use refresh token.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Access token lifetime, seconds.
    expires_in: u64,
    /// The user.
    user: UserView,
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me {
    /// The user.
    user: UserView,
    /// `session` or `apiToken`.
    credential: &'static str,
    /// What the credential may do.
    permissions: Vec<Permission>,
}

fn throttled(retry: Duration) -> ApiError {
    let secs = retry.as_secs().max(1);
    ApiError::new(
        ErrorCode::RateLimitExceeded,
        "too many failed logins; try again later",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
}

/// Counts this attempt against the username and the client address, and refuses it when
/// either is over its limit. The count is one atomic increment per key made before the
/// password hash is checked: reading the count first and adding a failure after the hash
/// (seconds later under load) let every concurrent guess through. A successful login takes
/// its attempt back, so the limits count failures in effect.
async fn count_attempt(
    state: &AppState,
    user_key: &str,
    ip_key: Option<&str>,
) -> Result<(), ApiError> {
    let c = &state.config;
    let checks = [
        (Some(user_key), c.login_max_failures_per_user),
        (ip_key, c.login_max_failures_per_ip),
    ];
    let mut retry: Option<Duration> = None;
    for (key, max) in checks {
        let Some(key) = key else { continue };
        let n = state.cache.incr(key, 1, c.login_window).await?;
        if n.value > i64::from(max) {
            retry = Some(retry.map_or(n.ttl, |r| r.max(n.ttl)));
        }
    }
    match retry {
        Some(r) => Err(throttled(r)),
        None => Ok(()),
    }
}

/// Creates a session for `user` and returns its first tokens.
async fn open_session(state: &AppState, user: &User) -> Result<TokenPair, ApiError> {
    let sid = uuid::Uuid::new_v4().to_string();
    state
        .cache
        .set(
            &keys::session(&sid),
            &user.id,
            Some(state.config.session_ttl),
        )
        .await?;
    issue_tokens(state, user, &sid).await
}

async fn issue_tokens(state: &AppState, user: &User, sid: &str) -> Result<TokenPair, ApiError> {
    let now = now_ms();
    let refresh = secret::generate(Kind::Refresh);
    state
        .store
        .create_refresh_token(&RefreshToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            session_id: sid.to_owned(),
            prefix: refresh.prefix,
            secret_hash: refresh.hash,
            expires_at: now + ms(state.config.refresh_token_ttl),
            revoked_at: None,
            created_at: now,
        })
        .await?;
    let ttl = state.config.access_token_ttl;
    let claims = AccessClaims {
        sub: user.id.clone(),
        sid: sid.to_owned(),
        role: user.role,
        tenant: user.company.clone(),
        iat: now / 1000,
        exp: now / 1000 + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        typ: "access".into(),
    };
    let access = state
        .keys
        .issue_access(&claims)
        .map_err(ApiError::internal)?;
    Ok(TokenPair {
        access_token: access,
        refresh_token: refresh.secret,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        user: UserView::from(user),
    })
}

/// Log in.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = Envelope<TokenPair>),
        (status = 401, description = "AUTH_CREDENTIALS_INVALID", body = crate::error::ErrorEnvelope),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (throttled)", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    // No username has more than 64 bytes or a NUL (which PostgreSQL cannot compare).
    if req.username.len() > 64
        || req.username.contains('\0')
        || req.password.len() > password::MAX_LEN * 4
    {
        return Err(ApiError::new(
            ErrorCode::AuthCredentialsInvalid,
            "invalid username or password",
        ));
    }
    let user_key = keys::login_fail(&format!("user:{}", req.username.to_lowercase()));
    let ip_key = ip.map(|ip| keys::login_fail(&format!("ip:{ip}")));
    if let Err(e) = count_attempt(&state, &user_key, ip_key.as_deref()).await {
        // Throttled: refused, so failed too.
        crate::alerts::login_failed(&state, &req.username, ip).await;
        return Err(e);
    }

    let user = state.store.get_user_by_username(&req.username).await?;
    // Verify against a dummy hash for unknown users so both failures cost the same.
    let phc = match &user {
        Some(u) => u.password_hash.clone(),
        None => password::dummy_hash().await,
    };
    let verified = password::verify(req.password, phc).await;
    let user = match user {
        Some(u) if verified && u.is_active => u,
        _ => {
            // The attempt was counted before the hash check.
            tracing::info!(username = %req.username, ip = ?ip, "login failed");
            crate::alerts::login_failed(&state, &req.username, ip).await;
            return Err(ApiError::new(
                ErrorCode::AuthCredentialsInvalid,
                "invalid username or password",
            ));
        }
    };
    state.cache.del(&user_key).await?;
    if let Some(k) = &ip_key {
        state.cache.incr(k, -1, state.config.login_window).await?;
    }
    state.store.touch_login(&user.id, now_ms()).await?;
    let pair = open_session(&state, &user).await?;
    tracing::info!(user_id = %user.id, "login");
    Ok(ok(pair).into_response())
}

/// Exchange a refresh token for new tokens (the old one stops working).
#[utoipa::path(post, path = "/api/v1/auth/refresh", operation_id = "refreshSession", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = Envelope<TokenPair>),
        (status = 401, description = "AUTH_TOKEN_INVALID / AUTH_TOKEN_EXPIRED / AUTH_TOKEN_REVOKED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::new(ErrorCode::AuthTokenInvalid, "invalid refresh token");
    let prefix = secret::prefix_of(Kind::Refresh, &req.refresh_token).ok_or_else(invalid)?;
    let row = state
        .store
        .get_refresh_token_by_prefix(prefix)
        .await?
        .ok_or_else(invalid)?;
    if !secret::matches(&req.refresh_token, &row.secret_hash) {
        return Err(invalid());
    }
    let now = now_ms();
    let end_session = || async {
        state.store.revoke_session(&row.session_id, now).await?;
        state.cache.del(&keys::session(&row.session_id)).await?;
        Ok::<_, ApiError>(())
    };
    if row.revoked_at.is_some() {
        tracing::warn!(session = %row.session_id, "refresh token reused: session ended");
        end_session().await?;
        return Err(ApiError::new(
            ErrorCode::AuthTokenRevoked,
            "refresh token already used",
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::new(
            ErrorCode::AuthTokenExpired,
            "refresh token expired",
        ));
    }
    if state
        .cache
        .get(&keys::session(&row.session_id))
        .await?
        .is_none()
    {
        return Err(ApiError::new(ErrorCode::AuthTokenRevoked, "session ended"));
    }
    let user = state
        .store
        .get_user(&row.user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| ApiError::new(ErrorCode::AuthTokenRevoked, "user disabled"))?;
    // Only one of two concurrent refreshes with the same token wins; the other is a reuse.
    if !state.store.revoke_refresh_token(&row.id, now).await? {
        end_session().await?;
        return Err(ApiError::new(
            ErrorCode::AuthTokenRevoked,
            "refresh token already used",
        ));
    }
    state
        .cache
        .set(
            &keys::session(&row.session_id),
            &user.id,
            Some(state.config.session_ttl),
        )
        .await?;
    let pair = issue_tokens(&state, &user, &row.session_id).await?;
    Ok(ok(pair).into_response())
}

/// End the current session (its access and refresh tokens stop working).
#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Logged out", body = Envelope<serde_json::Value>),
        (status = 401, description = "Not authenticated", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let Credential::Session { sid } = &principal.credential else {
        // The route table admits sessions only.
        return Err(ApiError::internal("logout reached without a session"));
    };
    state.store.revoke_session(sid, now_ms()).await?;
    state.cache.del(&keys::session(sid)).await?;
    Ok(ok(serde_json::json!({ "loggedOut": true })).into_response())
}

/// The authenticated caller.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "getMe", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Envelope<Me>),
        (status = 401, description = "Not authenticated", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let user = state
        .store
        .get_user(&principal.user_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::AuthTokenRevoked, "user no longer exists"))?;
    let permissions = Permission::ALL
        .into_iter()
        .filter(|p| principal.has(*p))
        .collect();
    let credential = match principal.credential {
        Credential::Session { .. } => "session",
        Credential::ApiToken { .. } => "apiToken",
    };
    Ok(ok(Me {
        user: UserView::from(&user),
        credential,
        permissions,
    })
    .into_response())
}
