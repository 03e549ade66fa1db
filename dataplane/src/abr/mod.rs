//! Adaptive bitrate: an `ffmpeg` per ABR camera decodes the camera once and encodes a ladder
//! of lower renditions, which come back over loopback RTMP as streams `{camera}~{name}` and
//! go through the same segmenter as any camera; `/hls/{camera}/master.m3u8` lists them.
//! ffmpeg here is the only one in the media path (docs/architecture.md): everything else is
//! our own code.
//!
//! Owns: the ladder (`--abr-ladder`), the node's transcode budget (`--abr-max-cameras`),
//! which cameras get a transcoder (asking an [`AbrPolicy`] when a camera goes live and every
//! few seconds after), the transcoder processes (fed FLV on stdin from the camera's relay
//! feed, restarted with backoff when they die, their CPU in `/metrics`), and the key that
//! lets only them publish renditions ([`RenditionKeys`]). Leaves to others: which camera
//! wants ABR (the control plane's `abrProfile`), segmenting and serving (as for cameras).

mod flv;
mod transcoder;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use camstream_protocol::abr::{AbrPolicy, RENDITION_SEPARATOR, source_camera};
use camstream_protocol::auth::{
    Authorizer, BoxFuture, CameraId, Denied, PublishRequest, constant_time_eq,
};
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// Its name in URLs (`480p`): `[a-z0-9]`, 1–16 characters.
    pub name: String,
    /// Output height in pixels (width follows the source's aspect ratio, even).
    pub height: u32,
    /// Video bitrate, kbit/s.
    pub video_kbps: u32,
}

impl Rendition {
    /// Parses a ladder: `HEIGHTp:KBPS[k]` items separated by commas, e.g.
    /// `720p:2500k,480p:1000k,240p:400k`; the name is the height part.
    ///
    /// # Errors
    /// A message naming the item that does not parse, or a repeated height.
    pub fn parse_ladder(s: &str) -> Result<Vec<Rendition>, String> {
        let mut out: Vec<Rendition> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || format!("ladder item {item:?}: expected HEIGHTp:KBPSk, e.g. 480p:1000k");
            let (name, rate) = item.split_once(':').ok_or_else(bad)?;
            let height: u32 = name
                .strip_suffix('p')
                .and_then(|h| h.parse().ok())
                .filter(|h| (64..=4320).contains(h) && h % 2 == 0)
                .ok_or_else(bad)?;
            let video_kbps: u32 = rate
                .strip_suffix('k')
                .unwrap_or(rate)
                .parse()
                .ok()
                .filter(|k| (50..=100_000).contains(k))
                .ok_or_else(bad)?;
            if out.iter().any(|r| r.height == height) {
                return Err(format!("ladder item {item:?}: height {height} given twice"));
            }
            out.push(Rendition {
                name: format!("{height}p"),
                height,
                video_kbps,
            });
        }
        if out.is_empty() {
            return Err("the ladder is empty".into());
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.height));
        Ok(out)
    }
}

/// ABR settings (`--abr-*` flags).
#[derive(Debug, Clone)]
pub struct AbrConfig {
    /// The node's ladder (profile `default`). Default 720p 2.5 Mbit/s, 480p 1 Mbit/s, 240p
    /// 400 kbit/s; renditions at or above the source's height are left out (never upscale).
    pub ladder: Vec<Rendition>,
    /// Most cameras transcoded at once on this node; more are refused (logged, counted in
    /// `camstream_abr_refused_total`). Default 2: a ladder costs about a core.
    pub max_cameras: usize,
    /// The ffmpeg binary. Default `ffmpeg` (from `PATH`).
    pub ffmpeg: PathBuf,
    /// x264 preset. Default `veryfast`.
    pub preset: String,
    /// Every camera gets the ladder, whatever the policy says (development, benchmarks).
    pub all_cameras: bool,
}

impl Default for AbrConfig {
    fn default() -> Self {
        Self {
            ladder: Rendition::parse_ladder(DEFAULT_LADDER).expect("the default ladder parses"),
            max_cameras: 2,
            ffmpeg: PathBuf::from("ffmpeg"),
            preset: "veryfast".into(),
            all_cameras: false,
        }
    }
}

