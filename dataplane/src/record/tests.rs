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
    frags
        .iter()
        .map(|f| {
            let audio = f
                .audio_rate
                .map_or(0, |r| (shift as u64) * u64::from(r) / 90_000);
            let header = mp4::shift_header(&f.data.slices()[0], shift as u64, audio).unwrap();
            let mut data = Chunks::new();
            data.push(bytes::Bytes::from(header));
            for s in &f.data.slices()[1..] {
                data.push(s.clone());
            }
            RecordedFragment {
                data,
                media_start: f.media_start + shift,
                wall_start: f.wall_start + wall,
                ..f.clone()
            }
        })
        .collect()
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
                let first = logs[i].entries[0].media_time;
                let last = logs[i].entries.last().unwrap();
                assert_eq!(p.size, last.offset + last.size);
                assert_eq!(p.duration, last.media_end() - first);
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

/// What a file's start says about its timelines: per track (`track_ID`), the edit list's
/// media time, the first fragment's `tfdt` and its first sample's presentation time, and
/// the timescale; and whether the live init in the `free` box has no edit list.
struct FileStart {
    tracks: Vec<(u32, u64, u64, u64, u32)>,
    stream_init_plain: bool,
}

/// Reads the init segments and the first fragment of a recording file.
fn file_start(data: &[u8], init_size: u64, first: u64) -> FileStart {
    use mp4_atom::{Decode, Ftyp, Moof, Moov};
    let mut b = data;
    Ftyp::decode(&mut b).unwrap();
    let own = Moov::decode(&mut b).unwrap();
    assert_eq!(
        data.len() - b.len(),
        init_size as usize,
        "init segment size"
    );
    let free = mp4::read_header(b).unwrap().unwrap();
    assert_eq!(
        &free.kind, b"free",
        "the live init follows the init segment"
    );
    assert_eq!(init_size + free.size, first, "then the first fragment");
    let mut live = &b[8..free.size as usize];
    Ftyp::decode(&mut live).unwrap();
    let live_moov = Moov::decode(&mut live).unwrap();
    let mut frag = &data[first as usize + mp4::PRFT_LEN..];
    let moof = Moof::decode(&mut frag).unwrap();
    let tracks = own
        .trak
        .iter()
        .map(|t| {
            let id = t.tkhd.track_id;
            let elst = t.edts.as_ref().and_then(|e| e.elst.as_ref()).expect("elst");
            assert_eq!(elst.entries.len(), 1);
            let traf = moof.traf.iter().find(|x| x.tfhd.track_id == id).unwrap();
            let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
            let cts = traf.trun[0].samples.get(0).and_then(|x| x.cts).unwrap_or(0);
            let pts = (tfdt as i64 + cts) as u64;
            (
                id,
                elst.entries[0].media_time.expect("not an empty edit"),
                tfdt,
                pts,
                t.mdia.mdhd.timescale,
            )
        })
        .collect();
    FileStart {
        tracks,
        stream_init_plain: live_moov.trak.iter().all(|t| t.edts.is_none()),
    }
}

/// The checks every closed file must pass: contiguous index ending at the `mfra`, the same
/// index read back from the file, an edit list that starts the file at its first sample
/// whatever its first decode time, the live init after the init segment, ffprobe and
/// ffmpeg without errors and ffprobe's duration within a frame of the index.
fn check_file(log: &FileLog) {
    let closed = log.closed.as_ref().expect("file closed");
    let path = &log.opened.path;
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len, closed.size, "{}", path.display());
    let e = &log.entries;
    assert!(!e.is_empty());
    assert!(e[0].independent, "a file starts on a keyframe");
    let start = file_start(
        &std::fs::read(path).unwrap(),
        log.opened.init_size,
        e[0].offset,
    );
    assert!(start.stream_init_plain, "the live init has no edit list");
    // The first decode time is where the file starts on its session's timeline...
    let (_, _, video_tfdt, _, _) = start.tracks[0];
    assert_eq!(
        e[0].media_time,
        Duration::from_nanos(video_tfdt * 1_000_000_000 / 90_000),
        "{}",
        path.display()
    );
    // ...and the edit list starts every track at the earliest first sample.
    let earliest = start
        .tracks
        .iter()
        .map(|&(_, _, _, pts, ts)| pts as f64 / f64::from(ts))
        .fold(f64::INFINITY, f64::min);
    for &(id, media_time, _, _, ts) in &start.tracks {
        let at = media_time as f64 / f64::from(ts);
        assert!(
            (at - earliest).abs() <= 1.0 / f64::from(ts),
            "track {id}: edit at {at} s, first sample at {earliest} s ({})",
            path.display()
        );
    }
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
    assert_eq!(closed.duration, last.media_end() - e[0].media_time);
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
    assert_eq!(idx.duration, closed.duration);
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
    // ffmpeg takes a fragmented track's duration to be its end on the media timeline: for a
    // file that continues its session, the session's time at the file's end.
    let media_end = last.media_end().as_secs_f64();
    assert!(
        (duration - media_end).abs() <= FRAME,
        "ffprobe duration {duration} vs media end {media_end} ({})",
        path.display()
    );
    // What plays lasts what the index says...
    let span = video_span(path);
    assert!(
        (span - index).abs() <= FRAME,
        "video from first to last frame {span} vs index {index} ({})",
        path.display()
    );
    // ...and the edit list puts the earliest sample at 0.
    assert!(start.abs() < 1e-3, "start {start} ({})", path.display());
    decode_clean(path);
}

