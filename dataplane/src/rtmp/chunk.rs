//! The RTMP chunk stream reader: the only parser of the peer's chunks. It reassembles messages
//! with at most one copy of their payload and refuses input that would hurt.
//!
//! Owns: chunk headers (formats 0–3, inherited fields, extended timestamps, the chunk size in
//! force), reassembly on any number of interleaved chunk streams, Abort, and the refusals that
//! keep a hostile peer bounded: message lengths, chunk sizes, chunk stream count, input without
//! a complete message, bytes reserved for unfinished messages, and bodies that would crash
//! `rml_rtmp` when [`super::session`] hands it a command or data message (checked with
//! [`super::amf0`]). Leaves to [`super::session`] what a message means.
//!
//! Copies: a large message (at least [`SPLIT_MIN`]) that arrives as one chunk lying entirely in
//! the current input is split off the input buffer (`split_to(..).freeze()`), no copy. Any other
//! message (several chunks, a chunk cut by a read boundary, or a small one) is copied once, into
//! one buffer sized to the message length at its first payload byte. Small messages are copied
//! because a slice keeps its whole read block alive for as long as the frame sits in the HLS
//! window: an audio frame of a few hundred bytes would pin a 64 KiB block whose other bytes
//! (chunks already copied out) are dead, which doubled the memory a camera costs.
//!
//! Timestamps are computed as `rml_rtmp` 0.8 and ffmpeg compute them: a format 3 chunk that
//! starts a message adds the chunk stream's last timestamp field (so after a format 0 header it
//! adds that header's absolute timestamp), an extended timestamp replaces the 24-bit field, and
//! format 3 continuations carry the extended field again but leave the timestamp alone.
//!
//! Spec: RTMP 1.0 §5.3.1 (chunk format), §5.4.1 (Set Chunk Size), §5.4.2 (Abort), §5.4.4
//! (Window Acknowledgement Size), §7.1.2 (AMF0 command and data messages).

use bytes::{Buf, Bytes, BytesMut};

use super::RtmpError;
use super::amf0;

/// Smallest one-chunk message split off the input instead of copied (see the module docs).
/// Only encoders that raise the chunk size above it send such messages; their read blocks
/// then hold mostly frames that stay alive together.
pub(crate) const SPLIT_MIN: u32 = 16 << 10;

/// A timestamp field of this value means "see the extended timestamp".
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;
/// Chunk size before the peer sets one (§5.4.1).
const INITIAL_CHUNK_SIZE: u32 = 128;
/// Largest Window Acknowledgement Size accepted: a window of 2 GiB or more is no window.
pub(crate) const MAX_WINDOW_ACK_SIZE: u32 = 0x7FFF_FFFF;
/// Longest chunk header: 3-byte basic header, 11-byte type 0 header, 4-byte extended timestamp.
const MAX_HEADER_LEN: usize = 18;

/// Message type ids (§5.4, §7.1).
pub(crate) const SET_CHUNK_SIZE: u8 = 1;
pub(crate) const ABORT: u8 = 2;
pub(crate) const ACKNOWLEDGEMENT: u8 = 3;
pub(crate) const WINDOW_ACK_SIZE: u8 = 5;
pub(crate) const AUDIO: u8 = 8;
pub(crate) const VIDEO: u8 = 9;
const AMF3_DATA: u8 = 15;
const AMF3_COMMAND: u8 = 17;
const AMF0_DATA: u8 = 18;
const AMF0_COMMAND: u8 = 20;
pub(crate) const AGGREGATE: u8 = 22;

/// The limits the reader enforces (see [`super::Config`] for what each means).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_message_len: usize,
    pub(crate) max_command_len: usize,
    pub(crate) max_chunk_size: u32,
    pub(crate) max_pending_bytes: usize,
    pub(crate) max_chunk_streams: usize,
    pub(crate) max_streams: u32,
}

