//! End-to-end tests of the control plane wired into `camstream serve` (issue 4): the real
//! binary with its store and cache (SQLite + in-memory, and a real PostgreSQL + Redis
//! started here), cameras created over `/api/v1`, ffmpeg publishing to the `rtmpUrl` and
//! `rtmpsUrl` the API hands out, ffprobe playing the signed HLS URLs, refused keys and
//! tokens, `/metrics`, `/api/docs`, and a restart on the same data directory.
//!
//! Each test starts its own server on OS-chosen ports with its own data directory, so the
//! tests run in parallel. Timings (online and offline latency) are printed; run with
//! `--nocapture` to see them.

#[path = "../common/mod.rs"]
mod common;

mod abr;
mod alert_e2e;
mod api;
mod contract;
mod docs;
mod lifecycle;
mod notify_restart;
#[path = "../../controlplane/tests/support/peers.rs"]
mod peers;
mod publish_token;
mod restart;
