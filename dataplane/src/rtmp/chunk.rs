//! A shadow of `rml_rtmp`'s chunk deserializer that vets every byte before `rml_rtmp` sees it.
//!
//! `rml_rtmp` 0.8's `ChunkDeserializer` keeps ONE partial payload for all chunk streams and
//! computes `message_length - partial_length` unchecked: a chunk of another message (another
//! chunk stream, or a new header on the same one) arriving mid-message with a smaller length
//! underflows, which panics in debug builds and asks for an absurd allocation in release
//! builds. A compressed header with an extended timestamp below `0xFFFFFF` underflows
//! `ext - 0xFFFFFF` the same way. It also accepts a chunk size of 0 and any message length,
//! and above it `rml_amf0` and the server session have crash paths of their own (see
//! [`super::amf0`]).
//!
//! [`ChunkGuard`] parses the same byte stream with the same rules (header formats, inherited
//! fields, the chunk size in force, extended timestamps), without holding payloads except the
//! bodies of the small messages it must inspect, and refuses what would hurt: interleaved
//! messages, lengths and chunk sizes past the limits, too many chunk streams, malformed
//! command bodies. Refusal is fatal for the connection, so the guard never has to resume.
//!
//! Spec: RTMP 1.0 §5.3.1 (chunk format), §5.4.1 (Set Chunk Size), §5.4.4 (Window
//! Acknowledgement Size), §7.1.2 (AMF0 command and data messages).

use std::collections::HashMap;

use super::RtmpError;
use super::amf0;

/// A timestamp field of this value means "see the extended timestamp".
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;
/// Chunk size before the peer sets one (§5.4.1).
const INITIAL_CHUNK_SIZE: u32 = 128;
/// `rml_rtmp` adds each input's length to a `u32` counter until it reaches the peer's window;
/// a window above this lets the counter overflow.
pub(crate) const MAX_WINDOW_ACK_SIZE: u32 = 0x7FFF_FFFF;
/// Longest chunk header: 3-byte basic header, 11-byte type 0 header, 4-byte extended timestamp.
const MAX_HEADER_LEN: usize = 18;

/// Message type ids (§5.4, §7.1).
const SET_CHUNK_SIZE: u8 = 1;
const WINDOW_ACK_SIZE: u8 = 5;
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const AMF3_DATA: u8 = 15;
const AMF3_COMMAND: u8 = 17;
const AMF0_DATA: u8 = 18;
const AMF0_COMMAND: u8 = 20;
const AGGREGATE: u8 = 22;

/// The limits the guard enforces (see [`super::Config`] for what each means).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_message_len: usize,
    pub(crate) max_command_len: usize,
    pub(crate) max_chunk_size: u32,
    pub(crate) max_pending_bytes: usize,
    pub(crate) max_chunk_streams: usize,
    pub(crate) max_streams: u32,
}

/// The fields a compressed header inherits from the previous one on its chunk stream.
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    timestamp_field: u32,
    message_length: u32,
    type_id: u8,
}

/// The chunk whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Current {
    csid: u32,
    header: Header,
    chunk_len: u32,
    left: u32,
}

/// Validates the chunk stream from the peer; see the module docs.
#[derive(Debug)]
pub(crate) struct ChunkGuard {
    limits: Limits,
    chunk_size: u32,
    headers: HashMap<u32, Header>,
    /// Payload bytes of the unfinished message, and its chunk stream. `rml_rtmp` holds one
    /// such buffer for all chunk streams, so at most one message may be unfinished.
    partial: u32,
    partial_csid: u32,
    head: [u8; MAX_HEADER_LEN],
    head_len: usize,
    current: Option<Current>,
    /// Body of the current message when it is one we inspect (capped by `max_command_len`).
    body: Vec<u8>,
    keep_body: bool,
    /// Input bytes since the last complete message.
    pending: usize,
    streams: u32,
    publishing: bool,
}

