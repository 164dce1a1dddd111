//! The [`Spec`] trait that `#[hookspec]` implements for `dyn YourTrait`.

use crate::caller::Caller;
use crate::hookspec::{HookSpec, index_of};

/// A set of hooks: implemented by `#[hookspec]` for `dyn YourTrait`.
///
/// You never implement this by hand; it is how [`PluginManager`](crate::PluginManager)
/// learns the hooks of your trait and how [`PluginManager::hook`](crate::PluginManager::hook)
/// hands out the typed relay.
///
/// ```
/// use hookery::prelude::*;
/// use hookery::Spec;
///
/// #[hookspec]
/// pub trait Events {
///     fn saved(&self, id: u32) -> HookResult<()>;
///     #[hookspec(firstresult)]
///     fn owner(&self, id: u32) -> HookResult<Option<String>>;
/// }
///
/// assert_eq!(<dyn Events as Spec>::NAME, "Events");
/// let names: Vec<_> = <dyn Events as Spec>::HOOKS.iter().map(|h| h.name).collect();
/// assert_eq!(names, ["saved", "owner"]);
/// assert!(<dyn Events as Spec>::HOOKS[1].firstresult);
/// assert_eq!(<dyn Events as Spec>::hook_index("owner"), Some(1));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a hook spec: the trait lacks `#[hookspec]`",
    label = "not a hook spec",
    note = "write `#[hookspec]` on the trait's declaration (and `#[hookimpl]` on each plugin's impl of it)"
)]
pub trait Spec: Send + Sync + 'static {
    /// The trait's name.
    const NAME: &'static str;
    /// Every hook of the trait, in declaration order.
    const HOOKS: &'static [HookSpec];
    /// The generated relay, one method per hook (`<Trait>Relay`).
    type Relay<'m>;
    /// Wraps a caller into the typed relay.
    #[doc(hidden)]
    fn relay(caller: Caller<'_, Self>) -> Self::Relay<'_>;

    /// The index of the hook called `name`, if the spec has it.
    fn hook_index(name: &str) -> Option<usize> {
        index_of(Self::HOOKS, name)
    }
}
