//! HTTP behaviour of the LL-HLS routes while a camera is live: headers, CORS, keep-alive,
//! h2 over TLS and the 400s of RFC 8216bis §6.2.5.2. Called from [`super::llhls`], which
//! owns the stream.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::llhls::{CAMERA, check_playlist};
use crate::common::hls::LlPlaylist;
use crate::common::{Server, https_client};

/// Content-Type, Cache-Control and CORS on playlists and media.
pub(crate) async fn headers_and_cors(server: &Server) {
    let p = server.ll(CAMERA, "").await;
    let map = p.map.clone().expect("EXT-X-MAP");
    let (_, _, part) = p.last_part().expect("a part");
    let ts = LlPlaylist::parse(
        &server
            .get_text(&format!("/hls/{CAMERA}/ts/playlist.m3u8"))
            .await,
    );
    let checks = [
        (
            format!("/hls/{CAMERA}/playlist.m3u8"),
            "application/vnd.apple.mpegurl",
            false,
        ),
        (
            format!("/hls/{CAMERA}/ts/playlist.m3u8"),
            "application/vnd.apple.mpegurl",
            false,
        ),
        (format!("/hls/{CAMERA}/{map}"), "video/mp4", true),
        (format!("/hls/{CAMERA}/{}", part.uri), "video/mp4", true),
        (
            format!("/hls/{CAMERA}/ts/{}", ts.segments[0].uri),
            "video/mp2t",
            true,
        ),
    ];
    for (path, content_type, immutable) in checks {
        let r = server
            .client()
            .get(server.url(&path))
            .header("origin", "https://player.example")
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h["content-type"], content_type, "{path}");
        let cc = h["cache-control"].to_str().expect("ascii");
        if immutable {
            assert!(
                cc.contains("immutable") && cc.contains("max-age="),
                "{path}: {cc}"
            );
        } else {
            assert!(
                cc.contains("no-cache") || cc.contains("max-age=0") || cc.contains("max-age=1"),
                "{path}: {cc}"
            );
        }
        assert_eq!(h["access-control-allow-origin"], "*", "{path}");
        assert!(
            h.contains_key("content-length"),
            "{path}: no Content-Length"
        );
    }
    // A browser's preflight for a cross-origin GET.
    let r = server
        .client()
        .request(
            reqwest::Method::OPTIONS,
            server.url(&format!("/hls/{CAMERA}/playlist.m3u8")),
        )
        .header("origin", "https://player.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("OPTIONS");
    assert!(r.status().is_success(), "preflight {}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers().contains_key("access-control-allow-methods"));
    // Unknown cameras and names of another stream start are 404, never stale media.
    for path in [
        "/hls/nobody/playlist.m3u8".to_owned(),
        format!("/hls/{CAMERA}/00000000-1.m4s"),
        format!("/hls/{CAMERA}/ts/00000000-1.ts"),
    ] {
        assert_eq!(server.get(&path).await.status(), 404, "{path}");
    }
}

/// Several requests on one HTTP/1.1 connection, each answered with a Content-Length.
pub(crate) async fn keep_alive(server: &Server) {
    let p = server.ll(CAMERA, "").await;
    let (_, _, part) = p.last_part().expect("a part");
    let paths = [
        format!("/hls/{CAMERA}/playlist.m3u8"),
        format!("/hls/{CAMERA}/{}", part.uri),
        "/healthz".to_owned(),
        format!("/hls/{CAMERA}/ts/playlist.m3u8"),
    ];
    let sock = TcpStream::connect(server.http).await.expect("connect");
    let mut conn = BufReader::new(sock);
    for path in &paths {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.http);
        conn.get_mut()
            .write_all(req.as_bytes())
            .await
            .expect("send");
        let mut status = String::new();
        conn.read_line(&mut status).await.expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
        let mut length = None;
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).await.expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("header line");
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(v.trim().parse::<usize>().expect("length")),
                "connection" => assert!(!v.to_ascii_lowercase().contains("close"), "{path}"),
                _ => {}
            }
        }
        let length = length.unwrap_or_else(|| panic!("{path}: no Content-Length"));
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await.expect("body");
        assert!(length > 0, "{path}");
    }
}

