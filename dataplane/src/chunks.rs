//! A gather list of [`Bytes`]: how every output holds media without copying it.
//!
//! Segments, parts and fragments are built as a few header bytes written into reused
//! buffers followed by slices of the payloads the ingest copied off the socket once. The
//! HTTP layer and the recorder write the list vectored.

use bytes::Bytes;

/// An ordered list of byte slices forming one object (a part, a segment, a fragment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunks {
    parts: Vec<Bytes>,
    len: usize,
}

impl Chunks {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `n` slices.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            parts: Vec::with_capacity(n),
            len: 0,
        }
    }

    /// Appends a slice; empty slices are skipped.
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.parts.push(b);
        }
    }

    /// Appends every slice of `other`.
    pub fn extend(&mut self, other: &Chunks) {
        self.parts.extend(other.parts.iter().cloned());
        self.len += other.len;
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slices, in order.
    pub fn slices(&self) -> &[Bytes] {
        &self.parts
    }

    /// Copies everything into one contiguous buffer. For tests and tools, never the hot path.
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.len);
        for p in &self.parts {
            v.extend_from_slice(p);
        }
        Bytes::from(v)
    }
}

impl From<Bytes> for Chunks {
    fn from(b: Bytes) -> Self {
        let mut c = Chunks::new();
        c.push(b);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_length_and_skips_empty() {
        let mut c = Chunks::new();
        c.push(Bytes::from_static(b"ab"));
        c.push(Bytes::new());
        c.push(Bytes::from_static(b"cde"));
        assert_eq!(c.len(), 5);
        assert_eq!(c.slices().len(), 2);
        assert_eq!(&c.to_bytes()[..], b"abcde");
        let mut d = Chunks::from(Bytes::from_static(b"x"));
        d.extend(&c);
        assert_eq!(&d.to_bytes()[..], b"xabcde");
    }
}
