//! The writer's periodic and pressure work: free space, drops and their reports, alerts,
//! progress events, fsync timing, stopped and idle cameras.

use super::*;

impl Writer {
    /// Publisher-side drops (queue full) since the last look.
    pub(super) fn take_publisher_drops(&mut self, queue: &CameraQueue, now: Instant) {
        let n = queue.dropped.swap(0, Ordering::AcqRel);
        if n == 0 {
            return;
        }
        let bytes = queue.dropped_bytes.swap(0, Ordering::AcqRel);
        let camera = queue.camera.clone();
        self.note_drop(&camera, n, bytes, DropReason::QueueFull, now);
    }

    pub(super) fn drop_fragment(
        &mut self,
        camera: &CameraId,
        bytes: u64,
        reason: DropReason,
        now: Instant,
    ) {
        self.note_drop(camera, 1, bytes, reason, now);
    }

    /// Counts dropped fragments, starts a drop episode (skip to the next keyframe) and
    /// raises the alert for the reason.
    pub(super) fn note_drop(
        &mut self,
        camera: &CameraId,
        fragments: u64,
        bytes: u64,
        reason: DropReason,
        now: Instant,
    ) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        if cam.pending_drop.reason.is_some_and(|r| r != reason) {
            self.flush_drops(camera, now);
        }
        let cam = self.cameras.get_mut(camera).expect("checked above");
        cam.need_key = true;
        cam.dropping = Some(reason);
        cam.dropped_total += fragments;
        cam.pending_drop.fragments += fragments;
        cam.pending_drop.bytes += bytes;
        cam.pending_drop.reason = Some(reason);
        let (kind, message) = match reason {
            DropReason::QueueFull => (
                AlertKind::RecordingFailed,
                "recording queue full: the disk is slower than the camera; fragments dropped",
            ),
            DropReason::LowSpace => (
                AlertKind::StorageFull,
                "free space on the recordings file system is below the threshold; fragments dropped",
            ),
            DropReason::DiskFull => (
                AlertKind::StorageFull,
                "the recordings file system is full (ENOSPC); fragments dropped",
            ),
            DropReason::WriteError => (
                AlertKind::RecordingFailed,
                "writing the recording failed; fragments dropped",
            ),
        };
        self.alert(camera, kind, message, now);
        let first_report = self
            .cameras
            .get(camera)
            .is_some_and(|c| c.last_drop_report.is_none());
        if first_report {
            self.flush_drops(camera, now);
        }
    }

    /// Raises an alert unless the same one went out for this camera within a minute.
    pub(super) fn alert(
        &mut self,
        camera: &CameraId,
        kind: AlertKind,
        message: &str,
        now: Instant,
    ) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        let due = cam
            .alerted
            .get(&kind)
            .is_none_or(|at| now.duration_since(*at) >= ALERT_REPEAT);
        if !due {
            return;
        }
        cam.alerted.insert(kind, now);
        tracing::warn!(camera_id = %camera, alert = kind.code(), "{message}");
        self.emit(RecordingEvent::Alert(RecordingAlert {
            camera: camera.clone(),
            kind,
            message: message.to_owned(),
            at: SystemTime::now(),
        }));
    }

    pub(super) fn flush_drops(&mut self, camera: &CameraId, now: Instant) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        let p = std::mem::take(&mut cam.pending_drop);
        let Some(reason) = p.reason else { return };
        cam.last_drop_report = Some(now);
        let total = cam.dropped_total;
        self.emit(RecordingEvent::Dropped(FragmentsDropped {
            camera: camera.clone(),
            fragments: p.fragments,
            bytes: p.bytes,
            total,
            reason,
        }));
    }

    /// Periodic work: free space, fsyncs, progress, drop reports, idle and stopped cameras.
    /// Call it every loop turn; it does its work at most every [`MIN_TICK`].
    pub(crate) fn handle_tick(&mut self, now: Instant, io: &mut dyn Io) {
        if !self.shutting_down
            && self
                .last_tick
                .is_some_and(|t| now.duration_since(t) < MIN_TICK)
        {
            return;
        }
        self.last_tick = Some(now);
        self.maybe_check_space(now);
        self.report_drops(now, self.shutting_down);
        let recording = self.recording.load_full();
        let mut stop = Vec::new();
        for (id, cam) in &self.cameras {
            let idle = now.duration_since(cam.last_fragment) >= self.settings.idle_close;
            if let Some(key) = cam.file {
                if !recording.contains(id) {
                    stop.push((id.clone(), key, CloseReason::Stopped));
                } else if idle {
                    stop.push((id.clone(), key, CloseReason::Idle));
                }
            }
        }
        for (id, key, reason) in stop {
            self.close(key, reason);
            if let Some(cam) = self.cameras.get_mut(&id) {
                cam.file = None;
                cam.need_key = true;
                if reason == CloseReason::Stopped {
                    // A later recording starts fresh: no gap back to this one.
                    cam.last_wall_end = None;
                }
            }
        }
        // Forget cameras with nothing open, nothing to report and no recent media.
        let idle_close = self.settings.idle_close;
        self.cameras.retain(|_, c| {
            c.file.is_some()
                || c.pending_drop.reason.is_some()
                || now.duration_since(c.last_fragment) < idle_close.max(ALERT_REPEAT)
        });
        let keys: Vec<u64> = self.files.keys().copied().collect();
        for key in keys {
            let f = &self.files[&key];
            let sync_due = self
                .settings
                .fsync
                .is_some_and(|every| now.duration_since(f.last_sync) >= every);
            if sync_due {
                self.start_sync(key, io);
            }
            let f = &self.files[&key];
            if now.duration_since(f.last_progress) >= self.settings.progress {
                self.progress(key, now);
            }
        }
        self.pump(io);
    }

    /// Looks at the free space when due (every second, after ENOSPC, or when the threshold
    /// changed).
    pub(super) fn maybe_check_space(&mut self, now: Instant) {
        let min = self.settings.min_free.load(Ordering::Relaxed);
        let due = self
            .space_checked
            .is_none_or(|t| now.duration_since(t) >= SPACE_CHECK);
        if due || min != self.checked_min {
            self.space_checked = Some(now);
            self.checked_min = min;
            self.check_space(min);
        }
    }

    /// Collects the publishers' drop counts and reports pending drops that are due (all of
    /// them with `all`).
    pub(super) fn report_drops(&mut self, now: Instant, all: bool) {
        let queues: Vec<Arc<CameraQueue>> =
            self.cameras.values().map(|c| c.queue.clone()).collect();
        for q in queues {
            self.take_publisher_drops(&q, now);
        }
        let due: Vec<CameraId> = self
            .cameras
            .iter()
            .filter(|(_, c)| {
                c.pending_drop.reason.is_some()
                    && (all
                        || c.last_drop_report
                            .is_none_or(|t| now.duration_since(t) >= DROP_REPORT))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.flush_drops(&id, now);
        }
    }

    pub(super) fn check_space(&mut self, min: u64) {
        match free_space(&self.settings.dir) {
            Ok(free) => {
                let was = self.low_space;
                // Hysteresis: recover 5 % above the threshold, not on the first byte freed.
                self.low_space = if was {
                    free < min.saturating_add(min / 20)
                } else {
                    free < min
                };
                if self.low_space != was {
                    if self.low_space {
                        tracing::warn!(
                            free,
                            min,
                            "recordings file system below the free-space threshold; recording paused"
                        );
                    } else {
                        tracing::info!(free, min, "recordings file system has room again");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(dir = %self.settings.dir.display(), error = %e, "statvfs failed")
            }
        }
    }

    /// Reports the durable (synced, or written with fsync off) index entries of a file.
    pub(super) fn progress(&mut self, key: u64, now: Instant) {
        let fsync = self.settings.fsync.is_some();
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        let durable = if fsync { f.synced } else { f.written };
        let mut entries = Vec::new();
        while f
            .unreported
            .front()
            .is_some_and(|e| e.offset + e.size <= durable)
        {
            entries.push(f.unreported.pop_front().expect("front exists"));
        }
        let Some(last) = entries.last() else {
            return;
        };
        f.last_progress = now;
        let ev = RecordingEvent::Progress(FileProgress {
            camera: f.camera.clone(),
            path: f.path.clone(),
            duration: last.media_end().saturating_sub(f.origin),
            size: last.offset + last.size,
            end_time: last.wall_end(),
            entries,
        });
        self.emit(ev);
    }
}

/// Free bytes for unprivileged users on the file system holding `path` (`statvfs`).
///
/// # Errors
/// The `statvfs(2)` error.
pub(crate) fn free_space(path: &Path) -> io::Result<u64> {
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
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}
