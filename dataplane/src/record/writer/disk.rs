//! The writer's side facing the disk: submitting writes and syncs, what their completions
//! mean (a failed write is cut back to the last whole item), and the closing sequence
//! (drain, `mfra`, sync, close).

use super::*;

impl Writer {
    pub(super) fn next_op(&mut self, op: OpRef) -> u64 {
        self.next_op += 1;
        self.ops.insert(self.next_op, op);
        self.next_op
    }

    /// Submits what can go for every file: one write per idle file with queued items,
    /// closing steps.
    pub(crate) fn pump(&mut self, io: &mut dyn Io) {
        self.dirty.clear();
        let keys: Vec<u64> = self.files.keys().copied().collect();
        for key in keys {
            self.pump_file(key, io);
        }
    }

    pub(super) fn pump_file(&mut self, key: u64, io: &mut dyn Io) {
        let Some(after) = self.files.get(&key).map(|f| f.after) else {
            return;
        };
        let wait = after.and_then(|k| self.files.get(&k)).is_some_and(|prev| {
            prev.fragments == 0 && (prev.writing.is_some() || !prev.queue.is_empty())
        });
        let f = self.files.get_mut(&key).expect("checked above");
        if f.writing.is_none() && !f.queue.is_empty() && !wait {
            let mut items = Vec::new();
            let mut bufs = Vec::new();
            while let Some(item) = f.queue.front() {
                if !items.is_empty() && bufs.len() + item.bufs.len() > MAX_IOVECS {
                    break;
                }
                let mut item = f.queue.pop_front().expect("front exists");
                bufs.append(&mut item.bufs);
                items.push(item);
            }
            let (id, offset) = (f.id, f.written);
            f.writing = Some(items);
            let op = self.next_op(OpRef::Write { file: key });
            io.write(op, id, offset, bufs);
            return;
        }
        if f.busy() || !f.queue.is_empty() {
            return;
        }
        match f.closing {
            Closing::No => {}
            Closing::Draining(reason) => {
                if f.fragments == 0 {
                    // Nothing recorded (the first write failed): no file to keep.
                    let (id, path, next) = (f.id, f.path.clone(), f.next);
                    io.close(id);
                    let _ = std::fs::remove_file(&path);
                    self.files.remove(&key);
                    self.dirty.extend(next);
                    return;
                }
                let track = f.reference_track;
                match mp4::mfra(track, &f.keys) {
                    Ok(m) => {
                        let len = m.len() as u64;
                        f.queue.push_back(Item {
                            bufs: vec![Bytes::from(m)],
                            len,
                            kind: ItemKind::Mfra,
                        });
                        f.queued_end += len;
                        self.pump_file(key, io);
                    }
                    Err(e) => {
                        tracing::error!(path = %f.path.display(), error = %e, "cannot build the closing mfra");
                        f.closing = Closing::MfraDone(reason);
                        self.pump_file(key, io);
                    }
                }
            }
            Closing::MfraDone(reason) => {
                if self.settings.fsync.is_some() && f.synced < f.written {
                    let (id, upto) = (f.id, f.written);
                    f.syncing = true;
                    let op = self.next_op(OpRef::Sync { file: key, upto });
                    io.sync(op, id);
                    return;
                }
                let f = self.files.remove(&key).expect("present");
                io.close(f.id);
                self.dirty.extend(f.next);
                self.finish_close(f, reason);
            }
        }
    }

    pub(super) fn finish_close(&mut self, mut f: OpenFile, reason: CloseReason) {
        let (duration, end_time) = f.last_end.unwrap_or((Duration::ZERO, f.start));
        let entries: Vec<IndexEntry> = f.unreported.drain(..).collect();
        tracing::info!(camera_id = %f.camera, path = %f.path.display(), ?reason, duration_s = duration.as_secs_f64(), bytes = f.written, "recording file closed");
        self.emit(RecordingEvent::Closed(FileClosed {
            camera: f.camera.clone(),
            path: f.path,
            start: f.start,
            end_time,
            duration,
            size: f.written,
            entries,
            reason,
        }));
    }

    pub(super) fn close(&mut self, key: u64, reason: CloseReason) {
        if let Some(f) = self.files.get_mut(&key)
            && f.closing == Closing::No
        {
            f.closing = Closing::Draining(reason);
            self.dirty.push(key);
        }
    }

    /// Pumps the files something happened to since the last pump.
    pub(super) fn pump_dirty(&mut self, io: &mut dyn Io) {
        while let Some(key) = self.dirty.pop() {
            self.pump_file(key, io);
        }
    }

    /// Takes a finished write or sync.
    pub(crate) fn handle_completion(&mut self, now: Instant, c: Completion, io: &mut dyn Io) {
        match self.ops.remove(&c.op) {
            Some(OpRef::Write { file }) => self.write_done(now, file, c, io),
            Some(OpRef::Sync { file, upto }) => self.sync_done(now, file, upto, c.result),
            None => return,
        }
        self.pump_dirty(io);
    }

