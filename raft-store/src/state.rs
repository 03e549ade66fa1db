//! The replicated cluster state: members, their leases and load, and camera placement.
//!
//! This is a sans-IO core. Every change arrives as a [`Command`] through [`ClusterState::apply`];
//! the outcome leaves as a [`Response`]. It never reads a clock: commands carry the time the
//! leader stamped on them (`at_ms`, UNIX milliseconds), and the state keeps the highest time it
//! has seen as its own clock, so time in the state never runs backwards, even across a change of
//! leader whose clock lags. Applying the same commands in the same order gives the same state on
//! every replica: no hashing order, no floats, no randomness.
//!
//! What it leaves to others: choosing a node for a camera ([`crate::scheduler`]), stamping and
//! proposing commands (the leader's shell), persisting it (snapshots in
//! [`crate::state_machine`]), and fencing on the serving node (which compares its own
//! lease view and the placement epoch before acting as a camera's origin; docs/architecture.md,
//! "Cluster state (raft)").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A cluster node's identifier (the raft node id).
pub type NodeId = u64;

/// Lease length the leader stamps on heartbeats unless configured otherwise.
pub const DEFAULT_LEASE_MS: u64 = 2_000;

/// What the leader must know to use a node: where to reach it and how much it may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's raft id.
    pub id: NodeId,
    /// Base URL of its HTTP API, e.g. `http://10.0.0.1:8080`.
    pub api_url: String,
    /// `HOST:PORT` of its node-to-node raft RPC.
    pub raft_addr: String,
    /// `HOST:PORT` (UDP) of its QUIC relay.
    pub relay_addr: String,
    /// RTMP/RTMPS URLs handed to publishers of cameras placed on it.
    pub rtmp_addrs: Vec<String>,
    /// What it may carry.
    pub capacity: Capacity,
}

/// A node's limits. A zero limit means "no limit on this axis".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Most cameras it ingests at once.
    pub max_streams: u32,
    /// Most total ingest bitrate, kbit/s.
    pub max_ingest_kbps: u64,
}

/// A node's load as it last reported it (with its heartbeat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Cameras it ingests right now.
    pub active_streams: u32,
    /// Sum of their ingest bitrates, kbit/s.
    pub ingest_kbps: u64,
    /// CPU use in per mille of all its cores (integer, so the state stays exact). Only the
    /// node's own process: its ABR transcoders (ffmpeg children) are not in it, so they
    /// count through `transcoding`.
    pub cpu_permille: u16,
    /// Cameras it transcodes into an ABR ladder right now. 0 in entries written before
    /// this field existed (serde default), as for a node without ABR.
    #[serde(default)]
    pub transcoding: u32,
    /// Most cameras it may transcode at once (`--abr-max-cameras`); 0: ABR is off there.
    #[serde(default)]
    pub transcode_max: u32,
}

/// A member as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Addresses and capacity.
    pub info: NodeInfo,
    /// Leader time (ms) at which its lease ends. The lease is held while the state's clock is
    /// below it.
    pub lease_until_ms: u64,
    /// Last reported load.
    pub load: Load,
    /// A draining node takes no new cameras; the scheduler moves its cameras away.
    pub draining: bool,
    /// Cameras placed on it now (kept in step with the placement table).
    pub placed: u32,
}

impl Member {
    /// Whether the lease is held at leader time `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.lease_until_ms
    }
}

/// Where a camera is ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The origin node, or `None` while the camera waits for a node.
    pub node: Option<NodeId>,
    /// Bumped by one on every change of `node`; a node acts as the camera's origin only with
    /// the current epoch (the fencing token).
    pub epoch: u64,
}

