//! The ABR benchmark (`camstream-bench abr`): what transcoding a camera into its ladder costs.
//!
//! N cameras publish the bench clip (720p30 with B-frames, like a real camera); the server
//! runs once without ABR (`--abr-ladder off`) and once transcoding every camera
//! (`--abr-all-cameras`, the server's default ladder), alternated for `repeats` rounds
//! (plain, ABR, plain, ABR, ...), every run for the same window. Each run samples the
//! camstream process alone and its process tree: the difference is the transcoders (one
//! `ffmpeg` child per ABR camera). Reported per ABR camera, median and spread:
//!
//! - transcoder CPU and RSS (the encodes: the figure that sizes `--abr-max-cameras`);
//! - camstream's own extra CPU (ABR run − plain run: feeding ffmpeg and ingesting and
//!   segmenting the renditions);
//! - the time from the camera's first frame to a master playlist listing the whole ladder.
//!
//! A run fails when a camera's ladder does not appear or a rendition's playlist has no
//! segment, so a broken transcoder cannot pass as a cheap one.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clip::{Clip, ClipSpec};
use crate::metrics::Metrics;
use crate::procstat::{TreeSampler, clock_ticks};
use crate::publisher::{PublishUrl, publish};
use crate::report::{Machine, spread_of};
use crate::run::{http_client, machine};
use crate::server::Server;

/// How long a camera's ladder may take to appear in its master playlist (ffmpeg starts,
/// decodes to the next keyframe and the renditions cut their first segments).
const LADDER_TIMEOUT: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct AbrConfig {
    pub(crate) camstream_bin: PathBuf,
    pub(crate) cameras: u32,
    pub(crate) repeats: u32,
    /// Measured seconds per run.
    pub(crate) seconds: u64,
    /// Seconds between the ladder being listed and the window (the encoders settle).
    pub(crate) settle: u64,
    pub(crate) progress: bool,
}

/// One run of the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AbrRun {
    pub(crate) round: u32,
    pub(crate) abr: bool,
    /// The camstream process alone, % of one core.
    pub(crate) server_cpu_pct: f64,
    pub(crate) server_user_pct: f64,
    pub(crate) server_rss_kib: u64,
    /// Every descendant of the server (the transcoders), % of one core.
    pub(crate) transcoder_cpu_pct: f64,
    pub(crate) transcoder_rss_kib: u64,
    pub(crate) transcoders: usize,
    /// Variants each camera's master playlist lists (1 without ABR).
    pub(crate) variants: Vec<usize>,
    /// Camera live → its whole ladder listed, seconds (the slowest camera).
    pub(crate) ladder_ready_s: Option<f64>,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AbrReport {
    pub(crate) machine: Machine,
    pub(crate) server_version: String,
    pub(crate) server_command: String,
    pub(crate) clip: String,
    pub(crate) cameras: u32,
    pub(crate) seconds: u64,
    pub(crate) runs: Vec<AbrRun>,
}

/// Runs the rounds.
pub(crate) async fn run(cfg: &AbrConfig) -> anyhow::Result<AbrReport> {
    which_ffmpeg()?;
    let clip = Clip::for_spec(
        &ClipSpec::default(),
        &std::env::temp_dir().join("camstream-bench"),
    )?;
    let mut runs = Vec::new();
    let (mut version, mut command) = (String::new(), String::new());
    for round in 1..=cfg.repeats {
        for abr in [false, true] {
            if cfg.progress {
                eprintln!(
                    "abr: round {round}/{}, {} ({} cameras)",
                    cfg.repeats,
                    if abr { "ABR" } else { "plain" },
                    cfg.cameras
                );
            }
            let extra: Vec<String> = if abr {
                vec![
                    "--abr-all-cameras".into(),
                    "--abr-max-cameras".into(),
                    cfg.cameras.to_string(),
                ]
            } else {
                vec!["--abr-ladder".into(), "off".into()]
            };
            let server = Server::camstream(&cfg.camstream_bin, &extra, true, None).await?;
            let result = one(cfg, &server, clip.clone(), abr).await;
            if abr {
                (version, command) = (server.version.clone(), server.command.clone());
            }
            let died = server.stop().await?;
            if let Some(tail) = died {
                bail!("camstream died during the run:\n{tail}");
            }
            let mut r = result?;
            r.round = round;
            if cfg.progress {
                eprintln!(
                    "abr:   server {:.1} %, transcoders {:.1} % ({}), variants {:?}",
                    r.server_cpu_pct, r.transcoder_cpu_pct, r.transcoders, r.variants
                );
            }
            runs.push(r);
        }
    }
    let info = &clip.info;
    Ok(AbrReport {
        machine: machine(),
        server_version: version,
        server_command: command,
        clip: format!(
            "{}x{} {:.1} fps, {:.0} kbit/s video{} + {:.0} kbit/s AAC, GOP {} s",
            info.width,
            info.height,
            info.fps,
            info.video_kbps,
            if info.bframes { " with B-frames" } else { "" },
            info.audio_kbps,
            info.gop_s
        ),
        cameras: cfg.cameras,
        seconds: cfg.seconds,
        runs,
    })
}

