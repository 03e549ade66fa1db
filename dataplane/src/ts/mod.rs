//! The MPEG-TS muxer. Built by the TS work.
