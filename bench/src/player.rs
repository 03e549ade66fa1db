//! What a viewer makes of the frames it downloads (sans-IO): loss by sequence number, the
//! latency math, and a player clock that turns late frames into stalls.
//!
//! Method (documented in the report too):
//! - ingest → available = when the playlist first listed the part/segment − when the
//!   frame's last byte reached the server (from the camera's ledger); only for media that
//!   appeared while the viewer was watching, since earlier media's appearance was not seen.
//! - delivery = when the viewer had the frame's bytes − the frame's capture time (the
//!   marker's due time, the moment a real camera would have produced it).
//! - glass-to-glass proxy = when the simulated player displays the frame − capture time.
//!   The player starts with the first media it downloads (as hls.js does at its live
//!   sync position) and then displays frames at the pace they were captured; a frame
//!   that arrives after its display time is a stall, and the clock slips by the wait.
//! - wake-up = when a blocking playlist reload answered − when the last frame of the part
//!   it waited for reached the server; only for reloads sent before that frame arrived.
//!   It includes the server's wait for the frame that closes the part (≤ one frame).

use crate::marker::Marker;

/// One viewer's reading of the frames it received.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Tracker {
    camera: u32,
    last_seq: Option<u32>,
    pub(crate) frames: u64,
    pub(crate) missing: u64,
    pub(crate) foreign: u64,
    pub(crate) duplicates: u64,
    clock: PlayerClock,
}

/// Latencies of one frame, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FrameLatency {
    pub(crate) ingest_to_available: Option<u64>,
    pub(crate) delivery: u64,
    pub(crate) glass_to_glass: u64,
}

/// The display clock of a simulated player.
///
/// A stall is one stretch of late frames: the picture stands still from the first late
/// frame until a frame is on time again. It counts in [`PlayerClock::stalls`] once the
/// picture stood still for [`STALL_US`] (100 ms, what a viewer notices) and in
/// [`PlayerClock::stalls_1ms`] once it stood still for 1 ms (the raw figure, reported
/// beside it: a frame 2 ms late is not a stall anyone sees).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct PlayerClock {
    /// (wall µs when playback started, capture µs of the first frame shown).
    start: Option<(u64, u64)>,
    slipped_us: u64,
    /// The current stall: (wall µs it began, µs the picture has stood still so far).
    stall: Option<(u64, u64)>,
    /// Stalls of at least [`STALL_US`].
    pub(crate) stalls: u64,
    /// Stalls of at least 1 ms (the long ones included).
    pub(crate) stalls_1ms: u64,
    /// Stalls of at least [`STALL_US`] that began after the player's first [`WARMUP_US`] of
    /// playback: a player that joins a stream a few seconds old stalls at its start on any
    /// server, and that says nothing about load.
    pub(crate) settled_stalls: u64,
}

/// Playback time after which a stall counts as a symptom of load.
pub(crate) const WARMUP_US: u64 = 10_000_000;
/// How long the picture must stand still to count as a stall.
pub(crate) const STALL_US: u64 = 100_000;
/// The short-stall figure reported beside it.
const STALL_1MS_US: u64 = 1_000;

impl PlayerClock {
    /// When a frame captured at `capture_us` and downloaded at `downloaded_us` is shown.
    pub(crate) fn display(&mut self, capture_us: u64, downloaded_us: u64) -> u64 {
        let (wall0, cap0) = *self.start.get_or_insert((downloaded_us, capture_us));
        // Frames before the first one shown (B-frame reordering) show at once.
        let scheduled = wall0 + capture_us.saturating_sub(cap0) + self.slipped_us;
        if downloaded_us > scheduled {
            let wait = downloaded_us - scheduled;
            let (began, before) = self.stall.unwrap_or((scheduled, 0));
            let stood = before + wait;
            if before < STALL_1MS_US && stood >= STALL_1MS_US {
                self.stalls_1ms += 1;
            }
            if before < STALL_US && stood >= STALL_US {
                self.stalls += 1;
                if began.saturating_sub(wall0) >= WARMUP_US {
                    self.settled_stalls += 1;
                }
            }
            self.stall = Some((began, stood));
            self.slipped_us += wait;
            downloaded_us
        } else {
            self.stall = None;
            scheduled
        }
    }

    /// Total time the picture stood still, µs.
    pub(crate) fn stalled_us(&self) -> u64 {
        self.slipped_us
    }
}

impl Tracker {
    pub(crate) fn new(camera: u32) -> Self {
        Self {
            camera,
            ..Self::default()
        }
    }

    pub(crate) fn last_seq(&self) -> Option<u32> {
        self.last_seq
    }

    pub(crate) fn clock(&self) -> &PlayerClock {
        &self.clock
    }

    /// Accounts for the markers of one downloaded part or segment. `ingest_us` looks up
    /// when a frame reached the server; `available_us` is when the playlist first listed
    /// this media (None when it was already listed as the viewer arrived).
    pub(crate) fn on_media(
        &mut self,
        markers: &[Marker],
        available_us: Option<u64>,
        downloaded_us: u64,
        ingest_us: impl Fn(u32) -> Option<u64>,
        mut each: impl FnMut(FrameLatency),
    ) {
        for m in markers {
            if m.camera != self.camera {
                self.foreign += 1;
                continue;
            }
            match self.last_seq {
                Some(last) if m.seq <= last => {
                    // Parts and their segment hold the same frames; a viewer that fetched
                    // both must not count them twice.
                    self.duplicates += 1;
                    continue;
                }
                Some(last) => self.missing += u64::from(m.seq - last - 1),
                None => {}
            }
            self.last_seq = Some(m.seq);
            self.frames += 1;
            let shown = self.clock.display(m.capture_us, downloaded_us);
            let avail = available_us.and_then(|a| ingest_us(m.seq).map(|i| a.saturating_sub(i)));
            each(FrameLatency {
                ingest_to_available: avail,
                delivery: downloaded_us.saturating_sub(m.capture_us),
                glass_to_glass: shown.saturating_sub(m.capture_us),
            });
        }
    }
}

