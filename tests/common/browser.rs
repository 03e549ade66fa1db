//! The browser runners for tests in headless Chromium: hls.js (`tests/browser/play.mjs`)
//! and WHEP (`tests/browser/whep.mjs`).
//!
//! Needs `node`/`npm` and `/usr/bin/chromium` (`apt-get install -y chromium nodejs npm`);
//! hls.js and playwright-core (pinned in `tests/browser/package-lock.json`) are installed
//! with `npm ci` into `target/testdata/e2e/browser` on first use. playwright-core only
//! drives the Debian browser; it downloads nothing.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::testdata;

/// The files of `tests/browser` the runner needs.
const FILES: [&str; 6] = [
    "package.json",
    "package-lock.json",
    "play.mjs",
    "page.html",
    "whep.mjs",
    "whep.html",
];

/// Copies the runner next to its `node_modules` and installs the pinned packages when the
/// lock file changed.
pub(crate) async fn runner() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let dir = testdata().join("browser");
    std::fs::create_dir_all(&dir).expect("create browser dir");
    let lock = std::fs::read(src.join("package-lock.json")).expect("read lock file");
    let installed = dir.join("node_modules/.camstream-lock");
    if std::fs::read(&installed).ok().as_deref() != Some(&lock[..]) {
        for f in FILES {
            std::fs::copy(src.join(f), dir.join(f)).expect("copy runner file");
        }
        let out = Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run npm (apt-get install -y nodejs npm)");
        assert!(
            out.status.success(),
            "npm ci: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&installed, &lock).expect("mark install");
    }
    for f in FILES {
        std::fs::copy(src.join(f), dir.join(f)).expect("copy runner file");
    }
    dir
}
