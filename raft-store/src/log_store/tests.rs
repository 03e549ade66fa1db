use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::Command;

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: if index.is_multiple_of(3) {
            EntryPayload::Blank
        } else {
            EntryPayload::Normal(Command::Tick { at_ms: index })
        },
    }
}

async fn entries(store: &mut LogStore) -> Vec<u64> {
    store
        .try_get_log_entries(..)
        .await
        .expect("read")
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

/// Writes a log of entries 1..=6 in three acknowledged appends, optionally after purging
/// through 2 (so the file starts with a `Purged` record). Returns the log file's bytes.
async fn write_log(dir: &Path, purge_first: bool) -> Vec<u8> {
    let mut s = LogStore::open(dir).expect("open");
    s.save_vote(&Vote::new(3, 1)).await.expect("vote");
    s.save_committed(Some(log_id(1, 2)))
        .await
        .expect("committed");
    for batch in [[1, 2], [3, 4], [5, 6]] {
        s.blocking_append(batch.map(entry)).await.expect("append");
        if purge_first && batch[0] == 1 {
            s.purge(log_id(1, 2)).await.expect("purge");
        }
    }
    fs::read(dir.join(LOG)).expect("read log")
}

async fn torn_tail_at_every_offset(purge_first: bool) {
    let src = tempfile::tempdir().expect("tempdir");
    let bytes = write_log(src.path(), purge_first).await;
    let scan = record::scan(&bytes);
    assert_eq!(scan.stop, Stop::End);
    let first = if purge_first { 3 } else { 1 };
    let records = if purge_first { 5 } else { 6 };
    assert_eq!(scan.records.len(), records);
    let ends: Vec<u64> = scan
        .records
        .iter()
        .map(|(off, p)| off + (record::HEADER_LEN + p.len()) as u64)
        .collect();
    for cut in 0..=bytes.len() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [VOTE, COMMITTED] {
            fs::copy(src.path().join(f), dir.path().join(f)).expect("copy");
        }
        fs::write(dir.path().join(LOG), &bytes[..cut]).expect("write");
        let mut s = LogStore::open(dir.path()).expect("open after a torn write");
        let whole = ends.iter().filter(|e| **e <= cut as u64).count();
        let kept = ends.get(whole.wrapping_sub(1)).copied().unwrap_or(0);
        assert_eq!(
            fs::metadata(dir.path().join(LOG)).expect("stat").len(),
            kept,
            "cut at {cut}: file cut back to the last whole record"
        );
        // With a purge marker first, the marker is one of the whole records.
        let n_entries = if purge_first {
            whole.saturating_sub(1)
        } else {
            whole
        };
        let expect: Vec<u64> = (first..first + n_entries as u64).collect();
        assert_eq!(entries(&mut s).await, expect, "cut at {cut}");
        let state = s.get_log_state().await.expect("state");
        if purge_first && whole > 0 {
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)), "cut at {cut}");
        }
        assert_eq!(s.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
        assert_eq!(
            s.read_committed().await.expect("committed"),
            Some(log_id(1, 2))
        );
        // The log goes on from where it was cut, and that survives a reopen.
        let next = state.last_log_id.map_or(first, |l| l.index + 1);
        s.blocking_append([entry(next)]).await.expect("append");
        drop(s);
        let mut s = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(
            entries(&mut s).await.last().copied(),
            Some(next),
            "cut at {cut}"
        );
    }
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_every_offset() {
    torn_tail_at_every_offset(false).await;
}

#[tokio::test]
async fn a_torn_tail_is_cut_at_every_offset_after_a_purge() {
    torn_tail_at_every_offset(true).await;
}

#[tokio::test]
async fn purge_and_truncate_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = LogStore::open(dir.path()).expect("open");
    s.blocking_append((1..=10).map(entry))
        .await
        .expect("append");
    s.purge(log_id(1, 4)).await.expect("purge");
    s.purge(log_id(1, 2))
        .await
        .expect("an older purge is a no-op");
    s.truncate(log_id(1, 8)).await.expect("truncate");
    assert_eq!(entries(&mut s).await, vec![5, 6, 7]);
    drop(s);
    let mut s = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(entries(&mut s).await, vec![5, 6, 7]);
    let st = s.get_log_state().await.expect("state");
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(st.last_log_id, Some(log_id(1, 7)));
    // Appends after a truncation land where the cut was, not after the old end.
    s.blocking_append([entry(8)]).await.expect("append");
    drop(s);
    let mut s = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(entries(&mut s).await, vec![5, 6, 7, 8]);
    // Purging past the end leaves an empty log that remembers where it stands.
    s.purge(log_id(1, 20)).await.expect("purge");
    drop(s);
    let mut s = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(entries(&mut s).await, Vec::<u64>::new());
    let st = s.get_log_state().await.expect("state");
    assert_eq!(st.last_log_id, Some(log_id(1, 20)));
    assert!(!dir.path().join("log.tmp").exists());
}

#[tokio::test]
async fn a_store_directory_opens_once_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = LogStore::open(dir.path()).expect("open");
    let err = LogStore::open(dir.path()).expect_err("second open");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    drop(s);
    LogStore::open(dir.path()).expect("open after close");
}

#[tokio::test]
async fn odd_ranges_read_empty_instead_of_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = LogStore::open(dir.path()).expect("open");
    s.blocking_append((1..=5).map(entry)).await.expect("append");
    let n = |v: Vec<Entry<TypeConfig>>| v.len();
    assert_eq!(
        n(s.try_get_log_entries(std::ops::Range { start: 4, end: 2 })
            .await
            .expect("read")),
        0
    );
    assert_eq!(n(s.try_get_log_entries(3..3).await.expect("read")), 0);
    assert_eq!(n(s.try_get_log_entries(3..=3).await.expect("read")), 1);
    assert_eq!(n(s.try_get_log_entries(4..).await.expect("read")), 2);
    assert_eq!(
        n(s.try_get_log_entries(..=u64::MAX).await.expect("read")),
        5
    );
    let mut r = s.get_log_reader().await;
    assert_eq!(n(r.limited_get_log_entries(2, 4).await.expect("read")), 2);
}

#[tokio::test]
async fn damage_a_crash_cannot_explain_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = LogStore::open(dir.path()).expect("open");
    s.blocking_append((1..=3).map(entry)).await.expect("append");
    drop(s);
    // A whole, checksummed record that is not a log record: a bug or tampering, not a crash.
    let mut bytes = fs::read(dir.path().join(LOG)).expect("read");
    record::encode(b"{\"Nonsense\":1}", &mut bytes);
    fs::write(dir.path().join(LOG), &bytes).expect("write");
    let err = LogStore::open(dir.path()).expect_err("must refuse");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    // A hole in the indexes.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::new();
    for i in [1, 2, 4] {
        encode(&LogRecordRef::Entry(&entry(i)), &mut bytes).expect("encode");
    }
    fs::write(dir.path().join(LOG), &bytes).expect("write");
    let err = LogStore::open(dir.path()).expect_err("must refuse");
    assert!(err.to_string().contains("entry 4"), "{err}");
}
