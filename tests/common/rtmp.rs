//! A scripted RTMP client over a real socket, for feeding the server hostile input:
//! `rml_rtmp`'s client handshake and `connect` command, then hand-built chunks
//! (RTMP 1.0 §5.3.1: basic header, type-0 message header).

use std::net::SocketAddr;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Opens a TCP connection to `addr`.
pub(crate) async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

/// Runs the client side of the RTMP handshake (C0+C1, then C2) on `sock`.
pub(crate) async fn handshake(sock: &mut TcpStream) {
    let mut hs = Handshake::new(PeerType::Client);
    let c0c1 = hs.generate_outbound_p0_and_p1().expect("C0+C1");
    sock.write_all(&c0c1).await.expect("send C0+C1");
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .expect("server handshake in time")
            .expect("read S0+S1+S2");
        assert!(n > 0, "server closed during the handshake");
        match hs.process_bytes(&buf[..n]).expect("valid server handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await.expect("send");
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await.expect("send C2");
                assert!(remaining_bytes.is_empty(), "server spoke before C2");
                return;
            }
        }
    }
}

/// Sends `connect` to app `live` as `rml_rtmp`'s client does and waits until the server
/// accepts it.
pub(crate) async fn connect_app(sock: &mut TcpStream) {
    let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).expect("session");
    match session
        .request_connection("live".to_owned())
        .expect("connect request")
    {
        ClientSessionResult::OutboundResponse(p) => {
            sock.write_all(&p.bytes).await.expect("send connect");
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .expect("connect answered in time")
            .expect("read");
        assert!(n > 0, "server closed after connect");
        for r in session
            .handle_input(&buf[..n])
            .expect("valid server messages")
        {
            match r {
                ClientSessionResult::OutboundResponse(p) => {
                    sock.write_all(&p.bytes).await.expect("send");
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    return;
                }
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::ConnectionRequestRejected { description },
                ) => panic!("connect rejected: {description}"),
                _ => {}
            }
        }
    }
}

/// A type-0 chunk header: chunk stream `csid` (2..=63), message of `type_id` and `len`
/// bytes on message stream `stream_id`, timestamp 0.
pub(crate) fn message_header(csid: u8, type_id: u8, len: u32, stream_id: u32) -> Vec<u8> {
    assert!((2..64).contains(&csid));
    let mut h = vec![csid]; // fmt 0
    h.extend_from_slice(&[0, 0, 0]); // timestamp
    h.extend_from_slice(&len.to_be_bytes()[1..]); // 24-bit length
    h.push(type_id);
    h.extend_from_slice(&stream_id.to_le_bytes());
    h
}

/// A whole `SetChunkSize` protocol control message (type 1, chunk stream 2).
pub(crate) fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut m = message_header(2, 1, 4, 0);
    m.extend_from_slice(&size.to_be_bytes());
    m
}

/// Reads and discards until the server closes the connection; returns how long it took.
/// Panics if it is still open after `timeout`.
pub(crate) async fn wait_closed(sock: &mut TcpStream, timeout: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(start + timeout, sock.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {timeout:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}
