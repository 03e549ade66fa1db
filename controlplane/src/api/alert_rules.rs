//! `/api/v1/alert-rules`: alert rules per company or per camera of a company, and the
//! built-in defaults (`/alert-rules/defaults`). The rule in force for an alert is the
//! camera's rule, else the company's, else the default, taken whole; `enabled: false` mutes
//! the type.
//!
//! Tenancy as cameras: admins reach every company (and must name one), operators their own
//! company (another company's rule or camera is 404), viewers read their company's rules,
//! and a non-admin without a company reaches none. Reading needs `cameras:read`, writing
//! `cameras:write`.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::alerts::Severity;
use super::extract::{Envelope, Json, Path, Query, ok, text};
use super::guard::{Principal, Reach};
use crate::alerts::rules::{SPECS, Setting, Spec, default_rule, spec};
use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorCode};
use crate::rbac::Role;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::rules::{AlertRule, Escalation, EscalationStep, NewAlertRule};

/// Most escalation steps per rule.
const MAX_STEPS: usize = 10;
/// Most users or channels per step.
const MAX_TARGETS: usize = 20;
/// Latest escalation step, minutes (a week).
const MAX_AFTER_MINUTES: i64 = 10_080;

/// A rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuleView {
    id: String,
    company: String,
    /// The camera it applies to; `null`: the whole company.
    camera_id: Option<String>,
    /// The alert type.
    #[serde(rename = "type")]
    kind: String,
    /// `false` mutes the type.
    enabled: bool,
    severity: Severity,
    /// What it means depends on the type (see `/alert-rules/defaults`).
    threshold: Option<f64>,
    /// `API_UNUSUAL_USAGE`: fewest requests per minute that count as unusual.
    minimum: Option<f64>,
    /// How long the cause must hold, seconds (`API_UNUSUAL_USAGE`: quiet seconds before it
    /// resolves).
    duration_seconds: Option<i64>,
    /// Steps taken while the alert stays open and unacknowledged.
    escalation: Vec<EscalationStep>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<AlertRule> for RuleView {
    fn from(r: AlertRule) -> Self {
        Self {
            id: r.id,
            company: r.company,
            camera_id: r.camera_id,
            kind: r.kind,
            enabled: r.enabled,
            severity: Severity::of(&r.severity),
            threshold: r.threshold,
            minimum: r.minimum,
            duration_seconds: r.duration_ms.map(|ms| ms / 1000),
            escalation: r.escalation.0,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// A numeric setting of a type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SettingView {
    default: f64,
    min: f64,
    max: f64,
    meaning: &'static str,
}

fn setting(s: Option<Setting>) -> Option<SettingView> {
    s.map(|s| SettingView {
        default: s.default,
        min: s.min,
        max: s.max,
        meaning: s.meaning,
    })
}

/// The built-in rule of a type and what its rules may hold.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DefaultView {
    #[serde(rename = "type")]
    kind: &'static str,
    enabled: bool,
    severity: Severity,
    threshold: Option<f64>,
    minimum: Option<f64>,
    duration_seconds: Option<i64>,
    /// Whether a rule may name a camera.
    per_camera: bool,
    /// The accepted `threshold`, `null` when the type takes none.
    threshold_range: Option<SettingView>,
    /// The accepted `minimum`, `null` when the type takes none.
    minimum_range: Option<SettingView>,
    /// The accepted `durationSeconds`, `null` when the type takes none.
    duration_range: Option<SettingView>,
}

/// A rule as created or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RuleRequest {
    /// The company. Admins must name it (or a camera); others may only name their own
    /// (default).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 100
    )]
    company: Option<String>,
    /// A camera of the company (the rule then applies to it alone).
    #[schema(pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    camera_id: Option<String>,
    /// The alert type: `CAMERA_OFFLINE`, `STREAM_FPS_LOW`, `STREAM_FRAMES_DROPPED`,
    /// `STREAM_BITRATE_LOW`, `API_UNUSUAL_USAGE`, `API_RATE_LIMIT`, `LOGIN_FAILURES`,
    /// `RECORDING_FAILED`, `STORAGE_FULL`.
    #[serde(rename = "type")]
    #[schema(rename = "type", pattern = r"^[A-Z][A-Z0-9_]{0,63}$")]
    kind: String,
    /// Default true.
    enabled: Option<bool>,
    /// Default: the type's.
    severity: Option<Severity>,
    /// Default: the type's; only for types that take one (400 otherwise).
    threshold: Option<f64>,
    /// Default: the type's; only `API_UNUSUAL_USAGE`.
    minimum: Option<f64>,
    /// Default: the type's; only for types that take one.
    #[schema(minimum = 1, maximum = 604800)]
    duration_seconds: Option<i64>,
    /// Escalation steps, `afterMinutes` increasing. Default none.
    #[schema(max_items = 10)]
    escalation: Option<Vec<EscalationStep>>,
}

