//! WHEP players for the end-to-end tests: headless Chromium through `tests/browser/whep.mjs`
//! (recvonly `RTCPeerConnection`s, frames decoded, DELETE) and a canned recvonly offer for
//! HTTP-level checks (no media flows: nothing answers ICE).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::Server;
use super::browser::{run_bounded, runner};

/// Runs `sessions` WHEP sessions of `camera` on `server` in Chromium for `seconds`; the
/// runner's JSON result (also written to the server's directory).
pub(crate) async fn run_whep(
    server: &Server,
    camera: &str,
    sessions: usize,
    seconds: u64,
) -> serde_json::Value {
    run_whep_with(server, camera, sessions, seconds, None).await
}

/// [`run_whep`] with a playback token (sent as `Authorization: Bearer`).
pub(crate) async fn run_whep_with(
    server: &Server,
    camera: &str,
    sessions: usize,
    seconds: u64,
    token: Option<&str>,
) -> serde_json::Value {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is required: apt-get install -y chromium"
    );
    let dir = runner().await;
    let url = server.url(&format!("/whep/{camera}"));
    let metrics = server.url("/metrics");
    let mut run = Command::new("node");
    run.arg(dir.join("whep.mjs"))
        .args([
            url.as_str(),
            &sessions.to_string(),
            &seconds.to_string(),
            &metrics,
        ])
        .args(token)
        .current_dir(&dir);
    let out = run_bounded(run, Duration::from_secs(seconds + 90), "the WHEP runner").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node: {}\n{stderr}", out.status);
    let line = stdout.lines().last().unwrap_or_default();
    let r: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("runner output is not JSON ({e}): {stdout}\n{stderr}"));
    std::fs::write(
        server.dir.join(format!("whep-{sessions}.json")),
        serde_json::to_string_pretty(&r).expect("json"),
    )
    .expect("write result");
    assert!(
        r["exception"].is_null(),
        "runner failed: {}",
        r["exception"]
    );
    r
}

/// The first session's `key` (an inbound video figure, e.g. `framesDecoded`) in each of a
/// runner result's per-second samples.
pub(crate) fn per_second(r: &serde_json::Value, key: &str) -> Vec<u64> {
    r["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|x| x["s"][0][key].as_u64().unwrap_or(0))
        .collect()
}

/// A recvonly video + audio offer as Chromium makes it (trimmed to one H.264 format).
pub(crate) const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\na=fingerprint:sha-256 A7:97:1E:CA:1B:F8:B0:31:2E:C6:3E:34:92:E6:9E:9B:FC:A4:44:3A:4C:03:F4:BB:13:31:61:98:C2:10:55:54\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 A7:97:1E:CA:1B:F8:B0:31:2E:C6:3E:34:92:E6:9E:9B:FC:A4:44:3A:4C:03:F4:BB:13:31:61:98:C2:10:55:54\r\na=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";
