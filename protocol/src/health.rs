//! Stream health: what the data plane reports about each camera, and the control plane
//! stores (cache every second or so, `stream_status` on change) and serves.

use std::time::SystemTime;

/// The state of one camera's stream as the data plane sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamState {
    /// An encoder is publishing.
    Online,
    /// The encoder left; viewers stay attached until the reconnect window closes.
    Reconnecting,
    /// No encoder, window closed.
    Offline,
}

/// One camera's health, sampled by the data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHealth {
    /// The camera id (as in `/hls/{camera_id}/...`).
    pub camera_id: String,
    /// Publishing state.
    pub state: StreamState,
    /// Video frames per second over the last sampling interval.
    pub fps: f32,
    /// Ingest bitrate over the last sampling interval, bits per second.
    pub bitrate_bps: u64,
    /// Frames dropped since the stream started (malformed, before config, queue overflow).
    pub dropped_frames: u64,
    /// Video width and height in pixels, when a video track is present.
    pub resolution: Option<(u32, u32)>,
    /// Codec strings (RFC 6381) of the tracks, e.g. `avc1.64001f`, `mp4a.40.2`.
    pub codecs: Vec<String>,
    /// HTTP viewers seen over the last sampling interval (distinct playlist pollers).
    pub viewers: u32,
    /// Media bytes received since the stream started.
    pub bytes_in: u64,
    /// Media bytes served to viewers since the stream started.
    pub bytes_out: u64,
    /// When the current publish started (or the last one ended, when not online).
    pub since: SystemTime,
    /// When the data plane last received media for this camera.
    pub last_seen: SystemTime,
}
