//! The test clip: generated once with ffmpeg (or given as an FLV file), read once into
//! memory and shared by every publisher.
//!
//! Owns the FLV file reader (Adobe FLV spec v10.1, annex E: file header, tags, previous tag
//! sizes) and the clip facts the report quotes (resolution, frame rate, bitrates, GOP).
//! Pacing and timestamp rewriting are `pacing`'s; the codec records are parsed by
//! `camstream_protocol`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use camstream_protocol::{AacConfig, AvcConfig};
use serde::{Deserialize, Serialize};

/// FLV tag types (FLV spec E.4.1).
const TAG_AUDIO: u8 = 8;
const TAG_VIDEO: u8 = 9;
/// A tag larger than this is not a camera frame: refuse the file rather than hold it.
const MAX_TAG_BYTES: usize = 16 << 20;

/// How to make the clip with ffmpeg (`[clip]` in a scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ClipSpec {
    /// Use this FLV file instead of generating one.
    pub(crate) path: Option<PathBuf>,
    /// Clip length in seconds; the publishers loop it. Default 10.
    pub(crate) seconds: u32,
    /// Default 1280.
    pub(crate) width: u32,
    /// Default 720.
    pub(crate) height: u32,
    /// Default 30.
    pub(crate) fps: u32,
    /// Target video bitrate, kbit/s. Default 2000 (with audio ~2.2 Mbit/s, the nginx-rtmp
    /// baseline's clip).
    pub(crate) video_kbps: u32,
    /// AAC bitrate, kbit/s. Default 128.
    pub(crate) audio_kbps: u32,
    /// Keyframe interval, seconds. Default 2.
    pub(crate) gop_seconds: u32,
    /// Consecutive B-frames. Default 2.
    pub(crate) bframes: u32,
}

impl Default for ClipSpec {
    fn default() -> Self {
        Self {
            path: None,
            seconds: 10,
            width: 1280,
            height: 720,
            fps: 30,
            video_kbps: 2000,
            audio_kbps: 128,
            gop_seconds: 2,
            bframes: 2,
        }
    }
}

/// Which track a tag feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagKind {
    Audio,
    Video,
}

/// One media tag of the clip: its FLV body as RTMP carries it.
#[derive(Debug, Clone)]
pub(crate) struct ClipTag {
    pub(crate) kind: TagKind,
    /// Milliseconds from the clip's first media tag (FLV timestamps are DTS).
    pub(crate) ts_ms: u32,
    pub(crate) body: Bytes,
    pub(crate) keyframe: bool,
}

/// Facts about the clip, quoted in every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClipInfo {
    pub(crate) source: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps: f64,
    pub(crate) duration_s: f64,
    pub(crate) video_kbps: f64,
    pub(crate) audio_kbps: f64,
    pub(crate) gop_s: f64,
    pub(crate) bframes: bool,
    pub(crate) audio_sample_rate: u32,
    pub(crate) video_frames: u64,
}

/// The clip in memory, ready to be looped.
#[derive(Debug)]
pub(crate) struct Clip {
    /// AVC sequence header tag body (sent once per connection).
    pub(crate) video_header: Bytes,
    /// AAC sequence header tag body, when the clip has audio.
    pub(crate) audio_header: Option<Bytes>,
    /// Media tags in file order, timestamps below `loop_ms`.
    pub(crate) tags: Vec<ClipTag>,
    /// Length of one loop: the next loop's first tag is due this long after this one's.
    pub(crate) loop_ms: u32,
    /// Bytes in each NAL unit length prefix (from the AVC record).
    pub(crate) nal_length_size: u8,
    pub(crate) info: ClipInfo,
}

/// A tag as it sits in the file.
struct RawTag {
    kind: u8,
    ts_ms: u32,
    body: Bytes,
}

