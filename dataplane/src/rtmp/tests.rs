//! Session tests: a `Session` and an `rml_rtmp` client on a virtual clock, stepped until
//! idle; hostile inputs; one real ffmpeg publisher over TCP.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use camstream_protocol::{MediaEvent, StreamMetadata, TrackKind};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, ServerSession, ServerSessionConfig,
};
use rml_rtmp::time::RtmpTimestamp;

use super::contain::contain;
use super::*;
use crate::flv::Demuxer;
use crate::flv::file::{Tag, TagKind, test_clip};

/// Chunk stream the test peer uses for raw messages; `ClientSession` never does.
const RAW_CSID: u8 = 8;
/// The message stream id `rml_rtmp`'s server gives the first `createStream`.
const STREAM_ID: u32 = 1;

/// Encodes one message as a type 0 chunk and type 3 continuations.
fn chunks(csid: u8, type_id: u8, stream_id: u32, payload: &[u8], chunk_size: usize) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![csid, 0, 0, 0, len[1], len[2], len[3], type_id];
    out.extend_from_slice(&stream_id.to_le_bytes());
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xC0 | csid);
        }
        out.extend_from_slice(piece);
    }
    out
}

fn amf0(values: Vec<Amf0Value>) -> Vec<u8> {
    rml_amf0::serialize(&values).unwrap()
}

fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_owned())
}

fn command_body(name: &str, transaction: f64, args: Vec<Amf0Value>) -> Vec<u8> {
    let mut values = vec![
        string(name),
        Amf0Value::Number(transaction),
        Amf0Value::Null,
    ];
    values.extend(args);
    amf0(values)
}

/// The encoder: `rml_rtmp`'s client handshake and session, plus raw chunks for what
/// `ClientSession` cannot send (releaseStream, FCPublish, an early Set Chunk Size, hostile
/// bytes).
struct Peer {
    handshake: Option<Handshake>,
    client: ClientSession,
    /// Bytes for the server not yet delivered.
    out: Vec<u8>,
    /// Everything ever sent to the server.
    transcript: Vec<u8>,
    events: Vec<ClientSessionEvent>,
    /// The chunk size the server expects from us now, and the one `ClientSession` announces
    /// once connected.
    chunk_size: usize,
    announced_chunk_size: usize,
}

impl Peer {
    fn new(chunk_size: u32, window_ack_size: u32) -> Self {
        let mut config = ClientSessionConfig::new();
        config.chunk_size = chunk_size;
        config.window_ack_size = window_ack_size;
        let (client, results) = ClientSession::new(config).unwrap();
        assert!(results.is_empty());
        let mut handshake = Handshake::new(PeerType::Client);
        let c0c1 = handshake.generate_outbound_p0_and_p1().unwrap();
        let mut peer = Peer {
            handshake: Some(handshake),
            client,
            out: Vec::new(),
            transcript: Vec::new(),
            events: Vec::new(),
            chunk_size: 128,
            announced_chunk_size: chunk_size as usize,
        };
        peer.push(&c0c1);
        peer
    }

    fn push(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.transcript.extend_from_slice(bytes);
    }

    fn receive(&mut self, bytes: &[u8]) {
        let mut rest = bytes.to_vec();
        if let Some(handshake) = &mut self.handshake {
            match handshake.process_bytes(&rest).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.push(&response_bytes);
                    return;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.push(&response_bytes);
                    self.handshake = None;
                    rest = remaining_bytes;
                }
            }
        }
        if !rest.is_empty() {
            let results = self.client.handle_input(&rest).unwrap();
            self.apply(results);
        }
    }

    fn apply(&mut self, results: Vec<ClientSessionResult>) {
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => self.push(&packet.bytes),
                ClientSessionResult::RaisedEvent(event) => {
                    // ClientSession announces its chunk size right after this event.
                    if event == ClientSessionEvent::ConnectionRequestAccepted {
                        self.chunk_size = self.announced_chunk_size;
                    }
                    self.events.push(event);
                }
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }

    fn connect(&mut self, app: &str) {
        let result = self.client.request_connection(app.to_owned()).unwrap();
        self.apply(vec![result]);
    }

    /// createStream, then publish once the server answers.
    fn publish(&mut self, stream_name: &str) {
        let result = self
            .client
            .request_publishing(stream_name.to_owned(), PublishRequestType::Live)
            .unwrap();
        self.apply(vec![result]);
    }

    fn tag(&mut self, tag: &Tag) {
        let ts = RtmpTimestamp::new(tag.timestamp);
        let result = match tag.kind {
            TagKind::Video => self.client.publish_video_data(tag.body.clone(), ts, false),
            TagKind::Audio => self.client.publish_audio_data(tag.body.clone(), ts, false),
            TagKind::Script => return,
        };
        self.apply(vec![result.unwrap()]);
    }

    fn metadata(&mut self, metadata: &rml_rtmp::sessions::StreamMetadata) {
        let result = self.client.publish_metadata(metadata).unwrap();
        self.apply(vec![result]);
    }

    fn raw(&mut self, csid: u8, type_id: u8, stream_id: u32, payload: &[u8]) {
        let bytes = chunks(csid, type_id, stream_id, payload, self.chunk_size);
        self.push(&bytes);
    }

    fn command(&mut self, name: &str, transaction: f64, args: Vec<Amf0Value>, stream_id: u32) {
        let body = command_body(name, transaction, args);
        self.raw(RAW_CSID, 20, stream_id, &body);
    }

    fn set_chunk_size(&mut self, size: u32) {
        self.raw(2, 1, 0, &size.to_be_bytes());
        self.chunk_size = size as usize;
    }
}

/// A server session and a peer on a virtual clock.
struct Pair {
    server: Session,
    peer: Peer,
    now: Instant,
    events: Vec<Event>,
    auto_accept: bool,
}

impl Pair {
    fn new(config: Config, peer: Peer) -> Self {
        let now = Instant::now();
        Pair {
            server: Session::new(now, config),
            peer,
            now,
            events: Vec::new(),
            auto_accept: false,
        }
    }

    /// Handshake and `connect` to app `live` done.
    fn connected(config: Config, peer: Peer) -> Self {
        let mut pair = Pair::new(config, peer);
        pair.step().unwrap();
        assert!(pair.peer.handshake.is_none(), "handshake must complete");
        pair.peer.connect("live");
        pair.step().unwrap();
        assert!(
            pair.peer
                .events
                .contains(&ClientSessionEvent::ConnectionRequestAccepted)
        );
        pair
    }

