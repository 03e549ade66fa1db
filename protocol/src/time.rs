//! Timestamp unwrapping: wire clocks to one monotonic 64-bit timeline.
//!
//! RTMP carries a 32-bit millisecond timestamp that wraps after ~49.7 days, may start at any
//! value, and some encoders wrap it at 24 bits (~4.66 h). Encoders also jump (restarts of
//! their clock, buggy muxers). Outputs need a timeline that never goes backwards and never
//! jumps by more than a frame or two, so [`Unwrapper`] turns each raw value into a 64-bit
//! millisecond count and absorbs wraps and jumps into an offset.

/// 90 kHz ticks per second (the MPEG system clock used for every [`crate::MediaFrame`]).
pub const TICKS_PER_SECOND: i64 = 90_000;

/// 90 kHz ticks per millisecond.
pub const MS_TO_90K: i64 = 90;

/// Any step larger than this (either way) is treated as a clock jump, not media time.
const MAX_STEP_MS: i64 = 10_000;

/// Values up to this far behind the largest one seen are normal interleaving (audio slightly behind video,
/// B-frame-free encoders with jittery clocks) and are passed through unchanged.
const MAX_REORDER_MS: i64 = 1_000;

/// Unwraps a 32-bit millisecond clock shared by all tracks of one stream.
///
/// Feed every timestamp of the stream, all tracks, in arrival order. The result starts at the
/// first raw value (so relative spacing is preserved) and is extended by each step; 32-bit and
/// 24-bit wraps and jumps larger than ten seconds are absorbed, continuing from the last value
/// plus `nominal_step_ms`.
#[derive(Debug, Clone)]
pub struct Unwrapper {
    last_raw: Option<u32>,
    last: i64,
    max: i64,
    jumps: u64,
}

impl Default for Unwrapper {
    fn default() -> Self {
        Self::new()
    }
}

impl Unwrapper {
    /// A fresh unwrapper; the first value fed comes back unchanged.
    pub fn new() -> Self {
        Self {
            last_raw: None,
            last: 0,
            max: 0,
            jumps: 0,
        }
    }

    /// How many clock jumps (including 24-bit wraps) were absorbed so far.
    pub fn jumps(&self) -> u64 {
        self.jumps
    }

    /// Unwraps one raw millisecond timestamp. `nominal_step_ms` is the step assumed after a
    /// jump (a frame duration; 0 is fine).
    pub fn unwrap(&mut self, raw: u32, nominal_step_ms: i64) -> i64 {
        let Some(last_raw) = self.last_raw else {
            self.last_raw = Some(raw);
            self.last = i64::from(raw);
            self.max = self.last;
            return self.last;
        };
        // The 32-bit wrapping difference is the right step for 32-bit wraps.
        let step = i64::from(raw.wrapping_sub(last_raw) as i32);
        let candidate = self.last + step;
        let value = if (self.max - MAX_REORDER_MS..=self.max + MAX_STEP_MS).contains(&candidate) {
            candidate
        } else {
            // A jump (or a 24-bit wrap, which looks like one): continue just after the
            // largest value seen so outputs stay monotonic.
            self.jumps += 1;
            self.max + nominal_step_ms.max(0)
        };
        self.last_raw = Some(raw);
        self.last = value;
        self.max = self.max.max(value);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_anywhere_and_follows_steps() {
        let mut u = Unwrapper::new();
        assert_eq!(u.unwrap(5_000_000, 33), 5_000_000);
        assert_eq!(u.unwrap(5_000_033, 33), 5_000_033);
        // audio slightly behind video is kept as it is
        assert_eq!(u.unwrap(5_000_010, 33), 5_000_010);
        assert_eq!(u.jumps(), 0);
    }

    #[test]
    fn crosses_the_32_bit_wrap() {
        let mut u = Unwrapper::new();
        let start = u32::MAX - 40;
        let first = u.unwrap(start, 33);
        let second = u.unwrap(start.wrapping_add(33), 33);
        let third = u.unwrap(start.wrapping_add(66), 33);
        assert_eq!(second - first, 33);
        assert_eq!(third - first, 66);
        assert!(third > i64::from(u32::MAX));
        assert_eq!(u.jumps(), 0);
    }

    #[test]
    fn absorbs_a_24_bit_wrap_as_a_jump() {
        let mut u = Unwrapper::new();
        let a = u.unwrap(0x00FF_FFF0, 33);
        let b = u.unwrap(0x0000_0010, 33);
        assert_eq!(b, a + 33);
        assert_eq!(u.unwrap(0x0000_0043, 33), b + 0x33);
        assert_eq!(u.jumps(), 1);
    }

    #[test]
    fn absorbs_backward_and_forward_jumps() {
        let mut u = Unwrapper::new();
        let a = u.unwrap(100_000, 40);
        let b = u.unwrap(0, 40);
        assert_eq!(b, a + 40);
        let c = u.unwrap(3_600_000, 40);
        assert_eq!(c, b + 40);
        assert_eq!(u.jumps(), 2);
    }

    proptest::proptest! {
        #[test]
        fn output_never_falls_behind_the_reorder_window(
            start in proptest::prelude::any::<u32>(),
            steps in proptest::collection::vec(-2_000i64..20_000, 1..200),
        ) {
            let mut u = Unwrapper::new();
            let mut raw = start;
            let mut max = u.unwrap(raw, 33);
            for s in steps {
                raw = raw.wrapping_add(s as u32);
                let v = u.unwrap(raw, 33);
                proptest::prop_assert!(v >= max - MAX_REORDER_MS);
                proptest::prop_assert!(v <= max + MAX_STEP_MS);
                max = max.max(v);
            }
        }
    }
}
