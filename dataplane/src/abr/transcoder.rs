//! One camera's transcoder: an ffmpeg process fed the camera's frames as FLV on stdin,
//! publishing each rendition back to this node over loopback RTMP. Restarted with backoff
//! when it dies while the camera is live; ended with the camera or when ABR is turned off.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use camstream_protocol::VideoConfig;
use camstream_protocol::relay::{EndReason, Message};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::flv::FlvOut;
use super::{Abr, Rendition};
use crate::hls::segmenter::Anchor;
use crate::registry::Stream;

/// Restart delays after a transcoder died, doubling from the first to the last; a run that
/// lasted [`HEALTHY`] starts over from the first.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const HEALTHY: Duration = Duration::from_secs(60);
/// ffmpeg's last lines of stderr kept for the log when it dies.
const STDERR_LINES: usize = 20;
/// How often the process's CPU is sampled into `camstream_abr_cpu_ratio`.
const CPU_EVERY: Duration = Duration::from_secs(5);

pub(super) struct Job {
    pub(super) abr: Arc<Abr>,
    pub(super) stream: Arc<Stream>,
    pub(super) stop: CancellationToken,
}

/// Why one ffmpeg run ended.
enum RunEnd {
    /// Stop asked, or the camera's playlists ended: no restart.
    Done,
    /// ffmpeg exited or its stdin broke: restart after the backoff.
    Died(String),
}

impl Job {
    pub(super) async fn run(self) {
        let camera = self.stream.camera_id().clone();
        let _done = self.stop.clone().drop_guard();
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = Instant::now();
            match self.once().await {
                RunEnd::Done => break,
                RunEnd::Died(why) => {
                    metrics::counter!("camstream_abr_restarts_total", "camera_id" => camera.to_string())
                        .increment(1);
                    if started.elapsed() >= HEALTHY {
                        backoff = BACKOFF_MIN;
                    }
                    warn!(camera_id = %camera, retry_in = ?backoff, "transcoder ended: {why}");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        metrics::gauge!("camstream_abr_cpu_ratio", "camera_id" => camera.to_string()).set(0.0);
        info!(camera_id = %camera, "transcoder stopped");
    }

    /// One ffmpeg process, from the camera's next segment start until it ends.
    async fn once(&self) -> RunEnd {
        let camera = self.stream.camera_id().clone();
        // The join point: the segment in progress (answered after the camera's next frame).
        let feed = tokio::select! {
            f = self.stream.subscribe_relay() => match f {
                Ok(f) => f,
                Err(_) => return RunEnd::Done,
            },
            () = self.stop.cancelled() => return RunEnd::Done,
        };
        let source_height = feed.gop.iter().find_map(|m| match m {
            Message::Init(i) => match &i.video {
                Some(VideoConfig::H264(c)) => Some(c.height),
                _ => None,
            },
            _ => None,
        });
        let Some(source_height) = source_height else {
            return RunEnd::Died("the camera has no H.264 video to transcode".into());
        };
        let ladder: Vec<Rendition> = self
            .abr
            .config
            .ladder
            .iter()
            .filter(|r| r.height < source_height)
            .cloned()
            .collect();
        if ladder.is_empty() {
            info!(camera_id = %camera, source_height, "no rendition below the source's height; nothing to transcode");
            self.stop.cancelled().await;
            return RunEnd::Done;
        }
        // The renditions start where this feed does: at the camera's segment `init.msn`.
        if let Some(anchor) = anchor_of(&feed.gop) {
            for r in &ladder {
                let id = format!("{camera}{}{}", super::RENDITION_SEPARATOR, r.name);
                self.abr.registry.anchor_rendition(id.into(), anchor);
            }
        }
        let args = ffmpeg_args(
            &ladder,
            &self.abr.config.preset,
            &camera,
            self.abr.rtmp,
            &self.abr.secret,
        );
        let mut child = match Command::new(&self.abr.config.ffmpeg)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return RunEnd::Died(format!(
                    "cannot start {}: {e}",
                    self.abr.config.ffmpeg.display()
                ));
            }
        };
        info!(
            camera_id = %camera,
            pid = child.id(),
            renditions = ?ladder.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            "transcoder started"
        );
        let tail = Arc::new(std::sync::Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let tail = tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut t = tail.lock().expect("tail poisoned");
                    if t.len() == STDERR_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        let end = self.pump(&mut child, feed).await;
        let _ = child.start_kill();
        let status = child.wait().await;
        match end {
            RunEnd::Done => RunEnd::Done,
            RunEnd::Died(why) => {
                let t = tail.lock().expect("tail poisoned");
                let last: Vec<&str> = t.iter().map(String::as_str).collect();
                let status = match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                };
                RunEnd::Died(format!(
                    "{why} ({status}); ffmpeg said: {}",
                    last.join(" | ")
                ))
            }
        }
    }

