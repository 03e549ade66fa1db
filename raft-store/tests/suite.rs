//! openraft's own storage test suite (`openraft::testing::Suite`) against our stores on real
//! temporary directories: the canonical check of the `RaftLogStorage`/`RaftStateMachine`
//! contract (log state, purge, truncate, vote, membership recovery, snapshot transfer).

use camstream_raft_store::openraft::StorageError;
use camstream_raft_store::openraft::testing::{StoreBuilder, Suite};
use camstream_raft_store::{LogStore, NodeId, StateMachineStore, TypeConfig};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm) = camstream_raft_store::open(dir.path().join("raft"))
            .await
            .expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}
