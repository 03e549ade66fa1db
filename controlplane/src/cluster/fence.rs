//! Fencing on a cluster node (sans-IO): when this node must stop acting as a camera's origin.
//! Two rules (docs/architecture.md, "Epochs and fencing"):
//!
//! - [`may_serve`]: the relay serves a camera to an edge only while this node holds its
//!   lease and the placement names this node (the answer carries the epoch).
//! - [`Fence::check`]: the publishers on this node are dropped when the placement of their
//!   camera moved to another node with an epoch newer than the one this node held it at,
//!   and all of them once this node's lease view has been lapsed for a grace period (they
//!   reconnect elsewhere, e.g. through a balancer).
//!
//! The shell (`ControlPlane::report_health`) feeds it the cameras published here, the lease
//! view and the placements once a second, and disconnects what it returns. Refusing new
//! publishers without a lease is the authorizer's job (`auth::Fenced`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use camstream_protocol::Fenced;
use camstream_raft_store::{NodeId, Placement};

/// Whether node `me` may serve a camera with `placement` as origin, given its lease view.
///
/// # Errors
/// [`Fenced`]: no lease, no placement, or the placement names another node (or none).
pub(crate) fn may_serve(
    me: NodeId,
    lease_held: bool,
    placement: Option<Placement>,
) -> Result<u64, Fenced> {
    if !lease_held {
        return Err(Fenced::NoLease);
    }
    match placement {
        None => Err(Fenced::Unplaced),
        Some(p) if p.node == Some(me) => Ok(p.epoch),
        Some(p) => Err(Fenced::PlacedElsewhere {
            node: p.node,
            epoch: p.epoch,
        }),
    }
}

/// A publisher this node must drop, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Drop {
    /// The camera moved to `node` at `epoch`, newer than `held`, the epoch this node held it
    /// at.
    Moved {
        /// The camera.
        camera: String,
        /// The epoch this node was origin at.
        held: u64,
        /// The new node.
        node: NodeId,
        /// The new epoch.
        epoch: u64,
    },
    /// This node is draining and the camera is not placed on it: it can neither claim it
    /// nor serve it, so the publisher should go to another node.
    Draining {
        /// The camera.
        camera: String,
    },
    /// This node's lease view has been lapsed for `lapsed`.
    LeaseLapsed {
        /// The camera.
        camera: String,
        /// For how long.
        lapsed: Duration,
    },
}

impl Drop {
    /// The camera to disconnect.
    pub(crate) fn camera(&self) -> &str {
        match self {
            Drop::Moved { camera, .. }
            | Drop::Draining { camera }
            | Drop::LeaseLapsed { camera, .. } => camera,
        }
    }
}

/// What this node remembers between rounds: the epoch at which it became each published
/// camera's origin, and since when its lease view is lapsed.
#[derive(Debug)]
pub(crate) struct Fence {
    me: NodeId,
    /// Publishers are dropped after the lease view has been lapsed this long (a short gap in
    /// heartbeats, e.g. during an election, keeps them).
    grace: Duration,
    held: HashMap<String, u64>,
    lapsed_since: Option<Instant>,
}

impl Fence {
    /// A fence for node `me`, dropping publishers `grace` after its lease view lapsed.
    pub(crate) fn new(me: NodeId, grace: Duration) -> Self {
        Self {
            me,
            grace,
            held: HashMap::new(),
            lapsed_since: None,
        }
    }

    /// Records that this node became `camera`'s origin at `epoch` (its claim was applied),
    /// whether or not a round sees the placement before it moves again.
    pub(crate) fn held(&mut self, camera: &str, epoch: u64) {
        let e = self.held.entry(camera.to_owned()).or_insert(epoch);
        *e = (*e).max(epoch);
    }

    /// One round at `now`: `online` are the cameras published on this node, `lease_held` its
    /// lease view, `draining` whether the applied state says it drains, `placement` reads
    /// the applied placement. Returns the publishers to drop (each once: a dropped camera is
    /// forgotten until it is published and placed here again).
    pub(crate) fn check(
        &mut self,
        now: Instant,
        lease_held: bool,
        draining: bool,
        online: &[String],
        placement: impl Fn(&str) -> Option<Placement>,
    ) -> Vec<Drop> {
        self.held.retain(|c, _| online.contains(c));
        if !lease_held {
            let since = *self.lapsed_since.get_or_insert(now);
            let lapsed = now.saturating_duration_since(since);
            if lapsed < self.grace {
                return Vec::new();
            }
            self.held.clear();
            return online
                .iter()
                .map(|c| Drop::LeaseLapsed {
                    camera: c.clone(),
                    lapsed,
                })
                .collect();
        }
        self.lapsed_since = None;
        let mut drops = Vec::new();
        for camera in online {
            let p = placement(camera);
            if draining && p.is_none_or(|p| p.node != Some(self.me)) {
                // A draining node's claims are refused: the publisher must go elsewhere.
                self.held.remove(camera);
                drops.push(Drop::Draining {
                    camera: camera.clone(),
                });
                continue;
            }
            let Some(p) = p else { continue };
            match p.node {
                Some(n) if n == self.me => {
                    let e = self.held.entry(camera.clone()).or_insert(p.epoch);
                    *e = (*e).max(p.epoch);
                }
                Some(node) => {
                    // Never held here: the claim is still on its way; leave it to the claim.
                    if let Some(&held) = self.held.get(camera)
                        && p.epoch > held
                    {
                        self.held.remove(camera);
                        drops.push(Drop::Moved {
                            camera: camera.clone(),
                            held,
                            node,
                            epoch: p.epoch,
                        });
                    }
                }
                // Unplaced (its node left): this node claims it again.
                None => {}
            }
        }
        drops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: Option<NodeId>, epoch: u64) -> Option<Placement> {
        Some(Placement { node, epoch })
    }

