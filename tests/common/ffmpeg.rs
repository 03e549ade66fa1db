//! ffmpeg and ffprobe as real peers: test clips, publishers, readers, probes.
//!
//! A missing ffmpeg or ffprobe fails the test (spawn panics); nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::testdata;

/// The generated clips (FLV, H.264 high with B-frames + AAC 48 kHz, keyframe every 2 s).
pub(crate) struct Clips {
    /// 1280x720@30 video + stereo audio, [`Clips::LONG`] seconds.
    pub(crate) av_long: PathBuf,
    /// The same, [`Clips::SHORT`] seconds.
    pub(crate) av_short: PathBuf,
    /// Video only, [`Clips::SHORT`] seconds.
    pub(crate) video: PathBuf,
    /// Audio only, [`Clips::SHORT`] seconds.
    pub(crate) audio: PathBuf,
}

impl Clips {
    /// Seconds of the long clip: enough for a full 8-segment window and delta updates.
    pub(crate) const LONG: f64 = 24.0;
    /// Seconds of the short clips.
    pub(crate) const SHORT: f64 = 10.0;
}

/// The clips, generated on first use into `target/testdata/e2e` (kept between runs).
pub(crate) async fn clips() -> &'static Clips {
    tokio::task::spawn_blocking(|| {
        static CLIPS: OnceLock<Clips> = OnceLock::new();
        CLIPS.get_or_init(|| {
            let dir = testdata();
            Clips {
                av_long: generate(&dir, "av-long", Clips::LONG, true, true, 2),
                av_short: generate(&dir, "av-short", Clips::SHORT, true, true, 2),
                video: generate(&dir, "video-only", Clips::SHORT, true, false, 2),
                audio: generate(&dir, "audio-only", Clips::SHORT, false, true, 2),
            }
        })
    })
    .await
    .expect("clip generation panicked")
}

/// [`Clips::av_long`] without B-frames (x264 `-bf 0`): a camera WebRTC plays as it is
/// (docs/webrtc.md, "B-frames"). Generated on first use, apart from [`clips`] so suites
/// that do not need it do not pay for it.
pub(crate) async fn av_long_without_bframes() -> &'static Path {
    tokio::task::spawn_blocking(|| {
        static CLIP: OnceLock<PathBuf> = OnceLock::new();
        CLIP.get_or_init(|| {
            generate(
                &testdata(),
                "av-long-no-bframes",
                Clips::LONG,
                true,
                true,
                0,
            )
        })
        .as_path()
    })
    .await
    .expect("clip generation panicked")
}

/// Encodes one clip (`bframes`: x264 `-bf`) unless a previous run left it; written to a
/// temporary name and renamed, so a concurrent or interrupted run never sees half a file.
fn generate(
    dir: &Path,
    name: &str,
    seconds: f64,
    video: bool,
    audio: bool,
    bframes: u8,
) -> PathBuf {
    let path = dir.join(format!("{name}-v1.flv"));
    if path.exists() {
        return path;
    }
    let tmp = dir.join(format!("{name}.{}.tmp.flv", std::process::id()));
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y"]);
    if video {
        cmd.args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"]);
    }
    if audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.args(["-t", &seconds.to_string()]);
    if video {
        cmd.args([
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            bframes.to_string().as_str(),
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-b:v",
            "1500k",
        ]);
    }
    if audio {
        cmd.args(["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]);
    }
    cmd.args(["-f", "flv"]).arg(&tmp);
    let out = cmd.output().expect("run ffmpeg (is it installed?)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg could not make {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).expect("rename clip");
    path
}

/// An ffmpeg child process (publisher or reader), killed on drop.
pub(crate) struct Ffmpeg {
    child: Child,
    stderr: PathBuf,
}

impl Ffmpeg {
    fn spawn(mut cmd: Command, stderr: PathBuf) -> Self {
        let err = std::fs::File::create(&stderr).expect("create ffmpeg stderr file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("spawn ffmpeg (is it installed?)");
        Self { child, stderr }
    }

    /// Publishes `clip` once in real time (`-re`, `-c copy -f flv`) to `url`; ffmpeg's
    /// stderr goes to `stderr`.
    pub(crate) fn publish(clip: &Path, url: &str, stderr: PathBuf) -> Self {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-re", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "flv", url]);
        Self::spawn(cmd, stderr)
    }

    /// Publishes `clip` in a loop, in real time, until dropped: a camera that stays live
    /// longer than the clip (timestamps go on across loops).
    pub(crate) fn publish_looped(clip: &Path, url: &str, stderr: PathBuf) -> Self {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-stream_loop",
            "-1",
            "-re",
            "-i",
        ])
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url]);
        Self::spawn(cmd, stderr)
    }

    /// Reads a (live) playlist from its first segment and writes everything it gets to
    /// `out` with `-c copy`; ends by itself at `EXT-X-ENDLIST`.
    pub(crate) fn read(url: &str, out: &Path, stderr: PathBuf) -> Self {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-live_start_index",
            "0",
            "-i",
            url,
            "-c",
            "copy",
        ])
        .arg(out);
        Self::spawn(cmd, stderr)
    }

    /// Waits for the process to exit (panics after `timeout`).
    pub(crate) async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(s) => s.expect("wait for ffmpeg"),
            Err(_) => panic!(
                "ffmpeg still running after {timeout:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// The exit status if it exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait ffmpeg")
    }

    /// What ffmpeg wrote on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// One stream as ffprobe reports it.
