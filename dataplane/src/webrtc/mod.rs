//! WebRTC playback (WHEP, RFC 9725): one UDP socket per node shared by every viewer,
//! ICE-lite, H.264 passthrough from the camera's relay feed, AAC audio as Opus ([`opus`]).
//!
//! Owns: the socket and the demultiplexing of its datagrams to sessions (by the STUN
//! USERNAME of the first binding request, then by source address), the session table and
//! its cap, per-session tasks driving a str0m `Rtc` (sans-IO) and a [`feed::Feed`] (our
//! sans-IO core), metrics. Leaves to others: HTTP signalling (`http::whep`), who may watch
//! (`auth`), where frames come from (`registry`, the relay log), WebRTC itself (str0m).
//! See docs/webrtc.md for the protocol, flags and decisions.

mod feed;
mod h264;
pub(crate) mod opus;
mod sdp;
mod session;
mod source;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::ice::StunMessage;
use str0m::rtp::Extension;
use str0m::{Candidate, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) use feed::FeedError;
pub(crate) use source::{Fallback, Rendition, fallback};

use crate::auth::CameraId;
use crate::registry::Stream;

/// WebRTC settings (`--webrtc-*` flags).
#[derive(Debug, Clone)]
pub struct WebrtcConfig {
    /// UDP address of the node's one WebRTC socket. Default `0.0.0.0:8189`.
    pub addr: SocketAddr,
    /// The address advertised in the ICE candidate instead of the bound one (a node behind
    /// NAT or with an unspecified bind address). Default: the bound address, or the
    /// address of the interface with the default route when bound to `0.0.0.0`.
    pub public_ip: Option<IpAddr>,
    /// Most concurrent WebRTC sessions on this node; more get 503. Default 500.
    pub max_sessions: usize,
    /// A session whose ICE and DTLS have not completed this long after the answer ends.
    /// Default 15 s.
    pub connect_timeout: Duration,
    /// A connected session that received nothing from its viewer (STUN consent checks,
    /// RTCP) this long ends. Default 15 s.
    pub idle_timeout: Duration,
    /// Send a frame's datagrams to a viewer in one `sendmsg` (UDP GSO). Default on.
    pub gso: bool,
    /// Camera audio (AAC) to viewers as Opus, one `ffmpeg` per camera watched. Default on.
    pub audio: bool,
    /// The ffmpeg binary for audio. Default `ffmpeg` (from `PATH`).
    pub ffmpeg: std::path::PathBuf,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8189)),
            public_ip: None,
            max_sessions: 500,
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(15),
            gso: true,
            audio: true,
            ffmpeg: std::path::PathBuf::from("ffmpeg"),
        }
    }
}

/// Why a WHEP offer was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OfferError {
    /// The node serves its maximum of sessions.
    #[error("this node serves its maximum of {0} WebRTC sessions")]
    Full(usize),
    /// The offer is not SDP str0m can read, or cannot be answered.
    #[error("bad SDP offer: {0}")]
    BadSdp(String),
    /// The offer has no video m-line to receive on.
    #[error("the offer has no video m-line (add a recvonly video transceiver)")]
    NoVideo,
    /// The camera cannot be played over WebRTC.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// The camera has no GOP to start from in time.
    #[error("the camera has no picture to start from yet")]
    NotReady,
    /// The camera uses B-frames and its ABR renditions, which WebRTC plays instead, have no
    /// picture yet (the transcoder is starting).
    #[error(
        "the camera's H.264 uses B-frames, so WebRTC plays its ABR rendition, which is \
         starting; try again in a few seconds"
    )]
    RenditionStarting,
}

/// An offer that passed the checks that need no camera (room on the node, parsable SDP,
/// a video m-line): [`Node::check_offer`], then [`Node::answer`].
pub(crate) struct Offer<'a> {
    text: &'a str,
    sdp: SdpOffer,
}

/// A viewer's join point on a stream: [`Node::join`], then [`Node::answer`].
pub(crate) struct Joined {
    feed: feed::Feed,
    live: tokio::sync::broadcast::Receiver<camstream_protocol::relay::Message>,
    /// The stream played: a connected session counts as its viewer (as playlist requests
    /// do), which keeps a cluster edge pulling it and shows in the camera's viewer count.
    stream: std::sync::Weak<Stream>,
}

