//! Access control: every operation asks the `authorize` hook (the default
//! policy answers last) before it changes or reveals anything.

use hookspecs::{AccessCheck, Action, ApiError, Decision, HookContext, Resource, Space, User};

use super::{AppServices, app};

impl AppServices {
    /// The `authorize` hook's answer for what `ctx`'s actor is about to do;
    /// inside hooks (the application's authority) there is nothing to ask.
    pub(super) async fn decide(
        &self,
        ctx: &HookContext,
        action: Action,
        resource: Resource,
    ) -> Result<Decision, ApiError> {
        if !ctx.is_checked() {
            return Ok(Decision::Allow);
        }
        let check = AccessCheck {
            who: ctx.actor().cloned(),
            action,
            resource,
        };
        let answer = self.hooks.hook().authorize(&check, &app(ctx)).await?;
        Ok(answer.map_or_else(|| Decision::Deny("nothing allows it".into()), |a| a.value))
    }

    /// [`decide`](Self::decide), as an error when refused: 403 naming the
    /// action, or `hidden()` (the 404 of a resource that does not exist)
    /// when the caller may not even see it.
    pub(super) async fn allow(
        &self,
        ctx: &HookContext,
        action: Action,
        resource: Resource,
        hidden: impl FnOnce() -> ApiError,
    ) -> Result<(), ApiError> {
        match self.decide(ctx, action, resource).await? {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(ApiError::forbidden(format!(
                "not allowed to {}: {reason}",
                action.as_str()
            ))
            .with("action", action.as_str())),
            Decision::Hide => Err(hidden()),
        }
    }

    /// `user` as the caller may see them: `None` if hidden, the e-mail
    /// address blanked unless they may read it.
    pub(super) async fn reveal_user(
        &self,
        ctx: &HookContext,
        mut user: User,
    ) -> Result<Option<User>, ApiError> {
        if self
            .decide(ctx, Action::ReadUser, Resource::User(user.clone()))
            .await?
            != Decision::Allow
        {
            return Ok(None);
        }
        if self
            .decide(ctx, Action::ReadEmail, Resource::User(user.clone()))
            .await?
            != Decision::Allow
        {
            user.email = String::new();
        }
        Ok(Some(user))
    }

    /// The spaces of `found` the caller may see.
    pub(super) async fn visible(
        &self,
        ctx: &HookContext,
        found: Vec<Space>,
    ) -> Result<Vec<Space>, ApiError> {
        let mut shown = Vec::new();
        for space in found {
            shown.extend(self.shown_space(ctx, space).await?);
        }
        Ok(shown)
    }

    /// `space` if the caller may see it.
    pub(super) async fn shown_space(
        &self,
        ctx: &HookContext,
        space: Space,
    ) -> Result<Option<Space>, ApiError> {
        let decision = self
            .decide(ctx, Action::ReadSpace, Resource::Space(space.clone()))
            .await?;
        Ok((decision == Decision::Allow).then_some(space))
    }

    pub(super) async fn may_list_members(
        &self,
        ctx: &HookContext,
        space_id: i64,
    ) -> Result<bool, ApiError> {
        let Some(space) = self.find_space(ctx, space_id).await? else {
            return Ok(false);
        };
        Ok(self
            .decide(ctx, Action::ListMembers, Resource::Space(space))
            .await?
            == Decision::Allow)
    }
}
