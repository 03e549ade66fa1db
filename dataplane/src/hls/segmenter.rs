//! Where segments and parts are cut: one camera's media events in, two windows out
//! (LL-HLS fMP4 parts and segments, classic HLS MPEG-TS segments), cut at the same
//! boundaries on one output timeline.
//!
//! Sans-IO: the caller passes the wall clock (`now`) with each event and publishes the
//! windows after each call that reports a change. Nothing here reads a clock or a socket.
//!
//! Lifecycle: a camera's segmenter outlives its RTMP connections. Each connection is a
//! *session*: [`Segmenter::start_session`] on publish, events, then
//! [`Segmenter::end_session`] on disconnect, which closes the segment in progress. A new
//! session continues the same playlists (same prefix, next MSN) behind an
//! `EXT-X-DISCONTINUITY`, so players stay attached across a reconnect; [`Segmenter::finish`]
//! ends the playlists (`EXT-X-ENDLIST`) when the camera stays away.
//!
//! Timing rules (RFC 8216bis §4.4.3.1, §4.4.4.9; Apple LL-HLS authoring guidance):
//! - segments start on a keyframe and close at the first keyframe once the target duration
//!   is reached (minus half a frame, so a 2 s GOP yields 2 s segments despite ms rounding);
//! - the part duration is a whole number of frames chosen from the observed frame duration
//!   so parts are stable, and PART-TARGET is 10 % above it: every part except a segment's
//!   last stays above 85 % of PART-TARGET (iOS rejects shorter ones) and none exceeds it;
//! - one timeline for both tracks, starting at 10 s (so PTS with negative composition
//!   offsets and TS PCR stay positive) and continuing across sessions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use camstream_protocol::relay::{self, Cut, Message};
use camstream_protocol::{
    AacConfig, AudioConfig, MediaEvent, MediaFrame, StreamMetadata, TICKS_PER_SECOND, TrackConfig,
    TrackKind, VideoConfig,
};

use super::window::{Flavor, Part, Partial, Segment, Window};
use crate::chunks::Chunks;
use crate::fmp4::{self, FragmentWriter, Sample};
use crate::record::RecordedFragment;
use crate::ts;

/// Output timeline origin of a new stream: 10 s.
const TIMELINE_START: i64 = 10 * TICKS_PER_SECOND;
/// Frames buffered at most while the tracks of a session are discovered.
const MAX_DISCOVERY_FRAMES: usize = 600;
/// Discovery gives up waiting for announced tracks after this much media.
const MAX_DISCOVERY_SPAN: i64 = 2 * TICKS_PER_SECOND;
/// `close_part` boundary meaning "the session ends: take every remaining sample".
const FLUSH: i64 = i64::MAX;
/// Video frames used to estimate the frame duration.
const FRAME_ESTIMATE_FRAMES: usize = 6;
/// Parts kept for the recorder between two drains (the publisher drains after every
/// event, so more than a couple means nobody drains: the oldest go).
const MAX_RECORDED: usize = 16;

/// Segmenting settings (validated by the server config).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Target segment duration.
    pub(crate) segment_target: Duration,
    /// Target part duration (LL-HLS).
    pub(crate) part_target: Duration,
    /// Complete segments kept in each window.
    pub(crate) window: usize,
    /// `PART-HOLD-BACK`, in part targets.
    pub(crate) part_hold_back: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(200),
            window: 8,
            part_hold_back: super::window::DEFAULT_PART_HOLD_BACK,
        }
    }
}

/// Which windows changed in a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changed {
    /// The LL-HLS window.
    pub(crate) ll: bool,
    /// The TS window.
    pub(crate) ts: bool,
}

impl Changed {
    fn merge(&mut self, other: Changed) {
        self.ll |= other.ll;
        self.ts |= other.ts;
    }
}

/// Counters for stream health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Video frames accepted.
    pub(crate) video_frames: u64,
    /// Audio frames accepted.
    pub(crate) audio_frames: u64,
    /// Media payload bytes accepted.
    pub(crate) bytes: u64,
    /// Frames dropped (before the first keyframe, tracks not in the session, overflow).
    pub(crate) dropped: u64,
}

/// One camera's segmenter. See the module docs.
pub(crate) struct Segmenter {
    settings: Settings,
    ll: Window,
    ts: Window,
    session: Option<Session>,
    /// End of the output timeline so far (90 kHz).
    out_end: i64,
    /// Id of the newest init segment.
    init_id: u32,
    /// The next segment follows a discontinuity.
    discontinuity: bool,
    fragments: FragmentWriter,
    fragment_seq: u32,
    counters: Counters,
    /// A problem the shell should log (and, for a session that cannot produce output,
    /// end the publish for).
    failure: Option<String>,
    /// Where the part closed by a flush ends (see [`FLUSH`]).
    flush_end: i64,
    /// Completed parts are also queued for the recorder.
    record: bool,
    recorded: Vec<RecordedFragment>,
    /// LL-HLS segments pushed with a discontinuity, for relay positions.
    discontinuities: u64,
    /// Origin side: what relays receive (`None`: this camera is not relayed).
    relay: Option<RelayLog>,
    /// Where the next session's first frame belongs (ABR renditions).
    anchor: Option<Anchor>,
    /// An ABR rendition's camera's dates, by LL-HLS segment number.
    camera_dates: Option<CameraDates>,
}

