//! Recorder events into the store: a row per file kept current while it grows, its index
//! appended as it becomes durable, repairs made authoritative, alerts into the alerts table;
//! and the start-up reconciliation of the hot tier with the store.
//!
//! Events of one camera arrive in order (the recorder's contract), and one task calls
//! [`RecordingSink::handle`] for all of them, so no two writes about one file race. A store
//! failure is retried a few times; an index chunk that still could not be stored marks the
//! file so that its close re-reads the whole index from the file instead of trusting the
//! chunks.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::index;
use super::{FileIndex, RecorderEvent, RecorderHost};
use crate::clock::to_ms;
use crate::store::recordings::{NewRecording, Recording, RecordingGrowth, RecordingStatus, Tier};
use crate::store::{NewAlert, Store, StoreError};

/// Attempts per store write before the event is given up on.
const ATTEMPTS: u32 = 4;
/// First retry delay (doubles).
const RETRY: Duration = Duration::from_millis(200);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn camera_id_of(a: &NewAlert) -> String {
    a.camera_id.clone().unwrap_or_default()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What start-up reconciliation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Files on the hot tier the store did not know, indexed from the file.
    pub indexed: u64,
    /// Rows of files cut off by a crash, closed from the repaired file.
    pub closed: u64,
    /// Rows of open files that no longer exist (repair removed them), deleted.
    pub dropped: u64,
}

/// Turns recorder events into rows.
pub struct RecordingSink {
    store: Arc<dyn Store>,
    host: Arc<dyn RecorderHost>,
    hot: PathBuf,
    /// This node's name, written into every row (`Recording::node_id`).
    node: String,
    /// Whether other nodes share the store: their open rows are not ours to drop.
    clustered: bool,
    /// Files whose stored index chunks are incomplete.
    dirty: HashSet<PathBuf>,
    /// Where `recording.*` live events go.
    events: Option<Arc<crate::events::Bus>>,
}

impl std::fmt::Debug for RecordingSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSink")
            .field("hot", &self.hot)
            .finish_non_exhaustive()
    }
}

