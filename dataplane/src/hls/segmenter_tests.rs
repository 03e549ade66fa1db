//! Segmenter tests: the test clip through the FLV demuxer into the segmenter, checked for
//! the LL-HLS timing rules and played back by ffprobe/ffmpeg.

use std::io::Write;
use std::time::{Duration, SystemTime};

use camstream_protocol::{MediaEvent, StreamMetadata, TrackKind};

use super::*;
use crate::flv::Demuxer;
use crate::flv::file::{TagKind, test_clip};
use crate::testing::{TempDir, decode_clean, probe};

/// Which tracks of the clip to feed.
#[derive(Clone, Copy)]
pub(super) struct Feed {
    pub(super) video: bool,
    pub(super) audio: bool,
    /// Added to every RTMP timestamp (wrapping), to start the clock anywhere.
    pub(super) ts_offset: u32,
    pub(super) metadata: bool,
}

pub(super) const BOTH: Feed = Feed {
    video: true,
    audio: true,
    ts_offset: 0,
    metadata: true,
};

pub(super) fn clip_events(feed: Feed) -> Vec<MediaEvent> {
    let mut d = Demuxer::new();
    let mut out = Vec::new();
    if feed.metadata {
        out.push(MediaEvent::Metadata(StreamMetadata {
            video_codec_id: feed.video.then_some(7),
            audio_codec_id: feed.audio.then_some(10),
            ..StreamMetadata::default()
        }));
    }
    for tag in &test_clip().tags {
        let ts = tag.timestamp.wrapping_add(feed.ts_offset);
        let ev = match tag.kind {
            TagKind::Video if feed.video => d.handle_video(ts, tag.body.clone()),
            TagKind::Audio if feed.audio => d.handle_audio(ts, tag.body.clone()),
            _ => continue,
        };
        if let Some(ev) = ev.expect("clip demuxes") {
            out.push(ev);
        }
    }
    out
}

fn run_session(seg: &mut Segmenter, events: Vec<MediaEvent>, now: SystemTime) {
    seg.start_session();
    for ev in events {
        seg.handle_event(now, ev);
    }
    seg.end_session();
    assert_eq!(seg.take_failure(), None);
}

pub(super) fn segmenter() -> Segmenter {
    Segmenter::new(
        Settings {
            window: 100,
            ..Settings::default()
        },
        Arc::from("p1"),
    )
}

/// Checks the LL-HLS rules on a window: numbering, part sums, part durations, independence.
fn check_ll_rules(w: &Window) {
    let pt = w.part_target;
    for (expected_msn, s) in (w.first_msn()..).zip(&w.segments) {
        assert_eq!(s.msn, expected_msn, "MSN continuous");
        let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
        assert!((sum - s.duration).abs() < 1e-6, "parts sum to segment");
        let total: usize = s.parts.iter().map(|p| p.data.len()).sum();
        assert_eq!(total, s.data.len(), "segment bytes are its parts");
        assert!(
            s.parts[0].independent,
            "segment {} starts independent",
            s.msn
        );
        for (i, p) in s.parts.iter().enumerate() {
            assert!(
                p.duration <= pt + 1e-9,
                "part {}.{i} {} > {pt}",
                s.msn,
                p.duration
            );
            if i + 1 < s.parts.len() {
                assert!(
                    p.duration >= 0.85 * pt,
                    "part {}.{i} {} < 85% of {pt}",
                    s.msn,
                    p.duration
                );
            }
        }
        assert!(s.duration <= f64::from(w.target_duration) + 0.5);
    }
}

