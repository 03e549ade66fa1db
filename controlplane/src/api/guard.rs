//! The auth middleware: the one place that turns a bearer credential into a [`Principal`],
//! checks it against the route table's rule, and applies the per-token / per-user rate
//! limit. Handlers receive the `Principal` as an extractor and never check roles by hand
//! (tenant and ownership checks, which need the resource, stay in the handlers).
//!
//! Order: route rule → credential (401s) → rate limit (429) → permission (403s).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::routes::{Access, lookup};
use crate::auth::keys::TokenError;
use crate::auth::secret::{self, Kind};
use crate::cache::keys;
use crate::clock::now_ms;
use crate::error::{ApiError, ErrorCode};
use crate::rbac::{Permission, Permissions, Role};
use crate::state::AppState;
use crate::store::NewAlert;

/// Rate-limit window length.
const WINDOW_SECS: u64 = 3600;
/// `last_used_at` is written at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access JWT of a login session.
    Session {
        /// Session id.
        sid: String,
    },
    /// An API token.
    ApiToken {
        /// Token id.
        id: String,
        /// What the token may do.
        permissions: Permissions,
        /// Requests per hour.
        rate_limit: i64,
    },
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user (the token's owner for API tokens).
    pub user_id: String,
    /// The user's role.
    pub role: Role,
    /// The user's tenant (company). Admins see every company whatever it says; any other
    /// role without one sees nothing.
    pub tenant: Option<String>,
    /// Session or token.
    pub credential: Credential,
}

impl Principal {
    /// Whether the caller holds `p`. A token holds what it lists, capped by what its owner's
    /// role may grant today (a demoted owner's tokens shrink with them).
    pub fn has(&self, p: Permission) -> bool {
        match &self.credential {
            Credential::Session { .. } => self.role.permissions().contains(&p),
            Credential::ApiToken { permissions, .. } => {
                permissions.contains(p) && self.role.token_grantable().contains(&p)
            }
        }
    }

    /// How much of the fleet the caller reaches: admins everything, everyone else their
    /// company, and a non-admin without a company nothing (fail closed).
    pub fn reach(&self) -> Reach<'_> {
        match (self.role, self.tenant.as_deref()) {
            (Role::Admin, _) => Reach::All,
            (_, Some(t)) => Reach::Company(t),
            (_, None) => Reach::Nothing,
        }
    }

    /// Whether the caller is an admin (global scope).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether a resource of `company` is visible to the caller.
    pub fn sees(&self, company: Option<&str>) -> bool {
        match self.reach() {
            Reach::All => true,
            Reach::Company(t) => company == Some(t),
            Reach::Nothing => false,
        }
    }
}

/// What part of the fleet a caller reaches (see [`Principal::reach`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    /// Every company and the objects of none (admins).
    All,
    /// One company's objects.
    Company(&'a str),
    /// Nothing: a non-admin without a company.
    Nothing,
}

impl<'a> Reach<'a> {
    /// The store's tenant filter: `Some(None)` for every company, `Some(Some(company))`
    /// for one, and `None` when the answer is empty without asking the store.
    pub fn filter(self) -> Option<Option<&'a str>> {
        match self {
            Reach::All => Some(None),
            Reach::Company(t) => Some(Some(t)),
            Reach::Nothing => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only reachable on routes the guard authenticated; absence is a wiring bug.
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("principal missing on an authenticated route"))
    }
}

/// The client's address when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::new(ErrorCode::AuthTokenMissing, "authorization required"))?;
    let value = value.to_str().map_err(|_| {
        ApiError::new(
            ErrorCode::AuthTokenInvalid,
            "malformed authorization header",
        )
    })?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::new(ErrorCode::AuthTokenInvalid, "expected a bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::AuthTokenInvalid,
            "expected a bearer token",
        ));
    }
    Ok(token.trim())
}

/// Authenticates a bearer credential (either kind).
pub(crate) async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if token.starts_with("cst_") {
        return authenticate_api_token(state, token).await;
    }
    let claims = state.keys.verify_access(token).map_err(|e| match e {
        TokenError::Expired => ApiError::new(ErrorCode::AuthTokenExpired, "access token expired"),
        TokenError::Invalid(_) => ApiError::new(ErrorCode::AuthTokenInvalid, "invalid token"),
    })?;
    // Logout, deactivation and role changes delete the session: the token dies with it.
    if state
        .cache
        .get(&keys::session(&claims.sid))
        .await?
        .is_none()
    {
        return Err(ApiError::new(ErrorCode::AuthTokenRevoked, "session ended"));
    }
    Ok(Principal {
        user_id: claims.sub,
        role: claims.role,
        tenant: claims.tenant,
        credential: Credential::Session { sid: claims.sid },
    })
}

