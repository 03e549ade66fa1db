//! Recorder tests with real peers: the test clip through the registry and segmenter into
//! files on disk, read back by ffprobe/ffmpeg and by our own index reader; crashes (cut
//! files, a real `kill -9`), a full tmpfs, a free-space threshold, a queue that overflows.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use camstream_protocol::MediaEvent;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::*;
use crate::hls::segmenter::{Segmenter, Settings as SegmenterSettings};
use crate::registry::{Publisher, Registry, RegistryConfig};
use crate::testing::{TempDir, clip_media, decode_clean, probe};

/// One frame at 30 fps, in seconds.
const FRAME: f64 = 1.0 / 30.0;
/// A fixed wall clock origin: 2026-11-30T23:59:50Z, ten seconds before midnight, so a
/// recording crosses a day boundary.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_083_190)
}

struct Rig {
    rec: Arc<Recorder>,
    events: mpsc::Receiver<RecordingEvent>,
}

fn config(dir: &Path) -> RecorderConfig {
    let mut c = RecorderConfig::new(dir.to_owned());
    c.min_free = 0;
    c.progress = Duration::ZERO;
    // Tests publish much faster than real time: room for everything.
    c.queue_fragments = 10_000;
    c.queue_bytes = 1 << 30;
    c
}

fn start(c: RecorderConfig) -> Rig {
    let (tx, events) = mpsc::channel(100_000);
    let rec = Recorder::start(c, tx).expect("recorder starts");
    Rig { rec, events }
}

impl Rig {
    /// Shuts the recorder down and returns every event it sent.
    fn finish(mut self) -> Vec<RecordingEvent> {
        self.rec.shutdown();
        let mut out = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            out.push(ev);
        }
        out
    }

    fn registry(&self) -> Arc<Registry> {
        Registry::new(RegistryConfig {
            recorder: Some(self.rec.clone()),
            reconnect_window: Duration::from_secs(30),
            ..RegistryConfig::default()
        })
    }
}

/// Publishes the clip as one session whose first frame reaches the server at `at`.
fn publish(p: &mut Publisher, at: SystemTime) {
    for ev in clip_media(0) {
        let now = match &ev {
            MediaEvent::Frame(f) => at + Duration::from_micros(f.dts.max(0) as u64 * 1000 / 90),
            _ => at,
        };
        assert_eq!(p.handle_event(now, ev), None);
    }
}

/// The clip's parts as the segmenter hands them to the recorder (one session at `at`).
fn clip_fragments(at: SystemTime) -> Vec<RecordedFragment> {
    let mut seg = Segmenter::new(SegmenterSettings::default(), Arc::from("t"));
    seg.set_recording(true);
    seg.start_session();
    let mut out = Vec::new();
    for ev in clip_media(0) {
        seg.handle_event(at, ev);
        out.extend(seg.take_recorded());
    }
    seg.end_session();
    out.extend(seg.take_recorded());
    out
}

/// `frags` moved `shift` ticks later on the live timeline and `wall` later on the clock.
fn shifted(frags: &[RecordedFragment], shift: i64, wall: Duration) -> Vec<RecordedFragment> {
    // The fragments' tfdts must move too: rebuild their headers through the rebase helper
    // with a negative base, i.e. patch in place.
    frags
        .iter()
        .map(|f| {
            let mut g = f.clone();
            g.media_start += shift;
            g.wall_start += wall;
            let header = &f.data.slices()[0];
            let mut patched = bytes::BytesMut::from(&header[..]);
            shift_tfdts(&mut patched, shift, f.audio_rate);
            let mut data = Chunks::new();
            data.push(patched.freeze());
            for s in &f.data.slices()[1..] {
                data.push(s.clone());
            }
            g.data = data;
            g
        })
        .collect()
}

/// Adds `shift` (90 kHz; converted for audio) to every `tfdt` of a live fragment header.
fn shift_tfdts(buf: &mut [u8], shift: i64, audio_rate: Option<u32>) {
    let mut at = 0;
    while let Some(pos) = buf[at..].windows(4).position(|w| w == b"tfdt") {
        let box_at = at + pos - 4;
        let traf_tfhd = buf[..box_at]
            .windows(4)
            .rposition(|w| w == b"tfhd")
            .expect("tfhd before tfdt");
        let track = u32::from_be_bytes(buf[traf_tfhd + 8..traf_tfhd + 12].try_into().unwrap());
        let add = if track == crate::fmp4::VIDEO_TRACK_ID {
            shift
        } else {
            shift * i64::from(audio_rate.unwrap()) / 90_000
        };
        let v = u64::from_be_bytes(buf[box_at + 12..box_at + 20].try_into().unwrap());
        let nv = (v as i64 + add) as u64;
        buf[box_at + 12..box_at + 20].copy_from_slice(&nv.to_be_bytes());
        at = box_at + 20;
    }
}

