//! The raft log, vote and committed pointer on disk (openraft `RaftLogStorage`).
//!
//! Files in the store directory:
//! - `log`: append-only records ([`crate::record`]), each a JSON [`LogRecord`]. An optional
//!   first record `Purged(log_id)` says where the log starts; then one record per entry, in
//!   index order without holes. Appends are written with one `pwrite` and `fdatasync`ed before
//!   openraft hears they are on disk. Truncation cuts the file (`ftruncate` + fsync). Purging
//!   rewrites the file (`log.tmp`, fsync, rename, fsync the directory): it runs once per
//!   snapshot and keeps only the entries after the purge point, so it stays small.
//! - `vote`, `committed`: one record each, replaced atomically ([`crate::durable`]).
//! - `lock`: empty; an exclusive `flock` on it while the store is open.
//!
//! The entries also live in memory (the log is compacted behind snapshots, so it is bounded);
//! readers never touch the disk. File work runs on the blocking pool; the memory copy has its
//! own short lock so readers are never held up by an fsync.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use serde::{Deserialize, Serialize};

use crate::durable;
use crate::record::{self, Stop};
use crate::{NodeId, TypeConfig};

const LOG: &str = "log";
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LOCK: &str = "lock";

/// One record of the `log` file (written form).
#[derive(Serialize)]
enum LogRecordRef<'a> {
    Purged(&'a LogId<NodeId>),
    Entry(&'a Entry<TypeConfig>),
}

/// One record of the `log` file (read form; same encoding as [`LogRecordRef`]).
#[derive(Deserialize)]
enum LogRecord {
    Purged(LogId<NodeId>),
    Entry(Entry<TypeConfig>),
}

fn encode(rec: &LogRecordRef<'_>, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(rec).map_err(io::Error::other)?;
    record::encode(&json, out);
    Ok(())
}

/// The in-memory copy readers use.
#[derive(Debug, Default)]
struct Mem {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
}

/// The open `log` file.
#[derive(Debug)]
struct Disk {
    dir: PathBuf,
    /// `LOCK`, held exclusively while the store is open.
    _lock: File,
    file: File,
    /// Bytes of whole records; the next append goes here.
    len: u64,
    /// Byte offset of each entry's record, for truncation.
    offsets: BTreeMap<u64, u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind (maps and a file
    // handle whose length we track), never a half-applied invariant we rely on after it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("storage task failed: {e}"))))
}

/// The log store. Create it with [`crate::open`].
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    mem: Arc<Mutex<Mem>>,
    disk: Arc<Mutex<Disk>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    /// `committed`'s index + 1 (0: nothing committed), readable from outside the raft core.
    commit_index: Arc<AtomicU64>,
}

/// Read access to the committed log index the store last saved, for metrics and status
/// (openraft 0.9's metrics do not carry it). Cheap to clone.
#[derive(Debug, Clone)]
pub struct CommitIndex(Arc<AtomicU64>);

impl CommitIndex {
    /// The last committed log index this node saved, `None` before any.
    pub fn get(&self) -> Option<u64> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// A reader of the log that replication tasks hold (openraft `RaftLogReader`).
#[derive(Debug, Clone)]
pub struct LogReader {
    mem: Arc<Mutex<Mem>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`: reads vote and committed, reads the log and cuts a
    /// torn tail. Blocking.
    ///
    /// # Errors
    /// I/O errors, and `InvalidData` for damage a crash cannot explain (a vote or committed
    /// file that does not parse, a log record with a valid checksum that does not decode, a
    /// hole in the indexes).
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        // Two processes (or two stores in one) appending to one log would interleave records.
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another raft store", dir.display()),
            ),
            fs::TryLockError::Error(e) => e,
        })?;
        let vote = match durable::read(dir, VOTE, 1)? {
            Some(p) => Some(serde_json::from_slice(&p[0]).map_err(invalid)?),
            None => None,
        };
        let committed = match durable::read(dir, COMMITTED, 1)? {
            Some(p) => serde_json::from_slice(&p[0]).map_err(invalid)?,
            None => None,
        };
        // Left by a purge that did not get to its rename: the old log is still whole.
        remove_if_exists(&dir.join(format!("{LOG}.tmp")))?;
        let path = dir.join(LOG);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // The file may have just been created: make its directory entry durable before any
        // append is acknowledged (an fdatasync of the file alone does not cover it).
        durable::sync_dir(dir)?;
        let bytes = fs::read(&path)?;
        let scan = record::scan(&bytes);
        let mut mem = Mem::default();
        let mut offsets = BTreeMap::new();
        for (offset, payload) in &scan.records {
            match serde_json::from_slice::<LogRecord>(payload).map_err(invalid)? {
                LogRecord::Purged(id) => mem.last_purged = Some(id),
                LogRecord::Entry(e) => {
                    let index = e.get_log_id().index;
                    let expected = match mem.entries.last_key_value() {
                        Some((last, _)) => last + 1,
                        None => mem.last_purged.map_or(index, |p| p.index + 1),
                    };
                    if index != expected {
                        return Err(invalid(format!(
                            "{}: entry {index} at byte {offset} where {expected} was expected",
                            path.display()
                        )));
                    }
                    offsets.insert(index, *offset);
                    mem.entries.insert(index, e);
                }
            }
        }
        if scan.stop != Stop::End {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = scan.valid_len,
                cut_bytes = bytes.len() as u64 - scan.valid_len,
                reason = ?scan.stop,
                "raft log: cutting a torn tail left by a crash"
            );
            file.set_len(scan.valid_len)?;
            file.sync_all()?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            mem: Arc::new(Mutex::new(mem)),
            disk: Arc::new(Mutex::new(Disk {
                dir: dir.to_owned(),
                _lock: lock,
                file,
                len: scan.valid_len,
                offsets,
            })),
            vote,
            commit_index: Arc::new(AtomicU64::new(
                committed.map_or(0, |c: LogId<NodeId>| c.index + 1),
            )),
            committed,
        })
    }

    /// A handle on the committed index; take it before handing the store to openraft.
    pub fn commit_index(&self) -> CommitIndex {
        CommitIndex(self.commit_index.clone())
    }

    fn reader(&self) -> LogReader {
        LogReader {
            mem: self.mem.clone(),
        }
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(crate) fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Entries in `range`; empty (not a panic, as `BTreeMap::range` would) when the range is
/// inverted.
fn read_range(mem: &Mutex<Mem>, range: impl RangeBounds<u64>) -> Vec<Entry<TypeConfig>> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    if start >= end {
        return Vec::new();
    }
    lock(mem)
        .entries
        .range(start..end)
        .map(|(_, e)| e.clone())
        .collect()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(read_range(&self.mem, range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(read_range(&self.mem, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let mem = lock(&self.mem);
        let last = mem
            .entries
            .last_key_value()
            .map(|(_, e)| *e.get_log_id())
            .or(mem.last_purged);
        Ok(LogState {
            last_purged_log_id: mem.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let json = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let dir = self.dir.clone();
        blocking(move || durable::replace(&dir, VOTE, &[&json]))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let json = serde_json::to_vec(&committed).map_err(|e| StorageIOError::write(&e))?;
        let dir = self.dir.clone();
        blocking(move || durable::replace(&dir, COMMITTED, &[&json]))
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        self.committed = committed;
        self.commit_index
            .store(committed.map_or(0, |c| c.index + 1), Ordering::Relaxed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut buf = Vec::new();
        let mut rel = Vec::with_capacity(entries.len());
        for e in &entries {
            rel.push((e.get_log_id().index, buf.len() as u64));
            encode(&LogRecordRef::Entry(e), &mut buf)
                .map_err(|e| StorageIOError::write_logs(&e))?;
        }
        let disk = self.disk.clone();
        let written = blocking(move || {
            let mut d = lock(&disk);
            d.file.write_all_at(&buf, d.len)?;
            d.file.sync_data()?;
            let base = d.len;
            for (index, off) in rel {
                d.offsets.insert(index, base + off);
            }
            d.len += buf.len() as u64;
            Ok(())
        })
        .await;
        match written {
            Ok(()) => {
                let mut mem = lock(&self.mem);
                for e in entries {
                    mem.entries.insert(e.get_log_id().index, e);
                }
                drop(mem);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(e));
                Err(err.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let since = log_id.index;
        let disk = self.disk.clone();
        blocking(move || {
            let mut d = lock(&disk);
            let Some(&cut) = d.offsets.range(since..).next().map(|(_, o)| o) else {
                return Ok(());
            };
            d.file.set_len(cut)?;
            d.file.sync_all()?;
            d.len = cut;
            d.offsets.split_off(&since);
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e))?;
        lock(&self.mem).entries.split_off(&since);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        if lock(&self.mem).last_purged >= Some(log_id) {
            // Already purged this far: the start of the log never moves back.
            return Ok(());
        }
        let kept: Vec<Entry<TypeConfig>> = read_range(&self.mem, log_id.index + 1..);
        let disk = self.disk.clone();
        blocking(move || {
            let mut buf = Vec::new();
            let mut offsets = BTreeMap::new();
            encode(&LogRecordRef::Purged(&log_id), &mut buf)?;
            for e in &kept {
                offsets.insert(e.get_log_id().index, buf.len() as u64);
                encode(&LogRecordRef::Entry(e), &mut buf)?;
            }
            let mut d = lock(&disk);
            let tmp = d.dir.join(format!("{LOG}.tmp"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all_at(&buf, 0)?;
            file.sync_all()?;
            fs::rename(&tmp, d.dir.join(LOG))?;
            durable::sync_dir(&d.dir)?;
            d.file = file;
            d.len = buf.len() as u64;
            d.offsets = offsets;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e))?;
        let mut mem = lock(&self.mem);
        mem.entries = mem.entries.split_off(&(log_id.index + 1));
        mem.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
