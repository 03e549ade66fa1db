//! The clocks of one HTTP connection and the decision when to cut it: header-read, idle
//! keep-alive and write timeouts for HTTP/1.1 and h2 alike.
//!
//! Owns: what counts as a request in progress, an idle connection, a request head under
//! way, a stalled request body (slow POST) and a stalled write, and the next instant worth
//! checking. The socket wrapper and the service/body wrappers (`watch`) feed it events;
//! the connection's driver (`serve`) asks [`Conn::check`] at the instants it returns and
//! drops the connection on [`Check::Cut`]. Nothing here reads a socket or sleeps.
//!
//! Known gap: with HTTP/1.1 pipelining, bytes of the next head that arrive while a request
//! is in progress do not start its header clock; such a head gets the idle timeout.
//!
//! Why not hyper's own `header_read_timeout`: hyper 1.x starts that timer as soon as an
//! HTTP/1.1 connection waits for its next request, so it also cuts idle keep-alive
//! connections at the header timeout, and it does nothing for h2. Here the three timeouts
//! are separate and apply to both protocols.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::limits::{HttpLimits, MIN_PROGRESS};

/// Which timeout cut a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// The request head did not arrive in time (slow-loris, idle new sockets).
    Header,
    /// No request for the idle timeout.
    Idle,
    /// The client did not take a response.
    Write,
    /// A request body stopped arriving (slow POST).
    Body,
}

impl Timeout {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Idle => "idle",
            Timeout::Write => "write",
            Timeout::Body => "body",
        }
    }
}

/// What the driver should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Close the connection now.
    Cut(Timeout),
    /// Check again at this instant (nothing can expire before).
    At(Instant),
}

/// Times are stored as milliseconds since the connection's start, plus one; 0 is "none".
const NONE: u64 = 0;

/// The state of one connection, shared by its socket wrapper, its requests' guards and
/// bodies, and its driver. All fields are atomics: h2 streams run on their own tasks.
#[derive(Debug)]
pub(crate) struct Conn {
    start: Instant,
    header_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    /// The connection speaks h2 (ALPN or the prior-knowledge preface).
    h2: AtomicBool,
    /// First byte read while no request was in progress (an HTTP/1.1 head under way).
    head_started: AtomicU64,
    /// A write has been blocked since then, with `stall_taken` bytes taken since.
    stall_since: AtomicU64,
    stall_taken: AtomicU64,
    /// Requests in progress: from the service call until the response body is dropped.
    active: AtomicUsize,
    /// Requests started on this connection.
    served: AtomicU64,
    /// When `active` last dropped to zero.
    idle_since: AtomicU64,
    /// Clocks of response bodies alive on this connection.
    bodies: Mutex<Vec<Weak<BodyClock>>>,
    /// Clocks of request bodies being read.
    uploads: Mutex<Vec<Weak<UploadClock>>>,
    /// Blocking playlist reloads that may wait at once.
    pub(crate) reloads: Arc<Semaphore>,
}

