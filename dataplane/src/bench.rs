//! Entry points for `benches/`: the frame path without sockets, over an FLV file held in
//! memory. Not a stable API (hidden from docs); it exists because benchmarks are separate
//! crates and the cores are `pub(crate)`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use camstream_protocol::{MediaEvent, TrackKind};

use crate::flv::Demuxer;
use crate::hls::segmenter::{Segmenter, Settings};

/// One FLV tag.
#[derive(Debug, Clone)]
pub struct Tag {
    /// FLV tag type: 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// A video tag.
    pub video: bool,
    /// RTMP millisecond timestamp.
    pub timestamp: u32,
    /// The tag body.
    pub body: Bytes,
}

/// The benches' clip: 6 s, 1280x720 at 30 fps, H.264 high with B-frames at 2 Mbit/s, AAC
/// 128 kbit/s, made once by ffmpeg into `target/testdata` and read from there after.
///
/// # Panics
/// Without ffmpeg, or on an unreadable clip: benches have no other input.
pub fn clip() -> Vec<Tag> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/testdata");
    std::fs::create_dir_all(&dir).expect("create target/testdata");
    let path = dir.join("bench-720p30-bframes-aac-6s.flv");
    if !path.exists() {
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "6",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
                "-bf",
                "2",
            ])
            .args([
                "-g",
                "60",
                "-keyint_min",
                "60",
                "-sc_threshold",
                "0",
                "-b:v",
                "2M",
            ])
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv",
            ])
            .arg(&path)
            .status()
            .expect("ffmpeg must be installed to make the bench clip");
        assert!(status.success(), "ffmpeg failed");
    }
    read_flv(&std::fs::read(&path).expect("read clip")).expect("valid FLV")
}

/// Reads the tags of an FLV file.
///
/// # Errors
/// A description of the first structural problem found.
pub fn read_flv(data: &[u8]) -> Result<Vec<Tag>, String> {
    if data.len() < 13 || &data[..3] != b"FLV" {
        return Err("not an FLV file".into());
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let whole = Bytes::copy_from_slice(data);
    let mut pos = header_len + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let kind = data[pos] & 0x1F;
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let timestamp =
            u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let end = pos + 11 + size;
        if end > data.len() {
            return Err(format!("tag at byte {pos} runs past the end of the file"));
        }
        tags.push(Tag {
            kind,
            video: kind == 9,
            timestamp,
            body: whole.slice(pos + 11..end),
        });
        pos = end + 4;
    }
    Ok(tags)
}

/// Demuxes every tag; returns the media events.
pub fn demux(tags: &[Tag]) -> Vec<MediaEvent> {
    let mut d = Demuxer::new();
    tags.iter()
        .filter(|t| t.kind != 18)
        .filter_map(|t| {
            if t.video {
                d.handle_video(t.timestamp, t.body.clone()).ok().flatten()
            } else {
                d.handle_audio(t.timestamp, t.body.clone()).ok().flatten()
            }
        })
        .collect()
}

/// Number of media frames among events.
pub fn frames(events: &[MediaEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Frame(_)))
        .count()
}

/// Demux then MPEG-TS: every frame through the TS muxer, a segment per keyframe.
/// Returns the bytes produced.
pub fn demux_ts(tags: &[Tag]) -> usize {
    let mut d = Demuxer::new();
    let mut mux: Option<crate::ts::Muxer> = None;
    let mut out = 0;
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ev = if t.video {
            d.handle_video(t.timestamp, t.body.clone())
        } else {
            d.handle_audio(t.timestamp, t.body.clone())
        };
        let Ok(Some(MediaEvent::Frame(mut f))) = ev else {
            continue;
        };
        let m =
            mux.get_or_insert_with(|| crate::ts::Muxer::new(d.video_config(), d.audio_config()));
        f.dts += 10 * 90_000;
        match f.track {
            TrackKind::Video => {
                if f.keyframe {
                    out += m.finish_segment().len();
                    m.begin_segment();
                }
                m.write_video(&f);
            }
            TrackKind::Audio => m.write_audio(&f),
        }
    }
    out + mux.map_or(0, |mut m| m.finish_segment().len())
}

