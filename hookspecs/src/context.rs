//! What entity hooks get beside the entity: the [`HookContext`] with the
//! operation's unit of work, the acting identity, plugin configuration and
//! the application's [`Services`].

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::ApiError;
use crate::model::{
    Identity, Membership, NewSpace, NewUser, Role, Space, SpacePatch, User, UserPatch,
};

/// The database transaction of one operation. Everything written through it
/// commits or rolls back together: the operation's own rows and whatever its
/// hooks' plugins wrote.
pub struct UnitOfWork {
    tx: Mutex<Option<Transaction<'static, Any>>>,
}

impl UnitOfWork {
    /// Wraps an open transaction.
    pub fn new(tx: Transaction<'static, Any>) -> Self {
        UnitOfWork {
            tx: Mutex::new(Some(tx)),
        }
    }

    /// The transaction's connection, for `sqlx` queries:
    /// `query.execute(&mut *uow.db().await?)`. Hold the guard only for the
    /// queries themselves: hooks called meanwhile need it too.
    pub async fn db(&self) -> Result<DbGuard<'_>, ApiError> {
        let guard = self.tx.lock().await;
        if guard.is_none() {
            return Err(ApiError::internal("the unit of work has already ended"));
        }
        Ok(DbGuard(guard))
    }

    /// Commits. Called by the application when the operation succeeded.
    pub async fn commit(&self) -> Result<(), ApiError> {
        match self.tx.lock().await.take() {
            Some(tx) => Ok(tx.commit().await?),
            None => Err(ApiError::internal("the unit of work has already ended")),
        }
    }

    /// Rolls back. Called by the application when the operation failed.
    pub async fn rollback(&self) -> Result<(), ApiError> {
        match self.tx.lock().await.take() {
            Some(tx) => Ok(tx.rollback().await?),
            None => Ok(()),
        }
    }
}

/// The locked connection of a [`UnitOfWork`].
pub struct DbGuard<'a>(MutexGuard<'a, Option<Transaction<'static, Any>>>);

impl Deref for DbGuard<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.0.as_ref().expect("checked in UnitOfWork::db")
    }
}

impl DerefMut for DbGuard<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.0.as_mut().expect("checked in UnitOfWork::db")
    }
}

/// Each plugin's configuration (`[plugins.<name>]` of the config file), by
/// plugin name.
#[derive(Clone, Debug, Default)]
pub struct PluginConfigs(pub HashMap<String, Value>);

/// The context of an entity hook (and of every service call).
#[derive(Clone)]
pub struct HookContext {
    uow: Arc<UnitOfWork>,
    actor: Option<Identity>,
    services: Arc<dyn Services>,
    configs: Arc<PluginConfigs>,
}

impl HookContext {
    /// A context for one operation. The application makes these.
    pub fn new(
        uow: Arc<UnitOfWork>,
        actor: Option<Identity>,
        services: Arc<dyn Services>,
        configs: Arc<PluginConfigs>,
    ) -> Self {
        HookContext {
            uow,
            actor,
            services,
            configs,
        }
    }

    /// The same unit of work, acting as `actor`.
    pub fn acting_as(&self, actor: Option<Identity>) -> Self {
        HookContext {
            actor,
            ..self.clone()
        }
    }

    /// The operation's unit of work.
    pub fn unit_of_work(&self) -> &Arc<UnitOfWork> {
        &self.uow
    }

    /// The transaction's connection: `query.execute(&mut *ctx.db().await?)`.
    pub async fn db(&self) -> Result<DbGuard<'_>, ApiError> {
        self.uow.db().await
    }

    /// Who is acting (`None` for the application itself, e.g. at startup).
    pub fn actor(&self) -> Option<&Identity> {
        self.actor.as_ref()
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
#[async_trait]
pub trait Services: Send + Sync {
    /// Creates a user; fires `on_user_created`.
    async fn create_user(&self, ctx: &HookContext, new: NewUser) -> Result<User, ApiError>;
    /// One user.
    async fn get_user(&self, ctx: &HookContext, id: i64) -> Result<User, ApiError>;
    /// All users, by id.
    async fn list_users(&self, ctx: &HookContext) -> Result<Vec<User>, ApiError>;
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
    /// All spaces, by id.
    async fn list_spaces(&self, ctx: &HookContext) -> Result<Vec<Space>, ApiError>;
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
    /// A space's memberships, by user id.
    async fn list_members(
        &self,
        ctx: &HookContext,
        space_id: i64,
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