/// Everything the events say about one file.
#[derive(Debug)]
struct FileLog {
    opened: FileOpened,
    entries: Vec<IndexEntry>,
    closed: Option<FileClosed>,
}

fn file_logs(events: &[RecordingEvent]) -> Vec<FileLog> {
    let mut logs: Vec<FileLog> = Vec::new();
    let find = |logs: &mut Vec<FileLog>, p: &Path| -> usize {
        logs.iter()
            .position(|l| l.opened.path == p)
            .unwrap_or_else(|| panic!("event for {} before it was opened", p.display()))
    };
    for ev in events {
        match ev {
            RecordingEvent::Opened(o) => logs.push(FileLog {
                opened: o.clone(),
                entries: Vec::new(),
                closed: None,
            }),
            RecordingEvent::Progress(p) => {
                let i = find(&mut logs, &p.path);
                assert!(logs[i].closed.is_none(), "progress after close");
                logs[i].entries.extend(p.entries.iter().cloned());
                let last = logs[i].entries.last().unwrap();
                assert_eq!(p.size, last.offset + last.size);
                assert_eq!(p.duration, last.media_end());
                assert_eq!(p.end_time, last.wall_end());
            }
            RecordingEvent::Closed(c) => {
                let i = find(&mut logs, &c.path);
                logs[i].entries.extend(c.entries.iter().cloned());
                logs[i].closed = Some(c.clone());
            }
            _ => {}
        }
    }
    logs
}

/// The checks every closed file must pass: contiguous index ending at the `mfra`, the same
/// index read back from the file, media time from 0, ffprobe and ffmpeg without errors and
/// ffprobe's duration within a frame of the index.
fn check_file(log: &FileLog) {
    let closed = log.closed.as_ref().expect("file closed");
    let path = &log.opened.path;
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len, closed.size, "{}", path.display());
    let e = &log.entries;
    assert!(!e.is_empty());
    assert_eq!(e[0].offset, log.opened.init_size);
    assert_eq!(e[0].media_time, Duration::ZERO);
    assert!(e[0].independent, "a file starts on a keyframe");
    assert_eq!(e[0].wall_time, log.opened.start);
    for w in e.windows(2) {
        assert_eq!(w[1].offset, w[0].offset + w[0].size, "contiguous bytes");
        if w[1].discontinuity {
            assert!(w[1].media_time >= w[0].media_end());
        } else {
            assert_eq!(w[1].media_time, w[0].media_end(), "contiguous media");
            assert_eq!(w[1].wall_time, w[0].wall_end(), "contiguous wall clock");
        }
    }
    let last = e.last().unwrap();
    assert_eq!(closed.duration, last.media_end());
    assert_eq!(closed.end_time, last.wall_end());
    // The mfra closes the file right after the last fragment.
    let data = std::fs::read(path).unwrap();
    assert_eq!(
        mp4::closing_mfra(&data, len),
        Some(last.offset + last.size),
        "{}",
        path.display()
    );
    // The index read back from the file is the one the events gave.
    let idx = read_index(path).unwrap();
    assert!(
        idx.closed,
        "{} of {} entries read back",
        idx.entries.len(),
        e.len()
    );
    assert_eq!(idx.init_size, log.opened.init_size);
    assert_eq!(idx.start, log.opened.start);
    assert_eq!(idx.entries, *e);
    // Real peers.
    let (streams, format) = probe(path);
    assert_eq!(streams.len(), 2, "{streams:?}");
    let video = streams
        .iter()
        .find(|s| s["codec_name"] == "h264")
        .expect("a video stream");
    let duration: f64 = video["duration"].parse().unwrap();
    let start: f64 = format["start_time"].parse().unwrap();
    let index = closed.duration.as_secs_f64();
    assert!(
        (duration - index).abs() <= FRAME,
        "ffprobe duration {duration} vs index {index} ({})",
        path.display()
    );
    // The edit list puts the earliest sample at 0.
    assert!(start.abs() < 1e-3, "start {start} ({})", path.display());
    decode_clean(path);
}

fn count<F: Fn(&RecordingEvent) -> bool>(events: &[RecordingEvent], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}

