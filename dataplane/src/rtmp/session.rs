//! [`Session`]: one RTMP connection from handshake to unpublish.
//!
//! Call order for the shell: after every `handle_input`/`handle_timeout`/`accept_publish`/
//! `reject_publish`, drain `poll_transmit` (to the socket, in order) and `poll_event`, then
//! wait for input or `poll_timeout`. Any `Err` is fatal: log it once and close the socket
//! (bytes still queued in `poll_transmit`, such as a rejection, may be flushed first).
//!
//! Data flow after the handshake: [`ChunkReader`] is the only parser of the peer's chunks.
//! Audio and video messages of the accepted publish go from it straight to the FLV demuxer,
//! copied at most once (see [`super::chunk`]); `rml_rtmp` never sees them. Every other message
//! goes to `rml_rtmp`'s `ServerSession` (commands, `@setDataFrame`, user control), each
//! re-serialized as one self-contained type 0 chunk: at start `rml_rtmp` is told to expect
//! chunks of up to [`TO_RML_CHUNK_SIZE`] bytes, and the peer's Set Chunk Size is never passed
//! on, so the two chunk sizes cannot get out of step.
//!
//! Acknowledgements (§5.4.3) are ours: `rml_rtmp` would count only the bytes it is fed and
//! report the bytes since its last acknowledgement, so the Window Acknowledgement Size (§5.4.4)
//! is not passed on either, and we acknowledge every window of received bytes (handshake
//! included) with the total, wrapping at 2^32. So that our acknowledgements can sit between
//! `rml_rtmp`'s messages on the control chunk stream without breaking its header compression,
//! its output is read back into messages and everything is sent with full (type 0) headers by
//! one serializer of ours. That costs a few bytes per control message; media never goes out.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use camstream_protocol::{MediaEvent, StreamMetadata, TrackKind};
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer, Packet};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;

use super::chunk::{
    ACKNOWLEDGEMENT, AGGREGATE, AUDIO, ChunkReader, Limits, Message, SET_CHUNK_SIZE, VIDEO,
    WINDOW_ACK_SIZE, be32,
};
use super::contain::contain;
use super::{Config, Event, Phase, RtmpError};
use crate::flv::{Demuxer, FlvError};

/// C0 + C1 + C2 (§5.2.5): what the handshake consumes before chunks start.
const HANDSHAKE_LEN: usize = 1 + 1536 + 1536;
/// The chunk size `rml_rtmp` is told to expect: the largest message length (24 bits), so
/// every message we hand it is one chunk.
const TO_RML_CHUNK_SIZE: u32 = 0x00FF_FFFF;

/// Where the (single) publish of this connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    None,
    /// Waiting for the shell's decision on this `rml_rtmp` request id.
    Pending(u32),
    Accepted,
    Rejected,
    Finished,
}

/// The sans-IO RTMP server side of one connection; see the module docs for the call order.
pub(crate) struct Session {
    config: Config,
    started: Instant,
    /// `Some` until the handshake completes.
    handshake: Option<Handshake>,
    handshake_left: usize,
    /// `Some` once the handshake completed.
    rml: Option<ServerSession>,
    reader: ChunkReader,
    /// Chunks the messages handed to `rml` (one type 0 chunk each).
    to_rml: ChunkSerializer,
    /// Reads `rml`'s output back into messages.
    from_rml: ChunkDeserializer,
    /// Chunks everything we send after the handshake.
    writer: ChunkSerializer,
    demuxer: Demuxer,
    app: Option<String>,
    publish: Publish,
    /// Message stream of the message `rml` is handling (a publish request comes from it).
    feeding_stream: u32,
    /// Message stream of the publish (pending or accepted): media on others is dropped.
    publish_stream: u32,
    audio_dropped: bool,
    aggregate_warned: bool,
    malformed: u64,
    bytes_received: u64,
    /// The peer's Window Acknowledgement Size, once announced (0 means none).
    ack_window: u32,
    /// `bytes_received` when we last acknowledged, or when the window was announced.
    acked: u64,
    deadline: Instant,
    failed: bool,
    events: VecDeque<Event>,
    transmit: VecDeque<Bytes>,
}