impl ChunkGuard {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            chunk_size: INITIAL_CHUNK_SIZE,
            headers: HashMap::new(),
            partial: 0,
            partial_csid: 0,
            head: [0; MAX_HEADER_LEN],
            head_len: 0,
            current: None,
            body: Vec::new(),
            keep_body: false,
            pending: 0,
            streams: 0,
            publishing: false,
        }
    }

    /// The chunk size the peer announced last.
    pub(crate) fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// From now on media messages may be as long as `max_message_len`; before, every message
    /// is held to `max_command_len` (media is dropped until the publish is accepted anyway).
    pub(crate) fn allow_media(&mut self) {
        self.publishing = true;
    }

    /// Checks the next bytes of the stream and appends to `ends` the offset (in `input`) just
    /// past each message that completes in it, so the caller can hand `rml_rtmp` one message
    /// at a time. After an error the guard's state is undefined: the connection must end.
    ///
    /// # Errors
    /// The first violation found (see [`RtmpError`]).
    pub(crate) fn check(&mut self, input: &[u8], ends: &mut Vec<usize>) -> Result<(), RtmpError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            if let Some(mut cur) = self.current {
                let n = rest.len().min(cur.left as usize);
                if self.keep_body {
                    self.body.extend_from_slice(&rest[..n]);
                }
                self.consume(n)?;
                pos += n;
                // n <= cur.left, which is a u32.
                cur.left -= n as u32;
                self.current = Some(cur);
            } else {
                let need = self.header_len()?;
                let n = rest.len().min(need - self.head_len);
                self.head[self.head_len..self.head_len + n].copy_from_slice(&rest[..n]);
                self.head_len += n;
                self.consume(n)?;
                pos += n;
                // The header length is known piecewise (basic header, then timestamp field);
                // it is complete when knowing more does not ask for more.
                if self.head_len == self.header_len()? {
                    self.start_chunk()?;
                }
            }
            if let Some(cur) = self.current.filter(|c| c.left == 0)
                && self.end_chunk(cur)?
            {
                ends.push(pos);
            }
        }
        Ok(())
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
            self.previous(csid, fmt)?.timestamp_field
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

    fn previous(&self, csid: u32, fmt: u8) -> Result<Header, RtmpError> {
        self.headers
            .get(&csid)
            .copied()
            .ok_or(RtmpError::NoPreviousChunk { csid, fmt })
    }

    /// A complete chunk header is in `head`: apply it as `rml_rtmp` would.
    fn start_chunk(&mut self) -> Result<(), RtmpError> {
        let (fmt, csid, basic) = self
            .basic_header()
            .expect("a complete header has a basic header");
        self.head_len = 0;
        if self.partial > 0 && (fmt != 3 || csid != self.partial_csid) {
            return Err(RtmpError::Interleaved {
                csid,
                fmt,
                pending_csid: self.partial_csid,
            });
        }
        let mut header = if fmt == 0 {
            Header::default()
        } else {
            self.previous(csid, fmt)?
        };
        let h = &self.head[basic..];
        let mut pos = 0;
        if fmt <= 2 {
            header.timestamp_field = u24(h);
            pos += 3;
        }
        if fmt <= 1 {
            header.message_length = u24(&h[pos..]);
            header.type_id = h[pos + 3];
            pos += 4;
        }
        if fmt == 0 {
            pos += 4; // message stream id
        }
        if header.timestamp_field >= EXTENDED_TIMESTAMP {
            let ext = u32::from_be_bytes([h[pos], h[pos + 1], h[pos + 2], h[pos + 3]]);
            // rml_rtmp adds `ext - 0xFFFFFF` to the running timestamp of a message's first
            // compressed chunk, unchecked.
            if fmt != 0 && self.partial == 0 && ext < EXTENDED_TIMESTAMP {
                return Err(RtmpError::BadExtendedTimestamp { csid, got: ext });
            }
        }
        if !self.headers.contains_key(&csid) && self.headers.len() >= self.limits.max_chunk_streams
        {
            return Err(RtmpError::TooManyChunkStreams {
                max: self.limits.max_chunk_streams,
            });
        }
        self.headers.insert(csid, header);

        if self.partial == 0 {
            self.check_length(header)?;
            self.keep_body = inspected(header.type_id);
            self.body.clear();
        }
        // rml_rtmp reads the whole message as one chunk when it fits, else the rest up to the
        // chunk size. The chunk size cannot change mid-message (a Set Chunk Size would be an
        // interleaved message), so a continued message is always longer than a chunk.
        let len = header.message_length;
        let overrun = RtmpError::Protocol {
            reason: "chunk overruns its message",
        };
        let chunk_len = if len > self.chunk_size {
            len.checked_sub(self.partial)
                .ok_or(overrun.clone())?
                .min(self.chunk_size)
        } else {
            len
        };
        if self.partial + chunk_len > len {
            return Err(overrun);
        }
        self.current = Some(Current {
            csid,
            header,
            chunk_len,
            left: chunk_len,
        });
        Ok(())
    }

    fn check_length(&self, header: Header) -> Result<(), RtmpError> {
        let media = matches!(header.type_id, AUDIO | VIDEO | AGGREGATE);
        let max = if media && self.publishing {
            self.limits.max_message_len
        } else {
            self.limits.max_command_len
        };
        if header.message_length as usize > max {
            return Err(RtmpError::MessageTooLong {
                type_id: header.type_id,
                len: header.message_length,
                max,
            });
        }
        Ok(())
    }

    /// The current chunk's payload is complete; `true` when that completes its message.
    fn end_chunk(&mut self, cur: Current) -> Result<bool, RtmpError> {
        self.current = None;
        self.partial += cur.chunk_len;
        if self.partial < cur.header.message_length {
            self.partial_csid = cur.csid;
            return Ok(false);
        }
        self.partial = 0;
        self.pending = 0;
        if self.keep_body {
            let body = std::mem::take(&mut self.body);
            let result = self.message(cur.header.type_id, &body);
            self.body = body;
            result?;
        }
        Ok(true)
    }

    /// A complete message we inspect.
    fn message(&mut self, type_id: u8, body: &[u8]) -> Result<(), RtmpError> {
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
            WINDOW_ACK_SIZE => {
                if let Some(size) = be32(body).filter(|s| *s > MAX_WINDOW_ACK_SIZE) {
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
                    self.streams += 1;
                    if self.streams > self.limits.max_streams {
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

/// Whether the guard keeps a message's body to inspect it.
fn inspected(type_id: u8) -> bool {
    matches!(
        type_id,
        SET_CHUNK_SIZE | WINDOW_ACK_SIZE | AMF3_DATA | AMF3_COMMAND | AMF0_DATA | AMF0_COMMAND
    )
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be32(b: &[u8]) -> Option<u32> {
    let b = b.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    fn guard() -> ChunkGuard {
        let mut g = ChunkGuard::new(Limits {
            max_message_len: 16 << 20,
            max_command_len: 64 << 10,
            max_chunk_size: 16 << 20,
            max_pending_bytes: 24 << 20,
            max_chunk_streams: 64,
            max_streams: 8,
        });
        g.allow_media();
        g
    }

    #[test]
    fn reads_all_basic_header_sizes() {
        let mut v = Vec::new();
        let mut expected = Vec::new();
        // csid 5 (1 byte), 64 + 36 (2 bytes), 64 + 80 + 256 (3 bytes)
        for basic in [&[5u8][..], &[0, 36], &[1, 80, 1]] {
            v.extend_from_slice(basic);
            v.extend_from_slice(&[0, 0, 0, 0, 0, 2, 8, 1, 0, 0, 0, 0xAF, 1]);
            expected.push(v.len());
        }
        let mut ends = Vec::new();
        guard().check(&v, &mut ends).unwrap();
        assert_eq!(ends, expected);
    }

    proptest! {
        /// Whatever rml_rtmp's own serializer writes (compressed headers, extended timestamps,
        /// chunk size changes), the guard accepts, and it sees the messages end exactly where
        /// rml_rtmp's deserializer does, however the bytes are cut.
        #[test]
        fn agrees_with_rml_rtmp_on_message_boundaries(
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
            cut in any::<prop::sample::Index>(),
        ) {
            let mut serializer = ChunkSerializer::new();
            let mut bytes = Vec::new();
            let mut boundaries = Vec::new();
            let mut timestamp = 0u32;
            for (type_id, len, step, resize) in messages {
                if let Some(size) = resize {
                    let packet = serializer.set_max_chunk_size(size, RtmpTimestamp::new(0)).unwrap();
                    bytes.extend(packet.bytes);
                    boundaries.push(bytes.len());
                }
                timestamp = timestamp.wrapping_add(step);
                let payload = MessagePayload {
                    timestamp: RtmpTimestamp::new(timestamp),
                    type_id,
                    message_stream_id: 1,
                    data: Bytes::from(vec![0xAB; len]),
                };
                bytes.extend(serializer.serialize(&payload, false, false).unwrap().bytes);
                boundaries.push(bytes.len());
            }

            let mut g = guard();
            let cut = cut.index(bytes.len() + 1);
            let mut ends = Vec::new();
            g.check(&bytes[..cut], &mut ends).unwrap();
            let mut later = Vec::new();
            g.check(&bytes[cut..], &mut later).unwrap();
            ends.extend(later.into_iter().map(|e| e + cut));
            prop_assert_eq!(&ends, &boundaries);

            let mut deserializer = ChunkDeserializer::new();
            let mut count = 0;
            let mut input = &bytes[..];
            while let Some(message) = deserializer.get_next_message(input).unwrap() {
                input = &[];
                count += 1;
                if message.type_id == SET_CHUNK_SIZE {
                    let size = be32(&message.data).unwrap();
                    deserializer.set_max_chunk_size(size as usize).unwrap();
                }
            }
            prop_assert_eq!(count, boundaries.len());
        }
    }
}
