//! Byte layout of the relay messages (see the module docs of [`super`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{
    AUTH_LEN, Accept, Cut, End, EndReason, Frame, Hello, Init, MAX_CAMERA_ID, MAX_CONFIG_RECORD,
    MAX_END_TEXT, MAX_MESSAGE, MAX_PREFIX, Message, RelayError, Timing,
};
use crate::codec::{AacConfig, AudioConfig, AvcConfig, VideoConfig};
use crate::frame::{MediaFrame, TrackKind};

const HELLO: u8 = 1;
const ACCEPT: u8 = 2;
const INIT: u8 = 3;
const FRAME: u8 = 4;
const FLUSH: u8 = 5;
const END: u8 = 6;

const KEYFRAME: u8 = 1;
const PREVIOUS_PART: u8 = 2;
const PART: u8 = 4;
const SEGMENT: u8 = 8;
const FRAME_FLAGS: u8 = KEYFRAME | PREVIOUS_PART | PART | SEGMENT;

/// Codec tags of the configuration records in an [`Init`].
const NO_TRACK: u8 = 0;
const H264: u8 = 1;
const AAC: u8 = 1;

/// Bytes of a frame message before its payload: length, type, track, flags, dts, cts.
const FRAME_HEADER: usize = 4 + 1 + 1 + 1 + 8 + 4;

/// Appends `msg` to `out`.
///
/// # Panics
/// When a field is longer than the protocol allows (a camera id, prefix, record or text
/// past its cap, a payload past [`MAX_MESSAGE`]): callers pass what they produced
/// themselves, and the caps are far above any real value.
pub fn encode(msg: &Message, out: &mut BytesMut) {
    if let Message::Frame(f) = msg {
        encode_frame_header(f, out);
        out.extend_from_slice(&f.frame.data);
        return;
    }
    let start = out.len();
    out.put_u32(0);
    match msg {
        Message::Hello(h) => {
            out.put_u8(HELLO);
            out.put_u16(h.version);
            put_str(out, &h.camera, MAX_CAMERA_ID);
            out.put_slice(&h.auth);
        }
        Message::Accept(a) => {
            out.put_u8(ACCEPT);
            out.put_slice(&a.auth);
        }
        Message::Init(i) => {
            out.put_u8(INIT);
            put_str(out, &i.prefix, MAX_PREFIX);
            out.put_u64(i.msn);
            out.put_u64(i.ts_msn);
            out.put_u32(i.part);
            out.put_u32(i.fragment_seq);
            out.put_u32(i.init_id);
            out.put_u8(u8::from(i.discontinuity));
            out.put_u64(i.discontinuity_sequence);
            out.put_u32(i.target_duration);
            out.put_u32(i.part_target_us);
            out.put_i64(i.timing.out_origin);
            out.put_i64(i.timing.wall_origin_us);
            out.put_i64(i.timing.frame_duration);
            out.put_i64(i.timing.part_max);
            match &i.video {
                Some(VideoConfig::H264(c)) => {
                    out.put_u8(H264);
                    put_record(out, &c.record);
                }
                None => out.put_u8(NO_TRACK),
            }
            match &i.audio {
                Some(AudioConfig::Aac(c)) => {
                    out.put_u8(AAC);
                    put_record(out, &c.asc);
                }
                None => out.put_u8(NO_TRACK),
            }
        }
        Message::Flush => out.put_u8(FLUSH),
        Message::End(e) => {
            out.put_u8(END);
            out.put_u8(e.reason.code());
            put_str(out, &e.text, MAX_END_TEXT);
        }
        Message::Frame(_) => unreachable!("handled above"),
    }
    let len = out.len() - start - 4;
    assert!(len <= MAX_MESSAGE, "relay message over the cap");
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
}