impl Session {
    /// A session for a connection accepted at `now`.
    pub(crate) fn new(now: Instant, config: Config) -> Self {
        let reader = ChunkReader::new(Limits {
            max_message_len: config.max_message_len,
            max_command_len: config.max_command_len,
            max_chunk_size: config.max_chunk_size,
            max_pending_bytes: config.max_pending_bytes,
            max_chunk_streams: config.max_chunk_streams,
            max_streams: config.max_streams,
        });
        Self {
            deadline: now + config.handshake_timeout,
            started: now,
            config,
            handshake: Some(Handshake::new(PeerType::Server)),
            handshake_left: HANDSHAKE_LEN,
            rml: None,
            reader,
            to_rml: ChunkSerializer::new(),
            from_rml: ChunkDeserializer::new(),
            writer: ChunkSerializer::new(),
            demuxer: Demuxer::new(),
            app: None,
            publish: Publish::None,
            feeding_stream: 0,
            publish_stream: 0,
            audio_dropped: false,
            aggregate_warned: false,
            malformed: 0,
            bytes_received: 0,
            ack_window: 0,
            acked: 0,
            failed: false,
            events: VecDeque::new(),
            transmit: VecDeque::new(),
        }
    }

    /// Consumes all of `buf` (it is left empty). Media payloads that arrived whole may be
    /// split off `buf` without a copy, so its spare capacity can shrink: the shell reserves
    /// before reading.
    ///
    /// # Errors
    /// Fatal for the connection: the shell logs the error and closes. Later calls return
    /// [`RtmpError::Closed`].
    pub(crate) fn handle_input(
        &mut self,
        now: Instant,
        buf: &mut BytesMut,
    ) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::Closed);
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.bytes_received += buf.len() as u64;
        let result = self.input(now, buf);
        buf.clear();
        self.fatal(result)
    }

    /// Checks the deadline.
    ///
    /// # Errors
    /// [`RtmpError::Timeout`] when the handshake or idle deadline passed (fatal).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::Closed);
        }
        if now < self.deadline {
            return Ok(());
        }
        let (phase, after) = if self.handshake.is_some() {
            (Phase::Handshake, self.config.handshake_timeout)
        } else {
            (Phase::Idle, self.config.idle_timeout)
        };
        self.fatal(Err(RtmpError::Timeout { phase, after }))
    }

    /// The next event for the shell.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next bytes to write to the socket, in order.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// When to call [`Session::handle_timeout`]; `None` once the session failed.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (!self.failed).then_some(self.deadline)
    }

    /// Lets the pending publish start (answers `NetStream.Publish.Start`); media events follow.
    ///
    /// # Errors
    /// [`RtmpError::NoPendingPublish`] without a pending [`Event::PublishRequested`] (not
    /// fatal); anything else is fatal.
    pub(crate) fn accept_publish(&mut self) -> Result<(), RtmpError> {
        let id = self.pending_publish()?;
        let result = self.rml_call("accept publish", |s| s.accept_request(id));
        let result = result.and_then(|results| {
            self.publish = Publish::Accepted;
            self.reader.allow_media();
            self.results(results)
        });
        self.fatal(result)
    }

    /// Refuses the pending publish with `reason` (sent to the encoder in the `_error` reply).
    ///
    /// # Errors
    /// As [`Session::accept_publish`].
    pub(crate) fn reject_publish(&mut self, reason: &str) -> Result<(), RtmpError> {
        let id = self.pending_publish()?;
        let result = self.rml_call("reject publish", |s| {
            s.reject_request(id, "NetStream.Publish.Denied", reason)
        });
        let result = result.and_then(|results| {
            self.publish = Publish::Rejected;
            self.results(results)
        });
        self.fatal(result)
    }

    /// Bytes received so far, handshake included.
    #[cfg(test)]
    pub(crate) fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Media tags dropped: malformed ones and frames before their track's sequence header.
    #[cfg(test)]
    pub(crate) fn dropped_frames(&self) -> u64 {
        self.malformed + self.demuxer.frames_before_config
    }

    /// The chunk size the peer announced last.
    #[cfg(test)]
    pub(crate) fn peer_chunk_size(&self) -> u32 {
        self.reader.chunk_size()
    }

    /// Pretends `n` more bytes were received, to test counters near their wrap.
    #[cfg(test)]
    pub(crate) fn skip_received_bytes(&mut self, n: u64) {
        self.bytes_received += n;
        self.acked += n;
    }

    fn pending_publish(&self) -> Result<u32, RtmpError> {
        if self.failed {
            return Err(RtmpError::Closed);
        }
        match self.publish {
            Publish::Pending(id) => Ok(id),
            _ => Err(RtmpError::NoPendingPublish),
        }
    }

    fn fatal<T>(&mut self, result: Result<T, RtmpError>) -> Result<T, RtmpError> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn input(&mut self, now: Instant, buf: &mut BytesMut) -> Result<(), RtmpError> {
        if let Some(handshake) = &mut self.handshake {
            // Give the handshake exactly its bytes, so nothing is buffered (and copied) twice.
            let n = buf.len().min(self.handshake_left);
            self.handshake_left -= n;
            let result =
                contain("handshake", || handshake.process_bytes(&buf[..n]))?.map_err(|e| {
                    RtmpError::Handshake {
                        reason: e.to_string(),
                    }
                })?;
            buf.advance(n);
            match result {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.send(response_bytes);
                    if self.handshake_left == 0 {
                        return Err(RtmpError::Handshake {
                            reason: format!("not complete after {HANDSHAKE_LEN} bytes"),
                        });
                    }
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.send(response_bytes);
                    self.handshake = None;
                    self.start_session()?;
                    if !remaining_bytes.is_empty() {
                        self.chunks(now, &mut BytesMut::from(&remaining_bytes[..]))?;
                    }
                }
            }
        }
        if self.handshake.is_none() {
            self.deadline = now + self.config.idle_timeout;
            self.chunks(now, buf)?;
        }
        Ok(())
    }

    fn send(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.transmit.push_back(Bytes::from(bytes));
        }
    }

    fn start_session(&mut self) -> Result<(), RtmpError> {
        let mut config = ServerSessionConfig::new();
        config.chunk_size = self.config.out_chunk_size;
        let (session, results) =
            contain("session start", || ServerSession::new(config))?.map_err(session_error)?;
        self.rml = Some(session);
        self.results(results)?;
        let to_rml = &mut self.to_rml;
        let packet = contain("serialize", || {
            to_rml.set_max_chunk_size(TO_RML_CHUNK_SIZE, RtmpTimestamp::new(0))
        })?
        .map_err(rml_error)?;
        let results = self.rml_call("input", |s| s.handle_input(&packet.bytes))?;
        self.results(results)
    }

    /// Chunk bytes after the handshake, one message at a time, so each event can be answered
    /// (a `connect` accepted) before the next message is read (a `publish` right behind it).
    fn chunks(&mut self, now: Instant, buf: &mut BytesMut) -> Result<(), RtmpError> {
        while let Some(message) = self.reader.read(buf)? {
            let at = self.bytes_received - buf.len() as u64;
            self.message(message, at)?;
        }
        self.acknowledge(now)
    }

    /// One complete message, which ended `at` bytes into the connection.
    fn message(&mut self, message: Message, at: u64) -> Result<(), RtmpError> {
        match message.type_id {
            VIDEO | AUDIO => self.media(message),
            AGGREGATE => {
                // Aggregate messages wrap FLV tags; no encoder we know publishes them, so they
                // are reported once rather than unpacked.
                if !self.aggregate_warned {
                    self.aggregate_warned = true;
                    self.events.push_back(Event::Warning(
                        "RTMP aggregate messages are not supported; their media is dropped"
                            .to_owned(),
                    ));
                }
                Ok(())
            }
            // The reader applied it; `rml` keeps expecting our chunk size.
            SET_CHUNK_SIZE => Ok(()),
            WINDOW_ACK_SIZE => {
                self.ack_window = be32(&message.payload).expect("the reader checked the length");
                self.acked = at;
                Ok(())
            }
            _ => self.hand_to_rml(message),
        }
    }

    /// Audio or video: only the accepted publish's stream reaches the demuxer.
    fn media(&mut self, message: Message) -> Result<(), RtmpError> {
        if self.publish != Publish::Accepted || message.stream_id != self.publish_stream {
            return Ok(());
        }
        let demuxer = &mut self.demuxer;
        let Message {
            timestamp, payload, ..
        } = message;
        let result = if message.type_id == VIDEO {
            contain("video demux", || demuxer.handle_video(timestamp, payload))?
        } else if self.audio_dropped {
            return Ok(());
        } else {
            contain("audio demux", || demuxer.handle_audio(timestamp, payload))?
        };
        self.demuxed(result)
    }

    /// Hands a message to `rml` as one type 0 chunk.
    fn hand_to_rml(&mut self, message: Message) -> Result<(), RtmpError> {
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(message.timestamp),
            type_id: message.type_id,
            message_stream_id: message.stream_id,
            data: message.payload,
        };
        let to_rml = &mut self.to_rml;
        let packet =
            contain("serialize", || to_rml.serialize(&payload, true, false))?.map_err(rml_error)?;
        self.feeding_stream = message.stream_id;
        let results = self.rml_call("input", |s| s.handle_input(&packet.bytes))?;
        self.results(results)
    }

    /// Sends an Acknowledgement once a window of bytes arrived since the last one.
    fn acknowledge(&mut self, now: Instant) -> Result<(), RtmpError> {
        if self.ack_window == 0 || self.bytes_received - self.acked < u64::from(self.ack_window) {
            return Ok(());
        }
        self.acked = self.bytes_received;
        // §5.4.3: the number of bytes received so far; like every RTMP counter it wraps.
        let sequence = self.bytes_received as u32;
        let ack = MessagePayload {
            timestamp: RtmpTimestamp::new(
                now.saturating_duration_since(self.started).as_millis() as u32
            ),
            type_id: ACKNOWLEDGEMENT,
            message_stream_id: 0,
            data: Bytes::copy_from_slice(&sequence.to_be_bytes()),
        };
        let writer = &mut self.writer;
        let packet =
            contain("serialize", || writer.serialize(&ack, true, false))?.map_err(rml_error)?;
        self.send(packet.bytes);
        Ok(())
    }

    /// Re-chunks `rml`'s output with our serializer (see the module docs).
    fn relay(&mut self, packet: Packet) -> Result<(), RtmpError> {
        let mut input = &packet.bytes[..];
        loop {
            let from_rml = &mut self.from_rml;
            let message =
                contain("re-chunk", || from_rml.get_next_message(input))?.map_err(rml_error)?;
            let Some(message) = message else {
                return Ok(());
            };
            input = &[];
            let writer = &mut self.writer;
            let out = if message.type_id == SET_CHUNK_SIZE {
                let size = be32(&message.data).ok_or(RtmpError::Protocol {
                    reason: "rml_rtmp sent a short Set Chunk Size",
                })?;
                contain("re-chunk", || from_rml.set_max_chunk_size(size as usize))?
                    .map_err(rml_error)?;
                contain("re-chunk", || {
                    writer.set_max_chunk_size(size, message.timestamp)
                })?
            } else {
                contain("re-chunk", || writer.serialize(&message, true, false))?
            };
            self.send(out.map_err(rml_error)?.bytes);
        }
    }

    fn rml_call<T>(
        &mut self,
        during: &'static str,
        f: impl FnOnce(&mut ServerSession) -> Result<T, ServerSessionError>,
    ) -> Result<T, RtmpError> {
        let rml = self.rml.as_mut().ok_or(RtmpError::Protocol {
            reason: "RTMP command before the handshake completed",
        })?;
        contain(during, || f(rml))?.map_err(session_error)
    }

    fn results(&mut self, results: Vec<ServerSessionResult>) -> Result<(), RtmpError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.relay(packet)?,
                ServerSessionResult::RaisedEvent(event) => self.event(event)?,
                ServerSessionResult::UnhandleableMessageReceived(payload) => {
                    tracing::debug!(type_id = payload.type_id, "ignored RTMP message");
                }
            }
        }
        Ok(())
    }

    fn event(&mut self, event: ServerSessionEvent) -> Result<(), RtmpError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if self.app.is_some() {
                    return Err(RtmpError::Protocol {
                        reason: "connect sent twice",
                    });
                }
                self.app = Some(app_name);
                let results = self.rml_call("accept connect", |s| s.accept_request(request_id))?;
                self.results(results)?;
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                if self.publish != Publish::None {
                    return Err(RtmpError::Protocol {
                        reason: "second publish on one connection",
                    });
                }
                self.publish = Publish::Pending(request_id);
                self.publish_stream = self.feeding_stream;
                let (stream_key, token) = split_stream_name(&stream_key);
                self.events.push_back(Event::PublishRequested {
                    app: app_name,
                    stream_key,
                    token,
                });
            }
            ServerSessionEvent::PublishStreamFinished { .. } => self.finish(),
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if self.publish == Publish::Accepted {
                    let metadata = convert_metadata(metadata);
                    self.events
                        .push_back(Event::Media(MediaEvent::Metadata(metadata)));
                }
            }
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } => {
                match command_name.as_str() {
                    "FCUnpublish" => self.finish(),
                    // ffmpeg and OBS send releaseStream and FCPublish before createStream and
                    // do not wait for answers; the key they name comes again with publish.
                    "releaseStream" | "FCPublish" => {}
                    _ => tracing::debug!(command = %command_name, "ignored RTMP command"),
                }
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let results = self.rml_call("reject play", |s| {
                    s.reject_request(
                        request_id,
                        "NetStream.Play.Failed",
                        "RTMP playback is not served; use HLS",
                    )
                })?;
                self.results(results)?;
            }
            // Media never reaches `rml` (see the module docs).
            ServerSessionEvent::VideoDataReceived { .. }
            | ServerSessionEvent::AudioDataReceived { .. }
            | ServerSessionEvent::ClientChunkSizeChanged { .. }
            | ServerSessionEvent::ReleaseStreamRequested { .. }
            | ServerSessionEvent::PlayStreamFinished { .. }
            | ServerSessionEvent::AcknowledgementReceived { .. }
            | ServerSessionEvent::PingResponseReceived { .. } => {}
        }
        Ok(())
    }

    fn finish(&mut self) {
        if self.publish == Publish::Accepted {
            self.publish = Publish::Finished;
            self.events.push_back(Event::PublishFinished);
        }
    }

    fn demuxed(&mut self, result: Result<Option<MediaEvent>, FlvError>) -> Result<(), RtmpError> {
        match result {
            Ok(Some(event)) => self.events.push_back(Event::Media(event)),
            Ok(None) => {}
            Err(FlvError::Malformed { track, reason }) => {
                self.malformed += 1;
                tracing::debug!(?track, reason, "dropped a malformed tag");
            }
            Err(FlvError::Unsupported {
                track: TrackKind::Video,
                codec,
            }) => return Err(RtmpError::UnsupportedVideo { codec }),
            Err(FlvError::Unsupported {
                track: TrackKind::Audio,
                codec,
            }) => {
                self.audio_dropped = true;
                self.events.push_back(Event::Warning(format!(
                    "audio codec {codec} is not supported; audio is dropped"
                )));
            }
            Err(FlvError::BadConfig { track, source }) => {
                return Err(RtmpError::BadConfig { track, source });
            }
        }
        Ok(())
    }
}