/// A datagram for a session.
pub(crate) struct Packet {
    at: Instant,
    source: SocketAddr,
    data: Bytes,
}

struct Entry {
    camera: CameraId,
    ufrag: String,
    stop: CancellationToken,
}

/// What the socket reader needs to route datagrams.
enum Route {
    Add {
        ufrag: String,
        tx: mpsc::Sender<Packet>,
    },
}

/// The node's WebRTC side: its socket, sessions and their tasks.
pub(crate) struct Node {
    config: WebrtcConfig,
    socket: Arc<UdpSocket>,
    /// Sends on `socket` with GSO (every session's datagrams go out through it).
    sender: Arc<udp::Sender>,
    /// The advertised candidate (also what str0m sees as every datagram's destination).
    candidate: SocketAddr,
    cert: DtlsCert,
    sessions: Mutex<HashMap<Arc<str>, Entry>>,
    routes: mpsc::UnboundedSender<Route>,
    routes_rx: Mutex<Option<mpsc::UnboundedReceiver<Route>>>,
    tasks: Mutex<JoinSet<()>>,
    stop: CancellationToken,
    /// Opus for sessions of cameras with AAC audio (`None`: audio off).
    audio: Option<Arc<opus::Audio>>,
}

/// Datagrams queued per session before the session task takes them (STUN, DTLS, RTCP:
/// a viewer sends few).
const SESSION_INBOX: usize = 256;
/// Largest datagram read (str0m's MTU is 1200–1500; anything larger is not ours).
const MAX_DATAGRAM: usize = 2048;