/// The date of a camera's LL-HLS segment by number, if it still has it: an ABR rendition's
/// segments are cut where its camera's are, under the same numbers, and take their dates.
/// Dating a rendition by its own timestamps from the anchor alone leaves it a frame off
/// its camera after some transcoder restarts (ffmpeg's first segment then holds a frame
/// more, measured: 2.033 s against the camera's 2.000), and players that switch variants
/// by date (hls.js) then stall at the switch.
pub(crate) type CameraDates = Arc<dyn Fn(u64) -> Option<SystemTime> + Send + Sync>;

/// How far a rendition's date may be moved onto its camera's at a segment start; more means
/// the numbers do not belong together (the date is left alone).
const MAX_DATE_CORRECTION: Duration = Duration::from_secs(1);

/// An ABR rendition's anchor in its camera's stream: the rendition's first frame is the
/// camera's frame that started LL-HLS segment `msn` (TS segment `ts_msn`) at wall-clock
/// time `wall`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Anchor {
    pub(crate) msn: u64,
    pub(crate) ts_msn: u64,
    pub(crate) wall: SystemTime,
}

/// What one publishing connection contributes.
struct Session {
    metadata: Option<StreamMetadata>,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    state: SessionState,
}

enum SessionState {
    /// Tracks not known yet: frames wait here.
    Discovering(Vec<MediaFrame>),
    Running(Box<Running>),
}

/// Per-session state once tracks are known.
struct Running {
    has_video: bool,
    audio_rate: Option<u32>,
    /// Input dts mapped to `out_origin`.
    in_origin: i64,
    out_origin: i64,
    wall_origin: SystemTime,
    frame_duration: i64,
    /// Close a part once it reaches this (90 kHz).
    part_threshold: i64,
    /// Never let a part exceed this (advertised PART-TARGET, 90 kHz).
    part_max: i64,
    /// Close a segment at a keyframe once it reaches this.
    segment_threshold: i64,
    /// Video sample waiting for the next one to know its duration.
    pending: Option<Pending>,
    /// Video samples of the part being built.
    video: Vec<Sample>,
    /// Audio samples not yet in a part, with their start in 90 kHz.
    audio: Vec<(i64, Sample)>,
    /// Next audio decode time, audio timescale.
    audio_next: Option<u64>,
    /// Start of the part / segment being built (90 kHz); `None` when empty.
    part_start: Option<i64>,
    segment_start: Option<i64>,
    /// The session's TS muxer, used by its segments when first requested.
    ts: Arc<ts::TsSession>,
    /// Frames of the TS segment being built (output timeline).
    ts_frames: Vec<MediaFrame>,
    ts_open: bool,
    /// Seen the first keyframe (video) — media before it is dropped.
    started: bool,
    /// The session's track configurations (relay positions carry them).
    video_config: Option<VideoConfig>,
    audio_config: Option<AudioConfig>,
}

struct Pending {
    dts: i64,
    cts: i32,
    keyframe: bool,
    data: Bytes,
}

impl Segmenter {
    /// A segmenter with empty windows named with `prefix`.
    pub(crate) fn new(settings: Settings, prefix: Arc<str>) -> Self {
        let target = settings.segment_target.as_secs_f64().ceil().max(1.0) as u32;
        let mut ll = Window::new(Flavor::Fmp4, prefix.clone());
        let mut ts = Window::new(Flavor::Ts, prefix);
        for w in [&mut ll, &mut ts] {
            w.target_duration = target;
            w.skip_until = 6.0 * f64::from(target);
            w.parts_horizon = 3.0 * f64::from(target);
            w.part_target = settings.part_target.as_secs_f64();
            w.part_hold_back = settings.part_hold_back;
        }
        Self {
            settings,
            ll,
            ts,
            session: None,
            out_end: TIMELINE_START,
            init_id: 0,
            discontinuity: false,
            fragments: FragmentWriter::new(),
            fragment_seq: 0,
            counters: Counters::default(),
            failure: None,
            flush_end: 0,
            record: false,
            recorded: Vec::new(),
            discontinuities: 0,
            relay: None,
            anchor: None,
            camera_dates: None,
        }
    }

    /// Numbers the first segment `msn` (LL-HLS and TS) instead of 0. Call before the first
    /// session (a cluster origin starts above what an earlier origin reached).
    pub(crate) fn set_first_msn(&mut self, msn: u64) {
        debug_assert!(self.ll.segments.is_empty() && self.ll.partial.is_none());
        self.ll.next_msn = msn;
        self.ts.next_msn = msn;
    }

