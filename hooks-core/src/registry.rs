//! The registry: the writer-side state behind a mutex, and the immutable
//! [`Snapshot`] every call works on.
//!
//! A call takes no lock, except the first call after a change, which may
//! publish. A change (register, unregister, block, monitoring)
//! updates the state under the mutex and marks the snapshot stale; the next
//! call — or the change itself, when it removes something — publishes a new
//! snapshot under the mutex, rebuilding only the hooks that changed. A call holds the snapshot
//! it started with to the end, so it never sees a half-updated hook and a
//! plugin unregistered meanwhile lives until the calls using it finish.
//! Publishing lazily keeps registering N plugins at O(N log N) instead of
//! copying every hook's list N times.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::{ArcSwap, Guard};

use crate::error::{HookError, ManagerError};
use crate::hookimpl::{ImplInfo, Placement, Plugin};
use crate::hookspec::{HookSpec, index_of};
use crate::monitoring::Monitor;
use crate::names::intern;
use crate::order::{Arrangement, Cycle, Rank, arrange, rank};

/// Default for [`PluginManager::set_max_depth`](crate::PluginManager::set_max_depth).
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// One implementation, ready to call.
pub(crate) struct HookImpl<S: ?Sized> {
    pub(crate) plugin: Arc<S>,
    pub(crate) info: ImplInfo,
}

impl<S: ?Sized> Clone for HookImpl<S> {
    fn clone(&self) -> Self {
        HookImpl {
            plugin: self.plugin.clone(),
            info: self.info,
        }
    }
}

/// One hook's implementations in call order: wrappers, then plain ones.
pub(crate) struct HookImpls<S: ?Sized> {
    pub(crate) spec: &'static HookSpec,
    impls: Box<[HookImpl<S>]>,
    pub(crate) infos: Box<[ImplInfo]>,
    wrappers: usize,
}

impl<S: ?Sized> HookImpls<S> {
    /// The hook's implementations in call order, from `ranked` (in rank
    /// order) and the arrangement [`arrange`] made of them, if constrained.
    fn build(
        spec: &'static HookSpec,
        ranked: &BTreeMap<Rank, HookImpl<S>>,
        arranged: Option<Arrangement>,
    ) -> Self {
        let impls: Box<[HookImpl<S>]> = match arranged {
            None => ranked.values().cloned().collect(),
            Some(order) => {
                let ranked: Vec<_> = ranked.values().collect();
                order
                    .into_iter()
                    .map(|(i, placement)| {
                        let mut imp = ranked[i].clone();
                        imp.info.placement = placement;
                        imp
                    })
                    .collect()
            }
        };
        let infos = impls.iter().map(|i| i.info).collect();
        let wrappers = impls.iter().take_while(|i| i.info.wrapper).count();
        HookImpls {
            spec,
            impls,
            infos,
            wrappers,
        }
    }

    pub(crate) fn impls(&self) -> impl Iterator<Item = &HookImpl<S>> {
        self.impls.iter()
    }

    pub(crate) fn wrappers(&self) -> &[HookImpl<S>] {
        &self.impls[..self.wrappers]
    }

    pub(crate) fn plain(&self) -> &[HookImpl<S>] {
        &self.impls[self.wrappers..]
    }
}

/// Everything a call needs, immutable.
pub(crate) struct Snapshot<S: ?Sized> {
    pub(crate) hooks: Box<[Arc<HookImpls<S>>]>,
    pub(crate) monitors: Arc<[Arc<Monitor>]>,
    pub(crate) max_depth: usize,
}

/// A remembered historic call: replays itself on a snapshot (see
/// `historic`, which makes, keeps and replays them).
pub(crate) type Replay<S> = Arc<dyn Fn(&Arc<Snapshot<S>>) -> Result<(), HookError> + Send + Sync>;

struct Registered<S: ?Sized> {
    plugin: Plugin<S>,
    id: u64,
    keys: Vec<(usize, Rank)>,
}

/// One hook's implementations keyed by rank, and how many declare
/// constraints (only then does the order need [`arrange`]).
struct Ranked<S: ?Sized> {
    impls: BTreeMap<Rank, HookImpl<S>>,
    constrained: usize,
}

impl<S: ?Sized> Ranked<S> {
    /// The call order, if constraints refine the rank order; a cycle is
    /// the plugins that form it.
    fn arrange(&self) -> Result<Option<Arrangement>, Cycle> {
        if self.constrained == 0 {
            return Ok(None);
        }
        let infos: Vec<ImplInfo> = self.impls.values().map(|i| i.info).collect();
        arrange(&infos).map(Some)
    }
}