    #[test]
    fn may_serve_needs_the_lease_and_the_placement() {
        assert_eq!(may_serve(1, true, at(Some(1), 4)), Ok(4));
        assert_eq!(may_serve(1, false, at(Some(1), 4)), Err(Fenced::NoLease));
        assert_eq!(
            may_serve(1, true, at(Some(2), 5)),
            Err(Fenced::PlacedElsewhere {
                node: Some(2),
                epoch: 5
            })
        );
        assert_eq!(
            may_serve(1, true, at(None, 6)),
            Err(Fenced::PlacedElsewhere {
                node: None,
                epoch: 6
            })
        );
        assert_eq!(may_serve(1, true, None), Err(Fenced::Unplaced));
    }

    #[test]
    fn a_camera_moved_to_another_node_with_a_newer_epoch_is_dropped_once() {
        let mut f = Fence::new(1, Duration::from_secs(2));
        let t = Instant::now();
        let online = vec!["cam".to_owned()];
        assert!(
            f.check(t, true, false, &online, |_| at(Some(1), 3))
                .is_empty()
        );
        let d = f.check(t, true, false, &online, |_| at(Some(2), 4));
        assert_eq!(
            d,
            vec![Drop::Moved {
                camera: "cam".into(),
                held: 3,
                node: 2,
                epoch: 4
            }]
        );
        // Still listed as online until the disconnect lands: not dropped twice.
        assert!(
            f.check(t, true, false, &online, |_| at(Some(2), 4))
                .is_empty()
        );
    }

    #[test]
    fn a_publisher_whose_claim_is_pending_is_kept() {
        // Published here while the placement still names the old node: the claim will move
        // it; the old placement is no reason to drop the new publisher.
        let mut f = Fence::new(1, Duration::from_secs(2));
        let online = vec!["cam".to_owned()];
        let t = Instant::now();
        assert!(
            f.check(t, true, false, &online, |_| at(Some(2), 7))
                .is_empty()
        );
        assert!(f.check(t, true, false, &online, |_| at(None, 8)).is_empty());
        assert!(f.check(t, true, false, &online, |_| None).is_empty());
        // Claimed: now held at 9; a later move away drops it.
        assert!(
            f.check(t, true, false, &online, |_| at(Some(1), 9))
                .is_empty()
        );
        assert_eq!(
            f.check(t, true, false, &online, |_| at(Some(3), 10)).len(),
            1
        );
    }

    #[test]
    fn a_claim_applied_between_rounds_is_fenced_by_a_later_claim() {
        // Two encoders of one camera on two nodes: each round sees the other's claim; the
        // claim recorded when applied makes the older one go instead of claiming back.
        let mut f = Fence::new(1, Duration::from_secs(2));
        let t = Instant::now();
        let online = vec!["cam".to_owned()];
        assert!(
            f.check(t, true, false, &online, |_| at(Some(2), 4))
                .is_empty()
        );
        f.held("cam", 5);
        let d = f.check(t, true, false, &online, |_| at(Some(2), 6));
        assert_eq!(
            d,
            vec![Drop::Moved {
                camera: "cam".into(),
                held: 5,
                node: 2,
                epoch: 6
            }]
        );
    }

    #[test]
    fn a_draining_node_drops_publishers_of_cameras_placed_elsewhere() {
        let mut f = Fence::new(1, Duration::from_secs(2));
        let t = Instant::now();
        let online = vec!["here".to_owned(), "away".to_owned(), "none".to_owned()];
        let d = f.check(t, true, true, &online, |c| match c {
            "here" => at(Some(1), 1),
            "away" => at(Some(2), 2),
            _ => None,
        });
        assert_eq!(
            d,
            vec![
                Drop::Draining {
                    camera: "away".into()
                },
                Drop::Draining {
                    camera: "none".into()
                }
            ]
        );
    }

    #[test]
    fn an_unpublished_camera_is_forgotten() {
        let mut f = Fence::new(1, Duration::from_secs(2));
        let t = Instant::now();
        let cam = vec!["cam".to_owned()];
        assert!(f.check(t, true, false, &cam, |_| at(Some(1), 3)).is_empty());
        assert!(f.check(t, true, false, &[], |_| at(Some(2), 4)).is_empty());
        // Published here again while placed elsewhere: a pending claim, not a move.
        assert!(f.check(t, true, false, &cam, |_| at(Some(2), 4)).is_empty());
    }

    #[test]
    fn publishers_are_dropped_after_the_lease_was_lapsed_for_the_grace() {
        let mut f = Fence::new(1, Duration::from_secs(2));
        let t = Instant::now();
        let online = vec!["a".to_owned(), "b".to_owned()];
        let here = |_: &str| at(Some(1), 1);
        assert!(f.check(t, true, false, &online, here).is_empty());
        assert!(f.check(t, false, false, &online, here).is_empty());
        let t1 = t + Duration::from_millis(1999);
        assert!(f.check(t1, false, false, &online, here).is_empty());
        // Renewed in time: the clock starts again at the next lapse.
        assert!(f.check(t1, true, false, &online, here).is_empty());
        let t2 = t1 + Duration::from_secs(1);
        assert!(f.check(t2, false, false, &online, here).is_empty());
        let t3 = t2 + Duration::from_secs(2);
        let d = f.check(t3, false, false, &online, here);
        assert_eq!(
            d,
            vec![
                Drop::LeaseLapsed {
                    camera: "a".into(),
                    lapsed: Duration::from_secs(2)
                },
                Drop::LeaseLapsed {
                    camera: "b".into(),
                    lapsed: Duration::from_secs(2)
                }
            ]
        );
        assert_eq!(d[0].camera(), "a");
    }
}
