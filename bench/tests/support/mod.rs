//! Shared by the bench's end-to-end tests.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The camstream binary beside this test's binaries, built fresh so it is never stale; or
/// `CAMSTREAM_BIN` when set (`make test` sets it to the binary `cargo test --workspace` has
/// just built for the end-to-end tests, which saves building it a second time with other
/// features).
pub fn camstream_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CAMSTREAM_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.exists(),
            "CAMSTREAM_BIN={} does not exist",
            bin.display()
        );
        return bin;
    }
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_camstream-bench"));
    let dir = bench.parent().expect("binary has a folder");
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--bin", "camstream"]);
    if profile == "release" {
        cmd.arg("--release");
    }
    // The target folder is the one holding this profile's folder.
    cmd.env("CARGO_TARGET_DIR", dir.parent().expect("target folder"));
    cmd.current_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root"),
    );
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo build --bin camstream failed");
    let bin = dir.join("camstream");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

pub fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {x}"))
}

/// Runs `camstream-bench` with `args`, asserts it succeeded, and returns the JSON report it
/// wrote as `out/report` (e.g. `report.json`).
pub fn run_bench(args: &[&std::ffi::OsStr], out: &Path, report: &str) -> Value {
    let run = Command::new(env!("CARGO_BIN_EXE_camstream-bench"))
        .args(args)
        .output()
        .expect("camstream-bench runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "run failed:\n{stdout}\n{stderr}");
    serde_json::from_str(
        &std::fs::read_to_string(out.join(report)).unwrap_or_else(|_| panic!("{report} written")),
    )
    .unwrap_or_else(|_| panic!("{report} is JSON"))
}
