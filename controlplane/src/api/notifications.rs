//! Notification routes: `/api/v1/notification-channels` (a company's email/SMS/webhook
//! destinations: admins manage every company's and the company-less admin channels,
//! operators their own company's), `/api/v1/notifications/deliveries` and
//! `/api/v1/notifications/dead-letters` (admins), and the caller's own preferences at
//! `/api/v1/users/me/notification-preferences`. Delivery itself is `crate::notify`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Envelope, Json, PageParams, Path, Query, ok, paged, text};
use super::guard::{Principal, Reach};
use crate::clock::{now_ms, rfc3339};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::store::notify::{Channel, Delivery, NewChannel, Preferences};

/// Longest name, target or secret.
const MAX_TEXT: usize = 500;

/// A destination kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChannelKind {
    Email,
    Sms,
    Webhook,
}

impl ChannelKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Webhook => "webhook",
        }
    }
    fn of(s: &str) -> Self {
        match s {
            "sms" => Self::Sms,
            "webhook" => Self::Webhook,
            _ => Self::Email,
        }
    }
}

/// A user's channel kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UserChannel {
    Email,
    Sms,
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MinSeverity {
    Info,
    Warning,
    Critical,
}

impl MinSeverity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
    fn of(s: &str) -> Self {
        match s {
            "warning" => Self::Warning,
            "critical" => Self::Critical,
            _ => Self::Info,
        }
    }
}

/// A notification channel.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChannelView {
    id: String,
    /// The tenant (`null`: the admins' channel for alerts without a company).
    company: Option<String>,
    kind: ChannelKind,
    name: String,
    /// Email address, phone number or webhook URL.
    target: String,
    /// Webhook signing secret (HMAC-SHA256 key; see docs/notifications.md).
    secret: Option<String>,
    enabled: bool,
    /// Lowest alert severity delivered.
    min_severity: MinSeverity,
    /// Alert types delivered (`null`: every type).
    kinds: Option<Vec<String>>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

fn channel_view(c: Channel) -> ChannelView {
    ChannelView {
        kind: ChannelKind::of(&c.kind),
        min_severity: MinSeverity::of(&c.min_severity),
        kinds: c
            .kinds
            .as_deref()
            .and_then(|k| serde_json::from_str(k).ok()),
        id: c.id,
        company: c.company,
        name: c.name,
        target: c.target,
        secret: c.secret,
        enabled: c.enabled,
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    }
}

/// A channel as created or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ChannelRequest {
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        min_length = 1,
        max_length = 100
    )]
    name: String,
    kind: ChannelKind,
    /// An email address (`email`), a phone number `+` and 3–20 digits (`sms`), or an
    /// `http(s)://` URL (`webhook`).
    #[schema(min_length = 3, max_length = 500)]
    target: String,
    /// Webhook signing secret, 16–200 characters; generated when absent.
    #[schema(min_length = 16, max_length = 200)]
    secret: Option<String>,
    /// Default true.
    enabled: Option<bool>,
    /// Default `info` (everything).
    min_severity: Option<MinSeverity>,
    /// Alert types (`CAMERA_OFFLINE`, ...); absent or null: every type.
    #[schema(max_items = 32)]
    kinds: Option<Vec<AlertType>>,
    /// The tenant: admins may name any company or none (admins' channel); others may
    /// only name their own (the default for them).
    #[schema(min_length = 1, max_length = 100)]
    company: Option<String>,
}

/// An alert type name.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(value_type = String, pattern = r"^[A-Z][A-Z0-9_]{0,63}$")]
pub(crate) struct AlertType(String);

fn alert_type(field: &str, k: &str) -> Result<(), ApiError> {
    if k.len() > 64
        || !k.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        || !k
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::validation(
            field,
            "an alert type such as CAMERA_OFFLINE",
        ));
    }
    Ok(())
}