async fn authenticate_api_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let invalid = || ApiError::new(ErrorCode::AuthTokenInvalid, "invalid token");
    let prefix = secret::prefix_of(Kind::ApiToken, token).ok_or_else(invalid)?;
    let row = state
        .store
        .get_api_token_by_prefix(prefix)
        .await?
        .ok_or_else(invalid)?;
    if !secret::matches(token, &row.secret_hash) {
        return Err(invalid());
    }
    let now = now_ms();
    if row.revoked_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::AuthTokenRevoked,
            "API token revoked",
        ));
    }
    if row.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::new(
            ErrorCode::AuthTokenExpired,
            "API token expired",
        ));
    }
    let owner = state
        .store
        .get_user(&row.user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| ApiError::new(ErrorCode::AuthTokenRevoked, "token owner disabled"))?;
    if row.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        state.store.touch_api_token(&row.id, now).await?;
    }
    Ok(Principal {
        user_id: owner.id,
        role: owner.role,
        tenant: owner.company,
        credential: Credential::ApiToken {
            id: row.id,
            permissions: row.permissions,
            rate_limit: row.rate_limit,
        },
    })
}

pub(crate) fn authorize(p: &Principal, access: Access) -> Result<(), ApiError> {
    let restricted = |why: &str| ApiError::new(ErrorCode::AuthRoleRestricted, why);
    let missing = |perm: Permission| {
        ApiError::new(
            ErrorCode::AuthInsufficientPermissions,
            format!("requires {}", perm.as_str()),
        )
        .with_details(serde_json::json!({ "required": perm.as_str() }))
    };
    match access {
        Access::Public | Access::Authenticated | Access::Signed | Access::Node => Ok(()),
        Access::Session => match p.credential {
            Credential::Session { .. } => Ok(()),
            Credential::ApiToken { .. } => Err(restricted(
                "API tokens have no session; revoke the token instead",
            )),
        },
        Access::SessionPerm(perm) => {
            if matches!(p.credential, Credential::ApiToken { .. }) {
                return Err(restricted("API tokens cannot manage API tokens"));
            }
            if p.has(perm) {
                Ok(())
            } else {
                Err(missing(perm))
            }
        }
        Access::Perm(perm) => {
            if p.role == Role::ApiOnly && matches!(p.credential, Credential::Session { .. }) {
                return Err(restricted("api_only accounts act through API tokens"));
            }
            if p.has(perm) {
                Ok(())
            } else {
                Err(missing(perm))
            }
        }
    }
}

/// The rate-limit state of one request, for the response headers.
pub(crate) struct Quota {
    limit: i64,
    remaining: i64,
    reset: u64,
}

impl Quota {
    fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(self.remaining.max(0)),
        );
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset));
    }
}

