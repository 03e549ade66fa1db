//! The cluster node's loops, each until cancelled:
//! - `join`: asks to be added (through `--join`, or straight to the leader when this node
//!   started the cluster) until a leader accepted; idempotent, so it runs at every start.
//! - `heartbeat`: every lease/4, renews this node's lease with its load and keeps the
//!   node's own, conservative view of the lease.
//! - `lead`: on the leader, `Takeover` once per term, a `Tick` every lease, and the
//!   scheduler's `Place`s.
//! - `metrics`: raft gauges for `/metrics`.

use std::time::{Duration, Instant};

use camstream_raft_store::openraft::ServerState;
use camstream_raft_store::{Command, Response, scheduler};
use tokio_util::sync::CancellationToken;

use super::{Cluster, Proposal, now_ms};

/// Waits `d` or until cancelled; `false` when cancelled.
async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

pub(super) async fn join(cluster: Cluster, cancel: CancellationToken) {
    let i = &cluster.inner;
    let mut attempts: u32 = 0;
    loop {
        let result = match &i.config.join {
            Some(url) => i.peer.join(url, &i.info).await.map_err(|e| e.to_string()),
            None => cluster
                .propose(Proposal::Join(i.info.clone()), Duration::from_secs(5))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => {
                tracing::info!(node = i.info.id, via = ?i.config.join, "joined the cluster");
                return;
            }
            Err(e) => {
                attempts += 1;
                // The first failures are expected while the cluster forms.
                if attempts % 10 == 3 {
                    tracing::warn!(error = %e, join = ?i.config.join, attempts, "joining the cluster failed, retrying");
                }
            }
        }
        if !pause(Duration::from_millis(500), &cancel).await {
            return;
        }
    }
}

pub(super) async fn heartbeat(cluster: Cluster, cancel: CancellationToken) {
    let lease = cluster.inner.config.lease;
    let every = lease / 4;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let sent = Instant::now();
        let p = Proposal::Heartbeat {
            node: cluster.node_id(),
            load: cluster.load(),
        };
        match cluster.propose(p, every).await {
            Ok(Response::Lease { .. }) => {
                // Counted from the send, for 90 % of the lease: the leader stamped it later,
                // so the replicated lease outlasts this view (docs/architecture.md).
                let until = sent + lease.mul_f64(0.9);
                *cluster
                    .inner
                    .lease_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(until);
            }
            Ok(other) => tracing::debug!(?other, "heartbeat answered without a lease"),
            // Not a member yet (joining) or no leader: the lease view just runs out.
            Err(e) => tracing::debug!(error = %e, "heartbeat not acknowledged"),
        }
    }
}

pub(super) async fn lead(cluster: Cluster, cancel: CancellationToken) {
    let lease = cluster.inner.config.lease;
    let mut tick = tokio::time::interval(lease / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut taken_over: Option<u64> = None;
    let mut last_tick = Instant::now();
    // `Takeover` itself is written by `Cluster::ensure_takeover`, before the first write of
    // the term from whichever path (a heartbeat may come first).
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (leading, term) = {
            let m = cluster.inner.raft.metrics();
            let m = m.borrow();
            (
                m.state == ServerState::Leader && m.current_leader == Some(cluster.node_id()),
                m.current_term,
            )
        };
        if !leading {
            continue;
        }
        if taken_over != Some(term) {
            match cluster.ensure_takeover().await {
                Ok(()) => {
                    taken_over = Some(term);
                    last_tick = Instant::now();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "takeover not written");
                    continue;
                }
            }
        }
        if last_tick.elapsed() >= lease {
            if let Err(e) = cluster.write(Command::Tick { at_ms: now_ms() }).await {
                tracing::debug!(error = %e, "tick not written");
            }
            last_tick = Instant::now();
        }
        let plan = cluster.inner.state.read(|s| scheduler::plan(s, now_ms()));
        for cmd in plan {
            match cluster.write(cmd).await {
                Ok(Response::Placed {
                    camera,
                    node,
                    epoch,
                }) => tracing::info!(camera_id = %camera, ?node, epoch, "camera placed"),
                Ok(_) => {}
                // A claim or an expiry raced with the plan: the next round sees it.
                Err(e) => tracing::debug!(error = %e, "placement not written"),
            }
        }
    }
}

pub(super) async fn metrics(cluster: Cluster, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (term, leader, applied, leading) = {
            let m = cluster.inner.raft.metrics();
            let m = m.borrow();
            (
                m.current_term,
                m.current_leader,
                m.last_applied.map(|l| l.index),
                m.state == ServerState::Leader,
            )
        };
        metrics::gauge!("camstream_raft_term").set(term as f64);
        metrics::gauge!("camstream_raft_leader_id").set(leader.map_or(0.0, |l| l as f64));
        metrics::gauge!("camstream_raft_is_leader").set(if leading { 1.0 } else { 0.0 });
        metrics::gauge!("camstream_raft_commit_index")
            .set(cluster.inner.commit.get().map_or(0.0, |c| c as f64));
        metrics::gauge!("camstream_raft_last_applied").set(applied.map_or(0.0, |c| c as f64));
        metrics::gauge!("camstream_cluster_lease_held").set(if cluster.holds_lease() {
            1.0
        } else {
            0.0
        });
    }
}
