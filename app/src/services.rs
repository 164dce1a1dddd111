//! The application's operations ([`Services`]), used by the API and by
//! plugins alike. Each works inside the caller's unit of work and fires its
//! hook after its own change, so a failing hook rolls the change back.

use async_trait::async_trait;
use hooks_core::PluginManager;
use hookspecs::now;
use hookspecs::{
    Access, ApiError, AppHooks, Change, HookContext, Membership, NewSpace, NewUser, Role, Services,
    Space, SpacePatch, User, UserPatch,
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

fn corrupt(column: &str, value: &str) -> ApiError {
    ApiError::internal(format!("unexpected {column} {value:?} in the database"))
}

/// A unique-constraint violation is a 409 naming the field; anything else
/// stays a database error.
fn conflict(error: sqlx::Error, fields: &[&str]) -> ApiError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
            let field = fields
                .iter()
                .find(|f| text.contains(**f))
                .copied()
                .unwrap_or("id");
            return ApiError::conflict(format!("{field} is already taken")).with("field", field);
        }
    }
    error.into()
}

fn check_username(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "username",
            "username must be 1 to 64 characters without spaces",
        ));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), ApiError> {
    let valid = email
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.ends_with('.'));
    if !valid || email.len() > 254 {
        return Err(ApiError::invalid(
            "email",
            "email must look like name@example.org",
        ));
    }
    Ok(())
}

fn check_space_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::invalid(
            "name",
            "name must be 1 to 200 characters",
        ));
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

#[async_trait]
impl Services for AppServices {
    async fn create_user(&self, ctx: &HookContext, new: NewUser) -> Result<User, ApiError> {
        check_username(&new.username)?;
        check_email(&new.email)?;
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
        emit!(self, ctx, Change::UserCreated(created.clone()));
        Ok(created)
    }

