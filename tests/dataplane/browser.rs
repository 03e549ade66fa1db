//! hls.js in headless Debian Chromium plays a live camera's LL-HLS from another origin
//! (`tests/browser/play.mjs`), and its live latency is measured.
//!
//! Needs `node`/`npm` and `/usr/bin/chromium` (see `common::browser`).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::common::browser::{run_bounded, runner};
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::common::{Server, ServerOptions};

const CAMERA: &str = "browser";
/// Seconds of playback hls.js must achieve (issue 11: latency over 45 s).
const WANT_PLAYED: f64 = 45.0;
/// hls.js's median `latency` once settled, with 200 ms parts (issue 11).
const MAX_LATENCY: f64 = 1.0;
/// Issue 3 (browser): hls.js plays the LL-HLS playlist across origins without a fatal
/// error, playback advances, and the live latency stays low.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_ll_hls_in_chromium() {
    let _heavy = crate::common::heavy().await;
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is required: apt-get install -y chromium"
    );
    let dir = runner().await;
    let clips = clips().await;
    let server = Server::start("browser", ServerOptions::default()).await;
    let _camera = Ffmpeg::publish_looped(
        &clips.av_long,
        &server.rtmp_url(CAMERA),
        server.dir.join("publish.stderr"),
    );
    server.wait_ll(CAMERA, Duration::from_secs(20)).await;
    let url = server.url(&format!("/hls/{CAMERA}/playlist.m3u8"));
    let mut run = Command::new("node");
    run.arg(dir.join("play.mjs"))
        .args([url.as_str(), &WANT_PLAYED.to_string(), "100"])
        .current_dir(&dir);
    let out = run_bounded(run, Duration::from_secs(130), "the hls.js runner").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node: {}\n{stderr}", out.status);
    let line = stdout.lines().last().unwrap_or_default();
    let r: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("runner output is not JSON ({e}): {stdout}\n{stderr}"));
    let pretty = serde_json::to_string_pretty(&r).expect("json");
    std::fs::write(server.dir.join("browser-result.json"), &pretty).expect("write result");
    assert!(r["exception"].is_null(), "runner failed: {pretty}");
    assert!(r["fatal"].is_null(), "hls.js fatal error: {pretty}");
    assert_eq!(r["state"]["mse"]["h264"], true, "no H.264 in MSE: {pretty}");
    assert_eq!(r["state"]["live"], true, "{pretty}");
    assert_eq!(r["state"]["canBlockReload"], true, "{pretty}");
    assert_eq!(
        r["ok"], true,
        "playback did not advance {WANT_PLAYED}s: {pretty}"
    );
    let advanced = r["advanced"].as_f64().expect("advanced");
    let wall = r["wall"].as_f64().expect("wall");
    // Playback keeps pace with the wall clock: a stall of a few seconds is tolerated (a
    // loaded 2-core machine starves the browser at times), not a stream that stops.
    assert!(
        advanced >= wall - 3.0,
        "played {advanced:.2}s in {wall:.2}s: {pretty}"
    );
    // Latency once hls.js settled: the second half of the samples.
    let samples = r["samples"].as_array().expect("samples");
    let mut latency: Vec<f64> = samples[samples.len() / 2..]
        .iter()
        .filter_map(|s| s["latency"].as_f64())
        .collect();
    assert!(!latency.is_empty(), "no latency samples: {pretty}");
    latency.sort_by(f64::total_cmp);
    let median = latency[latency.len() / 2];
    let max = latency[latency.len() - 1];
    let mut wall_latency: Vec<f64> = samples[samples.len() / 2..]
        .iter()
        .filter_map(|s| s["wallLatency"].as_f64())
        .collect();
    assert!(!wall_latency.is_empty(), "no PROGRAM-DATE-TIME: {pretty}");
    wall_latency.sort_by(f64::total_cmp);
    let wall_median = wall_latency[wall_latency.len() / 2];
    let target = r["samples"][0]["targetLatency"]
        .as_f64()
        .unwrap_or(f64::NAN);
    println!(
        "hls.js: first frame {:.2}s after page load, played {advanced:.2}s in {wall:.2}s; \
         hls.latency median {median:.2}s, max {max:.2}s (target {target:.2}s); \
         ingest-to-display (PDT) median {wall_median:.2}s; {} non-fatal errors: {}",
        r["firstFrameAfter"].as_f64().unwrap_or(f64::NAN),
        r["errors"].as_array().map_or(0, Vec::len),
        r["errors"]
    );
    // hls.js runs in low-latency mode off our tags: its target is PART-HOLD-BACK.
    let ll = server.ll(CAMERA, "").await;
    let hold_back: f64 = crate::common::hls::attr(
        ll.server_control.as_deref().expect("server control"),
        "PART-HOLD-BACK",
    )
    .expect("PART-HOLD-BACK")
    .parse()
    .expect("number");
    assert!(
        (target - hold_back).abs() < 1e-3,
        "target latency {target}: {pretty}"
    );
    assert_eq!(
        r["state"]["partTarget"].as_f64(),
        ll.part_target,
        "{pretty}"
    );
    // Where hls.js settles depends on how fast it started: it speeds up towards its target
    // only with more than a second of buffer, so it stays where its start-up left it
    // (PART-HOLD-BACK plus Chromium's start, 0.82 s seen on a busy machine). Classic HLS
    // would hold back three 2 s segments (6 s and more).
    assert!(
        median <= MAX_LATENCY,
        "live latency median {median:.2}s above {MAX_LATENCY}s: {pretty}"
    );
    parts_in_order(
        &r["state"]["trace"],
        ll.part_target.expect("PART-TARGET"),
        &pretty,
    );
    assert!(
        (0.0..5.0).contains(&wall_median),
        "ingest-to-display latency {wall_median:.2}s: {pretty}"
    );
    server.assert_healthy().await;
}

