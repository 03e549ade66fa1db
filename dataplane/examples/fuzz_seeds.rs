//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/{ingest,rtmp_session,flv_tag}/`).
//!
//! Two tiny clips are made with ffmpeg (64x64 and 96x64 H.264 with B-frames at 10 fps, a
//! keyframe a second, AAC 8 kHz mono, 3 s), read as FLV tags and written as the client bytes
//! that follow the `ingest` target's scripted publish: a chunk size, `@setDataFrame`, then
//! one RTMP message per tag. Besides the plain publish, variants that reach the corners of
//! the path: other read sizes and settings, a reconnect, an unpublish, a codec change
//! mid-stream, timestamps that wrap, one track only, and hostile media (garbage
//! bodies, timestamps that jump, a cut in the middle of a message). Each seed is checked
//! through `fuzz::ingest` and its figures printed. `rtmp_session` gets the plain publish and
//! two hostile seeds in its own framing, `flv_tag` the clip's tags in its.
//!
//! ```sh
//! cargo run -p camstream-dataplane --example fuzz_seeds -- fuzz/corpus
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use camstream_dataplane::bench::{Tag, read_flv};
use camstream_dataplane::fuzz::ingest;
use rml_rtmp::rml_amf0::{self, Amf0Value};

/// The chunk size the seeds announce first (ffmpeg announces 4096 too).
const CHUNK: usize = 4096;

