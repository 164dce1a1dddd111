//! Hook implementations: the options a plugin declares for each hook it
//! implements, the [`Plugin`] value that carries them, and the call order.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::sync::Arc;

use crate::spec::Spec;

/// The ordering tier of an implementation (`tryfirst` / `trylast`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// `#[hookimpl(tryfirst)]`: before every normal implementation.
    TryFirst,
    /// Neither.
    #[default]
    Normal,
    /// `#[hookimpl(trylast)]`: after every normal implementation.
    TryLast,
}

/// What `#[hookimpl]` records about one implemented hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImplDecl {
    /// The hook (method) name.
    pub hook: &'static str,
    /// Higher runs first within its tier. Default 0.
    pub priority: i32,
    /// tryfirst / normal / trylast.
    pub tier: Tier,
    /// A wrapper: receives the rest of the chain as `next`.
    pub wrapper: bool,
}

/// Introspection: one implementation of a hook, as registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImplInfo {
    /// The plugin's registered name.
    pub plugin: &'static str,
    /// The hook name.
    pub hook: &'static str,
    /// Priority (higher first within a tier).
    pub priority: i32,
    /// tryfirst / normal / trylast.
    pub tier: Tier,
    /// Wrapper or plain implementation.
    pub wrapper: bool,
}

/// The call order, defined here and nowhere else. Sorting ascending by this
/// key gives:
///
/// 1. wrappers before plain implementations (wrappers are outermost: every
///    wrapper's part before `next` runs before any plain implementation);
/// 2. within each group, the `tryfirst` tier, then normal, then `trylast`;
/// 3. within a tier, higher `priority` first;
/// 4. at equal priority, the plugin registered later first (pluggy's LIFO).
pub(crate) type OrderKey = (Reverse<bool>, Tier, Reverse<i32>, Reverse<u64>);

pub(crate) fn order_key(decl: &ImplDecl, registration: u64) -> OrderKey {
    (
        Reverse(decl.wrapper),
        decl.tier,
        Reverse(decl.priority),
        Reverse(registration),
    )
}

/// Implemented by `#[hookimpl]` on `impl YourTrait for YourPlugin`: which
/// hooks the plugin implements, with their options, and the conversion to
/// the trait object the manager stores.
pub trait Implements<S: Spec + ?Sized>: Send + Sync + 'static {
    /// The implemented hooks (only these are called; the trait's default
    /// bodies never are).
    const HOOKIMPLS: &'static [ImplDecl];
    /// Converts to the spec's trait object.
    fn into_spec(self: Arc<Self>) -> Arc<S>;
}

/// A plugin object together with the hooks it implements: what
/// [`PluginManager::register`](crate::PluginManager::register) stores.
///
/// Usually made for you from a value whose type has `#[hookimpl]`; build one
/// by hand with [`Plugin::from_parts`] when the object arrives type-erased
/// (for example from a dynamically loaded library).
pub struct Plugin<S: ?Sized> {
    pub(crate) object: Arc<S>,
    pub(crate) impls: Cow<'static, [ImplDecl]>,
}

impl<S: Spec + ?Sized> Plugin<S> {
    /// Wraps a plugin value.
    pub fn new<P: Implements<S>>(plugin: P) -> Self {
        Self::from_arc(Arc::new(plugin))
    }

    /// Wraps a shared plugin value (the caller keeps a handle to it).
    pub fn from_arc<P: Implements<S>>(plugin: Arc<P>) -> Self {
        Plugin {
            object: plugin.into_spec(),
            impls: Cow::Borrowed(P::HOOKIMPLS),
        }
    }

    /// A plugin from its trait object and its declarations. The manager
    /// checks the declarations at registration.
    pub fn from_parts(object: Arc<S>, impls: impl Into<Cow<'static, [ImplDecl]>>) -> Self {
        Plugin {
            object,
            impls: impls.into(),
        }
    }

    /// The declared implementations.
    pub fn impls(&self) -> &[ImplDecl] {
        &self.impls
    }

    /// The trait object.
    pub fn object(&self) -> &Arc<S> {
        &self.object
    }
}

impl<S: ?Sized> Clone for Plugin<S> {
    fn clone(&self) -> Self {
        Plugin {
            object: self.object.clone(),
            impls: self.impls.clone(),
        }
    }
}
