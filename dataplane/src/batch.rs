//! [`ReadBatch`]: fewer wake-ups per camera by letting the kernel hold small reads back
//! (`SO_RCVLOWAT`), with a timer that bounds how long it may hold them (issue 11).
//!
//! A publisher writes each RTMP message as it has it: a 30 fps camera with AAC sends ~73 a
//! second, and every one of them wakes the runtime's `epoll_wait`, the connection task and a
//! `read`. Audio messages are small (~370 bytes) and come between video frames (~8 KB at
//! 2 Mbit/s). With the socket's receive low-water mark at a quarter of what the camera sends
//! in one batch period (`--ingest-batch`, default 40 ms → ~2.7 KB at 2.2 Mbit/s), the kernel
//! wakes the connection when a video frame arrives (it carries the audio before it along)
//! instead of at every message: video frames above the mark are not delayed, audio (and a
//! video frame below the mark) by at most the batch period. When less than the mark arrives
//! within the period (a pause, a quiet camera), the
//! tail timer lowers the mark to one byte, which makes the kernel report whatever it holds
//! at once (Linux's `tcp_set_rcvlowat` re-checks readiness), and the next read restores it.
//!
//! The mark follows the camera's measured bitrate (once a second); below
//! [`MIN_LOWAT`] bytes a batch is not worth it and the mark stays at one byte. It is capped at
//! [`MAX_LOWAT`]: Linux grows the receive buffer to fit a larger mark and may clamp the
//! advertised window to it, which would throttle a fast camera over a long path.
//!
//! The policy is sans-IO ([`LowatPolicy`]); [`ReadBatch`] adds the socket option and the timer.

use std::os::fd::RawFd;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::debug;

/// Below this mark batching saves too little to be worth a timer; the mark stays at 1.
pub(crate) const MIN_LOWAT: usize = 1024;
/// The highest mark set (see the module docs).
pub(crate) const MAX_LOWAT: usize = 32 << 10;
/// How often the mark follows the bitrate.
const RATE_PERIOD: Duration = Duration::from_secs(1);

/// The mark is this fraction of what the camera sends in one batch period: 10 ms of its
/// bitrate at 40 ms, so a video frame is above it (it wakes the connection on arrival) and
/// an audio frame below it. Measured (`bench/results/ingest-batch/`): half of the period
/// saved as much CPU but held small P-frames back (LL-HLS wake-up after the closing frame
/// p95 4.0 → 10 ms).
const MARK_DIVISOR: u128 = 4;

/// The low-water mark for a camera: a quarter of what it sends in one batch period, or 1
/// (off) when that is too little to be worth it.
pub(crate) fn lowat_for(bytes_per_s: u64, batch: Duration) -> usize {
    let mark = u128::from(bytes_per_s) * batch.as_micros() / (MARK_DIVISOR * 1_000_000);
    let mark = usize::try_from(mark).unwrap_or(usize::MAX);
    if mark < MIN_LOWAT {
        1
    } else {
        mark.min(MAX_LOWAT)
    }
}

/// The mark's policy: bytes counted over [`RATE_PERIOD`], the mark to set when it changes by
/// more than a quarter (a setsockopt is a syscall: not on every wobble of the bitrate).
#[derive(Debug)]
pub(crate) struct LowatPolicy {
    batch: Duration,
    since: Instant,
    bytes: u64,
    /// The mark set on the socket (1: off).
    mark: usize,
}

impl LowatPolicy {
    pub(crate) fn new(batch: Duration, now: Instant) -> Self {
        Self {
            batch,
            since: now,
            bytes: 0,
            mark: 1,
        }
    }

    /// The mark in force.
    pub(crate) fn mark(&self) -> usize {
        self.mark
    }

    /// Counts a read; returns a new mark to set, if it changed enough.
    pub(crate) fn on_read(&mut self, n: usize, now: Instant) -> Option<usize> {
        self.bytes += n as u64;
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < RATE_PERIOD {
            return None;
        }
        let rate = u128::from(self.bytes) * 1_000_000 / elapsed.as_micros().max(1);
        let want = lowat_for(u64::try_from(rate).unwrap_or(u64::MAX), self.batch);
        self.since = now;
        self.bytes = 0;
        let changed = if self.mark == 1 || want == 1 {
            want != self.mark
        } else {
            want.abs_diff(self.mark) * 4 > self.mark
        };
        if changed {
            self.mark = want;
            Some(want)
        } else {
            None
        }
    }
}

/// Batched reads on one TCP socket; see the module docs.
pub(crate) struct ReadBatch {
    fd: RawFd,
    batch: Duration,
    policy: LowatPolicy,
    /// The tail timer lowered the mark to 1; the next read restores it.
    lowered: bool,
    tail: Pin<Box<Sleep>>,
    tail_armed: bool,
}

impl ReadBatch {
    /// Batching for the socket `fd` (which must outlive this), `batch` the longest a byte may
    /// wait in the kernel beyond the mark.
    pub(crate) fn new(fd: RawFd, batch: Duration) -> Self {
        let now = Instant::now();
        Self {
            fd,
            batch,
            policy: LowatPolicy::new(batch, now),
            lowered: false,
            tail: Box::pin(tokio::time::sleep_until(now + batch)),
            tail_armed: false,
        }
    }

    /// After a read of `n` bytes: restore or update the mark, re-arm the tail timer.
    pub(crate) fn after_read(&mut self, n: usize) {
        let now = Instant::now();
        let update = self.policy.on_read(n, now);
        if let Some(mark) = update {
            debug!(lowat = mark, "ingest read batching: low-water mark");
        }
        if update.is_some() || self.lowered {
            set_lowat(self.fd, self.policy.mark());
            self.lowered = false;
        }
        if self.policy.mark() > 1 {
            // A later instant only updates the entry (tokio extends it without a re-insert).
            self.tail.as_mut().reset(now + self.batch);
            self.tail_armed = true;
        } else {
            self.tail_armed = false;
        }
    }

