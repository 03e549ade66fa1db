//! Arbitrary FLV tag bodies into the demuxer (see `camstream_dataplane::fuzz::flv_tags`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    camstream_dataplane::fuzz::flv_tags(data);
});
