//! One viewer's session task: drives its str0m `Rtc` (datagrams, timeouts, media writes)
//! and its [`Feed`] (relay messages in, access units out), following str0m's contract:
//! every mutation is followed by a drain of `poll_output` to its timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camstream_protocol::relay::Message;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::Packet;
use super::feed::Feed;
use super::opus::{OpusPacket, OpusTrack};
use super::udp::{Batch, Sender};
use crate::auth::CameraId;

/// A viewer further behind the camera than this many relay messages (about 2 s of 30 fps
/// video with AAC audio) skips to the next keyframe instead of catching up late.
const MAX_BEHIND: usize = 150;
/// PLI/FIR answered at most this often (a replay is a GOP's worth of data).
const REPLAY_EVERY: Duration = Duration::from_millis(500);
/// A connected session marks its stream seen this often (viewer counting; a cluster edge
/// stops pulling a camera nobody watched for its idle timeout, 30 s by default).
const SEEN_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Session {
    pub(super) id: Arc<str>,
    pub(super) camera: CameraId,
    pub(super) rtc: Rtc,
    pub(super) feed: Feed,
    pub(super) live: broadcast::Receiver<Message>,
    /// The stream played, marked seen by this viewer once a second while connected.
    pub(super) stream: std::sync::Weak<crate::registry::Stream>,
    /// The camera's Opus packets (held: the transcoder runs while sessions hold it).
    pub(super) audio: Option<(Arc<OpusTrack>, broadcast::Receiver<Arc<OpusPacket>>)>,
    pub(super) inbox: mpsc::Receiver<Packet>,
    pub(super) stop: CancellationToken,
    pub(super) sender: Arc<Sender>,
    pub(super) candidate: SocketAddr,
    pub(super) connect_timeout: Duration,
    pub(super) idle_timeout: Duration,
}

/// The next Opus packet; pends forever without audio. A session that fell behind skips
/// what it missed.
async fn recv_audio(
    rx: Option<&mut broadcast::Receiver<Arc<OpusPacket>>>,
) -> Option<Arc<OpusPacket>> {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(p) => Some(p),
        Err(broadcast::error::RecvError::Lagged(_)) => None,
        Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
    }
}

/// Why a session ended (logged, and counted by reason).
#[derive(Debug, Clone, Copy)]
enum End {
    Deleted,
    ConnectTimeout,
    Idle,
    Disconnected,
    Feed,
    Rtc,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Deleted => "deleted",
            End::ConnectTimeout => "connect_timeout",
            End::Idle => "idle",
            End::Disconnected => "disconnected",
            End::Feed => "feed",
            End::Rtc => "rtc",
        }
    }
}

struct State {
    video: Option<(Mid, Option<Pt>)>,
    audio: Option<(Mid, Option<Pt>)>,
    connected: bool,
    last_replay: Option<Instant>,
    /// Set in a drain: replay from the latest keyframe (`Some(true)`: a keyframe request,
    /// `Some(false)`: the connection came up).
    replay: Option<bool>,
    bytes: u64,
    /// Datagrams gathered for one GSO send (a frame's packets).
    batch: Batch,
    /// The wall clock both tracks' sender reports use.
    sync: Sync,
}

/// One wall clock for a session's audio and video. A video frame's is when it is written
/// (as it arrives); an audio packet's is the latest video frame's plus the camera-time
/// difference (the camera's timestamps, 90 kHz, which audio and video share). The sender
/// reports (RTP time ↔ NTP) then tell the browser how to line the tracks up (lip sync),
/// whatever the audio's delay through ffmpeg's Opus encoder.
#[derive(Default)]
struct Sync {
    /// The newest video frame written: when, and its presentation time on the camera's
    /// timeline. Replayed frames (older) do not move it.
    video: Option<(Instant, i64)>,
}

impl Sync {
    fn video(&mut self, at: Instant, pts: i64) {
        if self.video.is_none_or(|(_, last)| pts > last) {
            self.video = Some((at, pts));
        }
    }

    fn audio(&self, camera: i64) -> Instant {
        let Some((at, pts)) = self.video else {
            return Instant::now();
        };
        let d = Duration::from_micros(camera.abs_diff(pts) * 1_000 / 90);
        if camera >= pts {
            at + d
        } else {
            at.checked_sub(d).unwrap_or(at)
        }
    }
}

