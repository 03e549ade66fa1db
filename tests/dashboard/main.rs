//! End-to-end test of the web dashboard (issue 12): the real `camstream serve` with the
//! built dashboard (`--web-dir web/dist`), driven by `web/e2e/dashboard.mjs` (playwright-core
//! and Debian's `/usr/bin/chromium`): log in, create a camera and see it in the fleet table,
//! see it go online once ffmpeg publishes to the RTMP URL the UI showed, watch its live tile
//! play (time advances, the frame is not black), a tile switched to WebRTC (frames decoded,
//! its session deleted when switched back; a B-frame camera refused with the reason), a
//! field error from the API, the camera page, the live grid, an API token created and
//! revoked, a viewer without edit controls, log out. Screenshots of each screen are written
//! to `target/dashboard-screenshots/`.
//!
//! Needs `web/dist` and `web/node_modules` (`make web`, which `make test` runs first).

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, ServerOptions};
use tokio::process::Command;

const ADMIN_PASSWORD: &str = "Dashboard-Root-Pass-1";

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_login_create_camera_tokens_viewer_logout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let web = root.join("web");
    assert!(
        web.join("dist/index.html").is_file(),
        "web/dist is missing: run `make web` (npm ci + npm run build in web/)"
    );
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `make web`"
    );
    let dist = web.join("dist").display().to_string();
    let server = Server::start_with(
        "dashboard",
        ServerOptions {
            allow_any_key: false,
            ..ServerOptions::default()
        },
        vec![
            "--admin-password".into(),
            ADMIN_PASSWORD.into(),
            "--web-dir".into(),
            dist,
            // The alerts step: a camera whose publisher is killed is offline 2 s later and
            // raises CAMERA_OFFLINE 1 s after that.
            "--reconnect-window".into(),
            "2s".into(),
            "--alert-offline-after".into(),
            "1s".into(),
        ],
    )
    .await;

    // The binary serves the app and keeps the API's own answers.
    let index = server.get("/cameras/anything").await;
    assert_eq!(index.status(), 200);
    assert_eq!(
        index.headers()["cache-control"].to_str().expect("ascii"),
        "no-cache"
    );
    assert!(index.text().await.expect("body").contains("id=\"root\""));
    let api = server.get("/api/v1/nothing-here").await;
    assert_eq!(api.status(), 404);
    assert!(
        api.text()
            .await
            .expect("body")
            .contains("\"success\":false")
    );

    let clip = &common::ffmpeg::clips().await.av_long;
    // The second camera plays over WebRTC too, which needs H.264 without B-frames.
    let clip_webrtc = common::ffmpeg::av_long_without_bframes().await;
    let shots = root.join("target/dashboard-screenshots");
    let started = Instant::now();
    let mut run = Command::new("node");
    run.arg(web.join("e2e/dashboard.mjs"))
        .current_dir(&web)
        .env("CAMSTREAM_URL", server.url(""))
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SHOTS_DIR", &shots)
        .env("CLIP", clip)
        .env("CLIP_WEBRTC", clip_webrtc);
    // A run takes ~40 s; a stuck step fails here with the steps it printed, not CI's limit.
    let out =
        common::browser::run_bounded(run, Duration::from_secs(300), "the dashboard runner").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    println!(
        "dashboard e2e: {:.1} s, screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    assert!(
        out.status.success(),
        "dashboard e2e failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}
