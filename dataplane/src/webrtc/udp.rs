//! Sending on the node's WebRTC socket with UDP segmentation offload (GSO): a session's
//! datagrams for one access unit go out in one `sendmsg` instead of one `sendto` each.
//!
//! str0m packetizes a frame into equal-sized FU-A packets (the last one shorter), which is
//! exactly the shape GSO takes: one buffer, one segment size, the last segment may be
//! shorter. [`Batch`] gathers them; [`Sender`] sends a batch through quinn-udp (quinn's own
//! UDP layer, re-exported as `quinn::udp`), which knows the kernel's GSO limit and falls
//! back to one datagram per call where the kernel or NIC refuses segmentation.
//!
//! The socket is also read with plain `recv_from` (`super::Node::serve`), so the UDP_GRO
//! option quinn-udp turns on is turned off again: a GRO read would coalesce several
//! viewers' datagrams into one buffer without their boundaries.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use quinn::udp::{Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Bytes in one GSO send: below the 64 KiB an IP packet can carry before it is segmented,
/// with room for IPv6 and UDP headers.
const MAX_BATCH_BYTES: usize = 64_000;

/// Datagrams for one destination, to be sent as one GSO buffer: every datagram the size of
/// the first, except the last, which may be shorter (and closes the batch).
#[derive(Debug, Default)]
pub(super) struct Batch {
    buf: Vec<u8>,
    destination: Option<SocketAddr>,
    segment: usize,
    count: usize,
    closed: bool,
}

impl Batch {
    /// Whether `len` bytes for `destination` can join the batch (of at most `max_segments`).
    pub(super) fn fits(&self, destination: SocketAddr, len: usize, max_segments: usize) -> bool {
        self.count == 0
            || (self.destination == Some(destination)
                && !self.closed
                && len <= self.segment
                && self.count < max_segments
                && self.buf.len() + len <= MAX_BATCH_BYTES)
    }

    /// Appends a datagram; the caller checked [`Batch::fits`] (and sends the batch first
    /// when it did not fit).
    pub(super) fn push(&mut self, destination: SocketAddr, data: &[u8]) {
        if self.count == 0 {
            self.destination = Some(destination);
            self.segment = data.len();
        } else if data.len() < self.segment {
            self.closed = true;
        }
        self.buf.extend_from_slice(data);
        self.count += 1;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagrams in the batch.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// The batch as quinn-udp's transmit (`None` when empty).
    fn transmit(&self) -> Option<Transmit<'_>> {
        Some(Transmit {
            destination: self.destination?,
            ecn: None,
            contents: &self.buf,
            segment_size: (self.count > 1).then_some(self.segment),
            src_ip: None,
        })
    }

    /// The datagrams one by one (for a kernel that refused segmentation).
    fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.buf.chunks(self.segment.max(1))
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.destination = None;
        self.segment = 0;
        self.count = 0;
        self.closed = false;
    }
}

/// The node's socket with quinn-udp's state for it (GSO support, its fallback).
pub(super) struct Sender {
    socket: Arc<UdpSocket>,
    state: UdpSocketState,
    /// `--webrtc-gso off`: one datagram per send.
    gso: bool,
}

impl Sender {
    /// Prepares `socket` for GSO sends (`gso` false: one datagram per send, as a plain
    /// `sendto`).
    ///
    /// # Errors
    /// quinn-udp's socket set-up errors.
    pub(super) fn new(socket: Arc<UdpSocket>, gso: bool) -> io::Result<Self> {
        let state = UdpSocketState::new((&*socket).into())?;
        disable_gro(socket.as_raw_fd());
        Ok(Self { socket, state, gso })
    }

    /// Most datagrams one send may carry (1 without GSO).
    pub(super) fn max_segments(&self) -> usize {
        if self.gso {
            self.state.max_gso_segments()
        } else {
            1
        }
    }

    /// Sends the batch and empties it. Errors are the peer's or the network's (UDP is
    /// lossy anyway: str0m retransmits on NACK); returned for logging.
    pub(super) async fn send(&self, batch: &mut Batch) -> io::Result<()> {
        let Some(tx) = batch.transmit() else {
            return Ok(());
        };
        let r = self.send_one(&tx).await;
        // A kernel or NIC without segmentation answers the first GSO send with EIO or
        // EINVAL; quinn-udp then stops segmenting (max segments 1). Send this batch's
        // datagrams one by one rather than lose the frame.
        let r = match r {
            Err(_) if tx.segment_size.is_some() && self.state.max_gso_segments() == 1 => {
                let destination = tx.destination;
                let mut r = Ok(());
                for d in batch.datagrams() {
                    r = r.and(
                        self.send_one(&Transmit {
                            destination,
                            ecn: None,
                            contents: d,
                            segment_size: None,
                            src_ip: None,
                        })
                        .await,
                    );
                }
                r
            }
            r => r,
        };
        batch.clear();
        r
    }