fn phone_ok(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn email_ok(s: &str) -> bool {
    s.len() <= MAX_TEXT && s.parse::<lettre::Address>().is_ok()
}

fn channel_not_found() -> ApiError {
    ApiError::new(ErrorCode::ChannelNotFound, "notification channel not found")
}

fn checked(
    p: &Principal,
    req: ChannelRequest,
    private_targets: bool,
) -> Result<NewChannel, ApiError> {
    text("name", &req.name, 100)?;
    let target = req.target.trim().to_owned();
    let good = match req.kind {
        ChannelKind::Email => email_ok(&target),
        ChannelKind::Sms => phone_ok(&target),
        ChannelKind::Webhook => {
            target.len() <= MAX_TEXT
                && reqwest::Url::parse(&target)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        }
    };
    if !good {
        return Err(ApiError::validation(
            "target",
            "an email address, a phone number (+ and 3-20 digits) or an http(s) URL, as the kind says",
        ));
    }
    if req.kind == ChannelKind::Webhook
        && !private_targets
        && let Some(what) = crate::notify::guard::internal_literal(&target)
    {
        return Err(ApiError::validation(
            "target",
            crate::notify::guard::refusal(&what),
        ));
    }
    if let Some(s) = &req.secret
        && (!(16..=200).contains(&s.chars().count()) || s.chars().any(char::is_control))
    {
        return Err(ApiError::validation(
            "secret",
            "16-200 characters, no control characters",
        ));
    }
    let kinds = match req.kinds {
        Some(k) => {
            if k.len() > 32 {
                return Err(ApiError::validation("kinds", "at most 32 types"));
            }
            for (i, t) in k.iter().enumerate() {
                alert_type(&format!("kinds[{i}]"), &t.0)?;
            }
            Some(serde_json::to_string(&k).unwrap_or_default())
        }
        None => None,
    };
    if let Some(c) = &req.company {
        text("company", c, 100)?;
    }
    let company = match p.reach() {
        Reach::All => req.company,
        Reach::Company(t) => match req.company {
            None => Some(t.to_owned()),
            Some(c) if c == t => Some(c),
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::AuthInsufficientPermissions,
                    "channels can only belong to your company",
                )
                .with_details(serde_json::json!({ "field": "company" })));
            }
        },
        Reach::Nothing => return Err(super::cameras::no_company()),
    };
    let secret = match (req.kind, req.secret) {
        (ChannelKind::Webhook, None) => {
            use rand::Rng;
            let b: [u8; 24] = rand::rng().random();
            Some(b.iter().map(|x| format!("{x:02x}")).collect())
        }
        (ChannelKind::Webhook, s) => s,
        _ => None,
    };
    Ok(NewChannel {
        company,
        kind: req.kind.as_str().to_owned(),
        name: req.name,
        target,
        secret,
        enabled: req.enabled.unwrap_or(true),
        min_severity: req
            .min_severity
            .unwrap_or(MinSeverity::Info)
            .as_str()
            .to_owned(),
        kinds,
    })
}

/// The channel `id` if the caller reaches it.
async fn reachable(state: &AppState, p: &Principal, id: &str) -> Result<Channel, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(channel_not_found());
    }
    let c = state
        .store
        .get_channel(id)
        .await?
        .ok_or_else(channel_not_found)?;
    if !p.sees(c.company.as_deref()) {
        return Err(channel_not_found());
    }
    Ok(c)
}

/// List the notification channels the caller manages (oldest first).
#[utoipa::path(get, path = "/api/v1/notification-channels", operation_id = "listNotificationChannels", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "The channels", body = Envelope<Vec<ChannelView>>)))]
pub(crate) async fn list_channels(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let Some(tenant) = principal.reach().filter() else {
        return Ok(ok(Vec::<ChannelView>::new()).into_response());
    };
    let rows = state.store.list_channels(tenant).await?;
    Ok(ok(rows.into_iter().map(channel_view).collect::<Vec<_>>()).into_response())
}

