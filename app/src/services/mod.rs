//! The application's operations ([`Services`]), used by the API and by
//! plugins alike. Each works inside the caller's unit of work, asks
//! `access` first, checks its input (`validation`), and fires its hook
//! after its own change, so a failing hook rolls the change back. The
//! operations live by entity (`users`, `spaces`, `members`), over `rows`
//! and `errors`; the trait's implementation below is their index.

use async_trait::async_trait;
use hooks_core::PluginManager;
use hookspecs::{
    Action, ApiError, AppHooks, HookContext, Membership, NewSpace, NewUser, Page, Resource, Role,
    Services, Space, SpacePatch, User, UserPatch,
};

mod access;
mod errors;
mod members;
mod rows;
mod spaces;
mod users;
mod validation;

/// [`Services`] over the database, firing hooks through `hooks`.
pub struct AppServices {
    hooks: PluginManager<dyn AppHooks>,
}

impl AppServices {
    /// Services that fire hooks on `hooks`' plugins.
    pub fn new(hooks: PluginManager<dyn AppHooks>) -> Self {
        AppServices { hooks }
    }

    /// Both phases of a change: its in-transaction hook fires and its event
    /// is recorded for after-commit delivery. The change is written by
    /// then: see [`written`].
    async fn emit(&self, ctx: &HookContext, change: hookspecs::Change) -> Result<(), ApiError> {
        written(ctx, crate::outbox::emit(&self.hooks, ctx, change)).await
    }
}

/// `steps`, those of a service after its first write: their failure is the
/// operation's, which is marked failed (`hookspecs::host::fail`) and rolls
/// back even if the code that called the service carries on, since part
/// of the change is written.
async fn written<T>(
    ctx: &HookContext,
    steps: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let done = steps.await;
    if let Err(error) = &done {
        hookspecs::host::fail(ctx, error);
    }
    done
}

/// `ctx` with the application's authority: for the steps of an operation
/// already authorized as a whole, and for the hooks it fires.
fn app(ctx: &HookContext) -> HookContext {
    hookspecs::host::app_authority(ctx)
}

#[async_trait]
impl Services for AppServices {
    async fn authorize(
        &self,
        ctx: &HookContext,
        action: Action,
        resource: Resource,
    ) -> Result<(), ApiError> {
        self.allow(ctx, action, resource, errors::hidden_resource)
            .await
    }

    async fn create_user(&self, ctx: &HookContext, new: NewUser) -> Result<User, ApiError> {
        users::create_user(self, ctx, new).await
    }

    async fn get_user(&self, ctx: &HookContext, id: i64) -> Result<User, ApiError> {
        users::get_user(self, ctx, id).await
    }

    async fn list_users(&self, ctx: &HookContext, page: Page) -> Result<Vec<User>, ApiError> {
        users::list_users(self, ctx, page).await
    }

    async fn update_user(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, ApiError> {
        users::update_user(self, ctx, id, patch).await
    }

    async fn delete_user(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError> {
        users::delete_user(self, ctx, id).await
    }

    async fn create_space(&self, ctx: &HookContext, new: NewSpace) -> Result<Space, ApiError> {
        spaces::create_space(self, ctx, new).await
    }

    async fn get_space(&self, ctx: &HookContext, id: i64) -> Result<Space, ApiError> {
        spaces::get_space(self, ctx, id).await
    }

    async fn list_spaces(&self, ctx: &HookContext, page: Page) -> Result<Vec<Space>, ApiError> {
        spaces::list_spaces(self, ctx, page).await
    }

    async fn sub_spaces(&self, ctx: &HookContext, parent_id: i64) -> Result<Vec<Space>, ApiError> {
        spaces::sub_spaces(self, ctx, parent_id).await
    }

    async fn update_space(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: SpacePatch,
    ) -> Result<Space, ApiError> {
        spaces::update_space(self, ctx, id, patch).await
    }

    async fn delete_space(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError> {
        spaces::delete_space(self, ctx, id).await
    }

    async fn put_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<(Membership, bool), ApiError> {
        members::put_member(self, ctx, space_id, user_id, role).await
    }

    async fn list_members(
        &self,
        ctx: &HookContext,
        space_id: i64,
        page: Page,
    ) -> Result<Vec<Membership>, ApiError> {
        members::list_members(self, ctx, space_id, page).await
    }

    async fn memberships_of(
        &self,
        ctx: &HookContext,
        user_id: i64,
    ) -> Result<Vec<Membership>, ApiError> {
        members::memberships_of(self, ctx, user_id).await
    }

    async fn get_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<Option<Membership>, ApiError> {
        members::get_member(self, ctx, space_id, user_id).await
    }

    async fn delete_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<(), ApiError> {
        members::delete_member(self, ctx, space_id, user_id).await
    }
}
