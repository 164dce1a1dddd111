//! The SDK's query API for a plugin's own tables: [`HookContext::query`]
//! and [`HookContext::execute`], with JSON parameters and rows, in the
//! operation's unit of work. One API both ways: a native plugin's runs on
//! the transaction's connection; a component's crosses to the host (WIT
//! `query`/`execute`), which refuses a statement naming a table not the
//! plugin's, or calling a function not allowed ([`check`]), before it
//! reaches the database. A component's migrations are checked here too,
//! with the same walk ([`check_migration`]).

use serde_json::{Map, Value};

use crate::context::HookContext;
use crate::error::ApiError;

#[cfg(not(target_family = "wasm"))]
mod lexemes;

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
    /// The database's; in a component, also a statement refused by
    /// [`check`] (one that names a table not the plugin's own,
    /// `plugin_<name>_*`, or calls a function not allowed, naming it), and
    /// any statement that does not answer rows (use
    /// [`execute`](Self::execute)).
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, ApiError> {
        backend::query(self, sql, params).await
    }

    /// Runs the statement `sql` (an `INSERT`, `UPDATE` or `DELETE`; the
    /// parameters as for [`query`](Self::query)) in the operation's
    /// transaction: how many rows it changed.
    ///
    /// # Errors
    ///
    /// As for [`query`](Self::query); in a component, a statement that
    /// answers rows (a `SELECT`, or `RETURNING`) is refused (use
    /// [`query`](Self::query)).
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, ApiError> {
        backend::execute(self, sql, params).await
    }

    /// Inserts `row` (column names and values, the values bound as
    /// parameters as for [`query`](Self::query)) into `table` when the
    /// operation commits, in its transaction: for a row the operation
    /// itself never reads back (a log entry), which then costs no round
    /// trip of its own. On PostgreSQL every row queued this way (the
    /// operation's event among them) goes in one statement just before
    /// `COMMIT`; rows of one table with the same columns are inserted in
    /// the order queued. Until then the transaction's own reads do not see
    /// the row; a failure to insert it (a constraint) fails the operation,
    /// after its hooks ran, and rolls everything back. An operation rolled
    /// back or run again inserts nothing of what it queued.
    ///
    /// ```
    /// # use hookspecs::prelude::*;
    /// # async fn hook(ctx: &HookContext) -> Result<(), ApiError> {
    /// ctx.insert_at_commit(
    ///     "plugin_journal_entries",
    ///     [("note", json!("created")), ("actor", json!(null))],
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// In a component the row is inserted at once, through
    /// [`execute`](Self::execute) (the host has no queue for it yet).
    ///
    /// # Errors
    ///
    /// 400 when `table` or a column is not a plain lowercase name
    /// (letters, digits, `_`) or `row` is empty; in a component, also
    /// [`execute`](Self::execute)'s.
    pub async fn insert_at_commit<'c>(
        &self,
        table: &str,
        row: impl Into<Vec<(&'c str, Value)>>,
    ) -> Result<(), ApiError> {
        let row = row.into();
        plain_name(table)?;
        for (column, _) in &row {
            plain_name(column)?;
        }
        if row.is_empty() {
            return Err(ApiError::new(
                400,
                "bad_sql",
                "a row to insert has no column",
            ));
        }
        #[cfg(not(target_family = "wasm"))]
        {
            self.uow().insert_at_commit(table, row);
            Ok(())
        }
        #[cfg(target_family = "wasm")]
        {
            let (columns, values): (Vec<&str>, Vec<Value>) = row.into_iter().unzip();
            backend::execute(
                self,
                &crate::util::insert_sql(table, &columns, 1, 1),
                &values,
            )
            .await
            .map(drop)
        }
    }
}

/// Whether `name` is a plain lowercase name: a lowercase ASCII letter or
/// `_`, then lowercase letters, digits and `_`. Such a name can be written
/// into a statement's text unquoted or quoted alike, so the app writes no
/// other: table and column names, and a plugin's table prefix.
///
/// ```
/// use hookspecs::sql::is_plain_name;
///
/// assert!(is_plain_name("plugin_audit_log_log"));
/// assert!(!is_plain_name("Users") && !is_plain_name("2x") && !is_plain_name("a;b"));
/// ```
pub fn is_plain_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Refuses a table or column name that is not a plain lowercase name: it
/// is written into the statement's text, not bound.
fn plain_name(name: &str) -> Result<(), ApiError> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "bad_sql",
            format!("`{name}` is not a plain name (lowercase letters, digits, `_`)"),
        ))
    }
}

/// The host call a component's statement came through, which decides
/// what kind of statement it may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `query`: a statement that answers rows, a `SELECT`, or an `INSERT`,
    /// `UPDATE` or `DELETE` with `RETURNING`.
    Query,
    /// `execute`: an `INSERT`, `UPDATE` or `DELETE` without `RETURNING`,
    /// which answers how many rows it changed.
    Execute,
}

/// The functions a component's statement may call: pure ones that both
/// databases have. Anything else (`pg_sleep`, `set_config`,
/// `query_to_xml`, `pg_read_file`, ...) can reach beyond the plugin's
/// tables or outlive its transaction, so it is refused.
pub const FUNCTIONS: &[&str] = &[
    "abs",
    "avg",
    "coalesce",
    "count",
    "length",
    "lower",
    "max",
    "min",
    "nullif",
    "replace",
    "round",
    "substr",
    "substring",
    "sum",
    "trim",
    "upper",
];

/// Checks a component's statement before it reaches the database. It must
/// be one `SELECT`, `INSERT`, `UPDATE` or `DELETE`, of the kind `call`
/// runs, without a comment, that parses in sqlparser's PostgreSQL dialect
/// and in its SQLite dialect and, read either way, is built only of:
/// - tables that are `plugin`'s own: `plugin_<plugin>_*`, without a
///   schema (a common table expression's name included), and subqueries;
/// - columns, values, parameters, operators, `CASE`, `CAST`, `IN`,
///   `BETWEEN`, `LIKE`, `EXISTS`, `IS ...`, `SUBSTRING`, `TRIM` and the
///   [`FUNCTIONS`].
///
/// Its text must be written in plain SQL's words, which both databases
/// read alike (ASCII or `"quoted"` names, plain `'strings'`, numbers,
/// `$1`-style parameters, a few operators): a token one of them would end
/// elsewhere than sqlparser (a dollar quote, `E'...'`, SQLite's `$a(...)`
/// parameters) could hide SQL from the walk. Refused, besides: `SELECT ...
/// INTO`, `TABLE name`, locking clauses (`FOR UPDATE`), a function called
/// as a table, and an item named by a string (`regclass 'users'` is a
/// typed constant to PostgreSQL).
///
/// ```
/// use hookspecs::sql::{check, Call};
///
/// let own = "SELECT * FROM plugin_audit_log_entries";
/// assert!(check(own, "audit_log", Call::Query).is_ok());
/// let refused = check(
///     "SELECT * FROM plugin_audit_log_entries JOIN users ON users.id = 1",
///     "audit_log",
///     Call::Query,
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
/// 403 naming the first table, function or construct refused; 400 for SQL
/// that does not parse (the parser's message is logged) and for a
/// statement of the other call's kind, naming the call to use.
#[cfg(not(target_family = "wasm"))]
pub fn check(sql: &str, plugin: &str, call: Call) -> Result<(), ApiError> {
    use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
    use std::ops::ControlFlow;

    if has_comment(sql) {
        return Err(refused(
            "the statement contains a comment (`--` or `/*`), which is refused here (pass \
             values as parameters)",
        ));
    }
    if let Err(why) = lexemes::plain(sql, false) {
        return Err(refused(&not_plain(&why)));
    }
    let prefix = format!("plugin_{plugin}_");
    // Read as each database reads it: what one parser takes for a string
    // or an identifier, the other may take for more SQL.
    let dialects: [&dyn Dialect; 2] = [&PostgreSqlDialect {}, &SQLiteDialect {}];
    for dialect in dialects {
        // The parser's message quotes the SQL: the log has it, not the answer.
        let statements = parse(dialect, sql).map_err(|e| {
            tracing::warn!(plugin, "a plugin's statement does not parse: {e}");
            ApiError::new(400, "bad_sql", "the statement does not parse as SQL")
        })?;
        let [statement] = &statements[..] else {
            return Err(refused(&format!(
                "one statement at a time, not {}",
                statements.len()
            )));
        };
        check_kind(statement, call)?;
        let on_postgres = dialect.is::<PostgreSqlDialect>();
        if let ControlFlow::Break(why) = Allowed::walk(statement, &prefix, on_postgres) {
            return Err(refused(&why));
        }
    }
    Ok(())
}

