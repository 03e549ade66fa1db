//! [`Woken`]: a future re-polled only after its own waker fired.
//!
//! `tokio::select!` polls every branch at every wake-up of the task, although a branch whose
//! future already returned `Pending` has its waker registered and has nothing new to say
//! until that waker fires. For most futures that re-poll is cheap; a `CancellationToken`'s
//! wait is not: each poll locks the token's tree node and its `Notify` (issue 11: 1.9 % of
//! the server's CPU samples at 100 cameras, where an ingest task wakes up to once per RTMP
//! message). `Woken` gives the inner future a waker of its own that records
//! that it fired; until then (and while the task's waker is the same) a poll is one atomic
//! load.
//!
//! Leaves what the inner future waits for to the inner future; only the polling changes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// See the module docs.
pub(crate) struct Woken<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
    /// The task waker handed to `signal` at the last full poll; `None` before the first.
    task: Option<Waker>,
    /// Our waker for the inner future.
    own: Waker,
}

/// Set by the inner future's waker; forwards the wake-up to the task.
struct Signal {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .expect("the lock is never held across a panic")
            .clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl<F: Future> Woken<F> {
    pub(crate) fn new(inner: F) -> Self {
        let signal = Arc::new(Signal {
            fired: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        Self {
            inner: Box::pin(inner),
            own: Waker::from(signal.clone()),
            signal,
            task: None,
        }
    }
}

impl<F: Future> Future for Woken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Every field is `Unpin` (the inner future is boxed).
        let this = self.get_mut();
        let same_task = this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker()));
        if same_task && !this.signal.fired.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        if !same_task {
            *this
                .signal
                .task
                .lock()
                .expect("the lock is never held across a panic") = Some(cx.waker().clone());
            this.task = Some(cx.waker().clone());
        }
        // Cleared before the poll: a wake-up during it sets it again.
        this.signal.fired.store(false, Ordering::Release);
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.own))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::Woken;

    #[tokio::test]
    async fn resolves_when_the_inner_future_does() {
        let token = CancellationToken::new();
        let mut wait = Woken::new(token.clone().cancelled_owned());
        // Pending, and stays pending over many polls.
        for _ in 0..3 {
            let polled = tokio::time::timeout(Duration::from_millis(10), &mut wait).await;
            assert!(polled.is_err());
        }
        let cancel = tokio::spawn({
            let token = token.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                token.cancel();
            }
        });
        tokio::time::timeout(Duration::from_secs(5), &mut wait)
            .await
            .expect("woken by the cancellation");
        cancel.await.expect("cancel task");
    }

    #[tokio::test]
    async fn follows_a_new_task_waker() {
        let token = CancellationToken::new();
        let mut wait = Woken::new(token.clone().cancelled_owned());
        // Polled once by this task, then moved to another task that must be woken.
        let polled = tokio::time::timeout(Duration::from_millis(10), &mut wait).await;
        assert!(polled.is_err());
        let waiter = tokio::spawn(wait);
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
    }
}
