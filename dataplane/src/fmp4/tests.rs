//! Module-level tests: the real test clip through init segment and fragments, read back by
//! ffprobe and ffmpeg as independent peers.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;
use camstream_protocol::{
    AudioConfig, MediaEvent, MediaFrame, TrackConfig, TrackKind, VideoConfig,
};

use super::*;
use crate::chunks::Chunks;
use crate::flv::Demuxer;
use crate::flv::file::{TagKind, test_clip};

/// The test clip demuxed: configurations and frames of both tracks.
pub(crate) struct ClipMedia {
    pub(crate) video: VideoConfig,
    pub(crate) audio: AudioConfig,
    pub(crate) video_frames: Vec<MediaFrame>,
    pub(crate) audio_frames: Vec<MediaFrame>,
}

/// Demuxes [`test_clip`] once.
pub(crate) fn clip_media() -> &'static ClipMedia {
    static MEDIA: OnceLock<ClipMedia> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let mut demuxer = Demuxer::new();
        let (mut video, mut audio) = (None, None);
        let (mut video_frames, mut audio_frames) = (Vec::new(), Vec::new());
        for tag in &test_clip().tags {
            let event = match tag.kind {
                TagKind::Video => demuxer.handle_video(tag.timestamp, tag.body.clone()),
                TagKind::Audio => demuxer.handle_audio(tag.timestamp, tag.body.clone()),
                TagKind::Script => continue,
            }
            .expect("the clip demuxes");
            match event {
                Some(MediaEvent::Config(TrackConfig::Video(c))) => video = Some(c),
                Some(MediaEvent::Config(TrackConfig::Audio(c))) => audio = Some(c),
                Some(MediaEvent::Frame(f)) if f.track == TrackKind::Video => video_frames.push(f),
                Some(MediaEvent::Frame(f)) => audio_frames.push(f),
                _ => {}
            }
        }
        ClipMedia {
            video: video.expect("video config"),
            audio: audio.expect("audio config"),
            video_frames,
            audio_frames,
        }
    })
}

/// Added to every timestamp so times stay positive whatever the encoder's first offsets.
const START_SECONDS: i64 = 10;
/// Fragment length: one LL-HLS part.
const FRAGMENT_90K: i64 = 18_000;
const AAC_FRAME: u32 = 1024;

/// Samples with the times the segmenter will use, and the 200 ms window each falls in.
struct Track {
    samples: Vec<Sample>,
    window: Vec<i64>,
}

fn video_track(media: &ClipMedia) -> Track {
    let frames = &media.video_frames;
    let origin = frames[0].dts;
    let mut samples = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let duration = match frames.get(i + 1) {
            Some(next) => next.dts - f.dts,
            None => f.dts - frames[i - 1].dts,
        };
        samples.push(Sample {
            decode_time: u64::try_from(f.dts - origin + START_SECONDS * 90_000).unwrap(),
            duration: u32::try_from(duration).unwrap(),
            cts: f.cts,
            keyframe: f.keyframe,
            data: f.data.clone(),
        });
    }
    let window = frames
        .iter()
        .map(|f| (f.dts - origin) / FRAGMENT_90K)
        .collect();
    Track { samples, window }
}

fn audio_track(media: &ClipMedia) -> Track {
    let rate = i64::from(media.audio.sample_rate());
    let origin = media.video_frames[0].dts;
    let frames = &media.audio_frames;
    // Audio starts where the clip put it relative to video, then counts whole AAC frames.
    let base = START_SECONDS * rate + (frames[0].dts - origin) * rate / 90_000;
    let samples = frames
        .iter()
        .enumerate()
        .map(|(n, f)| Sample {
            decode_time: u64::try_from(base).unwrap() + n as u64 * u64::from(AAC_FRAME),
            duration: AAC_FRAME,
            cts: 0,
            keyframe: true,
            data: f.data.clone(),
        })
        .collect();
    let window = frames
        .iter()
        .map(|f| ((f.dts - origin) / FRAGMENT_90K).max(0))
        .collect();
    Track { samples, window }
}