/// Demux then the full segmenter (LL-HLS fMP4 parts and TS segments on one timeline).
/// Returns the number of LL-HLS segments made.
pub fn demux_segment(tags: &[Tag]) -> usize {
    segment_clip(tags, false)
}

/// [`demux_segment`] with a classic-HLS viewer: every TS segment is also requested once
/// (TS segments are muxed on first request, so without viewers they cost nothing).
pub fn demux_segment_ts_viewed(tags: &[Tag]) -> usize {
    segment_clip(tags, true)
}

fn segment_clip(tags: &[Tag], fetch_ts: bool) -> usize {
    let mut d = Demuxer::new();
    let mut seg = Segmenter::new(
        Settings {
            window: 1_000,
            ..Settings::default()
        },
        Arc::from("bench"),
    );
    seg.start_session();
    let now = SystemTime::UNIX_EPOCH;
    let mut fetched = 0;
    let mut ts_bytes = 0;
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ev = if t.video {
            d.handle_video(t.timestamp, t.body.clone())
        } else {
            d.handle_audio(t.timestamp, t.body.clone())
        };
        if let Ok(Some(ev)) = ev {
            let changed = seg.handle_event(now, ev);
            if fetch_ts && changed.ts {
                for s in &seg.ts().segments[fetched..] {
                    ts_bytes += s.body().len();
                }
                fetched = seg.ts().segments.len();
            }
        }
    }
    seg.end_session();
    if fetch_ts {
        for s in &seg.ts().segments[fetched..] {
            ts_bytes += s.body().len();
        }
    }
    std::hint::black_box(ts_bytes);
    seg.ll().segments.len()
}

/// A relayed camera's frame path on both nodes, without the network: demux → the origin's
/// segmenter with its relay log on → every relay message encoded and decoded
/// (`camstream_protocol::relay`) → an edge segmenter following them. Compare with
/// [`demux_segment`] (serving locally) for the CPU a relay adds; QUIC (encryption, UDP) is
/// not counted. Returns the number of LL-HLS segments the edge made.
pub fn demux_segment_relay(tags: &[Tag]) -> usize {
    use bytes::BytesMut;
    use camstream_protocol::relay::{self, Message};

    let settings = Settings {
        window: 1_000,
        ..Settings::default()
    };
    let mut d = Demuxer::new();
    let mut origin = Segmenter::new(settings.clone(), Arc::from("bench"));
    origin.set_relay(true);
    let mut edge = Segmenter::new(settings, Arc::from("bench"));
    let mut wire = BytesMut::with_capacity(1 << 20);
    let now = SystemTime::UNIX_EPOCH;
    let carry = |origin: &mut Segmenter, edge: &mut Segmenter, wire: &mut BytesMut| {
        for m in origin.take_relay() {
            relay::encode(&m, wire);
        }
        while let Ok(Some(m)) = relay::decode(wire) {
            match m {
                Message::Init(i) => edge.follow_init(&i),
                Message::Frame(f) => edge.follow_frame(now, f),
                Message::Flush => edge.end_session(),
                _ => Default::default(),
            };
        }
    };
    origin.start_session();
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ev = if t.video {
            d.handle_video(t.timestamp, t.body.clone())
        } else {
            d.handle_audio(t.timestamp, t.body.clone())
        };
        if let Ok(Some(ev)) = ev {
            origin.handle_event(now, ev);
            carry(&mut origin, &mut edge, &mut wire);
        }
    }
    origin.end_session();
    carry(&mut origin, &mut edge, &mut wire);
    edge.ll().segments.len()
}

