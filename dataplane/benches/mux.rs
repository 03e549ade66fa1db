//! The frame path per frame: FLV demux alone, demux → MPEG-TS, demux → fMP4 fragments,
//! demux → the full segmenter (LL-HLS parts + TS segments), and a relayed camera (origin
//! segmenter with its relay log, relay framing both ways, the edge's segmenter), over a 6 s
//! 720p30 clip with B-frames and AAC made by ffmpeg.
//!
//! Run: `cargo bench -p camstream-dataplane --bench mux`. Criterion reports the time per
//! clip and throughput in frames/s (so ns/frame = 1e9 / throughput); before that, the
//! bench prints heap allocations per frame of each path, counted by a wrapping allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use camstream_dataplane::bench;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Counts allocations; everything else is the system allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to `System` unchanged; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_per_frame(name: &str, frames: usize, f: impl Fn() -> usize) {
    f(); // warm up lazily grown buffers as a running stream would
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let out = f();
    let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "allocations/frame {name:>14}: {:.2} ({n} over {frames} frames, output {out})",
        n as f64 / frames as f64
    );
}

fn frame_path(c: &mut Criterion) {
    let tags = bench::clip();
    let frames = bench::frames(&bench::demux(&tags));
    allocations_per_frame("demux", frames, || bench::frames(&bench::demux(&tags)));
    allocations_per_frame("demux+ts", frames, || bench::demux_ts(&tags));
    allocations_per_frame("demux+fmp4", frames, || bench::demux_fmp4(&tags));
    allocations_per_frame("demux+segmenter", frames, || bench::demux_segment(&tags));
    allocations_per_frame("+TS viewer", frames, || {
        bench::demux_segment_ts_viewed(&tags)
    });
    allocations_per_frame("relayed", frames, || bench::demux_segment_relay(&tags));
    assert_eq!(
        bench::demux_segment_relay(&tags),
        bench::demux_segment(&tags),
        "the edge cuts as many segments as the origin"
    );

    let mut g = c.benchmark_group("frame_path");
    g.throughput(Throughput::Elements(frames as u64));
    g.bench_function("demux", |b| b.iter(|| bench::demux(&tags).len()));
    g.bench_function("demux+ts", |b| b.iter(|| bench::demux_ts(&tags)));
    g.bench_function("demux+fmp4", |b| b.iter(|| bench::demux_fmp4(&tags)));
    g.bench_function("demux+segmenter", |b| {
        b.iter(|| bench::demux_segment(&tags))
    });
    // The same with every TS segment requested once (a classic-HLS viewer watching).
    g.bench_function("demux+segmenter+TS viewer", |b| {
        b.iter(|| bench::demux_segment_ts_viewed(&tags))
    });
    // Origin (segmenter + relay log) + framing both ways + edge segmenter, no network: divide
    // by demux+segmenter for the CPU a relayed camera costs against serving it locally.
    g.bench_function("relayed (origin+edge)", |b| {
        b.iter(|| bench::demux_segment_relay(&tags))
    });
    g.finish();
}

criterion_group!(benches, frame_path);
criterion_main!(benches);
