//! The node shell of the cluster: runs openraft over the stores of `camstream-raft-store`,
//! talks to the other nodes over signed HTTP on `--raft-addr`, joins, heartbeats, and (on
//! the leader) takes over, ticks and schedules. The API (`api/cluster.rs`) reads
//! [`Cluster::status`] and asks for changes through [`Cluster::propose`].
//!
//! - [`auth`]: the request signatures every node-to-node request carries.
//! - [`network`]: the client side (openraft `RaftNetworkFactory` and forwarded proposals).
//! - [`server`]: the listener on `--raft-addr`.
//! - [`tasks`]: join, heartbeat, leader and metrics loops.
//!
//! - [`fence`]: when this node stops acting as a camera's origin (lease, placement epoch);
//!   [`Cluster`] implements the relay's [`OriginFence`] with it.
//!
//! Left to others: the QUIC relay itself (the binary hands it this [`Cluster`] as its
//! fence) and disconnecting publishers (`ControlPlane::report_health` does, through
//! `LiveControl`). A single node (no `--node-id`) never builds any of this.

pub(crate) mod auth;
pub(crate) mod fence;
mod network;
mod server;
mod tasks;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camstream_protocol::{Fenced, OriginFence};
use camstream_raft_store::openraft::error::{ClientWriteError, RaftError};
use camstream_raft_store::openraft::{BasicNode, ChangeMembers, ServerState};
use camstream_raft_store::{
    Capacity, Command, CommitIndex, Load, NodeId, NodeInfo, Raft, Refusal, Response, StateHandle,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use auth::ClusterKey;
use network::{Network, Peer};

/// A change a node asks the leader for. The leader stamps it with its clock and lease
/// length and turns it into a [`Command`]; nodes never stamp commands themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Proposal {
    /// Add the node (learner, then voter) and record its addresses. Idempotent.
    Join(NodeInfo),
    /// Renew the node's lease and record its load.
    Heartbeat {
        /// The node.
        node: NodeId,
        /// Its load now.
        load: Load,
    },
    /// Start or stop draining a node.
    Drain {
        /// The node.
        node: NodeId,
        /// Draining or not.
        draining: bool,
    },
    /// Remove a node from the raft membership and the state.
    Remove {
        /// The node.
        node: NodeId,
    },
    /// A publisher of `camera` is connected to `node`: the camera moves there.
    Claim {
        /// The camera id.
        camera: String,
        /// The node holding the publisher.
        node: NodeId,
    },
    /// Place a camera that has no node yet on the node the scheduler picks (a camera with a
    /// node keeps it).
    Place {
        /// The camera id.
        camera: String,
        /// It has an ABR profile: nodes with transcode room come first. Absent in
        /// proposals from older nodes (a plain camera).
        #[serde(default)]
        transcoded: bool,
    },
}

/// Why a proposal was not applied, as a node answers another over the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum ProposeFailure {
    /// This node is not the leader; ask `leader` (if known).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The node named is not a member.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// The state machine refused the command.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Raft could not do it (membership change in progress, shutting down, ...).
    #[error("{0}")]
    Failed(String),
}

/// Why [`Cluster::propose`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProposeError {
    /// The node named is not a member.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// The state machine refused the command.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// No leader could be reached before the deadline, or raft failed.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
}

/// A change to a camera made through one node's API that every node applies to its own
/// live streams and recorder (the publisher may be on any of them, and may move).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CameraControl {
    /// The camera.
    pub(crate) camera: String,
    /// Drop the camera's publisher, for this reason.
    pub(crate) disconnect: Option<String>,
    /// Turn its recording on or off.
    pub(crate) recording: Option<bool>,
}

/// Applies a [`CameraControl`] on this node.
pub(crate) type CameraHook = Box<dyn Fn(&CameraControl) + Send + Sync>;

/// Publishes events relayed from another node on this node's bus.
pub(crate) type EventsHook = Box<dyn Fn(Vec<crate::events::NewEvent>) + Send + Sync>;

