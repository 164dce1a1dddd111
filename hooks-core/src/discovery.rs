//! Plugin discovery at link time (feature `discovery`): the counterpart of
//! pluggy's `load_setuptools_entrypoints`. A plugin crate declares itself
//! with [`linked_plugin!`](crate::linked_plugin); the host calls
//! [`PluginManager::load_linked_plugins`] once and gets every plugin linked
//! into the program for its spec.
//!
//! Built on `inventory` (each declaration is a static that a constructor,
//! run before `main`, adds to one list) rather than `linkme` (a linker
//! section read as a slice): `inventory` has no dependencies, so the feature
//! adds one small crate to a build where `linkme` adds its proc-macro crate,
//! and it works on every platform Rust targets with a linker, WebAssembly
//! included, where `linkme` lists the platforms it supports.

use std::any::{Any, TypeId};

use crate::error::ManagerError;
use crate::hookimpl::{Implements, Plugin};
use crate::manager::PluginManager;
use crate::spec::Spec;

/// One plugin declared with [`linked_plugin!`](crate::linked_plugin): its
/// name, the spec it implements, and how to make it. Read by
/// [`PluginManager::load_linked_plugins`].
pub struct LinkedPlugin {
    name: &'static str,
    spec: fn() -> TypeId,
    make: fn() -> Box<dyn Any>,
}

impl LinkedPlugin {
    /// What `linked_plugin!` expands to: not part of the API.
    #[doc(hidden)]
    pub const fn __new(
        name: &'static str,
        spec: fn() -> TypeId,
        make: fn() -> Box<dyn Any>,
    ) -> Self {
        LinkedPlugin { name, spec, make }
    }

    /// The name the plugin is registered under.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

inventory::collect!(LinkedPlugin);

/// `make()`'s plugin, type-erased for a [`LinkedPlugin`]: what
/// `linked_plugin!` expands to.
#[doc(hidden)]
pub fn __erase<S: Spec + ?Sized, P: Implements<S>>(make: impl FnOnce() -> P) -> Box<dyn Any> {
    Box::new(Plugin::<S>::new(make()))
}

/// Declares a plugin so that a host finds it with
/// [`PluginManager::load_linked_plugins`]: the spec (a trait made with
/// `#[hookspec]`), the name to register the plugin under, and a function
/// (or closure without captures) that makes it. Place it at item level, in
/// any crate linked into the program:
///
/// ```
/// # use hookery::prelude::*;
/// # #[hookspec] pub trait Greet { fn greet(&self, who: &str) -> HookResult<String>; }
/// #[derive(Default)]
/// pub struct Polite;
///
/// #[hookimpl]
/// impl Greet for Polite {
///     fn greet(&self, who: &str) -> HookResult<String> {
///         Ok(format!("Good morning, {who}."))
///     }
/// }
///
/// hookery::linked_plugin!(Greet, "polite", Polite::default);
///
/// let pm = PluginManager::<dyn Greet>::new();
/// assert_eq!(pm.load_linked_plugins()?, ["polite"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A plugin in a crate of its own is linked only if the program names that
/// crate: the binary writes `use the_plugin as _;` (a dependency nothing
/// names is left out by rustc, and its declarations with it).
#[macro_export]
macro_rules! linked_plugin {
    ($spec:path, $name:expr, $make:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::LinkedPlugin::__new(
                $name,
                || ::core::any::TypeId::of::<dyn $spec>(),
                || $crate::__private::erase::<dyn $spec, _>($make),
            )
        }
    };
}

/// Every plugin declared with [`linked_plugin!`](crate::linked_plugin) in
/// the program, for any spec, in no particular order: for a host that
/// lists what it could load.
pub fn linked_plugins() -> impl Iterator<Item = &'static LinkedPlugin> {
    inventory::iter::<LinkedPlugin>.into_iter()
}

impl<S: Spec + ?Sized> PluginManager<S> {
    /// Registers every plugin declared with
    /// [`linked_plugin!`](crate::linked_plugin) for this spec in any crate
    /// linked into the program, in the order of their names (the order the
    /// linker met them in is not stable), and returns their names. As
    /// pluggy's `load_setuptools_entrypoints`, a plugin whose name is
    /// registered already or blocked is skipped, so a host may register or
    /// block some plugins first and call this again safely.
    ///
    /// # Errors
    ///
    /// The first registration refused (see [`register`](Self::register)),
    /// such as two linked plugins declaring the same name; the plugins
    /// before it stay registered.
    pub fn load_linked_plugins(&self) -> Result<Vec<&'static str>, ManagerError> {
        let mut linked: Vec<&LinkedPlugin> = linked_plugins()
            .filter(|p| (p.spec)() == TypeId::of::<S>())
            .collect();
        linked.sort_by_key(|p| p.name);
        // Decided before registering any: two linked plugins of one name
        // are then refused as a duplicate, not the second skipped.
        linked.retain(|p| !self.has_plugin(p.name) && !self.is_blocked(p.name));
        let mut loaded = Vec::new();
        for entry in linked {
            let plugin = (entry.make)()
                .downcast::<Plugin<S>>()
                .expect("a LinkedPlugin for spec S makes a Plugin<S>");
            self.register_plugin(entry.name, *plugin)?;
            loaded.push(entry.name);
        }
        Ok(loaded)
    }
}
