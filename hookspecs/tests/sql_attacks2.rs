//! Second adversarial pass on the sandbox's SQL check
//! (`hookspecs::sql::check` and `check_migration`, src/sql.rs), after its
//! lexical pre-check (src/sql/lexemes.rs) and its rule on string aliases.
//!
//! The first tests are statements the check passed while PostgreSQL did
//! what the check means to refuse; each asserts the statement is refused
//! and says what the database did and how that was confirmed. One is the
//! known limit README states (PostgreSQL's functional notation), kept
//! ignored with that reason. PostgreSQL runs were
//! made with psql on the local PostgreSQL 15.20, in a schema of their own
//! (`users (id, name, password)` and `plugin_notes_items (id, a, n, v)`,
//! dropped after), the hook statements as `PREPARE p AS <statement>;
//! EXECUTE p` (one prepared statement, as sqlx's `Any` driver runs a
//! component's `query`). SQLite runs were made with the SQLite 3.46.0 that
//! libsqlite3-sys 0.30.1 bundles (the app's), compiled into a small C
//! driver that prepares and steps each statement of the text in turn, as
//! sqlx does, inside `BEGIN`.
//!
//! The other tests are attacks of this pass that the check refuses (and
//! that sql_attacks.rs and the unit tests do not already try).

use hookspecs::sql::{Call, check, check_migration};

/// Whether `check` refuses `sql` for the plugin `notes`.
fn refuses(sql: &str, call: Call) -> bool {
    check(sql, "notes", call).is_err()
}

/// Whether a migration is refused with `sql` as its PostgreSQL text (its
/// SQLite text a no-op).
fn postgres_migration_refuses(sql: &str) -> bool {
    check_migration("notes", "SELECT 1", sql).is_err()
}

/// Whether a migration is refused with `sql` as its SQLite text (its
/// PostgreSQL text a no-op).
fn sqlite_migration_refuses(sql: &str) -> bool {
    check_migration("notes", sql, "SELECT 1").is_err()
}

// ---------------------------------------------------------------------
// Confirmed escapes (the check passes them)
// ---------------------------------------------------------------------