#[test]
fn clip_makes_two_second_segments_and_stable_parts() {
    let mut seg = segmenter();
    run_session(&mut seg, clip_events(BOTH), SystemTime::UNIX_EPOCH);
    let ll = seg.ll();
    let ts = seg.ts();
    // 6 s clip, keyframe every 2 s: three segments.
    assert_eq!(
        ll.segments.len(),
        3,
        "{:?}",
        ll.segments.iter().map(|s| s.duration).collect::<Vec<_>>()
    );
    assert_eq!(ts.segments.len(), 3);
    for (l, t) in ll.segments.iter().zip(&ts.segments) {
        assert!(
            (l.duration - t.duration).abs() < 1e-6,
            "TS and LL cut together"
        );
        assert_eq!(l.program_date_time, t.program_date_time);
    }
    for s in &ll.segments[..2] {
        assert!((s.duration - 2.0).abs() < 0.01, "{}", s.duration);
        assert_eq!(s.parts.len(), 10, "2 s of 200 ms parts");
    }
    // 30 fps (33 ms steps in RTMP's millisecond clock): 6 frames a part; PART-TARGET 10 %
    // above.
    assert!(
        (0.217..=0.221).contains(&ll.part_target),
        "{}",
        ll.part_target
    );
    check_ll_rules(ll);
    assert_eq!(ll.inits.len(), 1);
    assert!(
        ll.partial.is_none(),
        "end_session closes the segment in progress"
    );
    let c = seg.counters();
    assert_eq!(c.video_frames, test_clip().video_frames as u64);
    assert!(c.audio_frames > 250);
    assert_eq!(c.dropped, 0);
    // PDT follows media time.
    let d = ll.segments[1]
        .program_date_time
        .duration_since(ll.segments[0].program_date_time)
        .unwrap();
    assert!((d.as_secs_f64() - ll.segments[0].duration).abs() < 0.002);
}

/// Issue 11: a TS segment's bytes exist once per window, and only once someone asks. Until
/// the first request a TS segment holds no packets (its frames are the fMP4 window's
/// `Bytes`); the first request muxes it, and every request shares that result (same
/// pointers), a few 64 KiB blocks of packets rather than a slice per packet.
#[test]
fn ts_segment_bytes_are_produced_once_per_window() {
    let mut seg = segmenter();
    run_session(&mut seg, clip_events(BOTH), SystemTime::UNIX_EPOCH);
    let ts = seg.ts();
    let ll = seg.ll();
    let ptrs = |c: &crate::chunks::Chunks| {
        c.slices()
            .iter()
            .map(|b| (b.as_ptr() as usize, b.len()))
            .collect::<Vec<_>>()
    };
    assert!(ts.segments.iter().all(|s| s.data.is_empty()));
    assert!(
        ts.segments
            .iter()
            .all(|s| !s.ts.as_ref().is_some_and(|t| t.is_muxed())),
        "nothing muxed before a request"
    );
    for s in &ts.segments {
        let first = s.body();
        assert!(s.ts.as_ref().unwrap().is_muxed());
        let second = s.body();
        assert_eq!(ptrs(&first), ptrs(&second), "the same bytes again, no copy");
        assert!(
            first.slices().len() <= first.len() / (64 * 1024) + 2,
            "{} slices for {} bytes",
            first.slices().len(),
            first.len()
        );
    }
    // The frames a TS segment keeps are the fMP4 window's media, not a copy of it: every
    // video frame's bytes lie inside some fMP4 part.
    let parts: Vec<(usize, usize)> = ll
        .segments
        .iter()
        .flat_map(|s| s.parts.iter())
        .flat_map(|p| p.data.slices().iter())
        .map(|b| (b.as_ptr() as usize, b.as_ptr() as usize + b.len()))
        .collect();
    let mut frames = 0;
    for s in &ts.segments {
        for f in s.ts.as_ref().unwrap().frames() {
            let p = f.data.as_ptr() as usize;
            assert!(
                parts.iter().any(|&(a, b)| p >= a && p + f.data.len() <= b),
                "a TS frame is not fMP4 media"
            );
            frames += 1;
        }
    }
    assert!(frames > 300, "{frames}");
}

#[test]
fn parts_are_published_before_the_segment_completes() {
    let mut seg = segmenter();
    seg.start_session();
    let mut first_playable = None;
    for (i, ev) in clip_events(BOTH).into_iter().enumerate() {
        seg.handle_event(SystemTime::UNIX_EPOCH, ev);
        if first_playable.is_none() && seg.ll().is_playable(3) {
            first_playable = Some(i);
            assert!(seg.ll().segments.is_empty(), "playable from parts alone");
        }
    }
    assert!(first_playable.is_some());
    assert!(
        seg.ll().partial.is_some(),
        "the last segment is still in progress"
    );
}

fn write_ll(dir: &TempDir, w: &Window) -> std::path::PathBuf {
    let path = dir.join("ll.mp4");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&w.inits[0].1).unwrap();
    for s in &w.segments {
        f.write_all(&s.body().to_bytes()).unwrap();
    }
    path
}

