//! The SDK's query API for a plugin's own tables: [`HookContext::query`]
//! and [`HookContext::execute`], with JSON parameters and rows, in the
//! operation's unit of work. One API both ways: a native plugin's runs on
//! the transaction's connection; a component's crosses to the host (WIT
//! `query`/`execute`), which refuses a statement naming a table not the
//! plugin's ([`check_own_tables`]) before it reaches the database.

use serde_json::{Map, Value};

use crate::context::HookContext;
use crate::error::ApiError;

/// One row: its columns by name.
pub type Row = Map<String, Value>;

impl HookContext {
    /// Runs the query `sql` (one statement; parameters `$1`, `$2`, ...
    /// bound from `params`: null, booleans, numbers and strings, anything
    /// else as its JSON text) in the operation's transaction: its rows,
    /// each column as JSON (an integer, a float, a string or null).
    ///
    /// ```
    /// # use hookspecs::prelude::*;
    /// # async fn hook(ctx: &HookContext) -> Result<(), ApiError> {
    /// let rows = ctx
    ///     .query("SELECT id, note FROM plugin_journal_notes WHERE id > $1", &[json!(3)])
    ///     .await?;
    /// for row in rows {
    ///     tracing::info!("{}: {}", row["id"], row["note"]);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The database's; in a component, also a statement that names a table
    /// not the plugin's own (`plugin_<name>_*`), naming it.
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, ApiError> {
        backend::query(self, sql, params).await
    }

    /// Runs the statement `sql` (an `INSERT`, `UPDATE` or `DELETE`; the
    /// parameters as for [`query`](Self::query)) in the operation's
    /// transaction: how many rows it changed.
    ///
    /// # Errors
    ///
    /// As for [`query`](Self::query).
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, ApiError> {
        backend::execute(self, sql, params).await
    }
}

/// Refuses `sql` unless it is one `SELECT`, `INSERT`, `UPDATE` or `DELETE`
/// whose every table (a common table expression's name included) is
/// `plugin`'s own: `plugin_<plugin>_*`, without a schema. Functions are
/// not tables: what a function can reach is the database's to restrict.
///
/// ```
/// use hookspecs::sql::check_own_tables;
///
/// assert!(check_own_tables("SELECT * FROM plugin_audit_log_entries", "audit_log").is_ok());
/// let refused = check_own_tables(
///     "SELECT * FROM plugin_audit_log_entries JOIN users ON users.id = 1",
///     "audit_log",
/// );
/// assert_eq!(
///     refused.unwrap_err().message,
///     "the statement names the table `users`, which is not one of the plugin's own \
///      (plugin_audit_log_*)"
/// );
/// ```
///
/// # Errors
///
/// 403 naming the first table not its own, or what else is refused; 400
/// for SQL that does not parse (the parser's message is logged).
#[cfg(not(target_family = "wasm"))]
pub fn check_own_tables(sql: &str, plugin: &str) -> Result<(), ApiError> {
    use sqlparser::ast::{ObjectNamePart, Statement, visit_relations};
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;
    use std::ops::ControlFlow;

    let refused = |message: String| ApiError::new(403, "sql_refused", message);
    // The parser's message quotes the SQL: the log has it, not the answer.
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| {
        tracing::warn!(plugin, "a plugin's statement does not parse: {e}");
        ApiError::new(400, "bad_sql", "the statement does not parse as SQL")
    })?;
    let [statement] = &statements[..] else {
        return Err(refused(format!(
            "one statement at a time, not {}",
            statements.len()
        )));
    };
    if !matches!(
        statement,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update { .. }
            | Statement::Delete(_)
    ) {
        return Err(refused(
            "only SELECT, INSERT, UPDATE and DELETE may run here (a plugin's tables are made \
             by its migrations)"
                .into(),
        ));
    }
    let prefix = format!("plugin_{plugin}_");
    let outcome = visit_relations(statement, |name| {
        let table = name.to_string();
        let own = match &name.0[..] {
            [ObjectNamePart::Identifier(ident)] => {
                let value = match ident.quote_style {
                    Some(_) => ident.value.clone(),
                    None => ident.value.to_lowercase(),
                };
                value.starts_with(&prefix)
            }
            _ => false,
        };
        if own {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(table)
        }
    });
    match outcome {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(table) => Err(refused(format!(
            "the statement names the table `{table}`, which is not one of the plugin's own \
             ({prefix}*)"
        ))),
    }
}

/// A native plugin's statements: on the transaction's connection.
#[cfg(not(target_family = "wasm"))]
mod backend {
    use serde_json::{Number, Value};
    use sqlx::any::{AnyArguments, AnyRow};
    use sqlx::query::Query;
    use sqlx::{Any, Column, Row as _};

    use super::Row;
    use crate::context::HookContext;
    use crate::error::ApiError;

