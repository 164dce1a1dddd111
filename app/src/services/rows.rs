//! Rows to values: the columns each entity is read with, and the queries
//! whose parameters are ids.

use hookspecs::{Access, ApiError, HookContext, Membership, Page, Role, Space, User};
use sqlx::Row;
use sqlx::any::AnyRow;

pub(super) const USER_COLUMNS: &str = "id, username, email, display_name, created_at";
pub(super) const SPACE_COLUMNS: &str = "id, name, parent_id, access, default_role, created_at";
pub(super) const MEMBER_COLUMNS: &str = "space_id, user_id, role, created_at";

pub(super) fn user(row: &AnyRow) -> Result<User, ApiError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn space(row: &AnyRow) -> Result<Space, ApiError> {
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

pub(super) fn membership(row: &AnyRow) -> Result<Membership, ApiError> {
    let role: String = row.try_get("role")?;
    Ok(Membership {
        space_id: row.try_get("space_id")?,
        user_id: row.try_get("user_id")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Rows of a query whose parameters are ids, mapped by `row`.
pub(super) async fn select<T>(
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
pub(super) async fn select_one<T>(
    ctx: &HookContext,
    sql: &str,
    ids: &[i64],
    row: fn(&AnyRow) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    Ok(select(ctx, sql, ids, row).await?.into_iter().next())
}

/// A page of `sql`'s rows (parameters `after` and `limit`, rows in
/// strictly increasing id order) as the caller may see them: `shown` gives
/// a row as shown, or `None` to hide it. Reads on past the rows it hides
/// until the page is full or the rows end: a short page is the last one
/// (only a full page links to the next, `Reply::page`), so a hidden row
/// never ends the pages early. The first read asks for the page's size;
/// later ones, for a caller who sees few rows, at least [`Page::MAX_LIMIT`].
pub(super) async fn shown_page<T, F>(
    ctx: &HookContext,
    sql: &str,
    page: Page,
    row: fn(&AnyRow) -> Result<T, ApiError>,
    id: fn(&T) -> i64,
    shown: impl Fn(T) -> F,
) -> Result<Vec<T>, ApiError>
where
    F: Future<Output = Result<Option<T>, ApiError>>,
{
    // Not allocated up front: `Page::all()`'s limit is `u32::MAX`.
    let (mut out, mut read) = (Vec::new(), page);
    loop {
        let found = select(ctx, sql, &paged(read), row).await?;
        // `is_empty` too: a plugin may ask for a limit of 0.
        let ended = found.is_empty() || found.len() < read.limit as usize;
        for item in found {
            read.after = Some(id(&item));
            out.extend(shown(item).await?);
            if out.len() == page.limit as usize {
                return Ok(out);
            }
        }
        if ended {
            return Ok(out);
        }
        read.limit = read.limit.max(Page::MAX_LIMIT);
    }
}

/// A page's bounds as query parameters: `after`, `limit`.
pub(super) fn paged(page: Page) -> [i64; 2] {
    [page.after.unwrap_or(i64::MIN), i64::from(page.limit)]
}

pub(super) fn corrupt(column: &str, value: &str) -> ApiError {
    ApiError::internal(format!("unexpected {column} {value:?} in the database"))
}