    /// Anchors the next session's first frame (see [`Anchor`]): consumed when it starts.
    pub(crate) fn set_anchor(&mut self, anchor: Anchor) {
        self.anchor = Some(anchor);
    }

    /// An ABR rendition: each segment takes the date of its camera's segment with the same
    /// number ([`CameraDates`]), when the camera has it.
    pub(crate) fn set_camera_dates(&mut self, dates: CameraDates) {
        self.camera_dates = Some(dates);
    }

    /// Whether completed parts are queued for the recorder ([`Segmenter::take_recorded`]).
    pub(crate) fn set_recording(&mut self, on: bool) {
        self.record = on;
        if !on {
            self.recorded.clear();
        }
    }

    /// The parts completed since the last call, for the recorder.
    pub(crate) fn take_recorded(&mut self) -> std::vec::Drain<'_, RecordedFragment> {
        self.recorded.drain(..)
    }

    /// Takes the last problem met, if any (unsupported track layout, oversized fragment).
    pub(crate) fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// The LL-HLS window.
    pub(crate) fn ll(&self) -> &Window {
        &self.ll
    }

    /// The TS window.
    pub(crate) fn ts(&self) -> &Window {
        &self.ts
    }

    /// Counters since the segmenter was made.
    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    /// Current video configuration, if the session has one.
    pub(crate) fn video_config(&self) -> Option<&VideoConfig> {
        self.session.as_ref()?.video.as_ref()
    }

    /// Current audio configuration, if the session has one.
    pub(crate) fn audio_config(&self) -> Option<&AudioConfig> {
        self.session.as_ref()?.audio.as_ref()
    }

    /// Starts a publishing session. A session already running is ended first.
    pub(crate) fn start_session(&mut self) -> Changed {
        let changed = self.end_session();
        self.ll.ended = false;
        self.ts.ended = false;
        self.session = Some(Session {
            metadata: None,
            video: None,
            audio: None,
            state: SessionState::Discovering(Vec::new()),
        });
        changed
    }

    /// Ends the session: closes the part and segment in progress; the next session's first
    /// segment follows a discontinuity.
    pub(crate) fn end_session(&mut self) -> Changed {
        let Some(session) = self.session.take() else {
            return Changed::default();
        };
        let mut changed = Changed::default();
        if let SessionState::Running(mut run) = session.state {
            changed = self.flush(&mut run);
            self.relay_push(Message::Flush);
        }
        self.discontinuity = true;
        changed
    }

    /// Ends the playlists for good (`EXT-X-ENDLIST`).
    pub(crate) fn finish(&mut self) -> Changed {
        let mut changed = self.end_session();
        self.relay_push(Message::End(relay::End {
            reason: relay::EndReason::Finished,
            text: "the camera's playlists ended".into(),
        }));
        self.ll.ended = true;
        self.ts.ended = true;
        changed.merge(Changed { ll: true, ts: true });
        changed
    }

    /// Feeds one media event of the current session (ignored without one).
    pub(crate) fn handle_event(&mut self, now: SystemTime, event: MediaEvent) -> Changed {
        let Some(session) = self.session.as_mut() else {
            return Changed::default();
        };
        match event {
            MediaEvent::Metadata(m) => {
                session.metadata = Some(m);
                Changed::default()
            }
            MediaEvent::Config(c) => self.handle_config(now, c),
            MediaEvent::Frame(f) => self.handle_frame(now, f),
            _ => Changed::default(),
        }
    }

    fn handle_config(&mut self, now: SystemTime, config: TrackConfig) -> Changed {
        let session = self.session.as_mut().expect("checked by the caller");
        let same = match &config {
            TrackConfig::Video(v) => session.video.as_ref() == Some(v),
            TrackConfig::Audio(a) => session.audio.as_ref() == Some(a),
            _ => true,
        };
        if same {
            return Changed::default();
        }
        match config {
            TrackConfig::Video(v) => session.video = Some(v),
            TrackConfig::Audio(a) => session.audio = Some(a),
            _ => {}
        }
        let mut changed = Changed::default();
        if matches!(session.state, SessionState::Running(_)) {
            // A codec change mid-session: close what we have, start over with a new init
            // segment behind a discontinuity. The timeline continues.
            let state =
                std::mem::replace(&mut session.state, SessionState::Discovering(Vec::new()));
            if let SessionState::Running(mut run) = state {
                changed = self.flush(&mut run);
                self.relay_push(Message::Flush);
            }
            self.discontinuity = true;
        }
        changed.merge(self.try_start(now));
        changed
    }

    fn handle_frame(&mut self, now: SystemTime, frame: MediaFrame) -> Changed {
        let session = self.session.as_mut().expect("checked by the caller");
        match &mut session.state {
            SessionState::Discovering(buf) => {
                if buf.len() >= MAX_DISCOVERY_FRAMES {
                    buf.remove(0);
                    self.counters.dropped += 1;
                }
                buf.push(frame);
                self.try_start(now)
            }
            SessionState::Running(_) => self.process(now, frame, None),
        }
    }

    /// Leaves discovery when the session's tracks are known (see [`ready`]).
    fn try_start(&mut self, now: SystemTime) -> Changed {
        let session = self.session.as_mut().expect("session exists");
        let SessionState::Discovering(buf) = &session.state else {
            return Changed::default();
        };
        if !ready(
            session.metadata.as_ref(),
            &session.video,
            &session.audio,
            buf,
        ) {
            return Changed::default();
        }
        let SessionState::Discovering(buf) =
            std::mem::replace(&mut session.state, SessionState::Discovering(Vec::new()))
        else {
            unreachable!("matched above")
        };
        let video = session.video.clone();
        let audio = session.audio.clone();
        let run = self.start_running(now, video.as_ref(), audio.as_ref(), &buf);
        if self.relay.is_some() {
            let init = self.relay_init(&run);
            self.relay_restart(init.clone(), None, &[]);
            self.relay
                .as_mut()
                .expect("checked above")
                .out
                .push(Message::Init(init));
        }
        self.session.as_mut().expect("session exists").state = SessionState::Running(Box::new(run));
        let mut changed = Changed::default();
        for frame in buf {
            changed.merge(self.process(now, frame, None));
        }
        changed
    }

    fn start_running(
        &mut self,
        now: SystemTime,
        video: Option<&VideoConfig>,
        audio: Option<&AudioConfig>,
        buf: &[MediaFrame],
    ) -> Running {
        let has_video = video.is_some();
        let audio_rate = audio.map(AudioConfig::sample_rate);
        self.ll.audio_only = !has_video;
        self.ts.audio_only = !has_video;
        let frame_duration = if has_video {
            estimate_frame_duration(buf)
        } else {
            let rate = i64::from(audio_rate.unwrap_or(48_000).max(1));
            (i64::from(AacConfig::SAMPLES_PER_FRAME) * TICKS_PER_SECOND / rate).max(1)
        };
        let target = duration_ticks(self.settings.part_target).max(1);
        let frames = ((target as f64 / frame_duration as f64).round() as i64).max(1);
        let part_nominal = frames * frame_duration;
        let part_max = part_nominal + part_nominal / 10;
        let segment_target = duration_ticks(self.settings.segment_target);
        // The first usable frame: a video keyframe, or any audio frame when audio-only.
        let in_origin = buf
            .iter()
            .find(|f| {
                if has_video {
                    f.track == TrackKind::Video && f.keyframe
                } else {
                    f.track == TrackKind::Audio
                }
            })
            .or(buf.first())
            .map_or(0, |f| f.dts);
        let out_origin = if self.ll.segments.is_empty() && self.ll.partial.is_none() {
            self.out_end
        } else {
            self.out_end + frame_duration
        };
        // PART-TARGET is advertised once per stream and must not change under a player:
        // the first session decides it.
        if self.init_id == 0 && self.ll.inits.is_empty() {
            let advertised = (part_max as f64 / TICKS_PER_SECOND as f64 * 1000.0).ceil() / 1000.0;
            self.ll.part_target = advertised;
            self.ts.part_target = advertised;
        }
        let part_max = part_max.max(seconds_to_ticks(self.ll.part_target));
        let init = match fmp4::init_segment(video, audio) {
            Ok(init) => init,
            Err(e) => {
                // Only reachable for codecs the demuxer already refuses; keep the stream
                // alive without an init segment change and say why.
                self.failure = Some(format!("cannot build the fMP4 init segment: {e}"));
                self.ll
                    .inits
                    .last()
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default()
            }
        };
        // A reconnect with the same codec parameters keeps the same EXT-X-MAP.
        if self.ll.inits.last().is_none_or(|(_, last)| *last != init) {
            self.init_id += 1;
            self.ll.inits.push((self.init_id, init));
        }
        let ts_video = match video {
            Some(VideoConfig::H264(c)) => Some(c),
            _ => None,
        };
        let ts_audio = match audio {
            Some(AudioConfig::Aac(c)) => Some(c),
            _ => None,
        };
        // An ABR rendition's first frame is its camera's frame that started segment
        // `anchor.msn` at `anchor.wall`: number and date it the same, so a player switching
        // between them finds the same segment under the same number and time.
        let mut wall_origin = now;
        if let Some(a) = self.anchor.take() {
            // The transcoder's first picture is the camera's keyframe at `a.wall` (after a
            // restart mid-stream its decoder may drop that picture: the first segment then
            // starts a frame late, and the next ones line up again).
            wall_origin = a.wall;
            for (w, msn) in [(&mut self.ll, a.msn), (&mut self.ts, a.ts_msn)] {
                let empty = w.segments.is_empty() && w.partial.is_none();
                if !empty && msn > w.next_msn {
                    relay_log::restart_window(w);
                }
                if empty || msn > w.next_msn {
                    w.next_msn = msn;
                }
            }
        }
        Running {
            has_video,
            audio_rate,
            in_origin,
            out_origin,
            wall_origin,
            frame_duration,
            part_threshold: part_nominal - frame_duration / 2,
            part_max,
            segment_threshold: segment_target - frame_duration / 2,
            pending: None,
            video: Vec::with_capacity(32),
            audio: Vec::with_capacity(32),
            audio_next: None,
            part_start: None,
            segment_start: None,
            ts: ts::TsSession::new(ts_video, ts_audio),
            ts_frames: Vec::new(),
            ts_open: false,
            started: false,
            video_config: video.cloned(),
            audio_config: audio.cloned(),
        }
    }

    /// Segments one frame. `follow`: the origin's cut decisions for a relayed frame (edge);
    /// `None`: decide here.
    fn process(&mut self, _now: SystemTime, frame: MediaFrame, follow: Option<Cut>) -> Changed {
        let mut session = self.session.take().expect("session exists");
        let SessionState::Running(run) = &mut session.state else {
            unreachable!("process is only called while running")
        };
        let changed = match frame.track {
            TrackKind::Video if run.has_video => self.process_video(run, frame, follow),
            TrackKind::Audio if run.audio_rate.is_some() => self.process_audio(run, frame, follow),
            _ => {
                self.counters.dropped += 1;
                Changed::default()
            }
        };
        self.session = Some(session);
        changed
    }

    fn process_video(
        &mut self,
        run: &mut Running,
        frame: MediaFrame,
        follow: Option<Cut>,
    ) -> Changed {
        if !run.started {
            if !frame.keyframe || frame.dts < run.in_origin {
                self.counters.dropped += 1;
                return Changed::default();
            }
            run.started = true;
        }
        self.counters.video_frames += 1;
        self.counters.bytes += frame.data.len() as u64;
        let mut dts = frame.dts - run.in_origin + run.out_origin;
        let mut changed = Changed::default();
        let mut cut = Cut::default();
        if let Some(p) = run.pending.take() {
            // Decode order must advance: a non-increasing DTS (broken encoder) is nudged.
            dts = dts.max(p.dts + 1);
            cut.previous_part = match follow {
                Some(c) => c.previous_part,
                None => part_full(run, &p, dts),
            };
            changed.merge(self.append_video(run, p, dts, cut.previous_part));
        }
        let elapsed = run.segment_start.map_or(0, |s| dts - s);
        match follow {
            Some(c) => (cut.segment, cut.part) = (c.segment, c.part || c.segment),
            None => {
                cut.segment = frame.keyframe
                    && run.segment_start.is_some()
                    && elapsed >= run.segment_threshold;
                cut.part = cut.segment
                    || run
                        .part_start
                        .is_some_and(|s| dts - s >= run.part_threshold);
            }
        }
        if cut.part {
            changed.merge(self.close_part(run, dts));
        }
        if cut.segment {
            changed.merge(self.close_segment(run, dts));
        }
        let segment_starts = run.segment_start.is_none();
        self.open_segment(run, dts);
        let out = MediaFrame { dts, ..frame };
        run.ts_frames.push(out.clone());
        if self.relay.is_some() {
            let msg = Message::Frame(relay::Frame {
                frame: out.clone(),
                cut,
            });
            if segment_starts && out.keyframe {
                let init = self.relay_init(run);
                self.relay_restart(init, Some(msg.clone()), &run.audio);
                self.relay.as_mut().expect("checked above").out.push(msg);
            } else {
                self.relay_push(msg);
            }
        }
        run.pending = Some(Pending {
            dts,
            cts: out.cts,
            keyframe: out.keyframe,
            data: out.data,
        });
        changed
    }

    /// Adds the pending video sample, now that the next DTS gives its duration.
    /// `cut`: the part closes before this sample (see [`part_full`]).
    fn append_video(&mut self, run: &mut Running, p: Pending, next_dts: i64, cut: bool) -> Changed {
        let duration = (next_dts - p.dts).clamp(1, i64::from(u32::MAX));
        let mut changed = Changed::default();
        if cut {
            changed.merge(self.close_part(run, p.dts));
        }
        run.part_start.get_or_insert(p.dts);
        run.video.push(Sample {
            decode_time: p.dts as u64,
            duration: duration as u32,
            cts: p.cts,
            keyframe: p.keyframe,
            data: p.data,
        });
        changed
    }

    fn process_audio(
        &mut self,
        run: &mut Running,
        frame: MediaFrame,
        follow: Option<Cut>,
    ) -> Changed {
        let rate = i64::from(run.audio_rate.expect("checked by the caller").max(1));
        if frame.dts < run.in_origin || (run.has_video && !run.started) {
            self.counters.dropped += 1;
            return Changed::default();
        }
        self.counters.audio_frames += 1;
        self.counters.bytes += frame.data.len() as u64;
        let out = frame.dts - run.in_origin + run.out_origin;
        // AAC frames are exactly 1024 samples: count them instead of trusting millisecond
        // timestamps, and resynchronise only on a real gap or overlap (> 2 frames).
        let actual = if follow.is_some() {
            // A relayed audio frame carries the origin's start, rounded down to 90 kHz from
            // its sample position: rounding up gives the position back exactly (for rates up
            // to 90 kHz, where sample positions map to distinct ticks).
            ((out * rate + TICKS_PER_SECOND - 1).div_euclid(TICKS_PER_SECOND)).max(0) as u64
        } else {
            (out * rate / TICKS_PER_SECOND) as u64
        };
        let frame_len = u64::from(AacConfig::SAMPLES_PER_FRAME);
        let time = match run.audio_next {
            Some(next) if next.abs_diff(actual) <= 2 * frame_len => next,
            _ => actual,
        };
        run.audio_next = Some(time + frame_len);
        let start = time as i64 * TICKS_PER_SECOND / rate;
        let end = (time + frame_len) as i64 * TICKS_PER_SECOND / rate;
        let ts_frame = MediaFrame {
            dts: start,
            cts: 0,
            ..frame
        };
        let mut changed = Changed::default();
        let segment_starts = !run.has_video && run.segment_start.is_none();
        if !run.has_video {
            self.open_segment(run, start);
        }
        if run.ts_open {
            run.ts_frames.push(ts_frame.clone());
        }
        let relayed = self.relay.is_some().then(|| ts_frame.clone());
        let restart = (self.relay.is_some() && segment_starts).then(|| self.relay_init(run));
        if !run.has_video {
            run.part_start.get_or_insert(start);
        }
        run.audio.push((
            start,
            Sample {
                decode_time: time,
                duration: AacConfig::SAMPLES_PER_FRAME,
                cts: 0,
                keyframe: true,
                data: ts_frame.data,
            },
        ));
        let mut cut = Cut::default();
        if !run.has_video {
            match follow {
                Some(c) => (cut.segment, cut.part) = (c.segment, c.part || c.segment),
                None => {
                    let elapsed = run.segment_start.map_or(0, |s| end - s);
                    cut.segment = elapsed >= run.segment_threshold;
                    cut.part = cut.segment
                        || run
                            .part_start
                            .is_some_and(|s| end - s >= run.part_threshold);
                }
            }
            if cut.part {
                changed.merge(self.close_part(run, end));
            }
            if cut.segment {
                changed.merge(self.close_segment(run, end));
            }
        }
        if let Some(frame) = relayed {
            let msg = Message::Frame(relay::Frame { frame, cut });
            match restart {
                // Audio-only: the segment started with this frame (its cuts come after it).
                Some(init) => {
                    self.relay_restart(init, Some(msg.clone()), &[]);
                    self.relay.as_mut().expect("relayed").out.push(msg);
                }
                None => self.relay_push(msg),
            }
        }
        changed
    }

    /// Starts a segment at `at` if none is open.
    fn open_segment(&mut self, run: &mut Running, at: i64) {
        if run.segment_start.is_none() {
            if let Some(date) = self.camera_dates.as_ref().and_then(|d| d(self.ll.next_msn)) {
                redate(run, at, date);
            }
            run.segment_start = Some(at);
            run.ts_open = true;
        }
    }

    /// Emits the part being built, ending at `boundary`: its video samples and the audio
    /// samples that start before the boundary.
    fn close_part(&mut self, run: &mut Running, boundary: i64) -> Changed {
        let Some(start) = run.part_start else {
            return Changed::default();
        };
        let split = if run.has_video && boundary != FLUSH {
            run.audio.partition_point(|(t, _)| *t < boundary)
        } else {
            run.audio.len()
        };
        if run.video.is_empty() && split == 0 {
            return Changed::default();
        }
        // Audio samples are few per part; moving them out keeps `run.audio` for the rest.
        let audio: Vec<Sample> = run.audio.drain(..split).map(|(_, s)| s).collect();
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        let data = match self.fragments.write(self.fragment_seq, &run.video, &audio) {
            Ok(data) => data,
            Err(e) => {
                self.counters.dropped += (run.video.len() + audio.len()) as u64;
                self.failure = Some(format!("part dropped: {e}"));
                run.video.clear();
                run.part_start = None;
                return Changed::default();
            }
        };
        let independent = if run.has_video {
            run.video.first().is_some_and(|s| s.keyframe)
        } else {
            true
        };
        let end = if boundary == FLUSH {
            self.flush_end
        } else {
            boundary
        };
        let duration = ticks_to_seconds(end - start);
        run.video.clear();
        run.part_start = None;
        let part = Arc::new(Part {
            duration,
            independent,
            data,
        });
        if self.record {
            if self.recorded.len() >= MAX_RECORDED {
                self.recorded.remove(0);
            }
            self.recorded.push(RecordedFragment {
                init: self
                    .ll
                    .inits
                    .last()
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default(),
                data: part.data.clone(),
                media_start: start,
                duration: end - start,
                audio_rate: run.audio_rate,
                wall_start: wall(run, start),
                independent,
                discontinuity: self.ll.partial.is_none() && self.discontinuity,
            });
        }
        let pdt = wall(run, run.segment_start.unwrap_or(start));
        let partial = self.ll.partial.get_or_insert_with(|| Partial {
            msn: self.ll.next_msn,
            discontinuity: self.discontinuity,
            init: self.init_id,
            program_date_time: pdt,
            parts: Vec::with_capacity(16),
        });
        partial.parts.push(part);
        self.out_end = self.out_end.max(end);
        Changed {
            ll: true,
            ts: false,
        }
    }

    /// Completes the segment in progress in both windows; the segment ends at `boundary`.
    fn close_segment(&mut self, run: &mut Running, boundary: i64) -> Changed {
        let Some(start) = run.segment_start.take() else {
            return Changed::default();
        };
        let duration = ticks_to_seconds(boundary - start);
        let pdt = wall(run, start);
        let discontinuity = std::mem::take(&mut self.discontinuity);
        let mut changed = Changed::default();
        if let Some(partial) = self.ll.partial.take() {
            let mut data = Chunks::with_capacity(partial.parts.len() * 8);
            for p in &partial.parts {
                data.extend(&p.data);
            }
            let duration = partial.parts.iter().map(|p| p.duration).sum();
            self.discontinuities += u64::from(partial.discontinuity);
            push_segment(
                &mut self.ll,
                Segment {
                    msn: partial.msn,
                    duration,
                    discontinuity: partial.discontinuity,
                    init: partial.init,
                    program_date_time: partial.program_date_time,
                    parts: partial.parts,
                    data,
                    ts: None,
                },
                self.settings.window,
            );
            changed.ll = true;
        }
        if run.ts_open {
            run.ts_open = false;
            let next = Vec::with_capacity(run.ts_frames.len() + run.ts_frames.len() / 4);
            let frames = std::mem::replace(&mut run.ts_frames, next);
            let lazy = ts::LazySegment::new(run.ts.clone(), frames);
            let msn = self.ts.next_msn;
            push_segment(
                &mut self.ts,
                Segment {
                    msn,
                    duration,
                    discontinuity,
                    init: 0,
                    program_date_time: pdt,
                    parts: Vec::new(),
                    data: Chunks::new(),
                    ts: Some(lazy),
                },
                self.settings.window,
            );
            changed.ts = true;
        }
        self.out_end = self.out_end.max(boundary);
        changed
    }

    /// Ends a session's media: the pending sample gets the estimated frame duration and
    /// the part and segment in progress are completed. With video, the last part ends with
    /// the last video frame and takes every remaining audio frame along; the next session
    /// starts after the later of the two.
    fn flush(&mut self, run: &mut Running) -> Changed {
        let mut changed = Changed::default();
        let mut end = run.part_start.unwrap_or(self.out_end);
        if let Some(p) = run.pending.take() {
            end = p.dts + run.frame_duration;
            let cut = part_full(run, &p, end);
            changed.merge(self.append_video(run, p, end, cut));
        }
        let rate = i64::from(run.audio_rate.unwrap_or(48_000).max(1));
        let audio_end = run
            .audio
            .last()
            .map(|(t, _)| t + i64::from(AacConfig::SAMPLES_PER_FRAME) * TICKS_PER_SECOND / rate);
        if !run.has_video {
            end = end.max(audio_end.unwrap_or(end));
        }
        self.flush_end = end;
        changed.merge(self.close_part(run, FLUSH));
        changed.merge(self.close_segment(run, end));
        self.out_end = self.out_end.max(end).max(audio_end.unwrap_or(end));
        changed
    }
}

