//! Hostile RTMP(S) peers on real sockets while a camera streams: each bad connection is
//! closed with a log line naming it, the process stays healthy and the camera's playlist
//! keeps advancing without a discontinuity.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::common::rtmp::{
    connect, connect_app, handshake, message_header, set_chunk_size, wait_closed,
};
use crate::common::{Junk, Server, ServerOptions};

const CAMERA: &str = "steady";
/// A bad connection must be closed this fast.
const PROMPT: Duration = Duration::from_secs(5);

/// What to send on one bad connection.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// Random bytes from the first byte on (not RTMP's version 3).
    RandomBytes,
    /// C0 and random C1/C2, then random chunk bytes.
    RandomHandshake,
    /// Half of C1, then the encoder hangs up.
    TruncatedHandshake,
    /// `SetChunkSize` 0 after a valid handshake.
    ChunkSizeZero,
    /// `SetChunkSize` 0x7fffffff after a valid handshake.
    ChunkSizeHuge,
    /// A command message announcing 16 MiB - 1.
    HugeCommand,
    /// A video message announcing 16 MiB - 1 before any publish.
    HugeVideo,
    /// A compressed chunk header on a chunk stream never seen.
    OrphanChunk,
    /// A valid `connect`, then random bytes.
    GarbageAfterConnect,
    /// Random bytes to the RTMPS port.
    TlsGarbage,
}

impl Case {
    const ALL: [Case; 10] = [
        Case::RandomBytes,
        Case::RandomHandshake,
        Case::TruncatedHandshake,
        Case::ChunkSizeZero,
        Case::ChunkSizeHuge,
        Case::HugeCommand,
        Case::HugeVideo,
        Case::OrphanChunk,
        Case::GarbageAfterConnect,
        Case::TlsGarbage,
    ];

    /// What the server's log line must say about this connection.
    fn log(self) -> &'static str {
        match self {
            Case::RandomBytes => "handshake failed",
            Case::RandomHandshake | Case::GarbageAfterConnect => "connection closed on error",
            Case::TruncatedHandshake => "connection closed by the encoder",
            Case::ChunkSizeZero => "peer chunk size 0 is outside",
            Case::ChunkSizeHuge => "peer chunk size 2147483647 is outside",
            Case::HugeCommand => "message of type 20 is 16777215 bytes",
            Case::HugeVideo => "message of type 9 is 16777215 bytes",
            Case::OrphanChunk => "has no earlier header to extend",
            Case::TlsGarbage => "rtmps TLS handshake failed",
        }
    }

    /// Connects, misbehaves, waits for the server to close; returns our address.
    async fn run(self, rtmp: SocketAddr, rtmps: SocketAddr, seed: u64) -> SocketAddr {
        let mut junk = Junk::new(seed);
        let addr = if matches!(self, Case::TlsGarbage) {
            rtmps
        } else {
            rtmp
        };
        let mut sock = connect(addr).await;
        let local = sock.local_addr().expect("local addr");
        match self {
            Case::RandomBytes | Case::TlsGarbage => {
                let mut b = junk.bytes(4096);
                b[0] = 0xff;
                send(&mut sock, b).await;
            }
            Case::RandomHandshake => {
                let mut b = junk.bytes(1 + 1536 + 1536 + 4096);
                b[0] = 3;
                send(&mut sock, b).await;
            }
            Case::TruncatedHandshake => {
                let mut b = junk.bytes(1 + 700);
                b[0] = 3;
                send(&mut sock, b).await;
                sock.shutdown().await.expect("half-close");
            }
            Case::ChunkSizeZero => {
                handshake(&mut sock).await;
                send(&mut sock, set_chunk_size(0)).await;
            }
            Case::ChunkSizeHuge => {
                handshake(&mut sock).await;
                send(&mut sock, set_chunk_size(0x7fff_ffff)).await;
            }
            Case::HugeCommand => {
                handshake(&mut sock).await;
                let mut m = message_header(3, 20, 0x00ff_ffff, 0);
                m.extend(junk.bytes(128));
                send(&mut sock, m).await;
            }
            Case::HugeVideo => {
                handshake(&mut sock).await;
                let mut m = message_header(6, 9, 0x00ff_ffff, 1);
                m.extend(junk.bytes(128));
                send(&mut sock, m).await;
            }
            Case::OrphanChunk => {
                handshake(&mut sock).await;
                // fmt 3 (0b11) on chunk stream 9.
                let mut m = vec![0xc0 | 9];
                m.extend(junk.bytes(64));
                send(&mut sock, m).await;
            }
            Case::GarbageAfterConnect => {
                handshake(&mut sock).await;
                connect_app(&mut sock).await;
                send(&mut sock, junk.bytes(16 * 1024)).await;
            }
        }
        let took = wait_closed(&mut sock, PROMPT).await;
        println!("{self:?}: closed after {took:?}");
        local
    }
}