/// One complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) type_id: u8,
    /// The message stream id (§5.3.1.2.1).
    pub(crate) stream_id: u32,
    /// Milliseconds, as the chunk headers add up (wrapping).
    pub(crate) timestamp: u32,
    pub(crate) payload: Bytes,
}

/// The fields a compressed header inherits from the previous one on its chunk stream.
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    /// The current message's timestamp.
    timestamp: u32,
    /// The last 24-bit timestamp field (absolute after format 0, a delta after 1 and 2).
    timestamp_field: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    header: Header,
    /// The unfinished message's payload so far; its capacity is the message length.
    partial: Option<BytesMut>,
}

/// The chunk whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Current {
    /// Index into `ChunkReader::streams`.
    index: usize,
    left: u32,
}

/// Reads the peer's chunk stream into messages; see the module docs.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    limits: Limits,
    chunk_size: u32,
    /// Every chunk stream seen; at most `max_chunk_streams`, so a linear search is bounded.
    streams: Vec<ChunkStream>,
    head: [u8; MAX_HEADER_LEN],
    head_len: usize,
    current: Option<Current>,
    /// Input bytes since the last complete message.
    pending: usize,
    /// Capacity of the buffers of unfinished messages.
    held: usize,
    created_streams: u32,
    publishing: bool,
}