    /// Like ffmpeg: releaseStream, FCPublish, createStream, publish; then accepted.
    fn publishing(config: Config, peer: Peer, stream_name: &str) -> Self {
        let mut pair = Pair::connected(config, peer);
        pair.request_publish(stream_name);
        pair.server.accept_publish().unwrap();
        pair.step().unwrap();
        assert!(
            pair.peer
                .events
                .contains(&ClientSessionEvent::PublishRequestAccepted)
        );
        pair.events.clear();
        pair
    }

    fn request_publish(&mut self, stream_name: &str) {
        let key = string(stream_name.split('?').next().unwrap());
        self.peer
            .command("releaseStream", 2.0, vec![key.clone()], 0);
        self.peer.command("FCPublish", 3.0, vec![key], 0);
        self.peer.publish(stream_name);
        self.step().unwrap();
        assert!(
            matches!(self.events.last(), Some(Event::PublishRequested { .. })),
            "{:?}",
            self.events
        );
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn step(&mut self) -> Result<(), RtmpError> {
        loop {
            let mut moved = false;
            if !self.peer.out.is_empty() {
                let mut buf = BytesMut::from(&self.peer.out[..]);
                self.peer.out.clear();
                self.server.handle_input(self.now, &mut buf)?;
                assert!(buf.is_empty(), "handle_input consumes all input");
                moved = true;
            }
            while let Some(bytes) = self.server.poll_transmit() {
                self.peer.receive(&bytes);
                moved = true;
            }
            while let Some(event) = self.server.poll_event() {
                if self.auto_accept && matches!(event, Event::PublishRequested { .. }) {
                    self.server.accept_publish()?;
                    moved = true;
                }
                self.events.push(event);
            }
            if !moved {
                return Ok(());
            }
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        self.peer.push(bytes);
        self.step()
    }

    fn media(&self) -> Vec<MediaEvent> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Media(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

/// What the demuxer makes of `tags` fed directly, without RTMP in between.
fn demux_directly<'a>(tags: impl IntoIterator<Item = &'a Tag>) -> Vec<MediaEvent> {
    let mut d = Demuxer::new();
    tags.into_iter()
        .filter_map(|t| match t.kind {
            TagKind::Video => d.handle_video(t.timestamp, t.body.clone()).unwrap(),
            TagKind::Audio => d.handle_audio(t.timestamp, t.body.clone()).unwrap(),
            TagKind::Script => None,
        })
        .collect()
}

fn clip_metadata() -> rml_rtmp::sessions::StreamMetadata {
    let mut m = rml_rtmp::sessions::StreamMetadata::new();
    m.video_width = Some(1280);
    m.video_height = Some(720);
    m.video_codec_id = Some(7);
    m.video_frame_rate = Some(30.0);
    m.video_bitrate_kbps = Some(2500);
    m.audio_codec_id = Some(10);
    m.audio_bitrate_kbps = Some(96);
    m.encoder = Some("test peer".to_owned());
    m
}

fn expected_metadata() -> StreamMetadata {
    StreamMetadata {
        video_codec_id: Some(7),
        audio_codec_id: Some(10),
        width: Some(1280),
        height: Some(720),
        frame_rate: Some(30.0),
        video_bitrate_kbps: Some(2500),
        audio_bitrate_kbps: Some(96),
        encoder: Some("test peer".to_owned()),
    }
}

fn first_tag(kind: TagKind) -> &'static Tag {
    test_clip().tags.iter().find(|t| t.kind == kind).unwrap()
}

#[test]
fn publishes_like_ffmpeg() {
    let clip = test_clip();
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, 2_500_000));
    pair.request_publish("testkey?token=abc");
    assert_eq!(
        pair.events,
        vec![Event::PublishRequested {
            app: "live".into(),
            stream_key: "testkey".into(),
            token: Some("abc".into()),
        }]
    );
    pair.server.accept_publish().unwrap();
    pair.step().unwrap();
    assert!(
        pair.peer
            .events
            .contains(&ClientSessionEvent::PublishRequestAccepted)
    );
    pair.peer.metadata(&clip_metadata());
    for tag in &clip.tags {
        pair.peer.tag(tag);
        pair.step().unwrap();
    }
    let mut expected = vec![MediaEvent::Metadata(expected_metadata())];
    expected.extend(demux_directly(&clip.tags));
    let media = pair.media();
    assert_eq!(media.len(), expected.len());
    assert!(media == expected, "media events differ from a direct demux");
    let video_frames = media
        .iter()
        .filter(|m| matches!(m, MediaEvent::Frame(f) if f.track == TrackKind::Video))
        .count();
    assert_eq!(video_frames, clip.video_frames);
    assert_eq!(pair.server.dropped_frames(), 0);
    assert_eq!(
        pair.server.bytes_received(),
        pair.peer.transcript.len() as u64
    );

    // ffmpeg ends with FCUnpublish then deleteStream: one PublishFinished.
    pair.events.clear();
    pair.peer
        .command("FCUnpublish", 6.0, vec![string("testkey")], 0);
    let stop = pair.peer.client.stop_publishing().unwrap();
    pair.peer.apply(stop);
    pair.step().unwrap();
    assert_eq!(pair.events, vec![Event::PublishFinished]);
}

#[test]
fn obs_style_chunk_size_before_connect() {
    let clip = test_clip();
    let mut pair = Pair::new(Config::default(), Peer::new(4096, 2_500_000));
    pair.step().unwrap();
    pair.peer.set_chunk_size(4096);
    // ClientSession still chunks at 128 until connected; its connect fits one chunk, so the
    // server reading 4096-byte chunks sees the same bytes.
    let connect = pair.peer.client.request_connection("live".into()).unwrap();
    let ClientSessionResult::OutboundResponse(packet) = &connect else {
        panic!("connect must be a packet");
    };
    assert!(packet.bytes.len() <= 128 + 12, "connect must be one chunk");
    pair.peer.apply(vec![connect]);
    pair.step().unwrap();
    assert_eq!(pair.server.peer_chunk_size(), 4096);
    pair.request_publish("obs");
    pair.server.accept_publish().unwrap();
    pair.step().unwrap();
    // Two seconds of the clip: keyframes of tens of kilobytes span many 4096-byte chunks.
    let tags: Vec<&Tag> = clip.tags.iter().filter(|t| t.timestamp < 2000).collect();
    for tag in &tags {
        pair.peer.tag(tag);
    }
    pair.step().unwrap();
    assert!(tags.iter().any(|t| t.body.len() > 4 * 4096));
    assert_eq!(pair.media(), demux_directly(tags.iter().copied()));
}