/// Whether `sql` may hold a comment. A plugin passes values as parameters
/// and has no need of comments; the databases do not agree on where one
/// ends (SQLite's do not nest), so a comment could hide from the check what
/// the database runs.
#[cfg(not(target_family = "wasm"))]
fn has_comment(sql: &str) -> bool {
    sql.contains("--") || sql.contains("/*")
}

/// What is refused of a text not written in plain words
/// ([`lexemes::plain`]'s `why`).
#[cfg(not(target_family = "wasm"))]
fn not_plain(why: &str) -> String {
    format!(
        "the statement's text has {why}, which is refused here (plain SQL only: names, \
         \"quoted names\", 'strings', numbers, $1 parameters; values as parameters)"
    )
}

/// Checks a component's migration before anything of it runs: its SQLite
/// text as sqlparser's SQLite dialect reads it, its PostgreSQL text as its
/// PostgreSQL dialect does. Each statement must be one of, on `plugin`'s
/// own tables (`plugin_<plugin>_*`, one-part names, as for [`check`]):
/// - `CREATE TABLE` (not temporary, not `LIKE`, `CLONE` or `INHERITS`
///   another), `ALTER TABLE` adding, dropping, renaming or altering its
///   columns and constraints, or renaming it to a name of its own,
///   `DROP TABLE`;
/// - `CREATE INDEX` and `DROP INDEX` of an index named `plugin_<plugin>_*`:
///   both databases keep an index's name in the schema's namespace, beside
///   the tables, so another name could drop or take the app's;
/// - `INSERT`, `UPDATE` and `DELETE`, checked as [`check`] checks them.
///
/// Every expression (a `DEFAULT`, a `CHECK`, a generated column, an
/// index's) is built as [`check`] allows, of the [`FUNCTIONS`] only.
/// Refused, naming the table or the construct: a `REFERENCES` or
/// `FOREIGN KEY` to a table not its own, `CASCADE` (it drops what other
/// tables hold), any other statement (`CREATE VIEW`, `CREATE TRIGGER`,
/// `CREATE FUNCTION`, `CREATE EXTENSION`, `GRANT`, `PRAGMA`, `COMMIT`, ...),
/// and comments.
///
/// ```
/// use hookspecs::sql::check_migration;
///
/// let own = "CREATE TABLE plugin_audit_log_entries (id BIGINT PRIMARY KEY, at TEXT NOT NULL)";
/// assert!(check_migration("audit_log", own, own).is_ok());
/// let refused = check_migration(
///     "audit_log",
///     own,
///     "CREATE TABLE plugin_audit_log_owners (user_id BIGINT REFERENCES users (id))",
/// );
/// assert_eq!(
///     refused.unwrap_err(),
///     "its PostgreSQL text: the statement references the table `users`, which is not one \
///      of the plugin's own (plugin_audit_log_*)"
/// );
/// ```
///
/// # Errors
///
/// Which text (`its SQLite text: `, `its PostgreSQL text: `), then the
/// first statement, table, function or construct refused; SQL that does
/// not parse (the parser's message, which quotes the SQL, is logged).
#[cfg(not(target_family = "wasm"))]
pub fn check_migration(plugin: &str, sqlite: &str, postgres: &str) -> Result<(), String> {
    use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
    use std::ops::ControlFlow;

    let prefix = format!("plugin_{plugin}_");
    let texts: [(&str, &str, &dyn Dialect); 2] = [
        ("SQLite", sqlite, &SQLiteDialect {}),
        ("PostgreSQL", postgres, &PostgreSqlDialect {}),
    ];
    for (database, sql, dialect) in texts {
        let on_postgres = database == "PostgreSQL";
        let refused = |why: &str| format!("its {database} text: {why}");
        if has_comment(sql) {
            return Err(refused(
                "it contains a comment (`--` or `/*`), which is refused in a component's \
                 migration",
            ));
        }
        if let Err(why) = lexemes::plain(sql, on_postgres) {
            return Err(refused(&not_plain(&why)));
        }
        let statements = parse(dialect, sql).map_err(|e| {
            tracing::warn!(plugin, "a component's migration does not parse: {e}");
            refused("it does not parse as SQL (the app's log has the parser's message)")
        })?;
        for statement in &statements {
            if let ControlFlow::Break(why) = allowed::ddl(statement, &prefix, on_postgres) {
                return Err(refused(&why));
            }
            if let ControlFlow::Break(why) = Allowed::walk(statement, &prefix, on_postgres) {
                return Err(refused(&why));
            }
        }
    }
    Ok(())
}

/// `sql`'s statements as `dialect` reads them. A parser panic is SQL that
/// does not parse: sqlparser's dialects unwrap on some inputs (SQLite's on
/// `v REGEXP` with nothing after it), and the text is the plugin's.
#[cfg(not(target_family = "wasm"))]
fn parse(
    dialect: &dyn sqlparser::dialect::Dialect,
    sql: &str,
) -> Result<Vec<sqlparser::ast::Statement>, String> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    // Unwind safe: the parser's state is dropped with the panic.
    match catch_unwind(AssertUnwindSafe(|| {
        sqlparser::parser::Parser::parse_sql(dialect, sql)
    })) {
        Ok(parsed) => parsed.map_err(|e| e.to_string()),
        Err(_) => Err("the SQL parser failed on it".to_owned()),
    }
}

#[cfg(not(target_family = "wasm"))]
fn refused(message: &str) -> ApiError {
    ApiError::new(403, "sql_refused", message)
}

/// Refuses a statement that is not a `SELECT`, `INSERT`, `UPDATE` or
/// `DELETE`, or not of `call`'s kind.
#[cfg(not(target_family = "wasm"))]
fn check_kind(statement: &sqlparser::ast::Statement, call: Call) -> Result<(), ApiError> {
    use sqlparser::ast::Statement;

    let answers_rows = match statement {
        Statement::Query(_) => true,
        Statement::Insert(insert) => insert.returning.is_some(),
        Statement::Update { returning, .. } => returning.is_some(),
        Statement::Delete(delete) => delete.returning.is_some(),
        _ => {
            return Err(refused(
                "only SELECT, INSERT, UPDATE and DELETE may run here (a plugin's tables are \
                 made by its migrations)",
            ));
        }
    };
    let wrong = |message: &str| ApiError::new(400, "wrong_call", message);
    match (call, answers_rows) {
        (Call::Query, false) => Err(wrong(
            "an INSERT, UPDATE or DELETE without RETURNING answers no rows: run it with \
             `execute`",
        )),
        (Call::Execute, true) => Err(wrong(
            "a SELECT, or a statement with RETURNING, answers rows: run it with `query`",
        )),
        _ => Ok(()),
    }
}

/// The allow-list, as a walk over the statement: it stops at the first
/// table, function or construct not allowed, with why.
#[cfg(not(target_family = "wasm"))]
struct Allowed<'a> {
    /// `plugin_<name>_`: what the plugin's own tables start with.
    prefix: &'a str,
    /// Whether the text is read as PostgreSQL reads it (some names are
    /// calls there and columns in SQLite).
    on_postgres: bool,
}

