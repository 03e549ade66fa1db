//! One recording session cut into 10 s files (the shortest `--record-chunk`) plays back as
//! one timeline: the VOD playlist over three whole files has one `EXT-X-MAP` and no
//! `EXT-X-DISCONTINUITY`; ffmpeg decodes it without a word and without dropping anything at
//! the boundaries (decoded video lasts the sum of the files within a frame, no hole between
//! frames, audio continuous); hls.js in headless Chromium plays a range that starts inside
//! a file continuing its session (first decode time 10 s) across the boundary to the next
//! without waiting for data, from one contiguous buffered range; an export of a range across
//! a boundary is one MP4 that decodes cleanly and lasts the range.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::process::Command;

use crate::api::Api;
use crate::common::browser::{run_bounded, runner};
use crate::support::{
    self, FRAME, Row, check_file, decode_clean, publish, recording_camera, rfc3339, signed,
    wait_complete,
};

/// One AAC frame at 48 kHz.
const AAC_FRAME: f64 = 1024.0 / 48_000.0;

/// Decoded frames of one stream of `input` by ffprobe (`-show_frames` decodes): their
/// presentation times and durations. Any stderr output fails.
async fn decoded(input: &str, stream: &str) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-hide_banner", "-v", "error", "-select_streams", stream])
        .args([
            "-show_entries",
            "frame=pts_time,pkt_duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ffprobe (is it installed?)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe -show_frames {input}: {stderr}"
    );
    let mut frames: Vec<(f64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v = l
                .trim_end_matches(',')
                .split(',')
                .map(|x| x.parse::<f64>().unwrap_or_else(|_| panic!("{l:?}")));
            (v.next().expect("pts"), v.next().expect("duration"))
        })
        .collect();
    frames.sort_by(|a, b| a.0.total_cmp(&b.0));
    frames
}

/// (first presentation, end of the last frame, largest step between consecutive frames).
fn span(frames: &[(f64, f64)]) -> (f64, f64, f64) {
    let first = frames.first().expect("frames").0;
    let end = frames.iter().map(|f| f.0 + f.1).fold(f64::MIN, f64::max);
    let step = frames
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(0.0, f64::max);
    (first, end, step)
}

