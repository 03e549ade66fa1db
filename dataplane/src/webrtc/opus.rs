//! Audio for WebRTC viewers: cameras send AAC, WebRTC carries Opus. One `ffmpeg` per camera
//! watched over WebRTC decodes the camera's AAC (ADTS on stdin) and encodes Opus (Ogg on
//! stdout, a page per 20 ms packet); every session of the camera shares its packets.
//! Measured before building it: 0.7–1.0 % of a core per camera, whatever the viewers
//! (bench/results/webrtc-audio/); each viewer then only packetizes 50 small packets a second.
//!
//! Owns: the per-camera transcoder tasks (started by the first session, stopped a second
//! after the last one leaves or when the camera's stream ends), ADTS framing, reading Ogg
//! Opus, and the camera time of each packet: that of the AAC it encodes, so sessions put
//! audio and video on one clock (lip sync), whatever ffmpeg's latency. Leaves to others:
//! RTP packetization and sending (the session, str0m).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use camstream_protocol::relay::{EndReason, Message};
use camstream_protocol::{AacConfig, AudioConfig, TrackKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::auth::CameraId;
use crate::registry::Stream;

/// Opus's RTP clock (RFC 7587).
pub(crate) const OPUS_RATE: u64 = 48_000;
/// Packets a lagging session may fall behind before it skips (about 2 s).
const CAPACITY: usize = 100;
/// How often a transcoder looks for sessions still listening.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One Opus packet of a camera.
#[derive(Debug)]
pub(crate) struct OpusPacket {
    /// The camera time (90 kHz, the timeline its video shares) of the audio it encodes.
    pub(crate) camera: i64,
    /// Its first sample on the track's 48 kHz timeline (the RTP time).
    pub(crate) rtp: u64,
    /// The packet.
    pub(crate) data: Arc<[u8]>,
}

/// A camera's Opus packets; sessions hold it while they play (the transcoder stops when
/// none does).
pub(crate) struct OpusTrack {
    tx: broadcast::Sender<Arc<OpusPacket>>,
}

impl OpusTrack {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<OpusPacket>> {
        self.tx.subscribe()
    }
}

/// The node's audio transcoders, one per camera with WebRTC sessions.
pub(crate) struct Audio {
    ffmpeg: PathBuf,
    tracks: Mutex<HashMap<CameraId, Weak<OpusTrack>>>,
    tasks: Mutex<JoinSet<()>>,
    stop: CancellationToken,
}

impl Audio {
    pub(crate) fn new(ffmpeg: PathBuf, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            ffmpeg,
            tracks: Mutex::default(),
            tasks: Mutex::new(JoinSet::new()),
            stop,
        })
    }

    /// The Opus track of `stream` (a camera or a rendition), starting its transcoder for
    /// the first session; `None` when the stream has no AAC audio.
    pub(crate) fn track(self: &Arc<Self>, stream: &Arc<Stream>) -> Option<Arc<OpusTrack>> {
        let (_, codecs, _) = stream.describe();
        if !codecs.iter().any(|c| c.starts_with("mp4a.")) {
            return None;
        }
        let camera = stream.camera_id().clone();
        let mut tracks = self.tracks.lock().expect("audio tracks poisoned");
        if let Some(t) = tracks.get(&camera).and_then(Weak::upgrade) {
            return Some(t);
        }
        let (tx, _) = broadcast::channel(CAPACITY);
        let track = Arc::new(OpusTrack { tx: tx.clone() });
        tracks.insert(camera.clone(), Arc::downgrade(&track));
        drop(tracks);
        let run = Transcoder {
            audio: self.clone(),
            camera,
            stream: Arc::downgrade(stream),
            track: Arc::downgrade(&track),
            tx,
        };
        let mut tasks = self.tasks.lock().expect("audio tasks poisoned");
        while tasks.try_join_next().is_some() {}
        tasks.spawn(run.run());
        Some(track)
    }
}

struct Transcoder {
    audio: Arc<Audio>,
    camera: CameraId,
    stream: Weak<Stream>,
    track: Weak<OpusTrack>,
    tx: broadcast::Sender<Arc<OpusPacket>>,
}

impl Transcoder {
    async fn run(self) {
        metrics::gauge!("camstream_webrtc_audio_transcoders").increment(1.0);
        let why = self.transcode().await;
        metrics::gauge!("camstream_webrtc_audio_transcoders").decrement(1.0);
        info!(camera_id = %self.camera, why, "webrtc audio transcoder ended");
        let mut tracks = self.audio.tracks.lock().expect("audio tracks poisoned");
        // A new session may have started a new transcoder meanwhile: only a dead entry goes.
        if tracks
            .get(&self.camera)
            .is_some_and(|t| t.strong_count() == 0 || t.ptr_eq(&self.track))
        {
            tracks.remove(&self.camera);
        }
    }

