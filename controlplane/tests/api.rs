//! Handler tests in process (`Router::oneshot`): the auth matrix generated from the route
//! table, sessions, tenancy, validation, limits, cameras, playback and health.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use camstream_controlplane::api::routes::{Access, ROUTES};
use camstream_controlplane::auth::keys::AccessClaims;
use camstream_controlplane::rbac::{Permission, Role};
use camstream_protocol::auth::{Denied, PlaybackDenied, PublishRequest};
use camstream_protocol::{StreamHealth, StreamState};
use serde_json::{Value, json};
use support::{ADMIN_PASSWORD, Resp, TestApp};

fn publish<'a>(key: &'a str, token: Option<&'a str>) -> PublishRequest<'a> {
    PublishRequest {
        app: "live",
        stream_key: key,
        token,
        peer: "127.0.0.1:40000".parse().unwrap(),
        tls: false,
    }
}

fn assert_error(r: &Resp, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.json);
    assert_eq!(r.code(), code, "{what}: {}", r.json);
    assert_eq!(r.json["success"], json!(false), "{what}");
    let rid = r.json["error"]["requestId"].as_str().unwrap_or("");
    assert!(!rid.is_empty(), "{what}: request id in body");
    assert_eq!(
        r.header("x-request-id"),
        Some(rid),
        "{what}: same id in header"
    );
    assert!(
        r.json["error"]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

/// Creates an API token as `owner` with `perms` and returns (secret, id).
async fn api_token(
    app: &TestApp,
    owner: &str,
    perms: &[&str],
    rate_limit: Option<i64>,
) -> (String, String) {
    let mut body = json!({ "name": "t", "permissions": perms });
    if let Some(l) = rate_limit {
        body["rateLimit"] = json!(l);
    }
    let r = app
        .call("POST", "/api/v1/tokens", Some(owner), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    (
        r.json["data"]["tokenSecret"].as_str().unwrap().to_owned(),
        r.json["data"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn route_table_matches_router() {
    let app = TestApp::start(|_| {}).await;
    let r = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.json["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in r.json["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| r.documented)
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, table, "router and route table disagree");
    // Undocumented routes are served too.
    for (path, ctype) in [
        ("/api/docs", "text/html"),
        ("/api/docs/swagger-ui-bundle.js", "application/javascript"),
        ("/api/docs/swagger-ui.css", "text/css"),
        ("/metrics", "text/plain"),
    ] {
        let r = app.call("GET", path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(ctype),
            "{path}"
        );
    }
    let ui = app.call("GET", "/api/docs", None, None).await;
    let html = String::from_utf8(ui.bytes).unwrap();
    assert!(
        html.contains("/api/docs/swagger-ui-bundle.js") && html.contains("/api/v1/openapi.json")
    );
    let js = app
        .call("GET", "/api/docs/swagger-ui-bundle.js", None, None)
        .await;
    assert!(js.bytes.len() > 1_000_000, "the whole bundle is embedded");
    let missing = app
        .call("GET", "/api/docs/../../etc/passwd", None, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// What the route table promises for a credential: `None` = let through.
fn expected(cred: &str, access: Access) -> Option<(StatusCode, &'static str)> {
    let forbidden = StatusCode::FORBIDDEN;
    let role_perms = |role: Role, p: Permission| role.permissions().contains(&p);
    match (cred, access) {
        (_, Access::Public | Access::Authenticated) => None,
        // Checked on their own in the matrix: no bearer credential is asked for.
        (_, Access::Node) => None,
        // A bearer credential is no URL signature.
        (_, Access::Signed) => Some((forbidden, "URL_SIGNATURE_INVALID")),
        ("token_read", Access::Session) => Some((forbidden, "AUTH_ROLE_RESTRICTED")),
        (_, Access::Session) => None,
        ("token_read", Access::SessionPerm(_)) => Some((forbidden, "AUTH_ROLE_RESTRICTED")),
        ("token_read", Access::Perm(p)) => {
            (p != Permission::CamerasRead).then_some((forbidden, "AUTH_INSUFFICIENT_PERMISSIONS"))
        }
        ("api_only", Access::Perm(_)) => Some((forbidden, "AUTH_ROLE_RESTRICTED")),
        (role, Access::Perm(p) | Access::SessionPerm(p)) => {
            let role: Role = role.parse().unwrap();
            (!role_perms(role, p)).then_some((forbidden, "AUTH_INSUFFICIENT_PERMISSIONS"))
        }
    }
}

#[tokio::test]
async fn auth_matrix_covers_every_route() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (operator, _) = app.user(&admin, "oscar", "operator", None).await;
    let (viewer, _) = app.user(&admin, "vera", "viewer", None).await;
    let (api_only, _) = app.user(&admin, "integration", "api_only", None).await;
    let (_, victim_user) = app.user(&admin, "victim", "viewer", None).await;
    let camera = app.camera(&admin, "Matrix", "SN-MATRIX", None).await;
    let camera_id = camera["id"].as_str().unwrap().to_owned();
    let (token_read, _) = api_token(&app, &api_only, &["cameras:read"], None).await;
    let (revoked, revoked_id) = api_token(
        &app,
        &admin,
        &[
            "cameras:read",
            "cameras:write",
            "streams:play",
            "analytics:read",
            "users:manage",
        ],
        None,
    )
    .await;
    let (_, token_id) = api_token(&app, &operator, &["cameras:read"], None).await;
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{revoked_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = app
        .cp
        .keys()
        .issue_access(&AccessClaims {
            sub: "someone".into(),
            sid: "s".into(),
            role: Role::Admin,
            tenant: None,
            iat: now - 3600,
            exp: now - 60,
            typ: "access".into(),
        })
        .unwrap();
    type Cred<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>);
    let creds: [Cred<'_>; 5] = [
        ("operator", &operator, Some(("oscar", "User-Password-42"))),
        ("viewer", &viewer, Some(("vera", "User-Password-42"))),
        (
            "api_only",
            &api_only,
            Some(("integration", "User-Password-42")),
        ),
        ("token_read", &token_read, None),
        ("admin", &admin, Some(("admin", ADMIN_PASSWORD))),
    ];

    let mut checked = 0;
    let mut signed = 0;
    let mut node_routes = 0;
    for spec in ROUTES {
        let path = spec
            .path
            .replace("/users/{id}", &format!("/users/{victim_user}"))
            .replace("/tokens/{id}", &format!("/tokens/{token_id}"))
            .replace("{id}", &camera_id)
            .replace("{file}", "swagger-ui.css");
        let body = matches!(spec.method, "POST" | "PUT").then(|| json!({}));
        let what = |c: &str| format!("{} {} [{c}]", spec.method, spec.path);
        if spec.access == Access::Public {
            let r = app.call(spec.method, &path, None, body.clone()).await;
            assert!(
                r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                "{}",
                what("public")
            );
            continue;
        }
        if spec.access == Access::Node {
            // Node-to-node: a single node has no cluster to join, whoever asks (a bearer
            // credential is no cluster signature either).
            for token in [None, Some(admin.as_str())] {
                let r = app.call(spec.method, &path, token, body.clone()).await;
                assert_error(
                    &r,
                    StatusCode::CONFLICT,
                    "CLUSTER_NOT_ENABLED",
                    &what("node"),
                );
            }
            node_routes += 1;
            continue;
        }
        if spec.access == Access::Signed {
            // No signature, a forged one, or a bearer credential instead: all refused.
            for (q, token) in [
                ("", None),
                ("?token=9999999999.AAAAAAAAAAAAAAAAAAAAAA", None),
                ("", Some(admin.as_str())),
            ] {
                let r = app
                    .call(spec.method, &format!("{path}{q}"), token, None)
                    .await;
                assert_error(
                    &r,
                    StatusCode::FORBIDDEN,
                    "URL_SIGNATURE_INVALID",
                    &what("signed"),
                );
            }
            signed += 1;
            continue;
        }
        let r = app.call(spec.method, &path, None, body.clone()).await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "AUTH_TOKEN_MISSING",
            &what("none"),
        );
        let r = app
            .call(spec.method, &path, Some("abc.def.ghi"), body.clone())
            .await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "AUTH_TOKEN_INVALID",
            &what("malformed"),
        );
        let r = app
            .call(spec.method, &path, Some("cst_nonsense"), body.clone())
            .await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "AUTH_TOKEN_INVALID",
            &what("malformed api token"),
        );
        let r = app
            .call(spec.method, &path, Some(&expired), body.clone())
            .await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "AUTH_TOKEN_EXPIRED",
            &what("expired"),
        );
        let r = app
            .call(spec.method, &path, Some(&revoked), body.clone())
            .await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "AUTH_TOKEN_REVOKED",
            &what("revoked"),
        );
        let mut wrong_roles = 0;
        for (name, token, login) in creds {
            // Logging out ends the session: use a fresh one so later routes keep theirs.
            let fresh = match login {
                Some((user, pw)) if spec.access == Access::Session => {
                    Some(app.login(user, pw).await.0)
                }
                _ => None,
            };
            let token = fresh.as_deref().unwrap_or(token);
            let r = app
                .call(spec.method, &path, Some(token), body.clone())
                .await;
            match expected(name, spec.access) {
                Some((status, code)) => {
                    assert_error(&r, status, code, &what(name));
                    wrong_roles += 1;
                }
                None => assert!(
                    r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                    "{}: {} {}",
                    what(name),
                    r.status,
                    r.json
                ),
            }
        }
        if spec.access != Access::Authenticated && spec.access != Access::Session {
            assert!(
                wrong_roles > 0,
                "{}: some credential must be refused",
                what("-")
            );
        }
        checked += 1;
    }
    let protected = ROUTES
        .iter()
        .filter(|r| !matches!(r.access, Access::Public | Access::Signed | Access::Node))
        .count();
    assert_eq!(checked, protected);
    assert_eq!(node_routes, 1, "node-to-node routes");
    assert!(checked >= 63, "checked {checked} protected routes");
    assert_eq!(signed, 4, "signed routes");
}