/// Writes `bytes`; the server may close before it read everything, so write errors are
/// expected and ignored.
async fn send(sock: &mut TcpStream, bytes: Vec<u8>) {
    let _ = sock.write_all(&bytes).await;
}

/// Issue 3: malformed input over real sockets, and connections that never handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_that_connection() {
    let clips = clips().await;
    let server = Server::start("malformed", ServerOptions::default()).await;
    let _camera = Ffmpeg::publish(
        &clips.av_long,
        &server.rtmp_url(CAMERA),
        server.dir.join("publish.stderr"),
    );
    let before = server.wait_ll(CAMERA, Duration::from_secs(20)).await;

    // Idle peers, first: they take the 10 s handshake timeout while the rest runs.
    let mut idle = JoinSet::new();
    for i in 0..24 {
        let (addr, what) = match i % 6 {
            0 => (server.rtmps, "rtmps TLS handshake timed out"),
            1 => (server.rtmp, "handshake timed out after 10s"), // sends C0 only
            _ => (server.rtmp, "handshake timed out after 10s"),
        };
        idle.spawn(async move {
            let mut sock = connect(addr).await;
            let local = sock.local_addr().expect("local addr");
            if i % 6 == 1 {
                sock.write_all(&[3]).await.expect("C0");
            }
            let took = wait_closed(&mut sock, Duration::from_secs(25)).await;
            (local, what, took)
        });
    }

    let mut bad = JoinSet::new();
    for (i, case) in Case::ALL.into_iter().enumerate() {
        let (rtmp, rtmps) = (server.rtmp, server.rtmps);
        bad.spawn(async move { (case, case.run(rtmp, rtmps, 0x5eed + i as u64).await) });
    }
    while let Some(r) = bad.join_next().await {
        let (case, local) = r.expect("case task");
        let line = server
            .wait_log_peer(local, case.log(), Duration::from_secs(5))
            .await;
        println!("{case:?}: {line}");
        server.assert_healthy().await;
    }

    let mut closed = 0;
    while let Some(r) = idle.join_next().await {
        let (local, what, took) = r.expect("idle task");
        assert!(
            took >= Duration::from_secs(9) && took <= Duration::from_secs(16),
            "idle connection {local} closed after {took:?} (handshake timeout 10 s)"
        );
        server
            .wait_log_peer(local, what, Duration::from_secs(5))
            .await;
        closed += 1;
    }
    assert_eq!(closed, 24);

    // The camera went on undisturbed: same stream, two more segments, no discontinuity.
    let (msn, _) = before.hint();
    let after = server
        .wait_ll_until(
            CAMERA,
            "the camera's playlist to advance",
            Duration::from_secs(15),
            |p| p.last_msn() >= Some(msn + 2),
        )
        .await;
    assert_eq!(after.prefix(), before.prefix());
    assert!(
        after.segments.iter().all(|s| !s.discontinuity),
        "{}",
        after.text
    );
    assert!(!after.ended);
    let log = server.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("camera_id=steady") && l.contains("closed")),
        "the camera's connection was closed:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    server.assert_healthy().await;
}