/// List filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListRules {
    /// One company (admins; others always see their own).
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 100
    )]
    company: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::AlertRuleNotFound, "alert rule not found")
}

fn check_setting(
    field: &str,
    v: Option<f64>,
    s: Option<Setting>,
    kind: &str,
) -> Result<Option<f64>, ApiError> {
    match (v, s) {
        (None, s) => Ok(s.map(|s| s.default)),
        (Some(_), None) => Err(ApiError::validation(
            field,
            format!("{kind} takes no {field}"),
        )),
        (Some(v), Some(s)) if !v.is_finite() || v < s.min || v > s.max => {
            Err(ApiError::validation(
                field,
                format!("{kind}: {} between {} and {}", s.meaning, s.min, s.max),
            ))
        }
        (Some(v), Some(_)) => Ok(Some(v)),
    }
}

/// Checks a request and settles its company: the rule to store.
async fn checked(
    state: &AppState,
    p: &Principal,
    req: RuleRequest,
) -> Result<NewAlertRule, ApiError> {
    let Some(spec): Option<&Spec> = spec(&req.kind) else {
        let known: Vec<&str> = SPECS.iter().map(|s| s.kind).collect();
        return Err(ApiError::validation(
            "type",
            format!("one of {}", known.join(", ")),
        ));
    };
    if let Some(c) = &req.company {
        text("company", c, 100)?;
    }
    let company = match &req.camera_id {
        Some(id) => {
            if !spec.per_camera {
                return Err(ApiError::validation(
                    "cameraId",
                    format!("{} rules apply to a whole company", spec.kind),
                ));
            }
            // A camera the caller cannot see (another tenant's, deleted, never existed) is a
            // field error of this request, as in layouts: a 404 would read as the rule in
            // the path being gone. It tells no more than "camera not found" would.
            let camera = super::cameras::visible(state, p, id)
                .await
                .map_err(|e| match e.code {
                    ErrorCode::CameraNotFound => {
                        ApiError::validation("cameraId", "no camera with this id in your reach")
                    }
                    _ => e,
                })?;
            let Some(company) = camera.company else {
                return Err(ApiError::validation(
                    "cameraId",
                    "the camera belongs to no company",
                ));
            };
            if req.company.as_ref().is_some_and(|c| *c != company) {
                return Err(ApiError::validation("company", "not the camera's company"));
            }
            company
        }
        None => match (p.reach(), req.company.clone()) {
            (Reach::All, Some(c)) => c,
            (Reach::All, None) => {
                return Err(ApiError::validation(
                    "company",
                    "admins name the company (or a camera)",
                ));
            }
            (Reach::Company(t), None) => t.to_owned(),
            (Reach::Company(t), Some(c)) if c == t => c,
            (Reach::Company(_), Some(_)) => {
                return Err(ApiError::new(
                    ErrorCode::CompanyNotFound,
                    "company not found",
                ));
            }
            (Reach::Nothing, _) => return Err(super::cameras::no_company()),
        },
    };
    let threshold = check_setting("threshold", req.threshold, spec.threshold, spec.kind)?;
    let minimum = check_setting("minimum", req.minimum, spec.minimum, spec.kind)?;
    let duration = check_setting(
        "durationSeconds",
        req.duration_seconds.map(|s| s as f64),
        spec.duration,
        spec.kind,
    )?;
    let duration_ms = match (req.duration_seconds, duration) {
        (Some(s), _) => Some(s.saturating_mul(1000)),
        // The type's default: CAMERA_OFFLINE's is --alert-offline-after.
        (None, Some(_)) => default_rule(spec, state.config.alert_offline_after).duration_ms,
        (None, None) => None,
    };
    let steps = req.escalation.unwrap_or_default();
    if steps.len() > MAX_STEPS {
        return Err(ApiError::validation(
            "escalation",
            format!("at most {MAX_STEPS} steps"),
        ));
    }
    let mut last = 0;
    let mut users_ok: HashSet<String> = HashSet::new();
    for (i, s) in steps.iter().enumerate() {
        let f = |name: &str| format!("escalation[{i}].{name}");
        if !(1..=MAX_AFTER_MINUTES).contains(&s.after_minutes) || s.after_minutes <= last {
            return Err(ApiError::validation(
                &f("afterMinutes"),
                format!("between 1 and {MAX_AFTER_MINUTES}, after the previous step's"),
            ));
        }
        last = s.after_minutes;
        if s.user_ids.is_empty() && s.channel_ids.is_empty() {
            return Err(ApiError::validation(
                &f("userIds"),
                "a step names at least one user or channel",
            ));
        }
        if s.user_ids.len() > MAX_TARGETS || s.channel_ids.len() > MAX_TARGETS {
            return Err(ApiError::validation(
                &f("userIds"),
                format!("at most {MAX_TARGETS} users and {MAX_TARGETS} channels"),
            ));
        }
        for (j, c) in s.channel_ids.iter().enumerate() {
            text(&format!("escalation[{i}].channelIds[{j}]"), c, 128)?;
        }
        for (j, u) in s.user_ids.iter().enumerate() {
            if users_ok.contains(u) {
                continue;
            }
            // A user of the company or an admin; anyone else is "no such user" (the
            // existence of other tenants' users is not told).
            let fits = uuid::Uuid::parse_str(u).is_ok()
                && state.store.get_user(u).await?.is_some_and(|user| {
                    user.is_active
                        && (user.role == Role::Admin || user.company.as_deref() == Some(&company))
                });
            if !fits {
                return Err(ApiError::validation(
                    &format!("escalation[{i}].userIds[{j}]"),
                    "no such user in the company",
                ));
            }
            users_ok.insert(u.clone());
        }
    }
    Ok(NewAlertRule {
        company,
        camera_id: req.camera_id,
        kind: spec.kind.to_owned(),
        enabled: req.enabled.unwrap_or(true),
        severity: req
            .severity
            .map_or_else(|| spec.severity.to_owned(), |s| s.as_str().to_owned()),
        threshold,
        minimum,
        duration_ms,
        escalation: Escalation(steps),
    })
}