/// The writer side. Only ever touched under [`Shared::state`]'s mutex.
pub(crate) struct State<S: ?Sized> {
    spec: &'static str,
    specs: &'static [HookSpec],
    plugins: HashMap<&'static str, Registered<S>>,
    /// Registration order: id -> name.
    order: BTreeMap<u64, &'static str>,
    /// The registered plugin objects: identity -> name.
    objects: HashMap<usize, &'static str>,
    /// Per hook, its implementations by rank.
    hooks: Vec<Ranked<S>>,
    dirty: Vec<bool>,
    pub(crate) blocked: HashSet<String>,
    pub(crate) history: Vec<(usize, Replay<S>)>,
    monitors: Vec<Arc<Monitor>>,
    settings_dirty: bool,
    pub(crate) max_depth: usize,
    /// The next plugin's registration number.
    next_id: u64,
    /// The last monitor's id: a counter of its own, so that adding a
    /// monitor does not change the numbers plugins are registered under.
    last_monitor: u64,
}

impl<S: ?Sized> State<S> {
    pub(crate) fn new(spec: &'static str, specs: &'static [HookSpec]) -> Self {
        State {
            spec,
            specs,
            plugins: HashMap::new(),
            order: BTreeMap::new(),
            objects: HashMap::new(),
            hooks: specs
                .iter()
                .map(|_| Ranked {
                    impls: BTreeMap::new(),
                    constrained: 0,
                })
                .collect(),
            dirty: vec![true; specs.len()],
            blocked: HashSet::new(),
            history: Vec::new(),
            monitors: Vec::new(),
            settings_dirty: true,
            max_depth: DEFAULT_MAX_DEPTH,
            next_id: 0,
            last_monitor: 0,
        }
    }

    /// A scratch state with the same settings, and the same plugins if
    /// `with_plugins` (for `call_extra` and historic replay).
    pub(crate) fn fork(&self, with_plugins: bool) -> Self {
        let mut fork = State::new(self.spec, self.specs);
        if with_plugins {
            for (&id, &name) in &self.order {
                fork.insert(name, self.plugins[name].plugin.clone(), id);
            }
            fork.next_id = self.next_id;
        }
        fork.blocked = self.blocked.clone();
        fork.monitors = self.monitors.clone();
        fork.max_depth = self.max_depth;
        fork
    }

    /// Checks and adds a plugin; returns its registration number. On error
    /// nothing has changed.
    pub(crate) fn add(&mut self, name: &str, plugin: &Plugin<S>) -> Result<u64, ManagerError> {
        if self.blocked.contains(name) {
            return Err(ManagerError::Blocked(name.to_owned()));
        }
        if self.plugins.contains_key(name) {
            return Err(ManagerError::DuplicateName(name.to_owned()));
        }
        let id = self.next_id;
        self.place(name, plugin, id)?;
        self.next_id += 1;
        Ok(id)
    }

    /// Whether `name` is still `plugin` under registration number `id`:
    /// what undoing a registration checks first, so that it never undoes
    /// what another change put under that name since (a `replace`, or an
    /// unregister and a new registration).
    fn holds(&self, name: &str, id: u64, plugin: &Plugin<S>) -> bool {
        self.plugins
            .get(name)
            .is_some_and(|r| r.id == id && r.plugin.identity() == plugin.identity())
    }

    /// Undoes [`add`](Self::add) of `plugin` as `name` under `id`, if it is
    /// still registered so ([`holds`](Self::holds)), and gives its
    /// registration number back if no other registration took one since;
    /// returns the plugin removed.
    pub(crate) fn withdraw(
        &mut self,
        name: &str,
        id: u64,
        plugin: &Plugin<S>,
    ) -> Option<Plugin<S>> {
        if !self.holds(name, id, plugin) {
            return None;
        }
        let removed = self.remove(name).ok();
        if self.next_id == id + 1 {
            self.next_id = id;
        }
        removed
    }

    /// Undoes [`replace`](Self::replace) of `old` by `plugin` as `name`
    /// (registration number `id`), if `plugin` is still registered so
    /// ([`holds`](Self::holds)); returns the plugin taken out.
    pub(crate) fn reinstate(
        &mut self,
        name: &str,
        id: u64,
        plugin: &Plugin<S>,
        old: &Plugin<S>,
    ) -> Option<Plugin<S>> {
        if !self.holds(name, id, plugin) {
            return None;
        }
        self.replace(name, old).ok()
    }

