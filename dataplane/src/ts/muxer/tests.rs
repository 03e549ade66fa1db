use std::path::Path;

use bytes::Bytes;
use camstream_protocol::{AacConfig, AvcConfig, MediaEvent, MediaFrame, TrackKind};
use mpeg2ts::es::StreamType;
use proptest::prelude::*;

use super::MAX_ADTS_PAYLOAD;
use crate::chunks::Chunks;
use crate::flv::Demuxer;
use crate::flv::file::{TagKind, test_clip};
use crate::ts::h264::tests::{avcc, config, reference_annexb};
use crate::ts::inspect::{
    adts, decode_clean, demux, field, probe, program, temp_dir, video_packet_times,
};
use crate::ts::packet::{PACKET_SIZE, wrap33};
// The module's surface, as `hls` uses it.
use crate::ts::{AUDIO_PID, MuxStats, Muxer, PCR_DELAY, PMT_PID, VIDEO_PID};

/// The test clip's configurations and frames, with `offset` added to every DTS.
struct Clip {
    avc: AvcConfig,
    aac: AacConfig,
    frames: Vec<MediaFrame>,
}

fn clip(offset: i64) -> Clip {
    let mut d = Demuxer::new();
    let mut frames = Vec::new();
    for tag in &test_clip().tags {
        let ev = match tag.kind {
            TagKind::Video => d.handle_video(tag.timestamp, tag.body.clone()),
            TagKind::Audio => d.handle_audio(tag.timestamp, tag.body.clone()),
            TagKind::Script => continue,
        };
        if let Ok(Some(MediaEvent::Frame(mut f))) = ev {
            f.dts += offset;
            frames.push(f);
        }
    }
    Clip {
        avc: d.video_config().expect("video config").clone(),
        aac: d.audio_config().expect("audio config").clone(),
        frames,
    }
}

fn write(m: &mut Muxer, f: &MediaFrame) {
    match f.track {
        TrackKind::Video => m.write_video(f),
        TrackKind::Audio => m.write_audio(f),
    }
}

/// Muxes frames into segments cut before every video keyframe but the first.
fn segments(m: &mut Muxer, frames: &[MediaFrame]) -> Vec<Chunks> {
    let mut out = Vec::new();
    let mut seen_video = false;
    m.begin_segment();
    for f in frames {
        if f.track == TrackKind::Video && f.keyframe && seen_video {
            out.push(m.finish_segment());
            m.begin_segment();
        }
        seen_video |= f.track == TrackKind::Video;
        write(m, f);
    }
    out.push(m.finish_segment());
    out
}

fn concat(segments: &[Chunks]) -> Vec<u8> {
    segments
        .iter()
        .flat_map(|s| s.to_bytes().to_vec())
        .collect()
}

fn of(frames: &[MediaFrame], track: TrackKind) -> Vec<&MediaFrame> {
    frames.iter().filter(|f| f.track == track).collect()
}

fn pid_at(ts: &[u8], packet: usize) -> u16 {
    let p = &ts[packet * PACKET_SIZE..];
    u16::from_be_bytes([p[1] & 0x1F, p[2]])
}

/// Writes each segment to its own file, then concatenates the files, as a player fetching
/// segment after segment would see them.
fn write_and_concat(dir: &Path, segments: &[Chunks]) -> std::path::PathBuf {
    let mut all = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let path = dir.join(format!("seg{i}.ts"));
        std::fs::write(&path, s.to_bytes()).expect("write segment");
        all.extend_from_slice(&std::fs::read(&path).expect("read segment"));
    }
    let path = dir.join("all.ts");
    std::fs::write(&path, all).expect("write all.ts");
    path
}

fn duration(probe_out: &str) -> f64 {
    field(probe_out, None, "duration")
        .expect("duration")
        .parse()
        .expect("duration is a number")
}

