//! Database outcomes as the API's errors: a conflict is a 409 naming the
//! field, a vanished row is a race to run again, a missing one a 404, a
//! row still referred to a 409.

use hookspecs::ApiError;

/// A unique-constraint violation is a 409 naming the field; a foreign-key
/// violation, after the operation found the row it refers to, means a
/// concurrent operation removed it: a race, so the operation is run again
/// (and then answers 404 or 422 as a lone request would). Anything else
/// stays a database error.
pub(super) fn conflict(error: sqlx::Error, fields: &[&str]) -> ApiError {
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

/// What deleting `what` `id` answers when the database refuses because rows
/// still refer to it: the operation removed every reference the app knows
/// of (memberships, sub-spaces) before, so what is left is a plugin's
/// table referring to it without `ON DELETE CASCADE`. Not a race: on
/// SQLite writers take turns; on PostgreSQL the check sees references
/// committed by others even after this transaction's snapshot, and
/// reports them so (a re-run would meet them too), while references the
/// operation itself read and a concurrent one added or removed fail the
/// serializable checks first (a race, run again). So a 409. The database's
/// message, which names the table and the constraint, goes to the log
/// only.
pub(super) fn delete_refused(error: sqlx::Error, what: &str, id: i64) -> ApiError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_foreign_key_violation() {
            tracing::warn!(%what, id, "a deletion is refused by a reference: {}", db.message());
            return ApiError::conflict(format!(
                "{what} {id} is still referred to by other rows (a plugin's table without `ON \
                 DELETE CASCADE`, say): nothing was deleted"
            ))
            .with("resource", what);
        }
    }
    conflict(error, &[])
}

/// A `DELETE` or `UPDATE` that found nothing: a concurrent operation deleted
/// the row after this one read it. On PostgreSQL the serialization check
/// catches that first; this keeps "a hook fires for a change that
/// happened" true whatever the isolation.
pub(super) fn deleted_one(
    done: sqlx::any::AnyQueryResult,
    what: &str,
    id: impl std::fmt::Display,
) -> Result<(), ApiError> {
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(what, id));
    }
    Ok(())
}

/// What `authorize`'s `Hide` gives where no id is at stake (a list, a
/// creation): the 404 of something that is not there.
pub(super) fn hidden_resource() -> ApiError {
    ApiError::new(404, "not_found", "no such resource")
}

pub(super) fn no_parent(id: i64) -> ApiError {
    ApiError::invalid("parent_id", format!("no space with id {id}"))
}
