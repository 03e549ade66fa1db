//! Response bodies over [`Chunks`]: the slices go to hyper as they are, with an exact
//! length so HTTP/1.1 sends `Content-Length` (keep-alive, no chunked framing).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::chunks::Chunks;

/// A body that yields the slices of a [`Chunks`] one by one.
pub(crate) struct ChunksBody {
    chunks: Chunks,
    next: usize,
    remaining: u64,
}

impl ChunksBody {
    pub(crate) fn new(chunks: Chunks) -> Self {
        let remaining = chunks.len() as u64;
        Self {
            chunks,
            next: 0,
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
                this.next += 1;
                this.remaining -= b.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(b.clone()))))
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
}