fn session_error(e: ServerSessionError) -> RtmpError {
    rml_error(e)
}

fn rml_error(e: impl Display) -> RtmpError {
    RtmpError::Session {
        reason: e.to_string(),
    }
}

/// `KEY?token=abc&x=y` to (`KEY`, `Some("abc")`).
fn split_stream_name(name: &str) -> (String, Option<String>) {
    match name.split_once('?') {
        None => (name.to_owned(), None),
        Some((key, query)) => {
            let token = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            (key.to_owned(), token)
        }
    }
}

fn convert_metadata(m: rml_rtmp::sessions::StreamMetadata) -> StreamMetadata {
    StreamMetadata {
        video_codec_id: m.video_codec_id,
        audio_codec_id: m.audio_codec_id,
        width: m.video_width,
        height: m.video_height,
        frame_rate: m.video_frame_rate,
        video_bitrate_kbps: m.video_bitrate_kbps,
        audio_bitrate_kbps: m.audio_bitrate_kbps,
        encoder: m.encoder,
    }
}

#[cfg(test)]
mod tests {
    use super::split_stream_name;

    #[test]
    fn splits_the_token_off_the_stream_name() {
        let own = |k: &str, t: Option<&str>| (k.to_owned(), t.map(str::to_owned));
        assert_eq!(split_stream_name("cam1"), own("cam1", None));
        assert_eq!(
            split_stream_name("cam1?token=abc"),
            own("cam1", Some("abc"))
        );
        assert_eq!(
            split_stream_name("cam1?x=1&token=a.b.c&y=2"),
            own("cam1", Some("a.b.c"))
        );
        assert_eq!(split_stream_name("cam1?token="), own("cam1", None));
        assert_eq!(split_stream_name("cam1?tokens=abc"), own("cam1", None));
        assert_eq!(split_stream_name("?token=abc"), own("", Some("abc")));
    }
}
