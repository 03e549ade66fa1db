//! Live events in a cluster: a WebSocket client connected to node 2 sees the
//! `camera.status` and `recording.*` events of a camera published to and recorded on node 1
//! (relayed over the signed `/cluster/events` channel), and the `CAMERA_OFFLINE`
//! `alert.opened` once the publisher stops (read by node 2 from the shared outbox).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::failover::{ADMIN_PASSWORD, call, free_port, start_node};
use crate::common::services::Postgres;
use crate::common::ws::LiveEvents;
use crate::common::{Server, eventually};

async fn node(id: u64, db: &str, join: Option<String>) -> Server {
    let name = format!("cluster-events-node{id}");
    start_node(
        &name,
        id,
        free_port(),
        db,
        join,
        &["--alert-offline-after", "2s"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_on_one_node_sees_the_events_of_a_camera_on_another() {
    let pg = Postgres::start("cluster-events-pg").await;
    let db = pg.url();
    let n1 = node(1, &db, None).await;
    let n2 = node(2, &db, Some(format!("http://{}", n1.http))).await;
    let r: Value = n1
        .client()
        .post(n1.url("/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = r["data"]["accessToken"].as_str().expect("login").to_owned();
    // Sessions live in node 1's cache (no Redis here); an API token works on every node.
    let (status, t) = call(
        &n1,
        &session,
        reqwest::Method::POST,
        "/api/v1/tokens",
        Some(json!({ "name": "cluster events", "permissions": ["cameras:read", "cameras:write"] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let token = t["data"]["tokenSecret"].as_str().expect("token").to_owned();
    eventually(
        "two members holding leases",
        Duration::from_secs(30),
        || async {
            let (s, v) = call(&n1, &session, reqwest::Method::GET, "/api/v1/cluster", None).await;
            let members = v["data"]["members"].as_array()?;
            (s == StatusCode::OK
                && members.len() == 2
                && members.iter().all(|m| m["leaseHeld"] == true))
            .then_some(())
        },
    )
    .await;

    let live = LiveEvents::connect(&n2, &token).await;
    let (status, cam) = call(
        &n1,
        &token,
        reqwest::Method::POST,
        "/api/v1/cameras",
        Some(json!({ "name": "Dock", "serialNumber": "CLUSTER-EV-1", "isRecording": true })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cam}");
    let id = cam["data"]["id"].as_str().unwrap().to_owned();
    let key = cam["data"]["streamKey"].as_str().unwrap().to_owned();
    let clip = crate::common::ffmpeg::clips().await.av_short.clone();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut publisher = crate::common::ffmpeg::Ffmpeg::publish(
            &clip,
            &format!("rtmp://127.0.0.1:{}/live/{key}", n1.rtmp.port()),
            n1.dir.join(format!("ffmpeg-events-{attempts}.log")),
        );
        let ok = publisher.wait(Duration::from_secs(60)).await.success();
        if ok {
            break;
        }
        let err = publisher.stderr();
        assert!(
            attempts < 5 && err.contains("takes no publishers now"),
            "attempt {attempts}: {err}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let of_cam = |kind: &str| -> Vec<Value> {
        live.of_type(kind)
            .into_iter()
            .filter(|m| m["cameraId"] == id.as_str())
            .collect()
    };
    // Status changes made on node 1, seen on node 2.
    let statuses = eventually(
        "camera.status online then offline on node 2",
        Duration::from_secs(60),
        || async {
            let s: Vec<Value> = of_cam("camera.status");
            let online = s.iter().position(|m| m["data"]["status"] == "online")?;
            s[online..]
                .iter()
                .any(|m| m["data"]["status"] == "offline")
                .then_some(s)
        },
    )
    .await;
    assert!(
        statuses.iter().all(|m| m["data"]["nodeId"] == "1"),
        "from node 1: {statuses:?}"
    );
    // Recording events of node 1's recorder.
    eventually(
        "recording.started and recording.stopped on node 2",
        Duration::from_secs(60),
        || async {
            (!of_cam("recording.started").is_empty() && !of_cam("recording.stopped").is_empty())
                .then_some(())
        },
    )
    .await;
    // The alert, from the shared outbox.
    let opened = eventually(
        "alert.opened on node 2",
        Duration::from_secs(60),
        || async {
            of_cam("alert.opened")
                .into_iter()
                .find(|m| m["data"]["alertType"] == "CAMERA_OFFLINE")
        },
    )
    .await;
    assert_eq!(opened["data"]["severity"], "critical", "{opened}");
    // Once, although every node reads the outbox.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(of_cam("alert.opened").len(), 1, "{:?}", live.messages());
    assert_eq!(live.closed(), None);
}
