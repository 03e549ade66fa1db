//! The sans-IO RTMP server session: bytes from an encoder in, publish requests and
//! [`MediaEvent`]s out.
//!
//! Owns: the handshake (`rml_rtmp`, wrapped), our own chunk stream reader ([`chunk`]), which
//! reassembles every message with one copy at most and hands audio and video straight to
//! [`crate::flv::Demuxer`], the commands (`rml_rtmp`'s `ServerSession`, fed everything but
//! media, see [`session`]), acknowledgements, the validation that keeps hostile input away
//! from `rml_rtmp`'s crash paths ([`chunk`], [`amf0`]), containment of any panic that still
//! escapes it ([`contain`]), and timeouts. Leaves to others: sockets and TLS (the ingest
//! shell), deciding whether a stream key may publish (the shell asks the authorizer and
//! answers with [`Session::accept_publish`] or [`Session::reject_publish`]), and everything
//! downstream of the media events.
//!
//! Spec: Adobe "Real-Time Messaging Protocol (RTMP) Specification" 1.0 (2012): §5.2 handshake,
//! §5.3 chunking, §5.4 protocol control messages, §7.2 commands. Only publishing is served:
//! RTMP playback is refused (viewers use HLS).

mod amf0;
mod chunk;
mod contain;
mod error;
mod session;

#[cfg(test)]
mod tests;

use std::time::Duration;

use camstream_protocol::MediaEvent;

pub(crate) use error::{Phase, RtmpError};
pub(crate) use session::Session;

/// Limits and timeouts of one RTMP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// From accept to a completed handshake. Default 10 s.
    pub(crate) handshake_timeout: Duration,
    /// Longest silence from the peer once the handshake is done. Default 30 s.
    pub(crate) idle_timeout: Duration,
    /// Largest audio/video message accepted once publishing, in bytes. Default 16 MiB, which
    /// admits every length RTMP's 24-bit field can carry. A message's full length is reserved
    /// at its first payload byte, so this is also per-connection memory.
    pub(crate) max_message_len: usize,
    /// Largest command, data or control message, and largest message of any kind before the
    /// publish is accepted, in bytes. Default 64 KiB (real `connect` and `onMetaData` messages
    /// are well under 2 KiB). It bounds what an unauthorized peer can make us hold and what an
    /// AMF0 parse may allocate.
    pub(crate) max_command_len: usize,
    /// Largest chunk size the peer may announce. Default 16 MiB; 0 and anything larger end the
    /// connection.
    pub(crate) max_chunk_size: u32,
    /// Most input bytes accepted without completing a message, and most bytes reserved for
    /// unfinished messages on interleaved chunk streams together. Default 24 MiB: a 16 MiB
    /// message with the header overhead of chunks down to 8 bytes, or a 16 MiB video message
    /// with audio interleaved.
    pub(crate) max_pending_bytes: usize,
    /// Most distinct chunk stream ids a peer may use. Default 64 (ffmpeg and OBS use under 8).
    pub(crate) max_chunk_streams: usize,
    /// Most `createStream` commands per connection. Default 8 (encoders send one).
    pub(crate) max_streams: u32,
    /// Chunk size of what we send. Default 4096.
    pub(crate) out_chunk_size: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_message_len: 16 << 20,
            max_command_len: 64 << 10,
            max_chunk_size: 16 << 20,
            max_pending_bytes: 24 << 20,
            max_chunk_streams: 64,
            max_streams: 8,
            out_chunk_size: 4096,
        }
    }
}

/// What a [`Session`] reports to its shell, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// The encoder asked to publish. The shell authorizes (async) and then calls
    /// [`Session::accept_publish`] or [`Session::reject_publish`]. `stream_key` has any
    /// `?query` removed; `token` is the `token` query parameter of the stream name
    /// (`KEY?token=abc`), taken verbatim.
    PublishRequested {
        /// The application named in `connect` (`live` in `rtmp://host/live/KEY`).
        app: String,
        /// The stream key.
        stream_key: String,
        /// The `token` query parameter, if present and not empty.
        token: Option<String>,
    },
    /// Demuxed media (configs, frames, metadata), only after the publish was accepted.
    Media(MediaEvent),
    /// The encoder stopped publishing (`FCUnpublish`/`deleteStream`); the connection may stay
    /// open.
    PublishFinished,
    /// Something the operator should see once (e.g. an unsupported audio codec being dropped).
    Warning(String),
}
