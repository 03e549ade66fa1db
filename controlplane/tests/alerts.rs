//! Alerts in process: a camera that was streaming goes offline and stays so past a
//! shortened `alert_offline_after` → one CAMERA_OFFLINE alert for its tenant (raised by the
//! control plane's sweeper, not by the test), acknowledged once, resolved when the camera
//! streams again; filters, tenancy and bad input of `GET /api/v1/alerts`.

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use camstream_protocol::StreamState;
use serde_json::Value;
use support::TestApp;

async fn alerts(app: &TestApp, who: &str, query: &str) -> Vec<Value> {
    let r = app
        .call("GET", &format!("/api/v1/alerts{query}"), Some(who), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.json);
    r.json["data"].as_array().cloned().unwrap_or_default()
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `camstream_alerts_open{type="CAMERA_OFFLINE"}` from `/metrics`.
async fn open_offline_gauge(app: &TestApp) -> Option<f64> {
    let m = app.call("GET", "/metrics", None, None).await;
    let text = String::from_utf8(m.bytes).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("camstream_alerts_open{type=\"CAMERA_OFFLINE\"} "))?
        .parse()
        .ok()
}

#[tokio::test]
async fn an_offline_camera_raises_one_alert_for_its_tenant_which_resolves_when_it_returns() {
    let app = TestApp::start(|c| c.alert_offline_after = Duration::from_secs(1)).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (globex, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let (nobody, _) = app.user(&admin, "nobody-op", "operator", None).await;
    let cam = app.camera(&acme, "Gate", "AL-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Never streamed: no alert, however long it stays offline.
    let quiet = app.camera(&acme, "Spare", "AL-2", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    app.cp
        .report_health(vec![support::health(&cam, StreamState::Online)])
        .await
        .unwrap();
    app.cp
        .report_health(vec![support::health(&cam, StreamState::Offline)])
        .await
        .unwrap();
    let went = Instant::now();
    let alert = until("CAMERA_OFFLINE", async || {
        alerts(&app, &acme, "?type=CAMERA_OFFLINE&state=open")
            .await
            .into_iter()
            .next()
    })
    .await;
    eprintln!(
        "CAMERA_OFFLINE raised {:?} after the camera went offline",
        went.elapsed()
    );
    assert_eq!(alert["cameraId"], cam.as_str());
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["occurrences"], 1);
    assert!(alert["acknowledgedAt"].is_null() && alert["resolvedAt"].is_null());
    let id = alert["id"].as_str().unwrap().to_owned();
    // Still one after more sweeps.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let open = alerts(&app, &acme, "?state=open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(
        !open.iter().any(|a| a["cameraId"] == quiet.as_str()),
        "a camera that never streamed raised an alert"
    );
    // The gauge the CamstreamCameraOffline rule (deploy/prometheus) watches.
    assert_eq!(open_offline_gauge(&app).await, Some(1.0));

    // Other tenants and company-less users see nothing and cannot acknowledge it.
    assert!(alerts(&app, &globex, "").await.is_empty());
    assert!(alerts(&app, &nobody, "").await.is_empty());
    for who in [&globex, &nobody] {
        let r = app
            .call("POST", &format!("/api/v1/alerts/{id}/ack"), Some(who), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
        assert_eq!(r.code(), "ALERT_NOT_FOUND");
    }
    // The admin sees it too.
    assert_eq!(alerts(&app, &admin, "?type=CAMERA_OFFLINE").await.len(), 1);

    // Acknowledged once; again changes nothing.
    let r = app
        .call(
            "POST",
            &format!("/api/v1/alerts/{id}/ack"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let acked_at = r.json["data"]["acknowledgedAt"].clone();
    assert!(acked_at.is_string(), "{}", r.json);
    let r = app
        .call(
            "POST",
            &format!("/api/v1/alerts/{id}/ack"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json["data"]["acknowledgedAt"], acked_at);
    assert_eq!(alerts(&app, &acme, "?acknowledged=false").await.len(), 0);
    assert_eq!(alerts(&app, &acme, "?acknowledged=true").await.len(), 1);

    // Back online: resolved by the next sweep.
    app.cp
        .report_health(vec![support::health(&cam, StreamState::Online)])
        .await
        .unwrap();
    let resolved = until("resolved", async || {
        alerts(&app, &acme, "?state=resolved")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(resolved["id"], id.as_str());
    assert!(resolved["resolvedAt"].is_string());
    assert!(alerts(&app, &acme, "?state=open").await.is_empty());
    until("the open-alerts gauge back to 0", async || {
        (open_offline_gauge(&app).await == Some(0.0)).then_some(())
    })
    .await;

    // Bad input.
    for q in [
        "?severity=bogus",
        "?type=lower_case",
        "?type=0",
        "?type=",
        "?state=closed",
        "?from=yesterday",
        "?limit=0",
        "?page=0",
        "?nope=1",
    ] {
        let r = app
            .call("GET", &format!("/api/v1/alerts{q}"), Some(&acme), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.json);
    }
    let r = app
        .call("POST", "/api/v1/alerts/not-an-id/ack", Some(&acme), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// More than ten failed logins for one user within a minute (throttled ones included) raise
/// one LOGIN_FAILURES alert for the user's company; a wrong password a few times does not.
#[tokio::test]
async fn a_burst_of_failed_logins_raises_one_alert_for_the_users_company() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (globex, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    let attempt = |user: &'static str| {
        app.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(serde_json::json!({ "username": user, "password": "Not-The-Password-1" })),
        )
    };
    for _ in 0..3 {
        let r = attempt("globex-op").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let mut throttled = 0;
    for n in 1..=11 {
        let r = attempt("acme-op").await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::TOO_MANY_REQUESTS,
            "{}",
            r.json
        );
        throttled += usize::from(r.status == StatusCode::TOO_MANY_REQUESTS);
        if n == 10 {
            // Ten is the limit, not over it.
            let none = alerts(&app, &acme, "?type=LOGIN_FAILURES").await;
            assert!(none.is_empty(), "raised at 10 failures: {none:?}");
        }
    }
    assert!(throttled > 0, "the login throttle did not engage");
    let mine = alerts(&app, &acme, "?type=LOGIN_FAILURES").await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["severity"], "warning");
    assert!(
        mine[0]["message"]
            .as_str()
            .unwrap()
            .contains("user:acme-op"),
        "{mine:?}"
    );
    assert!(
        alerts(&app, &globex, "?type=LOGIN_FAILURES")
            .await
            .is_empty()
    );
    // Admins see every tenant's.
    let all = alerts(&app, &admin, "?type=LOGIN_FAILURES").await;
    assert!(all.iter().any(|a| a["id"] == mine[0]["id"]), "{all:?}");
}

/// More than ten failed logins from one address within a minute, each for another name (a
/// password spray), raise one LOGIN_FAILURES alert for the address, which admins see.
#[tokio::test]
async fn failed_logins_from_one_address_raise_an_alert_for_admins() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let from: std::net::SocketAddr = "203.0.113.7:40000".parse().unwrap();
    for n in 1..=11 {
        let mut req = axum::http::Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                serde_json::json!({ "username": format!("spray-{n}"), "password": "Guess-Number-1" })
                    .to_string(),
            ))
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(from));
        let r = app.send(req).await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::TOO_MANY_REQUESTS,
            "{}",
            r.json
        );
        let raised = alerts(&app, &admin, "?type=LOGIN_FAILURES").await;
        assert_eq!(
            raised.len(),
            usize::from(n == 11),
            "after {n} failures: {raised:?}"
        );
    }
    let raised = alerts(&app, &admin, "?type=LOGIN_FAILURES").await;
    assert!(
        raised[0]["message"]
            .as_str()
            .unwrap()
            .contains("ip:203.0.113.7"),
        "{raised:?}"
    );
}

/// The node's recordings file system over 90 % used raises one STORAGE_FULL for admins
/// (not for a company's users: the disk is the node's); it resolves only once it is back
/// under 88 %, so a disk hovering at the line does not flap.
#[tokio::test]
async fn a_recordings_disk_over_ninety_percent_raises_storage_full_until_it_has_room() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let open = async || alerts(&app, &admin, "?type=STORAGE_FULL&state=open").await;
    app.cp.report_storage(0.85).await;
    app.cp.report_storage(0.90).await;
    assert!(open().await.is_empty(), "90 % is the line, not over it");
    for _ in 0..3 {
        app.cp.report_storage(0.93).await;
    }
    let raised = open().await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["severity"], "critical");
    assert_eq!(raised[0]["occurrences"], 1, "raised once, not per report");
    assert!(
        raised[0]["message"].as_str().unwrap().contains("93 % used"),
        "{raised:?}"
    );
    assert!(alerts(&app, &acme, "?type=STORAGE_FULL").await.is_empty());
    app.cp.report_storage(0.89).await;
    assert_eq!(open().await.len(), 1, "still open just under the line");
    app.cp.report_storage(0.87).await;
    assert!(open().await.is_empty(), "resolved with room");
    let all = alerts(&app, &admin, "?type=STORAGE_FULL").await;
    assert!(all[0]["resolvedAt"].is_string(), "{all:?}");
}