#[test]
fn clip_reads_back_with_exact_payloads_and_timestamps() {
    let c = clip(10 * 90_000);
    let mut m = Muxer::new(Some(&c.avc), Some(&c.aac));
    let segs = segments(&mut m, &c.frames);
    assert_eq!(segs.len(), 3, "6 s with a keyframe every 2 s");
    assert_eq!(m.stats(), MuxStats::default());
    for s in &segs {
        let b = s.to_bytes();
        assert_eq!(
            (pid_at(&b, 0), pid_at(&b, 1)),
            (0, PMT_PID),
            "PAT, PMT first"
        );
    }
    let ts = concat(&segs);
    let d = demux(&ts);
    assert_eq!(d.pats, 3);
    let pmt = program(&d);
    assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(VIDEO_PID));
    let streams: Vec<_> = pmt
        .es_info
        .iter()
        .map(|e| (e.stream_type, e.elementary_pid.as_u16()))
        .collect();
    assert_eq!(
        streams,
        [
            (StreamType::H264, VIDEO_PID),
            (StreamType::AdtsAac, AUDIO_PID)
        ]
    );

    let video = of(&c.frames, TrackKind::Video);
    let read = d.on(VIDEO_PID);
    assert_eq!(read.len(), video.len());
    let mut with_dts = 0;
    for (i, (f, p)) in video.iter().zip(read).enumerate() {
        assert_eq!(p.stream_id, 0xE0);
        assert_eq!(p.packet_len, 0);
        assert_eq!(p.pts, Some(wrap33(f.pts())), "pts of video frame {i}");
        let want_dts = (f.cts != 0).then(|| wrap33(f.dts));
        assert_eq!(p.dts, want_dts, "dts of video frame {i}");
        with_dts += usize::from(p.dts.is_some());
        assert_eq!(p.pcr, Some(wrap33(f.dts - PCR_DELAY)));
        assert_eq!(p.random_access, f.keyframe);
        assert_eq!(&p.data[..6], &[0, 0, 0, 1, 9, 0xF0], "AUD first");
        if f.keyframe {
            assert_eq!(p.data[10] & 0x1F, 7, "SPS after the AUD of a keyframe");
        }
        assert!(
            p.data == reference_annexb(&c.avc, &f.data, f.keyframe),
            "Annex B of video frame {i}"
        );
    }
    assert!(with_dts > 0, "B-frames give PTS != DTS");

    let audio = of(&c.frames, TrackKind::Audio);
    let read = d.on(AUDIO_PID);
    assert_eq!(read.len(), audio.len());
    for (f, p) in audio.iter().zip(read) {
        assert_eq!(p.stream_id, 0xC0);
        assert_eq!(p.pts, Some(wrap33(f.pts())));
        assert_eq!(p.dts, None);
        assert_eq!(p.pcr, None);
        let h = adts(&p.data);
        assert_eq!(h.profile, 1, "AAC-LC");
        assert_eq!(h.sampling_index, 3, "48 kHz");
        assert_eq!(h.channels, 2);
        assert_eq!(h.frame_len, 7 + f.data.len());
        assert_eq!(&p.data[7..], &f.data[..]);
    }
}

