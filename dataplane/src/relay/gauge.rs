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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use metrics::{
        Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::{Direction, OpenStream};

    /// Keeps the value of `camstream_relay_streams_in` and `_out` (as integers).
    #[derive(Default)]
    struct Gauges {
        streams_in: Arc<Value>,
        streams_out: Arc<Value>,
    }

    #[derive(Default)]
    struct Value(AtomicI64);

    impl GaugeFn for Value {
        fn increment(&self, v: f64) {
            self.0.fetch_add(v as i64, Ordering::Relaxed);
        }
        fn decrement(&self, v: f64) {
            self.0.fetch_sub(v as i64, Ordering::Relaxed);
        }
        fn set(&self, v: f64) {
            self.0.store(v as i64, Ordering::Relaxed);
        }
    }

    impl Recorder for Gauges {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            match key.name() {
                "camstream_relay_streams_in" => Gauge::from_arc(self.streams_in.clone()),
                "camstream_relay_streams_out" => Gauge::from_arc(self.streams_out.clone()),
                _ => Gauge::noop(),
            }
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn open_streams_are_counted_per_direction_until_dropped() {
        let g = Gauges::default();
        let get = |v: &Value| v.0.load(Ordering::Relaxed);
        metrics::with_local_recorder(&g, || {
            let a = OpenStream::open(Direction::In);
            let b = OpenStream::open(Direction::In);
            let c = OpenStream::open(Direction::Out);
            assert_eq!((get(&g.streams_in), get(&g.streams_out)), (2, 1));
            drop(a);
            drop(c);
            assert_eq!((get(&g.streams_in), get(&g.streams_out)), (1, 0));
            drop(b);
        });
        assert_eq!((get(&g.streams_in), get(&g.streams_out)), (0, 0));
    }
}
