//! Alert rules end to end in process: `/api/v1/alert-rules` CRUD, validation and tenancy;
//! the rule in force (camera > company > default) deciding `CAMERA_OFFLINE` as raised by
//! the control plane's own sweeper, `enabled: false` muting; stream quality raised and
//! resolved from health reports; unusual API usage raised by real requests of a token and
//! resolved after its quiet period; `API_RATE_LIMIT` muted or re-graded by a rule.

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use camstream_protocol::StreamState;
use serde_json::{Value, json};
use support::TestApp;

async fn alerts(app: &TestApp, who: &str, query: &str) -> Vec<Value> {
    let r = app
        .call("GET", &format!("/api/v1/alerts{query}"), Some(who), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.json);
    r.json["data"].as_array().cloned().unwrap_or_default()
}

async fn until<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_rule(app: &TestApp, who: &str, body: Value) -> Value {
    let r = app
        .call("POST", "/api/v1/alert-rules", Some(who), Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{body}: {}", r.json);
    r.json["data"].clone()
}

/// Waits until just after the wall clock's next whole second: a burst that starts there
/// falls in one one-second usage bucket.
async fn next_second() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1010 - ms))).await;
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn rules_crud_validation_and_tenancy() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme, acme_id) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (viewer, _) = app.user(&admin, "acme-view", "viewer", Some("acme")).await;
    let (globex, globex_id) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let (nobody, _) = app.user(&admin, "nobody-op", "operator", None).await;
    let cam = id(&app.camera(&acme, "Gate", "R-1", None).await);
    let globex_cam = id(&app.camera(&globex, "Door", "R-2", None).await);

    // The defaults are documented for everyone who reads alerts.
    let r = app
        .call("GET", "/api/v1/alert-rules/defaults", Some(&viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let defaults = r.json["data"].as_array().unwrap().clone();
    let offline = defaults
        .iter()
        .find(|d| d["type"] == "CAMERA_OFFLINE")
        .unwrap();
    assert_eq!(
        (
            &offline["severity"],
            &offline["durationSeconds"],
            &offline["enabled"]
        ),
        (&json!("critical"), &json!(300), &json!(true))
    );
    for kind in [
        "STREAM_FPS_LOW",
        "STREAM_FRAMES_DROPPED",
        "STREAM_BITRATE_LOW",
        "API_UNUSUAL_USAGE",
        "API_RATE_LIMIT",
        "LOGIN_FAILURES",
        "RECORDING_FAILED",
        "STORAGE_FULL",
    ] {
        assert!(defaults.iter().any(|d| d["type"] == kind), "{kind} missing");
    }

    // An operator's company rule: defaults fill what is not given.
    let company = create_rule(
        &app,
        &acme,
        json!({ "type": "STREAM_FPS_LOW", "escalation": [
            { "afterMinutes": 10, "userIds": [acme_id] },
            { "afterMinutes": 30, "channelIds": ["ops-pager"] }
        ] }),
    )
    .await;
    assert_eq!(company["company"], "acme");
    assert!(company["cameraId"].is_null());
    assert_eq!(company["threshold"], 0.5);
    assert_eq!(company["durationSeconds"], 60);
    assert_eq!(company["severity"], "warning");
    assert_eq!(company["enabled"], true);
    assert_eq!(company["escalation"][1]["channelIds"][0], "ops-pager");
    assert_eq!(company["escalation"][1]["userIds"], json!([]));
    let camera_rule = create_rule(
        &app,
        &acme,
        json!({ "type": "STREAM_FPS_LOW", "cameraId": cam, "threshold": 0.3,
                "durationSeconds": 20, "severity": "critical" }),
    )
    .await;
    assert_eq!(camera_rule["cameraId"], cam.as_str());
    // Admins name the company.
    let globex_rule = create_rule(
        &app,
        &admin,
        json!({ "type": "CAMERA_OFFLINE", "company": "globex", "durationSeconds": 60 }),
    )
    .await;

    // Listing: each tenant its own; viewers read; company-less users nothing.
    let list = async |who: &str, q: &str| -> Vec<Value> {
        let r = app
            .call("GET", &format!("/api/v1/alert-rules{q}"), Some(who), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json["data"].as_array().unwrap().clone()
    };
    let ids = |v: Vec<Value>| v.iter().map(id).collect::<Vec<_>>();
    assert_eq!(
        ids(list(&acme, "").await),
        vec![id(&company), id(&camera_rule)]
    );
    assert_eq!(ids(list(&viewer, "").await).len(), 2);
    assert_eq!(ids(list(&globex, "").await), vec![id(&globex_rule)]);
    assert!(list(&globex, "?company=acme").await.is_empty());
    assert!(list(&nobody, "").await.is_empty());
    assert_eq!(list(&admin, "").await.len(), 3);
    assert_eq!(list(&admin, "?company=globex").await.len(), 1);

    // Another tenant's rule is "not found" for reading, changing and deleting.
    let rule_path = format!("/api/v1/alert-rules/{}", id(&company));
    for who in [&globex, &nobody] {
        for (m, body) in [
            ("GET", None),
            ("PUT", Some(json!({ "type": "STREAM_FPS_LOW" }))),
            ("DELETE", None),
        ] {
            let r = app.call(m, &rule_path, Some(who), body).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{m}: {}", r.json);
            assert_eq!(r.code(), "ALERT_RULE_NOT_FOUND");
        }
    }
    // Viewers read, never write.
    let r = app.call("GET", &rule_path, Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.call("DELETE", &rule_path, Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            "POST",
            "/api/v1/alert-rules",
            Some(&viewer),
            Some(json!({ "type": "CAMERA_OFFLINE" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Validation.
    let bad: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({ "type": "NOPE" }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "STREAM_FPS_LOW", "threshold": 1.5 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "STREAM_FPS_LOW", "threshold": 0 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "threshold": 3 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "STREAM_FPS_LOW", "minimum": 3 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "durationSeconds": 0 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "STREAM_BITRATE_LOW", "durationSeconds": 100000 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "STORAGE_FULL", "durationSeconds": 10 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "API_UNUSUAL_USAGE", "threshold": 1 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "API_RATE_LIMIT", "cameraId": cam }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "severity": "fatal" }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "bogus": 1 }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "escalation": [{ "afterMinutes": 0, "userIds": [acme_id] }] }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "escalation": [
            { "afterMinutes": 10, "userIds": [acme_id] }, { "afterMinutes": 5, "userIds": [acme_id] }] }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "escalation": [{ "afterMinutes": 5 }] }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        // Another tenant's user is no user of this company.
        (
            json!({ "type": "CAMERA_OFFLINE", "escalation": [{ "afterMinutes": 5, "userIds": [globex_id] }] }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        // Another tenant's camera is a field error (400: a 404 would read as the rule in
        // the path gone); another tenant's company is not found.
        (
            json!({ "type": "CAMERA_OFFLINE", "cameraId": globex_cam }),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            json!({ "type": "CAMERA_OFFLINE", "company": "globex" }),
            StatusCode::NOT_FOUND,
            "COMPANY_NOT_FOUND",
        ),
        // One rule per scope and type.
        (
            json!({ "type": "STREAM_FPS_LOW" }),
            StatusCode::CONFLICT,
            "ALERT_RULE_DUPLICATE",
        ),
        (
            json!({ "type": "STREAM_FPS_LOW", "cameraId": cam }),
            StatusCode::CONFLICT,
            "ALERT_RULE_DUPLICATE",
        ),
    ];
    for (body, status, code) in bad {
        let r = app
            .call(
                "POST",
                "/api/v1/alert-rules",
                Some(&acme),
                Some(body.clone()),
            )
            .await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.json);
    }
    let r = app
        .call(
            "POST",
            "/api/v1/alert-rules",
            Some(&nobody),
            Some(json!({ "type": "CAMERA_OFFLINE" })),
        )
        .await;
    assert_eq!(r.code(), "AUTH_INSUFFICIENT_PERMISSIONS");
    let r = app
        .call(
            "POST",
            "/api/v1/alert-rules",
            Some(&admin),
            Some(json!({ "type": "CAMERA_OFFLINE" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "admins name the company");

    // Replace and delete.
    let r = app
        .call(
            "PUT",
            &rule_path,
            Some(&acme),
            Some(json!({ "type": "STREAM_FPS_LOW", "enabled": false })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["data"]["enabled"], false);
    assert_eq!(r.json["data"]["escalation"], json!([]));
    assert_eq!(r.json["data"]["createdAt"], company["createdAt"]);
    let r = app.call("DELETE", &rule_path, Some(&acme), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.call("GET", &rule_path, Some(&acme), None).await;
    assert_eq!(r.code(), "ALERT_RULE_NOT_FOUND");
    // Deleting a camera deletes its rules.
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/cameras/{cam}"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(list(&acme, "").await.is_empty());
}

/// `CAMERA_OFFLINE` with the rule in force: the default (`--alert-offline-after`, an hour
/// here) raises nothing in the test's time; a company rule of 1 s raises for its camera
/// with the rule's severity; a camera rule of an hour overrides the company's; a camera
/// rule that is disabled mutes it; a camera rule of 1 s overrides the default elsewhere.
/// Then muting the company rule resolves the open alert.
#[tokio::test]
async fn camera_rule_over_company_rule_over_default_for_camera_offline() {
    let app = TestApp::start(|c| c.alert_offline_after = Duration::from_secs(3600)).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (globex, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let by_company = id(&app.camera(&acme, "By company", "O-1", None).await);
    let by_camera = id(&app.camera(&acme, "By camera", "O-2", None).await);
    let muted = id(&app.camera(&acme, "Muted", "O-3", None).await);
    let by_default = id(&app.camera(&globex, "By default", "O-4", None).await);
    let globex_fast = id(&app.camera(&globex, "Globex fast", "O-5", None).await);
    let company_rule = create_rule(
        &app,
        &acme,
        json!({ "type": "CAMERA_OFFLINE", "durationSeconds": 1, "severity": "warning" }),
    )
    .await;
    create_rule(
        &app,
        &acme,
        json!({ "type": "CAMERA_OFFLINE", "cameraId": by_camera, "durationSeconds": 3600 }),
    )
    .await;
    create_rule(
        &app,
        &acme,
        json!({ "type": "CAMERA_OFFLINE", "cameraId": muted, "enabled": false }),
    )
    .await;
    create_rule(
        &app,
        &globex,
        json!({ "type": "CAMERA_OFFLINE", "cameraId": globex_fast, "durationSeconds": 1 }),
    )
    .await;
    let all = [&by_company, &by_camera, &muted, &by_default, &globex_fast];
    for cam in all {
        app.cp
            .report_health(vec![support::health_at_fps(cam, StreamState::Online, 25.0)])
            .await
            .unwrap();
    }
    for cam in all {
        app.cp
            .report_health(vec![support::health_at_fps(cam, StreamState::Offline, 0.0)])
            .await
            .unwrap();
    }
    let raised = until("both alerts", 30, async || {
        let open = alerts(&app, &admin, "?type=CAMERA_OFFLINE&state=open").await;
        (open.len() >= 2).then_some(open)
    })
    .await;
    // Two more sweeps (5 s apart) for anything else to show up.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let open = alerts(&app, &admin, "?type=CAMERA_OFFLINE&state=open").await;
    let mut cams: Vec<&str> = open
        .iter()
        .map(|a| a["cameraId"].as_str().unwrap())
        .collect();
    cams.sort_unstable();
    let mut want = vec![by_company.as_str(), globex_fast.as_str()];
    want.sort_unstable();
    assert_eq!(cams, want, "{raised:?}");
    let company_alert = open
        .iter()
        .find(|a| a["cameraId"] == by_company.as_str())
        .unwrap();
    assert_eq!(company_alert["severity"], "warning", "the company rule's");
    let camera_alert = open
        .iter()
        .find(|a| a["cameraId"] == globex_fast.as_str())
        .unwrap();
    assert_eq!(camera_alert["severity"], "critical", "the type's default");

    // Muting the company rule resolves its open alert.
    let r = app
        .call(
            "PUT",
            &format!("/api/v1/alert-rules/{}", id(&company_rule)),
            Some(&acme),
            Some(json!({ "type": "CAMERA_OFFLINE", "enabled": false })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    until("the muted alert resolved", 20, async || {
        alerts(&app, &acme, "?state=resolved")
            .await
            .into_iter()
            .find(|a| a["cameraId"] == by_company.as_str())
    })
    .await;
    assert!(alerts(&app, &acme, "?state=open").await.is_empty());
}

/// A camera's frame rate drops to a fifth of its nominal for longer than its rule's
/// duration → `STREAM_FPS_LOW` (raised by the sweeper from the health reports); back to
/// normal → resolved.
#[tokio::test]
async fn stream_quality_is_raised_and_resolved_from_health_reports() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let cam = id(&app.camera(&acme, "Yard", "Q-1", None).await);
    create_rule(
        &app,
        &acme,
        json!({ "type": "STREAM_FPS_LOW", "threshold": 0.5, "durationSeconds": 2 }),
    )
    .await;
    // Bitrate and dropped frames stay fine: only the frame rate alert may appear.
    let feed = async |fps: f32, for_: Duration| {
        let end = Instant::now() + for_;
        while Instant::now() < end {
            app.cp
                .report_health(vec![support::health_at_fps(&cam, StreamState::Online, fps)])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    feed(25.0, Duration::from_secs(6)).await;
    assert!(alerts(&app, &acme, "").await.is_empty());
    let low_since = Instant::now();
    let alert = loop {
        feed(5.0, Duration::from_secs(1)).await;
        if let Some(a) = alerts(&app, &acme, "?type=STREAM_FPS_LOW&state=open")
            .await
            .into_iter()
            .next()
        {
            break a;
        }
        assert!(
            low_since.elapsed() < Duration::from_secs(30),
            "no STREAM_FPS_LOW"
        );
    };
    assert!(
        low_since.elapsed() >= Duration::from_secs(2),
        "raised before the duration"
    );
    assert_eq!(alert["cameraId"], cam.as_str());
    assert_eq!(alert["severity"], "warning");
    assert!(
        alert["message"].as_str().unwrap().contains("5.0 fps"),
        "{alert}"
    );
    assert_eq!(
        alerts(&app, &acme, "?state=open").await.len(),
        1,
        "only the frame rate"
    );
    let back = Instant::now();
    loop {
        feed(25.0, Duration::from_secs(1)).await;
        if alerts(&app, &acme, "?type=STREAM_FPS_LOW&state=resolved")
            .await
            .len()
            == 1
        {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(30), "not resolved");
    }
    assert!(alerts(&app, &acme, "?state=open").await.is_empty());
}

/// A token steady at about two requests per (one-second, for the test) bucket, then a burst
/// far above its usual rate → `API_UNUSUAL_USAGE` for the owner's company; resolved after
/// the rule's quiet period.
#[tokio::test]
async fn unusual_api_usage_is_raised_and_resolved_after_quiet() {
    let app = TestApp::start(|c| c.api_usage_bucket = Duration::from_secs(1)).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    create_rule(
        &app,
        &acme,
        json!({ "type": "API_UNUSUAL_USAGE", "threshold": 4, "minimum": 60,
                "durationSeconds": 3, "severity": "critical" }),
    )
    .await;
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&acme),
            Some(json!({ "name": "t", "permissions": ["cameras:read"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let token = r.json["data"]["tokenSecret"].as_str().unwrap().to_owned();
    let token_id = r.json["data"]["id"].as_str().unwrap().to_owned();
    let steady_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < steady_until {
        let r = app.call("GET", "/api/v1/cameras", Some(&token), None).await;
        assert_eq!(r.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    assert!(
        alerts(&app, &acme, "?type=API_UNUSUAL_USAGE")
            .await
            .is_empty(),
        "a steady rate is usual"
    );
    next_second().await;
    for _ in 0..40 {
        app.call("GET", "/api/v1/cameras", Some(&token), None).await;
    }
    let open = alerts(&app, &acme, "?type=API_UNUSUAL_USAGE&state=open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["tokenId"], token_id.as_str());
    assert_eq!(open[0]["severity"], "critical");
    until("resolved after the quiet period", 20, async || {
        (alerts(&app, &acme, "?type=API_UNUSUAL_USAGE&state=resolved")
            .await
            .len()
            == 1)
            .then_some(())
    })
    .await;
}

/// `API_RATE_LIMIT` follows the owner's company rule: muted for one company, re-graded for
/// another; the default elsewhere.
#[tokio::test]
async fn rate_limit_alerts_follow_their_rule() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (globex, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    create_rule(
        &app,
        &acme,
        json!({ "type": "API_RATE_LIMIT", "enabled": false }),
    )
    .await;
    create_rule(
        &app,
        &globex,
        json!({ "type": "API_RATE_LIMIT", "severity": "critical" }),
    )
    .await;
    for owner in [&acme, &globex] {
        let r = app
            .call(
                "POST",
                "/api/v1/tokens",
                Some(owner),
                Some(json!({ "name": "t", "permissions": ["cameras:read"], "rateLimit": 2 })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let token = r.json["data"]["tokenSecret"].as_str().unwrap().to_owned();
        let mut refused = 0;
        for _ in 0..4 {
            let r = app.call("GET", "/api/v1/cameras", Some(&token), None).await;
            refused += usize::from(r.status == StatusCode::TOO_MANY_REQUESTS);
        }
        assert_eq!(refused, 2);
    }
    assert!(alerts(&app, &acme, "?type=API_RATE_LIMIT").await.is_empty());
    let g = alerts(&app, &globex, "?type=API_RATE_LIMIT").await;
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0]["severity"], "critical");
}

/// The recorder is not part of this test: the control plane's sink gets its events as the
/// binary would hand them over.
struct NoRecorder;

impl camstream_controlplane::recordings::RecorderHost for NoRecorder {
    fn set_recording(&self, _: &str, _: bool) {}
    fn set_recorded_cameras(&self, _: Vec<String>) {}
    fn read_index(
        &self,
        _: &std::path::Path,
    ) -> Result<camstream_controlplane::recordings::FileIndex, String> {
        Err("no recorder in this test".into())
    }
}

/// `STORAGE_FULL` and `RECORDING_FAILED` from the recorder follow the camera's company
/// rule: muted, re-graded, or the default (critical) elsewhere.
#[tokio::test]
async fn recorder_alerts_follow_their_rule() {
    use camstream_controlplane::recordings::RecorderEvent;
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (globex, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let acme_cam = id(&app.camera(&acme, "Vault", "S-1", None).await);
    let globex_cam = id(&app.camera(&globex, "Dock", "S-2", None).await);
    create_rule(
        &app,
        &acme,
        json!({ "type": "STORAGE_FULL", "enabled": false }),
    )
    .await;
    create_rule(
        &app,
        &acme,
        json!({ "type": "RECORDING_FAILED", "cameraId": acme_cam, "severity": "info" }),
    )
    .await;
    let mut sink = app
        .cp
        .start_recordings(std::sync::Arc::new(NoRecorder))
        .await
        .unwrap();
    for (camera, code) in [
        (&acme_cam, "STORAGE_FULL"),
        (&acme_cam, "RECORDING_FAILED"),
        (&globex_cam, "STORAGE_FULL"),
    ] {
        sink.handle(RecorderEvent::Alert {
            camera: camera.clone(),
            code,
            message: format!("{code} in a test"),
            at: std::time::SystemTime::now(),
        })
        .await;
    }
    let a = alerts(&app, &acme, "").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (&a[0]["type"], &a[0]["severity"]),
        (&json!("RECORDING_FAILED"), &json!("info"))
    );
    let g = alerts(&app, &globex, "").await;
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(
        (&g[0]["type"], &g[0]["severity"]),
        (&json!("STORAGE_FULL"), &json!("critical"))
    );
}

/// Two nodes sharing a Redis (and a database): a token's requests count as one, so a burst
/// split between the nodes, which neither would find unusual alone (each sees half, below
/// the rule's minimum), raises one `API_UNUSUAL_USAGE`.
#[tokio::test]
async fn unusual_api_usage_is_judged_cluster_wide_through_redis() {
    let redis = support::Redis::start();
    let db_dir = support::temp_dir("usage-db");
    let db = format!("sqlite://{}", db_dir.join("shared.db").display());
    let node = |redis: String, db: String| {
        move |c: &mut camstream_controlplane::ControlPlaneConfig| {
            c.redis_url = Some(redis);
            c.database_url = Some(db);
            c.jwt_secret = Some("a-shared-test-secret-of-32-bytes!".into());
            c.api_usage_bucket = Duration::from_secs(1);
        }
    };
    let a = TestApp::start(node(redis.url(), db.clone())).await;
    let b = TestApp::start(node(redis.url(), db.clone())).await;
    let admin = a.admin().await;
    let (acme, _) = a.user(&admin, "acme-op", "operator", Some("acme")).await;
    // 600 a minute is 10 per one-second bucket; the usual rate is about 2 per bucket.
    create_rule(
        &a,
        &acme,
        json!({ "type": "API_UNUSUAL_USAGE", "threshold": 4, "minimum": 600 }),
    )
    .await;
    let r = a
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&acme),
            Some(json!({ "name": "t", "permissions": ["cameras:read"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let token = r.json["data"]["tokenSecret"].as_str().unwrap().to_owned();
    let nodes = [&a, &b];
    let steady_until = Instant::now() + Duration::from_secs(8);
    let mut i = 0;
    while Instant::now() < steady_until {
        let r = nodes[i % 2]
            .call("GET", "/api/v1/cameras", Some(&token), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        i += 1;
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    assert!(
        alerts(&a, &acme, "?type=API_UNUSUAL_USAGE")
            .await
            .is_empty()
    );
    // 16 within a bucket, 8 on each node.
    next_second().await;
    let start = Instant::now();
    for i in 0..16 {
        nodes[i % 2]
            .call("GET", "/api/v1/cameras", Some(&token), None)
            .await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "the burst was too slow: {:?}",
        start.elapsed()
    );
    let open = alerts(&b, &acme, "?type=API_UNUSUAL_USAGE&state=open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["occurrences"], 1);
    drop((a, b));
    let _ = std::fs::remove_dir_all(db_dir);
}