    async fn get_user(&self, ctx: &HookContext, id: i64) -> Result<User, ApiError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        select_one(ctx, &sql, &[id], user)
            .await?
            .ok_or_else(|| ApiError::not_found("user", id))
    }

    async fn list_users(&self, ctx: &HookContext) -> Result<Vec<User>, ApiError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        select(ctx, &sql, &[], user).await
    }

    async fn update_user(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, ApiError> {
        let before = self.get_user(ctx, id).await?;
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
            after.display_name = display_name;
        }
        sqlx::query("UPDATE users SET username = $1, email = $2, display_name = $3 WHERE id = $4")
            .bind(&after.username)
            .bind(&after.email)
            .bind(&after.display_name)
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await
            .map_err(|e| conflict(e, &["username", "email"]))?;
        emit!(
            self,
            ctx,
            Change::UserModified {
                before,
                after: after.clone()
            }
        );
        Ok(after)
    }

    async fn delete_user(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError> {
        let gone = self.get_user(ctx, id).await?;
        // One at a time, asking again each time: a hook of one removal may
        // remove others (child_removal does).
        while let Some(m) = self.memberships_of(ctx, id).await?.into_iter().next() {
            self.delete_member(ctx, m.space_id, m.user_id).await?;
        }
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await?;
        emit!(self, ctx, Change::UserDeleted(gone));
        Ok(())
    }

    async fn create_space(&self, ctx: &HookContext, new: NewSpace) -> Result<Space, ApiError> {
        check_space_name(&new.name)?;
        if let Some(parent) = new.parent_id {
            self.check_parent(ctx, None, parent).await?;
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
            .await?;
        let created = space(&row)?;
        emit!(self, ctx, Change::SpaceCreated(created.clone()));
        Ok(created)
    }

    async fn get_space(&self, ctx: &HookContext, id: i64) -> Result<Space, ApiError> {
        self.find_space(ctx, id)
            .await?
            .ok_or_else(|| ApiError::not_found("space", id))
    }

    async fn list_spaces(&self, ctx: &HookContext) -> Result<Vec<Space>, ApiError> {
        let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces ORDER BY id");
        select(ctx, &sql, &[], space).await
    }

    async fn update_space(
        &self,
        ctx: &HookContext,
        id: i64,
        patch: SpacePatch,
    ) -> Result<Space, ApiError> {
        let before = self.get_space(ctx, id).await?;
        let mut after = before.clone();
        if let Some(name) = patch.name {
            check_space_name(&name)?;
            after.name = name;
        }
        if let Some(parent) = patch.parent_id {
            if let Some(parent) = parent {
                self.check_parent(ctx, Some(id), parent).await?;
            }
            after.parent_id = parent;
        }
        if let Some(access) = patch.access {
            after.access = access;
        }
        if let Some(role) = patch.default_role {
            after.default_role = role;
        }
        sqlx::query(
            "UPDATE spaces SET name = $1, parent_id = $2, access = $3, default_role = $4 WHERE id = $5",
        )
        .bind(&after.name)
        .bind(after.parent_id)
        .bind(after.access.as_str())
        .bind(after.default_role.as_str())
        .bind(id)
        .execute(&mut *ctx.db().await?)
        .await?;
        emit!(
            self,
            ctx,
            Change::SpaceModified {
                before,
                after: after.clone()
            }
        );
        Ok(after)
    }

    async fn delete_space(&self, ctx: &HookContext, id: i64) -> Result<(), ApiError> {
        let gone = self.get_space(ctx, id).await?;
        let sql = "SELECT id FROM spaces WHERE parent_id = $1 ORDER BY id";
        let children = select(ctx, sql, &[id], |row| Ok(row.try_get("id")?)).await?;
        for child in children {
            self.delete_space(ctx, child).await?;
        }
        while let Some(m) = self.list_members(ctx, id).await?.into_iter().next() {
            self.delete_member(ctx, m.space_id, m.user_id).await?;
        }
        sqlx::query("DELETE FROM spaces WHERE id = $1")
            .bind(id)
            .execute(&mut *ctx.db().await?)
            .await?;
        emit!(self, ctx, Change::SpaceDeleted(gone));
        Ok(())
    }

    async fn put_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<(Membership, bool), ApiError> {
        self.get_space(ctx, space_id).await?;
        self.get_user(ctx, user_id).await?;
        match self.get_member(ctx, space_id, user_id).await? {
            None => {
                let sql = format!(
                    "INSERT INTO memberships (space_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING {MEMBER_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(space_id)
                    .bind(user_id)
                    .bind(role.as_str())
                    .bind(now())
                    .fetch_one(&mut *ctx.db().await?)
                    .await
                    .map_err(|e| conflict(e, &["user_id"]))?;
                let created = membership(&row)?;
                emit!(self, ctx, Change::MembershipCreated(created.clone()));
                Ok((created, true))
            }
            Some(before) if before.role == role => Ok((before, false)),
            Some(before) => {
                sqlx::query(
                    "UPDATE memberships SET role = $1 WHERE space_id = $2 AND user_id = $3",
                )
                .bind(role.as_str())
                .bind(space_id)
                .bind(user_id)
                .execute(&mut *ctx.db().await?)
                .await?;
                let after = Membership {
                    role,
                    ..before.clone()
                };
                emit!(
                    self,
                    ctx,
                    Change::MembershipModified {
                        before,
                        after: after.clone()
                    }
                );
                Ok((after, false))
            }
        }
    }

    async fn list_members(
        &self,
        ctx: &HookContext,
        space_id: i64,
    ) -> Result<Vec<Membership>, ApiError> {
        self.get_space(ctx, space_id).await?;
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships WHERE space_id = $1 ORDER BY user_id"
        );
        select(ctx, &sql, &[space_id], membership).await
    }

    async fn memberships_of(
        &self,
        ctx: &HookContext,
        user_id: i64,
    ) -> Result<Vec<Membership>, ApiError> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships WHERE user_id = $1 ORDER BY space_id"
        );
        select(ctx, &sql, &[user_id], membership).await
    }

    async fn get_member(
        &self,
        ctx: &HookContext,
        space_id: i64,
        user_id: i64,
    ) -> Result<Option<Membership>, ApiError> {
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
        let Some(gone) = self.get_member(ctx, space_id, user_id).await? else {
            return Err(ApiError::new(
                404,
                "not_found",
                format!("user {user_id} is not a member of space {space_id}"),
            ));
        };
        sqlx::query("DELETE FROM memberships WHERE space_id = $1 AND user_id = $2")
            .bind(space_id)
            .bind(user_id)
            .execute(&mut *ctx.db().await?)
            .await?;
        emit!(self, ctx, Change::MembershipDeleted(gone));
        Ok(())
    }
}
