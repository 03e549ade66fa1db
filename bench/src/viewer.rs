//! HLS and LL-HLS viewers that fetch what hls.js fetches, in the same order.
//!
//! Classic HLS (hls.js defaults): start three segments from the live edge
//! (`liveSyncDurationCount` 3), fetch segments in order, reload the playlist every target
//! duration, or half of it when it did not change (RFC 8216 §6.3.4).
//! LL-HLS (hls.js `lowLatencyMode`): start at the independent part `PART-HOLD-BACK` from
//! the end, fetch parts in order, and when none is left, ask for the next one with a
//! blocking playlist reload (`_HLS_msn`/`_HLS_part`, plus `_HLS_skip=YES` when the server
//! offers delta updates; RFC 8216bis §6.2.5.2, §6.3.7). A viewer that falls out of the
//! window jumps back to the live edge (a "resync", and its frames count as missing).
//!
//! Each downloaded body is searched for frame markers; `player::Tracker` does the math.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use bytes::{Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use crate::marker::{self, Marker};
use crate::metrics::{Flavor, Metrics, ViewerResult};
use crate::player::{Tracker, wakeup_us};
use crate::playlist::{MediaPlaylist, Playlist, resolve};
use crate::ts;

/// Largest playlist a viewer reads.
const MAX_PLAYLIST: usize = 1 << 20;
/// Largest segment or part a viewer reads.
const MAX_MEDIA: usize = 64 << 20;
/// How long a viewer waits for its camera's playlist to appear.
const STARTUP: Duration = Duration::from_secs(30);
const MEDIA_TIMEOUT: Duration = Duration::from_secs(10);

/// Who watches what.
#[derive(Debug, Clone)]
pub(crate) struct ViewerSpec {
    pub(crate) camera: u32,
    pub(crate) flavor: Flavor,
    pub(crate) url: String,
}

/// An HTTP answer.
struct Got {
    status: u16,
    body: Bytes,
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    cap: usize,
) -> anyhow::Result<Got> {
    let mut resp = client.get(url).timeout(timeout).send().await?;
    let status = resp.status().as_u16();
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            bail!("body of {url} exceeds {cap} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Got {
        status,
        body: body.freeze(),
    })
}

/// The markers in a segment or part: TS is searched per PID, anything else as it is.
fn markers_in(body: &[u8], flavor: Flavor) -> Vec<Marker> {
    let mut out = Vec::new();
    match flavor {
        Flavor::Hls => match ts::pid_payloads(body) {
            Ok(pids) => pids.values().for_each(|p| marker::find(p, &mut out)),
            Err(_) => marker::find(body, &mut out),
        },
        Flavor::LlHls => marker::find(body, &mut out),
    }
    out
}

struct Viewer {
    spec: ViewerSpec,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tracker: Tracker,
    result: ViewerResult,
    url: String,
}

impl Viewer {
    fn now(&self) -> u64 {
        self.metrics.clock.now_us()
    }

    fn http_error(&mut self, what: &str, detail: String) {
        self.result.http_errors += 1;
        Metrics::add(&self.metrics.http_errors, 1);
        self.metrics.error(format!("viewer {what}: {detail}"));
    }

    /// Sleeps unless the run stops first; returns false when it stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }

    /// Fetches the playlist until it exists (404 while the camera starts is expected).
    async fn first_playlist(&mut self) -> anyhow::Result<Option<MediaPlaylist>> {
        let deadline = tokio::time::Instant::now() + STARTUP;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match get(&self.client, &self.url, MEDIA_TIMEOUT, MAX_PLAYLIST).await {
                Ok(g) if g.status == 200 => {
                    match Playlist::parse(&String::from_utf8_lossy(&g.body))? {
                        Playlist::Media(p)
                            if !p.segments.is_empty() || !p.trailing_parts.is_empty() =>
                        {
                            return Ok(Some(p));
                        }
                        Playlist::Media(_) => last = "empty playlist".into(),
                        Playlist::Multivariant(v) => {
                            let first = v
                                .first()
                                .ok_or_else(|| anyhow!("multivariant playlist without variants"))?;
                            self.url = resolve(&self.url, first);
                            continue;
                        }
                    }
                }
                Ok(g) => last = format!("http {}", g.status),
                Err(e) => last = format!("{e}"),
            }
            if !self.pause(Duration::from_millis(500)).await {
                return Ok(None);
            }
        }
        bail!(
            "playlist {} did not appear within {}s (last: {last})",
            self.url,
            STARTUP.as_secs()
        )
    }

    /// Downloads one part or segment and accounts for its frames.
    async fn fetch_media(&mut self, uri: &str, available_us: Option<u64>) -> Option<Vec<Marker>> {
        let url = resolve(&self.url, uri);
        let t0 = self.now();
        let got = match get(&self.client, &url, MEDIA_TIMEOUT, MAX_MEDIA).await {
            Ok(g) if g.status == 200 => g,
            Ok(g) => {
                self.http_error("media", format!("http {}", g.status));
                return None;
            }
            Err(e) => {
                self.http_error("media", short(&e));
                return None;
            }
        };
        let t1 = self.now();
        let flavor = self.spec.flavor;
        let hists = self.metrics.flavor(flavor);
        hists.fetch.record(t1 - t0);
        self.result.bytes += got.body.len() as u64;
        Metrics::add(&self.metrics.viewer_bytes, got.body.len() as u64);
        let markers = markers_in(&got.body, flavor);
        let ledger = &self.metrics.cameras[self.spec.camera as usize];
        let before = self.tracker.frames;
        let stalls_before = self.tracker.clock().stalls;
        let short_before = self.tracker.clock().stalls_1ms;
        let settled_before = self.tracker.clock().settled_stalls;
        self.tracker.on_media(
            &markers,
            available_us,
            t1,
            |s| ledger.ingest_us(s),
            |l| {
                if let Some(a) = l.ingest_to_available {
                    hists.ingest_to_available.record(a);
                }
                hists.delivery.record(l.delivery);
                hists.glass_to_glass.record(l.glass_to_glass);
            },
        );
        Metrics::add(&self.metrics.viewer_frames, self.tracker.frames - before);
        Metrics::add(
            &self.metrics.stalls,
            self.tracker.clock().stalls - stalls_before,
        );
        Metrics::add(
            &self.metrics.stalls_1ms,
            self.tracker.clock().stalls_1ms - short_before,
        );
        Metrics::add(
            &self.metrics.settled_stalls,
            self.tracker.clock().settled_stalls - settled_before,
        );
        Some(markers)
    }

    async fn run_hls(&mut self) -> anyhow::Result<()> {
        let Some(mut pl) = self.first_playlist().await? else {
            return Ok(());
        };
        self.result.started = true;
        let last = pl.next_msn().saturating_sub(1);
        let first = pl.segments.first().map_or(last, |s| s.msn);
        let mut next = last.saturating_sub(2).max(first);
        let mut listed_at: HashMap<u64, u64> = HashMap::new();
        loop {
            let todo: Vec<(u64, String)> = pl
                .segments
                .iter()
                .filter(|s| s.msn >= next)
                .map(|s| (s.msn, s.uri.clone()))
                .collect();
            for (msn, uri) in todo {
                if self.stop.is_cancelled() {
                    return Ok(());
                }
                self.fetch_media(&uri, listed_at.remove(&msn)).await;
                next = msn + 1;
            }
            if pl.endlist {
                return Ok(());
            }
            let changed_wait = Duration::from_secs_f64(pl.target_duration.max(0.5));
            let mut wait = changed_wait;
            loop {
                if !self.pause(wait).await {
                    return Ok(());
                }
                let got = match get(&self.client, &self.url, MEDIA_TIMEOUT, MAX_PLAYLIST).await {
                    Ok(g) if g.status == 200 => g,
                    Ok(g) => {
                        self.http_error("playlist", format!("http {}", g.status));
                        continue;
                    }
                    Err(e) => {
                        self.http_error("playlist", short(&e));
                        continue;
                    }
                };
                let t = self.now();
                let Playlist::Media(np) = Playlist::parse(&String::from_utf8_lossy(&got.body))?
                else {
                    bail!("playlist turned multivariant");
                };
                let old_next = pl.next_msn();
                for s in np.segments.iter().filter(|s| s.msn >= old_next) {
                    listed_at.insert(s.msn, t);
                }
                let changed = np.next_msn() != old_next;
                pl = np;
                if changed || pl.endlist {
                    break;
                }
                // hls.js retries an unchanged playlist after half a target duration.
                wait = changed_wait / 2;
            }
            listed_at.retain(|m, _| *m >= next);
            if let Some(f) = pl.segments.first()
                && next < f.msn
            {
                self.result.resyncs += 1;
                next = pl.next_msn().saturating_sub(3).max(f.msn);
            }
        }
    }

    async fn run_llhls(&mut self) -> anyhow::Result<()> {
        let Some(mut pl) = self.first_playlist().await? else {
            return Ok(());
        };
        if pl.part_target.is_none() {
            bail!("{} is not an LL-HLS playlist (no EXT-X-PART-INF)", self.url);
        }
        self.result.started = true;
        let mut map = None;
        let hold_back = pl
            .part_hold_back
            .unwrap_or(3.0 * pl.part_target.unwrap_or(1.0));
        let start = pl.start_part(hold_back).map(|p| (p.msn, p.index));
        let Some(mut pos) = start else {
            bail!("LL-HLS playlist lists no parts")
        };
        let mut listed_at: HashMap<(u64, u32), u64> = HashMap::new();
        // (position awaited, request sent, response received)
        let mut awaited: Option<((u64, u32), u64, u64)> = None;
        let reload_timeout = Duration::from_secs_f64(pl.target_duration.max(1.0) * 3.0 + 5.0);
        loop {
            if pl.map_uri != map {
                if let Some(uri) = pl.map_uri.clone() {
                    self.fetch_media(&uri, None).await;
                }
                map = pl.map_uri.clone();
            }
            while let Some(part) = pl.part_at(pos.0, pos.1).cloned() {
                if self.stop.is_cancelled() {
                    return Ok(());
                }
                if let Some(markers) = self.fetch_media(&part.uri, listed_at.remove(&pos)).await
                    && let Some((at, req, resp)) = awaited.take()
                    && at == pos
                    && let Some(last) = markers.iter().rev().find(|m| m.camera == self.spec.camera)
                    && let Some(ingest) =
                        self.metrics.cameras[self.spec.camera as usize].ingest_us(last.seq)
                    && let Some(w) = wakeup_us(req, resp, ingest)
                {
                    self.metrics.wakeup.record(w);
                    if let Some(closing) = self.metrics.cameras[self.spec.camera as usize]
                        .ingest_us(last.seq.wrapping_add(1))
                        && let Some(w) = wakeup_us(req, resp, closing)
                    {
                        self.metrics.wakeup_after_close.record(w);
                    }
                }
                pos = pl.position_after(pos.0, pos.1);
            }
            if pl.endlist || self.stop.is_cancelled() {
                return Ok(());
            }
            if !pl.lists_parts_of(pos.0) {
                // Fell behind the part window: back to the live edge.
                self.result.resyncs += 1;
                let Some(p) = pl.start_part(hold_back) else {
                    bail!("LL-HLS playlist lists no parts")
                };
                pos = (p.msn, p.index);
                continue;
            }
            let mut url = format!(
                "{}{}_HLS_msn={}&_HLS_part={}",
                self.url,
                if self.url.contains('?') { '&' } else { '?' },
                pos.0,
                pos.1
            );
            if pl.can_skip_until.is_some() {
                url.push_str("&_HLS_skip=YES");
            }
            let req = self.now();
            let got = tokio::select! {
                () = self.stop.cancelled() => return Ok(()),
                g = get(&self.client, &url, reload_timeout, MAX_PLAYLIST) => g,
            };
            let resp = self.now();
            let got = match got {
                Ok(g) if g.status == 200 => g,
                Ok(g) => {
                    self.http_error("blocking reload", format!("http {}", g.status));
                    if !self.pause(Duration::from_millis(200)).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => {
                    self.http_error("blocking reload", short(&e));
                    continue;
                }
            };
            let Playlist::Media(np) = Playlist::parse(&String::from_utf8_lossy(&got.body))? else {
                bail!("playlist turned multivariant");
            };
            for p in np.parts() {
                if pl.part_at(p.msn, p.index).is_none() && (p.msn, p.index) >= pos {
                    listed_at.insert((p.msn, p.index), resp);
                }
            }
            pl = np;
            // A part index past the end of a now complete segment means the next segment's
            // first part (RFC 8216bis §6.2.5.2).
            if pos.1 > 0 && pl.part_at(pos.0, pos.1).is_none() {
                pos = pl.position_after(pos.0, pos.1 - 1);
            }
            awaited = Some((pos, req, resp));
            listed_at.retain(|k, _| *k >= pos);
        }
    }
}