#[derive(Debug, Clone)]
pub(crate) struct ProbedStream {
    pub(crate) codec_type: String,
    pub(crate) codec_name: String,
    pub(crate) width: Option<u64>,
    pub(crate) height: Option<u64>,
    pub(crate) sample_rate: Option<u64>,
}

/// What ffprobe says about an input.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) streams: Vec<ProbedStream>,
    pub(crate) duration: Option<f64>,
}

impl Probe {
    /// The stream of a type (`video`, `audio`), if any.
    pub(crate) fn stream(&self, codec_type: &str) -> Option<&ProbedStream> {
        self.streams.iter().find(|s| s.codec_type == codec_type)
    }
}

/// `ffprobe -v error` of a file or URL; panics on any stderr output or failure.
pub(crate) async fn probe(input: &str) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate:format=duration",
            "-of",
            "json",
            input,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ffprobe (is it installed?)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe {input}: {}\n{stderr}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let num = |x: &serde_json::Value| {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    };
    let streams = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| ProbedStream {
                    codec_type: s["codec_type"].as_str().unwrap_or_default().to_owned(),
                    codec_name: s["codec_name"].as_str().unwrap_or_default().to_owned(),
                    width: num(&s["width"]),
                    height: num(&s["height"]),
                    sample_rate: num(&s["sample_rate"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|s| s.parse().ok());
    Probe { streams, duration }
}

/// `ffmpeg -v error -i input -c copy out`: returns the exit status and stderr.
pub(crate) async fn remux(input: &str, out: &Path) -> (ExitStatus, String) {
    let o = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            input,
            "-c",
            "copy",
        ])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ffmpeg (is it installed?)");
    (o.status, String::from_utf8_lossy(&o.stderr).into_owned())
}

/// One packet of a media file, as ffprobe reports it (90 kHz for MPEG-TS).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packet {
    pub(crate) video: bool,
    pub(crate) dts: i64,
    pub(crate) pts: i64,
    pub(crate) duration: i64,
}

/// The packets of a media file in timebase units (`-show_packets`).
pub(crate) async fn packets(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts,dts,duration:stream=index,codec_type",
            "-of",
            "json",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ffprobe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe {}: {stderr}",
        path.display()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let video_index: Vec<i64> = v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["codec_type"] == "video")
        .filter_map(|s| s["index"].as_i64())
        .collect();
    v["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Packet {
            video: p["stream_index"]
                .as_i64()
                .is_some_and(|i| video_index.contains(&i)),
            dts: p["dts"].as_i64().expect("packet dts"),
            pts: p["pts"].as_i64().expect("packet pts"),
            duration: p["duration"].as_i64().unwrap_or(0),
        })
        .collect()
}
