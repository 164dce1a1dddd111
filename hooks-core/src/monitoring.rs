//! Monitoring: what [`PluginManager::add_hookcall_monitoring`](crate::PluginManager::add_hookcall_monitoring)
//! takes and returns.

use std::sync::Arc;

use crate::error::HookError;
use crate::hookimpl::ImplInfo;
use crate::hookspec::HookSpec;

/// What a monitor is told about a call: the hook and its implementations in
/// call order (wrappers first). See the example of
/// [`PluginManager::add_hookcall_monitoring`](crate::PluginManager::add_hookcall_monitoring).
#[derive(Clone, Copy, Debug)]
pub struct HookCallInfo<'a> {
    /// The hook's specification.
    pub hook: &'static HookSpec,
    /// The implementations this call runs, in call order.
    pub impls: &'a [ImplInfo],
}

type Before = dyn Fn(&HookCallInfo<'_>) + Send + Sync;
type After = dyn Fn(&HookCallInfo<'_>, Result<(), &HookError>) + Send + Sync;

pub(crate) struct Monitor {
    pub(crate) id: u64,
    before: Box<Before>,
    after: Box<After>,
}

impl Monitor {
    pub(crate) fn new(
        id: u64,
        before: impl Fn(&HookCallInfo<'_>) + Send + Sync + 'static,
        after: impl Fn(&HookCallInfo<'_>, Result<(), &HookError>) + Send + Sync + 'static,
    ) -> Self {
        Monitor {
            id,
            before: Box::new(before),
            after: Box::new(after),
        }
    }
}

/// Tells every monitor a call starts.
pub(crate) fn before(monitors: &[Arc<Monitor>], info: &HookCallInfo<'_>) {
    for m in monitors {
        (m.before)(info);
    }
}

/// Tells every monitor how a call ended.
pub(crate) fn after<O>(
    monitors: &[Arc<Monitor>],
    info: &HookCallInfo<'_>,
    outcome: &Result<O, HookError>,
) {
    for m in monitors {
        (m.after)(info, outcome.as_ref().map(|_| ()));
    }
}

/// Removes the monitoring it was returned for; see
/// [`PluginManager::add_hookcall_monitoring`](crate::PluginManager::add_hookcall_monitoring).
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let pm = PluginManager::<dyn Events>::new();
/// let calls = Arc::new(AtomicUsize::new(0));
/// let counted = calls.clone();
/// let handle = pm.add_hookcall_monitoring(
///     move |_| { counted.fetch_add(1, Ordering::Relaxed); },
///     |_, _| {},
/// );
/// pm.hook().saved(1)?;
/// handle.undo();                 // dropping the handle instead would keep the monitor
/// pm.hook().saved(2)?;
/// assert_eq!(calls.load(Ordering::Relaxed), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the handle keeps the monitoring; call `undo()` to remove it"]
pub struct MonitoringHandle {
    undo: Box<dyn FnOnce() + Send + Sync>,
}

impl MonitoringHandle {
    pub(crate) fn new(undo: impl FnOnce() + Send + Sync + 'static) -> Self {
        MonitoringHandle {
            undo: Box::new(undo),
        }
    }

    /// Stops calling this monitor's callbacks (from the next call on;
    /// a [`call_extra`](crate::PluginManager::call_extra) relay made before
    /// keeps the monitors it was made with).
    pub fn undo(self) {
        (self.undo)()
    }
}

impl std::fmt::Debug for MonitoringHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitoringHandle").finish_non_exhaustive()
    }
}