fn short(e: &anyhow::Error) -> String {
    let Some(e) = e.downcast_ref::<reqwest::Error>() else {
        return "body too large".into();
    };
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect error".into()
    } else if e.is_body() || e.is_decode() {
        "body error".into()
    } else {
        "request error".into()
    }
}

/// Watches until `stop` fires; returns what the viewer saw.
pub(crate) async fn watch(
    spec: ViewerSpec,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tail_grace: Duration,
) -> ViewerResult {
    let url = spec.url.clone();
    let camera = spec.camera;
    let flavor = spec.flavor;
    let mut v = Viewer {
        tracker: Tracker::new(camera),
        result: ViewerResult {
            camera,
            flavor: Some(flavor),
            ..ViewerResult::default()
        },
        spec,
        client,
        metrics: metrics.clone(),
        stop,
        url,
    };
    Metrics::add(&metrics.viewers_active, 1);
    let outcome = match flavor {
        Flavor::Hls => v.run_hls().await,
        Flavor::LlHls => v.run_llhls().await,
    };
    metrics
        .viewers_active
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = outcome {
        v.result.http_errors += 1;
        Metrics::add(&metrics.http_errors, 1);
        metrics.error(format!("viewer gave up: {}", first_line(&format!("{e:#}"))));
    }
    let t = &v.tracker;
    v.result.frames = t.frames;
    v.result.missing_frames = t.missing;
    v.result.foreign_frames = t.foreign;
    v.result.stalls = t.clock().stalls;
    v.result.stalls_1ms = t.clock().stalls_1ms;
    v.result.stall_ms = t.clock().stalled_us() as f64 / 1000.0;
    // Frames that had reached the server well before the end but never reached the viewer.
    let cutoff = metrics
        .clock
        .now_us()
        .saturating_sub(tail_grace.as_micros() as u64);
    let ledger = &metrics.cameras[camera as usize];
    if let (Some(last), Some(by_cutoff)) = (t.last_seq(), ledger.last_seq_by(cutoff)) {
        v.result.tail_missing_frames = u64::from(by_cutoff.saturating_sub(last));
    }
    v.result
}