impl ChunkReader {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: Vec::new(),
            head: [0; MAX_HEADER_LEN],
            head_len: 0,
            current: None,
            pending: 0,
            held: 0,
            created_streams: 0,
            publishing: false,
        }
    }

    /// The chunk size the peer announced last.
    #[cfg(test)]
    pub(crate) fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// From now on media messages may be as long as `max_message_len`; before, every message
    /// is held to `max_command_len` (media is dropped until the publish is accepted anyway).
    pub(crate) fn allow_media(&mut self) {
        self.publishing = true;
    }

    /// Consumes bytes from the front of `input` up to the end of the next complete message and
    /// returns it; `Ok(None)` once `input` is empty without completing one (what was read is
    /// kept). Protocol control that shapes the chunk stream (Set Chunk Size, Abort) takes
    /// effect before the next byte is read, and is returned as well.
    ///
    /// # Errors
    /// The first violation found (see [`RtmpError`]). After an error the reader's state is
    /// undefined: the connection must end.
    pub(crate) fn read(&mut self, input: &mut BytesMut) -> Result<Option<Message>, RtmpError> {
        loop {
            let cur = match self.current {
                Some(cur) => cur,
                None => match self.read_header(input)? {
                    Some(cur) => cur,
                    None => return Ok(None),
                },
            };
            let (len, started) = {
                let stream = &self.streams[cur.index];
                (stream.header.length, stream.partial.is_some())
            };
            if !started && cur.left == len && input.len() >= len as usize && len >= SPLIT_MIN {
                // The whole message is one large chunk, all in this input: no copy.
                self.current = None;
                self.consume(len as usize)?;
                let payload = input.split_to(len as usize).freeze();
                return self.complete(cur.index, payload).map(Some);
            }
            if len == 0 {
                // An empty message is complete with its header, even when the header was the
                // last byte read: waiting for more input would hold it back until the peer
                // sends again (proptest `reassembles_interleaved_chunk_streams`).
                self.current = None;
                return self.complete(cur.index, Bytes::new()).map(Some);
            }
            if input.is_empty() {
                self.current = Some(cur);
                return Ok(None);
            }
            if !started {
                // The one copy of this message goes into one buffer of its length.
                self.held += len as usize;
                // A lone message is bounded by its length limit; this bounds interleaving.
                if self.held > self.limits.max_pending_bytes && self.held > len as usize {
                    return Err(RtmpError::UnfinishedTooLarge {
                        bytes: self.held,
                        max: self.limits.max_pending_bytes,
                    });
                }
                self.streams[cur.index].partial = Some(BytesMut::with_capacity(len as usize));
            }
            let partial = self.streams[cur.index]
                .partial
                .as_mut()
                .expect("started above or by an earlier chunk");
            let n = input.len().min(cur.left as usize);
            partial.extend_from_slice(&input[..n]);
            let done = partial.len() == len as usize;
            input.advance(n);
            self.consume(n)?;
            // n <= cur.left, a u32.
            let left = cur.left - n as u32;
            if left > 0 {
                self.current = Some(Current { left, ..cur });
                return Ok(None);
            }
            self.current = None;
            if done {
                let payload = self.streams[cur.index]
                    .partial
                    .take()
                    .expect("written above")
                    .freeze();
                self.held -= len as usize;
                return self.complete(cur.index, payload).map(Some);
            }
        }
    }

    fn consume(&mut self, n: usize) -> Result<(), RtmpError> {
        self.pending += n;
        if self.pending > self.limits.max_pending_bytes {
            return Err(RtmpError::Stalled {
                pending: self.pending,
                max: self.limits.max_pending_bytes,
            });
        }
        Ok(())
    }

    /// Gathers a chunk header from `input`; `None` when `input` ran out first.
    fn read_header(&mut self, input: &mut BytesMut) -> Result<Option<Current>, RtmpError> {
        loop {
            // The header length is known piecewise (basic header, then timestamp field); it is
            // complete when knowing more does not ask for more.
            let need = self.header_len()?;
            if self.head_len == need {
                return self.start_chunk().map(Some);
            }
            if input.is_empty() {
                return Ok(None);
            }
            let n = input.len().min(need - self.head_len);
            self.head[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
            self.head_len += n;
            input.advance(n);
            self.consume(n)?;
        }
    }

    /// Format and chunk stream id of the basic header in `head`, and its length; `None` when
    /// more bytes are needed to tell.
    fn basic_header(&self) -> Option<(u8, u32, usize)> {
        if self.head_len == 0 {
            return None;
        }
        let b0 = self.head[0];
        let fmt = b0 >> 6;
        match b0 & 0x3F {
            0 if self.head_len >= 2 => Some((fmt, u32::from(self.head[1]) + 64, 2)),
            1 if self.head_len >= 3 => Some((
                fmt,
                u32::from(self.head[2]) * 256 + u32::from(self.head[1]) + 64,
                3,
            )),
            0 | 1 => None,
            csid => Some((fmt, u32::from(csid), 1)),
        }
    }

    /// How many header bytes are needed, as far as the bytes in `head` tell.
    fn header_len(&self) -> Result<usize, RtmpError> {
        let Some((fmt, csid, basic)) = self.basic_header() else {
            return Ok(match self.head_len {
                0 => 1,
                _ if self.head[0] & 0x3F == 0 => 2,
                _ => 3,
            });
        };
        let message_header = [11, 7, 3, 0][usize::from(fmt)];
        let timestamp_field = if fmt == 3 {
            self.previous(csid, fmt)?.header.timestamp_field
        } else if self.head_len < basic + 3 {
            return Ok(basic + 3);
        } else {
            u24(&self.head[basic..])
        };
        let extended = if timestamp_field >= EXTENDED_TIMESTAMP {
            4
        } else {
            0
        };
        Ok(basic + message_header + extended)
    }

    fn find(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.csid == csid)
    }

    fn previous(&self, csid: u32, fmt: u8) -> Result<&ChunkStream, RtmpError> {
        self.find(csid)
            .map(|i| &self.streams[i])
            .ok_or(RtmpError::NoPreviousChunk { csid, fmt })
    }

    /// A complete chunk header is in `head`: apply it.
    fn start_chunk(&mut self) -> Result<Current, RtmpError> {
        let (fmt, csid, basic) = self
            .basic_header()
            .expect("a complete header has a basic header");
        self.head_len = 0;
        let index = match self.find(csid) {
            Some(index) => index,
            None if fmt != 0 => return Err(RtmpError::NoPreviousChunk { csid, fmt }),
            None if self.streams.len() >= self.limits.max_chunk_streams => {
                return Err(RtmpError::TooManyChunkStreams {
                    max: self.limits.max_chunk_streams,
                });
            }
            None => {
                self.streams.push(ChunkStream {
                    csid,
                    header: Header::default(),
                    partial: None,
                });
                self.streams.len() - 1
            }
        };
        let stream = &self.streams[index];
        let received = stream.partial.as_ref().map(BytesMut::len);
        if received.is_some() && fmt != 3 {
            return Err(RtmpError::Interrupted { csid, fmt });
        }

        let previous = stream.header;
        let h = &self.head[basic..];
        let mut header = if fmt == 0 {
            Header::default()
        } else {
            previous
        };
        let mut pos = 0;
        if fmt <= 2 {
            header.timestamp_field = u24(h);
            pos += 3;
        }
        if fmt <= 1 {
            header.length = u24(&h[pos..]);
            header.type_id = h[pos + 3];
            pos += 4;
        }
        if fmt == 0 {
            header.stream_id = u32::from_le_bytes([h[pos], h[pos + 1], h[pos + 2], h[pos + 3]]);
            pos += 4;
        }
        let extended = (header.timestamp_field >= EXTENDED_TIMESTAMP)
            .then(|| u32::from_be_bytes([h[pos], h[pos + 1], h[pos + 2], h[pos + 3]]));
        let received = match received {
            // A continuation: its extended timestamp (if any) repeats the first chunk's.
            Some(received) => received,
            None => {
                if let Some(ext) = extended
                    && fmt != 0
                    && ext < EXTENDED_TIMESTAMP
                {
                    // A delta the 24-bit field could have held: no encoder sends it, and
                    // `rml_rtmp` computed `ext - 0xFFFFFF` from it unchecked; still refused.
                    return Err(RtmpError::BadExtendedTimestamp { csid, got: ext });
                }
                let delta = extended.unwrap_or(header.timestamp_field);
                header.timestamp = if fmt == 0 {
                    delta
                } else {
                    previous.timestamp.wrapping_add(delta)
                };
                self.check_length(header)?;
                0
            }
        };
        self.streams[index].header = header;
        // received < length for a continuation, so this is at least 1 (chunk sizes are >= 1).
        let left = (header.length - received as u32).min(self.chunk_size);
        Ok(Current { index, left })
    }

    fn check_length(&self, header: Header) -> Result<(), RtmpError> {
        let media = matches!(header.type_id, AUDIO | VIDEO | AGGREGATE);
        let max = if media && self.publishing {
            self.limits.max_message_len
        } else {
            self.limits.max_command_len
        };
        if header.length as usize > max {
            return Err(RtmpError::MessageTooLong {
                type_id: header.type_id,
                len: header.length,
                max,
            });
        }
        Ok(())
    }

    /// The message on chunk stream `index` is complete.
    fn complete(&mut self, index: usize, payload: Bytes) -> Result<Message, RtmpError> {
        self.pending = 0;
        let header = self.streams[index].header;
        self.inspect(header.type_id, &payload)?;
        Ok(Message {
            type_id: header.type_id,
            stream_id: header.stream_id,
            timestamp: header.timestamp,
            payload,
        })
    }

    /// Applies protocol control and vets the bodies `rml_rtmp` will parse.
    fn inspect(&mut self, type_id: u8, body: &[u8]) -> Result<(), RtmpError> {
        let malformed = |reason| RtmpError::Malformed { type_id, reason };
        match type_id {
            SET_CHUNK_SIZE => {
                let size = be32(body).ok_or(malformed("Set Chunk Size shorter than 4 bytes"))?;
                if size == 0 || size > self.limits.max_chunk_size {
                    return Err(RtmpError::InvalidChunkSize {
                        got: size,
                        max: self.limits.max_chunk_size,
                    });
                }
                self.chunk_size = size;
            }
            ABORT => {
                let csid = be32(body).ok_or(malformed("Abort shorter than 4 bytes"))?;
                if let Some(index) = self.find(csid) {
                    let stream = &mut self.streams[index];
                    if stream.partial.take().is_some() {
                        self.held -= stream.header.length as usize;
                    }
                }
            }
            WINDOW_ACK_SIZE => {
                let size = be32(body).ok_or(malformed(
                    "Window Acknowledgement Size shorter than 4 bytes",
                ))?;
                if size > MAX_WINDOW_ACK_SIZE {
                    return Err(RtmpError::InvalidWindowAckSize {
                        got: size,
                        max: MAX_WINDOW_ACK_SIZE,
                    });
                }
            }
            AMF0_DATA | AMF3_DATA => {
                let summary = amf0::skim(body).map_err(malformed)?;
                // rml_rtmp indexes the values after `@setDataFrame` without a length check.
                if summary.first_string == Some(b"@setDataFrame") && summary.values < 3 {
                    return Err(malformed(
                        "@setDataFrame without a handler name and a value",
                    ));
                }
            }
            AMF0_COMMAND | AMF3_COMMAND => {
                // rml_rtmp reads "AMF3" commands as AMF0 after one leading 0 byte.
                let amf = match body {
                    [0, rest @ ..] if type_id == AMF3_COMMAND => rest,
                    _ => body,
                };
                let summary = amf0::skim(amf).map_err(malformed)?;
                // rml_rtmp `drain(..3)`s name, transaction id and command object unchecked.
                if summary.values < 3 {
                    return Err(malformed("command with fewer than three AMF0 values"));
                }
                if summary.first_string == Some(b"createStream") {
                    self.created_streams += 1;
                    if self.created_streams > self.limits.max_streams {
                        return Err(RtmpError::TooManyStreams {
                            max: self.limits.max_streams,
                        });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// The first four bytes, big-endian.
pub(crate) fn be32(b: &[u8]) -> Option<u32> {
    let b = b.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    fn limits() -> Limits {
        Limits {
            max_message_len: 16 << 20,
            max_command_len: 64 << 10,
            max_chunk_size: 16 << 20,
            max_pending_bytes: 24 << 20,
            max_chunk_streams: 64,
            max_streams: 8,
        }
    }

    fn reader() -> ChunkReader {
        let mut r = ChunkReader::new(limits());
        r.allow_media();
        r
    }

    /// Every message in `input`, which is consumed.
    fn read_all(r: &mut ChunkReader, input: &mut BytesMut) -> Result<Vec<Message>, RtmpError> {
        let mut out = Vec::new();
        while let Some(m) = r.read(input)? {
            out.push(m);
        }
        assert!(input.is_empty(), "read consumes all input");
        Ok(out)
    }

    /// A type 0 chunk header on a one-byte chunk stream id.
    fn full_header(csid: u8, timestamp: u32, len: usize, type_id: u8, stream_id: u32) -> Vec<u8> {
        let ts = timestamp.min(EXTENDED_TIMESTAMP).to_be_bytes();
        let len = (len as u32).to_be_bytes();
        let mut v = vec![csid, ts[1], ts[2], ts[3], len[1], len[2], len[3], type_id];
        v.extend_from_slice(&stream_id.to_le_bytes());
        if timestamp >= EXTENDED_TIMESTAMP {
            v.extend_from_slice(&timestamp.to_be_bytes());
        }
        v
    }

    fn message(type_id: u8, stream_id: u32, timestamp: u32, payload: &[u8]) -> Message {
        Message {
            type_id,
            stream_id,
            timestamp,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn reads_all_basic_header_sizes() {
        let mut v = Vec::new();
        // csid 5 (1 byte), 64 + 36 (2 bytes), 64 + 80 + 256 (3 bytes)
        for basic in [&[5u8][..], &[0, 36], &[1, 80, 1]] {
            v.extend_from_slice(basic);
            v.extend_from_slice(&[0, 0, 0, 0, 0, 2, 8, 1, 0, 0, 0, 0xAF, 1]);
        }
        let got = read_all(&mut reader(), &mut BytesMut::from(&v[..])).unwrap();
        assert_eq!(got, vec![message(8, 1, 0, &[0xAF, 1]); 3]);
    }

    #[test]
    fn a_large_message_in_one_chunk_of_one_input_is_split_off_the_input() {
        let payload = vec![0x27; SPLIT_MIN as usize + 3000];
        let mut v = full_header(2, 0, 4, SET_CHUNK_SIZE, 0);
        v.extend_from_slice(&65_536u32.to_be_bytes());
        v.extend(full_header(4, 0, payload.len(), VIDEO, 1));
        v.extend_from_slice(&payload);
        v.extend(full_header(4, 33, 2, VIDEO, 1));
        v.extend_from_slice(&[0x27, 1]);
        let mut input = BytesMut::from(&v[..]);
        let start = input.as_ptr() as usize;
        let range = start..start + v.len();
        let got = read_all(&mut reader(), &mut input).unwrap();
        assert_eq!(got.len(), 3);
        let inside = |m: &Message| range.contains(&(m.payload.as_ptr() as usize));
        assert!(inside(&got[1]), "the large frame points into the input");
        assert_eq!(&got[1].payload[..], &payload[..]);
        assert_eq!(got[2].timestamp, 33);
        // Small messages get buffers of their own: a retained audio frame must not keep the
        // read block alive.
        for m in [&got[0], &got[2]] {
            assert!(!inside(m), "a small message is copied");
        }
    }

    #[test]
    fn a_message_of_several_chunks_is_one_buffer_of_its_length() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut v = full_header(4, 0, payload.len(), VIDEO, 1);
        for (i, piece) in payload.chunks(128).enumerate() {
            if i > 0 {
                v.push(0xC4);
            }
            v.extend_from_slice(piece);
        }
        // Whole in one input, and cut in two inside the first chunk.
        for cut in [v.len(), 50] {
            let mut r = reader();
            let mut got = read_all(&mut r, &mut BytesMut::from(&v[..cut])).unwrap();
            got.extend(read_all(&mut r, &mut BytesMut::from(&v[cut..])).unwrap());
            let [m] = <[Message; 1]>::try_from(got).unwrap();
            assert_eq!(&m.payload[..], &payload[..]);
            let buffer = m
                .payload
                .try_into_mut()
                .expect("the reader keeps no reference");
            assert_eq!(
                buffer.capacity(),
                payload.len(),
                "sized to the message, never grown"
            );
            assert_eq!(r.held, 0);
        }
    }

    #[test]
    fn set_chunk_size_applies_to_the_next_chunk_of_the_same_input() {
        let payload = vec![0x17; 70_000];
        let mut v = full_header(2, 0, 4, SET_CHUNK_SIZE, 0);
        v.extend_from_slice(&65_536u32.to_be_bytes());
        v.extend(full_header(4, 0, payload.len(), VIDEO, 1));
        v.extend_from_slice(&payload[..65_536]);
        v.push(0xC4);
        v.extend_from_slice(&payload[65_536..]);
        let mut r = reader();
        let got = read_all(&mut r, &mut BytesMut::from(&v[..])).unwrap();
        assert_eq!(r.chunk_size(), 65_536);
        assert_eq!(got.len(), 2);
        assert_eq!(&got[1].payload[..], &payload[..]);
    }

    #[test]
    fn interleaved_messages_complete_in_order() {
        // 300-byte video on csid 4 in 128-byte chunks, with a 10-byte audio message on csid 5
        // and a continuation-started audio message after its first and second chunks.
        let video: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut v = full_header(4, 1000, video.len(), VIDEO, 1);
        v.extend_from_slice(&video[..128]);
        v.extend(full_header(5, 1010, 10, AUDIO, 1));
        v.extend_from_slice(&[1; 10]);
        v.push(0xC4);
        v.extend_from_slice(&video[128..256]);
        // format 3 starting a message on csid 5: timestamp 1010 + delta 1010 (the field of
        // its format 0 header), as rml_rtmp and ffmpeg compute it.
        v.push(0xC5);
        v.extend_from_slice(&[2; 10]);
        v.push(0xC4);
        v.extend_from_slice(&video[256..]);
        for cut in 0..=v.len() {
            let mut r = reader();
            let mut got = read_all(&mut r, &mut BytesMut::from(&v[..cut])).unwrap();
            got.extend(read_all(&mut r, &mut BytesMut::from(&v[cut..])).unwrap());
            assert_eq!(
                got,
                vec![
                    message(AUDIO, 1, 1010, &[1; 10]),
                    message(AUDIO, 1, 2020, &[2; 10]),
                    message(VIDEO, 1, 1000, &video),
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_new_header_mid_message_is_refused() {
        let mut v = full_header(4, 0, 1000, VIDEO, 1);
        v.extend_from_slice(&[0; 128]);
        v.extend_from_slice(&[0x84, 0, 0, 0]); // format 2 on csid 4
        assert_eq!(
            read_all(&mut reader(), &mut BytesMut::from(&v[..])),
            Err(RtmpError::Interrupted { csid: 4, fmt: 2 })
        );
    }

    #[test]
    fn abort_discards_the_unfinished_message() {
        let mut v = full_header(4, 0, 1000, VIDEO, 1);
        v.extend_from_slice(&[0; 128]);
        v.extend(full_header(2, 0, 4, ABORT, 0));
        v.extend_from_slice(&4u32.to_be_bytes());
        v.extend(full_header(4, 5, 3, VIDEO, 1));
        v.extend_from_slice(&[0x27, 1, 2]);
        let mut r = reader();
        let got = read_all(&mut r, &mut BytesMut::from(&v[..])).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].type_id, ABORT);
        assert_eq!(got[1], message(VIDEO, 1, 5, &[0x27, 1, 2]));
        assert_eq!(r.held, 0);
    }

    #[test]
    fn unfinished_messages_are_bounded_together() {
        let mut r = ChunkReader::new(Limits {
            max_pending_bytes: 2500,
            ..limits()
        });
        r.allow_media();
        let mut v = Vec::new();
        for csid in 4..7 {
            v.extend(full_header(csid, 0, 1000, VIDEO, 1));
            v.extend_from_slice(&[0; 128]);
        }
        assert_eq!(
            read_all(&mut r, &mut BytesMut::from(&v[..])),
            Err(RtmpError::UnfinishedTooLarge {
                bytes: 3000,
                max: 2500
            })
        );
    }

    #[test]
    fn extended_timestamps() {
        // format 0 with an extended timestamp, a format 3 continuation repeating it, then a
        // format 1 header with an extended delta.
        let mut v = full_header(4, 0x0100_0000, 200, VIDEO, 1);
        v.extend_from_slice(&[7; 128]);
        v.push(0xC4);
        v.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        v.extend_from_slice(&[7; 72]);
        v.extend_from_slice(&[0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, VIDEO]);
        v.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        v.push(8);
        let got = read_all(&mut reader(), &mut BytesMut::from(&v[..])).unwrap();
        assert_eq!(
            got,
            vec![
                message(VIDEO, 1, 0x0100_0000, &[7; 200]),
                message(VIDEO, 1, 0x0200_0000, &[8])
            ]
        );
    }

    proptest! {
        /// Whatever rml_rtmp's own serializer writes (compressed headers, extended timestamps,
        /// chunk size changes, empty messages), the reader turns into the same messages as
        /// rml_rtmp's deserializer, however the bytes are cut.
        #[test]
        fn agrees_with_rml_rtmp(
            messages in proptest::collection::vec(
                (
                    prop::sample::select(vec![4u8, 8, 9, 22]),
                    // rml_rtmp serializes an empty payload as no bytes at all, so start at 1.
                    1usize..3000,
                    prop_oneof![0u32..100, Just(0x00FF_FFFF), any::<u32>()],
                    proptest::option::weighted(0.2, 1u32..70_000),
                ),
                1..24,
            ),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let mut serializer = ChunkSerializer::new();
            let mut bytes = Vec::new();
            let mut timestamp = 0u32;
            for (type_id, len, step, resize) in messages {
                if let Some(size) = resize {
                    let packet = serializer.set_max_chunk_size(size, RtmpTimestamp::new(0)).unwrap();
                    bytes.extend(packet.bytes);
                }
                timestamp = timestamp.wrapping_add(step);
                let payload = MessagePayload {
                    timestamp: RtmpTimestamp::new(timestamp),
                    type_id,
                    message_stream_id: 1,
                    data: Bytes::from(vec![len as u8; len]),
                };
                // rml_rtmp's serializer writes nothing at all for an empty message; write one
                // on a chunk stream it does not use.
                let packet = serializer.serialize(&payload, false, false).unwrap();
                if len == 0 {
                    prop_assert!(packet.bytes.is_empty());
                    bytes.extend(full_header(7, timestamp, 0, type_id, 1));
                } else {
                    bytes.extend(packet.bytes);
                }
            }

            let mut expected = Vec::new();
            let mut deserializer = ChunkDeserializer::new();
            let mut input = &bytes[..];
            while let Some(m) = deserializer.get_next_message(input).unwrap() {
                input = &[];
                if m.type_id == SET_CHUNK_SIZE {
                    let size = be32(&m.data).unwrap();
                    deserializer.set_max_chunk_size(size as usize).unwrap();
                }
                expected.push(Message {
                    type_id: m.type_id,
                    stream_id: m.message_stream_id,
                    timestamp: m.timestamp.value,
                    payload: m.data,
                });
            }

            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(bytes.len());
            let mut r = reader();
            let mut got = Vec::new();
            let mut start = 0;
            for end in cuts {
                got.extend(read_all(&mut r, &mut BytesMut::from(&bytes[start..end])).unwrap());
                start = end;
            }
            prop_assert_eq!(got, expected);
        }

        /// Messages on several chunk streams, their chunks interleaved in any order, come out
        /// whole and in the order their last chunks arrive, however the bytes are cut.
        #[test]
        fn reassembles_interleaved_chunk_streams(
            lens in proptest::collection::vec(0usize..600, 1..6),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..64),
            chunk_size in 1u32..300,
            cut in any::<prop::sample::Index>(),
        ) {
            // Chunk lists per message (csid 3 + i), each message's first chunk with a full
            // header, then format 3 continuations.
            let mut queues: Vec<std::collections::VecDeque<Vec<u8>>> = Vec::new();
            let mut payloads = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                let csid = 3 + i as u8;
                let payload: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
                let mut q = std::collections::VecDeque::new();
                let mut first = full_header(csid, i as u32, len, VIDEO, 1);
                let pieces: Vec<&[u8]> = payload.chunks(chunk_size as usize).collect();
                first.extend_from_slice(pieces.first().copied().unwrap_or(&[]));
                q.push_back(first);
                for piece in pieces.iter().skip(1) {
                    let mut c = vec![0xC0 | csid];
                    c.extend_from_slice(piece);
                    q.push_back(c);
                }
                queues.push(q);
                payloads.push(payload);
            }
            let mut bytes = full_header(2, 0, 4, SET_CHUNK_SIZE, 0);
            bytes.extend_from_slice(&chunk_size.to_be_bytes());
            let mut expected = vec![message(SET_CHUNK_SIZE, 0, 0, &chunk_size.to_be_bytes())];
            let mut picks = order.into_iter();
            while queues.iter().any(|q| !q.is_empty()) {
                let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
                let i = live[picks.next().map_or(0, |p| p.index(live.len()))];
                bytes.extend(queues[i].pop_front().unwrap());
                if queues[i].is_empty() {
                    expected.push(message(VIDEO, 1, i as u32, &payloads[i]));
                }
            }
            let cut = cut.index(bytes.len() + 1);
            let mut r = reader();
            let mut got = read_all(&mut r, &mut BytesMut::from(&bytes[..cut])).unwrap();
            got.extend(read_all(&mut r, &mut BytesMut::from(&bytes[cut..])).unwrap());
            prop_assert_eq!(got, expected);
            prop_assert_eq!(r.held, 0);
        }
    }
}