#[cfg(not(target_family = "wasm"))]
impl Allowed<'_> {
    /// Walks `statement`, stopping at the first thing not allowed.
    fn walk(
        statement: &sqlparser::ast::Statement,
        prefix: &str,
        on_postgres: bool,
    ) -> std::ops::ControlFlow<String> {
        use sqlparser::ast::Visit;
        statement.visit(&mut Allowed {
            prefix,
            on_postgres,
        })
    }
}

#[cfg(not(target_family = "wasm"))]
mod allowed {
    use std::ops::ControlFlow::{self, Break, Continue};

    use sqlparser::ast::{
        AlterColumnOperation, AlterTableOperation, ArrayElemTypeDef, BinaryOperator, ColumnDef,
        ColumnOption, DataType, Delete, DropBehavior, Expr, Ident, Insert, ObjectName,
        ObjectNamePart, ObjectType, Query, RenameTableNameKind, SelectItem, SetExpr,
        SqliteOnConflict, Statement, TableConstraint, TableFactor, TableObject, Visitor,
    };
    use sqlparser::keywords::Keyword;

    use super::{Allowed, FUNCTIONS};

    /// What PostgreSQL reads, unquoted, as a call of a function about the
    /// session, where the parser sees an identifier (it sees the date and
    /// time ones, `current_timestamp` and such, as calls: refused as any
    /// function not allowed).
    const CALLS_WITHOUT_PARENTHESES: &[&str] = &[
        "current_catalog",
        "current_role",
        "current_schema",
        "current_user",
        "session_user",
        "system_user",
        "user",
    ];

    /// How the database sees a one-part name: unquoted, in lower case.
    fn one_part(name: &ObjectName) -> Option<String> {
        match &name.0[..] {
            [
                ObjectNamePart::Identifier(Ident {
                    value, quote_style, ..
                }),
            ] => Some(match quote_style {
                Some(_) => value.clone(),
                None => value.to_lowercase(),
            }),
            _ => None,
        }
    }

    /// A construct's name in the syntax tree (`AtTimeZone`, `Function`,
    /// ...): what a refusal names when it has no name of its own.
    fn kind(node: &impl std::fmt::Debug) -> String {
        format!("{node:?}")
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect()
    }

    /// Refuses a query body that creates a table (`SELECT ... INTO`) or
    /// reads one the walk never names as a relation (`TABLE name`).
    fn body(set: &SetExpr) -> ControlFlow<String> {
        match set {
            SetExpr::Select(select) if select.into.is_some() => {
                Break("`SELECT ... INTO` (which creates a table) is refused here".into())
            }
            SetExpr::Select(select) => items(&select.projection),
            SetExpr::Table(_) => {
                Break("`TABLE name` is refused here (write `SELECT * FROM name`)".into())
            }
            SetExpr::SetOperation { left, right, .. } => {
                body(left)?;
                body(right)
            }
            SetExpr::Merge(_) => Break("MERGE is refused here".into()),
            _ => Continue(()),
        }
    }

    /// Refuses an item named by a string (`x 'name'`): PostgreSQL has no
    /// such alias, and reads `type 'text'` as a constant of that type, a
    /// table's row type or `regclass` among them.
    fn items(items: &[SelectItem]) -> ControlFlow<String> {
        for item in items {
            if let SelectItem::ExprWithAlias { expr, alias } = item {
                if alias.quote_style == Some('\'') {
                    return Break(format!(
                        "`{expr}` named by the string {alias} is refused here (PostgreSQL \
                         reads a name before a string as a constant of that type; an alias is \
                         written `AS name`)"
                    ));
                }
            }
        }
        Continue(())
    }

