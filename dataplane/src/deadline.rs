//! [`Deadline`]: one tokio timer per connection for a sans-IO core's `poll_timeout`, re-armed
//! lazily.
//!
//! A core's deadline moves on every input (an idle timeout restarts with each read). Building
//! a new `Sleep` per wait inserts an entry into the runtime's timer wheel and removes it
//! again at every wake-up, under the timer driver's lock shared by every connection. Here
//! the timer is created once and is only re-armed when the core's deadline comes *earlier*
//! than the one armed, or after it fired. A later deadline is left to the next firing: the
//! shell then calls the core's `handle_timeout`, which does nothing before the core's real
//! deadline, and the timer is re-armed at it. A timeout therefore fires when it did before,
//! at the cost of at most one extra wake-up per deadline period.
//!
//! Leaves to the core when a deadline is due (it compares `now` with its own deadline).

use std::future::pending;
use std::pin::Pin;
use std::time::Instant;

use tokio::time::Sleep;

/// A lazily re-armed timer; see the module docs.
pub(crate) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    /// When the timer fires; `None` while nothing is armed (never fires).
    armed: Option<Instant>,
}

impl Deadline {
    /// A timer armed at `at` (`None`: never).
    pub(crate) fn new(at: Option<Instant>) -> Self {
        let when = at.map_or_else(far_future, tokio::time::Instant::from_std);
        Self {
            sleep: Box::pin(tokio::time::sleep_until(when)),
            armed: at,
        }
    }

    /// Follows the core's deadline: call it before each wait with the core's `poll_timeout`.
    /// Only an earlier deadline (or the first one after a firing) touches the timer.
    pub(crate) fn follow(&mut self, at: Option<Instant>) {
        match at {
            None => self.armed = None,
            Some(at) if self.armed.is_none_or(|armed| at < armed) => {
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
                self.armed = Some(at);
            }
            Some(_) => {}
        }
    }

    /// Resolves when the armed instant passed (never while nothing is armed). The core may
    /// not be due yet: its deadline may have moved later since it was armed.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future leaves the timer armed.
    pub(crate) async fn fired(&mut self) {
        if self.armed.is_none() {
            pending::<()>().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

/// What `tokio::time::sleep` uses for "a very long time" (~30 years).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Deadline;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_armed_instant_and_follows_earlier_deadlines() {
        let start = tokio::time::Instant::now();
        let at = |ms| (start + Duration::from_millis(ms)).into_std();
        let mut d = Deadline::new(Some(at(100)));
        // A later deadline does not move the timer: it fires at the armed one.
        d.follow(Some(at(300)));
        d.fired().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        // After firing, the next deadline is armed.
        d.follow(Some(at(300)));
        // An earlier one re-arms.
        d.follow(Some(at(200)));
        d.fired().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // None: never fires.
        d.follow(None);
        let never = tokio::time::timeout(Duration::from_secs(3600), d.fired()).await;
        assert!(never.is_err());
    }
}
