//! The live event bus behind `GET /api/v1/ws` (docs/websocket.md): producers publish
//! [`NewEvent`]s, the bus numbers them (`id`, monotonic per process), serializes each once,
//! keeps a bounded backlog for `resume`, and broadcasts them to every connection (which
//! filters by tenant and subscription, `api::ws`).
//!
//! Producers: `camera.status` and `stream.health` from health reports (`ControlPlane::
//! report_health`, the sweeper), `recording.*` from the recorder's events
//! (`recordings::sink`), `alert.*` from the `alert_events` outbox ([`outbox`], tailed on
//! every node). In a cluster the events that arise on one node are relayed to the others
//! ([`relay`]); alert events are not, since every node reads the shared outbox itself.
//!
//! The `stream` id is random per process: a client resuming against a restarted server or
//! another node learns that its cursor means nothing here (`gap`).

pub(crate) mod outbox;
pub(crate) mod relay;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// A camera's stream state changed (`online`, `connecting`, `offline`, `error`).
pub(crate) const CAMERA_STATUS: &str = "camera.status";
/// A camera's health, about once a second while it is reported (subscribers only).
pub(crate) const STREAM_HEALTH: &str = "stream.health";
/// An alert was raised.
pub(crate) const ALERT_OPENED: &str = "alert.opened";
/// An alert was resolved.
pub(crate) const ALERT_RESOLVED: &str = "alert.resolved";
/// An alert was acknowledged (the first acknowledgement).
pub(crate) const ALERT_ACKNOWLEDGED: &str = "alert.acknowledged";
/// A recording file was opened.
pub(crate) const RECORDING_STARTED: &str = "recording.started";
/// A recording file was closed.
pub(crate) const RECORDING_STOPPED: &str = "recording.stopped";
/// Recording failed (`RECORDING_FAILED` or `STORAGE_FULL` from the recorder).
pub(crate) const RECORDING_FAILED: &str = "recording.failed";

/// Every event type, so relayed names map back to these statics (unknown ones are dropped).
pub(crate) const KINDS: [&str; 8] = [
    CAMERA_STATUS,
    STREAM_HEALTH,
    ALERT_OPENED,
    ALERT_RESOLVED,
    ALERT_ACKNOWLEDGED,
    RECORDING_STARTED,
    RECORDING_STOPPED,
    RECORDING_FAILED,
];

/// How long a camera's company is remembered for the events about it.
const COMPANY_TTL: Duration = Duration::from_secs(30);

/// The company of each camera events were published about, looked up in the store once per
/// [`COMPANY_TTL`] (health events come every second per camera).
#[derive(Debug, Default)]
pub(crate) struct Companies {
    known: Mutex<std::collections::HashMap<String, (Option<String>, std::time::Instant)>>,
}

impl Companies {
    /// The company of `camera`; `None` (admins only) when it has none, is unknown or the
    /// store failed: an event is never shown wider than its camera.
    pub(crate) async fn of(&self, store: &dyn crate::store::Store, camera: &str) -> Option<String> {
        let now = std::time::Instant::now();
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((c, at)) = known.get(camera)
                && now.duration_since(*at) < COMPANY_TTL
            {
                return c.clone();
            }
        }
        let company = match store.get_camera(camera).await {
            Ok(c) => c.and_then(|c| c.company),
            Err(e) => {
                tracing::debug!(camera_id = %camera, error = %e, "camera company not read");
                return None;
            }
        };
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() > 100_000 {
            known.retain(|_, (_, at)| now.duration_since(*at) < COMPANY_TTL);
        }
        known.insert(camera.to_owned(), (company.clone(), now));
        company
    }
}

/// Broadcast capacity: how far one connection's dispatcher may fall behind the bus before it
/// is closed as a slow consumer (its own queue is smaller, see `WsConfig::client_queue`).
const BROADCAST: usize = 4096;

/// An event before the bus numbers it: what producers make and what nodes relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewEvent {
    /// One of [`KINDS`].
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Unix ms.
    pub(crate) at: i64,
    /// The camera it is about.
    pub(crate) camera_id: Option<String>,
    /// The tenant that may see it (`None`: admins only). Not sent to clients.
    pub(crate) company: Option<String>,
    /// Type-specific fields (docs/websocket.md).
    pub(crate) data: serde_json::Value,
}

/// A numbered event, serialized once for every client.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) id: u64,
    pub(crate) kind: &'static str,
    pub(crate) at: i64,
    pub(crate) camera_id: Option<String>,
    pub(crate) company: Option<String>,
    /// The message as clients get it.
    pub(crate) text: Utf8Bytes,
}

/// The wire form of an event (server → client).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: u64,
    at: String,
    camera_id: Option<&'a str>,
    data: &'a serde_json::Value,
}

