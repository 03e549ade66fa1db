//! The whole ingest path under the fuzzer: RTMP bytes → [`Session`] → [`Segmenter`] (the
//! fMP4 fragment writer and the MPEG-TS muxer) → both windows → both playlists, driven the
//! way the ingest shell and the HTTP handlers drive them, with the consistency checks a
//! player relies on after every change.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;

use super::prefix;
use crate::hls::playlist::{self, Render, names};
use crate::hls::segmenter::{Changed, Segmenter, Settings};
use crate::hls::window::{Flavor, Window};
use crate::rtmp::{Config, Event, RtmpError, Session};

/// MPEG-TS packet size.
const TS_PACKET: usize = 188;
/// Virtual time between two inputs: the session's idle timeout must not fire mid-input.
const STEP: Duration = Duration::from_millis(20);

/// What one run produced, for the seed corpus tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    /// Publish requests accepted (one per connection).
    pub publishes: usize,
    /// Complete LL-HLS segments pushed into the window.
    pub ll_segments: u64,
    /// Complete MPEG-TS segments pushed into the window.
    pub ts_segments: u64,
    /// Playlists rendered and checked.
    pub playlists: usize,
}

/// Arbitrary client bytes after a scripted, accepted publish, through the whole ingest path.
///
/// The first byte chooses how the rest is cut into socket reads (bits 0–1: 7, 61, 1024 bytes
/// or all at once), the segmenter settings (bit 2: 1 s segments, 100 ms parts, a window of
/// two segments, so evictions and discontinuity-sequence updates come quickly; else the
/// defaults), whether the recorder's queue is fed (bit 3), and whether the camera reconnects
/// once (bit 4: a second connection replays the same bytes into the same segmenter, as an
/// encoder coming back inside the reconnect window does). The rest follows the `publish` of
/// [`super::rtmp_session`]'s mode 3: media, metadata, more commands (`deleteStream` ends
/// the publish; the connection stays).
///
/// After every change it checks what players and the HTTP router rely on: MSNs continuous,
/// the partial segment at `next_msn`, every init segment a segment names still held, each
/// new part one `moof` + `mdat`, every TS segment whole 0x47-synced packets, segment durations finite and within
/// `EXT-X-TARGETDURATION`, and every URI of the full and the delta playlist resolving to
/// media the window holds (the preload hint excepted).
///
/// # Panics
/// When a check fails, or when something panicked inside the session (contained there, but
/// it means a guard missed a crash path).
pub fn ingest(data: &[u8]) -> IngestStats {
    let Some((&mode, rest)) = data.split_first() else {
        return IngestStats::default();
    };
    let settings = if mode & 4 != 0 {
        Settings {
            segment_target: Duration::from_secs(1),
            part_target: Duration::from_millis(100),
            window: 2,
            ..Settings::default()
        }
    } else {
        Settings::default()
    };
    let now = Instant::now();
    let mut run = Run {
        session: Session::new(now, Config::default()),
        segmenter: Segmenter::new(settings, Arc::from("0badc0de")),
        now,
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000),
        publishing: false,
        record: mode & 8 != 0,
        stats: IngestStats::default(),
    };
    let piece = [7, 61, 1024, usize::MAX][usize::from(mode & 3)];
    let connections = if mode & 16 != 0 { 2 } else { 1 };
    for n in 1..=connections {
        run.session = Session::new(run.now, Config::default());
        assert!(run.feed(&prefix(3)), "the scripted publish is valid");
        assert_eq!(run.stats.publishes, n, "the scripted publish is accepted");
        for input in rest.chunks(piece.min(rest.len().max(1))) {
            if !run.feed(input) {
                break;
            }
        }
        // The connection ends: the session's media is flushed into the windows.
        run.publishing = false;
        let changed = run.segmenter.end_session();
        run.changed(changed);
    }
    // The camera stayed away: the playlists end.
    let changed = run.segmenter.finish();
    run.changed(changed);
    run.stats
}

struct Run {
    session: Session,
    segmenter: Segmenter,
    now: Instant,
    wall: SystemTime,
    publishing: bool,
    record: bool,
    stats: IngestStats,
}

impl Run {
    /// One socket read, then everything the session has drained as the shell does.
    /// `false`: the session ended the connection (as it should on bad input).
    fn feed(&mut self, input: &[u8]) -> bool {
        self.now += STEP;
        self.wall += STEP;
        let mut buf = BytesMut::from(input);
        let mut result = self.session.handle_input(self.now, &mut buf);
        while result.is_ok() {
            let mut progress = false;
            while self.session.poll_transmit().is_some() {
                progress = true;
            }
            while let Some(event) = self.session.poll_event() {
                progress = true;
                match event {
                    Event::PublishRequested { .. } => {
                        result = self.session.accept_publish();
                        self.stats.publishes += 1;
                        self.publishing = true;
                        let changed = self.segmenter.start_session();
                        self.segmenter.set_recording(self.record);
                        self.changed(changed);
                    }
                    Event::Media(media) if self.publishing => {
                        let changed = self.segmenter.handle_event(self.wall, media);
                        self.segmenter.take_failure();
                        self.changed(changed);
                    }
                    Event::PublishFinished => {
                        self.publishing = false;
                        let changed = self.segmenter.end_session();
                        self.changed(changed);
                    }
                    Event::Media(_) | Event::Warning(_) => {}
                }
            }
            if !progress {
                break;
            }
        }
        match result {
            Ok(()) => true,
            Err(e @ RtmpError::Internal { .. }) => panic!("{e}"),
            Err(_) => false,
        }
    }

