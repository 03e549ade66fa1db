//! ABR renditions across the cluster (issue 14): a camera with B-frames ingested and
//! transcoded on one node is played on another, its renditions relayed from the origin like
//! cameras: the edge's multivariant playlist lists them with the origin's numbers, and WHEP
//! on the edge plays the highest rendition in Chromium, the session keeping the relay open
//! past the edge's idle timeout (a WebRTC viewer counts as a viewer).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::failover::{Node, api_token, converged, free_port, start_node};
use crate::common::eventually;
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::common::hls::LlPlaylist;
use crate::common::services::Postgres;
use crate::common::whep::{OFFER, per_second, run_whep_with};

/// The edge ends an idle relay stream after this (the WHEP session must outlive it).
const EDGE_IDLE: &str = "3s";

async fn text(server: &crate::common::Server, path: &str, token: &str) -> (StatusCode, String) {
    let r = server
        .client()
        .get(format!("{}?token={token}", server.url(path)))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (r.status(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_serves_the_renditions_of_a_camera_transcoded_on_its_origin() {
    let _heavy = crate::common::heavy().await;
    let pg = Postgres::start("abr-edge-pg").await;
    let db = pg.url();
    let ports = [free_port(), free_port()];
    let origin = start_node(
        "abr-edge-node1",
        1,
        ports[0],
        &db,
        None,
        &["--abr-all-cameras"],
    )
    .await;
    let join = format!("http://{}", origin.http);
    let edge = start_node(
        "abr-edge-node2",
        2,
        ports[1],
        &db,
        Some(join),
        &["--relay-idle-timeout", EDGE_IDLE],
    )
    .await;
    let nodes = [
        Node {
            id: 1,
            raft: ports[0],
            server: origin,
        },
        Node {
            id: 2,
            raft: ports[1],
            server: edge,
        },
    ];
    let (origin, edge) = (&nodes[0].server, &nodes[1].server);
    let api = api_token(
        origin,
        "abr edge test",
        &[
            "cluster:manage",
            "cameras:read",
            "cameras:write",
            "streams:play",
        ],
    )
    .await;
    let all: Vec<&Node> = nodes.iter().collect();
    converged(&all, &[1, 2], &api, Duration::from_secs(30)).await;
    let cam: Value = origin
        .client()
        .post(origin.url("/api/v1/cameras"))
        .bearer_auth(&api)
        .json(&json!({ "name": "Gate", "serialNumber": "ABR-EDGE-1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let camera = cam["data"]["id"].as_str().unwrap().to_owned();
    let key = cam["data"]["streamKey"].as_str().unwrap().to_owned();
    let urls: Value = origin
        .client()
        .get(origin.url(&format!("/api/v1/cameras/{camera}/stream/hls")))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = urls["data"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("playback token: {urls}"))
        .to_owned();

    // A 720p camera with B-frames on node 1, transcoded there (480p, 240p).
    let clips = clips().await;
    let _camera = Ffmpeg::publish_looped(
        &clips.av_long,
        &origin.rtmp_url(&key),
        origin.dir.join("publish.stderr"),
    );
    let master = format!("/hls/{camera}/master.m3u8");
    eventually(
        "three variants on the origin",
        Duration::from_secs(40),
        || async {
            let (status, body) = text(origin, &master, &token).await;
            (status == StatusCode::OK && body.matches("#EXT-X-STREAM-INF").count() == 3)
                .then_some(())
        },
    )
    .await;

    // The edge lists the same ladder, pulled from the origin.
    let body = eventually(
        "three variants on the edge",
        Duration::from_secs(20),
        || async {
            let (status, body) = text(edge, &master, &token).await;
            (status == StatusCode::OK && body.matches("#EXT-X-STREAM-INF").count() == 3)
                .then_some(body)
        },
    )
    .await;
    for name in ["480p", "240p"] {
        assert!(
            body.contains(&format!("../{camera}~{name}/playlist.m3u8")),
            "{name} missing on the edge:\n{body}"
        );
    }
    // Same segment numbers and media names for a rendition on both nodes.
    let path = format!("/hls/{camera}~480p/playlist.m3u8");
    let on_edge = eventually(
        "a complete rendition segment on the edge",
        Duration::from_secs(10),
        || async {
            let (status, body) = text(edge, &path, &token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let p = LlPlaylist::parse(&body);
            p.segments
                .last()
                .is_some_and(|s| !s.parts.is_empty())
                .then_some(p)
        },
    )
    .await;
    let seg = on_edge.segments.last().unwrap().clone();
    let (status, on_origin) = text(origin, &path, &token).await;
    assert_eq!(status, StatusCode::OK, "{on_origin}");
    let on_origin = LlPlaylist::parse(&on_origin);
    let same = on_origin
        .segments
        .iter()
        .find(|s| s.msn == seg.msn)
        .unwrap_or_else(|| panic!("segment {} not on the origin:\n{}", seg.msn, on_origin.text));
    let uri = |u: &str| u.split('?').next().unwrap().to_owned();
    assert_eq!(uri(&same.uri), uri(&seg.uri), "media names differ");
    // The rendition's playlist is refused without the camera's token on the edge too.
    assert_eq!(edge.get(&path).await.status(), StatusCode::UNAUTHORIZED);

    // WHEP on the edge: the camera has B-frames, so its highest rendition plays.
    let whep = edge.url(&format!("/whep/{camera}"));
    let first = eventually(
        "a WHEP answer on the edge",
        Duration::from_secs(15),
        || async {
            let r = edge
                .client()
                .post(&whep)
                .bearer_auth(&token)
                .header("content-type", "application/sdp")
                .body(OFFER)
                .send()
                .await
                .ok()?;
            match r.status() {
                StatusCode::CREATED => Some(r),
                StatusCode::SERVICE_UNAVAILABLE => None,
                other => panic!("WHEP on the edge: {other} {}", r.text().await.unwrap()),
            }
        },
    )
    .await;
    assert_eq!(first.headers()["x-camstream-rendition"], "480p");
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("/whep/{camera}~480p/")),
        "{location}"
    );
    let deleted = edge
        .client()
        .delete(edge.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);

    // Chromium decodes it on the edge for longer than the edge's idle timeout: the session
    // keeps the rendition's relay stream open (no playlist request meanwhile).
    let r = run_whep_with(edge, &camera, 1, 10, Some(&token)).await;
    let s = &r["sessions"][0];
    assert_eq!(s["status"], 201, "{s}");
    assert_eq!(s["rendition"], "480p", "{s}");
    let decoded = per_second(&r, "framesDecoded");
    let heights = per_second(&r, "frameHeight");
    println!(
        "WHEP on the edge via 480p: first frame {} ms; framesDecoded per second {decoded:?}",
        s["ttff"]
    );
    let tail = &decoded[decoded.len() - 4..];
    assert!(
        tail.windows(2).all(|w| w[1] > w[0]),
        "decoding stopped after the edge's idle timeout ({EDGE_IDLE}): {decoded:?}\nedge log:\n{}",
        edge.log()
    );
    let total = decoded.last().copied().unwrap_or(0) - decoded[0];
    assert!(total >= 9 * 20, "{total} frames in 9 s: {decoded:?}");
    assert!(heights.iter().all(|h| *h == 480), "{heights:?}");
    assert_eq!(r["deleteStatus"][0], 200, "{r}");
    edge.assert_healthy().await;
    origin.assert_healthy().await;
}
