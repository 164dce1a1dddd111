//! [`PluginManager`]: registers plugins and hands out the typed relay.

use std::sync::Arc;

use crate::caller::Caller;
use crate::error::{HookError, ManagerError};
use crate::historic::Pending;
use crate::hookimpl::{ImplInfo, Implements, Plugin};
use crate::hookspec::HookSpec;
use crate::monitoring::{HookCallInfo, Monitor, MonitoringHandle};
use crate::registry::Shared;
use crate::spec::Spec;

/// Holds the registered plugins of one spec `S` (written `dyn YourTrait`)
/// and calls their hooks.
///
/// Cheap to clone: clones share one registry. Every method takes `&self`
/// and may run while calls are in flight on other threads or tasks; a call
/// sees the plugins registered when it started, never a half-updated hook.
///
/// ```
/// use hookery::prelude::*;
///
/// #[hookspec]
/// pub trait Greet {
///     fn greet(&self, name: &str) -> HookResult<String>;
/// }
///
/// struct English;
/// #[hookimpl]
/// impl Greet for English {
///     fn greet(&self, name: &str) -> HookResult<String> {
///         Ok(format!("hello {name}"))
///     }
/// }
///
/// let pm = PluginManager::<dyn Greet>::new();
/// pm.register("english", English).unwrap();
/// assert!(pm.register("english", English).is_err()); // names are unique
///
/// let results = pm.hook().greet("ada").unwrap();
/// assert_eq!(results.into_values(), ["hello ada"]);
/// ```
pub struct PluginManager<S: Spec + ?Sized> {
    shared: Arc<Shared<S>>,
}

impl<S: Spec + ?Sized> Clone for PluginManager<S> {
    fn clone(&self) -> Self {
        PluginManager {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Spec + ?Sized> Default for PluginManager<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Spec + ?Sized> std::fmt::Debug for PluginManager<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginManager")
            .field("spec", &S::NAME)
            .field("plugins", &self.plugin_names())
            .finish()
    }
}

/// Logs the warning of each `warn_on_impl` hook `plugin` implements, as
/// every registration of it (`register`, `replace`) does.
fn warn_if_deprecated<S: Spec + ?Sized>(name: &str, plugin: &Plugin<S>) {
    for decl in plugin.impls.iter() {
        let deprecated = S::hook_index(decl.hook).and_then(|i| S::HOOKS[i].warn_on_impl);
        if let Some(warning) = deprecated {
            tracing::warn!(
                plugin = name,
                hook = decl.hook,
                "plugin `{name}` implements deprecated hook `{}`: {warning}",
                decl.hook
            );
        }
    }
}

impl<S: Spec + ?Sized> PluginManager<S> {
    /// An empty manager.
    pub fn new() -> Self {
        PluginManager {
            shared: Arc::new(Shared::new(S::NAME, S::HOOKS)),
        }
    }

    /// Registers `plugin` under `name`.
    ///
    /// Historic calls made so far are replayed to the new plugin. It is
    /// registered while they are (they run outside the registry's lock,
    /// and may call hooks themselves): calls made meanwhile run it, on
    /// this thread or another, even if a replay then fails. A plugin
    /// implementing a hook declared `warn_on_impl` is registered with a
    /// warning (a `tracing` WARN event naming plugin and hook).
    ///
    /// # Errors
    ///
    /// Refused, with the manager left as it was, when the name is taken or
    /// blocked, when this very plugin object is registered already (under
    /// another name: [`ManagerError::AlreadyRegistered`]), when the plugin
    /// declares an implementation the spec cannot accept, when its
    /// `before`/`after` constraints close a cycle
    /// ([`ManagerError::OrderCycle`]), or when replaying a historic call to
    /// it fails ([`ManagerError::HistoricReplay`]: the plugin is
    /// unregistered again, unless a [`replace`](Self::replace) has put
    /// another under its name since; calls made while it was registered
    /// ran it).
    pub fn register<P: Implements<S>>(&self, name: &str, plugin: P) -> Result<(), ManagerError> {
        self.register_plugin(name, Plugin::new(plugin))
    }

