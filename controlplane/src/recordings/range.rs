//! HTTP `Range` requests on recording files (RFC 9110 §14): one byte range per request,
//! which is what players and download tools send.
//!
//! A header in another unit is ignored (the whole file is sent, as the RFC allows); a byte
//! range that is malformed, inverted or starts past the end cannot be served and is
//! answered 416 with `Content-Range: bytes */{len}`. Several ranges in one header are
//! refused the same way rather than answered with `multipart/byteranges`.

/// What to send for a request on a resource of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable `Range`: 200 with everything.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416.
    Unsatisfiable,
}

impl ByteRange {
    /// Bytes `start..end` (exclusive end) to read for a resource of `len` bytes.
    pub fn span(self, len: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::Full => Some((0, len)),
            ByteRange::Partial { start, end } => Some((start, end + 1)),
            ByteRange::Unsatisfiable => None,
        }
    }
}

/// Longest `Range` header looked at.
const MAX_HEADER: usize = 256;

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Interprets a `Range` header value for a resource of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> ByteRange {
    let Some(h) = header else {
        return ByteRange::Full;
    };
    let h = h.trim();
    let Some((unit, spec)) = h.split_once('=') else {
        return ByteRange::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Full;
    }
    if h.len() > MAX_HEADER || spec.contains(',') {
        return ByteRange::Unsatisfiable;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // `-N`: the last N bytes.
        (true, false) => match number(last) {
            Some(n) if n > 0 && len > 0 => ByteRange::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            _ => ByteRange::Unsatisfiable,
        },
        // `A-`: from A to the end.
        (false, true) => match number(first) {
            Some(a) if a < len => ByteRange::Partial {
                start: a,
                end: len - 1,
            },
            _ => ByteRange::Unsatisfiable,
        },
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a <= b && a < len => ByteRange::Partial {
                start: a,
                end: b.min(len - 1),
            },
            _ => ByteRange::Unsatisfiable,
        },
        (true, true) => ByteRange::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        use ByteRange::*;
        assert_eq!(parse(None, 100), Full);
        assert_eq!(parse(Some("bytes=0-9"), 100), Partial { start: 0, end: 9 });
        assert_eq!(
            parse(Some("bytes=90-"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse(Some("bytes=-10"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse(Some("bytes=-500"), 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(
            parse(Some("bytes=50-5000"), 100),
            Partial { start: 50, end: 99 }
        );
        assert_eq!(
            parse(Some("Bytes = 1 - 2"), 100),
            Partial { start: 1, end: 2 }
        );
        assert_eq!(parse(Some("items=0-1"), 100), Full);
        for bad in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=9-5",
            "bytes=-0",
            "bytes=-",
            "bytes=a-b",
            "bytes=0-1,5-6",
            "bytes=+1-2",
            "bytes 0-1",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse(Some(bad), 100), Unsatisfiable, "{bad}");
        }
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-1"), 0), Unsatisfiable);
        assert_eq!(Partial { start: 3, end: 5 }.span(100), Some((3, 6)));
        assert_eq!(Full.span(100), Some((0, 100)));
    }

    proptest! {
        #[test]
        fn partial_ranges_stay_inside(h in "\\PC{0,40}", len in 0u64..1_000_000) {
            if let ByteRange::Partial { start, end } = parse(Some(&h), len) {
                prop_assert!(start <= end && end < len);
            }
        }

        #[test]
        fn explicit_ranges(a in 0u64..2000, b in 0u64..2000, len in 1u64..1000) {
            let r = parse(Some(&format!("bytes={a}-{b}")), len);
            if a <= b && a < len {
                prop_assert_eq!(r, ByteRange::Partial { start: a, end: b.min(len - 1) });
            } else {
                prop_assert_eq!(r, ByteRange::Unsatisfiable);
            }
        }
    }
}
