//! [`AppHooks`]: every hook the application calls.

use hooks_core::prelude::*;

use crate::context::HookContext;
use crate::http::Startup;
use crate::model::{Identity, Membership, Space, User};

/// The application's hooks. A plugin implements the ones it cares about
/// with `#[hookimpl] impl AppHooks for MyPlugin { ... }`.
///
/// Entity hooks run inside the database transaction of the operation that
/// caused them, after its own change: what a plugin writes through `ctx`
/// commits or rolls back with it, and an error (or panic) rolls the whole
/// operation back; the API then answers with the error's status (500 unless
/// the plugin returned an [`ApiError`](crate::ApiError)) and names the plugin
/// and the hook.
///
/// **An entity hook may run more than once for one operation.** On
/// PostgreSQL every operation is SERIALIZABLE; one that collides with a
/// concurrent operation is rolled back and run again from the start, its
/// hooks included. So an entity hook may do anything through `ctx` (its
/// database writes from a lost run are rolled back with it, and only the
/// last run's remain), and nothing else: no mail, no HTTP call, no file, no
/// counter in memory, nothing that a rollback cannot undo.
#[hookspec]
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

    /// A user was created.
    async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()>;
    /// A user was changed.
    async fn on_user_modified(
        &self,
        before: &User,
        after: &User,
        ctx: &HookContext,
    ) -> HookResult<()>;
    /// A user was deleted (after their memberships).
    async fn on_user_deleted(&self, user: &User, ctx: &HookContext) -> HookResult<()>;

    /// A space was created.
    async fn on_space_created(&self, space: &Space, ctx: &HookContext) -> HookResult<()>;
    /// A space was changed.
    async fn on_space_modified(
        &self,
        before: &Space,
        after: &Space,
        ctx: &HookContext,
    ) -> HookResult<()>;
    /// A space was deleted (after its sub-spaces and memberships).
    async fn on_space_deleted(&self, space: &Space, ctx: &HookContext) -> HookResult<()>;

    /// A user joined a space.
    async fn on_membership_created(
        &self,
        membership: &Membership,
        ctx: &HookContext,
    ) -> HookResult<()>;
    /// A member's role changed.
    async fn on_membership_modified(
        &self,
        before: &Membership,
        after: &Membership,
        ctx: &HookContext,
    ) -> HookResult<()>;
    /// A user left a space (or was removed).
    async fn on_membership_deleted(
        &self,
        membership: &Membership,
        ctx: &HookContext,
    ) -> HookResult<()>;
}