    /// Writes the feed to ffmpeg's stdin until something ends.
    async fn pump(&self, child: &mut Child, feed: crate::registry::RelayFeed) -> RunEnd {
        let camera = self.stream.camera_id().to_string();
        let Some(mut stdin) = child.stdin.take() else {
            return RunEnd::Died("no stdin".into());
        };
        let pid = child.id();
        let mut cpu = CpuSampler::new(pid);
        let mut flv = FlvOut::default();
        let mut buf = BytesMut::with_capacity(64 << 10);
        buf.extend_from_slice(&FlvOut::header());
        let mut live = feed.live;
        let mut pending: VecDeque<Message> = feed.gop.into();
        let mut cpu_tick = tokio::time::interval(CPU_EVERY);
        loop {
            for msg in pending.drain(..) {
                match msg {
                    Message::Init(i) => flv.configs(i.video.as_ref(), i.audio.as_ref(), &mut buf),
                    Message::Frame(f) => {
                        flv.frame(&f.frame, &mut buf);
                    }
                    Message::End(e) if e.reason == EndReason::Finished => return RunEnd::Done,
                    _ => {}
                }
            }
            if !buf.is_empty() {
                let write = stdin.write_all(&buf);
                tokio::select! {
                    r = write => if let Err(e) = r {
                        return RunEnd::Died(format!("writing to ffmpeg: {e}"));
                    },
                    () = self.stop.cancelled() => return RunEnd::Done,
                }
                buf.clear();
            }
            tokio::select! {
                m = live.recv() => match m {
                    Ok(m) => pending.push_back(m),
                    Err(RecvError::Lagged(n)) => {
                        // ffmpeg could not keep up: it gets a gap, not a growing queue.
                        warn!(camera_id = %camera, missed = n, "transcoder fell behind the camera");
                        metrics::counter!("camstream_abr_lagged_total").increment(1);
                    }
                    Err(RecvError::Closed) => return RunEnd::Done,
                },
                _ = child.wait() => return RunEnd::Died("ffmpeg exited".into()),
                _ = cpu_tick.tick() => {
                    if let Some(share) = cpu.sample() {
                        metrics::gauge!("camstream_abr_cpu_ratio", "camera_id" => camera.clone()).set(share);
                    }
                }
                () = self.stop.cancelled() => return RunEnd::Done,
            }
        }
    }
}

/// Where a feed starts: its `Init`'s segment numbers and the wall-clock time of its first
/// frame (the keyframe that starts that segment).
fn anchor_of(gop: &[Message]) -> Option<Anchor> {
    let init = gop.iter().find_map(|m| match m {
        Message::Init(i) => Some(i),
        _ => None,
    })?;
    let first = gop.iter().find_map(|m| match m {
        Message::Frame(f) => Some(f.frame.dts),
        _ => None,
    })?;
    let t = &init.timing;
    let wall_us = t.wall_origin_us + (first - t.out_origin) * 1_000 / 90;
    let wall = if wall_us >= 0 {
        std::time::SystemTime::UNIX_EPOCH + Duration::from_micros(wall_us as u64)
    } else {
        std::time::SystemTime::UNIX_EPOCH
    };
    Some(Anchor {
        msn: init.msn,
        ts_msn: init.ts_msn,
        wall,
    })
}

