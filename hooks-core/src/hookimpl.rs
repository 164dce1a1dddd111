//! Hook implementations: the options a plugin declares for each hook it
//! implements, the [`Plugin`] value that carries them, and what
//! introspection reports about each. The order itself is decided by the
//! `order` module.

use std::borrow::Cow;
use std::sync::Arc;

/// The ordering tier of an implementation (`tryfirst` / `trylast`).
///
/// Tiers come before priorities: a `trylast` implementation of priority 100
/// still runs after every normal one.
///
/// ```
/// # use hookery::prelude::*;
/// use hookery::Tier;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// struct Late;
/// #[hookimpl]
/// impl Events for Late {
///     #[hookimpl(trylast, priority = 100)]
///     fn saved(&self, id: u32) -> HookResult<u32> { Ok(id) }
/// }
/// struct Normal;
/// #[hookimpl]
/// impl Events for Normal {
///     fn saved(&self, id: u32) -> HookResult<u32> { Ok(id) }
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("late", Late)?;
/// pm.register("normal", Normal)?;
/// let tiers: Vec<_> = pm.get_hookimpls("saved").unwrap().iter().map(|i| (i.plugin, i.tier)).collect();
/// assert_eq!(tiers, [("normal", Tier::Normal), ("late", Tier::TryLast)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// Written by hand only for a [`Plugin::from_parts`], when the object
/// arrives type-erased:
///
/// ```
/// # use hookery::prelude::*;
/// use hookery::{ImplDecl, Tier};
/// use std::sync::Arc;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// # struct Store(u32);
/// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
/// static DECLS: [ImplDecl; 1] = [ImplDecl { tier: Tier::TryFirst, ..ImplDecl::new("saved") }];
///
/// let object: Arc<dyn Events> = Arc::new(Store(10));
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("plain", Store(0))?;
/// pm.register_plugin("first", Plugin::from_parts(object, &DECLS[..]))?;
/// assert_eq!(pm.hook().saved(1)?.into_values(), [11, 1]); // tryfirst runs first
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    /// `before = [...]`: plugins whose implementation of this hook, in the
    /// same tier, this one runs before.
    pub before: &'static [&'static str],
    /// `after = [...]`: plugins whose implementation of this hook, in the
    /// same tier, this one runs after.
    pub after: &'static [&'static str],
}

impl ImplDecl {
    /// A plain implementation of `hook` with default options.
    pub const fn new(hook: &'static str) -> Self {
        ImplDecl {
            hook,
            priority: 0,
            tier: Tier::Normal,
            wrapper: false,
            before: &[],
            after: &[],
        }
    }

    pub(crate) fn is_constrained(&self) -> bool {
        !self.before.is_empty() || !self.after.is_empty()
    }
}

/// Why an implementation sits where it does in [`PluginManager::get_hookimpls`](crate::PluginManager::get_hookimpls).
///
/// ```
/// # use hookery::prelude::*;
/// use hookery::Placement;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// # struct Store(u32);
/// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
/// struct Cache;
/// #[hookimpl]
/// impl Events for Cache {
///     #[hookimpl(after = "store")]
///     fn saved(&self, id: u32) -> HookResult<u32> { Ok(id) }
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("store", Store(0))?;
/// pm.register("cache", Cache)?; // registered later: by rank alone, it would run first
/// let placed: Vec<_> = pm.get_hookimpls("saved").unwrap().iter().map(|i| (i.plugin, i.placement)).collect();
/// assert_eq!(placed, [
///     ("store", Placement::Constraint { by: "cache" }),
///     ("cache", Placement::Constraint { by: "cache" }),
/// ]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Its rank alone: wrapper or not, tier, priority, then registration.
    Rank,
    /// A `before`/`after` constraint (its own, or another implementation's
    /// naming its plugin) put it on the other side of an implementation
    /// its rank alone would have put it before or after.
    Constraint {
        /// The plugin that declared the constraint (the first one, if
        /// several moved it).
        by: &'static str,
    },
}