    /// Puts `plugin` in the place of the one registered as `name`, with its
    /// registration id, so that it keeps its position among
    /// implementations of equal rank; returns the one replaced. On error
    /// nothing has changed.
    pub(crate) fn replace(
        &mut self,
        name: &str,
        plugin: &Plugin<S>,
    ) -> Result<Plugin<S>, ManagerError> {
        let id = self
            .plugins
            .get(name)
            .ok_or_else(|| ManagerError::UnknownPlugin(name.to_owned()))?
            .id;
        let old = self.remove(name)?;
        if let Err(error) = self.place(name, plugin, id) {
            self.place(name, &old, id)
                .expect("it was registered so a moment ago");
            return Err(error);
        }
        Ok(old)
    }

    /// Checks and inserts a plugin under registration id `id`. On error
    /// nothing has changed.
    fn place(&mut self, name: &str, plugin: &Plugin<S>, id: u64) -> Result<(), ManagerError> {
        if let Some(registered) = self.objects.get(&plugin.identity()) {
            return Err(ManagerError::AlreadyRegistered {
                plugin: name.to_owned(),
                registered_as: (*registered).to_owned(),
            });
        }
        validate(self.spec, self.specs, name, plugin)?;
        let name = intern(name);
        self.insert(name, plugin.clone(), id);
        let cycle = self.registered_hooks(name).find_map(|hook| {
            let cycle = self.hooks[hook].arrange().err()?;
            Some((self.specs[hook].name, cycle))
        });
        if let Some((hook, chain)) = cycle {
            self.remove(name).expect("just inserted");
            return Err(ManagerError::OrderCycle {
                plugin: name.to_owned(),
                hook,
                chain,
            });
        }
        Ok(())
    }

    /// The hooks `name` implements.
    fn registered_hooks(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        self.plugins[name].keys.iter().map(|(hook, _)| *hook)
    }

    fn insert(&mut self, name: &'static str, plugin: Plugin<S>, id: u64) {
        let mut keys = Vec::with_capacity(plugin.impls.len());
        for decl in plugin.impls.iter() {
            let hook = index_of(self.specs, decl.hook).expect("validated at registration");
            let key = rank(decl, id);
            let info = ImplInfo {
                plugin: name,
                hook: self.specs[hook].name,
                priority: decl.priority,
                tier: decl.tier,
                wrapper: decl.wrapper,
                before: decl.before,
                after: decl.after,
                registration: id,
                placement: Placement::Rank,
            };
            let entry = HookImpl {
                plugin: plugin.object.clone(),
                info,
            };
            let ranked = &mut self.hooks[hook];
            ranked.impls.insert(key, entry);
            ranked.constrained += usize::from(decl.is_constrained());
            self.dirty[hook] = true;
            keys.push((hook, key));
        }
        self.order.insert(id, name);
        self.objects.insert(plugin.identity(), name);
        self.plugins.insert(name, Registered { plugin, id, keys });
    }

    /// Removes a plugin; returns it.
    pub(crate) fn remove(&mut self, name: &str) -> Result<Plugin<S>, ManagerError> {
        let registered = self
            .plugins
            .remove(name)
            .ok_or_else(|| ManagerError::UnknownPlugin(name.to_owned()))?;
        for (hook, key) in &registered.keys {
            let ranked = &mut self.hooks[*hook];
            if let Some(gone) = ranked.impls.remove(key) {
                let constrained = !gone.info.before.is_empty() || !gone.info.after.is_empty();
                ranked.constrained -= usize::from(constrained);
            }
            self.dirty[*hook] = true;
        }
        self.order.remove(&registered.id);
        self.objects.remove(&registered.plugin.identity());
        Ok(registered.plugin)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Plugin<S>> {
        self.plugins.get(name).map(|r| &r.plugin)
    }

    /// The registration number of the plugin registered as `name`.
    pub(crate) fn registration(&self, name: &str) -> Option<u64> {
        self.plugins.get(name).map(|r| r.id)
    }

    /// Registered plugins in registration order.
    pub(crate) fn registered(&self) -> impl Iterator<Item = (&'static str, &Plugin<S>)> {
        self.order
            .values()
            .map(|&name| (name, &self.plugins[name].plugin))
    }

    /// The interned name of a registered plugin.
    pub(crate) fn name(&self, name: &str) -> Option<&'static str> {
        self.plugins.get_key_value(name).map(|(&n, _)| n)
    }

