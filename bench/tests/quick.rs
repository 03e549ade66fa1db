//! End to end: the `quick` scenario against the real camstream binary.
//!
//! Builds camstream (the same profile and target folder as this test), runs
//! `camstream-bench run --scenario quick` against it at low load, and checks that the run
//! wrote a non-empty, well-formed report (JSON, Markdown, SVG plots) with zero loss.

mod support;

use std::ffi::OsStr;
use std::path::Path;

use support::{camstream_bin, num, run_bench};

#[test]
fn quick_run_against_camstream_has_zero_loss() {
    let out = std::env::temp_dir().join(format!("camstream-bench-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quick.toml");
    let bin = camstream_bin();
    let args: Vec<&OsStr> = [
        OsStr::new("run"),
        OsStr::new("--scenario"),
        scenario.as_os_str(),
        OsStr::new("--camstream-bin"),
        bin.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ]
    .into_iter()
    .chain(["--duration", "10", "--quiet", "--keep-going"].map(OsStr::new))
    .collect();
    let json = run_bench(&args, &out, "report.json");
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