    async fn transcode(&self) -> &'static str {
        let Some(stream) = self.stream.upgrade() else {
            return "the stream is gone";
        };
        let feed =
            match tokio::time::timeout(Duration::from_secs(5), stream.subscribe_relay()).await {
                Ok(Ok(f)) => f,
                _ => return "no feed",
            };
        drop(stream);
        let Some(aac) = feed.gop.iter().find_map(|m| match m {
            Message::Init(i) => match &i.audio {
                Some(AudioConfig::Aac(c)) => Some(c.clone()),
                _ => None,
            },
            _ => None,
        }) else {
            return "no AAC audio";
        };
        let Some(mut adts) = Adts::new(&aac) else {
            return "AAC without an ADTS sampling index";
        };
        let mut child = match Command::new(&self.audio.ffmpeg)
            .args(ffmpeg_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                warn!(camera_id = %self.camera, error = %e, "cannot start ffmpeg for WebRTC audio");
                return "ffmpeg did not start";
            }
        };
        info!(camera_id = %self.camera, pid = child.id(), "webrtc audio transcoder started");
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return "no pipes";
        };
        let mut ogg = OggReader::default();
        let mut clock = Clock::new(aac.sample_rate);
        let mut live = feed.live;
        // From the live point: the GOP's audio (up to a segment old) would reach the
        // browser in one burst and sit in its jitter buffer (measured: ~1 s held at the
        // start, draining over many seconds), while the video joins at the live point.
        let mut pending: VecDeque<Message> = VecDeque::new();
        drop(feed.gop);
        let mut out = BytesMut::with_capacity(16 << 10);
        let mut check = tokio::time::interval(CHECK_EVERY);
        let mut frame = Vec::with_capacity(2048);
        loop {
            for msg in pending.drain(..) {
                match msg {
                    Message::Frame(f) if f.frame.track == TrackKind::Audio => {
                        frame.clear();
                        adts.frame(&f.frame.data, &mut frame);
                        clock.arrived(f.frame.dts);
                        if stdin.write_all(&frame).await.is_err() {
                            return "ffmpeg stopped reading";
                        }
                    }
                    Message::End(e) if e.reason == EndReason::Finished => {
                        return "the camera's stream ended";
                    }
                    _ => {}
                }
            }
            tokio::select! {
                m = live.recv() => match m {
                    Ok(m) => pending.push_back(m),
                    Err(RecvError::Lagged(n)) => debug!(camera_id = %self.camera, missed = n, "webrtc audio lagged"),
                    Err(RecvError::Closed) => return "the camera's stream ended",
                },
                r = stdout.read_buf(&mut out) => match r {
                    Ok(0) | Err(_) => return "ffmpeg exited",
                    Ok(_) => {
                        for packet in ogg.push(&mut out) {
                            let samples = packet_samples(&packet);
                            let (rtp, camera) = clock.packet(ogg.pre_skip, samples);
                            // No receiver now is fine: sessions come and go.
                            let data = Arc::from(&packet[..]);
                            let _ = self.tx.send(Arc::new(OpusPacket { camera, rtp, data }));
                        }
                    }
                },
                _ = check.tick() => {
                    if self.track.strong_count() == 0 {
                        return "no WebRTC session left";
                    }
                }
                () = self.audio.stop.cancelled() => return "shutdown",
            }
        }
    }
}

/// ffmpeg: ADTS AAC in, Opus 64 kbit/s in Ogg out, one 20 ms packet per page, flushed at
/// once (the Ogg muxer's default page is 1 s: that much latency).
fn ffmpeg_args() -> Vec<&'static str> {
    vec![
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-fflags",
        "+nobuffer",
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
        "-f",
        "aac",
        "-i",
        "pipe:0",
        "-vn",
        "-c:a",
        "libopus",
        "-b:a",
        "64k",
        "-application",
        "lowdelay",
        "-frame_duration",
        "20",
        "-ar",
        "48000",
        "-f",
        "ogg",
        "-page_duration",
        "20000",
        "-flush_packets",
        "1",
        "pipe:1",
    ]
}

/// Maps the Opus output back to the camera times of the AAC input.
struct Clock {
    /// Input sample rate.
    rate: u64,
    /// Camera time (90 kHz) of each AAC frame written, from frame `first` on.
    arrivals: VecDeque<i64>,
    first: u64,
    /// Output samples (48 kHz) before the next packet.
    out: u64,
}

impl Clock {
    fn new(rate: u32) -> Self {
        Self {
            rate: u64::from(rate.max(1)),
            arrivals: VecDeque::new(),
            first: 0,
            out: 0,
        }
    }

    fn arrived(&mut self, dts: i64) {
        self.arrivals.push_back(dts);
    }

