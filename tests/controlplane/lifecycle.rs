//! Issue 4's end-to-end flow: a camera created over the API publishes to the `rtmpUrl` and
//! `rtmpsUrl` it was given, turns `online` within 3 s with its figures, plays with signed
//! URLs (and only with them), refuses wrong, rotated and disabled keys, shows in `/metrics`,
//! and goes `offline` when the encoder stops. Once on SQLite + the in-memory cache, once on
//! a real PostgreSQL + Redis started by the test (checked through `psql` and `redis-cli`).

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camstream_controlplane::auth::keys::Keys;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api::{ADMIN_PASSWORD, Api};
use crate::common::ffmpeg::{Ffmpeg, clips, probe};
use crate::common::hls::LlPlaylist;
use crate::common::services::{Postgres, Redis};
use crate::common::{Server, ServerOptions, eventually};

/// The master secret (`--jwt-secret`): the test signs an expired playback token with it.
pub(crate) const JWT_SECRET: &str = "e2e-master-secret-0123456789abcdef";
/// `--reconnect-window`: how long a camera may be away before it is offline.
const RECONNECT_WINDOW: Duration = Duration::from_secs(2);
/// Issue 4: status turns online within this long after the publish starts.
const ONLINE_WITHIN: Duration = Duration::from_secs(3);
/// Issue 4 / the design: playback URLs expire after 15 minutes by default.
const PLAYBACK_TTL_SECS: i64 = 15 * 60;

/// The external services of one run, checked directly when present.
#[derive(Clone, Copy)]
struct Backends<'a> {
    postgres: Option<&'a Postgres>,
    redis: Option<&'a Redis>,
}

/// Issue 4: the end-to-end flow on the embedded defaults (SQLite, in-memory cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_lifecycle_on_sqlite() {
    let b = Backends {
        postgres: None,
        redis: None,
    };
    lifecycle("cp-lifecycle-sqlite", b).await;
}

/// Issue 4: the same flow with `--database-url postgres://...` and `--redis-url
/// redis://...` against servers started here (missing servers fail the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_lifecycle_on_postgres_and_redis() {
    let postgres = Postgres::start("cp-lifecycle-pg-data").await;
    let redis = Redis::start("cp-lifecycle-redis-data").await;
    let b = Backends {
        postgres: Some(&postgres),
        redis: Some(&redis),
    };
    lifecycle("cp-lifecycle-pg", b).await;
}

/// Starts a server with the control plane in charge (no `--allow-any-key`).
pub(crate) async fn start(name: &str, extra: Vec<String>) -> Server {
    let mut args: Vec<String> = [
        "--admin-password",
        ADMIN_PASSWORD,
        "--public-host",
        "127.0.0.1",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra);
    Server::start_with(
        name,
        ServerOptions {
            allow_any_key: false,
            args: vec!["--reconnect-window", "2s"],
            ..ServerOptions::default()
        },
        args,
    )
    .await
}