/// Issue 11: after start-up hls.js fetched every part of the live window in order, none
/// skipped: each part loaded is the next of its segment, or the first of the next segment
/// starting where the previous part ended (within half a part).
fn parts_in_order(trace: &serde_json::Value, part_target: f64, pretty: &str) {
    let trace = trace.as_array().expect("trace");
    // Start-up: everything loaded before the first append (hls.js may begin at an earlier
    // independent part and fetch a few parts at once).
    let first_append = trace
        .iter()
        .position(|e| e["ev"] == "appended" && !e["part"].is_null())
        .expect("no part appended");
    let loaded: Vec<(u64, u64, f64, f64)> = trace[first_append..]
        .iter()
        .filter(|e| e["ev"] == "loaded")
        .map(|e| {
            (
                e["sn"].as_u64().expect("sn"),
                e["part"]
                    .as_u64()
                    .expect("hls.js loaded a whole segment, not parts"),
                e["start"].as_f64().expect("start"),
                e["dur"].as_f64().expect("dur"),
            )
        })
        .collect();
    assert!(
        loaded.len() as f64 > 0.8 * WANT_PLAYED / part_target,
        "{} parts loaded in {WANT_PLAYED}s: {pretty}",
        loaded.len()
    );
    for w in loaded.windows(2) {
        let ((sn, part, start, dur), (next_sn, next_part, next_start, _)) = (w[0], w[1]);
        let in_order = (next_sn == sn && next_part == part + 1)
            || (next_sn == sn + 1
                && next_part == 0
                && (next_start - (start + dur)).abs() < part_target / 2.0);
        assert!(
            in_order,
            "part {sn}.{part} ({start}+{dur}) followed by {next_sn}.{next_part} ({next_start}): \
             {pretty}"
        );
    }
}

/// A runner that hangs (here with a grandchild holding its output pipe, as a looping ffmpeg
/// publisher would) fails the test within its limit, with what it printed, and leaves no
/// process behind.
#[tokio::test]
async fn a_hung_runner_fails_in_time_with_its_output() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 600 & echo step: stuck here; sleep 600"]);
    let started = std::time::Instant::now();
    let run = tokio::spawn(run_bounded(cmd, Duration::from_secs(2), "a stuck runner"));
    let err = run.await.expect_err("the hung runner fails the test");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let msg = err
        .into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(msg.contains("did not finish within 2s"), "{msg}");
    assert!(msg.contains("step: stuck here"), "{msg}");
    let left = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 600$"])
        .output()
        .expect("pgrep");
    assert!(
        left.stdout.is_empty(),
        "left behind: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
