//! Durable notification queue across `kill -9`: a webhook delivery is queued (and failing,
//! its receiver down) when the process is killed; after a restart on the same data
//! directory, with the receiver up, it is delivered exactly once.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Api, login};
use crate::lifecycle::start;
use crate::peers::{Receiver, until};

const SECRET: &str = "whsec-kill9-0123456789abcdef";

async fn deliveries(api: &Api) -> Vec<Value> {
    api.ok(
        Method::GET,
        "/api/v1/notifications/deliveries",
        None,
        StatusCode::OK,
    )
    .await
    .as_array()
    .cloned()
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_queued_before_kill9_is_delivered_once_after_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = start(
        "notify-kill9",
        [
            "--notify-poll",
            "200ms",
            "--notify-backoff-base",
            "300ms",
            "--notify-backoff-max",
            "1s",
            "--notify-breaker-failures",
            "1000",
            // The receiver is on loopback.
            "--notify-private-targets",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let api = Api::admin(&server).await;
    api.ok(
        Method::POST,
        "/api/v1/users",
        Some(
            json!({ "username": "acme-op", "password": "User-Password-42",
                     "role": "operator", "company": "acme" }),
        ),
        StatusCode::CREATED,
    )
    .await;
    api.ok(
        Method::POST,
        "/api/v1/notification-channels",
        Some(
            json!({ "name": "acme hook", "kind": "webhook", "company": "acme",
                     "target": format!("http://127.0.0.1:{port}/hook"), "secret": SECRET }),
        ),
        StatusCode::CREATED,
    )
    .await;
    // A burst of failed logins raises LOGIN_FAILURES for acme.
    for _ in 0..12 {
        let r = login(&server, "acme-op", "Not-The-Password-1").await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::TOO_MANY_REQUESTS,
            "{}",
            r.json
        );
    }
    let queued = until(
        "a failing queued delivery",
        Duration::from_secs(30),
        async || {
            deliveries(&api)
                .await
                .into_iter()
                .find(|d| d["state"] == "pending" && d["attempts"].as_i64() >= Some(1))
        },
    )
    .await;
    assert_eq!(deliveries(&api).await.len(), 1);
    let id = queued["id"].as_str().unwrap().to_owned();
    assert!(
        queued["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("request failed"),
        "{queued}"
    );

    server.kill9().await;
    let rx = Receiver::start_on(([127, 0, 0, 1], port).into(), SECRET).await;
    let server = server.relaunch(&[], &[]).await;
    until(
        "the delivery after the restart",
        Duration::from_secs(30),
        async || (rx.delivered_hooks().len() == 1).then_some(()),
    )
    .await;
    let api = Api::admin(&server).await;
    until(
        "the delivery marked sent",
        Duration::from_secs(10),
        async || {
            deliveries(&api)
                .await
                .into_iter()
                .find(|d| d["id"] == id.as_str() && d["state"] == "sent")
        },
    )
    .await;
    // More polls send nothing again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let body = hits[0].json.as_ref().expect("JSON body");
    assert_eq!(body["kind"], "LOGIN_FAILURES");
    assert_eq!(body["event"], "opened");
    assert_eq!(body["deliveryId"], id.as_str());
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    assert_eq!(deliveries(&api).await.len(), 1);
}
