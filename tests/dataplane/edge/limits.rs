//! Connection caps, keep-alive idle, long blocking reloads and the blocking-reload cap.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::common::hls::LlPlaylist;
use crate::common::{Server, ServerOptions, eventually, https_client};

/// Issue 9: connections over the per-address cap or the total cap are closed at once and
/// counted; closing some frees their places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_close_extra_sockets_at_once() {
    let server = Server::start(
        "edge-caps",
        ServerOptions {
            args: vec![
                "--http-max-connections",
                "30",
                "--http-max-connections-per-ip",
                "10",
            ],
            ..ServerOptions::default()
        },
    )
    .await;
    let a = IpAddr::from([127, 0, 3, 1]);
    let mut from_a = Vec::new();
    for _ in 0..10 {
        let mut s = connect_from(a, server.http).await;
        let (status, _) = raw_get(&mut s, "/healthz").await;
        assert_eq!(status, 200);
        from_a.push(s);
    }
    // The 11th from the same address: closed at once, without an answer.
    let after = refused_or_served(a, server.http)
        .await
        .expect_err("the 11th connection from one address was served");
    println!("over the per-address cap: closed after {}", ms(after));
    assert!(
        after < Duration::from_millis(500),
        "closed after {}",
        ms(after)
    );
    // The cap spans both listeners: the HTTPS port refuses this address too, before any
    // TLS byte (an admitted socket would wait 10 s for a ClientHello).
    let t = Instant::now();
    if let Ok(mut s) = try_connect_from(a, server.https).await {
        until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("the HTTPS listener admitted an 11th connection from one address");
    }
    assert!(t.elapsed() < Duration::from_millis(500));
    // Other addresses still get in, up to the total of 30 (the harness's own keep-alive
    // connection may hold one place).
    let mut others = Vec::new();
    let refused_at = loop {
        let i = others.len();
        assert!(i < 25, "the total cap of 30 never applied");
        match refused_or_served(IpAddr::from([127, 0, 3, 2 + (i % 2) as u8]), server.http).await {
            Ok(s) => others.push(s),
            Err(after) => break after,
        }
    };
    println!(
        "over the total cap: {} + {} open, the next closed after {}",
        from_a.len(),
        others.len(),
        ms(refused_at)
    );
    assert!(
        (19..=20).contains(&others.len()),
        "{} others admitted",
        others.len()
    );
    assert!(
        refused_at < Duration::from_millis(500),
        "closed after {}",
        ms(refused_at)
    );
    // Closing five from the first address frees five places, for it and for others.
    from_a.truncate(5);
    // (The server sees the closes a moment later: attempts until then are refused too.)
    let retries = std::sync::atomic::AtomicUsize::new(0);
    let again = eventually("a freed place", Duration::from_secs(5), || async {
        let r = refused_or_served(a, server.http).await.ok();
        if r.is_none() {
            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    })
    .await;
    let retries = retries.into_inner() as f64;
    let metrics = {
        let mut s = connect_from(IpAddr::from([127, 0, 3, 9]), server.http).await;
        let (status, body) = raw_get(&mut s, "/metrics").await;
        assert_eq!(status, 200);
        String::from_utf8(body).expect("metrics text")
    };
    let per_ip = metric(
        &metrics,
        "camstream_http_connections_refused_total{reason=\"max_connections_per_ip\"}",
    );
    let total = metric(
        &metrics,
        "camstream_http_connections_refused_total{reason=\"max_connections\"}",
    );
    assert!(
        per_ip >= 2.0 && total >= 1.0 && per_ip + total == 3.0 + retries,
        "refusals counted ({retries} retries):\n{metrics}"
    );
    server
        .wait_log(
            &["WARN", "http connection limit reached"],
            Duration::from_secs(5),
        )
        .await;
    drop((from_a, others, again));
    server.assert_healthy().await;
}

