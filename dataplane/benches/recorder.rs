//! The recorder alone: N cameras' LL-HLS parts (200 ms, from a 720p30 H.264 + AAC clip at
//! about 2 Mbit/s made by ffmpeg) written to disk three ways, side by side:
//! - `io_uring`: the recorder's writer threads, one ring each, `writev` from the parts' `Bytes`;
//! - `std::fs`: the same writer threads with blocking `writev` (the fallback);
//! - `tokio::fs`: the plain async way, a task and a file per camera, `write_all` per slice.
//!
//! Parts are pushed as fast as each way takes them (a full camera queue waits; nothing is
//! dropped), so the numbers are throughput limits, not a real-time load. CPU is
//! `getrusage(RUSAGE_SELF)` user + system over the run (every thread of the process,
//! io_uring workers included). Each configuration runs once with fdatasync every 2 s per
//! file (the default) and once with fdatasync after every write.
//!
//! Run: `cargo bench -p camstream-dataplane --bench recorder`. Knobs (environment):
//! `REC_BENCH_CAMERAS` (default 16), `REC_BENCH_SECONDS` of media per camera (default 60),
//! `REC_BENCH_THREADS` writer threads (default 1), `REC_BENCH_DIR` (default
//! `target/tmp/recorder-bench`; put it on the disk you care about).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use camstream_dataplane::bench::{self, RecordBackend, RecordingInput};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) of the whole process so far.
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid value for it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    assert_eq!(r, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

struct Row {
    name: &'static str,
    bytes: u64,
    wall: Duration,
    cpu: Duration,
}

impl Row {
    fn mb(&self) -> f64 {
        self.bytes as f64 / 1e6
    }
    fn mb_s(&self) -> f64 {
        self.mb() / self.wall.as_secs_f64()
    }
    fn cpu_ms_per_mb(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e3 / self.mb()
    }
}

fn run(name: &'static str, dir: &Path, f: impl FnOnce(&Path) -> std::io::Result<u64>) -> Row {
    let _ = std::fs::remove_dir_all(dir);
    // Start each run with no dirty pages left by the previous one.
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    let (c0, t0) = (cpu(), Instant::now());
    let bytes = f(dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (wall, cpu) = (t0.elapsed(), cpu() - c0);
    let _ = std::fs::remove_dir_all(dir);
    Row {
        name,
        bytes,
        wall,
        cpu,
    }
}

fn main() {
    let cameras: usize = env("REC_BENCH_CAMERAS", 16);
    let seconds: f64 = env("REC_BENCH_SECONDS", 60.0);
    let threads: usize = env("REC_BENCH_THREADS", 1);
    let root = std::env::var_os("REC_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/recorder-bench"),
        PathBuf::from,
    );
    let input = RecordingInput::from_tags(&bench::clip());
    let passes = (seconds / input.seconds()).ceil().max(1.0) as u32;
    println!(
        "recorder bench: {cameras} cameras x {:.0} s of media ({} parts of {:.0} ms, {:.2} Mbit/s), {threads} writer thread(s), in {}",
        input.seconds() * f64::from(passes),
        input.parts() * passes as usize,
        input.seconds() * 1000.0 / input.parts() as f64,
        input.bytes() as f64 * 8.0 / input.seconds() / 1e6,
        root.display()
    );
    for (label, fsync) in [
        ("fdatasync every 2 s", Some(Duration::from_secs(2))),
        ("fdatasync after every write", Some(Duration::ZERO)),
    ] {
        let rows = [
            run("io_uring", &root, |d| {
                bench::record(
                    &input,
                    d,
                    RecordBackend::IoUring,
                    cameras,
                    passes,
                    threads,
                    fsync,
                )
            }),
            run("std::fs", &root, |d| {
                bench::record(
                    &input,
                    d,
                    RecordBackend::StdFs,
                    cameras,
                    passes,
                    threads,
                    fsync,
                )
            }),
            run("tokio::fs", &root, |d| {
                bench::record_tokio_fs(&input, d, cameras, passes, fsync)
            }),
        ];
        let base = &rows[0];
        println!("\n{label}");
        println!(
            "{:<10} {:>9} {:>8} {:>9} {:>9} {:>11} {:>12} {:>13}",
            "backend", "MB", "wall s", "MB/s", "CPU s", "CPU ms/MB", "MB/s ratio", "CPU/MB ratio"
        );
        for r in &rows {
            println!(
                "{:<10} {:>9.1} {:>8.2} {:>9.1} {:>9.2} {:>11.2} {:>12.2} {:>13.2}",
                r.name,
                r.mb(),
                r.wall.as_secs_f64(),
                r.mb_s(),
                r.cpu.as_secs_f64(),
                r.cpu_ms_per_mb(),
                r.mb_s() / base.mb_s(),
                r.cpu_ms_per_mb() / base.cpu_ms_per_mb(),
            );
        }
    }
}