/// Seconds from the first video packet's decode time to the end of the last, by ffprobe
/// (decode times, as the index's: a file cut inside a GOP lacks B-frames still to come).
fn video_span(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=dts_time,duration_time"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut first, mut end) = (f64::INFINITY, f64::NEG_INFINITY);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut v = line.split(',').map(|x| x.parse::<f64>().expect("a number"));
        let (dts, dur) = (v.next().unwrap(), v.next().unwrap());
        first = first.min(dts);
        end = end.max(dts + dur);
    }
    end - first
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
    // The writer threads name their backend when they start, which a loaded machine may
    // not have let them do yet (the publishing above is synchronous and takes no time).
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while rig.rec.backend().is_none() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
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
            // The session goes on: decode times continue into the next file.
            assert_eq!(
                b.entries[0].media_time,
                a.entries.last().unwrap().media_end()
            );
        } else {
            // A hole between files starts a new session.
            assert_eq!(b.entries[0].media_time, Duration::ZERO);
            assert!(
                gaps.iter().any(|g| g.from == prev_end && g.to == next),
                "a hole between files without a gap event: {prev_end:?} -> {next:?}, gaps {gaps:?}, drops {:?}",
                events
                    .iter()
                    .filter(|e| matches!(e, RecordingEvent::Dropped(_) | RecordingEvent::Alert(_)))
                    .collect::<Vec<_>>()
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

/// Polls the event channel until `done` says so (or panics after 30 s).
fn wait_until(
    rig: &mut Rig,
    seen: &mut Vec<RecordingEvent>,
    what: &str,
    done: impl Fn(&[RecordingEvent]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        while let Ok(ev) = rig.events.try_recv() {
            seen.push(ev);
        }
        if done(seen) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the writer has taken every queued fragment of `camera`.
fn wait_drained(rig: &mut Rig, seen: &mut Vec<RecordingEvent>, camera: &str) {
    let rec = rig.rec.clone();
    wait_until(rig, seen, "the queue to drain", |_| rec.queued(camera) == 0);
}

fn dropped(events: &[RecordingEvent], reason: DropReason) -> u64 {
    events
        .iter()
        .filter_map(|e| match e {
            RecordingEvent::Dropped(d) if d.reason == reason => Some(d.fragments),
            _ => None,
        })
        .sum()
}

fn alerts(events: &[RecordingEvent], kind: AlertKind) -> usize {
    count(
        events,
        |e| matches!(e, RecordingEvent::Alert(a) if a.kind == kind),
    )
}

/// Records one session of the clip cut into 2 s files; returns their logs.
fn session_files(name: &str) -> (TempDir, Vec<FileLog>) {
    let dir = TempDir::new(name);
    let mut c = config(&dir.0);
    c.backend = Backend::Std;
    c.chunk = Duration::from_secs(2);
    let rig = start(c);
    rig.rec.set_recording("cam", true);
    let tap = rig.rec.tap(&CameraId::from("cam"));
    for f in clip_fragments(t0()) {
        tap.submit_waiting(f);
    }
    let events = rig.finish();
    let logs = file_logs(&events);
    assert!(logs.len() >= 3, "{} files", logs.len());
    (dir, logs)
}

/// Decode times run on across the files of one session, while each file alone presents
/// from 0: its edit list names its first decode time (what `check_file` reads back from
/// the `elst` and the first `tfdt`), and ffprobe starts it at 0.
#[test]
fn decode_times_run_across_the_files_of_a_session() {
    let (_dir, logs) = session_files("rec-session");
    let mut previous_end = Duration::ZERO;
    for (i, log) in logs.iter().enumerate() {
        check_file(log);
        let first = &log.entries[0];
        assert_eq!(
            first.media_time, previous_end,
            "file {i} continues the last"
        );
        let start = file_start(
            &std::fs::read(&log.opened.path).unwrap(),
            log.opened.init_size,
            first.offset,
        );
        let (_, edit, tfdt, pts, _) = start.tracks[0];
        // The edit starts the file at its first sample: later files by seconds.
        assert!(
            tfdt <= pts && edit <= pts && pts - edit < 9000,
            "{edit} {tfdt} {pts}"
        );
        if i > 0 {
            assert!(tfdt >= 2 * 90_000, "file {i} starts at {tfdt}");
        }
        previous_end = log.entries.last().unwrap().media_end();
        // The live init in every file is the same bytes.
        let data = std::fs::read(&log.opened.path).unwrap();
        let first_data = std::fs::read(&logs[0].opened.path).unwrap();
        let live = |d: &[u8], l: &FileLog| {
            d[l.opened.init_size as usize + 8..l.entries[0].offset as usize].to_vec()
        };
        assert_eq!(live(&data, log), live(&first_data, &logs[0]));
    }
    assert!(
        (previous_end.as_secs_f64() - 6.0).abs() < 0.5,
        "{previous_end:?}"
    );
}

/// Records one session of the clip into one closed file; returns its log.
fn one_file(name: &str) -> (TempDir, FileLog) {
    let dir = TempDir::new(name);
    let mut c = config(&dir.0);
    c.backend = Backend::Std;
    let rig = start(c);
    rig.rec.set_recording("cam", true);
    let tap = rig.rec.tap(&CameraId::from("cam"));
    for f in clip_fragments(t0()) {
        tap.submit_waiting(f);
    }
    let events = rig.finish();
    let mut logs = file_logs(&events);
    assert_eq!(logs.len(), 1);
    (dir, logs.remove(0))
}

/// Kill -9 at any byte: the file is cut at every kind of offset (inside the init, a
/// `prft`, a `moof`, an `mdat`, exactly on boundaries) and sometimes followed by zeros (what
/// a power loss can leave). Repair keeps every whole fragment before the cut, loses only
/// the torn one, closes the file, and the result plays.
#[test]
fn repair_cuts_a_torn_fragment_at_any_offset() {
    let (src, log) = one_file("rec-repair-src");
    repair_any_cut(&src, &log, "rec-repair");
}

/// The same with a file that continues its session: its first decode time is seconds in.
#[test]
fn repair_cuts_a_torn_fragment_of_a_file_starting_late_in_its_session() {
    let (src, mut logs) = session_files("rec-repair-late-src");
    let log = logs.remove(1);
    assert!(log.entries[0].media_time >= Duration::from_secs(2));
    repair_any_cut(&src, &log, "rec-repair-late");
}

fn repair_any_cut(src: &TempDir, log: &FileLog, name: &str) {
    let data = std::fs::read(&log.opened.path).unwrap();
    let entries = &log.entries;
    let end = entries.last().unwrap().offset + entries.last().unwrap().size;
    let unclosed = &data[..end as usize];
    let work = TempDir::new(name);
    let root = work.0.canonicalize().unwrap();
    let rel = log
        .opened
        .path
        .strip_prefix(src.0.canonicalize().unwrap())
        .unwrap();
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();

    let first = entries[0].offset;
    let init = log.opened.init_size;
    let mut cuts: Vec<u64> = vec![0, 7, init - 1, init, init + 8, first - 1, first, end];
    for e in entries.iter().take(4) {
        cuts.extend([
            e.offset + 1,
            e.offset + 31,
            e.offset + 32,
            e.offset + 40,
            e.offset + e.size - 1,
        ]);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    cuts.extend((0..40).map(|_| rng.random_range(0..=end)));
    for (i, &cut) in cuts.iter().enumerate() {
        let mut bytes = unclosed[..cut as usize].to_vec();
        if i % 3 == 1 {
            bytes.extend(std::iter::repeat_n(0u8, rng.random_range(1..5000)));
        }
        let damaged = bytes.len() as u64;
        std::fs::write(&path, &bytes).unwrap();
        let report = repair(&root);
        assert_eq!(report.len(), 1, "cut at {cut}");
        let r = &report[0];
        let whole = entries.iter().filter(|e| e.offset + e.size <= cut).count();
        if whole == 0 {
            assert_eq!(r.status, RepairStatus::Removed, "cut at {cut}");
            assert!(!path.exists());
            continue;
        }
        assert_eq!(r.status, RepairStatus::Recovered, "cut at {cut}");
        // Every whole fragment kept: lost media is at most the one the cut tore.
        assert_eq!(r.file.entries, entries[..whole], "cut at {cut}");
        let kept_end = entries[whole - 1].offset + entries[whole - 1].size;
        assert_eq!(r.truncated, damaged - kept_end);
        assert!(r.file.closed);
        assert_eq!(
            r.file.duration,
            entries[whole - 1].media_end() - entries[0].media_time
        );
        assert_eq!(r.file.end_time, entries[whole - 1].wall_end());
        let idx = read_index(&path).unwrap();
        assert!(idx.closed);
        assert_eq!(idx.entries, r.file.entries);
        assert_eq!(idx.size, std::fs::metadata(&path).unwrap().len());
        // Once closed, a second repair leaves it alone.
        assert!(repair(&root).is_empty());
        if i % 6 == 0 || cut == end {
            let (streams, format) = probe(&path);
            assert!(!streams.is_empty());
            let start: f64 = format["start_time"].parse().unwrap();
            assert!(start.abs() < 1e-3, "starts at {start} ({format:?})");
            let span = video_span(&path);
            assert!(
                (span - r.file.duration.as_secs_f64()).abs() <= FRAME,
                "{span} vs {:?} ({format:?})",
                r.file.duration
            );
            decode_clean(&path);
        }
    }
}

/// Environment variable that turns the kill -9 test into its child: the directory to record
/// into and the round (for distinct start times).
const CHILD_ENV: &str = "CAMSTREAM_RECORD_CHILD";

/// The child of the kill -9 test: records the clip over and over through io_uring with an
/// fdatasync after every write, printing `synced <path> <bytes>` for each progress event,
/// until it is killed.
fn child_writer(spec: &str) -> ! {
    let (dir, round) = spec.rsplit_once(':').expect("dir:round");
    let round: u64 = round.parse().expect("round");
    let mut c = config(Path::new(dir));
    c.fsync = Some(Duration::ZERO);
    c.chunk = Duration::from_secs(4);
    let mut rig = start(c);
    rig.rec.set_recording("cam", true);
    let tap = rig.rec.tap(&CameraId::from("cam"));
    let mut events = std::mem::replace(&mut rig.events, mpsc::channel(1).1);
    std::thread::spawn(move || {
        use std::io::Write;
        let mut out = std::io::stdout();
        while let Some(ev) = events.blocking_recv() {
            if let RecordingEvent::Progress(p) = ev {
                let _ = writeln!(out, "synced {} {}", p.path.display(), p.size);
                let _ = out.flush();
            }
        }
    });
    let at = t0() + Duration::from_secs(3600 * round);
    let clip = clip_fragments(at);
    let first = clip.first().unwrap();
    let last = clip.last().unwrap();
    let span = last.media_start + last.duration - first.media_start;
    let wall = last.wall_start.duration_since(first.wall_start).unwrap()
        + Duration::from_micros(last.duration as u64 * 1000 / 90);
    let stop = Instant::now() + Duration::from_secs(60);
    for k in 0.. {
        for f in shifted(&clip, span * k, wall * k as u32) {
            tap.submit_waiting(f);
            std::thread::sleep(Duration::from_millis(5));
        }
        if Instant::now() > stop {
            break;
        }
    }
    std::process::exit(3)
}

/// A real `kill -9` of a process recording through io_uring, at random moments: every
/// fragment it had reported synced is still there after repair, the repaired files are
/// closed, consistent and play.
#[test]
fn kill9_while_recording_keeps_every_synced_fragment() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child_writer(&spec);
    }
    let dir = TempDir::new("rec-kill9");
    let root = dir.0.canonicalize().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "record::tests::kill9_while_recording_keeps_every_synced_fragment",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{}:{round}", root.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child recorder");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(PathBuf, u64)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("synced ") {
                    let (p, n) = rest.rsplit_once(' ').unwrap();
                    let _ = tx.send((PathBuf::from(p), n.parse().unwrap()));
                }
            }
        });
        // Let it write a while, then kill it at a random moment.
        let want = rng.random_range(5..40);
        let mut synced: HashMap<PathBuf, u64> = HashMap::new();
        for _ in 0..want {
            let (p, n) = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the child reports synced fragments");
            synced.insert(p, n);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..50)));
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
        reader.join().unwrap();
        for (p, n) in rx.try_iter() {
            synced.insert(p, n);
        }
        let report = repair(&root);
        for r in &report {
            // A file created an instant before the kill may hold nothing yet: removed. A file
            // with a synced fragment never is.
            if r.status == RepairStatus::Removed {
                assert!(!synced.contains_key(&r.file.path), "{r:?}");
            }
        }
        for (path, size) in &synced {
            let idx = read_index(path).unwrap();
            assert!(
                idx.closed,
                "{} closed by the writer or by repair",
                path.display()
            );
            let last = idx.entries.last().unwrap();
            assert!(
                last.offset + last.size >= *size,
                "{}: synced up to {size}, repaired file ends at {}",
                path.display(),
                last.offset + last.size
            );
            for w in idx.entries.windows(2) {
                assert_eq!(w[1].offset, w[0].offset + w[0].size);
                assert_eq!(w[1].media_time, w[0].media_end());
            }
        }
        // The file being written when the process died plays.
        let newest = synced
            .iter()
            .max_by_key(|(p, _)| (*p).clone())
            .map(|(p, _)| p.clone())
            .unwrap();
        let (streams, _) = probe(&newest);
        assert_eq!(streams.len(), 2);
        decode_clean(&newest);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount must be installed");
        assert!(status.success(), "mount tmpfs at {}", at.display());
        Mount(at.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Checks a file whose recording may have ended badly: whatever the events reported is in
/// the file, the file holds only whole fragments (plus the mfra when closed), and it plays.
fn check_partial_file(log: &FileLog) {
    let path = &log.opened.path;
    let idx = read_index(path).unwrap();
    assert!(idx.entries.len() >= log.entries.len());
    assert_eq!(idx.entries[..log.entries.len()], log.entries[..]);
    let last = idx.entries.last().unwrap();
    let len = std::fs::metadata(path).unwrap().len();
    if idx.closed {
        let data = std::fs::read(path).unwrap();
        assert_eq!(mp4::closing_mfra(&data, len), Some(last.offset + last.size));
    } else {
        assert_eq!(
            len,
            last.offset + last.size,
            "no partial fragment in {}",
            path.display()
        );
    }
    for w in idx.entries.windows(2) {
        assert_eq!(w[1].offset, w[0].offset + w[0].size);
    }
    let (streams, _) = probe(path);
    assert_eq!(streams.len(), 2);
    decode_clean(path);
}

/// The scenario of the disk-pressure tests: session 1 records, session 2 meets the
/// pressure (`squeeze`), session 3 after `relieve`. Live streaming is untouched throughout.
fn pressure(
    name: &str,
    c: impl FnOnce(&mut RecorderConfig),
    squeeze: impl FnOnce(&Recorder, &[RecordingEvent]),
    relieve: impl FnOnce(&Recorder, &[RecordingEvent]),
) -> (TempDir, Vec<RecordingEvent>) {
    let dir = TempDir::new(name);
    let mut cfg = config(&dir.0);
    cfg.fsync = Some(Duration::ZERO);
    c(&mut cfg);
    let mut rig = start(cfg);
    rig.rec.set_recording("cam", true);
    let registry = rig.registry();
    let mut seen = Vec::new();
    let mut p = registry.claim(CameraId::from("cam")).unwrap();
    publish(&mut p, t0());
    drop(p);
    wait_drained(&mut rig, &mut seen, "cam");
    squeeze(&rig.rec, &seen);
    let mut p = registry.claim(CameraId::from("cam")).unwrap();
    publish(&mut p, t0() + Duration::from_secs(7));
    drop(p);
    wait_drained(&mut rig, &mut seen, "cam");
    relieve(&rig.rec, &seen);
    let mut p = registry.claim(CameraId::from("cam")).unwrap();
    publish(&mut p, t0() + Duration::from_secs(14));
    drop(p);
    let live = registry.get("cam").unwrap().ll();
    assert!(live.borrow().next_msn >= 9, "live streaming went on");
    seen.extend(rig.finish());
    (dir, seen)
}

/// ENOSPC on a real (tmpfs) file system: whole fragments are dropped and counted, a
/// STORAGE_FULL alert goes out, files written before stay intact and playable, and
/// recording resumes once space is freed. Without root (no mount), the same scenario runs
/// against the free-space threshold.
#[test]
fn a_full_disk_drops_whole_fragments_and_keeps_earlier_files() {
    if !is_root() {
        return low_space_scenario("rec-enospc");
    }
    let base = TempDir::new("rec-enospc");
    let mnt = base.join("mnt");
    let _mount = Mount::tmpfs(&mnt, "2m");
    let mnt2 = mnt.clone();
    let (_unused, events) = pressure(
        "rec-enospc-unused",
        |c| {
            c.dir = mnt2;
            c.chunk = Duration::from_secs(4);
        },
        |_, _| {},
        |_, seen| {
            // Free space the way retention would: remove the first, closed file.
            let first = file_logs(seen).into_iter().next().unwrap();
            check_file(&first);
            std::fs::remove_file(&first.opened.path).unwrap();
        },
    );
    assert!(
        dropped(&events, DropReason::DiskFull) > 0,
        "ENOSPC drops counted"
    );
    assert!(alerts(&events, AlertKind::StorageFull) >= 1);
    let logs = file_logs(&events);
    for log in logs.iter().skip(1) {
        check_partial_file(log);
    }
    // Recording resumed in session 3.
    let resumed = t0() + Duration::from_secs(14);
    assert!(
        logs.iter()
            .flat_map(|l| &l.entries)
            .any(|e| e.wall_time >= resumed),
        "recording resumed after space was freed"
    );
}

fn low_space_scenario(name: &str) {
    let n = clip_fragments(t0()).len() as u64;
    let (_dir, events) = pressure(
        name,
        |_| {},
        |rec, _| rec.set_min_free(u64::MAX),
        |rec, _| rec.set_min_free(0),
    );
    assert_eq!(
        dropped(&events, DropReason::LowSpace),
        n,
        "session 2 dropped whole"
    );
    assert!(alerts(&events, AlertKind::StorageFull) >= 1);
    let logs = file_logs(&events);
    let recorded: usize = logs.iter().map(|l| l.entries.len()).sum();
    assert_eq!(recorded as u64, 2 * n, "sessions 1 and 3 recorded whole");
    for log in &logs {
        check_file(log);
    }
    let gap = events
        .iter()
        .find_map(|e| match e {
            RecordingEvent::Gap(g) if g.reason == GapReason::Dropped => Some(g),
            _ => None,
        })
        .expect("a gap for the dropped session");
    // Session 3 reached the server at t0 + 14 s (its parts are dated from the end of track
    // discovery, a few frames in).
    let resumed = gap.to.duration_since(t0()).unwrap();
    assert!(resumed >= Duration::from_secs(14) && resumed < Duration::from_millis(14_500));
    assert!(
        logs.iter()
            .flat_map(|l| &l.entries)
            .any(|e| e.wall_time == gap.to && e.independent && e.discontinuity),
        "recording resumed on a keyframe after the gap"
    );
}

/// Free space below the threshold: whole fragments dropped, STORAGE_FULL, resumes above it.
#[test]
fn low_free_space_drops_whole_fragments_until_it_recovers() {
    low_space_scenario("rec-lowspace");
}

/// A disk slower than the camera: the camera's queue overflows, whole fragments are
/// dropped (and those depending on them, up to the next keyframe), RECORDING_FAILED goes
/// out, and what was written is consistent and plays.
#[test]
fn a_slow_disk_drops_whole_fragments_and_alerts() {
    let dir = TempDir::new("rec-slow");
    let mut c = config(&dir.0);
    c.queue_fragments = 3;
    c.fsync = Some(Duration::ZERO);
    c.backend = Backend::Std;
    let rig = start(c);
    rig.rec.set_recording("cam", true);
    let tap = rig.rec.tap(&CameraId::from("cam"));
    let clip = clip_fragments(t0());
    let mut accepted = 0;
    for f in &clip {
        accepted += usize::from(tap.submit(f.clone()));
    }
    assert!(accepted < clip.len(), "the queue overflowed");
    let events = rig.finish();
    let logs = file_logs(&events);
    let written: usize = logs.iter().map(|l| l.entries.len()).sum();
    let dropped_total: u64 = events
        .iter()
        .filter_map(|e| match e {
            RecordingEvent::Dropped(d) => Some(d.fragments),
            _ => None,
        })
        .sum();
    // The parts the queue refused, and those accepted after them that depended on them.
    assert!(dropped(&events, DropReason::QueueFull) as usize >= clip.len() - accepted);
    assert_eq!(dropped(&events, DropReason::QueueFull), dropped_total);
    assert_eq!(
        written as u64 + dropped_total,
        clip.len() as u64,
        "every part accounted for"
    );
    assert!(alerts(&events, AlertKind::RecordingFailed) >= 1);
    for log in &logs {
        check_file(log);
        for w in log.entries.windows(2) {
            if w[1].media_time != w[0].media_end() {
                assert!(
                    w[1].discontinuity && w[1].independent,
                    "a jump only at a keyframe"
                );
            }
        }
    }
}

/// A changed init segment starts a new file (Reconfigured), a live timeline that goes back
/// starts a new file (Restarted), turning recording off closes the file (Stopped), and a
/// camera that stays away has its file closed (Idle).
#[test]
fn files_are_cut_on_new_init_timeline_restart_stop_and_idle() {
    let dir = TempDir::new("rec-cuts");
    let mut c = config(&dir.0);
    c.idle_close = Duration::from_millis(300);
    let mut rig = start(c);
    rig.rec.set_recording("cam", true);
    rig.rec.set_recording("idle", true);
    let tap = rig.rec.tap(&CameraId::from("cam"));
    let clip = clip_fragments(t0());
    let last = clip.last().unwrap();
    let span = last.media_start + last.duration - clip[0].media_start;
    for f in &clip {
        tap.submit_waiting(f.clone());
    }
    // Same stream, new parameters: an init segment with one more (free) box.
    let mut init = clip[0].init.to_vec();
    init.extend_from_slice(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
    for mut f in shifted(&clip, span, Duration::from_secs(6)) {
        f.init = bytes::Bytes::from(init.clone());
        tap.submit_waiting(f);
    }
    // A new stream: the live timeline starts over (same parameters).
    for mut f in clip_fragments(t0() + Duration::from_secs(30)) {
        f.init = bytes::Bytes::from(init.clone());
        tap.submit_waiting(f);
    }
    let mut seen = Vec::new();
    wait_drained(&mut rig, &mut seen, "cam");
    rig.rec.set_recording("cam", false);
    wait_until(&mut rig, &mut seen, "the stopped file to close", |s| {
        count(
            s,
            |e| matches!(e, RecordingEvent::Closed(c) if c.reason == CloseReason::Stopped),
        ) == 1
    });
    // Another camera publishes a little, then goes quiet.
    let idle = rig.rec.tap(&CameraId::from("idle"));
    for f in clip.iter().take(10) {
        idle.submit_waiting(f.clone());
    }
    wait_until(&mut rig, &mut seen, "the idle file to close", |s| {
        count(
            s,
            |e| matches!(e, RecordingEvent::Closed(c) if c.reason == CloseReason::Idle),
        ) == 1
    });
    seen.extend(rig.finish());
    let logs = file_logs(&seen);
    let reasons: Vec<(String, CloseReason)> = logs
        .iter()
        .map(|l| {
            (
                l.opened.camera.to_string(),
                l.closed.as_ref().unwrap().reason,
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("cam".to_owned(), CloseReason::Reconfigured),
            ("cam".to_owned(), CloseReason::Restarted),
            ("cam".to_owned(), CloseReason::Stopped),
            ("idle".to_owned(), CloseReason::Idle),
        ]
    );
    for log in &logs {
        check_file(log);
    }
}

/// A part handed over just before recording went off that reaches the writer after it
/// closed the file starts no file of its own (issue 15: no fragment-sized file behind).
#[test]
fn a_part_arriving_after_recording_went_off_starts_no_file() {
    let dir = TempDir::new("rec-late-part");
    let mut rig = start(config(&dir.0));
    rig.rec.set_recording("cam", true);
    let tap = rig.rec.tap(&CameraId::from("cam"));
    let clip = clip_fragments(t0());
    let last = clip.last().unwrap();
    let span = last.media_start + last.duration - clip[0].media_start;
    for f in &clip {
        tap.submit_waiting(f.clone());
    }
    let mut seen = Vec::new();
    wait_drained(&mut rig, &mut seen, "cam");
    rig.rec.set_recording("cam", false);
    wait_until(&mut rig, &mut seen, "the stopped file to close", |s| {
        count(
            s,
            |e| matches!(e, RecordingEvent::Closed(c) if c.reason == CloseReason::Stopped),
        ) == 1
    });
    // The late part: the next keyframe part of the same session.
    let late = shifted(&clip, span, Duration::from_secs(6))
        .into_iter()
        .find(|f| f.independent)
        .expect("a keyframe part");
    tap.submit_waiting(late);
    wait_drained(&mut rig, &mut seen, "cam");
    seen.extend(rig.finish());
    let logs = file_logs(&seen);
    assert_eq!(
        logs.len(),
        1,
        "files: {:?}",
        logs.iter().map(|l| &l.opened.path).collect::<Vec<_>>()
    );
    assert_eq!(
        logs[0].closed.as_ref().unwrap().reason,
        CloseReason::Stopped
    );
    check_file(&logs[0]);
}

/// Only cameras in the recorded set reach the recorder; a camera turned on while it
/// publishes starts at its next keyframe.
#[test]
fn only_recorded_cameras_are_written() {
    let dir = TempDir::new("rec-set");
    let rig = start(config(&dir.0));
    rig.rec.set_recording("a", true);
    let registry = rig.registry();
    let mut a = registry.claim(CameraId::from("a")).unwrap();
    let mut b = registry.claim(CameraId::from("b")).unwrap();
    publish(&mut a, t0());
    publish(&mut b, t0());
    drop(b);
    rig.rec.set_recording("b", true);
    assert!(rig.rec.is_recording("b"));
    assert_eq!(rig.rec.recording().len(), 2);
    let mut b = registry.claim(CameraId::from("b")).unwrap();
    let second = t0() + Duration::from_secs(7);
    publish(&mut b, second);
    drop((a, b));
    let events = rig.finish();
    let logs = file_logs(&events);
    let of = |cam: &str| -> Vec<&FileLog> {
        logs.iter()
            .filter(|l| l.opened.camera.as_ref() == cam)
            .collect()
    };
    assert_eq!(of("a").len(), 1);
    let b_logs = of("b");
    assert_eq!(b_logs.len(), 1);
    assert!(
        b_logs[0].entries.iter().all(|e| e.wall_time >= second),
        "nothing from before b was turned on"
    );
    for log in &logs {
        check_file(log);
    }
}

/// The server repairs what a crash left in its recordings directory before it serves, and
/// hands the report to the control plane as the first events; the data plane handle turns
/// recording on and off.
#[tokio::test]
async fn the_server_repairs_on_start_and_exposes_the_recorder() {
    let (_src, log) = one_file("rec-server-src");
    let data = TempDir::new("rec-server");
    let recordings = data.join("recordings");
    let name = log.opened.path.file_name().unwrap();
    let day = log.opened.path.parent().unwrap().file_name().unwrap();
    let torn = recordings.join("cam").join(day).join(name);
    std::fs::create_dir_all(torn.parent().unwrap()).unwrap();
    let bytes = std::fs::read(&log.opened.path).unwrap();
    // A crash in the middle of the fifth fragment.
    let cut = log.entries[4].offset + log.entries[4].size / 2;
    std::fs::write(&torn, &bytes[..cut as usize]).unwrap();

    let mut config = crate::Config::new(data.0.clone());
    let local = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.rtmp_addr = local(0);
    config.rtmps_addr = None;
    config.http_addr = local(0);
    config.https_addr = None;
    config.webrtc = None;
    let mut server = crate::Server::bind(
        config,
        Arc::new(crate::auth::AllowAnyKey),
        Arc::new(crate::auth::PublicPlayback),
    )
    .await
    .unwrap();
    let mut events = server.take_recording_events().unwrap();
    assert!(server.take_recording_events().is_none());
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    let RecordingEvent::Repaired(r) = first else {
        panic!("expected the repair report first, got {first:?}");
    };
    assert_eq!(r.status, RepairStatus::Recovered);
    assert_eq!(r.file.camera.as_ref(), "cam");
    assert_eq!(r.file.entries, log.entries[..4]);
    assert!(read_index(&torn).unwrap().closed);
    let dp = server.data_plane();
    assert_eq!(dp.recordings_dir(), recordings.canonicalize().unwrap());
    assert!(!dp.is_recording("cam"));
    dp.set_recording("cam", true);
    assert!(dp.is_recording("cam"));
    dp.set_recorded_cameras([CameraId::from("x"), CameraId::from("y")]);
    assert!(!dp.is_recording("cam"));
    assert_eq!(dp.recorded_cameras().len(), 2);
    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    server.run(axum::Router::new(), stop).await;
}

/// When a ring cannot be set up the writer falls back to `std::fs`, and that works.
#[test]
fn falls_back_to_std_fs_when_io_uring_fails() {
    assert_eq!(open_io(Backend::Auto, uring::Uring::new).name(), "io_uring");
    // The kernel refuses a ring of size 0: the same path as a kernel without io_uring.
    assert!(uring::Uring::with_entries(0).is_err());
    let mut io = open_io(Backend::Auto, || uring::Uring::with_entries(0));
    assert_eq!(io.name(), "std::fs");
    let dir = TempDir::new("rec-fallback");
    let f = io.create(&dir.join("x")).unwrap();
    io.write(
        1,
        f,
        0,
        vec![
            bytes::Bytes::from_static(b"abc"),
            bytes::Bytes::from_static(b"de"),
        ],
    );
    io.sync(2, f);
    let mut done = Vec::new();
    io.wait(Duration::ZERO, &mut done);
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|c| c.result.is_ok()));
    assert_eq!(done[0].written, 5);
    io.close(f);
    assert_eq!(std::fs::read(dir.join("x")).unwrap(), b"abcde");
}

/// Both I/O layers continue a short write and report how far a failed one got.
#[test]
fn io_layers_write_in_order_and_report_failures() {
    for mut io in [
        open_io(Backend::Auto, uring::Uring::new),
        open_io(Backend::Std, uring::Uring::new),
    ] {
        let dir = TempDir::new(&format!("rec-io-{}", io.name().replace(':', "")));
        let f = io.create(&dir.join("x")).unwrap();
        assert!(io.create(&dir.join("x")).is_err(), "never reuses a name");
        let big = bytes::Bytes::from(vec![7u8; 3 << 20]);
        io.write(
            1,
            f,
            0,
            vec![big.slice(..1000), big.clone(), big.slice(5..9)],
        );
        let mut done = Vec::new();
        while done.is_empty() {
            io.wait(Duration::from_millis(50), &mut done);
        }
        assert_eq!(done[0].written, 1000 + (3 << 20) + 4);
        assert!(done[0].result.is_ok());
        io.truncate(f, 10).unwrap();
        io.close(f);
        assert_eq!(std::fs::metadata(dir.join("x")).unwrap().len(), 10);
        // A write to a file that is not open fails cleanly.
        io.write(2, 999, 0, vec![big.slice(..10)]);
        done.clear();
        while done.is_empty() {
            io.wait(Duration::from_millis(50), &mut done);
        }
        assert_eq!(done[0].op, 2);
        assert!(done[0].result.is_err());
        assert_eq!(io.in_flight(), 0);
    }
}