/// A change to the cluster state. The leader stamps `at_ms` (its wall clock, UNIX ms) when it
/// proposes the command; replicas never read their own clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// Adds a node or updates its addresses and capacity, and grants it a lease.
    Join {
        /// The node.
        info: NodeInfo,
        /// Leader time.
        at_ms: u64,
        /// Lease length.
        lease_ms: u64,
    },
    /// Removes a node; its cameras become unplaced (new epoch).
    Leave {
        /// The node.
        node: NodeId,
        /// Leader time.
        at_ms: u64,
    },
    /// Renews a node's lease and records its load. Also readmits a node whose lease had
    /// expired (its cameras were already re-placed).
    Heartbeat {
        /// The node.
        node: NodeId,
        /// Leader time.
        at_ms: u64,
        /// Lease length.
        lease_ms: u64,
        /// Its load now.
        load: Load,
    },
    /// Starts or stops draining a node.
    SetDraining {
        /// The node.
        node: NodeId,
        /// Draining from now on, or not.
        draining: bool,
        /// Leader time.
        at_ms: u64,
    },
    /// The scheduler's choice: `camera` on `node`, if the camera's epoch is still
    /// `expected_epoch` (0 for a camera never placed). Compare-and-set, so a claim that lands
    /// first wins.
    Place {
        /// The camera id.
        camera: String,
        /// The chosen node.
        node: NodeId,
        /// The epoch the scheduler saw.
        expected_epoch: u64,
        /// Leader time.
        at_ms: u64,
    },
    /// A publisher connected straight to `node`: the camera moves there (new epoch) unless it
    /// is already there.
    Claim {
        /// The camera id.
        camera: String,
        /// The node that holds the connection.
        node: NodeId,
        /// Leader time.
        at_ms: u64,
    },
    /// Takes a camera off its node (new epoch), if its epoch is still `expected_epoch`.
    Unplace {
        /// The camera id.
        camera: String,
        /// The epoch the caller saw.
        expected_epoch: u64,
        /// Leader time.
        at_ms: u64,
    },
    /// Only advances the clock (and so expires leases); the leader proposes it when nothing
    /// else is written.
    Tick {
        /// Leader time.
        at_ms: u64,
    },
    /// A new leader's first command. While there was no leader nobody could renew a lease,
    /// and an election can outlast one; so every member whose lease still held at the last
    /// applied time gets it extended to `at_ms + grace_ms` *before* leases are checked.
    /// Extending a lease in the state is always safe: it only delays re-placement (a node that
    /// really is gone keeps its cameras for `grace_ms` longer), it never makes two origins,
    /// since nodes fence themselves on their own, shorter view of their lease.
    Takeover {
        /// Leader time.
        at_ms: u64,
        /// How long members have to renew under the new leader.
        grace_ms: u64,
    },
}

impl Command {
    /// The leader time the command carries.
    pub fn at_ms(&self) -> u64 {
        match self {
            Command::Join { at_ms, .. }
            | Command::Leave { at_ms, .. }
            | Command::Heartbeat { at_ms, .. }
            | Command::SetDraining { at_ms, .. }
            | Command::Place { at_ms, .. }
            | Command::Claim { at_ms, .. }
            | Command::Unplace { at_ms, .. }
            | Command::Tick { at_ms }
            | Command::Takeover { at_ms, .. } => *at_ms,
        }
    }
}

/// The outcome of one applied log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// Applied; nothing to report (tick, leave, drain, raft's own entries).
    Done,
    /// The node holds a lease until `until_ms` (leader time).
    Lease {
        /// The node.
        node: NodeId,
        /// End of the lease, leader time.
        until_ms: u64,
    },
    /// The camera's placement after the command.
    Placed {
        /// The camera id.
        camera: String,
        /// Its node (`None`: unplaced).
        node: Option<NodeId>,
        /// Its epoch.
        epoch: u64,
    },
    /// Not applied; the state is unchanged (except the clock).
    Refused(Refusal),
}

