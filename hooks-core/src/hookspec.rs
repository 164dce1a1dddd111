//! Hook specifications as data: what a hook is called and how it is called.

use std::time::Duration;

/// What a call does when an implementation fails (returns `Err`, panics or
/// overruns its time limit). Chosen per hook: `#[hookspec(on_error = "continue")]`.
///
/// ```
/// # use hookery::prelude::*;
/// use hookery::ErrorPolicy;
///
/// #[hookspec]
/// pub trait Events {
///     fn compute(&self, x: u32) -> HookResult<u32>;
///     #[hookspec(on_error = "continue")]
///     fn notify(&self, x: u32) -> HookResult<u32>;
/// }
/// struct Broken;
/// #[hookimpl]
/// impl Events for Broken {
///     fn compute(&self, _: u32) -> HookResult<u32> { Err(anyhow::anyhow!("broken")) }
///     fn notify(&self, _: u32) -> HookResult<u32> { Err(anyhow::anyhow!("broken")) }
/// }
/// struct Fine;
/// #[hookimpl]
/// impl Events for Fine {
///     fn compute(&self, x: u32) -> HookResult<u32> { Ok(x) }
///     fn notify(&self, x: u32) -> HookResult<u32> { Ok(x) }
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("fine", Fine)?;
/// pm.register("broken", Broken)?;                   // registered later: runs first
/// assert_eq!(pm.hookspecs()[0].on_error, ErrorPolicy::Propagate);
/// assert_eq!(pm.hook().compute(1).unwrap_err().plugin(), Some("broken"));
///
/// assert_eq!(pm.hookspecs()[1].on_error, ErrorPolicy::Continue);
/// let notified = pm.hook().notify(1)?;              // `fine` still ran
/// assert_eq!(notified.values().collect::<Vec<_>>(), [&1]);
/// assert_eq!(notified.errors()[0].plugin(), Some("broken"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
/// A spec's hooks are [`PluginManager::hookspecs`](crate::PluginManager::hookspecs)
/// (or `<dyn Trait as Spec>::HOOKS`), in the trait's order.
///
/// ```
/// # use hookery::prelude::*;
/// use hookery::{ErrorPolicy, HookSpec};
///
/// #[hookspec]
/// pub trait Events {
///     #[hookspec(firstresult)]
///     fn lookup(&self, key: u32) -> HookResult<Option<String>>;
///     #[hookspec(historic, on_error = "continue")]
///     fn started(&self, at: u64) -> HookResult<()>;
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// let [lookup, started]: &[HookSpec; 2] = pm.hookspecs().try_into()?;
/// assert_eq!((lookup.name, lookup.firstresult, lookup.historic), ("lookup", true, false));
/// assert_eq!((started.name, started.historic, started.on_error), ("started", true, ErrorPolicy::Continue));
/// assert!(!lookup.is_async && lookup.timeout.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    /// Async hooks only: the time each plain implementation may take (see
    /// [`HookErrorKind::TimedOut`](crate::HookErrorKind::TimedOut)).
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
