//! Live events over `GET /api/v1/ws` against a real listener (the control plane's router
//! served on loopback, a tokio-tungstenite client): authentication by header and by first
//! message, the refused query-string token, the auth deadline, tenant isolation, health of
//! subscribed cameras, alert events from the outbox, resume and gaps, the slow consumer,
//! keepalive, revocation, and bad client messages. Health reports enter through
//! `ControlPlane::report_health` (what the data plane calls); alerts through the store and
//! the REST API, so the outbox tailer is what delivers them.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use camstream_controlplane::store::NewAlert;
use camstream_protocol::{StreamHealth, StreamState};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::TestApp;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Serves the app's router on a loopback port; returns its address.
async fn serve(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = app.router.clone();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

async fn connect(addr: SocketAddr, token: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().expect("hv"));
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Connects with the token as the first message; returns the socket and its `hello`.
async fn connect_msg(addr: SocketAddr, token: &str) -> (Ws, Value) {
    let mut ws = connect(addr, None).await.expect("connect");
    send(&mut ws, json!({ "type": "auth", "token": token })).await;
    let hello = next(&mut ws, Duration::from_secs(5)).await.expect("hello");
    assert_eq!(hello["type"], "hello", "{hello}");
    (ws, hello)
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// What the next message was.
#[derive(Debug)]
enum Got {
    Json(Value),
    Closed(Option<u16>),
    Timeout,
}

async fn recv(ws: &mut Ws, within: Duration) -> Got {
    let deadline = Instant::now() + within;
    loop {
        let m = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Got::Timeout,
            Ok(None) | Ok(Some(Err(_))) => return Got::Closed(None),
            Ok(Some(Ok(m))) => m,
        };
        match m {
            Message::Text(t) => {
                return Got::Json(serde_json::from_str(t.as_str()).expect("server sends JSON"));
            }
            Message::Close(f) => return Got::Closed(f.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
}

async fn next(ws: &mut Ws, within: Duration) -> Option<Value> {
    match recv(ws, within).await {
        Got::Json(v) => Some(v),
        _ => None,
    }
}

/// The next message of type `kind` within `within` (others are skipped).
async fn next_of(ws: &mut Ws, kind: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv(ws, left).await {
            Got::Json(v) if v["type"] == kind => return v,
            Got::Json(_) => {}
            other => panic!("waiting for {kind}: {other:?}"),
        }
    }
}

/// Every message within `within`.
async fn drain(ws: &mut Ws, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv(ws, left).await {
            Got::Json(v) => out.push(v),
            Got::Timeout => return out,
            Got::Closed(c) => panic!("closed ({c:?}) after {out:?}"),
        }
    }
}

/// The close code the server ends with (skipping messages).
async fn close_code(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv(ws, left).await {
            Got::Json(_) => {}
            Got::Closed(c) => return c,
            Got::Timeout => panic!("not closed within {within:?}"),
        }
    }
}

fn alert(camera: &str, company: &str, cause: &str) -> NewAlert {
    NewAlert {
        kind: "CAMERA_OFFLINE".into(),
        severity: "critical".into(),
        camera_id: Some(camera.into()),
        user_id: None,
        token_id: None,
        message: format!("camera {camera} offline"),
        cause: Some(cause.into()),
        company: Some(company.into()),
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let r = app.call("GET", "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&r.bytes);
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn authenticates_by_header_or_first_message_never_by_query() {
    let app = TestApp::start(|_| {}).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;

    let mut ws = connect(addr, Some(&admin)).await.expect("header auth");
    let hello = next(&mut ws, Duration::from_secs(5)).await.expect("hello");
    assert_eq!(hello["type"], "hello");
    assert!(hello["stream"].as_str().is_some_and(|s| s.len() == 36));
    assert!(hello["lastId"].is_u64(), "{hello}");

    let (_ws, hello2) = connect_msg(addr, &admin).await;
    assert_eq!(hello2["stream"], hello["stream"], "one stream per process");

    // A bad header is an ordinary HTTP 401 before any upgrade.
    match connect(addr, Some("not-a-token")).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), StatusCode::UNAUTHORIZED),
        other => panic!("expected 401, got {other:?}"),
    }
    // A bad token as first message closes with 4001.
    let mut ws = connect(addr, None).await.expect("connect");
    send(&mut ws, json!({ "type": "auth", "token": "cst_nope" })).await;
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4001)
    );
    // Anything but auth first closes with 4001.
    let mut ws = connect(addr, None).await.expect("connect");
    send(&mut ws, json!({ "type": "subscribe", "cameraIds": [] })).await;
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4001)
    );

    // A token in the URL is refused with 400, upgrade or not.
    let r = app
        .call("GET", &format!("/api/v1/ws?token={admin}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.code(), "VALIDATION_FAILED");
    let req = format!("ws://{addr}/api/v1/ws?access_token={admin}");
    match tokio_tungstenite::connect_async(req).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), StatusCode::BAD_REQUEST),
        other => panic!("expected 400, got {other:?}"),
    }
    // Not an upgrade: 400 in the error envelope.
    let r = app.call("GET", "/api/v1/ws", None, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "VALIDATION_FAILED");
}

