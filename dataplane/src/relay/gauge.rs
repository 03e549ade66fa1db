//! `/metrics` gauges of open relay streams: `camstream_relay_streams_in` (this node pulls a
//! camera as edge) and `camstream_relay_streams_out` (this node feeds an edge as origin).
//! Touched once per stream open and close, never per frame.

/// Which way a relay stream carries media, seen from this node.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    /// Pulled from an origin (edge side).
    In,
    /// Fed to an edge (origin side).
    Out,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::In => "camstream_relay_streams_in",
            Direction::Out => "camstream_relay_streams_out",
        }
    }
}

/// Counts one open relay stream for as long as it lives (the gauge goes down on drop, on
/// every path out of the stream's task).
pub(super) struct OpenStream(Direction);

impl OpenStream {
    pub(super) fn open(dir: Direction) -> Self {
        metrics::gauge!(dir.name()).increment(1.0);
        Self(dir)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!(self.0.name()).decrement(1.0);
    }
}