impl Node {
    /// Binds the socket.
    ///
    /// # Errors
    /// The bind error.
    pub(crate) fn bind(config: WebrtcConfig) -> std::io::Result<Arc<Node>> {
        let std = StdUdpSocket::bind(config.addr)?;
        std.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std)?;
        let bound = socket.local_addr()?;
        let ip = match (config.public_ip, bound.ip()) {
            (Some(ip), _) => ip,
            (None, ip) if ip.is_unspecified() => default_route_ip(),
            (None, ip) => ip,
        };
        let candidate = SocketAddr::new(ip, bound.port());
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("cannot generate a DTLS certificate"))?;
        let (routes, routes_rx) = mpsc::unbounded_channel();
        let socket = Arc::new(socket);
        let sender = Arc::new(udp::Sender::new(socket.clone(), config.gso)?);
        tracing::debug!(
            gso_segments = sender.max_segments(),
            "webrtc socket: datagrams per send"
        );
        let stop = CancellationToken::new();
        let audio = config
            .audio
            .then(|| opus::Audio::new(config.ffmpeg.clone(), stop.clone()));
        Ok(Arc::new(Node {
            audio,
            config,
            socket,
            sender,
            candidate,
            cert,
            sessions: Mutex::new(HashMap::new()),
            routes,
            routes_rx: Mutex::new(Some(routes_rx)),
            tasks: Mutex::new(JoinSet::new()),
            stop,
        }))
    }

    /// The advertised ICE candidate address.
    pub(crate) fn candidate(&self) -> SocketAddr {
        self.candidate
    }

    /// Sessions now.
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.lock().expect("sessions poisoned").len()
    }

    /// Reads the socket and routes datagrams until `shutdown`; then ends every session.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut routes) = self.routes_rx.lock().expect("routes poisoned").take() else {
            return;
        };
        let mut by_ufrag: HashMap<String, mpsc::Sender<Packet>> = HashMap::new();
        let mut by_addr: HashMap<SocketAddr, mpsc::Sender<Packet>> = HashMap::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, source) = tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // ICMP port unreachable from a gone viewer surfaces here on Linux.
                        tracing::debug!(error = %e, "webrtc socket read");
                        continue;
                    }
                },
                Some(r) = routes.recv() => {
                    match r {
                        Route::Add { ufrag, tx } => {
                            by_ufrag.retain(|_, t| !t.is_closed());
                            by_addr.retain(|_, t| !t.is_closed());
                            by_ufrag.insert(ufrag, tx);
                        }
                    }
                    continue;
                }
                () = shutdown.cancelled() => break,
            };
            let data = &buf[..n];
            let tx = match by_addr.get(&source).filter(|t| !t.is_closed()) {
                Some(tx) => Some(tx.clone()),
                None => {
                    // A new address: only a STUN binding request naming a session's ufrag
                    // (USERNAME "ours:theirs") may claim it.
                    let tx = StunMessage::parse(data)
                        .ok()
                        .filter(|m| m.is_binding_request())
                        .and_then(|m| m.split_username().map(|(l, _)| l.to_owned()))
                        .and_then(|l| by_ufrag.get(&l).filter(|t| !t.is_closed()).cloned());
                    if let Some(tx) = &tx {
                        by_addr.insert(source, tx.clone());
                    }
                    tx
                }
            };
            let Some(tx) = tx else {
                metrics::counter!("camstream_webrtc_datagrams_unrouted_total").increment(1);
                continue;
            };
            let packet = Packet {
                at: Instant::now(),
                source,
                data: Bytes::copy_from_slice(data),
            };
            if tx.try_send(packet).is_err() {
                metrics::counter!("camstream_webrtc_datagrams_dropped_total").increment(1);
            }
        }
        self.stop.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks poisoned"));
        while tasks.join_next().await.is_some() {}
    }

    /// The checks of an offer that need no camera: the node has room, the SDP parses and
    /// has a video m-line. Call before [`Node::join`], so a bad offer costs no wait.
    ///
    /// # Errors
    /// [`OfferError::Full`], [`OfferError::BadSdp`], [`OfferError::NoVideo`].
    pub(crate) fn check_offer<'a>(&self, offer: &'a str) -> Result<Offer<'a>, OfferError> {
        let max = self.config.max_sessions;
        if self.sessions() >= max {
            metrics::counter!("camstream_webrtc_refused_total", "reason" => "full").increment(1);
            return Err(OfferError::Full(max));
        }
        let sdp =
            SdpOffer::from_sdp_string(offer).map_err(|e| OfferError::BadSdp(sdp_error(&e)))?;
        if !offer.lines().any(|l| l.starts_with("m=video")) {
            return Err(OfferError::NoVideo);
        }
        Ok(Offer { text: offer, sdp })
    }

    /// Waits for `stream`'s join point (the segment in progress; the publisher answers
    /// after its next frame) and checks it can be played over WebRTC.
    ///
    /// # Errors
    /// [`OfferError::NotReady`] without a join point within 5 s; [`OfferError::Feed`] when
    /// the stream has no H.264 video or uses B-frames.
    ///
    /// # Cancel safety
    /// Cancel-safe: the relay request of a dropped join is answered into a closed channel,
    /// which the publisher ignores.
    pub(crate) async fn join(&self, stream: &Arc<Stream>) -> Result<Joined, OfferError> {
        let feed = tokio::time::timeout(Duration::from_secs(5), stream.subscribe_relay())
            .await
            .map_err(|_| OfferError::NotReady)?
            .map_err(|_| OfferError::NotReady)?;
        Ok(Joined {
            feed: feed::Feed::join(feed.gop)?,
            live: feed.live,
            stream: Arc::downgrade(stream),
        })
    }

    /// Answers a checked offer for the stream `camera` (a camera or a rendition) joined at
    /// `joined`: builds the session and starts its task. Returns the session id and the SDP
    /// answer.
    ///
    /// # Errors
    /// [`OfferError::Full`] when the node filled up meanwhile, [`OfferError::BadSdp`] when
    /// str0m cannot answer the offer.
    pub(crate) fn answer(
        self: &Arc<Self>,
        camera: CameraId,
        joined: Joined,
        offer: Offer<'_>,
    ) -> Result<(Arc<str>, String), OfferError> {
        let max = self.config.max_sessions;
        let Offer {
            text: offer_text,
            sdp: offer,
        } = offer;
        let Joined {
            feed: first,
            live,
            stream,
        } = joined;
        // Opus only for a viewer that offered an audio m-line (the dashboard's tiles do not).
        let audio = match (&self.audio, stream.upgrade()) {
            (Some(a), Some(s)) if offer_text.contains("m=audio") => a.track(&s),
            _ => None,
        };
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_dtls_cert(self.cert.clone())
            // H.264, and Opus when the stream has audio (else audio m-lines get no codec
            // and are answered inactive).
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(audio.is_some(), false)
            // No transport-wide congestion control: nothing here adapts the bitrate (a viewer
            // that falls behind skips to the next keyframe, `session.rs`), so its feedback was
            // pure cost (3 % of the node's CPU at 200 viewers, bench/results/webrtc-200).
            // Kept: the MID (BUNDLE demux) and abs-send-time (the browser's own estimate).
            .clear_extension_map()
            .set_extension(2, Extension::AbsoluteSendTime)
            .set_extension(4, Extension::RtpMid)
            // Sized to the camera instead of str0m's fixed 1,000 packets (`Feed`).
            .set_send_buffer_video(first.send_buffer_packets())
            .build(Instant::now());
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| OfferError::BadSdp(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::BadSdp(e.to_string()))?;
        let answer = sdp::fix_rejected(offer_text, &answer.to_sdp_string());
        let ufrag = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .map(|u| u.trim().to_owned())
            .ok_or_else(|| OfferError::BadSdp("answer without ice-ufrag".into()))?;
        // 128 random bits: the resource URL is the capability to delete the session.
        let id: Arc<str> = Arc::from(format!("{:032x}", rand::random::<u128>()));
        let (tx, rx) = mpsc::channel(SESSION_INBOX);
        let stop = self.stop.child_token();
        {
            let mut sessions = self.sessions.lock().expect("sessions poisoned");
            if sessions.len() >= max {
                metrics::counter!("camstream_webrtc_refused_total", "reason" => "full")
                    .increment(1);
                return Err(OfferError::Full(max));
            }
            sessions.insert(
                id.clone(),
                Entry {
                    camera: camera.clone(),
                    ufrag: ufrag.clone(),
                    stop: stop.clone(),
                },
            );
            metrics::gauge!("camstream_webrtc_sessions").set(sessions.len() as f64);
        }
        metrics::counter!("camstream_webrtc_sessions_total").increment(1);
        let _ = self.routes.send(Route::Add { ufrag, tx });
        let run = session::Session {
            id: id.clone(),
            camera,
            rtc,
            feed: first,
            live,
            stream,
            audio: audio.map(|t| {
                let rx = t.subscribe();
                (t, rx)
            }),
            inbox: rx,
            stop,
            sender: self.sender.clone(),
            candidate: self.candidate,
            connect_timeout: self.config.connect_timeout,
            idle_timeout: self.config.idle_timeout,
        };
        let node = self.clone();
        let sid = id.clone();
        self.tasks
            .lock()
            .expect("tasks poisoned")
            .spawn(async move {
                run.run().await;
                node.remove(&sid);
            });
        Ok((id, answer))
    }

    /// Ends a session of `camera`. Returns whether it existed.
    pub(crate) fn end(&self, camera: &str, id: &str) -> bool {
        let sessions = self.sessions.lock().expect("sessions poisoned");
        match sessions.get(id) {
            Some(e) if &*e.camera == camera => {
                e.stop.cancel();
                true
            }
            _ => false,
        }
    }

    fn remove(&self, id: &str) {
        let mut sessions = self.sessions.lock().expect("sessions poisoned");
        if let Some(e) = sessions.remove(id) {
            tracing::debug!(session = id, ufrag = %e.ufrag, "webrtc session removed");
        }
        metrics::gauge!("camstream_webrtc_sessions").set(sessions.len() as f64);
        // Finished tasks are reaped here, so the set does not grow.
        let mut tasks = self.tasks.lock().expect("tasks poisoned");
        while tasks.try_join_next().is_some() {}
    }
}

/// str0m's SDP parse errors name a pointer offset on their first line: keep the rest.
fn sdp_error(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("PointerOffset"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// The address of the interface holding the default route (no packet is sent: connecting
/// a UDP socket only picks the source address), or loopback without one.
fn default_route_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        s.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