impl Conn {
    /// A connection accepted at `start`.
    pub(crate) fn new(limits: &HttpLimits, start: Instant) -> Self {
        Self {
            start,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            write_timeout: limits.write_timeout,
            h2: AtomicBool::new(false),
            head_started: AtomicU64::new(NONE),
            stall_since: AtomicU64::new(NONE),
            stall_taken: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(NONE),
            bodies: Mutex::new(Vec::new()),
            uploads: Mutex::new(Vec::new()),
            reloads: Arc::new(Semaphore::new(limits.max_blocking_reloads)),
        }
    }

    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_millis() as u64 + 1
    }

    fn instant(&self, stamp: u64) -> Instant {
        self.start + Duration::from_millis(stamp.saturating_sub(1))
    }

    /// Marks the connection as h2: after its first request only the idle timeout applies
    /// between requests (h2 peers send PING, SETTINGS and WINDOW_UPDATE frames at any
    /// time, so bytes read are no sign of a request under way).
    pub(crate) fn set_h2(&self) {
        self.h2.store(true, Ordering::Relaxed);
    }

    /// Bytes came from the client.
    pub(crate) fn on_read(&self, now: Instant) {
        if self.active.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            self.head_started.store(self.stamp(now), Ordering::Relaxed);
        }
    }

    /// A write (or flush) could not proceed: the client is not taking bytes.
    pub(crate) fn on_write_blocked(&self, now: Instant) {
        if self.stall_since.load(Ordering::Relaxed) == NONE {
            self.stall_taken.store(0, Ordering::Relaxed);
            self.stall_since.store(self.stamp(now), Ordering::Relaxed);
        }
    }

    /// The socket took `n` bytes; `all` when it took everything offered. A stall ends
    /// when the client took everything or at least [`MIN_PROGRESS`] bytes.
    pub(crate) fn on_written(&self, n: usize, all: bool) {
        if self.stall_since.load(Ordering::Relaxed) == NONE {
            return;
        }
        let taken = self.stall_taken.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if all || taken >= MIN_PROGRESS {
            self.stall_since.store(NONE, Ordering::Relaxed);
        }
    }

    /// A request reached the service. The guard ends it when dropped (with the response
    /// body, or with the handler's future if the request was abandoned).
    pub(crate) fn begin_request(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    /// A response body starts; its clock is watched until the body is dropped.
    pub(crate) fn watch_body(&self, now: Instant) -> Arc<BodyClock> {
        let clock = Arc::new(BodyClock {
            waiting: AtomicU64::new(self.stamp(now)),
        });
        let mut bodies = self.bodies.lock().expect("bodies lock");
        bodies.retain(|w| w.strong_count() > 0);
        bodies.push(Arc::downgrade(&clock));
        clock
    }

    /// A request body will be read; its clock is watched until the body is dropped.
    pub(crate) fn watch_upload(&self) -> Arc<UploadClock> {
        let clock = Arc::new(UploadClock {
            since: AtomicU64::new(NONE),
            taken: AtomicU64::new(0),
        });
        let mut uploads = self.uploads.lock().expect("uploads lock");
        uploads.retain(|w| w.strong_count() > 0);
        uploads.push(Arc::downgrade(&clock));
        clock
    }

    /// Whether the connection must be cut at `now`, else when to ask again.
    pub(crate) fn check(&self, now: Instant) -> Check {
        let shortest = self
            .header_timeout
            .min(self.idle_timeout)
            .min(self.write_timeout);
        // A deadline not known yet starts at the earliest now, so it cannot expire before
        // now + the shortest timeout: asking again then never misses one.
        let mut next = now + shortest;
        let mut due = |stamp: u64, timeout: Duration, kind: Timeout| -> Option<Timeout> {
            let at = self.instant(stamp) + timeout;
            if now >= at {
                return Some(kind);
            }
            next = next.min(at);
            None
        };
        let stall = self.stall_since.load(Ordering::Relaxed);
        if stall != NONE
            && let Some(t) = due(stall, self.write_timeout, Timeout::Write)
        {
            return Check::Cut(t);
        }
        {
            let bodies = self.bodies.lock().expect("bodies lock");
            for clock in bodies.iter().filter_map(Weak::upgrade) {
                let since = clock.waiting.load(Ordering::Relaxed);
                if since != NONE
                    && let Some(t) = due(since, self.write_timeout, Timeout::Write)
                {
                    return Check::Cut(t);
                }
            }
        }
        {
            let uploads = self.uploads.lock().expect("uploads lock");
            for clock in uploads.iter().filter_map(Weak::upgrade) {
                let since = clock.since.load(Ordering::Relaxed);
                if since != NONE
                    && let Some(t) = due(since, self.header_timeout, Timeout::Body)
                {
                    return Check::Cut(t);
                }
            }
        }
        if self.active.load(Ordering::Relaxed) == 0 {
            let head = self.head_started.load(Ordering::Relaxed);
            let (since, timeout, kind) = if self.served.load(Ordering::Relaxed) == 0 {
                // The first request's head must arrive within the header timeout of the
                // accept: idle sockets and slow-loris clients alike.
                (1, self.header_timeout, Timeout::Header)
            } else if head != NONE && !self.h2.load(Ordering::Relaxed) {
                (head, self.header_timeout, Timeout::Header)
            } else {
                (
                    self.idle_since.load(Ordering::Relaxed),
                    self.idle_timeout,
                    Timeout::Idle,
                )
            };
            if let Some(t) = due(since, timeout, kind) {
                return Check::Cut(t);
            }
        }
        Check::At(next)
    }
}