fn write_ts(dir: &TempDir, w: &Window) -> std::path::PathBuf {
    let path = dir.join("all.ts");
    let mut f = std::fs::File::create(&path).unwrap();
    for s in &w.segments {
        f.write_all(&s.body().to_bytes()).unwrap();
    }
    path
}

#[test]
fn outputs_play_in_ffmpeg() {
    let mut seg = segmenter();
    run_session(&mut seg, clip_events(BOTH), SystemTime::UNIX_EPOCH);
    let dir = TempDir::new("segmenter-play");
    for path in [write_ll(&dir, seg.ll()), write_ts(&dir, seg.ts())] {
        let (streams, format) = probe(&path);
        let codecs: Vec<_> = streams.iter().map(|s| s["codec_name"].as_str()).collect();
        assert_eq!(codecs, ["h264", "aac"], "{path:?}");
        assert_eq!(streams[0]["width"], "1280");
        let start: f64 = format["start_time"].parse().unwrap();
        let duration: f64 = format["duration"].parse().unwrap();
        // fMP4 without an edit list reports the end time as duration.
        let length = if path.extension().unwrap() == "mp4" {
            duration - start
        } else {
            duration
        };
        assert!((length - 6.0).abs() < 0.2, "{path:?}: {length}");
        decode_clean(&path);
    }
}

#[test]
fn video_only_and_audio_only() {
    for (video, audio) in [(true, false), (false, true)] {
        for metadata in [true, false] {
            let mut seg = segmenter();
            let feed = Feed {
                video,
                audio,
                metadata,
                ..BOTH
            };
            run_session(&mut seg, clip_events(feed), SystemTime::UNIX_EPOCH);
            let ll = seg.ll();
            assert!(ll.segments.len() >= 3, "video={video} metadata={metadata}");
            check_ll_rules(ll);
            let dir = TempDir::new(&format!("segmenter-{video}-{audio}-{metadata}"));
            for path in [write_ll(&dir, ll), write_ts(&dir, seg.ts())] {
                let (streams, _) = probe(&path);
                let want = if video { "h264" } else { "aac" };
                assert_eq!(streams.len(), 1, "{path:?}");
                assert_eq!(streams[0]["codec_name"], want);
                decode_clean(&path);
            }
            if !video {
                // 1024-sample frames at 48 kHz: 9 frames (192 ms) a part, 2 s segments.
                assert!((ll.part_target - 0.212).abs() < 0.002, "{}", ll.part_target);
                assert!((ll.segments[0].duration - 2.0).abs() < 0.03);
            }
        }
    }
}

#[test]
fn reconnect_continues_the_playlist_behind_a_discontinuity() {
    let mut seg = segmenter();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    run_session(&mut seg, clip_events(BOTH), t0);
    let before = seg.ll().segments.len();
    let end_before = seg.out_end;
    // The camera comes back with its clock somewhere else entirely.
    let again = Feed {
        ts_offset: 3_000_000_000,
        ..BOTH
    };
    run_session(&mut seg, clip_events(again), t0 + Duration::from_secs(8));
    let ll = seg.ll();
    assert_eq!(ll.segments.len(), before * 2);
    let first_new = &ll.segments[before];
    assert!(first_new.discontinuity);
    assert!(ll.segments[..before].iter().all(|s| !s.discontinuity));
    assert!(!ll.segments[before + 1].discontinuity);
    assert_eq!(ll.inits.len(), 1, "same codec parameters keep the same map");
    assert_eq!(first_new.init, ll.segments[0].init);
    check_ll_rules(ll);
    let ts = seg.ts();
    assert!(ts.segments[before].discontinuity);
    assert!(seg.out_end > end_before, "the timeline continues");
    // PDT follows the wall clock of the new session.
    let pdt = first_new.program_date_time.duration_since(t0).unwrap();
    assert!((pdt.as_secs_f64() - 8.0).abs() < 0.1, "{pdt:?}");
    // The TS of both sessions decodes as one stream.
    let dir = TempDir::new("segmenter-reconnect");
    decode_clean(&write_ts(&dir, ts));
}

