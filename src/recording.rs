//! The recorder between the planes: the data plane's recorder seen as the control plane's
//! [`RecorderHost`], and its [`RecordingEvent`]s converted and fed, in order, to the control
//! plane's [`RecordingSink`].
//!
//! The control plane does not depend on the data plane, so the two contracts meet here.
//! Leaves to others: writing and repairing files (data plane), rows and retention (control
//! plane). Spec: issue 5; ARCHITECTURE.md "Recording".

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use camstream_controlplane::recordings::{self as cp, RecorderEvent, RecorderHost, RecordingSink};
use camstream_dataplane::DataPlane;
use camstream_dataplane::record::{
    CloseReason, DropReason, FileIndex, GapReason, IndexEntry, RecordingEvent, RepairStatus,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long events still arriving after shutdown (files closed by the recorder) are
/// stored before the process exits.
const DRAIN: Duration = Duration::from_secs(5);

/// The data plane's recorder as the control plane drives it.
pub(crate) struct Host(pub(crate) DataPlane);

impl RecorderHost for Host {
    fn set_recording(&self, camera: &str, on: bool) {
        info!(camera_id = camera, on, "recording toggled");
        self.0.set_recording(camera, on);
    }

    fn set_recorded_cameras(&self, cameras: Vec<String>) {
        self.0
            .set_recorded_cameras(cameras.into_iter().map(Arc::<str>::from));
    }

    fn read_index(&self, path: &Path) -> Result<cp::FileIndex, String> {
        camstream_dataplane::read_index(path)
            .map(file_index)
            .map_err(|e| e.to_string())
    }
}

fn entry(e: IndexEntry) -> cp::IndexEntry {
    cp::IndexEntry {
        offset: e.offset,
        size: e.size,
        media_time: e.media_time,
        duration: e.duration,
        wall_time: e.wall_time,
        independent: e.independent,
        discontinuity: e.discontinuity,
    }
}

fn entries(v: Vec<IndexEntry>) -> Vec<cp::IndexEntry> {
    v.into_iter().map(entry).collect()
}

fn file_index(f: FileIndex) -> cp::FileIndex {
    cp::FileIndex {
        camera: f.camera.to_string(),
        path: f.path,
        start: f.start,
        end_time: f.end_time,
        duration: f.duration,
        size: f.size,
        init_size: f.init_size,
        closed: f.closed,
        entries: entries(f.entries),
    }
}

fn close_reason(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Chunk => "chunk",
        CloseReason::Reconfigured => "reconfigured",
        CloseReason::Restarted => "restarted",
        CloseReason::Stopped => "stopped",
        CloseReason::Idle => "idle",
        CloseReason::Shutdown => "shutdown",
        CloseReason::Failed => "failed",
        _ => "other",
    }
}

fn drop_reason(r: DropReason) -> &'static str {
    match r {
        DropReason::QueueFull => "queue_full",
        DropReason::LowSpace => "low_space",
        DropReason::DiskFull => "disk_full",
        DropReason::WriteError => "write_error",
        _ => "other",
    }
}

fn gap_reason(r: GapReason) -> &'static str {
    match r {
        GapReason::NoMedia => "no_media",
        GapReason::Dropped => "dropped",
        _ => "other",
    }
}

/// The data plane's event as the control plane takes it.
pub(crate) fn convert(ev: RecordingEvent) -> Option<RecorderEvent> {
    Some(match ev {
        RecordingEvent::Opened(e) => RecorderEvent::Opened {
            camera: e.camera.to_string(),
            path: e.path,
            start: e.start,
            init_size: e.init_size,
        },
        RecordingEvent::Progress(e) => RecorderEvent::Progress {
            camera: e.camera.to_string(),
            path: e.path,
            duration: e.duration,
            size: e.size,
            end_time: e.end_time,
            entries: entries(e.entries),
        },
        RecordingEvent::Closed(e) => RecorderEvent::Closed {
            camera: e.camera.to_string(),
            path: e.path,
            duration: e.duration,
            size: e.size,
            end_time: e.end_time,
            entries: entries(e.entries),
            reason: close_reason(e.reason),
        },
        RecordingEvent::Gap(e) => RecorderEvent::Gap {
            camera: e.camera.to_string(),
            path: e.path,
            from: e.from,
            to: e.to,
            reason: gap_reason(e.reason),
        },
        RecordingEvent::Dropped(e) => RecorderEvent::Dropped {
            camera: e.camera.to_string(),
            fragments: e.fragments,
            bytes: e.bytes,
            reason: drop_reason(e.reason),
        },
        RecordingEvent::Alert(e) => RecorderEvent::Alert {
            camera: e.camera.to_string(),
            code: e.kind.code(),
            message: e.message,
            at: e.at,
        },
        RecordingEvent::Repaired(e) => RecorderEvent::Repaired {
            removed: e.status == RepairStatus::Removed,
            truncated: e.truncated,
            file: file_index(e.file),
        },
        other => {
            warn!(event = ?other, "recording event of an unknown kind ignored");
            return None;
        }
    })
}

/// Feeds the recorder's events to the sink, in order, until the recorder is gone or, after
/// `shutdown`, the channel stayed quiet for [`DRAIN`] (the recorder's last `Closed` events
/// come while the server stops).
pub(crate) async fn pump(
    mut events: mpsc::Receiver<RecordingEvent>,
    mut sink: RecordingSink,
    shutdown: CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            () = shutdown.cancelled() => break,
        };
        let Some(ev) = ev else { return };
        if let Some(ev) = convert(ev) {
            sink.handle(ev).await;
        }
    }
    while let Ok(Some(ev)) = tokio::time::timeout(DRAIN, events.recv()).await {
        if let Some(ev) = convert(ev) {
            sink.handle(ev).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::SystemTime;

    #[test]
    fn events_keep_their_fields() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = IndexEntry {
            offset: 700,
            size: 4096,
            media_time: Duration::from_millis(2000),
            duration: Duration::from_millis(200),
            wall_time: t,
            independent: true,
            discontinuity: true,
        };
        let closed = RecordingEvent::Closed(camstream_dataplane::record::FileClosed {
            camera: Arc::from("cam"),
            path: PathBuf::from("/r/cam/x.mp4"),
            start: t,
            end_time: t + Duration::from_secs(30),
            duration: Duration::from_secs(30),
            size: 123,
            entries: vec![e],
            reason: CloseReason::Chunk,
        });
        match convert(closed) {
            Some(RecorderEvent::Closed {
                camera,
                path,
                duration,
                size,
                entries,
                reason,
                ..
            }) => {
                assert_eq!(camera, "cam");
                assert_eq!(path, PathBuf::from("/r/cam/x.mp4"));
                assert_eq!(duration, Duration::from_secs(30));
                assert_eq!(size, 123);
                assert_eq!(reason, "chunk");
                assert_eq!(entries.len(), 1);
                let c = entries[0];
                assert_eq!((c.offset, c.size), (700, 4096));
                assert_eq!(c.media_time, Duration::from_millis(2000));
                assert!(c.independent && c.discontinuity);
                assert_eq!(c.wall_time, t);
            }
            other => panic!("unexpected {other:?}"),
        }
        let alert = RecordingEvent::Alert(camstream_dataplane::record::RecordingAlert {
            camera: Arc::from("cam"),
            kind: camstream_dataplane::record::AlertKind::StorageFull,
            message: "full".into(),
            at: t,
        });
        assert!(matches!(
            convert(alert),
            Some(RecorderEvent::Alert {
                code: "STORAGE_FULL",
                ..
            })
        ));
    }
}
