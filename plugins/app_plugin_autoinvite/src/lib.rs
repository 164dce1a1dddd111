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

#[cfg(test)]
mod tests {
    use app_testkit::{HookTest, admin, new_user, run};
    use hookspecs::{Access, NewSpace};

    #[test]
    fn new_users_join_open_spaces_and_new_open_spaces_get_every_user() {
        run(async {
            let kit = HookTest::new()
                .await
                .register("autoinvite", crate::app_plugin_register)
                .await;
            let space = |name: &str, access| NewSpace {
                name: name.into(),
                parent_id: None,
                access,
                default_role: None,
            };
            let (open, closed) = (
                space("open", Access::Open),
                space("closed", Access::Confidential),
            );
            kit.run(admin(), |ctx| async move {
                ctx.services().create_space(&ctx, closed).await?;
                ctx.services().create_space(&ctx, open).await?;
                ctx.services().create_user(&ctx, new_user("ada")).await
            })
            .await
            .unwrap();
            let later = space("later", Access::Open);
            kit.run(admin(), |ctx| async move {
                ctx.services().create_space(&ctx, later).await
            })
            .await
            .unwrap();
            let joined = kit
                .column("SELECT s.name || ':' || m.role FROM memberships m JOIN spaces s ON s.id = m.space_id ORDER BY s.name")
                .await;
            assert_eq!(joined, ["later:reader", "open:reader"]);
        });
    }
}
