//! Test support: the FLV file reader and the generated test clip.
//!
//! The clip is made by ffmpeg on first use (never committed): `testsrc2` 1280x720 at 30 fps,
//! H.264 high profile with B-frames and a keyframe every 2 s, AAC-LC 48 kHz stereo from
//! `sine`, 6 seconds, FLV. It is cached under the cargo target directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;

/// FLV tag types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagKind {
    Audio,
    Video,
    Script,
}

/// One FLV tag: type, 32-bit millisecond timestamp, body.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub(crate) kind: TagKind,
    pub(crate) timestamp: u32,
    pub(crate) body: Bytes,
}

/// A parsed clip.
#[derive(Debug)]
pub(crate) struct Clip {
    pub(crate) tags: Vec<Tag>,
    /// Number of video frames (not counting the sequence header).
    pub(crate) video_frames: usize,
}

/// Reads an FLV file's tags.
///
/// # Panics
/// On a malformed file: this is test support.
pub(crate) fn read_tags(data: &[u8]) -> Vec<Tag> {
    crate::bench::read_flv(data)
        .expect("a well-formed FLV file")
        .into_iter()
        .map(|t| Tag {
            kind: match t.kind {
                8 => TagKind::Audio,
                9 => TagKind::Video,
                18 => TagKind::Script,
                k => panic!("unexpected FLV tag type {k}"),
            },
            timestamp: t.timestamp,
            body: t.body,
        })
        .collect()
}

/// Generates (once per build directory) a clip with ffmpeg and returns its path.
///
/// # Panics
/// When ffmpeg is missing or fails: a missing peer is a test failure, never a skip.
pub(crate) fn clip_path(name: &str, args: &[&str]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/testdata");
    std::fs::create_dir_all(&dir).expect("create target/testdata");
    let path = dir.join(name);
    if !path.exists() {
        let tmp = dir.join(format!("{name}.{}.tmp.flv", std::process::id()));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .arg(&tmp)
            .status()
            .expect("ffmpeg must be installed for the tests (make test installs it)");
        assert!(status.success(), "ffmpeg failed to make {name}");
        std::fs::rename(&tmp, &path).expect("rename clip");
    }
    path
}

/// The standard test clip (see the module docs), parsed.
pub(crate) fn test_clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let path = clip_path(
            "clip-720p30-bframes-aac-6s.flv",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
                "-bf",
                "2",
                "-g",
                "60",
                "-keyint_min",
                "60",
                "-sc_threshold",
                "0",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-ac",
                "2",
                "-b:a",
                "96k",
                "-f",
                "flv",
            ],
        );
        let tags = read_tags(&std::fs::read(path).expect("read clip"));
        let video_frames = tags
            .iter()
            .filter(|t| t.kind == TagKind::Video && t.body.get(1) == Some(&1))
            .count();
        Clip { tags, video_frames }
    })
}