    pub(crate) fn add_monitor(&mut self, monitor: Monitor) {
        self.monitors.push(Arc::new(monitor));
        self.settings_dirty = true;
    }

    /// Removes monitor `id`; returns it, for the caller to drop once the
    /// registry's mutex is released (its closures may own anything, a
    /// clone of the manager included).
    pub(crate) fn remove_monitor(&mut self, id: u64) -> Option<Arc<Monitor>> {
        let at = self.monitors.iter().position(|m| m.id == id)?;
        self.settings_dirty = true;
        Some(self.monitors.remove(at))
    }

    pub(crate) fn set_max_depth(&mut self, depth: usize) {
        self.max_depth = depth;
        self.settings_dirty = true;
    }

    pub(crate) fn next_monitor_id(&mut self) -> u64 {
        self.last_monitor += 1;
        self.last_monitor
    }

    fn is_dirty(&self) -> bool {
        self.settings_dirty || self.dirty.iter().any(|d| *d)
    }

    /// A snapshot of the state, reusing the unchanged hooks of `previous`.
    pub(crate) fn snapshot(&mut self, previous: Option<&Snapshot<S>>) -> Snapshot<S> {
        let hooks = self
            .specs
            .iter()
            .enumerate()
            .map(|(i, spec)| match previous {
                Some(prev) if !self.dirty[i] => prev.hooks[i].clone(),
                _ => {
                    let ranked = &self.hooks[i];
                    // Every registration that closed a cycle was refused.
                    let arranged = ranked.arrange().expect("no cycle is ever registered");
                    Arc::new(HookImpls::build(spec, &ranked.impls, arranged))
                }
            })
            .collect();
        self.dirty.iter_mut().for_each(|d| *d = false);
        self.settings_dirty = false;
        Snapshot {
            hooks,
            monitors: self.monitors.iter().cloned().collect(),
            max_depth: self.max_depth,
        }
    }
}

/// What a plugin may declare: hooks the spec has, once each, and no wrapper
/// around a historic hook (a replay has no chain to wrap: see `historic`).
fn validate<S: ?Sized>(
    spec: &'static str,
    specs: &[HookSpec],
    name: &str,
    plugin: &Plugin<S>,
) -> Result<(), ManagerError> {
    let invalid = |hook: &str, reason| ManagerError::InvalidImpl {
        plugin: name.to_owned(),
        hook: hook.to_owned(),
        spec,
        reason,
    };
    for (i, decl) in plugin.impls.iter().enumerate() {
        let Some(index) = index_of(specs, decl.hook) else {
            return Err(invalid(decl.hook, "the spec has no such hook"));
        };
        if decl.wrapper && specs[index].historic {
            return Err(invalid(decl.hook, "a historic hook cannot be wrapped"));
        }
        let twice = plugin.impls[..i]
            .iter()
            .any(|d| d.hook == decl.hook && d.wrapper == decl.wrapper);
        if twice {
            return Err(invalid(decl.hook, "the hook is declared twice"));
        }
    }
    Ok(())
}

/// How many hooks of a spec have an idle entry (see [`Shared`]): more than
/// any spec of this workspace declares (the app's has 23).
const IDLE_ENTRIES: usize = 64;

/// The registry shared by a manager and its clones.
pub(crate) struct Shared<S: ?Sized> {
    current: ArcSwap<Snapshot<S>>,
    stale: AtomicBool,
    /// Per hook, the current snapshot's depth limit if a call of it has
    /// nothing to do (no implementation, no monitor) and no change awaits
    /// publishing, 0 otherwise: a call within that depth answers without
    /// taking the snapshot at all. One load and one comparison: a flag and
    /// the limit apart cost two loads and two tests. A change zeroes every
    /// entry (so an idle call need not read `stale` too); publishing sets
    /// them again. (A limit of 0 refuses every call, idle or not: the
    /// entry's 0 then sends it the whole way, to be refused.) An array of
    /// fixed length inline, not a slice: the hook's index is a constant of
    /// the generated relay, so the entry is one load at a fixed offset,
    /// with no bounds check and no pointer to follow. A hook past the
    /// first [`IDLE_ENTRIES`] has none and always takes the whole way.
    idle: [AtomicUsize; IDLE_ENTRIES],
    state: Mutex<State<S>>,
}