/// Introspection: one implementation of a hook, as registered
/// ([`PluginManager::get_hookimpls`](crate::PluginManager::get_hookimpls),
/// and what monitors are told, [`HookCallInfo::impls`](crate::HookCallInfo::impls)).
///
/// ```
/// # use hookery::prelude::*;
/// use hookery::{ImplInfo, Placement, Tier};
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// struct Audit;
/// #[hookimpl]
/// impl Events for Audit {
///     #[hookimpl(priority = 5, before = "store")]
///     fn saved(&self, id: u32) -> HookResult<u32> { Ok(id) }
/// }
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register("audit", Audit)?;
/// let info: ImplInfo = pm.get_hookimpls("saved").unwrap()[0];
/// assert_eq!((info.plugin, info.hook, info.priority, info.tier), ("audit", "saved", 5, Tier::Normal));
/// assert!(!info.wrapper);
/// assert_eq!(info.before, ["store"]);          // no `store` registered: no effect yet
/// assert_eq!(info.placement, Placement::Rank);
/// assert_eq!(
///     info.why(),
///     "plain, normal tier, priority 5, registration 0 (later runs first), before [\"store\"]: placed by rank"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    /// Declared `before` constraints.
    pub before: &'static [&'static str],
    /// Declared `after` constraints.
    pub after: &'static [&'static str],
    /// When the plugin was registered, counted across the manager (ties
    /// of equal priority are broken by it).
    pub registration: u64,
    /// Whether a constraint moved it.
    pub placement: Placement,
}

impl ImplInfo {
    /// One line saying why the implementation sits where it does, for
    /// reports: `"wrapper, tryfirst tier, priority 0, registration 3 (later
    /// runs first), after [\"audit_log\"]: moved by a constraint of cache"`.
    pub fn why(&self) -> String {
        let kind = if self.wrapper { "wrapper" } else { "plain" };
        let tier = match self.tier {
            Tier::TryFirst => "tryfirst",
            Tier::Normal => "normal",
            Tier::TryLast => "trylast",
        };
        let ties = if self.tier == Tier::TryLast {
            "earlier runs first"
        } else {
            "later runs first"
        };
        let mut why = format!(
            "{kind}, {tier} tier, priority {}, registration {} ({ties})",
            self.priority, self.registration
        );
        if !self.before.is_empty() {
            why.push_str(&format!(", before {:?}", self.before));
        }
        if !self.after.is_empty() {
            why.push_str(&format!(", after {:?}", self.after));
        }
        match self.placement {
            Placement::Rank => why.push_str(": placed by rank"),
            Placement::Constraint { by } => {
                why.push_str(&format!(": moved by a constraint of {by}"));
            }
        }
        why
    }
}

/// Implemented by `#[hookimpl]` on `impl YourTrait for YourPlugin`: which
/// hooks the plugin implements, with their options, and the conversion to
/// the trait object the manager stores.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a plugin of `{S}`: its implementation of the trait lacks `#[hookimpl]`",
    label = "not a plugin of `{S}`",
    note = "write `#[hookimpl]` on `impl Trait for {Self}`, and `#[hookspec]` on the trait itself"
)]
pub trait Implements<S: ?Sized>: Send + Sync + 'static {
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
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
/// # struct Store(u32);
/// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
/// use std::sync::Arc;
///
/// // From a value, or from an `Arc` the host keeps a handle to:
/// let shared = Arc::new(Store(0));
/// let plugin: Plugin<dyn Events> = Plugin::from_arc(shared.clone());
/// assert_eq!(plugin.impls().len(), 1); // `saved`
///
/// // Type-erased, with a chosen subset of its declarations:
/// let erased: Arc<dyn Events> = Arc::new(Store(10));
/// let none_of_them = Plugin::from_parts(erased, &[][..]);
///
/// let pm = PluginManager::<dyn Events>::new();
/// pm.register_plugin("kept", plugin)?;
/// pm.register_plugin("muted", none_of_them)?;
/// assert_eq!(pm.hook().saved(1)?.into_values(), [1]); // `muted` implements nothing
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Plugin<S: ?Sized> {
    pub(crate) object: Arc<S>,
    pub(crate) impls: Cow<'static, [ImplDecl]>,
}

impl<S: ?Sized> Plugin<S> {
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

    /// The object's identity: one `Arc` is one plugin, whatever its name.
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.object) as *const () as usize
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
