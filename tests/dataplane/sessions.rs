//! Publishing sessions: reconnects inside and outside the reconnect window, a second
//! encoder on a busy key, stream keys from the config file and unknown keys.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::common::ffmpeg::{Clips, Ffmpeg, clips, probe};
use crate::common::hls::LlPlaylist;
use crate::common::{Server, ServerOptions};

/// Polls the LL-HLS playlist until it ends, keeping every distinct snapshot.
async fn follow(server: Arc<Server>, camera: &'static str) -> Vec<LlPlaylist> {
    let mut seen: Vec<LlPlaylist> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "{camera}: the playlist never ended"
        );
        let p = server.ll(camera, "").await;
        let ended = p.ended;
        if seen.last().is_none_or(|l| l.text != p.text) {
            seen.push(p);
        }
        if ended {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Issue 3: a camera that comes back within the window continues the same playlists after
/// `EXT-X-DISCONTINUITY`; players reading across the gap keep going; once the camera stays
/// away longer than the window the playlists end, and a later publish starts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_window_continues_and_ends_after_it() {
    const CAMERA: &str = "door";
    let clips = clips().await;
    let server = Arc::new(
        Server::start(
            "reconnect",
            ServerOptions {
                args: vec!["--reconnect-window", "5s", "--hls-window", "20"],
                ..ServerOptions::default()
            },
        )
        .await,
    );
    let mut first = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url(CAMERA),
        server.dir.join("publish-1.stderr"),
    );
    let initial = server.wait_ll(CAMERA, Duration::from_secs(20)).await;
    let prefix = initial.prefix();
    // Players that start before the disconnect.
    let ts_out = server.dir.join("reader.ts");
    let mut ts_reader = Ffmpeg::read(
        &server.url(&format!("/hls/{CAMERA}/ts/playlist.m3u8")),
        &ts_out,
        server.dir.join("reader-ts.stderr"),
    );
    // ffmpeg knows nothing of LL-HLS: a playlist with parts but no complete segment yet
    // (served from the third part on) gives it no streams, so it starts at the first
    // complete segment, still well before the disconnect.
    server
        .wait_ll_until(CAMERA, "a complete segment", Duration::from_secs(10), |p| {
            !p.segments.is_empty()
        })
        .await;
    let ll_out = server.dir.join("reader-ll.mp4");
    let mut ll_reader = Ffmpeg::read(
        &server.url(&format!("/hls/{CAMERA}/playlist.m3u8")),
        &ll_out,
        server.dir.join("reader-ll.stderr"),
    );
    let poller = tokio::spawn(follow(server.clone(), CAMERA));

    let status = first.wait(Duration::from_secs(60)).await;
    assert!(status.success(), "{}", first.stderr());
    // The connection's task drops its publisher (closing the last segment) before it logs.
    server
        .wait_log(
            &["camera_id=door", "connection closed by the encoder"],
            Duration::from_secs(10),
        )
        .await;
    let away = server
        .wait_ll_until(
            CAMERA,
            "the first session's last segment",
            Duration::from_secs(10),
            |p| p.trailing_parts.is_empty() && p.last_msn().is_some(),
        )
        .await;
    assert!(
        !away.ended,
        "ended inside the reconnect window:\n{}",
        away.text
    );
    let last_first = away.last_msn().expect("segments");

    let mut second = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url(CAMERA),
        server.dir.join("publish-2.stderr"),
    );
    let back = server
        .wait_ll_until(
            CAMERA,
            "a segment of the second session",
            Duration::from_secs(20),
            |p| p.last_msn() > Some(last_first),
        )
        .await;
    let t = format!("before:\n{}\nafter:\n{}", away.text, back.text);
    assert_eq!(back.prefix(), prefix, "{t}");
    assert_eq!(back.media_sequence, away.media_sequence, "{t}");
    for s in &away.segments {
        let same = back.segments.iter().find(|b| b.msn == s.msn).expect(&t);
        assert_eq!((&same.uri, same.duration), (&s.uri, s.duration), "{t}");
    }
    let resumed = back
        .segments
        .iter()
        .find(|s| s.msn == last_first + 1)
        .expect(&t);
    assert!(
        resumed.discontinuity,
        "no EXT-X-DISCONTINUITY at the reconnect: {t}"
    );
    assert_eq!(
        back.segments.iter().filter(|s| s.discontinuity).count(),
        1,
        "{t}"
    );
    assert_eq!(
        resumed.map, away.segments[0].map,
        "same codecs, same init: {t}"
    );
    let ts = LlPlaylist::parse(
        &server
            .get_text(&format!("/hls/{CAMERA}/ts/playlist.m3u8"))
            .await,
    );
    assert_eq!(ts.prefix(), prefix);
    let discontinuities: Vec<u64> = ts
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.msn)
        .collect();
    assert_eq!(discontinuities, vec![last_first + 1], "{}", ts.text);

    let status = second.wait(Duration::from_secs(60)).await;
    let gone = Instant::now();
    assert!(status.success(), "{}", second.stderr());
    let ended = server
        .wait_ll_until(CAMERA, "EXT-X-ENDLIST", Duration::from_secs(15), |p| {
            p.ended
        })
        .await;
    let after = gone.elapsed();
    println!("EXT-X-ENDLIST {after:?} after the camera left (window 5 s)");
    assert!(
        after >= Duration::from_secs(4),
        "ended {after:?} after the camera left, inside the 5 s window"
    );
    assert_eq!(ended.prefix(), prefix);
    server
        .wait_log(
            &[
                "camera did not come back; playlists ended",
                "camera_id=door",
            ],
            Duration::from_secs(5),
        )
        .await;

    // The Rust poller saw one stream, every segment number, and the discontinuity.
    let snapshots = poller.await.expect("poller");
    let mut msns = BTreeSet::new();
    for p in &snapshots {
        assert_eq!(p.prefix(), prefix, "{}", p.text);
        msns.extend(p.segments.iter().map(|s| s.msn));
    }
    let msns: Vec<u64> = msns.into_iter().collect();
    let expected: Vec<u64> = (0..=*msns.last().expect("segments")).collect();
    assert_eq!(msns, expected, "the poller saw a gap");
    assert!(*msns.last().expect("msn") > last_first + 2);

    // ffmpeg players that started in the first session read through to the end.
    for (reader, out) in [(&mut ts_reader, &ts_out), (&mut ll_reader, &ll_out)] {
        let status = reader.wait(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "{}: {status}\n{}",
            out.display(),
            reader.stderr()
        );
        assert_eq!(reader.stderr(), "", "{} reader stderr", out.display());
        let p = probe(out.to_str().expect("utf-8")).await;
        let d = p.duration.expect("duration");
        println!("{}: {d:.2}s read across the reconnect", out.display());
        assert!(
            d > 2.0 * Clips::SHORT - 1.5,
            "{}: {d}s does not cover both sessions",
            out.display()
        );
        assert!(p.stream("video").is_some() && p.stream("audio").is_some());
    }

    // After the end, the camera starts a new stream: new prefix, numbering from 0.
    let _third = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url(CAMERA),
        server.dir.join("publish-3.stderr"),
    );
    let fresh = server
        .wait_ll_until(CAMERA, "a new stream", Duration::from_secs(20), |p| {
            !p.ended
        })
        .await;
    assert_ne!(fresh.prefix(), prefix, "{}", fresh.text);
    assert_eq!(fresh.media_sequence, 0, "{}", fresh.text);
    assert!(
        fresh.segments.iter().all(|s| !s.discontinuity),
        "{}",
        fresh.text
    );
    server.assert_healthy().await;
}