fn duplicate(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::new(
            ErrorCode::AlertRuleDuplicate,
            "this company or camera has a rule for this type already; change that one",
        ),
        other => other.into(),
    }
}

/// The rule, when the caller reaches its company.
async fn visible(state: &AppState, p: &Principal, id: &str) -> Result<AlertRule, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let r = state
        .store
        .get_alert_rule(id)
        .await?
        .ok_or_else(not_found)?;
    if p.sees(Some(&r.company)) {
        Ok(r)
    } else {
        Err(not_found())
    }
}

/// Makes this node use the change at once (the others pick it up within a sweep).
async fn reload(state: &AppState) {
    if let Err(e) = state
        .alerting
        .reload(&*state.store, state.config.alert_offline_after)
        .await
    {
        tracing::warn!(error = %e, "alert rules not reloaded; the next sweep will");
    }
}

/// List the alert rules of the caller's companies.
#[utoipa::path(get, path = "/api/v1/alert-rules", operation_id = "listAlertRules", tag = "alerts", security(("bearer" = [])),
    params(ListRules),
    responses(
        (status = 200, description = "Rules, company rules before camera rules", body = Envelope<Vec<RuleView>>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListRules>,
) -> Result<Response, ApiError> {
    if let Some(c) = &q.company {
        text("company", c, 100)?;
    }
    let company = match principal.reach() {
        Reach::All => q.company,
        // Another company's filter shows nothing rather than telling it exists.
        Reach::Company(t) if q.company.as_deref().is_none_or(|c| c == t) => Some(t.to_owned()),
        Reach::Company(_) | Reach::Nothing => {
            return Ok(ok(Vec::<RuleView>::new()).into_response());
        }
    };
    let rows = state.store.list_alert_rules(company.as_deref()).await?;
    let views: Vec<RuleView> = rows.into_iter().map(RuleView::from).collect();
    Ok(ok(views).into_response())
}

/// The built-in rule of every type (in force where no company or camera rule is).
#[utoipa::path(get, path = "/api/v1/alert-rules/defaults", operation_id = "listAlertRuleDefaults", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, description = "The defaults", body = Envelope<Vec<DefaultView>>)))]
pub(crate) async fn defaults(State(state): State<AppState>) -> Result<Response, ApiError> {
    let views: Vec<DefaultView> = SPECS
        .iter()
        .map(|s| {
            let d = default_rule(s, state.config.alert_offline_after);
            DefaultView {
                kind: s.kind,
                enabled: d.enabled,
                severity: Severity::of(&d.severity),
                threshold: d.threshold,
                minimum: d.minimum,
                duration_seconds: d.duration_ms.map(|ms| ms / 1000),
                per_camera: s.per_camera,
                threshold_range: setting(s.threshold),
                minimum_range: setting(s.minimum),
                duration_range: setting(s.duration),
            }
        })
        .collect();
    Ok(ok(views).into_response())
}

/// Create a rule.
#[utoipa::path(post, path = "/api/v1/alert-rules", operation_id = "createAlertRule", tag = "alerts", security(("bearer" = [])),
    request_body = RuleRequest,
    responses(
        (status = 201, description = "Created", body = Envelope<RuleView>),
        (status = 400, description = "VALIDATION_FAILED (unknown type, a setting the type does not take or out of its range, a camera rule of a company-wide type, bad escalation)", body = crate::error::ErrorEnvelope),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS: the caller belongs to no company", body = crate::error::ErrorEnvelope),
        (status = 404, description = "COMPANY_NOT_FOUND: not in the caller's reach (a `cameraId` out of reach is 400 VALIDATION_FAILED)", body = crate::error::ErrorEnvelope),
        (status = 409, description = "ALERT_RULE_DUPLICATE: the scope has a rule for the type", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<RuleRequest>,
) -> Result<Response, ApiError> {
    let rule = checked(&state, &principal, req).await?;
    let row = state
        .store
        .create_alert_rule(rule)
        .await
        .map_err(duplicate)?;
    reload(&state).await;
    tracing::info!(rule_id = %row.id, company = %row.company, kind = %row.kind, "alert rule created");
    Ok((StatusCode::CREATED, ok(RuleView::from(row))).into_response())
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/alert-rules/{id}", operation_id = "getAlertRule", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The rule", body = Envelope<RuleView>),
        (status = 404, description = "ALERT_RULE_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = visible(&state, &principal, &id).await?;
    Ok(ok(RuleView::from(r)).into_response())
}

/// Replace a rule.
#[utoipa::path(put, path = "/api/v1/alert-rules/{id}", operation_id = "updateAlertRule", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Rule id")),
    request_body = RuleRequest,
    responses(
        (status = 200, description = "The rule", body = Envelope<RuleView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 404, description = "ALERT_RULE_NOT_FOUND or COMPANY_NOT_FOUND (a `cameraId` out of reach is 400 VALIDATION_FAILED)", body = crate::error::ErrorEnvelope),
        (status = 409, description = "ALERT_RULE_DUPLICATE", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<RuleRequest>,
) -> Result<Response, ApiError> {
    visible(&state, &principal, &id).await?;
    let rule = checked(&state, &principal, req).await?;
    let row = state
        .store
        .update_alert_rule(&id, rule)
        .await
        .map_err(duplicate)?
        .ok_or_else(not_found)?;
    reload(&state).await;
    tracing::info!(rule_id = %row.id, company = %row.company, kind = %row.kind, "alert rule changed");
    Ok(ok(RuleView::from(row)).into_response())
}

/// Delete a rule (the company's rule or the default applies again).
#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", operation_id = "deleteAlertRule", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 200, description = "Deleted", body = Envelope<serde_json::Value>),
        (status = 404, description = "ALERT_RULE_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&state, &principal, &id).await?;
    if !state.store.delete_alert_rule(&id).await? {
        return Err(not_found());
    }
    reload(&state).await;
    tracing::info!(rule_id = %id, "alert rule deleted");
    Ok(ok(serde_json::json!({ "deleted": true })).into_response())
}
