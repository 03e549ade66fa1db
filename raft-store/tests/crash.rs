//! SIGKILL of a process that appends, votes, commits and purges in a loop, at arbitrary
//! points: the store reopens, and everything the child reported as acknowledged (printed
//! only after the store returned) is there. The child is this test binary run again with
//! `RAFT_STORE_CRASH_CHILD` set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};

use camstream_raft_store::openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use camstream_raft_store::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use camstream_raft_store::{Command, NodeId, TypeConfig};

const CHILD: &str = "RAFT_STORE_CRASH_CHILD";
const TEST: &str = "killed_at_random_points_keeps_every_acknowledged_write";

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Command::Tick { at_ms: index }),
    }
}

/// The child: continues the store in `dir` forever, reporting each acknowledged step.
fn child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut log, _sm) = camstream_raft_store::open(dir).await.expect("open");
        let state = log.get_log_state().await.expect("state");
        let mut next = state.last_log_id.map_or(1, |l| l.index + 1);
        loop {
            log.blocking_append([entry(next)]).await.expect("append");
            println!("ack {next}");
            if next % 5 == 0 {
                log.save_vote(&Vote::new(next, 1)).await.expect("vote");
                log.save_committed(Some(log_id(next - 1)))
                    .await
                    .expect("committed");
                println!("vote {next}");
            }
            if next % 40 == 0 {
                log.purge(log_id(next - 10)).await.expect("purge");
                println!("purged {}", next - 10);
            }
            next += 1;
        }
    });
}

#[test]
fn killed_at_random_points_keeps_every_acknowledged_write() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut acked, mut voted, mut purged) = (0u64, 0u64, 0u64);
    // Kill after a varying number of acknowledgements so the kill lands in different steps
    // (append, vote/committed replace, purge rewrite).
    for (round, wait_for) in [23u64, 61, 40, 97, 15, 130].into_iter().enumerate() {
        let mut child = Process::new(&exe)
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = 0;
        let mut record = |line: &str| {
            let mut it = line.split(' ');
            let (Some(what), Some(n)) = (it.next(), it.next().and_then(|n| n.parse().ok())) else {
                return;
            };
            match what {
                "ack" => acked = acked.max(n),
                "vote" => voted = voted.max(n),
                "purged" => purged = purged.max(n),
                _ => {}
            }
        };
        for line in lines.by_ref() {
            let line = line.expect("child output");
            record(&line);
            if line.starts_with("ack ") {
                seen += 1;
                if seen == wait_for {
                    break;
                }
            }
        }
        assert_eq!(seen, wait_for, "round {round}: the child stopped early");
        child.kill().expect("SIGKILL");
        // Lines printed before the kill were acknowledged too.
        for line in lines {
            record(&line.expect("child output"));
        }
        child.wait().expect("reap");

        let (mut log, _sm) = rt
            .block_on(camstream_raft_store::open(dir.path()))
            .expect("reopen after SIGKILL");
        let (state, vote, entries) = rt.block_on(async {
            let state = log.get_log_state().await.expect("state");
            let vote = log.read_vote().await.expect("vote");
            let entries = log.try_get_log_entries(..).await.expect("entries");
            (state, vote, entries)
        });
        let last = state.last_log_id.map_or(0, |l| l.index);
        assert!(
            last >= acked,
            "round {round}: acked {acked}, log ends at {last}"
        );
        assert!(
            vote.is_some_and(|v| v.leader_id().term >= voted),
            "round {round}: voted {voted}, store has {vote:?}"
        );
        let start = state.last_purged_log_id.map_or(0, |l| l.index);
        assert!(
            start >= purged,
            "round {round}: purged {purged}, log starts after {start}"
        );
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        let expect: Vec<u64> = (start + 1..=last).collect();
        assert_eq!(indexes, expect, "round {round}: a contiguous log");
        assert!(!dir.path().join("log.tmp").exists());
        drop(log);
    }
    assert!(purged > 0, "some kill happened after a purge");
}
