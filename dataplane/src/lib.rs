//! camstream's media engine: RTMP(S) ingest, FLV demux, MPEG-TS and fMP4/CMAF segmenters,
//! HLS and LL-HLS playlists served from memory.
//!
//! Layout follows the data flow. Sans-IO cores (no sockets, no clock reads):
//! - [`rtmp`]: the RTMP session (handshake, chunks, commands) around `rml_rtmp`, producing
//!   publish requests and [`camstream_protocol::MediaEvent`]s.
//! - [`flv`]: FLV audio/video tag bodies to [`camstream_protocol::MediaEvent`]s.
//! - [`ts`]: the MPEG-TS muxer (PAT/PMT, PES, PCR, ADTS) over `mpeg2ts` packet types.
//! - [`fmp4`]: fMP4/CMAF init segments and fragments over `mp4-atom` boxes.
//! - [`hls`]: segmenters (where segments and parts are cut), the sliding window, playlist
//!   writers.
//!
//! Async shells: `ingest` (RTMP/RTMPS listeners), `http` (HLS over HTTP/1.1 and h2),
//! [`record`] (fMP4 recordings through io_uring writer threads), [`server`] (wires
//! listeners, TLS, the camera registry and the recorder together).

pub mod abr;
pub mod auth;
mod batch;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
pub mod chunks;
mod deadline;
mod flv;
mod fmp4;
#[cfg(feature = "fuzz")]
pub mod fuzz;
mod hls;
mod http;
mod ingest;
pub mod record;
mod registry;
pub mod relay;
mod rtmp;
mod server;
mod sockopt;
#[cfg(test)]
mod testing;
mod tls;
mod ts;
mod webrtc;
mod woken;

pub use hls::DEFAULT_PART_HOLD_BACK;
pub use http::{HttpLimits, MIN_PROGRESS};
pub use record::{RecorderError, RepairError, read_index, repair};
pub use server::{
    BoundAddrs, Config, DataPlane, Server, ServerError, log_listeners, raise_open_files_limit,
};
pub use tls::{CertSource, TlsError};
pub use webrtc::WebrtcConfig;