/// A request in progress; ends it on drop.
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<Conn>);

impl ActiveGuard {
    pub(crate) fn conn(&self) -> &Arc<Conn> {
        &self.0
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let conn = &self.0;
        if conn.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            conn.idle_since
                .store(conn.stamp(Instant::now()), Ordering::Relaxed);
            // Bytes read while a request was in progress belonged to it (or to a pipelined
            // head hyper parses next); the next head's clock starts with its next byte.
            conn.head_started.store(NONE, Ordering::Relaxed);
        }
    }
}

/// Whether a response body waits on the client.
#[derive(Debug)]
pub(crate) struct BodyClock {
    /// Stamp of the moment the body handed out data (or was created) and has not been
    /// asked for more since; [`NONE`] while the body itself is pending or finished.
    waiting: AtomicU64,
}

impl BodyClock {
    /// The body handed out a frame at `now` (or was created): the client must take it.
    pub(crate) fn gave(&self, conn: &Conn, now: Instant) {
        self.waiting.store(conn.stamp(now), Ordering::Relaxed);
    }

    /// The body is pending on its own source or finished: not the client's fault.
    pub(crate) fn rests(&self) {
        self.waiting.store(NONE, Ordering::Relaxed);
    }
}

/// Whether a request body is being waited for: the handler asked for bytes the client has
/// not sent. Like a head, a body must arrive at [`MIN_PROGRESS`] bytes per header timeout
/// at least, so one byte now and then (slow POST) is cut like a slow-loris head.
#[derive(Debug)]
pub(crate) struct UploadClock {
    /// Stamp of the first unanswered ask since the client last sent enough; [`NONE`] while
    /// the body is not waited for.
    since: AtomicU64,
    taken: AtomicU64,
}

impl UploadClock {
    /// The handler asked for more and the client has not sent it yet.
    pub(crate) fn waiting(&self, conn: &Conn, now: Instant) {
        if self.since.load(Ordering::Relaxed) == NONE {
            self.taken.store(0, Ordering::Relaxed);
            self.since.store(conn.stamp(now), Ordering::Relaxed);
        }
    }