#[test]
fn follows_chunk_size_changes_mid_stream() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    let config = first_tag(TagKind::Video);
    let key = test_clip()
        .tags
        .iter()
        .find(|t| t.kind == TagKind::Video && t.body.len() > 10_000)
        .unwrap();
    let mut expected = Vec::new();
    for size in [100, 65_536, 1] {
        pair.peer.set_chunk_size(size);
        pair.peer.raw(RAW_CSID, 9, STREAM_ID, &config.body);
        pair.peer.raw(RAW_CSID, 9, STREAM_ID, &key.body);
        pair.step().unwrap();
        assert_eq!(pair.server.peer_chunk_size(), size);
        expected.push(key.body.slice(5..));
    }
    let frames: Vec<Bytes> = pair
        .media()
        .into_iter()
        .filter_map(|m| match m {
            MediaEvent::Frame(f) => Some(f.data),
            _ => None,
        })
        .collect();
    assert_eq!(frames, expected);
}

/// The client→server bytes of a short publish, where the publish command ends, and the
/// events the server produced.
fn small_transcript() -> (Vec<u8>, usize, Vec<Event>) {
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, 2_500_000));
    pair.request_publish("cam?token=t");
    let publish_end = pair.peer.transcript.len();
    pair.server.accept_publish().unwrap();
    pair.step().unwrap();
    pair.peer.metadata(&clip_metadata());
    pair.peer.tag(first_tag(TagKind::Video));
    pair.peer.tag(first_tag(TagKind::Audio));
    for ts in [0u32, 33, 66] {
        let video = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 1, 2]);
        let audio = Bytes::from_static(&[0xAF, 1, 0x21, 0x10, 0x04]);
        for (kind, body) in [(TagKind::Video, video), (TagKind::Audio, audio)] {
            pair.peer.tag(&Tag {
                kind,
                timestamp: ts,
                body,
            });
        }
    }
    pair.step().unwrap();
    assert_eq!(pair.media().len(), 1 + 2 + 6);
    (pair.peer.transcript.clone(), publish_end, pair.events)
}

/// Feeds `pieces` of `transcript` to a fresh session, accepting the publish as soon as it is
/// requested, and returns the events.
fn replay(transcript: &[u8], cuts: &[usize]) -> Vec<Event> {
    let now = Instant::now();
    let mut server = Session::new(now, Config::default());
    let mut events = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([transcript.len()].iter()) {
        let mut buf = BytesMut::from(&transcript[start..end]);
        server.handle_input(now, &mut buf).unwrap();
        start = end;
        while server.poll_transmit().is_some() {}
        while let Some(event) = server.poll_event() {
            if matches!(event, Event::PublishRequested { .. }) {
                server.accept_publish().unwrap();
            }
            events.push(event);
        }
    }
    events
}

#[test]
fn input_split_at_every_offset() {
    let (transcript, publish_end, reference) = small_transcript();
    // The encoder sends media only after the publish was accepted, so the replay always cuts
    // at `publish_end` (to accept) and additionally at every offset.
    for k in 0..=transcript.len() {
        let mut cuts = vec![k.min(publish_end), publish_end, k.max(publish_end)];
        cuts.dedup();
        assert_eq!(replay(&transcript, &cuts), reference, "split at {k}");
    }
}

#[test]
fn input_one_byte_at_a_time() {
    let (transcript, publish_end, reference) = small_transcript();
    let cuts: Vec<usize> = (1..transcript.len()).collect();
    assert!(cuts.contains(&publish_end));
    assert_eq!(replay(&transcript, &cuts), reference);
}

#[test]
fn acknowledges_after_the_window() {
    let window = 10_000;
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, window));
    // ClientSession announced its window when connected; count from there.
    let start = pair.peer.transcript.len();
    pair.request_publish("k");
    pair.server.accept_publish().unwrap();
    pair.step().unwrap();
    let acks = |p: &Pair| -> Vec<u32> {
        p.peer
            .events
            .iter()
            .filter_map(|e| match e {
                ClientSessionEvent::AcknowledgementReceived { bytes_received } => {
                    Some(*bytes_received)
                }
                _ => None,
            })
            .collect()
    };
    assert!(acks(&pair).is_empty());
    let mut sent_when_acked = None;
    for tag in test_clip().tags.iter().take(60) {
        pair.peer.tag(tag);
        pair.step().unwrap();
        let sent = pair.peer.transcript.len() - start;
        if acks(&pair).is_empty() {
            // rml_rtmp counts from the input after the window announcement.
            assert!(sent < window as usize, "no ack after {sent} bytes");
        } else if sent_when_acked.is_none() {
            sent_when_acked = Some(sent);
        }
    }
    let sent = sent_when_acked.expect("an acknowledgement");
    assert!(sent >= window as usize, "acked after only {sent} bytes");
    let first = acks(&pair)[0];
    assert!(first >= window, "sequence number {first}");
    assert!(
        acks(&pair).len() >= 2,
        "one ack per window: {:?}",
        acks(&pair)
    );
}

#[test]
fn rejected_publish_gets_an_error_and_no_media() {
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, 2_500_000));
    pair.request_publish("wrong-key");
    pair.server
        .reject_publish("stream key not allowed")
        .unwrap();
    pair.step().unwrap();
    let rejected = pair.peer.events.iter().any(|e| match e {
        ClientSessionEvent::UnknownTransactionResultReceived {
            additional_values, ..
        } => matches!(additional_values.first(), Some(Amf0Value::Object(o))
            if o.get("description") == Some(&string("stream key not allowed"))
            && o.get("code") == Some(&string("NetStream.Publish.Denied"))),
        _ => false,
    });
    assert!(rejected, "{:?}", pair.peer.events);
    assert_eq!(
        pair.server.accept_publish(),
        Err(RtmpError::NoPendingPublish)
    );
    pair.peer
        .raw(RAW_CSID, 9, STREAM_ID, &first_tag(TagKind::Video).body);
    pair.step().unwrap();
    assert!(pair.media().is_empty());
}

#[test]
fn accept_without_request_is_refused() {
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, 2_500_000));
    assert_eq!(
        pair.server.accept_publish(),
        Err(RtmpError::NoPendingPublish)
    );
    assert_eq!(
        pair.server.reject_publish("no"),
        Err(RtmpError::NoPendingPublish)
    );
    // Not fatal.
    pair.request_publish("k");
}

