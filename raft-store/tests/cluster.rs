//! Three in-process raft nodes on real directories, connected by an in-memory network (direct
//! calls, every request and reply round-tripped through JSON as a real transport would): a
//! follower and then the leader are stopped and restarted from their directories while a
//! client keeps changing placements; afterwards every node's state machine is identical and
//! holds every acknowledged write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use camstream_raft_store::openraft::error::{
    InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable,
};
use camstream_raft_store::openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use camstream_raft_store::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use camstream_raft_store::openraft::storage::RaftLogStorage;
use camstream_raft_store::openraft::{BasicNode, Config, SnapshotPolicy};
use camstream_raft_store::{
    Capacity, ClusterState, Command, Load, NodeId, NodeInfo, Raft, Response, StateHandle,
    TypeConfig,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

type Router = Arc<Mutex<BTreeMap<NodeId, Raft>>>;

fn live(router: &Router) -> Vec<(NodeId, Raft)> {
    router
        .lock()
        .expect("router lock")
        .iter()
        .map(|(id, r)| (*id, r.clone()))
        .collect()
}

fn get(router: &Router, id: NodeId) -> Option<Raft> {
    router.lock().expect("router lock").get(&id).cloned()
}

/// Through JSON and back, as over a wire.
fn wire<T: Serialize + DeserializeOwned>(v: T) -> T {
    serde_json::from_slice(&serde_json::to_vec(&v).expect("serialize")).expect("deserialize")
}

#[derive(Clone)]
struct Network {
    router: Router,
}

struct Conn {
    router: Router,
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Conn {
        Conn {
            router: self.router.clone(),
            target,
        }
    }
}

impl Conn {
    // The error type is openraft's, as the RaftNetwork methods must return it.
    #[allow(clippy::result_large_err)]
    fn peer<E: std::error::Error>(&self) -> Result<Raft, RPCError<NodeId, BasicNode, E>> {
        get(&self.router, self.target).ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("node {} is down", self.target),
            )))
        })
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let peer = self.peer()?;
        match peer.append_entries(wire(rpc)).await {
            Ok(r) => Ok(wire(r)),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let peer = self.peer()?;
        match peer.install_snapshot(wire(rpc)).await {
            Ok(r) => Ok(wire(r)),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let peer = self.peer()?;
        match peer.vote(wire(rpc)).await {
            Ok(r) => Ok(wire(r)),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }
}

fn config() -> Arc<Config> {
    // The crate's timeouts, with a small snapshot interval so snapshots, purges and snapshot
    // installs all happen here.
    Arc::new(
        Config {
            snapshot_policy: SnapshotPolicy::LogsSinceLast(40),
            max_in_snapshot_log_to_keep: 10,
            ..camstream_raft_store::config("test")
        }
        .validate()
        .expect("valid config"),
    )
}

struct Node {
    raft: Raft,
    state: StateHandle,
    /// The term of the vote found on disk when the node started.
    stored_term: u64,
}

async fn start(id: NodeId, dir: &Path, router: &Router) -> Result<Node> {
    let (mut log, sm) = camstream_raft_store::open(dir).await?;
    let stored_term = log.read_vote().await?.map_or(0, |v| v.leader_id().term);
    let state = sm.handle();
    let raft = Raft::new(
        id,
        config(),
        Network {
            router: router.clone(),
        },
        log,
        sm,
    )
    .await?;
    router.lock().expect("router lock").insert(id, raft.clone());
    Ok(Node {
        raft,
        state,
        stored_term,
    })
}

async fn stop(id: NodeId, router: &Router, nodes: &mut BTreeMap<NodeId, Node>) -> Result<()> {
    router.lock().expect("router lock").remove(&id);
    let node = nodes.remove(&id).context("node not running")?;
    node.raft.shutdown().await.context("shutdown")?;
    Ok(())
}

fn addr(id: NodeId) -> BasicNode {
    BasicNode::new(format!("127.0.0.1:{}", 7000 + id))
}

fn leader_of(router: &Router) -> Option<Raft> {
    live(router).into_iter().find_map(|(_, r)| {
        let leader = r.metrics().borrow().current_leader?;
        get(router, leader)
    })
}

/// Proposes `cmd` until a leader acknowledges it (retrying through elections and stopped
/// nodes) and returns the applied response.
async fn write(router: &Router, cmd: &Command) -> Result<Response> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ensure!(Instant::now() < deadline, "no leader acknowledged {cmd:?}");
        let Some(raft) = leader_of(router) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(2), raft.client_write(cmd.clone())).await {
            Ok(Ok(r)) => return Ok(r.data),
            // Not leader any more, shutting down, or slow: ask again.
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn info(id: NodeId) -> NodeInfo {
    NodeInfo {
        id,
        api_url: format!("http://127.0.0.1:{}", 8000 + id),
        raft_addr: format!("127.0.0.1:{}", 7000 + id),
        relay_addr: format!("127.0.0.1:{}", 9000 + id),
        rtmp_addrs: vec![format!("rtmp://127.0.0.1:{}", 1935 + id)],
        capacity: Capacity {
            max_streams: 1_000,
            max_ingest_kbps: 0,
        },
    }
}

/// What the client saw acknowledged: per camera the last `(node, epoch)`, per node the last
/// load it reported.
#[derive(Default)]
struct Acked {
    placements: BTreeMap<String, (Option<NodeId>, u64)>,
    loads: BTreeMap<NodeId, Load>,
}

/// Claims cameras round-robin on changing nodes, with a heartbeat every fifth write, until
/// told to stop; publishes the number of acknowledged writes.
async fn writer(
    router: Router,
    stop: watch::Receiver<bool>,
    count: watch::Sender<u64>,
) -> Result<Acked> {
    let mut acked = Acked::default();
    let mut at_ms = 1_000_000;
    let mut i: u64 = 0;
    let mut claims: u64 = 0;
    while !*stop.borrow() {
        at_ms += 10;
        if i % 5 == 4 {
            let node = 1 + i % 3;
            let load = Load {
                active_streams: (i % 97) as u32,
                ingest_kbps: i * 100,
                cpu_permille: (i % 1000) as u16,
                transcoding: 1,
                transcode_max: 2,
            };
            let cmd = Command::Heartbeat {
                node,
                at_ms,
                lease_ms: 3_600_000,
                load,
            };
            match write(&router, &cmd).await? {
                Response::Lease { node: n, .. } if n == node => {
                    acked.loads.insert(node, load);
                }
                other => bail!("heartbeat answered {other:?}"),
            }
        } else {
            // Every camera in turn; each round moves them all to the next node.
            let camera = format!("cam{:02}", claims % 20);
            let node = 1 + (claims / 20) % 3;
            claims += 1;
            let cmd = Command::Claim {
                camera: camera.clone(),
                node,
                at_ms,
            };
            match write(&router, &cmd).await? {
                Response::Placed {
                    camera: c,
                    node: n,
                    epoch,
                } => {
                    ensure!(c == camera && n == Some(node), "claim answered {c} {n:?}");
                    if let Some((_, prev)) = acked.placements.get(&camera) {
                        ensure!(
                            epoch >= *prev,
                            "epoch of {camera} went back: {prev} -> {epoch}"
                        );
                    }
                    acked.placements.insert(camera, (n, epoch));
                }
                other => bail!("claim refused: {other:?}"),
            }
        }
        i += 1;
        count.send_replace(i);
    }
    Ok(acked)
}

async fn wait_count(rx: &mut watch::Receiver<u64>, at_least: u64) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|n| *n >= at_least))
        .await
        .context("writes stalled")??;
    Ok(())
}

