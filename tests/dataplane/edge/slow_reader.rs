//! Clients that request a large segment and never read it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::*;
use crate::common::ffmpeg::Ffmpeg;
use crate::common::hls::LlPlaylist;
use crate::common::{Server, ServerOptions, eventually, testdata};

/// A 40 s clip at ~16 Mbit/s (noise), so one 2 s TS segment is ~4 MB: large enough that
/// pinned segments show in the server's RSS.
fn heavy_clip() -> std::path::PathBuf {
    let path = testdata().join("heavy-v2.flv");
    if path.exists() {
        return path;
    }
    let tmp = testdata().join(format!("heavy.{}.tmp.flv", std::process::id()));
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=640x360:rate=30,noise=alls=40:allf=t")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "40", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60"])
        .args(["-sc_threshold", "0", "-b:v", "16M", "-minrate", "16M"])
        .args(["-maxrate", "16M", "-bufsize", "4M"])
        .args([
            "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-f", "flv",
        ])
        .arg(&tmp)
        .output()
        .expect("run ffmpeg (is it installed?)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg could not make the heavy clip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).expect("rename clip");
    path
}

/// The camera's TS playlist, `None` until it exists.
async fn ts_playlist(server: &Server) -> Option<LlPlaylist> {
    let r = server
        .client()
        .get(server.url("/hls/heavy/ts/playlist.m3u8"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    Some(LlPlaylist::parse(&r.text().await.ok()?))
}

/// Issue 9: clients that request a large TS segment and never read are cut after the write
/// timeout, and the segments they asked for are released once they leave the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_cut_and_release_segments() {
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 3;
    let write_timeout = Duration::from_secs(2);
    let server = Server::start(
        "edge-slow-reader",
        ServerOptions {
            args: vec!["--http-write-timeout", "2s", "--hls-window", "3"],
            // Every allocation of 64 KiB or more gets its own mapping, returned to the
            // system when freed, so RSS follows the media buffers alive (glibc would
            // otherwise keep freed multi-MB buffers in its arenas).
            env: vec![(
                "GLIBC_TUNABLES".into(),
                "glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=131072".into(),
            )],
            ..ServerOptions::default()
        },
    )
    .await;
    let clip = tokio::task::spawn_blocking(heavy_clip).await.expect("clip");
    let _camera = Ffmpeg::publish(
        &clip,
        &server.rtmp_url("heavy"),
        server.dir.join("ffmpeg.log"),
    );
    let ts = |min: usize| {
        let server = &server;
        async move {
            eventually("TS segments", Duration::from_secs(30), || async {
                ts_playlist(server)
                    .await
                    .filter(|p| p.segments.len() >= min)
            })
            .await
        }
    };
    // Steady state: the window is full and a normal viewer has fetched its segments.
    let p = ts(3).await;
    for s in &p.segments {
        server.get_bytes(&format!("/hls/heavy/ts/{}", s.uri)).await;
    }
    let pid = server.pid();
    let rss_before = rss_kib(pid);
    let mut last = p.last_msn().expect("msn");
    let mut readers = JoinSet::new();
    let mut h2_reader = None;
    let mut asked = 0usize;
    for _ in 0..ROUNDS {
        // Each round asks for the newest segment: a different one each time.
        let p = eventually("a new TS segment", Duration::from_secs(10), || {
            let server = &server;
            async move {
                ts_playlist(server)
                    .await
                    .filter(|p| p.last_msn() > Some(last))
            }
        })
        .await;
        last = p.last_msn().expect("msn");
        let uri = p.segments.last().expect("segment").uri.clone();
        for i in 0..PER_ROUND {
            let s = TcpSocket::new_v4().expect("socket");
            // A tiny receive window, and we never read: the server's writes block at once.
            s.set_recv_buffer_size(4096).expect("rcvbuf");
            s.bind(SocketAddr::new(IpAddr::from([127, 0, 5, 1 + i as u8]), 0))
                .expect("bind");
            let mut sock = s.connect(server.http).await.expect("connect");
            sock.write_all(
                format!("GET /hls/heavy/ts/{uri} HTTP/1.1\r\nHost: camstream\r\n\r\n").as_bytes(),
            )
            .await
            .expect("request");
            // Watched from now on, without reading (a read would take bytes): the cut is a
            // reset, so SO_ERROR turns to ECONNRESET.
            let uri = uri.clone();
            readers.spawn(async move {
                let asked_at = Instant::now();
                let limit = write_timeout + LATE + Duration::from_secs(2);
                loop {
                    if sock.take_error().expect("SO_ERROR").is_some() {
                        return (sock, asked_at.elapsed());
                    }
                    assert!(
                        asked_at.elapsed() < limit,
                        "the slow reader of {uri} was not reset within {limit:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        asked += server
            .get_bytes(&format!("/hls/heavy/ts/{uri}"))
            .await
            .len();
        if h2_reader.is_none() {
            // An h2 client that never consumes the body: its socket is read (the
            // connection task runs), only the stream's flow-control window stays shut.
            crate::common::install_crypto();
            let client = reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .http2_initial_stream_window_size(256 * 1024)
                .build()
                .expect("h2 client");
            let r = client
                .get(server.https_url(&format!("/hls/heavy/ts/{uri}")))
                .send()
                .await
                .expect("h2 request");
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            h2_reader = Some((client, r, Instant::now()));
        }
    }
    let rss_during = rss_kib(pid);
    // Each reader is cut about `write_timeout` after its request, with a reset (so the
    // kernel drops what it buffered too).
    let mut cut_after = Vec::new();
    let mut sockets = Vec::new();
    while let Some(r) = readers.join_next().await {
        let (sock, after) = r.expect("slow reader watch panicked");
        cut_after.push(after);
        sockets.push(sock);
    }
    let (cut_med, cut_max) = median_max(&cut_after);
    let cut_min = *cut_after.iter().min().expect("readers");
    assert!(
        cut_min + Duration::from_millis(100) >= write_timeout && cut_max <= write_timeout + LATE,
        "slow readers cut after {} .. {} (write timeout {})",
        ms(cut_min),
        ms(cut_max),
        ms(write_timeout)
    );
    // The h2 stream that nobody drains is cut the same way: its body ends in an error
    // after what the window let through.
    let (_client, r, h2_asked_at) = h2_reader.expect("h2 reader");
    let len = r.content_length().expect("content-length");
    tokio::time::sleep_until(h2_asked_at + write_timeout + LATE).await;
    let got = r.bytes().await;
    println!(
        "h2 reader with a 256 KiB stream window, read {} after the request: {:?} of {len} bytes",
        ms(h2_asked_at.elapsed()),
        got.as_ref().map(|b| b.len()).map_err(|e| e.to_string())
    );
    assert!(
        got.is_err() || (got.expect("body").len() as u64) < len,
        "the undrained h2 stream got its whole body"
    );
    let metrics = server.get_text("/metrics").await;
    let write_cuts = metric(&metrics, "camstream_http_timeouts_total{kind=\"write\"}");
    assert_eq!(
        write_cuts,
        (ROUNDS * PER_ROUND + 1) as f64,
        "write timeouts counted"
    );
    // Once the window (3 segments) has moved past the last segment asked for, nothing may
    // hold any of them.
    let gone = last + 4;
    eventually("the window to move on", Duration::from_secs(15), || {
        let server = &server;
        async move {
            let p = ts_playlist(server).await?;
            (p.last_msn() >= Some(gone)).then_some(())
        }
    })
    .await;
    let rss_after = rss_kib(pid);
    println!(
        "slow readers: {} cut after min {} median {} max {} (write timeout {}); segments asked {} MiB; server RSS before {} MiB, during {} MiB, after {} MiB",
        cut_after.len(),
        ms(cut_min),
        ms(cut_med),
        ms(cut_max),
        ms(write_timeout),
        asked >> 20,
        rss_before / 1024,
        rss_during / 1024,
        rss_after / 1024
    );
    drop(sockets);
    // Had the readers kept their segments, RSS would now be up by about `asked` (each
    // segment's TS data) over the steady state. Measured here: with the cut 67 -> 58 MiB
    // for 23 MiB asked (the start's transients go too); the same run with
    // `--http-write-timeout 600s` and the readers kept open, 67 -> 84 MiB.
    let kept = rss_after.saturating_sub(rss_before) * 1024;
    assert!(
        (kept as usize) < asked / 3,
        "RSS is {} MiB above the steady state; the {} MiB asked for seem pinned",
        kept >> 20,
        asked >> 20
    );
    server.assert_healthy().await;
}