/// Three sessions of the clip with 4 s chunks: a reconnect inside a chunk continues the
/// file with a gap, chunks are cut on keyframes, files are contiguous and play.
fn record_sessions(backend: Backend, name: &str) {
    let dir = TempDir::new(name);
    let mut c = config(&dir.0);
    c.chunk = Duration::from_secs(4);
    c.backend = backend;
    let rig = start(c);
    rig.rec.set_recording("cam", true);
    let registry = rig.registry();
    let live = {
        let mut p = registry.claim(CameraId::from("cam")).unwrap();
        publish(&mut p, t0());
        registry.get("cam").unwrap().ll()
    };
    // Back after 0.5 s: inside the reconnect window and inside the current chunk.
    let mut p = registry.claim(CameraId::from("cam")).unwrap();
    publish(&mut p, t0() + Duration::from_millis(6500));
    drop(p);
    // Back after 3 s.
    let mut p = registry.claim(CameraId::from("cam")).unwrap();
    publish(&mut p, t0() + Duration::from_secs(15));
    drop(p);
    assert!(live.borrow().next_msn >= 9, "live window kept going");
    let expected = match backend {
        Backend::Auto => "io_uring",
        Backend::Std => "std::fs",
    };
    assert_eq!(rig.rec.backend(), Some(expected));
    let events = rig.finish();
    let logs = file_logs(&events);
    assert!(logs.len() >= 4, "chunks cut: {}", logs.len());
    for log in &logs {
        check_file(log);
        let name = log.opened.path.file_name().unwrap().to_str().unwrap();
        let (cam, start) = name::parse_file_name(name).unwrap();
        assert_eq!((cam.as_str(), start), ("cam", log.opened.start));
        assert!(
            log.opened
                .path
                .starts_with(dir.0.canonicalize().unwrap().join("cam"))
        );
        assert_eq!(
            log.opened.path.parent().unwrap().file_name().unwrap(),
            name::day(start).as_str()
        );
    }
    // Day folders: the recording crosses midnight UTC.
    assert!(
        logs.iter()
            .any(|l| name::day(l.opened.start) == "2026-11-30")
    );
    assert!(
        logs.iter()
            .any(|l| name::day(l.opened.start) == "2026-12-01")
    );
    let gaps: Vec<&RecordingGap> = events
        .iter()
        .filter_map(|e| match e {
            RecordingEvent::Gap(g) => Some(g),
            _ => None,
        })
        .collect();
    // Chunks: cut at the first keyframe ≥ 4 s after the start, the next file starting
    // exactly where the previous ended, or after a reported gap.
    let mut chunk_cuts = 0;
    for w in logs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert_eq!(a.closed.as_ref().unwrap().reason, CloseReason::Chunk);
        let prev_end = a.entries.last().unwrap().wall_end();
        let next = b.entries[0].wall_time;
        if next == prev_end {
            chunk_cuts += 1;
            let span = b.opened.start.duration_since(a.opened.start).unwrap();
            assert!(span >= Duration::from_secs(4) && span < Duration::from_secs(6));
        } else {
            assert!(
                gaps.iter().any(|g| g.from == prev_end && g.to == next),
                "a hole between files without a gap event"
            );
        }
    }
    assert!(chunk_cuts >= 2, "{chunk_cuts}");
    assert_eq!(
        logs.last().unwrap().closed.as_ref().unwrap().reason,
        CloseReason::Shutdown
    );
    // The reconnect 0.5 s later stayed in its file, as a gap and a discontinuity.
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(gaps.iter().all(|g| g.reason == GapReason::NoMedia));
    let first_gap = gaps[0];
    let gap = first_gap.to.duration_since(first_gap.from).unwrap();
    assert!(
        gap > Duration::from_millis(400) && gap < Duration::from_millis(600),
        "{gap:?}"
    );
    let holder = logs
        .iter()
        .find(|l| l.opened.path == first_gap.path)
        .unwrap();
    assert!(
        holder.opened.start < first_gap.from,
        "the gap is inside a file"
    );
    assert!(
        holder
            .entries
            .iter()
            .any(|e| e.discontinuity && e.wall_time == first_gap.to)
    );
    // Everything recorded: three 6 s sessions, to within a part per session.
    let total: f64 = logs
        .iter()
        .flat_map(|l| &l.entries)
        .map(|e| e.duration.as_secs_f64())
        .sum();
    assert!((total - 18.0).abs() < 0.5, "recorded {total} s");
    assert_eq!(
        count(&events, |e| matches!(e, RecordingEvent::Dropped(_))),
        0
    );
}

#[test]
fn records_sessions_through_io_uring() {
    record_sessions(Backend::Auto, "rec-uring");
}

#[test]
fn records_sessions_through_std_fs() {
    record_sessions(Backend::Std, "rec-std");
}
