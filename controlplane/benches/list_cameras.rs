//! Benchmark (not a test): `GET /api/v1/cameras` with JWT auth over real HTTP/1.1 keep-alive
//! connections at a fixed concurrency, against a control plane on SQLite + in-memory cache
//! seeded with 100 cameras (pages of 20). Reports requests/s and latency percentiles, next to
//! a baseline route with no auth and no database (`GET /api/docs`, a static page), so the
//! cost of auth + rate limit + query + JSON shows as a ratio.
//!
//! Run: `cargo bench -p camstream-controlplane --bench list_cameras -- [--concurrency N]
//! [--seconds S] [--database-url postgres://...] [--redis-url redis://...]` (defaults 16, 10,
//! SQLite in a temp dir, in-memory cache; the database must be empty). On the 2-core dev
//! machine, use `--profile dev`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use camstream_controlplane::{ControlPlane, ControlPlaneConfig};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

struct Args {
    concurrency: usize,
    seconds: u64,
    database_url: Option<String>,
    redis_url: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        concurrency: 16,
        seconds: 10,
        database_url: None,
        redis_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--concurrency" => a.concurrency = it.next().context("value")?.parse()?,
            "--seconds" => a.seconds = it.next().context("value")?.parse()?,
            "--database-url" => a.database_url = Some(it.next().context("value")?),
            "--redis-url" => a.redis_url = Some(it.next().context("value")?),
            // cargo bench passes --bench; ignore what we do not know.
            _ => {}
        }
    }
    if a.concurrency == 0 || a.seconds == 0 {
        bail!("concurrency and seconds must be positive");
    }
    Ok(a)
}

async fn post_json(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let stream = TcpStream::connect(addr).await?;
    let (mut send, conn) = http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let mut req = Request::post(path)
        .header("host", "bench")
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = send
        .send_request(req.body(Full::new(Bytes::from(body.to_string())))?)
        .await?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    drop(send);
    driver.await??;
    if !status.is_success() {
        bail!("{path}: {status} {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// One connection issuing requests back to back until `end`; latencies in microseconds.
async fn worker(
    addr: SocketAddr,
    path: Arc<str>,
    token: Option<Arc<str>>,
    warmup_end: Instant,
    end: Instant,
) -> Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut send, conn) = http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut req = Request::get(&*path).header("host", "bench");
        if let Some(t) = &token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        send.ready().await?;
        let res = send.send_request(req.body(Empty::<Bytes>::new())?).await?;
        let status = res.status();
        res.into_body().collect().await?;
        if !status.is_success() {
            bail!("{path}: {status}");
        }
        if now >= warmup_end {
            hist.record(u64::try_from(now.elapsed().as_micros())?.max(1))?;
        }
    }
    drop(send);
    driver.await??;
    Ok(hist)
}

struct Figures {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

async fn run(addr: SocketAddr, path: &str, token: Option<&str>, a: &Args) -> Result<Figures> {
    let warmup = Duration::from_secs(2);
    let start = Instant::now();
    let warmup_end = start + warmup;
    let end = warmup_end + Duration::from_secs(a.seconds);
    let path: Arc<str> = path.into();
    let token: Option<Arc<str>> = token.map(Into::into);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency {
        set.spawn(worker(addr, path.clone(), token.clone(), warmup_end, end));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    while let Some(h) = set.join_next().await {
        total.add(h??)?;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Figures {
        rps: total.len() as f64 / a.seconds as f64,
        p50: ms(total.value_at_quantile(0.50)),
        p99: ms(total.value_at_quantile(0.99)),
        p999: ms(total.value_at_quantile(0.999)),
        max: ms(total.max()),
    })
}

fn main() -> Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("camstream-bench-{}", std::process::id()));
        let password = "Bench-Root-Pass-1";
        let cp = ControlPlane::start(ControlPlaneConfig {
            data_dir: dir.clone(),
            admin_password: Some(password.into()),
            user_rate_limit: u32::MAX,
            database_url: a.database_url.clone(),
            redis_url: a.redis_url.clone(),
            ..ControlPlaneConfig::default()
        })
        .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = cp.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await
        });

        let login = post_json(addr, "/api/v1/auth/login", None, serde_json::json!({ "username": "admin", "password": password })).await?;
        let token = login["data"]["accessToken"].as_str().context("access token")?.to_owned();
        for i in 0..100 {
            post_json(
                addr,
                "/api/v1/cameras",
                Some(&token),
                serde_json::json!({ "name": format!("Camera {i}"), "serialNumber": format!("BENCH-{i:04}"), "company": "acme", "location": "Site A" }),
            )
            .await?;
        }

        println!("control plane bench: {:?}, concurrency {}, {} s measured after 2 s warm-up, HTTP/1.1 keep-alive over loopback", cp, a.concurrency, a.seconds);
        let base = run(addr, "/api/docs", None, &a).await?;
        let list = run(addr, "/api/v1/cameras", Some(&token), &a).await?;
        for (name, f) in [("GET /api/docs (static, no auth)", &base), ("GET /api/v1/cameras (JWT, 20 of 100)", &list)] {
            println!(
                "{name:<40} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   p99.9 {:>7.2} ms   max {:>7.2} ms",
                f.rps, f.p50, f.p99, f.p999, f.max
            );
        }
        println!("ratio list/static: throughput {:.2}x, p99 {:.2}x", list.rps / base.rps, list.p99 / base.p99);
        server.abort();
        cp.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    })
}