#[tokio::test]
async fn no_auth_message_in_time_closes_4001() {
    let app = TestApp::start(|c| c.ws.auth_timeout = Duration::from_millis(300)).await;
    let addr = serve(&app).await;
    let mut ws = connect(addr, None).await.expect("connect");
    let start = Instant::now();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4001)
    );
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn tenants_see_only_their_cameras_and_alerts() {
    let app = TestApp::start(|_| {}).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let (a_tok, _) = app.user(&admin, "a-op", "operator", Some("acme")).await;
    let (b_tok, _) = app.user(&admin, "b-op", "operator", Some("globex")).await;
    let cam = id(&app.camera(&a_tok, "Gate", "WS-TEN-1", Some("acme")).await);

    let (mut a, _) = connect_msg(addr, &a_tok).await;
    let (mut b, _) = connect_msg(addr, &b_tok).await;
    send(
        &mut b,
        json!({ "type": "subscribe", "cameraIds": [cam, "no-such-cam"] }),
    )
    .await;
    let sub = next_of(&mut b, "subscribed", Duration::from_secs(5)).await;
    assert_eq!(sub["cameraIds"], json!([]));
    let err = next_of(&mut b, "error", Duration::from_secs(5)).await;
    assert_eq!(err["code"], "CAMERA_NOT_FOUND");
    assert_eq!(err["cameraIds"], json!([cam, "no-such-cam"]));
    send(&mut a, json!({ "type": "subscribe", "cameraIds": [cam] })).await;
    let sub = next_of(&mut a, "subscribed", Duration::from_secs(5)).await;
    assert_eq!(sub["cameraIds"], json!([cam]));

    app.cp
        .report_health(vec![support::health(&cam, StreamState::Online)])
        .await
        .expect("report");
    let store = app.cp.store();
    store
        .create_alert(alert(&cam, "acme", &format!("CAMERA_OFFLINE:{cam}")))
        .await
        .expect("alert");
    let status = next_of(&mut a, "camera.status", Duration::from_secs(5)).await;
    assert_eq!(status["cameraId"], cam.as_str());
    assert_eq!(status["data"]["status"], "online");
    let opened = next_of(&mut a, "alert.opened", Duration::from_secs(5)).await;
    assert_eq!(opened["cameraId"], cam.as_str());
    assert_eq!(opened["data"]["alertType"], "CAMERA_OFFLINE");
    // Company B saw none of it (health, status, alert).
    let seen = drain(&mut b, Duration::from_millis(1500)).await;
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn health_comes_about_every_second_for_subscribed_cameras_only() {
    let app = TestApp::start(|_| {}).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let cam = id(&app.camera(&admin, "Yard", "WS-HEALTH-1", None).await);
    let other = id(&app.camera(&admin, "Dock", "WS-HEALTH-2", None).await);
    // The data plane's report loop: every camera it knows, once a second.
    let cp = app.cp.clone();
    let (c1, c2) = (cam.clone(), other.clone());
    let reporter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let _ = cp
                .report_health(vec![
                    support::health(&c1, StreamState::Online),
                    support::health(&c2, StreamState::Online),
                ])
                .await;
        }
    });
    let (mut ws, _) = connect_msg(addr, &admin).await;
    send(&mut ws, json!({ "type": "subscribe", "cameraIds": [cam] })).await;
    next_of(&mut ws, "subscribed", Duration::from_secs(5)).await;
    let got = drain(&mut ws, Duration::from_millis(3500)).await;
    let health: Vec<&Value> = got
        .iter()
        .filter(|v| v["type"] == "stream.health")
        .collect();
    assert!(
        (2..=5).contains(&health.len()),
        "about one a second: {got:?}"
    );
    assert!(health.iter().all(|h| h["cameraId"] == cam.as_str()));
    assert_eq!(health[0]["data"]["fps"], 25.0);
    assert_eq!(health[0]["data"]["resolution"], "1280x720");
    send(
        &mut ws,
        json!({ "type": "unsubscribe", "cameraIds": [cam] }),
    )
    .await;
    let sub = next_of(&mut ws, "subscribed", Duration::from_secs(5)).await;
    assert_eq!(sub["cameraIds"], json!([]));
    let got = drain(&mut ws, Duration::from_millis(2500)).await;
    assert!(got.iter().all(|v| v["type"] != "stream.health"), "{got:?}");
    reporter.abort();
}