    /// What the publisher and the HTTP side do after a change: hand parts to the recorder,
    /// serve both playlists (full and delta).
    fn changed(&mut self, changed: Changed) {
        if self.record {
            for part in self.segmenter.take_recorded() {
                assert!(!part.data.is_empty(), "recorded parts carry data");
                assert!(part.duration >= 0, "recorded parts do not run backwards");
            }
        }
        if changed.ll {
            let w = self.segmenter.ll();
            self.stats.ll_segments = w.next_msn;
            let newest = match &w.partial {
                Some(p) => p.parts.last(),
                None => w.segments.last().and_then(|s| s.parts.last()),
            };
            if let Some(part) = newest {
                check_fragment(&part.data.to_bytes());
            }
            if let Some((_, init)) = w.inits.last().filter(|(_, b)| !b.is_empty()) {
                assert_eq!(init.get(4..8), Some(&b"ftyp"[..]), "init starts with ftyp");
            }
            self.stats.playlists += check(w);
        }
        if changed.ts {
            let w = self.segmenter.ts();
            self.stats.ts_segments = w.next_msn;
            if let Some(last) = w.segments.last() {
                let data = last.body().to_bytes();
                assert_eq!(data.len() % TS_PACKET, 0, "whole TS packets");
                assert!(
                    data.chunks(TS_PACKET).all(|p| p[0] == 0x47),
                    "every TS packet starts with the sync byte"
                );
            }
            self.stats.playlists += check(w);
        }
    }
}

/// Checks a window and the playlists rendered from it; returns how many were rendered.
fn check(w: &Window) -> usize {
    for pair in w.segments.windows(2) {
        assert_eq!(pair[1].msn, pair[0].msn + 1, "MSNs are continuous");
    }
    if let Some(last) = w.segments.last() {
        assert_eq!(
            w.next_msn,
            last.msn + 1,
            "next_msn follows the last segment"
        );
    }
    let ll = w.flavor == Flavor::Fmp4;
    for s in &w.segments {
        assert!(
            s.duration.is_finite() && s.duration >= 0.0,
            "segment duration {}",
            s.duration
        );
        assert!(
            s.duration.round() <= f64::from(w.target_duration),
            "EXTINF {} within EXT-X-TARGETDURATION {}",
            s.duration,
            w.target_duration
        );
        if ll {
            assert!(
                w.init(s.init).is_some(),
                "segment {} names a held init",
                s.msn
            );
            assert!(!s.parts.is_empty(), "LL-HLS segments are made of parts");
        }
    }
    if let Some(p) = &w.partial {
        assert_eq!(p.msn, w.next_msn, "the partial segment is the next one");
        assert!(
            w.init(p.init).is_some(),
            "the partial segment names a held init"
        );
    }
    let mut rendered = 0;
    for skip in [false, true] {
        if skip && !ll {
            continue;
        }
        let text = playlist::render(w, Render { query: "", skip });
        rendered += 1;
        assert!(text.starts_with("#EXTM3U\n"), "{text}");
        for line in text.lines() {
            if line.starts_with("#EXT-X-PRELOAD-HINT") {
                continue;
            }
            let uri = if let Some(tag) = line.strip_prefix('#') {
                match tag.split_once("URI=\"") {
                    Some((_, rest)) => rest.split('"').next().unwrap_or_default(),
                    None => continue,
                }
            } else {
                line
            };
            assert!(resolves(w, uri), "{uri} in\n{text}");
        }
    }
    rendered
}

/// A part is exactly one `moof` and one `mdat`, their sizes adding up to the part's.
fn check_fragment(data: &[u8]) {
    let size_at = |at: usize, kind: &[u8; 4]| -> usize {
        let header = data.get(at..at + 8).expect("a box header");
        assert_eq!(&header[4..], kind, "box at {at}");
        u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize
    };
    let moof = size_at(0, b"moof");
    let mdat = size_at(moof, b"mdat");
    assert_eq!(moof + mdat, data.len(), "moof + mdat make the part");
}

/// Whether the HTTP side would find `uri` in `w`.
fn resolves(w: &Window, uri: &str) -> bool {
    match names::parse(uri, &w.prefix, w.flavor == Flavor::Ts) {
        Some(names::Parsed::Segment(msn)) => w.segment(msn).is_some(),
        Some(names::Parsed::Part(msn, part)) => w.part(msn, part).is_some(),
        Some(names::Parsed::Init(id)) => w.init(id).is_some(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed seeds (made by `examples/fuzz_seeds.rs`) still go where they were made
    /// to go: the publishes all the way to segments in both windows, the hostile ones through
    /// without a failed check.
    #[test]
    fn seed_corpus_reaches_the_playlists() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ingest");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/ingest") {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let stats = ingest(&std::fs::read(&path).expect("read seed"));
            seen += 1;
            assert!(stats.publishes >= 1, "{name}: {stats:?}");
            if name.starts_with("hostile") {
                continue;
            }
            assert!(
                stats.ll_segments >= 2 && stats.ts_segments >= 2,
                "{name}: {stats:?}"
            );
            if name == "reconnect" {
                assert_eq!(stats.publishes, 2, "{name}");
            }
        }
        assert!(seen >= 10, "{seen} seeds in {}", dir.display());
    }

    #[test]
    fn empty_and_garbage_inputs_end_quietly() {
        assert_eq!(ingest(&[]), IngestStats::default());
        for mode in [0u8, 3, 0x1f] {
            let stats = ingest(&[mode, 0xff, 0x00, 0x13, 0x37]);
            assert_eq!(stats.publishes, 1 + usize::from(mode & 16 != 0));
            assert_eq!(stats.ll_segments, 0);
        }
    }
}
