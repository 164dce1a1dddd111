//! Hook specifications: what a hook is called, how it is called, and the
//! [`Spec`] trait that `#[hookspec]` implements for `dyn YourTrait`.

use std::time::Duration;

use crate::caller::Caller;

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
}

/// A set of hooks: implemented by `#[hookspec]` for `dyn YourTrait`.
///
/// You never implement this by hand; it is how [`PluginManager`](crate::PluginManager)
/// learns the hooks of your trait and how [`PluginManager::hook`](crate::PluginManager::hook)
/// hands out the typed relay.
pub trait Spec: Send + Sync + 'static {
    /// The trait's name.
    const NAME: &'static str;
    /// Every hook of the trait, in declaration order.
    const HOOKS: &'static [HookSpec];
    /// The generated relay, one method per hook (`<Trait>Relay`).
    type Relay<'m>;
    /// Wraps a [`Caller`] into the typed relay.
    fn relay(caller: Caller<'_, Self>) -> Self::Relay<'_>;

    /// The index of the hook called `name`, if the spec has it.
    fn hook_index(name: &str) -> Option<usize> {
        Self::HOOKS.iter().position(|h| h.name == name)
    }
}
