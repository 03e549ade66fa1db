//! `/api/v1/analytics/*`: fleet figures from what the data plane reports (live statuses in
//! the cache, counts in the store), the data directory's disk usage, and recordings per
//! storage tier and per camera (from the store's rows, which retention keeps current).
//! Everything is within the caller's reach: admins see the fleet and the data directory;
//! a company sees its cameras' figures and no server path; a non-admin without a company
//! sees zeros.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::cameras::{DayQuery, parse_day, visible};
use super::extract::{Envelope, Path, Query, ok};
use super::guard::{Principal, Reach};
use crate::error::ApiError;
use crate::health::{self, DayAnalytics, LiveStatus};
use crate::state::AppState;
use crate::store::recordings::{Tier, TierUsage};
use crate::store::{CameraFilter, StreamStatus};

/// Online cameras summed into the dashboard's live figures (one cache read each).
const DASHBOARD_MAX_ONLINE: i64 = 1000;
/// Directory entries walked for storage usage before giving up (the result says so).
const MAX_WALK_ENTRIES: u64 = 1_000_000;

/// Fleet overview.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Dashboard {
    total_cameras: i64,
    active_cameras: i64,
    online_cameras: i64,
    error_cameras: i64,
    recording_cameras: i64,
    /// Viewers across online cameras.
    total_viewers: u64,
    /// Ingest bitrate across online cameras, bits per second.
    total_ingest_bitrate: u64,
    /// Frames dropped across online cameras (since each stream started).
    total_dropped_frames: u64,
}

/// Live status plus the day's counters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CameraMetrics {
    live: LiveStatus,
    day: DayAnalytics,
}

/// Disk use of one top-level entry of the data directory.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DirUsage {
    name: String,
    bytes: u64,
    files: u64,
}

/// Disk use of the data directory, and recordings per tier and camera.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StorageUsage {
    /// The data directory (admins only; `null` for others).
    data_dir: Option<String>,
    /// Admins: every file under the data directory. Others: their recordings.
    total_bytes: u64,
    /// Same rule as `totalBytes`.
    files: u64,
    /// Per top-level entry of the data directory, largest first (admins only).
    entries: Vec<DirUsage>,
    /// Whether the walk stopped at its entry limit (figures are then lower bounds).
    truncated: bool,
    /// Recording files and bytes per tier (every tier listed, configured or not).
    tiers: Vec<TierTotal>,
    /// Recording files and bytes per camera, largest first.
    cameras: Vec<CameraUsage>,
}

/// Recordings on one tier.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TierTotal {
    tier: Option<Tier>,
    bytes: i64,
    files: i64,
}

/// One camera's recordings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CameraUsage {
    camera_id: String,
    bytes: i64,
    files: i64,
    /// Per tier the camera has files on.
    tiers: Vec<TierTotal>,
}

fn recording_usage(rows: Vec<TierUsage>) -> (Vec<TierTotal>, Vec<CameraUsage>) {
    let mut tiers: Vec<TierTotal> = Tier::ALL
        .into_iter()
        .map(|t| TierTotal {
            tier: Some(t),
            ..TierTotal::default()
        })
        .collect();
    let mut cameras: Vec<CameraUsage> = Vec::new();
    for r in rows {
        if let Some(t) = tiers.iter_mut().find(|t| t.tier == Some(r.tier)) {
            t.bytes += r.bytes;
            t.files += r.files;
        }
        let cam = match cameras.iter_mut().position(|c| c.camera_id == r.camera_id) {
            Some(i) => &mut cameras[i],
            None => {
                cameras.push(CameraUsage {
                    camera_id: r.camera_id.clone(),
                    bytes: 0,
                    files: 0,
                    tiers: Vec::new(),
                });
                cameras.last_mut().expect("just pushed")
            }
        };
        cam.bytes += r.bytes;
        cam.files += r.files;
        cam.tiers.push(TierTotal {
            tier: Some(r.tier),
            bytes: r.bytes,
            files: r.files,
        });
    }
    cameras.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.camera_id.cmp(&b.camera_id)));
    (tiers, cameras)
}

/// Fleet overview.
#[utoipa::path(get, path = "/api/v1/analytics/dashboard", operation_id = "getDashboard", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, description = "Overview", body = Envelope<Dashboard>)))]
pub(crate) async fn dashboard(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let Some(tenant) = principal.reach().filter() else {
        return Ok(ok(Dashboard {
            total_cameras: 0,
            active_cameras: 0,
            online_cameras: 0,
            error_cameras: 0,
            recording_cameras: 0,
            total_viewers: 0,
            total_ingest_bitrate: 0,
            total_dropped_frames: 0,
        })
        .into_response());
    };
    let counts = state.store.camera_counts(tenant).await?;
    let (online, _) = state
        .store
        .list_cameras(&CameraFilter {
            status: Some(StreamStatus::Online),
            tenant: tenant.map(str::to_owned),
            limit: DASHBOARD_MAX_ONLINE,
            ..CameraFilter::default()
        })
        .await?;
    let mut d = Dashboard {
        total_cameras: counts.total,
        active_cameras: counts.active,
        online_cameras: counts.online,
        error_cameras: counts.error,
        recording_cameras: counts.recording,
        total_viewers: 0,
        total_ingest_bitrate: 0,
        total_dropped_frames: 0,
    };
    for c in online {
        let live = health::live_status(&*state.cache, &c.id, c.stream_status).await?;
        d.total_viewers += u64::from(live.viewer_count);
        d.total_ingest_bitrate += live.bitrate;
        d.total_dropped_frames += live.dropped_frames;
    }
    Ok(ok(d).into_response())
}

