//! Small files replaced atomically (vote, committed, snapshot): written whole to `NAME.tmp`,
//! fsynced, renamed over `NAME`, then the directory is fsynced so the rename itself survives a
//! crash. A reader sees the old file or the new one, never a mix; the record checksums catch
//! anything else (a disk that lies).
//!
//! These are blocking calls: the async stores run them on the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::record;

/// Makes a rename or a new file in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` with one file holding `payloads` as records.
pub(crate) fn replace(dir: &Path, name: &str, payloads: &[&[u8]]) -> io::Result<()> {
    let mut buf = Vec::new();
    for p in payloads {
        record::encode(p, &mut buf);
    }
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Reads the records of `dir/name`: `None` if the file does not exist.
///
/// # Errors
/// I/O errors, and `InvalidData` when the file is not exactly `expect` whole records: an
/// atomically replaced file is never torn, so damage here is not a crash artefact and must not
/// be papered over.
pub(crate) fn read(dir: &Path, name: &str, expect: usize) -> io::Result<Option<Vec<Vec<u8>>>> {
    let bytes = match fs::read(dir.join(name)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let s = record::scan(&bytes);
    if s.stop != record::Stop::End || s.records.len() != expect {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: expected {expect} whole records, found {} ({:?} at byte {})",
                dir.join(name).display(),
                s.records.len(),
                s.stop,
                s.valid_len
            ),
        ));
    }
    Ok(Some(
        s.records.into_iter().map(|(_, p)| p.to_vec()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_then_read_and_damage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path(), "vote", 1).expect("read"), None);
        replace(dir.path(), "vote", &[b"one"]).expect("write");
        replace(dir.path(), "vote", &[b"two", b"parts"]).expect("write");
        assert_eq!(
            read(dir.path(), "vote", 2).expect("read"),
            Some(vec![b"two".to_vec(), b"parts".to_vec()])
        );
        assert!(!dir.path().join("vote.tmp").exists());
        let path = dir.path().join("vote");
        let mut bytes = fs::read(&path).expect("read");
        bytes.truncate(bytes.len() - 1);
        fs::write(&path, &bytes).expect("write");
        let err = read(dir.path(), "vote", 2).expect_err("torn file");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
