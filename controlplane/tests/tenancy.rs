//! Tenancy and authorization that fail closed, in process (`Router::oneshot`): the
//! cross-tenant matrix generated from the route table, company-less users, retention
//! policies per company (admin-only default and runs, audited changes, resolution camera >
//! company > default), login throttling under concurrency, capped API token rate limits,
//! and signed recording URLs that cannot be widened by editing them.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use camstream_controlplane::api::routes::{Access, ROUTES, RouteSpec};
use camstream_controlplane::auth::secret::{self, Kind};
use camstream_controlplane::rbac::{Permission, Permissions, Role};
use camstream_controlplane::recordings::IndexEntry;
use camstream_controlplane::recordings::index;
use camstream_controlplane::store::ApiToken;
use camstream_controlplane::store::recordings::{NewRecording, RecordingStatus};
use serde_json::{Value, json};
use support::{Resp, TestApp};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn assert_error(r: &Resp, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.json);
    assert_eq!(r.code(), code, "{what}: {}", r.json);
}

/// Creates an API token as `owner` with `perms` and returns (secret, id).
async fn api_token(app: &TestApp, owner: &str, perms: &[&str]) -> (String, String) {
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(owner),
            Some(json!({ "name": "t", "permissions": perms })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    (
        r.json["data"]["tokenSecret"].as_str().unwrap().to_owned(),
        r.json["data"]["id"].as_str().unwrap().to_owned(),
    )
}

/// A closed recording of `camera` ending `age` ago: a small real file on the hot tier and
/// an index of 4 one-second fragments. Returns its id.
async fn recording(app: &TestApp, camera: &str, name: &str, age: Duration) -> String {
    let dir = app.dir.join("recordings").join(camera);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let init = 100u64;
    let frag = 1000u64;
    std::fs::write(&path, vec![7u8; (init + 4 * frag) as usize]).unwrap();
    let end = now_ms() - age.as_millis() as i64;
    let start = end - 4000;
    let entries: Vec<IndexEntry> = (0..4u64)
        .map(|i| IndexEntry {
            offset: init + i * frag,
            size: frag,
            media_time: Duration::from_secs(i),
            duration: Duration::from_secs(1),
            wall_time: UNIX_EPOCH + Duration::from_millis(start as u64 + i * 1000),
            independent: true,
            discontinuity: false,
        })
        .collect();
    let r = app
        .cp
        .store()
        .index_recording(
            NewRecording {
                camera_id: camera.into(),
                filename: name.into(),
                file_path: path.display().to_string(),
                init_size: init as i64,
                start_time: start,
                end_time: end,
                duration_ms: 4000,
                file_size: (init + 4 * frag) as i64,
                status: RecordingStatus::Complete,
                node_id: Some("local".into()),
            },
            index::encode(&entries),
        )
        .await
        .unwrap();
    r.id
}

/// How a route treats a tenant's objects. Every route of the table must have a rule: a
/// route added without one fails the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Addresses one object of a tenant (`{id}`, `{company}` or a body field): another
    /// tenant's operator and a company-less user get 404 with this code.
    Object(&'static str),
    /// Lists or sums tenant objects: others see none of them, the company-less nothing.
    List,
    /// Creates an object in the caller's company: a company-less user is refused (403).
    Create,
    /// Objects of the calling user (their API tokens): another user gets 404.
    Own(&'static str),
    /// Admin-only by permission (the auth matrix checks the 403s).
    Admin,
    /// No bearer credential; the signed URL is the grant (see the tampering test).
    Signed,
    /// Nothing of a tenant (login, the caller's own session, docs).
    NoTenant,
}

fn rule(spec: &RouteSpec) -> Rule {
    use Rule::*;
    if spec.access == Access::Signed {
        return Signed;
    }
    if matches!(spec.access, Access::Public | Access::Node) {
        return NoTenant;
    }
    match (spec.method, spec.path) {
        (_, "/api/v1/auth/logout" | "/api/v1/auth/me") => NoTenant,
        (_, "/api/v1/users/me/notification-preferences") => NoTenant,
        ("GET", "/api/v1/notification-channels") => List,
        ("POST", "/api/v1/notification-channels") => Create,
        (_, "/api/v1/notification-channels/{id}") => Object("CHANNEL_NOT_FOUND"),
        (_, p) if p.starts_with("/api/v1/notifications/") => Admin,
        (_, p) if p.starts_with("/api/v1/users") => Admin,
        ("GET", "/api/v1/audit") => Admin,
        ("PUT", "/api/v1/retention") | ("POST", "/api/v1/retention/run") => Admin,
        (_, p) if p.starts_with("/api/v1/cluster") => Admin,
        ("GET", "/api/v1/tokens") => List,
        ("GET", "/api/v1/layouts") => List,
        ("GET", "/api/v1/alerts") => List,
        (_, "/api/v1/alerts/{id}/ack") => Object("ALERT_NOT_FOUND"),
        ("GET", "/api/v1/alert-rules") => List,
        ("POST", "/api/v1/alert-rules") => Create,
        ("GET", "/api/v1/alert-rules/defaults") => NoTenant,
        (_, "/api/v1/alert-rules/{id}") => Object("ALERT_RULE_NOT_FOUND"),
        ("POST", "/api/v1/layouts") => NoTenant,
        (_, "/api/v1/layouts/{id}") => Own("LAYOUT_NOT_FOUND"),
        ("POST", "/api/v1/tokens") => NoTenant,
        (_, p) if p.starts_with("/api/v1/tokens/") => Own("TOKEN_NOT_FOUND"),
        ("GET", "/api/v1/cameras" | "/api/v1/recordings" | "/api/v1/retention") => List,
        ("GET", "/api/v1/analytics/dashboard" | "/api/v1/analytics/storage/usage") => List,
        ("POST", "/api/v1/cameras") => Create,
        (_, p) if p.starts_with("/api/v1/cameras/{id}") => Object("CAMERA_NOT_FOUND"),
        (_, "/api/v1/analytics/cameras/{id}/metrics") => Object("CAMERA_NOT_FOUND"),
        (
            _,
            "/api/v1/recordings/timeline/{id}"
            | "/api/v1/recordings/playback/{id}"
            | "/api/v1/recordings/export/{id}",
        ) => Object("CAMERA_NOT_FOUND"),
        ("POST", "/api/v1/recordings/bookmarks") => Object("CAMERA_NOT_FOUND"),
        (_, p) if p.starts_with("/api/v1/recordings/{id}") => Object("RECORDING_NOT_FOUND"),
        (_, "/api/v1/retention/cameras/{id}") => Object("CAMERA_NOT_FOUND"),
        (_, "/api/v1/retention/companies/{company}") => Object("COMPANY_NOT_FOUND"),
        (m, p) => panic!("{m} {p} has no tenancy rule in this test: add one"),
    }
}

/// Whether the route table lets this caller of the matrix in (its names say what it is).
fn permitted(who: &str, access: Access) -> bool {
    let token = who.ends_with("token");
    let role = if who.ends_with("viewer") {
        Role::Viewer
    } else {
        Role::Operator
    };
    let holds = |p: Permission| {
        if token {
            // The matrix's tokens hold everything an api_only owner may grant.
            Role::ApiOnly.token_grantable().contains(&p)
        } else {
            role.permissions().contains(&p)
        }
    };
    match access {
        Access::Public | Access::Signed | Access::Authenticated | Access::Node => true,
        Access::Session => !token,
        Access::SessionPerm(p) => !token && holds(p),
        Access::Perm(p) => holds(p),
    }
}

/// The caller's view of a list route must not contain any of `secrets`.
fn leaks<'a>(r: &Resp, secrets: &[&'a str]) -> Vec<&'a str> {
    let text = r.json.to_string();
    secrets
        .iter()
        .filter(|s| text.contains(**s))
        .copied()
        .collect()
}

