//! The WebRTC benchmark (`camstream-bench webrtc`): one camera published from the marked clip
//! (no B-frames: WebRTC refuses them), then steps of N WHEP viewers (e.g. 0, 50, 200), each
//! held for the same time while the server's process is sampled. The viewers are str0m
//! peers in this process (ICE, DTLS, SRTP and RTP depacketization, no decode), so the
//! server's cost per viewer is measured without a browser's decoder in the way:
//!
//! - CPU per viewer = (server CPU with N viewers − with 0) / N, and RSS likewise;
//! - frames each viewer received against the frames published (a gap in the markers'
//!   sequence numbers is a frame the viewer never got: dropped to the next keyframe);
//! - wire latency: receipt of a whole frame − its capture time from the SEI marker;
//! - time to first frame: offer POSTed → first whole frame.
//!
//! With `--browser-runner`, Chromium (Playwright, `tests/browser/whep.mjs` in g2g mode)
//! plays the camera too and measures glass-to-glass: the marker is read from each encoded
//! frame before decode (encoded insertable streams) and matched by RTP timestamp to the
//! frame `requestVideoFrameCallback` reports for display.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clip::{Clip, ClipSpec};
use crate::marker;
use crate::metrics::{Hist, LatencySummary, Metrics};
use crate::procstat::{TreeSampler, clock_ticks};
use crate::publisher::{PublishUrl, publish};
use crate::report::Machine;
use crate::run::{http_client, machine};
use crate::server::Server;

/// The camera every viewer watches (`--allow-any-key`: the key is the camera id).
const CAMERA: &str = "webrtc-bench-cam";
/// Viewers connecting at once (a burst of hundreds of DTLS handshakes would measure the
/// handshake, not the steady cost).
const CONNECT_BATCH: usize = 25;
/// A viewer with no whole frame by then failed to start.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(20);
/// Chromium's steady glass-to-glass leaves out the first frames shown (the join's replay of
/// the GOP from its keyframe).
const STEADY_AFTER_MS: f64 = 3000.0;
/// Between the last viewer's first frame and the measured window.
const SETTLE: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct WebrtcConfig {
    pub(crate) camstream_bin: PathBuf,
    /// Viewer counts, one step each (a 0 step is the baseline the per-viewer cost is
    /// measured against; without one the first step's CPU is reported as is).
    pub(crate) steps: Vec<u32>,
    /// The measured window of each step.
    pub(crate) seconds: u64,
    /// An installed `tests/browser` runner (node_modules beside whep.mjs) for the Chromium
    /// glass-to-glass step.
    pub(crate) browser_runner: Option<PathBuf>,
    /// How long Chromium plays.
    pub(crate) browser_seconds: u64,
    /// Extra `camstream serve` arguments (e.g. `--webrtc-gso=off` for an A/B).
    pub(crate) server_args: Vec<String>,
    /// Viewers also take the camera's audio (an Opus m-line: the server transcodes the
    /// camera's AAC once and sends every viewer its packets).
    pub(crate) audio: bool,
    pub(crate) progress: bool,
}

/// One step's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Step {
    pub(crate) viewers: u32,
    /// Viewers that received a first frame.
    pub(crate) started: u32,
    /// Server CPU, % of one core, over the window.
    pub(crate) server_cpu_pct: f64,
    pub(crate) server_user_pct: f64,
    pub(crate) server_rss_kib: u64,
    /// This benchmark process (publisher + viewers), % of one core.
    pub(crate) generator_cpu_pct: f64,
    /// (server CPU − the 0-viewer step's) / viewers, % of one core.
    pub(crate) cpu_per_viewer_pct: Option<f64>,
    /// (server RSS − the 0-viewer step's) / viewers, KiB.
    pub(crate) rss_per_viewer_kib: Option<f64>,
    /// Video frames published during the window.
    pub(crate) frames_published: u64,
    /// Frames received per viewer during the window: lowest and median.
    pub(crate) frames_min: u64,
    pub(crate) frames_median: u64,
    /// Frames some viewer never received (marker sequence gaps), all viewers summed.
    pub(crate) frames_missed: u64,
    /// Whole frame received − capture time.
    pub(crate) wire_latency: LatencySummary,
    /// Offer POSTed → first whole frame.
    pub(crate) time_to_first_frame: LatencySummary,
    /// Errors by class (HTTP statuses, ICE failures).
    pub(crate) errors: Vec<(String, u64)>,
}