#[test]
fn ffmpeg_reads_the_clip_as_h264_and_aac_with_our_timestamps() {
    let c = clip(10 * 90_000);
    let mut m = Muxer::new(Some(&c.avc), Some(&c.aac));
    let segs = segments(&mut m, &c.frames);
    let dir = temp_dir("clip");
    let all = write_and_concat(&dir, &segs);

    let info = probe(&all);
    assert_eq!(
        field(&info, Some("video"), "codec_name").as_deref(),
        Some("h264")
    );
    assert_eq!(
        field(&info, Some("video"), "width").as_deref(),
        Some("1280")
    );
    assert_eq!(
        field(&info, Some("video"), "height").as_deref(),
        Some("720")
    );
    assert_eq!(
        field(&info, Some("audio"), "codec_name").as_deref(),
        Some("aac")
    );
    assert_eq!(
        field(&info, Some("audio"), "sample_rate").as_deref(),
        Some("48000")
    );
    assert_eq!(
        field(&info, Some("audio"), "channels").as_deref(),
        Some("2")
    );
    let secs = duration(&info);
    assert!((5.8..=6.3).contains(&secs), "duration {secs}");
    decode_clean(&all);

    let want: Vec<(i64, i64)> = of(&c.frames, TrackKind::Video)
        .iter()
        .map(|f| (f.pts(), f.dts))
        .collect();
    assert_eq!(video_packet_times(&all), want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn timestamps_wrap_at_2_pow_33_and_still_decode() {
    // Start 3 s before the wrap so it falls in the middle of the clip.
    let c = clip((1 << 33) - 3 * 90_000);
    let video = of(&c.frames, TrackKind::Video);
    assert!(video.first().unwrap().dts < 1 << 33);
    assert!(video.last().unwrap().dts > 1 << 33);
    let mut m = Muxer::new(Some(&c.avc), Some(&c.aac));
    let segs = segments(&mut m, &c.frames);
    let d = demux(&concat(&segs));
    for (f, p) in video.iter().zip(d.on(VIDEO_PID)) {
        assert_eq!(p.pts, Some(wrap33(f.pts())));
        assert_eq!(p.pcr, Some(wrap33(f.dts - PCR_DELAY)));
        if f.cts != 0 {
            assert_eq!(p.dts, Some(wrap33(f.dts)));
        }
    }
    let wrapped = d
        .on(VIDEO_PID)
        .windows(2)
        .filter(|w| w[1].pcr < w[0].pcr)
        .count();
    assert_eq!(wrapped, 1, "the PCR wraps once");
    for (f, p) in of(&c.frames, TrackKind::Audio).iter().zip(d.on(AUDIO_PID)) {
        assert_eq!(p.pts, Some(wrap33(f.pts())));
    }

    let dir = temp_dir("wrap");
    let all = write_and_concat(&dir, &segs);
    let info = probe(&all);
    let secs = duration(&info);
    assert!(
        (5.8..=6.3).contains(&secs),
        "duration across the wrap {secs}"
    );
    decode_clean(&all);
    let got: Vec<(u64, u64)> = video_packet_times(&all)
        .into_iter()
        .map(|(p, d)| (wrap33(p), wrap33(d)))
        .collect();
    let want: Vec<(u64, u64)> = video
        .iter()
        .map(|f| (wrap33(f.pts()), wrap33(f.dts)))
        .collect();
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn segments_are_one_compact_copy_of_their_media() {
    let c = clip(10 * 90_000);
    let mut m = Muxer::new(Some(&c.avc), Some(&c.aac));
    let segs = segments(&mut m, &c.frames);
    // No slice refers to a frame's payload (the window holds its own copy, so an ingest
    // buffer is not kept alive by a 184-byte slice of it) ...
    let ranges: Vec<(usize, usize)> = c
        .frames
        .iter()
        .map(|f| {
            (
                f.data.as_ptr() as usize,
                f.data.as_ptr() as usize + f.data.len(),
            )
        })
        .collect();
    for seg in &segs {
        for s in seg.slices() {
            let p = s.as_ptr() as usize;
            assert!(!ranges.iter().any(|&(a, b)| p >= a && p < b));
            // ... every slice is whole packets ...
            assert_eq!(s.len() % 188, 0);
            assert!(s.chunks(188).all(|p| p[0] == 0x47));
        }
        // ... and a segment is as few slices as its blocks.
        assert!(
            seg.slices().len() <= seg.len() / crate::ts::packet::BLOCK + 2,
            "{} slices for {} bytes",
            seg.slices().len(),
            seg.len()
        );
    }
}

#[test]
fn audio_only_muxer_carries_the_pcr_on_audio() {
    let c = clip(10 * 90_000);
    let mut m = Muxer::new(None, Some(&c.aac));
    let segs = segments(&mut m, &c.frames);
    let video = of(&c.frames, TrackKind::Video);
    assert_eq!(m.stats().skipped_frames, video.len() as u64);
    let d = demux(&concat(&segs));
    let pmt = program(&d);
    assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(AUDIO_PID));
    assert_eq!(pmt.es_info.len(), 1);
    assert_eq!(pmt.es_info[0].stream_type, StreamType::AdtsAac);
    assert!(d.on(VIDEO_PID).is_empty());
    let audio = of(&c.frames, TrackKind::Audio);
    assert_eq!(d.on(AUDIO_PID).len(), audio.len());
    for (f, p) in audio.iter().zip(d.on(AUDIO_PID)) {
        assert_eq!(p.pcr, Some(wrap33(f.dts - PCR_DELAY)));
        assert!(p.random_access);
    }

    let dir = temp_dir("audio-only");
    let all = write_and_concat(&dir, &segs);
    let info = probe(&all);
    assert_eq!(
        field(&info, Some("audio"), "codec_name").as_deref(),
        Some("aac")
    );
    assert_eq!(field(&info, Some("video"), "codec_name"), None);
    decode_clean(&all);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn video_only_muxer_has_one_stream() {
    let c = clip(10 * 90_000);
    let mut m = Muxer::new(Some(&c.avc), None);
    let segs = segments(&mut m, &c.frames);
    let audio = of(&c.frames, TrackKind::Audio);
    assert_eq!(m.stats().skipped_frames, audio.len() as u64);
    let d = demux(&concat(&segs));
    let pmt = program(&d);
    assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(VIDEO_PID));
    assert_eq!(pmt.es_info.len(), 1);
    assert_eq!(pmt.es_info[0].stream_type, StreamType::H264);
    assert!(d.on(AUDIO_PID).is_empty());
    assert_eq!(d.on(VIDEO_PID).len(), of(&c.frames, TrackKind::Video).len());

    let dir = temp_dir("video-only");
    let all = write_and_concat(&dir, &segs);
    let info = probe(&all);
    assert_eq!(
        field(&info, Some("video"), "codec_name").as_deref(),
        Some("h264")
    );
    assert_eq!(field(&info, Some("audio"), "codec_name"), None);
    decode_clean(&all);
    let _ = std::fs::remove_dir_all(&dir);
}

fn aac() -> AacConfig {
    AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("LC 48 kHz stereo")
}

fn video_frame(dts: i64, cts: i32, keyframe: bool, data: Vec<u8>) -> MediaFrame {
    MediaFrame {
        track: TrackKind::Video,
        dts,
        cts,
        keyframe,
        data: Bytes::from(data),
    }
}

fn audio_frame(dts: i64, data: Vec<u8>) -> MediaFrame {
    MediaFrame {
        track: TrackKind::Audio,
        dts,
        cts: 0,
        keyframe: true,
        data: Bytes::from(data),
    }
}

/// Checks a synthetic run: every written frame reads back exactly, skipped ones are counted.
fn check_synthetic(cfg: &AvcConfig, frames: &[MediaFrame], cuts: &[usize]) {
    let aac = aac();
    let mut m = Muxer::new(Some(cfg), Some(&aac));
    let mut segs = Vec::new();
    m.begin_segment();
    for (i, f) in frames.iter().enumerate() {
        if cuts.contains(&i) {
            segs.push(m.finish_segment());
            m.begin_segment();
        }
        write(&mut m, f);
    }
    segs.push(m.finish_segment());
    let d = demux(&concat(&segs));
    assert_eq!(d.pats, segs.len());

    let mut skipped = 0;
    let want_video: Vec<_> = of(frames, TrackKind::Video)
        .into_iter()
        .filter_map(|f| {
            let annexb = reference_annexb(cfg, &f.data, f.keyframe);
            skipped += usize::from(annexb.is_empty());
            (!annexb.is_empty()).then_some((f, annexb))
        })
        .collect();
    let read = d.on(VIDEO_PID);
    assert_eq!(read.len(), want_video.len());
    for ((f, annexb), p) in want_video.iter().zip(read) {
        assert!(&p.data == annexb);
        assert_eq!(p.pts, Some(wrap33(f.pts())));
        assert_eq!(p.random_access, f.keyframe);
    }
    let want_audio: Vec<_> = of(frames, TrackKind::Audio)
        .into_iter()
        .filter(|f| {
            let ok = !f.data.is_empty();
            skipped += usize::from(!ok);
            ok
        })
        .collect();
    let read = d.on(AUDIO_PID);
    assert_eq!(read.len(), want_audio.len());
    for (f, p) in want_audio.iter().zip(read) {
        assert_eq!(adts(&p.data).frame_len, 7 + f.data.len());
        assert_eq!(&p.data[7..], &f.data[..]);
    }
    assert_eq!(m.stats().skipped_frames, skipped as u64);
}

#[test]
fn malformed_nal_prefixes_do_not_panic() {
    let cfg = config(4);
    let slice = avcc(4, &[&[0x41, 1, 2, 3]]);
    let frames = vec![
        // overruns the frame
        video_frame(
            90_000,
            0,
            true,
            [&slice[..], &[0xFF, 0xFF, 0xFF, 0xFF, 0x41]].concat(),
        ),
        // truncated prefix
        video_frame(93_000, 0, false, [&slice[..], &[0, 0]].concat()),
        // zero-length NAL between good ones
        video_frame(
            96_000,
            3000,
            false,
            [&slice[..], &[0, 0, 0, 0], &slice].concat(),
        ),
        // nothing valid at all
        video_frame(99_000, 0, false, vec![0, 0, 0, 9]),
        video_frame(102_000, 0, false, vec![0xFF]),
        // empty
        video_frame(105_000, 0, false, Vec::new()),
        audio_frame(90_000, Vec::new()),
    ];
    check_synthetic(&cfg, &frames, &[3]);

    let mut m = Muxer::new(Some(&cfg), Some(&aac()));
    m.begin_segment();
    for f in &frames {
        write(&mut m, f);
    }
    m.write_audio(&audio_frame(90_000, vec![0; MAX_ADTS_PAYLOAD + 1]));
    let _ = m.finish_segment();
    assert_eq!(
        m.stats(),
        MuxStats {
            skipped_frames: 5,
            malformed_nals: 5,
        }
    );
}

#[test]
fn multi_megabyte_keyframe() {
    let cfg = config(4);
    let big = vec![0x65; 3 << 20];
    let frames = vec![video_frame(90_000, 0, true, avcc(4, &[&big, &[0x65, 1]]))];
    check_synthetic(&cfg, &frames, &[]);
}

#[test]
fn writing_without_begin_opens_a_segment() {
    let cfg = config(4);
    let mut m = Muxer::new(Some(&cfg), None);
    assert!(m.finish_segment().is_empty());
    m.write_video(&video_frame(90_000, 0, true, avcc(4, &[&[0x65, 1]])));
    let seg = m.finish_segment().to_bytes();
    assert_eq!((pid_at(&seg, 0), pid_at(&seg, 1)), (0, PMT_PID));
    assert_eq!(demux(&seg).on(VIDEO_PID).len(), 1);
    assert!(m.finish_segment().is_empty());
}

/// NAL unit and AAC frame sizes around the packet boundaries, and some larger ones.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![
            0usize, 1, 2, 169, 170, 171, 182, 183, 184, 185, 368, 4000
        ]),
        0usize..600,
    ]
}

