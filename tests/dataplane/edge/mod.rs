//! The HTTP edge under hostile clients (issue 9): idle sockets, slow-loris heads, clients
//! that never read a segment, floods from one address, many blocking reloads on one h2
//! connection; while a camera streams and normal viewers play.
//!
//! Every check is against the real binary on real sockets. Separate source addresses
//! (127.0.x.y, all on loopback) stand for separate client hosts. Timeouts are short flags
//! (`--http-header-timeout 2s` ...) so the tests are quick; the defaults are checked in
//! `src/config.rs`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

mod flood;
mod limits;
mod slow_reader;

/// A timeout fires at most this late (the server's timer on a loaded 2-core machine).
const LATE: Duration = Duration::from_millis(1500);

/// Raises this process's soft limit on open files to the hard one (thousands of sockets).
pub(super) fn raise_nofile(needed: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= needed,
        "open files limit {} is below the {needed} this test needs",
        lim.rlim_cur
    );
}

/// Resident memory of a process in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Connects to `to` from address `from` (port chosen by the kernel).
pub(super) async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    try_connect_from(from, to)
        .await
        .unwrap_or_else(|e| panic!("connect {from} -> {to}: {e}"))
}

/// [`connect_from`]; a connection the server resets at once may fail already here.
pub(super) async fn try_connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(SocketAddr::new(from, 0))
        .expect("bind source address");
    s.connect(to).await
}

/// Connects from `from` and sends a request; `None` when the server closes the connection
/// without answering, with the time that took.
pub(super) async fn refused_or_served(from: IpAddr, to: SocketAddr) -> Result<TcpStream, Duration> {
    let t = Instant::now();
    let Ok(mut s) = try_connect_from(from, to).await else {
        return Err(t.elapsed());
    };
    match try_get(&mut s, "/healthz").await {
        Some((status, _)) => {
            assert_eq!(status, 200);
            Ok(s)
        }
        None => Err(t.elapsed()),
    }
}

/// Reads until the peer closes (0 or an error such as ECONNRESET); returns the time taken
/// and the bytes read, or `None` if it is still open after `timeout`.
pub(super) async fn until_closed(
    sock: &mut TcpStream,
    timeout: Duration,
) -> Option<(Duration, usize)> {
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        match tokio::time::timeout_at(start + timeout, sock.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((start.elapsed(), got)),
            Ok(Ok(n)) => got += n,
        }
    }
}

/// One request over a raw HTTP/1.1 keep-alive socket: the status code and the body.
pub(super) async fn raw_get(sock: &mut TcpStream, path: &str) -> (u16, Vec<u8>) {
    try_get(sock, path)
        .await
        .unwrap_or_else(|| panic!("connection closed before a response to {path}"))
}

/// [`raw_get`], `None` when the server closes the connection instead of answering.
pub(super) async fn try_get(sock: &mut TcpStream, path: &str) -> Option<(u16, Vec<u8>)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: camstream\r\n\r\n");
    if sock.write_all(req.as_bytes()).await.is_err() {
        return None;
    }
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.read(&mut chunk))
            .await
            .expect("response in time")
        {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let status = head[9..12].parse().expect("status code");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().expect("content-length"));
        if buf.len() >= end + 4 + len {
            return Some((status, buf[end + 4..end + 4 + len].to_vec()));
        }
    }
}

/// The value of one sample in Prometheus text (`name{labels} value`), 0 when absent.
pub(super) fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Sorted copy; (median, max).
pub(super) fn median_max(v: &[Duration]) -> (Duration, Duration) {
    let mut v = v.to_vec();
    v.sort();
    (v[v.len() / 2], *v.last().expect("samples"))
}

/// The 99th percentile.
pub(super) fn p99(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[(v.len() - 1) * 99 / 100]
}
