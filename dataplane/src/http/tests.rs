//! The HLS routes in-process (`Router::oneshot`), fed by a registry publishing the test clip.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use camstream_protocol::MediaEvent;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{HlsState, Waits, router};
use crate::auth::{CameraId, PlaybackDenied, PlaybackGuard, PublicPlayback};
use crate::registry::{Publisher, Registry, RegistryConfig};
use crate::testing::clip_media;

struct Fixture {
    registry: Arc<Registry>,
    app: axum::Router,
    publisher: Publisher,
    rest: std::vec::IntoIter<MediaEvent>,
}

/// A registry with camera `cam` publishing the first `seconds` of the clip.
fn fixture(seconds: f64, guard: Arc<dyn PlaybackGuard>) -> Fixture {
    let registry = Registry::new(RegistryConfig::default());
    let mut publisher = registry.claim(CameraId::from("cam")).unwrap();
    let mut events = clip_media(0).into_iter();
    let limit = (seconds * 90_000.0) as i64;
    for ev in events.by_ref() {
        let past = matches!(&ev, MediaEvent::Frame(f) if f.dts > limit);
        publisher.handle_event(SystemTime::now(), ev);
        if past {
            break;
        }
    }
    let app = router(HlsState {
        registry: registry.clone(),
        guard,
        waits: Waits {
            startup: Duration::from_millis(300),
            min_parts: 3,
        },
        puller: Arc::default(),
        ladder: crate::abr::AbrConfig::default().ladder.into(),
    });
    Fixture {
        registry,
        app,
        publisher,
        rest: events,
    }
}

impl Fixture {
    /// Feeds the clip up to `seconds` more.
    fn feed(&mut self, seconds: f64) {
        let mut until = None;
        for ev in self.rest.by_ref() {
            if let MediaEvent::Frame(f) = &ev {
                let end = *until.get_or_insert(f.dts + (seconds * 90_000.0) as i64);
                if f.dts > end {
                    self.publisher.handle_event(SystemTime::now(), ev);
                    break;
                }
            }
            self.publisher.handle_event(SystemTime::now(), ev);
        }
    }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, bytes::Bytes) {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

fn media_playlist(body: &[u8]) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(body) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
        other => panic!("not a media playlist: {other:?}"),
    }
}

