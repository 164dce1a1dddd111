//! Historic hooks (pluggy's `call_historic`), in one place: a call to a
//! historic hook runs now on the plugins registered, is remembered, and is
//! replayed to every plugin registered later, as it registers.
//!
//! The whole story, in the order things happen:
//!
//! 1. **Declaring.** `#[hookspec(historic)]`: sync only (a replay runs
//!    inside `register`), arguments owned (they outlive the call), never
//!    `firstresult` (a replay to one plugin cannot stop at "the first").
//!    The macro refuses the rest at compile time.
//! 2. **Implementing.** No wrapper: a replay reaches one plugin and has no
//!    chain to wrap (the registry's `validate` refuses one).
//! 3. **Calling** ([`Caller::call_historic`], what the generated relay
//!    method calls): its closure (arguments included) is pushed on the
//!    registry's `history` and the snapshot the call runs on is taken, in
//!    one critical section of the registry's mutex; then the call runs.
//!    So a plugin registered at the same moment, on another thread, is
//!    either in that snapshot (registered first: it hears the call, and
//!    no replay) or picks the call to replay (registered after: it hears
//!    the replay alone), never both. A call on a fixed snapshot
//!    (`call_extra`) is not remembered.
//! 4. **Registering** ([`Pending`]): while adding a plugin, the registry
//!    picks the remembered calls of the hooks it implements; then, the
//!    mutex released, each is replayed, in the order of the calls, on a
//!    snapshot holding that plugin alone. The plugin is registered (calls
//!    made meanwhile run it) while its replays run. The first failure
//!    unregisters it again, unless another change (a `replace`) has put
//!    another plugin under its name since, and the registration fails
//!    (`ManagerError::HistoricReplay`).
//! 5. **Results.** `<hook>_with_results(.., callback)`: the callback hears
//!    each answer of the call and, later, of every replay.

use std::sync::Arc;

use crate::caller::Caller;
use crate::error::{HookError, ManagerError};
use crate::hookimpl::Plugin;
use crate::registry::{Replay, State};
use crate::result::{Answer, Results};
use crate::spec::Spec;

impl<S: ?Sized + Send + Sync> Caller<'_, S> {
    /// Calls historic hook number `hook` through `call` now, and remembers
    /// `call` to replay it to every plugin registered later; `on_result`
    /// hears each value, of this call and of every replay.
    #[doc(hidden)]
    pub fn call_historic<T>(
        &self,
        hook: usize,
        call: impl Fn(&Caller<'_, S>) -> Result<Results<T>, HookError> + Send + Sync + 'static,
        on_result: impl Fn(&Answer<T>) + Send + Sync + 'static,
    ) -> Result<Results<T>, HookError>
    where
        S: 'static,
    {
        let call = Arc::new(move |caller: &Caller<'_, S>| {
            let results = call(caller)?;
            results.answers().iter().for_each(&on_result);
            Ok(results)
        });
        let Some(shared) = self.shared() else {
            return call(self);
        };
        let replay = call.clone();
        let ((), now) = shared.change_and_snapshot(|state| {
            state.history.push((
                hook,
                Arc::new(move |snapshot| replay(&Caller::fixed(snapshot.clone())).map(drop)),
            ))
        });
        call(&Caller::fixed(now).skipping_as(self))
    }
}

/// The remembered calls a plugin being registered must hear, picked under
/// the registry's mutex and replayed once it is released.
pub(crate) struct Pending<S: ?Sized> {
    replays: Vec<Replay<S>>,
    /// The registry's settings with no plugin but the new one: what the
    /// replays run on. `None` when there is nothing to replay.
    solo: Option<State<S>>,
}

impl<S: Spec + ?Sized> Pending<S> {
    /// The remembered calls of the hooks `plugin` implements, in call order.
    pub(crate) fn pick(state: &State<S>, plugin: &Plugin<S>) -> Self {
        let replays: Vec<Replay<S>> = state
            .history
            .iter()
            .filter(|(hook, _)| {
                let hook = S::HOOKS[*hook].name;
                plugin.impls.iter().any(|d| d.hook == hook)
            })
            .map(|(_, replay)| replay.clone())
            .collect();
        let solo = (!replays.is_empty()).then(|| state.fork(false));
        Pending { replays, solo }
    }

    /// Replays them to `plugin`, registered as `name`; on the first
    /// failure calls `unregister` and reports the failure.
    ///
    /// # Errors
    ///
    /// [`ManagerError::HistoricReplay`] naming the plugin and the error.
    pub(crate) fn replay(
        self,
        name: &str,
        plugin: &Plugin<S>,
        unregister: impl FnOnce(),
    ) -> Result<(), ManagerError> {
        let Some(mut solo) = self.solo else {
            return Ok(());
        };
        solo.add(name, plugin)?;
        let snapshot = Arc::new(solo.snapshot(None));
        for replay in self.replays {
            if let Err(error) = replay(&snapshot) {
                unregister();
                return Err(ManagerError::HistoricReplay {
                    plugin: name.to_owned(),
                    error,
                });
            }
        }
        Ok(())
    }
}
