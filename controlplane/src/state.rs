//! What every handler and background task shares: config, store, cache, keys, the metrics
//! handle and the health tracker. Built once by `ControlPlane::start`.

use std::sync::{Arc, OnceLock};

use camstream_protocol::LiveControl;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::keys::Keys;
use crate::cache::{Cache, MemoryCache};
use crate::config::ControlPlaneConfig;
use crate::health::Tracker;
use crate::recordings::Recordings;
use crate::store::Store;

/// The shared state (behind an `Arc`, cloned into the router).
pub(crate) struct Shared {
    pub(crate) config: ControlPlaneConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cache: Arc<dyn Cache>,
    /// The in-process cache when no Redis is configured, for periodic sweeping.
    pub(crate) memory_cache: Option<Arc<MemoryCache>>,
    pub(crate) keys: Arc<Keys>,
    pub(crate) metrics: PrometheusHandle,
    pub(crate) health: Tracker,
    /// Alert rules snapshot, stream quality and API usage trackers.
    pub(crate) alerting: crate::alerts::Alerting,
    /// Tiers, retention and the recorder handle.
    pub(crate) recordings: Recordings,
    /// The live streams of this node, once the binary attached them.
    pub(crate) live: OnceLock<Arc<dyn LiveControl>>,
    /// The cluster node, `None` on a single node.
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    /// Live events for `GET /api/v1/ws`.
    pub(crate) events: Arc<crate::events::Bus>,
}

impl Shared {
    /// A camera changed through this node's API: applies it to this node's live streams
    /// and recorder and, in a cluster, sends it to every other node (the publisher may be
    /// on any of them). `disconnect`: drop its publisher for this reason; `recording`: turn
    /// recording on or off.
    pub(crate) fn camera_control(
        &self,
        camera: &str,
        disconnect: Option<&str>,
        recording: Option<bool>,
    ) {
        let control = crate::cluster::CameraControl {
            camera: camera.to_owned(),
            disconnect: disconnect.map(str::to_owned),
            recording,
        };
        self.apply_camera_control(&control);
        if let Some(cluster) = &self.cluster {
            cluster.broadcast_camera_control(control);
        }
    }

    /// Applies a camera control here (from this node's API or another node's).
    pub(crate) fn apply_camera_control(&self, c: &crate::cluster::CameraControl) {
        if let Some(on) = c.recording {
            self.recordings.set_recording(&c.camera, on);
        }
        if let Some(reason) = &c.disconnect {
            self.disconnect_publisher(&c.camera, reason);
        }
    }

    /// Disconnects the publisher of `camera` on this node, if one is (its publish is no
    /// longer valid). Without attached live streams (a control plane alone) nothing to do.
    pub(crate) fn disconnect_publisher(&self, camera: &str, reason: &str) {
        if let Some(live) = self.live.get()
            && live.disconnect_publisher(camera, reason)
        {
            tracing::info!(camera_id = %camera, reason, "live publisher disconnected");
        }
    }
}

/// The router's state.
pub(crate) type AppState = Arc<Shared>;