    fn bound<'q>(sql: &'q str, params: &'q [Value]) -> Query<'q, Any, AnyArguments<'q>> {
        let mut query = sqlx::query(sql);
        for param in params {
            query = match param {
                Value::Null => query.bind(None::<String>),
                Value::Bool(b) => query.bind(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => query.bind(i),
                    None => query.bind(n.as_f64().unwrap_or_default()),
                },
                Value::String(s) => query.bind(s.as_str()),
                other => query.bind(other.to_string()),
            };
        }
        query
    }

    /// A column as JSON: the first type it reads as.
    fn column(row: &AnyRow, at: usize) -> Value {
        if let Ok(v) = row.try_get::<Option<i64>, _>(at) {
            return v.map_or(Value::Null, Value::from);
        }
        if let Ok(v) = row.try_get::<Option<f64>, _>(at) {
            return v
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number);
        }
        if let Ok(v) = row.try_get::<Option<String>, _>(at) {
            return v.map_or(Value::Null, Value::String);
        }
        if let Ok(v) = row.try_get::<Option<bool>, _>(at) {
            return v.map_or(Value::Null, Value::Bool);
        }
        Value::Null
    }

    pub(super) async fn query(
        ctx: &HookContext,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, ApiError> {
        let rows = bound(sql, params).fetch_all(&mut *ctx.db().await?).await?;
        Ok(rows
            .iter()
            .map(|row| {
                row.columns()
                    .iter()
                    .map(|c| (c.name().to_owned(), column(row, c.ordinal())))
                    .collect()
            })
            .collect())
    }

    pub(super) async fn execute(
        ctx: &HookContext,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, ApiError> {
        let done = bound(sql, params).execute(&mut *ctx.db().await?).await?;
        Ok(done.rows_affected())
    }
}

/// A component's statements: through the host, which checks them and runs
/// them in the calling hook's transaction.
#[cfg(target_family = "wasm")]
mod backend {
    use serde_json::Value;

    use super::Row;
    use crate::context::HookContext;
    use crate::error::ApiError;
    use crate::guest::bindings::app::plugin::host;

    fn params_json(params: &[Value]) -> String {
        Value::Array(params.to_vec()).to_string()
    }

    pub(super) async fn query(
        _ctx: &HookContext,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, ApiError> {
        let rows = host::query(sql, &params_json(params)).map_err(crate::guest::api_error)?;
        serde_json::from_str(&rows)
            .map_err(|e| ApiError::internal(format!("the rows are not as expected: {e}")))
    }

    pub(super) async fn execute(
        _ctx: &HookContext,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, ApiError> {
        host::execute(sql, &params_json(params)).map_err(crate::guest::api_error)
    }
}

#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::check_own_tables;

    fn refused(sql: &str) -> String {
        check_own_tables(sql, "notes").unwrap_err().message
    }

    #[test]
    fn its_own_tables_pass_in_every_kind_of_statement() {
        for sql in [
            "SELECT n.id FROM plugin_notes_items n JOIN plugin_notes_tags t ON t.item = n.id WHERE n.id > $1",
            "INSERT INTO plugin_notes_items (id, text) VALUES ($1, $2)",
            "UPDATE plugin_notes_items SET text = $1 WHERE id = $2",
            "DELETE FROM plugin_notes_items WHERE id IN (SELECT item FROM plugin_notes_tags)",
            "WITH plugin_notes_recent AS (SELECT * FROM plugin_notes_items) SELECT * FROM plugin_notes_recent",
            "SELECT * FROM PLUGIN_NOTES_ITEMS",
        ] {
            assert!(check_own_tables(sql, "notes").is_ok(), "{sql}");
        }
    }

    #[test]
    fn any_other_table_is_refused_by_name_wherever_it_hides() {
        let table = |t: &str| {
            format!(
                "the statement names the table `{t}`, which is not one of the plugin's own \
                 (plugin_notes_*)"
            )
        };
        assert_eq!(refused("SELECT * FROM users"), table("users"));
        assert_eq!(
            refused("SELECT * FROM plugin_notes_items WHERE id IN (SELECT id FROM spaces)"),
            table("spaces")
        );
        assert_eq!(
            refused("INSERT INTO plugin_notes_items SELECT * FROM memberships"),
            table("memberships")
        );
        assert_eq!(refused("UPDATE users SET email = 'x'"), table("users"));
        assert_eq!(refused("DELETE FROM outbox"), table("outbox"));
        // Another plugin's, a schema, a quoted name in another case.
        assert_eq!(
            refused("SELECT * FROM plugin_notesx_items"),
            table("plugin_notesx_items")
        );
        assert_eq!(
            refused("SELECT * FROM public.plugin_notes_items"),
            table("public.plugin_notes_items")
        );
        assert_eq!(
            refused(r#"SELECT * FROM "PLUGIN_NOTES_items""#),
            table(r#""PLUGIN_NOTES_items""#)
        );
        // A common table expression that shadows a real table.
        assert_eq!(
            refused("WITH users AS (SELECT 1) SELECT * FROM users"),
            table("users")
        );
    }

    #[test]
    fn other_statements_and_several_at_once_are_refused() {
        assert!(refused("DROP TABLE plugin_notes_items").contains("only SELECT"));
        assert!(refused("COMMIT").contains("only SELECT"));
        assert!(
            refused("DELETE FROM plugin_notes_items; DELETE FROM users").contains("one statement")
        );
        let bad = check_own_tables("SELEC nothing", "notes").unwrap_err();
        assert_eq!(bad.status, 400);
    }
}
