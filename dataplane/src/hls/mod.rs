//! Segmenters, the in-memory window and playlist writers.
//!
//! Owns where segments and parts are cut, the per-camera sliding window viewers read, and
//! the media playlists. Leaves box/packet formats to `fmp4` and `ts`, sockets to `http`.

pub(crate) mod playlist;
pub(crate) mod segmenter;
pub(crate) mod window;

pub use window::DEFAULT_PART_HOLD_BACK;