    /// The RTP time and camera time (90 kHz) of the next packet, `samples` long (48 kHz),
    /// given the encoder's pre-skip.
    fn packet(&mut self, pre_skip: u64, samples: u64) -> (u64, i64) {
        let rtp = self.out;
        self.out += samples;
        // Input time of the packet's first sample, in input samples.
        let t = rtp.saturating_sub(pre_skip) * self.rate / OPUS_RATE;
        let frame = t / u64::from(AacConfig::SAMPLES_PER_FRAME);
        let within = t % u64::from(AacConfig::SAMPLES_PER_FRAME);
        // Frames before the one playing now are not needed again.
        while self.first + 1 < frame && self.arrivals.len() > 1 {
            self.arrivals.pop_front();
            self.first += 1;
        }
        let index = usize::try_from(frame.saturating_sub(self.first)).unwrap_or(usize::MAX);
        let base = self
            .arrivals
            .get(index)
            .or(self.arrivals.back())
            .copied()
            .unwrap_or(0);
        let at = base + i64::try_from(within * 90_000 / self.rate).unwrap_or(0);
        (rtp, at)
    }
}

/// ADTS headers for raw AAC frames (ISO/IEC 13818-7 §6.2; what ffmpeg's `aac` demuxer reads).
struct Adts {
    head: [u8; 2],
}

impl Adts {
    /// `None` for an explicit sampling rate (ADTS has only the index).
    fn new(c: &AacConfig) -> Option<Self> {
        if c.sampling_frequency_index > 12 {
            return None;
        }
        // ADTS profiles are the first four object types; HE-AAC (SBR, PS) goes as LC and
        // the decoder finds the extension in-band.
        let profile = match c.object_type {
            1..=4 => c.object_type - 1,
            _ => 1,
        };
        let ch = c.channel_config & 7;
        Some(Self {
            head: [
                (profile << 6) | (c.sampling_frequency_index << 2) | (ch >> 2),
                (ch & 3) << 6,
            ],
        })
    }

    /// Appends the 7-byte header (no CRC) and the frame.
    fn frame(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let len = (data.len() + 7).min(0x1FFF);
        out.extend_from_slice(&[
            0xFF,
            0xF1,
            self.head[0],
            self.head[1] | ((len >> 11) & 3) as u8,
            ((len >> 3) & 0xFF) as u8,
            (((len & 7) << 5) as u8) | 0x1F,
            0xFC,
        ]);
        out.extend_from_slice(&data[..len - 7]);
    }
}

/// Reads Ogg pages (RFC 3533) and yields the Opus audio packets (RFC 7845: the first two
/// packets are the `OpusHead` and `OpusTags` headers).
#[derive(Default)]
pub(crate) struct OggReader {
    /// A packet continued on the next page.
    partial: Vec<u8>,
    /// Header packets seen.
    headers: u8,
    /// From `OpusHead`: samples (48 kHz) the decoder drops at the start.
    pub(crate) pre_skip: u64,
}

/// Largest Ogg page header: 27 bytes and 255 lacing values.
const MAX_PAGE_HEADER: usize = 27 + 255;

impl OggReader {
    /// Consumes whole pages from `buf`; returns the audio packets they complete.
    pub(crate) fn push(&mut self, buf: &mut BytesMut) -> Vec<Bytes> {
        let mut packets = Vec::new();
        loop {
            if buf.len() < 27 {
                return packets;
            }
            if &buf[..4] != b"OggS" {
                // Lost sync (never with ffmpeg): look for the next capture pattern.
                let skip = buf[1..]
                    .windows(4)
                    .position(|w| w == b"OggS")
                    .map_or(buf.len().saturating_sub(3), |p| p + 1);
                buf.advance(skip);
                continue;
            }
            let segments = usize::from(buf[26]);
            if buf.len() < 27 + segments {
                return packets;
            }
            let lacing = &buf[27..27 + segments];
            let body: usize = lacing.iter().map(|&l| usize::from(l)).sum();
            if buf.len() < 27 + segments + body {
                return packets;
            }
            let continued = buf[5] & 1 != 0;
            if !continued {
                self.partial.clear();
            }
            let lacing = lacing.to_vec();
            let mut at = 27 + segments;
            for l in lacing {
                let l = usize::from(l);
                self.partial.extend_from_slice(&buf[at..at + l]);
                at += l;
                if l < 255 {
                    let packet = std::mem::take(&mut self.partial);
                    self.packet(packet, &mut packets);
                }
            }
            buf.advance(at);
            debug_assert!(at <= MAX_PAGE_HEADER + 255 * 255);
        }
    }

