//! The state machine on disk (openraft `RaftStateMachine`): a [`ClusterState`] in memory,
//! persisted only as snapshots.
//!
//! `apply` does not write: after a restart openraft re-applies the log from the snapshot up to
//! the persisted `committed` pointer (see [`crate::LogStore`]), which rebuilds the same state
//! because apply is deterministic. A snapshot is the file `snapshot`: two records, the
//! `SnapshotMeta` (last applied log id, membership, id) and the serialized state, replaced
//! atomically ([`crate::durable`]) before openraft is told it exists, so the log it lets
//! openraft purge is never needed again. Only a snapshot newer than the one on disk replaces
//! it (a slow build must not overwrite a newer installed snapshot).

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogId, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};

use crate::durable;
use crate::log_store::invalid;
use crate::state::{ClusterState, Response};
use crate::{NodeId, TypeConfig};

const SNAPSHOT: &str = "snapshot";

/// What `apply` changes.
#[derive(Debug, Default)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    state: ClusterState,
}

/// A snapshot as kept in memory (the same bytes as on disk).
#[derive(Debug, Clone)]
struct Stored {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    applied: RwLock<Applied>,
    snapshot: Mutex<Option<Stored>>,
    builds: Mutex<u64>,
}

/// Read access to the applied cluster state, for the rest of the node (scheduler, API,
/// fencing checks). Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateHandle {
    shared: Arc<Shared>,
}

impl StateHandle {
    /// Runs `f` on the applied state. Keep `f` short: `apply` waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&read_lock(&self.shared.applied).state)
    }

    /// Runs `f` on the last log entry applied and the state it produced, read together (no
    /// apply in between), so replicas can be compared at the same log position. Keep `f`
    /// short: `apply` waits for it.
    pub fn read_applied<R>(&self, f: impl FnOnce(Option<LogId<NodeId>>, &ClusterState) -> R) -> R {
        let a = read_lock(&self.shared.applied);
        f(a.last_applied, &a.state)
    }

    /// The last log entry applied.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        read_lock(&self.shared.applied).last_applied
    }
}

fn read_lock(l: &RwLock<Applied>) -> std::sync::RwLockReadGuard<'_, Applied> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock(l: &RwLock<Applied>) -> std::sync::RwLockWriteGuard<'_, Applied> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state machine store. Create it with [`crate::open`].
#[derive(Debug)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// Builds snapshots of a [`StateMachineStore`] (openraft `RaftSnapshotBuilder`).
#[derive(Debug)]
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

impl StateMachineStore {
    /// Opens the state machine in `dir`: the snapshot, if any, becomes the applied state.
    /// Blocking.
    ///
    /// # Errors
    /// I/O errors, `InvalidData` if the snapshot file is damaged or does not decode.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        let mut applied = Applied::default();
        let mut snapshot = None;
        if let Some(parts) = durable::read(dir, SNAPSHOT, 2)? {
            let meta: SnapshotMeta<NodeId, BasicNode> =
                serde_json::from_slice(&parts[0]).map_err(invalid)?;
            let state: ClusterState = serde_json::from_slice(&parts[1]).map_err(invalid)?;
            applied = Applied {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
                state,
            };
            snapshot = Some(Stored {
                meta,
                data: parts[1].clone(),
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                applied: RwLock::new(applied),
                snapshot: Mutex::new(snapshot),
                builds: Mutex::new(0),
            }),
        })
    }

    /// A handle for reading the applied state.
    pub fn handle(&self) -> StateHandle {
        StateHandle {
            shared: self.shared.clone(),
        }
    }
}

/// Writes `s` as the snapshot file unless the one held is at least as new. Returns whether it
/// was written. Blocking.
fn persist(shared: &Shared, s: &Stored) -> io::Result<bool> {
    let mut held = lock(&shared.snapshot);
    if held
        .as_ref()
        .is_some_and(|h| h.meta.last_log_id > s.meta.last_log_id)
    {
        return Ok(false);
    }
    let meta = serde_json::to_vec(&s.meta).map_err(io::Error::other)?;
    durable::replace(&shared.dir, SNAPSHOT, &[&meta, &s.data])?;
    *held = Some(s.clone());
    Ok(true)
}

