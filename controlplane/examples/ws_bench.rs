//! Live events at scale (issue 13): 1,000 WebSocket clients on one control plane while
//! health and alerts flow. Reports the server's memory per client (RSS delta / clients),
//! delivery latency p50/p99 of `stream.health` and `alert.*`, and that a client that never
//! reads is dropped (4008) while the server's memory stays bounded.
//!
//! `cargo run --release -p camstream-controlplane --example ws_bench -- [CLIENTS] [SECONDS]`
//! (defaults 1000 and 20). The server runs in a child process (this program with
//! `--server`), so its RSS is the server's alone; the clients run here.
//!
//! Timestamps travel in the events themselves: a health report's `bitrate` and an alert's
//! message carry the sender's wall clock in microseconds; latency is receive time minus
//! that (same host, same clock).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use camstream_controlplane::store::NewAlert;
use camstream_controlplane::{ControlPlane, ControlPlaneConfig};
use camstream_protocol::{StreamHealth, StreamState};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CAMERAS: usize = 50;
const PASSWORD: &str = "Bench-Fleet-Pass-42";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn report(camera: &str, stamp: u64) -> StreamHealth {
    StreamHealth {
        camera_id: camera.into(),
        state: StreamState::Online,
        fps: 25.0,
        bitrate_bps: stamp,
        dropped_frames: 0,
        resolution: Some((1920, 1080)),
        codecs: vec!["avc1.640028".into(), "mp4a.40.2".into()],
        viewers: 3,
        bytes_in: stamp,
        bytes_out: 0,
        since: SystemTime::now(),
        last_seen: SystemTime::now(),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("--server") {
        return rt.block_on(server());
    }
    let clients: usize = args.first().map_or(Ok(1000), |s| s.parse())?;
    let seconds: u64 = args.get(1).map_or(Ok(20), |s| s.parse())?;
    rt.block_on(bench(clients, seconds))
}

// ---------------------------------------------------------------- server (child process)

async fn server() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("camstream-ws-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cp = ControlPlane::start(ControlPlaneConfig {
        data_dir: dir.clone(),
        admin_password: Some(PASSWORD.into()),
        user_rate_limit: 1_000_000,
        ..ControlPlaneConfig::default()
    })
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = cp.router();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["data"]["accessToken"]
        .as_str()
        .context("login")?
        .to_owned();
    let mut cameras = Vec::new();
    for i in 0..=CAMERAS {
        let c: Value = http
            .post(format!("{base}/api/v1/cameras"))
            .bearer_auth(&token)
            .json(&json!({ "name": format!("bench {i}"), "serialNumber": format!("WSB-{i}"), "company": "bench" }))
            .send()
            .await?
            .json()
            .await?;
        cameras.push(c["data"]["id"].as_str().context("camera")?.to_owned());
    }
    let flood_cam = cameras.pop().context("flood camera")?;
    println!("READY {addr} {token} {} {flood_cam}", cameras.join(","));
    std::io::stdout().flush()?;

    // The data plane's report loop: every camera, once a second.
    let health = {
        let (cp, cameras) = (cp.clone(), cameras.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let stamp = now_us();
                let batch = cameras.iter().map(|c| report(c, stamp)).collect();
                let _ = cp.report_health(batch).await;
            }
        })
    };
    let alerts = Arc::new(AtomicBool::new(false));
    let flood = Arc::new(AtomicBool::new(false));
    {
        // Alerts: one opened and the previous one resolved, every 500 ms.
        let (cp, cameras, on) = (cp.clone(), cameras.clone(), alerts.clone());
        tokio::spawn(async move {
            let store = cp.store();
            let mut n = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if !on.load(Ordering::Relaxed) {
                    continue;
                }
                let cam = &cameras[n % cameras.len()];
                let _ = store
                    .create_alert(NewAlert {
                        kind: "CAMERA_OFFLINE".into(),
                        severity: "critical".into(),
                        camera_id: Some(cam.clone()),
                        user_id: None,
                        token_id: None,
                        message: format!("t={}", now_us()),
                        cause: Some(format!("BENCH:{n}")),
                        company: Some("bench".into()),
                    })
                    .await;
                if n > 0 {
                    let _ = store
                        .resolve_cause(&format!("BENCH:{}", n - 1), now_us() as i64 / 1000)
                        .await;
                }
                n += 1;
            }
        });
    }
    {
        // Flood: health of one camera (only the never-reading client subscribes to it) as
        // fast as the server takes it.
        let (cp, on) = (cp.clone(), flood.clone());
        tokio::spawn(async move {
            loop {
                if on.load(Ordering::Relaxed) {
                    let batch = (0..500).map(|_| report(&flood_cam, now_us())).collect();
                    let _ = cp.report_health(batch).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(8);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(cmd) = rx.recv().await {
        match cmd.trim() {
            "alerts" => alerts.store(true, Ordering::Relaxed),
            "flood" => flood.store(true, Ordering::Relaxed),
            "noflood" => flood.store(false, Ordering::Relaxed),
            _ => break,
        }
    }
    health.abort();
    cp.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ------------------------------------------------------------------ clients (this process)

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Stats {
    measuring: AtomicBool,
    health: Mutex<Histogram<u64>>,
    alert: Mutex<Histogram<u64>>,
    connected: AtomicU64,
    closed: AtomicU64,
}

async fn metric(http: &reqwest::Client, addr: &str, name: &str) -> f64 {
    let Ok(r) = http.get(format!("http://{addr}/metrics")).send().await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn client(addr: String, token: String, camera: String, stats: Arc<Stats>) -> Result<()> {
    let mut req = format!("ws://{addr}/api/v1/ws").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    ws.send(Message::text(
        json!({ "type": "subscribe", "cameraIds": [camera] }).to_string(),
    ))
    .await?;
    stats.connected.fetch_add(1, Ordering::Relaxed);
    while let Some(m) = ws.next().await {
        let Message::Text(t) = m? else { continue };
        if !stats.measuring.load(Ordering::Relaxed) {
            continue;
        }
        let now = now_us();
        let v: Value = serde_json::from_str(t.as_str())?;
        match v["type"].as_str() {
            Some("stream.health") => {
                if let Some(sent) = v["data"]["bitrate"].as_u64() {
                    let _ = stats
                        .health
                        .lock()
                        .unwrap()
                        .record(now.saturating_sub(sent));
                }
            }
            Some("alert.opened" | "alert.resolved") => {
                // The opened alert's message carries its time; a resolution is timed by
                // the event's own `at` (ms).
                let sent = if v["type"] == "alert.opened" {
                    v["data"]["message"]
                        .as_str()
                        .and_then(|m| m.strip_prefix("t="))
                        .and_then(|s| s.parse::<u64>().ok())
                } else {
                    None
                };
                if let Some(sent) = sent {
                    let _ = stats.alert.lock().unwrap().record(now.saturating_sub(sent));
                }
            }
            _ => {}
        }
    }
    stats.closed.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn bench(clients: usize, seconds: u64) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .arg("--server")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .env("RUST_LOG", "warn")
        .spawn()?;
    let pid = child.id();
    let mut out = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [ready, addr, token, cams, flood_cam] = parts[..] else {
        bail!("server said {line:?}");
    };
    anyhow::ensure!(ready == "READY", "server said {line:?}");
    let (addr, token) = (addr.to_owned(), token.to_owned());
    let cameras: Vec<String> = cams.split(',').map(str::to_owned).collect();
    let mut stdin = child.stdin.take().context("stdin")?;
    let http = reqwest::Client::new();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss0 = rss_kib(pid);
    let stats = Arc::new(Stats {
        measuring: AtomicBool::new(false),
        health: Mutex::new(Histogram::new(3)?),
        alert: Mutex::new(Histogram::new(3)?),
        connected: AtomicU64::new(0),
        closed: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        let cam = cameras[i % cameras.len()].clone();
        tasks.spawn(client(addr.clone(), token.clone(), cam, stats.clone()));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (stats.connected.load(Ordering::Relaxed) as usize) < clients {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} clients connected",
            stats.connected.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss1 = rss_kib(pid);
    let gauge = metric(&http, &addr, "camstream_ws_clients").await;
    println!(
        "{clients} clients connected (server gauge {gauge}); server RSS {rss0} KiB -> {rss1} KiB: {:.1} KiB per client",
        (rss1.saturating_sub(rss0)) as f64 / clients as f64
    );

    writeln!(stdin, "alerts")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stats.measuring.store(true, Ordering::Relaxed);
    let mut peak = rss1;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss_kib(pid));
    }
    stats.measuring.store(false, Ordering::Relaxed);
    {
        let h = stats.health.lock().unwrap();
        let a = stats.alert.lock().unwrap();
        println!(
            "stream.health: {} deliveries ({:.0}/s), latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.len(),
            h.len() as f64 / seconds as f64,
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        );
        println!(
            "alert.opened: {} deliveries ({:.0}/s), latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (includes the 500 ms outbox poll)",
            a.len(),
            a.len() as f64 / seconds as f64,
            ms(a.value_at_quantile(0.5)),
            ms(a.value_at_quantile(0.99)),
            ms(a.max())
        );
        println!(
            "server RSS while flowing: peak {peak} KiB; clients closed so far: {}",
            stats.closed.load(Ordering::Relaxed)
        );
    }

    // A client that never reads, subscribed to a camera whose health floods.
    let slow0 = metric(&http, &addr, "camstream_ws_slow_consumers_total").await;
    let mut req = format!("ws://{addr}/api/v1/ws").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut slow, _) = tokio_tungstenite::connect_async(req).await?;
    slow.send(Message::text(
        json!({ "type": "subscribe", "cameraIds": [flood_cam] }).to_string(),
    ))
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss2 = rss_kib(pid);
    writeln!(stdin, "flood")?;
    let start = tokio::time::Instant::now();
    let mut peak = rss2;
    let dropped = loop {
        peak = peak.max(rss_kib(pid));
        if metric(&http, &addr, "camstream_ws_slow_consumers_total").await > slow0 {
            break Some(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Keep flooding a while after the drop: memory must not keep growing.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_kib(pid));
    }
    writeln!(stdin, "noflood")?;
    let after = rss_kib(pid);
    let mut code = None;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(15), slow.next()).await {
        match m {
            Ok(Message::Close(f)) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    match dropped {
        Some(t) => println!(
            "never-reading client: dropped after {:.2} s of flooding, close code {code:?}; server RSS {rss2} KiB before, peak {peak} KiB, {after} KiB 5 s after the drop",
            t.as_secs_f64()
        ),
        None => println!("never-reading client: NOT dropped within 60 s (peak RSS {peak} KiB)"),
    }
    println!(
        "readers closed during the run: {} of {clients}",
        stats.closed.load(Ordering::Relaxed)
    );
    writeln!(stdin, "quit")?;
    tasks.abort_all();
    let _ = child.wait();
    Ok(())
}
