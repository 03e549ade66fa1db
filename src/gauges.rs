//! Per-camera stream gauges and the recordings file system's usage in `/metrics`, updated
//! once a second by `report_health` (main.rs). The alerting rules and dashboards in
//! `deploy/` use these names; `tests/deploy` checks that a live server exports them.
//!
//! Per-camera series carry a `camera_id` label. A camera that leaves the data plane's
//! health list keeps its series with `camstream_stream_online 0` and zero rates (the
//! exporter has no removal), so the number of series is bounded by the cameras ever
//! published on this process.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use camstream_protocol::{StreamHealth, StreamState};

/// What `report_health` keeps between ticks.
pub(crate) struct Gauges {
    recordings_dir: PathBuf,
    labelled: HashSet<String>,
    statvfs_failed: bool,
}

impl Gauges {
    /// Call after the control plane installed the metrics recorder (the descriptions go
    /// to it).
    pub(crate) fn new(recordings_dir: PathBuf) -> Self {
        for (name, help) in [
            (
                "camstream_stream_online",
                "1 while the camera publishes to this node",
            ),
            (
                "camstream_stream_fps",
                "Video frames per second over the last second",
            ),
            (
                "camstream_stream_bitrate_bps",
                "Ingest bitrate over the last second, bits/s",
            ),
            (
                "camstream_stream_viewers",
                "HLS viewers of the camera on this node",
            ),
            (
                "camstream_storage_free_bytes",
                "Bytes still writable on the recordings file system",
            ),
            (
                "camstream_storage_size_bytes",
                "Size of the recordings file system",
            ),
        ] {
            metrics::describe_gauge!(name, help);
        }
        metrics::describe_counter!(
            "camstream_stream_dropped_frames_total",
            "Frames dropped since the camera's current publish started"
        );
        Self {
            recordings_dir,
            labelled: HashSet::new(),
            statvfs_failed: false,
        }
    }

    /// Sets every gauge from one health sample; returns the recordings file system's used
    /// share when it could be read.
    pub(crate) fn update(&mut self, health: &[StreamHealth]) -> Option<f64> {
        let mut seen = HashSet::with_capacity(health.len());
        for h in health {
            let id = h.camera_id.clone();
            let online = h.state == StreamState::Online;
            metrics::gauge!("camstream_stream_online", "camera_id" => id.clone()).set(if online {
                1.0
            } else {
                0.0
            });
            metrics::gauge!("camstream_stream_fps", "camera_id" => id.clone()).set(if online {
                f64::from(h.fps)
            } else {
                0.0
            });
            metrics::gauge!("camstream_stream_bitrate_bps", "camera_id" => id.clone())
                .set(if online { h.bitrate_bps as f64 } else { 0.0 });
            metrics::gauge!("camstream_stream_viewers", "camera_id" => id.clone())
                .set(f64::from(h.viewers));
            // Since the publish started: a new publish is a counter reset, which rate()
            // handles per series.
            metrics::counter!("camstream_stream_dropped_frames_total", "camera_id" => id.clone())
                .absolute(h.dropped_frames);
            seen.insert(id);
        }
        for gone in self.labelled.difference(&seen) {
            for name in [
                "camstream_stream_online",
                "camstream_stream_fps",
                "camstream_stream_bitrate_bps",
                "camstream_stream_viewers",
            ] {
                metrics::gauge!(name, "camera_id" => gone.clone()).set(0.0);
            }
        }
        self.labelled.extend(seen);

        match disk_usage(&self.recordings_dir) {
            Ok(u) => {
                self.statvfs_failed = false;
                metrics::gauge!("camstream_storage_used_ratio", "tier" => "hot")
                    .set(u.used_ratio());
                metrics::gauge!("camstream_storage_free_bytes", "tier" => "hot").set(u.free as f64);
                metrics::gauge!("camstream_storage_size_bytes", "tier" => "hot").set(u.size as f64);
                Some(u.used_ratio())
            }
            // The directory appears with the first recording; until then nothing to report.
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                if !self.statvfs_failed {
                    tracing::warn!(dir = %self.recordings_dir.display(), error = %e, "statvfs of the recordings directory failed");
                }
                self.statvfs_failed = true;
                None
            }
        }
    }
}

/// A file system's size and room, as `df` counts them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DiskUsage {
    /// Bytes in use (all blocks minus free blocks).
    pub(crate) used: u64,
    /// Bytes an unprivileged process may still write.
    pub(crate) free: u64,
    /// Total size in bytes.
    pub(crate) size: u64,
}

impl DiskUsage {
    /// Used over what unprivileged users can have (used + available), like `df`'s `Use%`:
    /// the root reserve does not count as room, so 1.0 means writes start failing.
    pub(crate) fn used_ratio(&self) -> f64 {
        let room = self.used.saturating_add(self.free);
        if room == 0 {
            0.0
        } else {
            self.used as f64 / room as f64
        }
    }
}

/// `statvfs(2)` of the file system holding `path`.
///
/// # Errors
/// The `statvfs` error (`NotFound` when `path` does not exist).
pub(crate) fn disk_usage(path: &Path) -> io::Result<DiskUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value for it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `s` a valid out-pointer.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = s.f_frsize as u64;
    let blocks = s.f_blocks as u64;
    let bfree = s.f_bfree as u64;
    Ok(DiskUsage {
        used: blocks.saturating_sub(bfree).saturating_mul(frsize),
        free: (s.f_bavail as u64).saturating_mul(frsize),
        size: blocks.saturating_mul(frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_ratio_counts_the_root_reserve_as_used_room() {
        let u = DiskUsage {
            used: 90,
            free: 10,
            size: 105,
        };
        assert!((u.used_ratio() - 0.9).abs() < 1e-9);
        let empty = DiskUsage {
            used: 0,
            free: 0,
            size: 0,
        };
        assert_eq!(empty.used_ratio(), 0.0);
    }

    #[test]
    fn disk_usage_of_a_real_directory() {
        let u = disk_usage(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(u.size > 0 && u.free <= u.size && u.used <= u.size, "{u:?}");
        let r = u.used_ratio();
        assert!((0.0..=1.0).contains(&r), "{r}");
        let e = disk_usage(Path::new("/nonexistent/camstream")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
