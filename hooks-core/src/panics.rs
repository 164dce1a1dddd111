//! Keeping caught plugin panics out of stderr, on request.
//!
//! The engine catches a panic in an implementation and returns it as a
//! [`HookError`](crate::HookError); but Rust runs the panic hook first, at
//! the panic, and the default one prints the report (and, under
//! `RUST_BACKTRACE=1`, a backtrace). Only the program owns the panic hook,
//! so replacing it is the host's choice: [`quiet_plugin_panics`].

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// How many implementations this thread is running under the engine's
    /// `catch_unwind` right now.
    static CATCHING: Cell<usize> = const { Cell::new(0) };
}

/// Runs `run` under `catch_unwind`, as caught code: what the engine does
/// with every implementation it runs (a sync call, the start or a poll of
/// an async one).
/// (No guard lowers the count: `catch_unwind` returns whether `run`
/// unwinds or not, and the count goes down after it either way.)
#[inline]
pub(crate) fn catch<R>(run: impl FnOnce() -> R) -> std::thread::Result<R> {
    CATCHING.set(CATCHING.get() + 1);
    let caught = catch_unwind(AssertUnwindSafe(run));
    // Read again rather than kept: one register fewer held across `run`.
    CATCHING.set(CATCHING.get() - 1);
    caught
}

/// Installs a panic hook that keeps quiet about panics inside hook
/// implementations (which the engine catches and returns as errors, with
/// the panic's message) and hands every other panic to the hook that was
/// installed before. Call it once at startup, after any panic hook of your
/// own; later calls do nothing.
///
/// Quiet means: while the engine runs an implementation under its
/// `catch_unwind` on this thread (a sync implementation, the start or a
/// poll of an async one). A panic the engine does not catch (in a
/// monitoring callback, or on a thread or task an implementation spawned)
/// goes to the previous hook as before.
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Events { fn compute(&self, x: u32) -> HookResult<u32>; }
/// struct Faulty;
///
/// #[hookimpl]
/// impl Events for Faulty {
///     fn compute(&self, x: u32) -> HookResult<u32> {
///         panic!("faulty cannot count to {x}")
///     }
/// }
///
/// hookery::quiet_plugin_panics(); // nothing on stderr for the panic below
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("faulty", Faulty)?;
/// let error = pm.hook().compute(3).unwrap_err();
/// assert!(error.to_string().contains("faulty cannot count to 3"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn quiet_plugin_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.get() == 0 {
                previous(info);
            }
        }));
    });
}