#[test]
fn eviction_moves_discontinuities_into_the_sequence() {
    let mut seg = Segmenter::new(
        Settings {
            window: 2,
            ..Settings::default()
        },
        Arc::from("p"),
    );
    run_session(&mut seg, clip_events(BOTH), SystemTime::UNIX_EPOCH);
    run_session(&mut seg, clip_events(BOTH), SystemTime::UNIX_EPOCH);
    let ll = seg.ll();
    assert_eq!(ll.segments.len(), 2);
    assert_eq!(ll.first_msn(), 4);
    // Segment 3 (the first of session two) carried the discontinuity and was evicted.
    assert_eq!(ll.discontinuity_sequence, 1);
    assert_eq!(seg.ts().discontinuity_sequence, 1);
}

#[test]
fn finish_ends_the_playlists() {
    let mut seg = segmenter();
    run_session(&mut seg, clip_events(BOTH), SystemTime::UNIX_EPOCH);
    let changed = seg.finish();
    assert!(changed.ll && changed.ts);
    assert!(seg.ll().ended && seg.ts().ended);
    let text = crate::hls::playlist::render(seg.ll(), Default::default());
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
}

#[test]
fn clock_wrap_keeps_outputs_monotonic() {
    let mut seg = segmenter();
    // Start 2 s before the 32-bit millisecond clock wraps.
    let feed = Feed {
        ts_offset: u32::MAX - 2_000,
        ..BOTH
    };
    run_session(&mut seg, clip_events(feed), SystemTime::UNIX_EPOCH);
    let ll = seg.ll();
    assert_eq!(ll.segments.len(), 3);
    check_ll_rules(ll);
    let dir = TempDir::new("segmenter-wrap");
    let path = write_ll(&dir, ll);
    let (_, format) = probe(&path);
    let length =
        format["duration"].parse::<f64>().unwrap() - format["start_time"].parse::<f64>().unwrap();
    assert!((length - 6.0).abs() < 0.2, "{length}");
    decode_clean(&path);
}

#[test]
fn late_audio_config_restarts_with_both_tracks() {
    // No metadata, video config first, audio config only after 3 s of video.
    let events = clip_events(Feed {
        metadata: false,
        ..BOTH
    });
    let (mut early, mut late): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    let mut audio_config = None;
    for ev in events {
        match &ev {
            MediaEvent::Config(TrackConfig::Audio(_)) => audio_config = Some(ev),
            MediaEvent::Frame(f) if f.track == TrackKind::Audio => {
                if f.dts >= 3 * TICKS_PER_SECOND {
                    late.push(ev);
                }
            }
            MediaEvent::Frame(f) if f.dts < 3 * TICKS_PER_SECOND => early.push(ev),
            MediaEvent::Config(_) => early.push(ev),
            _ => late.push(ev),
        }
    }
    let mut seg = segmenter();
    seg.start_session();
    for ev in early {
        seg.handle_event(SystemTime::UNIX_EPOCH, ev);
    }
    assert!(
        !seg.ll().segments.is_empty() || seg.ll().partial.is_some(),
        "video-only started"
    );
    seg.handle_event(SystemTime::UNIX_EPOCH, audio_config.unwrap());
    for ev in late {
        seg.handle_event(SystemTime::UNIX_EPOCH, ev);
    }
    seg.end_session();
    let ll = seg.ll();
    assert_eq!(ll.inits.len(), 2, "a new init with both tracks");
    assert!(ll.segments.iter().any(|s| s.discontinuity));
    check_ll_rules(ll);
}

/// Issue 11: only the newest `ts::CACHED_SEGMENTS` TS segments keep their packets as the
/// window moves on; an older one asked for again is muxed again from the frames it kept.
#[test]
fn ts_packets_are_kept_only_at_the_live_end() {
    let mut seg = segmenter();
    let mut muxed = 0usize;
    // Three sessions of the clip: enough segments for the window to move on.
    for _ in 0..3 {
        seg.start_session();
        for ev in clip_events(BOTH) {
            let before = seg.ts().segments.len();
            seg.handle_event(SystemTime::UNIX_EPOCH, ev);
            let ts = seg.ts();
            // A viewer at the live end fetches each segment as it appears.
            if ts.segments.len() != before
                && let Some(s) = ts.segments.last()
            {
                assert!(!s.body().is_empty());
                muxed += 1;
            }
        }
        seg.end_session();
    }
    let ts = seg.ts();
    let n = ts.segments.len();
    assert!(n > crate::ts::CACHED_SEGMENTS + 2, "{n} segments");
    assert!(muxed + 3 >= n, "{muxed} of {n} fetched");
    for (i, s) in ts.segments.iter().enumerate() {
        let lazy = s.ts.as_ref().unwrap();
        // The session ends' flushes add segments nobody fetched: only look at what was.
        if i + crate::ts::CACHED_SEGMENTS < n {
            assert!(
                !lazy.is_muxed(),
                "segment {i} of {n} still holds its packets"
            );
        }
    }
    // An old one again: muxed anew from its frames.
    let again = ts.segments[0].body();
    assert!(ts.segments[0].ts.as_ref().unwrap().is_muxed());
    assert_eq!(again.slices()[0][0], 0x47, "starts with a TS sync byte");
    assert!(again.len() > 100_000, "{} bytes", again.len());
}

