//! The space operations, and the space lookups they share.

use hookspecs::{
    Action, ApiError, Change, HookContext, NewSpace, Page, Resource, Role, Services, Space,
    SpacePatch, now,
};

use super::errors::*;
use super::members::check_references_at_commit;
use super::rows::*;
use super::validation::*;
use super::{AppServices, app, written};

impl AppServices {
    pub(super) async fn find_space(
        &self,
        ctx: &HookContext,
        id: i64,
    ) -> Result<Option<Space>, ApiError> {
        let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE id = $1");
        select_one(ctx, &sql, &[id], space).await
    }

    /// A parent must exist and must not be the space itself or below it.
    pub(super) async fn check_parent(
        &self,
        ctx: &HookContext,
        space_id: Option<i64>,
        parent_id: i64,
    ) -> Result<(), ApiError> {
        let mut at = Some(parent_id);
        while let Some(id) = at {
            if Some(id) == space_id {
                return Err(ApiError::invalid(
                    "parent_id",
                    "a space cannot be placed inside itself or its sub-spaces",
                ));
            }
            let Some(found) = self.find_space(ctx, id).await? else {
                return Err(ApiError::invalid(
                    "parent_id",
                    format!("no space with id {id}"),
                ));
            };
            at = found.parent_id;
        }
        Ok(())
    }
}

pub(super) async fn create_space(
    s: &AppServices,
    ctx: &HookContext,
    new: NewSpace,
) -> Result<Space, ApiError> {
    check_space_name(&new.name)?;
    let parent = new.parent_id;
    // A parent the caller may not see is answered like one that does
    // not exist.
    let hidden = || parent.map_or_else(hidden_resource, no_parent);
    s.allow(
        ctx,
        Action::CreateSpace,
        Resource::NewSpace(new.clone()),
        hidden,
    )
    .await?;
    let inner = app(ctx);
    if let Some(parent) = parent {
        s.check_parent(&inner, None, parent).await?;
    }
    let sql = format!(
        "INSERT INTO spaces (name, parent_id, access, default_role, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {SPACE_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(&new.name)
        .bind(new.parent_id)
        .bind(new.access.as_str())
        .bind(new.default_role.unwrap_or(Role::Reader).as_str())
        .bind(now())
        .fetch_one(&mut *ctx.db().await?)
        .await
        .map_err(|e| conflict(e, &[]))?;
    let created = space(&row)?;
    written(ctx, async {
        // Boxed: these operations recurse through their hooks (up to the
        // engine's depth limit), and each level's stack frame holds what
        // it awaits inline.
        Box::pin(check_references_at_commit(ctx)).await?;
        s.emit(&inner, Change::SpaceCreated(created.clone()))
            .await?;
        // Its creator manages it (after the hooks: autoinvite may have made
        // them a member with the space's default role already).
        if let Some(me) = ctx.actor().and_then(|a| a.user_id) {
            s.put_member(&inner, created.id, me, Role::SpaceManager)
                .await?;
        }
        Ok(created)
    })
    .await
}

pub(super) async fn get_space(
    s: &AppServices,
    ctx: &HookContext,
    id: i64,
) -> Result<Space, ApiError> {
    let found = s
        .find_space(ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("space", id))?;
    let hidden = || ApiError::not_found("space", id);
    s.allow(
        ctx,
        Action::ReadSpace,
        Resource::Space(found.clone()),
        hidden,
    )
    .await?;
    Ok(found)
}

pub(super) async fn list_spaces(
    s: &AppServices,
    ctx: &HookContext,
    page: Page,
) -> Result<Vec<Space>, ApiError> {
    let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE id > $1 ORDER BY id LIMIT $2");
    let shown = |found| s.shown_space(ctx, found);
    shown_page(ctx, &sql, page, space, |found| found.id, shown).await
}

pub(super) async fn sub_spaces(
    s: &AppServices,
    ctx: &HookContext,
    parent_id: i64,
) -> Result<Vec<Space>, ApiError> {
    let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE parent_id = $1 ORDER BY id");
    let found = select(ctx, &sql, &[parent_id], space).await?;
    s.visible(ctx, found).await
}

pub(super) async fn update_space(
    s: &AppServices,
    ctx: &HookContext,
    id: i64,
    patch: SpacePatch,
) -> Result<Space, ApiError> {
    let before = s.get_space(ctx, id).await?;
    let hidden = || ApiError::not_found("space", id);
    s.allow(
        ctx,
        Action::UpdateSpace,
        Resource::Space(before.clone()),
        hidden,
    )
    .await?;
    let mut after = before.clone();
    if let Some(name) = patch.name {
        check_space_name(&name)?;
        after.name = name;
    }
    if let Some(parent) = patch.parent_id {
        // Naming the parent it has is no move: a client may send back what
        // it read, and may not be able to see that parent.
        if let Some(parent) = parent.filter(|p| Some(*p) != before.parent_id) {
            // Moving a space under another is creating a sub-space there.
            let moved = NewSpace {
                name: after.name.clone(),
                parent_id: Some(parent),
                access: after.access,
                default_role: Some(after.default_role),
            };
            let hidden = || no_parent(parent);
            s.allow(ctx, Action::CreateSpace, Resource::NewSpace(moved), hidden)
                .await?;
            s.check_parent(&app(ctx), Some(id), parent).await?;
        }
        after.parent_id = parent;
    }
    if let Some(access) = patch.access {
        after.access = access;
    }
    if let Some(role) = patch.default_role {
        after.default_role = role;
    }
    if after == before {
        // Nothing changes: no write and no hook, which fire for changes.
        return Ok(after);
    }
    let done = sqlx::query(
        "UPDATE spaces SET name = $1, parent_id = $2, access = $3, default_role = $4 WHERE id = $5",
    )
    .bind(&after.name)
    .bind(after.parent_id)
    .bind(after.access.as_str())
    .bind(after.default_role.as_str())
    .bind(id)
    .execute(&mut *ctx.db().await?)
    .await
    .map_err(|e| conflict(e, &[]))?;
    deleted_one(done, "space", id)?;
    s.emit(
        &app(ctx),
        Change::SpaceModified {
            before,
            after: after.clone(),
        },
    )
    .await?;
    Ok(after)
}

pub(super) async fn delete_space(
    s: &AppServices,
    ctx: &HookContext,
    id: i64,
) -> Result<(), ApiError> {
    let gone = s.get_space(ctx, id).await?;
    let hidden = || ApiError::not_found("space", id);
    s.allow(
        ctx,
        Action::DeleteSpace,
        Resource::Space(gone.clone()),
        hidden,
    )
    .await?;
    let inner = app(ctx);
    written(ctx, async {
        for child in s.sub_spaces(&inner, id).await? {
            s.delete_space(&inner, child.id).await?;
        }
        while let Some(m) = s.list_members(&inner, id, Page::first(1)).await?.pop() {
            s.delete_member(&inner, m.space_id, m.user_id).await?;
        }
        let done = sqlx::query("DELETE FROM spaces WHERE id = $1")
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await
            .map_err(|e| delete_refused(e, "space", id))?;
        deleted_one(done, "space", id)?;
        s.emit(&inner, Change::SpaceDeleted(gone)).await
    })
    .await
}