#[test]
fn handshake_timeout() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, Config::default());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // A truncated handshake: C0 and part of C1. Not an error yet, just waiting.
    let mut buf = BytesMut::from(&[3u8; 700][..]);
    s.handle_input(t0 + Duration::from_secs(1), &mut buf)
        .unwrap();
    assert!(s.poll_transmit().is_some(), "S0+S1 go out at once");
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    s.handle_timeout(t0 + Duration::from_millis(9_999)).unwrap();
    assert_eq!(
        s.handle_timeout(t0 + Duration::from_secs(10)),
        Err(RtmpError::Timeout {
            phase: Phase::Handshake,
            after: Duration::from_secs(10)
        })
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.handle_input(t0, &mut buf), Err(RtmpError::Closed));
}

#[test]
fn idle_timeout() {
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, 2_500_000));
    let t = pair.now;
    assert_eq!(
        pair.server.poll_timeout(),
        Some(t + Duration::from_secs(30))
    );
    pair.now = t + Duration::from_secs(20);
    pair.peer.command("FCPublish", 3.0, vec![string("k")], 0);
    pair.step().unwrap();
    assert_eq!(
        pair.server.poll_timeout(),
        Some(t + Duration::from_secs(50))
    );
    pair.server
        .handle_timeout(t + Duration::from_millis(49_999))
        .unwrap();
    assert_eq!(
        pair.server.handle_timeout(t + Duration::from_secs(50)),
        Err(RtmpError::Timeout {
            phase: Phase::Idle,
            after: Duration::from_secs(30)
        })
    );
}

/// A session past the handshake (old-style: zeros, which `rml_rtmp` accepts).
fn after_handshake(config: Config) -> (Session, Instant) {
    let now = Instant::now();
    let mut s = Session::new(now, config);
    let mut buf = BytesMut::from(&handshake_bytes()[..]);
    s.handle_input(now, &mut buf).unwrap();
    while s.poll_transmit().is_some() {}
    (s, now)
}

fn handshake_bytes() -> Vec<u8> {
    let mut v = vec![3u8];
    v.resize(1 + 2 * 1536, 0);
    v
}

fn feed(s: &mut Session, now: Instant, bytes: &[u8]) -> Result<(), RtmpError> {
    let mut buf = BytesMut::from(bytes);
    s.handle_input(now, &mut buf)
}