#[tokio::test]
async fn sessions_refresh_rotation_and_logout() {
    let app = TestApp::start(|_| {}).await;
    let (access, refresh) = app.login("admin", ADMIN_PASSWORD).await;
    let me = app
        .call("GET", "/api/v1/auth/me", Some(&access), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["data"]["user"]["username"], "admin");
    assert_eq!(me.json["data"]["credential"], "session");
    assert!(me.json["data"]["user"].get("passwordHash").is_none());
    assert_eq!(me.json["data"]["permissions"].as_array().unwrap().len(), 11);

    let r = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refreshToken": refresh })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let access2 = r.json["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh2 = r.json["data"]["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(
        app.call("GET", "/api/v1/auth/me", Some(&access2), None)
            .await
            .status,
        StatusCode::OK
    );

    // Replaying the old refresh token ends the whole session.
    let r = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refreshToken": refresh })),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "AUTH_TOKEN_REVOKED", "reuse");
    let r = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refreshToken": refresh2 })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "AUTH_TOKEN_REVOKED",
        "after reuse",
    );
    let r = app
        .call("GET", "/api/v1/auth/me", Some(&access2), None)
        .await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "AUTH_TOKEN_REVOKED",
        "access after reuse",
    );

    // Logout kills the access token at once.
    let (access3, refresh3) = app.login("admin", ADMIN_PASSWORD).await;
    let r = app
        .call("POST", "/api/v1/auth/logout", Some(&access3), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call("GET", "/api/v1/cameras", Some(&access3), None)
        .await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "AUTH_TOKEN_REVOKED",
        "after logout",
    );
    let r = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refreshToken": refresh3 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refreshToken": "csr_garbage" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "AUTH_TOKEN_INVALID",
        "garbage refresh",
    );

    // Disabling a user ends their sessions.
    let admin = app.admin().await;
    let (op, op_id) = app.user(&admin, "olga", "operator", None).await;
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/users/{op_id}"),
            Some(&admin),
            Some(json!({ "isActive": false })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = app.call("GET", "/api/v1/cameras", Some(&op), None).await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "AUTH_TOKEN_REVOKED",
        "disabled user",
    );
    let r = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "olga", "password": "User-Password-42" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNAUTHORIZED,
        "AUTH_CREDENTIALS_INVALID",
        "disabled login",
    );
}

