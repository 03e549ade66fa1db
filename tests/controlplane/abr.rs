//! ABR through the API (issue 14): a camera whose `abrProfile` is `default` gets its ladder
//! when it publishes (the data plane asks the store), `masterUrl` plays it with the
//! camera's token, and turning the profile off stops the transcoder while it streams.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::Api;
use crate::common::eventually;
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::lifecycle::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abr_profile_turns_the_ladder_on_and_off_for_a_live_camera() {
    let clips = clips().await;
    let server = start("cp-abr", Vec::new()).await;
    let api = Api::admin(&server).await;
    let cam = api
        .ok(
            Method::POST,
            "/api/v1/cameras",
            Some(json!({ "name": "Lobby", "serialNumber": "E2E-ABR-1", "abrProfile": "default" })),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(cam["abrProfile"], "default");
    let id = cam["id"].as_str().expect("id").to_owned();
    let url = cam["rtmpUrl"].as_str().expect("rtmpUrl").to_owned();
    let _publisher =
        Ffmpeg::publish_looped(&clips.av_long, &url, server.dir.join("publish.stderr"));
    let master = api.playback(&id).await["masterUrl"]
        .as_str()
        .expect("masterUrl")
        .to_owned();
    let text = variants_in(&server, &master, 3, Duration::from_secs(40)).await;
    // The renditions play with the camera's token (carried in the URIs).
    let token = master.split("token=").nth(1).expect("token");
    let rendition = format!("../{id}~240p/playlist.m3u8?token={token}");
    assert!(text.contains(&rendition), "{text}");
    let r = server
        .client()
        .get(server.url(&format!("/hls/{id}~240p/playlist.m3u8?token={token}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    let r = server
        .client()
        .get(server.url(&format!("/hls/{id}~240p/playlist.m3u8")))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 401, "a rendition needs the camera's token");

    // Off while live: the transcoder stops and the renditions leave the master playlist.
    api.ok(
        Method::PUT,
        &format!("/api/v1/cameras/{id}"),
        Some(json!({ "abrProfile": "off" })),
        StatusCode::OK,
    )
    .await;
    server
        .wait_log(
            &["ABR off; stopping the transcoder"],
            Duration::from_secs(15),
        )
        .await;
    variants_in(&server, &master, 1, Duration::from_secs(60)).await;
}

/// Polls the multivariant playlist at `master` until it lists `n` variants; returns it.
async fn variants_in(
    server: &crate::common::Server,
    master: &str,
    n: usize,
    timeout: Duration,
) -> String {
    eventually(&format!("{n} variants in {master}"), timeout, || async {
        let r = server.client().get(master).send().await.ok()?;
        let text = r.text().await.ok()?;
        (text.matches("#EXT-X-STREAM-INF").count() == n).then_some(text)
    })
    .await
}
