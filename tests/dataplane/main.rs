//! End-to-end tests of the data plane (issue 3): the real `camstream` binary, ffmpeg
//! publishers over RTMP and RTMPS, ffprobe/ffmpeg and a Rust LL-HLS client as players,
//! hostile peers on real sockets, and hls.js in headless Chromium.
//!
//! Each test starts its own server on OS-chosen ports with its own data directory, so the
//! tests run in parallel. Clips are generated once into `target/testdata/e2e`.

#[path = "../common/mod.rs"]
mod common;

mod abr;
mod browser;
mod edge;
mod http;
mod llhls;
mod malformed;
mod publish;
mod sessions;
mod webrtc;
