//! 2,000 idle sockets and 200 slow-loris clients while a camera streams and 20 viewers play.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::*;
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::common::hls::LlPlaylist;
use crate::common::{Server, ServerOptions};

/// What one normal viewer saw.
#[derive(Default)]
struct Viewed {
    /// Blocking reloads of the next part.
    reloads: Vec<Duration>,
    /// GETs of parts and whole segments.
    media: Vec<Duration>,
    bytes: usize,
    /// Parts between where the viewer was at the end and the live edge.
    lag: Vec<usize>,
}

/// Parts listed in `p` at or after `from` (msn, part); `None` if `from` is older than every
/// part listed.
fn parts_since(p: &LlPlaylist, from: (u64, usize)) -> Option<usize> {
    let all: Vec<(u64, usize)> = p
        .segments
        .iter()
        .flat_map(|s| s.parts.iter())
        .chain(p.trailing_parts.iter())
        .map(|part| {
            let n = crate::common::hls::name(&part.uri);
            (n.msn, n.part.expect("part index"))
        })
        .collect();
    (all.first()? <= &from).then(|| all.iter().filter(|&&x| x >= from).count())
}

/// An LL-HLS player: blocking reload of the preload hint, then the part it named, and
/// each segment once it completes; until `until`. Any failure panics.
async fn view(http: SocketAddr, camera: &str, until: Instant) -> Viewed {
    let client = reqwest::Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let get = |path: String| {
        let client = client.clone();
        async move {
            let t = Instant::now();
            let r = client
                .get(format!("http://{http}{path}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("viewer GET {path}: {e}"));
            assert_eq!(r.status(), 200, "viewer GET {path}");
            let body = r
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("viewer body {path}: {e}"));
            (body, t.elapsed())
        }
    };
    let mut seen = Viewed::default();
    let (text, _) = get(format!("/hls/{camera}/playlist.m3u8")).await;
    let mut p = LlPlaylist::parse(std::str::from_utf8(&text).expect("utf-8"));
    while Instant::now() < until {
        let (msn, part) = p.hint();
        let hint = p.preload_hint.clone().expect("hint");
        let (text, took) = get(format!(
            "/hls/{camera}/playlist.m3u8?_HLS_msn={msn}&_HLS_part={part}"
        ))
        .await;
        seen.reloads.push(took);
        let next = LlPlaylist::parse(std::str::from_utf8(&text).expect("utf-8"));
        let (b, took) = get(format!("/hls/{camera}/{hint}")).await;
        seen.media.push(took);
        seen.bytes += b.len();
        if next.last_msn() > p.last_msn() {
            let uri = next.segments.last().expect("segment").uri.clone();
            let (b, took) = get(format!("/hls/{camera}/{uri}")).await;
            seen.media.push(took);
            seen.bytes += b.len();
        }
        p = next;
    }
    // Where the live edge is now: a viewer that kept up is at most a part or two behind.
    let (text, _) = get(format!("/hls/{camera}/playlist.m3u8")).await;
    let live = LlPlaylist::parse(std::str::from_utf8(&text).expect("utf-8"));
    seen.lag
        .push(parts_since(&live, p.hint()).unwrap_or(usize::MAX));
    seen
}

/// How the server closed one hostile connection.
#[derive(Debug, Clone, Copy)]
struct Closed {
    after: Duration,
    /// Bytes the slow-loris client got to send first.
    sent: usize,
}

/// Opens a socket from `from` that never sends a byte, waits for the server to close it,
/// again until `stop`.
async fn idle_client(from: IpAddr, to: SocketAddr, stop: Instant, limit: Duration) -> Vec<Closed> {
    let mut closed = Vec::new();
    while Instant::now() < stop {
        let mut s = connect_from(from, to).await;
        let (after, got) = until_closed(&mut s, limit)
            .await
            .unwrap_or_else(|| panic!("idle socket from {from} still open after {limit:?}"));
        assert_eq!(got, 0, "the server answered an idle socket");
        closed.push(Closed { after, sent: 0 });
    }
    closed
}

/// A slow-loris client: a request head sent one byte per second, again until `stop`.
async fn slow_client(from: IpAddr, to: SocketAddr, stop: Instant, limit: Duration) -> Vec<Closed> {
    let head = b"GET /healthz HTTP/1.1\r\nHost: camstream\r\nUser-Agent: slow-loris/1.0\r\n\r\n";
    let mut closed = Vec::new();
    while Instant::now() < stop {
        let s = connect_from(from, to).await;
        let (mut r, mut w) = s.into_split();
        let start = Instant::now();
        let writer = async {
            let mut sent = 0;
            for b in head {
                if w.write_all(&[*b]).await.is_err() {
                    // Closed: the reader reports it.
                    std::future::pending::<()>().await;
                }
                sent += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            sent
        };
        let reader = async {
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(limit, r.read(&mut buf)).await {
                Err(_) => panic!("slow-loris socket from {from} still open after {limit:?}"),
                Ok(Ok(n)) => {
                    assert_eq!(n, 0, "the server answered a slow-loris head");
                }
                Ok(Err(_)) => {}
            }
            start.elapsed()
        };
        tokio::pin!(writer);
        let after = tokio::select! {
            after = reader => after,
            _ = &mut writer => panic!("the whole slow-loris head went out before the server closed"),
        };
        // Bytes written so far: one per second.
        let sent = (after.as_secs() as usize + 1).min(head.len());
        closed.push(Closed { after, sent });
    }
    closed
}

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Issue 9: 2,000 idle sockets and 200 slow-loris clients, each reconnecting as soon as
/// the server closes it, while a camera streams and 20 LL-HLS viewers play. The viewers see
/// no stall, the server's memory stays bounded, and every hostile socket is closed by the
/// header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_loris_floods_do_not_stall_viewers() {
    const IDLE: usize = 2000;
    const SLOW: usize = 200;
    const VIEWERS: usize = 20;
    raise_nofile((IDLE + SLOW + VIEWERS * 2 + 256) as u64);
    let server = Server::start(
        "edge-flood",
        ServerOptions {
            args: vec![
                "--http-header-timeout",
                "2s",
                "--http-idle-timeout",
                "5s",
                "--http-write-timeout",
                "5s",
            ],
            ..ServerOptions::default()
        },
    )
    .await;
    let clips = clips().await;
    let _camera = Ffmpeg::publish(
        &clips.av_long,
        &server.rtmp_url("flood"),
        server.dir.join("ffmpeg.log"),
    );
    server.wait_ll("flood", Duration::from_secs(20)).await;
    let pid = server.pid();
    let rss_before = rss_kib(pid);

    let start = Instant::now();
    let attack_for = Duration::from_secs(12);
    let stop = start + attack_for;
    let limit = HEADER_TIMEOUT + LATE + Duration::from_secs(3);
    let mut viewers = JoinSet::new();
    for _ in 0..VIEWERS {
        viewers.spawn(view(server.http, "flood", stop));
    }
    // 400 idle sockets from each of 5 addresses (under the default 512 per address), the
    // slow-loris clients from a sixth.
    let mut idle = JoinSet::new();
    for i in 0..IDLE {
        let from = IpAddr::from([127, 0, 1, 1 + (i % 5) as u8]);
        idle.spawn(idle_client(from, server.http, stop, limit));
    }
    let mut slow = JoinSet::new();
    for _ in 0..SLOW {
        slow.spawn(slow_client(
            IpAddr::from([127, 0, 2, 1]),
            server.http,
            stop,
            limit,
        ));
    }
    // RSS every 200 ms: (seconds into the flood, KiB).
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                let r = rss_kib(pid);
                samples
                    .lock()
                    .expect("samples")
                    .push((start.elapsed().as_secs_f64(), r));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut seen = Viewed::default();
    while let Some(v) = viewers.join_next().await {
        let v = v.expect("viewer panicked");
        seen.reloads.extend(v.reloads);
        seen.media.extend(v.media);
        seen.bytes += v.bytes;
        seen.lag.extend(v.lag);
    }
    let mut idle_closed = Vec::new();
    while let Some(c) = idle.join_next().await {
        idle_closed.extend(c.expect("idle client panicked"));
    }
    let mut slow_closed = Vec::new();
    while let Some(c) = slow.join_next().await {
        slow_closed.extend(c.expect("slow-loris client panicked"));
    }
    let samples = samples.lock().expect("samples").clone();
    let during = samples.iter().map(|s| s.1).max().unwrap_or(rss_before);
    // Every hostile socket is closed now; give the allocator a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sampler.abort();
    let rss_after = rss_kib(pid);

    let (reload_med, reload_max) = median_max(&seen.reloads);
    let (media_med, media_max) = median_max(&seen.media);
    let idle_times: Vec<Duration> = idle_closed.iter().map(|c| c.after).collect();
    let slow_times: Vec<Duration> = slow_closed.iter().map(|c| c.after).collect();
    let (idle_med, idle_max) = median_max(&idle_times);
    let (slow_med, slow_max) = median_max(&slow_times);
    for (what, med) in [("idle", idle_med), ("slow-loris", slow_med)] {
        assert!(
            med + Duration::from_millis(100) >= HEADER_TIMEOUT,
            "{what} sockets were closed after a median {} (header timeout 2 s)",
            ms(med)
        );
    }
    let idle_min = *idle_times.iter().min().expect("idle");
    let slow_min = *slow_times.iter().min().expect("slow");
    println!(
        "viewers: {} blocking reloads median {} p99 {} max {}; {} part/segment GETs median {} p99 {} max {}; {} MiB",
        seen.reloads.len(),
        ms(reload_med),
        ms(p99(&seen.reloads)),
        ms(reload_max),
        seen.media.len(),
        ms(media_med),
        ms(p99(&seen.media)),
        ms(media_max),
        seen.bytes >> 20
    );
    println!(
        "viewers' lag behind the live edge at the end, in parts: {:?}",
        seen.lag
    );
    println!(
        "idle sockets closed: {} (min {}, median {}, max {}); slow-loris closed: {} (min {}, median {}, max {}, at most {} bytes sent)",
        idle_closed.len(),
        ms(idle_min),
        ms(idle_med),
        ms(idle_max),
        slow_closed.len(),
        ms(slow_min),
        ms(slow_med),
        ms(slow_max),
        slow_closed.iter().map(|c| c.sent).max().unwrap_or(0)
    );
    println!(
        "server RSS: before {} MiB, peak during {} MiB, after {} MiB; during, each second: {:?} MiB",
        rss_before / 1024,
        during / 1024,
        rss_after / 1024,
        samples
            .iter()
            .step_by(5)
            .map(|(_, kib)| kib / 1024)
            .collect::<Vec<_>>()
    );

    // No stall: every viewer ends within PART-HOLD-BACK (3 parts) of the live edge, so it
    // never fell behind what a player buffers; and no single answer took long (a blocking
    // reload waits for at most one part, ~0.2 s; media is in memory) even with the flood
    // and its clients on the same 2 shared cores.
    assert!(
        seen.lag.iter().all(|&l| l <= 3),
        "a viewer fell behind the live edge: {:?} parts",
        seen.lag
    );
    let stall = Duration::from_millis(1500);
    assert!(
        seen.reloads.len() >= VIEWERS * 20,
        "viewers made too few reloads: {}",
        seen.reloads.len()
    );
    assert!(
        reload_max <= stall,
        "a blocking reload took {}",
        ms(reload_max)
    );
    assert!(media_max <= stall, "a media GET took {}", ms(media_max));
    // Every hostile socket went through at least one round, and each was closed by the
    // header timeout: not before it, and not much after.
    assert!(idle_closed.len() >= IDLE && slow_closed.len() >= SLOW);
    for (what, min, max) in [
        ("idle", idle_min, idle_max),
        ("slow-loris", slow_min, slow_max),
    ] {
        // The client's clock starts when its task sees the connection, which under this
        // load can be well after the server's accept started the server's clock.
        assert!(
            min >= HEADER_TIMEOUT / 2,
            "a {what} socket was closed after {} (before the header timeout)",
            ms(min)
        );
        assert!(
            max <= HEADER_TIMEOUT + LATE,
            "a {what} socket was closed only after {}",
            ms(max)
        );
    }
    // Bounded memory: 2,200 open hostile connections cost a few KiB each, not a
    // request buffer each; and it all goes back.
    let grew = during.saturating_sub(rss_before) / 1024;
    assert!(grew <= 96, "RSS grew by {grew} MiB under the flood");
    let kept = rss_after.saturating_sub(rss_before) / 1024;
    assert!(
        kept <= 48,
        "RSS stayed {kept} MiB above the start after the flood"
    );
    let metrics = server.get_text("/metrics").await;
    let header_cuts = metric(&metrics, "camstream_http_timeouts_total{kind=\"header\"}");
    assert!(
        header_cuts >= (idle_closed.len() + slow_closed.len()) as f64,
        "camstream_http_timeouts_total{{kind=\"header\"}} is {header_cuts}"
    );
    server.assert_healthy().await;
}
