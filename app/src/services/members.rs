//! The membership operations.

use hookspecs::{
    Action, ApiError, Change, HookContext, Membership, Page, Resource, Role, Services, now,
};

use super::errors::*;
use super::rows::*;
use super::{AppServices, app};

pub(super) async fn put_member(
    s: &AppServices,
    ctx: &HookContext,
    space_id: i64,
    user_id: i64,
    role: Role,
) -> Result<(Membership, bool), ApiError> {
    let space = s.get_space(ctx, space_id).await?;
    let resource = Resource::Membership { space, user_id };
    let hidden = || ApiError::not_found("space", space_id);
    s.allow(ctx, Action::PutMember, resource, hidden).await?;
    let inner = app(ctx);
    hookspecs::host::needs(ctx, DEFER_REFERENCES).await?;
    // Insert first and let the constraints answer whether the user
    // exists (the foreign key) and whether they are a member already
    // (the primary key). Reading first would lock, on PostgreSQL, the
    // index pages where concurrent operations insert their new users
    // and memberships, and make them collide for nothing.
    let sql = format!(
        "INSERT INTO memberships (space_id, user_id, role, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING {MEMBER_COLUMNS}"
    );
    let inserted = sqlx::query(&sql)
        .bind(space_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now())
        .fetch_optional(&mut *ctx.db().await?)
        .await;
    let inserted = match inserted {
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            // No such user (the space was found above), unless a
            // concurrent operation removed the space meanwhile.
            // PostgreSQL names the constraint (and has aborted the
            // transaction: no more reading); SQLite does not, and lets
            // the transaction go on.
            let no_user = match db.constraint() {
                Some(name) => name.contains("user_id"),
                None => s.get_user(&inner, user_id).await.is_err(),
            };
            return Err(if no_user {
                ApiError::not_found("user", user_id)
            } else {
                ApiError::race("the space was removed concurrently")
            });
        }
        inserted => inserted.map_err(|e| conflict(e, &[]))?,
    };
    if let Some(row) = inserted {
        let created = membership(&row)?;
        s.emit(&inner, Change::MembershipCreated(created.clone()))
            .await?;
        return Ok((created, true));
    }
    let before = s
        .get_member(&inner, space_id, user_id)
        .await?
        .ok_or_else(|| ApiError::race("the membership was removed concurrently"))?;
    if before.role == role {
        return Ok((before, false));
    }
    let done = sqlx::query("UPDATE memberships SET role = $1 WHERE space_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(space_id)
        .bind(user_id)
        .execute(&mut *ctx.db().await?)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::race("the membership was removed concurrently"));
    }
    let after = Membership {
        role,
        ..before.clone()
    };
    s.emit(
        &inner,
        Change::MembershipModified {
            before,
            after: after.clone(),
        },
    )
    .await?;
    Ok((after, false))
}

pub(super) async fn list_members(
    s: &AppServices,
    ctx: &HookContext,
    space_id: i64,
    page: Page,
) -> Result<Vec<Membership>, ApiError> {
    let space = s.get_space(ctx, space_id).await?;
    let hidden = || ApiError::not_found("space", space_id);
    s.allow(ctx, Action::ListMembers, Resource::Space(space), hidden)
        .await?;
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM memberships \
         WHERE space_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3"
    );
    let [after, limit] = paged(page);
    select(ctx, &sql, &[space_id, after, limit], membership).await
}

pub(super) async fn memberships_of(
    s: &AppServices,
    ctx: &HookContext,
    user_id: i64,
) -> Result<Vec<Membership>, ApiError> {
    let sql =
        format!("SELECT {MEMBER_COLUMNS} FROM memberships WHERE user_id = $1 ORDER BY space_id");
    let found = select(ctx, &sql, &[user_id], membership).await?;
    if !ctx.is_checked() {
        return Ok(found);
    }
    // Only the memberships of spaces whose member list the caller may see.
    let mut shown = Vec::new();
    for m in found {
        if s.may_list_members(ctx, m.space_id).await? {
            shown.push(m);
        }
    }
    Ok(shown)
}

pub(super) async fn get_member(
    s: &AppServices,
    ctx: &HookContext,
    space_id: i64,
    user_id: i64,
) -> Result<Option<Membership>, ApiError> {
    if ctx.is_checked() && !s.may_list_members(ctx, space_id).await? {
        return Err(ApiError::not_found("space", space_id));
    }
    let sql =
        format!("SELECT {MEMBER_COLUMNS} FROM memberships WHERE space_id = $1 AND user_id = $2");
    select_one(ctx, &sql, &[space_id, user_id], membership).await
}

pub(super) async fn delete_member(
    s: &AppServices,
    ctx: &HookContext,
    space_id: i64,
    user_id: i64,
) -> Result<(), ApiError> {
    let space = s.get_space(ctx, space_id).await?;
    let resource = Resource::Membership { space, user_id };
    let hidden = || ApiError::not_found("space", space_id);
    s.allow(ctx, Action::DeleteMember, resource, hidden).await?;
    let inner = app(ctx);
    let Some(gone) = s.get_member(&inner, space_id, user_id).await? else {
        return Err(ApiError::new(
            404,
            "not_found",
            format!("user {user_id} is not a member of space {space_id}"),
        ));
    };
    let done = sqlx::query("DELETE FROM memberships WHERE space_id = $1 AND user_id = $2")
        .bind(space_id)
        .bind(user_id)
        .execute(&mut *ctx.db().await?)
        .await?;
    deleted_one(done, "membership", format!("{space_id}/{user_id}"))?;
    s.emit(&inner, Change::MembershipDeleted(gone)).await?;
    Ok(())
}

/// On PostgreSQL, checks the references of the memberships this unit of
/// work adds from now on at its commit instead of at each insert. For the
/// operations that create a user or a space, whose hooks (autoinvite) add
/// memberships referring to the new row: the foreign key check reads the
/// index page where concurrent creations insert theirs, and at
/// SERIALIZABLE a read early in the transaction makes chains of concurrent
/// creations abort one another (BENCHMARKS.md, "PostgreSQL under load");
/// read at the end, it does not. A membership whose user or space does not
/// exist then fails the commit (a 500) rather than its insert (a 404): only
/// a hook of the creation adding a member that does not exist sees that.
///
/// The setting is sent just before the first membership insert that
/// follows ([`put_member`]), if there is one: most creations insert none
/// (no open space), and pay no round trip for it.
pub(super) async fn check_references_at_commit(ctx: &HookContext) -> Result<(), ApiError> {
    if ctx.db().await?.backend_name() == "PostgreSQL" {
        hookspecs::host::when_needed(ctx, DEFER_REFERENCES);
    }
    Ok(())
}

/// See [`check_references_at_commit`]. Only ever asked for on PostgreSQL.
const DEFER_REFERENCES: &str =
    "SET CONSTRAINTS memberships_user_id_fkey, memberships_space_id_fkey DEFERRED";