/// Why a command was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The node is not a member.
    #[error("unknown node {node}")]
    UnknownNode {
        /// The node.
        node: NodeId,
    },
    /// The node's lease ended before the command's time.
    #[error("lease of node {node} expired at {until_ms} ms (now {now_ms} ms)")]
    LeaseExpired {
        /// The node.
        node: NodeId,
        /// When its lease ended.
        until_ms: u64,
        /// The state's clock.
        now_ms: u64,
    },
    /// The node is draining and takes no cameras.
    #[error("node {node} is draining")]
    NodeDraining {
        /// The node.
        node: NodeId,
    },
    /// The camera's epoch moved on since the caller looked.
    #[error("stale epoch for camera {camera}: expected {expected}, current {current}")]
    StaleEpoch {
        /// The camera id.
        camera: String,
        /// The epoch the command expected.
        expected: u64,
        /// The camera's epoch now.
        current: u64,
    },
    /// The command is malformed (zero lease, empty camera id, ...).
    #[error("invalid command: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

/// The replicated state. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    clock_ms: u64,
    members: BTreeMap<NodeId, Member>,
    cameras: BTreeMap<String, Placement>,
}

impl ClusterState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest leader time applied so far (UNIX ms).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// A member by id.
    pub fn member(&self, node: NodeId) -> Option<&Member> {
        self.members.get(&node)
    }

    /// All members, by id.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, &Member)> {
        self.members.iter().map(|(id, m)| (*id, m))
    }

    /// A camera's placement (`None`: the state has never seen the camera).
    pub fn placement(&self, camera: &str) -> Option<Placement> {
        self.cameras.get(camera).copied()
    }

    /// All known cameras and their placements, by id.
    pub fn cameras(&self) -> impl Iterator<Item = (&str, Placement)> {
        self.cameras.iter().map(|(c, p)| (c.as_str(), *p))
    }

    /// Applies one command: advances the clock to `at_ms` (if later), expires the leases that
    /// ended by then (their cameras become unplaced with a new epoch), then performs the
    /// command. Deterministic: the result depends only on the state and the command.
    pub fn apply(&mut self, cmd: Command) -> Response {
        if let Command::Takeover { at_ms, grace_ms } = cmd {
            let until = self.clock_ms.max(at_ms).saturating_add(grace_ms);
            let before = self.clock_ms;
            for m in self.members.values_mut().filter(|m| m.is_live(before)) {
                m.lease_until_ms = m.lease_until_ms.max(until);
            }
        }
        self.advance(cmd.at_ms());
        let now = self.clock_ms;
        match cmd {
            Command::Join { info, lease_ms, .. } => {
                if lease_ms == 0 {
                    return invalid("lease_ms must be above 0");
                }
                let node = info.id;
                let until_ms = now.saturating_add(lease_ms);
                match self.members.get_mut(&node) {
                    Some(m) => {
                        m.info = info;
                        m.lease_until_ms = m.lease_until_ms.max(until_ms);
                    }
                    None => {
                        self.members.insert(
                            node,
                            Member {
                                info,
                                lease_until_ms: until_ms,
                                load: Load::default(),
                                draining: false,
                                placed: 0,
                            },
                        );
                    }
                }
                Response::Lease {
                    node,
                    until_ms: self.members[&node].lease_until_ms,
                }
            }
            Command::Leave { node, .. } => {
                if self.members.remove(&node).is_none() {
                    return Response::Refused(Refusal::UnknownNode { node });
                }
                self.unplace_all_on(|n| n == node);
                Response::Done
            }
            Command::Heartbeat {
                node,
                lease_ms,
                load,
                ..
            } => {
                if lease_ms == 0 {
                    return invalid("lease_ms must be above 0");
                }
                let Some(m) = self.members.get_mut(&node) else {
                    return Response::Refused(Refusal::UnknownNode { node });
                };
                // A lease never shrinks: a heartbeat stamped by a leader with a lagging clock
                // must not cut short what an earlier leader granted.
                m.lease_until_ms = m.lease_until_ms.max(now.saturating_add(lease_ms));
                m.load = load;
                Response::Lease {
                    node,
                    until_ms: m.lease_until_ms,
                }
            }
            Command::SetDraining { node, draining, .. } => match self.members.get_mut(&node) {
                Some(m) => {
                    m.draining = draining;
                    Response::Done
                }
                None => Response::Refused(Refusal::UnknownNode { node }),
            },
            Command::Place {
                camera,
                node,
                expected_epoch,
                ..
            } => {
                if let Err(r) = self.check_target(node, now) {
                    return Response::Refused(r);
                }
                if camera.is_empty() {
                    return invalid("empty camera id");
                }
                let current = self.cameras.get(&camera).map_or(0, |p| p.epoch);
                if current != expected_epoch {
                    return Response::Refused(Refusal::StaleEpoch {
                        camera,
                        expected: expected_epoch,
                        current,
                    });
                }
                self.move_camera(camera, Some(node))
            }
            Command::Claim { camera, node, .. } => {
                if let Err(r) = self.check_target(node, now) {
                    return Response::Refused(r);
                }
                if camera.is_empty() {
                    return invalid("empty camera id");
                }
                self.move_camera(camera, Some(node))
            }
            Command::Unplace {
                camera,
                expected_epoch,
                ..
            } => {
                let Some(current) = self.cameras.get(&camera).map(|p| p.epoch) else {
                    return Response::Refused(Refusal::StaleEpoch {
                        camera,
                        expected: expected_epoch,
                        current: 0,
                    });
                };
                if current != expected_epoch {
                    return Response::Refused(Refusal::StaleEpoch {
                        camera,
                        expected: expected_epoch,
                        current,
                    });
                }
                self.move_camera(camera, None)
            }
            Command::Tick { .. } | Command::Takeover { .. } => Response::Done,
        }
    }

    fn check_target(&self, node: NodeId, now: u64) -> Result<(), Refusal> {
        let m = self
            .members
            .get(&node)
            .ok_or(Refusal::UnknownNode { node })?;
        if !m.is_live(now) {
            return Err(Refusal::LeaseExpired {
                node,
                until_ms: m.lease_until_ms,
                now_ms: now,
            });
        }
        if m.draining {
            return Err(Refusal::NodeDraining { node });
        }
        Ok(())
    }

    /// Moves `camera` to `node` with a new epoch; no change (same epoch) if it is there already.
    fn move_camera(&mut self, camera: String, node: Option<NodeId>) -> Response {
        let entry = self.cameras.entry(camera.clone()).or_insert(Placement {
            node: None,
            epoch: 0,
        });
        if entry.node != node {
            let old = entry.node;
            entry.node = node;
            entry.epoch += 1;
            if let Some(m) = old.and_then(|o| self.members.get_mut(&o)) {
                m.placed = m.placed.saturating_sub(1);
            }
            if let Some(m) = node.and_then(|n| self.members.get_mut(&n)) {
                m.placed += 1;
            }
        }
        let p = self.cameras[&camera];
        Response::Placed {
            camera,
            node: p.node,
            epoch: p.epoch,
        }
    }

    fn advance(&mut self, at_ms: u64) {
        self.clock_ms = self.clock_ms.max(at_ms);
        let now = self.clock_ms;
        let expired: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.placed > 0 && !m.is_live(now))
            .map(|(id, _)| *id)
            .collect();
        if !expired.is_empty() {
            self.unplace_all_on(|n| expired.contains(&n));
        }
    }

    fn unplace_all_on(&mut self, on: impl Fn(NodeId) -> bool) {
        for p in self.cameras.values_mut() {
            if let Some(n) = p.node.filter(|n| on(*n)) {
                p.node = None;
                p.epoch += 1;
                if let Some(m) = self.members.get_mut(&n) {
                    m.placed = m.placed.saturating_sub(1);
                }
            }
        }
    }
}

fn invalid(reason: &str) -> Response {
    Response::Refused(Refusal::Invalid {
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
mod tests;
