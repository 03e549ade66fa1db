//! The last line of defence: every call into `rml_rtmp` (and into the FLV demuxer, which
//! parses codec records from the wire) runs under `catch_unwind`.
//!
//! [`super::chunk`] and [`super::amf0`] keep the known crash paths of `rml_rtmp` 0.8 out of
//! reach; this catches the unknown ones, so a bug there ends one connection, not the process.
//! On the happy path `catch_unwind` costs next to nothing, so it is fine per frame.
//! A panic hook installed once keeps contained panics off stderr (the error is returned and
//! logged once by the shell) and hands every other panic to the hook that was there before.
//!
//! Does not help against aborts (stack overflow, failed allocation): those are what the
//! guards are for.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use super::RtmpError;

thread_local! {
    /// Depth of `contain` calls on this thread; the hook stays quiet while it is non-zero.
    static CONTAINING: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CONTAINING.try_with(Cell::get).unwrap_or(0) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into [`RtmpError::Internal`].
///
/// `f` must leave nothing half-updated that the caller uses after an error: callers treat
/// the error as fatal and drop the `rml_rtmp` state, which is why `AssertUnwindSafe` is fine.
pub(crate) fn contain<T>(during: &'static str, f: impl FnOnce() -> T) -> Result<T, RtmpError> {
    install_hook();
    CONTAINING.with(|c| c.set(c.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(c.get() - 1));
    result.map_err(|payload| RtmpError::Internal {
        during,
        message: panic_message(payload.as_ref()),
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_a_panic_into_an_error() {
        let err = contain("testing", || -> u8 { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(
            err,
            RtmpError::Internal {
                during: "testing",
                message: "boom 7".into()
            }
        );
        assert_eq!(contain("testing", || 5), Ok(5));
        // The counter is back to zero, so later panics reach the previous hook again.
        assert_eq!(CONTAINING.with(Cell::get), 0);
    }
}