/// Demux then fMP4 only: a fragment per 6 video frames (200 ms at 30 fps) with the audio of
/// that span. Returns the bytes produced.
pub fn demux_fmp4(tags: &[Tag]) -> usize {
    use crate::fmp4::{FragmentWriter, Sample};
    let mut d = Demuxer::new();
    let mut w = FragmentWriter::new();
    let (mut video, mut audio) = (Vec::with_capacity(8), Vec::with_capacity(16));
    let mut prev: Option<camstream_protocol::MediaFrame> = None;
    let mut audio_time = 0u64;
    let (mut seq, mut out) = (0u32, 0usize);
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ev = if t.video {
            d.handle_video(t.timestamp, t.body.clone())
        } else {
            d.handle_audio(t.timestamp, t.body.clone())
        };
        let Ok(Some(MediaEvent::Frame(f))) = ev else {
            continue;
        };
        match f.track {
            TrackKind::Audio => {
                audio.push(Sample {
                    decode_time: audio_time,
                    duration: 1024,
                    cts: 0,
                    keyframe: true,
                    data: f.data,
                });
                audio_time += 1024;
            }
            TrackKind::Video => {
                if let Some(p) = prev.take() {
                    video.push(Sample {
                        decode_time: (p.dts + 900_000) as u64,
                        duration: (f.dts - p.dts).max(1) as u32,
                        cts: p.cts,
                        keyframe: p.keyframe,
                        data: p.data,
                    });
                }
                prev = Some(f);
                if video.len() == 6 {
                    seq += 1;
                    out += w.write(seq, &video, &audio).map_or(0, |c| c.len());
                    video.clear();
                    audio.clear();
                }
            }
        }
    }
    out
}

/// One camera's recording input: the parts the segmenter hands the recorder for a clip,
/// replayable as a longer stream (each pass moved on the timeline).
pub struct RecordingInput {
    parts: Vec<crate::record::RecordedFragment>,
    /// Media span of one pass (90 kHz).
    span: i64,
}

impl RecordingInput {
    /// Demuxes and segments the clip with recording on.
    ///
    /// # Panics
    /// When the clip yields no parts.
    pub fn from_tags(tags: &[Tag]) -> Self {
        let mut seg = Segmenter::new(Settings::default(), Arc::from("bench"));
        seg.set_recording(true);
        seg.start_session();
        let mut parts = Vec::new();
        let mut d = Demuxer::new();
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        for ev in demux_with(&mut d, tags) {
            seg.handle_event(now, ev);
            parts.extend(seg.take_recorded());
        }
        seg.end_session();
        parts.extend(seg.take_recorded());
        let (first, last) = (parts.first().expect("parts"), parts.last().expect("parts"));
        let span = last.media_start + last.duration - first.media_start;
        Self { parts, span }
    }

    /// Parts in one pass.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Media bytes in one pass.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.data.len() as u64).sum()
    }

    /// Media seconds in one pass.
    pub fn seconds(&self) -> f64 {
        self.span as f64 / 90_000.0
    }

    /// Part `i` of pass `k`: its header copied with times moved `k` passes on.
    fn part(&self, k: u32, i: usize) -> crate::record::RecordedFragment {
        let p = &self.parts[i];
        let shift = self.span * i64::from(k);
        let audio = p
            .audio_rate
            .map_or(0, |r| (shift as u64) * u64::from(r) / 90_000);
        let header = crate::record::shift_header(&p.data.slices()[0], shift as u64, audio)
            .expect("a fragment header");
        let mut data = crate::chunks::Chunks::with_capacity(p.data.slices().len());
        data.push(Bytes::from(header));
        for s in &p.data.slices()[1..] {
            data.push(s.clone());
        }
        let wall = std::time::Duration::from_micros((shift as u64) * 1000 / 90);
        crate::record::RecordedFragment {
            data,
            media_start: p.media_start + shift,
            wall_start: p.wall_start + wall,
            ..p.clone()
        }
    }
}