/// Whether `rml_rtmp`'s own server session panics on these post-handshake bytes.
fn raw_rml_panics(bytes: &[u8]) -> bool {
    let (mut raw, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
    matches!(
        contain("raw", || raw.handle_input(bytes)),
        Err(RtmpError::Internal { .. })
    )
}

fn hostile(bytes: &[u8], expected: RtmpError) {
    let (mut s, now) = after_handshake(Config::default());
    assert_eq!(feed(&mut s, now, bytes), Err(expected));
    assert_eq!(feed(&mut s, now, &[0]), Err(RtmpError::Closed));
}

#[test]
fn random_bytes_instead_of_a_handshake() {
    let mut s = Session::new(Instant::now(), Config::default());
    let err = feed(&mut s, Instant::now(), b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert!(matches!(err, RtmpError::Handshake { .. }), "{err}");
}

#[test]
fn absurd_chunk_sizes() {
    for size in [0u32, 0x7FFF_FFFF, (16 << 20) + 1] {
        hostile(
            &chunks(2, 1, 0, &size.to_be_bytes(), 128),
            RtmpError::InvalidChunkSize {
                got: size,
                max: 16 << 20,
            },
        );
    }
    hostile(
        &chunks(2, 1, 0, &[0, 1], 128),
        RtmpError::Malformed {
            type_id: 1,
            reason: "Set Chunk Size shorter than 4 bytes",
        },
    );
}

#[test]
fn huge_message_lengths() {
    // A command announcing 16 MiB - 1: refused at the header, before anything is buffered.
    let header = [3u8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
    hostile(
        &header,
        RtmpError::MessageTooLong {
            type_id: 20,
            len: 0xFF_FFFF,
            max: 64 << 10,
        },
    );
    // Video before the publish was accepted is held to the command limit.
    let header = [4u8, 0, 0, 0, 0x01, 0x00, 0x01, 9, 1, 0, 0, 0];
    hostile(
        &header,
        RtmpError::MessageTooLong {
            type_id: 9,
            len: 0x1_0001,
            max: 64 << 10,
        },
    );
    // After it, the media limit applies.
    let config = Config {
        max_message_len: 100_000,
        ..Config::default()
    };
    let mut pair = Pair::publishing(config, Peer::new(4096, 2_500_000), "k");
    let body = vec![0x27; 100_000];
    pair.send_raw(&chunks(4, 9, STREAM_ID, &body, 4096))
        .unwrap();
    assert_eq!(
        pair.send_raw(&chunks(4, 9, STREAM_ID, &[0x27; 100_001], 4096)),
        Err(RtmpError::MessageTooLong {
            type_id: 9,
            len: 100_001,
            max: 100_000,
        })
    );
}

/// Two messages whose chunks interleave: rml_rtmp mixes them into one buffer.
fn interleaved() -> Vec<u8> {
    let mut v = vec![4u8, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0]; // 1000-byte video
    v.extend_from_slice(&[0; 128]);
    v.extend_from_slice(&[5u8, 0, 0, 0, 0, 0, 10, 8, 1, 0, 0, 0]); // 10-byte audio
    v.extend_from_slice(&[0; 10]);
    v
}

/// One message as a type 0 chunk and type 3 continuations, one `Vec` per chunk.
fn chunk_list(
    csid: u8,
    type_id: u8,
    timestamp: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Vec<Vec<u8>> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let ts = timestamp.to_be_bytes();
    assert!(timestamp < 0xFF_FFFF);
    let mut first = vec![csid, ts[1], ts[2], ts[3], len[1], len[2], len[3], type_id];
    first.extend_from_slice(&STREAM_ID.to_le_bytes());
    let mut out = vec![first];
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(vec![0xC0 | csid]);
        }
        out.last_mut().unwrap().extend_from_slice(piece);
    }
    out
}

#[test]
fn interleaved_chunk_streams_crash_raw_rml_but_we_reassemble_them() {
    assert!(raw_rml_panics(&interleaved()));
    let (mut s, now) = after_handshake(Config::default());
    assert_eq!(feed(&mut s, now, &interleaved()), Ok(()));

    // A publisher that slips whole audio messages between the chunks of a keyframe.
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    let clip = test_clip();
    let video_config = first_tag(TagKind::Video);
    let audio_config = first_tag(TagKind::Audio);
    let keyframe = clip
        .tags
        .iter()
        .find(|t| t.kind == TagKind::Video && t.body.len() > 5 * 4096)
        .unwrap();
    let audio: Vec<&Tag> = clip
        .tags
        .iter()
        .filter(|t| t.kind == TagKind::Audio)
        .skip(1)
        .take(5)
        .collect();
    let mut bytes = Vec::new();
    for tag in [video_config, audio_config] {
        let (csid, type_id) = if tag.kind == TagKind::Video {
            (8, 9)
        } else {
            (9, 8)
        };
        bytes.extend(chunk_list(csid, type_id, tag.timestamp, &tag.body, 4096).concat());
    }
    let key_chunks = chunk_list(8, 9, keyframe.timestamp, &keyframe.body, 4096);
    assert!(key_chunks.len() > audio.len());
    for (i, chunk) in key_chunks.iter().enumerate() {
        bytes.extend_from_slice(chunk);
        if let Some(tag) = audio.get(i) {
            bytes.extend(chunk_list(9, 8, tag.timestamp, &tag.body, 4096).concat());
        }
    }
    pair.send_raw(&bytes).unwrap();
    let mut order = vec![video_config, audio_config];
    order.extend(audio.iter().copied());
    order.push(keyframe);
    assert_eq!(pair.media(), demux_directly(order));
}

#[test]
fn shorter_header_mid_message_crashes_raw_rml_but_not_us() {
    let mut v = vec![4u8, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0];
    v.extend_from_slice(&[0; 128]);
    v.extend_from_slice(&[0x44, 0, 0, 0, 0, 0, 10, 9]); // type 1 header, length 10
    v.extend_from_slice(&[0; 10]);
    assert!(raw_rml_panics(&v));
    hostile(&v, RtmpError::Interrupted { csid: 4, fmt: 1 });
}

#[test]
fn small_extended_timestamp_crashes_raw_rml_but_not_us() {
    let mut v = vec![4u8, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0x17];
    // type 1 header with timestamp field 0xFFFFFF and an extended delta of 5
    v.extend_from_slice(&[0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 0, 0, 0, 5, 0x17]);
    // rml_rtmp computes `5 - 0xFFFFFF`: a panic where overflow checks are on.
    assert_eq!(raw_rml_panics(&v), cfg!(debug_assertions));
    hostile(&v, RtmpError::BadExtendedTimestamp { csid: 4, got: 5 });
}

#[test]
fn short_commands_crash_raw_rml_but_not_us() {
    let one_value = chunks(3, 20, 0, &amf0(vec![string("connect")]), 128);
    assert!(raw_rml_panics(&one_value));
    hostile(
        &one_value,
        RtmpError::Malformed {
            type_id: 20,
            reason: "command with fewer than three AMF0 values",
        },
    );
    let empty = chunks(3, 17, 0, &[0], 128);
    assert!(raw_rml_panics(&empty));
    hostile(
        &empty,
        RtmpError::Malformed {
            type_id: 17,
            reason: "command with fewer than three AMF0 values",
        },
    );
    let set_data_frame = chunks(3, 18, 0, &amf0(vec![string("@setDataFrame")]), 128);
    assert!(raw_rml_panics(&set_data_frame));
    hostile(
        &set_data_frame,
        RtmpError::Malformed {
            type_id: 18,
            reason: "@setDataFrame without a handler name and a value",
        },
    );
}

#[test]
fn deep_amf0_nesting_is_refused() {
    // Thousands of nested objects overflow rml_amf0's recursion: never handed to it.
    let mut body = command_body("connect", 1.0, vec![]);
    body.pop(); // the null command object
    for _ in 0..10_000 {
        body.extend_from_slice(&[3, 0, 1, b'a']);
    }
    body.push(5);
    hostile(
        &chunks(3, 20, 0, &body, 128),
        RtmpError::Malformed {
            type_id: 20,
            reason: "AMF0 values nested too deep",
        },
    );
}

#[test]
fn compressed_header_without_a_previous_one() {
    hostile(
        &[0x44, 0, 0, 0, 0, 0, 1, 9, 0],
        RtmpError::NoPreviousChunk { csid: 4, fmt: 1 },
    );
    hostile(&[0xC4, 0], RtmpError::NoPreviousChunk { csid: 4, fmt: 3 });
}

#[test]
fn window_ack_size_that_would_overflow_rml() {
    hostile(
        &chunks(2, 5, 0, &u32::MAX.to_be_bytes(), 128),
        RtmpError::InvalidWindowAckSize {
            got: u32::MAX,
            max: 0x7FFF_FFFF,
        },
    );
}

#[test]
fn too_many_chunk_streams() {
    let mut v = Vec::new();
    for csid in 0..=64u32 {
        // two-byte basic headers: csid 64 + n
        v.extend_from_slice(&[0, csid as u8, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0]);
    }
    hostile(&v, RtmpError::TooManyChunkStreams { max: 64 });
}

#[test]
fn create_stream_flood() {
    let mut v = Vec::new();
    for i in 0..9 {
        v.extend(chunks(
            3,
            20,
            0,
            &command_body("createStream", f64::from(i), vec![]),
            128,
        ));
    }
    hostile(&v, RtmpError::TooManyStreams { max: 8 });
}

#[test]
fn stalled_message() {
    let config = Config {
        max_pending_bytes: 1000,
        ..Config::default()
    };
    let (mut s, now) = after_handshake(config);
    // 3000-byte command in 1-byte chunks: 1 header byte per payload byte.
    let mut v = chunks(2, 1, 0, &1u32.to_be_bytes(), 128);
    v.extend(chunks(3, 20, 0, &vec![5; 3000], 1));
    assert_eq!(
        feed(&mut s, now, &v),
        Err(RtmpError::Stalled {
            pending: 1001,
            max: 1000
        })
    );
}

#[test]
fn second_connect_and_second_publish_are_refused() {
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, 2_500_000));
    let mut app = std::collections::HashMap::new();
    app.insert("app".to_owned(), string("live"));
    let body = amf0(vec![
        string("connect"),
        Amf0Value::Number(9.0),
        Amf0Value::Object(app),
    ]);
    pair.peer.raw(RAW_CSID, 20, 0, &body);
    assert_eq!(
        pair.step(),
        Err(RtmpError::Protocol {
            reason: "connect sent twice"
        })
    );

    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    pair.peer.command(
        "publish",
        0.0,
        vec![string("k2"), string("live")],
        STREAM_ID,
    );
    assert_eq!(
        pair.step(),
        Err(RtmpError::Protocol {
            reason: "second publish on one connection"
        })
    );
}

