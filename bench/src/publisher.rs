//! One RTMP publisher: the async shell around rml_rtmp's sans-IO client session and the
//! [`Pacer`]. Many of them run as tasks of one process, so the generator stays far cheaper
//! than one ffmpeg per camera (PEERS.md: ffmpeg costs twice what nginx does per camera).
//!
//! Per connection: TCP connect, RTMP handshake (spec §5.2), `connect` + `createStream` +
//! `publish` (§7.2), `@setDataFrame onMetaData`, the two sequence headers, then the clip's
//! tags in real time. Every video frame gets a marker SEI (`marker`) and, once its last
//! byte has been handed to the socket, an entry in the camera's ledger: on loopback that
//! is when it reaches the server, the "ingest" time of the latency measurements.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

use crate::clip::{Clip, TagKind};
use crate::marker::{self, Marker};
use crate::metrics::Metrics;
use crate::pacing::{Pacer, Step};

/// Where to publish: `rtmp://host:port/app/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishUrl {
    pub(crate) host_port: String,
    pub(crate) app: String,
    /// Stream key, with any query (`?token=`) the server wants.
    pub(crate) key: String,
}

impl PublishUrl {
    /// Splits an `rtmp://` URL (the key is everything after the application name).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| anyhow!("{url:?} is not an rtmp:// URL"))?;
        let (host_port, path) = rest
            .split_once('/')
            .ok_or_else(|| anyhow!("{url:?} has no application"))?;
        let (app, key) = path
            .split_once('/')
            .ok_or_else(|| anyhow!("{url:?} has no stream key"))?;
        if host_port.is_empty() || app.is_empty() || key.is_empty() {
            bail!("{url:?} lacks a host, application or key");
        }
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:1935")
        };
        Ok(Self {
            host_port,
            app: app.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// How long connecting and the publish handshake may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);

struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    session: ClientSession,
    inbuf: BytesMut,
}

impl Conn {
    /// Writes the packets among `results` and returns the events.
    async fn apply(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> anyhow::Result<Vec<ClientSessionEvent>> {
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => self.wr.write_all(&p.bytes).await?,
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    /// Feeds what is in `inbuf` to the session.
    async fn feed(&mut self) -> anyhow::Result<Vec<ClientSessionEvent>> {
        let results = self
            .session
            .handle_input(&self.inbuf)
            .map_err(|e| anyhow!("rtmp session: {e:?}"))?;
        self.inbuf.clear();
        self.apply(results).await
    }

    /// Reads until an event satisfies `done`; a rejection is an error.
    async fn wait_for(
        &mut self,
        what: &str,
        done: impl Fn(&ClientSessionEvent) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            for e in self.feed().await? {
                if done(&e) {
                    return Ok(());
                }
                if let ClientSessionEvent::ConnectionRequestRejected { description } = e {
                    bail!("server rejected connect: {description}");
                }
                if let ClientSessionEvent::UnhandleableOnStatusCode { code } = e {
                    bail!("server answered {code} while waiting for {what}");
                }
            }
            if self.rd.read_buf(&mut self.inbuf).await? == 0 {
                bail!("server closed the connection while waiting for {what}");
            }
        }
    }
}

async fn handshake(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut hs = Handshake::new(PeerType::Client);
    let p0p1 = hs
        .generate_outbound_p0_and_p1()
        .map_err(|e| anyhow!("handshake: {e:?}"))?;
    stream.write_all(&p0p1).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("server closed the connection during the handshake");
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow!("handshake: {e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                stream.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

async fn connect(url: &PublishUrl) -> anyhow::Result<Conn> {
    let mut stream = TcpStream::connect(&url.host_port)
        .await
        .with_context(|| format!("connecting to {}", url.host_port))?;
    stream.set_nodelay(true)?;
    let remaining = handshake(&mut stream).await?;
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(format!("rtmp://{}/{}", url.host_port, url.app));
    let (session, results) =
        ClientSession::new(config).map_err(|e| anyhow!("rtmp session: {e:?}"))?;
    let (rd, wr) = stream.into_split();
    let mut conn = Conn {
        rd,
        wr,
        session,
        inbuf: BytesMut::from(&remaining[..]),
    };
    conn.apply(results).await?;
    let r = conn
        .session
        .request_connection(url.app.clone())
        .map_err(|e| anyhow!("connect: {e:?}"))?;
    conn.apply(vec![r]).await?;
    conn.wait_for("connect", |e| {
        *e == ClientSessionEvent::ConnectionRequestAccepted
    })
    .await?;
    let r = conn
        .session
        .request_publishing(url.key.clone(), PublishRequestType::Live)
        .map_err(|e| anyhow!("publish: {e:?}"))?;
    conn.apply(vec![r]).await?;
    conn.wait_for("publish", |e| {
        *e == ClientSessionEvent::PublishRequestAccepted
    })
    .await?;
    Ok(conn)
}

fn metadata(clip: &Clip) -> StreamMetadata {
    let mut m = StreamMetadata::new();
    m.video_width = Some(clip.info.width);
    m.video_height = Some(clip.info.height);
    m.video_codec_id = Some(7);
    m.video_frame_rate = Some(clip.info.fps as f32);
    m.video_bitrate_kbps = Some(clip.info.video_kbps as u32);
    if clip.audio_header.is_some() {
        m.audio_codec_id = Some(10);
        m.audio_bitrate_kbps = Some(clip.info.audio_kbps as u32);
        m.audio_sample_rate = Some(clip.info.audio_sample_rate);
        m.audio_channels = Some(2);
        m.audio_is_stereo = Some(true);
    }
    m.encoder = Some(format!("camstream-bench/{}", env!("CARGO_PKG_VERSION")));
    m
}

/// Publishes `clip` in a loop as camera `camera` until `stop` fires.
///
/// # Errors
/// When connecting or the publish handshake fails, or the server closes the connection or
/// sends what the RTMP session cannot read. The camera's ledger stops being live either way.
pub(crate) async fn publish(
    camera: u32,
    url: PublishUrl,
    clip: Arc<Clip>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut conn = tokio::time::timeout(SETUP_TIMEOUT, connect(&url))
        .await
        .map_err(|_| anyhow!("publish setup took over {}s", SETUP_TIMEOUT.as_secs()))??;
    let ledger = &metrics.cameras[camera as usize];
    ledger.live.store(true, Ordering::Relaxed);
    Metrics::add(&metrics.publishers_live, 1);
    let result = stream(&mut conn, camera, &clip, &metrics, &stop).await;
    ledger.live.store(false, Ordering::Relaxed);
    metrics.publishers_live.fetch_sub(1, Ordering::Relaxed);
    if result.is_ok()
        && let Ok(results) = conn.session.stop_publishing()
    {
        // Best effort: the run is over either way.
        let _ = conn.apply(results).await;
        let _ = conn.wr.shutdown().await;
    }
    result
}

async fn stream(
    conn: &mut Conn,
    camera: u32,
    clip: &Arc<Clip>,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let clock = metrics.clock;
    let ledger = &metrics.cameras[camera as usize];
    let mut pacer = Pacer::new(clip.clone(), 0);
    let start_us = clock.now_us();
    let ts0 = RtmpTimestamp::new(pacer.timestamp_at(0));
    let mut out = Vec::with_capacity(64 * 1024);
    let push = |r: ClientSessionResult, out: &mut Vec<u8>| {
        if let ClientSessionResult::OutboundResponse(p) = r {
            out.extend_from_slice(&p.bytes);
        }
    };
    let s = &mut conn.session;
    push(
        s.publish_metadata(&metadata(clip))
            .map_err(|e| anyhow!("metadata: {e:?}"))?,
        &mut out,
    );
    push(
        s.publish_video_data(clip.video_header.clone(), ts0, false)
            .map_err(|e| anyhow!("video: {e:?}"))?,
        &mut out,
    );
    if let Some(h) = &clip.audio_header {
        push(
            s.publish_audio_data(h.clone(), ts0, false)
                .map_err(|e| anyhow!("audio: {e:?}"))?,
            &mut out,
        );
    }
    conn.wr.write_all(&out).await?;

    let mut seq: u32 = 0;
    let mut due: Vec<Step> = Vec::new();
    let mut sent_video: Vec<u32> = Vec::new();
    loop {
        let deadline = clock.at_us(start_us + pacer.next_due_ms() * 1000);
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            n = conn.rd.read_buf(&mut conn.inbuf) => {
                if n? == 0 {
                    bail!("server closed the connection");
                }
                conn.feed().await?;
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                let now_ms = (clock.now_us().saturating_sub(start_us)) / 1000;
                pacer.pop_due(now_ms, &mut due);
                out.clear();
                sent_video.clear();
                let mut bytes = 0u64;
                let first_due = due.first().map_or(0, |s| s.due_ms);
                for step in due.drain(..) {
                    let ts = RtmpTimestamp::new(step.timestamp);
                    bytes += step.body.len() as u64;
                    let r = match step.kind {
                        TagKind::Video => {
                            let m = Marker { camera, seq, capture_us: start_us + step.due_ms * 1000 };
                            let body = marker::stamp(&step.body, clip.nal_length_size, m).unwrap_or(step.body);
                            sent_video.push(seq);
                            seq = seq.wrapping_add(1);
                            conn.session.publish_video_data(body, ts, false)
                        }
                        TagKind::Audio => conn.session.publish_audio_data(step.body, ts, false),
                    };
                    push(r.map_err(|e| anyhow!("rtmp send: {e:?}"))?, &mut out);
                }
                conn.wr.write_all(&out).await?;
                let sent_us = clock.now_us();
                for s in &sent_video {
                    ledger.record(*s, sent_us);
                }
                let lag = sent_us.saturating_sub(start_us + first_due * 1000);
                metrics.generator_lag.record(lag);
                metrics.lag_max_us.fetch_max(lag, Ordering::Relaxed);
                let frames = sent_video.len() as u64;
                Metrics::add(&ledger.frames, frames);
                Metrics::add(&ledger.bytes, bytes);
                Metrics::add(&metrics.frames_sent, frames);
                Metrics::add(&metrics.bytes_sent, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_publish_urls() {
        let u = PublishUrl::parse("rtmp://127.0.0.1:1935/live/cam-1").expect("valid");
        assert_eq!(
            (u.host_port.as_str(), u.app.as_str(), u.key.as_str()),
            ("127.0.0.1:1935", "live", "cam-1")
        );
        let u = PublishUrl::parse("rtmp://example/live/k?token=a/b").expect("valid");
        assert_eq!(
            (u.host_port.as_str(), u.key.as_str()),
            ("example:1935", "k?token=a/b")
        );
        assert!(PublishUrl::parse("http://h/live/k").is_err());
        assert!(PublishUrl::parse("rtmp://h/live").is_err());
        assert!(PublishUrl::parse("rtmp://h/live/").is_err());
    }
}
