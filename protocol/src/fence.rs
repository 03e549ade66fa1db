//! Fencing of a cluster node's origin role, as a trait so the data plane's relay can ask the
//! control plane (which holds the raft placement and the node's lease) without depending on
//! it. The binary hands the control plane's implementation to the relay; a single node has no
//! relay and never asks.
//!
//! The rule (docs/architecture.md, "Epochs and fencing"): a node serves a camera as origin
//! only while it holds its lease and the camera's placement names it, at that epoch.

/// Decides whether this node may act as a camera's origin now.
pub trait OriginFence: Send + Sync + 'static {
    /// Whether this node may serve `camera` to an edge now; the placement epoch it serves it
    /// at. Called when an edge opens a stream and about twice a second while it is served:
    /// must be cheap (no network round trip).
    ///
    /// # Errors
    /// [`Fenced`] with the reason the relay sends the edge.
    fn may_serve(&self, camera: &str) -> Result<u64, Fenced>;
}

/// Why this node may not act as a camera's origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fenced {
    /// This node's own view of its cluster lease has lapsed (cut off from the majority, or
    /// still joining).
    #[error("this node does not hold its cluster lease")]
    NoLease,
    /// The placement names another node, or none.
    #[error("the camera is placed on node {node:?} at epoch {epoch}, not on this node")]
    PlacedElsewhere {
        /// The node the placement names.
        node: Option<u64>,
        /// The placement's epoch.
        epoch: u64,
    },
    /// The cluster has no placement for the camera.
    #[error("the camera has no placement")]
    Unplaced,
}