#[test]
fn play_is_refused_and_the_connection_stays_up() {
    let mut pair = Pair::connected(Config::default(), Peer::new(4096, 2_500_000));
    let play = pair.peer.client.request_playback("cam".to_owned()).unwrap();
    pair.peer.apply(vec![play]);
    pair.step().unwrap();
    let refused = pair.peer.events.iter().any(|e| match e {
        ClientSessionEvent::UnknownTransactionResultReceived {
            additional_values, ..
        } => matches!(additional_values.first(), Some(Amf0Value::Object(o))
            if o.get("code") == Some(&string("NetStream.Play.Failed"))),
        _ => false,
    });
    assert!(refused, "{:?}", pair.peer.events);
    assert!(pair.events.is_empty());
    // A second createStream + publish still works (the play stream was never published).
    pair.peer.command("createStream", 7.0, vec![], 0);
    pair.peer
        .command("publish", 0.0, vec![string("k"), string("live")], 2);
    pair.step().unwrap();
    assert!(matches!(
        pair.events.as_slice(),
        [Event::PublishRequested { .. }]
    ));
}

#[test]
fn unsupported_video_ends_the_publish_with_a_clear_error() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    pair.peer.raw(
        RAW_CSID,
        9,
        STREAM_ID,
        &[0x90, b'h', b'v', b'c', b'1', 0, 0],
    );
    let err = pair.step().unwrap_err();
    assert_eq!(
        err,
        RtmpError::UnsupportedVideo {
            codec: "HEVC (enhanced RTMP)"
        }
    );
    assert!(err.to_string().contains("HEVC"), "{err}");
}

#[test]
fn unsupported_audio_warns_once_and_video_goes_on() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    for _ in 0..3 {
        pair.peer.raw(RAW_CSID, 8, STREAM_ID, &[0x72, 1, 2, 3]);
    }
    pair.peer.tag(first_tag(TagKind::Video));
    pair.step().unwrap();
    let warnings: Vec<_> = pair
        .events
        .iter()
        .filter(|e| matches!(e, Event::Warning(w) if w.contains("G.711 A-law")))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", pair.events);
    assert!(matches!(pair.media().as_slice(), [MediaEvent::Config(_)]));
    assert_eq!(pair.server.dropped_frames(), 0);
}

#[test]
fn bad_sequence_header_is_fatal() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    pair.peer
        .raw(RAW_CSID, 9, STREAM_ID, &[0x17, 0, 0, 0, 0, 9, 9]);
    assert!(matches!(
        pair.step(),
        Err(RtmpError::BadConfig {
            track: TrackKind::Video,
            ..
        })
    ));
}

#[test]
fn malformed_tags_and_early_frames_are_counted() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    let frame = [0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41];
    pair.peer.raw(RAW_CSID, 9, STREAM_ID, &frame); // before the sequence header
    pair.peer.tag(first_tag(TagKind::Video));
    pair.peer.raw(RAW_CSID, 9, STREAM_ID, &[0x17, 1]); // truncated
    pair.peer.raw(RAW_CSID, 9, STREAM_ID, &frame);
    pair.step().unwrap();
    assert_eq!(pair.server.dropped_frames(), 2);
    assert_eq!(pair.media().len(), 2); // config + one frame
}

#[test]
fn media_after_fc_unpublish_is_not_reported() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    pair.peer.command("FCUnpublish", 5.0, vec![string("k")], 0);
    pair.peer.tag(first_tag(TagKind::Video));
    pair.peer
        .command("deleteStream", 6.0, vec![Amf0Value::Number(1.0)], 0);
    pair.step().unwrap();
    assert_eq!(pair.events, vec![Event::PublishFinished]);
}

/// Arbitrary bytes after a scripted prefix.
fn fuzz_after(prefix: &[u8], data: &[u8], cuts: &[usize]) {
    let now = Instant::now();
    let mut s = Session::new(now, Config::default());
    feed(&mut s, now, prefix).unwrap();
    let mut start = 0;
    for &cut in cuts.iter().chain([data.len()].iter()) {
        let end = cut.clamp(start, data.len());
        match feed(&mut s, now, &data[start..end]) {
            Ok(()) => {}
            Err(RtmpError::Internal { during, message }) => {
                panic!("panic inside the session during {during}: {message}")
            }
            Err(_) => return,
        }
        start = end;
        while s.poll_transmit().is_some() {}
        while let Some(e) = s.poll_event() {
            if matches!(e, Event::PublishRequested { .. }) {
                let _ = s.accept_publish();
            }
        }
    }
}

fn connect_prefix() -> Vec<u8> {
    let mut obj = std::collections::HashMap::new();
    obj.insert("app".to_owned(), string("live"));
    let body = amf0(vec![
        string("connect"),
        Amf0Value::Number(1.0),
        Amf0Value::Object(obj),
    ]);
    let mut v = handshake_bytes();
    v.extend(chunks(3, 20, 0, &body, 128));
    v
}

