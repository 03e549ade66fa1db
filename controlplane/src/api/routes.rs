//! The route table: every route the control plane serves, with the access rule it needs.
//! The auth middleware (`guard`) looks each request up here, so access is decided in one
//! place; a route missing from the table is refused (fail closed), and the test
//! `route_table_matches_router` fails when the router and this table disagree. The
//! auth-matrix test is generated from this table.

use crate::rbac::Permission;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing (login, docs, metrics).
    Public,
    /// Any valid credential of any role.
    Authenticated,
    /// A login session of any role (not an API token).
    Session,
    /// A credential holding this permission; `api_only` sessions are restricted (their
    /// tokens do the work).
    Perm(Permission),
    /// A login session (not an API token) holding this permission.
    SessionPerm(Permission),
    /// No bearer credential: the URL carries a signature (`token=`) that the handler checks
    /// (recording downloads, VOD playlists and their media). Missing, tampered or expired
    /// signatures are refused with 403.
    Signed,
    /// No bearer credential: another cluster node signs the request with the cluster secret
    /// (`cluster::auth`), which the handler checks; unsigned or wrongly signed requests get
    /// 401 CLUSTER_AUTH_INVALID, and a single node answers 409 CLUSTER_NOT_ENABLED.
    Node,
}

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path as axum matches it (`/api/v1/cameras/{id}`).
    pub path: &'static str,
    /// Access rule.
    pub access: Access,
    /// Whether the route is in the OpenAPI document (docs and metrics are not).
    pub documented: bool,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        documented: true,
    }
}

/// A node-to-node route: not for clients, so not in the OpenAPI document.
const fn node_only(method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access: Access::Node,
        documented: false,
    }
}

const fn undocumented(method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access: Access::Public,
        documented: false,
    }
}

use Access::{Authenticated, Perm, Public, Session, SessionPerm, Signed};
use Permission::{
    AnalyticsRead, AuditRead, CamerasRead, CamerasWrite, ClusterManage, RecordingsDelete,
    RecordingsRead, RetentionManage, StreamsPlay, TokensManage, UsersManage,
};

