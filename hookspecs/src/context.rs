//! What entity hooks get beside the entity: the [`HookContext`] with the
//! operation's unit of work, the acting identity, plugin configuration and
//! the application's [`Services`].

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::model::{
    Identity, Membership, NewSpace, NewUser, Role, Space, SpacePatch, User, UserPatch,
};
use crate::page::Page;
#[cfg(not(target_family = "wasm"))]
use crate::uow::{DbGuard, UnitOfWork};

/// Each plugin's configuration (`[plugins.<name>]` of the config file), by
/// plugin name.
#[derive(Clone, Debug, Default)]
pub struct PluginConfigs(pub HashMap<String, Value>);

/// The context of an entity hook (and of every service call): the
/// operation's unit of work ([`db`](Self::db)), who is acting
/// ([`actor`](Self::actor)), the application's operations
/// ([`services`](Self::services)) and the plugins' configuration. Only the
/// host makes one (see [`host`](crate::host)); a plugin gets it.
///
/// It is valid for the call it is given to, and only then: its unit of
/// work ends with the operation, and in a component it answers for the
/// call under way (a context kept past its call, in a `static` say, reads
/// a later call's actor).
///
/// ```
/// use hookspecs::prelude::*;
///
/// struct Journal;
///
/// #[hookimpl]
/// impl AppHooks for Journal {
///     async fn on_space_created(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
///         // The operation's own transaction: this row commits with the
///         // space, or neither does.
///         sqlx::query("INSERT INTO plugin_journal_entries (space_id, actor) VALUES ($1, $2)")
///             .bind(space.id)
///             .bind(ctx.actor().map(|who| who.name.clone()))
///             .execute(&mut *ctx.db().await?)
///             .await?;
///         // Its settings, `[plugins.journal]`:
///         let verbose = ctx.plugin_config("journal").and_then(|t| t["verbose"].as_bool());
///         if verbose == Some(true) {
///             tracing::info!(space = space.id, "journaled");
///         }
///         Ok(())
///     }
/// }
/// # hookspecs::export_plugin!(|| Journal);
/// ```
#[derive(Clone)]
pub struct HookContext {
    /// The operation's transaction. A component has none of its own: the
    /// host runs what it asks in the transaction of the call it serves.
    #[cfg(not(target_family = "wasm"))]
    uow: Arc<UnitOfWork>,
    actor: Actor,
    /// Where a component's context asks for the actor: the host's.
    #[cfg(target_family = "wasm")]
    ask_actor: fn() -> Option<Identity>,
    /// Whether the services ask `authorize` before acting for `actor`
    /// (a request's context), or act with the application's authority (the
    /// context a hook gets).
    checked: bool,
    services: Arc<dyn Services>,
    configs: Arc<PluginConfigs>,
}

/// Who is acting, as a context holds it: natively shared, so that a copy
/// of the context (each hook's, a component's store) copies no string.
#[cfg(not(target_family = "wasm"))]
type Actor = Option<Arc<Identity>>;

/// In a component, asked of the host (the WIT `actor`, through
/// `ask_actor`) at the first [`HookContext::actor`] of a call, not before:
/// most hooks never read it, and its JSON, written by the host and read
/// here, was a quarter of a call without a service call (BENCHMARKS.md).
#[cfg(target_family = "wasm")]
type Actor = std::sync::OnceLock<Option<Identity>>;

/// `actor` as a context holds it.
fn held(actor: Option<Identity>) -> Actor {
    #[cfg(not(target_family = "wasm"))]
    {
        actor.map(Arc::new)
    }
    #[cfg(target_family = "wasm")]
    {
        actor.into()
    }
}

impl HookContext {
    #[cfg(not(target_family = "wasm"))]
    pub(crate) fn new(
        uow: Arc<UnitOfWork>,
        actor: Option<Identity>,
        services: Arc<dyn Services>,
        configs: Arc<PluginConfigs>,
    ) -> Self {
        HookContext {
            uow,
            actor: held(actor),
            checked: true,
            services,
            configs,
        }
    }

    /// A component's context for the call it serves: the host's services
    /// and identity (asked when first read), its own configuration;
    /// `checked` as the host's.
    #[cfg(target_family = "wasm")]
    pub(crate) fn guest(
        ask_actor: fn() -> Option<Identity>,
        checked: bool,
        services: Arc<dyn Services>,
        configs: Arc<PluginConfigs>,
    ) -> Self {
        HookContext {
            actor: Actor::new(),
            ask_actor,
            checked,
            services,
            configs,
        }
    }

    /// The same unit of work, acting as `actor` with `actor`'s rights: what
    /// the services do through the returned context is authorized for
    /// `actor` (`authorize`), as if `actor` had asked the API.
    ///
    /// Inside a hook, `ctx` acts with the application's authority, so that
    /// a plugin keeping an invariant (autoinvite, parent_access) works for
    /// every user; `ctx.acting_as(ctx.actor().cloned())` gives that up and
    /// acts as the user who caused the hook.
    pub fn acting_as(&self, actor: Option<Identity>) -> Self {
        HookContext {
            actor: held(actor),
            checked: true,
            ..self.clone()
        }
    }

    /// The same unit of work and actor, with the application's authority:
    /// what hooks get.
    #[cfg(not(target_family = "wasm"))]
    pub(crate) fn with_app_authority(&self) -> Self {
        HookContext {
            checked: false,
            ..self.clone()
        }
    }