/// Whether the part in progress would exceed PART-TARGET with the pending sample, which
/// ends at `next_dts`: then the sample starts a new part.
fn part_full(run: &Running, p: &Pending, next_dts: i64) -> bool {
    let duration = (next_dts - p.dts).clamp(1, i64::from(u32::MAX));
    run.part_start
        .is_some_and(|start| p.dts + duration - start > run.part_max)
        && !run.video.is_empty()
}

/// Appends a segment, evicts beyond the window and updates the target duration.
fn push_segment(w: &mut Window, segment: Segment, keep: usize) {
    let rounded = segment.duration.round() as u32;
    w.target_duration = w.target_duration.max(rounded);
    w.next_msn = segment.msn + 1;
    w.segments.push(Arc::new(segment));
    // A TS segment past the live end's few gives its packets back (`ts::lazy`).
    if let Some(old) = w
        .segments
        .len()
        .checked_sub(ts::CACHED_SEGMENTS + 1)
        .and_then(|i| w.segments[i].ts.as_ref())
    {
        old.release();
    }
    while w.segments.len() > keep.max(1) {
        w.segments.remove(0);
        // The first listed segment's EXT-X-DISCONTINUITY is not printed: it moves into
        // EXT-X-DISCONTINUITY-SEQUENCE.
        if w.segments.first().is_some_and(|s| s.discontinuity) {
            w.discontinuity_sequence += 1;
        }
    }
    // Keep only init segments still referenced.
    let oldest = w.segments.first().map_or(u32::MAX, |s| s.init);
    let newest = w.inits.last().map(|(id, _)| *id);
    w.inits
        .retain(|(id, _)| *id >= oldest || Some(*id) == newest);
}