pub(crate) async fn rate_limit(state: &AppState, p: &Principal) -> Result<Quota, ApiError> {
    let now_s = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let window = now_s / WINDOW_SECS;
    let reset = (window + 1) * WINDOW_SECS;
    let (subject, limit, token_id) = match &p.credential {
        // Tokens stored before the cap was lowered are held to it.
        Credential::ApiToken { id, rate_limit, .. } => (
            format!("tok:{id}"),
            (*rate_limit).min(state.config.token_rate_cap()),
            Some(id.as_str()),
        ),
        Credential::Session { .. } => (
            format!("usr:{}", p.user_id),
            i64::from(state.config.user_rate_limit),
            None,
        ),
    };
    let ttl = std::time::Duration::from_secs(reset - now_s + 1);
    let count = state
        .cache
        .incr(&keys::rate_limit(&subject, window), 1, ttl)
        .await?;
    let quota = Quota {
        limit,
        remaining: limit - count.value,
        reset,
    };
    if count.value == 1
        && let Some(id) = token_id
    {
        // A new window: a token refused in an earlier one is not over its limit now.
        state
            .store
            .resolve_cause(&format!("API_RATE_LIMIT:{id}"), crate::clock::now_ms())
            .await?;
    }
    if let Some(id) = token_id {
        let caller = crate::alerts::usage::Caller {
            token_id: id,
            user_id: &p.user_id,
            company: p.tenant.as_deref(),
        };
        if let Err(e) = crate::alerts::usage::observe(
            &*state.cache,
            &*state.store,
            &state.alerting.usage,
            &state.alerting.rules(),
            state.config.api_usage_bucket,
            &caller,
            now_ms(),
        )
        .await
        {
            tracing::warn!(error = %e, token_id = id, "API usage not counted");
        }
    }
    if count.value > limit {
        let rule = state.alerting.rules().effective(
            crate::alerts::rules::API_RATE_LIMIT,
            p.tenant.as_deref(),
            None,
        );
        if let Some(id) = token_id
            && count.value == limit + 1
            && rule.enabled
        {
            // First refusal of this window: one alert per token and window.
            state
                .store
                .create_alert(NewAlert {
                    kind: "API_RATE_LIMIT".into(),
                    severity: rule.severity.clone(),
                    camera_id: None,
                    user_id: Some(p.user_id.clone()),
                    token_id: Some(id.to_owned()),
                    message: format!("API token {id} reached its limit of {limit} requests/hour"),
                    cause: Some(format!("API_RATE_LIMIT:{id}")),
                    company: p.tenant.clone(),
                })
                .await?;
        }
        let retry = reset.saturating_sub(now_s).max(1);
        let mut e = ApiError::new(ErrorCode::RateLimitExceeded, "rate limit exceeded")
            .with_details(serde_json::json!({ "limit": limit, "windowSeconds": WINDOW_SECS }))
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry));
        let mut h = HeaderMap::new();
        quota.apply(&mut h);
        for (k, v) in h.iter() {
            e = e.with_header(k.clone(), v.clone());
        }
        return Err(e);
    }
    Ok(quota)
}

/// The middleware (`route_layer`, so `MatchedPath` is known).
pub(crate) async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(spec) = path
        .as_deref()
        .and_then(|p| lookup(req.method().as_str(), p))
    else {
        // A route without an entry in the table: refuse rather than guess.
        return ApiError::new(ErrorCode::AuthRoleRestricted, "route has no access rule")
            .into_response();
    };
    if matches!(spec.access, Access::Public | Access::Signed | Access::Node) {
        return next.run(req).await;
    }
    let principal = match bearer(req.headers()) {
        Ok(token) => authenticate(&state, token).await,
        Err(e) => Err(e),
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let quota = match rate_limit(&state, &principal).await {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let mut response = match authorize(&principal, spec.access) {
        Ok(()) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    };
    quota.apply(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            user_id: "u".into(),
            role,
            tenant: tenant.map(str::to_owned),
            credential: Credential::Session { sid: "s".into() },
        }
    }

    #[test]
    fn rules() {
        let viewer = session(Role::Viewer, None);
        assert!(authorize(&viewer, Access::Perm(Permission::CamerasRead)).is_ok());
        let e = authorize(&viewer, Access::Perm(Permission::CamerasWrite)).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthInsufficientPermissions);
        let api = session(Role::ApiOnly, None);
        let e = authorize(&api, Access::Perm(Permission::CamerasRead)).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthRoleRestricted);
        assert!(authorize(&api, Access::SessionPerm(Permission::TokensManage)).is_ok());
        let token = Principal {
            credential: Credential::ApiToken {
                id: "t".into(),
                permissions: Permissions(vec![Permission::CamerasRead]),
                rate_limit: 10,
            },
            ..session(Role::ApiOnly, None)
        };
        assert!(authorize(&token, Access::Perm(Permission::CamerasRead)).is_ok());
        let e = authorize(&token, Access::SessionPerm(Permission::TokensManage)).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthRoleRestricted);
    }

    #[test]
    fn tenants() {
        let scoped = session(Role::Operator, Some("acme"));
        assert!(scoped.sees(Some("acme")));
        assert!(!scoped.sees(Some("other")));
        assert!(!scoped.sees(None));
        let admin = session(Role::Admin, Some("acme"));
        assert!(admin.sees(Some("other")));
        assert!(session(Role::Admin, None).sees(None));
        // Fail closed: a non-admin without a company sees nothing, not everything.
        for role in [Role::Operator, Role::Viewer, Role::ApiOnly] {
            let nobody = session(role, None);
            assert_eq!(nobody.reach(), Reach::Nothing);
            assert!(!nobody.sees(None));
            assert!(!nobody.sees(Some("acme")));
        }
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap_err().code, ErrorCode::AuthTokenMissing);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h).unwrap_err().code, ErrorCode::AuthTokenInvalid);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).unwrap(), "abc");
    }
}
