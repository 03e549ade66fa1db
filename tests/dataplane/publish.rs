//! Publish a clip once, let the camera go (a short reconnect window ends the playlists
//! with `EXT-X-ENDLIST`), then check what players see: ffprobe on every playlist and a
//! full `-c copy` remux with nothing on stderr.

use std::time::Duration;

use tokio::time::Instant;

use crate::common::ffmpeg::{Clips, Ffmpeg, clips, probe, remux};
use crate::common::hls::LlPlaylist;
use crate::common::{Server, ServerOptions, eventually};

/// How far ffprobe's duration may be from the clip's.
const DURATION_SLACK: f64 = 0.5;

/// What a camera sent.
#[derive(Clone, Copy)]
struct Expect {
    video: bool,
    audio: bool,
    seconds: f64,
}

/// A server whose cameras end 1 s after leaving and whose window holds a whole clip.
async fn vod_server(name: &str) -> Server {
    Server::start(
        name,
        ServerOptions {
            args: vec!["--reconnect-window", "1s", "--hls-window", "20"],
            ..ServerOptions::default()
        },
    )
    .await
}

/// Waits for a publisher to finish cleanly.
async fn finished(p: &mut Ffmpeg, what: &str) {
    let status = p.wait(Duration::from_secs(90)).await;
    assert!(status.success(), "{what}: {status}\n{}", p.stderr());
    assert_eq!(p.stderr(), "", "{what} wrote on stderr");
}

/// Checks both playlists of an ended camera with ffprobe and remuxes them with ffmpeg.
/// Returns when the playlist was first seen ended.
async fn check_ended_camera(server: &Server, camera: &str, expect: Expect) -> Instant {
    let ll = server
        .wait_ll_until(camera, "EXT-X-ENDLIST", Duration::from_secs(20), |p| {
            p.ended
        })
        .await;
    let ended_at = Instant::now();
    let ts_text = server
        .get_text(&format!("/hls/{camera}/ts/playlist.m3u8"))
        .await;
    let ts = LlPlaylist::parse(&ts_text);
    assert!(ts.ended, "TS playlist not ended:\n{ts_text}");
    assert!(ll.preload_hint.is_none(), "{}", ll.text);
    for (p, what) in [(&ll, "LL-HLS"), (&ts, "TS")] {
        let total: f64 = p.segments.iter().map(|s| s.duration).sum();
        assert!(
            (total - expect.seconds).abs() < DURATION_SLACK,
            "{camera} {what}: segments sum to {total:.3}s, published {}s\n{}",
            expect.seconds,
            p.text
        );
        assert_eq!(p.media_sequence, 0, "the whole clip is in the window");
    }
    let urls = [
        (server.url(&format!("/hls/{camera}/playlist.m3u8")), "mp4"),
        (server.url(&format!("/hls/{camera}/ts/playlist.m3u8")), "ts"),
    ];
    for (url, ext) in urls {
        let probed = probe(&url).await;
        check_streams(&probed, expect, &url);
        let duration = probed.duration.expect("an ended playlist has a duration");
        println!("{url}: ffprobe duration {duration:.3}s");
        assert!(
            (duration - expect.seconds).abs() < DURATION_SLACK,
            "{url}: duration {duration}, published {}",
            expect.seconds
        );
        let out = server.dir.join(format!("{camera}-remux.{ext}"));
        let (status, stderr) = remux(&url, &out).await;
        assert!(status.success(), "remux {url}: {status}\n{stderr}");
        assert_eq!(stderr, "", "remux {url} reported errors");
        let remuxed = probe(out.to_str().expect("utf-8 path")).await;
        check_streams(&remuxed, expect, &out.display().to_string());
        let d = remuxed.duration.expect("remuxed file duration");
        assert!(
            (d - expect.seconds).abs() < DURATION_SLACK,
            "{}: remuxed duration {d}",
            out.display()
        );
    }
    ended_at
}

fn check_streams(p: &crate::common::ffmpeg::Probe, expect: Expect, what: &str) {
    match p.stream("video") {
        Some(v) if expect.video => {
            assert_eq!(v.codec_name, "h264", "{what}: {p:?}");
            assert_eq!(
                (v.width, v.height),
                (Some(1280), Some(720)),
                "{what}: {p:?}"
            );
        }
        None if !expect.video => {}
        _ => panic!("{what}: video expected {}: {p:?}", expect.video),
    }
    match p.stream("audio") {
        Some(a) if expect.audio => {
            assert_eq!(a.codec_name, "aac", "{what}: {p:?}");
            assert_eq!(a.sample_rate, Some(48_000), "{what}: {p:?}");
        }
        None if !expect.audio => {}
        _ => panic!("{what}: audio expected {}: {p:?}", expect.audio),
    }
    let expected = usize::from(expect.video) + usize::from(expect.audio);
    assert_eq!(p.streams.len(), expected, "{what}: {p:?}");
}