fn demux_with<'a>(d: &'a mut Demuxer, tags: &'a [Tag]) -> impl Iterator<Item = MediaEvent> + 'a {
    tags.iter().filter(|t| t.kind != 18).filter_map(move |t| {
        if t.video {
            d.handle_video(t.timestamp, t.body.clone()).ok().flatten()
        } else {
            d.handle_audio(t.timestamp, t.body.clone()).ok().flatten()
        }
    })
}

/// The recorder's I/O backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordBackend {
    /// io_uring writer threads.
    IoUring,
    /// The same writer threads with blocking `std::fs` writes.
    StdFs,
}

/// Records `cameras` cameras, each `passes` passes of `input`, into `dir` through the
/// recorder, as fast as it takes them (a full camera queue waits, nothing is dropped).
/// Returns the bytes on disk once every file is closed.
///
/// # Errors
/// The recorder could not start or the files cannot be listed.
pub fn record(
    input: &RecordingInput,
    dir: &std::path::Path,
    backend: RecordBackend,
    cameras: usize,
    passes: u32,
    threads: usize,
    fsync: Option<std::time::Duration>,
) -> std::io::Result<u64> {
    use crate::record::{Backend, Recorder, RecorderConfig};
    let mut c = RecorderConfig::new(dir.to_owned());
    c.backend = match backend {
        RecordBackend::IoUring => Backend::Auto,
        RecordBackend::StdFs => Backend::Std,
    };
    c.threads = threads;
    c.fsync = fsync;
    c.min_free = 0;
    // Nobody persists the events here: a closed channel makes the writers drop them.
    let (tx, _) = tokio::sync::mpsc::channel(1);
    let rec = Recorder::start(c, tx).map_err(std::io::Error::other)?;
    let taps: Vec<_> = (0..cameras)
        .map(|i| {
            let id = crate::auth::CameraId::from(format!("cam{i}").as_str());
            rec.set_recording(&id, true);
            rec.tap(&id)
        })
        .collect();
    for k in 0..passes {
        for i in 0..input.parts.len() {
            for tap in &taps {
                tap.submit_waiting(input.part(k, i));
            }
        }
    }
    rec.shutdown();
    if backend == RecordBackend::IoUring && rec.backend() != Some("io_uring") {
        return Err(std::io::Error::other("io_uring is not available here"));
    }
    disk_bytes(dir)
}

/// The same input written the plain way with `tokio::fs`: a task and a file per camera,
/// each part's header (rebased, like the recorder's) and payload slices written with
/// `write_all` (tokio's file has no vectored positional write; each call goes through the
/// blocking pool), `sync_data` at the fsync interval. Returns the bytes on disk.
///
/// # Errors
/// A runtime, file or write error.
pub fn record_tokio_fs(
    input: &RecordingInput,
    dir: &std::path::Path,
    cameras: usize,
    passes: u32,
    fsync: Option<std::time::Duration>,
) -> std::io::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    std::fs::create_dir_all(dir)?;
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..cameras {
            let path = dir.join(format!("cam{c}.mp4"));
            let parts: Vec<_> = (0..passes)
                .flat_map(|k| (0..input.parts.len()).map(move |i| (k, i)))
                .collect();
            let input_parts: Vec<_> = parts.iter().map(|&(k, i)| input.part(k, i)).collect();
            tasks.spawn(async move {
                let mut f = tokio::fs::File::create(&path).await?;
                let first = &input_parts[0];
                f.write_all(&first.init).await?;
                let base = first.media_start as u64;
                let audio = first.audio_rate.map_or(0, |r| base * u64::from(r) / 90_000);
                let mut header = bytes::BytesMut::new();
                let mut last_sync = std::time::Instant::now();
                for (seq, p) in input_parts.iter().enumerate() {
                    crate::record::write_header_for_bench(
                        &mut header,
                        &p.data.slices()[0],
                        base,
                        audio,
                        seq as u32 + 1,
                        p.wall_start,
                    )?;
                    f.write_all(&header.split()).await?;
                    for s in &p.data.slices()[1..] {
                        f.write_all(s).await?;
                    }
                    if fsync.is_some_and(|every| last_sync.elapsed() >= every) {
                        f.flush().await?;
                        f.sync_data().await?;
                        last_sync = std::time::Instant::now();
                    }
                }
                f.flush().await?;
                if fsync.is_some() {
                    f.sync_data().await?;
                }
                Ok::<_, std::io::Error>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(std::io::Error::other)??;
        }
        Ok::<_, std::io::Error>(())
    })?;
    disk_bytes(dir)
}