/// Whether discovery can end: every announced track (or both, without metadata) has its
/// configuration and there are enough frames to estimate timing, or enough media waited.
fn ready(
    metadata: Option<&StreamMetadata>,
    video: &Option<VideoConfig>,
    audio: &Option<AudioConfig>,
    buf: &[MediaFrame],
) -> bool {
    if video.is_none() && audio.is_none() {
        return false;
    }
    let span = match (buf.first(), buf.last()) {
        (Some(a), Some(b)) => b.dts - a.dts,
        _ => 0,
    };
    if span >= MAX_DISCOVERY_SPAN || buf.len() >= MAX_DISCOVERY_FRAMES {
        return true;
    }
    let (want_video, want_audio) = match metadata {
        Some(m) => (
            m.has_video().unwrap_or(video.is_some()),
            m.has_audio().unwrap_or(audio.is_some()),
        ),
        None => (true, true),
    };
    if (want_video && video.is_none()) || (want_audio && audio.is_none()) {
        return false;
    }
    if video.is_some() {
        let keyframe = buf
            .iter()
            .position(|f| f.track == TrackKind::Video && f.keyframe);
        let after = keyframe.map_or(0, |k| {
            buf[k..]
                .iter()
                .filter(|f| f.track == TrackKind::Video)
                .count()
        });
        let span_after = keyframe.map_or(0, |k| {
            buf.iter()
                .rev()
                .find(|f| f.track == TrackKind::Video)
                .map_or(0, |last| last.dts - buf[k].dts)
        });
        // Enough frames to estimate the frame duration; slow cameras (1 fps) need not wait
        // six frames: two frames a second apart tell as much.
        after >= FRAME_ESTIMATE_FRAMES || (after >= 2 && span_after >= TICKS_PER_SECOND)
    } else {
        buf.iter().any(|f| f.track == TrackKind::Audio)
    }
}

