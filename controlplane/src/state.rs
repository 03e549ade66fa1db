//! What every handler and background task shares: config, store, cache, keys, the metrics
//! handle and the health tracker. Built once by `ControlPlane::start`.

use std::sync::Arc;

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
    /// Tiers, retention and the recorder handle.
    pub(crate) recordings: Recordings,
}

/// The router's state.
pub(crate) type AppState = Arc<Shared>;
