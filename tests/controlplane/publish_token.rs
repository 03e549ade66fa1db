//! `--require-publish-token`: the ingest URLs the API hands out carry a signed publish
//! token (`KEY?token=...`) that ffmpeg passes through; the key alone, an expired token and
//! another camera's token are refused. A deleted camera's key is refused too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camstream_controlplane::auth::keys::Keys;
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use crate::api::Api;
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::lifecycle::{JWT_SECRET, refused, start, wait_online};

/// Issue 4: with publish tokens required, `rtmpUrl`/`rtmpsUrl` work as handed out and a
/// bare or bad token is refused with the reason in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_publish_tokens_ride_in_the_ingest_urls() {
    let clips = clips().await;
    let server = start(
        "cp-publish-token",
        ["--require-publish-token", "--jwt-secret", JWT_SECRET]
            .map(String::from)
            .to_vec(),
    )
    .await;
    let api = Api::admin(&server).await;
    let cam = api.create_camera("Dock", "E2E-TOKEN-1").await;
    let id = cam["id"].as_str().expect("id").to_owned();
    let key = cam["streamKey"].as_str().expect("streamKey").to_owned();
    let token = cam["publishToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no publishToken: {cam}"))
        .to_owned();
    let rtmps_url = cam["rtmpsUrl"].as_str().expect("rtmpsUrl").to_owned();
    assert_eq!(
        cam["rtmpUrl"],
        format!("{}?token={token}", server.rtmp_url(&key)),
        "{cam}"
    );
    assert_eq!(
        rtmps_url,
        format!("{}?token={token}", server.rtmps_url(&key))
    );
    let other = api.create_camera("Yard", "E2E-TOKEN-2").await;
    let others_token = other["publishToken"].as_str().expect("publishToken");

    refused(
        &server,
        &server.rtmp_url(&key),
        "bare-key",
        &["publish token rejected: publish token required"],
    )
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let expired = Keys::from_master(JWT_SECRET.as_bytes())
        .expect("keys")
        .issue_publish(&id, now - 120, now - 60)
        .expect("sign");
    refused(
        &server,
        &format!("{}?token={expired}", server.rtmp_url(&key)),
        "expired-token",
        &["publish token rejected: token expired"],
    )
    .await;
    refused(
        &server,
        &format!("{}?token={others_token}", server.rtmp_url(&key)),
        "other-camera-token",
        &["publish token rejected", "another camera"],
    )
    .await;

    let publisher = Ffmpeg::publish(
        &clips.av_short,
        &rtmps_url,
        server.dir.join("publish-token.stderr"),
    );
    let (online, filled, _) = wait_online(&api, &id, Instant::now()).await;
    println!("RTMPS with a publish token: online after {online:?}, figures after {filled:?}");
    server
        .wait_log(
            &["publish authorized", &format!("camera_id={id}"), "tls=true"],
            Duration::from_secs(1),
        )
        .await;
    drop(publisher);
    assert!(
        !server.log().contains(&token),
        "a publish token leaked into the log"
    );

    let gone = api
        .ok(
            Method::DELETE,
            &format!("/api/v1/cameras/{}", other["id"].as_str().expect("id")),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(gone["deleted"], true);
    refused(
        &server,
        other["rtmpUrl"].as_str().expect("rtmpUrl"),
        "deleted-camera",
        &["unknown stream key"],
    )
    .await;
    server.assert_healthy().await;
}
