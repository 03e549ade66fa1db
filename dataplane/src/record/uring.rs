//! io_uring file I/O for one writer thread: one ring, `writev` straight from the fragments'
//! `Bytes` (the iovecs point into them; they are held until the completion), and `fsync`
//! with `IORING_FSYNC_DATASYNC`.
//!
//! All submissions of a loop turn go to the kernel in one `io_uring_enter`, which is where the
//! gain over one `writev(2)` per fragment comes from with many cameras. The wait for
//! completions has a timeout (`IORING_ENTER_EXT_ARG`, Linux 5.11) so the writer thread goes
//! back to its channel every few milliseconds; a kernel without it gets the `std::fs`
//! fallback instead.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use io_uring::types::{Fd, FsyncFlags, SubmitArgs, Timespec};
use io_uring::{IoUring, opcode, squeue};

use super::io::{Completion, FileId, Files, Io, create_file};

/// Submission queue entries: more than the writes and syncs one thread ever has in flight
/// (one write and one sync per open file); a full queue is flushed and retried.
const RING_ENTRIES: u32 = 256;

enum Kind {
    Write {
        /// Keeps the memory the iovecs point into alive until the completion.
        _bufs: Vec<Bytes>,
        iov: Vec<libc::iovec>,
        /// First iovec not completely written.
        first: usize,
        fd: i32,
        offset: u64,
        total: u64,
        done: u64,
    },
    Sync,
}

/// io_uring I/O. See the module docs.
pub(crate) struct Uring {
    ring: IoUring,
    files: Files,
    ops: HashMap<u64, Kind>,
    /// Completions found while submitting (a failed push), handed out by the next wait.
    early: Vec<Completion>,
}

impl Uring {
    /// A ring, if this kernel and process may have one with the features used here.
    ///
    /// # Errors
    /// `io_uring_setup` failed (old kernel, `io_uring_disabled`, seccomp), or the kernel
    /// lacks `IORING_FEAT_EXT_ARG`.
    pub(crate) fn new() -> io::Result<Self> {
        Self::with_entries(RING_ENTRIES)
    }

    /// [`Uring::new`] with a given submission queue size.
    ///
    /// # Errors
    /// As [`Uring::new`]; also `EINVAL` for a size the kernel refuses.
    pub(crate) fn with_entries(entries: u32) -> io::Result<Self> {
        // Only this thread submits and it reaps in `io_uring_enter`: completion work can run
        // then instead of interrupting it (Linux 6.1; measured about a third less CPU per
        // MB in the recorder bench). Older kernels get a plain ring.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries))?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without IORING_FEAT_EXT_ARG (Linux < 5.11)",
            ));
        }
        Ok(Self {
            ring,
            files: Files::default(),
            ops: HashMap::new(),
            early: Vec::new(),
        })
    }

    fn push(&mut self, op: u64, entry: &squeue::Entry) {
        let entry = entry.clone().user_data(op);
        for _ in 0..2 {
            // SAFETY: every pointer in the entry (iovec array, buffers) is owned by
            // `self.ops[op]`, which is kept until the completion is reaped; `Drop` waits
            // for all of them.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // Full: hand what is queued to the kernel and try once more.
            let _ = self.ring.submit();
        }
        let kind = self.ops.remove(&op);
        let written = match kind {
            Some(Kind::Write { done, .. }) => done,
            _ => 0,
        };
        self.early.push(Completion {
            op,
            written,
            result: Err(io::Error::other("io_uring submission queue stays full")),
        });
    }

    fn write_entry(fd: i32, iov: &[libc::iovec], offset: u64) -> squeue::Entry {
        opcode::Writev::new(Fd(fd), iov.as_ptr(), iov.len() as u32)
            .offset(offset)
            .build()
    }

    /// Handles one completion queue entry: a finished op goes to `out`, a short write is
    /// continued.
    fn complete(&mut self, op: u64, res: i32, out: &mut Vec<Completion>) {
        let Some(kind) = self.ops.get_mut(&op) else {
            return;
        };
        match kind {
            Kind::Sync => {
                self.ops.remove(&op);
                out.push(Completion {
                    op,
                    written: 0,
                    result: if res < 0 {
                        Err(io::Error::from_raw_os_error(-res))
                    } else {
                        Ok(())
                    },
                });
            }
            Kind::Write {
                iov,
                first,
                fd,
                offset,
                total,
                done,
                ..
            } => {
                let result = match res {
                    r if r < 0 => Some(Err(io::Error::from_raw_os_error(-r))),
                    0 => Some(Err(io::ErrorKind::WriteZero.into())),
                    r => {
                        *done += r as u64;
                        if *done >= *total {
                            Some(Ok(()))
                        } else {
                            // A short write: continue after what was written.
                            let mut skip = r as usize;
                            while skip > 0 && *first < iov.len() {
                                let v = &mut iov[*first];
                                if skip >= v.iov_len {
                                    skip -= v.iov_len;
                                    *first += 1;
                                } else {
                                    v.iov_base = (v.iov_base as *mut u8).wrapping_add(skip).cast();
                                    v.iov_len -= skip;
                                    skip = 0;
                                }
                            }
                            None
                        }
                    }
                };
                match result {
                    Some(result) => {
                        let written = *done;
                        self.ops.remove(&op);
                        out.push(Completion {
                            op,
                            written,
                            result,
                        });
                    }
                    None => {
                        let entry = Self::write_entry(*fd, &iov[*first..], *offset + *done);
                        self.push(op, &entry);
                    }
                }
            }
        }
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.early);
        loop {
            let batch: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            if batch.is_empty() {
                break;
            }
            for (op, res) in batch {
                self.complete(op, res, out);
            }
        }
    }
}

