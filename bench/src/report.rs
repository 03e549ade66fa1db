//! The report of a run (JSON, with the per-second time series) and of a comparison, and
//! their Markdown rendering. Every number comes with its conditions: machine, cores,
//! versions, clip, scenario, and where the limit was reached if it was.
//!
//! Building a report from the live metrics is `run`'s; plots are `plot`'s.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::clip::ClipInfo;
use crate::limits::Limit;
use crate::metrics::{LatencySummary, ViewerResult};
use crate::scenario::Scenario;

/// One second of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sample {
    pub(crate) t_s: f64,
    /// Publishers streaming.
    pub(crate) cameras: u64,
    pub(crate) viewers: u64,
    /// Server process tree, % of one core.
    pub(crate) server_cpu_pct: f64,
    /// Its user-mode share (reports written before these fields read 0).
    #[serde(default)]
    pub(crate) server_user_cpu_pct: f64,
    /// Context switches per second of the server's threads, voluntary and involuntary.
    #[serde(default)]
    pub(crate) server_vol_ctx_s: f64,
    #[serde(default)]
    pub(crate) server_invol_ctx_s: f64,
    pub(crate) server_rss_mb: f64,
    pub(crate) server_processes: usize,
    /// The harness itself, % of one core.
    pub(crate) generator_cpu_pct: f64,
    /// Whole machine, % of all cores.
    pub(crate) machine_cpu_pct: f64,
    pub(crate) publish_mbps: f64,
    pub(crate) viewer_mbps: f64,
    pub(crate) lag_max_ms: f64,
    pub(crate) api_rps: f64,
    /// Cumulative counts.
    pub(crate) publish_failures: u64,
    pub(crate) http_errors: u64,
    pub(crate) stalls: u64,
    /// Stalls past each player's first 10 s of playback (reports written before this
    /// field read 0).
    #[serde(default)]
    pub(crate) settled_stalls: u64,
    /// Relay runs: the other cluster node's process tree (the edge when the server is
    /// the origin), % of one core and MB; 0 otherwise.
    #[serde(default)]
    pub(crate) peer_cpu_pct: f64,
    #[serde(default)]
    pub(crate) peer_rss_mb: f64,
}

/// The machine a run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub(crate) cpu_model: String,
    pub(crate) cores: usize,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) os: String,
}

/// The server a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerInfo {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) command: String,
}

/// Latencies of one HLS flavour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FlavorLatency {
    pub(crate) ingest_to_available: LatencySummary,
    pub(crate) delivery: LatencySummary,
    pub(crate) glass_to_glass: LatencySummary,
    pub(crate) fetch: LatencySummary,
}

/// All latencies of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub(crate) hls: FlavorLatency,
    pub(crate) llhls: FlavorLatency,
    pub(crate) blocking_reload_wakeup: LatencySummary,
    /// The same from the frame that closes the part (the next one after its last).
    #[serde(default)]
    pub(crate) blocking_reload_after_close: LatencySummary,
    pub(crate) generator_lag: LatencySummary,
    /// Relay runs: a part's first listing in an edge blocking reload minus its first
    /// listing in an origin one (`partclock`), over the probed cameras.
    #[serde(default)]
    pub(crate) edge_added: LatencySummary,
}

/// API load results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ApiResult {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) requests_per_s: f64,
    pub(crate) all: LatencySummary,
    pub(crate) routes: BTreeMap<String, LatencySummary>,
}

/// Frames and bytes in vs out for one camera.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CameraResult {
    pub(crate) camera: u32,
    pub(crate) key: String,
    pub(crate) frames_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) viewers: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) missing_frames: u64,
}