    pub(super) fn write_done(&mut self, now: Instant, key: u64, c: Completion, io: &mut dyn Io) {
        self.dirty.push(key);
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        self.dirty.extend(f.next);
        let items = f.writing.take().unwrap_or_default();
        let start = f.written;
        let mut good = 0u64;
        let mut failed: Vec<Item> = Vec::new();
        let mut opened = false;
        let mut mfra_written = false;
        for item in items {
            let whole = c.result.is_ok() || good + item.len <= c.written;
            if !failed.is_empty() || !whole {
                failed.push(item);
                continue;
            }
            good += item.len;
            match item.kind {
                ItemKind::Init => {}
                ItemKind::Mfra => mfra_written = true,
                ItemKind::Fragment { entry, key, .. } => {
                    f.fragments += 1;
                    opened |= f.fragments == 1;
                    let duration = entry.media_end().saturating_sub(f.origin);
                    f.last_end = Some((duration, entry.wall_end()));
                    if let Some(k) = key {
                        f.keys.push(k);
                    }
                    f.unreported.push_back(entry);
                }
            }
        }
        f.written = start + good;
        if mfra_written && let Closing::Draining(r) = f.closing {
            f.closing = Closing::MfraDone(r);
        }
        if opened {
            let ev = RecordingEvent::Opened(FileOpened {
                camera: f.camera.clone(),
                path: f.path.clone(),
                start: f.start,
                init_size: f.init_size,
            });
            tracing::info!(camera_id = %f.camera, path = %f.path.display(), "recording file opened");
            self.emit(ev);
        }
        let Err(e) = c.result else {
            if self.settings.fsync == Some(Duration::ZERO) {
                self.start_sync(key, io);
            }
            return;
        };
        // A failed write: cut the file back to its last whole item and drop the rest.
        let f = self.files.get_mut(&key).expect("present");
        let camera = f.camera.clone();
        let reason = if e.raw_os_error() == Some(libc::ENOSPC) {
            DropReason::DiskFull
        } else {
            DropReason::WriteError
        };
        if reason == DropReason::DiskFull {
            // Look at the free space again before the next fragment.
            self.space_checked = None;
        } else {
            tracing::error!(camera_id = %camera, path = %f.path.display(), error = %e, "recording write failed");
        }
        failed.extend(f.queue.drain(..));
        f.queued_end = f.written;
        let truncated = c.written <= good || io.truncate(f.id, f.written).is_ok();
        let mut dropped = (0u64, 0u64);
        let mut init_lost = false;
        for item in &failed {
            match item.kind {
                ItemKind::Fragment { .. } => {
                    dropped.0 += 1;
                    dropped.1 += item.len;
                }
                ItemKind::Init => init_lost = true,
                ItemKind::Mfra => {}
            }
        }
        let closing = f.closing;
        let last_wall = f.last_end.map(|(_, w)| w);
        match closing {
            Closing::Draining(r) if failed.iter().any(|i| matches!(i.kind, ItemKind::Mfra)) => {
                // The file ends without its mfra: repair will close it on the next start.
                f.closing = Closing::MfraDone(r);
            }
            _ => {}
        }
        if init_lost || !truncated {
            if !truncated {
                tracing::error!(path = %f.path.display(), "cannot cut a failed write back; file closed");
            }
            self.close(key, CloseReason::Failed);
            if let Some(cam) = self.cameras.get_mut(&camera)
                && cam.file == Some(key)
            {
                cam.file = None;
            }
        }
        if let Some(cam) = self.cameras.get_mut(&camera) {
            cam.last_wall_end = last_wall.or(cam.last_wall_end);
        }
        drop(failed);
        if dropped.0 > 0 {
            self.note_drop(&camera, dropped.0, dropped.1, reason, now);
        } else if let Some(cam) = self.cameras.get_mut(&camera) {
            cam.need_key = true;
        }
    }

    pub(super) fn start_sync(&mut self, key: u64, io: &mut dyn Io) {
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        if f.syncing || f.synced >= f.written {
            return;
        }
        f.syncing = true;
        let (id, upto) = (f.id, f.written);
        let op = self.next_op(OpRef::Sync { file: key, upto });
        io.sync(op, id);
    }

    pub(super) fn sync_done(&mut self, now: Instant, key: u64, upto: u64, result: io::Result<()>) {
        self.dirty.push(key);
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        f.syncing = false;
        f.last_sync = now;
        match result {
            Ok(()) => f.synced = f.synced.max(upto),
            Err(e) => {
                // After a failed fdatasync the kernel may have dropped the dirty pages: what
                // was written since the last good sync cannot be trusted. Close the file;
                // repair checks it on the next start.
                let camera = f.camera.clone();
                tracing::error!(camera_id = %camera, path = %f.path.display(), error = %e, "fdatasync failed; file closed");
                f.synced = f.synced.max(upto);
                self.close(key, CloseReason::Failed);
                if let Some(cam) = self.cameras.get_mut(&camera)
                    && cam.file == Some(key)
                {
                    cam.file = None;
                    cam.need_key = true;
                }
                let (kind, message) = if e.raw_os_error() == Some(libc::ENOSPC) {
                    (
                        AlertKind::StorageFull,
                        "the recordings file system is full (ENOSPC at fdatasync); file closed",
                    )
                } else {
                    (
                        AlertKind::RecordingFailed,
                        "fdatasync of a recording failed; file closed",
                    )
                };
                self.alert(&camera, kind, message, now);
            }
        }
    }
}
