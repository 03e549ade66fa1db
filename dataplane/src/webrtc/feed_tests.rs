use bytes::Bytes;
use camstream_protocol::relay::{self, Cut, Init, Message, Timing};
use camstream_protocol::{AvcConfig, MediaFrame, TrackKind, VideoConfig};

use super::{Feed, FeedError};

fn avc() -> AvcConfig {
    AvcConfig {
        record: Bytes::new(),
        profile: 0x42,
        compatibility: 0xe0,
        level: 0x1f,
        nal_length_size: 4,
        sps: vec![Bytes::from_static(&[0x67, 1])],
        pps: vec![Bytes::from_static(&[0x68, 2])],
        width: 640,
        height: 360,
    }
}

fn init(video: bool) -> Message {
    Message::Init(Init {
        prefix: "p".into(),
        msn: 0,
        ts_msn: 0,
        part: 0,
        fragment_seq: 0,
        init_id: 0,
        discontinuity: false,
        discontinuity_sequence: 0,
        target_duration: 2,
        part_target_us: 200_000,
        timing: Timing {
            out_origin: 0,
            wall_origin_us: 0,
            frame_duration: 3000,
            part_max: 18_000,
        },
        video: video.then(|| VideoConfig::H264(avc())),
        audio: None,
    })
}

/// Video frame `n` of a 30 fps camera (3000 ticks apart); its one NAL unit carries `n`.
fn video(n: i64, keyframe: bool) -> Message {
    sized(n, keyframe, 2)
}

fn audio(n: i64) -> Message {
    Message::Frame(relay::Frame {
        frame: MediaFrame {
            track: TrackKind::Audio,
            dts: n * 1920,
            cts: 0,
            keyframe: true,
            data: Bytes::from_static(&[1, 2]),
        },
        cut: Cut::default(),
    })
}

/// Drains the feed: (RTP time, the frame number carried, whether it starts with an SPS).
fn drain(feed: &mut Feed) -> Vec<(i64, u8, bool)> {
    let mut v = Vec::new();
    while let Some((t, _, data)) = feed.poll_unit() {
        v.push((t, *data.last().unwrap(), data[4] == 0x67));
    }
    v
}

#[test]
fn a_viewer_starts_at_the_latest_keyframe_stamped_at_the_live_point() {
    // GOP of the segment: keyframe 0, deltas 1-2, keyframe 3, deltas 4-5 (and audio).
    let gop = vec![
        init(true),
        video(0, true),
        audio(0),
        video(1, false),
        video(2, false),
        video(3, true),
        video(4, false),
        audio(1),
        video(5, false),
    ];
    let mut feed = Feed::join(gop).unwrap();
    let out = drain(&mut feed);
    // Frames 3, 4, 5 one tick apart ending at frame 5's time; the keyframe has SPS/PPS.
    assert_eq!(
        out,
        vec![
            (15_000 - 2, 3, true),
            (15_000 - 1, 4, false),
            (15_000, 5, false)
        ]
    );
    // Then live at the camera's pace.
    feed.handle_message(video(6, false)).unwrap();
    feed.handle_message(audio(2)).unwrap();
    assert_eq!(drain(&mut feed), vec![(18_000, 6, false)]);
}

#[test]
fn a_keyframe_request_replays_from_the_latest_keyframe_ahead_of_what_was_sent() {
    let mut feed = Feed::join(vec![init(true), video(0, true), video(1, false)]).unwrap();
    drain(&mut feed);
    feed.handle_message(video(2, false)).unwrap();
    assert_eq!(drain(&mut feed), vec![(6000, 2, false)]);
    feed.keyframe_request();
    // Frames 0, 1, 2 again, after 6000 and one tick apart.
    assert_eq!(
        drain(&mut feed),
        vec![(6001, 0, true), (6002, 1, false), (6003, 2, false)]
    );
    // Live continues monotonic, shifted by the replay's few ticks.
    feed.handle_message(video(3, false)).unwrap();
    assert_eq!(drain(&mut feed), vec![(9003, 3, false)]);
    assert_eq!(feed.stats().replays, 1);
}