/// Issue 3: a second encoder on a key being published is refused with a clear log line;
/// the first keeps streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_refused_and_first_keeps_streaming() {
    const CAMERA: &str = "busy";
    let clips = clips().await;
    let server = Server::start("second-publisher", ServerOptions::default()).await;
    let mut first = Ffmpeg::publish(
        &clips.av_long,
        &server.rtmp_url(CAMERA),
        server.dir.join("publish-1.stderr"),
    );
    let before = server.wait_ll(CAMERA, Duration::from_secs(20)).await;
    let mut second = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url(CAMERA),
        server.dir.join("publish-2.stderr"),
    );
    let status = second.wait(Duration::from_secs(20)).await;
    assert!(!status.success(), "the second publisher was not refused");
    let line = server
        .wait_log(
            &[
                "publish refused",
                "camera busy is already being published by another encoder",
            ],
            Duration::from_secs(5),
        )
        .await;
    println!("refusal: {line}");
    assert!(line.contains("WARN"), "{line}");
    // The first stream goes on: same prefix, segments keep coming, no discontinuity.
    let (msn, _) = before.hint();
    let later = server
        .wait_ll_until(
            CAMERA,
            "two more segments from the first encoder",
            Duration::from_secs(15),
            |p| p.last_msn() >= Some(msn + 2),
        )
        .await;
    assert_eq!(later.prefix(), before.prefix());
    assert!(
        later.segments.iter().all(|s| !s.discontinuity),
        "{}",
        later.text
    );
    assert!(
        first.exited().is_none(),
        "the first encoder stopped: {}",
        first.stderr()
    );
    let log = server.log();
    let accepted = log
        .lines()
        .filter(|l| l.contains("publishing") && l.contains("camera_id=busy"))
        .count();
    assert_eq!(accepted, 1, "exactly one accepted publish:\n{log}");
    server.assert_healthy().await;
}