/// Fragments of the whole clip, one per 200 ms window, video and audio of a window together.
fn fragments(video: Option<&Track>, audio: Option<&Track>) -> Vec<Chunks> {
    let last = |t: Option<&Track>| t.and_then(|t| t.window.last().copied()).unwrap_or(0);
    let windows = last(video).max(last(audio)) + 1;
    fn of(t: Option<&Track>, w: i64) -> &[Sample] {
        let Some(t) = t else { return &[] };
        let start = t.window.partition_point(|&x| x < w);
        let end = t.window.partition_point(|&x| x <= w);
        &t.samples[start..end]
    }
    let mut writer = FragmentWriter::new();
    (0..windows)
        .filter(|&w| !of(video, w).is_empty() || !of(audio, w).is_empty())
        .enumerate()
        .map(|(i, w)| {
            let seq = u32::try_from(i + 1).unwrap();
            writer.write(seq, of(video, w), of(audio, w)).unwrap()
        })
        .collect()
}

/// Writes init + fragments to a temp file, as the recorder will: slice by slice.
fn write_file(name: &str, init: &Bytes, fragments: &[Chunks]) -> TempFile {
    let path =
        std::env::temp_dir().join(format!("camstream-fmp4-{}-{name}.mp4", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(init).unwrap();
    for fragment in fragments {
        for slice in fragment.slices() {
            f.write_all(slice).unwrap();
        }
    }
    TempFile(path)
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a peer; a missing tool fails the test.
fn run(tool: &str, args: &[&str], file: &TempFile) -> (String, String) {
    let out = Command::new(tool)
        .args(args)
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed for the tests: {e}"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{tool} failed: {stderr}");
    (stdout, stderr)
}

/// `ffprobe -show_streams -show_format`, as one key/value map per section, stderr empty.
fn probe(file: &TempFile) -> (Vec<HashMap<String, String>>, HashMap<String, String>) {
    let (out, err) = run(
        "ffprobe",
        &["-v", "error", "-show_streams", "-show_format"],
        file,
    );
    assert_eq!(err, "", "ffprobe complained");
    let (mut streams, mut format, mut current) = (Vec::new(), HashMap::new(), HashMap::new());
    for line in out.lines() {
        match line {
            "[STREAM]" | "[FORMAT]" => current = HashMap::new(),
            "[/STREAM]" => streams.push(std::mem::take(&mut current)),
            "[/FORMAT]" => format = std::mem::take(&mut current),
            kv => {
                if let Some((k, v)) = kv.split_once('=') {
                    current.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    (streams, format)
}

/// ffmpeg decodes the whole file without a word.
fn assert_decodes_silently(file: &TempFile) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&file.0)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed for the tests");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "ffmpeg complained"
    );
}

/// (pts, dts) of every packet of one stream (`v` or `a`), in file order.
fn packets(file: &TempFile, stream: &str) -> Vec<(i64, i64)> {
    let (out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts,dts",
            "-of",
            "csv=p=0",
        ],
        file,
    );
    assert_eq!(err, "");
    out.lines()
        .map(|l| {
            let (pts, dts) = l.split_once(',').expect("pts,dts");
            (pts.parse().unwrap(), dts.parse().unwrap())
        })
        .collect()
}

fn expected_times(samples: &[Sample]) -> Vec<(i64, i64)> {
    samples
        .iter()
        .map(|s| {
            let dts = i64::try_from(s.decode_time).unwrap();
            (dts + i64::from(s.cts), dts)
        })
        .collect()
}

/// The clip spans about 6 s from about [`START_SECONDS`]. Without an edit list ffmpeg's mov
/// demuxer reports a fragmented file's duration as the end time on the `tfdt` timeline, so
/// the span is `duration - start_time`.
fn assert_duration_about_6s(format: &HashMap<String, String>) {
    let start: f64 = format["start_time"].parse().unwrap();
    let end: f64 = format["duration"].parse().unwrap();
    let offset = start - START_SECONDS as f64;
    assert!((0.0..0.1).contains(&offset), "start_time {start}");
    assert!((end - start - 6.0).abs() < 0.1, "span {start}..{end}");
}

fn assert_h264_720p(stream: &HashMap<String, String>) {
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(stream["codec_type"], "video");
    assert_eq!((&*stream["width"], &*stream["height"]), ("1280", "720"));
}

fn assert_aac_48k(stream: &HashMap<String, String>) {
    assert_eq!(stream["codec_name"], "aac");
    assert_eq!(stream["codec_type"], "audio");
    assert_eq!(stream["sample_rate"], "48000");
    assert_eq!(stream["channels"], "2");
}

fn assert_video_times(file: &TempFile, video: &Track) {
    let got = packets(file, "v");
    assert_eq!(got, expected_times(&video.samples));
    // B-frames: presentation order differs from decode order.
    assert!(
        got.windows(2).any(|w| w[1].0 < w[0].0),
        "no reordering seen"
    );
    assert!(got.windows(2).all(|w| w[1].1 > w[0].1), "dts must increase");
}

#[test]
fn clip_with_both_tracks_reads_back_in_ffmpeg() {
    let media = clip_media();
    let (video, audio) = (video_track(media), audio_track(media));
    let init = init_segment(Some(&media.video), Some(&media.audio)).unwrap();
    let frags = fragments(Some(&video), Some(&audio));
    assert!(frags.len() >= 29, "about 30 fragments of 200 ms");

    // Zero-copy: every payload slice is the demuxed frame's own bytes.
    let payloads: Vec<&Bytes> = frags.iter().flat_map(|f| &f.slices()[1..]).collect();
    let mut frame_ptrs: Vec<_> = media
        .video_frames
        .iter()
        .chain(&media.audio_frames)
        .map(|f| f.data.as_ptr_range())
        .collect();
    let mut payload_ptrs: Vec<_> = payloads.iter().map(|p| p.as_ptr_range()).collect();
    frame_ptrs.sort_by_key(|r| r.start);
    payload_ptrs.sort_by_key(|r| r.start);
    assert_eq!(payload_ptrs, frame_ptrs);

    let file = write_file("av", &init, &frags);
    let (streams, format) = probe(&file);
    assert_eq!(streams.len(), 2);
    assert_h264_720p(&streams[0]);
    assert_aac_48k(&streams[1]);
    assert_duration_about_6s(&format);
    assert_decodes_silently(&file);
    assert_video_times(&file, &video);
    assert_eq!(packets(&file, "a"), expected_times(&audio.samples));
}

#[test]
fn video_only_clip_reads_back_in_ffmpeg() {
    let media = clip_media();
    let video = video_track(media);
    let init = init_segment(Some(&media.video), None).unwrap();
    let file = write_file("v", &init, &fragments(Some(&video), None));
    let (streams, format) = probe(&file);
    assert_eq!(streams.len(), 1);
    assert_h264_720p(&streams[0]);
    assert_duration_about_6s(&format);
    assert_decodes_silently(&file);
    assert_video_times(&file, &video);
}

#[test]
fn audio_only_clip_reads_back_in_ffmpeg() {
    let media = clip_media();
    let audio = audio_track(media);
    let init = init_segment(None, Some(&media.audio)).unwrap();
    let file = write_file("a", &init, &fragments(None, Some(&audio)));
    let (streams, format) = probe(&file);
    assert_eq!(streams.len(), 1);
    assert_aac_48k(&streams[0]);
    assert_duration_about_6s(&format);
    assert_decodes_silently(&file);
    assert_eq!(packets(&file, "a"), expected_times(&audio.samples));
}

#[test]
fn codecs_string_of_the_clip() {
    let media = clip_media();
    let VideoConfig::H264(avc) = &media.video else {
        panic!("clip is H.264");
    };
    let expected = format!("{},mp4a.40.2", avc.codec_string());
    assert!(expected.starts_with("avc1.64"), "high profile: {expected}");
    assert_eq!(
        codecs(Some(&media.video), Some(&media.audio)).unwrap(),
        expected
    );
}
