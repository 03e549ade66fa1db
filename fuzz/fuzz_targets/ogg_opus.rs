//! Arbitrary bytes into the Ogg Opus reader of WebRTC audio (see
//! `camstream_dataplane::fuzz::ogg_opus`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    camstream_dataplane::fuzz::ogg_opus(data);
});
