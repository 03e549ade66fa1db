//! One run of a scenario against one server: start the server, measure it idle, ramp up
//! publishers, viewers and API clients, sample every second (with a live status line),
//! stop at the end or once a limit has held, and turn what was measured into a [`Report`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Session};
use crate::clip::Clip;
use crate::limits::Detector;
use crate::metrics::{Flavor, Metrics, ViewerResult};
use crate::procstat::{MachineSampler, TreeSampler, clock_ticks};
use crate::publisher::{self, PublishUrl};
use crate::report::{
    ApiResult, CameraResult, FlavorLatency, Latency, Machine, Report, Sample, ServerInfo, Summary,
};
use crate::scenario::Scenario;
use crate::server::{Kind, Server};
use crate::viewer::{self, ViewerSpec};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct RunConfig {
    pub(crate) scenario: Scenario,
    pub(crate) kind: Kind,
    pub(crate) camstream_bin: PathBuf,
    pub(crate) clip: Arc<Clip>,
    pub(crate) progress: bool,
    pub(crate) tool: String,
}

/// A reqwest client for loopback HTTP with ring as the TLS provider (reqwest is built with
/// `rustls-no-provider`; shared/CRATES.md).
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    // Already installed on every call after the first: that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// The machine, read from /proc and /etc/os-release.
pub(crate) fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let os = read("/etc/os-release");
    Machine {
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        os: os
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "unknown OS".into()),
    }
}

/// A relay run's second cluster node: measured beside the server, and where the viewers
/// may watch instead (`relay`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer<'a> {
    pub(crate) server: &'a Server,
    /// Viewers watch on the peer (the edge), so every camera is relayed to it.
    pub(crate) watch_here: bool,
    /// Cameras (the first ones) whose parts are timed on both nodes; with `watch_here`.
    pub(crate) probe_cameras: u32,
}

/// One camera of the run: what to publish to and where to watch it.
#[derive(Debug, Clone)]
struct Cam {
    key: String,
    publish: PublishUrl,
    hls: String,
    llhls: Option<String>,
}

/// Runs a scenario against a freshly started server and stops the server afterwards.
pub(crate) async fn run(cfg: &RunConfig) -> anyhow::Result<Report> {
    let sc = &cfg.scenario;
    let mut server = match cfg.kind {
        Kind::Camstream => {
            let password = sc.api.as_ref().map(|a| a.password.as_str());
            Server::camstream(
                &cfg.camstream_bin,
                &sc.server.camstream_args,
                sc.server.allow_any_key,
                password,
            )
            .await?
        }
        Kind::Nginx => Server::nginx(&sc.server.nginx_workers).await?,
    };
    let result = drive(cfg, &mut server, None).await;
    let died = server.stop().await?;
    let mut report = result?;
    if let Some(d) = died {
        report.notes.push(format!("the server {d}"));
    }
    Ok(report)
}

fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect()
}