/// One camera's live metrics and day counters.
#[utoipa::path(get, path = "/api/v1/analytics/cameras/{id}/metrics", operation_id = "getCameraMetrics", tag = "analytics", security(("bearer" = [])),
    params(("id" = String, Path, description = "Camera id"), DayQuery),
    responses(
        (status = 200, description = "Metrics", body = Envelope<CameraMetrics>),
        (status = 404, description = "CAMERA_NOT_FOUND", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn camera_metrics(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<DayQuery>,
) -> Result<Response, ApiError> {
    let c = visible(&state, &principal, &id).await?;
    let day = parse_day(q.date)?;
    let live = health::live_status(&*state.cache, &c.id, c.stream_status).await?;
    let day = health::day_analytics(&*state.cache, &c.id, &day).await?;
    Ok(ok(CameraMetrics { live, day }).into_response())
}

/// Disk use of the data directory; recordings per tier and per camera.
#[utoipa::path(get, path = "/api/v1/analytics/storage/usage", operation_id = "getStorageUsage", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, description = "Usage", body = Envelope<StorageUsage>)))]
pub(crate) async fn storage_usage(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let usage = match principal.reach() {
        Reach::All => {
            let dir = state.config.data_dir.clone();
            let mut usage = tokio::task::spawn_blocking(move || walk(&dir))
                .await
                .map_err(ApiError::internal)?;
            (usage.tiers, usage.cameras) =
                recording_usage(state.store.recording_usage(None).await?);
            usage
        }
        Reach::Company(t) => tenant_usage(state.store.recording_usage(Some(t)).await?),
        Reach::Nothing => tenant_usage(Vec::new()),
    };
    Ok(ok(usage).into_response())
}

/// A company's usage: its recordings only, no server paths.
fn tenant_usage(rows: Vec<TierUsage>) -> StorageUsage {
    let (tiers, cameras) = recording_usage(rows);
    let total_bytes = tiers.iter().map(|t| t.bytes).sum::<i64>();
    let files = tiers.iter().map(|t| t.files).sum::<i64>();
    StorageUsage {
        data_dir: None,
        total_bytes: u64::try_from(total_bytes).unwrap_or(0),
        files: u64::try_from(files).unwrap_or(0),
        entries: Vec::new(),
        truncated: false,
        tiers,
        cameras,
    }
}

/// Sums file sizes under `root` without following symlinks.
fn walk(root: &FsPath) -> StorageUsage {
    let mut budget = MAX_WALK_ENTRIES;
    let mut entries = Vec::new();
    let (mut total, mut files) = (0u64, 0u64);
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let (bytes, n) = size_of(&e.path(), &mut budget);
            total += bytes;
            files += n;
            entries.push(DirUsage {
                name: e.file_name().to_string_lossy().into_owned(),
                bytes,
                files: n,
            });
        }
    }
    entries.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    StorageUsage {
        data_dir: Some(root.display().to_string()),
        total_bytes: total,
        files,
        entries,
        truncated: budget == 0,
        tiers: Vec::new(),
        cameras: Vec::new(),
    }
}

fn size_of(path: &FsPath, budget: &mut u64) -> (u64, u64) {
    let mut stack: Vec<PathBuf> = vec![path.to_owned()];
    let (mut bytes, mut files) = (0u64, 0u64);
    while let Some(p) = stack.pop() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_file() {
            bytes += meta.len();
            files += 1;
        } else if meta.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    (bytes, files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_the_tree() {
        let root = std::env::temp_dir().join(format!("cp-walk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("rec/cam1")).unwrap();
        std::fs::write(root.join("rec/cam1/a.mp4"), vec![0u8; 1000]).unwrap();
        std::fs::write(root.join("rec/b.mp4"), vec![0u8; 500]).unwrap();
        std::fs::write(root.join("camstream.db"), vec![0u8; 100]).unwrap();
        let u = walk(&root);
        assert_eq!(u.total_bytes, 1600);
        assert_eq!(u.files, 3);
        assert_eq!(u.entries[0].name, "rec");
        assert_eq!(u.entries[0].bytes, 1500);
        assert!(!u.truncated);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn recording_usage_sums_tiers_and_cameras() {
        let row = |c: &str, t: Tier, bytes: i64, files: i64| TierUsage {
            camera_id: c.into(),
            tier: t,
            bytes,
            files,
        };
        let (tiers, cams) = recording_usage(vec![
            row("a", Tier::Hot, 100, 2),
            row("a", Tier::Archived, 1000, 3),
            row("b", Tier::Hot, 50, 1),
        ]);
        assert_eq!(tiers.len(), 4);
        assert_eq!((tiers[0].bytes, tiers[0].files), (150, 3));
        assert_eq!((tiers[1].bytes, tiers[1].files), (0, 0));
        assert_eq!((tiers[3].bytes, tiers[3].files), (1000, 3));
        assert_eq!(cams[0].camera_id, "a");
        assert_eq!(
            (cams[0].bytes, cams[0].files, cams[0].tiers.len()),
            (1100, 5, 2)
        );
        assert_eq!(cams[1].camera_id, "b");
    }
}
