//! The segmenter's relay side (see `crate::relay`): on the origin, the log of relay messages
//! (an `Init` at each segment start, every accepted frame with the cut decisions taken for
//! it, `Flush`, `End`) and the GOP cache a joining edge starts from; on the edge, the follow
//! mode that takes position, timing and cuts from those messages instead of deciding them,
//! so parts and segments get the origin's numbers and bytes.

use std::time::{Duration, SystemTime};

use camstream_protocol::relay::{self, Cut, Message};
use camstream_protocol::{AudioConfig, MediaFrame, TrackKind, VideoConfig};

use super::{Changed, Running, Sample, Segmenter, Session, SessionState};
use crate::fmp4;
use crate::ts;

/// The relay messages a segmenter produces (origin side; see `crate::relay`).
#[derive(Default)]
pub(super) struct RelayLog {
    /// Messages since the last [`Segmenter::take_relay`].
    pub(super) out: Vec<Message>,
    /// What a relay joining now needs: an `Init` at the current segment's start and every
    /// frame since (empty until a segment starts after relaying was turned on).
    pub(super) gop: Vec<Message>,
}

impl Segmenter {
    /// Origin side: whether this segmenter produces relay messages
    /// ([`Segmenter::take_relay`], [`Segmenter::relay_gop`]). Turned on, the joining point
    /// is the next segment start.
    pub(crate) fn set_relay(&mut self, on: bool) {
        if on != self.relay.is_some() {
            self.relay = on.then(RelayLog::default);
        }
    }