async fn lifecycle(name: &str, b: Backends<'_>) {
    let clips = clips().await;
    let mut extra = vec!["--jwt-secret".to_owned(), JWT_SECRET.to_owned()];
    if let Some(pg) = b.postgres {
        extra.extend(["--database-url".to_owned(), pg.url()]);
    }
    if let Some(r) = b.redis {
        extra.extend(["--redis-url".to_owned(), r.url()]);
    }
    let server = start(name, extra).await;
    let (store, cache) = match b.postgres {
        Some(_) => ("store=\"postgres\"", "cache=\"redis\""),
        None => ("store=\"sqlite\"", "cache=\"memory\""),
    };
    server
        .wait_log(
            &["control plane started", store, cache],
            Duration::from_secs(1),
        )
        .await;
    let api = Api::admin(&server).await;
    if let Some(r) = b.redis {
        let sessions = r.cli(&["KEYS", "session:*"]).await.expect("redis-cli");
        assert!(!sessions.is_empty(), "no session:* key after login");
    }

    let cam = api.create_camera("Front door", "E2E-0001").await;
    let id = cam["id"].as_str().expect("id").to_owned();
    let key = cam["streamKey"].as_str().expect("streamKey").to_owned();
    let rtmp_url = cam["rtmpUrl"].as_str().expect("rtmpUrl").to_owned();
    let rtmps_url = cam["rtmpsUrl"].as_str().expect("rtmpsUrl").to_owned();
    assert_eq!(
        rtmp_url,
        server.rtmp_url(&key),
        "rtmpUrl names the bound port"
    );
    assert_eq!(
        rtmps_url,
        server.rtmps_url(&key),
        "rtmpsUrl names the bound port"
    );
    assert_eq!(cam["streamStatus"], "offline", "{cam}");
    let other = api.create_camera("Back door", "E2E-0002").await;
    let other_id = other["id"].as_str().expect("id").to_owned();
    if let Some(pg) = b.postgres {
        let n = pg.query("SELECT count(*) FROM cameras").await;
        assert_eq!(n, "2", "the cameras are in PostgreSQL");
    }

    // RTMP to the rtmpUrl: online within 3 s, with figures.
    let publisher = Ffmpeg::publish(
        &clips.av_long,
        &rtmp_url,
        server.dir.join("publish-rtmp.stderr"),
    );
    let (online, filled, live) = wait_online(&api, &id, Instant::now()).await;
    println!(
        "{name}: status online {online:?} after the publish started, fps/bitrate/resolution filled after {filled:?}: {live}"
    );
    assert!(
        filled <= ONLINE_WITHIN,
        "online with figures after {filled:?} (online after {online:?})"
    );
    assert_eq!(live["resolution"], "1280x720", "{live}");
    let fps = live["fps"].as_f64().expect("fps");
    assert!((15.0..=45.0).contains(&fps), "fps {fps}: {live}");
    let bitrate = live["bitrate"].as_u64().expect("bitrate");
    assert!(
        (500_000..=5_000_000).contains(&bitrate),
        "bitrate {bitrate}: {live}"
    );
    assert_eq!(live["nodeId"], "local", "{live}");
    assert_eq!(
        live["codecs"],
        json!(["avc1.64001f", "mp4a.40.2"]),
        "{live}"
    );
    let authorized = server
        .wait_log(
            &[
                "publish authorized",
                &format!("camera_id={id}"),
                "tls=false",
            ],
            Duration::from_secs(1),
        )
        .await;
    println!("{authorized}");
    let row = eventually(
        "streamStatus online in the store",
        Duration::from_secs(3),
        || async {
            let c = api.camera(&id).await;
            (c["streamStatus"] == "online").then_some(c)
        },
    )
    .await;
    assert_eq!(row["assignedNode"], "local", "{row}");
    if let Some(pg) = b.postgres {
        let r = pg
            .query(&format!(
                "SELECT stream_status || ',' || assigned_node FROM cameras WHERE id = '{id}'"
            ))
            .await;
        assert_eq!(r, "online,local");
    }
    if let Some(r) = b.redis {
        check_redis_status(r, &id, "online").await;
    }
    let metrics = server.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "camstream_streams_active"),
        Some(1.0),
        "{metrics}"
    );

    playback(&server, &api, &id, &other_id).await;
    wrong_key(&server, &rtmp_url, &key).await;
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains(
            "camstream_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/cameras/{id}/status\",status=\"200\",le=\"0.005\"}"
        ),
        "no latency histogram of the status route:\n{metrics}"
    );
    // The health loop moves the counters into /metrics once a second: the playback's bytes
    // may not be there yet.
    let mut metrics = metrics;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !metric(&metrics, "camstream_bytes_out_total").is_some_and(|v| v > 0.0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        metrics = server.get_text("/metrics").await;
    }
    assert!(
        metric(&metrics, "camstream_bytes_out_total").is_some_and(|v| v > 0.0),
        "no bytes served counted 5 s after playback: {metrics}"
    );

    // The encoder stops: connecting at once, offline after the reconnect window.
    drop(publisher);
    let stopped = Instant::now();
    let connecting = wait_status(&api, &id, "connecting", Duration::from_secs(5), |s| {
        s["status"] != "online"
    })
    .await;
    let away = stopped.elapsed();
    assert_eq!(connecting["status"], "connecting", "{connecting}");
    wait_status(
        &api,
        &id,
        "offline",
        RECONNECT_WINDOW + Duration::from_secs(5),
        |s| s["status"] == "offline",
    )
    .await;
    let offline = stopped.elapsed();
    println!(
        "{name}: publisher stopped: connecting after {away:?}, offline after {offline:?} (reconnect window {RECONNECT_WINDOW:?})"
    );
    assert!(
        offline >= RECONNECT_WINDOW,
        "offline before the window closed"
    );
    assert!(
        offline <= RECONNECT_WINDOW + Duration::from_secs(3),
        "{offline:?}"
    );
    eventually(
        "streamStatus offline in the store",
        Duration::from_secs(3),
        || async { (api.camera(&id).await["streamStatus"] == "offline").then_some(()) },
    )
    .await;
    if let Some(pg) = b.postgres {
        let r = pg
            .query(&format!(
                "SELECT stream_status || ',' || coalesce(assigned_node, '-') FROM cameras WHERE id = '{id}'"
            ))
            .await;
        assert_eq!(r, "offline,-");
    }
    if let Some(r) = b.redis {
        check_redis_status(r, &id, "offline").await;
    }
    let metrics = server.get_text("/metrics").await;
    assert_eq!(metric(&metrics, "camstream_streams_active"), Some(0.0));
    // The day's figures come from the data plane's reports.
    let day = api
        .ok(
            Method::GET,
            &format!("/api/v1/cameras/{id}/analytics"),
            None,
            StatusCode::OK,
        )
        .await;
    println!("{name}: analytics {day}");
    assert!(
        day["bytesIn"].as_u64().is_some_and(|b| b > 500_000),
        "{day}"
    );
    assert!(day["bytesOut"].as_u64().is_some_and(|b| b > 0), "{day}");
    assert!(day["peakViewers"].as_u64().is_some_and(|v| v >= 1), "{day}");
    assert!(
        day["onlineSeconds"].as_f64().is_some_and(|s| s >= 1.0),
        "{day}"
    );
    assert!(day["avgBitrate"].as_u64().is_some_and(|b| b > 0), "{day}");

    // RTMPS to the rtmpsUrl (the long clip: it would stream well past every wait below).
    let mut tls = Ffmpeg::publish(
        &clips.av_long,
        &rtmps_url,
        server.dir.join("publish-rtmps.stderr"),
    );
    let (online, filled, _) = wait_online(&api, &id, Instant::now()).await;
    println!("{name}: RTMPS: online after {online:?}, figures after {filled:?}");
    assert!(filled <= ONLINE_WITHIN, "{filled:?}");
    server
        .wait_log(
            &["publish authorized", &format!("camera_id={id}"), "tls=true"],
            Duration::from_secs(1),
        )
        .await;

    // Rotating the key while the encoder streams: the publish it was admitted with is no
    // longer valid, so it is disconnected; the old key is refused, the new one publishes.
    assert!(tls.exited().is_none(), "the RTMPS publisher ended early");
    let rotated = api
        .ok(
            Method::POST,
            &format!("/api/v1/cameras/{id}/rotate-key"),
            None,
            StatusCode::OK,
        )
        .await;
    kicked(&server, &api, &id, &mut tls, "stream key rotated").await;
    let new_key = rotated["streamKey"].as_str().expect("streamKey").to_owned();
    assert_ne!(new_key, key);
    let new_url = rotated["rtmpUrl"].as_str().expect("rtmpUrl").to_owned();
    assert_eq!(new_url, server.rtmp_url(&new_key));
    refused(&server, &rtmp_url, "old-key", &["unknown stream key"]).await;
    let before = count_lines(&server, &["publish authorized", &format!("camera_id={id}")]);
    let mut fresh = Ffmpeg::publish(
        &clips.av_long,
        &new_url,
        server.dir.join("publish-new-key.stderr"),
    );
    wait_online(&api, &id, Instant::now()).await;
    assert_eq!(
        count_lines(&server, &["publish authorized", &format!("camera_id={id}")]),
        before + 1
    );

    // Disabling the camera while it streams disconnects the encoder; it is refused after,
    // and gets no playback URLs.
    assert!(
        fresh.exited().is_none(),
        "the new-key publisher ended early"
    );
    let disabled = api
        .ok(
            Method::PUT,
            &format!("/api/v1/cameras/{id}"),
            Some(json!({ "isActive": false })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(disabled["isActive"], false);
    kicked(&server, &api, &id, &mut fresh, "camera disabled").await;
    refused(
        &server,
        &new_url,
        "disabled",
        &[&format!("camera {id} is not active")],
    )
    .await;
    let r = api
        .call(
            Method::GET,
            &format!("/api/v1/cameras/{id}/stream/hls"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.code(), "CAMERA_INACTIVE");

    let log = server.log();
    for k in [&key, &new_key] {
        assert!(
            !log.contains(k.as_str()),
            "a stream key leaked into the log"
        );
    }
    server.assert_healthy().await;
}

/// Asserts that the control plane disconnected the live encoder of `id` for `reason`: the
/// data plane says so, ffmpeg exits long before its clip ends, and the camera leaves
/// `online`.
async fn kicked(server: &Server, api: &Api, id: &str, ffmpeg: &mut Ffmpeg, reason: &str) {
    let told = Instant::now();
    server
        .wait_log(
            &[
                "disconnecting the publisher",
                &format!("camera_id={id}"),
                reason,
            ],
            Duration::from_secs(2),
        )
        .await;
    server
        .wait_log(
            &[
                "disconnected by the control plane",
                &format!("camera_id={id}"),
            ],
            Duration::from_secs(2),
        )
        .await;
    // ffmpeg notices at its next write; the clip has many seconds left.
    let status = ffmpeg.wait(Duration::from_secs(5)).await;
    let gone = told.elapsed();
    println!("{reason}: encoder gone after {gone:?} ({status})");
    wait_status(
        api,
        id,
        "the disconnected publisher to leave",
        Duration::from_secs(5),
        |s| s["status"] != "online",
    )
    .await;
}

/// Polls the live status until it is online with fps, bitrate and resolution; returns when
/// it first said online, when the figures were there (both since `start`), and the status.
pub(crate) async fn wait_online(
    api: &Api,
    id: &str,
    start: Instant,
) -> (Duration, Duration, Value) {
    let online = Cell::new(None);
    let live = eventually(
        "status online with figures",
        Duration::from_secs(10),
        || async {
            let s = api.status(id).await;
            if s["status"] != "online" {
                return None;
            }
            if online.get().is_none() {
                online.set(Some(start.elapsed()));
            }
            let filled = s["fps"].as_f64().is_some_and(|f| f > 0.0)
                && s["bitrate"].as_u64().is_some_and(|b| b > 0)
                && s["resolution"].is_string();
            filled.then_some(s)
        },
    )
    .await;
    let filled = start.elapsed();
    (online.get().unwrap_or(filled), filled, live)
}

/// Polls the live status until `pred` holds; returns it.
async fn wait_status(
    api: &Api,
    id: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("status {what}"), timeout, || async {
        let s = api.status(id).await;
        pred(&s).then_some(s)
    })
    .await
}

/// `stream:status:{id}` in Redis holds the live status with a TTL of at most 30 s.
async fn check_redis_status(r: &Redis, id: &str, status: &str) {
    let key = format!("stream:status:{id}");
    let v = eventually(
        &format!("{key} with {status}"),
        Duration::from_secs(3),
        || async {
            let text = r.cli(&["GET", &key]).await?;
            let v: Value = serde_json::from_str(&text).ok()?;
            (v["status"] == status).then_some(v)
        },
    )
    .await;
    assert_eq!(v["cameraId"], id, "{v}");
    let ttl: i64 = r
        .cli(&["TTL", &key])
        .await
        .and_then(|t| t.parse().ok())
        .expect("TTL");
    assert!((1..=30).contains(&ttl), "{key} TTL {ttl}");
    println!("redis {key} (TTL {ttl} s): {v}");
}

/// Signed playback: both URLs play in ffprobe (h264 + aac) and name the bound HTTP port;
/// every URI of the playlists carries the token; no token is 401; a tampered, expired or
/// other camera's token is 403.
async fn playback(server: &Server, api: &Api, id: &str, other_id: &str) {
    let urls = api.playback(id).await;
    let token = urls["token"].as_str().expect("token").to_owned();
    let ll = urls["llHlsUrl"].as_str().expect("llHlsUrl").to_owned();
    let ts = urls["hlsUrl"].as_str().expect("hlsUrl").to_owned();
    assert_eq!(
        ll,
        server.url(&format!("/hls/{id}/playlist.m3u8?token={token}"))
    );
    assert_eq!(
        ts,
        server.url(&format!("/hls/{id}/ts/playlist.m3u8?token={token}"))
    );
    let (exp, sig) = token.split_once('.').expect("token is exp.sig");
    let exp: i64 = exp.parse().expect("expiry");
    let ttl = exp - unix_now();
    assert!(
        (PLAYBACK_TTL_SECS - 10..=PLAYBACK_TTL_SECS).contains(&ttl),
        "token lives {ttl} s"
    );

    let ts_path = format!("/hls/{id}/ts/playlist.m3u8");
    let ts_text = eventually("a TS segment", Duration::from_secs(10), || async {
        let text = server.get_text(&format!("{ts_path}?token={token}")).await;
        (!LlPlaylist::parse(&text).segments.is_empty()).then_some(text)
    })
    .await;
    let ll_text = server
        .get_text(&format!("/hls/{id}/playlist.m3u8?token={token}"))
        .await;
    for text in [&ts_text, &ll_text] {
        let uris = uris(text);
        assert!(!uris.is_empty(), "{text}");
        for u in uris {
            assert!(u.ends_with(&format!("?token={token}")), "{u} in\n{text}");
        }
    }
    for url in [&ll, &ts] {
        let p = probe(url).await;
        let video = p
            .stream("video")
            .unwrap_or_else(|| panic!("{url}: no video"));
        assert_eq!(video.codec_name, "h264", "{url}");
        assert_eq!(
            (video.width, video.height),
            (Some(1280), Some(720)),
            "{url}"
        );
        let audio = p
            .stream("audio")
            .unwrap_or_else(|| panic!("{url}: no audio"));
        assert_eq!(audio.codec_name, "aac", "{url}");
        assert_eq!(audio.sample_rate, Some(48000), "{url}");
        println!("ffprobe {url}: {:?}", p.streams);
    }
    let viewers = wait_status(api, id, "viewers counted", Duration::from_secs(3), |s| {
        s["viewerCount"].as_u64().is_some_and(|v| v >= 1)
    })
    .await;
    println!("status while played: {viewers}");

    // Unsigned: playlists and media.
    let segment = uris(&ts_text)[0].clone();
    let file = segment.split('?').next().expect("a file name");
    for path in [
        format!("/hls/{id}/playlist.m3u8"),
        ts_path.clone(),
        format!("/hls/{id}/ts/{file}"),
    ] {
        let r = server.get(&path).await;
        assert_eq!(r.status(), 401, "{path} without a token");
    }
    assert_eq!(
        server
            .get(&format!("/hls/{id}/ts/{file}?token={token}"))
            .await
            .status(),
        200
    );
    // Tampered signature, tampered expiry, expired, another camera's, garbage.
    let flipped: String = sig
        .char_indices()
        .map(|(i, c)| match (i, c) {
            (5, 'A') => 'B',
            (5, _) => 'A',
            _ => c,
        })
        .collect();
    let expired = Keys::from_master(JWT_SECRET.as_bytes())
        .expect("keys")
        .sign_playback(id, unix_now() - 60);
    let others = api.playback(other_id).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let cases = [
        (
            "tampered signature",
            format!("{exp}.{flipped}"),
            "bad signature",
        ),
        (
            "tampered expiry",
            format!("{}.{sig}", exp + 3600),
            "bad signature",
        ),
        ("expired", expired, "expired"),
        ("another camera's", others, "bad signature"),
        ("garbage", "not-a-token".to_owned(), "malformed"),
    ];
    for (what, t, why) in &cases {
        for path in [format!("/hls/{id}/playlist.m3u8"), ts_path.clone()] {
            let r = server.get(&format!("{path}?token={t}")).await;
            let status = r.status();
            let body = r.text().await.expect("body");
            assert_eq!(status, 403, "{what} token on {path}: {body}");
            assert!(body.contains(why), "{what} token on {path}: {body}");
        }
    }
    whep_playback(server, api, id, &token, &cases).await;
}

/// Issue 14: the WHEP URL the API signs admits its camera with the same playback tokens as
/// HLS (in the query or as a Bearer header), and refuses every bad one before any SDP is
/// looked at.
async fn whep_playback(
    server: &Server,
    api: &Api,
    id: &str,
    token: &str,
    bad: &[(&str, String, &str)],
) {
    let w = api
        .ok(
            Method::GET,
            &format!("/api/v1/cameras/{id}/stream/webrtc"),
            None,
            StatusCode::OK,
        )
        .await;
    let whep = w["whepUrl"].as_str().expect("whepUrl");
    let signed = w["token"].as_str().expect("token");
    assert_eq!(
        whep,
        server.url(&format!("/whep/{id}?token={signed}")),
        "{w}"
    );
    assert!(w["iceServers"].is_array(), "{w}");
    assert!(w["expiresAt"].is_string(), "{w}");
    let post = |url: String, bearer: Option<String>| {
        let mut req = server
            .client()
            .post(url)
            .header("content-type", "application/sdp")
            .body("not an offer");
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        async move {
            let r = req.send().await.expect("POST /whep");
            let status = r.status().as_u16();
            (status, r.text().await.expect("body"))
        }
    };
    // Admitted (both ways): the bad SDP is what is refused.
    for (what, url, bearer) in [
        ("signed URL", whep.to_owned(), None),
        (
            "the HLS token",
            server.url(&format!("/whep/{id}?token={token}")),
            None,
        ),
        (
            "Bearer",
            server.url(&format!("/whep/{id}")),
            Some(token.to_owned()),
        ),
    ] {
        let (status, body) = post(url, bearer).await;
        assert_eq!(status, 400, "{what}: {body}");
    }
    let (status, body) = post(server.url(&format!("/whep/{id}")), None).await;
    assert_eq!(status, 401, "no token: {body}");
    let (status, body) = post(server.url(&format!("/whep/{id}")), Some("".to_owned())).await;
    assert_eq!(status, 401, "empty Bearer: {body}");
    for (what, t, why) in bad {
        for bearer in [false, true] {
            let (url, b) = if bearer {
                (server.url(&format!("/whep/{id}")), Some(t.clone()))
            } else {
                (server.url(&format!("/whep/{id}?token={t}")), None)
            };
            let (status, body) = post(url, b).await;
            assert!(
                status == 403 || (bearer && status == 401),
                "{what} token on WHEP (bearer {bearer}): {status} {body}"
            );
            if status == 403 {
                assert!(body.contains(why), "{what} token on WHEP: {body}");
            }
        }
    }
}

/// The URIs of a playlist: its non-tag lines and every `URI="..."` attribute.
fn uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            out.push(line.to_owned());
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("URI=\"") {
            let tail = &rest[i + 5..];
            let end = tail.find('"').expect("closing quote");
            out.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    out
}

/// A well-formed key no camera has is refused: ffmpeg fails and the log says why, without
/// the key.
async fn wrong_key(server: &Server, rtmp_url: &str, key: &str) {
    let wrong: String = key
        .chars()
        .map(|c| if c == 'x' { 'y' } else { 'x' })
        .collect();
    let url = rtmp_url.replace(key, &wrong);
    refused(server, &url, "wrong-key", &["unknown stream key"]).await;
    assert!(
        !server.log().contains(&wrong),
        "the wrong key leaked into the log"
    );
}

/// Publishes to `url` and expects a refusal (ffmpeg fails with the server's "publish
/// refused") whose log line contains `reason`.
pub(crate) async fn refused(server: &Server, url: &str, what: &str, reason: &[&str]) {
    let mut needles = vec!["publish refused", "camstream_controlplane"];
    needles.extend_from_slice(reason);
    let before = count_lines(server, &needles);
    let clips = clips().await;
    let mut p = Ffmpeg::publish(
        &clips.av_short,
        url,
        server.dir.join(format!("publish-{what}.stderr")),
    );
    let status = p.wait(Duration::from_secs(20)).await;
    assert!(!status.success(), "{what}: the publish was not refused");
    assert!(
        p.stderr().contains("publish refused"),
        "{what}: ffmpeg was not told: {}",
        p.stderr()
    );
    let line = eventually(
        &format!("{what}: a refusal naming {reason:?}"),
        Duration::from_secs(5),
        || {
            let log = server.log();
            let lines: Vec<String> = log
                .lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned)
                .collect();
            async move { (lines.len() > before).then(|| lines[lines.len() - 1].clone()) }
        },
    )
    .await;
    assert!(line.contains("WARN"), "{line}");
    println!("{what}: ffmpeg {status}; {line}");
}

/// Log lines containing every one of `needles`.
fn count_lines(server: &Server, needles: &[&str]) -> usize {
    server
        .log()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// The value of an unlabelled metric in a Prometheus exposition.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