/// An ABR rendition takes its camera's date for each segment number the camera still has
/// (a restarted transcoder's first segment may hold a frame more than the camera's); a
/// date more than a second from its own is not the same media and is left alone.
#[test]
fn a_rendition_takes_its_cameras_segment_dates() {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
    let mut seg = segmenter();
    seg.set_anchor(Anchor {
        msn: 42,
        ts_msn: 40,
        wall,
    });
    let late = Duration::from_millis(33);
    seg.set_camera_dates(Arc::new(move |msn| match msn {
        42 => Some(wall),
        // Not the same media: ignored.
        43 => Some(wall + Duration::from_secs(60)),
        // The camera's segments before were 33 ms longer than the rendition's 2 s ones.
        44 => Some(wall + Duration::from_secs(4) + late),
        _ => None,
    }));
    run_session(&mut seg, clip_events(BOTH), wall + Duration::from_secs(7));
    let ll = seg.ll();
    assert!(ll.segments.len() >= 3, "{} segments", ll.segments.len());
    let pdt = |msn: u64| {
        ll.segments
            .iter()
            .find(|s| s.msn == msn)
            .map(|s| s.program_date_time)
            .unwrap_or_else(|| panic!("segment {msn}"))
    };
    let span = |msn: u64| {
        let before: f64 = ll
            .segments
            .iter()
            .take_while(|s| s.msn < msn)
            .map(|s| s.duration)
            .sum();
        Duration::from_secs_f64(before)
    };
    let close = |a: SystemTime, b: SystemTime| {
        let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
        assert!(d < Duration::from_millis(1), "{a:?} vs {b:?}");
    };
    assert_eq!(pdt(42), wall);
    close(pdt(43), wall + span(43));
    close(pdt(44), wall + span(44) + late);
    // The TS window (numbered from 40 here) carries the same dates.
    let ts = |msn: u64| {
        seg.ts()
            .segments
            .iter()
            .find(|s| s.msn == msn)
            .map(|s| s.program_date_time)
    };
    assert_eq!(ts(40), Some(wall));
    assert_eq!(ts(42), Some(pdt(44)));
}

/// An ABR rendition's anchor: its first segment takes the camera's number (LL-HLS and TS
/// each theirs) and its first frame the anchor's time, whenever it arrived; a later
/// anchor above the window restarts it behind a discontinuity.
#[test]
fn an_anchored_session_takes_the_cameras_numbers_and_times() {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
    let mut seg = segmenter();
    seg.set_anchor(Anchor {
        msn: 42,
        ts_msn: 40,
        wall,
    });
    let events = clip_events(BOTH);
    // Arrival time does not matter: the anchor dates the media.
    run_session(&mut seg, events, wall + Duration::from_secs(7));
    let first = &seg.ll().segments[0];
    assert_eq!(first.msn, 42);
    assert_eq!(first.program_date_time, wall);
    assert_eq!(seg.ts().segments[0].msn, 40);
    let ds = seg.ll().discontinuity_sequence;
    // The transcoder came back later: the camera is at segment 60 now.
    seg.set_anchor(Anchor {
        msn: 60,
        ts_msn: 58,
        wall: wall + Duration::from_secs(40),
    });
    run_session(&mut seg, clip_events(BOTH), wall + Duration::from_secs(50));
    assert_eq!(
        seg.ll().segments[0].msn,
        60,
        "the window restarted at the jump"
    );
    assert_eq!(seg.ll().discontinuity_sequence, ds + 1);
    assert_eq!(seg.ts().segments[0].msn, 58);
}