/// What [`Bus::resume`] found.
#[derive(Debug)]
pub(crate) enum Resume {
    /// The events after the cursor, oldest first (all of them the backlog holds; health
    /// events are never kept), and the bus's last id when read.
    Events(Vec<Arc<Event>>, u64),
    /// The cursor cannot be honoured: refetch over REST.
    Gap(&'static str),
}

struct Backlog {
    last_id: u64,
    events: VecDeque<Arc<Event>>,
    /// The highest id dropped from the backlog (0: none).
    evicted: u64,
}

impl Backlog {
    fn evict(&mut self, now_ms: i64, len: usize, age_ms: i64) {
        while let Some(front) = self.events.front() {
            if self.events.len() > len || front.at < now_ms - age_ms {
                self.evicted = front.id;
                self.events.pop_front();
            } else {
                break;
            }
        }
    }
}

/// The bus of one process.
pub(crate) struct Bus {
    stream: String,
    tx: broadcast::Sender<Arc<Event>>,
    backlog: Mutex<Backlog>,
    len: usize,
    age_ms: i64,
    /// Where events for the other cluster nodes go (set on a cluster node).
    relay: OnceLock<mpsc::Sender<NewEvent>>,
    /// Camera → company, for the events producers publish.
    pub(crate) companies: Companies,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// A bus keeping at most `len` events no older than `age` for resume.
    pub(crate) fn new(len: usize, age: Duration) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST);
        Self {
            stream: uuid::Uuid::new_v4().to_string(),
            tx,
            backlog: Mutex::new(Backlog {
                last_id: 0,
                events: VecDeque::new(),
                evicted: 0,
            }),
            len,
            age_ms: crate::clock::ms(age),
            relay: OnceLock::new(),
            companies: Companies::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        // Every update leaves the backlog consistent: a poisoned lock is still usable.
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This process's stream id.
    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    /// Sends this node's events to the other cluster nodes through `tx` from now on.
    pub(crate) fn set_relay(&self, tx: mpsc::Sender<NewEvent>) {
        let _ = self.relay.set(tx);
    }

    /// A receiver of every event published from now on, and the last id published before.
    pub(crate) fn subscribe(&self) -> (broadcast::Receiver<Arc<Event>>, u64) {
        let b = self.lock();
        (self.tx.subscribe(), b.last_id)
    }

    /// Whether any connection listens (producers of per-second events skip work otherwise).
    pub(crate) fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0 || self.relay.get().is_some()
    }

    /// Publishes an event that arose on this node (relayed to the other cluster nodes).
    pub(crate) fn publish(&self, e: NewEvent) {
        if let Some(relay) = self.relay.get()
            && let Err(err) = relay.try_send(e.clone())
        {
            // A full relay queue (peers slower than the events) or a stopped relay task.
            metrics::counter!("camstream_events_relay_dropped_total").increment(1);
            tracing::debug!(error = %err, "event not relayed");
        }
        self.publish_here(e);
    }

    /// Publishes an event on this node only (alert events every node reads itself, events
    /// relayed from another node).
    pub(crate) fn publish_here(&self, e: NewEvent) {
        let Some(kind) = KINDS.iter().copied().find(|k| *k == e.kind) else {
            tracing::debug!(kind = %e.kind, "unknown event type dropped");
            return;
        };
        let mut b = self.lock();
        let id = b.last_id + 1;
        let wire = Wire {
            kind,
            id,
            at: crate::clock::rfc3339(e.at),
            camera_id: e.camera_id.as_deref(),
            data: &e.data,
        };
        let text = serde_json::to_string(&wire).unwrap_or_default();
        let event = Arc::new(Event {
            id,
            kind,
            at: e.at,
            camera_id: e.camera_id,
            company: e.company,
            text: text.into(),
        });
        b.last_id = id;
        // Health is per second and superseded by the next report: not worth a resume.
        if kind != STREAM_HEALTH {
            b.events.push_back(event.clone());
        }
        b.evict(crate::clock::now_ms(), self.len, self.age_ms);
        // Sent under the lock so that receivers see ids in order; `send` does not block.
        let _ = self.tx.send(event);
        drop(b);
        metrics::counter!("camstream_events_total", "type" => kind).increment(1);
    }

    /// The events after `after` of stream `stream`, or why they cannot be given.
    pub(crate) fn resume(&self, after: u64, stream: &str) -> Resume {
        if stream != self.stream {
            return Resume::Gap("stream");
        }
        let mut b = self.lock();
        b.evict(crate::clock::now_ms(), self.len, self.age_ms);
        if after > b.last_id {
            return Resume::Gap("ahead");
        }
        if after < b.evicted {
            return Resume::Gap("expired");
        }
        let events = b.events.iter().filter(|e| e.id > after).cloned().collect();
        Resume::Events(events, b.last_id)
    }
}

