//! What the control plane may ask of the live streams on a node, as a trait so the control
//! plane does not depend on the data plane (the binary hands one to the other).

/// Commands from the control plane to the live streams of this node.
pub trait LiveControl: Send + Sync + 'static {
    /// Disconnects the encoder publishing `camera` on this node, if one is: its camera was
    /// disabled or deleted, or its key rotated, so the publish it was admitted with is no
    /// longer valid. A new publish must pass authorization again. `reason` goes to the log.
    /// Returns whether a publisher was told to go.
    fn disconnect_publisher(&self, camera: &str, reason: &str) -> bool;
}