/// Issue 3: ffmpeg publishes over RTMP and RTMPS; both cameras' LL-HLS and TS playlists
/// probe as H.264 1280x720 + AAC with the published duration and remux cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_and_rtmps_publish_probe_and_remux() {
    let clips = clips().await;
    let server = vod_server("publish-rtmp-rtmps").await;
    let mut plain = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url("cam-rtmp"),
        server.dir.join("publish-rtmp.stderr"),
    );
    let mut tls = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmps_url("cam-rtmps"),
        server.dir.join("publish-rtmps.stderr"),
    );
    finished(&mut plain, "RTMP publisher").await;
    finished(&mut tls, "RTMPS publisher").await;
    server
        .wait_log(
            &["tls=false", "camera_id=cam-rtmp", "publishing"],
            Duration::from_secs(1),
        )
        .await;
    server
        .wait_log(
            &["tls=true", "camera_id=cam-rtmps", "publishing"],
            Duration::from_secs(1),
        )
        .await;
    let expect = Expect {
        video: true,
        audio: true,
        seconds: Clips::SHORT,
    };
    let ended = check_ended_camera(&server, "cam-rtmp", expect).await;
    check_ended_camera(&server, "cam-rtmps", expect).await;
    server.assert_healthy().await;

    // An ended playlist is served for 60 s, then the camera's paths are 404.
    let ll = server.ll("cam-rtmp", "").await;
    let segment = format!("/hls/cam-rtmp/{}", ll.segments[0].uri);
    assert_eq!(server.get(&segment).await.status(), 200);
    let gone = eventually(
        "the ended stream to go",
        Duration::from_secs(80),
        || async {
            let status = server.get("/hls/cam-rtmp/playlist.m3u8").await.status();
            (status == 404).then(Instant::now)
        },
    )
    .await;
    let lingered = gone.duration_since(ended);
    println!("ended playlist served for {lingered:?}");
    assert!(
        lingered >= Duration::from_secs(58),
        "removed {lingered:?} after EXT-X-ENDLIST, documented 60 s"
    );
    for path in [segment.as_str(), "/hls/cam-rtmp/ts/playlist.m3u8"] {
        assert_eq!(server.get(path).await.status(), 404, "{path}");
    }
    // The other camera ended within a second or two of this one.
    eventually(
        "/healthz to count no stream",
        Duration::from_secs(5),
        || async {
            let health: serde_json::Value = server.get("/healthz").await.json().await.ok()?;
            (health["streams"] == 0).then_some(())
        },
    )
    .await;
}

/// Issue 3: a video-only and an audio-only camera both give playable LL-HLS and TS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_only_and_audio_only_cameras_play() {
    let clips = clips().await;
    let server = vod_server("publish-single-track").await;
    let mut video = Ffmpeg::publish(
        &clips.video,
        &server.rtmp_url("video-only"),
        server.dir.join("publish-video.stderr"),
    );
    let mut audio = Ffmpeg::publish(
        &clips.audio,
        &server.rtmp_url("audio-only"),
        server.dir.join("publish-audio.stderr"),
    );
    finished(&mut video, "video-only publisher").await;
    finished(&mut audio, "audio-only publisher").await;
    check_ended_camera(
        &server,
        "video-only",
        Expect {
            video: true,
            audio: false,
            seconds: Clips::SHORT,
        },
    )
    .await;
    check_ended_camera(
        &server,
        "audio-only",
        Expect {
            video: false,
            audio: true,
            seconds: Clips::SHORT,
        },
    )
    .await;
    // Audio-only media is served as audio/mp4.
    let ll = server.ll("audio-only", "").await;
    let seg = &ll.segments[0];
    let r = server.get(&format!("/hls/audio-only/{}", seg.uri)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/mp4");
    let r = server
        .get(&format!(
            "/hls/audio-only/{}",
            seg.map.as_deref().expect("EXT-X-MAP")
        ))
        .await;
    assert_eq!(r.headers()["content-type"], "audio/mp4");
    server.assert_healthy().await;
}