/// Publishes `camera.status` for cameras whose stream state changed on this node.
pub(crate) async fn camera_status(
    bus: &Bus,
    store: &dyn crate::store::Store,
    node_id: &str,
    changed: Vec<(String, crate::store::StreamStatus)>,
) {
    for (camera, status) in changed {
        let company = bus.companies.of(store, &camera).await;
        bus.publish(NewEvent {
            kind: CAMERA_STATUS.to_owned(),
            at: crate::clock::now_ms(),
            camera_id: Some(camera),
            company,
            data: serde_json::json!({ "status": status.as_str(), "nodeId": node_id }),
        });
    }
}

/// Publishes `stream.health` for each report (clients get those of cameras they subscribed
/// to). Nothing when no client and no other node could listen.
pub(crate) async fn stream_health(
    bus: &Bus,
    store: &dyn crate::store::Store,
    node_id: &str,
    reports: &[camstream_protocol::StreamHealth],
) {
    if !bus.has_listeners() {
        return;
    }
    let now = crate::clock::now_ms();
    for h in reports {
        if !camstream_protocol::auth::is_valid_camera_id(&h.camera_id) {
            continue;
        }
        let status = match h.state {
            camstream_protocol::StreamState::Online => "online",
            camstream_protocol::StreamState::Reconnecting => "connecting",
            _ => "offline",
        };
        let company = bus.companies.of(store, &h.camera_id).await;
        bus.publish(NewEvent {
            kind: STREAM_HEALTH.to_owned(),
            at: now,
            camera_id: Some(h.camera_id.clone()),
            company,
            data: serde_json::json!({
                "status": status,
                "fps": h.fps,
                "bitrate": h.bitrate_bps,
                "droppedFrames": h.dropped_frames,
                "viewers": h.viewers,
                "resolution": h.resolution.map(|(w, hh)| format!("{w}x{hh}")),
                "codecs": h.codecs,
                "nodeId": node_id,
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, at: i64) -> NewEvent {
        NewEvent {
            kind: kind.into(),
            at,
            camera_id: Some("cam".into()),
            company: None,
            data: serde_json::json!({}),
        }
    }

    #[test]
    fn ids_backlog_and_resume() {
        let bus = Bus::new(3, Duration::from_secs(600));
        let (mut rx, last) = bus.subscribe();
        assert_eq!(last, 0);
        let now = crate::clock::now_ms();
        bus.publish_here(ev(ALERT_OPENED, now));
        bus.publish_here(ev(STREAM_HEALTH, now));
        bus.publish_here(ev("no.such", now));
        bus.publish_here(ev(CAMERA_STATUS, now));
        assert_eq!(rx.try_recv().unwrap().id, 1);
        assert_eq!(rx.try_recv().unwrap().kind, STREAM_HEALTH);
        assert_eq!(rx.try_recv().unwrap().id, 3);
        let Resume::Events(got, last) = bus.resume(1, bus.stream()) else {
            panic!("gap")
        };
        // Health is not kept.
        assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(last, 3);
        assert!(matches!(bus.resume(0, "other"), Resume::Gap("stream")));
        assert!(matches!(bus.resume(9, bus.stream()), Resume::Gap("ahead")));
        for _ in 0..3 {
            bus.publish_here(ev(ALERT_RESOLVED, now));
        }
        // Five kept events, room for three: ids 1 and 3 are gone.
        assert!(matches!(
            bus.resume(0, bus.stream()),
            Resume::Gap("expired")
        ));
        let Resume::Events(got, _) = bus.resume(3, bus.stream()) else {
            panic!("gap")
        };
        assert_eq!(got.len(), 3);
        let text: serde_json::Value = serde_json::from_str(got[0].text.as_str()).unwrap();
        assert_eq!(text["type"], "alert.resolved");
        assert_eq!(text["id"], 4);
        assert_eq!(text["cameraId"], "cam");
        assert!(text.get("company").is_none());
    }

    #[test]
    fn old_events_leave_the_backlog() {
        let bus = Bus::new(100, Duration::from_secs(60));
        let now = crate::clock::now_ms();
        bus.publish_here(ev(ALERT_OPENED, now - 120_000));
        bus.publish_here(ev(ALERT_OPENED, now));
        assert!(matches!(
            bus.resume(0, bus.stream()),
            Resume::Gap("expired")
        ));
        let Resume::Events(got, _) = bus.resume(1, bus.stream()) else {
            panic!("gap")
        };
        assert_eq!(got.len(), 1);
    }
}