/// The VOD playlist of `[from, to)` (Unix ms) as (URL, text), checked to be one timeline:
/// one `EXT-X-MAP`, no `EXT-X-DISCONTINUITY`.
async fn playlist(
    api: &Api,
    server: &crate::common::Server,
    camera: &str,
    from: i64,
    to: i64,
) -> (String, String) {
    let url = signed(
        api,
        &format!(
            "/api/v1/recordings/playback/{camera}?from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        ),
    )
    .await;
    let r = server
        .client()
        .get(&url)
        .send()
        .await
        .expect("GET playlist");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("playlist");
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
    assert!(!text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    (url, text)
}

/// The duration a playlist lists and where on its timeline each file after its first
/// begins (seconds from the playlist's start); every media URI must be one of `files`.
fn timeline(text: &str, files: &[&Row]) -> (f64, Vec<f64>) {
    let (mut at, mut extinf) = (0.0, 0.0);
    let mut current: Option<usize> = None;
    let mut boundaries = Vec::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            extinf = d.trim_end_matches(',').parse::<f64>().expect("EXTINF");
        } else if !line.starts_with('#') && !line.is_empty() {
            let file = files
                .iter()
                .position(|f| line.starts_with(&format!("{}.mp4?", f.id)))
                .unwrap_or_else(|| panic!("{line} is none of the files"));
            if current.is_some_and(|c| c != file) {
                boundaries.push(at);
            }
            current = Some(file);
            at += extinf;
        }
    }
    (at, boundaries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vod_range_across_three_files_plays_as_one_timeline() {
    let server = support::start(
        "rec-across",
        vec!["--record-chunk".into(), "10s".into()],
        Vec::new(),
    )
    .await;
    let api = Api::admin(&server).await;
    let (id, rtmp) = recording_camera(&api, "Across").await;
    let _publisher = publish(&server, &rtmp, "across").await;
    let rows = wait_complete(&api, &id, 3, Duration::from_secs(90)).await;
    let files: Vec<&Row> = rows.iter().filter(|r| r.status == "complete").collect();
    let files = &files[..3];
    for (i, r) in files.iter().enumerate() {
        check_file(r).await;
        if i > 0 {
            let hole = (r.start_ms - files[i - 1].end_ms).abs();
            assert!(
                hole as f64 <= FRAME * 1000.0 + 1.0,
                "{hole} ms before file {i}"
            );
        }
    }
    let sum: f64 = files.iter().map(|r| r.duration).sum();

    // The three whole files: from the first one's start to just before the third one's end
    // (the fourth file, still growing, starts at that end).
    let (url, text) = playlist(&api, &server, &id, files[0].start_ms, files[2].end_ms - 50).await;
    let (listed, boundaries) = timeline(&text, files);
    assert_eq!(boundaries.len(), 2, "{text}");
    assert!(
        (listed - sum).abs() < 0.01,
        "{listed}s listed, files {sum}s"
    );

    // ffmpeg: nothing printed, nothing discarded at the boundaries.
    decode_clean(&url).await;
    let packets = support::video_packets(&url).await;
    let video = decoded(&url, "v:0").await;
    let (first, end, step) = span(&video);
    let duration = end - first;
    println!(
        "VOD over 3 files ({:.3} + {:.3} + {:.3} = {sum:.3} s): {} video packets, {} frames \
         decoded, {duration:.3} s from the first frame to the end of the last, largest step \
         {:.1} ms",
        files[0].duration,
        files[1].duration,
        files[2].duration,
        packets.len(),
        video.len(),
        step * 1000.0
    );
    assert_eq!(video.len(), packets.len(), "every packet read decodes");
    assert!(
        (duration - sum).abs() <= FRAME + 1e-3,
        "decoded {duration} s, files {sum} s"
    );
    assert!(
        (video.len() as f64 - sum / FRAME).abs() <= 1.0,
        "{} frames for {sum} s",
        video.len()
    );
    assert!(step <= 1.5 * FRAME, "a {step} s hole between frames");
    let audio = decoded(&url, "a:0").await;
    let (a_first, a_end, a_step) = span(&audio);
    println!(
        "audio: {} frames, {:.3} s, largest step {:.1} ms",
        audio.len(),
        a_end - a_first,
        a_step * 1000.0
    );
    assert!(a_step <= 1.5 * AAC_FRAME, "a {a_step} s hole in the audio");
    assert!(
        ((a_end - a_first) - sum).abs() <= 0.1,
        "audio {} s vs {sum} s",
        a_end - a_first
    );

    // An export from 4 s before the end of the first file to 4 s into the second: one MP4
    // (one init, fragments of both files) that decodes cleanly and lasts the range, within
    // a fragment at each end.
    let (from, to) = (files[0].end_ms - 4000, files[1].start_ms + 4000);
    let export = signed(
        &api,
        &format!(
            "/api/v1/recordings/export/{id}?from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        ),
    )
    .await;
    let r = server
        .client()
        .get(&export)
        .send()
        .await
        .expect("GET export");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("x-camstream-export-end").is_none());
    let bytes = r.bytes().await.expect("export body");
    assert_eq!(&bytes[4..8], b"ftyp", "an MP4 file");
    let mp4 = server.dir.join("export.mp4");
    std::fs::write(&mp4, &bytes).expect("write export");
    let mp4 = mp4.to_string_lossy().into_owned();
    decode_clean(&mp4).await;
    let video = decoded(&mp4, "v:0").await;
    let (first, end, step) = span(&video);
    let want = (to - from) as f64 / 1000.0;
    println!(
        "export over a file boundary: {} bytes, {} video frames, {:.3} s (range {want:.3} s), \
         largest step {:.1} ms",
        bytes.len(),
        video.len(),
        end - first,
        step * 1000.0
    );
    assert!(
        ((end - first) - want).abs() <= 1.5,
        "exported {} s of a {want} s range",
        end - first
    );
    assert!(step <= 1.5 * FRAME, "a {step} s hole in the export");
    // The signature covers the range: widened, it is refused.
    let widened = export.replace(&format!("to={to}"), &format!("to={}", to + 60_000));
    let r = server.client().get(&widened).send().await.expect("GET");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // hls.js in Chromium from 8 s into the second file (which continues its session: its
    // first decode time is 10 s) across the boundary to the third.
    let (url, text) = playlist(
        &api,
        &server,
        &id,
        files[1].start_ms + 8000,
        files[2].end_ms - 50,
    )
    .await;
    let (_, boundaries) = timeline(&text, files);
    assert_eq!(boundaries.len(), 1, "{text}");
    let want = boundaries[0] + 5.0;
    let dir = runner().await;
    let mut run = Command::new("node");
    run.arg(dir.join("play.mjs"))
        .args([url.as_str(), &want.to_string(), "60"])
        .current_dir(&dir);
    let out = run_bounded(run, Duration::from_secs(90), "the hls.js runner").await;
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
    assert_eq!(r["ok"], true, "playback did not reach {want}s: {pretty}");
    let waiting = r["state"]["waiting"].as_array().map_or(0, Vec::len);
    let stalled = r["state"]["stalled"].as_array().map_or(0, Vec::len);
    let stall_errors = r["errors"].as_array().map_or(0, |e| {
        e.iter()
            .filter(|e| e["details"] == "bufferStalledError")
            .count()
    });
    let ranges = r["ranges"].as_array().cloned().unwrap_or_default();
    let samples = r["samples"].as_array().cloned().unwrap_or_default();
    let times: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s["t"].as_f64()?, s["currentTime"].as_f64()?)))
        .collect();
    let advanced = r["advanced"].as_f64().unwrap_or_default();
    let wall = r["wall"].as_f64().unwrap_or_default();
    println!(
        "hls.js: played {advanced:.2} s in {wall:.2} s across the boundary at {:.3} s; \
         waiting {waiting}, stalled {stalled}, bufferStalledError {stall_errors}; \
         buffered {ranges:?}",
        boundaries[0]
    );
    // Playback went through the boundary...
    let last = times.last().map_or(0.0, |t| t.1);
    assert!(last > boundaries[0] + 1.0, "stopped at {last}: {pretty}");
    // ...without waiting for data, with everything buffered as one range (a hole at a
    // boundary would be a second range)...
    assert_eq!(
        (waiting, stalled, stall_errors),
        (0, 0, 0),
        "playback waited: {pretty}"
    );
    assert_eq!(ranges.len(), 1, "buffered {ranges:?}: {pretty}");
    // ...and currentTime kept moving: over every two sampling intervals (~0.5 s).
    for w in times.windows(3) {
        assert!(
            w[2].1 > w[0].1,
            "no progress from {:?} to {:?}: {pretty}",
            w[0],
            w[2]
        );
    }
    server.assert_healthy().await;
}