/// Chromium's view: glass-to-glass and its parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Browser {
    /// What whep.mjs printed (JSON), as is.
    pub(crate) raw: serde_json::Value,
    /// Capture → the frame's expected display time (requestVideoFrameCallback).
    pub(crate) glass_to_glass: Option<LatencySummary>,
    /// The same from [`STEADY_AFTER_MS`] after the first frame on.
    pub(crate) glass_to_glass_steady: Option<LatencySummary>,
    /// Capture → the encoded frame reached the page (before the jitter buffer and decode).
    pub(crate) arrival: Option<LatencySummary>,
    pub(crate) time_to_first_frame_ms: Option<f64>,
    pub(crate) frames_decoded: Option<u64>,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WebrtcReport {
    pub(crate) machine: Machine,
    pub(crate) server_version: String,
    pub(crate) server_command: String,
    pub(crate) clip: String,
    pub(crate) seconds: u64,
    /// Whether viewers took the camera's audio (Opus).
    #[serde(default)]
    pub(crate) audio: bool,
    pub(crate) steps: Vec<Step>,
    pub(crate) browser: Option<Browser>,
}

/// One viewer's ledger, shared with its task.
#[derive(Debug, Default)]
struct Ledger {
    /// Set at the first whole frame: µs on the run clock.
    first_frame_us: AtomicU64,
    /// Frames received while `counting` (see [`Viewers::count`]).
    frames: AtomicU64,
    missed: AtomicU64,
    last_seq: AtomicU64,
}

/// Shared by a step's viewers.
struct Viewers {
    metrics: Arc<Metrics>,
    audio: bool,
    latency: Hist,
    ttff: Hist,
    counting: std::sync::atomic::AtomicBool,
    errors: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Viewers {
    fn error(&self, class: impl Into<String>) {
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(class.into()).or_default() += 1;
        }
    }

    fn count(&self) -> bool {
        self.counting.load(Ordering::Relaxed)
    }
}

/// Runs the benchmark against a freshly started server.
pub(crate) async fn run(cfg: &WebrtcConfig) -> anyhow::Result<WebrtcReport> {
    let spec = ClipSpec {
        bframes: 0,
        ..ClipSpec::default()
    };
    let clip = Clip::for_spec(&spec, &std::env::temp_dir().join("camstream-bench"))?;
    let max = cfg.steps.iter().copied().max().unwrap_or(0);
    let mut extra = vec!["--webrtc-max-sessions".to_owned(), (max + 50).to_string()];
    extra.extend(cfg.server_args.iter().cloned());
    let server = Server::camstream(&cfg.camstream_bin, &extra, true, None).await?;
    let result = measure(cfg, &server, clip.clone()).await;
    let (command, version) = (server.command.clone(), server.version.clone());
    let died = server.stop().await?;
    if let Some(tail) = died {
        bail!("camstream died during the run:\n{tail}");
    }
    let (steps, browser) = result?;
    let info = &clip.info;
    Ok(WebrtcReport {
        machine: machine(),
        server_version: version,
        server_command: command,
        clip: format!(
            "{}x{} {:.1} fps, {:.0} kbit/s video, GOP {} s, no B-frames",
            info.width, info.height, info.fps, info.video_kbps, info.gop_s
        ),
        seconds: cfg.seconds,
        audio: cfg.audio,
        steps,
        browser,
    })
}

async fn measure(
    cfg: &WebrtcConfig,
    server: &Server,
    clip: Arc<Clip>,
) -> anyhow::Result<(Vec<Step>, Option<Browser>)> {
    let metrics = Arc::new(Metrics::new(1));
    let stop = CancellationToken::new();
    let url = PublishUrl::parse(&server.endpoints.publish_url(CAMERA))?;
    let publisher = tokio::spawn(publish(0, url, clip.clone(), metrics.clone(), stop.clone()));
    let whep = format!("{}/whep/{CAMERA}", server.endpoints.http);
    // The camera is up when a WHEP offer is answered (the server waits for the stream).
    wait_live(&metrics, Duration::from_secs(15)).await?;
    let mut steps: Vec<Step> = Vec::new();
    for &n in &cfg.steps {
        if cfg.progress {
            eprintln!("webrtc: {n} viewers");
        }
        let mut step = step(cfg, server, &metrics, &whep, n).await?;
        if let Some(base) = steps.iter().find(|s| s.viewers == 0)
            && n > 0
        {
            step.cpu_per_viewer_pct =
                Some((step.server_cpu_pct - base.server_cpu_pct) / f64::from(n));
            step.rss_per_viewer_kib =
                Some((step.server_rss_kib as f64 - base.server_rss_kib as f64) / f64::from(n));
        }
        steps.push(step);
    }
    let browser = match &cfg.browser_runner {
        Some(dir) => Some(browser(dir, &whep, &metrics, cfg.browser_seconds).await?),
        None => None,
    };
    stop.cancel();
    let _ = publisher.await;
    Ok((steps, browser))
}

