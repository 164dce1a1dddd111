//! Tracim's child_removal: a user removed from a space is removed from all
//! its descendant spaces, also those below a sub-space they are not in.
//!
//! The removals are made here, deepest first, so that each one fires this
//! hook again for a space with nothing of the user's left below it: the
//! hooks nest two deep however deep the tree (a level per removal would
//! reach the engine's depth limit in a deep one).

use std::collections::HashSet;

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
        let user_id = membership.user_id;
        let mut theirs: HashSet<i64> = services
            .memberships_of(ctx, user_id)
            .await?
            .into_iter()
            .map(|m| m.space_id)
            .collect();
        // The descendants, a level at a time, until none of the user's
        // spaces can be left below.
        let mut found = Vec::new();
        let mut level = vec![membership.space_id];
        while !level.is_empty() && !theirs.is_empty() {
            let mut below = Vec::new();
            for id in level {
                let children = services.sub_spaces(ctx, id).await?;
                below.extend(children.into_iter().map(|s| s.id));
            }
            found.extend(below.iter().copied().filter(|id| theirs.remove(id)));
            level = below;
        }
        for space_id in found.into_iter().rev() {
            services.delete_member(ctx, space_id, user_id).await?;
        }
        Ok(())
    }
}

hookspecs::export_plugin!(ChildRemoval::default);