/// HTTPS negotiates h2 by ALPN and serves the same stream.
pub(crate) async fn https_h2(server: &Server) {
    let client = https_client();
    let r = client
        .get(server.https_url(&format!("/hls/{CAMERA}/playlist.m3u8")))
        .send()
        .await
        .expect("GET over https");
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "ALPN did not pick h2"
    );
    assert_eq!(r.status(), 200);
    let secure = LlPlaylist::parse(&r.text().await.expect("body"));
    check_playlist(&secure);
    let plain = server.ll(CAMERA, "").await;
    assert_eq!(secure.prefix(), plain.prefix());
    let (msn, part, info) = plain.last_part().expect("part");
    let over_tls = client
        .get(server.https_url(&format!("/hls/{CAMERA}/{}", info.uri)))
        .send()
        .await
        .expect("part over https")
        .bytes()
        .await
        .expect("body");
    let over_tcp = server
        .get_bytes(&format!("/hls/{CAMERA}/{}", info.uri))
        .await;
    assert_eq!(over_tls, over_tcp, "part {msn}.{part} differs over https");
    // A blocking reload over h2 too.
    let (hm, hp) = plain.hint();
    let r = client
        .get(server.https_url(&format!(
            "/hls/{CAMERA}/playlist.m3u8?_HLS_msn={hm}&_HLS_part={hp}"
        )))
        .send()
        .await
        .expect("blocking reload over https");
    assert_eq!(r.status(), 200);
    let p = LlPlaylist::parse(&r.text().await.expect("body"));
    assert!(p.hint() > (hm, hp), "{}", p.text);
}

/// Requests far beyond the live edge get 400 at once (RFC 8216bis §6.2.5.2), as do
/// malformed directives.
pub(crate) async fn far_future_requests(server: &Server) {
    let p = server.ll(CAMERA, "").await;
    let (msn, _) = p.hint();
    let t0 = Instant::now();
    let r = server
        .get(&format!(
            "/hls/{CAMERA}/playlist.m3u8?_HLS_msn={}",
            msn + 10
        ))
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a 400 must not block"
    );
    // Ten parts past the hint within its segment: the hint may move between reading it and
    // asking (then the request is merely early); a 400 must come on a retry.
    let mut got_400 = false;
    for _ in 0..5 {
        let (m, part) = server.ll(CAMERA, "").await.hint();
        let r = server
            .get(&format!(
                "/hls/{CAMERA}/playlist.m3u8?_HLS_msn={m}&_HLS_part={}",
                part + 10
            ))
            .await;
        match r.status().as_u16() {
            400 => {
                got_400 = true;
                break;
            }
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(got_400, "_HLS_part far past the hint never got 400");
    for q in ["?_HLS_part=1", "?_HLS_msn=abc", "?_HLS_msn=-1"] {
        let r = server.get(&format!("/hls/{CAMERA}/playlist.m3u8{q}")).await;
        assert_eq!(r.status(), 400, "{q}");
    }
}

/// Viewers that request the largest objects and never read: the returned sockets are kept
/// open while the caller goes on measuring blocking reloads, whose latency bounds prove that
/// stalled viewers slow neither ingest nor other viewers (ARCHITECTURE "The fast path").
pub(crate) async fn stalled_viewers(server: &Server, n: usize) -> Vec<TcpStream> {
    let p = server.ll(CAMERA, "").await;
    let ts = LlPlaylist::parse(
        &server
            .get_text(&format!("/hls/{CAMERA}/ts/playlist.m3u8"))
            .await,
    );
    let objects = [
        format!("/hls/{CAMERA}/{}", p.segments[0].uri),
        format!("/hls/{CAMERA}/ts/{}", ts.segments[0].uri),
    ];
    let addr = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        // Several requests pipelined on one connection, none of them read.
        let mut req = String::new();
        // 16 × ~0.5 MB is more than loopback socket buffers hold, so the server's writes
        // really do stall.
        for _ in 0..16 {
            req.push_str(&format!(
                "GET {} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
                objects[i % objects.len()]
            ));
        }
        s.write_all(req.as_bytes()).await.expect("write");
        socks.push(s);
    }
    socks
}