/// Splits an FLV file into its tags.
fn read_tags(file: &Bytes) -> anyhow::Result<Vec<RawTag>> {
    ensure!(
        file.len() >= 13 && &file[..3] == b"FLV",
        "not an FLV file (no FLV signature)"
    );
    let header_len = u32::from_be_bytes([file[5], file[6], file[7], file[8]]) as usize;
    ensure!(header_len >= 9, "FLV header size {header_len} is below 9");
    // The header is followed by PreviousTagSize0.
    let mut pos = header_len + 4;
    let mut tags = Vec::new();
    while pos + 11 <= file.len() {
        let h = &file[pos..pos + 11];
        let kind = h[0] & 0x1f;
        let size = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        let ts_ms =
            u32::from(h[7]) << 24 | u32::from(h[4]) << 16 | u32::from(h[5]) << 8 | u32::from(h[6]);
        ensure!(
            size <= MAX_TAG_BYTES,
            "FLV tag at {pos} claims {size} bytes"
        );
        let start = pos + 11;
        let end = start + size;
        if end > file.len() {
            // A truncated last tag (an interrupted recording) is dropped, not fatal.
            break;
        }
        tags.push(RawTag {
            kind,
            ts_ms,
            body: file.slice(start..end),
        });
        pos = end + 4;
    }
    Ok(tags)
}

impl Clip {
    /// Reads an FLV file holding H.264 video (and optionally AAC audio).
    ///
    /// # Errors
    /// When the file cannot be read, is not FLV, or has no AVC sequence header or frames.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let file =
            std::fs::read(path).with_context(|| format!("reading clip {}", path.display()))?;
        Self::parse(Bytes::from(file), &path.display().to_string())
    }

    /// Builds a clip from the bytes of an FLV file.
    pub(crate) fn parse(file: Bytes, source: &str) -> anyhow::Result<Self> {
        let raw = read_tags(&file)?;
        let mut video_header = None;
        let mut audio_header = None;
        let mut media = Vec::new();
        for tag in raw {
            match tag.kind {
                TAG_VIDEO if tag.body.len() >= 5 => {
                    ensure!(
                        tag.body[0] & 0x0f == 7,
                        "clip video codec id {} is not AVC (7)",
                        tag.body[0] & 0x0f
                    );
                    match tag.body[1] {
                        0 => video_header = video_header.or(Some(tag.body.clone())),
                        1 => media.push((TagKind::Video, tag)),
                        _ => {}
                    }
                }
                TAG_AUDIO if tag.body.len() >= 2 => {
                    ensure!(
                        tag.body[0] >> 4 == 10,
                        "clip audio format {} is not AAC (10)",
                        tag.body[0] >> 4
                    );
                    match tag.body[1] {
                        0 => audio_header = audio_header.or(Some(tag.body.clone())),
                        _ => media.push((TagKind::Audio, tag)),
                    }
                }
                _ => {}
            }
        }
        let video_header = video_header.context("clip has no AVC sequence header")?;
        let avc = AvcConfig::parse(video_header.slice(5..)).context("clip AVC record")?;
        let aac = match &audio_header {
            Some(h) => Some(AacConfig::parse(h.slice(2..)).context("clip AAC config")?),
            None => None,
        };
        let first_ts = media
            .first()
            .map(|(_, t)| t.ts_ms)
            .context("clip has no frames")?;
        let video_ts: Vec<u32> = media
            .iter()
            .filter(|(k, _)| *k == TagKind::Video)
            .map(|(_, t)| t.ts_ms.saturating_sub(first_ts))
            .collect();
        ensure!(video_ts.len() >= 2, "clip has fewer than two video frames");
        let frame_ms = median_step(&video_ts).max(1);
        let last_video = video_ts.iter().copied().max().unwrap_or(0);
        let loop_ms = last_video + frame_ms;

        let mut tags = Vec::with_capacity(media.len());
        let (mut video_bytes, mut audio_bytes) = (0u64, 0u64);
        let mut keyframes = Vec::new();
        let mut bframes = false;
        for (kind, tag) in media {
            let ts_ms = tag.ts_ms.saturating_sub(first_ts);
            // Audio past the video's end would overlap the next loop's first frames.
            if ts_ms >= loop_ms {
                continue;
            }
            let keyframe = match kind {
                TagKind::Video => {
                    let cts = i32::from_be_bytes([0, tag.body[2], tag.body[3], tag.body[4]]);
                    bframes |= cts != 0;
                    video_bytes += tag.body.len() as u64;
                    tag.body[0] >> 4 == 1
                }
                TagKind::Audio => {
                    audio_bytes += tag.body.len() as u64;
                    true
                }
            };
            if kind == TagKind::Video && keyframe {
                keyframes.push(ts_ms);
            }
            tags.push(ClipTag {
                kind,
                ts_ms,
                body: tag.body,
                keyframe,
            });
        }
        ensure!(
            tags.iter()
                .find(|t| t.kind == TagKind::Video)
                .is_some_and(|t| t.keyframe),
            "clip does not start with a keyframe, so its loops would not decode"
        );
        let duration_s = f64::from(loop_ms) / 1000.0;
        let gop_s = if keyframes.len() >= 2 {
            f64::from(keyframes[keyframes.len() - 1] - keyframes[0])
                / (keyframes.len() - 1) as f64
                / 1000.0
        } else {
            duration_s
        };
        let info = ClipInfo {
            source: source.to_owned(),
            width: avc.width,
            height: avc.height,
            fps: 1000.0 / f64::from(frame_ms),
            duration_s,
            video_kbps: video_bytes as f64 * 8.0 / duration_s / 1000.0,
            audio_kbps: audio_bytes as f64 * 8.0 / duration_s / 1000.0,
            gop_s,
            bframes,
            audio_sample_rate: aac.as_ref().map_or(0, |a| a.sample_rate),
            video_frames: video_ts.len() as u64,
        };
        Ok(Self {
            video_header,
            audio_header,
            tags,
            loop_ms,
            nal_length_size: avc.nal_length_size,
            info,
        })
    }

    /// Loads the clip a scenario names, generating it with ffmpeg when needed.
    pub(crate) fn for_spec(spec: &ClipSpec, cache_dir: &Path) -> anyhow::Result<Arc<Self>> {
        let path = match &spec.path {
            Some(p) => p.clone(),
            None => generate(spec, cache_dir)?,
        };
        Ok(Arc::new(Self::load(&path)?))
    }
}