#[tokio::test]
async fn playlists_and_media_with_headers() {
    let f = fixture(4.5, Arc::new(PublicPlayback));
    let (status, h, body) = get(&f.app, "/hls/cam/playlist.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.apple.mpegurl");
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
    let p = media_playlist(&body);
    assert_eq!(p.segments.len(), 2);
    let window = f.registry.get("cam").unwrap().ll().borrow().clone();

    let seg_uri = format!("/hls/cam/{}", p.segments[0].uri);
    let (status, h, body) = get(&f.app, &seg_uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "video/mp4");
    assert_eq!(
        h[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(h[header::CONTENT_LENGTH], body.len().to_string());
    assert_eq!(body, window.segments[0].body().to_bytes());

    let init = format!("/hls/cam/{}-init1.mp4", window.prefix);
    let (status, _, body) = get(&f.app, &init).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[4..8], b"ftyp");

    let part = format!("/hls/cam/{}-1.3.m4s", window.prefix);
    let (status, _, body) = get(&f.app, &part).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, window.segments[1].parts[3].data.to_bytes());

    let (status, _, body) = get(&f.app, "/hls/cam/ts/playlist.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    let ts = media_playlist(&body);
    let (status, h, body) = get(&f.app, &format!("/hls/cam/ts/{}", ts.segments[0].uri)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "video/mp2t");
    assert_eq!(body[0], 0x47);
    assert_eq!(body.len() % 188, 0);
}

#[tokio::test]
async fn unknown_and_stale_names_are_404() {
    let f = fixture(2.5, Arc::new(PublicPlayback));
    assert_eq!(
        get(&f.app, "/hls/nope/playlist.m3u8").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&f.app, "/hls/cam/deadbeef-0.m4s").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&f.app, "/hls/cam/../etc/passwd").await.0,
        StatusCode::NOT_FOUND
    );
    let prefix = f.registry.get("cam").unwrap().ll().borrow().prefix.clone();
    assert_eq!(
        get(&f.app, &format!("/hls/cam/{prefix}-99.m4s")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&f.app, "/hls/cam/playlist.m3u8?_HLS_msn=abc").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn blocking_reload_answers_when_the_part_appears() {
    let mut f = fixture(2.5, Arc::new(PublicPlayback));
    let (msn, part) = f.registry.get("cam").unwrap().ll().borrow().next_part();
    let app = f.app.clone();
    let uri = format!("/hls/cam/playlist.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    let waiter = tokio::spawn(async move { get(&app, &uri).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "must wait for the part");
    f.feed(0.3);
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("answered once the part exists")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    let prefix = f.registry.get("cam").unwrap().ll().borrow().prefix.clone();
    assert!(
        text.contains(&format!("{prefix}-{msn}.{part}.m4s")),
        "{text}"
    );

    // Far in the future: 400 at once.
    let far = format!("/hls/cam/playlist.m3u8?_HLS_msn={}", msn + 5);
    assert_eq!(get(&f.app, &far).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn blocking_reloads_beyond_the_connection_cap_get_429_at_once() {
    let mut f = fixture(2.5, Arc::new(PublicPlayback));
    let (msn, part) = f.registry.get("cam").unwrap().ll().borrow().next_part();
    let slots = super::watch::ReloadSlots(Arc::new(tokio::sync::Semaphore::new(1)));
    let on_conn = move |uri: &str| {
        let mut req = Request::get(uri).body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
        req.extensions_mut().insert(slots.clone());
        req
    };
    let blocking = format!("/hls/cam/playlist.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    let waiter = tokio::spawn(f.app.clone().oneshot(on_conn(&blocking)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiter.is_finished(),
        "the first takes the one slot and waits"
    );
    let second = f.app.clone().oneshot(on_conn(&blocking)).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()[header::RETRY_AFTER], "1");
    // Plain reloads and media do not need a slot.
    let plain = f
        .app
        .clone()
        .oneshot(on_conn("/hls/cam/playlist.m3u8"))
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    f.feed(0.3);
    let first = waiter.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    // The slot is free again once the first is answered.
    let (msn, part) = f.registry.get("cam").unwrap().ll().borrow().next_part();
    let again = tokio::spawn(f.app.clone().oneshot(on_conn(&format!(
        "/hls/cam/playlist.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    ))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!again.is_finished());
    f.feed(0.3);
    assert_eq!(again.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn preload_hint_part_waits_for_its_bytes() {
    let mut f = fixture(2.5, Arc::new(PublicPlayback));
    let w = f.registry.get("cam").unwrap().ll().borrow().clone();
    let (msn, part) = w.next_part();
    let uri = format!("/hls/cam/{}-{msn}.{part}.m4s", w.prefix);
    let app = f.app.clone();
    let waiter = tokio::spawn(async move { get(&app, &uri).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    f.feed(0.3);
    let (status, _, body) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let w = f.registry.get("cam").unwrap().ll().borrow().clone();
    assert_eq!(body, w.part(msn, part).unwrap().data.to_bytes());
}

#[tokio::test]
async fn delta_update_skips() {
    let f = fixture(100.0, Arc::new(PublicPlayback)); // the whole clip: 3 segments
    let Fixture {
        registry,
        app,
        publisher,
        ..
    } = f;
    // 3 × 2 s is less than CAN-SKIP-UNTIL (12 s): nothing to skip yet.
    let (_, _, full) = get(&app, "/hls/cam/playlist.m3u8").await;
    let (_, _, delta) = get(&app, "/hls/cam/playlist.m3u8?_HLS_skip=YES").await;
    assert_eq!(full, delta);
    // Two more sessions: 9 segments made, 8 kept.
    drop(publisher);
    for _ in 0..2 {
        let mut p = registry.claim(CameraId::from("cam")).unwrap();
        for ev in clip_media(0) {
            p.handle_event(SystemTime::now(), ev);
        }
    }
    let (_, _, full) = get(&app, "/hls/cam/playlist.m3u8").await;
    let (status, _, delta) = get(&app, "/hls/cam/playlist.m3u8?_HLS_skip=YES").await;
    assert_eq!(status, StatusCode::OK);
    let full = media_playlist(&full);
    let text = String::from_utf8(delta.to_vec()).unwrap();
    let skipped: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .expect("a skip tag")
        .parse()
        .unwrap();
    // 8 segments kept (16 s) and 12 s must stay listed: the oldest can go.
    assert!(skipped >= 1, "{skipped}");
    let delta = media_playlist(&delta);
    assert_eq!(delta.media_sequence, full.media_sequence);
    assert_eq!(skipped + delta.segments.len(), full.segments.len());
    let tail: Vec<_> = full.segments[skipped..].iter().map(|s| &s.uri).collect();
    let listed: Vec<_> = delta.segments.iter().map(|s| &s.uri).collect();
    assert_eq!(tail, listed);
}

#[tokio::test]
async fn a_starting_stream_answers_once_parts_exist() {
    let f = fixture(0.1, Arc::new(PublicPlayback));
    // Not enough parts yet: the request waits, then gives up with 503.
    let (status, _, _) = get(&f.app, "/hls/cam/playlist.m3u8").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

struct Deny;

impl PlaybackGuard for Deny {
    fn check(&self, _camera: &str, token: Option<&str>) -> Result<(), PlaybackDenied> {
        match token {
            None => Err(PlaybackDenied::Missing),
            Some("good") => Ok(()),
            Some(_) => Err(PlaybackDenied::Invalid("bad signature".into())),
        }
    }
}

#[tokio::test]
async fn the_guard_decides_and_tokens_propagate() {
    let f = fixture(2.5, Arc::new(Deny));
    assert_eq!(
        get(&f.app, "/hls/cam/playlist.m3u8").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&f.app, "/hls/cam/playlist.m3u8?token=bad").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _, body) = get(&f.app, "/hls/cam/playlist.m3u8?token=good").await;
    assert_eq!(status, StatusCode::OK);
    let p = media_playlist(&body);
    assert!(p.segments[0].uri.ends_with("?token=good"));
    let (status, _, _) = get(&f.app, &format!("/hls/cam/{}", p.segments[0].uri)).await;
    assert_eq!(status, StatusCode::OK);
    let bare = p.segments[0].uri.trim_end_matches("?token=good");
    assert_eq!(
        get(&f.app, &format!("/hls/cam/{bare}")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn tokens_outside_their_alphabet_are_refused_and_never_echoed() {
    // Public playback: the guard lets every token through, so only the alphabet check
    // stands between a crafted token and the playlist text.
    let f = fixture(2.5, Arc::new(PublicPlayback));
    // (Raw `"`, `<` or a newline cannot even be sent in a request line; their
    // percent-escapes can, and would be echoed as they came.)
    for bad in [
        "a%22%0A%23EXT-X-ENDLIST",
        "a%22,BYTERANGE=%22",
        "a,b",
        "a%20b",
        "x=y",
        "a'b",
    ] {
        for path in ["/hls/cam/playlist.m3u8", "/hls/cam/ts/playlist.m3u8"] {
            let (status, _, body) = get(&f.app, &format!("{path}?token={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} token {bad:?}");
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains(bad), "{path}: echoed {bad:?}: {text}");
            assert!(
                !text.contains("#EXT"),
                "{path}: a playlist was sent: {text}"
            );
        }
    }
    let long = "a".repeat(1025);
    let (status, _, _) = get(&f.app, &format!("/hls/cam/playlist.m3u8?token={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "overlong token");
    // Compact playback tokens and JWTs pass and propagate.
    for good in [
        "1767225600.AbC-_0123456789abcdefgh",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW0ifQ.c2lnbmF0dXJl-_",
    ] {
        let (status, _, body) = get(&f.app, &format!("/hls/cam/playlist.m3u8?token={good}")).await;
        assert_eq!(status, StatusCode::OK, "{good}");
        let p = media_playlist(&body);
        assert!(p.segments[0].uri.ends_with(&format!("?token={good}")));
    }
}
