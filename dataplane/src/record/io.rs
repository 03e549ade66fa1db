//! The recorder's file I/O edge: one [`Io`] per writer thread, either io_uring
//! ([`super::uring::Uring`]) or the plain `std::fs` fallback ([`StdIo`]).
//!
//! Writes and syncs are submitted and complete later ([`Io::wait`]); the writer core keeps
//! at most one write in flight per file, so a file grows strictly in order and a failed
//! write can be cut back to the last good offset. Opening, truncating and closing are rare
//! (once per chunk, or after a failure) and done synchronously with `std::fs` on the writer
//! thread, never on a runtime thread.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

/// A file the I/O layer holds open.
pub(crate) type FileId = u32;

/// A finished write or sync.
#[derive(Debug)]
pub(crate) struct Completion {
    /// The id given at submission.
    pub(crate) op: u64,
    /// Bytes written (writes; 0 for syncs). On error, how far the write got before it.
    pub(crate) written: u64,
    /// `Ok` when the whole write (or the sync) succeeded.
    pub(crate) result: io::Result<()>,
}

/// File I/O for one writer thread.
pub(crate) trait Io {
    /// Short name for logs and benchmarks.
    fn name(&self) -> &'static str;
    /// Creates a new file (`O_EXCL`: never reuses an existing one).
    ///
    /// # Errors
    /// The `open(2)` error (`EEXIST` when the name is taken).
    fn create(&mut self, path: &Path) -> io::Result<FileId>;
    /// Cuts a file to `len` bytes. No write may be in flight on it.
    ///
    /// # Errors
    /// The `ftruncate(2)` error.
    fn truncate(&mut self, file: FileId, len: u64) -> io::Result<()>;
    /// Closes a file. Nothing may be in flight on it.
    fn close(&mut self, file: FileId);
    /// Submits a write of `bufs`, in order, at `offset`. The buffers are held until the
    /// completion is returned. A short write is continued until done or an error.
    fn write(&mut self, op: u64, file: FileId, offset: u64, bufs: Vec<Bytes>);
    /// Submits an `fdatasync`.
    fn sync(&mut self, op: u64, file: FileId);
    /// Pushes finished operations to `out`, waiting up to `timeout` for the first one when
    /// something is in flight and nothing has finished yet.
    fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion>);
    /// Operations submitted and not yet returned by [`Io::wait`].
    fn in_flight(&self) -> usize;
}

/// Opens a new file for writing, failing if it exists.
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
}

/// A slab of open files indexed by [`FileId`].
#[derive(Default)]
pub(crate) struct Files {
    slots: Vec<Option<File>>,
    free: Vec<FileId>,
}

impl Files {
    pub(crate) fn insert(&mut self, f: File) -> FileId {
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(f);
                id
            }
            None => {
                self.slots.push(Some(f));
                (self.slots.len() - 1) as FileId
            }
        }
    }

    pub(crate) fn get(&self, id: FileId) -> io::Result<&File> {
        self.slots
            .get(id as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file id not open"))
    }

    pub(crate) fn remove(&mut self, id: FileId) {
        if let Some(slot) = self.slots.get_mut(id as usize)
            && slot.take().is_some()
        {
            self.free.push(id);
        }
    }
}

/// Blocking `std::fs` I/O: each write is a `writev` loop done at submission; its completion
/// is handed back by the next [`Io::wait`].
#[derive(Default)]
pub(crate) struct StdIo {
    files: Files,
    done: VecDeque<Completion>,
}

impl StdIo {
    /// A fallback with no files open.
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

/// Writes every byte of `bufs` at the file's current position; returns how many were
/// written before an error.
fn write_all_vectored(mut f: &File, bufs: &[Bytes]) -> (u64, io::Result<()>) {
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    let mut written = 0u64;
    while !rest.is_empty() {
        match f.write_vectored(rest) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

impl Io for StdIo {
    fn name(&self) -> &'static str {
        "std::fs"
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
        let (written, result) = match self.files.get(file) {
            Ok(mut f) => match f.seek(SeekFrom::Start(offset)) {
                Ok(_) => write_all_vectored(f, &bufs),
                Err(e) => (0, Err(e)),
            },
            Err(e) => (0, Err(e)),
        };
        self.done.push_back(Completion {
            op,
            written,
            result,
        });
    }

    fn sync(&mut self, op: u64, file: FileId) {
        let result = self.files.get(file).and_then(File::sync_data);
        self.done.push_back(Completion {
            op,
            written: 0,
            result,
        });
    }

    fn wait(&mut self, _timeout: Duration, out: &mut Vec<Completion>) {
        out.extend(self.done.drain(..));
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }
}