async fn cameras(
    sc: &Scenario,
    server: &Server,
    watch: &crate::server::Endpoints,
    session: Option<&Session>,
) -> anyhow::Result<Vec<Cam>> {
    let ep = &server.endpoints;
    let mut out = Vec::new();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for i in 0..sc.publishers.count {
        if sc.publishers.keys_from_api {
            let s = session.context("keys_from_api needs a working API login")?;
            let (id, rtmp, urls) = s.create_camera(run_id, i).await?;
            let mut publish = PublishUrl::parse(&rtmp)?;
            // The server may not know the address it is reached at; the key is what counts.
            publish.host_port = ep.rtmp.clone();
            let local = |u: &String| u.find("/hls/").map(|at| format!("{}{}", ep.http, &u[at..]));
            let hls = urls
                .iter()
                .find(|u| u.contains("/ts/"))
                .and_then(local)
                .unwrap_or_else(|| ep.hls_url(&id));
            let llhls = urls
                .iter()
                .find(|u| !u.contains("/ts/"))
                .and_then(local)
                .or_else(|| ep.llhls_url(&id));
            out.push(Cam {
                key: publish.key.clone(),
                publish,
                hls,
                llhls,
            });
        } else {
            let key = sc.key(i);
            out.push(Cam {
                publish: PublishUrl::parse(&ep.publish_url(&key))?,
                hls: watch.hls_url(&key),
                llhls: watch.llhls_url(&key),
                key,
            });
        }
    }
    Ok(out)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Runs the scenario against a started server (and measures `peer` beside it).
pub(crate) async fn drive(
    cfg: &RunConfig,
    server: &mut Server,
    peer: Option<Peer<'_>>,
) -> anyhow::Result<Report> {
    let sc = &cfg.scenario;
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let wall = Instant::now();
    let label = cfg.kind.label();
    let n = sc.publishers.count as usize;
    let metrics = Arc::new(Metrics::new(n));
    let clk = clock_ticks();
    let mut server_s = TreeSampler::new(server.pid(), clk, true);
    let mut self_s = TreeSampler::new(std::process::id() as i32, clk, false);
    let mut peer_s = peer.map(|p| TreeSampler::new(p.server.pid(), clk, true));
    let mut peer_idle = Vec::new();
    let mut machine_s = MachineSampler::default();
    machine_s.sample();
    let client = http_client()?;
    let mut notes = Vec::new();

    // The server idle, before any load: the baseline for per-camera memory.
    let mut idle = Vec::new();
    let mut last = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let dt = last.elapsed().as_secs_f64();
        idle.push(server_s.sample(dt));
        if let Some(p) = peer_s.as_mut() {
            peer_idle.push(p.sample(dt));
        }
        last = Instant::now();
    }
    let _ = self_s.sample(1.0);

    let mut session = None;
    if let Some(a) = &sc.api {
        match server.endpoints.api_base() {
            None if a.required => bail!(
                "{label} has no API: the {} scenario runs against camstream only",
                sc.name
            ),
            None => notes.push(format!("API load skipped: {label} has no API.")),
            Some(base) => match Session::login(client.clone(), &base, a).await {
                Ok(s) => session = Some(Arc::new(s)),
                Err(e) if a.required => return Err(e),
                Err(e) => notes.push(format!("API load skipped: {}.", first_line(&e))),
            },
        }
    }
    let watch = match peer {
        Some(p) if p.watch_here => p.server.endpoints.clone(),
        _ => server.endpoints.clone(),
    };
    let cams = cameras(sc, server, &watch, session.as_deref()).await?;
    let stop = CancellationToken::new();
    let t_start = metrics.clock.now_us();

    // Publishers, ramped.
    let pub_task = {
        let (metrics, stop, cams, clip) = (
            metrics.clone(),
            stop.clone(),
            cams.clone(),
            cfg.clip.clone(),
        );
        let ramp = sc.publishers.ramp_per_s;
        tokio::spawn(async move {
            let mut set = JoinSet::new();
            for (i, cam) in cams.into_iter().enumerate() {
                let at = metrics
                    .clock
                    .at_us(t_start + (i as f64 / ramp * 1e6) as u64);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep_until(at.into()) => {}
                }
                let (metrics, stop, clip) = (metrics.clone(), stop.clone(), clip.clone());
                set.spawn(async move {
                    if let Err(e) =
                        publisher::publish(i as u32, cam.publish, clip, metrics.clone(), stop).await
                    {
                        Metrics::add(&metrics.publish_failures, 1);
                        metrics.error(format!("publisher: {}", first_line(&e)));
                    }
                });
            }
            while set.join_next().await.is_some() {}
        })
    };

    // Viewers, spread over the cameras, each after its camera has had time to start.
    let mut plan: Vec<(f64, ViewerSpec)> = Vec::new();
    let mut skipped_ll = 0;
    let v = &sc.viewers;
    let flavors = (0..v.hls)
        .map(|j| (j, Flavor::Hls))
        .chain((0..v.llhls).map(|j| (j, Flavor::LlHls)));
    for (order, (j, flavor)) in flavors.enumerate() {
        let camera = j as usize % n.max(1);
        let url = match flavor {
            Flavor::Hls => Some(cams[camera].hls.clone()),
            Flavor::LlHls => cams[camera].llhls.clone(),
        };
        let Some(url) = url else {
            skipped_ll += 1;
            continue;
        };
        let cam_live = camera as f64 / sc.publishers.ramp_per_s;
        let at = (order as f64 / v.ramp_per_s).max(cam_live + v.start_delay_s);
        plan.push((
            at,
            ViewerSpec {
                camera: camera as u32,
                flavor,
                url,
            },
        ));
    }
    if skipped_ll > 0 {
        notes.push(format!(
            "{skipped_ll} LL-HLS viewers not run: {label} serves no LL-HLS."
        ));
    }
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    let viewers_target = plan.len() as u64;
    let last_viewer_s = plan.last().map_or(0.0, |p| p.0);
    let gop = cfg.clip.info.gop_s;
    let view_task = {
        let (metrics, stop, client) = (metrics.clone(), stop.clone(), client.clone());
        tokio::spawn(async move {
            let mut set = JoinSet::new();
            for (at, spec) in plan {
                let at = metrics.clock.at_us(t_start + (at * 1e6) as u64);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep_until(at.into()) => {}
                }
                let grace = match spec.flavor {
                    Flavor::Hls => Duration::from_secs_f64(5.0 * gop + 2.0),
                    Flavor::LlHls => Duration::from_secs_f64(2.0 * gop + 1.0),
                };
                set.spawn(viewer::watch(
                    spec,
                    client.clone(),
                    metrics.clone(),
                    stop.clone(),
                    grace,
                ));
            }
            let mut results: Vec<ViewerResult> = Vec::new();
            while let Some(r) = set.join_next().await {
                if let Ok(r) = r {
                    results.push(r);
                }
            }
            results
        })
    };

    // Relay runs: the probed cameras' parts timed on both nodes.
    let probe_task = peer
        .filter(|p| p.watch_here && p.probe_cameras > 0)
        .map(|p| {
            let mut set = JoinSet::new();
            for (i, c) in cams.iter().take(p.probe_cameras as usize).enumerate() {
                let (Some(edge), Some(origin)) =
                    (c.llhls.clone(), server.endpoints.llhls_url(&c.key))
                else {
                    continue;
                };
                let at = i as f64 / sc.publishers.ramp_per_s + v.start_delay_s;
                set.spawn(crate::relay::probe(
                    origin,
                    edge,
                    client.clone(),
                    metrics.clone(),
                    stop.clone(),
                    metrics.clock.at_us(t_start + (at * 1e6) as u64),
                ));
            }
            tokio::spawn(async move {
                let mut deltas = Vec::new();
                while let Some(r) = set.join_next().await {
                    if let Ok(d) = r {
                        deltas.extend(d);
                    }
                }
                deltas
            })
        });

    let api_task = session.clone().zip(sc.api.clone()).map(|(s, a)| {
        let (metrics, stop) = (metrics.clone(), stop.clone());
        tokio::spawn(api::load(s, a, metrics, stop))
    });

    // Sampling.
    let end_s = sc.ramp_s().max(last_viewer_s) + sc.duration_s as f64;
    let steady_from_s = end_s - sc.duration_s as f64;
    let pb = if cfg.progress {
        ProgressBar::new(end_s.ceil() as u64)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:25}] {pos}/{len}s {msg}")
            .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
            .progress_chars("=> "),
    );
    pb.set_prefix(label);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut detector = Detector::new(sc.limits.clone(), cores);
    let mut series: Vec<Sample> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = Instant::now();
    let (mut prev_pub, mut prev_view, mut prev_api) = (0u64, 0u64, 0u64);
    let mut limit_at: Option<f64> = None;
    loop {
        tick.tick().await;
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        let t = (metrics.clock.now_us() - t_start) as f64 / 1e6;
        let srv = server_s.sample(dt);
        let me = self_s.sample(dt);
        let pr = peer_s.as_mut().map(|p| p.sample(dt));
        let (pub_b, view_b, api_n) = (
            Metrics::get(&metrics.bytes_sent),
            Metrics::get(&metrics.viewer_bytes),
            Metrics::get(&metrics.api_requests),
        );
        let s = Sample {
            t_s: t,
            cameras: Metrics::get(&metrics.publishers_live),
            viewers: Metrics::get(&metrics.viewers_active),
            server_cpu_pct: srv.cpu_pct,
            server_user_cpu_pct: srv.user_pct,
            server_vol_ctx_s: srv.vol_ctx_s,
            server_invol_ctx_s: srv.invol_ctx_s,
            server_rss_mb: srv.rss_kib as f64 / 1024.0,
            server_processes: srv.processes,
            generator_cpu_pct: me.cpu_pct,
            machine_cpu_pct: machine_s.sample(),
            publish_mbps: (pub_b - prev_pub) as f64 * 8.0 / 1e6 / dt,
            viewer_mbps: (view_b - prev_view) as f64 * 8.0 / 1e6 / dt,
            lag_max_ms: metrics
                .lag_max_us
                .swap(0, std::sync::atomic::Ordering::Relaxed) as f64
                / 1000.0,
            api_rps: (api_n - prev_api) as f64 / dt,
            publish_failures: Metrics::get(&metrics.publish_failures),
            http_errors: Metrics::get(&metrics.http_errors),
            stalls: Metrics::get(&metrics.stalls),
            settled_stalls: Metrics::get(&metrics.settled_stalls),
            peer_cpu_pct: pr.as_ref().map_or(0.0, |p| p.cpu_pct),
            peer_rss_mb: pr.as_ref().map_or(0.0, |p| p.rss_kib as f64 / 1024.0),
        };
        (prev_pub, prev_view, prev_api) = (pub_b, view_b, api_n);
        pb.set_position(t as u64);
        pb.set_message(format!(
            "cams {}/{} viewers {} | server {:.0}% {:.0}MB | harness {:.0}% | machine {:.0}% | errors {} stalls {}",
            s.cameras, n, s.viewers, s.server_cpu_pct, s.server_rss_mb, s.generator_cpu_pct, s.machine_cpu_pct, s.http_errors + s.publish_failures, s.stalls
        ));
        if let Some(l) = detector.observe(&s) {
            pb.println(format!(
                "{label}: limit at {:.0} s, {} cameras: {}",
                l.at_s, l.cameras, l.why
            ));
            limit_at = Some(t);
        }
        series.push(s);
        if t >= end_s {
            break;
        }
        if sc.limits.stop_on_limit
            && let Some(at) = limit_at
            && t >= at + f64::from(sc.limits.sustain_s)
        {
            notes.push(format!(
                "Run stopped at {t:.0} s, {:.0} s early, because a limit was reached.",
                end_s - t
            ));
            break;
        }
    }
    pb.finish_and_clear();
    let media_files_mb = server.media_file_bytes() as f64 / 1e6;
    stop.cancel();
    let join_deadline = Duration::from_secs(30);
    let _ = tokio::time::timeout(join_deadline, pub_task).await;
    let viewers: Vec<ViewerResult> = match tokio::time::timeout(join_deadline, view_task).await {
        Ok(Ok(v)) => v,
        _ => {
            notes.push("Some viewers did not stop within 30 s; their results are missing.".into());
            Vec::new()
        }
    };
    if let Some(t) = api_task {
        let _ = tokio::time::timeout(join_deadline, t).await;
    }
    let edge_deltas = match probe_task {
        Some(t) => match tokio::time::timeout(join_deadline, t).await {
            Ok(Ok(d)) => d,
            _ => {
                notes.push(
                    "The part probe did not stop within 30 s; edge-added latency is missing."
                        .into(),
                );
                Vec::new()
            }
        },
        None => Vec::new(),
    };

    // Summary over the steady window.
    let steady: Vec<&Sample> = series.iter().filter(|s| s.t_s >= steady_from_s).collect();
    let steady: Vec<&Sample> = if steady.is_empty() {
        series.iter().rev().take(5).collect()
    } else {
        steady
    };
    let cameras_reached = series.iter().map(|s| s.cameras).max().unwrap_or(0);
    let steady_cams = mean(steady.iter().map(|s| s.cameras as f64)).max(1.0);
    let rss_idle = mean(idle.iter().map(|s| s.rss_kib as f64 / 1024.0));
    let rss_load = steady.last().map_or(0.0, |s| s.server_rss_mb);
    let server_cpu = mean(steady.iter().map(|s| s.server_cpu_pct));
    let server_user = mean(steady.iter().map(|s| s.server_user_cpu_pct));
    let per_cam = |x: f64| if n > 0 { x / steady_cams } else { 0.0 };
    let gen_cpu = mean(steady.iter().map(|s| s.generator_cpu_pct));
    let mut cam_results: Vec<CameraResult> = cams
        .iter()
        .enumerate()
        .map(|(i, c)| CameraResult {
            camera: i as u32,
            key: c.key.clone(),
            frames_in: Metrics::get(&metrics.cameras[i].frames),
            bytes_in: Metrics::get(&metrics.cameras[i].bytes),
            ..CameraResult::default()
        })
        .collect();
    for v in &viewers {
        if let Some(c) = cam_results.get_mut(v.camera as usize) {
            c.viewers += 1;
            c.frames_out += v.frames;
            c.bytes_out += v.bytes;
            c.missing_frames += v.missing_frames + v.tail_missing_frames;
        }
    }
    let sum = |f: &dyn Fn(&ViewerResult) -> u64| viewers.iter().map(f).sum::<u64>();
    let viewers_started = viewers.iter().filter(|v| v.started).count() as u64;
    let publish_failures = Metrics::get(&metrics.publish_failures);
    let mut summary = Summary {
        cameras_target: n as u64,
        cameras_reached,
        viewers_target,
        viewers_started,
        steady_s: steady.len() as f64,
        server_cpu_idle_pct: mean(idle.iter().map(|s| s.cpu_pct)),
        server_cpu_pct: server_cpu,
        server_cpu_max_pct: series.iter().map(|s| s.server_cpu_pct).fold(0.0, f64::max),
        server_cpu_per_camera_pct: per_cam(server_cpu),
        server_user_cpu_pct: server_user,
        server_sys_cpu_pct: (server_cpu - server_user).max(0.0),
        server_vol_ctx_per_camera_s: per_cam(mean(steady.iter().map(|s| s.server_vol_ctx_s))),
        server_invol_ctx_per_camera_s: per_cam(mean(steady.iter().map(|s| s.server_invol_ctx_s))),
        server_rss_idle_mb: rss_idle,
        server_rss_mb: rss_load,
        server_rss_max_mb: series.iter().map(|s| s.server_rss_mb).fold(0.0, f64::max),
        server_media_files_mb: media_files_mb,
        server_rss_per_camera_kb: if n > 0 {
            (rss_load - rss_idle) * 1024.0 / steady_cams
        } else {
            0.0
        },
        generator_cpu_pct: gen_cpu,
        generator_cpu_per_camera_pct: if n > 0 { gen_cpu / steady_cams } else { 0.0 },
        machine_cpu_pct: mean(steady.iter().map(|s| s.machine_cpu_pct)),
        frames_in: cam_results.iter().map(|c| c.frames_in).sum(),
        bytes_in: cam_results.iter().map(|c| c.bytes_in).sum(),
        frames_out: sum(&|v| v.frames),
        bytes_out: sum(&|v| v.bytes),
        missing_frames: sum(&|v| v.missing_frames),
        tail_missing_frames: sum(&|v| v.tail_missing_frames),
        foreign_frames: sum(&|v| v.foreign_frames),
        stalls: sum(&|v| v.stalls),
        stalls_1ms: sum(&|v| v.stalls_1ms),
        stall_ms: viewers.iter().map(|v| v.stall_ms).sum(),
        resyncs: sum(&|v| v.resyncs),
        http_errors: Metrics::get(&metrics.http_errors),
        publish_failures,
        zero_loss: false,
        peer_cpu_idle_pct: mean(peer_idle.iter().map(|s| s.cpu_pct)),
        peer_cpu_pct: mean(steady.iter().map(|s| s.peer_cpu_pct)),
        peer_rss_idle_mb: mean(peer_idle.iter().map(|s| s.rss_kib as f64 / 1024.0)),
        peer_rss_mb: steady.last().map_or(0.0, |s| s.peer_rss_mb),
    };
    summary.zero_loss = publish_failures == 0
        && cameras_reached == n as u64
        && summary.frames_in > 0
        && viewers_started == viewers_target
        && viewers.iter().all(|v| v.frames > 0)
        && summary.missing_frames == 0
        && summary.tail_missing_frames == 0
        && summary.foreign_frames == 0;

    let fl = |f: &crate::metrics::FlavorHists| FlavorLatency {
        ingest_to_available: f.ingest_to_available.summary(),
        delivery: f.delivery.summary(),
        glass_to_glass: f.glass_to_glass.summary(),
        fetch: f.fetch.summary(),
    };
    let mut distributions = std::collections::BTreeMap::new();
    for (name, h) in [
        ("HLS ingest → available", &metrics.hls.ingest_to_available),
        ("HLS glass-to-glass", &metrics.hls.glass_to_glass),
        (
            "LL-HLS ingest → available",
            &metrics.llhls.ingest_to_available,
        ),
        ("LL-HLS glass-to-glass", &metrics.llhls.glass_to_glass),
    ] {
        let b = h.buckets();
        if !b.is_empty() {
            distributions.insert(name.to_owned(), b);
        }
    }
    let api = sc.api.as_ref().filter(|_| session.is_some()).map(|_| {
        let active = series.len().max(1) as f64;
        ApiResult {
            requests: Metrics::get(&metrics.api_requests),
            errors: Metrics::get(&metrics.api_errors),
            requests_per_s: Metrics::get(&metrics.api_requests) as f64 / active,
            all: metrics.api_all.summary(),
            routes: metrics
                .api_by_route
                .lock()
                .map(|m| m.iter().map(|(k, h)| (k.clone(), h.summary())).collect())
                .unwrap_or_default(),
        }
    });
    let others = mean(steady.iter().map(|s| {
        (s.machine_cpu_pct * cores as f64 - s.server_cpu_pct - s.peer_cpu_pct - s.generator_cpu_pct)
            .max(0.0)
    }));
    if others > 10.0 {
        notes.push(format!(
            "The machine was not quiet: other processes used {others:.0} % of one core on average during the steady window, so CPU figures are less reliable."
        ));
    }
    notes.push("CPU is % of one core (the machine's total is cores × 100 %); the generator is the whole harness process: publishers, viewers and API clients.".into());
    Ok(Report {
        tool: cfg.tool.clone(),
        scenario: Some(sc.clone()),
        server: ServerInfo {
            name: label.to_owned(),
            version: server.version.clone(),
            command: server.command.clone(),
        },
        machine: machine(),
        clip: Some(cfg.clip.info.clone()),
        started_unix_s,
        wall_s: wall.elapsed().as_secs_f64(),
        summary,
        latency: Latency {
            hls: fl(&metrics.hls),
            llhls: fl(&metrics.llhls),
            blocking_reload_wakeup: metrics.wakeup.summary(),
            blocking_reload_after_close: metrics.wakeup_after_close.summary(),
            generator_lag: metrics.generator_lag.summary(),
            edge_added: crate::partclock::summarize_signed(&edge_deltas),
        },
        api,
        cameras: cam_results,
        viewers,
        errors: metrics.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        limit: detector.found.clone(),
        notes,
        distributions,
        timeseries: series,
    })
}
