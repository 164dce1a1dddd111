//! A component's warm instances: instantiating costs far more than a call
//! (see BENCHMARKS.md), so an instance that ended a call cleanly waits here
//! for the next one.
//!
//! - A call takes an idle instance or, when none is idle, a new one: a
//!   nested call into a component already on the stack never re-enters the
//!   instance its caller holds (that would trap), it takes another.
//! - Only a call that ended cleanly (an answer, or the plugin's own error)
//!   gives its instance back; a trap, an overrun or a dropped call discards
//!   it, so the next call never sees what a fault left behind.
//! - At most `[plugins.<name>.sandbox] warm_instances` wait; more
//!   concurrent calls instantiate and discard their extra instances.
//! - Linear memory never shrinks: an instance whose memory grew past half
//!   its cap is discarded rather than kept, so an idle instance holds at
//!   most that much of the host's memory and a call never starts close to
//!   the cap because of an earlier one.
//!
//! What the host keeps per call (the hook's context, the log budget, the
//! lost-race flag) is reset by the runtime at each call; what the guest
//! keeps in its own statics lives as long as its instance, as a native
//! plugin's statics live as long as the process.

use std::sync::Mutex;

/// At most `size` idle `T`s; taking and giving back hold the lock for a
/// push or a pop only.
pub struct Pool<T> {
    idle: Mutex<Vec<T>>,
    size: usize,
}

impl<T> Pool<T> {
    /// An empty pool keeping at most `size` idle items.
    pub fn new(size: usize) -> Pool<T> {
        Pool {
            idle: Mutex::new(Vec::new()),
            size,
        }
    }

    /// The most recently given back item (its memory is the likeliest to
    /// be in the CPU's caches), if any.
    pub fn take(&self) -> Option<T> {
        self.lock().pop()
    }

    /// Keeps `item` for a later call, unless `size` already wait (then it
    /// is dropped, outside the lock).
    pub fn give_back(&self, item: T) {
        let mut idle = self.lock();
        if idle.len() < self.size {
            idle.push(item);
            return;
        }
        drop(idle);
        drop(item);
    }

    /// How many wait.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.lock().len()
    }

    /// A poisoned lock only means a panic elsewhere while pushing or
    /// popping: the vector is whole.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether an instance whose memories and tables hold `used` bytes of a
/// `cap` goes back to the pool (see the module's documentation).
pub fn reusable(used: usize, cap: usize) -> bool {
    used <= cap / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_at_most_its_size_and_hands_back_the_latest() {
        let pool = Pool::new(2);
        assert_eq!(pool.take(), None::<u32>);
        for i in 1..=3 {
            pool.give_back(i);
        }
        assert_eq!(pool.idle(), 2, "the third was dropped");
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), None);
        let none = Pool::new(0);
        none.give_back(1);
        assert_eq!(none.take(), None, "size 0: a fresh instance per call");
    }

    #[test]
    fn an_instance_grown_past_half_its_cap_is_not_reused() {
        assert!(reusable(2 << 20, 64 << 20));
        assert!(reusable(32 << 20, 64 << 20));
        assert!(!reusable((32 << 20) + 1, 64 << 20));
    }
}
