//! RTMP ingest per frame: a recorded publish of the bench clip (6 s 720p30 H.264 with
//! B-frames + AAC, made by ffmpeg; tags chunked by `rml_rtmp`'s `ClientSession` at chunk size
//! 4096) fed through `rtmp::Session` after the publish was accepted, up to demuxed
//! `MediaEvent`s.
//!
//! Two read patterns: one socket read per encoder write (a live encoder at its own pace; most
//! messages arrive whole in one read) and 64 KiB reads (a backlog read in bulk; messages
//! straddle reads). Media events are kept until the clip ends, as a segmenter window keeps
//! frames alive, so buffers that frames point into cannot be reused early.
//!
//! Run: `cargo bench -p camstream-dataplane --bench rtmp`. Criterion reports throughput in
//! frames/s (ns/frame = 1e9 / throughput); before that, the bench prints heap allocations per
//! frame, counted by a wrapping allocator.
//!
//! Every iteration starts a session and drops a clip's worth of buffers afterwards, so glibc's
//! adaptive mmap and trim thresholds can leave a run paging the clip in again each iteration
//! (several times slower, millions of page faults). For comparable numbers fix them, as a
//! long-running server's warm heap effectively does:
//! `GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=33554432`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use camstream_dataplane::bench::{self, RtmpPublish};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

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

fn allocations_per_frame(name: &str, publish: &RtmpPublish, reads: &[Bytes]) {
    let frames = publish.frames();
    let mut ingest = publish.start();
    let mut out = Vec::with_capacity(frames + 16);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let got = ingest.run(reads, &mut out);
    let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(got, frames, "every frame comes out");
    println!(
        "allocations/frame {name:>12}: {:.2} ({n} over {frames} frames, {} reads, {} bytes)",
        n as f64 / frames as f64,
        reads.len(),
        publish.media_len(),
    );
}

fn rtmp_ingest(c: &mut Criterion) {
    let tags = bench::clip();
    let publish = bench::record_rtmp_publish(&tags, 4096);
    let per_write = publish.media_reads(None);
    let bulk = publish.media_reads(Some(64 << 10));
    allocations_per_frame("per write", &publish, &per_write);
    allocations_per_frame("64 KiB reads", &publish, &bulk);

    let frames = publish.frames();
    let mut g = c.benchmark_group("rtmp_ingest");
    g.throughput(Throughput::Elements(frames as u64));
    for (name, reads) in [("per write", &per_write), ("64 KiB reads", &bulk)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || (publish.start(), Vec::with_capacity(frames + 16)),
                |(mut ingest, mut out)| {
                    let n = ingest.run(reads, &mut out);
                    (ingest, out, n)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, rtmp_ingest);
criterion_main!(benches);