/// Every route.
pub const ROUTES: &[RouteSpec] = &[
    r("POST", "/api/v1/auth/login", Public),
    r("POST", "/api/v1/auth/refresh", Public),
    r("POST", "/api/v1/auth/logout", Session),
    r("GET", "/api/v1/auth/me", Authenticated),
    r("GET", "/api/v1/users", Perm(UsersManage)),
    r("POST", "/api/v1/users", Perm(UsersManage)),
    r("GET", "/api/v1/users/{id}", Perm(UsersManage)),
    r("PUT", "/api/v1/users/{id}", Perm(UsersManage)),
    r("DELETE", "/api/v1/users/{id}", Perm(UsersManage)),
    r("GET", "/api/v1/tokens", SessionPerm(TokensManage)),
    r("POST", "/api/v1/tokens", SessionPerm(TokensManage)),
    r("DELETE", "/api/v1/tokens/{id}", SessionPerm(TokensManage)),
    r(
        "PUT",
        "/api/v1/tokens/{id}/permissions",
        SessionPerm(TokensManage),
    ),
    r("GET", "/api/v1/cameras", Perm(CamerasRead)),
    r("POST", "/api/v1/cameras", Perm(CamerasWrite)),
    r("GET", "/api/v1/cameras/{id}", Perm(CamerasRead)),
    r("PUT", "/api/v1/cameras/{id}", Perm(CamerasWrite)),
    r("DELETE", "/api/v1/cameras/{id}", Perm(CamerasWrite)),
    r(
        "POST",
        "/api/v1/cameras/{id}/rotate-key",
        Perm(CamerasWrite),
    ),
    r("GET", "/api/v1/cameras/{id}/stream/hls", Perm(StreamsPlay)),
    r(
        "GET",
        "/api/v1/cameras/{id}/stream/webrtc",
        Perm(StreamsPlay),
    ),
    r("GET", "/api/v1/cameras/{id}/status", Perm(CamerasRead)),
    r("GET", "/api/v1/cameras/{id}/health", Perm(CamerasRead)),
    r("GET", "/api/v1/cameras/{id}/analytics", Perm(AnalyticsRead)),
    r(
        "POST",
        "/api/v1/cameras/{id}/recording/start",
        Perm(CamerasWrite),
    ),
    r(
        "POST",
        "/api/v1/cameras/{id}/recording/stop",
        Perm(CamerasWrite),
    ),
    r("GET", "/api/v1/recordings", Perm(RecordingsRead)),
    r("GET", "/api/v1/recordings/{id}", Perm(RecordingsRead)),
    r("DELETE", "/api/v1/recordings/{id}", Perm(RecordingsDelete)),
    r(
        "GET",
        "/api/v1/recordings/{id}/signed-url",
        Perm(RecordingsRead),
    ),
    r("GET", "/api/v1/recordings/{id}/download", Signed),
    r(
        "GET",
        "/api/v1/recordings/timeline/{id}",
        Perm(RecordingsRead),
    ),
    r(
        "GET",
        "/api/v1/recordings/playback/{id}",
        Perm(RecordingsRead),
    ),
    r(
        "GET",
        "/api/v1/recordings/export/{id}",
        Perm(RecordingsRead),
    ),
    r("POST", "/api/v1/recordings/bookmarks", Perm(RecordingsRead)),
    r("GET", "/api/v1/retention", Perm(RecordingsRead)),
    r("PUT", "/api/v1/retention", Perm(RetentionManage)),
    r(
        "PUT",
        "/api/v1/retention/cameras/{id}",
        Perm(RecordingsDelete),
    ),
    r(
        "DELETE",
        "/api/v1/retention/cameras/{id}",
        Perm(RecordingsDelete),
    ),
    r(
        "PUT",
        "/api/v1/retention/companies/{company}",
        Perm(RecordingsDelete),
    ),
    r(
        "DELETE",
        "/api/v1/retention/companies/{company}",
        Perm(RecordingsDelete),
    ),
    r("POST", "/api/v1/retention/run", Perm(RetentionManage)),
    r("GET", "/api/v1/audit", Perm(AuditRead)),
    r("GET", "/vod/{id}/playlist.m3u8", Signed),
    r("GET", "/vod/{id}/export.mp4", Signed),
    r("GET", "/vod/{id}/{file}", Signed),
    r("GET", "/api/v1/analytics/dashboard", Perm(AnalyticsRead)),
    r(
        "GET",
        "/api/v1/analytics/cameras/{id}/metrics",
        Perm(AnalyticsRead),
    ),
    r(
        "GET",
        "/api/v1/analytics/storage/usage",
        Perm(AnalyticsRead),
    ),
    r("GET", "/api/v1/cluster", Perm(ClusterManage)),
    r("GET", "/api/v1/cluster/state", Perm(ClusterManage)),
    r(
        "POST",
        "/api/v1/cluster/nodes/{node}/drain",
        Perm(ClusterManage),
    ),
    r(
        "DELETE",
        "/api/v1/cluster/nodes/{node}",
        Perm(ClusterManage),
    ),
    r("GET", "/api/v1/alerts", Perm(CamerasRead)),
    r("POST", "/api/v1/alerts/{id}/ack", Perm(CamerasWrite)),
    // The handler authenticates (a header, or the first message once upgraded) and needs
    // cameras:read, as the alerts and cameras it reports on.
    r("GET", "/api/v1/ws", Public),
    r("GET", "/api/v1/alert-rules", Perm(CamerasRead)),
    r("POST", "/api/v1/alert-rules", Perm(CamerasWrite)),
    r("GET", "/api/v1/alert-rules/defaults", Perm(CamerasRead)),
    r("GET", "/api/v1/alert-rules/{id}", Perm(CamerasRead)),
    r("PUT", "/api/v1/alert-rules/{id}", Perm(CamerasWrite)),
    r("DELETE", "/api/v1/alert-rules/{id}", Perm(CamerasWrite)),
    r("GET", "/api/v1/layouts", Authenticated),
    r("POST", "/api/v1/layouts", Authenticated),
    r("GET", "/api/v1/layouts/{id}", Authenticated),
    r("PUT", "/api/v1/layouts/{id}", Authenticated),
    r("DELETE", "/api/v1/layouts/{id}", Authenticated),
    r("GET", "/api/v1/notification-channels", Perm(CamerasWrite)),
    r("POST", "/api/v1/notification-channels", Perm(CamerasWrite)),
    r(
        "GET",
        "/api/v1/notification-channels/{id}",
        Perm(CamerasWrite),
    ),
    r(
        "PUT",
        "/api/v1/notification-channels/{id}",
        Perm(CamerasWrite),
    ),
    r(
        "DELETE",
        "/api/v1/notification-channels/{id}",
        Perm(CamerasWrite),
    ),
    r("GET", "/api/v1/notifications/deliveries", Perm(UsersManage)),
    r(
        "GET",
        "/api/v1/notifications/dead-letters",
        Perm(UsersManage),
    ),
    r(
        "POST",
        "/api/v1/notifications/dead-letters/{id}/retry",
        Perm(UsersManage),
    ),
    r(
        "GET",
        "/api/v1/users/me/notification-preferences",
        Authenticated,
    ),
    r(
        "PUT",
        "/api/v1/users/me/notification-preferences",
        Authenticated,
    ),
    node_only("POST", "/api/v1/cluster/join"),
    undocumented("GET", "/api/v1/openapi.json"),
    undocumented("GET", "/api/docs"),
    undocumented("GET", "/api/docs/{file}"),
    undocumented("GET", "/metrics"),
];

/// The rule for a matched route.
pub fn lookup(method: &str, path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}
