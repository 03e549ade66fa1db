//! Test support shared by the dataplane's unit tests: real peers (ffmpeg, ffprobe) and
//! scratch directories. A missing peer fails the test, never skips it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a tool and returns (stdout, stderr), asserting it ran and succeeded.
///
/// # Panics
/// When the tool is missing or fails.
pub(crate) fn run(tool: &str, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(tool);
    if tool == "ffmpeg" {
        cmd.arg("-nostdin");
    }
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed for the tests: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    (stdout, stderr)
}

/// A fresh directory under the system temp dir for one test's files, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// Creates `camstream-{name}-{pid}`.
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("camstream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    /// A path inside the directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `ffprobe -show_streams -show_format` section.
pub(crate) type Section = HashMap<String, String>;

/// `ffprobe -show_streams -show_format`: (streams, format), asserting stderr is empty.
pub(crate) fn probe(path: &Path) -> (Vec<Section>, Section) {
    let p = path.to_str().expect("utf-8 path");
    let (out, err) = run(
        "ffprobe",
        &["-v", "error", "-show_streams", "-show_format", p],
    );
    assert!(err.trim().is_empty(), "ffprobe errors: {err}");
    let (mut streams, mut format, mut current) = (Vec::new(), Section::new(), Section::new());
    for line in out.lines() {
        match line {
            "[STREAM]" | "[FORMAT]" => current = Section::new(),
            "[/STREAM]" => streams.push(std::mem::take(&mut current)),
            "[/FORMAT]" => format = std::mem::take(&mut current),
            kv => {
                if let Some((k, v)) = kv.split_once('=') {
                    current.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    (streams, format)
}

/// Decodes everything with ffmpeg and asserts it printed nothing (no decode errors).
pub(crate) fn decode_clean(path: &Path) {
    let p = path.to_str().expect("utf-8 path");
    let (_, err) = run("ffmpeg", &["-v", "error", "-i", p, "-f", "null", "-"]);
    assert!(err.trim().is_empty(), "ffmpeg decode errors: {err}");
}