/// The headline numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) cameras_target: u64,
    pub(crate) cameras_reached: u64,
    pub(crate) viewers_target: u64,
    pub(crate) viewers_started: u64,
    /// Seconds the steady-state averages cover.
    pub(crate) steady_s: f64,
    pub(crate) server_cpu_idle_pct: f64,
    pub(crate) server_cpu_pct: f64,
    pub(crate) server_cpu_max_pct: f64,
    pub(crate) server_cpu_per_camera_pct: f64,
    /// User and system (kernel) parts of `server_cpu_pct` (reports written before these
    /// fields read 0).
    #[serde(default)]
    pub(crate) server_user_cpu_pct: f64,
    #[serde(default)]
    pub(crate) server_sys_cpu_pct: f64,
    /// Context switches per camera per second over the steady window.
    #[serde(default)]
    pub(crate) server_vol_ctx_per_camera_s: f64,
    #[serde(default)]
    pub(crate) server_invol_ctx_per_camera_s: f64,
    pub(crate) server_rss_idle_mb: f64,
    pub(crate) server_rss_mb: f64,
    pub(crate) server_rss_max_mb: f64,
    /// (RSS at load − RSS idle) / cameras.
    pub(crate) server_rss_per_camera_kb: f64,
    /// Media the server kept in files at the end (nginx-rtmp's HLS on tmpfs), MB.
    #[serde(default)]
    pub(crate) server_media_files_mb: f64,
    pub(crate) generator_cpu_pct: f64,
    pub(crate) generator_cpu_per_camera_pct: f64,
    pub(crate) machine_cpu_pct: f64,
    pub(crate) frames_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) missing_frames: u64,
    pub(crate) tail_missing_frames: u64,
    pub(crate) foreign_frames: u64,
    /// Stalls of at least 100 ms.
    pub(crate) stalls: u64,
    /// Stalls of at least 1 ms (reports written before this field read 0).
    #[serde(default)]
    pub(crate) stalls_1ms: u64,
    pub(crate) stall_ms: f64,
    pub(crate) resyncs: u64,
    pub(crate) http_errors: u64,
    pub(crate) publish_failures: u64,
    /// Every camera published, every started viewer got frames, none missing anywhere.
    pub(crate) zero_loss: bool,
    /// Relay runs: the edge node (second cluster member), as the server fields above.
    #[serde(default)]
    pub(crate) peer_cpu_idle_pct: f64,
    #[serde(default)]
    pub(crate) peer_cpu_pct: f64,
    #[serde(default)]
    pub(crate) peer_rss_idle_mb: f64,
    #[serde(default)]
    pub(crate) peer_rss_mb: f64,
}

/// The report of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) tool: String,
    pub(crate) scenario: Option<Scenario>,
    pub(crate) server: ServerInfo,
    pub(crate) machine: Machine,
    pub(crate) clip: Option<ClipInfo>,
    pub(crate) started_unix_s: u64,
    pub(crate) wall_s: f64,
    pub(crate) summary: Summary,
    pub(crate) latency: Latency,
    pub(crate) api: Option<ApiResult>,
    pub(crate) cameras: Vec<CameraResult>,
    pub(crate) viewers: Vec<ViewerResult>,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) limit: Option<Limit>,
    pub(crate) notes: Vec<String>,
    /// Latency distributions for plots: name → (upper bound ms, count).
    pub(crate) distributions: BTreeMap<String, Vec<(f64, u64)>>,
    pub(crate) timeseries: Vec<Sample>,
}

/// camstream side by side with nginx-rtmp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Comparison {
    /// The median camstream run (by CPU per camera) of [`Comparison::camstream_runs`].
    pub(crate) camstream: Report,
    /// The median nginx-rtmp run.
    pub(crate) nginx: Report,
    /// Every run's summary in the order they ran: camstream, nginx, camstream, nginx, ...
    /// (comparisons written before repeats existed hold none).
    #[serde(default)]
    pub(crate) camstream_runs: Vec<Summary>,
    #[serde(default)]
    pub(crate) nginx_runs: Vec<Summary>,
}

