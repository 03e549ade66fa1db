//! Entry points for the cargo-fuzz targets in `fuzz/`, which cannot reach `pub(crate)` items.
//! Not an API: hidden from the docs, changed together with the targets, and only built with
//! the `fuzz` feature (the fuzz crate and this crate's tests turn it on; a release build has
//! none of it).
//!
//! - [`rtmp_session`]: raw bytes into the RTMP session alone.
//! - [`flv_tags`]: FLV tag bodies into the demuxer alone.
//! - [`ingest`]: RTMP bytes through the session, the segmenter, both muxers and both
//!   playlists, the way a publishing camera goes.
//! - [`ogg_opus`]: bytes into the Ogg Opus reader of WebRTC audio (what ffmpeg writes).

#![doc(hidden)]

mod ingest;

pub use ingest::{IngestStats, ingest};

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use camstream_protocol::MediaEvent;
use rml_rtmp::rml_amf0::{self, Amf0Value};

use crate::flv::Demuxer;
use crate::rtmp::{Config, Event, RtmpError, Session};

/// Arbitrary bytes into an RTMP [`Session`].
///
/// The first byte chooses a scripted prefix (bits 0–1: nothing, a handshake, a handshake and
/// `connect`, or those plus `createStream` and `publish`, which is then accepted) and how the
/// rest is cut into inputs (bits 2–3: 7, 61, 1024 bytes or all at once; the unit tests cover
/// byte-by-byte input, which would cost the fuzzer most of its speed). Every publish request
/// is accepted, so media bytes reach the demuxer.
///
/// # Panics
/// When `rml_rtmp` or the demuxer panicked inside the session: the panic was contained, but
/// it means a guard missed a crash path.
pub fn rtmp_session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut session = Session::new(now, Config::default());
    let prefix = prefix(mode & 3);
    if !prefix.is_empty() {
        assert_eq!(
            feed(&mut session, now, &prefix),
            Ok(true),
            "the prefix is valid"
        );
    }
    let piece = [7, 61, 1024, usize::MAX][usize::from((mode >> 2) & 3)];
    for input in rest.chunks(piece.min(rest.len().max(1))) {
        match feed(&mut session, now, input) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => panic!("{e}"),
        }
    }
    match session.handle_timeout(now + Duration::from_secs(3600)) {
        Err(RtmpError::Timeout { .. } | RtmpError::Closed) => {}
        other => panic!("an hour later the session must have timed out: {other:?}"),
    }
}

/// Feeds one input and drains the session. `Ok(false)`: the session failed as it should on
/// bad input. `Err`: something panicked inside the session.
fn feed(session: &mut Session, now: Instant, input: &[u8]) -> Result<bool, RtmpError> {
    let mut buf = BytesMut::from(input);
    let mut result = session.handle_input(now, &mut buf);
    while result.is_ok() {
        let mut progress = false;
        while session.poll_transmit().is_some() {
            progress = true;
        }
        while let Some(event) = session.poll_event() {
            progress = true;
            if matches!(event, Event::PublishRequested { .. }) {
                result = session.accept_publish();
            }
        }
        if !progress {
            break;
        }
    }
    match result {
        Ok(()) => Ok(true),
        Err(e @ RtmpError::Internal { .. }) => Err(e),
        Err(_) => Ok(false),
    }
}

/// Scripted client bytes: 0 nothing, 1 a handshake, 2 plus `connect`, 3 plus `createStream`
/// and `publish`.
fn prefix(level: u8) -> Vec<u8> {
    let mut v = Vec::new();
    if level == 0 {
        return v;
    }
    // C0 and an all-zero C1 and C2: the original (pre-digest) handshake, which rml_rtmp takes.
    v.push(3);
    v.resize(1 + 2 * 1536, 0);
    if level >= 2 {
        let app = [("app".to_owned(), Amf0Value::Utf8String("live".to_owned()))];
        v.extend(command(
            "connect",
            1.0,
            Amf0Value::Object(app.into()),
            &[],
            0,
        ));
    }
    if level >= 3 {
        v.extend(command("createStream", 2.0, Amf0Value::Null, &[], 0));
        let key = Amf0Value::Utf8String("key?token=t".to_owned());
        let mode = Amf0Value::Utf8String("live".to_owned());
        v.extend(command("publish", 0.0, Amf0Value::Null, &[key, mode], 1));
    }
    v
}

/// One AMF0 command as a single type 0 chunk on chunk stream 3 (all fit the initial 128).
fn command(
    name: &str,
    transaction: f64,
    object: Amf0Value,
    args: &[Amf0Value],
    stream: u32,
) -> Vec<u8> {
    let mut values = vec![
        Amf0Value::Utf8String(name.to_owned()),
        Amf0Value::Number(transaction),
        object,
    ];
    values.extend_from_slice(args);
    let body = rml_amf0::serialize(&values).expect("AMF0 values serialize");
    assert!(body.len() <= 128, "one chunk");
    let len = (body.len() as u32).to_be_bytes();
    let mut v = vec![3, 0, 0, 0, len[1], len[2], len[3], 20];
    v.extend_from_slice(&stream.to_le_bytes());
    v.extend_from_slice(&body);
    v
}