/// PostgreSQL's attribute notation: `x.f`, where `x` is a row (a table's
/// name or alias, a subquery's alias) and `f` is not one of its
/// columns, is the call `f(x)`. sqlparser reads `x.f` as a column
/// (`CompoundIdentifier`), which the walk allows, so the allow-list of
/// functions does not apply to any function callable with the row as its
/// only argument: those taking `record`, `anyelement`, `"any"`,
/// `anycompatible`, ... (pg_proc on PostgreSQL 15: `row_to_json`,
/// `to_json`, `to_jsonb`, `json_build_object`, `pg_typeof`,
/// `pg_column_size`, `pg_column_compression`, `pg_collation_for`,
/// `quote_literal`, `quote_nullable`, `num_nulls`, `num_nonnulls`,
/// `concat`, `record_out`, `record_send`, `hash_record`, ...).
///
/// Confirmed on PostgreSQL 15.20 (`PREPARE p AS SELECT x.row_to_json,
/// x.pg_typeof, x.pg_column_size, x.quote_literal FROM plugin_notes_items
/// x; EXECUTE p`): answered `{"id":1,"a":"x","n":1,"v":"v"}`,
/// `plugin_notes_items`, `38`, `'(1,x,1,v)'`. The other three statements
/// below answered likewise (`to_jsonb` of the row, `row_to_json` of the
/// subquery's row, `num_nulls` = 0), each prepared the same way. (A type name, `x.text` or
/// `x.regclass`, is refused by PostgreSQL 15: no casts this way.) On
/// SQLite these are unknown columns. Severity low: every such built-in
/// function is immutable or stable and reads only the plugin's own row
/// (`pg_column_size` and `pg_column_compression` tell its storage), but it
/// is a way around the allow-list that a future function (an extension's)
/// would widen. Fix: refuse a compound name (`x.f`) whose last part is the
/// name of such a function (the list from pg_proc: one argument, or one
/// without a default, of a polymorphic or `record` type), on PostgreSQL.
#[test]
#[ignore = "KNOWN LIMIT (README, the query API): on PostgreSQL `alias.to_json` and such are calls the check reads as columns"]
fn postgres_attribute_notation_calls_a_function_not_allowed() {
    for sql in [
        "SELECT x.row_to_json, x.pg_typeof, x.pg_column_size, x.quote_literal FROM plugin_notes_items x",
        "SELECT x.to_jsonb FROM plugin_notes_items AS x",
        "SELECT s.row_to_json FROM (SELECT a, n FROM plugin_notes_items) AS s",
        "SELECT plugin_notes_items.num_nulls FROM plugin_notes_items",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// The migration's rule "a column or cast of a type that is not built in
/// may be a table's row type" looks only at the types sqlparser does not
/// know (`DataType::Custom`). sqlparser knows many types of other
/// databases that PostgreSQL does not have; PostgreSQL looks each such
/// name up along `search_path` like any other, so a table of that name
/// would be the column's type. Passed by `check_migration` and unknown to
/// PostgreSQL 15 ("type ... does not exist"): `blob`, `clob`, `string`,
/// `datetime`, `bytes`, `nvarchar`, `signed`, `unsigned`, `binary`,
/// `varbinary`, `tinyint`, `mediumint`, `tinytext`, `mediumtext`,
/// `longtext`, `tinyblob`, `mediumblob`, `longblob`, `double`, `uint8`,
/// `int32`, `int64`, `int128`, `uint64`, `float32`, `float64`, `date32`,
/// `bignumeric`, `bigdecimal`, `fixedstring(n)`.
///
/// Confirmed on PostgreSQL 15.20 with psql (own schema, rolled back):
/// after `CREATE TABLE blob (id int, name text)` and `CREATE TABLE
/// tinyint (id int)`, `CREATE TABLE plugin_notes_a (c blob)` made a column
/// of `blob`'s row type; `CREATE TABLE plugin_notes_a (c TEXT DEFAULT
/// CAST(NULL AS blob))` and `ALTER TABLE plugin_notes_items ADD COLUMN b
/// tinyint` likewise; then `DROP TABLE blob` / `DROP TABLE tinyint` failed
/// with "cannot drop table ... because other objects depend on it". The
/// same tie the unit tests refuse for `users`. Severity low, latent: the
/// app has no table of those names today (users, spaces, memberships,
/// outbox_*), so it needs such a table (or type) to appear. Fix: on
/// PostgreSQL, allow a closed list of `DataType` variants that are
/// PostgreSQL's built-ins (and `NAMED_TYPES`), refuse every other variant,
/// not only `Custom`.
#[test]
fn postgres_type_names_of_other_databases_may_be_a_table_row_type() {
    for sql in [
        "CREATE TABLE plugin_notes_a (c blob)",
        "CREATE TABLE plugin_notes_a (c string)",
        "CREATE TABLE plugin_notes_a (c datetime)",
        "CREATE TABLE plugin_notes_a (c TEXT DEFAULT CAST(NULL AS blob))",
        "ALTER TABLE plugin_notes_items ADD COLUMN b tinyint",
        "ALTER TABLE plugin_notes_items ALTER COLUMN a TYPE blob USING NULL",
    ] {
        assert!(postgres_migration_refuses(sql), "{sql}");
    }
}

// ---------------------------------------------------------------------
// Attacks the check refuses
// ---------------------------------------------------------------------

/// SQLite starts a parameter at `:` only if a name character or a second
/// `::` pair follows; after a name, a number, a string or a `)`, `::name`
/// is an illegal token for it (3.46.0: "unrecognized token: ":""), so
/// `::` never opens a Tcl-style `(...)` parameter there. These hide a
/// subquery in a string sqlparser reads as a type modifier; a cast to a
/// type not built in is refused, `::::` does not parse. (`'a'::money(')
/// ... ')` with a built-in type passes, and is harmless: SQLite refuses
/// the token, PostgreSQL reads a typmod string, "type modifier is not
/// allowed for type money".)
#[test]
fn double_colon_after_a_word_does_not_open_a_sqlite_parameter() {
    for sql in [
        "SELECT n::a(') AS b, (SELECT password FROM users) AS c, n::a(') FROM plugin_notes_items",
        "SELECT n::::money(') AS b, (SELECT password FROM users) AS c, n::money(') FROM plugin_notes_items",
        "SELECT x::a(') FROM plugin_notes_items",
        "SELECT 'a'::b(') FROM plugin_notes_items",
        "SELECT (1)::b(') FROM plugin_notes_items",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// Numbers whose end the parsers and the databases could see apart: a
/// name glued to a number, a trailing `e`, `..`, a `.` before digits after
/// a name, a field access on a number.
#[test]
fn numbers_with_odd_ends_are_refused() {
    for sql in [
        "SELECT 1.e5users FROM plugin_notes_items",
        "SELECT 1.e FROM plugin_notes_items",
        "SELECT .e5 FROM plugin_notes_items",
        "SELECT 1 .e5 FROM plugin_notes_items",
        "SELECT 1..2 FROM plugin_notes_items",
        "SELECT 1.5.6 FROM plugin_notes_items",
        "SELECT a.5 FROM plugin_notes_items",
        "SELECT a.1e5 FROM plugin_notes_items",
        "SELECT n.1 FROM plugin_notes_items n",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// PostgreSQL's operators written of the allowed characters that
/// sqlparser reads otherwise or not at all (prefix roots and factorials,
/// inet containment, record comparison, named arguments, distance,
/// `ORDER BY ... USING`).
#[test]
fn postgres_multi_character_operators_are_refused() {
    for sql in [
        "SELECT |/ n FROM plugin_notes_items",
        "SELECT ||/ n FROM plugin_notes_items",
        "SELECT !! n FROM plugin_notes_items",
        "SELECT n ! FROM plugin_notes_items",
        "SELECT a ||| b FROM plugin_notes_items",
        "SELECT n <<= n FROM plugin_notes_items",
        "SELECT n *= n FROM plugin_notes_items",
        "SELECT n => n FROM plugin_notes_items",
        "SELECT n <-> n FROM plugin_notes_items",
        "SELECT n %> n FROM plugin_notes_items",
        "SELECT * FROM plugin_notes_items ORDER BY n USING <",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// PostgreSQL's keyword functions, called with or without parentheses in
/// SQL's own syntax, and a field access on a parenthesised row.
#[test]
fn postgres_keyword_functions_are_refused() {
    for sql in [
        "SELECT localtime FROM plugin_notes_items",
        "SELECT localtimestamp FROM plugin_notes_items",
        "SELECT current_date FROM plugin_notes_items",
        "SELECT current_time FROM plugin_notes_items",
        "SELECT collation for (a) FROM plugin_notes_items",
        "SELECT overlay(a placing 'b' from 1) FROM plugin_notes_items",
        "SELECT position('a' in a) FROM plugin_notes_items",
        "SELECT extract(year from a) FROM plugin_notes_items",
        "SELECT xmlelement(name a) FROM plugin_notes_items",
        "SELECT normalize(a) FROM plugin_notes_items",
        "SELECT greatest(1, 2) FROM plugin_notes_items",
        "SELECT a FROM plugin_notes_items WHERE a IS DOCUMENT",
        "SELECT (x).pg_sleep FROM plugin_notes_items x",
        "SELECT n FROM plugin_notes_items WHERE n IN (SELECT current_user)",
        "SELECT a IS NOT DISTINCT FROM current_user FROM plugin_notes_items",
        "SELECT a FROM plugin_notes_items GROUP BY ROLLUP (a)",
    ] {
        assert!(refuses(sql, Call::Query), "{sql}");
    }
}

/// SQLite reads a single-quoted string as a name where only a name fits;
/// sqlparser's SQLite dialect reads it as a quoted name too, so the walk
/// sees the table, in every place a migration's SQLite text could name it.
#[test]
fn sqlite_single_quoted_table_names_are_refused() {
    for sql in [
        "SELECT * FROM 'users'",
        "INSERT INTO plugin_notes_items (a) SELECT password FROM 'users'",
        "CREATE TABLE plugin_notes_a AS SELECT * FROM 'users'",
        "DELETE FROM 'users'",
        "UPDATE 'users' SET name = 'x'",
        "INSERT INTO 'users' (name) VALUES ('x')",
        "DROP TABLE 'users'",
        "ALTER TABLE 'users' ADD COLUMN x TEXT",
        "CREATE INDEX plugin_notes_i ON 'users' (name)",
        "ALTER TABLE plugin_notes_a RENAME TO 'users'",
        "DROP INDEX 'sqlite_autoindex_users_1'",
        "SELECT users.password FROM plugin_notes_items, 'users'",
        "SELECT 'users'.password FROM plugin_notes_items",
        "DELETE FROM plugin_notes_items WHERE a = (SELECT password FROM 'users')",
        "CREATE TABLE plugin_notes_a (x INTEGER, FOREIGN KEY (x) REFERENCES 'users' (id))",
        "SELECT * FROM plugin_notes_items AS x INDEXED BY 'users'",
    ] {
        assert!(sqlite_migration_refuses(sql), "{sql}");
    }
    assert!(refuses(
        "SELECT * FROM plugin_notes_items JOIN 'users' ON 1 = 1",
        Call::Query
    ));
}

/// Every spelling of SQLite's `ON CONFLICT ROLLBACK` in a column (after
/// any other constraint, in any case, in `ALTER TABLE ... ADD`), which
/// would let a later conflict end the operation's transaction.
#[test]
fn every_column_spelling_of_on_conflict_rollback_is_refused() {
    for sql in [
        "CREATE TABLE plugin_notes_t (id INTEGER PRIMARY KEY ASC ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK AUTOINCREMENT)",
        "CREATE TABLE plugin_notes_t (id INTEGER NOT NULL ON CONFLICT ROLLBACK DEFAULT 1)",
        "CREATE TABLE plugin_notes_t (id INTEGER CONSTRAINT plugin_notes_c UNIQUE ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER UNIQUE on conflict rollback)",
        "CREATE TABLE plugin_notes_t (id INTEGER NULL ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER, CONSTRAINT plugin_notes_c UNIQUE (id) ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK) WITHOUT ROWID",
        "CREATE TABLE plugin_notes_t (id INTEGER DEFAULT 1 ON CONFLICT ROLLBACK)",
        "CREATE TABLE plugin_notes_t (id INTEGER GENERATED ALWAYS AS (1) ON CONFLICT ROLLBACK)",
        "ALTER TABLE plugin_notes_t ADD COLUMN x INTEGER NOT NULL ON CONFLICT ROLLBACK DEFAULT 0",
        "ALTER TABLE plugin_notes_t ADD x INTEGER UNIQUE ON CONFLICT ROLLBACK",
    ] {
        assert!(sqlite_migration_refuses(sql), "{sql}");
    }
}

/// Constructs one database reads and the other parser does not, and a
/// write to another table through `UPDATE ... FROM`, `DELETE ... USING`
/// or a row assignment.
#[test]
fn other_forms_are_refused() {
    for (sql, call) in [
        (
            "SELECT a FROM plugin_notes_items WHERE a GLOB 'x'",
            Call::Query,
        ),
        (
            "SELECT a FROM plugin_notes_items WHERE a MATCH 'x'",
            Call::Query,
        ),
        (
            "SELECT * FROM plugin_notes_items WHERE a IN \"users\"",
            Call::Query,
        ),
        (
            "SELECT trim(leading from a) FROM plugin_notes_items",
            Call::Query,
        ),
        (
            "SELECT count(VARIADIC a) FROM plugin_notes_items",
            Call::Query,
        ),
        (
            "SELECT CAST(a AS setof int) FROM plugin_notes_items",
            Call::Query,
        ),
        (
            "SELECT CAST(a AS name) FROM plugin_notes_items",
            Call::Query,
        ),
        (
            "DELETE FROM plugin_notes_items WHERE CURRENT OF c",
            Call::Execute,
        ),
        (
            "REPLACE INTO plugin_notes_items (id) VALUES (1)",
            Call::Execute,
        ),
        (
            "UPDATE plugin_notes_items SET a = 1 FROM users",
            Call::Execute,
        ),
        ("DELETE FROM plugin_notes_items USING users", Call::Execute),
        (
            "UPDATE plugin_notes_items SET (a, n) = (SELECT name, id FROM users)",
            Call::Execute,
        ),
    ] {
        assert!(refuses(sql, call), "{sql}");
    }
}
