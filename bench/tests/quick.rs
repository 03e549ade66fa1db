//! End to end: the `quick` scenario against the real camstream binary.
//!
//! Builds camstream (the same profile and target folder as this test), runs
//! `camstream-bench run --scenario quick` against it at low load, and checks that the run
//! wrote a non-empty, well-formed report (JSON, Markdown, SVG plots) with zero loss.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{camstream_bin, num};

#[test]
fn quick_run_against_camstream_has_zero_loss() {
    let out = std::env::temp_dir().join(format!("camstream-bench-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quick.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_camstream-bench"))
        .arg("run")
        .arg("--scenario")
        .arg(&scenario)
        .arg("--camstream-bin")
        .arg(camstream_bin())
        .arg("--out")
        .arg(&out)
        .args(["--duration", "10", "--quiet", "--keep-going"])
        .output()
        .expect("camstream-bench runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "run failed:\n{stdout}\n{stderr}");

    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    let s = &json["summary"];
    assert_eq!(json["server"]["name"], "camstream");
    assert_eq!(num(s, &["cameras_reached"]), 4.0, "{s}");
    assert_eq!(num(s, &["viewers_started"]), 8.0, "{s}");
    assert!(
        num(s, &["frames_in"]) > 4.0 * 30.0 * 10.0,
        "10 s of 30 fps from 4 cameras: {s}"
    );
    assert!(
        num(s, &["frames_out"]) > 0.0 && num(s, &["bytes_out"]) > 0.0,
        "{s}"
    );
    assert_eq!(
        s["zero_loss"], true,
        "loss at low load: {s}\nerrors: {}",
        json["errors"]
    );
    assert_eq!(
        num(s, &["missing_frames"]) + num(s, &["publish_failures"]) + num(s, &["foreign_frames"]),
        0.0
    );
    assert!(
        num(s, &["server_cpu_pct"]) > 0.0 && num(s, &["server_rss_mb"]) > 1.0,
        "server measured: {s}"
    );
    let lat = &json["latency"];
    for flavor in ["hls", "llhls"] {
        let l = &lat[flavor]["ingest_to_available"];
        assert!(num(l, &["count"]) > 0.0, "{flavor} latency measured: {l}");
        assert!(num(l, &["p50_ms"]) <= num(l, &["p99_ms"]), "{l}");
        assert!(
            num(l, &["p99_ms"]) < 15_000.0,
            "{flavor} latency at low load: {l}"
        );
    }
    assert!(
        num(&lat["blocking_reload_wakeup"], &["count"]) > 0.0,
        "{lat}"
    );
    let series = json["timeseries"].as_array().expect("time series");
    assert!(series.len() >= 10, "one sample per second");
    assert_eq!(json["cameras"].as_array().map(Vec::len), Some(4));

    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md written");
    for needle in [
        "# camstream-bench: quick",
        "Machine: ",
        "Clip: 1280x720",
        "**Zero loss: yes.**",
        "LL-HLS blocking reload wake-up",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    for svg in [
        "cpu_vs_cameras.svg",
        "rss_vs_cameras.svg",
        "latency.svg",
        "cpu_over_time.svg",
    ] {
        let text =
            std::fs::read_to_string(out.join(svg)).unwrap_or_else(|_| panic!("{svg} written"));
        assert!(
            text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg} well formed"
        );
        assert!(md.contains(&format!("]({svg})")), "report links {svg}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