/// The first line of an error chain, with camera-specific numbers kept out so the report
/// groups errors by kind.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::Marker;

    #[test]
    fn finds_markers_split_across_ts_packets() {
        let m = Marker {
            camera: 4,
            seq: 77,
            capture_us: 123_456,
        };
        let tag = marker::stamp(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41], 4, m).expect("NALU");
        // Put the SEI across a packet boundary of PID 0x100, with an audio packet between.
        let mut seg = Vec::new();
        let split = 30;
        let mut first = vec![0x47, 0x41, 0x00, 0x10];
        first.extend(std::iter::repeat_n(0xffu8, 184 - split));
        first.extend_from_slice(&tag[..split]);
        seg.extend(first);
        let mut audio = vec![0x47, 0x41, 0x01, 0x10];
        audio.resize(188, 0xaa);
        seg.extend(audio);
        let mut second = vec![0x47, 0x01, 0x00, 0x11];
        second.extend_from_slice(&tag[split..]);
        second.resize(188, 0xff);
        seg.extend(second);
        assert_eq!(seg.len(), 3 * 188);
        assert!(tag.len() > split, "the marker really straddles");
        let mut raw = Vec::new();
        marker::find(&seg, &mut raw);
        assert!(raw.is_empty(), "a plain search misses it");
        assert_eq!(markers_in(&seg, Flavor::Hls), vec![m]);
    }
}
