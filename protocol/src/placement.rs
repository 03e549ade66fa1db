//! Where a camera is ingested, as the data plane needs to know it to pull the camera from
//! another node (cluster only). A trait so the data plane does not depend on the control
//! plane or raft; the binary hands the control plane's implementation to the data plane.

use std::net::SocketAddr;

/// The node ingesting a camera (its origin), as this node last saw the placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The origin's node id.
    pub node: u64,
    /// Its QUIC relay address.
    pub relay_addr: SocketAddr,
    /// The placement epoch (bumped by every move of the camera).
    pub epoch: u64,
}

/// Answers "which other node ingests this camera?" from the replicated placement.
pub trait OriginLocator: Send + Sync + 'static {
    /// The camera's origin when it is placed on another node that runs a relay; `None`
    /// when it is placed on this node, on no node, or on a node without a usable relay
    /// address. Cheap (a read of local state, no I/O): called per viewer request of a
    /// camera that has no live stream here.
    fn locate(&self, camera: &str) -> Option<Origin>;
}