fn which_ffmpeg() -> anyhow::Result<()> {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        bail!("ffmpeg is required (the server's transcoder): apt-get install -y ffmpeg");
    }
    Ok(())
}

fn camera(i: u32) -> String {
    format!("abr-bench-{i}")
}

/// One server's run: publish, wait for the ladders, measure, stop.
async fn one(
    cfg: &AbrConfig,
    server: &Server,
    clip: Arc<Clip>,
    abr: bool,
) -> anyhow::Result<AbrRun> {
    let n = cfg.cameras;
    let metrics = Arc::new(Metrics::new(n as usize));
    let stop = CancellationToken::new();
    let mut publishers = Vec::new();
    for i in 0..n {
        let url = PublishUrl::parse(&server.endpoints.publish_url(&camera(i)))?;
        publishers.push(tokio::spawn(publish(
            i,
            url,
            clip.clone(),
            metrics.clone(),
            stop.clone(),
        )));
    }
    let result = measure(cfg, server, &metrics, abr).await;
    stop.cancel();
    for p in publishers {
        let _ = p.await;
    }
    result
}

async fn measure(
    cfg: &AbrConfig,
    server: &Server,
    metrics: &Metrics,
    abr: bool,
) -> anyhow::Result<AbrRun> {
    let client = http_client()?;
    let started = Instant::now();
    while !metrics
        .cameras
        .iter()
        .all(|c| c.live.load(Ordering::Relaxed))
    {
        if started.elapsed() > Duration::from_secs(15) {
            bail!("the publishers did not all go live within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = Instant::now();
    // The ladder: every camera's master playlist lists more than the source, and every
    // rendition has a segment.
    let want = if abr { 2 } else { 1 };
    let mut variants;
    loop {
        variants = Vec::new();
        for i in 0..cfg.cameras {
            variants.push(ready_variants(&client, server, &camera(i)).await);
        }
        if variants.iter().all(|&v| v >= want) {
            break;
        }
        if live.elapsed() > LADDER_TIMEOUT {
            bail!(
                "{}: variants with a segment per camera {variants:?} after {} s (the server log has the transcoder's errors)",
                if abr {
                    "the ABR ladder did not appear"
                } else {
                    "the cameras did not play"
                },
                LADDER_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ladder_ready_s = abr.then(|| live.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(cfg.settle)).await;
    let clk = clock_ticks();
    let mut alone = TreeSampler::new(server.pid(), clk, false);
    let mut tree = TreeSampler::new(server.pid(), clk, true);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(cfg.seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let s = alone.sample(elapsed);
    let t = tree.sample(elapsed);
    // The ladder still there at the end (a transcoder that died mid-window shows here).
    let mut end = Vec::new();
    for i in 0..cfg.cameras {
        end.push(ready_variants(&client, server, &camera(i)).await);
    }
    if end.iter().any(|&v| v < want) {
        bail!("a camera lost its ladder during the window: variants {end:?}");
    }
    Ok(AbrRun {
        round: 0,
        abr,
        server_cpu_pct: s.cpu_pct,
        server_user_pct: s.user_pct,
        server_rss_kib: s.rss_kib,
        transcoder_cpu_pct: (t.cpu_pct - s.cpu_pct).max(0.0),
        transcoder_rss_kib: t.rss_kib.saturating_sub(s.rss_kib),
        transcoders: t.processes.saturating_sub(1),
        variants: end,
        ladder_ready_s,
    })
}

/// Variants of `camera`'s master playlist whose media playlist lists a segment (0 when the
/// master is not there yet).
async fn ready_variants(client: &reqwest::Client, server: &Server, camera: &str) -> usize {
    let Ok(base) = reqwest::Url::parse(&format!(
        "{}/hls/{camera}/master.m3u8",
        server.endpoints.http
    )) else {
        return 0;
    };
    let Some(master) = get_text(client, base.as_str()).await else {
        return 0;
    };
    let mut ready = 0;
    for uri in variant_uris(&master) {
        // Renditions are listed relative to the master (`../cam~480p/playlist.m3u8`).
        let Ok(url) = base.join(uri) else { continue };
        if get_text(client, url.as_str())
            .await
            .is_some_and(|p| p.lines().any(|l| l.starts_with("#EXTINF")))
        {
            ready += 1;
        }
    }
    ready
}

async fn get_text(client: &reqwest::Client, url: &str) -> Option<String> {
    let r = client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// The URI line after each `#EXT-X-STREAM-INF` of a multivariant playlist (the LL-HLS
/// variants; the TS list is `EXT-X-STREAM-INF` too only when it is a separate master).
fn variant_uris(master: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut lines = master.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("#EXT-X-STREAM-INF")
            && let Some(uri) = lines.next().map(str::trim).filter(|u| !u.is_empty())
        {
            out.push(uri);
        }
    }
    out
}

impl AbrReport {
    fn figure(&self, abr: bool, f: impl Fn(&AbrRun) -> f64) -> Vec<f64> {
        self.runs.iter().filter(|r| r.abr == abr).map(f).collect()
    }

    /// The Markdown report.
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let n = f64::from(self.cameras.max(1));
        let rounds = self.runs.iter().filter(|r| r.abr).count();
        let _ = writeln!(
            md,
            "# ABR transcoding cost: {} camera{}\n",
            self.cameras,
            if self.cameras == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            md,
            "{} ({} cores, {:.0} GiB), {}, kernel {}. Server: {}. Clip: {}. Rounds: {}, each a run without ABR (`--abr-ladder off`) then one with every camera transcoded (`--abr-all-cameras`, the default ladder), {} s measured per run.\n",
            m.cpu_model,
            m.cores,
            m.memory_gib,
            m.os,
            m.kernel,
            self.server_version,
            self.clip,
            rounds,
            self.seconds
        );
        let _ = writeln!(md, "Median [min–max] over the rounds:\n");
        let _ = writeln!(md, "| | without ABR | with ABR |");
        let _ = writeln!(md, "|---|---:|---:|");
        let row = |md: &mut String, label: &str, f: &dyn Fn(&AbrRun) -> f64, d: usize| {
            let _ = writeln!(
                md,
                "| {label} | {} | {} |",
                spread_of(&self.figure(false, f), d).1,
                spread_of(&self.figure(true, f), d).1
            );
        };
        row(
            &mut md,
            "camstream CPU, % of one core",
            &|r| r.server_cpu_pct,
            1,
        );
        row(
            &mut md,
            "camstream CPU user, % of one core",
            &|r| r.server_user_pct,
            1,
        );
        row(
            &mut md,
            "camstream RSS, MiB",
            &|r| r.server_rss_kib as f64 / 1024.0,
            1,
        );
        row(
            &mut md,
            "transcoders (ffmpeg) CPU, % of one core",
            &|r| r.transcoder_cpu_pct,
            1,
        );
        row(
            &mut md,
            "transcoders RSS, MiB",
            &|r| r.transcoder_rss_kib as f64 / 1024.0,
            1,
        );
        row(
            &mut md,
            "transcoder processes",
            &|r| r.transcoders as f64,
            0,
        );
        let per = |f: fn(&AbrRun) -> f64| spread_of(&self.figure(true, |r| f(r) / n), 1);
        let plain = spread_of(&self.figure(false, |r| r.server_cpu_pct), 2).0;
        let with = spread_of(&self.figure(true, |r| r.server_cpu_pct), 2).0;
        let _ = writeln!(md, "\nPer ABR camera:\n");
        let _ = writeln!(md, "| | value |");
        let _ = writeln!(md, "|---|---:|");
        let _ = writeln!(
            md,
            "| **transcoder CPU, % of one core** | **{}** |",
            per(|r| r.transcoder_cpu_pct).1
        );
        let _ = writeln!(
            md,
            "| transcoder RSS, MiB | {} |",
            per(|r| r.transcoder_rss_kib as f64 / 1024.0).1
        );
        let _ = writeln!(
            md,
            "| camstream's own extra CPU (medians: with − without), % of one core | {:.2} |",
            (with - plain) / n
        );
        let _ = writeln!(
            md,
            "| camera live → whole ladder listed, s (slowest camera) | {} |",
            spread_of(
                &self
                    .runs
                    .iter()
                    .filter_map(|r| r.ladder_ready_s)
                    .collect::<Vec<_>>(),
                1
            )
            .1
        );
        let variants: Vec<String> = self
            .runs
            .iter()
            .filter(|r| r.abr)
            .map(|r| format!("{:?}", r.variants))
            .collect();
        let _ = writeln!(
            md,
            "\nVariants with segments per camera, ABR runs in order: {}.\n",
            variants.join(", ")
        );
        let _ = writeln!(md, "## Runs\n");
        let _ = writeln!(
            md,
            "| round | ABR | camstream CPU % | user % | RSS MiB | transcoders CPU % | transcoders RSS MiB | processes | ladder listed after, s |"
        );
        let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.runs {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
                r.round,
                if r.abr { "yes" } else { "no" },
                r.server_cpu_pct,
                r.server_user_pct,
                r.server_rss_kib as f64 / 1024.0,
                r.transcoder_cpu_pct,
                r.transcoder_rss_kib as f64 / 1024.0,
                r.transcoders,
                r.ladder_ready_s.map_or("—".into(), |s| format!("{s:.1}"))
            );
        }
        let _ = writeln!(md, "\nCommand (ABR runs): `{}`", self.server_command);
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_uris_are_the_lines_after_stream_inf() {
        let master = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=2300000,RESOLUTION=1280x720\nllhls.m3u8?token=a\n#EXT-X-STREAM-INF:BANDWIDTH=1100000,RESOLUTION=854x480\n480p/llhls.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\n\n";
        assert_eq!(
            variant_uris(master),
            vec!["llhls.m3u8?token=a", "480p/llhls.m3u8"]
        );
    }

    fn run(abr: bool, server: f64, tr: f64) -> AbrRun {
        AbrRun {
            round: 1,
            abr,
            server_cpu_pct: server,
            server_user_pct: server / 2.0,
            server_rss_kib: 40_960,
            transcoder_cpu_pct: tr,
            transcoder_rss_kib: if abr { 102_400 } else { 0 },
            transcoders: usize::from(abr) * 2,
            variants: if abr { vec![3, 3] } else { vec![1, 1] },
            ladder_ready_s: abr.then_some(4.5),
        }
    }

    #[test]
    fn the_report_divides_by_cameras_and_subtracts_the_plain_run() {
        let r = AbrReport {
            machine: Machine::default(),
            server_version: "camstream 0.1.0".into(),
            server_command: "camstream serve --abr-all-cameras".into(),
            clip: "clip".into(),
            cameras: 2,
            seconds: 30,
            runs: vec![
                run(false, 1.0, 0.0),
                run(true, 2.0, 60.0),
                run(false, 1.2, 0.0),
                run(true, 2.4, 64.0),
                run(false, 1.1, 0.0),
                run(true, 2.2, 62.0),
            ],
        };
        let md = r.markdown();
        // Transcoders: median 62 % for 2 cameras = 31 per camera, spread 30–32.
        assert!(md.contains("| **31.0 [30.0–32.0]** |"), "{md}");
        // camstream: (2.2 − 1.1) / 2 = 0.55 per camera.
        assert!(
            md.contains("with − without), % of one core | 0.55 |"),
            "{md}"
        );
        assert!(md.contains("| 4.5 [4.5–4.5] |"), "{md}");
        assert!(md.contains("[3, 3], [3, 3], [3, 3]"), "{md}");
        let back: AbrReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.runs.len(), 6);
    }
}