    /// Origin side: the relay messages produced since the last call, in order.
    pub(crate) fn take_relay(&mut self) -> impl Iterator<Item = Message> + '_ {
        self.relay.iter_mut().flat_map(|r| r.out.drain(..))
    }

    /// Origin side: the messages a relay joining now starts with (an `Init` at the start of
    /// the segment in progress and its frames), empty when there is no such point yet.
    pub(crate) fn relay_gop(&self) -> Vec<Message> {
        self.relay
            .as_ref()
            .map(|r| r.gop.clone())
            .unwrap_or_default()
    }

    /// Origin side: whether a relay can join now ([`Segmenter::relay_gop`] is not empty).
    pub(crate) fn relay_ready(&self) -> bool {
        self.relay.as_ref().is_some_and(|r| !r.gop.is_empty())
    }

    pub(super) fn relay_push(&mut self, msg: Message) {
        if let Some(r) = self.relay.as_mut() {
            if !r.gop.is_empty() {
                r.gop.push(msg.clone());
            }
            r.out.push(msg);
        }
    }

    /// The position and timing where the next segment starts, for relays.
    pub(super) fn relay_init(&self, run: &Running) -> relay::Init {
        let wall_origin_us = match run.wall_origin.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_micros() as i64,
            Err(e) => -(e.duration().as_micros() as i64),
        };
        relay::Init {
            prefix: self.ll.prefix.to_string(),
            msn: self.ll.next_msn,
            ts_msn: self.ts.next_msn,
            part: 0,
            fragment_seq: self.fragment_seq,
            init_id: self.init_id,
            discontinuity: self.discontinuity,
            discontinuity_sequence: self.discontinuities + u64::from(self.discontinuity),
            target_duration: self.ll.target_duration,
            part_target_us: (self.ll.part_target * 1e6).round() as u32,
            timing: relay::Timing {
                out_origin: run.out_origin,
                wall_origin_us,
                frame_duration: run.frame_duration,
                part_max: run.part_max,
            },
            video: run.video_config.clone(),
            audio: run.audio_config.clone(),
        }
    }

    /// A segment starts (session start or a segment cut): relays joining from now on start
    /// here. `first` are the messages that go before the segment's pending audio.
    pub(super) fn relay_restart(
        &mut self,
        init: relay::Init,
        first: Option<Message>,
        audio: &[(i64, Sample)],
    ) {
        let Some(r) = self.relay.as_mut() else {
            return;
        };
        r.gop.clear();
        r.gop.push(Message::Init(init));
        r.gop.extend(first);
        // Audio taken before the cut but timed after it belongs to the new segment: a relay
        // joining here replays it after the keyframe (the edge drops audio before its first
        // keyframe).
        for (start, sample) in audio {
            r.gop.push(Message::Frame(relay::Frame {
                frame: MediaFrame {
                    track: TrackKind::Audio,
                    dts: *start,
                    cts: 0,
                    keyframe: true,
                    data: sample.data.clone(),
                },
                cut: Cut::default(),
            }));
        }
    }

    /// Edge side: a relayed `Init` — the origin's position and timing where the following
    /// frames start. Ends a running session first (the origin sends `Flush` before, so
    /// normally there is none). Numbering, prefix-independent state and timing become the
    /// origin's, so the parts and segments cut from the following frames carry the origin's
    /// numbers.
    pub(crate) fn follow_init(&mut self, init: &relay::Init) -> Changed {
        let mut changed = self.end_session();
        self.ll.ended = false;
        self.ts.ended = false;
        // Fresh: this window never showed viewers anything, so the origin's numbers and
        // discontinuity count can be taken as they are. An empty window is not enough: one
        // restarted for a new origin's numbers stays empty until media comes, and a pull
        // that breaks before then must not lose the discontinuity viewers were promised
        // (nor lower the discontinuity sequence they saw).
        let fresh = self.ll.inits.is_empty()
            && self.ll.segments.is_empty()
            && self.ll.partial.is_none()
            && self.ll.discontinuity_sequence == 0
            && self.ts.discontinuity_sequence == 0;
        // Numbers ahead of this window's (segments missed while not relaying, or a new
        // origin, which starts above any earlier one): the window restarts there.
        let jumped = !fresh && (init.msn > self.ll.next_msn || init.ts_msn > self.ts.next_msn);
        if fresh || init.msn >= self.ll.next_msn {
            self.ll.next_msn = init.msn;
        }
        if fresh || init.ts_msn >= self.ts.next_msn {
            self.ts.next_msn = init.ts_msn;
        }
        if fresh {
            self.ll.discontinuity_sequence = init.discontinuity_sequence;
            self.ts.discontinuity_sequence = init.discontinuity_sequence;
        }
        if jumped {
            restart_window(&mut self.ll);
            restart_window(&mut self.ts);
        }
        self.fragment_seq = init.fragment_seq;
        // A window that goes on from an earlier session (another pull, another origin)
        // continues behind a discontinuity even when the origin's stream has none there.
        self.discontinuity = init.discontinuity || jumped || (!fresh && self.discontinuity);
        let part_target = f64::from(init.part_target_us) / 1e6;
        for w in [&mut self.ll, &mut self.ts] {
            w.target_duration = w.target_duration.max(init.target_duration);
            w.part_target = part_target;
            w.audio_only = init.video.is_none();
        }
        match fmp4::init_segment(init.video.as_ref(), init.audio.as_ref()) {
            Ok(bytes) => {
                if self
                    .ll
                    .inits
                    .last()
                    .is_none_or(|(id, _)| *id != init.init_id)
                {
                    self.ll.inits.push((init.init_id, bytes));
                }
                self.init_id = init.init_id;
            }
            Err(e) => self.failure = Some(format!("cannot build the relayed init segment: {e}")),
        }
        let t = init.timing;
        let wall_origin = if t.wall_origin_us >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_micros(t.wall_origin_us as u64)
        } else {
            SystemTime::UNIX_EPOCH
        };
        let frame_duration = t.frame_duration.max(1);
        let ts_video = match &init.video {
            Some(VideoConfig::H264(c)) => Some(c),
            _ => None,
        };
        let ts_audio = match &init.audio {
            Some(AudioConfig::Aac(c)) => Some(c),
            _ => None,
        };
        let run = Running {
            has_video: init.video.is_some(),
            audio_rate: init.audio.as_ref().map(AudioConfig::sample_rate),
            // Relayed frames are on the origin's output timeline already.
            in_origin: t.out_origin,
            out_origin: t.out_origin,
            wall_origin,
            frame_duration,
            // Cuts come from the origin; the thresholds are not consulted.
            part_threshold: i64::MAX,
            part_max: t.part_max,
            segment_threshold: i64::MAX,
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
            video_config: init.video.clone(),
            audio_config: init.audio.clone(),
        };
        self.session = Some(Session {
            metadata: None,
            video: init.video.clone(),
            audio: init.audio.clone(),
            state: SessionState::Running(Box::new(run)),
        });
        changed.merge(Changed { ll: true, ts: true });
        changed
    }

    /// Numbers the next segment at least `msn` (LL-HLS and TS): a node becoming a camera's
    /// origin after relaying it starts above any number an earlier origin reached. A window
    /// that must jump restarts there, behind a discontinuity. Call between sessions.
    pub(crate) fn renumber_from(&mut self, msn: u64) {
        for w in [&mut self.ll, &mut self.ts] {
            if msn <= w.next_msn {
                continue;
            }
            if !w.segments.is_empty() || w.partial.is_some() {
                restart_window(w);
            }
            w.next_msn = msn;
        }
    }

    /// Edge side: one relayed frame, cut where the origin cut it. Ignored (and counted as
    /// dropped) before the first `Init`.
    pub(crate) fn follow_frame(&mut self, now: SystemTime, frame: relay::Frame) -> Changed {
        match self.session.as_ref().map(|s| &s.state) {
            Some(SessionState::Running(_)) => self.process(now, frame.frame, Some(frame.cut)),
            _ => {
                self.counters.dropped += 1;
                Changed::default()
            }
        }
    }
}

/// Empties a window whose numbering jumps forward (a playlist's segments are numbered
/// consecutively from its MEDIA-SEQUENCE, so no gap can be listed). Viewers see the media
/// sequence jump and the discontinuity sequence grow by the discontinuities that left the
/// window plus the one at the jump: the next segment is listed first, where its
/// `EXT-X-DISCONTINUITY` is not printed (RFC 8216bis §6.2.2).
pub(super) fn restart_window(w: &mut super::Window) {
    let left = w
        .segments
        .iter()
        .skip(1)
        .filter(|s| s.discontinuity)
        .count() as u64;
    w.discontinuity_sequence += left + 1;
    w.segments.clear();
    w.partial = None;
}