    /// [`register`](Self::register) for a [`Plugin`] value (a shared or
    /// type-erased plugin object with its declarations).
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub fn register_plugin(&self, name: &str, plugin: Plugin<S>) -> Result<(), ManagerError> {
        let (id, pending) = self.shared.change(|state| {
            let id = state.add(name, &plugin)?;
            Ok::<_, ManagerError>((id, Pending::pick(state, &plugin)))
        })?;
        pending.replay(name, &plugin, || {
            let withdrawn = self
                .shared
                .change(|state| state.withdraw(name, id, &plugin));
            self.shared.publish();
            drop(withdrawn);
        })?;
        warn_if_deprecated(name, &plugin);
        Ok(())
    }

    /// Removes a plugin and returns it. Calls already running finish with it.
    ///
    /// # Errors
    ///
    /// [`ManagerError::UnknownPlugin`] if no plugin is registered as `name`.
    ///
    /// ```
    /// # use hookery::prelude::*;
    /// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
    /// # struct Store(u32);
    /// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("store", Store(0))?;
    /// pm.unregister("store")?;
    /// assert!(pm.hook().saved(1)?.is_empty());
    /// assert!(pm.unregister("store").is_err()); // gone already
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unregister(&self, name: &str) -> Result<Plugin<S>, ManagerError> {
        let removed = self.shared.change(|state| state.remove(name))?;
        self.shared.publish();
        Ok(removed)
    }

    /// Replaces the plugin registered as `name` by `plugin`, at once: a
    /// call sees either the one or the other, never neither; calls already
    /// running finish with the old one, which is returned. The new one
    /// takes the old one's place in registration order (the tie-break
    /// between implementations of equal rank). Historic calls made so far
    /// are replayed to it.
    ///
    /// # Errors
    ///
    /// Refused, with the old plugin left in place, when no plugin is
    /// registered as `name` ([`ManagerError::UnknownPlugin`]), or for the
    /// reasons [`register`](Self::register) gives; a failed historic
    /// replay puts the old plugin back.
    ///
    /// ```
    /// # use hookery::prelude::*;
    /// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
    /// # struct Store(u32);
    /// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("store", Store(0))?;
    /// pm.replace("store", Plugin::new(Store(10)))?;
    /// assert_eq!(pm.hook().saved(1)?.into_values(), [11]);
    /// assert!(pm.replace("other", Plugin::new(Store(0))).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replace(&self, name: &str, plugin: Plugin<S>) -> Result<Plugin<S>, ManagerError> {
        let (old, id, pending) = self.shared.change(|state| {
            let old = state.replace(name, &plugin)?;
            let id = state.registration(name).expect("registered just now");
            Ok::<_, ManagerError>((old, id, Pending::pick(state, &plugin)))
        })?;
        self.shared.publish();
        let mut restore = false;
        let replayed = pending.replay(name, &plugin, || restore = true);
        if restore {
            let taken_out = self
                .shared
                .change(|state| state.reinstate(name, id, &plugin, &old));
            self.shared.publish();
            drop(taken_out);
        }
        replayed?;
        warn_if_deprecated(name, &plugin);
        Ok(old)
    }

