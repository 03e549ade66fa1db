//! camstream's cluster state, agreed through raft: which nodes are members, whether their
//! leases hold, how loaded they are, and which node ingests which camera (with an epoch that
//! fences the previous origin).
//!
//! - [`ClusterState`] (`src/state.rs`) is the sans-IO state machine: [`Command`] in, [`Response`]
//!   out, time carried by the commands. Usable and tested without openraft.
//! - [`scheduler`] is the leader's pure placement logic.
//! - [`open`] gives the openraft `storage-v2` stores ([`LogStore`], [`StateMachineStore`])
//!   persisted under one directory (the node uses `<data-dir>/raft/`).
//!
//! Left to others (issue 10): the network between nodes (`RaftNetworkFactory` over HTTP/QUIC),
//! the scheduler loop and lease heartbeats on the leader, flags, and wiring into
//! `camstream serve`. openraft types stay behind this crate so the move to openraft 0.10 is
//! local to it. On-disk format and crash-safety argument: docs/architecture.md, "Cluster state
//! (raft)".

mod durable;
mod log_store;
mod record;
pub mod scheduler;
mod state;
mod state_machine;

use std::io;
use std::path::Path;

pub use log_store::{CommitIndex, LogReader, LogStore};
pub use openraft;
pub use state::{
    Capacity, ClusterState, Command, DEFAULT_LEASE_MS, Load, Member, NodeId, NodeInfo, Placement,
    Refusal, Response,
};
pub use state_machine::{SnapshotBuilder, StateHandle, StateMachineStore};

openraft::declare_raft_types!(
    /// The openraft type configuration: [`Command`] entries, [`Response`] replies, `u64` node
    /// ids, nodes addressed by their raft address ([`openraft::BasicNode`]), snapshots as
    /// in-memory byte buffers.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// A raft node over these stores.
pub type Raft = openraft::Raft<TypeConfig>;

/// Opens (creating it if needed) the store directory `dir`, normally `<data-dir>/raft/`, and
/// returns the log store and the state machine store to hand to [`Raft`]`::new`. Restores the
/// vote, the log (cutting a torn tail), the last purged and committed log ids, and the
/// snapshot as the applied state; openraft re-applies the committed log after it.
///
/// # Errors
/// I/O errors, and `InvalidData` for damage that a crash cannot leave behind (a file whose
/// whole, checksummed records do not decode, a hole in the log); such a store needs an
/// operator (remove the directory and let the node rejoin as a learner).
pub async fn open(dir: impl AsRef<Path>) -> io::Result<(LogStore, StateMachineStore)> {
    let dir = dir.as_ref().to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        // The directory entry of `dir` itself must survive a crash too.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            durable::sync_dir(parent)?;
        }
        Ok((LogStore::open(&dir)?, StateMachineStore::open(&dir)?))
    })
    .await
    .unwrap_or_else(|e| Err(io::Error::other(format!("open task failed: {e}"))))
}

/// The openraft configuration camstream uses, validated: heartbeats every 150 ms, elections
/// after 500–1000 ms without one, a snapshot every 1000 entries, and 200 entries kept behind
/// it so a briefly lagging follower catches up from the log rather than a snapshot.
///
/// openraft 0.9 followers refuse votes for `election_timeout_max` after the last heartbeat
/// (its leader lease), so a failover takes about 1–2 s; a new leader's first command should be
/// [`Command::Takeover`] so leases that ran out meanwhile are not held against the nodes.
pub fn config(cluster_name: &str) -> openraft::Config {
    openraft::Config {
        cluster_name: cluster_name.to_owned(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1_000),
        max_in_snapshot_log_to_keep: 200,
        ..Default::default()
    }
    .validate()
    .expect("constant configuration is valid")
}
