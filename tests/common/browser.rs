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
const FILES: [&str; 8] = [
    "package.json",
    "package-lock.json",
    "chromium.mjs",
    "play.mjs",
    "abr.mjs",
    "page.html",
    "whep.mjs",
    "whep.html",
];

/// Copies the runner next to its `node_modules` and installs the pinned packages when the
/// lock file changed. Once per test process (tests run in parallel and a file being
/// rewritten while another test's node reads it breaks that run); files are replaced by
/// rename, never truncated in place, for other test processes.
pub(crate) async fn runner() -> PathBuf {
    static RUNNER: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    RUNNER.get_or_init(install).await.clone()
}

async fn install() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let dir = testdata().join("browser");
    std::fs::create_dir_all(&dir).expect("create browser dir");
    let lock = std::fs::read(src.join("package-lock.json")).expect("read lock file");
    let installed = dir.join("node_modules/.camstream-lock");
    if std::fs::read(&installed).ok().as_deref() != Some(&lock[..]) {
        copy_files(&src, &dir);
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
    copy_files(&src, &dir);
    dir
}

/// Copies the runner files that differ, each through a temporary name and a rename.
fn copy_files(src: &Path, dir: &Path) {
    for f in FILES {
        let want = std::fs::read(src.join(f)).expect("read runner file");
        if std::fs::read(dir.join(f)).ok().as_deref() == Some(&want[..]) {
            continue;
        }
        let tmp = dir.join(format!(".{f}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &want).expect("write runner file");
        std::fs::rename(&tmp, dir.join(f)).expect("rename runner file");
    }
}

/// Runs a browser runner (or any program that starts children: Chromium, ffmpeg) to the
/// end, within `limit`. It runs in a process group of its own, killed whole when it ends or
/// runs out of time, so a grandchild still holding its output pipe (a looping ffmpeg
/// publisher) cannot keep the test waiting. Out of time, the test fails with everything the
/// runner printed so far (the dashboard runner prints a line per step), not a bare timeout.
pub(crate) async fn run_bounded(
    mut cmd: Command,
    limit: std::time::Duration,
    what: &str,
) -> std::process::Output {
    use tokio::io::AsyncReadExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {what} (apt-get install -y nodejs): {e}"));
    let pid = child.id().expect("a running child has a pid");
    let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            let Some(mut pipe) = pipe else { return };
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                sink.lock()
                    .expect("not poisoned")
                    .extend_from_slice(&buf[..n]);
            }
        });
        (got, task)
    };
    let (stdout, out_task) = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let (stderr, err_task) = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let waited = tokio::time::timeout(limit, child.wait()).await;
    // Whatever the runner left behind goes with it.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill().await;
    for task in [out_task, err_task] {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    let take = |b: &std::sync::Arc<std::sync::Mutex<Vec<u8>>>| {
        std::mem::take(&mut *b.lock().expect("not poisoned"))
    };
    let (stdout, stderr) = (take(&stdout), take(&stderr));
    match waited {
        Ok(status) => std::process::Output {
            status: status.unwrap_or_else(|e| panic!("wait for {what}: {e}")),
            stdout,
            stderr,
        },
        Err(_) => panic!(
            "{what} did not finish within {limit:?}; killed. What it printed:\n{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}