    async fn send_one(&self, tx: &Transmit<'_>) -> io::Result<()> {
        self.socket
            .async_io(Interest::WRITABLE, || {
                self.state.try_send((&*self.socket).into(), tx)
            })
            .await
    }
}

/// Turns UDP_GRO off on `fd` (see the module comment). Without it (an older kernel) there
/// is nothing to turn off.
fn disable_gro(fd: std::os::fd::RawFd) {
    if let Err(e) = crate::sockopt::set_int(fd, libc::SOL_UDP, libc::UDP_GRO, 0) {
        tracing::debug!(error = %e, "UDP_GRO off");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_frame_of_equal_packets_and_a_shorter_last_is_one_batch() {
        let mut b = Batch::default();
        for len in [1200, 1200, 1200, 700] {
            assert!(b.fits(addr(1), len, 64));
            b.push(addr(1), &vec![len as u8; len]);
        }
        assert_eq!(b.len(), 4);
        let tx = b.transmit().expect("a transmit");
        assert_eq!(tx.segment_size, Some(1200));
        assert_eq!(tx.contents.len(), 4300);
        let sizes: Vec<usize> = b.datagrams().map(<[u8]>::len).collect();
        assert_eq!(sizes, [1200, 1200, 1200, 700]);
        // After a shorter datagram nothing more joins, whatever its size.
        assert!(!b.fits(addr(1), 700, 64));
        assert!(!b.fits(addr(1), 1200, 64));
    }

    #[test]
    fn larger_datagrams_other_destinations_and_limits_start_a_new_batch() {
        let mut b = Batch::default();
        b.push(addr(1), &[0; 1000]);
        assert!(!b.fits(addr(1), 1001, 64), "larger than the segment");
        assert!(!b.fits(addr(2), 1000, 64), "another destination");
        assert!(!b.fits(addr(1), 1000, 1), "no GSO: one per send");
        assert!(b.fits(addr(1), 1000, 64));
        while b.fits(addr(1), 1000, 64) {
            b.push(addr(1), &[0; 1000]);
        }
        assert_eq!(b.len(), 64, "the segment limit");
        let mut b = Batch::default();
        while b.fits(addr(1), 1400, 1000) {
            b.push(addr(1), &[0; 1400]);
        }
        assert_eq!(b.len(), MAX_BATCH_BYTES / 1400, "the byte limit");
    }

    #[test]
    fn one_datagram_is_sent_without_a_segment_size() {
        let mut b = Batch::default();
        assert!(b.transmit().is_none());
        b.push(addr(1), &[1; 90]);
        let tx = b.transmit().expect("a transmit");
        assert_eq!(tx.segment_size, None);
        b.clear();
        assert!(b.is_empty());
    }

    /// Through the kernel: a batch from one GSO socket to another arrives as separate
    /// datagrams, in order, with their sizes, read with plain `recv_from` (with UDP_GRO
    /// left on, loopback would hand the receiver the whole batch as one datagram).
    #[tokio::test]
    async fn a_batch_arrives_as_separate_datagrams_at_a_socket_read_with_recv_from() {
        let a = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let b = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let sender = Sender::new(a.clone(), true).expect("sender a");
        let _gso_b = Sender::new(b.clone(), true).expect("sender b");
        let to = b.local_addr().expect("addr");
        let mut batch = Batch::default();
        let sizes = [1200, 1200, 1200, 1200, 333];
        let mut sends = 0;
        for (i, len) in sizes.into_iter().enumerate() {
            if !batch.fits(to, len, sender.max_segments()) {
                sender.send(&mut batch).await.expect("send");
                sends += 1;
            }
            batch.push(to, &vec![i as u8; len]);
        }
        sender.send(&mut batch).await.expect("send");
        sends += 1;
        assert!(batch.is_empty());
        if sender.max_segments() > 1 {
            assert_eq!(sends, 1, "one GSO send for the frame");
        }
        let mut buf = vec![0u8; 65_536];
        for (i, len) in sizes.into_iter().enumerate() {
            let (n, from) = b.recv_from(&mut buf).await.expect("recv");
            assert_eq!(from, a.local_addr().expect("addr"));
            assert_eq!(n, len, "datagram {i}");
            assert!(
                buf[..n].iter().all(|&x| x == i as u8),
                "datagram {i}'s bytes"
            );
        }
    }
}