/// Appends the header of a frame message (everything but the payload) to `out`, so the
/// payload can be sent as its own buffer without a copy.
///
/// # Panics
/// When the payload is larger than [`MAX_MESSAGE`] allows.
pub fn encode_frame_header(f: &Frame, out: &mut BytesMut) {
    let len = FRAME_HEADER - 4 + f.frame.data.len();
    assert!(len <= MAX_MESSAGE, "relay frame over the cap");
    out.reserve(FRAME_HEADER);
    out.put_u32(len as u32);
    out.put_u8(FRAME);
    out.put_u8(match f.frame.track {
        TrackKind::Video => 0,
        TrackKind::Audio => 1,
    });
    let mut flags = 0;
    if f.frame.keyframe {
        flags |= KEYFRAME;
    }
    if f.cut.previous_part {
        flags |= PREVIOUS_PART;
    }
    if f.cut.part || f.cut.segment {
        flags |= PART;
    }
    if f.cut.segment {
        flags |= SEGMENT;
    }
    out.put_u8(flags);
    out.put_i64(f.frame.dts);
    out.put_i32(f.frame.cts);
}

/// Takes one whole message off the front of `buf`.
///
/// Returns `Ok(None)` while the message is incomplete (nothing is consumed). A frame's
/// payload is a slice of `buf`'s storage.
///
/// # Errors
/// [`RelayError`] when the message is too large or malformed; the stream cannot continue
/// after that (the length prefix may be wrong).
pub fn decode(buf: &mut BytesMut) -> Result<Option<Message>, RelayError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_MESSAGE {
        return Err(RelayError::TooLarge {
            len,
            max: MAX_MESSAGE,
        });
    }
    if len == 0 {
        return Err(RelayError::Empty);
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let mut body = buf.split_to(len).freeze();
    let kind = body.get_u8();
    let msg = match kind {
        HELLO => {
            let mut r = Reader::new("hello", body);
            let version = r.u16("version")?;
            let camera = r.str("camera", MAX_CAMERA_ID)?;
            let auth = r.auth()?;
            r.finish()?;
            Message::Hello(Hello {
                version,
                camera,
                auth,
            })
        }
        ACCEPT => {
            let mut r = Reader::new("accept", body);
            let auth = r.auth()?;
            r.finish()?;
            Message::Accept(Accept { auth })
        }
        INIT => Message::Init(decode_init(body)?),
        FRAME => Message::Frame(decode_frame(body)?),
        FLUSH => {
            Reader::new("flush", body).finish()?;
            Message::Flush
        }
        END => {
            let mut r = Reader::new("end", body);
            let reason = EndReason::from_code(r.u8("reason")?);
            let text = r.str("text", MAX_END_TEXT)?;
            r.finish()?;
            Message::End(End { reason, text })
        }
        got => return Err(RelayError::UnknownType { got }),
    };
    Ok(Some(msg))
}

fn decode_init(body: Bytes) -> Result<Init, RelayError> {
    let mut r = Reader::new("init", body);
    let prefix = r.str("prefix", MAX_PREFIX)?;
    let msn = r.u64("msn")?;
    let ts_msn = r.u64("ts_msn")?;
    let part = r.u32("part")?;
    let fragment_seq = r.u32("fragment_seq")?;
    let init_id = r.u32("init_id")?;
    let discontinuity = match r.u8("discontinuity")? {
        0 => false,
        1 => true,
        got => {
            return Err(RelayError::Invalid {
                what: "init",
                field: "discontinuity",
                got: u64::from(got),
            });
        }
    };
    let discontinuity_sequence = r.u64("discontinuity_sequence")?;
    let target_duration = r.u32("target_duration")?;
    let part_target_us = r.u32("part_target_us")?;
    let timing = Timing {
        out_origin: r.u64("out_origin")? as i64,
        wall_origin_us: r.u64("wall_origin_us")? as i64,
        frame_duration: r.u64("frame_duration")? as i64,
        part_max: r.u64("part_max")? as i64,
    };
    let video = match r.u8("video codec")? {
        NO_TRACK => None,
        H264 => Some(VideoConfig::H264(AvcConfig::parse(r.record("avcC")?)?)),
        got => {
            return Err(RelayError::Invalid {
                what: "init",
                field: "video codec",
                got: u64::from(got),
            });
        }
    };
    let audio = match r.u8("audio codec")? {
        NO_TRACK => None,
        AAC => Some(AudioConfig::Aac(AacConfig::parse(r.record("asc")?)?)),
        got => {
            return Err(RelayError::Invalid {
                what: "init",
                field: "audio codec",
                got: u64::from(got),
            });
        }
    };
    r.finish()?;
    Ok(Init {
        prefix,
        msn,
        ts_msn,
        part,
        fragment_seq,
        init_id,
        discontinuity,
        discontinuity_sequence,
        target_duration,
        part_target_us,
        timing,
        video,
        audio,
    })
}

