//! End to end: `camstream-bench webrtc` against the real camstream binary, at low load:
//! a 0-viewer baseline, then 4 str0m WHEP viewers, then Chromium (installed by
//! `scripts/browser-runner.sh`) for glass-to-glass. Checks the report's figures are measured
//! and within the bounds on loopback: every viewer started and received the frames
//! published, none missed, first frame within 1 s, Chromium's glass-to-glass median within
//! 400 ms.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use support::{camstream_bin, num, run_bench};

#[test]
fn webrtc_viewers_and_chromium_glass_to_glass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let runner = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-browser");
    let status = Command::new(root.join("scripts/browser-runner.sh"))
        .arg(&runner)
        .status()
        .expect("scripts/browser-runner.sh runs (needs node and npm)");
    assert!(status.success(), "installing the browser runner failed");

    let out = std::env::temp_dir().join(format!("camstream-bench-webrtc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let bin = camstream_bin();
    let args: Vec<&OsStr> = [
        OsStr::new("webrtc"),
        OsStr::new("--camstream-bin"),
        bin.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--browser-runner"),
        runner.as_os_str(),
    ]
    .into_iter()
    .chain(
        [
            "--viewers",
            "0,4",
            "--seconds",
            "4",
            "--browser-seconds",
            "10",
            "--quiet",
        ]
        .map(OsStr::new),
    )
    .collect();
    let json = run_bench(&args, &out, "webrtc.json");
    let steps = json["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{json}");
    let base = &steps[0];
    assert_eq!(num(base, &["viewers"]), 0.0);
    assert!(num(base, &["server_cpu_pct"]) > 0.0, "{base}");
    let s = &steps[1];
    assert_eq!(num(s, &["started"]), 4.0, "every viewer started: {s}");
    let published = num(s, &["frames_published"]);
    assert!(published > 4.0 * 25.0, "4 s of 30 fps published: {s}");
    // A viewer counts the frames whose marker arrived in the window; it may see one frame
    // fewer or more than the publisher counted at the window's edges.
    assert!(
        num(s, &["frames_min"]) >= published - 3.0,
        "every viewer received what was published: {s}"
    );
    assert_eq!(num(s, &["frames_missed"]), 0.0, "no frame skipped: {s}");
    assert!(s["errors"].as_array().is_some_and(Vec::is_empty), "{s}");
    assert!(s["cpu_per_viewer_pct"].is_number(), "{s}");
    let wire = &s["wire_latency"];
    assert!(num(wire, &["count"]) > 0.0, "{wire}");
    assert!(num(wire, &["p50_ms"]) < 400.0, "{wire}");
    let ttff = &s["time_to_first_frame"];
    assert_eq!(num(ttff, &["count"]), 4.0, "{ttff}");
    assert!(
        num(ttff, &["max_ms"]) <= 1000.0,
        "first frame within 1 s: {ttff}"
    );

    let b = &json["browser"];
    let g2g = &b["glass_to_glass"];
    assert!(
        num(g2g, &["count"]) > 100.0,
        "Chromium displayed frames: {b}"
    );
    assert!(
        num(g2g, &["p50_ms"]) <= 400.0,
        "glass-to-glass median within 400 ms: {g2g}"
    );
    // The 1 s first-frame bound of issue 14 is asserted against a real ffmpeg camera by
    // tests/dataplane/webrtc.rs and measured in release by `make bench-webrtc` (210 ms). Here
    // the camera is this harness's own publisher, and in `cargo test` both it and camstream
    // are debug builds on a 2-core machine running other suites: one clean-checkout CI run
    // measured 1,236 ms. This test checks the harness measures it, within 2 s in a debug build.
    let ttff_bound = if bin.components().any(|c| c.as_os_str() == "release") {
        1000.0
    } else {
        2000.0
    };
    assert!(
        num(b, &["time_to_first_frame_ms"]) <= ttff_bound,
        "Chromium's first frame within {ttff_bound} ms: {b}"
    );

    let md = std::fs::read_to_string(out.join("webrtc.md")).expect("webrtc.md written");
    for needle in ["# WebRTC (WHEP) viewers on one camera", "glass-to-glass"] {
        assert!(md.contains(needle), "webrtc.md lacks {needle:?}:\n{md}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
