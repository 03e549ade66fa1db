use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::codec::{AacConfig, AvcConfig};
use crate::frame::TrackKind;

const RECORD_720P: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

fn init() -> Init {
    Init {
        prefix: "0badcafe".into(),
        msn: 41,
        ts_msn: 41,
        part: 0,
        fragment_seq: 400,
        init_id: 2,
        discontinuity: true,
        discontinuity_sequence: 3,
        target_duration: 2,
        part_target_us: 220_000,
        timing: Timing {
            out_origin: 900_000,
            wall_origin_us: 1_780_000_000_000_000,
            frame_duration: 3000,
            part_max: 19_800,
        },
        video: Some(VideoConfig::H264(
            AvcConfig::parse(Bytes::from_static(RECORD_720P)).unwrap(),
        )),
        audio: Some(AudioConfig::Aac(
            AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap(),
        )),
    }
}

fn frame(track: TrackKind, dts: i64, cts: i32, keyframe: bool, cut: Cut, data: Vec<u8>) -> Frame {
    Frame {
        frame: MediaFrame {
            track,
            dts,
            cts,
            keyframe,
            data: Bytes::from(data),
        },
        cut,
    }
}

fn bytes_of(msgs: &[Message]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        encode(m, &mut out);
    }
    out
}

fn sample() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            version: VERSION,
            camera: "cam-1".into(),
            auth: [7; AUTH_LEN],
        }),
        Message::Accept(Accept {
            auth: [9; AUTH_LEN],
        }),
        Message::Init(init()),
        Message::Frame(frame(
            TrackKind::Video,
            900_000,
            6000,
            true,
            Cut {
                previous_part: false,
                part: true,
                segment: true,
            },
            vec![0, 0, 0, 2, 0x65, 0x88],
        )),
        Message::Frame(frame(
            TrackKind::Audio,
            -5,
            -1,
            true,
            Cut::default(),
            vec![],
        )),
        Message::Flush,
        Message::End(End {
            reason: EndReason::Lagged,
            text: "behind by 3 s".into(),
        }),
    ]
}

