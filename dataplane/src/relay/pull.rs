//! On-demand pulls (cluster only): a viewer here asks for a camera ingested on another node,
//! and one task per camera pulls it through the [`Edge`] while viewers keep asking.
//!
//! Owns: the set of cameras being pulled (single flight: N viewers, one pull), each pull's
//! task and its lifecycle: follow the placement to a new origin when the camera moves or
//! the origin is lost, retry with a bounded backoff, stop when no viewer asked for the idle
//! timeout, when the camera is placed here or nowhere, or when an encoder publishes it here.
//! Leaves to others: where cameras are ([`OriginLocator`], the control plane over raft),
//! checking the viewer's token (the HLS handler, before it asks for a pull), the relay
//! itself ([`Edge::pull`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camstream_protocol::relay::EndReason;
use camstream_protocol::{Origin, OriginLocator};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

use super::edge::{Edge, PullEnd, PullError};
use crate::auth::CameraId;
use crate::registry::Registry;

/// How often a running pull looks at the placement (a read of local raft state): the
/// bound on how late an edge follows a camera that moved to another origin.
const RESOLVE_EVERY: Duration = Duration::from_millis(100);
/// Retry delays after a failed pull, doubling from the first to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long a pull cancelled for a move may take to say goodbye to its old origin.
const GOODBYE: Duration = Duration::from_millis(500);
/// How long an ABR rendition its origin does not have (the camera is not transcoded there,
/// or its transcoder is still starting) is not asked for again.
pub(super) const UNKNOWN_RENDITION_TTL: Duration = Duration::from_secs(3);

/// Starts and tracks on-demand pulls. Cheap to clone.
#[derive(Clone)]
pub struct Puller {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller").finish_non_exhaustive()
    }
}

struct Inner {
    edge: Edge,
    locator: Arc<dyn OriginLocator>,
    registry: Arc<Registry>,
    /// Cameras with a pull task (touched per request of a camera not live here, and when a
    /// task starts or ends; never per frame).
    pulling: Mutex<HashSet<CameraId>>,
    /// ABR renditions their origin said it does not have, and when (pruned on insert).
    unknown: Mutex<HashMap<CameraId, Instant>>,
    tasks: Mutex<JoinSet<()>>,
    shutdown: CancellationToken,
}

impl Puller {
    /// Pulls through `edge` the cameras `locator` places on other nodes; every task ends at
    /// `shutdown`.
    pub fn new(edge: Edge, locator: Arc<dyn OriginLocator>, shutdown: CancellationToken) -> Self {
        let registry = edge.registry().clone();
        Self {
            inner: Arc::new(Inner {
                edge,
                locator,
                registry,
                pulling: Mutex::default(),
                unknown: Mutex::default(),
                tasks: Mutex::new(JoinSet::new()),
                shutdown,
            }),
        }
    }

    /// Makes sure `camera` is being pulled when another node ingests it: starts a pull
    /// unless one runs. Returns whether one runs. Call only for a viewer whose token was
    /// accepted.
    ///
    /// An ABR rendition (`{camera}~{name}`) is pulled from its camera's origin; one the
    /// origin said it does not have is not asked for again for a few seconds (`false`).
    pub(crate) fn ensure(&self, camera: &str) -> bool {
        let i = &self.inner;
        if i.shutdown.is_cancelled() {
            return false;
        }
        if self.is_pulling(camera) {
            return true;
        }
        if i.unknown
            .lock()
            .expect("unknown renditions poisoned")
            .get(camera)
            .is_some_and(|at| at.elapsed() < UNKNOWN_RENDITION_TTL)
        {
            return false;
        }
        let Some(origin) = i.locator.locate(camera) else {
            return false;
        };
        let camera = CameraId::from(camera);
        if !i
            .pulling
            .lock()
            .expect("pulls poisoned")
            .insert(camera.clone())
        {
            return true;
        }
        let span = info_span!("relay_pull", camera_id = %camera);
        let task = run(i.clone(), camera, origin).instrument(span);
        let mut tasks = i.tasks.lock().expect("pull tasks poisoned");
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
        true
    }
}

