//! `camstream-bench`: the load harness for camstream, run side by side with nginx-rtmp.
//!
//! Publishes a looped, real-time paced FLV clip over RTMP from many connections of one
//! process, watches it with HLS and LL-HLS viewers that behave like hls.js, drives the API,
//! measures the server's CPU and memory from /proc, latency, loss, stalls and errors, and
//! writes a JSON + Markdown report with SVG plots. `compare` runs the same scenario against
//! camstream and then nginx with libnginx-mod-rtmp on the same machine; `relay` runs it on
//! a two-node camstream cluster, viewers on the origin and then on the edge.

mod abr;
mod api;
mod clip;
mod limits;
mod marker;
mod metrics;
mod pacing;
mod partclock;
mod player;
mod playlist;
mod plot;
mod postgres;
mod procstat;
mod publisher;
mod relay;
mod report;
mod run;
mod scenario;
mod server;
mod ts;
mod viewer;
mod webrtc;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::clip::Clip;
use crate::report::{Comparison, Report};
use crate::run::RunConfig;
use crate::scenario::{Overrides, Scenario};
use crate::server::Kind;

#[derive(Parser)]
#[command(
    name = "camstream-bench",
    version,
    about = "Load harness for camstream, side by side with nginx-rtmp"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario against one server.
    Run {
        #[command(flatten)]
        common: Common,
        /// Which server to start and measure.
        #[arg(long, value_enum, default_value = "camstream")]
        server: Kind,
    },
    /// Run a scenario against camstream and nginx-rtmp, interleaved (camstream, nginx,
    /// camstream, nginx, ...), every run for the full duration, and compare medians.
    Compare {
        #[command(flatten)]
        common: Common,
        /// Runs of each server (at least 1; 3 gives a median and a spread).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        repeats: u32,
    },
    /// Relay benchmark: a PostgreSQL and a two-node cluster; publishers on node 1, the
    /// viewers on node 1 (local baseline), then on node 2 (relayed). Needs `[cluster]`.
    Relay {
        #[command(flatten)]
        common: Common,
    },
    /// WebRTC (WHEP) benchmark: one camera, steps of N str0m viewers (CPU and memory per
    /// viewer, frames received, wire latency, time to first frame), and optionally Chromium
    /// for glass-to-glass.
    Webrtc {
        /// The camstream binary (default: `camstream` beside this binary).
        #[arg(long, env = "CAMSTREAM_BIN")]
        camstream_bin: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "bench-results/webrtc")]
        out: PathBuf,
        /// Viewer counts, one step each; include 0 for the per-viewer figures.
        #[arg(long, value_delimiter = ',', default_value = "0,50,200")]
        viewers: Vec<u32>,
        /// Measured seconds per step.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// An installed browser runner (tests/browser with node_modules, e.g.
        /// target/testdata/e2e/browser after the e2e tests): Chromium measures
        /// glass-to-glass.
        #[arg(long)]
        browser_runner: Option<PathBuf>,
        /// Seconds Chromium plays.
        #[arg(long, default_value_t = 20)]
        browser_seconds: u64,
        /// An extra `camstream serve` argument, repeatable (`--server-arg=--webrtc-gso=off`);
        /// the report's server command shows them.
        #[arg(long = "server-arg", allow_hyphen_values = true)]
        server_args: Vec<String>,
        /// Viewers also take the camera's audio (Opus, transcoded once per camera by the
        /// server).
        #[arg(long)]
        audio: bool,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// ABR benchmark: N cameras without ABR and with every camera transcoded into the
    /// server's default ladder, alternated for `--repeats` rounds; CPU and RSS of camstream
    /// and of its transcoders (ffmpeg), per ABR camera. Needs ffmpeg.
    Abr {
        /// The camstream binary (default: `camstream` beside this binary).
        #[arg(long, env = "CAMSTREAM_BIN")]
        camstream_bin: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "bench-results/abr")]
        out: PathBuf,
        /// Cameras, all transcoded in the ABR runs.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        cameras: u32,
        /// Rounds (a run without ABR and one with it each; 3 gives a median and a spread).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        repeats: u32,
        /// Measured seconds per run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Seconds between the ladder appearing and the measured window.
        #[arg(long, default_value_t = 10)]
        settle: u64,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Generate the test clip with ffmpeg and print its facts.
    Clip {
        /// Folder for the clip (default: the system temp folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Render Markdown and SVG again from a report.json or compare.json.
    Render {
        /// The JSON file a run or comparison wrote.
        json: PathBuf,
    },
}

