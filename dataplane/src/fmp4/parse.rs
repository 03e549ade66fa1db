//! Test support: decodes what this module writes back with `mp4-atom`, so tests check
//! fields rather than bytes.

use std::ops::Range;

use mp4_atom::{Atom, Decode, Ftyp, Header, Mdat, Moof, Moov, Traf};

/// A decoded fragment.
#[derive(Debug)]
pub(crate) struct Fragment {
    /// The `moof`.
    pub(crate) moof: Moof,
    /// Bytes the `moof` takes: `data_offset`s count from its first byte.
    pub(crate) moof_len: usize,
    /// Where the `mdat` payload sits in the fragment.
    pub(crate) mdat: Range<usize>,
}

impl Fragment {
    /// Where each sample of `traf` sits in the fragment, from its `data_offset` and sizes.
    pub(crate) fn sample_ranges(traf: &Traf) -> Vec<Range<usize>> {
        let trun = &traf.trun[0];
        let mut at = usize::try_from(trun.data_offset.expect("data_offset present")).unwrap();
        trun.samples
            .iter()
            .map(|e| {
                let len = e.size.expect("per-sample size") as usize;
                at += len;
                at - len..at
            })
            .collect()
    }
}

/// Decodes one `moof` + `mdat` and checks the `mdat` box spans the rest of `data`.
///
/// # Panics
/// On anything malformed: this is test support.
pub(crate) fn parse_fragment(data: &[u8]) -> Fragment {
    let mut rest = data;
    let moof = Moof::decode(&mut rest).expect("moof decodes");
    let moof_len = data.len() - rest.len();
    let header = Header::decode(&mut rest).expect("mdat header");
    assert_eq!(header.kind, Mdat::KIND, "moof is followed by mdat");
    assert_eq!(header.size, Some(rest.len()), "mdat spans the fragment");
    Fragment {
        moof,
        moof_len,
        mdat: moof_len + 8..data.len(),
    }
}

/// Decodes an init segment: `ftyp` then `moov`, nothing after.
///
/// # Panics
/// On anything malformed.
pub(crate) fn parse_init(data: &[u8]) -> (Ftyp, Moov) {
    let mut rest = data;
    let ftyp = Ftyp::decode(&mut rest).expect("ftyp decodes");
    let moov = Moov::decode(&mut rest).expect("moov decodes");
    assert!(rest.is_empty(), "init segment is ftyp + moov only");
    (ftyp, moov)
}

/// The body of the first box of type `kind` anywhere in `data`, found by scanning for the
/// FourCC (good enough for the handful of boxes tests look at).
pub(crate) fn find_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let at = data.windows(4).position(|w| w == kind)?;
    let start = at.checked_sub(4)?;
    let size = u32::from_be_bytes(data[start..at].try_into().ok()?) as usize;
    data.get(at + 4..start + size)
}
