//! `alert.*` events from the `alert_events` outbox. Every node tails the shared outbox
//! itself (so every node's clients see every alert event of the cluster, with no relay),
//! keeping the last seq it published and re-reading a short window behind it: a PostgreSQL
//! transaction may commit a lower seq after a higher one was read.
//!
//! Only events committed after the node started are published; older ones are the REST
//! API's (`GET /api/v1/alerts`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ALERT_ACKNOWLEDGED, ALERT_OPENED, ALERT_RESOLVED, Bus, NewEvent};
use crate::store::alerts::AlertEvent;
use crate::store::{Store, StoreError};

/// Events read per query.
const PAGE: i64 = 500;
/// How far behind its cursor the tailer re-reads (late commits; transactions here last
/// milliseconds).
const WINDOW_MS: i64 = 10_000;

/// The tailer's read position.
#[derive(Debug, Default)]
struct Cursor {
    after: i64,
    /// Seqs handled inside the window, with their time.
    seen: HashMap<i64, i64>,
    started: bool,
}

/// The client event of an outbox row, `None` for rows clients do not get (`repeated`,
/// `escalated`).
fn kind_of(e: &AlertEvent) -> Option<&'static str> {
    match e.event.as_str() {
        "opened" => Some(ALERT_OPENED),
        "resolved" => Some(ALERT_RESOLVED),
        "acknowledged" => Some(ALERT_ACKNOWLEDGED),
        _ => None,
    }
}

async fn publish(store: &dyn Store, bus: &Bus, e: &AlertEvent) -> Result<(), StoreError> {
    let Some(kind) = kind_of(e) else {
        return Ok(());
    };
    let alert = store.get_alert(&e.alert_id).await?;
    bus.publish_here(NewEvent {
        kind: kind.to_owned(),
        at: e.at,
        camera_id: e.camera_id.clone(),
        company: e.company.clone(),
        data: serde_json::json!({
            "alertId": e.alert_id,
            "alertType": e.kind,
            "severity": e.severity,
            "message": alert.as_ref().map(|a| a.message.as_str()),
            "occurrences": alert.as_ref().map(|a| a.occurrences),
            "actor": e.actor,
            "seq": e.seq,
        }),
    });
    Ok(())
}

/// One pass: publishes the outbox rows not published yet; how many.
async fn pass(store: &dyn Store, bus: &Bus, cur: &mut Cursor) -> Result<usize, StoreError> {
    let now = crate::clock::now_ms();
    let window_start = now - WINDOW_MS;
    if !cur.started {
        // What was committed before this node started is not news.
        cur.after = store.last_alert_event_seq().await?;
        for e in store
            .alert_events_since(i64::MAX, window_start, 10 * PAGE)
            .await?
        {
            cur.seen.insert(e.seq, e.at);
        }
        cur.started = true;
        return Ok(0);
    }
    let mut published = 0;
    let recent = store
        .alert_events_since(i64::MAX, window_start, 10 * PAGE)
        .await?;
    for e in recent {
        if cur.seen.contains_key(&e.seq) {
            continue;
        }
        publish(store, bus, &e).await?;
        cur.seen.insert(e.seq, e.at);
        cur.after = cur.after.max(e.seq);
        published += 1;
    }
    loop {
        let page = store.alert_events_since(cur.after, i64::MAX, PAGE).await?;
        let n = page.len();
        for e in page {
            if !cur.seen.contains_key(&e.seq) {
                publish(store, bus, &e).await?;
                published += 1;
            }
            cur.seen.insert(e.seq, e.at);
            cur.after = cur.after.max(e.seq);
        }
        if (n as i64) < PAGE {
            break;
        }
    }
    cur.seen.retain(|_, at| *at >= window_start - WINDOW_MS);
    Ok(published)
}

/// Tails the outbox every `every` until cancelled.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    bus: Arc<Bus>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut cur = Cursor::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            r = pass(&*store, &bus, &mut cur) => if let Err(e) = r {
                // The failed event and those after it are read again next pass.
                tracing::warn!(error = %e, "alert events not read for the live events");
            },
        }
    }
}