    /// `n` bytes of the body arrived; `done` when it is complete.
    pub(crate) fn got(&self, n: usize, done: bool) {
        let taken = self.taken.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if done || taken >= MIN_PROGRESS {
            self.taken.store(0, Ordering::Relaxed);
            self.since.store(NONE, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn conn(t0: Instant) -> Arc<Conn> {
        Arc::new(Conn::new(
            &HttpLimits {
                header_timeout: 2 * S,
                idle_timeout: 5 * S,
                write_timeout: 3 * S,
                ..HttpLimits::default()
            },
            t0,
        ))
    }

    #[test]
    fn first_head_must_arrive_within_the_header_timeout_of_the_accept() {
        let t0 = Instant::now();
        let c = conn(t0);
        assert_eq!(c.check(t0), Check::At(t0 + 2 * S));
        // Trickled bytes do not extend it.
        c.on_read(t0 + S);
        assert_eq!(c.check(t0 + S), Check::At(t0 + 2 * S));
        assert_eq!(c.check(t0 + 2 * S), Check::Cut(Timeout::Header));
    }

    #[test]
    fn keep_alive_waits_the_idle_timeout_then_the_header_timeout_from_the_first_byte() {
        let t0 = Instant::now();
        let c = conn(t0);
        let g = c.begin_request();
        // A request in progress (a blocking reload) is never cut for idleness.
        assert!(matches!(c.check(t0 + 60 * S), Check::At(_)));
        drop(g);
        let idle = Instant::now();
        assert!(matches!(c.check(idle), Check::At(_)));
        assert!(matches!(c.check(idle + 4 * S), Check::At(_)));
        // Round down to the stamp's millisecond.
        assert!(matches!(
            c.check(idle + 5 * S + Duration::from_millis(1)),
            Check::Cut(Timeout::Idle)
        ));
        // Had a head started at idle + 1 s, the header timeout would run from there.
        c.on_read(idle + S);
        assert!(matches!(
            c.check(idle + 3 * S + Duration::from_millis(1)),
            Check::Cut(Timeout::Header)
        ));
    }

    #[test]
    fn h2_ignores_bytes_between_requests() {
        let t0 = Instant::now();
        let c = conn(t0);
        c.set_h2();
        drop(c.begin_request());
        let idle = Instant::now();
        c.on_read(idle + S);
        assert!(matches!(c.check(idle + 4 * S), Check::At(_)));
        assert!(matches!(
            c.check(idle + 5 * S + Duration::from_millis(1)),
            Check::Cut(Timeout::Idle)
        ));
    }

    #[test]
    fn a_blocked_write_is_cut_unless_the_client_takes_enough() {
        let t0 = Instant::now();
        let c = conn(t0);
        let _g = c.begin_request();
        c.on_write_blocked(t0);
        assert_eq!(c.check(t0 + S), Check::At(t0 + 3 * S));
        // A trickle does not reset the clock...
        c.on_written(100, false);
        c.on_write_blocked(t0 + 2 * S);
        assert_eq!(c.check(t0 + 3 * S), Check::Cut(Timeout::Write));
        // ...taking a good share does, and so does taking everything.
        c.on_written(MIN_PROGRESS as usize, false);
        assert!(matches!(c.check(t0 + 3 * S), Check::At(_)));
        c.on_write_blocked(t0 + 3 * S);
        c.on_written(10, true);
        assert!(matches!(c.check(t0 + 10 * S), Check::At(_)));
    }

    #[test]
    fn a_request_body_must_keep_arriving() {
        let t0 = Instant::now();
        let c = conn(t0);
        let _g = c.begin_request();
        let up = c.watch_upload();
        // Not waited for yet (the handler has not asked): nothing runs.
        assert!(matches!(c.check(t0 + 60 * S), Check::At(_)));
        up.waiting(&c, t0);
        up.got(10, false);
        up.waiting(&c, t0 + S);
        // A trickle does not restart the header timeout (2 s here).
        assert_eq!(c.check(t0 + S), Check::At(t0 + 2 * S));
        assert_eq!(c.check(t0 + 2 * S), Check::Cut(Timeout::Body));
        // Enough bytes, or the end of the body, do.
        up.got(MIN_PROGRESS as usize, false);
        assert!(matches!(c.check(t0 + 2 * S), Check::At(_)));
        up.waiting(&c, t0 + 2 * S);
        up.got(1, true);
        assert!(matches!(c.check(t0 + 60 * S), Check::At(_)));
        drop(up);
        assert!(matches!(c.check(t0 + 60 * S), Check::At(_)));
    }

    #[test]
    fn a_body_not_asked_for_more_is_cut_a_pending_one_is_not() {
        let t0 = Instant::now();
        let c = conn(t0);
        let _g = c.begin_request();
        let clock = c.watch_body(t0);
        assert_eq!(c.check(t0 + S), Check::At(t0 + 3 * S));
        clock.gave(&c, t0 + 2 * S);
        assert_eq!(c.check(t0 + 4 * S), Check::At(t0 + 5 * S));
        assert_eq!(c.check(t0 + 5 * S), Check::Cut(Timeout::Write));
        // A body waiting on its own source (an event stream) is fine for any time.
        clock.rests();
        assert!(matches!(c.check(t0 + 60 * S), Check::At(_)));
        // A dropped body's clock is forgotten.
        clock.gave(&c, t0);
        drop(clock);
        assert!(matches!(c.check(t0 + 60 * S), Check::At(_)));
    }
}
