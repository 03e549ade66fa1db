//! Choosing nodes for cameras (leader side). Pure functions over a [`ClusterState`]: the
//! leader's scheduler loop (not in this crate yet) calls [`plan`] on its applied state with its
//! clock and proposes the resulting [`Command::Place`]s; the epoch in each makes a placement
//! that raced with a claim fail harmlessly (`StaleEpoch`).

use std::collections::BTreeMap;

use crate::state::{ClusterState, Command, Member, NodeId};

/// Room and load of one candidate, updated while a plan is made so a batch spreads.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    streams: u32,
    kbps: u64,
    cpu_permille: u16,
    max_streams: u32,
    max_kbps: u64,
}

impl Candidate {
    fn of(m: &Member) -> Self {
        Self {
            // Reports lag placements; count whichever is higher.
            streams: m.placed.max(m.load.active_streams),
            kbps: m.load.ingest_kbps,
            cpu_permille: m.load.cpu_permille,
            max_streams: m.info.capacity.max_streams,
            max_kbps: m.info.capacity.max_ingest_kbps,
        }
    }

    fn has_room(&self) -> bool {
        (self.max_streams == 0 || self.streams < self.max_streams)
            && (self.max_kbps == 0 || self.kbps < self.max_kbps)
            && self.cpu_permille < 1000
    }

    /// Utilization in per mille: the fullest of streams, bitrate and CPU.
    fn score(&self) -> u64 {
        // A zero limit is no limit: that axis does not count.
        let ratio = |used: u64, max: u64| used.saturating_mul(1000).checked_div(max).unwrap_or(0);
        ratio(u64::from(self.streams), u64::from(self.max_streams))
            .max(ratio(self.kbps, self.max_kbps))
            .max(u64::from(self.cpu_permille))
    }
}

fn candidates(state: &ClusterState, now_ms: u64) -> BTreeMap<NodeId, Candidate> {
    state
        .members()
        .filter(|(_, m)| m.is_live(now_ms) && !m.draining)
        .map(|(id, m)| (id, Candidate::of(m)))
        .filter(|(_, c)| c.has_room())
        .collect()
}

fn best(cands: &BTreeMap<NodeId, Candidate>) -> Option<NodeId> {
    // Least utilized, then fewest streams, then lowest id: deterministic.
    cands
        .iter()
        .filter(|(_, c)| c.has_room())
        .min_by_key(|(id, c)| (c.score(), c.streams, **id))
        .map(|(id, _)| *id)
}

/// The node a new camera should go to at leader time `now_ms`: among members that hold a
/// lease, are not draining and have room (streams, bitrate and CPU under capacity), the least
/// utilized. `None` when no node can take it.
pub fn pick_node(state: &ClusterState, now_ms: u64) -> Option<NodeId> {
    best(&candidates(state, now_ms))
}

