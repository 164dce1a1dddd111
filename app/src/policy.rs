//! The application's default authorization policy: the answer of the
//! built-in plugin's `authorize` (`trylast`), when no plugin had an opinion.
//! README's "Who may do what" is this function as a table.

use hookspecs::{
    Access, AccessCheck, Action, ApiError, Decision, HookContext, Resource, Role, Space,
};

/// What the roles allow. `ctx` has the application's authority, so the
/// lookups here are not themselves authorized.
pub async fn decide(check: &AccessCheck, ctx: &HookContext) -> Result<Decision, ApiError> {
    use Action::*;
    if check.is_admin() {
        return Ok(Decision::Allow);
    }
    let Some(me) = check.user_id() else {
        return Ok(deny("only a signed-in user"));
    };
    let roles = Roles { me, ctx };
    Ok(match (check.action, &check.resource) {
        (ListUsers | ReadUser, _) => Decision::Allow,
        (ReadEmail | UpdateUser | DeleteUser, Resource::User(user)) if user.id == me => {
            Decision::Allow
        }
        (ReadEmail, _) => deny("an e-mail address is seen by its user and the admin only"),
        (UpdateUser | DeleteUser, _) => deny("a user changes and deletes only their own account"),
        (CreateUser, _) => deny("only the admin creates users"),
        (CreateSpace, Resource::NewSpace(new)) => match new.parent_id {
            None => Decision::Allow,
            Some(parent) => match roles.space(parent).await? {
                // No such parent: the operation answers that itself.
                None => Decision::Allow,
                Some(parent) => roles.manage(&parent, "create a sub-space").await?,
            },
        },
        (ReadSpace, Resource::Space(space)) => {
            if roles.sees(space).await? {
                Decision::Allow
            } else {
                Decision::Hide
            }
        }
        (UpdateSpace | DeleteSpace, Resource::Space(space)) => {
            roles.manage(space, "change or delete it").await?
        }
        (ListMembers, Resource::Space(space)) => {
            if roles.member(space.id).await?.is_some() || roles.manages(space).await? {
                Decision::Allow
            } else if roles.sees(space).await? {
                deny("members see the member list")
            } else {
                Decision::Hide
            }
        }
        (DeleteMember, Resource::Membership { user_id, .. }) if *user_id == me => Decision::Allow,
        (PutMember | DeleteMember, Resource::Membership { space, .. }) => {
            roles.manage(space, "manage its members").await?
        }
        _ => deny("no rule of the default policy allows it"),
    })
}

fn deny(reason: &str) -> Decision {
    Decision::Deny(reason.to_owned())
}

/// The acting user's place in the spaces.
struct Roles<'a> {
    me: i64,
    ctx: &'a HookContext,
}

impl Roles<'_> {
    async fn space(&self, id: i64) -> Result<Option<Space>, ApiError> {
        match self.ctx.services().get_space(self.ctx, id).await {
            Ok(space) => Ok(Some(space)),
            Err(error) if error.status == 404 => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn member(&self, space: i64) -> Result<Option<Role>, ApiError> {
        let found = self
            .ctx
            .services()
            .get_member(self.ctx, space, self.me)
            .await?;
        Ok(found.map(|m| m.role))
    }

    /// Space manager of `space` or of one of its ancestors.
    async fn manages(&self, space: &Space) -> Result<bool, ApiError> {
        if self.member(space.id).await? == Some(Role::SpaceManager) {
            return Ok(true);
        }
        let mut at = space.parent_id;
        while let Some(id) = at {
            if self.member(id).await? == Some(Role::SpaceManager) {
                return Ok(true);
            }
            at = self.space(id).await?.and_then(|s| s.parent_id);
        }
        Ok(false)
    }

    /// Open and on-request spaces are seen by everyone signed in;
    /// confidential ones by their members and the managers above them.
    async fn sees(&self, space: &Space) -> Result<bool, ApiError> {
        Ok(space.access != Access::Confidential
            || self.member(space.id).await?.is_some()
            || self.manages(space).await?)
    }

    /// Allowed to a manager; refused (403) to one who sees the space; hidden
    /// (404) from anyone else.
    async fn manage(&self, space: &Space, what: &str) -> Result<Decision, ApiError> {
        Ok(if self.manages(space).await? {
            Decision::Allow
        } else if self.sees(space).await? {
            deny(&format!(
                "a space manager of the space or above it may {what}"
            ))
        } else {
            Decision::Hide
        })
    }
}