/// Issue 9: an idle keep-alive connection lives for the idle timeout (not the shorter
/// header timeout); a blocking reload that legitimately waits longer than the idle and
/// write timeouts is answered; more blocking reloads than the cap on one h2 connection
/// get 429 at once while the others wait and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_idle_and_blocking_reload_limits() {
    let server = Server::start(
        "edge-keepalive",
        ServerOptions {
            args: vec![
                "--http-header-timeout",
                "1s",
                "--http-idle-timeout",
                "3s",
                "--http-write-timeout",
                "1s",
                "--http-max-blocking-reloads",
                "2",
                "--segment-target",
                "4s",
            ],
            ..ServerOptions::default()
        },
    )
    .await;
    let clips = clips().await;
    let _camera = Ffmpeg::publish(
        &clips.av_long,
        &server.rtmp_url("keep"),
        server.dir.join("ffmpeg.log"),
    );
    server.wait_ll("keep", Duration::from_secs(20)).await;

    // HTTPS too: a socket that never starts its TLS handshake is closed at the header
    // timeout.
    let mut s = connect_from(IpAddr::from([127, 0, 4, 3]), server.https).await;
    let (after, _) = until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("a silent HTTPS socket stays open");
    println!("silent HTTPS socket closed after {}", ms(after));
    assert!(
        after >= Duration::from_millis(800) && after <= Duration::from_millis(1000) + LATE,
        "silent HTTPS socket closed after {} (header timeout 1 s)",
        ms(after)
    );
    // A slow POST: the head at once, the body one byte per 300 ms; the body must come at
    // 64 KiB per header timeout, so it is closed about 1 s after the server began to wait.
    let mut s = connect_from(IpAddr::from([127, 0, 4, 4]), server.http).await;
    s.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: camstream\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{",
    )
    .await
    .expect("slow POST head");
    let t = Instant::now();
    let (mut r, mut w) = s.into_split();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if w.write_all(b" ").await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let closed = async {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(5), r.read(&mut buf)).await {
            Err(_) => panic!("a slow POST is still open after 5 s"),
            Ok(Ok(n)) => assert_eq!(n, 0, "the server answered a slow POST"),
            Ok(Err(_)) => {}
        }
        t.elapsed()
    };
    let after = tokio::select! {
        after = closed => after,
        () = trickle => unreachable!("the trickle never ends"),
    };
    println!("slow POST closed after {}", ms(after));
    assert!(
        after >= Duration::from_millis(800) && after <= Duration::from_millis(1000) + LATE,
        "slow POST closed after {} (header timeout 1 s)",
        ms(after)
    );
    let metrics = server.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "camstream_http_timeouts_total{kind=\"body\"}"),
        1.0,
        "the slow POST was cut by the body rule:\n{metrics}"
    );
    // Keep-alive: open past the header timeout, closed at the idle timeout.
    let mut s = connect_from(IpAddr::from([127, 0, 4, 1]), server.http).await;
    let (status, _) = raw_get(&mut s, "/healthz").await;
    assert_eq!(status, 200);
    let (after, _) = until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection stays open");
    println!("idle keep-alive connection closed after {}", ms(after));
    assert!(
        after >= Duration::from_millis(2800) && after <= Duration::from_millis(3000) + LATE,
        "idle keep-alive closed after {} (idle timeout 3 s)",
        ms(after)
    );

    // A blocking reload for the first part of the next segment, asked just after a segment
    // started, waits almost a whole 4 s segment: longer than the write (1 s) and idle (3 s)
    // timeouts, and it is answered.
    let just_started = |p: &LlPlaylist| p.trailing_parts.len() <= 1;
    let p = server
        .wait_ll_until(
            "keep",
            "a segment just started",
            Duration::from_secs(15),
            just_started,
        )
        .await;
    let (msn, _) = p.hint();
    let mut s = connect_from(IpAddr::from([127, 0, 4, 2]), server.http).await;
    let t = Instant::now();
    let (status, body) = raw_get(
        &mut s,
        &format!("/hls/keep/playlist.m3u8?_HLS_msn={}&_HLS_part=0", msn + 1),
    )
    .await;
    let waited = t.elapsed();
    println!(
        "a blocking reload for the next segment answered after {}",
        ms(waited)
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        waited > Duration::from_millis(3200),
        "waited only {}",
        ms(waited)
    );

    // Three blocking reloads on one h2 connection with a cap of 2: one 429 at once.
    let client = https_client();
    let p = LlPlaylist::parse(
        &client
            .get(server.https_url("/hls/keep/playlist.m3u8"))
            .send()
            .await
            .expect("h2 playlist")
            .text()
            .await
            .expect("text"),
    );
    let (msn, _) = p.hint();
    let url = server.https_url(&format!(
        "/hls/keep/playlist.m3u8?_HLS_msn={}&_HLS_part=0",
        msn + 1
    ));
    let t = Instant::now();
    let ask = || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client.get(url).send().await.expect("blocking reload");
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            (r.status().as_u16(), t.elapsed())
        }
    };
    let answers = [ask(), ask(), ask()];
    let mut answers: Vec<(u16, Duration)> = futures_join(answers).await;
    answers.sort();
    println!("three blocking reloads on one h2 connection: {answers:?}");
    assert_eq!(
        answers.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![200, 200, 429]
    );
    assert!(answers[2].1 < Duration::from_millis(500), "the 429 waited");
    server.assert_healthy().await;
}

/// Runs three futures concurrently.
async fn futures_join<F: std::future::Future>(fs: [F; 3]) -> Vec<F::Output> {
    let [a, b, c] = fs;
    let (a, b, c) = tokio::join!(a, b, c);
    vec![a, b, c]
}
