//! Relay determinism: an edge segmenter fed an origin's relay messages cuts the same parts
//! and segments with the same numbers and bytes, whether it follows from the start or joins
//! mid-stream from the origin's GOP cache.

use std::time::{Duration, SystemTime};

use camstream_protocol::MediaEvent;
use camstream_protocol::relay::Message;

use super::tests::{BOTH, Feed, clip_events, segmenter};
use super::*;
use crate::testing::{TempDir, decode_clean, probe};

/// Applies relay messages to an edge segmenter as the edge shell does.
pub(crate) fn follow(edge: &mut Segmenter, msgs: impl IntoIterator<Item = Message>) {
    for m in msgs {
        match m {
            Message::Init(i) => {
                edge.follow_init(&i);
            }
            Message::Frame(f) => {
                edge.follow_frame(SystemTime::now(), f);
            }
            Message::Flush => {
                edge.end_session();
            }
            Message::End(_) => {
                edge.finish();
            }
            _ => {}
        }
    }
}

/// Every segment and part the edge holds is the origin's, byte for byte.
fn assert_same_media(origin: &Segmenter, edge: &Segmenter, min_segments: usize) {
    let (o, e) = (origin.ll(), edge.ll());
    assert!(
        e.segments.len() >= min_segments,
        "edge has {} segments",
        e.segments.len()
    );
    assert_eq!(o.next_msn, e.next_msn);
    assert_eq!(o.ended, e.ended);
    assert_eq!(o.part_target, e.part_target);
    assert_eq!(o.target_duration, e.target_duration);
    for s in &e.segments {
        let os = o
            .segment(s.msn)
            .expect("the origin holds the edge's segment");
        assert_eq!(os.duration, s.duration, "msn {}", s.msn);
        assert_eq!(os.discontinuity, s.discontinuity, "msn {}", s.msn);
        assert_eq!(os.init, s.init, "msn {}", s.msn);
        let pdt = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        assert!(pdt(os.program_date_time).abs_diff(pdt(s.program_date_time)) <= 1);
        assert_eq!(os.parts.len(), s.parts.len(), "msn {}", s.msn);
        for (a, b) in os.parts.iter().zip(&s.parts) {
            assert_eq!(a.duration, b.duration);
            assert_eq!(a.independent, b.independent);
            assert_eq!(a.data.to_bytes(), b.data.to_bytes(), "msn {}", s.msn);
        }
    }
    match (&o.partial, &e.partial) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            assert_eq!(a.msn, b.msn);
            assert_eq!(a.parts.len(), b.parts.len());
        }
        (a, b) => panic!("partials differ: {:?} vs {:?}", a.is_some(), b.is_some()),
    }
    for (id, bytes) in &e.inits {
        assert!(
            o.inits.iter().any(|(i, b)| i == id && b == bytes),
            "init {id}"
        );
    }
    // TS: same numbers and durations (the muxer's continuity counters differ).
    let (ot, et) = (origin.ts(), edge.ts());
    assert_eq!(ot.next_msn, et.next_msn);
    for s in &et.segments {
        let os = ot
            .segment(s.msn)
            .expect("the origin holds the edge's TS segment");
        assert!((os.duration - s.duration).abs() < 1e-9, "ts msn {}", s.msn);
    }
}

fn edge_for(origin: &Segmenter) -> Segmenter {
    Segmenter::new(origin.settings.clone(), origin.ll().prefix.clone())
}

#[test]
fn an_edge_following_from_the_start_matches_the_origin() {
    let mut origin = segmenter();
    origin.set_relay(true);
    let mut edge = edge_for(&origin);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    // Two sessions (a reconnect with a clock jump), then the playlists end.
    for feed in [
        BOTH,
        Feed {
            ts_offset: 3_000_000_000,
            ..BOTH
        },
    ] {
        origin.start_session();
        for ev in clip_events(feed) {
            origin.handle_event(t0, ev);
            follow(&mut edge, origin.take_relay().collect::<Vec<_>>());
        }
        origin.end_session();
        follow(&mut edge, origin.take_relay().collect::<Vec<_>>());
    }
    origin.finish();
    follow(&mut edge, origin.take_relay().collect::<Vec<_>>());
    assert_eq!(edge.take_failure(), None);
    assert_eq!(edge.ll().segments.len(), origin.ll().segments.len());
    assert!(edge.ll().segments.iter().any(|s| s.discontinuity));
    assert_same_media(&origin, &edge, 6);
}

#[test]
fn an_edge_joining_mid_stream_starts_at_the_segment_in_progress() {
    for feed in [
        BOTH,
        Feed {
            video: false,
            ..BOTH
        },
        Feed {
            audio: false,
            ..BOTH
        },
    ] {
        let mut origin = segmenter();
        origin.set_relay(true);
        origin.start_session();
        let events = clip_events(feed);
        let half = events.len() / 2;
        let mut edge = edge_for(&origin);
        let mut joined = false;
        for (i, ev) in events.into_iter().enumerate() {
            origin.handle_event(SystemTime::now(), ev);
            let live: Vec<Message> = origin.take_relay().collect();
            if i == half {
                let gop = origin.relay_gop();
                assert!(matches!(gop.first(), Some(Message::Init(i)) if i.part == 0));
                follow(&mut edge, gop);
                joined = true;
            } else if joined {
                follow(&mut edge, live);
            }
        }
        origin.end_session();
        follow(&mut edge, origin.take_relay().collect::<Vec<_>>());
        let first = edge.ll().first_msn();
        assert!(first > 0, "joined mid-stream, not at the first segment");
        assert_same_media(&origin, &edge, 1);

        // What the edge holds plays.
        let dir = TempDir::new(&format!("relay-join-{}-{}", feed.video, feed.audio));
        let path = dir.join("edge.mp4");
        let mut f = std::fs::File::create(&path).unwrap();
        use std::io::Write;
        f.write_all(&edge.ll().inits.last().unwrap().1).unwrap();
        for s in &edge.ll().segments {
            f.write_all(&s.body().to_bytes()).unwrap();
        }
        drop(f);
        let (streams, _) = probe(&path);
        assert_eq!(
            streams.len(),
            usize::from(feed.video) + usize::from(feed.audio)
        );
        decode_clean(&path);
    }
}