/// The index of the median of `runs` by `key` (the lower middle of an even count).
pub(crate) fn median_index<T>(runs: &[T], key: impl Fn(&T) -> f64) -> usize {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| key(&runs[a]).total_cmp(&key(&runs[b])));
    order
        .get(runs.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// Reads one figure of a run's summary.
type Figure = fn(&Summary) -> f64;

/// `median [min–max]` of one figure over runs.
fn spread(runs: &[Summary], key: Figure, digits: usize) -> (f64, String) {
    let v: Vec<f64> = runs.iter().map(key).collect();
    spread_of(&v, digits)
}

/// `median [min–max]` of some values (the mean of the middle two of an even count), and the
/// median; `–` for none.
pub(crate) fn spread_of(values: &[f64], digits: usize) -> (f64, String) {
    if values.is_empty() {
        return (0.0, "–".into());
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let (lo, hi) = (v[0], v[v.len() - 1]);
    (med, format!("{med:.digits$} [{lo:.digits$}–{hi:.digits$}]"))
}

/// How the latencies are measured; printed under every latency table.
pub(crate) const METHOD: &str = "\
Method. One process runs publishers and viewers, so one monotonic clock times everything. \
Each video frame carries an H.264 SEI (user_data_unregistered) with camera, frame number and \
capture time (the moment the paced publisher was due to send it); servers pass SEI through \
into TS and fMP4, and viewers find it in every part or segment they download. \
*Ingest → available*: the playlist response that first listed the part/segment minus the \
moment the frame's last byte was written to the server's socket (loopback, so that is when \
it reached the server); classic HLS viewers reload at the hls.js cadence (target duration, \
half when unchanged), so its figure includes up to one reload interval of polling. \
*Delivery*: frame bytes in the viewer minus capture time (no player buffer). \
*Glass-to-glass proxy*: a simulated player starts at hls.js's live sync position (3 segments \
back for HLS, PART-HOLD-BACK for LL-HLS) when its first media arrives and then shows frames \
at capture pace; display time minus capture time, stalls included (a frame that arrives \
after its display time stalls the player and slips its clock). Encoding and display \
latency of real cameras and screens are not in it. *Blocking reload wake-up*: the reload's \
answer minus the arrival of the last frame of the part it waited for, for reloads sent \
before that frame; it includes the server's wait for the frame that closes the part (at \
most one frame interval); *after the closing frame*: the same answer minus the arrival of \
that next frame, the server's own share. *Loss*: frame numbers missing between the first and last frame \
each viewer saw, plus frames that reached the server over a grace period before the end \
but never reached the viewer.";

fn ms(v: f64) -> String {
    if v == 0.0 {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn lat_row(out: &mut String, name: &str, l: &LatencySummary) {
    if l.count == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} |",
        l.count,
        ms(l.p50_ms),
        ms(l.p95_ms),
        ms(l.p99_ms),
        ms(l.max_ms)
    );
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

impl Report {
    /// The conditions every number depends on, as a Markdown list.
    pub(crate) fn conditions(&self, out: &mut String) {
        let m = &self.machine;
        let _ = writeln!(
            out,
            "- Machine: {} × {} ({:.0} GiB), {}, Linux {}",
            m.cores, m.cpu_model, m.memory_gib, m.os, m.kernel
        );
        let _ = writeln!(
            out,
            "- Server: {} — {}",
            self.server.name, self.server.version
        );
        let _ = writeln!(out, "- Harness: {}", self.tool);
        if let Some(c) = &self.clip {
            let _ = writeln!(
                out,
                "- Clip: {}x{} @ {:.0} fps, H.264 {:.0} kbit/s{} + AAC {:.0} kbit/s = {:.2} Mbit/s, keyframe every {:.1} s, {:.0} s looped ({})",
                c.width,
                c.height,
                c.fps,
                c.video_kbps,
                if c.bframes { " with B-frames" } else { "" },
                c.audio_kbps,
                (c.video_kbps + c.audio_kbps) / 1000.0,
                c.gop_s,
                c.duration_s,
                c.source
            );
        }
        if let Some(s) = &self.scenario {
            let _ = writeln!(
                out,
                "- Scenario: `{}` — {} cameras (ramp {}/s), {} HLS + {} LL-HLS viewers, {} s steady{}",
                s.name,
                s.publishers.count,
                s.publishers.ramp_per_s,
                s.viewers.hls,
                s.viewers.llhls,
                s.duration_s,
                s.api
                    .as_ref()
                    .map(|a| format!(", API {} req/s from {} clients", a.rate_per_s, a.clients))
                    .unwrap_or_default()
            );
        }
    }

    /// The limit verdict, one sentence.
    pub(crate) fn verdict(&self) -> String {
        match &self.limit {
            Some(l) => format!(
                "Limit reached at {:.0} s with {} cameras and {} viewers: {}.",
                l.at_s, l.cameras, l.viewers, l.why
            ),
            None => format!(
                "No limit reached: {} cameras and {} viewers held for {:.0} s with the machine at {:.0} % CPU on average.",
                self.summary.cameras_reached,
                self.summary.viewers_started,
                self.summary.steady_s,
                self.summary.machine_cpu_pct
            ),
        }
    }

    /// The whole report as Markdown. `plots` are SVG file names beside it.
    pub(crate) fn markdown(&self, plots: &[String]) -> String {
        let mut o = String::new();
        let s = &self.summary;
        let _ = writeln!(
            o,
            "# camstream-bench: {} on {}\n",
            self.scenario.as_ref().map_or("run", |s| s.name.as_str()),
            self.server.name
        );
        self.conditions(&mut o);
        let _ = writeln!(o, "\n**{}**\n", self.verdict());
        let _ = writeln!(o, "## Cost\n\n| | value |\n|---|---:|");
        let rows: [(&str, String); 17] = [
            (
                "cameras reached / target",
                format!("{} / {}", s.cameras_reached, s.cameras_target),
            ),
            (
                "viewers started / target",
                format!("{} / {}", s.viewers_started, s.viewers_target),
            ),
            ("steady window, s", format!("{:.0}", s.steady_s)),
            (
                "server CPU idle, % of one core",
                format!("{:.1}", s.server_cpu_idle_pct),
            ),
            (
                "server CPU, % of one core (mean)",
                format!("{:.1}", s.server_cpu_pct),
            ),
            (
                "server CPU, % of one core (max)",
                format!("{:.1}", s.server_cpu_max_pct),
            ),
            (
                "server CPU per camera, %",
                format!("{:.3}", s.server_cpu_per_camera_pct),
            ),
            (
                "server CPU user / system, % of one core",
                format!("{:.1} / {:.1}", s.server_user_cpu_pct, s.server_sys_cpu_pct),
            ),
            (
                "context switches per camera per s, voluntary / involuntary",
                format!(
                    "{:.1} / {:.2}",
                    s.server_vol_ctx_per_camera_s, s.server_invol_ctx_per_camera_s
                ),
            ),
            (
                "server RSS idle, MB",
                format!("{:.1}", s.server_rss_idle_mb),
            ),
            (
                "server RSS under load, MB (max)",
                format!("{:.1} ({:.1})", s.server_rss_mb, s.server_rss_max_mb),
            ),
            (
                "server RSS per camera, KB",
                format!("{:.0}", s.server_rss_per_camera_kb),
            ),
            (
                "media files (tmpfs) at the end, MB",
                format!("{:.1}", s.server_media_files_mb),
            ),
            (
                "generator CPU, % of one core",
                format!("{:.1}", s.generator_cpu_pct),
            ),
            (
                "generator CPU per camera, %",
                format!("{:.3}", s.generator_cpu_per_camera_pct),
            ),
            (
                "machine CPU, % of all cores",
                format!("{:.1}", s.machine_cpu_pct),
            ),
            ("publish failures", s.publish_failures.to_string()),
        ];
        for (k, v) in rows {
            let _ = writeln!(o, "| {k} | {v} |");
        }
        let _ = writeln!(
            o,
            "\n## Latency (ms)\n\n| measure | samples | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|"
        );
        let l = &self.latency;
        lat_row(&mut o, "HLS ingest → available", &l.hls.ingest_to_available);
        lat_row(
            &mut o,
            "HLS delivery (capture → bytes in viewer)",
            &l.hls.delivery,
        );
        lat_row(&mut o, "HLS glass-to-glass proxy", &l.hls.glass_to_glass);
        lat_row(&mut o, "HLS segment fetch", &l.hls.fetch);
        lat_row(
            &mut o,
            "LL-HLS ingest → available",
            &l.llhls.ingest_to_available,
        );
        lat_row(
            &mut o,
            "LL-HLS delivery (capture → bytes in viewer)",
            &l.llhls.delivery,
        );
        lat_row(
            &mut o,
            "LL-HLS glass-to-glass proxy",
            &l.llhls.glass_to_glass,
        );
        lat_row(&mut o, "LL-HLS part fetch", &l.llhls.fetch);
        lat_row(
            &mut o,
            "LL-HLS blocking reload wake-up",
            &l.blocking_reload_wakeup,
        );
        lat_row(
            &mut o,
            "LL-HLS blocking reload wake-up after the closing frame",
            &l.blocking_reload_after_close,
        );
        lat_row(&mut o, "publisher lateness (generator)", &l.generator_lag);
        let _ = writeln!(o, "\n{METHOD}\n");
        let _ = writeln!(o, "## Loss and errors\n");
        let _ = writeln!(
            o,
            "Frames in {} ({} MB), frames out {} ({} MB over {} viewers); missing {}, missing at the tail {}, from another camera {}; stalls of 100 ms or more {} (of 1 ms or more {}; {:.0} ms stood still in all; {} past the players' first 10 s), resyncs {}, HTTP errors {}. **Zero loss: {}.**\n",
            s.frames_in,
            mb(s.bytes_in),
            s.frames_out,
            mb(s.bytes_out),
            s.viewers_started,
            s.missing_frames,
            s.tail_missing_frames,
            s.foreign_frames,
            s.stalls,
            s.stalls_1ms,
            s.stall_ms,
            self.timeseries.last().map_or(0, |x| x.settled_stalls),
            s.resyncs,
            s.http_errors,
            if s.zero_loss { "yes" } else { "no" }
        );
        if !self.cameras.is_empty() && self.cameras.len() <= 20 {
            let _ = writeln!(
                o,
                "| camera | key | frames in | MB in | viewers | frames out | MB out | missing |\n|---:|---|---:|---:|---:|---:|---:|---:|"
            );
            for c in &self.cameras {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    c.camera,
                    c.key,
                    c.frames_in,
                    mb(c.bytes_in),
                    c.viewers,
                    c.frames_out,
                    mb(c.bytes_out),
                    c.missing_frames
                );
            }
            o.push('\n');
        }
        if !self.errors.is_empty() {
            let _ = writeln!(o, "| error | count |\n|---|---:|");
            for (k, v) in &self.errors {
                let _ = writeln!(o, "| {} | {v} |", k.replace('|', "/"));
            }
            o.push('\n');
        }
        if let Some(a) = &self.api {
            let _ = writeln!(
                o,
                "## API\n\n{} requests, {} errors, {:.1} requests/s.\n\n| route | samples | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|",
                a.requests, a.errors, a.requests_per_s
            );
            lat_row(&mut o, "all", &a.all);
            for (r, l) in &a.routes {
                lat_row(&mut o, r, l);
            }
            o.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(o, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(o, "- {n}");
            }
            o.push('\n');
        }
        if !plots.is_empty() {
            let _ = writeln!(o, "## Plots\n");
            for p in plots {
                let _ = writeln!(o, "![{p}]({p})");
            }
        }
        o
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}×", b / a)
    } else {
        "n/a".into()
    }
}

impl Comparison {
    /// Median and spread over the repeated runs, when there were any.
    fn repeats_markdown(&self, o: &mut String) {
        let (c, n) = (&self.camstream_runs, &self.nginx_runs);
        if c.is_empty() || n.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "## Repeats\n\n{} runs of camstream and {} of nginx-rtmp, interleaved (camstream, nginx, camstream, ...), each for the full duration. Median [min–max]:\n",
            c.len(),
            n.len()
        );
        let _ = writeln!(
            o,
            "| | camstream | nginx-rtmp | nginx ÷ camstream (medians) |\n|---|---:|---:|---:|"
        );
        let rows: [(&str, Figure, usize); 10] = [
            ("cameras reached", |s| s.cameras_reached as f64, 0),
            (
                "CPU per camera, % of one core",
                |s| s.server_cpu_per_camera_pct,
                3,
            ),
            ("server CPU, % of one core", |s| s.server_cpu_pct, 1),
            (
                "server CPU user, % of one core",
                |s| s.server_user_cpu_pct,
                1,
            ),
            (
                "server CPU system, % of one core",
                |s| s.server_sys_cpu_pct,
                1,
            ),
            (
                "voluntary context switches per camera per s",
                |s| s.server_vol_ctx_per_camera_s,
                1,
            ),
            (
                "involuntary context switches per camera per s",
                |s| s.server_invol_ctx_per_camera_s,
                2,
            ),
            ("RSS per camera, KB", |s| s.server_rss_per_camera_kb, 0),
            ("stalls ≥ 100 ms", |s| s.stalls as f64, 0),
            ("stalls ≥ 1 ms", |s| s.stalls_1ms as f64, 0),
        ];
        for (k, key, digits) in rows {
            let (a, at) = spread(c, key, digits);
            let (b, bt) = spread(n, key, digits);
            let _ = writeln!(o, "| {k} | {at} | {bt} | {} |", ratio(a, b));
        }
        let per_run = |runs: &[Summary]| {
            runs.iter()
                .map(|s| format!("{:.3}", s.server_cpu_per_camera_pct))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "\nCPU per camera by run, in order: camstream {}; nginx-rtmp {}.\n",
            per_run(c),
            per_run(n)
        );
    }

    /// Side-by-side Markdown: camstream, nginx-rtmp, and nginx ÷ camstream (above 1 means
    /// camstream costs less or is faster).
    pub(crate) fn markdown(&self, plots: &[String]) -> String {
        let (c, n) = (&self.camstream, &self.nginx);
        let mut o = String::new();
        let name = c.scenario.as_ref().map_or("run", |s| s.name.as_str());
        let _ = writeln!(o, "# camstream vs nginx-rtmp: {name}\n");
        c.conditions(&mut o);
        let _ = writeln!(o, "- Baseline: {} — {}", n.server.name, n.server.version);
        let _ = writeln!(
            o,
            "- Same clip, same scenario, same machine, one server after the other.\n"
        );
        let _ = writeln!(
            o,
            "camstream: **{}**\n\nnginx-rtmp: **{}**\n",
            c.verdict(),
            n.verdict()
        );
        self.repeats_markdown(&mut o);
        let _ = writeln!(
            o,
            "The table below is the median run of each server (by CPU per camera).\n"
        );
        let _ = writeln!(
            o,
            "| | camstream | nginx-rtmp | nginx ÷ camstream |\n|---|---:|---:|---:|"
        );
        let (cs, ns) = (&c.summary, &n.summary);
        let mut row = |k: &str, a: f64, b: f64, digits: usize| {
            let _ = writeln!(o, "| {k} | {a:.digits$} | {b:.digits$} | {} |", ratio(a, b));
        };
        row(
            "cameras reached",
            cs.cameras_reached as f64,
            ns.cameras_reached as f64,
            0,
        );
        row(
            "server CPU, % of one core",
            cs.server_cpu_pct,
            ns.server_cpu_pct,
            1,
        );
        row(
            "CPU per camera, % of one core",
            cs.server_cpu_per_camera_pct,
            ns.server_cpu_per_camera_pct,
            3,
        );
        row(
            "server CPU user, % of one core",
            cs.server_user_cpu_pct,
            ns.server_user_cpu_pct,
            1,
        );
        row(
            "server CPU system, % of one core",
            cs.server_sys_cpu_pct,
            ns.server_sys_cpu_pct,
            1,
        );
        row(
            "voluntary context switches per camera per s",
            cs.server_vol_ctx_per_camera_s,
            ns.server_vol_ctx_per_camera_s,
            1,
        );
        row(
            "involuntary context switches per camera per s",
            cs.server_invol_ctx_per_camera_s,
            ns.server_invol_ctx_per_camera_s,
            2,
        );
        row("server RSS, MB", cs.server_rss_mb, ns.server_rss_mb, 1);
        row(
            "RSS per camera, KB",
            cs.server_rss_per_camera_kb,
            ns.server_rss_per_camera_kb,
            0,
        );
        row(
            "media files on tmpfs, MB",
            cs.server_media_files_mb,
            ns.server_media_files_mb,
            1,
        );
        row(
            "generator CPU, % of one core",
            cs.generator_cpu_pct,
            ns.generator_cpu_pct,
            1,
        );
        // A latency nobody measured (no viewers of that kind, or a server that does not serve
        // it) reads "–", never 0 ms.
        let mut lat =
            |k: &str, a: &LatencySummary, b: &LatencySummary, p: fn(&LatencySummary) -> f64| {
                let cell = |l: &LatencySummary| {
                    if l.count == 0 {
                        "–".to_string()
                    } else {
                        format!("{:.0}", p(l))
                    }
                };
                let r = if a.count > 0 && b.count > 0 {
                    ratio(p(a), p(b))
                } else {
                    "n/a".into()
                };
                let _ = writeln!(o, "| {k} | {} | {} | {r} |", cell(a), cell(b));
            };
        let (cl, nl) = (&c.latency, &n.latency);
        lat(
            "HLS ingest → available p50, ms",
            &cl.hls.ingest_to_available,
            &nl.hls.ingest_to_available,
            |l| l.p50_ms,
        );
        lat(
            "HLS ingest → available p99, ms",
            &cl.hls.ingest_to_available,
            &nl.hls.ingest_to_available,
            |l| l.p99_ms,
        );
        lat(
            "HLS glass-to-glass proxy p50, ms",
            &cl.hls.glass_to_glass,
            &nl.hls.glass_to_glass,
            |l| l.p50_ms,
        );
        lat(
            "LL-HLS ingest → available p50, ms",
            &cl.llhls.ingest_to_available,
            &nl.llhls.ingest_to_available,
            |l| l.p50_ms,
        );
        lat(
            "LL-HLS glass-to-glass proxy p50, ms",
            &cl.llhls.glass_to_glass,
            &nl.llhls.glass_to_glass,
            |l| l.p50_ms,
        );
        let mut row = |k: &str, a: f64, b: f64, digits: usize| {
            let _ = writeln!(o, "| {k} | {a:.digits$} | {b:.digits$} | {} |", ratio(a, b));
        };
        row(
            "missing frames",
            cs.missing_frames as f64,
            ns.missing_frames as f64,
            0,
        );
        row("stalls ≥ 100 ms", cs.stalls as f64, ns.stalls as f64, 0);
        row(
            "stalls ≥ 1 ms",
            cs.stalls_1ms as f64,
            ns.stalls_1ms as f64,
            0,
        );
        row(
            "HTTP errors",
            cs.http_errors as f64,
            ns.http_errors as f64,
            0,
        );
        let _ = writeln!(
            o,
            "\nnginx-rtmp serves classic HLS only: LL-HLS viewers and API clients run against camstream alone.\n"
        );
        let _ = writeln!(o, "{METHOD}\n");
        if !plots.is_empty() {
            let _ = writeln!(o, "## Plots\n");
            for p in plots {
                let _ = writeln!(o, "![{p}]({p})");
            }
            o.push('\n');
        }
        let _ = writeln!(
            o,
            "---\n\n<details><summary>camstream run</summary>\n\n{}\n</details>\n",
            c.markdown(&[])
        );
        let _ = writeln!(
            o,
            "<details><summary>nginx-rtmp run</summary>\n\n{}\n</details>",
            n.markdown(&[])
        );
        o
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_report(server: &str) -> Report {
        let mut r = Report {
            tool: "camstream-bench 0.1.0".into(),
            server: ServerInfo {
                name: server.into(),
                version: "v1".into(),
                command: "x".into(),
            },
            machine: Machine {
                cpu_model: "Test CPU".into(),
                cores: 2,
                memory_gib: 24.0,
                kernel: "6.18".into(),
                os: "Debian".into(),
            },
            clip: Some(ClipInfo {
                source: "clip.flv".into(),
                width: 1280,
                height: 720,
                fps: 30.0,
                duration_s: 10.0,
                video_kbps: 2000.0,
                audio_kbps: 130.0,
                gop_s: 2.0,
                bframes: true,
                audio_sample_rate: 48_000,
                video_frames: 300,
            }),
            ..Report::default()
        };
        r.summary.cameras_target = 10;
        r.summary.cameras_reached = 10;
        r.summary.server_cpu_pct = 5.0;
        r.summary.server_cpu_per_camera_pct = 0.5;
        r.summary.zero_loss = true;
        r.latency.hls.ingest_to_available = LatencySummary {
            count: 10,
            p50_ms: 900.0,
            p95_ms: 1900.0,
            p99_ms: 2000.0,
            max_ms: 2100.0,
            mean_ms: 1000.0,
        };
        r.cameras.push(CameraResult {
            camera: 0,
            key: "bench-0".into(),
            frames_in: 300,
            ..CameraResult::default()
        });
        r.errors.insert("viewer media: http 404".into(), 2);
        r.timeseries.push(Sample::default());
        r
    }

    #[test]
    fn markdown_states_conditions_verdict_and_tables() {
        let r = sample_report("camstream");
        let md = r.markdown(&["cpu.svg".into()]);
        for needle in [
            "2 × Test CPU",
            "camstream — v1",
            "1280x720 @ 30 fps",
            "2.13 Mbit/s",
            "with B-frames",
            "No limit reached: 10 cameras",
            "| server CPU per camera, % | 0.500 |",
            "| HLS ingest → available | 10 | 900 | 1900 | 2000 | 2100 |",
            "| 0 | bench-0 | 300 |",
            "viewer media: http 404 | 2",
            "**Zero loss: yes.**",
            "![cpu.svg](cpu.svg)",
            "Method.",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        assert!(
            !md.contains("LL-HLS ingest"),
            "empty latencies are left out"
        );
    }

    #[test]
    fn verdict_names_the_limit() {
        let mut r = sample_report("nginx-rtmp");
        r.limit = Some(Limit {
            at_s: 42.0,
            cameras: 180,
            viewers: 0,
            kind: "cpu".into(),
            why: "CPU saturated: machine at 97 %".into(),
        });
        assert_eq!(
            r.verdict(),
            "Limit reached at 42 s with 180 cameras and 0 viewers: CPU saturated: machine at 97 %."
        );
    }

    #[test]
    fn json_round_trip_and_comparison_ratios() {
        let c = sample_report("camstream");
        let mut n = sample_report("nginx-rtmp");
        n.summary.server_cpu_per_camera_pct = 1.0;
        let cmp = Comparison {
            camstream_runs: Vec::new(),
            nginx_runs: Vec::new(),
            camstream: c,
            nginx: n,
        };
        let json = serde_json::to_string(&cmp).expect("serializes");
        let back: Comparison = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, cmp);
        let md = cmp.markdown(&[]);
        assert!(
            md.contains("| CPU per camera, % of one core | 0.500 | 1.000 | 2.00× |"),
            "{md}"
        );
        assert!(
            md.contains("| LL-HLS ingest → available p50, ms | – | – | n/a |"),
            "{md}"
        );
        assert!(md.contains("<summary>nginx-rtmp run</summary>"));
    }

    #[test]
    fn repeats_show_median_and_spread_and_pick_the_median_run() {
        let runs: Vec<Summary> = [0.30, 0.10, 0.20]
            .iter()
            .map(|&cpu| Summary {
                server_cpu_per_camera_pct: cpu,
                stalls: 1,
                stalls_1ms: 4,
                ..Summary::default()
            })
            .collect();
        assert_eq!(median_index(&runs, |s| s.server_cpu_per_camera_pct), 2);
        assert_eq!(median_index(&runs[..2], |s| s.server_cpu_per_camera_pct), 1);
        let (m, text) = spread(&runs, |s| s.server_cpu_per_camera_pct, 3);
        assert_eq!((m, text.as_str()), (0.2, "0.200 [0.100–0.300]"));
        let nginx: Vec<Summary> = runs
            .iter()
            .map(|s| Summary {
                server_cpu_per_camera_pct: s.server_cpu_per_camera_pct * 2.0,
                ..s.clone()
            })
            .collect();
        let cmp = Comparison {
            camstream: sample_report("camstream"),
            nginx: sample_report("nginx-rtmp"),
            camstream_runs: runs,
            nginx_runs: nginx,
        };
        let md = cmp.markdown(&[]);
        assert!(md.contains("## Repeats"), "{md}");
        assert!(
            md.contains("| CPU per camera, % of one core | 0.200 [0.100–0.300] | 0.400 [0.200–0.600] | 2.00× |"),
            "{md}"
        );
        assert!(
            md.contains("| stalls ≥ 1 ms | 4 [4–4] | 4 [4–4] | 1.00× |"),
            "{md}"
        );
        assert!(md.contains("camstream 0.300, 0.100, 0.200"), "{md}");
    }
}