/// Arbitrary FLV tag bodies into one [`Demuxer`].
///
/// The input is a sequence of `[flags][len: u16 BE][body]`: flags bit 0 picks video or audio,
/// bits 1–7 step the timestamp (in 16 ms units, so the unwrapper sees jumps). A short last
/// body is taken as it is. Bodies are slices of one buffer, as on the real path.
///
/// # Panics
/// When a frame comes out with an empty payload.
pub fn flv_tags(data: &[u8]) {
    let whole = Bytes::copy_from_slice(data);
    let mut demuxer = Demuxer::new();
    let mut pos = 0;
    let mut timestamp = 0u32;
    while let Some(header) = data.get(pos..pos + 3) {
        let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
        let start = pos + 3;
        let end = (start + len).min(data.len());
        let body = whole.slice(start..end);
        pos = end;
        timestamp = timestamp.wrapping_add(u32::from(header[0] >> 1) * 16);
        let result = if header[0] & 1 == 1 {
            demuxer.handle_video(timestamp, body)
        } else {
            demuxer.handle_audio(timestamp, body)
        };
        if let Ok(Some(MediaEvent::Frame(frame))) = result {
            assert!(!frame.data.is_empty(), "frames carry data");
        }
    }
}

/// Arbitrary bytes into the Ogg Opus reader that takes ffmpeg's output for WebRTC audio
/// (`webrtc/opus.rs`), cut into reads of 1 to 256 bytes (the first byte + 1), as a pipe
/// delivers them.
///
/// # Panics
/// When the reader returns an empty packet or leaves a whole page unread.
pub fn ogg_opus(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let mut reader = crate::webrtc::opus::OggReader::default();
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(usize::from(cut) + 1) {
        buf.extend_from_slice(chunk);
        for packet in reader.push(&mut buf) {
            assert!(!packet.is_empty(), "packets carry data");
            let _ = crate::webrtc::opus::packet_samples(&packet);
        }
    }
    // What is left is less than a page: a header without its body, or no capture pattern.
    assert!(
        buf.len() < 27 + 255 + 255 * 255,
        "{} bytes left unread",
        buf.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::file::{TagKind, test_clip};

    #[test]
    fn prefixes_are_valid_and_reach_publishing() {
        for mode in 0..4 {
            rtmp_session(&[mode]);
        }
        // Mode 3 ends accepted: a sequence header right after it comes out as a config.
        let now = Instant::now();
        let mut session = Session::new(now, Config::default());
        assert_eq!(feed(&mut session, now, &prefix(3)), Ok(true));
        let body = &test_clip()
            .tags
            .iter()
            .find(|t| t.kind == TagKind::Video)
            .unwrap()
            .body;
        let len = (body.len() as u32).to_be_bytes();
        let mut video = vec![4, 0, 0, 0, len[1], len[2], len[3], 9, 1, 0, 0, 0];
        video.extend_from_slice(body);
        let mut buf = BytesMut::from(&video[..]);
        session.handle_input(now, &mut buf).unwrap();
        assert!(matches!(
            session.poll_event(),
            Some(Event::Media(MediaEvent::Config(_)))
        ));
    }

    #[test]
    fn flv_tags_takes_the_clip() {
        let mut input = Vec::new();
        let tags = test_clip().tags.iter().take(50);
        for tag in tags.filter(|t| t.body.len() <= usize::from(u16::MAX)) {
            let flags = u8::from(tag.kind == TagKind::Video) | 4;
            input.push(flags);
            input.extend_from_slice(&(tag.body.len() as u16).to_be_bytes());
            input.extend_from_slice(&tag.body);
        }
        flv_tags(&input);
        flv_tags(&input[..input.len() / 2]);
    }

    /// fuzz/artifacts/flv_tag/crash-09511bdce0c3d84b66c236c718048034d7e42a59: an SPS whose
    /// scaling list has a delta_scale near `i32::MAX`, which overflowed `last + delta + 256`
    /// in the SPS parser (protocol/src/codec/h264.rs).
    #[test]
    fn flv_tag_regression_sps_scaling_list_overflow() {
        let input = [
            0x09, 0x00, 0x31, 0x27, 0x00, 0x00, 0x01, 0x00, 0x01, 0xf6, 0xf8, 0x50, 0x00, 0x03,
            0x00, 0x19, 0x0a, 0x2c, 0x3f, 0x08, 0xfe, 0xd4, 0x11, 0x01, 0x09, 0xfc, 0x03, 0x00,
            0x19, 0x09, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x0c, 0xfc, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x2f,
        ];
        flv_tags(&input);
        let mut demuxer = Demuxer::new();
        let body = Bytes::copy_from_slice(&input[3..]);
        assert!(demuxer.handle_video(0, body).is_err());
    }
}
