//! Tracim's autoinvite: a new user joins every `open` space with the space's
//! default role, and a new `open` space gets every existing user. It acts
//! through the services, inside the same unit of work, so the memberships
//! fire their own hooks.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct Autoinvite;

#[hookimpl]
impl AppHooks for Autoinvite {
    async fn on_user_created(&self, user: &User, ctx: &HookContext) -> HookResult<()> {
        let services = ctx.services();
        for space in services.list_spaces(ctx, Page::all()).await? {
            if space.access == Access::Open {
                services
                    .put_member(ctx, space.id, user.id, space.default_role)
                    .await?;
            }
        }
        Ok(())
    }

    async fn on_space_created(&self, space: &Space, ctx: &HookContext) -> HookResult<()> {
        if space.access != Access::Open {
            return Ok(());
        }
        let services = ctx.services();
        for user in services.list_users(ctx, Page::all()).await? {
            services
                .put_member(ctx, space.id, user.id, space.default_role)
                .await?;
        }
        Ok(())
    }
}

hookspecs::export_plugin!(Autoinvite::default);
