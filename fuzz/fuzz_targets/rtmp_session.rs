//! Arbitrary bytes into an RTMP session, raw and after scripted prefixes
//! (see `camstream_dataplane::fuzz::rtmp_session`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    camstream_dataplane::fuzz::rtmp_session(data);
});
