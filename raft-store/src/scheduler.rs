//! Choosing nodes for cameras (leader side). Pure functions over a [`ClusterState`]: the
//! leader's scheduler loop (not in this crate yet) calls [`plan`] on its applied state with its
//! clock and proposes the resulting [`Command::Place`]s; the epoch in each makes a placement
//! that raced with a claim fail harmlessly (`StaleEpoch`).

use std::collections::BTreeMap;

use crate::state::{ClusterState, Command, Member, NodeId};

/// What one camera transcoded into an ABR ladder costs, in plain cameras: the transcoder
/// takes 0.30 of a core (one 720p30 camera to 480p + 240p at x264 `veryfast`,
/// bench/results/abr-1), a plain camera about 0.001 (ingest and segmenting). Used to order
/// nodes whose utilization scores tie.
pub const TRANSCODE_WEIGHT: u64 = 300;

/// Room and load of one candidate, updated while a plan is made so a batch spreads.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    streams: u32,
    kbps: u64,
    cpu_permille: u16,
    transcoding: u32,
    transcode_max: u32,
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
            transcoding: m.load.transcoding,
            transcode_max: m.load.transcode_max,
            max_streams: m.info.capacity.max_streams,
            max_kbps: m.info.capacity.max_ingest_kbps,
        }
    }

    fn has_room(&self) -> bool {
        (self.max_streams == 0 || self.streams < self.max_streams)
            && (self.max_kbps == 0 || self.kbps < self.max_kbps)
            && self.cpu_permille < 1000
    }

    /// Whether one more camera may be transcoded here (`--abr-max-cameras` not reached).
    fn has_transcode_room(&self) -> bool {
        self.transcoding < self.transcode_max
    }

    /// Utilization in per mille: the fullest of streams, bitrate, CPU and transcode budget.
    /// The transcoders are a node's heaviest load (a transcoded camera costs about
    /// [`TRANSCODE_WEIGHT`] plain ones) and are not in `cpu_permille` (the node measures its
    /// own process, not its ffmpeg children), so they count as their share of the budget: a
    /// node using half of it scores at least 500.
    fn score(&self) -> u64 {
        // A zero limit is no limit: that axis does not count.
        let ratio = |used: u64, max: u64| used.saturating_mul(1000).checked_div(max).unwrap_or(0);
        let transcode = match (self.transcoding, self.transcode_max) {
            (0, _) => 0,
            // Transcoding beyond a budget of none (a node that turned ABR off): full.
            (_, 0) => 1000,
            (n, max) => ratio(u64::from(n), u64::from(max)),
        };
        ratio(u64::from(self.streams), u64::from(self.max_streams))
            .max(ratio(self.kbps, self.max_kbps))
            .max(u64::from(self.cpu_permille))
            .max(transcode)
    }

    /// The load in plain cameras, a transcoded one counting [`TRANSCODE_WEIGHT`].
    fn weight(&self) -> u64 {
        u64::from(self.streams) + (TRANSCODE_WEIGHT - 1) * u64::from(self.transcoding)
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

fn best(cands: &BTreeMap<NodeId, Candidate>, transcoded: bool) -> Option<NodeId> {
    // A camera to transcode goes where the budget has room if any node has some (elsewhere
    // it would be ingested without its ladder). Then least utilized, then the lightest
    // load, then lowest id: deterministic.
    let room = |c: &Candidate| c.has_room() && (!transcoded || c.has_transcode_room());
    let pick = |ok: &dyn Fn(&Candidate) -> bool| {
        cands
            .iter()
            .filter(|(_, c)| ok(c))
            .min_by_key(|(id, c)| (c.score(), c.weight(), **id))
            .map(|(id, _)| *id)
    };
    pick(&room).or_else(|| pick(&Candidate::has_room))
}

/// The node a new camera should go to at leader time `now_ms`: among members that hold a
/// lease, are not draining and have room (streams, bitrate and CPU under capacity), the least
/// utilized, counting transcoders. `None` when no node can take it.
pub fn pick_node(state: &ClusterState, now_ms: u64) -> Option<NodeId> {
    pick_node_for(state, now_ms, false)
}

/// As [`pick_node`], for a camera known to be transcoded (`transcoded`: it has an ABR
/// profile): nodes with room in their transcode budget come first.
pub fn pick_node_for(state: &ClusterState, now_ms: u64, transcoded: bool) -> Option<NodeId> {
    best(&candidates(state, now_ms), transcoded)
}

/// Placements for every camera that needs a node: unplaced ones, and those on draining nodes
/// (moved with their current epoch, so the old node serves until the new one takes over).
/// Each choice counts against its node before the next is made, so a batch spreads. Cameras
/// for which no node has room are left out. Stamps the commands with `now_ms`. The state
/// does not hold cameras' ABR profiles, so each counts as a plain camera here; nodes'
/// reported transcoding still weighs in their score.
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
        let Some(node) = best(&cands, false) else {
            break;
        };
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
                ..Load::default()
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
                ..Load::default()
            },
        );
        assert_eq!(pick_node(&s, 1_000), Some(1));
    }

    fn transcoding(n: u32, max: u32) -> Load {
        Load {
            active_streams: n,
            transcoding: n,
            transcode_max: max,
            ..Load::default()
        }
    }

    #[test]
    fn a_node_busy_transcoding_gets_fewer_new_cameras() {
        let mut s = ClusterState::new();
        join(&mut s, 1, 100, 1_000);
        join(&mut s, 2, 100, 1_000);
        // Node 1 transcodes one camera of its budget of two; its own process is idle (the
        // transcoder's CPU is not in its report).
        heartbeat(&mut s, 1, 1_000, transcoding(1, 2));
        heartbeat(&mut s, 2, 1_000, Load::default());
        assert_eq!(pick_node(&s, 1_000), Some(2));
        // Of 80 new cameras (an even split was 40/40 without the transcoder), node 2 takes
        // them until it is as utilized as half a transcode budget (50 of 100 streams), and
        // wins that tie by weight (50 plain cameras against one transcoded).
        unplaced(&mut s, 80, 1_000);
        let got = apply_plan(&mut s, 1_000);
        assert_eq!(got, BTreeMap::from([(1, 29), (2, 51)]));
    }

    #[test]
    fn transcoders_count_without_configured_capacity() {
        // Capacity 0 (no limit, the default): CPU and the transcode budget decide.
        let mut s = ClusterState::new();
        join(&mut s, 1, 0, 1_000);
        join(&mut s, 2, 0, 1_000);
        heartbeat(&mut s, 1, 1_000, transcoding(1, 2));
        heartbeat(&mut s, 2, 1_000, Load::default());
        assert_eq!(pick_node(&s, 1_000), Some(2));
        let cpu = |cpu_permille| Load {
            cpu_permille,
            ..Load::default()
        };
        heartbeat(&mut s, 2, 1_000, cpu(400));
        assert_eq!(pick_node(&s, 1_000), Some(2), "40 % CPU < half the budget");
        heartbeat(&mut s, 2, 1_000, cpu(600));
        assert_eq!(pick_node(&s, 1_000), Some(1), "60 % CPU > half the budget");
        // Equal scores: the transcoding node is the heavier one.
        heartbeat(&mut s, 2, 1_000, cpu(500));
        assert_eq!(pick_node(&s, 1_000), Some(2));
        // Transcoding with ABR turned off (a budget of 0) counts as full.
        heartbeat(&mut s, 1, 1_000, transcoding(1, 0));
        heartbeat(&mut s, 2, 1_000, cpu(900));
        assert_eq!(pick_node(&s, 1_000), Some(2));
    }

    #[test]
    fn a_camera_to_transcode_goes_where_the_budget_has_room() {
        let mut s = ClusterState::new();
        join(&mut s, 1, 0, 1_000);
        join(&mut s, 2, 0, 1_000);
        // Node 1: ABR off, idle. Node 2: one camera transcoded of a budget of four.
        heartbeat(&mut s, 1, 1_000, Load::default());
        heartbeat(&mut s, 2, 1_000, transcoding(1, 4));
        assert_eq!(pick_node_for(&s, 1_000, false), Some(1));
        assert_eq!(pick_node_for(&s, 1_000, true), Some(2));
        // No budget left anywhere: the least utilized node still takes it (ingested without
        // its ladder rather than not at all).
        heartbeat(&mut s, 2, 1_000, transcoding(4, 4));
        assert_eq!(pick_node_for(&s, 1_000, true), Some(1));
        // A node out of room takes nothing, transcode budget or not.
        join(&mut s, 3, 1, 1_000);
        heartbeat(&mut s, 3, 1_000, transcoding(1, 4));
        heartbeat(&mut s, 2, 1_000, transcoding(1, 4));
        assert_eq!(pick_node_for(&s, 1_000, true), Some(2));
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