fn decode_frame(body: Bytes) -> Result<Frame, RelayError> {
    let mut r = Reader::new("frame", body);
    let track = match r.u8("track")? {
        0 => TrackKind::Video,
        1 => TrackKind::Audio,
        got => {
            return Err(RelayError::Invalid {
                what: "frame",
                field: "track",
                got: u64::from(got),
            });
        }
    };
    let flags = r.u8("flags")?;
    if flags & !FRAME_FLAGS != 0 || (flags & SEGMENT != 0 && flags & PART == 0) {
        return Err(RelayError::Invalid {
            what: "frame",
            field: "flags",
            got: u64::from(flags),
        });
    }
    let dts = r.u64("dts")? as i64;
    let cts = r.u32("cts")? as i32;
    Ok(Frame {
        frame: MediaFrame {
            track,
            dts,
            cts,
            keyframe: flags & KEYFRAME != 0,
            data: r.rest(),
        },
        cut: Cut {
            previous_part: flags & PREVIOUS_PART != 0,
            part: flags & PART != 0,
            segment: flags & SEGMENT != 0,
        },
    })
}

fn put_str(out: &mut BytesMut, s: &str, max: usize) {
    assert!(s.len() <= max, "relay string over its cap");
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn put_record(out: &mut BytesMut, b: &[u8]) {
    assert!(b.len() <= MAX_CONFIG_RECORD, "relay record over its cap");
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

/// A strict reader over one message body.
struct Reader {
    what: &'static str,
    body: Bytes,
}

impl Reader {
    fn new(what: &'static str, body: Bytes) -> Self {
        Self { what, body }
    }

    fn need(&self, field: &'static str, n: usize) -> Result<(), RelayError> {
        if self.body.len() < n {
            return Err(RelayError::Truncated {
                what: self.what,
                field,
                needed: n - self.body.len(),
            });
        }
        Ok(())
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, RelayError> {
        self.need(field, 1)?;
        Ok(self.body.get_u8())
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, RelayError> {
        self.need(field, 2)?;
        Ok(self.body.get_u16())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, RelayError> {
        self.need(field, 4)?;
        Ok(self.body.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, RelayError> {
        self.need(field, 8)?;
        Ok(self.body.get_u64())
    }

    fn capped(&mut self, field: &'static str, len: usize, max: usize) -> Result<Bytes, RelayError> {
        if len > max {
            return Err(RelayError::Invalid {
                what: self.what,
                field,
                got: len as u64,
            });
        }
        self.need(field, len)?;
        Ok(self.body.split_to(len))
    }

    fn str(&mut self, field: &'static str, max: usize) -> Result<String, RelayError> {
        let len = usize::from(self.u16(field)?);
        let bytes = self.capped(field, len, max)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| RelayError::Invalid {
            what: self.what,
            field,
            got: e.utf8_error().valid_up_to() as u64,
        })
    }

    fn record(&mut self, field: &'static str) -> Result<Bytes, RelayError> {
        let len = self.u32(field)? as usize;
        self.capped(field, len, MAX_CONFIG_RECORD)
    }

    fn auth(&mut self) -> Result<[u8; AUTH_LEN], RelayError> {
        self.need("auth", AUTH_LEN)?;
        let mut a = [0; AUTH_LEN];
        self.body.copy_to_slice(&mut a);
        Ok(a)
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.body)
    }

    fn finish(self) -> Result<(), RelayError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(RelayError::Trailing {
                what: self.what,
                extra: self.body.len(),
            })
        }
    }
}