/// The default ladder, as `--abr-ladder` takes it.
pub const DEFAULT_LADDER: &str = "720p:2500k,480p:1000k,240p:400k";

/// How often running and candidate cameras are looked at again (a camera's `abrProfile`
/// changed while it publishes takes effect within this).
const RECHECK: Duration = Duration::from_secs(5);

/// Lets only this node's transcoders publish renditions: a stream key `{camera}~{name}`
/// is accepted from a loopback address with the node's random secret as its token; every
/// other key goes to the inner authorizer (which refuses `~`, not a camera id character).
pub(crate) struct RenditionKeys {
    pub(crate) secret: Arc<str>,
    pub(crate) inner: Arc<dyn Authorizer>,
}

impl Authorizer for RenditionKeys {
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>> {
        let Some((camera, name)) = camstream_protocol::abr::split_rendition(req.stream_key) else {
            return self.inner.authorize(req);
        };
        let ok = req.peer.ip().is_loopback()
            && camstream_protocol::auth::is_valid_camera_id(camera)
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric())
            && req
                .token
                .is_some_and(|t| constant_time_eq(t.as_bytes(), self.secret.as_bytes()));
        let result = if ok {
            Ok(CameraId::from(req.stream_key))
        } else {
            Err(Denied::UnknownKey)
        };
        Box::pin(std::future::ready(result))
    }
}

/// The transcoder manager: one per node.
pub(crate) struct Abr {
    config: AbrConfig,
    registry: Arc<Registry>,
    policy: Arc<OnceLock<Arc<dyn AbrPolicy>>>,
    secret: Arc<str>,
    /// Where renditions are published (this node's RTMP listener, on loopback).
    rtmp: SocketAddr,
    /// Cameras with a transcoder, and how to stop it.
    running: Mutex<HashMap<CameraId, CancellationToken>>,
}

impl Abr {
    pub(crate) fn new(
        config: AbrConfig,
        registry: Arc<Registry>,
        policy: Arc<OnceLock<Arc<dyn AbrPolicy>>>,
        secret: Arc<str>,
        rtmp: SocketAddr,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            registry,
            policy,
            secret,
            rtmp: SocketAddr::from(([127, 0, 0, 1], rtmp.port())),
            running: Mutex::default(),
        })
    }

    /// Whether `camera` should have a ladder; `None` when the policy could not say.
    async fn wants(&self, camera: &str) -> Option<bool> {
        if self.config.all_cameras {
            return Some(true);
        }
        let Some(policy) = self.policy.get() else {
            return Some(false);
        };
        // Only `default` exists today; an unknown profile gets no ladder (and a log line).
        match policy.profile(camera).await {
            Ok(None) => Some(false),
            Ok(Some(p)) if p == "default" => Some(true),
            Ok(Some(other)) => {
                tracing::warn!(
                    camera_id = camera,
                    profile = other,
                    "unknown ABR profile; no ladder"
                );
                Some(false)
            }
            Err(e) => {
                tracing::warn!(camera_id = camera, error = %e, "ABR profile not known; nothing changed");
                None
            }
        }
    }

    /// Starts and stops transcoders until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut changes = self.registry.changes();
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.pass().await;
            tokio::select! {
                _ = changes.changed() => {}
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
        }
        for (_, stop) in self.running.lock().expect("abr poisoned").drain() {
            stop.cancel();
        }
    }

    async fn pass(self: &Arc<Self>) {
        // Ended transcoders leave the table (their camera stopped for good).
        self.running
            .lock()
            .expect("abr poisoned")
            .retain(|_, stop| !stop.is_cancelled());
        for stream in self.registry.live_sources() {
            let camera = stream.camera_id().clone();
            let Some(wanted) = self.wants(&camera).await else {
                continue;
            };
            let mut running = self.running.lock().expect("abr poisoned");
            match (running.get(&camera), wanted) {
                (Some(stop), false) => {
                    tracing::info!(camera_id = %camera, "ABR off; stopping the transcoder");
                    stop.cancel();
                    running.remove(&camera);
                }
                (None, true) => {
                    if running.len() >= self.config.max_cameras {
                        metrics::counter!("camstream_abr_refused_total").increment(1);
                        tracing::warn!(
                            camera_id = %camera,
                            max = self.config.max_cameras,
                            "ABR refused: the node's transcode budget is full (--abr-max-cameras)"
                        );
                        continue;
                    }
                    let stop = CancellationToken::new();
                    running.insert(camera.clone(), stop.clone());
                    metrics::gauge!("camstream_abr_cameras").set(running.len() as f64);
                    let job = transcoder::Job {
                        abr: self.clone(),
                        stream,
                        stop,
                    };
                    tokio::spawn(job.run());
                }
                _ => {}
            }
        }
        let cameras: Vec<CameraId> = self
            .running
            .lock()
            .expect("abr poisoned")
            .keys()
            .cloned()
            .collect();
        metrics::gauge!("camstream_abr_cameras").set(cameras.len() as f64);
        self.registry
            .set_transcoding(cameras, self.config.max_cameras);
    }
}

