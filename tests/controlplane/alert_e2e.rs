//! Issue 13 end to end, on the real binary: ffmpeg publishes a camera, then stops. The
//! camera goes offline, `CAMERA_OFFLINE` is raised after the (shortened) threshold and
//! reaches the operator once by email (a real SMTP server, aiosmtpd), once by webhook (a
//! real HTTP receiver that checks the signature) and once over the live events WebSocket
//! (`GET /api/v1/ws`, connected for the whole test). The camera publishes again: the alert
//! is resolved, and that is delivered once on each channel too. Nothing is mocked in the
//! process.

use std::time::Duration;

use tokio::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::{Api, login};
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::common::ws::LiveEvents;
use crate::lifecycle::{start, wait_online};
use crate::peers::{Receiver, SmtpSink, until};

const SECRET: &str = "whsec-e2e-0123456789abcdef";
const OPERATOR_PASSWORD: &str = "Operator-Password-42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_stops_alerts_once_per_channel_and_its_return_resolves() {
    let clips = clips().await;
    let dir = std::env::temp_dir().join(format!("camstream-alert-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let smtp = SmtpSink::start(&dir).await;
    let rx = Receiver::start(SECRET).await;
    let server = start(
        "alert-e2e",
        [
            "--alert-offline-after",
            "2s",
            "--smtp-url",
            &smtp.url(),
            "--smtp-from",
            "alerts@camstream.test",
            "--notify-poll",
            "200ms",
            // The webhook receiver is on loopback.
            "--notify-private-targets",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let admin = Api::admin(&server).await;
    admin
        .ok(
            Method::POST,
            "/api/v1/users",
            Some(
                json!({ "username": "acme-op", "password": OPERATOR_PASSWORD,
                         "role": "operator", "company": "acme" }),
            ),
            StatusCode::CREATED,
        )
        .await;
    let r = login(&server, "acme-op", OPERATOR_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let op = Api::with_token(
        &server,
        r.json["data"]["accessToken"]
            .as_str()
            .expect("token")
            .to_owned(),
    );
    op.ok(
        Method::PUT,
        "/api/v1/users/me/notification-preferences",
        Some(json!({ "email": "ops@acme.test", "channels": { "critical": ["email"] } })),
        StatusCode::OK,
    )
    .await;
    op.ok(
        Method::POST,
        "/api/v1/notification-channels",
        Some(
            json!({ "name": "acme pager", "kind": "webhook", "target": rx.hook_url(),
                     "secret": SECRET }),
        ),
        StatusCode::CREATED,
    )
    .await;
    let cam = op.create_camera("Gate", "E2E-ALERT-1").await;
    let id = cam["id"].as_str().expect("id").to_owned();
    let live = LiveEvents::connect(&server, &op.token).await;
    let alert_events = |kind: &str| {
        live.of_type(kind)
            .into_iter()
            .filter(|m| m["cameraId"] == id.as_str() && m["data"]["alertType"] == "CAMERA_OFFLINE")
            .count()
    };
    let rtmp = cam["rtmpUrl"].as_str().expect("rtmpUrl").to_owned();

    let publish = |n: u32| {
        Ffmpeg::publish(
            &clips.av_long,
            &rtmp,
            server.dir.join(format!("publish-{n}.stderr")),
        )
    };
    let publisher = publish(1);
    wait_online(&op, &id, Instant::now()).await;
    drop(publisher); // kill_on_drop: the camera stops
    let stopped = Instant::now();
    until(
        "CAMERA_OFFLINE by email, webhook and WebSocket",
        Duration::from_secs(45),
        async || {
            (smtp.messages().len() == 1
                && rx.delivered_hooks().len() == 1
                && alert_events("alert.opened") == 1)
                .then_some(())
        },
    )
    .await;
    println!(
        "CAMERA_OFFLINE delivered {:?} after the publisher stopped (threshold 2 s, reconnect window 2 s, sweep every 5 s)",
        stopped.elapsed()
    );
    let mail = &smtp.messages()[0];
    assert!(mail.contains("X-Rcpt: ops@acme.test"), "{mail}");
    assert!(mail.contains("CAMERA_OFFLINE opened"), "{mail}");
    assert!(mail.contains(&id), "{mail}");
    let hook = rx.delivered_hooks()[0].json.clone().expect("webhook JSON");
    assert_eq!(
        (&hook["event"], &hook["kind"], &hook["cameraId"]),
        (&json!("opened"), &json!("CAMERA_OFFLINE"), &json!(id)),
        "{hook}"
    );
    let alerts = op
        .ok(
            Method::GET,
            "/api/v1/alerts?type=CAMERA_OFFLINE&state=open",
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(alerts.as_array().map(Vec::len), Some(1), "{alerts}");

    // It comes back: resolved, delivered once on each channel.
    let _publisher = publish(2);
    wait_online(&op, &id, Instant::now()).await;
    until(
        "the resolution by email, webhook and WebSocket",
        Duration::from_secs(30),
        async || {
            (smtp.messages().len() == 2
                && rx.delivered_hooks().len() == 2
                && alert_events("alert.resolved") == 1)
                .then_some(())
        },
    )
    .await;
    assert!(smtp.messages()[1].contains("CAMERA_OFFLINE resolved"));
    assert_eq!(
        rx.delivered_hooks()[1].json.as_ref().expect("JSON")["event"],
        "resolved"
    );
    // Later sweeps and outbox re-reads send nothing more.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(rx.hits().len(), 2, "{:?}", rx.hits());
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    // Over the WebSocket: opened once, resolved once, and the camera's status changes.
    assert_eq!(alert_events("alert.opened"), 1, "{:?}", live.messages());
    assert_eq!(alert_events("alert.resolved"), 1, "{:?}", live.messages());
    let statuses: Vec<String> = live
        .of_type("camera.status")
        .iter()
        .filter(|m| m["cameraId"] == id.as_str())
        .filter_map(|m| m["data"]["status"].as_str().map(str::to_owned))
        .collect();
    let online = statuses.iter().position(|s| s == "online");
    assert!(
        online.is_some_and(|i| statuses[i..].iter().any(|s| s == "offline")),
        "online, then offline: {statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("online"),
        "{statuses:?}"
    );
    assert_eq!(live.closed(), None, "the socket stayed open");
    let _ = std::fs::remove_dir_all(&dir);
}
