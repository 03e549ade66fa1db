//! RTMP bytes after an accepted publish, through the session, the segmenter, the TS and fMP4
//! muxers and both playlists (see `camstream_dataplane::fuzz::ingest`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    camstream_dataplane::fuzz::ingest(data);
});