async fn retry<T, F, Fut>(what: &str, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = RETRY;
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, what, "recording store write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl RecordingSink {
    /// A sink writing to `store`, reading files of the hot tier `hot` through `host`, as
    /// the node named `node` (`clustered`: other nodes write to the same store).
    pub fn new(
        store: Arc<dyn Store>,
        host: Arc<dyn RecorderHost>,
        hot: PathBuf,
        node: String,
        clustered: bool,
    ) -> Self {
        Self {
            store,
            host,
            hot,
            node,
            clustered,
            dirty: HashSet::new(),
            events: None,
        }
    }

    /// Publishes `recording.*` live events on `bus` from now on.
    pub(crate) fn with_events(mut self, bus: Arc<crate::events::Bus>) -> Self {
        self.events = Some(bus);
        self
    }

    /// Publishes a live event about `camera` (after its store write).
    async fn live(&self, kind: &str, camera: &str, data: serde_json::Value) {
        let Some(bus) = &self.events else { return };
        let company = bus.companies.of(&*self.store, camera).await;
        bus.publish(crate::events::NewEvent {
            kind: kind.to_owned(),
            at: crate::clock::now_ms(),
            camera_id: Some(camera.to_owned()),
            company,
            data,
        });
    }

    /// Persists one event. Failures are logged (with the file), never returned: the next
    /// start-up reconciliation re-reads any file whose row was left behind.
    ///
    /// # Cancel safety
    /// Dropping the future may leave the event partly stored (each write is atomic); the
    /// file's close or the next start-up makes the row whole again.
    pub async fn handle(&mut self, ev: RecorderEvent) {
        let path = match &ev {
            RecorderEvent::Opened { path, .. }
            | RecorderEvent::Progress { path, .. }
            | RecorderEvent::Closed { path, .. } => Some(path.clone()),
            RecorderEvent::Repaired { file, .. } => Some(file.path.clone()),
            _ => None,
        };
        if let Err(e) = self.apply(ev).await {
            tracing::error!(path = ?path, error = %e, "recording event not stored");
            if let Some(p) = path {
                self.dirty.insert(p);
            }
        }
    }

    async fn apply(&mut self, ev: RecorderEvent) -> Result<(), StoreError> {
        match ev {
            RecorderEvent::Opened {
                camera,
                path,
                start,
                init_size,
            } => {
                let r = NewRecording {
                    camera_id: camera,
                    filename: file_name(&path),
                    file_path: path.to_string_lossy().into_owned(),
                    init_size: size(init_size),
                    start_time: to_ms(start),
                    end_time: to_ms(start),
                    duration_ms: 0,
                    file_size: size(init_size),
                    status: RecordingStatus::Recording,
                    node_id: Some(self.node.clone()),
                };
                let row = retry("open", || self.store.open_recording(r.clone())).await?;
                tracing::info!(recording_id = %row.id, camera_id = %row.camera_id, path = %row.file_path, "recording file opened");
                self.live(
                    crate::events::RECORDING_STARTED,
                    &row.camera_id,
                    serde_json::json!({ "recordingId": row.id, "filename": row.filename, "nodeId": self.node }),
                )
                .await;
                // Recording works again: the camera's recording alerts are resolved.
                let at = crate::clock::now_ms();
                for code in ["RECORDING_FAILED", "STORAGE_FULL"] {
                    let cause = format!("{code}:{}", row.camera_id);
                    if retry("alert", || self.store.resolve_cause(&cause, at)).await? {
                        tracing::info!(camera_id = %row.camera_id, kind = code, "alert resolved: recording again");
                    }
                }
            }
            RecorderEvent::Progress {
                path,
                duration,
                size: bytes,
                end_time,
                entries,
                ..
            } => {
                let growth = RecordingGrowth {
                    duration_ms: millis(duration),
                    file_size: size(bytes),
                    end_time: to_ms(end_time),
                    complete: false,
                };
                self.grow(&path, growth, &entries).await?;
            }
            RecorderEvent::Closed {
                camera,
                path,
                duration,
                size: bytes,
                end_time,
                entries,
                reason,
            } => {
                let growth = RecordingGrowth {
                    duration_ms: millis(duration),
                    file_size: size(bytes),
                    end_time: to_ms(end_time),
                    complete: true,
                };
                let stored = self.grow(&path, growth, &entries).await;
                if stored.is_err() || self.dirty.remove(&path) {
                    // Some chunk of this file never made it: the file itself is the truth.
                    self.reindex(&path).await?;
                }
                tracing::info!(path = %path.display(), %reason, duration_ms = growth.duration_ms, bytes, "recording file closed");
                self.live(
                    crate::events::RECORDING_STOPPED,
                    &camera,
                    serde_json::json!({
                        "filename": file_name(&path),
                        "durationMs": growth.duration_ms,
                        "bytes": bytes,
                        "reason": reason,
                        "nodeId": self.node,
                    }),
                )
                .await;
            }
            RecorderEvent::Repaired {
                file,
                removed,
                truncated,
            } => {
                self.dirty.remove(&file.path);
                let p = file.path.to_string_lossy().into_owned();
                if removed {
                    retry("delete", || self.store.delete_recording_by_path(&p)).await?;
                    tracing::warn!(path = %p, "recording file with nothing playable was removed by repair");
                } else {
                    self.store_index(file).await?;
                    tracing::info!(path = %p, truncated, "repaired recording indexed");
                }
            }
            RecorderEvent::Alert {
                camera,
                code,
                message,
                at: _,
            } => {
                let company = retry("camera", || self.store.get_camera(&camera))
                    .await?
                    .and_then(|c| c.company);
                // The rule in force may mute the type or change its severity (the offline
                // duration it is read with does not matter for these types).
                let rule = crate::alerts::rules::effective_now(
                    &*self.store,
                    Duration::ZERO,
                    code,
                    company.as_deref(),
                    Some(&camera),
                )
                .await;
                if !rule.enabled {
                    tracing::info!(camera_id = %camera, kind = code, "alert muted by its rule");
                    return Ok(());
                }
                let alert = NewAlert {
                    kind: code.to_owned(),
                    severity: rule.severity,
                    cause: Some(format!("{code}:{camera}")),
                    camera_id: Some(camera),
                    user_id: None,
                    token_id: None,
                    message,
                    company,
                };
                let text = alert.message.clone();
                retry("alert", || self.store.create_alert(alert.clone())).await?;
                self.live(
                    crate::events::RECORDING_FAILED,
                    &camera_id_of(&alert),
                    serde_json::json!({ "code": code, "message": text, "nodeId": self.node }),
                )
                .await;
            }
            RecorderEvent::Dropped {
                camera,
                fragments,
                bytes,
                reason,
            } => {
                metrics::counter!("camstream_recording_dropped_fragments_total", "reason" => reason)
                    .increment(fragments);
                tracing::warn!(camera_id = %camera, fragments, bytes, reason, "recording fragments dropped");
            }
            RecorderEvent::Gap {
                camera,
                from,
                to,
                reason,
                ..
            } => {
                let secs = to.duration_since(from).unwrap_or_default().as_secs_f64();
                tracing::info!(camera_id = %camera, seconds = secs, reason, "gap in the recorded timeline");
            }
        }
        Ok(())
    }

    /// Updates a growing file's row and appends its new entries. A file with no row (its
    /// `Opened` was lost) is indexed from the file.
    async fn grow(
        &mut self,
        path: &Path,
        growth: RecordingGrowth,
        entries: &[index::IndexEntry],
    ) -> Result<(), StoreError> {
        let p = path.to_string_lossy().into_owned();
        let chunk = (!entries.is_empty()).then(|| index::encode(entries));
        let id = retry("grow", || {
            self.store.grow_recording(&p, growth, chunk.clone())
        })
        .await?;
        if id.is_none() {
            tracing::warn!(path = %p, "recording progress for a file without a row; indexing it from the file");
            self.reindex(path).await?;
        }
        Ok(())
    }

    /// Reads a file's index from the file and stores it as authoritative.
    async fn reindex(&self, path: &Path) -> Result<(), StoreError> {
        match self.read(path).await {
            Some(f) => self.store_index(f).await,
            None => Ok(()),
        }
    }

    async fn read(&self, path: &Path) -> Option<FileIndex> {
        let host = self.host.clone();
        let p = path.to_owned();
        match tokio::task::spawn_blocking(move || host.read_index(&p)).await {
            Ok(Ok(f)) => Some(f),
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "recording file cannot be indexed");
                None
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "indexing task failed");
                None
            }
        }
    }

    async fn store_index(&self, f: FileIndex) -> Result<(), StoreError> {
        let r = NewRecording {
            camera_id: f.camera.clone(),
            filename: file_name(&f.path),
            file_path: f.path.to_string_lossy().into_owned(),
            init_size: size(f.init_size),
            start_time: to_ms(f.start),
            end_time: to_ms(f.end_time),
            duration_ms: millis(f.duration),
            file_size: size(f.size),
            status: if f.closed {
                RecordingStatus::Complete
            } else {
                RecordingStatus::Recording
            },
            node_id: Some(self.node.clone()),
        };
        let chunk = index::encode(&f.entries);
        retry("index", || {
            self.store.index_recording(r.clone(), chunk.clone())
        })
        .await?;
        Ok(())
    }

    /// Start-up reconciliation, after the recorder's repair and before anything records:
    /// every hot file the store does not know (or knows as still open) is indexed from the
    /// file; rows of open files that are gone are deleted.
    ///
    /// # Errors
    /// Store failures.
    pub async fn reconcile(&mut self) -> Result<Reconciled, StoreError> {
        let mut out = Reconciled::default();
        let hot = self.hot.clone();
        let files = tokio::task::spawn_blocking(move || hot_files(&hot))
            .await
            .unwrap_or_default();
        let on_disk: HashSet<String> = files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        for path in &files {
            let p = path.to_string_lossy().into_owned();
            let known = self.store.get_recording_by_path(&p).await?;
            let open = known
                .as_ref()
                .is_some_and(|r| r.status == RecordingStatus::Recording);
            if known.is_some() && !open {
                continue;
            }
            if let Some(f) = self.read(path).await {
                let closed = f.closed;
                self.store_index(f).await?;
                if open {
                    out.closed += 1;
                } else {
                    out.indexed += 1;
                }
                if !closed {
                    tracing::warn!(path = %p, "recording file indexed while not closed");
                }
            }
        }
        for r in self.store.open_recordings().await? {
            // In a cluster another node's open file is on its disk, not missing from ours.
            if !owned_here(&r, &self.node, self.clustered) {
                continue;
            }
            if r.storage_tier == Tier::Hot && !on_disk.contains(&r.file_path) {
                self.store.delete_recording_by_path(&r.file_path).await?;
                out.dropped += 1;
            }
        }
        if out != Reconciled::default() {
            tracing::info!(?out, "recordings reconciled with the hot tier");
        }
        Ok(out)
    }
}

/// Whether the node named `node` wrote `r`'s file and so reconciles, moves and deletes it.
/// A row from before `node_id` existed belongs to a single node; in a cluster it is nobody's
/// to drop (its file is on some node's disk).
pub(crate) fn owned_here(r: &Recording, node: &str, clustered: bool) -> bool {
    match &r.node_id {
        Some(n) => n == node,
        None => !clustered,
    }
}

/// Every `{hot}/{camera}/{day}/*.mp4`, sorted (partial copies and other files skipped).
fn hot_files(hot: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for cam in dirs(hot) {
        for day in dirs(&cam) {
            for f in dirs(&day) {
                if f.extension().is_some_and(|e| e == "mp4") && f.is_file() {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    out
}
