//! Tracim's parent_access: a user who becomes a member of a space also
//! becomes a member of every ancestor space they are not in yet, with that
//! ancestor's default role. Each membership it adds fires this hook again
//! for the next ancestor; it stops at the top, or at an ancestor the user
//! already belongs to, so it never loops.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct ParentAccess;

#[hookimpl]
impl AppHooks for ParentAccess {
    async fn on_membership_created(
        &self,
        membership: &Membership,
        ctx: &HookContext,
    ) -> HookResult<()> {
        let services = ctx.services();
        let space = services.get_space(ctx, membership.space_id).await?;
        let Some(parent_id) = space.parent_id else {
            return Ok(());
        };
        if services
            .get_member(ctx, parent_id, membership.user_id)
            .await?
            .is_none()
        {
            let parent = services.get_space(ctx, parent_id).await?;
            services
                .put_member(ctx, parent.id, membership.user_id, parent.default_role)
                .await?;
        }
        Ok(())
    }
}

hookspecs::export_plugin!(ParentAccess::default);