/// Create a notification channel.
#[utoipa::path(post, path = "/api/v1/notification-channels", operation_id = "createNotificationChannel", tag = "notifications", security(("bearer" = [])),
    request_body = ChannelRequest,
    responses(
        (status = 201, description = "Created (a webhook's generated secret is in the answer)", body = Envelope<ChannelView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS: another company's, or the caller has no company", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn create_channel(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<ChannelRequest>,
) -> Result<Response, ApiError> {
    let c = checked(&principal, req, state.config.notify.private_targets)?;
    let created = state.store.create_channel(c).await?;
    tracing::info!(channel = %created.id, kind = %created.kind, user_id = %principal.user_id, "notification channel created");
    Ok((StatusCode::CREATED, ok(channel_view(created))).into_response())
}

/// One notification channel.
#[utoipa::path(get, path = "/api/v1/notification-channels/{id}", operation_id = "getNotificationChannel", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The channel", body = Envelope<ChannelView>),
        (status = 404, description = "CHANNEL_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn get_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = reachable(&state, &principal, &id).await?;
    Ok(ok(channel_view(c)).into_response())
}

/// Replace a notification channel.
#[utoipa::path(put, path = "/api/v1/notification-channels/{id}", operation_id = "updateNotificationChannel", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    request_body = ChannelRequest,
    responses(
        (status = 200, description = "The channel", body = Envelope<ChannelView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS: moving it to another company", body = crate::error::ErrorEnvelope),
        (status = 404, description = "CHANNEL_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn update_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<ChannelRequest>,
) -> Result<Response, ApiError> {
    let old = reachable(&state, &principal, &id).await?;
    let keep_secret = req.secret.is_none() && req.kind == ChannelKind::Webhook;
    let mut c = checked(&principal, req, state.config.notify.private_targets)?;
    if keep_secret && old.kind == "webhook" && old.secret.is_some() {
        c.secret = old.secret;
    }
    let c = state
        .store
        .update_channel(&id, c)
        .await?
        .ok_or_else(channel_not_found)?;
    Ok(ok(channel_view(c)).into_response())
}

/// Delete a notification channel (its queued deliveries fail and end as dead letters).
#[utoipa::path(delete, path = "/api/v1/notification-channels/{id}", operation_id = "deleteNotificationChannel", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "Deleted", body = Envelope<serde_json::Value>),
        (status = 404, description = "CHANNEL_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn delete_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    reachable(&state, &principal, &id).await?;
    if !state.store.delete_channel(&id).await? {
        return Err(channel_not_found());
    }
    Ok(ok(serde_json::json!({ "deleted": true })).into_response())
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DeliveryState {
    Pending,
    Sending,
    Sent,
    Dead,
}

impl DeliveryState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Dead => "dead",
        }
    }
    fn of(s: &str) -> Self {
        match s {
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "dead" => Self::Dead,
            _ => Self::Pending,
        }
    }
}

/// A queued, sent or dead notification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryView {
    id: String,
    state: DeliveryState,
    channel_kind: ChannelKind,
    channel_id: Option<String>,
    user_id: Option<String>,
    company: Option<String>,
    /// Address, phone or URL.
    target: String,
    /// `opened`, `resolved`, `acknowledged`, `escalated` or `digest`.
    event: String,
    alert_id: Option<String>,
    /// The alert event (outbox sequence number).
    event_seq: i64,
    /// Failed attempts.
    attempts: i64,
    #[schema(format = DateTime)]
    next_attempt_at: String,
    last_error: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
}

fn delivery_view(d: Delivery) -> DeliveryView {
    DeliveryView {
        state: DeliveryState::of(&d.state),
        channel_kind: ChannelKind::of(&d.channel_kind),
        next_attempt_at: rfc3339(d.next_attempt_at),
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
        sent_at: d.sent_at.map(rfc3339),
        id: d.id,
        channel_id: d.channel_id,
        user_id: d.user_id,
        company: d.company,
        target: d.target,
        event: d.event,
        alert_id: d.alert_id,
        event_seq: d.event_seq,
        attempts: d.attempts,
        last_error: d.last_error,
    }
}

/// Delivery list filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListDeliveries {
    /// Only deliveries in this state.
    state: Option<DeliveryState>,
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// Page only.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// 1-based page (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