    /// A statement's kind in SQL's words: `CreateView` as `CREATE VIEW`.
    fn words(node: &impl std::fmt::Debug) -> String {
        let mut words = String::new();
        for (i, c) in kind(node).chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                words.push(' ');
            }
            words.push(c.to_ascii_uppercase());
        }
        words
    }

    /// Refuses `name` unless it is one of the plugin's own (`prefix*`);
    /// `what` says what the statement does with it.
    fn own(name: &ObjectName, prefix: &str, what: &str) -> ControlFlow<String> {
        match one_part(name) {
            Some(own) if own.starts_with(prefix) => Continue(()),
            _ => Break(format!(
                "the statement {what} `{name}`, which is not one of the plugin's own ({prefix}*)"
            )),
        }
    }

    /// A constraint's name, if it has one: on PostgreSQL a unique or
    /// primary key constraint makes an index of that name, which shares the
    /// schema's names with the app's tables and indexes.
    fn own_constraint(name: Option<&Ident>, prefix: &str) -> ControlFlow<String> {
        match name {
            Some(name) => own(
                &ObjectName::from(vec![name.clone()]),
                prefix,
                "names the constraint",
            ),
            None => Continue(()),
        }
    }

    /// `CASCADE` drops what depends on the object, other tables' included.
    fn no_cascade(cascade: bool) -> ControlFlow<String> {
        if cascade {
            Break("CASCADE is refused in a migration (it drops what other tables hold)".into())
        } else {
            Continue(())
        }
    }

    /// PostgreSQL's types that sqlparser reads as a name of no type it
    /// knows. Any other such name could be a table's row type: a column of
    /// it would tie the plugin's table to that table (whose changes
    /// PostgreSQL then refuses).
    const NAMED_TYPES: &[&str] = &[
        "serial",
        "bigserial",
        "smallserial",
        "serial2",
        "serial4",
        "serial8",
        "inet",
        "cidr",
        "macaddr",
        "macaddr8",
        "money",
        "int4range",
        "int8range",
        "numrange",
        "tsrange",
        "tstzrange",
        "daterange",
    ];

    /// PostgreSQL's built-in types among those sqlparser knows by name,
    /// written as it prints them (lower case, modifiers left out). sqlparser
    /// knows other databases' types too (`blob`, `datetime`, `tinyint`):
    /// PostgreSQL has none of them, and looks such a name up as a table's
    /// row type.
    const BUILT_IN: &[&str] = &[
        "smallint",
        "int",
        "integer",
        "bigint",
        "int2",
        "int4",
        "int8",
        "real",
        "float",
        "float4",
        "float8",
        "double precision",
        "numeric",
        "decimal",
        "boolean",
        "bool",
        "text",
        "varchar",
        "character varying",
        "char",
        "character",
        "bytea",
        "date",
        "time",
        "time with time zone",
        "time without time zone",
        "timestamp",
        "timestamp with time zone",
        "timestamp without time zone",
        "timestamptz",
        "timetz",
        "interval",
        "bit",
        "bit varying",
        "varbit",
        "char varying",
        "dec",
        "tsvector",
        "tsquery",
        "uuid",
        "json",
        "jsonb",
    ];

    /// Refuses, on PostgreSQL, a type that is none of its built-in ones
    /// ([`BUILT_IN`], [`NAMED_TYPES`]); on SQLite a type's name is only its
    /// affinity.
    fn data_type(of: &DataType, on_postgres: bool) -> ControlFlow<String> {
        match of {
            // Its values name tables: a default of `'users'` ties the
            // plugin's table to `users`.
            DataType::Regclass => Break("the type `regclass` is refused here".into()),
            DataType::Custom(name, _) if on_postgres => match one_part(name) {
                Some(known) if NAMED_TYPES.contains(&known.as_str()) => Continue(()),
                _ => Break(format!(
                    "the column type `{name}` is refused in a migration (a name that is not a \
                     built-in type may be a table's row type)"
                )),
            },
            DataType::Array(
                ArrayElemTypeDef::AngleBracket(inner)
                | ArrayElemTypeDef::SquareBracket(inner, _)
                | ArrayElemTypeDef::Parenthesis(inner),
            ) => data_type(inner, on_postgres),
            DataType::Custom(..) | DataType::Array(_) | DataType::Interval { .. } => Continue(()),
            other if on_postgres => {
                // Modifiers (`(10)`, `(3)` inside `TIMESTAMP(3) WITH TIME
                // ZONE`) left out.
                let mut depth = 0_u32;
                let name: String = other
                    .to_string()
                    .to_ascii_lowercase()
                    .chars()
                    .filter(|c| {
                        depth = match c {
                            '(' => depth + 1,
                            ')' => depth.saturating_sub(1),
                            _ => depth,
                        };
                        depth == 0 && *c != ')'
                    })
                    .collect();
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
                if BUILT_IN.contains(&name.as_str()) {
                    Continue(())
                } else {
                    Break(format!(
                        "the type `{other}` is refused here (PostgreSQL has no such built-in \
                         type, and may read it as a table's row type)"
                    ))
                }
            }
            _ => Continue(()),
        }
    }

    fn column(column: &ColumnDef, prefix: &str, on_postgres: bool) -> ControlFlow<String> {
        // PostgreSQL reads `CREATE TABLE t (LIKE users)` as a copy of
        // `users`' columns, sqlparser as a column `LIKE` of type `users`.
        if column.name.quote_style.is_none() && column.name.value.eq_ignore_ascii_case("like") {
            return Break(like());
        }
        data_type(&column.data_type, on_postgres)?;
        for option in &column.options {
            own_constraint(option.name.as_ref(), prefix)?;
            if option.option == ColumnOption::OnConflict(Keyword::ROLLBACK) {
                return Break(ends_the_transaction("`ON CONFLICT ROLLBACK`"));
            }
            if let ColumnOption::ForeignKey { foreign_table, .. } = &option.option {
                own(foreign_table, prefix, "references the table")?;
            }
        }
        Continue(())
    }

    fn constraint(constraint: &TableConstraint, prefix: &str) -> ControlFlow<String> {
        let names = match constraint {
            TableConstraint::ForeignKey {
                foreign_table,
                name,
                index_name,
                ..
            } => {
                own(foreign_table, prefix, "references the table")?;
                [name.as_ref(), index_name.as_ref()]
            }
            TableConstraint::Unique {
                name, index_name, ..
            }
            | TableConstraint::PrimaryKey {
                name, index_name, ..
            } => [name.as_ref(), index_name.as_ref()],
            TableConstraint::Check { name, .. } | TableConstraint::Index { name, .. } => {
                [name.as_ref(), None]
            }
            TableConstraint::FulltextOrSpatial { opt_index_name, .. } => {
                [opt_index_name.as_ref(), None]
            }
        };
        names
            .into_iter()
            .try_for_each(|name| own_constraint(name, prefix))
    }

    /// SQLite's conflict resolution that rolls back the whole transaction:
    /// the operation's, which the app alone ends (the plugin's later
    /// writes would commit on their own).
    fn ends_the_transaction(clause: &str) -> String {
        format!(
            "{clause} is refused here: it would end the operation's transaction, which commits \
             or rolls back as a whole"
        )
    }

    fn like() -> String {
        "`CREATE TABLE ... LIKE`, `CLONE` or `INHERITS` is refused in a migration".into()
    }

    /// The statements a migration may run, and the names in them that the
    /// walk over relations never sees (references, indexes, dropped and
    /// renamed tables, types); the tables it names as relations and its
    /// expressions are [`Allowed`]'s to check.
    pub(super) fn ddl(
        statement: &Statement,
        prefix: &str,
        on_postgres: bool,
    ) -> ControlFlow<String> {
        match statement {
            Statement::CreateTable(table) => {
                if table.temporary {
                    return Break(
                        "a temporary table is refused in a migration (it would outlive the \
                         migration on its connection)"
                            .into(),
                    );
                }
                if table.like.is_some() || table.clone.is_some() || table.inherits.is_some() {
                    return Break(like());
                }
                for c in &table.columns {
                    column(c, prefix, on_postgres)?;
                }
                for c in &table.constraints {
                    constraint(c, prefix)?;
                }
                Continue(())
            }
            Statement::CreateIndex(index) => match &index.name {
                Some(name) => own(name, prefix, "names the index"),
                None => Continue(()),
            },
            Statement::AlterTable { operations, .. } => {
                for operation in operations {
                    match operation {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            column(column_def, prefix, on_postgres)?;
                        }
                        AlterTableOperation::AlterColumn {
                            op: AlterColumnOperation::SetDataType { data_type: t, .. },
                            ..
                        } => data_type(t, on_postgres)?,
                        AlterTableOperation::AddConstraint { constraint: c, .. } => {
                            constraint(c, prefix)?;
                        }
                        AlterTableOperation::RenameTable { table_name } => {
                            let (RenameTableNameKind::As(name) | RenameTableNameKind::To(name)) =
                                table_name;
                            own(name, prefix, "renames a table to")?;
                        }
                        AlterTableOperation::DropColumn { drop_behavior, .. }
                        | AlterTableOperation::DropConstraint { drop_behavior, .. } => {
                            no_cascade(matches!(drop_behavior, Some(DropBehavior::Cascade)))?;
                        }
                        AlterTableOperation::RenameConstraint { new_name, .. } => {
                            own_constraint(Some(new_name), prefix)?;
                        }
                        AlterTableOperation::RenameColumn { .. }
                        | AlterTableOperation::AlterColumn { .. } => {}
                        other => {
                            return Break(format!(
                                "`ALTER TABLE ... {}` is refused in a migration",
                                words(other)
                            ));
                        }
                    }
                }
                Continue(())
            }
            Statement::Drop {
                object_type: object_type @ (ObjectType::Table | ObjectType::Index),
                names,
                cascade,
                ..
            } => {
                no_cascade(*cascade)?;
                let what = format!("drops the {}", object_type.to_string().to_lowercase());
                for name in names {
                    own(name, prefix, &what)?;
                }
                Continue(())
            }
            Statement::Drop { object_type, .. } => Break(format!(
                "DROP {object_type} is refused in a migration (only tables and indexes of its own)"
            )),
            // The walk checks their tables as for a hook's statements. A
            // `SELECT` (`SELECT 1`) is what a migration with nothing to do
            // on one database says there: an empty text is refused.
            Statement::Insert(_)
            | Statement::Update { .. }
            | Statement::Delete(_)
            | Statement::Query(_) => Continue(()),
            other => Break(format!(
                "{} is refused in a component's migration (only CREATE TABLE, ALTER TABLE, \
                 DROP TABLE, CREATE INDEX, DROP INDEX, INSERT, UPDATE, DELETE and SELECT, on \
                 its own tables)",
                words(other)
            )),
        }
    }

    impl Visitor for Allowed<'_> {
        type Break = String;

        fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<String> {
            match one_part(name) {
                Some(table) if table.starts_with(self.prefix) => Continue(()),
                _ => Break(format!(
                    "the statement names the table `{name}`, which is not one of the plugin's \
                     own ({}*)",
                    self.prefix
                )),
            }
        }

        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
            match factor {
                TableFactor::Table { args: None, .. }
                | TableFactor::Derived { .. }
                | TableFactor::NestedJoin { .. } => Continue(()),
                TableFactor::Table { name, .. } => Break(format!(
                    "the statement calls the function `{name}` as a table, which is refused here"
                )),
                other => Break(format!(
                    "reading from `{}` is refused here (only tables and subqueries)",
                    kind(other)
                )),
            }
        }

        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
            if !query.locks.is_empty() {
                return Break(
                    "locking clauses (`FOR UPDATE`, `FOR SHARE`) are refused here".into(),
                );
            }
            if query.for_clause.is_some()
                || query.settings.is_some()
                || query.format_clause.is_some()
                || !query.pipe_operators.is_empty()
            {
                return Break("the query has a clause that is refused here".into());
            }
            if query.with.as_ref().is_some_and(|with| with.recursive) {
                // Its end depends on the data: a statement must end within
                // the call's time limit, which cannot interrupt the database.
                return Break("`WITH RECURSIVE` is refused here".into());
            }
            body(&query.body)
        }

        fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
            match statement {
                Statement::Insert(insert) if !matches!(insert.table, TableObject::TableName(_)) => {
                    Break("inserting into a function is refused here".into())
                }
                Statement::Insert(Insert {
                    or: Some(SqliteOnConflict::Rollback),
                    ..
                })
                | Statement::Update {
                    or: Some(SqliteOnConflict::Rollback),
                    ..
                } => Break(ends_the_transaction("`OR ROLLBACK`")),
                Statement::Insert(Insert {
                    returning: Some(returning),
                    ..
                })
                | Statement::Update {
                    returning: Some(returning),
                    ..
                }
                | Statement::Delete(Delete {
                    returning: Some(returning),
                    ..
                }) => items(returning),
                _ => Continue(()),
            }
        }

        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
            match expr {
                Expr::Function(function) => match one_part(&function.name) {
                    Some(name) if FUNCTIONS.contains(&name.as_str()) => Continue(()),
                    _ => Break(format!(
                        "the statement calls the function `{}`, which is refused here (a \
                         component's SQL may call only {})",
                        function.name,
                        FUNCTIONS.join(", ")
                    )),
                },
                Expr::BinaryOp {
                    op: BinaryOperator::PGCustomBinaryOperator(_),
                    ..
                } => Break("`OPERATOR(...)` is refused here".into()),
                // To a built-in type only: a cast to a table's row type
                // (or to `regclass`) in a default or a check ties the
                // plugin's table to that table.
                Expr::Cast { data_type: to, .. } => data_type(to, self.on_postgres),
                Expr::Identifier(name)
                    if self.on_postgres
                        && name.quote_style.is_none()
                        && CALLS_WITHOUT_PARENTHESES
                            .iter()
                            .any(|call| name.value.eq_ignore_ascii_case(call)) =>
                {
                    Break(format!(
                        "`{name}` is a function on PostgreSQL (its SQL calls it without \
                         parentheses), which is refused here; a column of that name is written \
                         quoted: `\"{}\"`",
                        name.value.to_ascii_lowercase()
                    ))
                }
                Expr::Identifier(_)
                | Expr::CompoundIdentifier(_)
                | Expr::Value(_)
                | Expr::Nested(_)
                | Expr::Tuple(_)
                | Expr::BinaryOp { .. }
                | Expr::UnaryOp { .. }
                | Expr::IsFalse(_)
                | Expr::IsNotFalse(_)
                | Expr::IsTrue(_)
                | Expr::IsNotTrue(_)
                | Expr::IsNull(_)
                | Expr::IsNotNull(_)
                | Expr::IsUnknown(_)
                | Expr::IsNotUnknown(_)
                | Expr::IsDistinctFrom(..)
                | Expr::IsNotDistinctFrom(..)
                | Expr::InList { .. }
                | Expr::InSubquery { .. }
                | Expr::Between { .. }
                | Expr::Like { .. }
                | Expr::ILike { .. }
                | Expr::Case { .. }
                | Expr::Exists { .. }
                | Expr::Subquery(_)
                | Expr::Substring { .. }
                | Expr::Trim { .. }
                | Expr::Wildcard(_)
                | Expr::QualifiedWildcard(..) => Continue(()),
                other => Break(format!(
                    "the expression `{}` is refused here (a component's SQL may use columns, \
                     values, parameters, operators, CASE, CAST, IN, BETWEEN, LIKE, EXISTS, IS, \
                     SUBSTRING, TRIM, subqueries and the functions {})",
                    kind(other),
                    FUNCTIONS.join(", ")
                )),
            }
        }
    }
}

