//! [`Session`]: one RTMP connection from handshake to unpublish.
//!
//! Call order for the shell: after every `handle_input`/`handle_timeout`/`accept_publish`/
//! `reject_publish`, drain `poll_transmit` (to the socket, in order) and `poll_event`, then
//! wait for input or `poll_timeout`. Any `Err` is fatal: log it once and close the socket
//! (bytes still queued in `poll_transmit`, such as a rejection, may be flushed first).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use camstream_protocol::{MediaEvent, StreamMetadata, TrackKind};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};

use super::chunk::{ChunkGuard, Limits};
use super::contain::contain;
use super::{Config, Event, Phase, RtmpError};
use crate::flv::{Demuxer, FlvError};

/// C0 + C1 + C2 (§5.2.5): what the handshake consumes before chunks start.
const HANDSHAKE_LEN: usize = 1 + 1536 + 1536;
/// Input goes to `rml_rtmp` in pieces of at most this size: it copies each piece into its own
/// buffer before parsing, so this bounds that copy.
const FEED_LEN: usize = 64 << 10;

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
    /// `Some` until the handshake completes.
    handshake: Option<Handshake>,
    handshake_left: usize,
    /// `Some` once the handshake completed.
    rml: Option<ServerSession>,
    guard: ChunkGuard,
    demuxer: Demuxer,
    app: Option<String>,
    publish: Publish,
    audio_dropped: bool,
    aggregate_warned: bool,
    malformed: u64,
    bytes_received: u64,
    deadline: Instant,
    failed: bool,
    events: VecDeque<Event>,
    transmit: VecDeque<Bytes>,
    /// Scratch for [`Session::feed`], kept to avoid an allocation per input.
    message_ends: Vec<usize>,
}

impl Session {
    /// A session for a connection accepted at `now`.
    pub(crate) fn new(now: Instant, config: Config) -> Self {
        let guard = ChunkGuard::new(Limits {
            max_message_len: config.max_message_len,
            max_command_len: config.max_command_len,
            max_chunk_size: config.max_chunk_size,
            max_pending_bytes: config.max_pending_bytes,
            max_chunk_streams: config.max_chunk_streams,
            max_streams: config.max_streams,
        });
        Self {
            deadline: now + config.handshake_timeout,
            config,
            handshake: Some(Handshake::new(PeerType::Server)),
            handshake_left: HANDSHAKE_LEN,
            rml: None,
            guard,
            demuxer: Demuxer::new(),
            app: None,
            publish: Publish::None,
            audio_dropped: false,
            aggregate_warned: false,
            malformed: 0,
            bytes_received: 0,
            failed: false,
            events: VecDeque::new(),
            transmit: VecDeque::new(),
            message_ends: Vec::new(),
        }
    }

    /// Consumes all of `buf` (it is left empty, capacity kept).
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
        let result = self.input(now, &buf[..]);
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
            self.guard.allow_media();
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

    /// Bytes received so far, handshake included (for bitrate).
    pub(crate) fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Media tags dropped: malformed ones and frames before their track's sequence header.
    pub(crate) fn dropped_frames(&self) -> u64 {
        self.malformed + self.demuxer.frames_before_config
    }

    /// The chunk size the peer announced last.
    #[cfg(test)]
    pub(crate) fn peer_chunk_size(&self) -> u32 {
        self.guard.chunk_size()
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

    fn input(&mut self, now: Instant, data: &[u8]) -> Result<(), RtmpError> {
        let mut rest = data;
        if let Some(handshake) = &mut self.handshake {
            // Give the handshake exactly its bytes, so nothing is buffered (and copied) twice.
            let n = rest.len().min(self.handshake_left);
            let (head, tail) = rest.split_at(n);
            rest = tail;
            self.handshake_left -= n;
            let result = contain("handshake", || handshake.process_bytes(head))?.map_err(|e| {
                RtmpError::Handshake {
                    reason: e.to_string(),
                }
            })?;
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
                        self.feed(&remaining_bytes)?;
                    }
                }
            }
        }
        if self.handshake.is_none() {
            self.deadline = now + self.config.idle_timeout;
            if !rest.is_empty() {
                self.feed(rest)?;
            }
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
        self.results(results)
    }

    /// Chunk bytes after the handshake: vetted by the guard, then parsed by `rml_rtmp` one
    /// message at a time. `rml_rtmp` parses all messages of an input before we see the first
    /// event, so a `publish` arriving with the `connect` would be refused ("not connected")
    /// before we accepted the connect; cutting at message ends lets each event be answered
    /// before the next message is read.
    fn feed(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        let mut ends = std::mem::take(&mut self.message_ends);
        ends.clear();
        let result = self.guard.check(data, &mut ends).and_then(|()| {
            let mut start = 0;
            for end in ends.iter().copied().chain(std::iter::once(data.len())) {
                for piece in data[start..end].chunks(FEED_LEN) {
                    let results = self.rml_call("input", |s| s.handle_input(piece))?;
                    self.results(results)?;
                }
                start = end;
            }
            Ok(())
        });
        self.message_ends = ends;
        result
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
                ServerSessionResult::OutboundResponse(packet) => self.send(packet.bytes),
                ServerSessionResult::RaisedEvent(event) => self.event(event)?,
                ServerSessionResult::UnhandleableMessageReceived(payload) => {
                    // Aggregate messages (type 22) wrap FLV tags; no encoder we know publishes
                    // them, so they are reported once rather than unpacked.
                    if payload.type_id == 22 && !self.aggregate_warned {
                        self.aggregate_warned = true;
                        self.events.push_back(Event::Warning(
                            "RTMP aggregate messages are not supported; their media is dropped"
                                .to_owned(),
                        ));
                    }
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
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                if self.publish == Publish::Accepted {
                    let demuxer = &mut self.demuxer;
                    let result = contain("video demux", || {
                        demuxer.handle_video(timestamp.value, data)
                    })?;
                    self.demuxed(result)?;
                }
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                if self.publish == Publish::Accepted && !self.audio_dropped {
                    let demuxer = &mut self.demuxer;
                    let result = contain("audio demux", || {
                        demuxer.handle_audio(timestamp.value, data)
                    })?;
                    self.demuxed(result)?;
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
            ServerSessionEvent::ClientChunkSizeChanged { .. }
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