/// Issue 3: without `--allow-any-key` an unknown key is refused (ffmpeg fails, the log says
/// why, no playlist appears) and a key of the `[streams]` table publishes its camera id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_keys_map_to_cameras_and_unknown_keys_are_refused() {
    let clips = clips().await;
    let server = Server::start(
        "stream-keys",
        ServerOptions {
            allow_any_key: false,
            streams: vec![("s3cret-key-1", "front-door")],
            // Cameras from the config file are not in the store, so the store cannot sign
            // playback tokens for them: play them publicly.
            args: vec!["--public-playback"],
            ..ServerOptions::default()
        },
    )
    .await;
    server
        .wait_log(
            &["stream keys from the config file", "keys=1"],
            Duration::from_secs(1),
        )
        .await;
    assert!(
        !server.log().contains("--allow-any-key"),
        "{}",
        server.log()
    );

    let mut wrong = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url("front-door"),
        server.dir.join("publish-wrong.stderr"),
    );
    let status = wrong.wait(Duration::from_secs(20)).await;
    assert!(!status.success(), "an unknown key published");
    let line = server
        .wait_log(
            &[
                "publish refused",
                "unknown stream key",
                "camstream_dataplane::ingest",
            ],
            Duration::from_secs(5),
        )
        .await;
    assert!(
        line.contains("key fron…"),
        "the key is named, redacted: {line}"
    );
    assert!(!line.contains("front-door"), "the whole key leaked: {line}");
    for path in [
        "/hls/front-door/playlist.m3u8",
        "/hls/front-door/ts/playlist.m3u8",
    ] {
        assert_eq!(server.get(path).await.status(), 404, "{path}");
    }
    let health: serde_json::Value = server.get("/healthz").await.json().await.expect("json");
    assert_eq!(health["streams"], 0, "{health}");

    let _right = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url("s3cret-key-1"),
        server.dir.join("publish-right.stderr"),
    );
    let p = server.wait_ll("front-door", Duration::from_secs(20)).await;
    assert!(!p.ended);
    server
        .wait_log(
            &["camera_id=front-door", "publishing"],
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        server.get("/hls/s3cret-key-1/playlist.m3u8").await.status(),
        404,
        "the key is not a camera id"
    );
    assert!(
        !server.log().contains("s3cret-key-1"),
        "the key leaked into the log"
    );
    server.assert_healthy().await;
}
