//! Arbitrary bytes into the relay framing decoder (`camstream_protocol::relay::decode`):
//! whatever comes off a QUIC stream must decode or fail cleanly, never panic, and a decoded
//! message must encode back to the bytes it came from.

#![no_main]

use bytes::BytesMut;
use camstream_protocol::relay::{decode, encode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match decode(&mut buf) {
            Ok(Some(msg)) => {
                let used = before.len() - buf.len();
                let mut again = BytesMut::new();
                encode(&msg, &mut again);
                assert_eq!(&again[..], &before[..used], "re-encoding changed the bytes");
            }
            Ok(None) | Err(_) => break,
        }
    }
});