/// Bytes in every file under `dir`.
fn disk_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            total += disk_bytes(&e.path())?;
        } else if t.is_file() {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

/// What an encoder sent to publish a clip over RTMP: `rml_rtmp`'s client handshake and
/// `ClientSession` (chunk size as given, window 2.5 MB like ffmpeg), recorded once against a
/// [`crate::rtmp::Session`] and replayed by [`RtmpIngest`].
#[derive(Debug, Clone)]
pub struct RtmpPublish {
    /// Client writes up to and including `publish`.
    setup: Vec<Bytes>,
    /// Client writes once publishing: `@setDataFrame`, then one write per tag (each a whole
    /// RTMP message, as ffmpeg and OBS write them).
    media: Vec<Bytes>,
    frames: usize,
}

/// Records the publish of `tags` (script tags skipped) at `chunk_size`.
///
/// # Panics
/// When the session or the client refuses the exchange: bench support.
pub fn record_rtmp_publish(tags: &[Tag], chunk_size: u32) -> RtmpPublish {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionResult, PublishRequestType, StreamMetadata,
    };
    use rml_rtmp::time::RtmpTimestamp;

    use crate::rtmp::{Config, Event, Session};

    fn packets(results: Vec<ClientSessionResult>, out: &mut Vec<Bytes>) {
        for r in results {
            if let ClientSessionResult::OutboundResponse(p) = r {
                out.push(Bytes::from(p.bytes));
            }
        }
    }

    /// Delivers `writes` to the server, accepts a publish request, returns its answer.
    fn exchange(server: &mut Session, now: std::time::Instant, writes: &[Bytes]) -> Vec<u8> {
        for w in writes {
            let mut buf = bytes::BytesMut::from(&w[..]);
            server
                .handle_input(now, &mut buf)
                .expect("server takes the setup");
        }
        while let Some(e) = server.poll_event() {
            if matches!(e, Event::PublishRequested { .. }) {
                server.accept_publish().expect("accept");
            }
        }
        let mut back = Vec::new();
        while let Some(b) = server.poll_transmit() {
            back.extend_from_slice(&b);
        }
        back
    }

    let now = std::time::Instant::now();
    let mut server = Session::new(now, Config::default());
    let mut setup = Vec::new();
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = Bytes::from(handshake.generate_outbound_p0_and_p1().expect("c0c1"));
    let back = exchange(&mut server, now, std::slice::from_ref(&c0c1));
    setup.push(c0c1);
    let HandshakeProcessResult::Completed {
        response_bytes,
        remaining_bytes,
    } = handshake.process_bytes(&back).expect("s0s1s2")
    else {
        panic!("the handshake completes on S0+S1+S2");
    };
    assert!(remaining_bytes.is_empty());
    let c2 = Bytes::from(response_bytes);

    let mut config = ClientSessionConfig::new();
    config.chunk_size = chunk_size;
    let (mut client, results) = ClientSession::new(config).expect("client");
    let mut writes = vec![c2];
    packets(results, &mut writes);
    packets(
        vec![client.request_connection("live".into()).expect("connect")],
        &mut writes,
    );
    // connect, then createStream, then publish: each needs the server's answer.
    for step in 0..3 {
        let back = exchange(&mut server, now, &writes);
        setup.append(&mut writes);
        packets(
            client.handle_input(&back).expect("client input"),
            &mut writes,
        );
        if step == 0 {
            packets(
                vec![
                    client
                        .request_publishing("key".into(), PublishRequestType::Live)
                        .expect("publish"),
                ],
                &mut writes,
            );
        }
    }
    setup.append(&mut writes);

    let mut media = Vec::new();
    let mut metadata = StreamMetadata::new();
    metadata.video_width = Some(1280);
    metadata.video_height = Some(720);
    metadata.video_codec_id = Some(7);
    metadata.audio_codec_id = Some(10);
    packets(
        vec![client.publish_metadata(&metadata).expect("metadata")],
        &mut media,
    );
    for t in tags.iter().filter(|t| t.kind != 18) {
        let ts = RtmpTimestamp::new(t.timestamp);
        let r = if t.video {
            client.publish_video_data(t.body.clone(), ts, false)
        } else {
            client.publish_audio_data(t.body.clone(), ts, false)
        };
        packets(vec![r.expect("media packet")], &mut media);
    }
    RtmpPublish {
        setup,
        media,
        frames: frames(&demux(tags)),
    }
}

