//! `/api/v1/users`: user management for admins (the route table demands `users:manage`).
//! Changing a user's role, tenant, password or active flag, or deleting them, ends their
//! sessions so the change applies at once.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Envelope, Json, PageParams, Path, Query, ok, paged, text};
use super::guard::Principal;
use crate::auth::password;
use crate::cache::keys;
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::rbac::Role;
use crate::state::AppState;
use crate::store::{NewUser, StoreError, User, UserUpdate};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserView {
    id: String,
    username: String,
    email: Option<String>,
    role: Role,
    company: Option<String>,
    is_active: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(format = DateTime)]
    last_login_at: Option<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            role: u.role,
            company: u.company.clone(),
            is_active: u.is_active,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
            last_login_at: u.last_login_at.map(rfc3339),
        }
    }
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// 3–64 characters of `[A-Za-z0-9_.@-]`.
    #[schema(pattern = r"^[A-Za-z0-9_.@-]{3,64}$", min_length = 3, max_length = 64)]
    username: String,
    /// 12–128 characters mixing at least three of lowercase, uppercase, digits and symbols,
    /// and not containing the username (answered with 400 otherwise).
    #[schema(min_length = 12, max_length = 128)]
    password: String,
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*@[^\x00-\x1f\x7f-\x9f]*$",
        max_length = 254
    )]
    email: Option<String>,
    role: Role,
    /// Tenant.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    company: Option<String>,
}

/// Deserializes a present field (even `null`) as `Some(..)`, so `null` can clear it.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a user; absent fields stay, `null` clears nullable ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateUser {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*@[^\x00-\x1f\x7f-\x9f]*$",
        max_length = 254
    )]
    email: Option<Option<String>>,
    /// 12–128 characters mixing at least three of lowercase, uppercase, digits and symbols,
    /// and not containing the username (answered with 400 otherwise).
    #[schema(min_length = 12, max_length = 128)]
    password: Option<String>,
    role: Option<Role>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 128
    )]
    company: Option<Option<String>>,
    is_active: Option<bool>,
}

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ListUsers {
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

pub(crate) fn check_username(name: &str) -> Result<(), ApiError> {
    let ok = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "username",
            "3-64 characters of letters, digits, _ . @ -",
        ))
    }
}

fn check_email(email: Option<&str>) -> Result<(), ApiError> {
    if let Some(e) = email {
        text("email", e, 254)?;
        if !e.contains('@') {
            return Err(ApiError::validation("email", "not an email address"));
        }
    }
    Ok(())
}

fn check_company(company: Option<&str>) -> Result<(), ApiError> {
    company.map_or(Ok(()), |c| text("company", c, 128))
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::UserNotFound, "user not found")
}

fn conflict(e: StoreError) -> ApiError {
    match e.conflict_field() {
        Some("username") => ApiError::new(ErrorCode::UsernameDuplicate, "username already taken")
            .with_details(serde_json::json!({ "field": "username" })),
        _ => e.into(),
    }
}

/// Ends every session of a user (role, tenant, password or state changed).
pub(crate) async fn end_sessions(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    for sid in state.store.revoke_user_sessions(user_id, now_ms()).await? {
        state.cache.del(&keys::session(&sid)).await?;
    }
    Ok(())
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users", operation_id = "listUsers", tag = "users", security(("bearer" = [])),
    params(ListUsers),
    responses((status = 200, description = "A page of users", body = super::extract::Paged<UserView>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListUsers>,
) -> Result<Response, ApiError> {
    let page = PageParams::new(q.page, q.limit)?;
    let (users, total) = state.store.list_users(page.offset(), page.limit).await?;
    let views: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(paged(views, page.page, page.limit, total))
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", operation_id = "createUser", tag = "users", security(("bearer" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = Envelope<UserView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 409, description = "USERNAME_DUPLICATE", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Json(req): Json<CreateUser>,
) -> Result<Response, ApiError> {
    check_username(&req.username)?;
    password::check_strength(&req.password, &req.username)
        .map_err(|e| ApiError::validation("password", e.to_string()))?;
    check_email(req.email.as_deref())?;
    check_company(req.company.as_deref())?;
    let hash = password::hash(req.password)
        .await
        .map_err(ApiError::internal)?;
    let user = state
        .store
        .create_user(NewUser {
            username: req.username,
            email: req.email,
            password_hash: hash,
            role: req.role,
            company: req.company,
        })
        .await
        .map_err(conflict)?;
    Ok((axum::http::StatusCode::CREATED, ok(UserView::from(&user))).into_response())
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", operation_id = "getUser", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = Envelope<UserView>),
        (status = 404, description = "USER_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = state.store.get_user(&id).await?.ok_or_else(not_found)?;
    Ok(ok(UserView::from(&user)).into_response())
}

/// Change a user.
#[utoipa::path(put, path = "/api/v1/users/{id}", operation_id = "updateUser", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "Updated", body = Envelope<UserView>),
        (status = 404, description = "USER_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "USER_SELF_LOCKOUT: an admin demoting or disabling themselves", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<UpdateUser>,
) -> Result<Response, ApiError> {
    let existing = state.store.get_user(&id).await?.ok_or_else(not_found)?;
    check_email(req.email.as_ref().and_then(|e| e.as_deref()))?;
    check_company(req.company.as_ref().and_then(|c| c.as_deref()))?;
    if id == principal.user_id
        && (req.role.is_some_and(|r| r != Role::Admin) || req.is_active == Some(false))
    {
        return Err(ApiError::new(
            ErrorCode::UserSelfLockout,
            "admins cannot demote or disable themselves",
        ));
    }
    let password_hash = match req.password {
        Some(p) => {
            password::check_strength(&p, &existing.username)
                .map_err(|e| ApiError::validation("password", e.to_string()))?;
            Some(password::hash(p).await.map_err(ApiError::internal)?)
        }
        None => None,
    };
    let ends_sessions = password_hash.is_some()
        || req.role.is_some_and(|r| r != existing.role)
        || req.company.as_ref().is_some_and(|c| *c != existing.company)
        || req.is_active == Some(false);
    let user = state
        .store
        .update_user(
            &id,
            UserUpdate {
                email: req.email,
                password_hash,
                role: req.role,
                company: req.company,
                is_active: req.is_active,
            },
        )
        .await?
        .ok_or_else(not_found)?;
    if ends_sessions {
        end_sessions(&state, &id).await?;
    }
    Ok(ok(UserView::from(&user)).into_response())
}

/// Delete a user (their API tokens go too).
#[utoipa::path(delete, path = "/api/v1/users/{id}", operation_id = "deleteUser", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Deleted", body = Envelope<serde_json::Value>),
        (status = 404, description = "USER_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "USER_SELF_LOCKOUT: an admin deleting themselves", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id == principal.user_id {
        return Err(ApiError::new(
            ErrorCode::UserSelfLockout,
            "admins cannot delete themselves",
        ));
    }
    end_sessions(&state, &id).await?;
    if !state.store.delete_user(&id).await? {
        return Err(not_found());
    }
    Ok(ok(serde_json::json!({ "deleted": true })).into_response())
}
