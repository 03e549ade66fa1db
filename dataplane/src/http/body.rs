//! Response bodies over [`Chunks`]: the slices go to hyper as they are (large ones cut
//! into [`MAX_FRAME`] sub-slices, no copy), with an exact length so HTTP/1.1 sends
//! `Content-Length` (keep-alive, no chunked framing).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::chunks::Chunks;

/// The most one frame hands hyper. hyper takes a whole frame into its buffers (h2: into
/// the stream's send queue, whatever the peer's window), so a 1 MB segment slice in
/// one frame would leave the body at once and the write timeout would only see an idle
/// connection. Cut into sub-slices, the body stays alive and asked for more only as the
/// client takes bytes.
pub(crate) const MAX_FRAME: usize = 64 * 1024;

/// A body that yields the slices of a [`Chunks`] one by one.
pub(crate) struct ChunksBody {
    chunks: Chunks,
    next: usize,
    /// Offset into slice `next` already yielded.
    offset: usize,
    remaining: u64,
}

impl ChunksBody {
    pub(crate) fn new(chunks: Chunks) -> Self {
        let remaining = chunks.len() as u64;
        Self {
            chunks,
            next: 0,
            offset: 0,
            remaining,
        }
    }
}

impl Body for ChunksBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        match this.chunks.slices().get(this.next) {
            Some(b) => {
                let end = b.len().min(this.offset + MAX_FRAME);
                let frame = if this.offset == 0 && end == b.len() {
                    b.clone()
                } else {
                    b.slice(this.offset..end)
                };
                if end == b.len() {
                    this.next += 1;
                    this.offset = 0;
                } else {
                    this.offset = end;
                }
                this.remaining -= frame.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn yields_all_slices_with_exact_size() {
        let mut c = Chunks::new();
        c.push(Bytes::from_static(b"hello "));
        c.push(Bytes::from_static(b"world"));
        let body = ChunksBody::new(c);
        assert_eq!(body.size_hint().exact(), Some(11));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello world");
    }

    #[tokio::test]
    async fn cuts_large_slices_into_bounded_frames_without_copying() {
        let big = Bytes::from((0..MAX_FRAME * 2 + 10).map(|i| i as u8).collect::<Vec<_>>());
        let mut c = Chunks::new();
        c.push(Bytes::from_static(b"head"));
        c.push(big.clone());
        let mut body = ChunksBody::new(c);
        let mut frames = Vec::new();
        while let Some(f) = body.frame().await {
            frames.push(f.unwrap().into_data().unwrap());
        }
        let lens: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(lens, vec![4, MAX_FRAME, MAX_FRAME, 10]);
        assert_eq!(frames[1].as_ptr(), big.as_ptr(), "a sub-slice, not a copy");
        assert!(body.is_end_stream());
        assert_eq!(frames[1..].concat(), big.to_vec());
    }
}