fn chunk_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    // Headers from a small alphabet so that formats, chunk streams and lengths collide.
    let header = (
        0u8..4,
        2u8..7,
        prop_oneof![Just(0u32), Just(4), 1u32..300, Just(0xFF_FFFF)],
        prop::sample::select(vec![1u8, 3, 4, 5, 8, 9, 17, 18, 20, 22]),
        prop_oneof![Just(0u32), 1u32..100, Just(0xFF_FFFF), Just(0x100_0000)],
        proptest::collection::vec(any::<u8>(), 0..200),
    );
    proptest::collection::vec(header, 1..12).prop_map(|hs| {
        let mut v = Vec::new();
        for (fmt, csid, len, type_id, ts, payload) in hs {
            v.push((fmt << 6) | csid);
            let ts = ts.min(0xFF_FFFF).to_be_bytes();
            let len = len.to_be_bytes();
            if fmt <= 2 {
                v.extend_from_slice(&ts[1..]);
            }
            if fmt <= 1 {
                v.extend_from_slice(&len[1..]);
                v.push(type_id);
            }
            if fmt == 0 {
                v.extend_from_slice(&STREAM_ID.to_le_bytes());
            }
            v.extend_from_slice(&payload);
        }
        v
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_after_the_handshake_never_panic(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(0usize..2048, 0..6),
        connected in proptest::prelude::any::<bool>(),
    ) {
        let prefix = if connected { connect_prefix() } else { handshake_bytes() };
        let mut cuts = cuts;
        cuts.sort_unstable();
        fuzz_after(&prefix, &data, &cuts);
    }

    #[test]
    fn hostile_chunk_sequences_never_panic(data in chunk_strategy()) {
        fuzz_after(&connect_prefix(), &data, &[]);
    }
}

/// The real peer: ffmpeg publishes the test clip over TCP to a `Session` driven like the
/// shell in STYLE.md §3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_the_clip() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let clip = test_clip();
    let path = crate::flv::file::clip_path("clip-720p30-bframes-aac-6s.flv", &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/testkey"))
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg must be installed for the tests");

    let serve = async {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut s = Session::new(Instant::now(), Config::default());
        let mut buf = BytesMut::with_capacity(64 << 10);
        let mut events = Vec::new();
        let mut sent = Vec::new();
        loop {
            loop {
                let mut progress = false;
                while let Some(bytes) = s.poll_transmit() {
                    sock.write_all(&bytes).await.unwrap();
                    sent.extend_from_slice(&bytes);
                    progress = true;
                }
                while let Some(event) = s.poll_event() {
                    if matches!(event, Event::PublishRequested { .. }) {
                        s.accept_publish().unwrap();
                        progress = true;
                    }
                    events.push(event);
                }
                if !progress {
                    break;
                }
            }
            let deadline = s.poll_timeout().expect("a live session has a deadline");
            // As the shell does: frames may keep the buffer's earlier bytes alive.
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(64 << 10);
            }
            tokio::select! {
                n = sock.read_buf(&mut buf) => {
                    if n.unwrap() == 0 {
                        break;
                    }
                    s.handle_input(Instant::now(), &mut buf).unwrap();
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    s.handle_timeout(Instant::now()).unwrap();
                }
            }
        }
        (events, s.dropped_frames(), sent)
    };
    let ((events, dropped, sent), status) = tokio::time::timeout(Duration::from_secs(60), async {
        let served = serve.await;
        (served, ffmpeg.wait().await.unwrap())
    })
    .await
    .expect("ffmpeg publish finished in time");
    assert!(status.success(), "ffmpeg failed: {status}");

    assert_eq!(
        events.first(),
        Some(&Event::PublishRequested {
            app: "live".into(),
            stream_key: "testkey".into(),
            token: None,
        })
    );
    let media: Vec<&MediaEvent> = events
        .iter()
        .filter_map(|e| match e {
            Event::Media(m) => Some(m),
            _ => None,
        })
        .collect();
    let metadata = media.iter().find_map(|m| match m {
        MediaEvent::Metadata(m) => Some(m),
        _ => None,
    });
    let metadata = metadata.expect("onMetaData");
    assert_eq!((metadata.width, metadata.height), (Some(1280), Some(720)));
    assert_eq!(metadata.video_codec_id, Some(7));
    let configs = media
        .iter()
        .filter(|m| matches!(m, MediaEvent::Config(_)))
        .count();
    assert_eq!(configs, 2);
    let count = |track| {
        media
            .iter()
            .filter(|m| matches!(m, MediaEvent::Frame(f) if f.track == track))
            .count()
    };
    let direct = demux_directly(&clip.tags);
    let direct_audio = direct
        .iter()
        .filter(|m| matches!(m, MediaEvent::Frame(f) if f.track == TrackKind::Audio))
        .count();
    assert_eq!(count(TrackKind::Video), clip.video_frames);
    assert_eq!(count(TrackKind::Audio), direct_audio);
    assert_eq!(dropped, 0);
    assert_eq!(events.last(), Some(&Event::PublishFinished));

    // What we sent after S0+S1+S2 (rml_rtmp's messages, re-chunked by us) is a well-formed
    // chunk stream. ffmpeg announces no Window Acknowledgement Size when it publishes (nor
    // does librtmp, which OBS uses), so it gets no acknowledgements.
    let mut reader = rml_rtmp::chunk_io::ChunkDeserializer::new();
    let mut input = &sent[1 + 2 * 1536..];
    let mut types = Vec::new();
    while let Some(m) = reader.get_next_message(input).unwrap() {
        input = &[];
        if m.type_id == 1 {
            let size = u32::from_be_bytes(m.data[..4].try_into().unwrap());
            reader.set_max_chunk_size(size as usize).unwrap();
        }
        types.push(m.type_id);
    }
    assert_eq!(
        types[..4],
        [1, 5, 4, 6],
        "chunk size, window, stream begin, bandwidth"
    );
    assert!(types.contains(&20), "command answers");
    assert!(!types.contains(&3), "no acknowledgements");
}

/// Counts the current thread's allocations while [`allocations`] runs; otherwise the system
/// allocator. For the tests that prove a payload is copied once.
struct CountingAllocator;

#[derive(Clone, Copy, Default)]
struct Allocations {
    count: usize,
    sizes: [usize; 8],
}

thread_local! {
    static ALLOCATIONS: std::cell::Cell<Option<Allocations>> = const {
        std::cell::Cell::new(None)
    };
}

fn record_allocation(size: usize) {
    // A `const` thread local without a destructor: no allocation, usable during teardown.
    let _ = ALLOCATIONS.try_with(|a| {
        if let Some(mut x) = a.get() {
            if let Some(slot) = x.sizes.get_mut(x.count) {
                *slot = size;
            }
            x.count += 1;
            a.set(Some(x));
        }
    });
}

// SAFETY: forwards to `System` unchanged; the counter has no effect on memory.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        record_allocation(layout.size());
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        record_allocation(new_size);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: CountingAllocator = CountingAllocator;

/// Runs `f` and returns the sizes of the heap allocations it made on this thread (the first
/// eight; more are reported as zeros past them).
fn allocations<T>(f: impl FnOnce() -> T) -> (T, Vec<usize>) {
    ALLOCATIONS.set(Some(Allocations::default()));
    let out = f();
    let a = ALLOCATIONS.replace(None).expect("set above");
    let mut sizes = a.sizes[..a.count.min(8)].to_vec();
    sizes.resize(a.count, 0);
    (out, sizes)
}