impl Puller {
    /// Whether a pull task runs for `camera` (it may not have media yet).
    pub(crate) fn is_pulling(&self, camera: &str) -> bool {
        self.inner
            .pulling
            .lock()
            .expect("pulls poisoned")
            .contains(camera)
    }
}

#[cfg(test)]
impl Puller {
    /// Cameras with a pull task.
    pub(crate) fn pulling(&self) -> usize {
        self.inner.pulling.lock().unwrap().len()
    }
}

/// Takes the camera out of the pulling set however its task ends.
struct Pulling<'a>(&'a Inner, &'a CameraId);

impl Drop for Pulling<'_> {
    fn drop(&mut self) {
        self.0
            .pulling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.1);
    }
}

/// Whether two answers name the same origin (a new epoch on the same node keeps its stream).
fn same(a: &Origin, b: Option<&Origin>) -> bool {
    b.is_some_and(|b| a.node == b.node && a.relay_addr == b.relay_addr)
}

async fn run(inner: Arc<Inner>, camera: CameraId, mut origin: Origin) {
    let _pulling = Pulling(&inner, &camera);
    let started = Instant::now();
    let idle = inner.edge.idle_timeout();
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        if !first {
            inner.edge.forget(origin.relay_addr);
        }
        first = false;
        metrics::counter!("camstream_relay_pulls_started_total").increment(1);
        info!(origin = origin.node, relay = %origin.relay_addr, epoch = origin.epoch, "pulling");
        let attempt = inner.shutdown.child_token();
        let pull = inner
            .edge
            .pull(origin.relay_addr, camera.clone(), attempt.clone());
        tokio::pin!(pull);
        let mut tick = tokio::time::interval(RESOLVE_EVERY);
        let result = loop {
            tokio::select! {
                r = &mut pull => break Some(r),
                _ = tick.tick() => {
                    if !same(&origin, inner.locator.locate(&camera).as_ref()) {
                        // Moved (or unplaced): leave the old origin, politely if it answers.
                        attempt.cancel();
                        break tokio::time::timeout(GOODBYE, &mut pull).await.ok();
                    }
                }
            }
        };
        let moved = attempt.is_cancelled() && !inner.shutdown.is_cancelled();
        match result {
            _ if inner.shutdown.is_cancelled() => return,
            Some(Ok(PullEnd::Idle | PullEnd::Replaced)) => return,
            Some(Err(PullError::Busy)) => return,
            // A rendition the origin does not have: its camera is not transcoded there (or
            // not yet). Viewers asking again later start a new pull.
            Some(Err(PullError::Refused {
                reason: EndReason::UnknownCamera,
                ..
            })) if camstream_protocol::abr::split_rendition(&camera).is_some() => {
                debug!("the origin has no such rendition");
                let mut unknown = inner.unknown.lock().expect("unknown renditions poisoned");
                unknown.retain(|_, at| at.elapsed() < UNKNOWN_RENDITION_TTL);
                unknown.insert(camera.clone(), Instant::now());
                return;
            }
            Some(Err(_)) if !moved => {
                metrics::counter!("camstream_relay_pulls_failed_total").increment(1);
            }
            _ => {}
        }
        // Pull again, from wherever the camera is now, while viewers still ask for it.
        let mut waited = Duration::ZERO;
        let pause = if moved { Duration::ZERO } else { backoff };
        backoff = (backoff * 2).min(BACKOFF_MAX);
        loop {
            let last = inner
                .registry
                .get(&camera)
                .and_then(|s| s.last_viewer())
                .map_or(started, |v| v.max(started));
            if last.elapsed() >= idle {
                debug!("no viewer; not pulling again");
                return;
            }
            let Some(next) = inner.locator.locate(&camera) else {
                info!("the camera is placed here or nowhere; not pulling");
                return;
            };
            if !same(&origin, Some(&next)) {
                origin = next;
                backoff = BACKOFF_MIN;
                break;
            }
            if waited >= pause {
                origin = next;
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(RESOLVE_EVERY) => waited += RESOLVE_EVERY,
                () = inner.shutdown.cancelled() => return,
            }
        }
    }
}