/// Wake-up latency of a blocking reload, if it really blocked: `request_us` when it was
/// sent, `response_us` when it answered, `ingest_us` when the last frame of the part it
/// waited for reached the server.
pub(crate) fn wakeup_us(request_us: u64, response_us: u64, ingest_us: u64) -> Option<u64> {
    (ingest_us > request_us && response_us >= ingest_us).then(|| response_us - ingest_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(camera: u32, seq: u32, capture_us: u64) -> Marker {
        Marker {
            camera,
            seq,
            capture_us,
        }
    }

    #[test]
    fn latency_math_for_one_part() {
        let mut t = Tracker::new(1);
        let ingest = |seq: u32| Some(1_000 + u64::from(seq) * 33_333);
        let mut got = Vec::new();
        // Frames 0..3 captured 33.3 ms apart, listed at 150 ms, downloaded at 160 ms.
        let marks = [m(1, 0, 0), m(1, 1, 33_333), m(1, 2, 66_666)];
        t.on_media(&marks, Some(150_000), 160_000, ingest, |l| got.push(l));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].ingest_to_available, Some(149_000));
        assert_eq!(got[2].ingest_to_available, Some(150_000 - 67_666));
        assert_eq!(got[0].delivery, 160_000);
        assert_eq!(got[2].delivery, 160_000 - 66_666);
        // Playback starts with frame 0 at 160 ms: the glass-to-glass proxy is constant.
        assert!(got.iter().all(|l| l.glass_to_glass == 160_000), "{got:?}");
        assert_eq!((t.frames, t.missing, t.clock().stalls), (3, 0, 0));
    }

    #[test]
    fn gaps_duplicates_and_foreign_frames() {
        let mut t = Tracker::new(2);
        let none = |_| None;
        t.on_media(&[m(2, 10, 0), m(2, 11, 1)], None, 5, none, |_| {});
        t.on_media(
            &[m(2, 11, 1), m(2, 15, 5), m(7, 16, 6)],
            None,
            6,
            none,
            |l| {
                assert_eq!(l.ingest_to_available, None);
            },
        );
        assert_eq!(t.frames, 3);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.missing, 3, "12, 13 and 14 never came");
        assert_eq!(t.foreign, 1, "a frame of camera 7 in camera 2's stream");
        assert_eq!(t.last_seq(), Some(15));
    }

    #[test]
    fn late_media_stalls_the_player_once_and_shifts_its_clock() {
        let mut c = PlayerClock::default();
        assert_eq!(
            c.display(0, 1_000_000),
            1_000_000,
            "starts at first download"
        );
        assert_eq!(
            c.display(500_000, 1_100_000),
            1_500_000,
            "early media waits for its turn"
        );
        // Frame at 1 s capture is due at 2 s but arrives at 2.4 s: one stall of 400 ms.
        assert_eq!(c.display(1_000_000, 2_400_000), 2_400_000);
        assert_eq!(
            c.display(1_033_000, 2_400_000),
            2_433_000,
            "same part, now on the slipped clock"
        );
        assert_eq!(
            c.display(1_100_000, 2_600_000),
            2_600_000,
            "late again after being on time"
        );
        assert_eq!((c.stalls, c.stalls_1ms), (2, 2));
        assert_eq!(c.stalled_us(), 400_000 + 100_000);
        assert_eq!(c.settled_stalls, 0, "both within the warm-up");
        // Well past the warm-up: on time first, then 20 s of capture, due at 21.5 s,
        // arrives at 22 s.
        assert_eq!(c.display(19_000_000, 19_000_000), 20_500_000);
        assert_eq!(c.display(20_000_000, 22_000_000), 22_000_000);
        assert_eq!((c.stalls, c.settled_stalls), (3, 1));
    }

    #[test]
    fn a_stall_counts_from_100_ms_the_1_ms_figure_beside_it() {
        let mut c = PlayerClock::default();
        c.display(0, 0);
        // 5 ms late: a 1 ms stall, not a stall.
        assert_eq!(c.display(1_000_000, 1_005_000), 1_005_000);
        assert_eq!((c.stalls, c.stalls_1ms), (0, 1));
        // On time again, then late by 60 ms and 50 ms more in a row: one stall of 110 ms,
        // counted once in each figure.
        c.display(1_500_000, 1_000_000);
        c.display(2_000_000, 2_065_000);
        assert_eq!((c.stalls, c.stalls_1ms), (0, 2));
        c.display(2_000_000, 2_115_000);
        assert_eq!((c.stalls, c.stalls_1ms), (1, 2));
        c.display(2_010_000, 2_300_000);
        assert_eq!((c.stalls, c.stalls_1ms), (1, 2), "the same stall goes on");
        assert_eq!(c.stalled_us(), 5_000 + 60_000 + 50_000 + 175_000);
    }

    #[test]
    fn wakeup_only_for_reloads_that_blocked() {
        assert_eq!(wakeup_us(100, 250, 200), Some(50));
        assert_eq!(
            wakeup_us(300, 350, 200),
            None,
            "part was complete before the request"
        );
        assert_eq!(
            wakeup_us(100, 150, 200),
            None,
            "answered before the frame: not a wake-up"
        );
    }
}
