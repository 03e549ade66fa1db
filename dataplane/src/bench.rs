//! Entry points for `benches/`: the frame path without sockets, over an FLV file held in
//! memory. Not a stable API (hidden from docs); it exists because benchmarks are separate
//! crates and the cores are `pub(crate)`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use camstream_protocol::{MediaEvent, TrackKind};

use crate::flv::Demuxer;
use crate::hls::segmenter::{Segmenter, Settings};

/// One FLV tag.
#[derive(Debug, Clone)]
pub struct Tag {
    /// FLV tag type: 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// A video tag.
    pub video: bool,
    /// RTMP millisecond timestamp.
    pub timestamp: u32,
    /// The tag body.
    pub body: Bytes,
}

/// Reads the tags of an FLV file.
///
/// # Errors
/// A description of the first structural problem found.
pub fn read_flv(data: &[u8]) -> Result<Vec<Tag>, String> {
    if data.len() < 13 || &data[..3] != b"FLV" {
        return Err("not an FLV file".into());
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let whole = Bytes::copy_from_slice(data);
    let mut pos = header_len + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let kind = data[pos] & 0x1F;
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let timestamp =
            u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let end = pos + 11 + size;
        if end > data.len() {
            return Err(format!("tag at byte {pos} runs past the end of the file"));
        }
        tags.push(Tag {
            kind,
            video: kind == 9,
            timestamp,
            body: whole.slice(pos + 11..end),
        });
        pos = end + 4;
    }
    Ok(tags)
}

/// Demuxes every tag; returns the media events.
pub fn demux(tags: &[Tag]) -> Vec<MediaEvent> {
    let mut d = Demuxer::new();
    tags.iter()
        .filter(|t| t.kind != 18)
        .filter_map(|t| {
            if t.video {
                d.handle_video(t.timestamp, t.body.clone()).ok().flatten()
            } else {
                d.handle_audio(t.timestamp, t.body.clone()).ok().flatten()
            }
        })
        .collect()
}

/// Number of media frames among events.
pub fn frames(events: &[MediaEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Frame(_)))
        .count()
}

/// Demux then MPEG-TS: every frame through the TS muxer, a segment per keyframe.
/// Returns the bytes produced.
pub fn demux_ts(tags: &[Tag]) -> usize {
    let mut d = Demuxer::new();
    let mut mux: Option<crate::ts::Muxer> = None;
    let mut out = 0;
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ev = if t.video {
            d.handle_video(t.timestamp, t.body.clone())
        } else {
            d.handle_audio(t.timestamp, t.body.clone())
        };
        let Ok(Some(MediaEvent::Frame(mut f))) = ev else {
            continue;
        };
        let m =
            mux.get_or_insert_with(|| crate::ts::Muxer::new(d.video_config(), d.audio_config()));
        f.dts += 10 * 90_000;
        match f.track {
            TrackKind::Video => {
                if f.keyframe {
                    out += m.finish_segment().len();
                    m.begin_segment();
                }
                m.write_video(&f);
            }
            TrackKind::Audio => m.write_audio(&f),
        }
    }
    out + mux.map_or(0, |mut m| m.finish_segment().len())
}

/// Demux then the full segmenter (LL-HLS fMP4 parts and TS segments on one timeline).
/// Returns the number of LL-HLS segments made.
pub fn demux_segment(tags: &[Tag]) -> usize {
    let mut d = Demuxer::new();
    let mut seg = Segmenter::new(
        Settings {
            window: 1_000,
            ..Settings::default()
        },
        Arc::from("bench"),
    );
    seg.start_session();
    let now = SystemTime::UNIX_EPOCH;
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ev = if t.video {
            d.handle_video(t.timestamp, t.body.clone())
        } else {
            d.handle_audio(t.timestamp, t.body.clone())
        };
        if let Ok(Some(ev)) = ev {
            seg.handle_event(now, ev);
        }
    }
    seg.end_session();
    seg.ll().segments.len()
}

/// Demux then fMP4 only: a fragment per 6 video frames (200 ms at 30 fps) with the audio of
/// that span. Returns the bytes produced.
pub fn demux_fmp4(tags: &[Tag]) -> usize {
    use crate::fmp4::{FragmentWriter, Sample};
    let mut d = Demuxer::new();
    let mut w = FragmentWriter::new();
    let (mut video, mut audio) = (Vec::with_capacity(8), Vec::with_capacity(16));
    let mut prev: Option<camstream_protocol::MediaFrame> = None;
    let mut audio_time = 0u64;
    let (mut seq, mut out) = (0u32, 0usize);
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ev = if t.video {
            d.handle_video(t.timestamp, t.body.clone())
        } else {
            d.handle_audio(t.timestamp, t.body.clone())
        };
        let Ok(Some(MediaEvent::Frame(f))) = ev else {
            continue;
        };
        match f.track {
            TrackKind::Audio => {
                audio.push(Sample {
                    decode_time: audio_time,
                    duration: 1024,
                    cts: 0,
                    keyframe: true,
                    data: f.data,
                });
                audio_time += 1024;
            }
            TrackKind::Video => {
                if let Some(p) = prev.take() {
                    video.push(Sample {
                        decode_time: (p.dts + 900_000) as u64,
                        duration: (f.dts - p.dts).max(1) as u32,
                        cts: p.cts,
                        keyframe: p.keyframe,
                        data: p.data,
                    });
                }
                prev = Some(f);
                if video.len() == 6 {
                    seq += 1;
                    out += w.write(seq, &video, &audio).map_or(0, |c| c.len());
                    video.clear();
                    audio.clear();
                }
            }
        }
    }
    out
}