#[tokio::test]
async fn every_tenant_route_is_isolated_and_company_less_users_see_nothing() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme_op, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (globex_op, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let (globex_integration, _) = app
        .user(&admin, "globex-int", "api_only", Some("globex"))
        .await;
    let (nobody_op, _) = app.user(&admin, "nobody-op", "operator", None).await;
    let (nobody_viewer, _) = app.user(&admin, "nobody-viewer", "viewer", None).await;
    let (nobody_integration, _) = app.user(&admin, "nobody-int", "api_only", None).await;
    let all_perms = [
        "cameras:read",
        "cameras:write",
        "streams:play",
        "analytics:read",
        "recordings:read",
        "recordings:delete",
    ];
    let (globex_token, _) = api_token(&app, &globex_integration, &all_perms).await;
    let (nobody_token, _) = api_token(&app, &nobody_integration, &all_perms).await;

    // Acme's objects: a camera with a recording, a camera policy, a company policy, a token.
    let cam = app.camera(&acme_op, "Acme gate", "ACME-1", None).await;
    let cam_id = cam["id"].as_str().unwrap().to_owned();
    let rec_id = recording(&app, &cam_id, "acme-1.mp4", Duration::from_secs(60)).await;
    let (_, acme_token_id) = api_token(&app, &acme_op, &["cameras:read"]).await;
    let r = app
        .call(
            "POST",
            "/api/v1/layouts",
            Some(&acme_op),
            Some(json!({ "name": "Acme grid", "columns": 1, "rows": 1,
                         "tiles": [{ "cameraId": cam_id, "position": 0 }] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let acme_layout_id = r.json["data"]["id"].as_str().unwrap().to_owned();
    let acme_alert_id = app
        .cp
        .store()
        .create_alert(camstream_controlplane::store::NewAlert {
            kind: "CAMERA_OFFLINE".into(),
            severity: "critical".into(),
            camera_id: Some(cam_id.clone()),
            message: "camera Acme gate is offline".into(),
            cause: Some(format!("CAMERA_OFFLINE:{cam_id}")),
            company: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    // A channel of acme; its name carries the camera id so the owner's list check can see
    // it.
    let r = app
        .call(
            "POST",
            "/api/v1/notification-channels",
            Some(&acme_op),
            Some(
                json!({ "name": format!("Acme hook {cam_id}"), "kind": "webhook",
                         "target": "https://hooks.example.com/hook" }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let acme_channel_id = r.json["data"]["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            "POST",
            "/api/v1/alert-rules",
            Some(&acme_op),
            Some(json!({ "type": "CAMERA_OFFLINE", "cameraId": cam_id, "durationSeconds": 60 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let acme_rule_id = r.json["data"]["id"].as_str().unwrap().to_owned();
    for (path, body) in [
        (
            format!("/api/v1/retention/cameras/{cam_id}"),
            json!({ "deleteAfterDays": 30 }),
        ),
        (
            "/api/v1/retention/companies/acme".to_owned(),
            json!({ "deleteAfterDays": 60 }),
        ),
    ] {
        let r = app.call("PUT", &path, Some(&acme_op), Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json);
    }
    // Globex has an object of its own, so its lists are not trivially empty.
    app.camera(&globex_op, "Globex door", "GLOBEX-1", None)
        .await;

    // 'static for the closures below: the test owns them until it ends.
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let others: [(&'static str, &'static str); 2] = [
        ("globex operator", leak(globex_op.clone())),
        ("globex token", leak(globex_token.clone())),
    ];
    let nobodies: [(&'static str, &'static str); 3] = [
        ("company-less operator", leak(nobody_op.clone())),
        ("company-less viewer", leak(nobody_viewer.clone())),
        ("company-less token", leak(nobody_token.clone())),
    ];
    let secrets = [cam_id.as_str(), rec_id.as_str(), "ACME-1", "acme"];
    let at = "2026-01-01T00:00:00Z";
    let (mut objects, mut lists) = (0, 0);
    for spec in ROUTES {
        let rule = rule(spec);
        let path = spec
            .path
            .replace("/recordings/{id}", &format!("/recordings/{rec_id}"))
            .replace("/tokens/{id}", &format!("/tokens/{acme_token_id}"))
            .replace("/layouts/{id}", &format!("/layouts/{acme_layout_id}"))
            .replace("/alerts/{id}", &format!("/alerts/{acme_alert_id}"))
            .replace(
                "/notification-channels/{id}",
                &format!("/notification-channels/{acme_channel_id}"),
            )
            .replace("/alert-rules/{id}", &format!("/alert-rules/{acme_rule_id}"))
            .replace("{company}", "acme")
            .replace("{id}", &cam_id);
        let what = |who: &str| format!("{} {} [{who}]", spec.method, spec.path);
        // Callers the route table refuses outright (a viewer deleting, a token managing
        // tokens) get their 403 from the auth layer, which the auth matrix checks; the
        // tenancy rule applies to the others.
        let split = |creds: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            creds
                .iter()
                .copied()
                .filter(|(who, _)| permitted(who, spec.access))
                .collect()
        };
        let others = split(&others);
        let nobodies = split(&nobodies);
        let body = match (spec.method, spec.path) {
            ("POST", "/api/v1/recordings/bookmarks") => {
                Some(json!({ "cameraId": cam_id, "at": at, "label": "x" }))
            }
            ("POST", "/api/v1/cameras") => {
                Some(json!({ "name": "mine", "serialNumber": "NOBODY-1" }))
            }
            ("PUT", p) if p.starts_with("/api/v1/retention") => {
                Some(json!({ "deleteAfterDays": 0 }))
            }
            ("PUT", "/api/v1/tokens/{id}/permissions") => {
                Some(json!({ "permissions": ["cameras:read"] }))
            }
            ("POST" | "PUT", p) if p.starts_with("/api/v1/notification-channels") => {
                Some(json!({ "name": "stolen", "kind": "email", "target": "thief@example.test" }))
            }
            ("POST", "/api/v1/alert-rules") | ("PUT", "/api/v1/alert-rules/{id}") => {
                Some(json!({ "type": "CAMERA_OFFLINE" }))
            }
            ("PUT", "/api/v1/layouts/{id}") => {
                Some(json!({ "name": "stolen", "columns": 1, "rows": 1, "tiles": [] }))
            }
            ("PUT", _) => Some(json!({ "name": "stolen" })),
            _ => None,
        };
        match rule {
            Rule::Object(code) => {
                for (who, token) in others.iter().chain(nobodies.iter()) {
                    let r = app
                        .call(spec.method, &path, Some(token), body.clone())
                        .await;
                    assert_error(&r, StatusCode::NOT_FOUND, code, &what(who));
                }
                objects += 1;
            }
            Rule::Own(code) => {
                for (who, token) in [
                    ("globex operator", &globex_op),
                    ("company-less", &nobody_op),
                ] {
                    let r = app
                        .call(spec.method, &path, Some(token), body.clone())
                        .await;
                    assert_error(&r, StatusCode::NOT_FOUND, code, &what(who));
                }
                objects += 1;
            }
            Rule::List => {
                // The owner sees its objects: the check below could fail.
                if spec.path != "/api/v1/tokens" {
                    let r = app.call(spec.method, &path, Some(&acme_op), None).await;
                    assert_eq!(r.status, StatusCode::OK, "{}", what("acme"));
                    assert!(
                        !leaks(&r, &secrets[..1]).is_empty()
                            || spec.path == "/api/v1/analytics/dashboard",
                        "{}: acme does not see its camera: {}",
                        what("acme"),
                        r.json
                    );
                }
                for (who, token) in others.iter().chain(nobodies.iter()) {
                    let r = app.call(spec.method, &path, Some(token), None).await;
                    assert_eq!(r.status, StatusCode::OK, "{}: {}", what(who), r.json);
                    assert_eq!(
                        leaks(&r, &secrets),
                        Vec::<&str>::new(),
                        "{}: {}",
                        what(who),
                        r.json
                    );
                }
                for (who, token) in &nobodies {
                    let r = app.call(spec.method, &path, Some(token), None).await;
                    let d = &r.json["data"];
                    let empty = match spec.path {
                        "/api/v1/cameras"
                        | "/api/v1/recordings"
                        | "/api/v1/tokens"
                        | "/api/v1/layouts"
                        | "/api/v1/alerts"
                        | "/api/v1/notification-channels"
                        | "/api/v1/alert-rules" => {
                            d.as_array().is_some_and(Vec::is_empty)
                                && (matches!(
                                    spec.path,
                                    "/api/v1/tokens"
                                        | "/api/v1/layouts"
                                        | "/api/v1/notification-channels"
                                        | "/api/v1/alert-rules"
                                ) || r.json["pagination"]["total"] == 0)
                        }
                        "/api/v1/retention" => {
                            d["cameras"].as_array().is_some_and(Vec::is_empty)
                                && d["company"].is_null()
                        }
                        "/api/v1/analytics/dashboard" => d["totalCameras"] == 0,
                        "/api/v1/analytics/storage/usage" => {
                            d["cameras"].as_array().is_some_and(Vec::is_empty)
                                && d["totalBytes"] == 0
                                && d["tiers"]
                                    .as_array()
                                    .is_some_and(|t| t.iter().all(|t| t["files"] == 0))
                        }
                        p => panic!("no emptiness check for {p}"),
                    };
                    assert!(empty, "{}: not empty: {}", what(who), r.json);
                }
                lists += 1;
            }
            Rule::Create => {
                for (who, token) in &nobodies {
                    let r = app
                        .call(spec.method, &path, Some(token), body.clone())
                        .await;
                    assert_error(
                        &r,
                        StatusCode::FORBIDDEN,
                        "AUTH_INSUFFICIENT_PERMISSIONS",
                        &what(who),
                    );
                }
            }
            Rule::Admin | Rule::Signed | Rule::NoTenant => {}
        }
    }
    assert!(objects >= 20, "{objects} object routes");
    assert_eq!(lists, 10, "list routes");

    // Nothing of acme was changed or removed by all of the above.
    let r = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{cam_id}"),
            Some(&acme_op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["data"]["name"], "Acme gate");
    let r = app
        .call(
            "GET",
            &format!("/api/v1/recordings/{rec_id}"),
            Some(&acme_op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call("GET", "/api/v1/tokens", Some(&acme_op), None)
        .await;
    assert!(r.json["data"][0]["revokedAt"].is_null(), "{}", r.json);
    let r = app
        .call("GET", "/api/v1/retention", Some(&acme_op), None)
        .await;
    assert_eq!(
        r.json["data"]["company"]["deleteAfterDays"], 60.0,
        "{}",
        r.json
    );
    assert_eq!(
        r.json["data"]["cameras"][0]["deleteAfterDays"], 30.0,
        "{}",
        r.json
    );
    let r = app
        .call(
            "GET",
            &format!("/api/v1/alert-rules/{acme_rule_id}"),
            Some(&acme_op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["data"]["durationSeconds"], 60, "{}", r.json);
    // The admin still sees every company.
    let r = app.call("GET", "/api/v1/cameras", Some(&admin), None).await;
    assert_eq!(r.json["pagination"]["total"], 2);
}

#[tokio::test]
async fn retention_default_and_runs_are_admin_only_and_companies_have_their_own() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme_op, acme_op_id) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (acme_viewer, _) = app
        .user(&admin, "acme-viewer", "viewer", Some("acme"))
        .await;
    let (globex_op, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let (deleter, _) = api_token(&app, &acme_op, &["recordings:read", "recordings:delete"]).await;

    // The attack: a tenant sets deleteAfterDays 0 for everyone and runs it.
    for (who, token) in [
        ("operator", &acme_op),
        ("recordings:delete token", &deleter),
    ] {
        let r = app
            .call(
                "PUT",
                "/api/v1/retention",
                Some(token),
                Some(json!({ "deleteAfterDays": 0 })),
            )
            .await;
        assert_error(
            &r,
            StatusCode::FORBIDDEN,
            "AUTH_INSUFFICIENT_PERMISSIONS",
            &format!("PUT /retention as {who}"),
        );
        let r = app
            .call("POST", "/api/v1/retention/run", Some(token), None)
            .await;
        assert_error(
            &r,
            StatusCode::FORBIDDEN,
            "AUTH_INSUFFICIENT_PERMISSIONS",
            &format!("POST /retention/run as {who}"),
        );
    }

    // Three companies' cameras with old recordings.
    let acme1 = app.camera(&acme_op, "Acme 1", "A-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let acme2 = app.camera(&acme_op, "Acme 2", "A-2", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex = app.camera(&globex_op, "Globex", "G-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let day = Duration::from_secs(86_400);
    let r_acme1 = recording(&app, &acme1, "a1.mp4", day * 3).await;
    let r_acme2 = recording(&app, &acme2, "a2.mp4", day * 3).await;
    let r_globex = recording(&app, &globex, "g.mp4", day * 3).await;

    // The default (admin): delete after 10 days. Acme: after 2 days; acme2: after 5.
    let r = app
        .call(
            "PUT",
            "/api/v1/retention",
            Some(&admin),
            Some(json!({ "deleteAfterDays": 10 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = app
        .call(
            "PUT",
            "/api/v1/retention/companies/acme",
            Some(&deleter),
            Some(json!({ "deleteAfterDays": 2 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/retention/cameras/{acme2}"),
            Some(&acme_op),
            Some(json!({ "deleteAfterDays": 5 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // A viewer may not change its company's policy; another company may not either.
    let r = app
        .call(
            "PUT",
            "/api/v1/retention/companies/acme",
            Some(&acme_viewer),
            Some(json!({ "deleteAfterDays": 0 })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        "viewer",
    );
    let r = app
        .call(
            "PUT",
            "/api/v1/retention/companies/acme",
            Some(&globex_op),
            Some(json!({ "deleteAfterDays": 0 })),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "COMPANY_NOT_FOUND", "globex");
    let r = app
        .call(
            "PUT",
            "/api/v1/retention/companies/acme",
            Some(&acme_op),
            Some(json!({ "deleteAfterDays": -1 })),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "VALIDATION_FAILED", "negative");

    // Camera override > company policy > default.
    let r = app
        .call("POST", "/api/v1/retention/run", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["data"]["deleted"], 1, "{}", r.json);
    let exists = |id: String| {
        let app = &app;
        async move { app.cp.store().get_recording(&id).await.unwrap().is_some() }
    };
    assert!(!exists(r_acme1.clone()).await, "acme policy: 2 days");
    assert!(exists(r_acme2.clone()).await, "acme2's own policy: 5 days");
    assert!(exists(r_globex.clone()).await, "default: 10 days");

    // Every change is audited, with who.
    let r = app
        .call("GET", "/api/v1/audit?limit=100", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let changes: Vec<&Value> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "retention.policy_changed")
        .collect();
    assert_eq!(changes.len(), 3, "{}", r.json);
    let scopes: Vec<&str> = changes
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(
        scopes.iter().any(|d| d.starts_with("default")),
        "{scopes:?}"
    );
    assert!(
        scopes.iter().any(|d| d.starts_with("company acme")),
        "{scopes:?}"
    );
    assert!(
        scopes
            .iter()
            .any(|d| d.starts_with(&format!("camera {acme2}"))),
        "{scopes:?}"
    );
    let company_change = changes
        .iter()
        .find(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("company"))
        })
        .unwrap();
    assert_eq!(company_change["userId"], acme_op_id.as_str());
    assert!(company_change["tokenId"].is_string(), "made with a token");
    let r = app
        .call(
            "DELETE",
            "/api/v1/retention/companies/acme",
            Some(&acme_op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = app
        .call(
            "GET",
            "/api/v1/audit?action=retention.policy_removed",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1, "{}", r.json);

    // GET /retention: a tenant sees its cameras and no server paths.
    let r = app
        .call("GET", "/api/v1/retention", Some(&acme_viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.json.to_string();
    let data_dir = app.dir.display().to_string();
    assert!(!text.contains(&data_dir), "server path shown: {text}");
    assert!(r.json["data"]["tiers"].is_null(), "{text}");
    assert!(!text.contains(&globex), "{text}");
    let cams: Vec<&str> = r.json["data"]["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cameraId"].as_str().unwrap())
        .collect();
    assert_eq!(cams, vec![acme2.as_str()]);
    // The admin sees the tiers and every company's policy.
    let r = app
        .call("GET", "/api/v1/retention", Some(&admin), None)
        .await;
    assert!(
        r.json["data"]["tiers"]["hot"]
            .as_str()
            .is_some_and(|h| h.starts_with(&data_dir)),
        "{}",
        r.json
    );
}

/// Sends 100 wrong-password logins for one user at once.
async fn concurrent_wrong_logins(app: &TestApp, user: &str, n: usize) -> (usize, usize) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let router = app.router.clone();
        let user = user.to_owned();
        set.spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::builder()
                .method("POST")
                .uri("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({ "username": user, "password": format!("guess-{i}") }).to_string(),
                ))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        });
    }
    let (mut checked, mut throttled, mut other) = (0, 0, Vec::new());
    while let Some(s) = set.join_next().await {
        match s.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            s => other.push(s),
        }
    }
    assert!(
        other.is_empty(),
        "{checked} × 401, {throttled} × 429, and {} others: {other:?}",
        other.len()
    );
    (checked, throttled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_logins_cannot_pass_the_throttle() {
    let app = TestApp::start(|c| {
        c.login_max_failures_per_user = 5;
        c.login_max_failures_per_ip = 1000;
    })
    .await;
    // A 401 is only sent after the password hash was checked: it counts the guesses tried.
    let (checked, throttled) = concurrent_wrong_logins(&app, "admin", 100).await;
    println!("100 concurrent wrong logins: {checked} reached the hash check, {throttled} got 429");
    assert_eq!((checked, throttled), (5, 95));
    // The right password is refused too while throttled.
    let r = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "admin", "password": support::ADMIN_PASSWORD })),
        )
        .await;
    assert_error(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMIT_EXCEEDED",
        "after",
    );
    // Unknown users are throttled the same way.
    let (checked, throttled) = concurrent_wrong_logins(&app, "ghost", 100).await;
    assert_eq!((checked, throttled), (5, 95));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_logins_cannot_pass_the_throttle_on_redis() {
    let redis = support::Redis::start();
    let url = redis.url();
    let app = TestApp::start(|c| {
        c.redis_url = Some(url.clone());
        c.login_max_failures_per_user = 5;
        c.login_max_failures_per_ip = 1000;
    })
    .await;
    assert_eq!(app.cp.cache().backend(), "redis");
    let (checked, throttled) = concurrent_wrong_logins(&app, "admin", 100).await;
    println!("redis: {checked} reached the hash check, {throttled} got 429");
    assert_eq!((checked, throttled), (5, 95));
}

#[tokio::test]
async fn successful_logins_do_not_count_as_failures() {
    let app = TestApp::start(|c| {
        c.login_max_failures_per_user = 3;
        c.login_max_failures_per_ip = 3;
    })
    .await;
    // Attempts are counted before the hash check; a success takes its count back, so many
    // good logins from one address in a row stay fine.
    for i in 0..10 {
        let mut req = axum::http::Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({ "username": "admin", "password": support::ADMIN_PASSWORD }).to_string(),
            ))
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [10, 0, 0, 1],
                5555,
            ))));
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "login {i}: {}", r.json);
    }
}

#[tokio::test]
async fn token_rate_limits_are_capped_by_the_creator_and_the_configuration() {
    let app = TestApp::start(|c| {
        c.user_rate_limit = 500;
        c.max_token_rate_limit = 200;
        c.default_token_rate_limit = 1000;
    })
    .await;
    let admin = app.admin().await;
    let (op, op_id) = app.user(&admin, "oper", "operator", Some("acme")).await;
    for asked in [201, 501, 1_000_000] {
        let r = app
            .call(
                "POST",
                "/api/v1/tokens",
                Some(&op),
                Some(
                    json!({ "name": "fast", "permissions": ["cameras:read"], "rateLimit": asked }),
                ),
            )
            .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            &format!("rateLimit {asked}"),
        );
        assert_eq!(
            r.json["error"]["details"]["fields"][0]["field"], "rateLimit",
            "{}",
            r.json
        );
    }
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&op),
            Some(json!({ "name": "ok", "permissions": ["cameras:read"], "rateLimit": 200 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    // No limit asked: the default, capped.
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&op),
            Some(json!({ "name": "default", "permissions": ["cameras:read"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["data"]["rateLimit"], 200);
    // A token stored with a higher limit (older server, other config) is held to the cap.
    let g = secret::generate(Kind::ApiToken);
    app.cp
        .store()
        .create_api_token(&ApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: op_id,
            name: "legacy".into(),
            remark: None,
            prefix: g.prefix,
            secret_hash: g.hash,
            permissions: Permissions::try_from("cameras:read".to_owned()).unwrap(),
            rate_limit: 1_000_000,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            created_at: now_ms(),
        })
        .await
        .unwrap();
    let r = app
        .call("GET", "/api/v1/cameras", Some(&g.secret), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.header("x-ratelimit-limit"), Some("200"));
}

/// Replaces the value of `key` in a URL's query.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == key => format!("{k}={value}"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

fn param<'a>(url: &'a str, key: &str) -> &'a str {
    url.split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap()
}

/// `{exp}.{sig}` with the expiry moved by `by` seconds, signature kept.
fn moved_expiry(token: &str, by: i64) -> String {
    let (exp, sig) = token.split_once('.').unwrap();
    format!("{}.{sig}", exp.parse::<i64>().unwrap() + by)
}

#[tokio::test]
async fn signed_recording_urls_cannot_be_widened() {
    let app = TestApp::start(|c| c.public_base_url = String::new()).await;
    let admin = app.admin().await;
    let (op, _) = app.user(&admin, "oper", "operator", Some("acme")).await;
    let cam = app.camera(&op, "A", "A-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_cam = app.camera(&op, "B", "B-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rec = recording(&app, &cam, "a.mp4", Duration::from_secs(30)).await;
    let other_rec = recording(&app, &other_cam, "b.mp4", Duration::from_secs(30)).await;
    let refused = |r: &Resp, what: &str| {
        assert!(
            r.status == StatusCode::FORBIDDEN || r.status == StatusCode::UNAUTHORIZED,
            "{what}: {} {}",
            r.status,
            r.json
        );
    };

    // Downloads: bound to the recording, the user and the expiry.
    let r = app
        .call(
            "GET",
            &format!("/api/v1/recordings/{rec}/signed-url"),
            Some(&op),
            None,
        )
        .await;
    let url = r.json["data"]["url"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call("GET", &url, None, None).await.status,
        StatusCode::OK
    );
    let token = param(&url, "token").to_owned();
    for (what, tampered) in [
        ("recording id", url.replace(&rec, &other_rec)),
        ("by", with_param(&url, "by", "someone-else")),
        (
            "expiry",
            with_param(&url, "token", &moved_expiry(&token, 3600)),
        ),
        ("no token", url.split("&token=").next().unwrap().to_owned()),
    ] {
        refused(
            &app.call("GET", &tampered, None, None).await,
            &format!("download: {what}"),
        );
    }

    // VOD playlists: bound to the camera, the range, the user and the expiry. The range
    // covers the middle two of the file's four one-second fragments.
    let start = app
        .cp
        .store()
        .get_recording(&rec)
        .await
        .unwrap()
        .unwrap()
        .start_time;
    let at = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let r = app
        .call(
            "GET",
            &format!(
                "/api/v1/recordings/playback/{cam}?from={}&to={}",
                at(start + 1_500),
                at(start + 2_500)
            ),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let url = r.json["data"]["url"].as_str().unwrap().to_owned();
    let list = app.call("GET", &url, None, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    let token = param(&url, "token").to_owned();
    let from: i64 = param(&url, "from").parse().unwrap();
    let to: i64 = param(&url, "to").parse().unwrap();
    for (what, tampered) in [
        ("camera id", url.replace(&cam, &other_cam)),
        (
            "from",
            with_param(&url, "from", &(from - 86_400_000).to_string()),
        ),
        ("to", with_param(&url, "to", &(to + 86_400_000).to_string())),
        ("by", with_param(&url, "by", "someone-else")),
        (
            "expiry",
            with_param(&url, "token", &moved_expiry(&token, 3600)),
        ),
    ] {
        refused(
            &app.call("GET", &tampered, None, None).await,
            &format!("playlist: {what}"),
        );
    }

    // Media of a playlist: bound to the camera, the recording, the bytes the playlist uses
    // and the expiry.
    let text = String::from_utf8(list.bytes).unwrap();
    let media = text
        .lines()
        .find(|l| !l.starts_with('#') && l.contains(".mp4?bytes="))
        .unwrap_or_else(|| panic!("no media URI in {text}"));
    let media = format!("/vod/{cam}/{media}");
    let ranged = |url: &str, range: Option<String>| {
        let mut b = axum::http::Request::builder().method("GET").uri(url);
        if let Some(r) = range {
            b = b.header("range", r);
        }
        app.send(b.body(axum::body::Body::empty()).unwrap())
    };
    let (first, last) = param(&media, "bytes").split_once('-').unwrap();
    let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
    let (init_first, init_last) = param(&media, "init").split_once('-').unwrap();
    // Fragments 1 and 2 (each fragment 1000 bytes after a 100-byte init).
    assert_eq!((first, last), (1_100, 3_099), "{media}");
    assert_eq!((init_first, init_last), ("0", "99"), "{media}");
    let inside = Some(format!("bytes={first}-{last}"));
    let ok = ranged(&media, inside.clone()).await;
    assert_eq!(ok.status, StatusCode::PARTIAL_CONTENT, "{media}");
    assert_eq!(ok.bytes.len() as u64, last - first + 1);
    assert_eq!(
        ranged(&media, Some(format!("bytes={init_first}-{init_last}")))
            .await
            .status,
        StatusCode::PARTIAL_CONTENT,
        "the init segment it maps"
    );
    // Outside what the URL grants: the whole file, bytes past the range, a suffix range.
    for range in [
        None,
        Some(format!("bytes={first}-")),
        Some(format!("bytes={}-{}", last + 1, last + 100)),
        Some("bytes=-100".to_owned()),
    ] {
        let r = ranged(&media, range.clone()).await;
        assert_error(
            &r,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RANGE_NOT_SATISFIABLE",
            &format!("media: Range {range:?} outside the grant"),
        );
    }
    let token = param(&media, "token").to_owned();
    for (what, tampered) in [
        (
            "camera id",
            media.replace(&format!("/vod/{cam}/"), &format!("/vod/{other_cam}/")),
        ),
        ("recording id", media.replace(&rec, &other_rec)),
        (
            "bytes",
            with_param(&media, "bytes", &format!("0-{}", last + 1_000_000)),
        ),
        (
            "init",
            with_param(&media, "init", &format!("0-{}", last + 1_000_000)),
        ),
        (
            "expiry",
            with_param(&media, "token", &moved_expiry(&token, 3600)),
        ),
    ] {
        refused(
            &ranged(&tampered, inside.clone()).await,
            &format!("media: {what}"),
        );
    }
    // The other camera's media with this playlist's token, under the other camera's path.
    let cross = format!(
        "/vod/{other_cam}/{other_rec}.mp4?bytes={first}-{last}&init={init_first}-{init_last}&token={token}"
    );
    refused(&ranged(&cross, inside).await, "media: other recording");
}