impl RtmpPublish {
    /// Media frames the publish carries.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Bytes of the media part.
    pub fn media_len(&self) -> usize {
        self.media.iter().map(Bytes::len).sum()
    }

    /// The media part as socket reads: one per encoder write (`None`, a live encoder at its
    /// own pace), or the writes joined and cut every `size` bytes (a backlog read in bulk).
    pub fn media_reads(&self, size: Option<usize>) -> Vec<Bytes> {
        let Some(size) = size else {
            return self.media.clone();
        };
        let all = Bytes::from(self.media.concat());
        (0..all.len())
            .step_by(size)
            .map(|at| all.slice(at..(at + size).min(all.len())))
            .collect()
    }

    /// A fresh session with the setup replayed and the publish accepted.
    ///
    /// # Panics
    /// When the session refuses the setup.
    pub fn start(&self) -> RtmpIngest {
        use crate::rtmp::{Config, Event, Session};
        let now = std::time::Instant::now();
        let mut session = Session::new(now, Config::default());
        for w in &self.setup {
            let mut buf = bytes::BytesMut::from(&w[..]);
            session.handle_input(now, &mut buf).expect("setup");
            while session.poll_transmit().is_some() {}
            while let Some(e) = session.poll_event() {
                if matches!(e, Event::PublishRequested { .. }) {
                    session.accept_publish().expect("accept");
                }
            }
        }
        while session.poll_transmit().is_some() {}
        RtmpIngest {
            session,
            buf: bytes::BytesMut::with_capacity(64 << 10),
            now,
        }
    }
}

/// A publishing [`crate::rtmp::Session`] fed like the ingest shell feeds it.
pub struct RtmpIngest {
    session: crate::rtmp::Session,
    buf: bytes::BytesMut,
    now: std::time::Instant,
}

impl std::fmt::Debug for RtmpIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpIngest").finish_non_exhaustive()
    }
}

impl RtmpIngest {
    /// Feeds `reads` through one reused read buffer (as the shell's `read_buf` does), drains
    /// the session after each, and keeps every media event in `out` (as a segmenter window
    /// would keep the frames alive). Returns the number of frames.
    ///
    /// # Panics
    /// When the session fails.
    pub fn run(&mut self, reads: &[Bytes], out: &mut Vec<MediaEvent>) -> usize {
        use crate::rtmp::Event;
        let mut n = 0;
        for read in reads {
            self.buf.extend_from_slice(read);
            self.session
                .handle_input(self.now, &mut self.buf)
                .expect("the session takes the publish");
            while self.session.poll_transmit().is_some() {}
            while let Some(e) = self.session.poll_event() {
                if let Event::Media(m) = e {
                    n += usize::from(matches!(m, MediaEvent::Frame(_)));
                    out.push(m);
                }
            }
        }
        n
    }
}
