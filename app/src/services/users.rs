//! The user operations.

use hookspecs::{
    Action, ApiError, Change, HookContext, NewUser, Page, Resource, Services, User, UserPatch, now,
};

use super::errors::*;
use super::members::check_references_at_commit;
use super::rows::*;
use super::validation::*;
use super::{AppServices, app, written};

pub(super) async fn create_user(
    s: &AppServices,
    ctx: &HookContext,
    new: NewUser,
) -> Result<User, ApiError> {
    s.allow(ctx, Action::CreateUser, Resource::Users, hidden_resource)
        .await?;
    check_username(&new.username)?;
    check_email(&new.email)?;
    check_display_name(new.display_name.as_deref())?;
    let sql = format!(
        "INSERT INTO users (username, email, display_name, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(&new.username)
        .bind(&new.email)
        .bind(&new.display_name)
        .bind(now())
        .fetch_one(&mut *ctx.db().await?)
        .await
        .map_err(|e| conflict(e, &["username", "email"]))?;
    let created = user(&row)?;
    // Boxed: these operations recurse through their hooks (up to the
    // engine's depth limit), and each level's stack frame holds what
    // it awaits inline.
    Box::pin(check_references_at_commit(ctx)).await?;
    s.emit(&app(ctx), Change::UserCreated(created.clone()))
        .await?;
    Ok(created)
}

pub(super) async fn get_user(
    s: &AppServices,
    ctx: &HookContext,
    id: i64,
) -> Result<User, ApiError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let found = select_one(ctx, &sql, &[id], user)
        .await?
        .ok_or_else(|| ApiError::not_found("user", id))?;
    s.reveal_user(ctx, found)
        .await?
        .ok_or_else(|| ApiError::not_found("user", id))
}

pub(super) async fn list_users(
    s: &AppServices,
    ctx: &HookContext,
    page: Page,
) -> Result<Vec<User>, ApiError> {
    s.allow(ctx, Action::ListUsers, Resource::Users, hidden_resource)
        .await?;
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
    let shown = |found| s.reveal_user(ctx, found);
    shown_page(ctx, &sql, page, user, |found| found.id, shown).await
}

pub(super) async fn update_user(
    s: &AppServices,
    ctx: &HookContext,
    id: i64,
    patch: UserPatch,
) -> Result<User, ApiError> {
    let before = s.get_user(&app(ctx), id).await?;
    s.allow(
        ctx,
        Action::UpdateUser,
        Resource::User(before.clone()),
        || ApiError::not_found("user", id),
    )
    .await?;
    let mut after = before.clone();
    if let Some(username) = patch.username {
        check_username(&username)?;
        after.username = username;
    }
    if let Some(email) = patch.email {
        check_email(&email)?;
        after.email = email;
    }
    if let Some(display_name) = patch.display_name {
        check_display_name(display_name.as_deref())?;
        after.display_name = display_name;
    }
    if after == before {
        // Nothing changes: no write and no hook, which fire for changes.
        return Ok(after);
    }
    let done =
        sqlx::query("UPDATE users SET username = $1, email = $2, display_name = $3 WHERE id = $4")
            .bind(&after.username)
            .bind(&after.email)
            .bind(&after.display_name)
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await
            .map_err(|e| conflict(e, &["username", "email"]))?;
    deleted_one(done, "user", id)?;
    s.emit(
        &app(ctx),
        Change::UserModified {
            before,
            after: after.clone(),
        },
    )
    .await?;
    Ok(after)
}

pub(super) async fn delete_user(
    s: &AppServices,
    ctx: &HookContext,
    id: i64,
) -> Result<(), ApiError> {
    let inner = app(ctx);
    let gone = s.get_user(&inner, id).await?;
    s.allow(
        ctx,
        Action::DeleteUser,
        Resource::User(gone.clone()),
        || ApiError::not_found("user", id),
    )
    .await?;
    written(ctx, async {
        // One at a time, asking again each time: a hook of one removal may
        // remove others (child_removal does).
        while let Some(m) = s.memberships_of(&inner, id).await?.into_iter().next() {
            s.delete_member(&inner, m.space_id, m.user_id).await?;
        }
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await
            .map_err(|e| delete_refused(e, "user", id))?;
        deleted_one(done, "user", id)?;
        s.emit(&inner, Change::UserDeleted(gone)).await
    })
    .await
}