/// Delivers everything the peer has queued as ONE read; returns the read buffer's addresses.
fn deliver_one_read(pair: &mut Pair) -> std::ops::Range<usize> {
    let mut buf = BytesMut::from(&pair.peer.out[..]);
    pair.peer.out.clear();
    let start = buf.as_ptr() as usize;
    let range = start..start + buf.len();
    pair.server.handle_input(pair.now, &mut buf).unwrap();
    assert!(buf.is_empty());
    pair.step().unwrap();
    range
}

fn frames(pair: &Pair) -> Vec<camstream_protocol::MediaFrame> {
    pair.media()
        .into_iter()
        .filter_map(|m| match m {
            MediaEvent::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

#[test]
fn a_large_frame_that_arrived_whole_points_into_the_read_buffer() {
    // Chunks of 64 KiB: every frame of the clip is one chunk. Large ones are split off the
    // read buffer; small ones (audio) are copied so they never pin a read block.
    let mut pair = Pair::publishing(Config::default(), Peer::new(65_536, 2_500_000), "k");
    pair.peer.tag(first_tag(TagKind::Video));
    pair.peer.tag(first_tag(TagKind::Audio));
    pair.step().unwrap();
    pair.events.clear();
    let clip = test_clip();
    let video = clip
        .tags
        .iter()
        .find(|t| t.kind == TagKind::Video && t.body.len() > chunk::SPLIT_MIN as usize + 5)
        .unwrap();
    let audio = clip.tags.iter().filter(|t| t.kind == TagKind::Audio).nth(1);
    pair.peer.tag(video);
    pair.peer.tag(audio.unwrap());
    let read = deliver_one_read(&mut pair);
    let frames = frames(&pair);
    assert_eq!(frames.len(), 2);
    let inside = |f: &camstream_protocol::MediaFrame| read.contains(&(f.data.as_ptr() as usize));
    assert!(inside(&frames[0]), "the large video frame was copied");
    assert!(
        !inside(&frames[1]),
        "the small audio frame points into the read buffer"
    );
    assert_eq!(frames[0].data, video.body.slice(5..));
    assert_eq!(frames[1].data, audio.unwrap().body.slice(2..));
}

#[test]
fn a_frame_of_several_chunks_costs_one_allocation_of_its_size() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    let key = test_clip()
        .tags
        .iter()
        .find(|t| t.kind == TagKind::Video && t.body.len() > 4 * 4096)
        .unwrap();
    pair.peer.tag(first_tag(TagKind::Video));
    // One keyframe first, so the session's queues have grown as in a running stream.
    pair.peer.tag(key);
    pair.step().unwrap();
    pair.events.clear();
    for cut in [None, Some(1000), Some(4096 + 100)] {
        pair.peer.tag(key);
        let out = std::mem::take(&mut pair.peer.out);
        let pieces = match cut {
            None => vec![&out[..]],
            Some(at) => vec![&out[..at], &out[at..]],
        };
        let mut bufs: Vec<BytesMut> = pieces.iter().map(|p| BytesMut::from(*p)).collect();
        let (result, sizes) = allocations(|| {
            bufs.iter_mut()
                .try_for_each(|buf| pair.server.handle_input(pair.now, buf))
        });
        result.unwrap();
        // The message buffer, and the reference count the bytes crate allocates when the
        // demuxer takes the first slice of a buffer that started as a `Vec`.
        assert_eq!(sizes, vec![key.body.len(), 24], "cut at {cut:?}");
        pair.step().unwrap();
        assert_eq!(frames(&pair).pop().unwrap().data, key.body.slice(5..));
    }
}

#[test]
fn set_chunk_size_in_the_same_read_as_a_large_video_message_is_honoured() {
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, 2_500_000), "k");
    pair.peer.tag(first_tag(TagKind::Video));
    pair.step().unwrap();
    let key = test_clip()
        .tags
        .iter()
        .find(|t| t.kind == TagKind::Video && t.body.len() > 5 * 4096)
        .unwrap();
    for size in [128, 1 << 20, 4096, 7] {
        pair.events.clear();
        pair.peer.set_chunk_size(size);
        pair.peer.raw(RAW_CSID, 9, STREAM_ID, &key.body);
        let read = deliver_one_read(&mut pair);
        assert_eq!(pair.server.peer_chunk_size(), size);
        let [frame] = <[_; 1]>::try_from(frames(&pair)).unwrap();
        assert_eq!(frame.data, key.body.slice(5..));
        // One chunk under the new size: not copied at all.
        let whole = size as usize >= key.body.len();
        assert_eq!(read.contains(&(frame.data.as_ptr() as usize)), whole);
    }
}

fn acks_received(pair: &Pair) -> Vec<u32> {
    pair.peer
        .events
        .iter()
        .filter_map(|e| match e {
            ClientSessionEvent::AcknowledgementReceived { bytes_received } => Some(*bytes_received),
            _ => None,
        })
        .collect()
}

#[test]
fn acknowledgements_carry_the_total_byte_count() {
    let window = 10_000;
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, window), "k");
    let mut last: Option<u32> = None;
    for tag in test_clip().tags.iter().take(120) {
        pair.peer.tag(tag);
        // One read per tag: the peer answers nothing to an acknowledgement.
        pair.step().unwrap();
        let total = pair.server.bytes_received();
        assert_eq!(total, pair.peer.transcript.len() as u64);
        let acks = acks_received(&pair);
        match acks.last().copied() {
            Some(ack) if Some(ack) != last => {
                // §5.4.3: all bytes so far, handshake included; not those since the last ack.
                assert_eq!(u64::from(ack), total);
                if let Some(prev) = last {
                    assert!(ack - prev >= window);
                }
                last = Some(ack);
            }
            _ => {
                if let Some(prev) = last {
                    assert!(
                        total - u64::from(prev) < u64::from(window),
                        "an ack was due"
                    );
                }
            }
        }
    }
    assert!(
        acks_received(&pair).len() >= 3,
        "{:?}",
        acks_received(&pair)
    );
}

#[test]
fn acknowledgement_sequence_numbers_wrap() {
    let window = 10_000;
    let mut pair = Pair::publishing(Config::default(), Peer::new(4096, window), "k");
    let skipped = u64::from(u32::MAX) - 5_000;
    pair.server.skip_received_bytes(skipped);
    for tag in test_clip().tags.iter().take(60) {
        pair.peer.tag(tag);
        pair.step().unwrap();
        if let Some(&ack) = acks_received(&pair).first() {
            let total = pair.peer.transcript.len() as u64 + skipped;
            assert!(total > u64::from(u32::MAX));
            assert_eq!(ack, total as u32);
            return;
        }
    }
    panic!("no acknowledgement");
}
