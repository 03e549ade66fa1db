//! HLS and LL-HLS over HTTP: playlists with blocking reload and delta updates, parts,
//! segments and init segments, all from the in-memory windows.
//!
//! Owns: URL layout under `/hls/{camera_id}/`, query directives (`_HLS_msn`, `_HLS_part`,
//! `_HLS_skip`, `token`), waiting for media that is about to exist, status codes, cache and
//! CORS headers; and the HTTP edge every route on the listeners shares: timeouts and caps
//! (`limits`, `conn`, `watch`, `serve`). Leaves to others: what the windows hold (`hls`),
//! who may watch ([`crate::auth::PlaybackGuard`]), binding and accepting (`server`).
//!
//! Spec: RFC 8216bis §6.2.5 (delivery directives), §6.2.6 (preload hints).

mod body;
mod conn;
mod hls;
mod limits;
mod query;
mod serve;
mod watch;
mod whep;

pub(crate) use hls::{HlsState, Waits, router};
pub(crate) use limits::Gate;
pub use limits::{HttpLimits, MIN_PROGRESS};
pub(crate) use serve::serve_socket;
pub(crate) use whep::{WhepState, router as whep_router};

#[cfg(test)]
mod tests;
