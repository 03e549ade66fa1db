//! Limits of the HTTP edge (the `--http-addr` and `--https-addr` listeners, HLS and the
//! control plane's API alike): timeouts per connection, caps on connections in total and
//! per client address, and on blocking playlist reloads per connection.
//!
//! Owns: the limits' values and defaults, admission of accepted sockets ([`Gate`]) and the
//! refusal metric and log. Leaves the per-connection clocks to `conn`, the accept loop to
//! `server`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

/// The HTTP edge's limits. The defaults suit a public server; each is a `camstream serve`
/// flag (`--http-header-timeout` ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request head (line and headers) must arrive within this, counted from the accept
    /// for a connection's first request (TLS handshake included) and from the first byte of
    /// each later one. Default 10 s: a real client sends its head in one packet; this only
    /// has to cover a slow mobile link's round trips. Slow-loris clients are cut here. A
    /// request body the handler waits for must come at [`MIN_PROGRESS`] bytes per this
    /// time too (slow POST).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this. Default
    /// 60 s: players reload every part or segment (0.2–2 s) and browsers keep idle
    /// connections for about a minute. A blocking reload is a request in progress, so its
    /// legitimate wait (up to three target durations) is never cut here.
    pub idle_timeout: Duration,
    /// A response the client does not take is cut after this: the socket accepted less
    /// than [`MIN_PROGRESS`] bytes for this long, or (h2 flow control, full buffers) a
    /// body was not asked for its next bytes for this long. The connection is closed and
    /// everything it held (segment `Bytes`) released. Default 30 s: 15 segment durations, far
    /// beyond any player that could still play; a waiting blocking reload writes nothing
    /// and is not a stalled write.
    pub write_timeout: Duration,
    /// Open HTTP and HTTPS connections together; more are closed at once. Default 20,000
    /// (each idle connection costs about 10–20 KiB; see README "HTTP limits").
    pub max_connections: usize,
    /// Open connections per client address (IPv6 per /64); more are closed at once.
    /// Default 512: generous for a NAT of viewers, small against one host's flood.
    pub max_connections_per_ip: usize,
    /// Blocking playlist reloads (`_HLS_msn`) waiting at once on one connection; more get
    /// 429. Default 16: a player has one outstanding, h2 may multiplex a few renditions.
    pub max_blocking_reloads: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: 20_000,
            max_connections_per_ip: 512,
            max_blocking_reloads: 16,
        }
    }
}

/// A blocked write must see at least this many bytes taken by the client per write
/// timeout, or it counts as stalled: a client reading a trickle (a few bytes at a time,
/// to keep a segment pinned) is cut like one that reads nothing. 64 KiB per 30 s is about
/// 17 kbit/s, far below any playable stream.
pub const MIN_PROGRESS: u64 = 64 * 1024;

/// Why an accepted socket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// [`HttpLimits::max_connections`].
    Total,
    /// [`HttpLimits::max_connections_per_ip`].
    PerIp,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerIp => "max_connections_per_ip",
        }
    }
}

/// The key a client address is counted under: IPv4 (also v4-mapped v6) as is, IPv6 per
/// /64, since one host usually owns a whole /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Admission of accepted sockets, shared by the HTTP and HTTPS listeners.
#[derive(Debug)]
pub(crate) struct Gate {
    total: Arc<Semaphore>,
    per_ip_max: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    log: [RateLimitedLog; 2],
}

/// An admitted connection's place; frees it on drop.
#[derive(Debug)]
pub(crate) struct Admission {
    gate: Arc<Gate>,
    key: IpAddr,
    _total: OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut map = self.gate.per_ip.lock().expect("per-ip lock");
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
        drop(map);
        metrics::gauge!("camstream_http_connections").decrement(1.0);
    }
}