#[test]
fn a_viewer_behind_skips_to_the_next_keyframe() {
    let mut feed = Feed::join(vec![init(true), video(0, true)]).unwrap();
    drain(&mut feed);
    feed.handle_message(video(1, false)).unwrap();
    feed.behind();
    assert!(drain(&mut feed).is_empty(), "queued frames are dropped");
    feed.handle_message(video(2, false)).unwrap();
    assert!(drain(&mut feed).is_empty(), "deltas wait for a keyframe");
    feed.handle_message(video(3, true)).unwrap();
    assert_eq!(drain(&mut feed), vec![(9000, 3, true)]);
    let s = feed.stats();
    assert_eq!((s.skips, s.skipped), (1, 2));
}

#[test]
fn timestamps_stay_monotonic_when_the_camera_clock_goes_back() {
    let mut feed = Feed::join(vec![init(true), video(100, true)]).unwrap();
    assert_eq!(drain(&mut feed), vec![(300_000, 100, true)]);
    // The camera reconnected with its clock from zero.
    feed.handle_message(init(true)).unwrap();
    feed.handle_message(video(0, true)).unwrap();
    feed.handle_message(video(1, false)).unwrap();
    assert_eq!(
        drain(&mut feed),
        vec![(300_001, 0, true), (303_001, 1, false)]
    );
}

#[test]
fn b_frames_are_refused_at_join_and_end_a_live_session() {
    let mut b = video(1, false);
    if let Message::Frame(f) = &mut b {
        f.frame.cts = 6000;
    }
    assert_eq!(
        Feed::join(vec![init(true), video(0, true), b.clone()]).err(),
        Some(FeedError::BFrames { cts: 6000 })
    );
    let mut feed = Feed::join(vec![init(true), video(0, true)]).unwrap();
    assert_eq!(
        feed.handle_message(b),
        Err(FeedError::BFrames { cts: 6000 })
    );
}

#[test]
fn audio_only_cameras_are_refused() {
    assert_eq!(
        Feed::join(vec![init(false), audio(0)]).err(),
        Some(FeedError::NoVideo)
    );
}

#[test]
fn a_broken_access_unit_waits_for_the_next_keyframe() {
    let mut feed = Feed::join(vec![init(true), video(0, true)]).unwrap();
    drain(&mut feed);
    feed.handle_message(Message::Frame(relay::Frame {
        frame: MediaFrame {
            track: TrackKind::Video,
            dts: 3000,
            cts: 0,
            keyframe: false,
            data: Bytes::from_static(&[0, 0, 0, 9, 1]),
        },
        cut: Cut::default(),
    }))
    .unwrap();
    feed.handle_message(video(2, false)).unwrap();
    assert!(drain(&mut feed).is_empty());
    feed.handle_message(video(3, true)).unwrap();
    assert_eq!(drain(&mut feed).len(), 1);
}

/// A video frame at frame number `n` (30 fps): one NAL unit of `bytes` bytes, its header
/// then `n` (as a byte) repeated.
fn sized(n: i64, keyframe: bool, bytes: usize) -> Message {
    let mut nal = vec![n as u8; 4 + bytes];
    nal[..4].copy_from_slice(&(bytes as u32).to_be_bytes());
    nal[4] = if keyframe { 0x65 } else { 0x41 };
    Message::Frame(relay::Frame {
        frame: MediaFrame {
            track: TrackKind::Video,
            dts: n * 3000,
            cts: 0,
            keyframe,
            data: Bytes::from(nal),
        },
        cut: Cut::default(),
    })
}

#[test]
fn the_send_buffer_is_sized_to_the_camera_within_bounds() {
    use super::{SEND_BUFFER_MAX, SEND_BUFFER_MIN};
    // Tiny frames: the floor.
    let f = Feed::join(vec![init(true), video(0, true), video(1, false)]).unwrap();
    assert_eq!(f.send_buffer_packets(), SEND_BUFFER_MIN);
    // 2 Mbit/s at 30 fps with a 110 KB keyframe: 3 keyframes' packets (3 × 101) beat one
    // second's worth (~230).
    let mut gop = vec![init(true), sized(0, true, 110_000)];
    gop.extend((1..30).map(|n| sized(n, false, 5_000)));
    let f = Feed::join(gop).unwrap();
    let n = f.send_buffer_packets();
    assert_eq!(n, 3 * (110_004 / 1100 + 1), "{n}");
    assert!(n < SEND_BUFFER_MAX);
    // 4K at 25 Mbit/s: the ceiling.
    let mut gop = vec![init(true), sized(0, true, 600_000)];
    gop.extend((1..30).map(|n| sized(n, false, 100_000)));
    let f = Feed::join(gop).unwrap();
    assert_eq!(f.send_buffer_packets(), SEND_BUFFER_MAX);
}
