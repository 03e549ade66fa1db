//! What the recording tests share: a server with the control plane in charge, a short
//! clip with a keyframe every second, cameras that record, the recordings API as typed
//! rows, and checks of a recording file against its row (ffprobe, ffmpeg decode).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::api::{ADMIN_PASSWORD, Api};
use crate::common::ffmpeg::Ffmpeg;
use crate::common::hls::LlPlaylist;
use crate::common::{Server, ServerOptions, eventually, testdata};

/// Seconds of the clip.
pub(crate) const CLIP_S: u32 = 160;

/// One video frame of the clip (30 fps), the tolerance for durations.
pub(crate) const FRAME: f64 = 1.0 / 30.0;

/// The recording clip: 640x360@30 H.264 (high, B-frames, keyframe every 1 s) + AAC 48 kHz
/// stereo, [`CLIP_S`] seconds, about 1 Mbit/s; generated once into `target/testdata/e2e`.
/// Long enough for every test to publish it once: a looped clip (`-stream_loop`) has
/// timestamp irregularities at each loop join that ffmpeg's muxers complain about.
pub(crate) async fn clip() -> &'static Path {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    tokio::task::spawn_blocking(|| {
        CLIP.get_or_init(|| {
            let path = testdata().join("rec-clip-v2.flv");
            if path.exists() {
                return path;
            }
            let tmp = testdata().join(format!("rec-clip.{}.tmp.flv", std::process::id()));
            let out = std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                .args(["-t", &CLIP_S.to_string()])
                .args(["-c:v", "libx264", "-profile:v", "high"])
                .args(["-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "2"])
                .args(["-g", "30", "-keyint_min", "30", "-sc_threshold", "0"])
                .args(["-b:v", "1000k", "-c:a", "aac", "-b:a", "96k"])
                .args(["-ar", "48000", "-ac", "2", "-f", "flv"])
                .arg(&tmp)
                .output()
                .expect("run ffmpeg (is it installed?)");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "ffmpeg could not make the recording clip: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::rename(&tmp, &path).expect("rename clip");
            path
        })
        .as_path()
    })
    .await
    .expect("clip generation panicked")
}

/// Starts a server with the control plane in charge, recordings in `{scratch}/hot`
/// unless `extra` names `--recordings-dir`, and the given flags.
pub(crate) async fn start(name: &str, extra: Vec<String>, env: Vec<(String, String)>) -> Server {
    let mut args: Vec<String> = [
        "--admin-password",
        ADMIN_PASSWORD,
        "--public-host",
        "127.0.0.1",
        "--record-fsync",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    if !extra.iter().any(|a| a == "--record-min-free") {
        args.extend(["--record-min-free".into(), "1M".into()]);
    }
    args.extend(extra);
    Server::start_with(
        name,
        ServerOptions {
            allow_any_key: false,
            args: vec!["--reconnect-window", "2s"],
            env,
            ..ServerOptions::default()
        },
        args,
    )
    .await
}

/// Creates a camera with `isRecording` on; returns (id, rtmpUrl).
pub(crate) async fn recording_camera(api: &Api, name: &str) -> (String, String) {
    let cam = api
        .ok(
            Method::POST,
            "/api/v1/cameras",
            Some(json!({ "name": name, "serialNumber": format!("REC-{name}"), "location": "e2e", "isRecording": true })),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(cam["isRecording"], true, "{cam}");
    (
        cam["id"].as_str().expect("id").to_owned(),
        cam["rtmpUrl"].as_str().expect("rtmpUrl").to_owned(),
    )
}

/// Publishes the clip once, in real time, to `url`.
pub(crate) async fn publish(server: &Server, url: &str, tag: &str) -> Ffmpeg {
    Ffmpeg::publish(
        clip().await,
        url,
        server.dir.join(format!("publish-{tag}.stderr")),
    )
}

/// A `recordings` row as the API returns it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) path: PathBuf,
    pub(crate) duration: f64,
    pub(crate) size: u64,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) status: String,
    pub(crate) tier: String,
    pub(crate) json: Value,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix ms of an RFC 3339 UTC time as the API writes it (`2026-11-30T08:53:55.723Z`,
/// fraction optional and possibly shorter).
pub(crate) fn ms(t: &str) -> i64 {
    fn bad<T>(t: &str) -> T {
        panic!("not an RFC 3339 UTC time: {t}")
    }
    let orig = t;
    let t = t.strip_suffix('Z').unwrap_or_else(|| bad(orig));
    let (date, time) = t.split_once('T').unwrap_or_else(|| bad(orig));
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| bad(orig));
    let d: Vec<i64> = date.split('-').map(num).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let h: Vec<i64> = hms.split(':').map(num).collect();
    let frac_ms = if frac.is_empty() {
        0
    } else {
        num(&format!("{frac:0<3}")[..3])
    };
    (days_from_civil(d[0], d[1], d[2]) * 86_400 + h[0] * 3600 + h[1] * 60 + h[2]) * 1000 + frac_ms
}

/// RFC 3339 (UTC, milliseconds) of Unix ms.
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Unix ms now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

impl Row {
    fn of(v: &Value) -> Row {
        Row {
            id: v["id"].as_str().expect("id").to_owned(),
            path: PathBuf::from(v["filePath"].as_str().expect("filePath")),
            duration: v["duration"].as_f64().expect("duration"),
            size: v["fileSize"].as_u64().expect("fileSize"),
            start_ms: ms(v["startTime"].as_str().expect("startTime")),
            end_ms: ms(v["endTime"].as_str().expect("endTime")),
            status: v["status"].as_str().expect("status").to_owned(),
            tier: v["storageTier"].as_str().expect("storageTier").to_owned(),
            json: v.clone(),
        }
    }
}

/// Every recording of a camera, oldest first.
pub(crate) async fn rows(api: &Api, camera: &str) -> Vec<Row> {
    let r = api
        .call(
            Method::GET,
            &format!("/api/v1/recordings?cameraId={camera}&limit=100"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let mut out: Vec<Row> = r.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(Row::of)
        .collect();
    out.sort_by_key(|r| r.start_ms);
    out
}

/// Waits until the camera has at least `n` complete recordings; returns every row.
pub(crate) async fn wait_complete(
    api: &Api,
    camera: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Row> {
    eventually(
        &format!("{n} complete recordings of {camera}"),
        timeout,
        || async {
            let rows = rows(api, camera).await;
            (rows.iter().filter(|r| r.status == "complete").count() >= n).then_some(rows)
        },
    )
    .await
}

/// Decode times (start, duration) of every video packet of `input` (a file or URL), by
/// ffprobe; any stderr output fails.
pub(crate) async fn video_packets(input: &str) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-hide_banner", "-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "packet=dts_time,duration_time",
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
        "ffprobe {input}: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v = l.trim_end_matches(',').split(',').map(|x| {
                x.parse::<f64>()
                    .unwrap_or_else(|_| panic!("{input}: {l:?}"))
            });
            (v.next().expect("pts"), v.next().expect("duration"))
        })
        .collect()
}

