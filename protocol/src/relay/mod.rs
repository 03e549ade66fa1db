//! Relay framing: what one node sends another over a QUIC stream to carry one camera's live
//! media from its origin (the node that ingests it) to an edge (a node whose viewers want it).
//!
//! This module owns the messages and their byte layout; the QUIC endpoint, authentication
//! and the segmenters on both ends live in the data plane (`dataplane/src/relay/`). Sans-IO:
//! [`encode`] appends bytes, [`decode`] takes them off a buffer.
//!
//! A stream carries, edge → origin: [`Hello`]; origin → edge: [`Accept`], then [`Init`],
//! [`Frame`]s, [`Message::Flush`] and further [`Init`]s as the camera's sessions come and go,
//! and finally [`End`]. The layout of a message is
//!
//! ```text
//! [u32 BE length of what follows][u8 type][body]
//! ```
//!
//! with every integer big-endian, strings as `[u16 length][UTF-8]` and byte records as
//! `[u32 length][bytes]`. Every length is capped ([`MAX_MESSAGE`], [`MAX_CAMERA_ID`], …); a
//! message whose fields do not fill its length exactly is an error, so decoding is strict
//! and never panics. A [`Frame`]'s payload is the rest of its message and is handed out as a
//! slice of the receive buffer (no copy).
//!
//! The version in [`Hello`] is [`VERSION`]; a peer speaking another version is answered with
//! [`End`] ([`EndReason::VersionMismatch`]). New message types and end reasons may be added
//! in later versions.

mod wire;

#[cfg(test)]
mod tests;

use crate::codec::{AudioConfig, CodecError, VideoConfig};
use crate::frame::MediaFrame;

pub use wire::{decode, encode, encode_frame_header};

/// The relay protocol version this build speaks.
pub const VERSION: u16 = 1;
/// Largest message (type byte and body) accepted: a 4K keyframe stays well under it.
pub const MAX_MESSAGE: usize = 16 << 20;
/// Longest camera id in a [`Hello`].
pub const MAX_CAMERA_ID: usize = 256;
/// Longest media name prefix in an [`Init`].
pub const MAX_PREFIX: usize = 64;
/// Longest codec configuration record in an [`Init`].
pub const MAX_CONFIG_RECORD: usize = 64 << 10;
/// Longest text in an [`End`].
pub const MAX_END_TEXT: usize = 1024;
/// Length of the authentication proofs (HMAC-SHA256).
pub const AUTH_LEN: usize = 32;

/// One relay message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// Edge → origin: the first message of a stream.
    Hello(Hello),
    /// Origin → edge: the edge's proof was right; here is the origin's.
    Accept(Accept),
    /// Origin → edge: where the frames that follow start (repeated at every new session).
    Init(Init),
    /// Origin → edge: one frame with the origin's cut decisions.
    Frame(Frame),
    /// Origin → edge: the camera's session ended (or its codec changed): close the part and
    /// segment in progress; the next segment follows a discontinuity.
    Flush,
    /// Either way: the stream ends, and why.
    End(End),
}

/// The first message of a relay stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version ([`VERSION`]).
    pub version: u16,
    /// The camera wanted.
    pub camera: String,
    /// The edge's proof that it holds the cluster secret, bound to this connection.
    pub auth: [u8; AUTH_LEN],
}

/// The origin's answer to a valid [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The origin's proof that it holds the cluster secret, bound to this connection.
    pub auth: [u8; AUTH_LEN],
}

/// The origin's segmenter position and timing where the following frames start, so the edge
/// numbers its playlists as the origin does.
#[derive(Debug, Clone, PartialEq)]
pub struct Init {
    /// Per-stream media name prefix (the same URLs work on every node).
    pub prefix: String,
    /// LL-HLS Media Sequence Number of the segment the next frame belongs to.
    pub msn: u64,
    /// MPEG-TS Media Sequence Number of that segment.
    pub ts_msn: u64,
    /// Part index within that segment where the next frame starts (0: a segment start).
    pub part: u32,
    /// fMP4 `mfhd` sequence number of the last fragment written before.
    pub fragment_seq: u32,
    /// Init segment id (`EXT-X-MAP`) the segment uses.
    pub init_id: u32,
    /// The segment follows an `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` if that segment were the first listed.
    pub discontinuity_sequence: u64,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub target_duration: u32,
    /// `PART-TARGET`, microseconds.
    pub part_target_us: u32,
    /// The origin's timing.
    pub timing: Timing,
    /// Video track configuration, if the session has video.
    pub video: Option<VideoConfig>,
    /// Audio track configuration, if the session has audio.
    pub audio: Option<AudioConfig>,
}