#[tokio::test]
async fn alerts_opened_acknowledged_resolved_arrive() {
    let app = TestApp::start(|_| {}).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let (op, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let cam = id(&app.camera(&op, "Gate", "WS-ALERT-1", Some("acme")).await);
    let (mut ws, _) = connect_msg(addr, &op).await;
    let cause = format!("CAMERA_OFFLINE:{cam}");
    let a = app
        .cp
        .store()
        .create_alert(alert(&cam, "acme", &cause))
        .await
        .expect("alert");
    let opened = next_of(&mut ws, "alert.opened", Duration::from_secs(5)).await;
    assert_eq!(opened["data"]["alertId"], a.id.as_str());
    assert_eq!(opened["data"]["severity"], "critical");
    let r = app
        .call(
            "POST",
            &format!("/api/v1/alerts/{}/ack", a.id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let ack = next_of(&mut ws, "alert.acknowledged", Duration::from_secs(5)).await;
    assert_eq!(ack["data"]["alertId"], a.id.as_str());
    assert!(ack["data"]["actor"].is_string());
    assert!(
        app.cp
            .store()
            .resolve_cause(&cause, 1)
            .await
            .expect("resolve")
    );
    let resolved = next_of(&mut ws, "alert.resolved", Duration::from_secs(5)).await;
    assert_eq!(resolved["data"]["alertId"], a.id.as_str());
    assert!(resolved["id"].as_u64() > ack["id"].as_u64());
    assert!(ack["id"].as_u64() > opened["id"].as_u64());
    // Each once.
    let more = drain(&mut ws, Duration::from_millis(1500)).await;
    assert!(more.is_empty(), "{more:?}");
}

#[tokio::test]
async fn resume_returns_exactly_the_missed_events_and_gaps_otherwise() {
    let app = TestApp::start(|c| c.ws.backlog_len = 6).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let cam = id(&app
        .camera(&admin, "Gate", "WS-RESUME-1", Some("acme"))
        .await);
    let store = app.cp.store();
    // A witness stays connected, so the test knows when events were published.
    let (mut witness, _) = connect_msg(addr, &admin).await;
    let (mut ws, hello) = connect_msg(addr, &admin).await;
    let stream = hello["stream"].as_str().expect("stream").to_owned();
    store
        .create_alert(alert(&cam, "acme", "c-0"))
        .await
        .expect("alert");
    let first = next_of(&mut ws, "alert.opened", Duration::from_secs(5)).await;
    next_of(&mut witness, "alert.opened", Duration::from_secs(5)).await;
    let cursor = first["id"].as_u64().expect("id");
    ws.close(None).await.expect("close");
    drop(ws);

    // Missed while away: three.
    let mut missed = Vec::new();
    for i in 1..=3 {
        store
            .create_alert(alert(&cam, "acme", &format!("c-{i}")))
            .await
            .expect("alert");
        missed.push(next_of(&mut witness, "alert.opened", Duration::from_secs(5)).await);
    }
    let (mut ws, _) = connect_msg(addr, &admin).await;
    send(
        &mut ws,
        json!({ "type": "resume", "after": cursor, "stream": stream }),
    )
    .await;
    let mut replayed = Vec::new();
    loop {
        let v = next(&mut ws, Duration::from_secs(5)).await.expect("replay");
        if v["type"] == "resumed" {
            assert_eq!(v["count"], 3, "{v}");
            break;
        }
        replayed.push(v);
    }
    assert_eq!(replayed, missed);

    // Another stream id: a gap (a restarted server or another node).
    send(
        &mut ws,
        json!({ "type": "resume", "after": cursor, "stream": "00000000-0000-0000-0000-000000000000" }),
    )
    .await;
    let gap = next_of(&mut ws, "gap", Duration::from_secs(5)).await;
    assert_eq!(gap["reason"], "stream");
    assert_eq!(gap["stream"], stream.as_str());
    // A cursor older than the backlog (6 events): a gap too.
    for i in 4..=9 {
        store
            .create_alert(alert(&cam, "acme", &format!("c-{i}")))
            .await
            .expect("alert");
        next_of(&mut witness, "alert.opened", Duration::from_secs(5)).await;
    }
    send(
        &mut ws,
        json!({ "type": "resume", "after": cursor, "stream": stream }),
    )
    .await;
    let gap = next_of(&mut ws, "gap", Duration::from_secs(5)).await;
    assert_eq!(gap["reason"], "expired");
    // A cursor ahead of the server: a gap.
    send(
        &mut ws,
        json!({ "type": "resume", "after": 1_000_000, "stream": stream }),
    )
    .await;
    let gap = next_of(&mut ws, "gap", Duration::from_secs(5)).await;
    assert_eq!(gap["reason"], "ahead");
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_connection_stays_usable() {
    let app = TestApp::start(|_| {}).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let cam = id(&app.camera(&admin, "Gate", "WS-BAD-1", None).await);
    let (mut ws, _) = connect_msg(addr, &admin).await;
    ws.send(Message::text("{not json")).await.expect("send");
    let e = next_of(&mut ws, "error", Duration::from_secs(5)).await;
    assert_eq!(e["code"], "INVALID_JSON");
    send(&mut ws, json!({ "type": "dance" })).await;
    let e = next_of(&mut ws, "error", Duration::from_secs(5)).await;
    assert_eq!(e["code"], "UNKNOWN_TYPE");
    send(&mut ws, json!({ "type": "subscribe", "cameraIds": "x" })).await;
    let e = next_of(&mut ws, "error", Duration::from_secs(5)).await;
    assert_eq!(e["code"], "INVALID_MESSAGE");
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    let e = next_of(&mut ws, "error", Duration::from_secs(5)).await;
    assert_eq!(e["code"], "INVALID_MESSAGE");
    send(&mut ws, json!({ "type": "subscribe", "cameraIds": [cam] })).await;
    let sub = next_of(&mut ws, "subscribed", Duration::from_secs(5)).await;
    assert_eq!(sub["cameraIds"], json!([cam]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_4008_and_memory_stays_bounded() {
    let app = TestApp::start(|_| {}).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let cam = id(&app.camera(&admin, "Gate", "WS-SLOW-1", None).await);
    let slow_before = metric(&app, "camstream_ws_slow_consumers_total").await;
    let (mut ws, _) = connect_msg(addr, &admin).await;
    send(&mut ws, json!({ "type": "subscribe", "cameraIds": [cam] })).await;
    next_of(&mut ws, "subscribed", Duration::from_secs(5)).await;
    // From here on the client reads nothing while health events pour in.
    let rss_before = rss_bytes();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut sent = 0u64;
    let mut peak = rss_before;
    loop {
        let batch: Vec<StreamHealth> = (0..200)
            .map(|_| support::health(&cam, StreamState::Online))
            .collect();
        app.cp.report_health(batch).await.expect("report");
        sent += 200;
        // The server's tasks (the connection's dispatcher) get their turn.
        tokio::time::sleep(Duration::from_millis(1)).await;
        peak = peak.max(rss_bytes());
        if metric(&app, "camstream_ws_slow_consumers_total").await > slow_before {
            break;
        }
        assert!(Instant::now() < deadline, "not dropped after {sent} events");
    }
    let growth = peak.saturating_sub(rss_before);
    println!(
        "slow consumer dropped after {sent} events; RSS grew {} KiB",
        growth / 1024
    );
    assert!(growth < 64 << 20, "RSS grew {growth} bytes");
    // Reading now: what was in flight, then the close frame with 4008.
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(30)).await,
        Some(4008)
    );
}

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_closed_4009() {
    let app = TestApp::start(|c| c.ws.ping_interval = Duration::from_millis(300)).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let (mut ws, _) = connect_msg(addr, &admin).await;
    // An answering client stays (tungstenite pongs while it reads).
    let got = drain(&mut ws, Duration::from_millis(1200)).await;
    assert!(got.is_empty(), "{got:?}");
    // One that stops reading (so stops answering) is closed.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4009)
    );
}

#[tokio::test]
async fn a_revoked_token_closes_4001() {
    let app = TestApp::start(|c| c.ws.auth_recheck = Duration::from_millis(300)).await;
    let addr = serve(&app).await;
    let admin = app.admin().await;
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({ "name": "ws", "permissions": ["cameras:read"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let secret = r.json["data"]["tokenSecret"].as_str().expect("secret");
    let token_id = r.json["data"]["id"].as_str().expect("id");
    let (mut ws, _) = connect_msg(addr, secret).await;
    let got = drain(&mut ws, Duration::from_millis(800)).await;
    assert!(got.is_empty(), "still admitted: {got:?}");
    let r = app
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{token_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.json);
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4001)
    );
    // A token without cameras:read may not listen at all.
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({ "name": "nothing", "permissions": ["recordings:read"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let secret = r.json["data"]["tokenSecret"].as_str().expect("secret");
    let mut ws = connect(addr, None).await.expect("connect");
    send(&mut ws, json!({ "type": "auth", "token": secret })).await;
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4003)
    );
}