/// A native plugin's statements: on the transaction's connection.
#[cfg(not(target_family = "wasm"))]
pub(crate) mod backend {
    use serde_json::{Number, Value};
    use sqlx::any::AnyRow;
    use sqlx::{Column, Row as _};

    use super::Row;
    use crate::context::HookContext;
    use crate::error::ApiError;
    use crate::uow::bound;

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
    use super::{Call, check, check_migration, plain_name};
    use crate::util::insert_sql;

    /// Names are written into the statement's text: only plain ones.
    #[test]
    fn a_row_at_commit_names_its_table_and_columns_plainly() {
        assert_eq!(
            insert_sql("plugin_a_log", &["kind", "at"], 2, 3),
            "INSERT INTO \"plugin_a_log\" (\"kind\", \"at\") VALUES ($3, $4), ($5, $6)"
        );
        assert!(plain_name("plugin_a_log2").is_ok());
        assert!(plain_name("_x").is_ok());
        for bad in ["", "2x", "Users", "a b", "a;DROP", "\"t\"", "a.b", "é"] {
            let error = plain_name(bad).unwrap_err();
            assert_eq!(
                (error.status, error.code.as_str()),
                (400, "bad_sql"),
                "{bad}"
            );
        }
    }

    /// The call a statement belongs to, as a component would choose it.
    fn call(sql: &str) -> Call {
        let upper = sql.to_uppercase();
        if upper.starts_with("SELECT") || upper.starts_with("WITH") || upper.contains("RETURNING") {
            Call::Query
        } else {
            Call::Execute
        }
    }