#[derive(Args)]
struct Common {
    /// Scenario file (bench/scenarios/*.toml).
    #[arg(long)]
    scenario: PathBuf,
    /// The camstream binary (default: `camstream` beside this binary, as cargo builds it).
    #[arg(long, env = "CAMSTREAM_BIN")]
    camstream_bin: Option<PathBuf>,
    /// Output folder (default: bench-results/<scenario>-<server>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the number of cameras.
    #[arg(long)]
    cameras: Option<u32>,
    /// Override the number of classic HLS viewers.
    #[arg(long)]
    hls_viewers: Option<u32>,
    /// Override the number of LL-HLS viewers.
    #[arg(long)]
    llhls_viewers: Option<u32>,
    /// Override the steady duration, seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Publish this FLV file instead of the generated clip.
    #[arg(long)]
    clip: Option<PathBuf>,
    /// No live status line.
    #[arg(long)]
    quiet: bool,
    /// Run the whole duration even after a limit is reached.
    #[arg(long)]
    keep_going: bool,
}

fn default_camstream_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("camstream")))
        .unwrap_or_else(|| PathBuf::from("camstream"))
}

fn ffmpeg_version() -> String {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split(" Copyright").next().unwrap_or(l).to_owned())
        })
        .unwrap_or_else(|| "ffmpeg not found".into())
}

fn prepare(common: &Common) -> anyhow::Result<(Scenario, std::sync::Arc<Clip>, String)> {
    let mut scenario = Scenario::load(&common.scenario)?;
    scenario.apply(&Overrides {
        cameras: common.cameras,
        hls_viewers: common.hls_viewers,
        llhls_viewers: common.llhls_viewers,
        duration_s: common.duration,
    })?;
    if common.keep_going {
        scenario.limits.stop_on_limit = false;
    }
    if let Some(c) = &common.clip {
        scenario.clip.path = Some(c.clone());
    }
    let clip = Clip::for_spec(
        &scenario.clip,
        &std::env::temp_dir().join("camstream-bench"),
    )?;
    let tool = format!(
        "camstream-bench {} (clip by {})",
        env!("CARGO_PKG_VERSION"),
        ffmpeg_version()
    );
    Ok((scenario, clip, tool))
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    std::fs::write(dir.join(name), text)
        .with_context(|| format!("writing {}", dir.join(name).display()))
}

/// Writes abr.json and abr.md.
fn write_abr(dir: &Path, r: &abr::AbrReport) -> anyhow::Result<()> {
    write(dir, "abr.json", &serde_json::to_string_pretty(r)?)?;
    write(dir, "abr.md", &r.markdown())
}

/// Writes report.json, report.md and the plots of one run.
fn write_run(dir: &Path, r: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    write(dir, "report.json", &serde_json::to_string_pretty(r)?)?;
    let plots = plot::all(dir, &[r])?;
    write(dir, "report.md", &r.markdown(&plots))
}

/// Writes compare.json, compare.md and side-by-side plots.
fn write_compare(dir: &Path, c: &Comparison) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    write(dir, "compare.json", &serde_json::to_string_pretty(c)?)?;
    let plots = plot::all(dir, &[&c.camstream, &c.nginx])?;
    write(dir, "compare.md", &c.markdown(&plots))
}

/// Writes relay.json, relay.md and the origin's plots of both runs.
fn write_relay(dir: &Path, r: &relay::RelayReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    write(dir, "relay.json", &serde_json::to_string_pretty(r)?)?;
    let runs: Vec<&Report> = r.local.iter().chain(std::iter::once(&r.relay)).collect();
    let plots = plot::all(dir, &runs)?;
    write(dir, "relay.md", &r.markdown(&plots))
}

