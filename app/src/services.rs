//! The application's operations ([`Services`]), used by the API and by
//! plugins alike. Each works inside the caller's unit of work and fires its
//! hook after its own change, so a failing hook rolls the change back.

use async_trait::async_trait;
use hooks_core::PluginManager;
use hookspecs::now;
use hookspecs::{
    Access, AccessCheck, Action, ApiError, AppHooks, Change, Decision, HookContext, Membership,
    NewSpace, NewUser, Page, Resource, Role, Services, Space, SpacePatch, User, UserPatch,
};
use sqlx::Row;
use sqlx::any::AnyRow;

/// [`Services`] over the database, firing hooks through `hooks`.
pub struct AppServices {
    hooks: PluginManager<dyn AppHooks>,
}

impl AppServices {
    /// Services that fire hooks on `hooks`' plugins.
    pub fn new(hooks: PluginManager<dyn AppHooks>) -> Self {
        AppServices { hooks }
    }
}

/// Both phases of a change: its in-transaction hook fires (its failure is
/// the operation's) and its event is recorded for after-commit delivery.
macro_rules! emit {
    ($self:ident, $ctx:expr, $change:expr) => {
        crate::outbox::emit(&$self.hooks, $ctx, $change).await?
    };
}

const USER_COLUMNS: &str = "id, username, email, display_name, created_at";
const SPACE_COLUMNS: &str = "id, name, parent_id, access, default_role, created_at";
const MEMBER_COLUMNS: &str = "space_id, user_id, role, created_at";

fn user(row: &AnyRow) -> Result<User, ApiError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn space(row: &AnyRow) -> Result<Space, ApiError> {
    let access: String = row.try_get("access")?;
    let role: String = row.try_get("default_role")?;
    Ok(Space {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        parent_id: row.try_get("parent_id")?,
        access: Access::parse(&access).ok_or_else(|| corrupt("access", &access))?,
        default_role: Role::parse(&role).ok_or_else(|| corrupt("default_role", &role))?,
        created_at: row.try_get("created_at")?,
    })
}

fn membership(row: &AnyRow) -> Result<Membership, ApiError> {
    let role: String = row.try_get("role")?;
    Ok(Membership {
        space_id: row.try_get("space_id")?,
        user_id: row.try_get("user_id")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Rows of a query whose parameters are ids, mapped by `row`.
async fn select<T>(
    ctx: &HookContext,
    sql: &str,
    ids: &[i64],
    row: fn(&AnyRow) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let query = ids.iter().fold(sqlx::query(sql), |q, id| q.bind(*id));
    let rows = query.fetch_all(&mut *ctx.db().await?).await?;
    rows.iter().map(row).collect()
}

/// The row of a query whose parameters are ids, if there is one.
async fn select_one<T>(
    ctx: &HookContext,
    sql: &str,
    ids: &[i64],
    row: fn(&AnyRow) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    Ok(select(ctx, sql, ids, row).await?.into_iter().next())
}

/// A page's bounds as query parameters: `after`, `limit`.
fn paged(page: Page) -> [i64; 2] {
    [page.after.unwrap_or(i64::MIN), i64::from(page.limit)]
}

fn corrupt(column: &str, value: &str) -> ApiError {
    ApiError::internal(format!("unexpected {column} {value:?} in the database"))
}

/// A unique-constraint violation is a 409 naming the field; a foreign-key
/// violation, after the operation found the row it refers to, means a
/// concurrent operation removed it: a race, so the operation is run again
/// (and then answers 404 or 422 as a lone request would). Anything else
/// stays a database error.
fn conflict(error: sqlx::Error, fields: &[&str]) -> ApiError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
            let Some(field) = fields.iter().find(|f| text.contains(**f)) else {
                return ApiError::race("a concurrent operation wrote the same row");
            };
            return ApiError::conflict(format!("{field} is already taken")).with("field", *field);
        }
        if db.is_foreign_key_violation() {
            return ApiError::race("a row this operation refers to was removed concurrently");
        }
    }
    error.into()
}

/// Text fields: at most `max` characters, and no NUL (which PostgreSQL
/// cannot store), so both databases accept exactly the same values.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain NUL characters"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// The longest values of the text fields, in characters.
pub mod limits {
    /// `username`.
    pub const USERNAME: usize = 64;
    /// `email`.
    pub const EMAIL: usize = 254;
    /// `display_name`.
    pub const DISPLAY_NAME: usize = 200;
    /// A space's `name`.
    pub const SPACE_NAME: usize = 200;
}