    /// Whether the services authorize what is done through this context
    /// (see [`HookContext::acting_as`]); `false` inside hooks.
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// The transaction's connection: `query.execute(&mut *ctx.db().await?)`.
    /// Native plugins only: a component runs SQL through
    /// [`query`](Self::query) and [`execute`](Self::execute).
    ///
    /// # Errors
    ///
    /// The database's, beginning; or the unit of work has already ended.
    #[cfg(not(target_family = "wasm"))]
    pub async fn db(&self) -> Result<DbGuard<'_>, ApiError> {
        self.uow.db().await
    }

    /// The unit of work, for the host (`host::when_needed`, `host::needs`).
    #[cfg(not(target_family = "wasm"))]
    pub(crate) fn uow(&self) -> &UnitOfWork {
        &self.uow
    }

    /// Who is acting (`None` for the application itself, e.g. at startup).
    pub fn actor(&self) -> Option<&Identity> {
        #[cfg(target_family = "wasm")]
        {
            self.actor.get_or_init(self.ask_actor).as_ref()
        }
        #[cfg(not(target_family = "wasm"))]
        {
            self.actor.as_deref()
        }
    }

    /// The application's operations, the same the API uses: what a plugin
    /// does through them fires hooks in turn, inside this unit of work.
    pub fn services(&self) -> &dyn Services {
        &*self.services
    }

    /// The configuration table of plugin `plugin` (`[plugins.<name>]`), if any.
    pub fn plugin_config(&self, plugin: &str) -> Option<&Value> {
        self.configs.0.get(plugin)
    }
}

impl std::fmt::Debug for HookContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookContext")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// The application's operations. Every method works inside `ctx`'s unit of
/// work and fires the corresponding hooks, as the API does.
///
/// ```
/// use hookspecs::prelude::*;
///
/// /// Keeps every user a member of space 1.
/// struct Lobby;
///
/// #[hookimpl]
/// impl AppHooks for Lobby {
///     async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
///         let services = ctx.services();
///         if services.get_member(ctx, 1, user.id).await?.is_none() {
///             // Fires on_membership_created in turn, in the same transaction.
///             services.put_member(ctx, 1, user.id, Role::Reader).await?;
///         }
///         Ok(())
///     }
/// }
/// # hookspecs::export_plugin!(|| Lobby);
/// ```
#[async_trait]
pub trait Services: Send + Sync {
    /// Asks `authorize` whether `ctx`'s actor may do `action` to
    /// `resource`: for a plugin's own resources (the core operations ask by
    /// themselves). Inside a hook, with the application's authority, it
    /// allows everything.
    ///
    /// # Errors
    /// 403 naming the action when refused, 404 when the caller may not even
    /// see the resource.
    async fn authorize(
        &self,
        ctx: &HookContext,
        action: Action,
        resource: Resource,
    ) -> Result<(), ApiError>;

    /// Creates a user; fires `on_user_created`.
    async fn create_user(&self, ctx: &HookContext, new: NewUser) -> Result<User, ApiError>;
    /// One user.
    async fn get_user(&self, ctx: &HookContext, id: i64) -> Result<User, ApiError>;
    /// A page of the users the caller may see, by id ([`Page::all`] for
    /// every one); short only when no more follow.
    async fn list_users(&self, ctx: &HookContext, page: Page) -> Result<Vec<User>, ApiError>;
    /// Changes a user; fires `on_user_modified`.
    async fn update_user(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, ApiError>;
    /// Deletes a user and their memberships; fires `on_membership_deleted`
    /// for each, then `on_user_deleted`.
    async fn delete_user(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError>;

    /// Creates a space; fires `on_space_created`.
    async fn create_space(&self, ctx: &HookContext, new: NewSpace) -> Result<Space, ApiError>;
    /// One space.
    async fn get_space(&self, ctx: &HookContext, id: i64) -> Result<Space, ApiError>;
    /// A page of the spaces the caller may see, by id ([`Page::all`] for
    /// every one); short only when no more follow.
    async fn list_spaces(&self, ctx: &HookContext, page: Page) -> Result<Vec<Space>, ApiError>;
    /// The spaces directly inside space `parent_id`, by id.
    async fn sub_spaces(&self, ctx: &HookContext, parent_id: i64) -> Result<Vec<Space>, ApiError>;
    /// Changes a space; fires `on_space_modified`.
    async fn update_space(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: SpacePatch,
    ) -> Result<Space, ApiError>;
    /// Deletes a space with its sub-spaces and memberships, firing every
    /// deletion's hook (memberships, then the space, deepest first).
    async fn delete_space(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError>;

    /// Sets a user's role in a space. Returns the membership and whether it
    /// was created (`on_membership_created`) rather than changed
    /// (`on_membership_modified`; nothing fires if the role is the same).
    async fn put_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<(Membership, bool), ApiError>;
    /// A page of a space's memberships, by user id.
    async fn list_members(
        &self,
        ctx: &HookContext,
        space_id: i64,
        page: Page,
    ) -> Result<Vec<Membership>, ApiError>;
    /// A user's memberships, by space id.
    async fn memberships_of(
        &self,
        ctx: &HookContext,
        user_id: i64,
    ) -> Result<Vec<Membership>, ApiError>;
    /// One membership, if it exists.
    async fn get_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<Option<Membership>, ApiError>;
    /// Removes a membership; fires `on_membership_deleted`.
    async fn delete_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<(), ApiError>;
}