/// The ffmpeg command line: FLV from stdin, one scaled H.264 output per rendition (no
/// B-frames, keyframes where the source has them so segments can line up), audio copied,
/// each published as FLV to `rtmp://127.0.0.1:PORT/live/{camera}~{name}?token=SECRET`.
pub(super) fn ffmpeg_args(
    ladder: &[Rendition],
    preset: &str,
    camera: &str,
    rtmp: std::net::SocketAddr,
    secret: &str,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-fflags",
        "+nobuffer",
        "-f",
        "flv",
        "-i",
        "pipe:0",
    ]
    .map(String::from)
    .to_vec();
    let n = ladder.len();
    let split: String = (0..n).map(|i| format!("[s{i}]")).collect();
    let mut graph = format!("[0:v]split={n}{split}");
    for (i, r) in ladder.iter().enumerate() {
        graph.push_str(&format!(";[s{i}]scale=-2:{}[v{i}]", r.height));
    }
    a.extend(["-filter_complex".into(), graph]);
    for (i, r) in ladder.iter().enumerate() {
        let k = r.video_kbps;
        a.extend([
            "-map".to_owned(),
            format!("[v{i}]"),
            "-map".into(),
            "0:a?".into(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            preset.into(),
            "-tune".into(),
            "zerolatency".into(),
            "-bf".into(),
            "0".into(),
            "-sc_threshold".into(),
            "0".into(),
            "-force_key_frames".into(),
            "source".into(),
            "-b:v".into(),
            format!("{k}k"),
            "-maxrate".into(),
            format!("{k}k"),
            "-bufsize".into(),
            format!("{}k", k * 2),
            "-c:a".into(),
            "copy".into(),
            "-f".into(),
            "flv".into(),
            format!(
                "rtmp://127.0.0.1:{}/live/{camera}{}{}?token={secret}",
                rtmp.port(),
                super::RENDITION_SEPARATOR,
                r.name
            ),
        ]);
    }
    a
}

/// A process's CPU use between samples, from `/proc/PID/stat`, as a share of one core.
struct CpuSampler {
    path: Option<String>,
    last: Option<(Instant, u64)>,
}

impl CpuSampler {
    fn new(pid: Option<u32>) -> Self {
        Self {
            path: pid.map(|p| format!("/proc/{p}/stat")),
            last: None,
        }
    }

    fn sample(&mut self) -> Option<f64> {
        let stat = std::fs::read_to_string(self.path.as_ref()?).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let mut f = rest.split_whitespace().skip(11);
        let ticks: u64 = f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?;
        let now = Instant::now();
        let share = self.last.map(|(at, before)| {
            let secs = now.duration_since(at).as_secs_f64().max(1e-3);
            ticks.saturating_sub(before) as f64 / 100.0 / secs
        });
        self.last = Some((now, ticks));
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_output_per_rendition_with_the_secret_in_its_url() {
        let ladder = super::super::Rendition::parse_ladder("480p:1000k,240p:400k").unwrap();
        let a = ffmpeg_args(
            &ladder,
            "veryfast",
            "cam1",
            "0.0.0.0:1935".parse().unwrap(),
            "k3y",
        );
        let graph = &a[a.iter().position(|x| x == "-filter_complex").unwrap() + 1];
        assert_eq!(
            graph,
            "[0:v]split=2[s0][s1];[s0]scale=-2:480[v0];[s1]scale=-2:240[v1]"
        );
        let urls: Vec<_> = a.iter().filter(|x| x.starts_with("rtmp://")).collect();
        assert_eq!(
            urls,
            [
                "rtmp://127.0.0.1:1935/live/cam1~480p?token=k3y",
                "rtmp://127.0.0.1:1935/live/cam1~240p?token=k3y"
            ]
        );
        assert_eq!(
            a.iter().filter(|x| *x == "source").count(),
            2,
            "keyframes follow the source"
        );
        assert!(a.windows(2).any(|w| w[0] == "-b:v" && w[1] == "400k"));
    }
}