/// Waits until every running node applied the same last entry; returns their states.
async fn converge(nodes: &BTreeMap<NodeId, Node>) -> Result<Vec<(NodeId, ClusterState)>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let applied: BTreeSet<_> = nodes.values().map(|n| n.state.last_applied()).collect();
        if applied.len() == 1 {
            let states: Vec<_> = nodes
                .iter()
                .map(|(id, n)| (*id, n.state.read(|s| s.clone())))
                .collect();
            if nodes
                .values()
                .all(|n| n.state.last_applied() == *applied.first().expect("one"))
            {
                return Ok(states);
            }
        }
        ensure!(
            Instant::now() < deadline,
            "nodes did not converge: {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_follower_and_leader_restarts_without_losing_writes() -> Result<()> {
    let started = Instant::now();
    let root = tempfile::tempdir()?;
    let dir = |id: NodeId| -> PathBuf { root.path().join(format!("node{id}")).join("raft") };
    let router: Router = Arc::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(id, &dir(id), &router).await?);
    }

    // Form the cluster: 1 initializes alone, 2 and 3 join as learners, then as voters.
    nodes[&1]
        .raft
        .initialize(BTreeMap::from([(1, addr(1))]))
        .await?;
    nodes[&1]
        .raft
        .wait(Some(Duration::from_secs(10)))
        .current_leader(1, "node 1 leads")
        .await?;
    for id in [2, 3] {
        nodes[&1].raft.add_learner(id, addr(id), true).await?;
    }
    nodes[&1]
        .raft
        .change_membership(BTreeSet::from([1, 2, 3]), false)
        .await?;
    for id in 1..=3 {
        let r = write(
            &router,
            &Command::Join {
                info: info(id),
                at_ms: 1_000_000,
                lease_ms: 3_600_000,
            },
        )
        .await?;
        ensure!(
            matches!(r, Response::Lease { node, .. } if node == id),
            "join {id}: {r:?}"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (count_tx, mut count_rx) = watch::channel(0u64);
    let client = tokio::spawn(writer(router.clone(), stop_rx, count_tx));

    // Stop a follower under load, keep writing, restart it from its directory.
    wait_count(&mut count_rx, 60).await?;
    let leader = leader_of(&router).context("a leader")?;
    let leader_id = leader.metrics().borrow().id;
    let follower = (1..=3).find(|id| *id != leader_id).expect("a follower");
    let term_before = nodes[&follower].raft.metrics().borrow().current_term;
    stop(follower, &router, &mut nodes).await?;
    let n = *count_rx.borrow();
    wait_count(&mut count_rx, n + 100).await?;
    nodes.insert(follower, start(follower, &dir(follower), &router).await?);
    let stored = nodes[&follower].stored_term;
    ensure!(
        stored >= term_before && term_before > 0,
        "restarted follower lost its vote: term {stored} < {term_before}"
    );

    // Stop the leader under load; a new one must take over; restart the old one.
    let n = *count_rx.borrow();
    wait_count(&mut count_rx, n + 40).await?;
    let leader_id = leader_of(&router)
        .context("a leader")?
        .metrics()
        .borrow()
        .id;
    let t_kill = Instant::now();
    stop(leader_id, &router, &mut nodes).await?;
    let n = *count_rx.borrow();
    let survivor = nodes.values().next().context("a survivor")?;
    survivor
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != leader_id),
            "a new leader",
        )
        .await?;
    let election = t_kill.elapsed();
    wait_count(&mut count_rx, n + 1).await?;
    let failover = t_kill.elapsed();
    wait_count(&mut count_rx, n + 100).await?;
    let new_leader = leader_of(&router)
        .context("a leader")?
        .metrics()
        .borrow()
        .id;
    ensure!(new_leader != leader_id, "leadership moved");
    nodes.insert(leader_id, start(leader_id, &dir(leader_id), &router).await?);
    let n = *count_rx.borrow();
    wait_count(&mut count_rx, n + 40).await?;

    // A new learner joins after compaction: the log it would need is gone, so it can only
    // catch up through a snapshot sent over the (JSON) network.
    let leader = leader_of(&router).context("a leader")?;
    let purged = leader.metrics().borrow().purged;
    ensure!(purged.is_some(), "the leader purged nothing");
    nodes.insert(4, start(4, &dir(4), &router).await?);
    leader.add_learner(4, addr(4), true).await?;
    nodes[&4]
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some(),
            format!("learner got a snapshot (leader purged {purged:?})"),
        )
        .await?;
    let n = *count_rx.borrow();
    wait_count(&mut count_rx, n + 20).await?;

    stop_tx.send_replace(true);
    let acked = client.await??;
    let writes = *count_rx.borrow();

    let states = converge(&nodes).await?;
    let (_, first) = &states[0];
    for (id, s) in &states {
        ensure!(
            s == first,
            "state of node {id} differs from node {}",
            states[0].0
        );
    }
    ensure!(
        acked.placements.len() == 20,
        "all cameras written: {}",
        acked.placements.len()
    );
    for (id, load) in &acked.loads {
        let m = first.member(*id).context("member in state")?;
        ensure!(
            m.load == *load,
            "node {id}: acknowledged {load:?}, state has {:?}",
            m.load
        );
    }
    ensure!(acked.loads.len() == 3, "every node heartbeated");
    let moves = acked
        .placements
        .values()
        .map(|(_, e)| *e)
        .min()
        .unwrap_or(0);
    ensure!(
        moves >= 5,
        "every camera moved at least 5 times (least: {moves})"
    );
    for (camera, (node, epoch)) in &acked.placements {
        let p = first.placement(camera).context("camera in state")?;
        ensure!(
            p.node == *node && p.epoch == *epoch,
            "{camera}: acknowledged {node:?}@{epoch}, state has {:?}@{}",
            p.node,
            p.epoch
        );
    }
    // Compaction ran: some node holds a snapshot and purged its log behind it.
    let compacted = nodes
        .values()
        .any(|n| n.raft.metrics().borrow().purged.is_some());
    ensure!(compacted, "no node purged its log");

    eprintln!(
        "{writes} acknowledged writes; leader stopped -> new leader {election:?}, -> next acknowledged write {failover:?}; whole test {:?}",
        started.elapsed()
    );
    for id in 1..=4 {
        stop(id, &router, &mut nodes).await?;
    }
    Ok(())
}