#[derive(Debug, Clone)]
enum Gen {
    Video {
        nals: Vec<(u8, usize)>,
        garbage: Vec<u8>,
        keyframe: bool,
        cts: i32,
    },
    Audio(usize),
}

fn gen_frame() -> impl Strategy<Value = Gen> {
    prop_oneof![
        (
            prop::collection::vec(
                (
                    prop::sample::select(vec![1u8, 5, 6, 7, 8, 9, 0x41, 0x65]),
                    size()
                ),
                0..5
            ),
            prop::collection::vec(any::<u8>(), 0..3),
            any::<bool>(),
            0i32..9000,
        )
            .prop_map(|(nals, garbage, keyframe, cts)| Gen::Video {
                nals,
                garbage,
                keyframe,
                cts
            }),
        size().prop_map(Gen::Audio),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_frames_packetize_validly(
        gens in prop::collection::vec(gen_frame(), 1..12),
        length_size in prop::sample::select(vec![1u8, 2, 4]),
        cuts in prop::collection::vec(0usize..12, 0..3),
        start in 90_000i64..(1 << 34),
    ) {
        let cfg = config(length_size);
        let max_len = (1usize << (8 * u32::from(length_size))) - 1;
        let frames: Vec<MediaFrame> = gens
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let dts = start + 3000 * i as i64;
                match g {
                    Gen::Video { nals, garbage, keyframe, cts } => {
                        let units: Vec<Vec<u8>> = nals
                            .iter()
                            .map(|&(t, n)| {
                                let mut u = vec![0xAB; n.min(max_len)];
                                if let Some(b) = u.first_mut() {
                                    *b = t;
                                }
                                u
                            })
                            .collect();
                        let refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
                        let mut data = avcc(length_size, &refs);
                        data.extend_from_slice(garbage);
                        video_frame(dts, *cts, *keyframe, data)
                    }
                    Gen::Audio(n) => audio_frame(dts, vec![0x21; *n]),
                }
            })
            .collect();
        check_synthetic(&cfg, &frames, &cuts);
    }
}
