//! Relaying events between cluster nodes: `camera.status`, `stream.health` and
//! `recording.*` arise on the node that ingests or records a camera, but a client may be
//! connected to any node. Each node batches its own events and POSTs them, signed with the
//! cluster secret like every node-to-node request, to `/cluster/events` on every other
//! member's raft listener (`cluster::server`), which publishes them on its bus without
//! relaying them further.
//!
//! The cluster's own signed channel was chosen over Redis pub/sub: it exists on every
//! cluster node (Redis is optional), it is authenticated, and membership already says who
//! to send to. Delivery is best effort: a batch a peer does not take (down, slow, queue
//! full) is dropped and counted in `camstream_events_relay_dropped_total`; clients of that
//! node refetch over REST when they reconnect (their resume cursor finds a `gap` on
//! another node anyway). Alert events are not relayed: every node reads them from the
//! shared outbox ([`super::outbox`]).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::NewEvent;
use crate::cluster::Cluster;

/// Events waiting to be relayed; beyond this they are dropped and counted.
pub(crate) const QUEUE: usize = 8192;
/// Most events per request.
const BATCH: usize = 1000;

/// Sends the events of `rx` to every other member, in batches at most `every` apart, until
/// cancelled.
pub(crate) async fn run(
    cluster: Cluster,
    mut rx: mpsc::Receiver<NewEvent>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        tokio::select! {
            () = cancel.cancelled() => break,
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { break },
        }
        // Let a burst gather into one request.
        let deadline = tokio::time::Instant::now() + every;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => break,
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
            }
        }
        let failed = cluster.send_events(&batch).await;
        if failed > 0 {
            metrics::counter!("camstream_events_relay_dropped_total")
                .increment((failed * batch.len()) as u64);
        }
    }
}