impl Io for Uring {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn create(&mut self, path: &Path) -> io::Result<FileId> {
        Ok(self.files.insert(create_file(path)?))
    }

    fn truncate(&mut self, file: FileId, len: u64) -> io::Result<()> {
        self.files.get(file)?.set_len(len)
    }

    fn close(&mut self, file: FileId) {
        self.files.remove(file);
    }

    fn write(&mut self, op: u64, file: FileId, offset: u64, bufs: Vec<Bytes>) {
        let fd = match self.files.get(file) {
            Ok(f) => f.as_raw_fd(),
            Err(e) => {
                self.early.push(Completion {
                    op,
                    written: 0,
                    result: Err(e),
                });
                return;
            }
        };
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        let total = bufs.iter().map(|b| b.len() as u64).sum();
        let entry = Self::write_entry(fd, &iov, offset);
        self.ops.insert(
            op,
            Kind::Write {
                _bufs: bufs,
                iov,
                first: 0,
                fd,
                offset,
                total,
                done: 0,
            },
        );
        self.push(op, &entry);
    }

    fn sync(&mut self, op: u64, file: FileId) {
        let fd = match self.files.get(file) {
            Ok(f) => f.as_raw_fd(),
            Err(e) => {
                self.early.push(Completion {
                    op,
                    written: 0,
                    result: Err(e),
                });
                return;
            }
        };
        let entry = opcode::Fsync::new(Fd(fd))
            .flags(FsyncFlags::DATASYNC)
            .build();
        self.ops.insert(op, Kind::Sync);
        self.push(op, &entry);
    }

    fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion>) {
        let before = out.len();
        self.reap(out);
        if self.ops.is_empty() {
            return;
        }
        // Always an enter that gets events, with a zero timeout when not waiting: with
        // DEFER_TASKRUN, completions are only posted by such an enter.
        let timeout = if out.len() > before {
            Duration::ZERO
        } else {
            timeout
        };
        let ts = Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = SubmitArgs::new().timespec(&ts);
        let r = self.ring.submitter().submit_with_args(1, &args);
        if let Err(e) = r {
            // ETIME: the timeout passed; EINTR: a signal. Anything else is retried next turn.
            if !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY)
            ) {
                tracing::warn!(error = %e, "io_uring_enter failed");
            }
        }
        self.reap(out);
    }

    fn in_flight(&self) -> usize {
        self.ops.len() + self.early.len()
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // The kernel may still read from buffers owned by `ops`: wait for every operation
        // before they are freed.
        let mut sink = Vec::new();
        while !self.ops.is_empty() {
            if let Err(e) = self.ring.submit_and_wait(1)
                && e.raw_os_error() != Some(libc::EINTR)
            {
                tracing::error!(error = %e, "io_uring: cannot wait for in-flight writes");
                // Leak the buffers rather than free memory the kernel may still read.
                std::mem::forget(std::mem::take(&mut self.ops));
                return;
            }
            self.reap(&mut sink);
        }
    }
}