async fn wait_live(metrics: &Metrics, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !metrics.cameras[0].live.load(Ordering::Relaxed) {
        if Instant::now() > deadline {
            bail!(
                "the publisher did not go live within {} s",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A keyframe in the window for the first viewer to join on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

async fn step(
    cfg: &WebrtcConfig,
    server: &Server,
    metrics: &Arc<Metrics>,
    whep: &str,
    n: u32,
) -> anyhow::Result<Step> {
    let shared = Arc::new(Viewers {
        metrics: metrics.clone(),
        audio: cfg.audio,
        latency: Hist::default(),
        ttff: Hist::default(),
        counting: false.into(),
        errors: std::sync::Mutex::new(std::collections::BTreeMap::new()),
    });
    let stop = CancellationToken::new();
    let client = http_client()?;
    let mut tasks = JoinSet::new();
    let mut ledgers = Vec::new();
    for first in (0..n as usize).step_by(CONNECT_BATCH) {
        let mut batch_ledgers = Vec::new();
        for _ in first..(first + CONNECT_BATCH).min(n as usize) {
            let ledger = Arc::new(Ledger::default());
            batch_ledgers.push(ledger.clone());
            ledgers.push(ledger.clone());
            tasks.spawn(viewer(
                client.clone(),
                whep.to_owned(),
                ledger,
                shared.clone(),
                stop.clone(),
            ));
        }
        // The next batch once this one has its first frames (or the timeout passed).
        let deadline = Instant::now() + FIRST_FRAME_TIMEOUT;
        while Instant::now() < deadline
            && batch_ledgers
                .iter()
                .any(|l| l.first_frame_us.load(Ordering::Relaxed) == 0)
            && !tasks.is_empty()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(SETTLE).await;
    let started = ledgers
        .iter()
        .filter(|l| l.first_frame_us.load(Ordering::Relaxed) != 0)
        .count() as u32;
    // The window: everything counted from here.
    let clk = clock_ticks();
    let mut srv = TreeSampler::new(server.pid(), clk, false);
    let mut me = TreeSampler::new(std::process::id() as i32, clk, false);
    let frames0 = Metrics::get(&metrics.cameras[0].frames);
    for l in &ledgers {
        l.frames.store(0, Ordering::Relaxed);
        l.missed.store(0, Ordering::Relaxed);
    }
    shared.counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(cfg.seconds)).await;
    shared.counting.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let s = srv.sample(elapsed);
    let g = me.sample(elapsed);
    let frames_published = Metrics::get(&metrics.cameras[0].frames) - frames0;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    let mut frames: Vec<u64> = ledgers
        .iter()
        .map(|l| l.frames.load(Ordering::Relaxed))
        .collect();
    frames.sort_unstable();
    let errors = shared
        .errors
        .lock()
        .map(|e| e.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    Ok(Step {
        viewers: n,
        started,
        server_cpu_pct: s.cpu_pct,
        server_user_pct: s.user_pct,
        server_rss_kib: s.rss_kib,
        generator_cpu_pct: g.cpu_pct,
        cpu_per_viewer_pct: None,
        rss_per_viewer_kib: None,
        frames_published,
        frames_min: frames.first().copied().unwrap_or(0),
        frames_median: frames.get(frames.len() / 2).copied().unwrap_or(0),
        frames_missed: ledgers
            .iter()
            .map(|l| l.missed.load(Ordering::Relaxed))
            .sum(),
        wire_latency: shared.latency.summary(),
        time_to_first_frame: shared.ttff.summary(),
        errors,
    })
}

/// One WHEP viewer: offer, answer, then the str0m loop until `stop`; DELETEs its session.
async fn viewer(
    client: reqwest::Client,
    whep: String,
    ledger: Arc<Ledger>,
    shared: Arc<Viewers>,
    stop: CancellationToken,
) {
    if let Err(e) = viewer_inner(&client, &whep, &ledger, &shared, &stop).await {
        shared.error(format!("{e:#}"));
    }
}

async fn viewer_inner(
    client: &reqwest::Client,
    whep: &str,
    ledger: &Ledger,
    shared: &Viewers,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let clock = shared.metrics.clock;
    let posted_us = clock.now_us();
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc: Rtc = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(shared.audio, false)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| anyhow!("{e}"))?);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    if shared.audio {
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    let (offer, pending) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
    let res = client
        .post(whep)
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("whep offer")?;
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res.text().await?;
    if status.as_u16() != 201 {
        bail!("whep: http {}", status.as_u16());
    }
    let answer = SdpAnswer::from_sdp_string(&body).map_err(|e| anyhow!("bad answer: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| anyhow!("answer refused: {e}"))?;
    let result = drive(&mut rtc, &socket, local, ledger, shared, stop, posted_us).await;
    if let Some(loc) = location {
        let url = reqwest::Url::parse(whep)?.join(&loc)?;
        let _ = client
            .delete(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
    }
    result
}

async fn drive(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    local: SocketAddr,
    ledger: &Ledger,
    shared: &Viewers,
    stop: &CancellationToken,
    posted_us: u64,
) -> anyhow::Result<()> {
    let clock = shared.metrics.clock;
    let mut buf = vec![0u8; 2048];
    let mut found = Vec::new();
    loop {
        let timeout = loop {
            match rtc.poll_output().map_err(|e| anyhow!("rtc: {e}"))? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => {
                    bail!("ice disconnected");
                }
                Output::Event(Event::MediaData(d)) => {
                    let now = clock.now_us();
                    if ledger.first_frame_us.load(Ordering::Relaxed) == 0 {
                        ledger.first_frame_us.store(now.max(1), Ordering::Relaxed);
                        shared.ttff.record(now.saturating_sub(posted_us));
                    }
                    found.clear();
                    marker::find(&d.data, &mut found);
                    let counting = shared.count();
                    for m in &found {
                        let last = ledger
                            .last_seq
                            .swap(u64::from(m.seq) + 1, Ordering::Relaxed);
                        if counting {
                            ledger.frames.fetch_add(1, Ordering::Relaxed);
                            shared.latency.record(now.saturating_sub(m.capture_us));
                            // `last` is the sequence number expected next (0: none yet).
                            if last != 0 && u64::from(m.seq) > last {
                                ledger
                                    .missed
                                    .fetch_add(u64::from(m.seq) - last, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Output::Event(_) => {}
            }
        };
        let wait = timeout.saturating_duration_since(Instant::now());
        let input = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                let contents = buf[..n]
                    .try_into()
                    .map_err(|e| anyhow!("datagram: {e:?}"))?;
                Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents })
            }
            () = tokio::time::sleep(wait) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input)
            .map_err(|e| anyhow!("rtc input: {e}"))?;
    }
}

/// Chromium plays the camera for `seconds` through `whep.mjs` in g2g mode.
async fn browser(
    runner: &Path,
    whep: &str,
    metrics: &Metrics,
    seconds: u64,
) -> anyhow::Result<Browser> {
    // The run clock's epoch on the wall clock, in ms: the page turns marker capture times
    // (µs on the run clock) into wall time with it. Same machine, same clock.
    let now_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    let epoch_ms = now_unix_ms - metrics.clock.now_us() as f64 / 1000.0;
    let out = tokio::process::Command::new("node")
        .arg(runner.join("whep.mjs"))
        .args([whep, "1", &seconds.to_string(), "", ""])
        .env("WHEP_G2G_EPOCH_MS", format!("{epoch_ms:.3}"))
        .output()
        .await
        .context("running node (apt-get install -y nodejs)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            anyhow!(
                "whep.mjs printed no result: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let raw: serde_json::Value = serde_json::from_str(line)?;
    // [page time ms, latency ms] pairs; `after` drops the first seconds (the join replays
    // the GOP from its keyframe, frames up to a GOP old, shown as fast as they decode).
    let summary = |key: &str, after_ms: f64| -> Option<LatencySummary> {
        let pairs: Vec<(f64, f64)> = raw["g2g"][key]
            .as_array()?
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .collect();
        let first = pairs.first()?.0;
        let v: Vec<f64> = pairs
            .iter()
            .filter(|(t, _)| *t >= first + after_ms)
            .map(|&(_, ms)| ms)
            .collect();
        (!v.is_empty()).then(|| summarize_ms(&v))
    };
    Ok(Browser {
        glass_to_glass: summary("display", 0.0),
        glass_to_glass_steady: summary("display", STEADY_AFTER_MS),
        arrival: summary("arrival", 0.0),
        time_to_first_frame_ms: raw["sessions"][0]["ttff"].as_f64(),
        frames_decoded: raw["samples"]
            .as_array()
            .and_then(|s| s.last())
            .and_then(|s| s["s"][0]["framesDecoded"].as_u64()),
        raw,
    })
}

/// Percentiles of millisecond samples.
fn summarize_ms(v: &[f64]) -> LatencySummary {
    let h = Hist::default();
    for x in v {
        h.record((x.max(0.0) * 1000.0) as u64);
    }
    h.summary()
}

impl WebrtcReport {
    /// The Markdown report.
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# WebRTC (WHEP) viewers on one camera\n");
        let _ = writeln!(
            md,
            "{} ({} cores, {:.0} GiB), {}, kernel {}. Server: {}. Clip: {}. Each step held {} s after its viewers started; viewers are str0m peers in the bench process (no decode), taking {}.\n",
            m.cpu_model,
            m.cores,
            m.memory_gib,
            m.os,
            m.kernel,
            self.server_version,
            self.clip,
            self.seconds,
            if self.audio {
                "video and the camera's audio (Opus)"
            } else {
                "video only"
            }
        );
        let _ = writeln!(
            md,
            "| viewers | started | server CPU % | CPU/viewer % | RSS MiB | RSS/viewer KiB | generator CPU % | frames published | frames/viewer min · median | missed | wire latency p50 · p99 ms | first frame p50 · max ms | errors |"
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for s in &self.steps {
            let opt = |v: Option<f64>, d: usize| v.map_or("—".to_owned(), |x| format!("{x:.d$}"));
            let errors = if s.errors.is_empty() {
                "none".to_owned()
            } else {
                s.errors
                    .iter()
                    .map(|(k, v)| format!("{k} ×{v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {} | {:.1} | {} | {:.1} | {} | {} · {} | {} | {:.1} · {:.1} | {:.0} · {:.0} | {} |",
                s.viewers,
                s.started,
                s.server_cpu_pct,
                opt(s.cpu_per_viewer_pct, 3),
                s.server_rss_kib as f64 / 1024.0,
                opt(s.rss_per_viewer_kib, 1),
                s.generator_cpu_pct,
                s.frames_published,
                s.frames_min,
                s.frames_median,
                s.frames_missed,
                s.wire_latency.p50_ms,
                s.wire_latency.p99_ms,
                s.time_to_first_frame.p50_ms,
                s.time_to_first_frame.max_ms,
                errors
            );
        }
        if let Some(b) = &self.browser {
            let _ = writeln!(md, "\n## Chromium (one viewer, decode and display)\n");
            let fmt = |l: &Option<LatencySummary>| {
                l.map_or("not measured".to_owned(), |l| {
                    format!(
                        "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms over {} frames",
                        l.p50_ms, l.p95_ms, l.p99_ms, l.count
                    )
                })
            };
            let _ = writeln!(
                md,
                "- glass-to-glass (capture → expected display), every frame: {}",
                fmt(&b.glass_to_glass)
            );
            let _ = writeln!(
                md,
                "- the same from {} s after the first frame (the join replays the GOP from its keyframe first): {}",
                STEADY_AFTER_MS / 1000.0,
                fmt(&b.glass_to_glass_steady)
            );
            let _ = writeln!(
                md,
                "- capture → encoded frame in the page (before jitter buffer and decode): {}",
                fmt(&b.arrival)
            );
            let _ = writeln!(
                md,
                "- time to first decoded frame: {}",
                b.time_to_first_frame_ms
                    .map_or("—".to_owned(), |t| format!("{t:.0} ms"))
            );
            let _ = writeln!(
                md,
                "- frames decoded: {}",
                b.frames_decoded.map_or("—".to_owned(), |f| f.to_string())
            );
        }
        md
    }
}