    fn packet(&mut self, packet: Vec<u8>, out: &mut Vec<Bytes>) {
        match self.headers {
            0 => {
                if packet.len() >= 12 && &packet[..8] == b"OpusHead" {
                    self.pre_skip = u64::from(u16::from_le_bytes([packet[10], packet[11]]));
                }
                self.headers = 1;
            }
            1 => self.headers = 2,
            _ if !packet.is_empty() => out.push(Bytes::from(packet)),
            _ => {}
        }
    }
}

/// Samples (48 kHz) in an Opus packet, from its TOC byte (RFC 6716 §3.1).
pub(crate) fn packet_samples(packet: &[u8]) -> u64 {
    let Some(&toc) = packet.first() else {
        return 0;
    };
    let config = toc >> 3;
    // Frame size in 48 kHz samples: SILK, hybrid, CELT configurations.
    let frame: u64 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(1, |b| u64::from(b & 0x3F)),
    };
    frame * frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lc_44100_stereo() -> AacConfig {
        AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).expect("AAC-LC 44.1 kHz stereo")
    }

    #[test]
    fn adts_headers_carry_profile_rate_channels_and_length() {
        let mut adts = Adts::new(&lc_44100_stereo()).unwrap();
        let mut out = Vec::new();
        adts.frame(&[0xAB; 100], &mut out);
        // 0xFFF1: sync, MPEG-4, no CRC. Profile LC (1), rate index 4, stereo, length 107.
        assert_eq!(&out[..7], &[0xFF, 0xF1, 0x50, 0x80, 0x0D, 0x7F, 0xFC]);
        assert_eq!(out.len(), 107);
        assert!(out[7..].iter().all(|&b| b == 0xAB));
    }

    fn page(flags: u8, lacing: &[u8], body: &[u8]) -> Vec<u8> {
        let mut p = b"OggS".to_vec();
        p.extend_from_slice(&[0, flags]);
        p.extend_from_slice(&[0; 8 + 4 + 4 + 4]);
        p.push(lacing.len() as u8);
        p.extend_from_slice(lacing);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn ogg_pages_yield_the_audio_packets_after_the_headers() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        let mut stream = page(2, &[head.len() as u8], &head);
        stream.extend(page(0, &[8], b"OpusTags"));
        // A 300-byte packet split over two pages, then a small one.
        let big = vec![0x7C; 300];
        stream.extend(page(0, &[255], &big[..255]));
        stream.extend(page(
            1,
            &[45, 3],
            &[&big[255..], &[0xFC, 1, 2][..]].concat(),
        ));
        let mut reader = OggReader::default();
        // Fed in small pieces, as a pipe delivers it.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            buf.extend_from_slice(chunk);
            got.extend(reader.push(&mut buf));
        }
        assert_eq!(reader.pre_skip, 312);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), 300);
        assert_eq!(&got[1][..], &[0xFC, 1, 2]);
        assert!(buf.is_empty());
    }

    #[test]
    fn packet_durations_come_from_the_toc() {
        // CELT 20 ms, one frame (what ffmpeg's libopus sends with -frame_duration 20).
        assert_eq!(packet_samples(&[0xFC]), 960);
        assert_eq!(packet_samples(&[0xF8 | 1]), 1920);
        // SILK 60 ms.
        assert_eq!(packet_samples(&[(3 << 3)]), 2880);
        // Code 3 with 3 frames of CELT 10 ms.
        assert_eq!(packet_samples(&[(30 << 3) | 3, 3]), 1440);
        assert_eq!(packet_samples(&[]), 0);
    }

    #[test]
    fn a_packet_takes_the_camera_time_of_the_aac_it_encodes() {
        let t0 = 900_000;
        let mut clock = Clock::new(48_000);
        // 1024 samples at 48 kHz: 1920 ticks apart (a gap after the fifth).
        for i in 0..10i64 {
            clock.arrived(t0 + i * 1920 + if i >= 5 { 9_000 } else { 0 });
        }
        // The pre-skip comes first: the first packet starts before the input.
        let (rtp, at) = clock.packet(312, 960);
        assert_eq!((rtp, at), (0, t0));
        // Input sample 648: frame 0, 13.5 ms in.
        let (rtp, at) = clock.packet(312, 960);
        assert_eq!(rtp, 960);
        assert_eq!(at, t0 + 1215);
        // Input sample 1608: frame 1, 584 samples in.
        let (_, at) = clock.packet(312, 960);
        assert_eq!(at, t0 + 1920 + 1095);
        // Frame 5 is after the camera's gap.
        for _ in 0..2 {
            clock.packet(312, 960);
        }
        let (_, at) = clock.packet(312, 960);
        // rtp 4800 - 312 = 4488: frame 4, 392 in.
        assert_eq!(at, t0 + 4 * 1920 + 735);
        let (_, at) = clock.packet(312, 960);
        // 5448: frame 5 (after the gap), 328 in.
        assert_eq!(at, t0 + 5 * 1920 + 9_000 + 615);
    }
}