/// Median DTS step of the buffered video frames (90 kHz), 1/30 s when unknown.
fn estimate_frame_duration(buf: &[MediaFrame]) -> i64 {
    let mut steps: Vec<i64> = buf
        .iter()
        .filter(|f| f.track == TrackKind::Video)
        .map(|f| f.dts)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0)
        .collect();
    if steps.is_empty() {
        return TICKS_PER_SECOND / 30;
    }
    steps.sort_unstable();
    steps[steps.len() / 2]
}

/// Moves the wall-clock mapping so that `out` falls at `date`, when that is a correction
/// of at most [`MAX_DATE_CORRECTION`].
fn redate(run: &mut Running, out: i64, date: SystemTime) {
    let current = wall(run, out);
    let moved = match date.duration_since(current) {
        Ok(later) if later <= MAX_DATE_CORRECTION => run.wall_origin.checked_add(later),
        Ok(_) => None,
        Err(e) if e.duration() <= MAX_DATE_CORRECTION => run.wall_origin.checked_sub(e.duration()),
        Err(_) => None,
    };
    if let Some(origin) = moved {
        run.wall_origin = origin;
    }
}

fn wall(run: &Running, out: i64) -> SystemTime {
    let offset = out - run.out_origin;
    if offset >= 0 {
        run.wall_origin + Duration::from_micros((offset as u64) * 1_000 / 90)
    } else {
        run.wall_origin - Duration::from_micros(offset.unsigned_abs() * 1_000 / 90)
    }
}

fn duration_ticks(d: Duration) -> i64 {
    (d.as_micros() * 90 / 1_000) as i64
}

fn seconds_to_ticks(s: f64) -> i64 {
    (s * TICKS_PER_SECOND as f64).round() as i64
}

fn ticks_to_seconds(t: i64) -> f64 {
    t as f64 / TICKS_PER_SECOND as f64
}

#[path = "segmenter_relay.rs"]
mod relay_log;

use relay_log::RelayLog;

#[cfg(test)]
#[path = "segmenter_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "relay_tests.rs"]
pub(crate) mod relay_tests;