impl Session {
    pub(super) async fn run(mut self) {
        let started = Instant::now();
        let mut last_rx = started;
        // The viewer's address (from its datagrams) and when the stream last saw it.
        let mut viewer: Option<std::net::IpAddr> = None;
        let mut seen = started;
        let mut st = State {
            video: None,
            audio: None,
            connected: false,
            last_replay: None,
            replay: None,
            bytes: 0,
            batch: Batch::default(),
            sync: Sync::default(),
        };
        // Entered only around its log lines: a span entered here would stay entered across
        // every `.await` below (wrongly tagging whatever else runs on the thread), and
        // entering it per poll goes through the `EnvFilter`'s shared lock (see `ingest`).
        let span = tracing::info_span!("whep", session = %self.id, camera_id = %self.camera);
        let end = loop {
            let deadline = match self.drain(&mut st).await {
                Ok(t) => t,
                Err(e) => break e,
            };
            if let Some(requested) = st.replay.take() {
                // Connected, or a keyframe request, in the drain: answer it as its own
                // mutation.
                if requested {
                    self.feed.keyframe_request();
                } else {
                    self.feed.start();
                }
                if let Err(e) = self.write_queued(&mut st).await {
                    break e;
                }
                continue;
            }
            let now = Instant::now();
            if !st.connected && now.duration_since(started) > self.connect_timeout {
                break End::ConnectTimeout;
            }
            if st.connected && now.duration_since(last_rx) > self.idle_timeout {
                break End::Idle;
            }
            if st.connected
                && let Some(ip) = viewer
                && now.duration_since(seen) >= SEEN_EVERY
            {
                seen = now;
                if let Some(stream) = self.stream.upgrade() {
                    stream.saw_viewer(ip, now);
                }
            }
            let wake = deadline.min(now + Duration::from_secs(1));
            tokio::select! {
                () = self.stop.cancelled() => break End::Deleted,
                p = self.inbox.recv() => {
                    let Some(p) = p else { break End::Deleted };
                    last_rx = p.at;
                    viewer = Some(p.source.ip());
                    let Ok(contents) = p.data[..].try_into() else { continue };
                    let input = Input::Receive(p.at, Receive {
                        proto: Protocol::Udp,
                        source: p.source,
                        destination: self.candidate,
                        contents,
                    });
                    if self.rtc.handle_input(input).is_err() {
                        break End::Rtc;
                    }
                }
                m = self.live.recv() => {
                    match m {
                        Ok(msg) => {
                            if self.live.len() > MAX_BEHIND {
                                self.feed.behind();
                            }
                            if let Err(e) = self.feed.handle_message(msg) {
                                span.in_scope(|| tracing::info!(error = %e, "webrtc feed ended"));
                                break End::Feed;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(session = %self.id, missed = n, "webrtc viewer lagged");
                            self.feed.behind();
                        }
                        Err(broadcast::error::RecvError::Closed) => break End::Feed,
                    }
                    if st.connected
                        && let Err(e) = self.write_queued(&mut st).await
                    {
                        break e;
                    }
                }
                p = recv_audio(self.audio.as_mut().map(|(_, rx)| rx)) => {
                    if let Some(p) = p
                        && st.connected
                        && let Err(e) = self.write_audio(&mut st, &p).await
                    {
                        break e;
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    if self.rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                        break End::Rtc;
                    }
                }
            }
        };
        self.rtc.disconnect();
        let _ = self.drain(&mut st).await;
        let stats = self.feed.stats();
        metrics::counter!("camstream_webrtc_sessions_ended_total", "reason" => end.as_str())
            .increment(1);
        metrics::counter!("camstream_webrtc_keyframe_skips_total").increment(stats.skips);
        metrics::counter!("camstream_webrtc_replays_total").increment(stats.replays);
        span.in_scope(|| {
            tracing::info!(
                reason = end.as_str(),
                secs = started.elapsed().as_secs_f64(),
                frames = stats.frames,
                skipped = stats.skipped,
                replays = stats.replays,
                bytes = st.bytes,
                "webrtc session ended"
            );
        });
    }

    /// Writes every access unit the feed has queued, draining after each write.
    async fn write_queued(&mut self, st: &mut State) -> Result<(), End> {
        loop {
            let Some((mid, pt)) = st.video else {
                return Ok(());
            };
            let pt = match pt {
                Some(pt) => pt,
                None => {
                    let Some(pt) = self.choose_pt(mid) else {
                        return Err(End::Rtc);
                    };
                    st.video = Some((mid, Some(pt)));
                    pt
                }
            };
            let Some((rtp_time, pts, data)) = self.feed.poll_unit() else {
                return Ok(());
            };
            let wallclock = Instant::now();
            st.sync.video(wallclock, pts);
            let Some(writer) = self.rtc.writer(mid) else {
                return Err(End::Rtc);
            };
            let t = MediaTime::from_90khz(rtp_time as u64);
            if let Err(e) = writer.write(pt, wallclock, t, data) {
                tracing::debug!(session = %self.id, error = %e, "webrtc write");
                return Err(End::Rtc);
            }
            self.drain(st).await?;
        }
    }

    /// Writes one Opus packet (dropped until the viewer's audio m-line is known).
    async fn write_audio(&mut self, st: &mut State, p: &OpusPacket) -> Result<(), End> {
        let Some((mid, pt)) = st.audio else {
            return Ok(());
        };
        let pt = match pt {
            Some(pt) => pt,
            None => {
                let Some(writer) = self.rtc.writer(mid) else {
                    return Ok(());
                };
                let Some(pt) = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
                else {
                    // Audio negotiated without Opus: nothing to send on it.
                    st.audio = None;
                    return Ok(());
                };
                st.audio = Some((mid, Some(pt)));
                pt
            }
        };
        let Some(writer) = self.rtc.writer(mid) else {
            return Ok(());
        };
        let t = MediaTime::new(p.rtp, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        let wallclock = st.sync.audio(p.camera);
        if let Err(e) = writer.write(pt, wallclock, t, p.data.clone()) {
            tracing::debug!(session = %self.id, error = %e, "webrtc audio write");
            return Err(End::Rtc);
        }
        self.drain(st).await.map(|_| ())
    }

    /// The negotiated H.264 payload type, packetization mode 1 (FU-A) preferred: access
    /// units are larger than a datagram. The profile is not matched: browsers' decoders
    /// take any profile they offer in any of their H.264 payload types.
    fn choose_pt(&mut self, mid: Mid) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let h264 = || {
            writer
                .payload_params()
                .filter(|p| p.spec().codec == Codec::H264)
        };
        h264()
            .find(|p| p.spec().format.packetization_mode == Some(1))
            .or_else(|| h264().next())
            .map(|p| p.pt())
    }

    /// Drains `poll_output` to its timeout: sends transmits, handles events.
    async fn drain(&mut self, st: &mut State) -> Result<Instant, End> {
        let before = st.bytes;
        let r = self.drain_inner(st).await;
        // What the drain gathered goes out now, before the task waits for anything.
        self.flush(&mut st.batch).await;
        // Counted once per drain, not per datagram (a registry lookup each).
        metrics::counter!("camstream_webrtc_bytes_sent_total").increment(st.bytes - before);
        r
    }

    /// Sends the gathered datagrams (one `sendmsg` with GSO).
    async fn flush(&self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        if let Err(e) = self.sender.send(batch).await {
            tracing::debug!(session = %self.id, error = %e, datagrams = n, "webrtc send");
        }
    }

    /// `poll_output` to its timeout; transmits are gathered in `st.batch` (sent when the
    /// next one does not fit, and by [`Session::drain`] at the end).
    async fn drain_inner(&mut self, st: &mut State) -> Result<Instant, End> {
        loop {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(session = %self.id, error = %e, "webrtc poll");
                    return Err(End::Rtc);
                }
            };
            match out {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    st.bytes += t.contents.len() as u64;
                    let max = self.sender.max_segments();
                    if !st.batch.fits(t.destination, t.contents.len(), max) {
                        self.flush(&mut st.batch).await;
                    }
                    st.batch.push(t.destination, &t.contents);
                }
                Output::Event(e) => match e {
                    Event::MediaAdded(m) if m.kind == MediaKind::Video && st.video.is_none() => {
                        st.video = Some((m.mid, None));
                    }
                    Event::MediaAdded(m) if m.kind == MediaKind::Audio && st.audio.is_none() => {
                        st.audio = Some((m.mid, None));
                    }
                    Event::Connected => {
                        st.connected = true;
                        tracing::debug!(session = %self.id, "webrtc connected");
                        // Start from the latest keyframe now (frames written before the
                        // connection are dropped by str0m): a replay at the live point.
                        st.replay = Some(false);
                    }
                    Event::KeyframeRequest(_) => {
                        let now = Instant::now();
                        if st.connected
                            && st
                                .last_replay
                                .is_none_or(|t| now.duration_since(t) >= REPLAY_EVERY)
                        {
                            st.last_replay = Some(now);
                            st.replay = Some(true);
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                    | Event::Closed => return Err(End::Disconnected),
                    _ => {}
                },
            }
        }
    }
}
