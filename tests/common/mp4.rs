//! Just enough ISO BMFF reading (ISO/IEC 14496-12) to check the timing of CMAF fragments:
//! tracks and defaults from the init segment, then per `traf` the `tfdt` base decode time,
//! the summed `trun` durations and whether the first sample is a sync sample.

/// A track of the init segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track {
    pub(crate) id: u32,
    pub(crate) timescale: u32,
    /// `vide` or `soun`.
    pub(crate) handler: [u8; 4],
    default_duration: u32,
    default_flags: u32,
}

/// One track run of one fragment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) track: u32,
    /// `tfdt` base media decode time (track timescale).
    pub(crate) base: u64,
    /// Sum of sample durations (track timescale).
    pub(crate) duration: u64,
    pub(crate) samples: u32,
    /// The first sample is a sync sample (`sample_is_non_sync_sample` clear).
    pub(crate) first_sync: bool,
}

struct Boxes<'a>(&'a [u8]);

impl<'a> Iterator for Boxes<'a> {
    type Item = ([u8; 4], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let d = self.0;
        if d.len() < 8 {
            assert!(
                d.is_empty(),
                "{} trailing bytes after the last box",
                d.len()
            );
            return None;
        }
        let size = u32::from_be_bytes(d[0..4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = d[4..8].try_into().expect("4 bytes");
        let (header, size) = match size {
            0 => (8, d.len()),
            1 => (
                16,
                u64::from_be_bytes(d[8..16].try_into().expect("8 bytes")) as usize,
            ),
            n => (8, n),
        };
        assert!(
            size >= header && size <= d.len(),
            "box {} of size {size} overruns {} bytes",
            String::from_utf8_lossy(&kind),
            d.len()
        );
        self.0 = &d[size..];
        Some((kind, &d[header..size]))
    }
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    Boxes(data).find(|(k, _)| k == kind).map(|(_, b)| b)
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(d[at..at + 8].try_into().expect("8 bytes"))
}

/// The tracks of an init segment (`ftyp` + `moov`).
pub(crate) fn init_tracks(init: &[u8]) -> Vec<Track> {
    let moov = child(init, b"moov").expect("init segment has a moov");
    let trex: Vec<(u32, u32, u32)> = child(moov, b"mvex")
        .map(|mvex| {
            Boxes(mvex)
                .filter(|(k, _)| k == b"trex")
                .map(|(_, t)| (u32_at(t, 4), u32_at(t, 12), u32_at(t, 20)))
                .collect()
        })
        .unwrap_or_default();
    Boxes(moov)
        .filter(|(k, _)| k == b"trak")
        .map(|(_, trak)| {
            let tkhd = child(trak, b"tkhd").expect("tkhd");
            let id = if tkhd[0] == 1 {
                u32_at(tkhd, 20)
            } else {
                u32_at(tkhd, 12)
            };
            let mdia = child(trak, b"mdia").expect("mdia");
            let mdhd = child(mdia, b"mdhd").expect("mdhd");
            let timescale = if mdhd[0] == 1 {
                u32_at(mdhd, 20)
            } else {
                u32_at(mdhd, 12)
            };
            let hdlr = child(mdia, b"hdlr").expect("hdlr");
            let handler = hdlr[8..12].try_into().expect("4 bytes");
            let (default_duration, default_flags) = trex
                .iter()
                .find(|(t, _, _)| *t == id)
                .map_or((0, 0), |(_, d, f)| (*d, *f));
            Track {
                id,
                timescale,
                handler,
                default_duration,
                default_flags,
            }
        })
        .collect()
}

const NON_SYNC: u32 = 0x0001_0000;

/// Every track run of `data` (one or more `moof` + `mdat`), in order.
pub(crate) fn runs(data: &[u8], tracks: &[Track]) -> Vec<Run> {
    let mut out = Vec::new();
    let mut moofs = 0;
    for (kind, moof) in Boxes(data) {
        match &kind {
            b"moof" => moofs += 1,
            b"mdat" | b"styp" | b"prft" | b"sidx" => continue,
            other => panic!(
                "unexpected top-level box {}",
                String::from_utf8_lossy(other)
            ),
        }
        for (_, traf) in Boxes(moof).filter(|(k, _)| k == b"traf") {
            let tfhd = child(traf, b"tfhd").expect("tfhd");
            let flags = u32_at(tfhd, 0) & 0x00ff_ffff;
            let track_id = u32_at(tfhd, 4);
            let track = tracks
                .iter()
                .find(|t| t.id == track_id)
                .unwrap_or_else(|| panic!("traf for unknown track {track_id}"));
            let mut at = 8;
            if flags & 0x01 != 0 {
                at += 8;
            }
            if flags & 0x02 != 0 {
                at += 4;
            }
            let mut default_duration = track.default_duration;
            if flags & 0x08 != 0 {
                default_duration = u32_at(tfhd, at);
                at += 4;
            }
            if flags & 0x10 != 0 {
                at += 4;
            }
            let mut default_flags = track.default_flags;
            if flags & 0x20 != 0 {
                default_flags = u32_at(tfhd, at);
            }
            let tfdt = child(traf, b"tfdt").expect("every traf has a tfdt (CMAF)");
            let base = if tfdt[0] == 1 {
                u64_at(tfdt, 4)
            } else {
                u64::from(u32_at(tfdt, 4))
            };
            let mut run = Run {
                track: track_id,
                base,
                duration: 0,
                samples: 0,
                first_sync: false,
            };
            for (_, trun) in Boxes(traf).filter(|(k, _)| k == b"trun") {
                let flags = u32_at(trun, 0) & 0x00ff_ffff;
                let count = u32_at(trun, 4);
                let mut at = 8;
                if flags & 0x01 != 0 {
                    at += 4;
                }
                let first_flags = (flags & 0x04 != 0).then(|| {
                    let f = u32_at(trun, at);
                    at += 4;
                    f
                });
                for i in 0..count {
                    let mut duration = default_duration;
                    let mut sample_flags = default_flags;
                    if flags & 0x100 != 0 {
                        duration = u32_at(trun, at);
                        at += 4;
                    }
                    if flags & 0x200 != 0 {
                        at += 4;
                    }
                    if flags & 0x400 != 0 {
                        sample_flags = u32_at(trun, at);
                        at += 4;
                    }
                    if flags & 0x800 != 0 {
                        at += 4;
                    }
                    if i == 0 && run.samples == 0 {
                        let f = first_flags.unwrap_or(sample_flags);
                        run.first_sync = f & NON_SYNC == 0;
                    }
                    run.duration += u64::from(duration);
                }
                run.samples += count;
            }
            out.push(run);
        }
    }
    assert!(moofs > 0, "no moof in {} bytes", data.len());
    out
}
