//! End-to-end tests of recording (issue 5): the real `camstream serve` recording cameras
//! that ffmpeg publishes to, checked with ffprobe/ffmpeg and over `/api/v1`:
//! - `chunks`: two minutes in 30 s chunks, contiguous files matching their index, a VOD
//!   playlist across files that ffmpeg plays, signed downloads with Range, audit rows.
//! - `across_files`: one session in 4 s files; a VOD playlist over three of them is one
//!   timeline for ffmpeg (nothing discarded) and for hls.js in Chromium (no stall).
//! - `crash`: `kill -9` at random moments, repair on restart, recording resumes (on SQLite
//!   and on PostgreSQL).
//! - `disk_full`: a tiny tmpfs hot tier fills up; live HLS continues, STORAGE_FULL is
//!   recorded, earlier files stay intact.
//! - `retention`: hot → warm → cold → a real S3 server (moto), with crashes injected in the
//!   middle of moves, and signed downloads of archived files (on PostgreSQL).
//!
//! Each test starts its own server with its own data directory, so they run in parallel
//! (`chunks`, the longest, sorts first so that it starts first).

#[path = "../common/mod.rs"]
mod common;

// The API client of the control plane's e2e tests, shared rather than copied; this binary
// uses only part of it, and the dead-code lint judges one binary at a time.
#[path = "../controlplane/api.rs"]
#[allow(dead_code)]
mod api;

mod across_files;
mod chunks;
mod crash;
mod disk_full;
mod retention;
mod support;

#[test]
fn times_round_trip() {
    for t in [
        "1970-01-01T00:00:00.000Z",
        "2026-11-30T08:53:55.723Z",
        "2024-02-29T23:59:59.999Z",
        "2100-03-01T00:00:00.001Z",
    ] {
        assert_eq!(support::rfc3339(support::ms(t)), t);
    }
    assert_eq!(
        support::ms("2026-11-30T08:54:05.8Z"),
        support::ms("2026-11-30T08:54:05.800Z")
    );
    assert_eq!(support::ms("1970-01-02T00:00:00Z"), 86_400_000);
}