impl crate::DataPlane {
    /// How many cameras this node transcodes now, and its transcode budget
    /// (`--abr-max-cameras`; 0 when ABR is off): the cluster heartbeat carries both, and the
    /// scheduler counts a transcoded camera as much heavier than a plain one.
    pub fn transcode_load(&self) -> (u32, u32) {
        let (n, budget) = self.registry().transcode_load();
        (
            u32::try_from(n).unwrap_or(u32::MAX),
            u32::try_from(budget).unwrap_or(u32::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_parse_sorted_and_bad_items_are_named() {
        let l = Rendition::parse_ladder("240p:400k, 720p:2500k,480p:1000").unwrap();
        let names: Vec<_> = l.iter().map(|r| (r.name.as_str(), r.video_kbps)).collect();
        assert_eq!(names, [("720p", 2500), ("480p", 1000), ("240p", 400)]);
        assert_eq!(AbrConfig::default().ladder.len(), 3);
        for bad in [
            "",
            "720:2500k",
            "720p",
            "720p:fast",
            "721p:100k",
            "720p:1k",
            "480p:1k,480p:2k",
        ] {
            let e = Rendition::parse_ladder(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(Rendition::parse_ladder("480p:1k,480p:2k").is_err());
        assert!(
            Rendition::parse_ladder("480p:500k,480p:600k")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[tokio::test]
    async fn only_loopback_with_the_secret_publishes_a_rendition() {
        let keys = RenditionKeys {
            secret: Arc::from("s3cret"),
            inner: Arc::new(crate::auth::AllowAnyKey),
        };
        let ask = |key: &'static str, token: Option<&'static str>, ip: [u8; 4]| {
            keys.authorize(PublishRequest {
                app: "live",
                stream_key: key,
                token,
                peer: SocketAddr::from((ip, 5000)),
                tls: false,
            })
        };
        assert_eq!(
            ask("cam~480p", Some("s3cret"), [127, 0, 0, 1])
                .await
                .unwrap()
                .as_ref(),
            "cam~480p"
        );
        for (key, token, ip) in [
            ("cam~480p", Some("s3cret"), [10, 0, 0, 1]),
            ("cam~480p", Some("wrong"), [127, 0, 0, 1]),
            ("cam~480p", None, [127, 0, 0, 1]),
            ("cam~", Some("s3cret"), [127, 0, 0, 1]),
            ("cam~48-0p", Some("s3cret"), [127, 0, 0, 1]),
            ("ca m~480p", Some("s3cret"), [127, 0, 0, 1]),
        ] {
            assert_eq!(
                ask(key, token, ip).await,
                Err(Denied::UnknownKey),
                "{key} {token:?} {ip:?}"
            );
        }
        // Cameras go to the inner authorizer.
        assert_eq!(
            ask("cam", None, [10, 0, 0, 1]).await.unwrap().as_ref(),
            "cam"
        );
    }
}