/// A running cluster node. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.info.id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClusterConfig,
    info: NodeInfo,
    raft: Raft,
    state: StateHandle,
    commit: CommitIndex,
    key: Arc<ClusterKey>,
    peer: Peer,
    /// Until when this node may act on its lease, by its own monotonic clock (see
    /// [`Cluster::holds_lease`]).
    lease_until: Mutex<Option<Instant>>,
    /// The load reported with the next heartbeat.
    load: Mutex<Load>,
    /// One membership change at a time on the leader.
    membership: tokio::sync::Mutex<()>,
    /// Where camera controls from other nodes go (the control plane's live streams).
    camera_hook: std::sync::OnceLock<CameraHook>,
    /// Where events relayed from other nodes go (the control plane's event bus).
    events_hook: std::sync::OnceLock<EventsHook>,
    /// What the fence remembers between health rounds.
    fence: Mutex<fence::Fence>,
    /// The term in which this node, as leader, wrote its `Takeover` (0: none yet), and the
    /// lock that makes it written once.
    taken_over: std::sync::atomic::AtomicU64,
    takeover: tokio::sync::Mutex<()>,
}

/// Why the cluster node could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterStartError {
    /// The raft directory could not be opened.
    #[error("raft store {path}: {source}")]
    Store {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `--raft-addr` could not be bound.
    #[error("cannot listen on --raft-addr {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// Sends a join for the node `info` to the member whose API is at `api_url`, signed with the
/// cluster `secret` as node `info.id` (what `camstream cluster add` does for a running node;
/// a node started with `--join` does this itself).
///
/// # Errors
/// The member could not be reached, refused the signature (401), or no leader added the
/// node in time; the message says which.
pub async fn send_join(api_url: &str, secret: &str, info: &NodeInfo) -> Result<(), String> {
    let peer = Peer::new(info.id, Arc::new(ClusterKey::derive(secret)));
    peer.join(api_url.trim_end_matches('/'), info)
        .await
        .map_err(|e| e.to_string())
}

/// Leader wall clock, UNIX milliseconds.
fn now_ms() -> u64 {
    u64::try_from(crate::clock::now_ms()).unwrap_or(0)
}

impl Cluster {
    /// Opens `<data_dir>/raft/`, starts raft and the listener on `--raft-addr`, initializes
    /// a new cluster when there is no `--join` and the store is empty, and spawns the join,
    /// heartbeat, leader and metrics loops into `tasks` (they stop on `cancel`).
    ///
    /// # Errors
    /// [`ClusterStartError`]: the store, the listener or openraft.
    pub(crate) async fn start(
        config: ClusterConfig,
        data_dir: &std::path::Path,
        tasks: &mut JoinSet<()>,
        cancel: CancellationToken,
    ) -> Result<Self, ClusterStartError> {
        let dir = data_dir.join("raft");
        let (log, sm) =
            camstream_raft_store::open(&dir)
                .await
                .map_err(|source| ClusterStartError::Store {
                    path: dir.display().to_string(),
                    source,
                })?;
        let commit = log.commit_index();
        let state = sm.handle();
        let key = Arc::new(ClusterKey::derive(&config.secret));
        let peer = Peer::new(config.node_id, key.clone());
        let raft_config = Arc::new(camstream_raft_store::config("camstream"));
        let raft = Raft::new(
            config.node_id,
            raft_config,
            Network::new(peer.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| ClusterStartError::Raft(e.to_string()))?;
        let info = NodeInfo {
            id: config.node_id,
            api_url: config.advertise_api.clone(),
            raft_addr: config.advertise_raft.clone(),
            relay_addr: config.advertise_relay.clone(),
            rtmp_addrs: vec![config.advertise_rtmp.clone()],
            capacity: Capacity::default(),
        };
        let listener = tokio::net::TcpListener::bind(config.raft_addr)
            .await
            .map_err(|source| ClusterStartError::Bind {
                addr: config.raft_addr,
                source,
            })?;
        let (node_id, lease) = (config.node_id, config.lease);
        let cluster = Self {
            inner: Arc::new(Inner {
                config,
                info,
                raft,
                state,
                commit,
                key,
                peer,
                lease_until: Mutex::new(None),
                camera_hook: std::sync::OnceLock::new(),
                events_hook: std::sync::OnceLock::new(),
                load: Mutex::new(Load::default()),
                membership: tokio::sync::Mutex::new(()),
                fence: Mutex::new(fence::Fence::new(node_id, lease)),
                taken_over: std::sync::atomic::AtomicU64::new(0),
                takeover: tokio::sync::Mutex::new(()),
            }),
        };
        let i = &cluster.inner;
        if i.config.join.is_none() {
            let initialized = i
                .raft
                .is_initialized()
                .await
                .map_err(|e| ClusterStartError::Raft(e.to_string()))?;
            if !initialized {
                let members = std::collections::BTreeMap::from([(
                    i.info.id,
                    BasicNode::new(&i.info.raft_addr),
                )]);
                i.raft
                    .initialize(members)
                    .await
                    .map_err(|e| ClusterStartError::Raft(e.to_string()))?;
                tracing::info!(node = i.info.id, "started a new cluster");
            }
        }
        tracing::info!(
            node = i.info.id,
            raft_addr = %i.config.raft_addr,
            advertise_raft = %i.info.raft_addr,
            join = ?i.config.join,
            "cluster node started"
        );
        tasks.spawn(server::serve(listener, cluster.clone(), cancel.clone()));
        tasks.spawn(tasks::join(cluster.clone(), cancel.clone()));
        tasks.spawn(tasks::heartbeat(cluster.clone(), cancel.clone()));
        tasks.spawn(tasks::lead(cluster.clone(), cancel.clone()));
        tasks.spawn(tasks::metrics(cluster.clone(), cancel.clone()));
        let raft = cluster.inner.raft.clone();
        tasks.spawn(async move {
            cancel.cancelled().await;
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "raft did not shut down cleanly");
            }
        });
        Ok(cluster)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.info.id
    }

    /// Whether this node may act on its lease now: it holds one from a heartbeat the leader
    /// answered, counted from when the heartbeat was *sent*, for 90 % of the lease, by this
    /// node's monotonic clock. Conservative by construction (docs/architecture.md, "Epochs
    /// and fencing"): the replicated lease ends no earlier.
    pub fn holds_lease(&self) -> bool {
        self.lease_until().is_some_and(|t| Instant::now() < t)
    }

    fn lease_until(&self) -> Option<Instant> {
        *self
            .inner
            .lease_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node may serve `camera` as origin now (lease view and placement); the
    /// epoch it serves it at.
    ///
    /// # Errors
    /// [`Fenced`] with the reason.
    /// An ABR rendition (`{camera}~{name}`) is made by the transcoder on its camera's
    /// origin: it is served under its camera's placement.
    pub fn may_serve(&self, camera: &str) -> Result<u64, Fenced> {
        let camera = camstream_protocol::abr::source_camera(camera);
        fence::may_serve(
            self.node_id(),
            self.holds_lease(),
            self.inner.state.read(|s| s.placement(camera)),
        )
    }

    /// One fencing round over the cameras published here now (`online`): the publishers to
    /// drop because their camera moved to another node with a newer epoch, because this node
    /// drains and the camera is not placed here, or because this node's lease view has been
    /// lapsed for a whole lease.
    pub(crate) fn fence_round(&self, online: &[String]) -> Vec<fence::Drop> {
        let held = self.holds_lease();
        let state = &self.inner.state;
        let me = self.node_id();
        let draining = state.read(|s| s.member(me).is_some_and(|m| m.draining));
        self.inner
            .fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(Instant::now(), held, draining, online, |c| {
                state.read(|s| s.placement(c))
            })
    }

    /// Checks a request another node signed (the join route on the API listener).
    ///
    /// # Errors
    /// [`auth::AuthError`] when the signature is missing, wrong, stale or replayed.
    pub(crate) fn verify(
        &self,
        method: &str,
        path: &str,
        presented: auth::Presented<'_>,
        body: &[u8],
    ) -> Result<NodeId, auth::AuthError> {
        self.inner
            .key
            .verify(method, path, presented, body, now_ms())
    }

    /// Records this node's load for its next heartbeat: cameras ingested, their total
    /// ingest bitrate (kbit/s), CPU use in per mille of all cores, and the cameras it
    /// transcodes with its transcode budget (`(transcoding, budget)`, budget 0: ABR off).
    pub fn set_load(
        &self,
        active_streams: u32,
        ingest_kbps: u64,
        cpu_permille: u16,
        (transcoding, transcode_max): (u32, u32),
    ) {
        *self.inner.load.lock().unwrap_or_else(|p| p.into_inner()) = Load {
            active_streams,
            ingest_kbps,
            cpu_permille,
            transcoding,
            transcode_max,
        };
    }

    fn load(&self) -> Load {
        *self.inner.load.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.inner.config.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// Asks the leader (this node or another, found through raft's metrics) to apply `p`,
    /// retrying through elections until `within` has passed.
    ///
    /// # Errors
    /// [`ProposeError`]: unknown node, refused by the state machine, or no leader in time.
    pub(crate) async fn propose(
        &self,
        p: Proposal,
        within: Duration,
    ) -> Result<Response, ProposeError> {
        let deadline = Instant::now() + within;
        loop {
            let (leader, addr) = {
                let m = self.inner.raft.metrics();
                let m = m.borrow();
                let leader = m.current_leader;
                let addr = leader.and_then(|l| {
                    m.membership_config
                        .membership()
                        .get_node(&l)
                        .map(|n| n.addr.clone())
                });
                (leader, addr)
            };
            let result = match (leader, addr) {
                // Bounded: a leader cut off from the majority never commits, and its
                // proposals must fail rather than hang (the minority cannot change the
                // state).
                (Some(l), _) if l == self.node_id() => {
                    let left = deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(50));
                    tokio::time::timeout(left, self.propose_here(p.clone()))
                        .await
                        .unwrap_or_else(|_| {
                            Err(ProposeFailure::Failed(
                                "not committed in time (no quorum?)".into(),
                            ))
                        })
                }
                (Some(_), Some(addr)) => self.inner.peer.propose(&addr, &p, within).await,
                _ => Err(ProposeFailure::NotLeader { leader: None }),
            };
            let last = match result {
                Ok(r) => return Ok(r),
                Err(ProposeFailure::UnknownNode(n)) => return Err(ProposeError::UnknownNode(n)),
                Err(ProposeFailure::Refused(Refusal::UnknownNode { node })) => {
                    return Err(ProposeError::UnknownNode(node));
                }
                Err(ProposeFailure::Refused(r)) => return Err(ProposeError::Refused(r)),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ProposeError::Unavailable(last));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// On a leader that has not written `Takeover` in its term yet, writes it now (once).
    /// Every write of a new leader comes after it: a heartbeat stamped by the new leader's
    /// clock must not expire the leases of live nodes that could not renew during the
    /// election (their cameras would be re-placed and their publishers fenced).
    ///
    /// # Errors
    /// The `Takeover` was not written (not the leader any more, shutting down).
    pub(crate) async fn ensure_takeover(&self) -> Result<(), ProposeFailure> {
        use std::sync::atomic::Ordering;
        let i = &self.inner;
        let term = i.raft.metrics().borrow().current_term;
        if i.taken_over.load(Ordering::Acquire) == term {
            return Ok(());
        }
        let _once = i.takeover.lock().await;
        if i.taken_over.load(Ordering::Acquire) == term {
            return Ok(());
        }
        let cmd = Command::Takeover {
            at_ms: now_ms(),
            grace_ms: self.lease_ms(),
        };
        self.write_unchecked(cmd).await?;
        i.taken_over.store(term, Ordering::Release);
        tracing::info!(term, "leading the cluster");
        Ok(())
    }

    /// Applies `p` on this node, which must be the leader.
    pub(crate) async fn propose_here(&self, p: Proposal) -> Result<Response, ProposeFailure> {
        self.ensure_takeover().await?;
        let i = &self.inner;
        let cmd = match p {
            Proposal::Join(info) => {
                self.add_member(&info).await?;
                Command::Join {
                    info,
                    at_ms: now_ms(),
                    lease_ms: self.lease_ms(),
                }
            }
            Proposal::Heartbeat { node, load } => Command::Heartbeat {
                node,
                at_ms: now_ms(),
                lease_ms: self.lease_ms(),
                load,
            },
            Proposal::Drain { node, draining } => Command::SetDraining {
                node,
                draining,
                at_ms: now_ms(),
            },
            Proposal::Claim { camera, node } => Command::Claim {
                camera,
                node,
                at_ms: now_ms(),
            },
            Proposal::Place { camera, transcoded } => {
                let (current, now) = (i.state.read(|s| s.placement(&camera)), now_ms());
                if let Some(p) = current.filter(|p| p.node.is_some()) {
                    return Ok(Response::Placed {
                        camera,
                        node: p.node,
                        epoch: p.epoch,
                    });
                }
                let Some(node) = i
                    .state
                    .read(|s| camstream_raft_store::scheduler::pick_node_for(s, now, transcoded))
                else {
                    return Err(ProposeFailure::Failed("no node can take a camera".into()));
                };
                Command::Place {
                    camera,
                    node,
                    expected_epoch: current.map_or(0, |p| p.epoch),
                    at_ms: now,
                }
            }
            Proposal::Remove { node } => {
                let in_state = i.state.read(|s| s.member(node).is_some());
                let in_raft = self.remove_member(node).await?;
                if !in_state && !in_raft {
                    return Err(ProposeFailure::UnknownNode(node));
                }
                if !in_state {
                    return Ok(Response::Done);
                }
                Command::Leave {
                    node,
                    at_ms: now_ms(),
                }
            }
        };
        self.write(cmd).await
    }

    /// Writes one command through raft on this node (the leader), after its `Takeover`.
    pub(crate) async fn write(&self, cmd: Command) -> Result<Response, ProposeFailure> {
        self.ensure_takeover().await?;
        self.write_unchecked(cmd).await
    }

    async fn write_unchecked(&self, cmd: Command) -> Result<Response, ProposeFailure> {
        match self.inner.raft.client_write(cmd).await {
            Ok(r) => match r.data {
                Response::Refused(refusal) => Err(ProposeFailure::Refused(refusal)),
                other => Ok(other),
            },
            Err(e) => Err(write_failure(e)),
        }
    }

    /// Adds `info` as a learner and then a voter, unless it is a voter already.
    async fn add_member(&self, info: &NodeInfo) -> Result<(), ProposeFailure> {
        let i = &self.inner;
        let _one_at_a_time = i.membership.lock().await;
        let is_voter = {
            let m = i.raft.metrics();
            let m = m.borrow();
            m.membership_config
                .membership()
                .voter_ids()
                .any(|v| v == info.id)
        };
        if is_voter {
            return Ok(());
        }
        i.raft
            .add_learner(info.id, BasicNode::new(&info.raft_addr), true)
            .await
            .map_err(write_failure)?;
        i.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([info.id])), false)
            .await
            .map_err(write_failure)?;
        tracing::info!(node = info.id, raft_addr = %info.raft_addr, "node joined as a voter");
        Ok(())
    }

    /// Removes `node` from the raft membership; returns whether it was in it.
    async fn remove_member(&self, node: NodeId) -> Result<bool, ProposeFailure> {
        let i = &self.inner;
        let _one_at_a_time = i.membership.lock().await;
        let (voter, member) = {
            let m = i.raft.metrics();
            let m = m.borrow();
            let ms = m.membership_config.membership();
            (
                ms.voter_ids().any(|v| v == node),
                ms.get_node(&node).is_some(),
            )
        };
        let set = BTreeSet::from([node]);
        if voter {
            i.raft
                .change_membership(ChangeMembers::RemoveVoters(set), false)
                .await
                .map_err(write_failure)?;
        } else if member {
            i.raft
                .change_membership(ChangeMembers::RemoveNodes(set), false)
                .await
                .map_err(write_failure)?;
        }
        if member {
            tracing::info!(node, "node removed from the cluster");
        }
        Ok(member)
    }

    /// Places a camera that has no node (the leader picks one, among nodes with transcode
    /// room first when `transcoded`: the camera has an ABR profile; a placed camera keeps
    /// its node) and waits until this node applied the placement, so a read that follows
    /// sees it.
    ///
    /// # Errors
    /// As [`Cluster::propose`]; `Unavailable` also when this node does not apply the
    /// placement within `within`.
    pub(crate) async fn place(
        &self,
        camera: &str,
        transcoded: bool,
        within: Duration,
    ) -> Result<(), ProposeError> {
        let deadline = Instant::now() + within;
        let r = self
            .propose(
                Proposal::Place {
                    camera: camera.to_owned(),
                    transcoded,
                },
                within,
            )
            .await?;
        let Response::Placed { epoch, .. } = r else {
            return Err(ProposeError::Unavailable(format!(
                "placement answered {r:?}"
            )));
        };
        while self
            .inner
            .state
            .read(|s| s.placement(camera).is_none_or(|p| p.epoch < epoch))
        {
            if Instant::now() >= deadline {
                return Err(ProposeError::Unavailable(
                    "the placement was not applied here in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// A publisher of `camera` is live on this node: unless the placement already names
    /// this node, ask the leader to move the camera here (a new epoch; the old node is
    /// fenced by it). Waits at most `within`.
    ///
    /// # Errors
    /// As [`Cluster::propose`] (a draining node or one without a lease is refused).
    pub async fn claim(&self, camera: &str, within: Duration) -> Result<bool, String> {
        let me = self.node_id();
        if self
            .inner
            .state
            .read(|s| s.placement(camera).and_then(|p| p.node))
            == Some(me)
        {
            return Ok(false);
        }
        let r = self
            .propose(
                Proposal::Claim {
                    camera: camera.to_owned(),
                    node: me,
                },
                within,
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Response::Placed {
            node: Some(n),
            epoch,
            ..
        } = r
            && n == me
        {
            // Held from this epoch on, even if another node claims it before the next
            // fencing round: the later claim then fences this one (two encoders of one
            // camera on two nodes do not take it from each other every second).
            self.inner
                .fence
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .held(camera, epoch);
        }
        tracing::info!(camera_id = %camera, node = me, "claimed a camera published here");
        Ok(true)
    }

    /// Where `camera` is placed: its node's id and the RTMP URL bases that node advertises.
    /// `None` while the camera has no node.
    pub(crate) fn placement(&self, camera: &str) -> Option<(NodeId, Vec<String>)> {
        self.inner.state.read(|s| {
            let node = s.placement(camera)?.node?;
            let rtmp = s
                .member(node)
                .map(|m| m.info.rtmp_addrs.clone())
                .unwrap_or_default();
            Some((node, rtmp))
        })
    }

    /// Sets what applies camera controls sent by other nodes (once).
    pub(crate) fn on_camera_control(&self, hook: CameraHook) {
        if self.inner.camera_hook.set(hook).is_err() {
            tracing::warn!("camera control hook set twice");
        }
    }

    /// Applies a camera control sent by another node; `false` before the hook is set.
    pub(crate) fn apply_camera_control(&self, c: &CameraControl) -> bool {
        match self.inner.camera_hook.get() {
            Some(hook) => {
                hook(c);
                true
            }
            None => false,
        }
    }

    /// Sets what publishes events relayed by other nodes (once).
    pub(crate) fn on_events(&self, hook: EventsHook) {
        if self.inner.events_hook.set(hook).is_err() {
            tracing::warn!("events hook set twice");
        }
    }

    /// Publishes events relayed by another node; `false` before the hook is set.
    pub(crate) fn apply_events(&self, events: Vec<crate::events::NewEvent>) -> bool {
        match self.inner.events_hook.get() {
            Some(hook) => {
                hook(events);
                true
            }
            None => false,
        }
    }

    /// Sends a batch of this node's events to every other member at once (signed
    /// `POST /cluster/events` on their raft listeners); the number of members that did not
    /// take it (each is logged at debug: a member that is down misses events, by design).
    pub(crate) async fn send_events(&self, events: &[crate::events::NewEvent]) -> usize {
        let me = self.inner.info.id;
        let targets: Vec<(NodeId, String)> = self.inner.state.read(|s| {
            s.members()
                .filter(|(id, _)| *id != me)
                .map(|(id, m)| (id, m.info.raft_addr.clone()))
                .collect()
        });
        if targets.is_empty() {
            return 0;
        }
        let body = Arc::new(events.to_vec());
        let mut sends = JoinSet::new();
        for (node, addr) in targets {
            let peer = self.inner.peer.clone();
            let body = body.clone();
            sends.spawn(async move {
                let sent = peer
                    .post::<_, bool>(
                        &format!("http://{addr}"),
                        "/cluster/events",
                        &*body,
                        Duration::from_secs(2),
                    )
                    .await;
                match sent {
                    Ok(true) => true,
                    Ok(false) => {
                        tracing::debug!(node, "a node was not ready for relayed events");
                        false
                    }
                    Err(e) => {
                        tracing::debug!(node, error = %e, "relayed events not delivered");
                        false
                    }
                }
            });
        }
        let mut failed = 0;
        while let Some(r) = sends.join_next().await {
            if !r.unwrap_or(false) {
                failed += 1;
            }
        }
        failed
    }

    /// Sends `control` to every other member, in the background. A member that misses it
    /// (down, unreachable) reads the camera from the shared store when it (re)starts and
    /// when a publisher connects, so nothing stays wrong for good; the miss is logged.
    pub(crate) fn broadcast_camera_control(&self, control: CameraControl) {
        let me = self.inner.info.id;
        let targets: Vec<(NodeId, String)> = self.inner.state.read(|s| {
            s.members()
                .filter(|(id, _)| *id != me)
                .map(|(id, m)| (id, m.info.raft_addr.clone()))
                .collect()
        });
        for (node, addr) in targets {
            let peer = self.inner.peer.clone();
            let control = control.clone();
            tokio::spawn(async move {
                let sent = peer
                    .post::<_, bool>(
                        &format!("http://{addr}"),
                        "/cluster/camera",
                        &control,
                        Duration::from_secs(2),
                    )
                    .await;
                match sent {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(node, camera_id = %control.camera, "a node was not ready for a camera control")
                    }
                    Err(e) => {
                        tracing::warn!(node, camera_id = %control.camera, error = %e, "camera control not delivered")
                    }
                }
            });
        }
    }

    /// Members in the applied state (the ABR budget counts per node).
    pub(crate) fn members(&self) -> usize {
        self.inner.state.read(|s| s.members().count())
    }

    /// The API base URL of the member named `node` (a raft id written as text, as
    /// recordings name the node that wrote them); `None` for this node or a stranger.
    pub(crate) fn api_url_of(&self, node: &str) -> Option<String> {
        let id: NodeId = node.parse().ok()?;
        if id == self.inner.info.id {
            return None;
        }
        self.inner
            .state
            .read(|s| s.member(id).map(|m| m.info.api_url.clone()))
    }

    /// Where `camera` is ingested when that is another node with a relay address, for the
    /// data plane's pulls ([`camstream_protocol::OriginLocator`]).
    pub fn origin(&self, camera: &str) -> Option<camstream_protocol::Origin> {
        // A rendition has no placement of its own: it is relayed from its camera's origin.
        let camera = camstream_protocol::abr::source_camera(camera);
        let me = self.node_id();
        self.inner.state.read(|s| {
            let p = s.placement(camera)?;
            let node = p.node.filter(|n| *n != me)?;
            // Advertised as HOST:PORT; a name that is not an address is not resolved here
            // (this runs per viewer request): advertise an IP address.
            let relay_addr = s.member(node)?.info.relay_addr.parse().ok()?;
            Some(camstream_protocol::Origin {
                node,
                relay_addr,
                epoch: p.epoch,
            })
        })
    }

    /// The applied state machine with the log position it reflects (term, index), and its
    /// SHA-256 (hex of the JSON): what `GET /api/v1/cluster/state` shows, so replicas can be
    /// compared at one log index.
    pub(crate) fn applied_state(&self) -> (Option<(u64, u64)>, String, serde_json::Value) {
        use sha2::Digest;
        let (at, json) = self.inner.state.read_applied(|at, s| {
            (
                at.map(|l| (l.leader_id.term, l.index)),
                serde_json::to_vec(s).unwrap_or_default(),
            )
        });
        let digest = sha2::Sha256::digest(&json)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let value = serde_json::from_slice(&json).unwrap_or_default();
        (at, digest, value)
    }

    /// What `GET /api/v1/cluster` shows.
    pub(crate) fn status(&self) -> ClusterStatus {
        let i = &self.inner;
        let (term, leader, last_applied, state, voters) = {
            let m = i.raft.metrics();
            let m = m.borrow();
            let ms = m.membership_config.membership();
            (
                m.current_term,
                m.current_leader,
                m.last_applied.map(|l| l.index),
                m.state,
                ms.voter_ids().collect::<BTreeSet<_>>(),
            )
        };
        let (clock_ms, members, cameras) = i.state.read(|s| {
            let now = s.clock_ms();
            let members = s
                .members()
                .map(|(id, m)| MemberStatus {
                    id,
                    info: m.info.clone(),
                    voter: voters.contains(&id),
                    lease_held: m.is_live(now),
                    lease_until_ms: m.lease_until_ms,
                    draining: m.draining,
                    load: m.load,
                    cameras: m.placed,
                })
                .collect::<Vec<_>>();
            let cameras = s
                .cameras()
                .map(|(c, p)| (c.to_owned(), p.node, p.epoch))
                .collect::<Vec<_>>();
            (now, members, cameras)
        });
        ClusterStatus {
            node_id: i.info.id,
            leader,
            is_leader: state == ServerState::Leader,
            term,
            commit_index: i.commit.get(),
            last_applied,
            clock_ms,
            own_lease_held: self.holds_lease(),
            members,
            cameras,
        }
    }
}

impl OriginFence for Cluster {
    fn may_serve(&self, camera: &str) -> Result<u64, Fenced> {
        Cluster::may_serve(self, camera)
    }
}

fn write_failure(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ProposeFailure {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeFailure::NotLeader {
            leader: f.leader_id,
        },
        other => ProposeFailure::Failed(other.to_string()),
    }
}

/// A member as the status shows it.
#[derive(Debug, Clone)]
pub(crate) struct MemberStatus {
    pub(crate) id: NodeId,
    pub(crate) info: NodeInfo,
    pub(crate) voter: bool,
    pub(crate) lease_held: bool,
    pub(crate) lease_until_ms: u64,
    pub(crate) draining: bool,
    pub(crate) load: Load,
    pub(crate) cameras: u32,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone)]
pub(crate) struct ClusterStatus {
    pub(crate) node_id: NodeId,
    pub(crate) leader: Option<NodeId>,
    pub(crate) is_leader: bool,
    pub(crate) term: u64,
    pub(crate) commit_index: Option<u64>,
    pub(crate) last_applied: Option<u64>,
    pub(crate) clock_ms: u64,
    pub(crate) own_lease_held: bool,
    pub(crate) members: Vec<MemberStatus>,
    pub(crate) cameras: Vec<(String, Option<NodeId>, u64)>,
}

impl camstream_protocol::OriginLocator for Cluster {
    fn locate(&self, camera: &str) -> Option<camstream_protocol::Origin> {
        self.origin(camera)
    }
}

#[cfg(test)]
mod tests {
    use super::Proposal;

    /// A node of the version before `transcoded` forwards `Place` without it: the leader
    /// reads it as a plain camera.
    #[test]
    fn a_place_proposal_without_transcoded_reads_as_a_plain_camera() {
        let old: Proposal =
            serde_json::from_str(r#"{"Place":{"camera":"cam1"}}"#).expect("an old proposal");
        assert_eq!(
            old,
            Proposal::Place {
                camera: "cam1".into(),
                transcoded: false,
            }
        );
        let new = Proposal::Place {
            camera: "cam1".into(),
            transcoded: true,
        };
        let json = serde_json::to_string(&new).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Proposal>(&json).expect("deserialize"),
            new
        );
    }
}