    fn refused(sql: &str) -> String {
        let error = check(sql, "notes", call(sql)).unwrap_err();
        assert_eq!(error.status, 403, "{sql}: {}", error.message);
        error.message
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
            "INSERT INTO plugin_notes_items (text) VALUES ($1) RETURNING id",
            "DELETE FROM plugin_notes_items WHERE id = $1 RETURNING text",
        ] {
            assert!(check(sql, "notes", call(sql)).is_ok(), "{sql}");
        }
    }

    #[test]
    fn the_allowed_functions_and_expressions_pass() {
        let sql = "SELECT COUNT(*) AS n, sum(n), min(n), max(n), avg(n), coalesce(a, 'x'), \
                   nullif(a, ''), lower(a), upper(a), length(a), abs(n), round(n), \
                   substr(a, 1, 2), replace(a, 'x', 'y'), SUBSTRING(a FROM 1 FOR 2), TRIM(a), \
                   CAST(n AS TEXT), CASE WHEN n IS NULL THEN 0 ELSE n + 1 END \
                   FROM plugin_notes_items WHERE a LIKE $1 AND n BETWEEN 1 AND 3 AND n IN (1, 2) \
                   AND NOT EXISTS (SELECT 1 FROM plugin_notes_tags) GROUP BY a HAVING count(*) > 1 \
                   ORDER BY a LIMIT 10";
        assert!(check(sql, "notes", Call::Query).is_ok());
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

    /// Each function of the review's attacks (reading any table, the
    /// server's files, other connections' settings and lives) is refused
    /// by name, wherever it is called.
    #[test]
    fn functions_not_allowed_are_refused_by_name() {
        for (sql, function) in [
            (
                "SELECT query_to_xml('SELECT * FROM users', true, false, '')",
                "query_to_xml",
            ),
            ("SELECT database_to_xml(true, false, '')", "database_to_xml"),
            (
                "SELECT set_config('search_path', 'pg_catalog', false)",
                "set_config",
            ),
            (
                "SELECT pg_terminate_backend(n) FROM plugin_notes_nums",
                "pg_terminate_backend",
            ),
            ("SELECT pg_sleep(1000)", "pg_sleep"),
            ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
            ("SELECT lo_import('/etc/passwd')", "lo_import"),
            ("SELECT dblink('dbname=test', 'SELECT 1')", "dblink"),
            ("SELECT current_setting('is_superuser')", "current_setting"),
            ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
            (
                "SELECT pg_catalog.count(*) FROM plugin_notes_items",
                "pg_catalog.count",
            ),
            (
                "UPDATE plugin_notes_items SET text = pg_read_file('/etc/passwd')",
                "pg_read_file",
            ),
            (
                "SELECT * FROM plugin_notes_items WHERE id = (SELECT pg_sleep(10))",
                "pg_sleep",
            ),
        ] {
            let message = refused(sql);
            assert!(
                message.starts_with(&format!("the statement calls the function `{function}`")),
                "{sql}: {message}"
            );
        }
        assert_eq!(
            refused("SELECT * FROM dblink('dbname=test', 'SELECT 1')"),
            "the statement calls the function `dblink` as a table, which is refused here"
        );
        assert!(
            refused("SELECT n AT TIME ZONE 'UTC' FROM plugin_notes_items")
                .starts_with("the expression `AtTimeZone` is refused here")
        );
    }

    /// PostgreSQL calls `current_role`, `current_schema`, `user` and their
    /// kin without parentheses: the walk sees identifiers, which must not
    /// pass for columns. Quoted, they are columns.
    #[test]
    fn calls_written_without_parentheses_are_refused_unless_quoted() {
        for name in [
            "current_role",
            "CURRENT_SCHEMA",
            "current_user",
            "session_user",
            "user",
            "current_catalog",
            "system_user",
        ] {
            for sql in [
                format!("SELECT {name} FROM plugin_notes_items"),
                format!("SELECT CAST({name} AS TEXT) AS x FROM plugin_notes_items"),
                format!("SELECT {name}::TEXT AS x FROM plugin_notes_items"),
                format!("SELECT id FROM plugin_notes_items ORDER BY {name}"),
                format!("SELECT id FROM plugin_notes_items GROUP BY id, {name}"),
                format!("WITH w AS (SELECT {name} AS x FROM plugin_notes_items) SELECT x FROM w"),
                format!("INSERT INTO plugin_notes_items (text) VALUES ({name})"),
                format!("INSERT INTO plugin_notes_items (text) VALUES ('a') RETURNING {name}"),
                format!("UPDATE plugin_notes_items SET text = {name}"),
            ] {
                let message = refused(&sql);
                assert!(
                    message.contains(&format!("`{name}` is a function on PostgreSQL"))
                        || message
                            .starts_with(&format!("the statement calls the function `{name}`")),
                    "{sql}: {message}"
                );
            }
            let quoted = format!("SELECT \"{}\" FROM plugin_notes_items", name.to_lowercase());
            assert_eq!(
                check(&quoted, "notes", call(&quoted)).map_err(|e| e.message),
                Ok(())
            );
        }
        assert!(
            refused("SELECT CURRENT_SCHEMA FROM plugin_notes_items")
                .ends_with("a column of that name is written quoted: `\"current_schema\"`")
        );
        // A migration's SQLite text is SQLite's: there, they are columns,
        // and a type's name is only its affinity; PostgreSQL's built-in
        // types pass in its own text.
        let cast = "UPDATE plugin_notes_items SET b = CAST(a AS BLOB)";
        assert_eq!(check_migration("notes", cast, "SELECT 1"), Ok(()));
        let types = "ALTER TABLE plugin_notes_items ADD COLUMN a TIMETZ, ADD COLUMN b INTERVAL \
                     DAY TO SECOND, ADD COLUMN c BIT(3), ADD COLUMN d TEXT[], ADD COLUMN e \
                     TIMESTAMP(3) WITH TIME ZONE, ADD COLUMN f NUMERIC(10,2), ADD COLUMN g BIGSERIAL";
        assert_eq!(check_migration("notes", "SELECT 1", types), Ok(()));
        let by_user = "CREATE INDEX plugin_notes_by_user ON plugin_notes_items (user)";
        assert_eq!(check_migration("notes", by_user, "SELECT 1"), Ok(()));
        let who = "ALTER TABLE plugin_notes_items ADD COLUMN who TEXT DEFAULT current_role";
        let error = check_migration("notes", "SELECT 1", who).unwrap_err();
        assert!(
            error.starts_with("its PostgreSQL text: `current_role` is a function on PostgreSQL"),
            "{error}"
        );
    }

    /// The review's statements that name a table where the walk over
    /// relations never looks, or create one.
    #[test]
    fn select_into_table_and_locking_are_refused() {
        assert_eq!(
            refused("SELECT * INTO TEMP users FROM plugin_notes_items"),
            "`SELECT ... INTO` (which creates a table) is refused here"
        );
        assert_eq!(
            refused("SELECT 1 INTO users_backup"),
            "`SELECT ... INTO` (which creates a table) is refused here"
        );
        let table = "`TABLE name` is refused here (write `SELECT * FROM name`)";
        assert_eq!(
            refused("WITH plugin_notes_u AS (TABLE users LIMIT ALL) SELECT * FROM plugin_notes_u"),
            table
        );
        assert_eq!(refused("INSERT INTO plugin_notes_copy TABLE users"), table);
        assert_eq!(
            refused(
                "WITH RECURSIVE plugin_notes_r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM plugin_notes_r) \
                 SELECT count(*) FROM plugin_notes_r"
            ),
            "`WITH RECURSIVE` is refused here"
        );
        assert_eq!(
            refused("SELECT * FROM plugin_notes_items FOR UPDATE"),
            "locking clauses (`FOR UPDATE`, `FOR SHARE`) are refused here"
        );
    }

    /// SQLite's `OR ROLLBACK` (a statement's or a column's) rolls back the
    /// whole transaction on a conflict: the operation's, after which the
    /// plugin's next writes would commit on their own.
    #[test]
    fn a_conflict_clause_that_ends_the_transaction_is_refused() {
        let why = |clause: &str| {
            format!(
                "{clause} is refused here: it would end the operation's transaction, which \
                 commits or rolls back as a whole"
            )
        };
        assert_eq!(
            refused("INSERT OR ROLLBACK INTO plugin_notes_items (a) VALUES (1)"),
            why("`OR ROLLBACK`")
        );
        assert_eq!(
            refused("UPDATE OR ROLLBACK plugin_notes_items SET a = 1"),
            why("`OR ROLLBACK`")
        );
        let ignore = "INSERT OR IGNORE INTO plugin_notes_items (a) VALUES (1)";
        assert_eq!(check(ignore, "notes", Call::Execute), Ok(()));
        let sqlite = "CREATE TABLE plugin_notes_t (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK)";
        assert_eq!(
            check_migration("notes", sqlite, ""),
            Err(format!(
                "its SQLite text: {}",
                why("`ON CONFLICT ROLLBACK`")
            ))
        );
    }

    /// SQLite ends a block comment at the first `*/`, the parser at the
    /// matching one: a comment could hide `, users` from the check.
    #[test]
    fn comments_are_refused() {
        let comment = "the statement contains a comment (`--` or `/*`), which is refused here \
                       (pass values as parameters)";
        assert_eq!(
            refused("SELECT * FROM plugin_notes_items /* /* */ , users -- */"),
            comment
        );
        assert_eq!(refused("SELECT * FROM plugin_notes_items -- x"), comment);
        assert_eq!(refused("SELECT 1 /* x */ FROM plugin_notes_items"), comment);
    }

    #[test]
    fn each_call_takes_its_own_kind_of_statement() {
        let wrong = |sql: &str, call: Call| {
            let error = check(sql, "notes", call).unwrap_err();
            assert_eq!((error.status, error.code.as_str()), (400, "wrong_call"));
            error.message
        };
        assert_eq!(
            wrong("SELECT 1 FROM plugin_notes_items", Call::Execute),
            "a SELECT, or a statement with RETURNING, answers rows: run it with `query`"
        );
        assert!(
            wrong(
                "INSERT INTO plugin_notes_items (id) VALUES (1) RETURNING id",
                Call::Execute
            )
            .ends_with("run it with `query`")
        );
        assert!(
            wrong("DELETE FROM plugin_notes_items", Call::Query).ends_with("run it with `execute`")
        );
    }

    #[test]
    fn other_statements_and_several_at_once_are_refused() {
        assert!(refused("DROP TABLE plugin_notes_items").contains("only SELECT"));
        assert!(refused("COMMIT").contains("only SELECT"));
        assert!(
            refused("DELETE FROM plugin_notes_items; DELETE FROM users").contains("one statement")
        );
        let bad = check("SELEC nothing", "notes", Call::Query).unwrap_err();
        assert_eq!(bad.status, 400);
    }

    /// A migration's SQL, the same text for both databases: why it is
    /// refused, each time the same whichever database's text it is.
    fn migration_refused(sql: &str) -> String {
        let on_sqlite = check_migration("notes", sql, "").unwrap_err();
        let on_postgres = check_migration("notes", "", sql).unwrap_err();
        let why = on_sqlite
            .strip_prefix("its SQLite text: ")
            .unwrap_or_else(|| panic!("{sql}: {on_sqlite}"));
        assert_eq!(
            on_postgres.strip_prefix("its PostgreSQL text: "),
            Some(why),
            "{sql}"
        );
        why.to_owned()
    }

    #[test]
    fn a_migration_of_its_own_tables_passes_in_each_dialect() {
        let sqlite = "CREATE TABLE plugin_notes_items (\
                          id INTEGER PRIMARY KEY AUTOINCREMENT, \
                          text TEXT NOT NULL DEFAULT '' CHECK (length(text) < 1000), \
                          tag INTEGER REFERENCES plugin_notes_tags (id) ON DELETE CASCADE, \
                          at TEXT NOT NULL);\n\
                      CREATE UNIQUE INDEX IF NOT EXISTS plugin_notes_items_text ON plugin_notes_items (lower(text));\n\
                      ALTER TABLE plugin_notes_items ADD COLUMN done INTEGER NOT NULL DEFAULT 0;\n\
                      ALTER TABLE plugin_notes_items RENAME COLUMN done TO finished;\n\
                      ALTER TABLE plugin_notes_old RENAME TO plugin_notes_older;\n\
                      INSERT INTO plugin_notes_items (text, at) SELECT text, at FROM plugin_notes_older;\n\
                      UPDATE plugin_notes_items SET finished = 1 WHERE text = 'x';\n\
                      DELETE FROM plugin_notes_items WHERE finished = 1;\n\
                      DROP INDEX plugin_notes_items_text;\n\
                      DROP TABLE IF EXISTS plugin_notes_older";
        let postgres = "CREATE TABLE plugin_notes_items (\
                            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                            text TEXT NOT NULL DEFAULT '' CHECK (length(text) < 1000), \
                            tag BIGINT, \
                            total BIGINT GENERATED ALWAYS AS (id * 2) STORED, \
                            CONSTRAINT plugin_notes_items_tag FOREIGN KEY (tag) REFERENCES plugin_notes_tags (id));\n\
                        CREATE INDEX plugin_notes_items_tag_idx ON plugin_notes_items (tag) WHERE tag IS NOT NULL;\n\
                        ALTER TABLE plugin_notes_items ADD COLUMN done BOOLEAN NOT NULL DEFAULT FALSE, \
                            ALTER COLUMN text SET DEFAULT 'none', DROP CONSTRAINT plugin_notes_items_tag;\n\
                        ALTER TABLE plugin_notes_items ADD CONSTRAINT plugin_notes_items_own \
                            FOREIGN KEY (tag) REFERENCES plugin_notes_tags (id);\n\
                        DROP INDEX plugin_notes_items_tag_idx;\n\
                        DROP TABLE plugin_notes_old";
        assert_eq!(check_migration("notes", sqlite, postgres), Ok(()));
        assert_eq!(check_migration("notes", "", ""), Ok(()));
    }

    #[test]
    fn a_migration_touching_another_table_is_refused_naming_it() {
        let not_own = |what: &str, table: &str| {
            format!(
                "the statement {what} `{table}`, which is not one of the plugin's own (plugin_notes_*)"
            )
        };
        let names = |table| not_own("names the table", table);
        for (sql, why) in [
            ("CREATE TABLE users2 (id INTEGER)", names("users2")),
            (
                "CREATE TABLE IF NOT EXISTS plugin_notesx_a (id INTEGER)",
                names("plugin_notesx_a"),
            ),
            (
                "CREATE TABLE main.plugin_notes_a (id INTEGER)",
                names("main.plugin_notes_a"),
            ),
            (
                "ALTER TABLE users ADD COLUMN plugin_notes_x TEXT",
                names("users"),
            ),
            (
                "CREATE INDEX plugin_notes_email ON users (email)",
                names("users"),
            ),
            (
                "INSERT INTO users (username) VALUES ('eve')",
                names("users"),
            ),
            ("UPDATE users SET admin = 1", names("users")),
            ("DELETE FROM memberships", names("memberships")),
            (
                "INSERT INTO plugin_notes_items (text) SELECT email FROM users",
                names("users"),
            ),
            (
                "CREATE TABLE plugin_notes_copy AS SELECT * FROM users",
                names("users"),
            ),
            (
                "CREATE TABLE plugin_notes_a (user_id INTEGER REFERENCES users (id))",
                not_own("references the table", "users"),
            ),
            (
                "CREATE TABLE plugin_notes_a (user_id INTEGER, FOREIGN KEY (user_id) REFERENCES users (id))",
                not_own("references the table", "users"),
            ),
            (
                "ALTER TABLE plugin_notes_a ADD COLUMN u INTEGER REFERENCES spaces (id)",
                not_own("references the table", "spaces"),
            ),
            (
                "ALTER TABLE plugin_notes_a ADD CONSTRAINT plugin_notes_fk FOREIGN KEY (u) REFERENCES users (id)",
                not_own("references the table", "users"),
            ),
            (
                "ALTER TABLE plugin_notes_a RENAME TO users",
                not_own("renames a table to", "users"),
            ),
            ("DROP TABLE users", not_own("drops the table", "users")),
            (
                "DROP TABLE plugin_notes_a, outbox",
                not_own("drops the table", "outbox"),
            ),
            (
                "DROP INDEX users_email_key",
                not_own("drops the index", "users_email_key"),
            ),
            (
                "CREATE INDEX users_by_name ON plugin_notes_a (name)",
                not_own("names the index", "users_by_name"),
            ),
            // A unique or primary key constraint names an index on PostgreSQL.
            (
                "CREATE TABLE plugin_notes_a (id INTEGER, CONSTRAINT users_email_idx UNIQUE (id))",
                not_own("names the constraint", "users_email_idx"),
            ),
            (
                "CREATE TABLE plugin_notes_a (id INTEGER CONSTRAINT users_pkey PRIMARY KEY)",
                not_own("names the constraint", "users_pkey"),
            ),
            // Values or casts that name another table tie the plugin's to it.
            (
                "CREATE TABLE plugin_notes_a (t regclass DEFAULT 'users')",
                "the type `regclass` is refused here".to_owned(),
            ),
            (
                "CREATE TABLE plugin_notes_a (n INTEGER CHECK (CAST(NULL AS regclass) IS NULL))",
                "the type `regclass` is refused here".to_owned(),
            ),
        ] {
            assert_eq!(migration_refused(sql), why, "{sql}");
        }
        // PostgreSQL reads `users` as a row type; SQLite as a type's name only.
        let cast = "CREATE TABLE plugin_notes_a (n INTEGER CHECK (CAST(NULL AS users) IS NULL))";
        let why = check_migration("notes", "", cast).unwrap_err();
        assert!(why.contains("the column type `users` is refused"), "{why}");
        let rename =
            "ALTER TABLE plugin_notes_a RENAME CONSTRAINT plugin_notes_u TO users_email_idx";
        assert_eq!(
            check_migration("notes", "", rename),
            Err(format!(
                "its PostgreSQL text: {}",
                not_own("names the constraint", "users_email_idx")
            ))
        );
        let own =
            "CREATE TABLE plugin_notes_a (id INTEGER, CONSTRAINT plugin_notes_one UNIQUE (id))";
        assert_eq!(check_migration("notes", own, own), Ok(()));
    }

    #[test]
    fn a_function_in_a_default_a_check_a_generated_column_or_an_index_is_refused_by_name() {
        for (sql, function) in [
            (
                "CREATE TABLE plugin_notes_a (at TEXT DEFAULT CURRENT_TIMESTAMP)",
                "CURRENT_TIMESTAMP",
            ),
            (
                "CREATE TABLE plugin_notes_a (n INTEGER CHECK (n < pg_backend_pid()))",
                "pg_backend_pid",
            ),
            (
                "CREATE TABLE plugin_notes_a (n TEXT GENERATED ALWAYS AS (current_setting('x')) STORED)",
                "current_setting",
            ),
            (
                "CREATE TABLE plugin_notes_a (n INTEGER, CHECK (n > random()))",
                "random",
            ),
            (
                "ALTER TABLE plugin_notes_a ADD COLUMN t TEXT DEFAULT pg_read_file('/etc/passwd')",
                "pg_read_file",
            ),
            (
                "CREATE INDEX plugin_notes_i ON plugin_notes_a (set_config('a', 'b', false))",
                "set_config",
            ),
            (
                "INSERT INTO plugin_notes_a (t) VALUES (pg_sleep(100))",
                "pg_sleep",
            ),
        ] {
            let why = migration_refused(sql);
            assert!(
                why.starts_with(&format!("the statement calls the function `{function}`")),
                "{sql}: {why}"
            );
        }
    }

    #[test]
    fn other_statements_and_constructs_are_refused_in_a_migration() {
        let only = "is refused in a component's migration (only CREATE TABLE, ALTER TABLE, \
                    DROP TABLE, CREATE INDEX, DROP INDEX, INSERT, UPDATE, DELETE and SELECT, on \
                    its own tables)";
        for (sql, kind) in [
            ("CREATE VIEW plugin_notes_v AS SELECT 1", "CREATE VIEW"),
            ("GRANT SELECT ON plugin_notes_a TO PUBLIC", "GRANT"),
            ("COMMIT", "COMMIT"),
        ] {
            assert_eq!(migration_refused(sql), format!("{kind} {only}"), "{sql}");
        }
        // A `SELECT` is a migration's "nothing to do here", read as a
        // hook's statement would be.
        for sql in ["SELECT 1", "SELECT COUNT(*) FROM plugin_notes_a"] {
            assert_eq!(check_migration("notes", sql, sql), Ok(()), "{sql}");
        }
        assert!(
            migration_refused("SELECT * FROM users")
                .starts_with("the statement names the table `users`")
        );
        // Each database's own statements, in its own text.
        let refused = |outcome: Result<(), String>, sql: &str| {
            outcome.err().unwrap_or_else(|| panic!("{sql} passed"))
        };
        let postgres = |sql| refused(check_migration("notes", "", sql), sql);
        let sqlite = |sql| refused(check_migration("notes", sql, ""), sql);
        for (sql, kind) in [
            (
                "CREATE FUNCTION plugin_notes_f() RETURNS INT AS 'SELECT 1' LANGUAGE SQL",
                "CREATE FUNCTION",
            ),
            ("CREATE EXTENSION dblink", "CREATE EXTENSION"),
            (
                "CREATE TRIGGER plugin_notes_t AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()",
                "CREATE TRIGGER",
            ),
            ("SET search_path = evil", "SET"),
        ] {
            assert_eq!(
                postgres(sql),
                format!("its PostgreSQL text: {kind} {only}"),
                "{sql}"
            );
        }
        for (sql, kind) in [
            ("PRAGMA foreign_keys = 0", "PRAGMA"),
            ("ATTACH DATABASE '/tmp/x' AS x", "ATTACH DATABASE"),
        ] {
            assert_eq!(
                sqlite(sql),
                format!("its SQLite text: {kind} {only}"),
                "{sql}"
            );
        }
        // The parser does not read SQLite's trigger bodies: what does not
        // parse is refused all the same.
        assert_eq!(
            sqlite(
                "CREATE TRIGGER plugin_notes_t AFTER INSERT ON users BEGIN DELETE FROM users; END"
            ),
            "its SQLite text: it does not parse as SQL (the app's log has the parser's message)"
        );
        for (sql, why) in [
            (
                "DROP VIEW plugin_notes_v",
                "DROP VIEW is refused in a migration (only tables and indexes of its own)",
            ),
            (
                "DROP TABLE plugin_notes_a CASCADE",
                "CASCADE is refused in a migration (it drops what other tables hold)",
            ),
            (
                "ALTER TABLE plugin_notes_a DROP COLUMN n CASCADE",
                "CASCADE is refused in a migration (it drops what other tables hold)",
            ),
            (
                "ALTER TABLE plugin_notes_a OWNER TO postgres",
                "`ALTER TABLE ... OWNER TO` is refused in a migration",
            ),
            (
                "CREATE TEMPORARY TABLE plugin_notes_t (id INTEGER)",
                "a temporary table is refused in a migration (it would outlive the migration \
                 on its connection)",
            ),
            (
                "CREATE TABLE plugin_notes_t (LIKE users)",
                "`CREATE TABLE ... LIKE`, `CLONE` or `INHERITS` is refused in a migration",
            ),
            (
                "CREATE TABLE plugin_notes_t (id INTEGER) INHERITS (users)",
                "`CREATE TABLE ... LIKE`, `CLONE` or `INHERITS` is refused in a migration",
            ),
            (
                "CREATE TABLE plugin_notes_t (u users)",
                "the column type `users` is refused in a migration (a name that is not a \
                 built-in type may be a table's row type)",
            ),
            (
                "ALTER TABLE plugin_notes_t ADD COLUMN u spaces[]",
                "the column type `spaces` is refused in a migration (a name that is not a \
                 built-in type may be a table's row type)",
            ),
            (
                "ALTER TABLE plugin_notes_t ALTER COLUMN u TYPE public.users",
                "the column type `public.users` is refused in a migration (a name that is not a \
                 built-in type may be a table's row type)",
            ),
        ] {
            assert_eq!(
                postgres(sql),
                format!("its PostgreSQL text: {why}"),
                "{sql}"
            );
        }
        assert_eq!(
            migration_refused("CREATE TABLE plugin_notes_a (id INTEGER); -- users"),
            "it contains a comment (`--` or `/*`), which is refused in a component's migration"
        );
        assert_eq!(
            migration_refused("CREATE TABLE plugin_notes_a (id INTEGER"),
            "it does not parse as SQL (the app's log has the parser's message)"
        );
    }

    /// sqlparser's SQLite dialect panics on `REGEXP` with nothing after it
    /// (sqlparser 0.59): an answer of "does not parse", not a panic out of
    /// the check. (`check` reads through the same `parse`; the statements
    /// that make this dialect panic fail the PostgreSQL one first.)
    #[test]
    fn a_statement_the_parser_panics_on_does_not_parse() {
        let choke = "CREATE TABLE plugin_notes_a (v TEXT CHECK (v REGEXP))";
        let fine = "CREATE TABLE plugin_notes_a (v TEXT)";
        assert_eq!(
            check_migration("notes", choke, fine).unwrap_err(),
            "its SQLite text: it does not parse as SQL (the app's log has the parser's message)"
        );
    }
}
