//! Adversarial tests of the sandbox's SQL check (`hookspecs::sql::check`
//! and `check_migration`, src/sql.rs): statements written to pass the
//! check while the database runs something else.
//!
//! The first tests are escapes that were confirmed against the real
//! databases (the check passed them until its lexical rule, src/sql/
//! lexemes.rs, and its rule on string aliases): each asserts the statement
//! is refused, and its doc comment says what the database ran and how
//! that was confirmed. SQLite runs were made
//! through sqlx's `Any` driver on the bundled SQLite 3.46.0 (in memory,
//! a `users` table beside `plugin_notes_items`, inside `BEGIN`), the way
//! the app runs a component's statement (`sqlx::query(sql).bind(..)
//! .fetch_all`) or migration (`sqlx::raw_sql(sql).execute`); PostgreSQL
//! runs likewise on the local PostgreSQL 15.20, in a schema of their own.
//!
//! The other tests are attacks tried that the check refuses and that the
//! unit tests in src/sql.rs do not already cover.

use hookspecs::sql::{Call, check, check_migration};

/// Whether `check` refuses `sql` for the plugin `notes`.
fn refuses(sql: &str, call: Call) -> bool {
    check(sql, "notes", call).is_err()
}

/// The statement the check refuses, with its message (panics naming the
/// statement if it passes).
fn refused(sql: &str, call: Call) -> String {
    match check(sql, "notes", call) {
        Err(error) => error.message,
        Ok(()) => panic!("the check passed: {sql}"),
    }
}

/// A migration refused on PostgreSQL (its SQLite text a no-op).
fn postgres_migration_refused(sql: &str) -> String {
    match check_migration("notes", "SELECT 1", sql) {
        Err(why) => why,
        Ok(()) => panic!("the check passed: {sql}"),
    }
}

/// A migration refused on SQLite (its PostgreSQL text a no-op).
fn sqlite_migration_refused(sql: &str) -> String {
    match check_migration("notes", sql, "SELECT 1") {
        Err(why) => why,
        Ok(()) => panic!("the check passed: {sql}"),
    }
}

// ---------------------------------------------------------------------
// Escapes once confirmed, now refused
// ---------------------------------------------------------------------