async fn deliveries_page(
    state: &AppState,
    filter: Option<DeliveryState>,
    page: PageParams,
) -> Result<Response, ApiError> {
    let (rows, total) = state
        .store
        .list_deliveries(filter.map(DeliveryState::as_str), page.offset(), page.limit)
        .await?;
    Ok(paged(
        rows.into_iter().map(delivery_view).collect(),
        page.page,
        page.limit,
        total,
    ))
}

/// List notification deliveries, newest first (admins).
#[utoipa::path(get, path = "/api/v1/notifications/deliveries", operation_id = "listNotificationDeliveries", tag = "notifications", security(("bearer" = [])),
    params(ListDeliveries),
    responses(
        (status = 200, description = "A page of deliveries", body = super::extract::Paged<DeliveryView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    Query(q): Query<ListDeliveries>,
) -> Result<Response, ApiError> {
    let page = PageParams::new(q.page, q.limit)?;
    deliveries_page(&state, q.state, page).await
}

/// List dead letters: deliveries given up after the last attempt, newest first (admins).
#[utoipa::path(get, path = "/api/v1/notifications/dead-letters", operation_id = "listNotificationDeadLetters", tag = "notifications", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of dead deliveries", body = super::extract::Paged<DeliveryView>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn list_dead_letters(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = PageParams::new(q.page, q.limit)?;
    deliveries_page(&state, Some(DeliveryState::Dead), page).await
}

/// Queue a dead letter again (attempts start over, due now).
#[utoipa::path(post, path = "/api/v1/notifications/dead-letters/{id}/retry", operation_id = "retryNotificationDeadLetter", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery, pending again", body = Envelope<DeliveryView>),
        (status = 404, description = "DELIVERY_NOT_FOUND: no dead delivery with this id", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn retry_dead_letter(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let nf = || ApiError::new(ErrorCode::DeliveryNotFound, "no dead delivery with this id");
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(nf());
    }
    let now = state.config.notify.clock.now_ms();
    let d = state
        .store
        .retry_dead_delivery(&id, now)
        .await?
        .ok_or_else(nf)?;
    tracing::info!(delivery = %id, user_id = %principal.user_id, "dead letter queued again");
    Ok(ok(delivery_view(d)).into_response())
}

/// Channels per severity.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SeverityChannels {
    #[serde(default)]
    #[schema(max_items = 2)]
    info: Vec<UserChannel>,
    #[serde(default)]
    #[schema(max_items = 2)]
    warning: Vec<UserChannel>,
    #[serde(default)]
    #[schema(max_items = 2)]
    critical: Vec<UserChannel>,
}

/// The caller's notification preferences.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PreferencesBody {
    /// Email address for notifications (default: the account's).
    #[schema(min_length = 3, max_length = 254)]
    email: Option<String>,
    /// Phone for SMS (`+` and 3–20 digits).
    #[schema(pattern = r"^\+?[0-9]{3,20}$")]
    phone: Option<String>,
    /// Channels per alert severity (none by default: opt in).
    #[serde(default)]
    channels: SeverityChannels,
    /// Channels per alert type, overriding the severity's list for that type.
    #[serde(default)]
    kinds: BTreeMap<String, Vec<UserChannel>>,
    /// Quiet hours start, `HH:MM` local time (with `quietEnd` and `timeZone`).
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    quiet_start: Option<String>,
    /// Quiet hours end, `HH:MM` local time; before the start: overnight.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    quiet_end: Option<String>,
    /// IANA time zone of the quiet hours (default UTC).
    #[schema(min_length = 1, max_length = 64)]
    time_zone: Option<String>,
    /// One digest email per interval instead of one per non-critical event.
    #[serde(default)]
    digest: bool,
    /// Digest interval in minutes, 1–1440 (default 60).
    #[schema(minimum = 1, maximum = 1440)]
    digest_interval_minutes: Option<i64>,
}