#[test]
fn frames_before_an_init_are_dropped() {
    let mut edge = segmenter();
    let ev = clip_events(BOTH)
        .into_iter()
        .find_map(|e| match e {
            MediaEvent::Frame(f) => Some(f),
            _ => None,
        })
        .unwrap();
    let changed = edge.follow_frame(
        SystemTime::now(),
        camstream_protocol::relay::Frame {
            frame: ev,
            cut: camstream_protocol::relay::Cut::default(),
        },
    );
    assert_eq!(changed, Changed::default());
    assert_eq!(edge.counters().dropped, 1);
}

/// An edge that followed an origin numbered from 1,000 through the clip, then lost it
/// mid-segment (the edge closed what it had). Returns the edge and the clip's start time.
fn edge_after_a_lost_origin() -> (Segmenter, SystemTime) {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let mut first = segmenter();
    first.set_relay(true);
    first.set_first_msn(1_000);
    let mut edge = edge_for(&first);
    first.start_session();
    for ev in clip_events(BOTH) {
        first.handle_event(t0, ev);
        follow(&mut edge, first.take_relay().collect::<Vec<_>>());
    }
    edge.end_session();
    (edge, t0)
}

#[test]
fn an_edge_following_a_new_origin_numbered_higher_restarts_its_window_behind_a_discontinuity() {
    let (mut edge, t0) = edge_after_a_lost_origin();
    let shown = edge.ll().next_msn;
    let ds = edge.ll().discontinuity_sequence;
    assert!(shown > 1_000 && !edge.ll().segments.is_empty());

    // The camera starts again on another node, numbered above anything shown.
    let mut second = segmenter();
    second.set_relay(true);
    second.set_first_msn(shown + 50);
    second.start_session();
    for ev in clip_events(BOTH) {
        second.handle_event(t0, ev);
        follow(&mut edge, second.take_relay().collect::<Vec<_>>());
    }
    let w = edge.ll();
    assert_eq!(
        w.first_msn(),
        shown + 50,
        "the window restarted at the jump"
    );
    assert_eq!(w.next_msn, second.ll().next_msn, "the new origin's numbers");
    assert_eq!(
        w.discontinuity_sequence,
        ds + 1,
        "one discontinuity at the jump"
    );
    assert_eq!(edge.ts().first_msn(), shown + 50);
    // The parts are the new origin's, byte for byte.
    for s in &w.segments {
        let o = second.ll().segment(s.msn).unwrap();
        for (a, b) in o.parts.iter().zip(&s.parts) {
            assert_eq!(a.data.to_bytes(), b.data.to_bytes(), "msn {}", s.msn);
        }
    }
}

#[test]
fn an_edge_whose_restarted_window_is_still_empty_keeps_its_discontinuity_count() {
    // Seen in the cluster failover test: an edge restarted its window for a new origin's
    // numbers, that pull broke before the first frame, and the next pull's Init found an
    // empty window and took the origin's discontinuity sequence (0) as if the window were
    // new: viewers saw the media sequence go on with no discontinuity announced.
    let (mut edge, t0) = edge_after_a_lost_origin();
    let shown = edge.ll().next_msn;
    let ds = edge.ll().discontinuity_sequence;
    let ts_ds = edge.ts().discontinuity_sequence;

    // A new origin numbered higher: its Init arrives, then the pull breaks.
    let mut second = segmenter();
    second.set_relay(true);
    second.set_first_msn(shown + 50);
    second.start_session();
    let mut events = clip_events(BOTH).into_iter();
    let mut init = None;
    for ev in events.by_ref() {
        second.handle_event(t0, ev);
        init = second
            .take_relay()
            .find_map(|m| matches!(m, Message::Init(_)).then_some(m));
        if init.is_some() {
            break;
        }
    }
    follow(&mut edge, init.clone());
    edge.end_session();
    assert!(edge.ll().segments.is_empty() && edge.ll().partial.is_none());
    assert_eq!(
        edge.ll().discontinuity_sequence,
        ds + 1,
        "counted at the jump"
    );

    // Pulling again from the same origin: its numbers go on from its GOP cache.
    follow(&mut edge, second.relay_gop());
    for ev in events {
        second.handle_event(t0, ev);
        follow(&mut edge, second.take_relay().collect::<Vec<_>>());
    }
    let w = edge.ll();
    assert!(!w.segments.is_empty());
    assert!(
        w.discontinuity_sequence > ds,
        "the discontinuity sequence went from {ds} to {}: the restart is not announced",
        w.discontinuity_sequence
    );
    assert!(edge.ts().discontinuity_sequence > ts_ds, "TS too");
}
