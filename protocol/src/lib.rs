//! Types shared by every camstream plane: media frames, codec configurations and the
//! timestamp arithmetic that turns wire clocks into one monotonic 64-bit timeline.
//!
//! This crate does no I/O (no tokio, sockets or files): it is the vocabulary the data plane,
//! the control plane and the bench harness speak. Parsers for codec configuration records
//! live here because every output (TS, fMP4, recorder, relay) needs the same facts about a
//! track; container demuxers (FLV, later RTSP/SRT) live in the data plane.

pub mod abr;
pub mod auth;
mod codec;
mod control;
mod fence;
mod frame;
mod health;
mod placement;
pub mod relay;
mod time;

pub use codec::{
    AacConfig, AudioCodec, AudioConfig, AvcConfig, CodecError, TrackConfig, VideoCodec, VideoConfig,
};
pub use control::LiveControl;
pub use fence::{Fenced, OriginFence};
pub use frame::{MediaEvent, MediaFrame, StreamMetadata, TrackKind};
pub use health::{StreamHealth, StreamState};
pub use placement::{Origin, OriginLocator};
pub use time::{MS_TO_90K, TICKS_PER_SECOND, Unwrapper};