impl<S: ?Sized> Shared<S> {
    pub(crate) fn new(spec: &'static str, specs: &'static [HookSpec]) -> Self {
        let mut state = State::new(spec, specs);
        let first = state.snapshot(None);
        let shared = Shared {
            idle: std::array::from_fn(|_| AtomicUsize::new(0)),
            current: ArcSwap::from_pointee(first),
            stale: AtomicBool::new(false),
            state: Mutex::new(state),
        };
        shared.mark_idle(&shared.current.load());
        shared
    }

    /// The depth limit if a call of `hook` has nothing to do (no change
    /// awaits publishing, the published snapshot has neither an
    /// implementation of it nor a monitor), else 0. One atomic load.
    #[inline]
    pub(crate) fn idle_limit(&self, hook: usize) -> usize {
        self.idle
            .get(hook)
            .map_or(0, |entry| entry.load(Ordering::Acquire))
    }

    /// Whether a call of `hook` made inside `outer` nested calls has
    /// nothing to do and (at depth `outer + 1`) is within the depth limit.
    #[inline]
    pub(crate) fn idle(&self, hook: usize, outer: usize) -> bool {
        // `outer < limit` rather than `outer + 1 <= limit`: the same for
        // any real depth, and one instruction less (the addition could
        // wrap, so the compiler cannot fold it).
        outer < self.idle_limit(hook)
    }

    fn mark_idle(&self, snapshot: &Snapshot<S>) {
        for (idle, hook) in self.idle.iter().zip(snapshot.hooks.iter()) {
            let nothing = hook.impls().next().is_none() && snapshot.monitors.is_empty();
            idle.store(
                if nothing { snapshot.max_depth } else { 0 },
                Ordering::Release,
            );
        }
    }

    /// The snapshot calls use now. Lock-free unless a change awaits publishing.
    #[inline]
    pub(crate) fn load(&self) -> Guard<Arc<Snapshot<S>>> {
        if self.stale.load(Ordering::Acquire) {
            self.publish();
        }
        self.current.load()
    }

    /// Publishes pending changes.
    pub(crate) fn publish(&self) {
        let replaced = self.publish_locked(&mut self.lock());
        // The last reference to an unregistered plugin may go here: drop it
        // outside the lock, so its `Drop` may use the manager.
        drop(replaced);
    }

    /// Publishes pending changes, under the lock held as `state`; returns
    /// the snapshot replaced, for the caller to drop after the lock.
    fn publish_locked(&self, state: &mut State<S>) -> Option<Arc<Snapshot<S>>> {
        if !self.stale.load(Ordering::Acquire) {
            return None;
        }
        let next = Arc::new(state.snapshot(Some(&self.current.load())));
        let replaced = self.current.swap(next.clone());
        self.mark_idle(&next);
        self.stale.store(false, Ordering::Release);
        Some(replaced)
    }

    /// Runs a change on the state under the lock and marks the snapshot
    /// stale if it changed anything.
    pub(crate) fn change<R>(&self, change: impl FnOnce(&mut State<S>) -> R) -> R {
        self.apply(&mut self.lock(), change)
    }

    /// [`change`](Self::change), and the snapshot of the state it leaves,
    /// published in the same critical section: no other change comes
    /// between the two (a historic call is remembered and run on the
    /// plugins of one moment, see `historic`).
    pub(crate) fn change_and_snapshot<R>(
        &self,
        change: impl FnOnce(&mut State<S>) -> R,
    ) -> (R, Arc<Snapshot<S>>) {
        let (result, current, replaced) = {
            let mut state = self.lock();
            let result = self.apply(&mut state, change);
            let replaced = self.publish_locked(&mut state);
            (result, self.current.load_full(), replaced)
        };
        drop(replaced);
        (result, current)
    }

    fn apply<R>(&self, state: &mut State<S>, change: impl FnOnce(&mut State<S>) -> R) -> R {
        let result = change(state);
        if state.is_dirty() {
            self.stale.store(true, Ordering::Release);
            for idle in &self.idle {
                idle.store(0, Ordering::Release);
            }
        }
        result
    }

    /// Reads the state under the lock.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&State<S>) -> R) -> R {
        read(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // No plugin code runs under this lock, so poisoning can only come
        // from a bug in the engine; the state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