fn login_req(user: &str, password: &str, ip: [u8; 4]) -> Request<Body> {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "username": user, "password": password }).to_string(),
        ))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 5555))));
    req
}

#[tokio::test]
async fn login_is_throttled_per_user_and_per_address() {
    let app = TestApp::start(|c| {
        c.login_max_failures_per_user = 3;
        c.login_max_failures_per_ip = 5;
    })
    .await;
    for _ in 0..3 {
        let r = app
            .send(login_req("admin", "wrong-password", [10, 0, 0, 1]))
            .await;
        assert_error(
            &r,
            StatusCode::UNAUTHORIZED,
            "AUTH_CREDENTIALS_INVALID",
            "wrong password",
        );
    }
    // Even the right password is refused now, from any address.
    let r = app
        .send(login_req("admin", ADMIN_PASSWORD, [10, 0, 0, 2]))
        .await;
    assert_error(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMIT_EXCEEDED",
        "user throttle",
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");

    // One address guessing many usernames.
    for i in 0..5 {
        let r = app
            .send(login_req(&format!("ghost{i}"), "x", [10, 9, 9, 9]))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app.send(login_req("ghost99", "x", [10, 9, 9, 9])).await;
    assert_error(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMIT_EXCEEDED",
        "ip throttle",
    );
    let r = app.send(login_req("ghost99", "x", [10, 9, 9, 8])).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "another address is not throttled"
    );
}

#[tokio::test]
async fn tenants_and_owners_are_isolated() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme_op, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (acme_viewer, _) = app
        .user(&admin, "acme-viewer", "viewer", Some("acme"))
        .await;
    let (globex_op, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;

    // The tenant is forced on create.
    let cam = app.camera(&acme_op, "Acme gate", "ACME-1", None).await;
    assert_eq!(cam["company"], "acme");
    let id = cam["id"].as_str().unwrap();
    let r = app
        .call(
            "POST",
            "/api/v1/cameras",
            Some(&acme_op),
            Some(json!({ "name": "x", "serialNumber": "ACME-2", "company": "globex" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "create in other tenant",
    );
    app.camera(&globex_op, "Globex door", "GLOBEX-1", None)
        .await;
    app.camera(&admin, "Unowned", "FREE-1", None).await;

    // Another tenant cannot see, change, delete or play it.
    for (method, path) in [
        ("GET", format!("/api/v1/cameras/{id}")),
        ("PUT", format!("/api/v1/cameras/{id}")),
        ("DELETE", format!("/api/v1/cameras/{id}")),
        ("POST", format!("/api/v1/cameras/{id}/rotate-key")),
        ("GET", format!("/api/v1/cameras/{id}/stream/hls")),
        ("GET", format!("/api/v1/cameras/{id}/status")),
        ("GET", format!("/api/v1/cameras/{id}/analytics")),
        ("GET", format!("/api/v1/analytics/cameras/{id}/metrics")),
    ] {
        let body = (method == "PUT").then(|| json!({ "name": "stolen" }));
        let r = app.call(method, &path, Some(&globex_op), body).await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "CAMERA_NOT_FOUND",
            &format!("{method} {path}"),
        );
    }
    let list = |t: &str| {
        let t = t.to_owned();
        let app = &app;
        async move {
            let r = app.call("GET", "/api/v1/cameras", Some(&t), None).await;
            assert_eq!(r.status, StatusCode::OK);
            r.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["serialNumber"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(&acme_viewer).await, vec!["ACME-1"]);
    assert_eq!(list(&globex_op).await, vec!["GLOBEX-1"]);
    assert_eq!(list(&admin).await.len(), 3);
    // Filtering by another company does not escape the tenant.
    let r = app
        .call(
            "GET",
            "/api/v1/cameras?company=globex",
            Some(&acme_viewer),
            None,
        )
        .await;
    assert_eq!(r.json["pagination"]["total"], 0);
    // Moving a camera to another tenant is refused.
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/cameras/{id}"),
            Some(&acme_op),
            Some(json!({ "company": "globex" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "move tenant",
    );
    // The viewer of the right tenant can read and play but not change.
    assert_eq!(
        app.call(
            "GET",
            &format!("/api/v1/cameras/{id}/stream/hls"),
            Some(&acme_viewer),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/cameras/{id}"),
            Some(&acme_viewer),
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "viewer delete",
    );
    let dash = app
        .call("GET", "/api/v1/analytics/dashboard", Some(&acme_op), None)
        .await;
    assert_eq!(dash.json["data"]["totalCameras"], 1);

    // API tokens belong to their owner; their tenant is the owner's.
    let (_, acme_token_id) = api_token(&app, &acme_op, &["cameras:read"], None).await;
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{acme_token_id}"),
            Some(&globex_op),
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "TOKEN_NOT_FOUND",
        "other's token",
    );
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/tokens/{acme_token_id}/permissions"),
            Some(&globex_op),
            Some(json!({ "permissions": ["cameras:read"] })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "TOKEN_NOT_FOUND",
        "other's token perms",
    );
    let r = app
        .call("GET", "/api/v1/tokens", Some(&globex_op), None)
        .await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 0);
    let (acme_secret, _) = api_token(&app, &acme_op, &["cameras:read"], None).await;
    assert_eq!(list(&acme_secret).await, vec!["ACME-1"]);
    // A token cannot carry more than its owner's role grants.
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&acme_viewer),
            Some(json!({ "name": "x", "permissions": ["cameras:write"] })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "escalation",
    );
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&acme_op),
            Some(json!({ "name": "x", "permissions": ["users:manage"] })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "escalation",
    );
}

#[tokio::test]
async fn bad_input_is_rejected_cleanly() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    app.camera(&admin, "Robert'); DROP TABLE cameras;--", "SQL-1", None)
        .await;

    // Issue 9: a control character in a path parameter is refused before any lookup
    // (PostgreSQL cannot compare a NUL: it answered 500), and a body must be a JSON object
    // (serde filled a struct from `[null, null]`).
    let r = app
        .call("GET", "/api/v1/users/a%00b", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.json["error"]["details"]["fields"][0]["field"], "id");
    let r = app
        .call(
            "PUT",
            "/api/v1/retention",
            Some(&admin),
            Some(json!([null, null])),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.json["error"]["details"]["fields"][0]["field"], "body");

    // Injection in query and path stays text.
    let r = app
        .call(
            "GET",
            "/api/v1/cameras?search=%27%20OR%201%3D1%20--",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["pagination"]["total"], 0);
    let r = app
        .call(
            "GET",
            "/api/v1/cameras?search=DROP%20TABLE",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        r.json["pagination"]["total"], 1,
        "stored literally and findable"
    );
    let r = app
        .call(
            "GET",
            "/api/v1/cameras/1'%20OR%20'1'='1",
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "CAMERA_NOT_FOUND",
        "injection in path",
    );
    let r = app
        .call("GET", "/api/v1/users/x'%20OR%201=1--", Some(&admin), None)
        .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
        "injection in user path",
    );

    // Oversized body: 413 in the envelope.
    let big = json!({ "name": "x".repeat(70_000), "serialNumber": "BIG" });
    let r = app
        .call("POST", "/api/v1/cameras", Some(&admin), Some(big))
        .await;
    assert_error(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "oversized",
    );
    // Oversized field within the body limit: 400 naming it.
    let r = app
        .call(
            "POST",
            "/api/v1/cameras",
            Some(&admin),
            Some(json!({ "name": "x".repeat(129), "serialNumber": "LONG" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        "long name",
    );
    assert_eq!(r.json["error"]["details"]["fields"][0]["field"], "name");

    // Malformed JSON and wrong shapes name the field.
    let cases: [(&str, &str); 6] = [
        (r#"{not json"#, "body"),
        (r#"{"name": "a", "serialNumber": "#, "serialNumber"),
        (r#"{"name": "a"}"#, "serialNumber"),
        (
            r#"{"name": "a", "serialNumber": "S", "isActive": "yes"}"#,
            "isActive",
        ),
        (
            r#"{"name": "a", "serialNumber": "S", "admin": true}"#,
            "admin",
        ),
        (r#"{"name": 5, "serialNumber": "S"}"#, "name"),
    ];
    for (body, field) in cases {
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/cameras")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let r = app.send(req).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "VALIDATION_FAILED", body);
        assert_eq!(
            r.json["error"]["details"]["fields"][0]["field"], field,
            "{body}"
        );
    }
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/cameras")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_error(
        &app.send(req).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        "content type",
    );

    for (q, field) in [
        ("isActive=maybe", "isActive"),
        ("limit=1000", "limit"),
        ("page=0", "page"),
        ("status=sleeping", "status"),
        ("bogus=1", "bogus"),
    ] {
        let r = app
            .call("GET", &format!("/api/v1/cameras?{q}"), Some(&admin), None)
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "VALIDATION_FAILED", q);
        assert_eq!(
            r.json["error"]["details"]["fields"][0]["field"], field,
            "{q}"
        );
    }
    let r = app
        .call(
            "POST",
            "/api/v1/cameras",
            Some(&admin),
            Some(json!({ "name": "bad\u{0}name", "serialNumber": "NUL" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        "control chars",
    );

    // Weak passwords and bad usernames.
    let r = app
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(json!({ "username": "weak", "password": "password", "role": "viewer" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        "weak password",
    );
    assert_eq!(r.json["error"]["details"]["fields"][0]["field"], "password");
    let r = app
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(json!({ "username": "a b", "password": "Good-Password-1", "role": "viewer" })),
        )
        .await;
    assert_eq!(r.json["error"]["details"]["fields"][0]["field"], "username");
    let r = app
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(json!({ "username": "root", "password": "Good-Password-1", "role": "superuser" })),
        )
        .await;
    assert_eq!(r.json["error"]["details"]["fields"][0]["field"], "role");

    // Unknown routes and methods use the envelope too.
    let r = app.call("GET", "/api/v1/nope", Some(&admin), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "NOT_FOUND", "unknown route");
    let r = app
        .call("PATCH", "/api/v1/cameras", Some(&admin), None)
        .await;
    assert_error(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "method",
    );
    // A sane incoming request id is echoed; an insane one is replaced.
    let req = Request::builder()
        .uri("/api/v1/nope")
        .header("x-request-id", "trace-123")
        .body(Body::empty())
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.header("x-request-id"), Some("trace-123"));
    assert_eq!(r.json["error"]["requestId"], "trace-123");
    let req = Request::builder()
        .uri("/api/v1/nope")
        .header("x-request-id", "a b\tc")
        .body(Body::empty())
        .unwrap();
    assert_ne!(app.send(req).await.header("x-request-id"), Some("a b\tc"));
}

#[tokio::test]
async fn rate_limits_per_token_and_per_user() {
    let app = TestApp::start(|c| c.user_rate_limit = 5).await;
    // The admin's own session is limited too: log in a second user for token management.
    let admin = app.admin().await;
    let (token, token_id) = api_token(&app, &admin, &["cameras:read"], Some(3)).await;
    for i in 0..3 {
        let r = app.call("GET", "/api/v1/cameras", Some(&token), None).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((2 - i).to_string().as_str())
        );
        assert!(r.header("x-ratelimit-reset").is_some());
    }
    for _ in 0..2 {
        let r = app.call("GET", "/api/v1/cameras", Some(&token), None).await;
        assert_error(
            &r,
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_EXCEEDED",
            "token limit",
        );
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry));
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    }
    let alerts = app
        .cp
        .store()
        .list_alerts(Some("API_RATE_LIMIT"), 10)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "one alert per token and window");
    assert_eq!(alerts[0].token_id.as_deref(), Some(token_id.as_str()));

    // Sessions: per user (the admin used 1 of 5 requests creating the token).
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.call("GET", "/api/v1/cameras", Some(&admin), None)
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..4], &[StatusCode::OK; 4]);
    assert_eq!(&statuses[4..], &[StatusCode::TOO_MANY_REQUESTS; 1]);
    // A new login does not reset the user's window.
    let admin2 = app.admin().await;
    assert_eq!(
        app.call("GET", "/api/v1/cameras", Some(&admin2), None)
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn cameras_keys_playback_and_health() {
    let app = TestApp::start(|c| {
        c.public_host = "cams.example".into();
        c.public_base_url = "https://cams.example".into();
    })
    .await;
    let admin = app.admin().await;
    let cam = app.camera(&admin, "Front door", "SN-100", None).await;
    let id = cam["id"].as_str().unwrap().to_owned();
    let key = cam["streamKey"].as_str().unwrap().to_owned();
    assert_eq!(
        cam["rtmpUrl"],
        format!("rtmp://cams.example:1935/live/{key}")
    );
    assert_eq!(
        cam["rtmpsUrl"],
        format!("rtmps://cams.example:1936/live/{key}")
    );
    assert_eq!(cam["streamStatus"], "offline");
    assert!(cam.get("publishToken").is_none());
    let got = app
        .call("GET", &format!("/api/v1/cameras/{id}"), Some(&admin), None)
        .await;
    assert!(
        got.json["data"].get("streamKey").is_none(),
        "key shown once"
    );
    assert_eq!(got.json["data"]["rtmpUrl"], "rtmp://cams.example:1935/live");
    let r = app
        .call(
            "POST",
            "/api/v1/cameras",
            Some(&admin),
            Some(json!({ "name": "dup", "serialNumber": "SN-100" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "CAMERA_SERIAL_DUPLICATE",
        "duplicate serial",
    );

    // Publish authorization through the store.
    let authz = app.cp.authorizer();
    assert_eq!(
        &*authz.authorize(publish(&key, None)).await.unwrap(),
        id.as_str()
    );
    let mut wrong = key.clone();
    wrong.replace_range(20..21, if &key[20..21] == "a" { "b" } else { "a" });
    assert_eq!(
        authz.authorize(publish(&wrong, None)).await,
        Err(Denied::UnknownKey),
        "same prefix, wrong secret"
    );
    assert_eq!(
        authz.authorize(publish("short", None)).await,
        Err(Denied::UnknownKey)
    );
    let mut other_app = publish(&key, None);
    other_app.app = "other";
    assert!(matches!(
        authz.authorize(other_app).await,
        Err(Denied::UnknownApp(_))
    ));
    let r = app
        .call(
            "POST",
            &format!("/api/v1/cameras/{id}/rotate-key"),
            Some(&admin),
            None,
        )
        .await;
    let new_key = r.json["data"]["streamKey"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(
        authz.authorize(publish(&key, None)).await,
        Err(Denied::UnknownKey),
        "old key dead"
    );
    assert!(authz.authorize(publish(&new_key, None)).await.is_ok());
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/cameras/{id}"),
            Some(&admin),
            Some(json!({ "isActive": false })),
        )
        .await;
    assert_eq!(r.json["data"]["isActive"], false);
    assert_eq!(
        authz.authorize(publish(&new_key, None)).await,
        Err(Denied::Inactive(id.clone()))
    );
    let r = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/stream/hls"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "CAMERA_INACTIVE",
        "inactive playback",
    );
    app.call(
        "PUT",
        &format!("/api/v1/cameras/{id}"),
        Some(&admin),
        Some(json!({ "isActive": true })),
    )
    .await;

    // Signed playback URLs and the guard.
    let r = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/stream/hls"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let token = r.json["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        r.json["data"]["hlsUrl"],
        format!("https://cams.example/hls/{id}/ts/playlist.m3u8?token={token}")
    );
    assert_eq!(
        r.json["data"]["llHlsUrl"],
        format!("https://cams.example/hls/{id}/playlist.m3u8?token={token}")
    );
    let guard = app.cp.playback_guard();
    assert_eq!(guard.check(&id, Some(&token)), Ok(()));
    assert_eq!(guard.check(&id, None), Err(PlaybackDenied::Missing));
    assert!(guard.check("other-camera", Some(&token)).is_err());
    assert!(guard.check(&id, Some(&format!("{token}x"))).is_err());
    let expired = app.cp.keys().sign_playback(&id, 1_000);
    assert_eq!(
        guard.check(&id, Some(&expired)),
        Err(PlaybackDenied::Invalid("expired".into()))
    );

    // Health reports: status online, counters, then offline.
    let status = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/status"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status.json["data"]["status"], "offline");
    let report = |state: StreamState, bytes_in: u64, viewers: u32| StreamHealth {
        camera_id: id.clone(),
        state,
        fps: 30.0,
        bitrate_bps: 2_500_000,
        dropped_frames: 2,
        resolution: Some((1280, 720)),
        codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
        viewers,
        bytes_in,
        bytes_out: bytes_in * 2,
        since: std::time::SystemTime::now(),
        last_seen: std::time::SystemTime::now(),
    };
    app.cp
        .report_health(vec![report(StreamState::Online, 1_000_000, 4)])
        .await
        .unwrap();
    app.cp
        .report_health(vec![report(StreamState::Online, 3_000_000, 7)])
        .await
        .unwrap();
    let s = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/status"),
            Some(&admin),
            None,
        )
        .await;
    let d = &s.json["data"];
    assert_eq!(d["status"], "online");
    assert_eq!(d["viewerCount"], 7);
    assert_eq!(d["fps"], 30.0);
    assert_eq!(d["bitrate"], 2_500_000);
    assert_eq!(d["droppedFrames"], 2);
    assert_eq!(d["resolution"], "1280x720");
    assert_eq!(d["nodeId"], "local");
    // The health series: one sample per 10 s, so the second report (a moment later) adds
    // none; the first one's figures are there.
    let h = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/health?minutes=5"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.json);
    assert_eq!(h.json["data"]["stepSeconds"], 10);
    let samples = h.json["data"]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{}", h.json);
    assert_eq!(
        (
            samples[0]["fps"].clone(),
            samples[0]["bitrate"].clone(),
            samples[0]["viewers"].clone(),
            samples[0]["droppedFrames"].clone()
        ),
        (json!(30.0), json!(2_500_000), json!(4), json!(2))
    );
    for bad in ["?minutes=0", "?minutes=61", "?minutes=x", "?other=1"] {
        let r = app
            .call(
                "GET",
                &format!("/api/v1/cameras/{id}/health{bad}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.json);
    }
    let cam = app
        .call("GET", &format!("/api/v1/cameras/{id}"), Some(&admin), None)
        .await;
    assert_eq!(cam.json["data"]["streamStatus"], "online");
    assert_eq!(cam.json["data"]["assignedNode"], "local");
    let online = app
        .call("GET", "/api/v1/cameras?status=online", Some(&admin), None)
        .await;
    assert_eq!(online.json["pagination"]["total"], 1);
    let a = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/analytics"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.json["data"]["bytesIn"], 3_000_000);
    assert_eq!(a.json["data"]["bytesOut"], 6_000_000);
    assert_eq!(a.json["data"]["peakViewers"], 7);
    assert_eq!(a.json["data"]["avgBitrate"], 2_500_000);
    let m = app
        .call(
            "GET",
            &format!("/api/v1/analytics/cameras/{id}/metrics"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(m.json["data"]["live"]["viewerCount"], 7);
    assert_eq!(m.json["data"]["day"]["bytesIn"], 3_000_000);
    let r = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/analytics?date=2026-13-45"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json["error"]["details"]["fields"][0]["field"], "date");
    let dash = app
        .call("GET", "/api/v1/analytics/dashboard", Some(&admin), None)
        .await;
    let d = &dash.json["data"];
    assert_eq!(
        (
            d["totalCameras"].clone(),
            d["onlineCameras"].clone(),
            d["totalViewers"].clone(),
            d["totalIngestBitrate"].clone()
        ),
        (json!(1), json!(1), json!(7), json!(2_500_000))
    );
    let storage = app
        .call("GET", "/api/v1/analytics/storage/usage", Some(&admin), None)
        .await;
    assert!(
        storage.json["data"]["totalBytes"].as_u64().unwrap() > 0,
        "the SQLite file counts"
    );
    assert!(
        storage.json["data"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "camstream.db")
    );

    app.cp
        .report_health(vec![report(StreamState::Offline, 0, 0)])
        .await
        .unwrap();
    let cam = app
        .call("GET", &format!("/api/v1/cameras/{id}"), Some(&admin), None)
        .await;
    assert_eq!(cam.json["data"]["streamStatus"], "offline");
    let s = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/status"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s.json["data"]["status"], "offline");

    // Delete.
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/cameras/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        authz.authorize(publish(&new_key, None)).await,
        Err(Denied::UnknownKey)
    );
    let r = app
        .call("GET", &format!("/api/v1/cameras/{id}"), Some(&admin), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "CAMERA_NOT_FOUND", "deleted");

    // Metrics saw the traffic, labelled by route.
    let m = app.call("GET", "/metrics", None, None).await;
    let text = String::from_utf8(m.bytes).unwrap();
    assert!(
        text.contains("camstream_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("route=\"/api/v1/cameras/{id}\""), "{text}");
}

#[tokio::test]
async fn publish_tokens_when_required() {
    let app = TestApp::start(|c| c.require_publish_token = true).await;
    let admin = app.admin().await;
    let a = app.camera(&admin, "A", "PT-A", None).await;
    let b = app.camera(&admin, "B", "PT-B", None).await;
    let key = a["streamKey"].as_str().unwrap();
    let token = a["publishToken"].as_str().unwrap();
    assert_eq!(
        a["rtmpsUrl"],
        format!("rtmps://localhost:1936/live/{key}?token={token}")
    );
    let authz = app.cp.authorizer();
    assert!(authz.authorize(publish(key, Some(token))).await.is_ok());
    assert!(matches!(
        authz.authorize(publish(key, None)).await,
        Err(Denied::BadToken(_))
    ));
    let b_token = b["publishToken"].as_str().unwrap();
    assert!(matches!(
        authz.authorize(publish(key, Some(b_token))).await,
        Err(Denied::BadToken(_))
    ));
    assert!(matches!(
        authz.authorize(publish(key, Some("x.y.z"))).await,
        Err(Denied::BadToken(_))
    ));
}

#[tokio::test]
async fn first_start_generates_admin_and_secret() {
    let dir = support::temp_dir("first");
    let config = camstream_controlplane::ControlPlaneConfig {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let cp = camstream_controlplane::ControlPlane::start(config.clone())
        .await
        .unwrap();
    let admin = cp
        .store()
        .get_user_by_username("admin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(admin.password_hash.starts_with("$argon2id$"));
    let secret = dir.join("jwt.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let signed = cp.keys().sign_playback("cam", 99);
    cp.shutdown().await;
    // A restart keeps the secret (signed URLs survive) and does not add another admin.
    let cp2 = camstream_controlplane::ControlPlane::start(config)
        .await
        .unwrap();
    assert_eq!(cp2.keys().sign_playback("cam", 99), signed);
    assert_eq!(cp2.store().count_users().await.unwrap(), 1);
    cp2.shutdown().await;
    // A weak configured admin password is refused at start.
    let weak = camstream_controlplane::ControlPlaneConfig {
        data_dir: support::temp_dir("weak"),
        admin_password: Some("admin".into()),
        ..Default::default()
    };
    assert!(
        camstream_controlplane::ControlPlane::start(weak.clone())
            .await
            .is_err()
    );
    std::fs::remove_dir_all(weak.data_dir).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn users_crud_and_token_management() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (_, uid) = app.user(&admin, "uma", "viewer", Some("acme")).await;
    let r = app
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(json!({ "username": "uma", "password": "Good-Password-1", "role": "viewer" })),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "USERNAME_DUPLICATE", "dup user");
    let r = app
        .call("GET", "/api/v1/users?limit=1&page=2", Some(&admin), None)
        .await;
    assert_eq!(r.json["pagination"]["total"], 2);
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/users/{uid}"),
            Some(&admin),
            Some(json!({ "role": "operator", "company": null })),
        )
        .await;
    assert_eq!(
        (
            r.json["data"]["role"].clone(),
            r.json["data"]["company"].clone()
        ),
        (json!("operator"), Value::Null)
    );
    let me = app.call("GET", "/api/v1/auth/me", Some(&admin), None).await;
    let admin_id = me.json["data"]["user"]["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/users/{admin_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "USER_SELF_LOCKOUT", "self delete");
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/users/{uid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call("GET", &format!("/api/v1/users/{uid}"), Some(&admin), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "USER_NOT_FOUND", "deleted user");

    // Tokens: secret once, listing without it, permissions change, expiry in the past refused.
    let r = app.call("POST", "/api/v1/tokens", Some(&admin), Some(json!({ "name": "ci", "remark": "pipeline", "permissions": ["cameras:read"], "rateLimit": 50, "expiresAt": "2099-01-01T00:00:00Z" }))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let secret = r.json["data"]["tokenSecret"].as_str().unwrap().to_owned();
    let tid = r.json["data"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(r.json["data"]["prefix"].as_str().unwrap()));
    let list = app.call("GET", "/api/v1/tokens", Some(&admin), None).await;
    let listed = list.json["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        !list
            .bytes
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "secret not listed"
    );
    assert_eq!(listed[0]["expiresAt"], "2099-01-01T00:00:00Z");
    let me = app
        .call("GET", "/api/v1/auth/me", Some(&secret), None)
        .await;
    assert_eq!(me.json["data"]["credential"], "apiToken");
    assert_eq!(me.json["data"]["permissions"], json!(["cameras:read"]));
    let r = app
        .call(
            "POST",
            "/api/v1/cameras",
            Some(&secret),
            Some(json!({ "name": "x", "serialNumber": "T-1" })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "read-only token",
    );
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/tokens/{tid}/permissions"),
            Some(&admin),
            Some(json!({ "permissions": ["cameras:read", "cameras:write"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            "POST",
            "/api/v1/cameras",
            Some(&secret),
            Some(json!({ "name": "x", "serialNumber": "T-1" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let list = app.call("GET", "/api/v1/tokens", Some(&admin), None).await;
    assert!(list.json["data"][0]["lastUsedAt"].is_string());
    let r = app.call("POST", "/api/v1/tokens", Some(&admin), Some(json!({ "name": "old", "permissions": ["cameras:read"], "expiresAt": "2001-01-01T00:00:00Z" }))).await;
    assert_eq!(
        r.json["error"]["details"]["fields"][0]["field"],
        "expiresAt"
    );
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({ "name": "none", "permissions": [] })),
        )
        .await;
    assert_eq!(
        r.json["error"]["details"]["fields"][0]["field"],
        "permissions"
    );
    let r = app
        .call("POST", "/api/v1/auth/logout", Some(&secret), None)
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_ROLE_RESTRICTED",
        "token logout",
    );
}

/// Issue 9: the token quota is a state of the account, not a bad field: 409, not 400.
#[tokio::test]
async fn token_quota_is_a_conflict() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let body = json!({ "name": "quota", "permissions": ["cameras:read"] });
    for i in 0..100 {
        let r = app
            .call("POST", "/api/v1/tokens", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "token {i}: {}", r.json);
    }
    let r = app
        .call("POST", "/api/v1/tokens", Some(&admin), Some(body))
        .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "TOKEN_LIMIT_REACHED",
        "101st token",
    );
    assert_eq!(r.json["error"]["details"]["limit"], 100);
}

#[tokio::test]
async fn a_single_node_says_it_is_not_clustered() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let r = app.call("GET", "/api/v1/cluster", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let d = &r.json["data"];
    assert_eq!(d["clustered"], false, "{d}");
    assert!(d["leaderId"].is_null() && d["term"].is_null(), "{d}");
    assert_eq!(d["members"], json!([]));
    assert_eq!(d["cameras"], json!([]));
    for (method, path) in [
        ("POST", "/api/v1/cluster/nodes/2/drain"),
        ("DELETE", "/api/v1/cluster/nodes/2"),
        ("GET", "/api/v1/cluster/state"),
    ] {
        let r = app.call(method, path, Some(&admin), None).await;
        assert_error(&r, StatusCode::CONFLICT, "CLUSTER_NOT_ENABLED", path);
    }
    // An operator has no cluster:manage.
    let (operator, _) = app.user(&admin, "ops", "operator", None).await;
    let r = app
        .call("GET", "/api/v1/cluster", Some(&operator), None)
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "operator",
    );
}

/// `abrProfile` on a camera (issue 14): shown, settable, refused with
/// TRANSCODE_BUDGET_FULL once the node's transcode slots are taken (or ABR is off), and
/// what the data plane's policy answers.
#[tokio::test]
async fn abr_profile_is_settable_within_the_transcode_budget() {
    let app = TestApp::start(|c| c.abr_max_cameras = 1).await;
    let admin = app.admin().await;
    let first = app.camera(&admin, "Gate", "ABR-1", None).await;
    assert_eq!(first["abrProfile"], "off");
    let id = first["id"].as_str().unwrap().to_owned();
    let policy = app.cp.abr_policy();
    assert_eq!(policy.profile(&id).await, Ok(None));
    let set = |cam: String, profile: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.call(
                "PUT",
                &format!("/api/v1/cameras/{cam}"),
                Some(&admin),
                Some(json!({ "abrProfile": profile })),
            )
            .await
        }
    };
    let r = set(id.clone(), "default").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["data"]["abrProfile"], "default");
    assert_eq!(policy.profile(&id).await, Ok(Some("default".into())));
    // Setting it again is no new slot.
    assert_eq!(set(id.clone(), "default").await.status, StatusCode::OK);
    // A second ABR camera does not fit: created, or switched on, it is refused plainly.
    budget_full(&create_abr_camera(&app, &admin, "ABR-2").await, "1 of 1");
    let second = app.camera(&admin, "Dock", "ABR-2", None).await;
    let second = second["id"].as_str().unwrap().to_owned();
    assert_eq!(
        set(second.clone(), "default").await.status,
        StatusCode::CONFLICT
    );
    // Freeing the slot lets the other take it.
    assert_eq!(set(id.clone(), "off").await.status, StatusCode::OK);
    assert_eq!(policy.profile(&id).await, Ok(None));
    assert_eq!(set(second.clone(), "default").await.status, StatusCode::OK);
    // Not a profile: a validation error.
    let r = set(second.clone(), "ultra").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    // The playback URLs include the multivariant playlist.
    let r = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{second}/stream/hls"),
            Some(&admin),
            None,
        )
        .await;
    let master = r.json["data"]["masterUrl"].as_str().unwrap();
    assert!(
        master.contains(&format!("/hls/{second}/master.m3u8?token=")),
        "{master}"
    );

    // A node with ABR off refuses any profile.
    let off = TestApp::start(|c| c.abr_max_cameras = 0).await;
    let admin = off.admin().await;
    budget_full(
        &create_abr_camera(&off, &admin, "ABR-3").await,
        "ABR is off",
    );
}

/// A 409 TRANSCODE_BUDGET_FULL whose message says `why`.
fn budget_full(r: &Resp, why: &str) {
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(
        r.json["error"]["code"], "TRANSCODE_BUDGET_FULL",
        "{}",
        r.json
    );
    assert!(
        r.json["error"]["message"].as_str().unwrap().contains(why),
        "{}",
        r.json
    );
}

/// `POST /api/v1/cameras` of a camera with `abrProfile: "default"`.
async fn create_abr_camera(app: &TestApp, token: &str, serial: &str) -> Resp {
    app.call(
        "POST",
        "/api/v1/cameras",
        Some(token),
        Some(json!({ "name": "Dock", "serialNumber": serial, "abrProfile": "default" })),
    )
    .await
}