fn check_username(name: &str) -> Result<(), ApiError> {
    check_text("username", name, limits::USERNAME)?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "username",
            "username must be 1 to 64 characters without spaces",
        ));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), ApiError> {
    check_text("email", email, limits::EMAIL)?;
    let valid = email
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.ends_with('.'));
    if !valid {
        return Err(ApiError::invalid(
            "email",
            "email must look like name@example.org",
        ));
    }
    Ok(())
}

fn check_display_name(name: Option<&str>) -> Result<(), ApiError> {
    name.map_or(Ok(()), |n| {
        check_text("display_name", n, limits::DISPLAY_NAME)
    })
}

fn check_space_name(name: &str) -> Result<(), ApiError> {
    check_text("name", name, limits::SPACE_NAME)?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid(
            "name",
            "name must be 1 to 200 characters",
        ));
    }
    Ok(())
}

/// A `DELETE` or `UPDATE` that found nothing: a concurrent operation deleted
/// the row after this one read it. On PostgreSQL the serialization check
/// catches that first; this keeps "a hook fires for a change that
/// happened" true whatever the isolation.
fn deleted_one(
    done: sqlx::any::AnyQueryResult,
    what: &str,
    id: impl std::fmt::Display,
) -> Result<(), ApiError> {
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(what, id));
    }
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
async fn check_references_at_commit(ctx: &HookContext) -> Result<(), ApiError> {
    let mut db = ctx.db().await?;
    if db.backend_name() == "PostgreSQL" {
        sqlx::query("SET CONSTRAINTS memberships_user_id_fkey, memberships_space_id_fkey DEFERRED")
            .execute(&mut *db)
            .await?;
    }
    Ok(())
}

impl AppServices {
    async fn find_space(&self, ctx: &HookContext, id: i64) -> Result<Option<Space>, ApiError> {
        let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE id = $1");
        select_one(ctx, &sql, &[id], space).await
    }