/// Placements for every camera that needs a node: unplaced ones, and those on draining nodes
/// (moved with their current epoch, so the old node serves until the new one takes over).
/// Each choice counts against its node before the next is made, so a batch spreads. Cameras
/// for which no node has room are left out. Stamps the commands with `now_ms`.
pub fn plan(state: &ClusterState, now_ms: u64) -> Vec<Command> {
    let mut cands = candidates(state, now_ms);
    let mut out = Vec::new();
    for (camera, p) in state.cameras() {
        let needs_node = match p.node {
            None => true,
            Some(n) => state.member(n).is_none_or(|m| m.draining),
        };
        if !needs_node {
            continue;
        }
        let Some(node) = best(&cands) else { break };
        if let Some(c) = cands.get_mut(&node) {
            c.streams += 1;
        }
        out.push(Command::Place {
            camera: camera.to_owned(),
            node,
            expected_epoch: p.epoch,
            at_ms: now_ms,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Capacity, Load, NodeInfo, Placement, Response};

    fn join(s: &mut ClusterState, id: NodeId, max_streams: u32, at_ms: u64) {
        let r = s.apply(Command::Join {
            info: NodeInfo {
                id,
                api_url: String::new(),
                raft_addr: String::new(),
                relay_addr: String::new(),
                rtmp_addrs: Vec::new(),
                capacity: Capacity {
                    max_streams,
                    max_ingest_kbps: 100_000,
                },
            },
            at_ms,
            lease_ms: 2_000,
        });
        assert!(matches!(r, Response::Lease { .. }));
    }

    fn heartbeat(s: &mut ClusterState, id: NodeId, at_ms: u64, load: Load) {
        let r = s.apply(Command::Heartbeat {
            node: id,
            at_ms,
            lease_ms: 2_000,
            load,
        });
        assert!(matches!(r, Response::Lease { .. }));
    }

    /// Applies a plan and returns how many cameras each node got.
    fn apply_plan(s: &mut ClusterState, now_ms: u64) -> BTreeMap<NodeId, usize> {
        let mut got = BTreeMap::new();
        for cmd in plan(s, now_ms) {
            match s.apply(cmd) {
                Response::Placed { node: Some(n), .. } => *got.entry(n).or_default() += 1,
                other => panic!("plan refused: {other:?}"),
            }
        }
        got
    }

    fn unplaced(s: &mut ClusterState, cameras: usize, at_ms: u64) {
        // Cameras enter the table unplaced through a claim and an unplace; the scheduler sees
        // them as waiting.
        join(s, 99, 0, at_ms);
        for i in 0..cameras {
            let camera = format!("cam{i:03}");
            s.apply(Command::Claim {
                camera: camera.clone(),
                node: 99,
                at_ms,
            });
            s.apply(Command::Unplace {
                camera,
                expected_epoch: 1,
                at_ms,
            });
        }
        s.apply(Command::Leave { node: 99, at_ms });
    }

    #[test]
    fn a_batch_spreads_evenly_over_equal_nodes() {
        let mut s = ClusterState::new();
        for id in 1..=3 {
            join(&mut s, id, 100, 1_000);
        }
        unplaced(&mut s, 30, 1_000);
        let got = apply_plan(&mut s, 1_000);
        assert_eq!(got, BTreeMap::from([(1, 10), (2, 10), (3, 10)]));
        assert!(plan(&s, 1_000).is_empty(), "nothing left to place");
    }

    #[test]
    fn load_steers_new_cameras_to_the_idle_node() {
        let mut s = ClusterState::new();
        join(&mut s, 1, 100, 1_000);
        join(&mut s, 2, 100, 1_000);
        heartbeat(
            &mut s,
            1,
            1_000,
            Load {
                active_streams: 0,
                ingest_kbps: 0,
                cpu_permille: 800,
            },
        );
        heartbeat(&mut s, 2, 1_000, Load::default());
        assert_eq!(pick_node(&s, 1_000), Some(2));
        // Bitrate counts too: node 2 at 90 % of its ingest limit loses to node 1 at 80 % CPU.
        heartbeat(
            &mut s,
            2,
            1_000,
            Load {
                active_streams: 0,
                ingest_kbps: 90_000,
                cpu_permille: 0,
            },
        );
        assert_eq!(pick_node(&s, 1_000), Some(1));
    }

    #[test]
    fn full_nodes_are_skipped_and_a_full_cluster_places_nothing() {
        let mut s = ClusterState::new();
        join(&mut s, 1, 2, 1_000);
        join(&mut s, 2, 3, 1_000);
        unplaced(&mut s, 8, 1_000);
        let got = apply_plan(&mut s, 1_000);
        assert_eq!(got, BTreeMap::from([(1, 2), (2, 3)]));
        assert_eq!(pick_node(&s, 1_000), None);
        assert!(plan(&s, 1_000).is_empty());
        let waiting = s.cameras().filter(|(_, p)| p.node.is_none()).count();
        assert_eq!(waiting, 3);
    }

    #[test]
    fn draining_nodes_are_excluded_and_their_cameras_move() {
        let mut s = ClusterState::new();
        join(&mut s, 1, 100, 1_000);
        join(&mut s, 2, 100, 1_000);
        unplaced(&mut s, 4, 1_000);
        apply_plan(&mut s, 1_000);
        s.apply(Command::SetDraining {
            node: 1,
            draining: true,
            at_ms: 1_100,
        });
        assert_eq!(pick_node(&s, 1_100), Some(2));
        let got = apply_plan(&mut s, 1_100);
        assert_eq!(got, BTreeMap::from([(2, 2)]));
        assert!(
            s.cameras().all(|(_, p)| p.node == Some(2)),
            "every camera left the draining node"
        );
    }

    #[test]
    fn expired_leases_are_excluded() {
        let mut s = ClusterState::new();
        join(&mut s, 1, 100, 1_000);
        join(&mut s, 2, 100, 1_000);
        heartbeat(&mut s, 2, 2_000, Load::default());
        // At 3_500 node 1's lease (until 3_000) is over even before any command expires it.
        assert_eq!(pick_node(&s, 3_500), Some(2));
        assert_eq!(pick_node(&s, 4_000), None, "node 2's lease ended at 4_000");
        // Its cameras come back unplaced once the clock passes, and go to the live node.
        s.apply(Command::Claim {
            camera: "x".into(),
            node: 1,
            at_ms: 2_000,
        });
        s.apply(Command::Tick { at_ms: 3_500 });
        assert_eq!(
            s.placement("x"),
            Some(Placement {
                node: None,
                epoch: 2
            })
        );
        assert_eq!(apply_plan(&mut s, 3_500), BTreeMap::from([(2, 1)]));
    }
}
