//! Tracim's parent_access: a member of a space is a member of every
//! ancestor space too. A user who joins a space joins each ancestor they
//! are not in yet, with that ancestor's default role; the members of a
//! space moved under another join its new ancestors the same way.
//!
//! The missing ancestors are joined from the top down, so that each
//! membership this adds finds its own parent joined already and adds
//! nothing more: the hooks nest two deep however deep the tree (a level
//! per ancestor would reach the engine's depth limit in a deep one).

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
        let space = ctx.services().get_space(ctx, membership.space_id).await?;
        join_ancestors(ctx, &space, membership.user_id).await
    }

    async fn on_space_modified(
        &self,
        before: &Space,
        after: &Space,
        ctx: &HookContext,
    ) -> HookResult<()> {
        if after.parent_id.is_none() || after.parent_id == before.parent_id {
            return Ok(());
        }
        // The members of its sub-spaces are its members too.
        let members = ctx
            .services()
            .list_members(ctx, after.id, Page::all())
            .await?;
        for member in members {
            join_ancestors(ctx, after, member.user_id).await?;
        }
        Ok(())
    }
}

/// Makes `user_id` a member of the ancestors of `space` they are not in:
/// those below the first ancestor they belong to (whose own ancestors
/// they are in already), joined from the top down.
async fn join_ancestors(ctx: &HookContext, space: &Space, user_id: i64) -> HookResult<()> {
    let services = ctx.services();
    let mut missing = Vec::new();
    let mut next = space.parent_id;
    while let Some(id) = next {
        if services.get_member(ctx, id, user_id).await?.is_some() {
            break;
        }
        let parent = services.get_space(ctx, id).await?;
        next = parent.parent_id;
        missing.push(parent);
    }
    for parent in missing.iter().rev() {
        services
            .put_member(ctx, parent.id, user_id, parent.default_role)
            .await?;
    }
    Ok(())
}

hookspecs::export_plugin!(ParentAccess::default);