#[test]
fn every_message_round_trips() {
    let mut buf = bytes_of(&sample());
    for want in sample() {
        assert_eq!(decode(&mut buf).unwrap(), Some(want));
    }
    assert_eq!(decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}

#[test]
fn incomplete_input_consumes_nothing() {
    let whole = bytes_of(&sample()[2..3]);
    for cut in 0..whole.len() {
        let mut part = BytesMut::from(&whole[..cut]);
        assert_eq!(decode(&mut part).unwrap(), None, "cut at {cut}");
        assert_eq!(part.len(), cut);
    }
}

#[test]
fn frame_header_and_payload_sent_apart_equal_the_whole() {
    let Message::Frame(f) = &sample()[3] else {
        unreachable!()
    };
    let mut split = BytesMut::new();
    encode_frame_header(f, &mut split);
    split.extend_from_slice(&f.frame.data);
    assert_eq!(split, bytes_of(&sample()[3..4]));
}

#[test]
fn oversized_and_malformed_messages_are_errors() {
    let mut big = BytesMut::from(&((MAX_MESSAGE + 1) as u32).to_be_bytes()[..]);
    assert_eq!(
        decode(&mut big),
        Err(RelayError::TooLarge {
            len: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        })
    );
    let mut empty = BytesMut::from(&[0u8, 0, 0, 0][..]);
    assert_eq!(decode(&mut empty), Err(RelayError::Empty));
    let mut unknown = BytesMut::from(&[0u8, 0, 0, 1, 99][..]);
    assert_eq!(
        decode(&mut unknown),
        Err(RelayError::UnknownType { got: 99 })
    );
    // Flush with a byte too many.
    let mut trailing = BytesMut::from(&[0u8, 0, 0, 2, 5, 0][..]);
    assert_eq!(
        decode(&mut trailing),
        Err(RelayError::Trailing {
            what: "flush",
            extra: 1
        })
    );
    // Hello cut short inside its proof.
    let mut hello = bytes_of(&sample()[..1]);
    let len = hello.len();
    hello.truncate(len - 1);
    hello[3] -= 1;
    assert_eq!(
        decode(&mut hello),
        Err(RelayError::Truncated {
            what: "hello",
            field: "auth",
            needed: 1
        })
    );
    // A segment cut without its part cut.
    let mut f = bytes_of(&sample()[3..4]);
    f[6] = 8 | 1;
    assert_eq!(
        decode(&mut f),
        Err(RelayError::Invalid {
            what: "frame",
            field: "flags",
            got: 9
        })
    );
    // A camera id longer than the cap.
    let mut h = BytesMut::new();
    h.extend_from_slice(&(1u32 + 2 + 2 + 300 + 32).to_be_bytes());
    h.extend_from_slice(&[1, 0, 1]);
    h.extend_from_slice(&300u16.to_be_bytes());
    h.extend_from_slice(&[b'a'; 300]);
    h.extend_from_slice(&[0; 32]);
    assert_eq!(
        decode(&mut h),
        Err(RelayError::Invalid {
            what: "hello",
            field: "camera",
            got: 300
        })
    );
}

#[test]
fn a_broken_codec_record_is_a_codec_error() {
    let mut buf = bytes_of(&[Message::Init(init())]);
    // The avcC version byte follows the video codec tag and the record length.
    let at = buf
        .windows(RECORD_720P.len())
        .position(|w| w == RECORD_720P)
        .unwrap();
    buf[at] = 2;
    assert!(matches!(decode(&mut buf), Err(RelayError::Codec(_))));
}

#[test]
fn unknown_end_reasons_are_kept() {
    let mut buf = bytes_of(&[Message::End(End {
        reason: EndReason::Other(200),
        text: String::new(),
    })]);
    assert_eq!(
        decode(&mut buf).unwrap(),
        Some(Message::End(End {
            reason: EndReason::Other(200),
            text: String::new()
        }))
    );
}

fn any_cut() -> impl Strategy<Value = Cut> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(previous_part, part, segment)| Cut {
        previous_part,
        part: part || segment,
        segment,
    })
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), "[a-z0-9-]{0,40}", any::<[u8; 32]>()).prop_map(|(version, camera, auth)| {
            Message::Hello(Hello {
                version,
                camera,
                auth,
            })
        }),
        any::<[u8; 32]>().prop_map(|auth| Message::Accept(Accept { auth })),
        (
            any::<u64>(),
            any::<u32>(),
            any::<i64>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(msn, seq, t, video, audio)| {
                let mut i = init();
                i.msn = msn;
                i.fragment_seq = seq;
                i.timing.out_origin = t;
                if !video {
                    i.video = None;
                }
                if !audio {
                    i.audio = None;
                }
                Message::Init(i)
            }),
        (
            any::<bool>(),
            any::<i64>(),
            any::<i32>(),
            any::<bool>(),
            any_cut(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(video, dts, cts, key, cut, data)| {
                let track = if video {
                    TrackKind::Video
                } else {
                    TrackKind::Audio
                };
                Message::Frame(frame(track, dts, cts, key, cut, data))
            }),
        Just(Message::Flush),
        (0u8..=255, ".{0,50}").prop_map(|(c, text)| Message::End(End {
            reason: EndReason::from_code(c),
            text,
        })),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip_split_anywhere(
        msgs in proptest::collection::vec(any_message(), 1..6),
        split in any::<prop::sample::Index>(),
    ) {
        let whole = bytes_of(&msgs);
        let at = split.index(whole.len() + 1);
        let mut buf = BytesMut::from(&whole[..at]);
        let mut got = Vec::new();
        while let Some(m) = decode(&mut buf).unwrap() {
            got.push(m);
        }
        buf.extend_from_slice(&whole[at..]);
        while let Some(m) = decode(&mut buf).unwrap() {
            got.push(m);
        }
        prop_assert_eq!(got, msgs);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = decode(&mut buf) {}
    }
}

/// The seeds committed for the `relay_message` fuzz target decode whole, so the fuzzer starts
/// from valid streams.
#[test]
fn committed_fuzz_seeds_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/relay_message");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let mut buf = BytesMut::from(&data[..]);
        let mut n = 0;
        while let Some(_m) = decode(&mut buf).unwrap() {
            n += 1;
        }
        assert!(n >= 2 && buf.is_empty(), "a seed holds whole messages");
        seen += 1;
    }
    assert!(seen >= 3);
}
