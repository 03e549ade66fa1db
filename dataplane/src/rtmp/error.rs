//! Why an RTMP connection ends.

use std::fmt;
use std::time::Duration;

use camstream_protocol::{CodecError, TrackKind};

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The handshake did not complete in time.
    Handshake,
    /// The peer sent nothing for too long after the handshake.
    Idle,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Handshake => "handshake",
            Phase::Idle => "idle connection",
        })
    }
}

/// A fatal error on one RTMP connection: the shell logs it and closes the socket.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum RtmpError {
    /// The handshake bytes were not RTMP (wrong version byte, or a plain-text client).
    #[error("handshake failed: {reason}")]
    Handshake {
        /// `rml_rtmp`'s description.
        reason: String,
    },
    /// A deadline passed.
    #[error("{phase} timed out after {after:?}")]
    Timeout {
        /// Which deadline.
        phase: Phase,
        /// Its length.
        after: Duration,
    },
    /// A compressed chunk header (format 1–3) on a chunk stream that never had a full one.
    #[error("chunk on chunk stream {csid} (format {fmt}) has no earlier header to extend")]
    NoPreviousChunk {
        /// The chunk stream id.
        csid: u32,
        /// The header format (1, 2 or 3).
        fmt: u8,
    },
    /// A chunk that starts a new message (format 0, 1 or 2) on a chunk stream whose message
    /// is unfinished.
    #[error(
        "chunk on chunk stream {csid} (format {fmt}) starts a new message while the \
         previous one on that chunk stream is unfinished"
    )]
    Interrupted {
        /// The chunk stream id.
        csid: u32,
        /// The header format.
        fmt: u8,
    },
    /// Unfinished messages (on interleaved chunk streams) would reserve more than the limit.
    #[error("unfinished messages would hold {bytes} bytes, more than the limit of {max}")]
    UnfinishedTooLarge {
        /// Bytes reserved for unfinished messages, the new one included.
        bytes: usize,
        /// The limit (`max_pending_bytes`).
        max: usize,
    },
    /// More distinct chunk stream ids than the limit.
    #[error("more than {max} chunk streams")]
    TooManyChunkStreams {
        /// The limit.
        max: usize,
    },
    /// An extended timestamp delta below `0xFFFFFF`, which the 24-bit field could have held.
    #[error("extended timestamp delta {got:#x} on chunk stream {csid} is below 0xffffff")]
    BadExtendedTimestamp {
        /// The chunk stream id.
        csid: u32,
        /// The extended timestamp that came.
        got: u32,
    },
    /// A message longer than its limit.
    #[error("message of type {type_id} is {len} bytes, more than the limit of {max}")]
    MessageTooLong {
        /// The RTMP message type id.
        type_id: u8,
        /// Its announced length.
        len: u32,
        /// The limit that applied.
        max: usize,
    },
    /// Too many bytes without a complete message.
    #[error("{pending} bytes received without completing a message (limit {max})")]
    Stalled {
        /// Bytes since the last complete message.
        pending: usize,
        /// The limit.
        max: usize,
    },
    /// A `SetChunkSize` of 0 or above the limit.
    #[error("peer chunk size {got} is outside 1..={max}")]
    InvalidChunkSize {
        /// The announced chunk size.
        got: u32,
        /// The largest accepted.
        max: u32,
    },
    /// A `WindowAcknowledgementSize` above the limit (2 GiB or more is no window at all).
    #[error("peer window acknowledgement size {got} is above {max}")]
    InvalidWindowAckSize {
        /// The announced window.
        got: u32,
        /// The largest accepted.
        max: u32,
    },
    /// A message whose body cannot be right.
    #[error("malformed message of type {type_id}: {reason}")]
    Malformed {
        /// The RTMP message type id.
        type_id: u8,
        /// What was wrong.
        reason: &'static str,
    },
    /// More `createStream` commands than the limit.
    #[error("more than {max} createStream commands")]
    TooManyStreams {
        /// The limit.
        max: u32,
    },
    /// A command sequence we do not serve.
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What the peer did.
        reason: &'static str,
    },
    /// `rml_rtmp` refused a message.
    #[error("rtmp session error: {reason}")]
    Session {
        /// `rml_rtmp`'s description.
        reason: String,
    },
    /// The publisher sends video camstream cannot carry.
    #[error(
        "unsupported video codec {codec}: camstream ingests H.264 only \
         (HEVC via enhanced RTMP is not supported yet)"
    )]
    UnsupportedVideo {
        /// The codec's name.
        codec: &'static str,
    },
    /// A sequence header that could not be parsed.
    #[error("bad {track:?} sequence header: {source}")]
    BadConfig {
        /// Which track.
        track: TrackKind,
        /// The parse error.
        #[source]
        source: CodecError,
    },
    /// `accept_publish`/`reject_publish` without a publish request waiting.
    #[error("no publish request is waiting for a decision")]
    NoPendingPublish,
    /// `rml_rtmp` (or the demuxer) panicked; the panic was contained and the connection
    /// must close.
    #[error("internal error during {during}: {message}")]
    Internal {
        /// What we had asked it to do.
        during: &'static str,
        /// The panic message.
        message: String,
    },
    /// The session already failed; it takes no more input.
    #[error("the session already failed")]
    Closed,
}
