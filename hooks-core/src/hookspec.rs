//! Hook specifications as data: what a hook is called and how it is called.

use std::time::Duration;

/// What a call does when an implementation fails (returns `Err`, panics or
/// overruns its time limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorPolicy {
    /// pluggy's rule: the first error stops the chain; wrappers already
    /// entered see it, and the caller gets it. The default.
    Propagate,
    /// For notifications: every implementation runs; errors are logged and
    /// returned beside the results ([`Results::errors`](crate::Results::errors)).
    Continue,
}

/// How one hook is called, as declared by `#[hookspec(...)]` on its method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookSpec {
    /// The method name.
    pub name: &'static str,
    /// `async fn` hook.
    pub is_async: bool,
    /// Stop at the first implementation that returns `Some` and return only that.
    pub firstresult: bool,
    /// Calls are remembered and replayed to plugins registered later.
    pub historic: bool,
    /// What an implementation's error does to the call.
    pub on_error: ErrorPolicy,
    /// Async hooks only: all plain implementations run at once (results are
    /// still reported in call order).
    pub concurrent: bool,
    /// Async hooks only: the time each plain implementation may take.
    pub timeout: Option<Duration>,
    /// `warn_on_impl = "..."`: implementing this hook is deprecated; every
    /// registration of a plugin that implements it logs this warning,
    /// naming plugin and hook (pluggy's `warn_on_impl`).
    pub warn_on_impl: Option<&'static str>,
}

/// The index of the hook called `name` in `hooks`.
pub(crate) fn index_of(hooks: &[HookSpec], name: &str) -> Option<usize> {
    hooks.iter().position(|h| h.name == name)
}