async fn persist_blocking(shared: &Arc<Shared>, s: Stored) -> io::Result<bool> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || persist(&shared, &s))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("snapshot task failed: {e}"))))
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, data) = {
            let a = read_lock(&self.shared.applied);
            let data =
                serde_json::to_vec(&a.state).map_err(|e| StorageIOError::read_state_machine(&e))?;
            let n = {
                let mut b = lock(&self.shared.builds);
                *b += 1;
                *b
            };
            let id = match a.last_applied {
                Some(l) => format!("{}-{}-{n}", l.leader_id, l.index),
                None => format!("none-{n}"),
            };
            let meta = SnapshotMeta {
                last_log_id: a.last_applied,
                last_membership: a.membership.clone(),
                snapshot_id: id,
            };
            (meta, data)
        };
        let stored = Stored { meta, data };
        persist_blocking(&self.shared, stored.clone())
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let a = read_lock(&self.shared.applied);
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut a = write_lock(&self.shared.applied);
        let mut out = Vec::new();
        for e in entries {
            let id = *e.get_log_id();
            a.last_applied = Some(id);
            out.push(match e.payload {
                EntryPayload::Blank => Response::Done,
                EntryPayload::Normal(cmd) => a.state.apply(cmd),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(id), m);
                    Response::Done
                }
            });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let state: ClusterState = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = Stored {
            meta: meta.clone(),
            data,
        };
        persist_blocking(&self.shared, stored)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut a = write_lock(&self.shared.applied);
        *a = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            state,
        };
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(lock(&self.shared.snapshot).clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Membership};

    use super::*;
    use crate::state::Command;

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload,
        }
    }

    fn tick(index: u64) -> Entry<TypeConfig> {
        entry(
            index,
            EntryPayload::Normal(Command::Tick { at_ms: index * 10 }),
        )
    }

    #[tokio::test]
    async fn a_snapshot_restores_the_state_after_reopen_and_a_stale_one_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachineStore::open(dir.path()).expect("open");
        let members = Membership::new(vec![[1u64].into()], None);
        let r = sm
            .apply([
                entry(1, EntryPayload::Membership(members)),
                tick(2),
                entry(3, EntryPayload::Blank),
            ])
            .await
            .expect("apply");
        assert_eq!(r, vec![Response::Done; 3]);
        let old = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        sm.apply([tick(4)]).await.expect("apply");
        let new = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        assert_eq!(sm.handle().read(|s| s.clock_ms()), 40);

        // Applied but not snapshotted: gone after a reopen (openraft re-applies it from the
        // log); the snapshot comes back as the applied state.
        sm.apply([tick(5)]).await.expect("apply");
        drop(sm);
        let mut sm = StateMachineStore::open(dir.path()).expect("reopen");
        let (applied, membership) = sm.applied_state().await.expect("state");
        assert_eq!(applied, new.meta.last_log_id);
        assert_eq!(membership.log_id().map(|l| l.index), Some(1));
        assert_eq!(sm.handle().read(|s| s.clock_ms()), 40);

        // Installing the older snapshot must not replace the newer file.
        let data = Box::new(Cursor::new(
            serde_json::to_vec(&ClusterState::new()).expect("json"),
        ));
        assert!(
            !persist(
                &sm.shared,
                &Stored {
                    meta: old.meta.clone(),
                    data: data.into_inner()
                }
            )
            .expect("persist")
        );
        drop(sm);
        let mut sm = StateMachineStore::open(dir.path()).expect("reopen");
        let cur = sm.get_current_snapshot().await.expect("get").expect("some");
        assert_eq!(cur.meta, new.meta);

        // A damaged snapshot file is refused, not silently dropped.
        let path = dir.path().join(SNAPSHOT);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let err = StateMachineStore::open(dir.path()).expect_err("damaged");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