fn prefs_body(p: Option<Preferences>) -> PreferencesBody {
    let Some(p) = p else {
        return PreferencesBody {
            email: None,
            phone: None,
            channels: SeverityChannels::default(),
            kinds: BTreeMap::new(),
            quiet_start: None,
            quiet_end: None,
            time_zone: None,
            digest: false,
            digest_interval_minutes: Some(60),
        };
    };
    PreferencesBody {
        email: p.email,
        phone: p.phone,
        channels: serde_json::from_str(&p.channels).unwrap_or_default(),
        kinds: p
            .kinds
            .as_deref()
            .and_then(|k| serde_json::from_str(k).ok())
            .unwrap_or_default(),
        quiet_start: p.quiet_start,
        quiet_end: p.quiet_end,
        time_zone: p.time_zone,
        digest: p.digest,
        digest_interval_minutes: Some(p.digest_minutes),
    }
}

/// The caller's notification preferences (defaults when never set: nothing is sent).
#[utoipa::path(get, path = "/api/v1/users/me/notification-preferences", operation_id = "getNotificationPreferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "The preferences", body = Envelope<PreferencesBody>)))]
pub(crate) async fn get_preferences(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let p = state.store.get_preferences(&principal.user_id).await?;
    Ok(ok(prefs_body(p)).into_response())
}

/// Replace the caller's notification preferences.
#[utoipa::path(put, path = "/api/v1/users/me/notification-preferences", operation_id = "putNotificationPreferences", tag = "notifications", security(("bearer" = [])),
    request_body = PreferencesBody,
    responses(
        (status = 200, description = "The preferences", body = Envelope<PreferencesBody>),
        (status = 400, description = "VALIDATION_FAILED", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn put_preferences(
    State(state): State<AppState>,
    principal: Principal,
    Json(b): Json<PreferencesBody>,
) -> Result<Response, ApiError> {
    if let Some(e) = &b.email
        && !email_ok(e)
    {
        return Err(ApiError::validation("email", "an email address"));
    }
    if let Some(ph) = &b.phone
        && !phone_ok(ph)
    {
        return Err(ApiError::validation("phone", "+ and 3-20 digits"));
    }
    if b.kinds.len() > 32 {
        return Err(ApiError::validation("kinds", "at most 32 types"));
    }
    for k in b.kinds.keys() {
        alert_type("kinds", k)?;
    }
    for (field, v) in [("quietStart", &b.quiet_start), ("quietEnd", &b.quiet_end)] {
        if let Some(v) = v
            && crate::notify::parse_hhmm(v).is_none()
        {
            return Err(ApiError::validation(field, "HH:MM, 00:00 to 23:59"));
        }
    }
    if b.quiet_start.is_some() != b.quiet_end.is_some() {
        return Err(ApiError::validation(
            "quietEnd",
            "quietStart and quietEnd go together",
        ));
    }
    if let Some(z) = &b.time_zone
        && (z.len() > 64 || crate::notify::parse_zone(z).is_none())
    {
        return Err(ApiError::validation(
            "timeZone",
            "an IANA time zone such as Europe/Berlin",
        ));
    }
    let minutes = b.digest_interval_minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(ApiError::validation(
            "digestIntervalMinutes",
            "between 1 and 1440",
        ));
    }
    let dedup = |v: &[UserChannel]| {
        let mut out: Vec<UserChannel> = Vec::new();
        for c in v {
            if !out.contains(c) {
                out.push(*c);
            }
        }
        out
    };
    let channels = SeverityChannels {
        info: dedup(&b.channels.info),
        warning: dedup(&b.channels.warning),
        critical: dedup(&b.channels.critical),
    };
    let kinds: BTreeMap<String, Vec<UserChannel>> =
        b.kinds.iter().map(|(k, v)| (k.clone(), dedup(v))).collect();
    let p = Preferences {
        user_id: principal.user_id.clone(),
        email: b.email,
        phone: b.phone,
        channels: serde_json::to_string(&channels).unwrap_or_default(),
        kinds: (!kinds.is_empty()).then(|| serde_json::to_string(&kinds).unwrap_or_default()),
        quiet_start: b.quiet_start,
        quiet_end: b.quiet_end,
        time_zone: b.time_zone,
        digest: b.digest,
        digest_minutes: minutes,
        updated_at: now_ms(),
    };
    let p = state.store.put_preferences(p).await?;
    Ok(ok(prefs_body(Some(p))).into_response())
}