async fn main_async(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Run { common, server } => {
            let (scenario, clip, tool) = prepare(&common)?;
            if scenario.cluster.is_some() {
                anyhow::bail!(
                    "scenario {} has a [cluster] section: run it with `relay`",
                    scenario.name
                );
            }
            let out = common.out.clone().unwrap_or_else(|| {
                PathBuf::from(format!(
                    "bench-results/{}-{}",
                    scenario.name,
                    server.label()
                ))
            });
            let cfg = RunConfig {
                scenario,
                kind: server,
                camstream_bin: common
                    .camstream_bin
                    .clone()
                    .unwrap_or_else(default_camstream_bin),
                clip,
                progress: !common.quiet,
                tool,
            };
            let report = run::run(&cfg).await?;
            write_run(&out, &report)?;
            println!("{}", report.verdict());
            println!("report: {}", out.join("report.md").display());
        }
        Cmd::Compare { common, repeats } => {
            let (mut scenario, clip, tool) = prepare(&common)?;
            if scenario.cluster.is_some() {
                anyhow::bail!(
                    "scenario {} has a [cluster] section: run it with `relay`",
                    scenario.name
                );
            }
            // Equal durations whatever happens: a server that reaches a limit is measured
            // for as long as the other (the limit is still reported).
            scenario.limits.stop_on_limit = false;
            let out = common.out.clone().unwrap_or_else(|| {
                PathBuf::from(format!("bench-results/{}-compare", scenario.name))
            });
            let mut cfg = RunConfig {
                scenario,
                kind: Kind::Camstream,
                camstream_bin: common
                    .camstream_bin
                    .clone()
                    .unwrap_or_else(default_camstream_bin),
                clip,
                progress: !common.quiet,
                tool,
            };
            let (mut cs_runs, mut ng_runs) = (Vec::new(), Vec::new());
            for i in 1..=repeats {
                for kind in [Kind::Camstream, Kind::Nginx] {
                    cfg.kind = kind;
                    let r = run::run(&cfg)
                        .await
                        .with_context(|| format!("{} run {i}", kind.label()))?;
                    println!("run {i}/{repeats} {}: {}", kind.label(), r.verdict());
                    write_run(&out.join(format!("run-{i}-{}", kind.label())), &r)?;
                    match kind {
                        Kind::Camstream => cs_runs.push(r),
                        Kind::Nginx => ng_runs.push(r),
                    }
                }
            }
            let key = |r: &Report| r.summary.server_cpu_per_camera_pct;
            let (ci, ni) = (
                report::median_index(&cs_runs, key),
                report::median_index(&ng_runs, key),
            );
            let cmp = Comparison {
                camstream_runs: cs_runs.iter().map(|r| r.summary.clone()).collect(),
                nginx_runs: ng_runs.iter().map(|r| r.summary.clone()).collect(),
                camstream: cs_runs.swap_remove(ci),
                nginx: ng_runs.swap_remove(ni),
            };
            write_compare(&out, &cmp)?;
            println!(
                "camstream (median of {repeats}): {}\nnginx-rtmp (median of {repeats}): {}",
                cmp.camstream.verdict(),
                cmp.nginx.verdict()
            );
            println!("report: {}", out.join("compare.md").display());
        }
        Cmd::Webrtc {
            camstream_bin,
            out,
            viewers,
            seconds,
            browser_runner,
            browser_seconds,
            server_args,
            audio,
            quiet,
        } => {
            let cfg = webrtc::WebrtcConfig {
                camstream_bin: camstream_bin.unwrap_or_else(default_camstream_bin),
                steps: viewers,
                seconds,
                browser_runner,
                browser_seconds,
                server_args,
                audio,
                progress: !quiet,
            };
            let r = webrtc::run(&cfg).await?;
            std::fs::create_dir_all(&out)?;
            write(&out, "webrtc.json", &serde_json::to_string_pretty(&r)?)?;
            let md = r.markdown();
            write(&out, "webrtc.md", &md)?;
            println!("{md}");
        }
        Cmd::Abr {
            camstream_bin,
            out,
            cameras,
            repeats,
            seconds,
            settle,
            quiet,
        } => {
            let cfg = abr::AbrConfig {
                camstream_bin: camstream_bin.unwrap_or_else(default_camstream_bin),
                cameras,
                repeats,
                seconds,
                settle,
                progress: !quiet,
            };
            let r = abr::run(&cfg).await?;
            std::fs::create_dir_all(&out)?;
            write_abr(&out, &r)?;
            println!("{}", r.markdown());
        }
        Cmd::Relay { common } => {
            let (scenario, clip, tool) = prepare(&common)?;
            let out = common
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("bench-results/{}", scenario.name)));
            let cfg = RunConfig {
                scenario,
                kind: Kind::Camstream,
                camstream_bin: common
                    .camstream_bin
                    .clone()
                    .unwrap_or_else(default_camstream_bin),
                clip,
                progress: !common.quiet,
                tool,
            };
            let r = relay::run(&cfg).await?;
            write_relay(&out, &r)?;
            if let Some(l) = &r.local {
                println!("local: {}", l.verdict());
            }
            println!("relayed: {}", r.relay.verdict());
            println!("report: {}", out.join("relay.md").display());
        }
        Cmd::Clip { dir } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("camstream-bench"));
            let path = clip::generate(&clip::ClipSpec::default(), &dir)?;
            let c = Clip::load(&path)?;
            println!(
                "{}\n{}",
                path.display(),
                serde_json::to_string_pretty(&c.info)?
            );
        }
        Cmd::Render { json } => {
            let text = std::fs::read_to_string(&json)
                .with_context(|| format!("reading {}", json.display()))?;
            let dir = json.parent().unwrap_or(Path::new("."));
            if let Ok(c) = serde_json::from_str::<Comparison>(&text) {
                write_compare(dir, &c)?;
            } else if let Ok(r) = serde_json::from_str::<relay::RelayReport>(&text) {
                write_relay(dir, &r)?;
            } else if let Ok(r) = serde_json::from_str::<abr::AbrReport>(&text) {
                write_abr(dir, &r)?;
            } else {
                let r: Report =
                    serde_json::from_str(&text).context("neither a report nor a comparison")?;
                write_run(dir, &r)?;
            }
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(main_async(cli))
}