/// `ffprobe` of a file: (its video from the first packet's decode time to the end of the
/// last, ffprobe's `start_time` of the file). Any stderr output fails. (ffprobe's stream
/// `duration` would not do: ffmpeg takes a fragmented track's duration to be its end on the
/// media timeline, which for a file continuing its recording session counts from the
/// session's start. Decode times, as the index's: presentation times of a file cut inside
/// a GOP, after a crash, lack the B-frames that were still to come.)
pub(crate) async fn video_duration(path: &Path) -> (f64, f64) {
    let packets = video_packets(&path.display().to_string()).await;
    assert!(!packets.is_empty(), "no video in {}", path.display());
    let first = packets.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let end = packets
        .iter()
        .map(|p| p.0 + p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let out = Command::new("ffprobe")
        .args(["-hide_banner", "-v", "error"])
        .args(["-show_entries", "format=start_time", "-of", "csv=p=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ffprobe (is it installed?)");
    let start = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no start_time for {}", path.display()));
    (end - first, start)
}

/// Decodes `input` (a file or URL) completely with `ffmpeg -v error -f null`; panics on
/// any error output.
pub(crate) async fn decode_clean(input: &str) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i", input])
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ffmpeg (is it installed?)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg -i {input}: {}\n{stderr}",
        out.status
    );
}

/// Checks a complete row against its file: the size matches, ffprobe reads it without a
/// word, starts at 0 and its video lasts the row's duration within a frame, and it decodes
/// cleanly.
pub(crate) async fn check_file(row: &Row) {
    let meta = std::fs::metadata(&row.path)
        .unwrap_or_else(|e| panic!("{} of row {}: {e}", row.path.display(), row.id));
    assert_eq!(meta.len(), row.size, "size of {}", row.path.display());
    let (d, start) = video_duration(&row.path).await;
    assert!(
        (d - row.duration).abs() <= FRAME + 1e-6,
        "{}: ffprobe says {d}s, the index {}s",
        row.path.display(),
        row.duration
    );
    // Whatever its first decode time, a file alone starts at 0 (its edit list).
    assert!(
        start.abs() < 1e-3,
        "{} starts at {start}s",
        row.path.display()
    );
    decode_clean(&row.path.display().to_string()).await;
}

/// Recording files under a tier directory (`{camera}/{day}/*.mp4`).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A signed URL from the API (`data.url` of a GET).
pub(crate) async fn signed(api: &Api, path: &str) -> String {
    api.ok(Method::GET, path, None, StatusCode::OK).await["url"]
        .as_str()
        .expect("url")
        .to_owned()
}

/// The signed LL-HLS URL of a camera (the server is not in public playback).
pub(crate) async fn ll_url(api: &Api, id: &str) -> String {
    api.playback(id).await["llHlsUrl"]
        .as_str()
        .expect("llHlsUrl")
        .to_owned()
}

/// The LL-HLS playlist at `url`, once it answers 200.
pub(crate) async fn live(client: &reqwest::Client, url: &str) -> Option<LlPlaylist> {
    let r = client.get(url).send().await.ok()?;
    if r.status() != StatusCode::OK {
        return None;
    }
    Some(LlPlaylist::parse(&r.text().await.ok()?))
}

/// Wall-clock end (Unix ms) of the newest media of a live playlist: the last
/// `EXT-X-PROGRAM-DATE-TIME` plus every duration after it.
pub(crate) fn live_edge(p: &LlPlaylist) -> i64 {
    let i = p
        .segments
        .iter()
        .rposition(|s| s.program_date_time.is_some())
        .expect("a segment with EXT-X-PROGRAM-DATE-TIME");
    let start = ms(p.segments[i].program_date_time.as_deref().expect("pdt"));
    let after: f64 = p.segments[i..].iter().map(|s| s.duration).sum::<f64>()
        + p.trailing_parts.iter().map(|x| x.duration).sum::<f64>();
    start + (after * 1000.0).round() as i64
}