fn main() -> Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: fuzz_seeds CORPUS_DIR")?,
    );
    let out = root.join("ingest");
    std::fs::create_dir_all(&out)?;
    let tmp = std::env::temp_dir().join(format!("camstream-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let a = clip(&tmp, "a", "64x64")?;
    let b = clip(&tmp, "b", "96x64")?;
    let last_a = a.last().map_or(0, |t| t.timestamp);

    // deleteStream ends the publish; media after it goes nowhere.
    let mut unpublish = stream(&a, 0);
    unpublish.extend(command("deleteStream", 4.0, &[Amf0Value::Number(1.0)], 0));
    unpublish.extend(media(&a, last_a + 100, 1));
    // The second clip's sequence headers mid-stream: a new init segment and a discontinuity.
    let mut change = stream(&a, 0);
    change.extend(media(&b, last_a + 100, 1));
    let whole = stream(&a, 0);
    let cut = whole[..whole.len() * 2 / 3].to_vec();
    // (name, mode byte of `fuzz::ingest`, client bytes)
    let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        ("publish-h264-aac", 3, stream(&a, 0)),
        // 61-byte reads, 1 s segments with a 2-segment window, recorder fed.
        ("publish-short-segments-recorded", 1 | 4 | 8, stream(&a, 0)),
        ("publish-video-only", 2, stream(&only(&a, true), 0)),
        ("publish-audio-only", 2 | 4, stream(&only(&a, false), 0)),
        // The encoder comes back on a new connection inside the reconnect window.
        ("reconnect", 2 | 16, stream(&a, 0)),
        ("unpublish-then-media", 2 | 4, unpublish),
        ("codec-change", 3, change),
        // RTMP timestamps are 32-bit milliseconds: start 1.5 s before the wrap.
        ("timestamp-wrap", 3, stream(&a, u32::MAX - 1_500)),
        ("hostile-garbage-bodies", 3 | 4, stream(&garbage(&a), 0)),
        ("hostile-timestamp-jumps", 3 | 8, stream(&jumps(&a), 0)),
        ("hostile-cut-mid-message", 0, cut),
    ];

    let rtmp = root.join("rtmp_session");
    std::fs::create_dir_all(&rtmp)?;
    for (name, mode, bytes) in seeds {
        let mut seed = vec![mode];
        seed.extend(&bytes);
        let stats = ingest(&seed);
        println!("ingest/{name}: {} bytes, {stats:?}", seed.len());
        if !name.starts_with("hostile") {
            ensure!(
                stats.ll_segments >= 2 && stats.ts_segments >= 2,
                "{name}: too few segments"
            );
        }
        std::fs::write(out.join(name), seed)?;
        // rtmp_session: bits 0-1 = 3 is the same scripted publish; bits 2-3 = 2 cut 1024.
        if [
            "publish-h264-aac",
            "timestamp-wrap",
            "hostile-garbage-bodies",
        ]
        .contains(&name)
        {
            let mut seed = vec![3 | 2 << 2];
            seed.extend(&bytes);
            std::fs::write(rtmp.join(name), seed)?;
        }
    }
    // flv_tag: `[flags: video bit, timestamp step in 16 ms][len: u16][body]` per tag.
    let flv = root.join("flv_tag");
    std::fs::create_dir_all(&flv)?;
    let mut seed = Vec::new();
    let mut last = 0;
    for t in a.iter().take(60) {
        let step = ((t.timestamp.saturating_sub(last)) / 16).min(127) as u8;
        last = t.timestamp;
        seed.push(u8::from(t.video) | step << 1);
        seed.extend_from_slice(&(t.body.len() as u16).to_be_bytes());
        seed.extend_from_slice(&t.body);
    }
    std::fs::write(flv.join("clip-tags"), seed)?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

/// Makes a 3 s clip of `size` and reads its tags (script tags dropped).
fn clip(dir: &Path, name: &str, size: &str) -> Result<Vec<Tag>> {
    let path = dir.join(format!("{name}.flv"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=10"))
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000",
            "-t",
            "3",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-bf",
            "2",
        ])
        .args([
            "-g",
            "10",
            "-keyint_min",
            "10",
            "-sc_threshold",
            "0",
            "-b:v",
            "40k",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "1", "-b:a", "12k", "-f", "flv",
        ])
        .arg(&path)
        .status()
        .context("run ffmpeg")?;
    if !status.success() {
        bail!("ffmpeg failed: {status}");
    }
    let data = std::fs::read(&path)?;
    let tags = read_flv(&data).map_err(anyhow::Error::msg)?;
    Ok(tags.into_iter().filter(|t| t.kind != 18).collect())
}

/// A chunk size, `@setDataFrame` metadata, then the tags from `start` ms on stream 1.
fn stream(tags: &[Tag], start: u32) -> Vec<u8> {
    let mut out = Vec::new();
    // Set Chunk Size (type 1) on the control stream.
    message(&mut out, 2, 1, 0, 0, &(CHUNK as u32).to_be_bytes(), 128);
    let metadata = rml_amf0::serialize(&vec![
        Amf0Value::Utf8String("@setDataFrame".into()),
        Amf0Value::Utf8String("onMetaData".into()),
        Amf0Value::Object(
            [
                ("videocodecid".to_owned(), Amf0Value::Number(7.0)),
                ("audiocodecid".to_owned(), Amf0Value::Number(10.0)),
                ("width".to_owned(), Amf0Value::Number(64.0)),
                ("height".to_owned(), Amf0Value::Number(64.0)),
            ]
            .into(),
        ),
    ])
    .expect("AMF0 metadata serializes");
    message(&mut out, 5, 18, 1, start, &metadata, CHUNK);
    out.extend(media(tags, start, 1));
    out
}

/// Every tag as one message on `stream`, timestamps from `start` ms (wrapping).
fn media(tags: &[Tag], start: u32, stream: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tags {
        let (csid, kind) = if t.video { (6, 9) } else { (4, 8) };
        let ts = start.wrapping_add(t.timestamp);
        message(&mut out, csid, kind, stream, ts, &t.body, CHUNK);
    }
    out
}

/// One message: a format 0 chunk, then format 3 continuations every `chunk` bytes (each
/// repeating an extended timestamp).
fn message(out: &mut Vec<u8>, csid: u8, kind: u8, stream: u32, ts: u32, body: &[u8], chunk: usize) {
    let extended = ts >= 0x00FF_FFFF;
    out.push(csid);
    out.extend_from_slice(&ts.min(0x00FF_FFFF).to_be_bytes()[1..]);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.extend_from_slice(&stream.to_le_bytes());
    for (i, piece) in body.chunks(chunk).enumerate() {
        if i > 0 {
            out.push(0xC0 | csid);
        }
        if extended {
            out.extend_from_slice(&ts.to_be_bytes());
        }
        out.extend_from_slice(piece);
    }
}

/// An AMF0 command (type 20) on chunk stream 3.
fn command(name: &str, transaction: f64, args: &[Amf0Value], stream: u32) -> Vec<u8> {
    let mut values = vec![
        Amf0Value::Utf8String(name.into()),
        Amf0Value::Number(transaction),
        Amf0Value::Null,
    ];
    values.extend_from_slice(args);
    let body = rml_amf0::serialize(&values).expect("AMF0 command serializes");
    let mut out = Vec::new();
    message(&mut out, 3, 20, stream, 0, &body, CHUNK);
    out
}

fn only(tags: &[Tag], video: bool) -> Vec<Tag> {
    tags.iter().filter(|t| t.video == video).cloned().collect()
}

/// Sequence headers kept; every other body becomes xorshift noise behind its first five
/// bytes (frame type, codec, packet type, composition time), so it reaches the NAL parsing.
fn garbage(tags: &[Tag]) -> Vec<Tag> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    tags.iter()
        .map(|t| {
            let mut body = t.body.to_vec();
            let keep = if t.video { 5 } else { 2 };
            if body.len() > keep && body.get(1) != Some(&0) {
                for b in &mut body[keep..] {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
            }
            Tag {
                body: body.into(),
                ..t.clone()
            }
        })
        .collect()
}

/// Timestamps that go back 5 s, forward 40 s, and repeat, every few tags.
fn jumps(tags: &[Tag]) -> Vec<Tag> {
    tags.iter()
        .enumerate()
        .map(|(i, t)| {
            let timestamp = match i % 17 {
                5 => t.timestamp.saturating_sub(5_000),
                11 => t.timestamp + 40_000,
                13 => 0,
                _ => t.timestamp,
            };
            Tag {
                timestamp,
                ..t.clone()
            }
        })
        .collect()
}
