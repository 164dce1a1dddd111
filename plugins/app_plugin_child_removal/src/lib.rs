//! Tracim's child_removal: a user removed from a space is removed from all
//! its descendant spaces. Each removal it makes fires this hook again for
//! the next level down.

use hookspecs::prelude::*;

#[derive(Default)]
pub struct ChildRemoval;

#[hookimpl]
impl AppHooks for ChildRemoval {
    async fn on_membership_deleted(
        &self,
        membership: &Membership,
        ctx: &HookContext,
    ) -> HookResult<()> {
        let services = ctx.services();
        for child in services.sub_spaces(ctx, membership.space_id).await? {
            if services
                .get_member(ctx, child.id, membership.user_id)
                .await?
                .is_some()
            {
                services
                    .delete_member(ctx, child.id, membership.user_id)
                    .await?;
            }
        }
        Ok(())
    }
}

hookspecs::export_plugin!(ChildRemoval::default);
