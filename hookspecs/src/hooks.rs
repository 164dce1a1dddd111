//! [`AppHooks`]: every hook the application calls.

use hooks_core::prelude::*;

use crate::authz::{AccessCheck, Decision};
use crate::changes::{ChangeKind, Entity};
use crate::context::HookContext;
use crate::http::Startup;
use crate::model::{Identity, Membership, Space, User};

crate::changes::changes! {

/// The application's hooks. A plugin implements the ones it cares about
/// with `#[hookimpl] impl AppHooks for MyPlugin { ... }`.
///
#[doc = include_str!("../docs/plugin.md")]
///
/// # A plugin's life, in order
///
/// 1. **Discovery.** At startup the app looks in its plugin folder
///    (`plugins/` by default) for crates and libraries named
///    `app_plugin_<name>`; `<name>` is the plugin's name from then on. A
///    crate there is built by the same `cargo build` as the app.
/// 2. **Checks.** The library file is refused if others could have changed
///    it; then the SDK fingerprint it exports is read from the file and
///    compared with the app's: a library built by another compiler, against
///    other SDK sources or with another profile is refused, with the
///    command that fixes it ([`loader`](crate::loader)).
/// 3. **Construction.** The app calls the library's registration function,
///    which [`export_plugin!`](crate::export_plugin) wrote: it reads the
///    plugin's `[plugins.<name>]` table into its typed configuration and
///    calls the constructor given to the macro. The constructor may refuse
///    (`Err`: the plugin fails, with that message) or answer
///    [`PluginExport::idle`](crate::PluginExport::idle) (loaded, no hook
///    called until it is configured).
/// 4. **Registration.** Plugins are registered with the engine after those
///    they require (`requires = [...]`); one whose requirement is missing,
///    failed or in a cycle fails. From here its hooks are called in the
///    engine's call order (`priority`, `tryfirst`, `trylast`, ...).
/// 5. **Migrations.** Its own tables' [`Migration`](crate::Migration)s not
///    applied yet are applied, in one transaction.
/// 6. **[`on_plugins_loaded`](Self::on_plugins_loaded)**, once, with its
///    [`Startup`]: its configuration, and the only moment it can add
///    routes (under `/plugins/<name>/`).
/// 7. **Serving.** For each request: [`authenticate`](Self::authenticate)
///    (who is calling), [`authorize`](Self::authorize) (before every
///    operation), then, for every change an operation makes, its
///    in-transaction `on_*` hook, and after the commit its `after_*` hook
///    (below).
/// 8. **Shutdown.** On SIGINT or SIGTERM the app stops accepting
///    connections, lets the requests in flight finish (their hooks with
///    them), stops the deliveries (an event cut short is delivered again at
///    the next start) and closes the database. There is no shutdown hook,
///    and a library is never unloaded.
///
/// A plugin that fails at any of steps 2 to 6 (an error, or a panic) is
/// taken out with its routes and reported (`GET /api/admin/plugins`, the
/// log), and the app starts without it, unless it is listed in
/// `[plugins] required`: then the app does not start.
///
/// # Two phases
///
/// Every entity event comes in two phases, one hook each (or the catch-all
/// of that phase, below):
///
/// | | in-transaction: `on_*` | after-commit: `after_*` |
/// |---|---|---|
/// | runs | inside the operation's transaction, after its change | once that transaction committed, off the request path |
/// | `ctx` | the operation's unit of work | a unit of work of its own (commits if the hook succeeds) |
/// | an error or panic | rolls the whole operation back (veto) | is retried with backoff, then the delivery is dead |
/// | may run | more than once per operation (a re-run operation) | at least once per event (same [`Delivery::event_id`]) |
/// | use it to | keep the database consistent | talk to the world: mail, webhooks, indexes |
///
/// In-transaction hooks (`on_*`): what a plugin writes through `ctx`
/// commits or rolls back with the operation, and an error (or panic) rolls
/// the whole operation back; the API then answers with the error's status
/// (500 unless the plugin returned an [`ApiError`](crate::ApiError)) and
/// names the plugin and the hook. They must never act on the outside world:
/// the operation may still roll back, or run again.
///
/// **An in-transaction hook may run more than once for one operation.** On
/// PostgreSQL every operation is SERIALIZABLE; one that collides with a
/// concurrent operation is rolled back and run again from the start, its
/// hooks included. So it may do anything through `ctx` (what a lost run
/// wrote is rolled back with it, and only the last run's writes remain), and
/// nothing else: no mail, no HTTP call, no file, no counter in memory,
/// nothing a rollback cannot undo. That is what `after_*` hooks are for.
///
/// After-commit hooks (`after_*`) cannot veto: the operation has committed.
/// They receive the committed entity (before and after for a modification),
/// the [`Delivery`] (event id as idempotency key, attempt number) and a
/// context whose unit of work is NOT the operation's: it is the
/// delivery's own, committed when the hook returns `Ok` and rolled back
/// otherwise (the delivery is marked done just after: a crash in between
/// delivers the event again, with the same event id). Each plugin implementing the hook gets its own delivery, started
/// in commit order (one at a time with `ordered = true`); `[deliveries]` in the config sets attempts, backoff and the
/// time limit. On SQLite the first write through `ctx` takes the
/// application's one writer's turn until the hook returns: talk to the world
/// first, write after.
///
/// # Every change at once
///
/// [`on_change`](Self::on_change) and [`after_change`](Self::after_change)
/// hear every entity change, in the transaction and after commit: a plugin
/// that treats all changes alike (an audit log, a webhook sender)
/// implements one method instead of nine. They are not called by their own
/// names: each `on_*` hook a plugin does not implement itself hands its
/// change to the plugin's `on_change` (its default body does), and each
/// `after_*` hook to `after_change`. So the catch-all runs exactly where the
/// specific hook would: in the operation's transaction, with its veto, for
/// `on_change`; once per event in the plugin's own outbox delivery, with its
/// retries, for `after_change`.
///
/// A plugin implementing both a specific hook and the catch-all gets the
/// specific one for that change, and the catch-all for the others: still
/// one call, and one delivery, per change. To have both run, call
/// `self.on_change(...)` (or `self.after_change(...)`) from the specific
/// one. [`PluginExport::only_hooks`](crate::PluginExport::only_hooks) sees
/// the specific hooks a catch-all stands for, so a plugin can narrow
/// `after_change` to some events.
///
/// ```
/// use hookspecs::prelude::*;
///
/// /// Counts every change, and says when a space goes.
/// struct Watcher;
///
/// #[hookimpl]
/// impl AppHooks for Watcher {
///     async fn on_change(&self, change: &Change, ctx: &HookContext) -> HookResult<()> {
///         tracing::info!("{} {}", change.name(), change.entity().label());
///         Ok(())
///     }
///     async fn on_space_deleted(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
///         tracing::info!("space {} is gone", space.name);
///         Ok(())
///     }
///     async fn after_change(&self, delivery: &Delivery, ctx: &HookContext) -> HookResult<()> {
///         tracing::info!("committed: {}", delivery.change.name());
///         Ok(())
///     }
/// }
///
/// let export = hookspecs::PluginExport::new(Watcher);
/// let hooks: Vec<&str> = export.plugin.impls().iter().map(|d| d.hook).collect();
/// // 8 `on_*` by `on_change`, `on_space_deleted` itself, 9 `after_*`.
/// assert_eq!(hooks.len(), 18);
/// assert!(hooks.contains(&"on_space_deleted") && hooks.contains(&"after_user_created"));
/// assert!(!hooks.contains(&"on_change"));
/// ```
pub trait AppHooks {
    /// Startup, once per plugin, after every plugin is registered: the only
    /// time a plugin can add HTTP routes.
    async fn on_plugins_loaded(&self, startup: &Startup) -> HookResult<()> {
        let _ = startup;
        Ok(())
    }

    /// Recognises a bearer token: the first plugin that answers `Some`
    /// decides who is acting. The application's own implementation
    /// (`trylast`) accepts the admin token.
    #[hookspec(firstresult)]
    async fn authenticate(&self, token: &str, ctx: &HookContext) -> HookResult<Option<Identity>>;

    /// May `check.who` do `check.action` to `check.resource`? Asked by
    /// every operation of the services before it changes or reveals
    /// anything, for a request's identity (inside hooks the application's
    /// authority applies, unless a plugin chose
    /// [`HookContext::acting_as`]). The first plugin with an opinion
    /// decides: [`Decision::Allow`], [`Decision::Deny`] (403) or
    /// [`Decision::Hide`] (404, as if it did not exist); `None` passes. The
    /// application's default policy (`trylast`) answers last: the roles, as
    /// README's "Who may do what" tabulates.
    #[hookspec(firstresult)]
    async fn authorize(
        &self,
        check: &AccessCheck,
        ctx: &HookContext,
    ) -> HookResult<Option<Decision>>;
}
}
