//! Re-entrancy: how deeply hook calls are nested right now, on this task.
//!
//! A thread-local counter, raised while a call runs. A sync call raises it
//! for its whole duration; an async call raises it for each of its polls, so
//! the count is rebuilt from the outermost call inward at every poll and
//! stays right when a task moves between threads. A sync hook called from
//! inside an async implementation counts on the same scale.

use std::cell::Cell;
#[cfg(feature = "async")]
use std::future::Future;
#[cfg(feature = "async")]
use std::pin::Pin;
#[cfg(feature = "async")]
use std::task::{Context, Poll};

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Raises the depth until dropped.
pub(crate) struct Level(());

impl Level {
    /// Enters one more level; returns the guard and the new depth.
    #[inline]
    pub(crate) fn enter() -> (Level, usize) {
        let depth = DEPTH.get() + 1;
        DEPTH.set(depth);
        (Level(()), depth)
    }
}

impl Drop for Level {
    #[inline]
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
    }
}

/// The depth of the call being polled (1 for an outermost call).
#[inline]
pub(crate) fn current() -> usize {
    DEPTH.get()
}

#[cfg(feature = "async")]
pin_project_lite::pin_project! {
    /// An async call: one level deeper while it is being polled. (The
    /// common async call, `call_loop`'s `Sequence`, raises the level in its
    /// own poll instead: a wrapper would be one more move of it.)
    pub(crate) struct Nested<F> {
        #[pin]
        inner: F,
    }
}

#[cfg(feature = "async")]
impl<F> Nested<F> {
    pub(crate) fn new(inner: F) -> Self {
        Nested { inner }
    }
}

#[cfg(feature = "async")]
impl<F: Future> Future for Nested<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let (_level, _) = Level::enter();
        self.project().inner.poll(cx)
    }
}