/// SQLite's tokenizer reads a parameter as `$`, `:`, `@` or `#`, then
/// identifier characters and `::`, then, Tcl-style, `(` and anything up to
/// the next `)` or white space: `$1::inet(')` is ONE token, a parameter
/// (sqlx binds `$1...` as parameter 1). Both of sqlparser's dialects read
/// `$1`, `::`, `inet`, `(` and a string `') AS a, ... $2::inet('`: a cast
/// to `inet` with a type modifier, which the check allows. So SQLite runs
/// as code what the check saw as a string:
///
/// `SELECT $1::inet(') AS a, (SELECT group_concat(name || password) FROM
/// users) AS b, $2::inet(') AS c FROM plugin_notes_items` answered, on
/// SQLite, the row `a = 7` (the bound parameter), `b = "alices3cret"` (the
/// `users` table), `c = NULL`. Other spellings of the same trick pass too:
/// `$1::ENUM(')` (confirmed through sqlx likewise) and `$1::money(')`
/// (confirmed with Python's sqlite3, SQLite 3.40). (`CAST($1 AS inet('))`
/// passes the check as well but is no escape: SQLite ends the parameter
/// at the space and fails on the string.) On PostgreSQL these fail (no
/// type modifier for `inet`): SQLite only.
#[test]
fn sqlite_tcl_parameter_hides_a_subquery_on_another_table() {
    for sql in [
        "SELECT $1::inet(') AS a, (SELECT group_concat(name || password) FROM users) AS b, $2::inet(') AS c FROM plugin_notes_items",
        "SELECT $1::ENUM(') AS x, (SELECT password FROM users) AS y, $1::ENUM(') FROM plugin_notes_items",
        "SELECT $1::money(') AS x, (SELECT password FROM users) AS y, $1::money(') FROM plugin_notes_items",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// The same SQLite parameter token, in `execute`: sqlx runs every
/// statement of the text on SQLite, so what the check saw as one string is
/// any number of statements. Confirmed on SQLite through sqlx:
/// `DELETE FROM plugin_notes_items WHERE id = $1::inet(');DELETE FROM
/// users;COMMIT;SELECT $2::inet(')` emptied `users` and committed the
/// operation's transaction (the app's own `COMMIT` then failed with "cannot
/// commit - no transaction is active"; every later statement of the
/// operation would autocommit). `...;COMMIT;VACUUM INTO char(47,116,...);
/// BEGIN;...` created a file at a path of the plugin's choosing (VACUUM
/// INTO writes a copy of the whole database there).
#[test]
fn sqlite_tcl_parameter_smuggles_statements_and_ends_the_transaction() {
    for sql in [
        "DELETE FROM plugin_notes_items WHERE id = $1::inet(');DELETE FROM users;COMMIT;SELECT $2::inet(')",
        "DELETE FROM plugin_notes_items WHERE id = $1::inet(');COMMIT;VACUUM INTO char(47,116,109,112,47,120);BEGIN;SELECT $2::inet(')",
    ] {
        assert!(refuses(sql, Call::Execute), "{sql}");
    }
}

/// A migration's SQLite text is read by sqlparser's SQLite dialect only,
/// then run with `sqlx::raw_sql` (every statement, no parameters bound, so
/// every named form works: `$a`, `:a`, `@a`). Confirmed on SQLite through
/// `sqlx::raw_sql`: `SELECT :a::inet(');DELETE FROM users;SELECT
/// :b::inet(')` and the `$1`/`$a` spellings emptied `users` (the `@a`
/// spelling with Python's sqlite3 `executescript`).
#[test]
fn sqlite_tcl_parameter_in_a_migration_runs_any_statement() {
    for sql in [
        "CREATE TABLE plugin_notes_a (id INTEGER);\nSELECT $1::inet(');DELETE FROM users;SELECT $2::inet(')",
        "SELECT $a::inet(');DELETE FROM users;SELECT $b::inet(')",
        "SELECT :a::inet(');DELETE FROM users;SELECT :b::inet(')",
        "SELECT @a::inet(');DELETE FROM users;SELECT @b::inet(')",
    ] {
        sqlite_migration_refused(sql);
    }
}

/// PostgreSQL takes any byte above 0x7F in a dollar quote's tag: `$€$`
/// opens a string that ends at the next `$€$`. sqlparser's PostgreSQL
/// dialect ends a tag at the first character that is not alphanumeric, so
/// it reads `$€$` as the parameter `$` followed by the identifier `€$`
/// (an alias). Its SQLite dialect reads `$` `€` `$` and would fail, so the
/// attack first puts that dialect inside a string: `E'\''` is a whole
/// escape string for PostgreSQL (and sqlparser's PostgreSQL dialect) but,
/// for the SQLite dialect, the column `E` and a string that `''` keeps
/// open, closed by the `'` of `$$',$$` (a dollar-quoted string for
/// PostgreSQL; `, $$` a parameter for the SQLite dialect). The check sees
/// constants and aliases; PostgreSQL runs the middle.
///
/// Confirmed on PostgreSQL 15 through sqlx's `Any` driver (a prepared
/// statement, as for a component's `query`): the first statement answered
/// `b = "s3cret"` from `users`; the second changed the session's
/// `search_path` (`set_config`) and slept half a second (`pg_sleep`).
#[test]
fn postgres_dollar_quote_tag_hides_a_subquery_and_calls() {
    for sql in [
        "SELECT E'\\'', $€$, $$ $€$ AS a, (SELECT max(password) FROM users) AS b, $€$ $$, $€$, $$',$$ FROM plugin_notes_items",
        "SELECT E'\\'', $€$, $$ $€$ AS a, set_config($q$search_path$q$, $q$pg_catalog$q$, false) AS b, pg_sleep(0.5) AS c, $€$ $$, $€$, $$',$$ FROM plugin_notes_items",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// The same dollar-quote tag, around a data-modifying common table
/// expression: PostgreSQL runs it whether or not the query reads it.
/// Confirmed on PostgreSQL 15 through sqlx (prepared, as `query`): `users`
/// was emptied.
#[test]
fn postgres_dollar_quote_tag_hides_a_write_to_another_table() {
    let sql = "WITH plugin_notes_w AS (SELECT E'\\'', $€$, $$ $€$ AS a), \
               d AS (DELETE FROM users RETURNING 1), \
               plugin_notes_v AS (SELECT 1 AS b, $€$ $$, $€$, $$',$$) \
               SELECT * FROM plugin_notes_w";
    assert!(refuses(sql, Call::Query));
}

/// A migration's PostgreSQL text is read by the PostgreSQL dialect only
/// and run with `sqlx::raw_sql` (the simple protocol: several statements).
/// `SELECT $€$, ' $€$; DELETE FROM users; SELECT $€$ ', $€$` is one
/// `SELECT` of a parameter, an alias, a string, a parameter and an alias
/// to the check; three statements to PostgreSQL. Confirmed on PostgreSQL
/// 15 through `sqlx::raw_sql` (3 statements ran, `users` emptied).
#[test]
fn postgres_dollar_quote_tag_in_a_migration_runs_any_statement() {
    postgres_migration_refused("SELECT $€$, ' $€$; DELETE FROM users; SELECT $€$ ', $€$");
}

/// PostgreSQL joins two string constants separated by white space with a
/// newline into one, the second read as the first is: after `E'a'`, a
/// newline and `'\'...`, the backslash escapes the quote and the string
/// goes on. sqlparser reads two constants (the second, `'\'`, an alias).
/// So in `SELECT E'a'\n'\', $$' AS c; DELETE FROM users; SELECT 1 AS x$$`
/// the check sees one `SELECT` (a string aliased `\`, then a dollar-quoted
/// string), PostgreSQL a string up to `$$'`, then `AS c; DELETE FROM
/// users; SELECT 1 AS x$$` (`x$$` an identifier). Confirmed on PostgreSQL
/// 15 through `sqlx::raw_sql`: `users` emptied. An escape independent of
/// the dollar-quote tags above (a fix must refuse both).
#[test]
fn postgres_string_continuation_in_a_migration_runs_any_statement() {
    postgres_migration_refused("SELECT E'a'\n'\\', $$' AS c; DELETE FROM users; SELECT 1 AS x$$");
}

/// PostgreSQL reads `name 'string'` as a constant of the type `name` (a
/// cast); sqlparser, for a type name it does not know (`regtype`,
/// `regproc`, `"regclass"`, a table's name), reads a column and a string
/// alias, so the check's refusal of casts to `regclass` and to types not
/// built in does not apply. Confirmed on PostgreSQL 15 through sqlx
/// (prepared): the first statement answered `t = "users"` (and failed,
/// "type "nosuch" does not exist", for a table that does not exist: an
/// oracle over the whole catalog: tables, types, functions, roles, in any
/// schema); `SELECT regproc 'pg_sleep'` and `SELECT users '(1,alice,x)'`
/// ran (their answers are of types the `Any` driver cannot decode, so the
/// component reads them through a cast in an outer query, as in the first
/// statement). Low: it reads the catalog, not rows.
#[test]
fn postgres_typed_constant_of_a_catalog_type_is_refused() {
    for sql in [
        "SELECT CAST(regtype AS TEXT) AS t FROM (SELECT regtype 'users') AS s",
        "SELECT regproc 'pg_sleep' FROM plugin_notes_items",
        "SELECT \"regclass\" 'users' FROM plugin_notes_items",
        "SELECT users '(1,alice,x)' FROM plugin_notes_items",
        "SELECT public.users '(1,alice,x)' FROM plugin_notes_items",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// The same typed constant in a migration's `CREATE TABLE ... AS SELECT`:
/// the new table's column is of `users`' row type, which the check refuses
/// when written as a column's type (README: "a column or cast of a type
/// that is not built in ... or of `regclass`"). Confirmed on PostgreSQL 15
/// through `sqlx::raw_sql`: after `CREATE TABLE plugin_notes_a AS SELECT
/// users '(1,alice,x)'`, `DROP TABLE users` fails with "cannot drop table
/// users because other objects depend on it" (the app's own migrations of
/// `users` would fail alike); `... AS SELECT "regclass" 'users'` made a
/// `regclass` column.
#[test]
fn postgres_typed_constant_makes_a_row_type_column_in_a_migration() {
    for sql in [
        "CREATE TABLE plugin_notes_a AS SELECT users '(1,alice,x)'",
        "CREATE TABLE plugin_notes_a AS SELECT public.users '(1)'",
        "CREATE TABLE plugin_notes_a AS SELECT \"regclass\" 'users'",
    ] {
        postgres_migration_refused(sql);
    }
}

// ---------------------------------------------------------------------
// Attacks the check refuses (not covered by src/sql.rs's own tests)
// ---------------------------------------------------------------------

/// Subqueries and calls in every clause the walk must reach: TABLESAMPLE's
/// arguments, a window's frame and partition, FILTER, LIMIT, RETURNING,
/// an upsert's SET and WHERE, LATERAL, a data-modifying WITH, a join in
/// parentheses and NATURAL.
#[test]
fn tables_and_calls_in_every_clause_are_refused() {
    for (sql, call) in [
        (
            "SELECT a FROM plugin_notes_items TABLESAMPLE BERNOULLI ((SELECT count(*) FROM users))",
            Call::Query,
        ),
        (
            "SELECT a FROM plugin_notes_items TABLESAMPLE BERNOULLI (pg_sleep(1))",
            Call::Query,
        ),
        (
            "SELECT a FROM plugin_notes_items TABLESAMPLE pg_sleep (10)",
            Call::Query,
        ),
        (
            "SELECT count(*) OVER (ORDER BY a ROWS BETWEEN (SELECT count(*) FROM users) PRECEDING AND CURRENT ROW) FROM plugin_notes_items",
            Call::Query,
        ),
        (
            "SELECT sum(n) OVER w FROM plugin_notes_items WINDOW w AS (PARTITION BY (SELECT password FROM users))",
            Call::Query,
        ),
        (
            "SELECT count(*) FILTER (WHERE a > (SELECT password FROM users)) FROM plugin_notes_items",
            Call::Query,
        ),
        (
            "SELECT a FROM plugin_notes_items LIMIT (SELECT count(*) FROM users)",
            Call::Query,
        ),
        (
            "INSERT INTO plugin_notes_items (id) VALUES (1) RETURNING (SELECT password FROM users)",
            Call::Query,
        ),
        (
            "INSERT INTO plugin_notes_items (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET a = (SELECT password FROM users)",
            Call::Execute,
        ),
        (
            "INSERT INTO plugin_notes_items (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 'x' WHERE EXISTS (SELECT 1 FROM users)",
            Call::Execute,
        ),
        (
            "SELECT * FROM plugin_notes_items i, LATERAL (SELECT * FROM users) u",
            Call::Query,
        ),
        (
            "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM plugin_notes_items",
            Call::Query,
        ),
        (
            "SELECT * FROM (plugin_notes_items JOIN users ON true)",
            Call::Query,
        ),
        (
            "SELECT * FROM plugin_notes_items NATURAL JOIN users",
            Call::Query,
        ),
        ("VALUES ((SELECT password FROM users))", Call::Query),
    ] {
        assert!(refuses(sql, call), "{sql}");
    }
}

/// Casts to the catalog's types, quoted or not, and `ROW`, `ANY`, and a
/// session function written after an alias.
#[test]
fn catalog_casts_and_disguised_calls_are_refused() {
    for sql in [
        "SELECT CAST('users' AS \"regclass\") FROM plugin_notes_items",
        "SELECT 'users'::regtype FROM plugin_notes_items",
        "SELECT CAST('16384' AS oid) FROM plugin_notes_items",
        "SELECT a::xml FROM plugin_notes_items",
        "SELECT ROW(1, 2) FROM plugin_notes_items",
        "SELECT * FROM plugin_notes_items WHERE a = ANY (SELECT password FROM users)",
        "SELECT x.current_user FROM plugin_notes_items x",
        "SELECT a FROM plugin_notes_items WHERE a REGEXP 'x'",
        "SELECT a FROM plugin_notes_items WHERE a SIMILAR TO 'x'",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// SQLite's parameter forms and quoting that one parser or the other
/// cannot read are refused: a Tcl-style parameter called like a function,
/// `[...]` and backticks (PostgreSQL's dialect), a quoted table name.
#[test]
fn forms_only_one_dialect_reads_are_refused() {
    for sql in [
        "SELECT @abs(') , 1 , @y(') FROM plugin_notes_items",
        "SELECT * FROM [plugin_notes_items]",
        "SELECT * FROM `plugin_notes_items`",
        "SELECT * FROM 'users'",
        "SELECT 1 FROM plugin_notes_items WHERE 1 IN users",
        "SELECT 1 FROM plugin_notes_items WHERE 1 IN json_each('[1]')",
        "SELECT * FROM plugin_notes_items INDEXED BY users",
        "SELECT * FROM plugin_notes_items WHERE a = E'\\\\x41'",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// A migration that would tie the plugin's table to another's, or reach
/// one, by a route the unit tests do not try.
#[test]
fn migrations_tying_or_reaching_other_tables_are_refused() {
    for sql in [
        "CREATE TABLE plugin_notes_a (u \"users\")",
        "CREATE TABLE plugin_notes_a (LIKE users INCLUDING ALL)",
        "CREATE TABLE plugin_notes_p PARTITION OF users FOR VALUES IN (1)",
        "CREATE TABLE plugin_notes_p OF users",
        "ALTER TABLE plugin_notes_a INHERIT users",
        "ALTER TABLE plugin_notes_a ATTACH PARTITION users FOR VALUES IN (1)",
        "ALTER TABLE plugin_notes_a SET SCHEMA public",
        "CREATE TABLE plugin_notes_a (id INT GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME users_id_seq))",
        "CREATE TABLE plugin_notes_a (x INT CHECK (x IN (SELECT id FROM users)))",
        "CREATE TABLE pg_temp.plugin_notes_t (x int)",
        "TRUNCATE users",
    ] {
        postgres_migration_refused(sql);
    }
    for sql in [
        "CREATE TABLE plugin_notes_a (x INTEGER REFERENCES 'users' (id))",
        "CREATE TABLE plugin_notes_a (x INTEGER, FOREIGN KEY (x) REFERENCES [users] (id))",
        "CREATE VIRTUAL TABLE plugin_notes_f USING fts5(x)",
    ] {
        sqlite_migration_refused(sql);
    }
}

/// SQLite's conflict clauses that roll the whole transaction back, at the
/// column (`NOT NULL`, `UNIQUE`, after a `CHECK`) and the table level.
#[test]
fn every_rollback_conflict_clause_is_refused_in_a_migration() {
    for sql in [
        "CREATE TABLE plugin_notes_t (id INTEGER NOT NULL ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER UNIQUE ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (x INTEGER CHECK (x > 0) ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER, UNIQUE (id) ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER, PRIMARY KEY (id) ON CONFLICT ROLLBACK)",
    ] {
        sqlite_migration_refused(sql);
    }
}

/// A table name quoted in another case is refused (the check compares the
/// name as the database folds it); an unquoted one in capitals is the
/// plugin's own.
#[test]
fn case_and_quoting_of_table_names() {
    assert!(
        refused("SELECT * FROM \"Plugin_notes_items\"", Call::Query)
            .starts_with("the statement names the table")
    );
    assert!(refuses(
        "SELECT * FROM \"plugin_notes_items\".\"x\"",
        Call::Query
    ));
    assert!(refuses("SELECT * FROM plugin_notes_items.x", Call::Query));
    assert!(refuses(
        "SELECT * FROM main.plugin_notes_items",
        Call::Query
    ));
    assert!(refuses(
        "SELECT * FROM temp.plugin_notes_items",
        Call::Query
    ));
    assert!(refuses("SELECT * FROM pg_catalog.pg_authid", Call::Query));
    assert_eq!(
        check("SELECT * FROM Plugin_Notes_Items", "notes", Call::Query).map_err(|e| e.message),
        Ok(())
    );
}