    /// Blocks `name`: unregisters the plugin of that name, if any, and
    /// refuses to register that name until [`unblock`](Self::unblock).
    ///
    /// ```
    /// # use hookery::prelude::*;
    /// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
    /// # struct Store(u32);
    /// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("store", Store(0))?;
    /// pm.set_blocked("store");                       // out, and kept out
    /// assert!(!pm.has_plugin("store"));
    /// assert!(pm.register("store", Store(1)).is_err());
    /// assert!(pm.unblock("store"));
    /// pm.register("store", Store(1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_blocked(&self, name: &str) {
        let removed = self.shared.change(|state| {
            state.blocked.insert(name.to_owned());
            state.remove(name).ok()
        });
        self.shared.publish();
        drop(removed);
    }

    /// Lifts a block; returns whether `name` was blocked.
    pub fn unblock(&self, name: &str) -> bool {
        self.shared.change(|state| state.blocked.remove(name))
    }

    /// Whether `name` is blocked.
    pub fn is_blocked(&self, name: &str) -> bool {
        self.shared.read(|state| state.blocked.contains(name))
    }

    /// The plugin registered as `name`.
    pub fn get_plugin(&self, name: &str) -> Option<Arc<S>> {
        self.shared
            .read(|state| state.get(name).map(|p| p.object.clone()))
    }

    /// Whether a plugin is registered as `name`.
    pub fn has_plugin(&self, name: &str) -> bool {
        self.shared.read(|state| state.get(name).is_some())
    }

    /// Registered plugin names, in registration order.
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.shared
            .read(|state| state.registered().map(|(name, _)| name).collect())
    }

    /// Registered plugins with their names, in registration order.
    pub fn list_plugins(&self) -> Vec<(&'static str, Arc<S>)> {
        self.shared.read(|state| {
            state
                .registered()
                .map(|(name, p)| (name, p.object.clone()))
                .collect()
        })
    }

    /// The typed relay: one method per hook, calling every registered
    /// implementation.
    pub fn hook(&self) -> S::Relay<'_> {
        S::relay(Caller::live(&self.shared))
    }

    /// The spec's hooks.
    pub fn hookspecs(&self) -> &'static [HookSpec] {
        S::HOOKS
    }

    /// The implementations of hook `hook` in call order (wrappers first),
    /// each saying why it sits there ([`ImplInfo::placement`],
    /// [`ImplInfo::why`]), or `None` if the spec has no such hook.
    ///
    /// ```
    /// # use hookery::prelude::*;
    /// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
    /// # struct Store(u32);
    /// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
    /// # struct First;
    /// # #[hookimpl] impl Events for First {
    /// #     #[hookimpl(tryfirst)] fn saved(&self, id: u32) -> HookResult<u32> { Ok(id) }
    /// # }
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("store", Store(0))?;
    /// pm.register("first", First)?;                 // declared `tryfirst`
    /// let impls = pm.get_hookimpls("saved").unwrap();
    /// let order: Vec<_> = impls.iter().map(|i| i.plugin).collect();
    /// assert_eq!(order, ["first", "store"]);
    /// println!("{}", impls[0].why());               // tier, priority, registration
    /// assert!(pm.get_hookimpls("no_such_hook").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_hookimpls(&self, hook: &str) -> Option<Vec<ImplInfo>> {
        let index = S::hook_index(hook)?;
        Some(self.shared.load().hooks[index].infos.to_vec())
    }

    /// A relay that calls every plugin except those named in `remove`.
    /// It follows later registrations like [`hook`](Self::hook) does.
    ///
    /// # Errors
    ///
    /// [`ManagerError::UnknownPlugin`] for a name no plugin has.
    ///
    /// ```
    /// # use hookery::prelude::*;
    /// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
    /// # struct Store(u32);
    /// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("a", Store(0))?;
    /// pm.register("b", Store(10))?;
    /// let all_but_b = pm.subset_hook_caller(&["b"])?;
    /// assert_eq!(all_but_b.saved(1)?.into_values(), [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subset_hook_caller(&self, remove: &[&str]) -> Result<S::Relay<'_>, ManagerError> {
        let skip = self.shared.read(|state| {
            remove
                .iter()
                .map(|name| {
                    state
                        .name(name)
                        .ok_or_else(|| ManagerError::UnknownPlugin((*name).to_owned()))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(S::relay(Caller::live(&self.shared).skipping(skip)))
    }

    /// A relay for calls that also run the `extra` plugins, as if they had
    /// been registered last, without registering them. The relay is a
    /// snapshot of the manager as it is now: its plugins, and its monitors
    /// and depth limit too (a monitor added later does not hear its calls,
    /// one undone later still does; make a new relay to see a change).
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register) for each extra plugin (a name that
    /// clashes with a registered one, for example).
    ///
    /// ```
    /// # use hookery::prelude::*;
    /// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
    /// # struct Store(u32);
    /// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("a", Store(0))?;
    /// let with_probe = pm.call_extra([("probe", Plugin::new(Store(100)))])?;
    /// assert_eq!(with_probe.saved(1)?.into_values(), [101, 1]); // as if registered last
    /// assert!(!pm.has_plugin("probe"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_extra<'n>(
        &self,
        extra: impl IntoIterator<Item = (&'n str, Plugin<S>)>,
    ) -> Result<S::Relay<'_>, ManagerError> {
        let mut scratch = self.shared.read(|state| state.fork(true));
        for (name, plugin) in extra {
            scratch.add(name, &plugin)?;
        }
        Ok(S::relay(Caller::fixed(Arc::new(scratch.snapshot(None)))))
    }

    /// Calls `before` ahead of every hook call and `after` once it ended,
    /// until the returned handle's [`undo`](MonitoringHandle::undo).
    ///
    /// A call refused before it starts (nested past the depth limit, or a
    /// time limit without a runtime) runs nothing, monitors included: nested
    /// in another call, it reaches the monitors as that call's failure
    /// (`after` of the call that made it). That keeps the depth limit a
    /// bound: a monitor making a hook call of its own would otherwise be
    /// called again for it, past the limit, without end.
    ///
    /// ```
    /// # use hookery::prelude::*;
    /// # #[hookspec] pub trait Events { fn saved(&self, id: u32) -> HookResult<u32>; }
    /// # struct Store(u32);
    /// # #[hookimpl] impl Events for Store { fn saved(&self, id: u32) -> HookResult<u32> { Ok(id + self.0) } }
    /// use std::sync::{Arc, Mutex};
    ///
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("a", Store(0))?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let (before, after) = (seen.clone(), seen.clone());
    /// let monitoring = pm.add_hookcall_monitoring(
    ///     move |call| before.lock().unwrap().push(format!("{} with {}", call.hook.name, call.impls.len())),
    ///     move |call, outcome| after.lock().unwrap().push(format!("{} ok: {}", call.hook.name, outcome.is_ok())),
    /// );
    /// pm.hook().saved(1)?;
    /// monitoring.undo();
    /// pm.hook().saved(2)?;                           // not heard
    /// assert_eq!(*seen.lock().unwrap(), ["saved with 1", "saved ok: true"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_hookcall_monitoring(
        &self,
        before: impl Fn(&HookCallInfo<'_>) + Send + Sync + 'static,
        after: impl Fn(&HookCallInfo<'_>, Result<(), &HookError>) + Send + Sync + 'static,
    ) -> MonitoringHandle {
        let id = self.shared.change(|state| {
            let id = state.next_monitor_id();
            state.add_monitor(Monitor::new(id, before, after));
            id
        });
        let shared = Arc::downgrade(&self.shared);
        MonitoringHandle::new(move || {
            if let Some(shared) = shared.upgrade() {
                let removed = shared.change(|state| state.remove_monitor(id));
                // Published now, so that the last snapshot holding the
                // monitor goes (unless a call still runs on it), and the
                // monitor dropped after the lock: its closures' `Drop` may
                // use the manager.
                shared.publish();
                drop(removed);
            }
        })
    }

    /// How deeply hook calls may nest (an implementation calling a hook
    /// that calls a hook...) before the call fails. Default
    /// [`DEFAULT_MAX_DEPTH`](crate::DEFAULT_MAX_DEPTH).
    ///
    /// ```
    /// use hookery::prelude::*;
    ///
    /// #[hookspec]
    /// pub trait Events {
    ///     fn changed(&self, pm: PluginManager<dyn Events>) -> HookResult<()>;
    /// }
    ///
    /// /// Reacts to a change by changing again: runaway recursion.
    /// struct Echo;
    /// #[hookimpl]
    /// impl Events for Echo {
    ///     fn changed(&self, pm: PluginManager<dyn Events>) -> HookResult<()> {
    ///         pm.hook().changed(pm.clone())?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let pm = PluginManager::<dyn Events>::new();
    /// pm.register("echo", Echo)?;
    /// pm.set_max_depth(8);
    /// let error = pm.hook().changed(pm.clone()).unwrap_err();
    /// assert!(error.innermost().is_too_deep());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_max_depth(&self, depth: usize) {
        self.shared.change(|state| state.set_max_depth(depth));
    }

    /// The nesting limit.
    pub fn max_depth(&self) -> usize {
        self.shared.read(|state| state.max_depth)
    }
}