/// The origin's session timing: frames are on its output timeline (90 kHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A point of the output timeline (90 kHz)…
    pub out_origin: i64,
    /// …and its wall-clock time, microseconds since the UNIX epoch (program date time).
    pub wall_origin_us: i64,
    /// The session's video frame duration (90 kHz; for audio-only, one audio frame), which
    /// gives the last frame of a session its duration.
    pub frame_duration: i64,
    /// Longest part (90 kHz, PART-TARGET): decides whether a session's last video frame
    /// starts a part of its own when the session ends.
    pub part_max: i64,
}

/// Where the origin cut parts and segments around a frame.
///
/// For video: `previous_part` starts a new part at the previous video frame (the part had
/// reached its maximum duration), `part`/`segment` start a new part/segment at this frame.
/// For audio of an audio-only stream, `part`/`segment` end the part/segment after this frame.
/// A segment cut is always a part cut too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    /// A part starts at the previous video frame.
    pub previous_part: bool,
    /// A part boundary at this frame.
    pub part: bool,
    /// A segment boundary at this frame.
    pub segment: bool,
}

/// One frame as the origin's segmenter took it: timestamps on its output timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame (`dts` in 90 kHz ticks of the origin's output timeline; for audio, the
    /// start of its exact sample position).
    pub frame: MediaFrame,
    /// The origin's cut decisions.
    pub cut: Cut,
}

/// Why a relay stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The camera's playlists ended (it stayed away).
    Finished,
    /// The peer did not prove the cluster secret.
    Unauthorized,
    /// This node is not the camera's origin.
    UnknownCamera,
    /// The peer speaks another protocol version.
    VersionMismatch,
    /// The edge fell too far behind; it may ask again.
    Lagged,
    /// The node is shutting down.
    Shutdown,
    /// The edge has no viewers left.
    Idle,
    /// A message broke the protocol.
    Protocol,
    /// The origin is fenced: it lost its cluster lease, or the camera's placement moved to
    /// another node (a newer epoch). The edge should follow the placement.
    Fenced,
    /// A reason this version does not know.
    Other(u8),
}

impl EndReason {
    pub(crate) fn code(self) -> u8 {
        match self {
            EndReason::Finished => 0,
            EndReason::Unauthorized => 1,
            EndReason::UnknownCamera => 2,
            EndReason::VersionMismatch => 3,
            EndReason::Lagged => 4,
            EndReason::Shutdown => 5,
            EndReason::Idle => 6,
            EndReason::Protocol => 7,
            EndReason::Fenced => 8,
            EndReason::Other(c) => c,
        }
    }

    pub(crate) fn from_code(c: u8) -> Self {
        match c {
            0 => EndReason::Finished,
            1 => EndReason::Unauthorized,
            2 => EndReason::UnknownCamera,
            3 => EndReason::VersionMismatch,
            4 => EndReason::Lagged,
            5 => EndReason::Shutdown,
            6 => EndReason::Idle,
            7 => EndReason::Protocol,
            8 => EndReason::Fenced,
            c => EndReason::Other(c),
        }
    }
}

/// The last message of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// Why.
    pub reason: EndReason,
    /// Details for the peer's log.
    pub text: String,
}

/// A relay message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The length prefix announces more than the cap.
    #[error("relay message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A message with a zero length (no type byte).
    #[error("relay message without a type")]
    Empty,
    /// A type byte this version does not know.
    #[error("unknown relay message type {got}")]
    UnknownType {
        /// The type byte.
        got: u8,
    },
    /// A field did not fit in the message.
    #[error("{what}: truncated {field} (needed {needed} more bytes)")]
    Truncated {
        /// Which message.
        what: &'static str,
        /// Which field.
        field: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes left after the last field.
    #[error("{what}: {extra} bytes after the last field")]
    Trailing {
        /// Which message.
        what: &'static str,
        /// How many.
        extra: usize,
    },
    /// A field held a value the protocol does not allow.
    #[error("{what}: invalid {field}: {got}")]
    Invalid {
        /// Which message.
        what: &'static str,
        /// Which field.
        field: &'static str,
        /// The value that came (lengths, codes).
        got: u64,
    },
    /// A codec configuration record in an [`Init`] could not be read.
    #[error("init: {0}")]
    Codec(#[from] CodecError),
}
