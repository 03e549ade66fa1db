//! Support for the end-to-end tests: the real `camstream` binary on OS-chosen ports with a
//! temporary data directory and a captured log, ffmpeg-generated clips, ffmpeg publishers
//! and readers, ffprobe, an LL-HLS playlist reader and an fMP4 timing reader.
//!
//! Everything started here is killed on drop. Nothing sleeps to synchronise: waits poll a
//! condition until a deadline ([`eventually`]).
//!
//! Shared by the `dataplane`, `controlplane` and `recording` test binaries; each uses a part
//! of it.

// Each test binary compiles this module on its own and uses a different part of it, and the
// dead-code lint judges one binary at a time. Checked without the allow: every item is used
// by at least one of the three binaries.
#![allow(dead_code)]

pub(crate) mod browser;
pub(crate) mod ffmpeg;
pub(crate) mod hls;
pub(crate) mod mp4;
pub(crate) mod rtmp;
pub(crate) mod server;
pub(crate) mod services;
pub(crate) mod whep;
pub(crate) mod ws;

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use server::{Server, ServerOptions};

/// How often [`eventually`] re-checks its condition.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, or panics naming `what` once `timeout` passed.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Tests that measure timing in a browser (hls.js live latency, WebRTC time to first frame)
/// or load the machine (an ABR transcoder) hold this for their whole run, so no two of them
/// overlap within a test binary: on a 2-core machine one would skew the other's figures.
pub(crate) async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// `<target>/testdata/e2e`: generated clips and per-test scratch space (never committed).
pub(crate) fn testdata() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().map_or(tmp.clone(), PathBuf::from);
    let dir = target.join("testdata").join("e2e");
    std::fs::create_dir_all(&dir).expect("create target/testdata/e2e");
    dir
}

/// A fresh, empty scratch directory for one test (removed when the next run starts it).
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = testdata().join("runs").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Installs ring as rustls' crypto provider (reqwest is built with `rustls-no-provider`).
pub(crate) fn install_crypto() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP/1.1 client.
pub(crate) fn http_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("build reqwest client")
}

/// An HTTPS client that trusts the server's self-signed certificate and offers h2 and
/// HTTP/1.1 by ALPN.
pub(crate) fn https_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("build reqwest https client")
}

/// A deterministic xorshift generator for junk input (reproducible failures).
pub(crate) struct Junk(u64);

impl Junk {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 24) as u8
            })
            .collect()
    }
}