impl Gate {
    pub(crate) fn new(limits: &HttpLimits) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_ip_max: limits.max_connections_per_ip,
            per_ip: Mutex::new(HashMap::new()),
            log: [RateLimitedLog::default(), RateLimitedLog::default()],
        })
    }

    /// Admits a connection from `ip`, or says why not (counted in
    /// `camstream_http_connections_refused_total{reason}` and logged: each refusal at
    /// debug, a summary at most every [`LOG_EVERY`] at warn).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let r = self.try_admit(ip);
        if let Err(why) = r {
            metrics::counter!("camstream_http_connections_refused_total", "reason" => why.label())
                .increment(1);
            debug!(%ip, reason = why.label(), "http connection refused");
            let log = &self.log[why as usize];
            if let Some(suppressed) = log.should_log(Instant::now()) {
                warn!(
                    %ip,
                    reason = why.label(),
                    refused_since_last_warning = suppressed,
                    "http connection limit reached; connections are closed at once"
                );
            }
        }
        r
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let key = ip_key(ip);
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Total)?;
        let mut map = self.per_ip.lock().expect("per-ip lock");
        let n = map.entry(key).or_insert(0);
        if *n >= self.per_ip_max {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        drop(map);
        metrics::gauge!("camstream_http_connections").increment(1.0);
        Ok(Admission {
            gate: self.clone(),
            key,
            _total: total,
        })
    }

    /// Connections open from `ip`'s key (tests).
    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        let map = self.per_ip.lock().expect("per-ip lock");
        map.get(&ip_key(ip)).copied().unwrap_or(0)
    }
}

/// How often a refusal summary is logged at warn.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Lets one warning through per [`LOG_EVERY`], counting the events in between.
#[derive(Debug, Default)]
pub(crate) struct RateLimitedLog {
    /// Milliseconds since `BASE` of the last warning, plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    /// `Some(events suppressed since the last warning)` when a warning is due now.
    pub(crate) fn should_log(&self, now: Instant) -> Option<u64> {
        let now_ms = millis_since_base(now) + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < LOG_EVERY.as_millis() as u64 {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // One of several racing callers wins the slot.
        self.last
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| self.suppressed.swap(0, Ordering::Relaxed))
    }
}

fn millis_since_base(now: Instant) -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    now.saturating_duration_since(base).as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> HttpLimits {
        HttpLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..HttpLimits::default()
        }
    }

    #[test]
    fn per_ip_cap_counts_each_address_and_frees_on_drop() {
        let gate = Gate::new(&limits(10, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refusal::PerIp);
        let _b1 = gate.admit(b).unwrap();
        drop(a1);
        assert_eq!(gate.open_from(a), 1);
        let _a3 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refusal::PerIp);
    }

    #[test]
    fn total_cap_spans_addresses() {
        let gate = Gate::new(&limits(2, 5));
        let x = gate.admit("10.0.0.1".parse().unwrap()).unwrap();
        let _y = gate.admit("10.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(
            gate.admit("10.0.0.3".parse().unwrap()).unwrap_err(),
            Refusal::Total
        );
        drop(x);
        assert!(gate.admit("10.0.0.3".parse().unwrap()).is_ok());
    }

    #[test]
    fn refused_per_ip_does_not_leak_a_total_slot() {
        let gate = Gate::new(&limits(2, 1));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _a = gate.admit(ip).unwrap();
        for _ in 0..5 {
            assert_eq!(gate.admit(ip).unwrap_err(), Refusal::PerIp);
        }
        assert!(gate.admit("10.0.0.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let gate = Gate::new(&limits(10, 1));
        let _a = gate.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            gate.admit("2001:db8:1:2:ffff::9".parse().unwrap())
                .unwrap_err(),
            Refusal::PerIp
        );
        assert!(gate.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
        let _v4 = gate.admit("192.0.2.7".parse().unwrap()).unwrap();
        assert_eq!(
            gate.admit("::ffff:192.0.2.7".parse().unwrap()).unwrap_err(),
            Refusal::PerIp
        );
    }

    #[test]
    fn warnings_are_rate_limited() {
        let log = RateLimitedLog::default();
        let t0 = Instant::now();
        assert_eq!(log.should_log(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(log.should_log(t0 + Duration::from_millis(i * 100)), None);
        }
        assert_eq!(log.should_log(t0 + LOG_EVERY), Some(5));
        assert_eq!(log.should_log(t0 + LOG_EVERY), None);
    }
}