    /// Sets the mark now, whatever the bitrate (tests).
    #[cfg(test)]
    fn force_mark(&mut self, mark: usize) {
        self.policy.mark = mark;
        set_lowat(self.fd, mark);
        self.tail.as_mut().reset(Instant::now() + self.batch);
        self.tail_armed = true;
    }

    /// Resolves when bytes below the mark waited a batch period; the mark is then lowered
    /// so the kernel reports them.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future leaves the timer armed.
    pub(crate) async fn tail(&mut self) {
        if !self.tail_armed {
            std::future::pending::<()>().await;
        }
        self.tail.as_mut().await;
        self.tail_armed = false;
        set_lowat(self.fd, 1);
        self.lowered = true;
    }
}

/// Optional batching: never fires without one.
pub(crate) async fn tail(batch: &mut Option<ReadBatch>) {
    match batch {
        Some(b) => b.tail().await,
        None => std::future::pending().await,
    }
}

fn set_lowat(fd: RawFd, bytes: usize) {
    let val = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // `fd` is the connection's open socket (it outlives the batch, see `new`).
    if let Err(e) = crate::sockopt::set_int(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT, val) {
        debug!(error = %e, "SO_RCVLOWAT");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use std::os::fd::AsRawFd;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::{LowatPolicy, MAX_LOWAT, ReadBatch, lowat_for};

    /// Reads once as the ingest loop does (the tail lowers the mark, the read restores it);
    /// returns the bytes and how long after `from` they came.
    async fn read_once(
        sock: &mut TcpStream,
        batch: &mut ReadBatch,
        from: Instant,
    ) -> (usize, Duration) {
        let mut buf = bytes::BytesMut::with_capacity(64 << 10);
        loop {
            tokio::select! {
                r = sock.read_buf(&mut buf) => {
                    let n = r.expect("read");
                    batch.after_read(n);
                    return (n, from.elapsed());
                }
                () = batch.tail() => {}
            }
        }
    }

    /// Over a real socket: bytes below the mark wait in the kernel until the tail timer
    /// releases them (a batch period), and a write above it is read at once.
    #[tokio::test]
    async fn the_kernel_holds_small_writes_until_the_tail_and_wakes_for_large_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        // A long period, so "held" and "at once" are far apart on a loaded machine.
        let period = Duration::from_millis(400);
        let mut batch = ReadBatch::new(server.as_raw_fd(), period);
        // An established flow first, as a publisher's is when batching starts.
        client.write_all(&[0; 10]).await.expect("write");
        let (n, _) = read_once(&mut server, &mut batch, Instant::now()).await;
        assert_eq!(n, 10);
        batch.force_mark(4_000);

        let sent = Instant::now();
        client.write_all(&[1; 300]).await.expect("write");
        let (n, after) = read_once(&mut server, &mut batch, sent).await;
        assert_eq!(n, 300);
        assert!(
            after >= Duration::from_millis(350) && after < Duration::from_secs(5),
            "300 bytes under a 4,000-byte mark came after {after:?}, not after the 400 ms tail"
        );

        let sent = Instant::now();
        client.write_all(&[2; 6_000]).await.expect("write");
        let mut got = 0;
        let mut last = Duration::ZERO;
        while got < 6_000 {
            let (n, after) = read_once(&mut server, &mut batch, sent).await;
            got += n;
            last = after;
        }
        assert!(
            last < Duration::from_millis(300),
            "6,000 bytes over a 4,000-byte mark took {last:?} (the kernel should wake at once)"
        );
    }

    #[test]
    fn the_mark_is_a_quarter_batch_of_the_bitrate_within_bounds() {
        let ms20 = Duration::from_millis(20);
        let ms40 = Duration::from_millis(40);
        // 2.2 Mbit/s = 275,000 B/s: 40 ms = 11,000 B, a quarter = 2,750.
        assert_eq!(lowat_for(275_000, ms40), 2_750);
        assert_eq!(lowat_for(275_000, ms20), 1_375);
        // A 64 kbit/s audio-only stream: 80 B, not worth it.
        assert_eq!(lowat_for(8_000, ms40), 1);
        // 100 Mbit/s: capped.
        assert_eq!(lowat_for(12_500_000, ms40), MAX_LOWAT);
        assert_eq!(lowat_for(275_000, Duration::ZERO), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_policy_follows_the_bitrate_once_a_second_and_ignores_wobbles() {
        let start = Instant::now();
        let mut p = LowatPolicy::new(Duration::from_millis(40), start);
        // Nothing before a full second has been seen.
        assert_eq!(p.on_read(100_000, start + Duration::from_millis(500)), None);
        assert_eq!(p.mark(), 1);
        // 275,000 B over the first second.
        assert_eq!(
            p.on_read(175_000, start + Duration::from_secs(1)),
            Some(2_750)
        );
        // 10 % more the next second: kept.
        assert_eq!(p.on_read(302_500, start + Duration::from_secs(2)), None);
        assert_eq!(p.mark(), 2_750);
        // Doubled: followed.
        assert_eq!(
            p.on_read(550_000, start + Duration::from_secs(3)),
            Some(5_500)
        );
        // The camera went quiet (a trickle): off.
        assert_eq!(p.on_read(1_000, start + Duration::from_secs(4)), Some(1));
    }
}