/// The most common difference between consecutive timestamps (the frame interval).
fn median_step(ts: &[u32]) -> u32 {
    let mut steps: Vec<u32> = ts.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    steps.sort_unstable();
    steps.get(steps.len() / 2).copied().unwrap_or(0)
}

/// Generates the clip with ffmpeg into `cache_dir` (once per set of parameters).
///
/// testsrc2 + a sine tone, H.264 high profile with B-frames, a keyframe every `gop_seconds`
/// (scene-cut detection off so the GOP is fixed), AAC 48 kHz stereo.
pub(crate) fn generate(spec: &ClipSpec, cache_dir: &Path) -> anyhow::Result<PathBuf> {
    let name = format!(
        "clip-{}x{}p{}-{}s-v{}k-a{}k-g{}-b{}.flv",
        spec.width,
        spec.height,
        spec.fps,
        spec.seconds,
        spec.video_kbps,
        spec.audio_kbps,
        spec.gop_seconds,
        spec.bframes
    );
    let path = cache_dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    // Parallel runs may generate the same clip: write aside, then rename atomically.
    let tmp = cache_dir.join(format!(".clip-{}.flv", std::process::id()));
    let gop = spec.fps * spec.gop_seconds;
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!(
            "testsrc2=size={}x{}:rate={}",
            spec.width, spec.height, spec.fps
        ))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &spec.seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-bf",
            &spec.bframes.to_string(),
            "-g",
            &gop.to_string(),
            "-keyint_min",
            &gop.to_string(),
        ])
        .args(["-sc_threshold", "0"])
        .args([
            "-b:v",
            &format!("{}k", spec.video_kbps),
            "-maxrate",
            &format!("{}k", spec.video_kbps),
        ])
        .args(["-bufsize", &format!("{}k", spec.video_kbps * 2)])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            &format!("{}k", spec.audio_kbps),
            "-ac",
            "2",
            "-ar",
            "48000",
        ])
        .args(["-f", "flv"])
        .arg(&tmp)
        .output()
        .context(
            "running ffmpeg to generate the clip (is ffmpeg installed? apt-get install -y ffmpeg)",
        )?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "ffmpeg failed to generate the clip: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming clip to {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 4 s clip at reduced size, generated once per test process.
    pub(crate) fn small_clip() -> Arc<Clip> {
        static CLIP: std::sync::OnceLock<Arc<Clip>> = std::sync::OnceLock::new();
        CLIP.get_or_init(|| {
            let spec = ClipSpec {
                seconds: 4,
                width: 320,
                height: 240,
                video_kbps: 300,
                audio_kbps: 64,
                ..ClipSpec::default()
            };
            let dir = std::env::temp_dir().join("camstream-bench-test");
            Clip::for_spec(&spec, &dir).expect("ffmpeg generates the test clip")
        })
        .clone()
    }

    #[test]
    fn generated_clip_has_the_requested_shape() {
        let clip = small_clip();
        let i = &clip.info;
        assert_eq!((i.width, i.height), (320, 240));
        assert!((i.fps - 30.3).abs() < 1.0, "fps {}", i.fps);
        assert!(
            (i.duration_s - 4.0).abs() < 0.1,
            "duration {}",
            i.duration_s
        );
        assert!((i.gop_s - 2.0).abs() < 0.1, "gop {}", i.gop_s);
        assert!(i.bframes, "x264 with -bf 2 writes composition offsets");
        assert_eq!(i.audio_sample_rate, 48_000);
        assert!(i.video_kbps > 50.0 && i.audio_kbps > 20.0, "{i:?}");
        assert_eq!(clip.nal_length_size, 4);
        assert!(clip.tags[0].keyframe);
        assert!(clip.tags.iter().all(|t| t.ts_ms < clip.loop_ms));
    }

    fn flv(tags: &[(u8, u32, &[u8])]) -> Bytes {
        let mut f = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for (kind, ts, body) in tags {
            let n = body.len();
            f.extend_from_slice(&[*kind, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
            f.extend_from_slice(&[
                (ts >> 16) as u8,
                (ts >> 8) as u8,
                *ts as u8,
                (ts >> 24) as u8,
            ]);
            f.extend_from_slice(&[0, 0, 0]);
            f.extend_from_slice(body);
            f.extend_from_slice(&((n + 11) as u32).to_be_bytes());
        }
        Bytes::from(f)
    }

    #[test]
    fn reads_tags_with_extended_timestamps_and_drops_a_truncated_tail() {
        let mut file = flv(&[(9, 0x0100_0002, b"abc"), (8, 7, b"xy")]).to_vec();
        file.extend_from_slice(&[9, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        let tags = read_tags(&Bytes::from(file)).expect("valid prefix");
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].ts_ms, 0x0100_0002);
        assert_eq!(&tags[0].body[..], b"abc");
        assert_eq!((tags[1].kind, &tags[1].body[..]), (8, &b"xy"[..]));
    }

    #[test]
    fn refuses_non_flv_and_non_avc() {
        assert!(read_tags(&Bytes::from_static(b"GIF89a.............")).is_err());
        let hevc = flv(&[(9, 0, &[0x1c, 0, 0, 0, 0, 1])]);
        let err = Clip::parse(hevc, "t").expect_err("codec 12 is refused");
        assert!(format!("{err:#}").contains("not AVC"), "{err:#}");
    }
}
