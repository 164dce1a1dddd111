//! Monitoring: `add_hookcall_monitoring`'s before/after callbacks and the
//! `tracing` spans of calls and implementations.

use std::sync::{Arc, Weak};

use tracing::Span;
use tracing::field::Empty;

use crate::error::HookError;
use crate::hookimpl::ImplInfo;
use crate::spec::{HookSpec, Spec};

/// What a monitor is told about a call: the hook and its implementations in
/// call order (wrappers first).
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
#[must_use = "dropping the handle keeps the monitoring; call `undo()` to remove it"]
pub struct MonitoringHandle {
    pub(crate) id: u64,
    pub(crate) undo: Box<dyn FnOnce(u64) + Send + Sync>,
}

impl MonitoringHandle {
    pub(crate) fn new<S: Spec + ?Sized>(id: u64, shared: Weak<crate::registry::Shared<S>>) -> Self {
        MonitoringHandle {
            id,
            undo: Box::new(move |id| {
                if let Some(shared) = shared.upgrade() {
                    shared.change(|state| state.remove_monitor(id));
                }
            }),
        }
    }

    /// Stops calling this monitor's callbacks (from the next call on).
    pub fn undo(self) {
        (self.undo)(self.id)
    }
}

impl std::fmt::Debug for MonitoringHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitoringHandle")
            .field("id", &self.id)
            .finish()
    }
}

/// The span of one hook call.
pub(crate) fn call_span(spec: &HookSpec) -> Span {
    tracing::debug_span!("hook", hook = spec.name, outcome = Empty)
}

/// The span of one implementation.
pub(crate) fn impl_span(spec: &HookSpec, info: &ImplInfo) -> Span {
    tracing::trace_span!(
        "hookimpl",
        hook = spec.name,
        plugin = info.plugin,
        wrapper = info.wrapper,
        outcome = Empty
    )
}

/// Records how a call or an implementation ended on its span.
pub(crate) fn record<T>(span: &Span, outcome: &Result<T, HookError>) {
    if !span.is_disabled() {
        match outcome {
            Ok(_) => span.record("outcome", "ok"),
            Err(e) => span.record("outcome", tracing::field::display(e)),
        };
    }
}