    /// A parent must exist and must not be the space itself or below it.
    async fn check_parent(
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

/// `ctx` with the application's authority: for the steps of an operation
/// already authorized as a whole, and for the hooks it fires.
fn app(ctx: &HookContext) -> HookContext {
    hookspecs::host::app_authority(ctx)
}

fn forbidden() -> ApiError {
    ApiError::forbidden("not allowed")
}

fn no_parent(id: i64) -> ApiError {
    ApiError::invalid("parent_id", format!("no space with id {id}"))
}

impl AppServices {
    /// The `authorize` hook's answer for what `ctx`'s actor is about to do;
    /// inside hooks (the application's authority) there is nothing to ask.
    async fn decide(
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
    async fn allow(
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
    async fn reveal_user(
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
    async fn visible(&self, ctx: &HookContext, found: Vec<Space>) -> Result<Vec<Space>, ApiError> {
        let mut shown = Vec::new();
        for s in found {
            if self
                .decide(ctx, Action::ReadSpace, Resource::Space(s.clone()))
                .await?
                == Decision::Allow
            {
                shown.push(s);
            }
        }
        Ok(shown)
    }

    async fn may_list_members(&self, ctx: &HookContext, space_id: i64) -> Result<bool, ApiError> {
        let Some(space) = self.find_space(ctx, space_id).await? else {
            return Ok(false);
        };
        Ok(self
            .decide(ctx, Action::ListMembers, Resource::Space(space))
            .await?
            == Decision::Allow)
    }
}

#[async_trait]
impl Services for AppServices {
    async fn authorize(
        &self,
        ctx: &HookContext,
        action: Action,
        resource: Resource,
    ) -> Result<(), ApiError> {
        let hidden = || ApiError::new(404, "not_found", "no such resource");
        self.allow(ctx, action, resource, hidden).await
    }

    async fn create_user(&self, ctx: &HookContext, new: NewUser) -> Result<User, ApiError> {
        self.allow(ctx, Action::CreateUser, Resource::Users, forbidden)
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
        emit!(self, &app(ctx), Change::UserCreated(created.clone()));
        Ok(created)
    }

    async fn get_user(&self, ctx: &HookContext, id: i64) -> Result<User, ApiError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let found = select_one(ctx, &sql, &[id], user)
            .await?
            .ok_or_else(|| ApiError::not_found("user", id))?;
        self.reveal_user(ctx, found)
            .await?
            .ok_or_else(|| ApiError::not_found("user", id))
    }

    async fn list_users(&self, ctx: &HookContext, page: Page) -> Result<Vec<User>, ApiError> {
        self.allow(ctx, Action::ListUsers, Resource::Users, forbidden)
            .await?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        let mut shown = Vec::new();
        for found in select(ctx, &sql, &paged(page), user).await? {
            shown.extend(self.reveal_user(ctx, found).await?);
        }
        Ok(shown)
    }

    async fn update_user(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, ApiError> {
        let before = self.get_user(&app(ctx), id).await?;
        self.allow(
            ctx,
            Action::UpdateUser,
            Resource::User(before.clone()),
            forbidden,
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
        let done = sqlx::query(
            "UPDATE users SET username = $1, email = $2, display_name = $3 WHERE id = $4",
        )
        .bind(&after.username)
        .bind(&after.email)
        .bind(&after.display_name)
        .bind(id)
        .execute(&mut *ctx.db().await?)
        .await
        .map_err(|e| conflict(e, &["username", "email"]))?;
        deleted_one(done, "user", id)?;
        emit!(
            self,
            &app(ctx),
            Change::UserModified {
                before,
                after: after.clone()
            }
        );
        Ok(after)
    }

    async fn delete_user(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError> {
        let inner = app(ctx);
        let gone = self.get_user(&inner, id).await?;
        self.allow(
            ctx,
            Action::DeleteUser,
            Resource::User(gone.clone()),
            forbidden,
        )
        .await?;
        // One at a time, asking again each time: a hook of one removal may
        // remove others (child_removal does).
        while let Some(m) = self.memberships_of(&inner, id).await?.into_iter().next() {
            self.delete_member(&inner, m.space_id, m.user_id).await?;
        }
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await
            .map_err(|e| conflict(e, &[]))?;
        deleted_one(done, "user", id)?;
        emit!(self, &inner, Change::UserDeleted(gone));
        Ok(())
    }

    async fn create_space(&self, ctx: &HookContext, new: NewSpace) -> Result<Space, ApiError> {
        check_space_name(&new.name)?;
        let parent = new.parent_id;
        // A parent the caller may not see is answered like one that does
        // not exist.
        let hidden = || no_parent(parent.unwrap_or_default());
        self.allow(
            ctx,
            Action::CreateSpace,
            Resource::NewSpace(new.clone()),
            hidden,
        )
        .await?;
        let inner = app(ctx);
        if let Some(parent) = parent {
            self.check_parent(&inner, None, parent).await?;
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
        // Boxed: these operations recurse through their hooks (up to the
        // engine's depth limit), and each level's stack frame holds what
        // it awaits inline.
        Box::pin(check_references_at_commit(ctx)).await?;
        emit!(self, &inner, Change::SpaceCreated(created.clone()));
        // Its creator manages it (after the hooks: autoinvite may have made
        // them a member with the space's default role already).
        if let Some(me) = ctx.actor().and_then(|a| a.user_id) {
            self.put_member(&inner, created.id, me, Role::SpaceManager)
                .await?;
        }
        Ok(created)
    }

    async fn get_space(&self, ctx: &HookContext, id: i64) -> Result<Space, ApiError> {
        let found = self
            .find_space(ctx, id)
            .await?
            .ok_or_else(|| ApiError::not_found("space", id))?;
        let hidden = || ApiError::not_found("space", id);
        self.allow(
            ctx,
            Action::ReadSpace,
            Resource::Space(found.clone()),
            hidden,
        )
        .await?;
        Ok(found)
    }

    async fn list_spaces(&self, ctx: &HookContext, page: Page) -> Result<Vec<Space>, ApiError> {
        let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE id > $1 ORDER BY id LIMIT $2");
        let found = select(ctx, &sql, &paged(page), space).await?;
        self.visible(ctx, found).await
    }

    async fn sub_spaces(&self, ctx: &HookContext, parent_id: i64) -> Result<Vec<Space>, ApiError> {
        let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE parent_id = $1 ORDER BY id");
        let found = select(ctx, &sql, &[parent_id], space).await?;
        self.visible(ctx, found).await
    }

    async fn update_space(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: SpacePatch,
    ) -> Result<Space, ApiError> {
        let before = self.get_space(ctx, id).await?;
        let hidden = || ApiError::not_found("space", id);
        self.allow(
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
            if let Some(parent) = parent {
                // Moving a space under another is creating a sub-space there.
                let moved = NewSpace {
                    name: after.name.clone(),
                    parent_id: Some(parent),
                    access: after.access,
                    default_role: Some(after.default_role),
                };
                let hidden = || no_parent(parent);
                self.allow(ctx, Action::CreateSpace, Resource::NewSpace(moved), hidden)
                    .await?;
                self.check_parent(&app(ctx), Some(id), parent).await?;
            }
            after.parent_id = parent;
        }
        if let Some(access) = patch.access {
            after.access = access;
        }
        if let Some(role) = patch.default_role {
            after.default_role = role;
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
        emit!(
            self,
            &app(ctx),
            Change::SpaceModified {
                before,
                after: after.clone()
            }
        );
        Ok(after)
    }

    async fn delete_space(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError> {
        let gone = self.get_space(ctx, id).await?;
        let hidden = || ApiError::not_found("space", id);
        self.allow(
            ctx,
            Action::DeleteSpace,
            Resource::Space(gone.clone()),
            hidden,
        )
        .await?;
        let inner = app(ctx);
        for child in self.sub_spaces(&inner, id).await? {
            self.delete_space(&inner, child.id).await?;
        }
        while let Some(m) = self.list_members(&inner, id, Page::first(1)).await?.pop() {
            self.delete_member(&inner, m.space_id, m.user_id).await?;
        }
        let done = sqlx::query("DELETE FROM spaces WHERE id = $1")
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await
            .map_err(|e| conflict(e, &[]))?;
        deleted_one(done, "space", id)?;
        emit!(self, &inner, Change::SpaceDeleted(gone));
        Ok(())
    }

    async fn put_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<(Membership, bool), ApiError> {
        let space = self.get_space(ctx, space_id).await?;
        let resource = Resource::Membership { space, user_id };
        let hidden = || ApiError::not_found("space", space_id);
        self.allow(ctx, Action::PutMember, resource, hidden).await?;
        let inner = app(ctx);
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
                    None => self.get_user(&inner, user_id).await.is_err(),
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
            emit!(self, &inner, Change::MembershipCreated(created.clone()));
            return Ok((created, true));
        }
        let before = self
            .get_member(&inner, space_id, user_id)
            .await?
            .ok_or_else(|| ApiError::race("the membership was removed concurrently"))?;
        if before.role == role {
            return Ok((before, false));
        }
        let done =
            sqlx::query("UPDATE memberships SET role = $1 WHERE space_id = $2 AND user_id = $3")
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
        emit!(
            self,
            &inner,
            Change::MembershipModified {
                before,
                after: after.clone()
            }
        );
        Ok((after, false))
    }

    async fn list_members(
        &self,
        ctx: &HookContext,
        space_id: i64,
        page: Page,
    ) -> Result<Vec<Membership>, ApiError> {
        let space = self.get_space(ctx, space_id).await?;
        let hidden = || ApiError::not_found("space", space_id);
        self.allow(ctx, Action::ListMembers, Resource::Space(space), hidden)
            .await?;
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships \
             WHERE space_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3"
        );
        let [after, limit] = paged(page);
        select(ctx, &sql, &[space_id, after, limit], membership).await
    }

    async fn memberships_of(
        &self,
        ctx: &HookContext,
        user_id: i64,
    ) -> Result<Vec<Membership>, ApiError> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships WHERE user_id = $1 ORDER BY space_id"
        );
        let found = select(ctx, &sql, &[user_id], membership).await?;
        if !ctx.is_checked() {
            return Ok(found);
        }
        // Only the memberships of spaces whose member list the caller may see.
        let mut shown = Vec::new();
        for m in found {
            if self.may_list_members(ctx, m.space_id).await? {
                shown.push(m);
            }
        }
        Ok(shown)
    }

    async fn get_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<Option<Membership>, ApiError> {
        if ctx.is_checked() && !self.may_list_members(ctx, space_id).await? {
            return Err(ApiError::not_found("space", space_id));
        }
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships WHERE space_id = $1 AND user_id = $2"
        );
        select_one(ctx, &sql, &[space_id, user_id], membership).await
    }

    async fn delete_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<(), ApiError> {
        let space = self.get_space(ctx, space_id).await?;
        let resource = Resource::Membership { space, user_id };
        let hidden = || ApiError::not_found("space", space_id);
        self.allow(ctx, Action::DeleteMember, resource, hidden)
            .await?;
        let inner = app(ctx);
        let Some(gone) = self.get_member(&inner, space_id, user_id).await? else {
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
        emit!(self, &inner, Change::MembershipDeleted(gone));
        Ok(())
    }
}
