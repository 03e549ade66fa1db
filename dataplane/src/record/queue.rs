//! A camera's recording queue: counters shared by its publisher (which fills the queue)
//! and its writer thread (which drains it), and the messages that travel to the thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::RecordedFragment;
use crate::auth::CameraId;

/// One camera's recording queue, shared by its publisher (which fills it) and its writer
/// thread (which drains it). Only counters: the fragments travel in the channel.
#[derive(Debug)]
pub(crate) struct CameraQueue {
    pub(crate) camera: CameraId,
    pub(crate) fragments: AtomicUsize,
    pub(crate) bytes: AtomicUsize,
    /// Fragments the publisher dropped (queue full) not yet reported.
    pub(crate) dropped: AtomicU64,
    pub(crate) dropped_bytes: AtomicU64,
}

impl CameraQueue {
    pub(crate) fn new(camera: CameraId) -> Self {
        Self {
            camera,
            fragments: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
        }
    }
}

/// A fragment's share of its camera's queue; given back when dropped (written or not).
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) queue: Arc<CameraQueue>,
    bytes: usize,
}

impl Budget {
    /// Takes `bytes` of `queue` if it has room for one more fragment within the limits.
    pub(crate) fn take(
        queue: &Arc<CameraQueue>,
        bytes: usize,
        max_fragments: usize,
        max_bytes: usize,
    ) -> Option<Self> {
        let n = queue.fragments.fetch_add(1, Ordering::AcqRel);
        let b = queue.bytes.fetch_add(bytes, Ordering::AcqRel);
        let budget = Budget {
            queue: queue.clone(),
            bytes,
        };
        // Over a limit: dropping `budget` gives the share back.
        (n < max_fragments && b + bytes <= max_bytes).then_some(budget)
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.queue.fragments.fetch_sub(1, Ordering::AcqRel);
        self.queue.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What a writer thread receives.
pub(crate) enum Msg {
    /// A fragment of a recorded camera.
    Fragment(Budget, RecordedFragment),
    /// Close every file and stop.
    Shutdown,
}
