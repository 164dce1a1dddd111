//! README's "Native or sandboxed?" (and its "Reload a component without a
//! restart"), claim by claim, at their edges: the limits of
//! `[plugins.<name>.sandbox]`, the query API's allow-list, outbound HTTP,
//! refused files, the cache, reloads and the load report. The guest is
//! tests/components/edges, a component written against the WIT package
//! that runs whatever SQL, request or fault a test asks of it, copied into
//! the plugin folder under the names a test needs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e_tests::receiver::Receiver;
use e2e_tests::*;
use serde_json::{Value, json};

/// Beyond a time limit, how late a 504 may come (the runtime's margin and
/// a loaded machine).
const LATE: Duration = Duration::from_millis(1500);

/// The edges guest, built once per test process.
fn edges() -> &'static PathBuf {
    static EDGES: OnceLock<PathBuf> = OnceLock::new();
    EDGES.get_or_init(|| build_component(&workspace().join("tests/components/edges"), "edges"))
}

/// The guest's `POST /plugins/<plugin>/<call>` (`query` or `execute`).
fn run(app: &TestApp, plugin: &str, call: &str, body: Value) -> Response {
    app.post(&format!("/plugins/{plugin}/{call}"), None, body)
}

/// `sql` with `params` through the guest's `call`.
fn sql(app: &TestApp, plugin: &str, call: &str, sql: &str, params: Value) -> Response {
    run(app, plugin, call, json!({"sql": sql, "params": params}))
}

/// The rows of a query that must succeed.
#[track_caller]
fn rows(app: &TestApp, plugin: &str, statement: &str, params: Value) -> Value {
    expect(200, sql(app, plugin, "query", statement, params))["rows"].clone()
}

/// `POST /api/admin/plugins/<name>/reload`.
fn reload(app: &TestApp, name: &str) -> Response {
    let path = format!("/api/admin/plugins/{name}/reload");
    app.raw("POST", &path, ADMIN, None)
}

/// The rest of the first log line holding `marker`, once there is one.
fn logged_after(app: &TestApp, marker: &str) -> String {
    app.proc.output.wait_for(marker, |out| out.contains(marker));
    let output = app.proc.output.text();
    let line = output.lines().find(|l| l.contains(marker)).unwrap();
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    // Without the fields the log writes after the message.
    rest.rfind(" plugin=\"")
        .map_or(rest, |end| &rest[..end])
        .to_owned()
}

/// A server on 127.0.0.1 answering every connection with `answer` as it
/// is (raw HTTP), after reading the request's head: its port and how many
/// requests it saw.
fn raw_server(answer: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            // The body too, so that closing never resets the connection.
            let length = String::from_utf8_lossy(&head)
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0usize);
            let mut body = vec![0u8; length];
            let _ = stream.read_exact(&mut body);
            let _ = stream.write_all(&answer);
            let _ = stream.flush();
        }
    });
    (port, hits)
}

/// `host:port` of `receiver`.
fn host_of(receiver: &Receiver) -> String {
    let rest = receiver.url.strip_prefix("http://").unwrap();
    rest[..rest.find('/').unwrap()].to_owned()
}

/// Limits: "`time_limit_ms = 1000   # per hook call ... (default 1000): a
/// busy loop is interrupted, the client gets a 504`" and "`memory_mib = 64
/// # an instance's memories and tables together (default 64): growing past
/// it traps`": a plugin without a `sandbox` table has exactly these.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn without_a_sandbox_table_a_component_gets_1000_ms_and_64_mib() {
    let folder = component_folder(edges(), &["lim"]);
    let app = launch_real(
        Backend::Sqlite,
        folder.path(),
        "[plugins.lim]\nnote = \"x\"\n",
    );
    assert_eq!(plugin_status(&app, "lim"), "loaded");
    let started = Instant::now();
    let error = expect_error(504, "hook_timeout", app.get("/plugins/lim/spin", None));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "a 504 before the default limit: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1000) + LATE,
        "a 504 after {took:?}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("time limit of 1000 ms"),
        "{error}"
    );
    // 48 MiB fits under 64; 70 does not, and only that request fails.
    assert_eq!(
        expect(200, app.get("/plugins/lim/hoard/48", None))["kept_mib"],
        48
    );
    let error = expect_error(500, "hook_failed", app.get("/plugins/lim/hoard/70", None));
    let line = logged_500(&app, &error);
    assert!(
        line.contains("it reached its memory cap of 64 MiB"),
        "{line}"
    );
    assert_eq!(
        expect(200, app.get("/plugins/lim/hoard/1", None))["kept_mib"],
        1
    );
}

/// "`config`: The plugin's `[plugins.<name>]` table (without its `sandbox`
/// limits), as JSON" (hookspecs/wit/plugin.wit), and README: "its own
/// configuration (`ctx.plugin_config("<its name>")`, no other plugin's)":
/// neither its granted hosts nor another plugin's table reach it.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_reads_its_own_table_without_its_sandbox_limits() {
    let folder = component_folder(edges(), &["cfg", "nosy"]);
    let config = "[plugins.cfg]\ngreeting = \"hi\"\nlevel = 3\n\n[plugins.cfg.sandbox]\n\
                  time_limit_ms = 900\nhosts = [\"secret.internal:9\"]\n\n\
                  [plugins.nosy]\nmine = true\n";
    let app = launch_real(Backend::Sqlite, folder.path(), config);
    let seen = expect(200, app.get("/plugins/cfg/config", None));
    assert_eq!(seen, json!({"greeting": "hi", "level": 3}));
    assert_eq!(
        expect(200, app.get("/plugins/nosy/config", None)),
        json!({"mine": true})
    );
}

/// "Limits per plugin, under `[plugins.<name>.sandbox]`" with their
/// defaults and bounds (`warm_instances ... (default 4; 0: a fresh instance
/// per call)`, hosts "host or host:port"): a wrong value there fails that
/// plugin only, with the reason in its entry ("the app starts with the
/// others"), and the edges of each bound load.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_wrong_sandbox_value_fails_its_plugin_only_and_the_bounds_load() {
    let bad: &[(&str, &str, &str)] = &[
        ("zerotime", "time_limit_ms = 0", "must be above 0"),
        ("zeromem", "memory_mib = 0", "must be above 0"),
        ("negtime", "time_limit_ms = -5", "invalid value"),
        ("texttime", "time_limit_ms = \"1000\"", "invalid type"),
        ("floatmem", "memory_mib = 1.5", "invalid type"),
        ("manywarm", "warm_instances = 65", "at most 64"),
        ("typo", "time_limit = 50", "unknown field `time_limit`"),
        (
            "schemehost",
            "hosts = [\"http://example.com\"]",
            "is not a host or host:port",
        ),
        (
            "pathhost",
            "hosts = [\"example.com/hook\"]",
            "is not a host or host:port",
        ),
        (
            "userhost",
            "hosts = [\"u@example.com\"]",
            "is not a host or host:port",
        ),
        ("emptyhost", "hosts = [\"\"]", "is not a host or host:port"),
    ];
    let good: &[(&str, &str)] = &[
        ("maxwarm", "warm_instances = 64"),
        ("nowarm", "warm_instances = 0"),
        (
            "hosts",
            "hosts = [\"example.com\", \"127.0.0.1:8080\", \"[::1]:9000\"]",
        ),
    ];
    let mut names: Vec<&str> = bad.iter().map(|b| b.0).collect();
    names.extend(good.iter().map(|g| g.0));
    names.push("plain");
    let folder = component_folder(edges(), &names);
    let mut config = String::new();
    for (name, line) in bad.iter().map(|b| (b.0, b.1)).chain(good.iter().copied()) {
        config += &format!("[plugins.{name}.sandbox]\n{line}\n\n");
    }
    let app = launch_real(Backend::Sqlite, folder.path(), &config);
    for (name, _, why) in bad {
        let status = plugin_status(&app, name);
        assert!(
            status.starts_with("failed: ") && status.contains("sandbox]") && status.contains(why),
            "{name}: {status}"
        );
    }
    for name in ["maxwarm", "nowarm", "hosts", "plain"] {
        assert_eq!(plugin_status(&app, name), "loaded", "{name}");
        expect(200, app.get(&format!("/plugins/{name}/config"), None));
    }
    app.create_user("alice");
}

/// What a refused statement looks like.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// 403 `sql_refused` naming this table.
    Table(&'static str),
    /// 403 `sql_refused` saying this.
    Says(&'static str),
    /// 400 or 403, whichever comes first.
    Either,
}

e2e! {
    /// "Its every table (joins, subqueries and a `WITH` name included) must
    /// be `plugin_<name>_*` without a schema ... Anything else is refused
    /// with a 403 naming the table, function or construct", with "a
    /// comment (`--`, `/*` ...), `SELECT ... INTO`, `TABLE name`, `FOR
    /// UPDATE`, `WITH RECURSIVE`", functions outside the list, and one
    /// statement a call: each way around the prefix is refused before it
    /// reaches the database, which is left as it was.
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn sql_reaching_past_its_own_tables_is_refused_before_the_database(backend) {
        use Refusal::*;
        let folder = component_folder(edges(), &["sq"]);
        let app = launch_real(backend, folder.path(), "");
        assert_eq!(plugin_status(&app, "sq"), "loaded");
        app.create_user("victim");
        expect(200, sql(&app, "sq", "execute", "INSERT INTO plugin_sq_items (id, v) VALUES (1, 'a')", json!([])));
        let tables = |app: &TestApp| match backend {
            Backend::Sqlite => app.db.column("SELECT name FROM sqlite_master ORDER BY name"),
            Backend::Postgres => app.db.column(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY 1",
            ),
        };
        let before = tables(&app);
        let one = "one statement at a time";
        let not_own = "which is not one of the plugin's own (plugin_sq_*)";
        let cases: &[(&str, &str, Refusal)] = &[
            ("query", "SELECT * FROM users", Table("users")),
            ("query", "WITH plugin_sq_x AS (SELECT * FROM users) SELECT * FROM plugin_sq_x", Table("users")),
            ("query", "WITH users AS (SELECT * FROM plugin_sq_items) SELECT * FROM users", Table("users")),
            ("query", "WITH t AS (SELECT * FROM plugin_sq_items) SELECT * FROM t", Table("t")),
            ("query", "SELECT * FROM plugin_sq_items WHERE id IN (SELECT id FROM users)", Table("users")),
            ("query", "SELECT (SELECT COUNT(*) FROM users) AS n FROM plugin_sq_items", Table("users")),
            ("query", "SELECT * FROM plugin_sq_items WHERE EXISTS (SELECT 1 FROM users)", Table("users")),
            ("query", "SELECT * FROM plugin_sq_items UNION SELECT id, username FROM users", Table("users")),
            ("query", "SELECT * FROM plugin_sq_items NATURAL JOIN users", Table("users")),
            ("query", "SELECT * FROM plugin_sq_items AS i, (SELECT * FROM users) AS u", Table("users")),
            ("query", "SELECT * FROM main.plugin_sq_items", Table("main.plugin_sq_items")),
            ("query", "SELECT * FROM temp.plugin_sq_items", Table("temp.plugin_sq_items")),
            ("query", "SELECT * FROM public.plugin_sq_items", Table("public.plugin_sq_items")),
            ("query", "SELECT * FROM \"users\"", Table("\"users\"")),
            ("query", "SELECT * FROM \"main\".\"users\"", Table("\"main\".\"users\"")),
            ("query", "SELECT * FROM \"PLUGIN_SQ_ITEMS\"", Table("\"PLUGIN_SQ_ITEMS\"")),
            ("query", "SELECT * FROM `users`", Says("'`' outside a string or a quoted name")),
            ("query", "SELECT * FROM [users]", Says("'[' outside a string or a quoted name")),
            ("query", "SELECT name FROM sqlite_master", Table("sqlite_master")),
            ("query", "SELECT name FROM sqlite_schema", Table("sqlite_schema")),
            ("query", "SELECT name FROM sqlite_temp_master", Table("sqlite_temp_master")),
            ("query", "SELECT tablename FROM pg_catalog.pg_tables", Table("pg_catalog.pg_tables")),
            ("query", "SELECT tablename FROM pg_tables", Table("pg_tables")),
            ("query", "SELECT table_name FROM information_schema.tables", Table("information_schema.tables")),
            ("query", "SELECT * FROM pragma_table_info('users')", Says("as a table")),
            ("query", "SELECT * FROM pragma_table_list", Table("pragma_table_list")),
            ("query", "SELECT * FROM json_each('[1]')", Says("as a table")),
            ("query", "SELECT * FROM generate_series(1, 3)", Says("as a table")),
            ("query", "SELECT * FROM plugin_sq_items; SELECT * FROM users", Says(one)),
            ("query", "SELECT * FROM plugin_sq_items; DELETE FROM users", Says(one)),
            ("execute", "DELETE FROM plugin_sq_items; DROP TABLE users", Says(one)),
            ("query", "SELECT * FROM plugin_sq_items -- , users", Says("comment")),
            ("query", "SELECT * FROM plugin_sq_items /* , users */", Says("comment")),
            ("query", "SELECT * FROM plugin_sq_items WHERE v = '--'", Says("comment")),
            ("execute", "PRAGMA writable_schema = 1", Either),
            ("query", "PRAGMA table_info(users)", Either),
            ("execute", "ATTACH DATABASE 'other.db' AS other", Either),
            ("execute", "DETACH DATABASE other", Either),
            ("execute", "CREATE VIEW plugin_sq_v AS SELECT * FROM users", Says("only SELECT, INSERT, UPDATE and DELETE")),
            ("execute", "CREATE TABLE plugin_sq_new (id INTEGER)", Says("only SELECT, INSERT, UPDATE and DELETE")),
            ("execute", "CREATE TRIGGER plugin_sq_t AFTER INSERT ON plugin_sq_items BEGIN DELETE FROM users; END", Either),
            ("execute", "DROP TABLE plugin_sq_other", Says("only SELECT, INSERT, UPDATE and DELETE")),
            ("execute", "VACUUM", Either),
            ("execute", "SET search_path TO other", Either),
            ("query", "WITH RECURSIVE plugin_sq_r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM plugin_sq_r) SELECT n FROM plugin_sq_r", Says("`WITH RECURSIVE` is refused")),
            ("query", "SELECT * INTO plugin_sq_copy FROM plugin_sq_items", Either),
            ("query", "TABLE users", Either),
            ("query", "SELECT * FROM plugin_sq_items FOR UPDATE", Either),
            ("query", "SELECT sqlite_version() AS v FROM plugin_sq_items", Says("the function `sqlite_version`")),
            ("query", "SELECT load_extension('x') AS v FROM plugin_sq_items", Says("the function `load_extension`")),
            ("query", "SELECT pg_sleep(5) AS v FROM plugin_sq_items", Says("the function `pg_sleep`")),
            ("query", "SELECT set_config('search_path', 'x', false) AS v FROM plugin_sq_items", Says("the function `set_config`")),
            ("query", "SELECT query_to_xml('select * from users', true, false, '') AS x FROM plugin_sq_items", Says("the function `query_to_xml`")),
            ("query", "SELECT pg_catalog.lower(v) AS v FROM plugin_sq_items", Says("the function `pg_catalog.lower`")),
            ("query", "SELECT randomblob(1000000000) AS v FROM plugin_sq_items", Says("the function `randomblob`")),
            ("query", "SELECT $$ FROM users $$ AS x FROM plugin_sq_items", Either),
            ("execute", "UPDATE plugin_sq_items SET v = 'x' FROM users WHERE users.id = plugin_sq_items.id", Table("users")),
            ("execute", "DELETE FROM plugin_sq_items WHERE id IN (SELECT id FROM users)", Table("users")),
            ("execute", "INSERT INTO plugin_sq_items (id, v) SELECT id, username FROM users", Table("users")),
            ("execute", "INSERT INTO plugin_sq_items (id, v) VALUES (9, 'a') ON CONFLICT (id) DO UPDATE SET v = (SELECT username FROM users)", Table("users")),
            ("execute", "INSERT INTO users (username, email) VALUES ('x', 'x@example.org')", Table("users")),
            ("execute", "UPDATE users SET username = 'pwned'", Table("users")),
            ("execute", "DELETE FROM users", Table("users")),
        ];
        let mut wrong = Vec::new();
        for (call, statement, refusal) in cases {
            let (status, body) = sql(&app, "sq", call, statement, json!([]));
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let message = body["error"]["message"].as_str().unwrap_or_default();
            let fine = match refusal {
                Table(table) => {
                    status == 403 && code == "sql_refused"
                        && message.contains(&format!("the table `{table}`, {not_own}"))
                }
                Says(what) => status == 403 && code == "sql_refused" && message.contains(what),
                Either => (status == 403 && code == "sql_refused") || (status == 400 && code == "bad_sql"),
            };
            if !fine || body.to_string().contains("victim") {
                wrong.push(format!("{call} {statement:?}: expected {refusal:?}, got {status} {body}"));
            }
        }
        assert!(wrong.is_empty(), "{} of {} answered otherwise:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
        assert_eq!(app.db.column("SELECT username FROM users"), ["victim"]);
        assert_eq!(tables(&app), before, "no table made or dropped");
        assert_eq!(rows(&app, "sq", "SELECT id, v FROM plugin_sq_items", json!([])), json!([{"id": 1, "v": "a"}]));
    }

    /// "it may use columns, values, `$n` parameters, operators, `CASE`,
    /// `CAST`, `IN`, `BETWEEN`, `LIKE`, `EXISTS`, `IS ...`, subqueries and
    /// only the functions `count sum min max avg coalesce nullif lower
    /// upper length abs round substr substring trim replace`"; "`query`
    /// takes one `SELECT` (or an `INSERT`, `UPDATE` or `DELETE` with
    /// `RETURNING`), `execute` one `INSERT`, `UPDATE` or `DELETE` without
    /// `RETURNING` (the other kind is a 400 naming the call to use)"; "A
    /// failure of the database reaches the component as a fixed message".
    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn sql_on_its_own_tables_runs_with_every_allowed_construct(backend) {
        let folder = component_folder(edges(), &["own"]);
        let app = launch_real(backend, folder.path(), "");
        let insert = "INSERT INTO plugin_own_items (id, v) VALUES ($1, $2)";
        for (id, v) in [(1, "a"), (2, "b"), (3, "c")] {
            assert_eq!(expect(200, sql(&app, "own", "execute", insert, json!([id, v])))["changed"], 1);
        }
        expect(200, sql(&app, "own", "execute", "INSERT INTO \"plugin_own_other\" (id, w) VALUES (1, 'x')", json!([])));
        assert_eq!(
            rows(&app, "own", "SELECT i.v, o.w FROM plugin_own_items AS i JOIN plugin_own_other AS o ON o.id = i.id", json!([])),
            json!([{"v": "a", "w": "x"}])
        );
        assert_eq!(
            rows(&app, "own", "WITH plugin_own_recent AS (SELECT id FROM plugin_own_items WHERE id > $1) \
                 SELECT COUNT(*) AS n FROM plugin_own_recent", json!([1])),
            json!([{"n": 2}])
        );
        let mixed = "SELECT UPPER(v) AS u, CASE WHEN id BETWEEN 1 AND 1 THEN 'one' ELSE 'more' END AS k, \
                     CAST(id AS TEXT) AS t, COALESCE(NULLIF(v, 'b'), 'none') AS c, LENGTH(TRIM(v)) AS l, \
                     SUBSTR(REPLACE(v, 'c', 'cc'), 1, 2) AS s, LOWER(v) AS lo, ABS(0 - id) AS a \
                     FROM PLUGIN_OWN_ITEMS WHERE v LIKE '%' AND v IS NOT NULL AND id IN (1, 2, 3) \
                     AND EXISTS (SELECT 1 FROM plugin_own_other) \
                     AND id NOT IN (SELECT id + 10 FROM plugin_own_other) ORDER BY id";
        assert_eq!(
            rows(&app, "own", mixed, json!([])),
            json!([
                {"u": "A", "k": "one", "t": "1", "c": "a", "l": 1, "s": "a", "lo": "a", "a": 1},
                {"u": "B", "k": "more", "t": "2", "c": "none", "l": 1, "s": "b", "lo": "b", "a": 2},
                {"u": "C", "k": "more", "t": "3", "c": "c", "l": 1, "s": "cc", "lo": "c", "a": 3},
            ])
        );
        assert_eq!(
            rows(&app, "own", "SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(*) AS n FROM plugin_own_items", json!([])),
            json!([{"lo": 1, "hi": 3, "n": 3}])
        );
        assert_eq!(
            rows(&app, "own", "UPDATE plugin_own_items SET v = $1 WHERE id = 2 RETURNING id, v", json!(["B"])),
            json!([{"id": 2, "v": "B"}])
        );
        assert_eq!(
            rows(&app, "own", "DELETE FROM plugin_own_items WHERE id = 3 RETURNING id", json!([])),
            json!([{"id": 3}])
        );
        assert_eq!(
            rows(&app, "own", "INSERT INTO plugin_own_items (id, v) VALUES (4, 'd') RETURNING v", json!([])),
            json!([{"v": "d"}])
        );
        // The other call's kind: a 400 naming the call to use.
        let error = expect_error(400, "wrong_call", sql(&app, "own", "query", insert, json!([5, "e"])));
        assert!(error["message"].as_str().unwrap().contains("run it with `execute`"), "{error}");
        let error = expect_error(400, "wrong_call", sql(&app, "own", "execute", "SELECT id FROM plugin_own_items", json!([])));
        assert!(error["message"].as_str().unwrap().contains("run it with `query`"), "{error}");
        let error = expect_error(400, "wrong_call", sql(&app, "own", "execute", "DELETE FROM plugin_own_items WHERE id = 4 RETURNING id", json!([])));
        assert!(error["message"].as_str().unwrap().contains("run it with `query`"), "{error}");
        // The database's failure: a fixed message, the detail in the log.
        let (status, body) = sql(&app, "own", "query", "SELECT nosuchcol FROM plugin_own_items", json!([]));
        assert_eq!(status, 500, "{body}");
        assert!(!body.to_string().contains("nosuchcol"), "{body}");
        let line = logged_500(&app, &body["error"]);
        assert!(line.contains("the statement failed; the app's log has the detail"), "{line}");
        let detail = logged_after(&app, "a component's statement failed: ");
        assert!(detail.contains("nosuchcol"), "{detail}");
        assert_eq!(
            rows(&app, "own", "SELECT id FROM plugin_own_items ORDER BY id", json!([])),
            json!([{"id": 1}, {"id": 2}, {"id": 4}])
        );
    }
}

/// "A statement over 64 KiB or parameters over 1 MiB are a 413": exactly
/// 64 KiB of SQL and exactly 1 MiB of parameter text run, one byte more is
/// refused.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn the_size_caps_of_a_statement_are_exact() {
    let folder = component_folder(edges(), &["big"]);
    let app = launch_real(Backend::Sqlite, folder.path(), "");
    let count = "SELECT COUNT(*) AS n FROM plugin_big_items";
    let at = |bytes: usize| {
        run(
            &app,
            "big",
            "query",
            json!({"sql": count, "sql_bytes": bytes}),
        )
    };
    assert_eq!(expect(200, at(64 * 1024))["rows"], json!([{"n": 0}]));
    let error = expect_error(413, "payload_too_large", at(64 * 1024 + 1));
    assert!(
        error["message"].as_str().unwrap().contains("the statement"),
        "{error}"
    );
    let compare = "SELECT COUNT(*) AS n FROM plugin_big_items WHERE v = $1";
    let with = |bytes: usize| {
        run(
            &app,
            "big",
            "query",
            json!({"sql": compare, "param_bytes": bytes}),
        )
    };
    assert_eq!(expect(200, with(1 << 20))["rows"], json!([{"n": 0}]));
    let error = expect_error(413, "payload_too_large", with((1 << 20) + 1));
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("parameter text"),
        "{error}"
    );
}

/// "In a component it is allowed only in an after-commit hook ... and only
/// to a host the operator lists for that plugin": "The URL's `host[:port]`
/// must equal one of them (`example.com` does not grant
/// `example.com:8443` ...)"; "a `Host` header, a non-HTTP URL or a URL
/// with a user, a 400"; "Bodies are at most 1 MiB each way (413 for the
/// request; 502 naming the cap for an answer over it). A redirect is the
/// answer, never followed."
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn outbound_http_reaches_a_granted_host_exactly_and_nothing_else() {
    let granted = Receiver::start();
    let portless = Receiver::start();
    let g = host_of(&granted);
    let p = host_of(&portless);
    let (redirector, redirects) = raw_server(
        format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{g}/followed\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .into_bytes(),
    );
    let mut big =
        b"HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\nConnection: close\r\n\r\n".to_vec();
    big.extend(vec![b'y'; (1 << 20) + 1]);
    let (bigger, _) = raw_server(big);
    let sends = [
        json!(format!("http://{g}/a")),
        json!(format!("http://{p}/b")),
        json!(format!(
            "http://localhost:{}/c",
            g.rsplit(':').next().unwrap()
        )),
        json!({"url": format!("http://{g}/d"), "headers": [["Host", p.clone()]]}),
        json!(format!("http://user@{g}/e")),
        json!(format!("ftp://{g}/f")),
        json!({"url": format!("http://{g}/g"), "body_bytes": 1 << 20}),
        json!({"url": format!("http://{g}/h"), "body_bytes": (1 << 20) + 1}),
        json!(format!("http://127.0.0.1:{redirector}/r")),
        json!(format!("http://127.0.0.1:{bigger}/big")),
    ];
    let config = format!(
        "[plugins.out]\nsends = {}\n\n[plugins.out.sandbox]\ntime_limit_ms = 8000\n\
         hosts = [\"{g}\", \"127.0.0.1\", \"127.0.0.1:{redirector}\", \"127.0.0.1:{bigger}\"]\n",
        toml(&json!(sends))
    );
    let folder = component_folder(edges(), &["out"]);
    let app = launch_real(Backend::Sqlite, folder.path(), &config);
    assert_eq!(plugin_status(&app, "out"), "loaded");
    app.create_user("ada");
    let line = |i: usize| logged_after(&app, &format!("send {i}: "));
    let not_granted = |host: &str| {
        format!(
            "refused 403 forbidden: outbound HTTP to {host} is not granted: list it in [plugins.out.sandbox] hosts"
        )
    };
    assert!(line(0).starts_with("answered 200"), "{}", line(0));
    assert_eq!(line(1), not_granted(&p));
    assert_eq!(
        line(2),
        not_granted(&format!("localhost:{}", g.rsplit(':').next().unwrap()))
    );
    for i in [3, 4, 5] {
        assert!(
            line(i).starts_with("refused 400 bad_request: "),
            "send {i}: {}",
            line(i)
        );
    }
    assert!(line(6).starts_with("answered 200"), "{}", line(6));
    assert!(
        line(7).starts_with("refused 413 payload_too_large: "),
        "{}",
        line(7)
    );
    assert!(
        line(8).starts_with("answered 302 with 0 bytes"),
        "{}",
        line(8)
    );
    let over = line(9);
    assert!(
        over.starts_with("refused 502 ") && over.contains("1 MiB"),
        "{over}"
    );
    // The granted receiver got sends 0 and 6 only: no redirect followed,
    // nothing refused sent; the other receiver got nothing.
    let got = granted.received();
    let sizes: Vec<usize> = got.iter().map(|r| r.body.len()).collect();
    assert_eq!(sizes, [2, 1 << 20], "{got:?}");
    assert_eq!(portless.received().len(), 0);
    assert_eq!(redirects.load(Ordering::SeqCst), 1);
}

/// "from an in-transaction hook, `authenticate`, `authorize` or `describe`,
/// a 403 `outbound HTTP is allowed only in an after-commit hook (after_*,
/// after_change)`" — "Anything else is refused before a byte is sent":
/// `authenticate`, `describe` and a route's handler send nothing, even to a
/// granted host.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn outbound_http_outside_an_after_commit_hook_is_refused_before_a_byte_is_sent() {
    let receiver = Receiver::start();
    let host = host_of(&receiver);
    let config = format!(
        "[plugins.early]\nurl = \"{}\"\ndescribe_send = true\n\n[plugins.early.sandbox]\nhosts = [\"{host}\"]\n",
        receiver.url
    );
    let folder = component_folder(edges(), &["early"]);
    let app = launch_real(Backend::Sqlite, folder.path(), &config);
    assert_eq!(plugin_status(&app, "early"), "loaded");
    let only_after =
        "outbound HTTP is allowed only in an after-commit hook (after_*, after_change): ";
    let described = logged_after(&app, "describe send: ");
    assert!(
        described.starts_with(&format!("refused 403 forbidden: {only_after}")),
        "{described}"
    );
    let error = expect_error(403, "forbidden", app.get("/api/users", Some("send-now")));
    assert_eq!(
        error["message"],
        format!("{only_after}`authenticate` runs inside the operation's transaction")
    );
    let error = expect_error(403, "forbidden", app.get("/plugins/early/send", None));
    assert!(
        error["message"].as_str().unwrap().starts_with(only_after),
        "{error}"
    );
    let error = expect_error(
        403,
        "forbidden",
        app.post(
            "/api/users",
            ADMIN,
            json!({"username": "inside-x", "email": "x@example.org"}),
        ),
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("`on_user_created` runs inside"),
        "{error}"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    assert_eq!(receiver.received().len(), 0, "nothing was sent");
}

/// "A file that is not a component, is truncated, exports no
/// `app:plugin/guest` interface, was built for another major version of it
/// (the message names both versions) ... is refused with the reason; the
/// app starts with the others", and "A component may not be named so that
/// its name followed by `_` begins another plugin's name ...: it is refused
/// at load, naming both."
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn bad_files_and_a_prefix_name_are_refused_and_the_others_start() {
    let folder = component_folder(edges(), &["good", "good_log", "tab", "tab_le"]);
    let whole = std::fs::read(edges()).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(folder.path().join(format!("app_plugin_{name}.wasm")), bytes).unwrap()
    };
    write("empty", b"");
    // A component's preamble (layer 1) and nothing else.
    write("bare", b"\0asm\x0d\0\x01\0");
    let mut trailing = whole.clone();
    trailing.extend(b"\x7fgarbage after the last section");
    write("trailing", &trailing);
    write("cut", &whole[..whole.len() - 1]);
    // The guest as if built for major version 0 of the interface: its
    // export names say `guest@0.3.0` (same length, same structure).
    let ours = app::plugins::component::wit::VERSION;
    let needle = format!("app:plugin/guest@{ours}");
    let zero = needle.replace(&format!("@{ours}"), &format!("@0{}", &ours[1..]));
    let mut old = whole.clone();
    let mut replaced = 0;
    let mut at = 0;
    while let Some(i) = old[at..]
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    {
        old[at + i..at + i + needle.len()].copy_from_slice(zero.as_bytes());
        replaced += 1;
        at += i + needle.len();
    }
    assert!(replaced > 0, "the guest names {needle}");
    write("zero", &old);
    std::fs::create_dir(folder.path().join("app_plugin_dir.wasm")).unwrap();
    let app = launch_real(Backend::Sqlite, folder.path(), "");
    let status = plugin_status(&app, "bare");
    assert!(
        status.starts_with("failed: not an app plugin: it exports no `app:plugin/guest@"),
        "bare: {status}"
    );
    for name in ["empty", "trailing", "cut"] {
        let status = plugin_status(&app, name);
        assert!(
            status.starts_with("failed: not a valid WebAssembly component"),
            "{name}: {status}"
        );
    }
    let status = plugin_status(&app, "zero");
    let expected = format!(
        "failed: built for version 0{} of the plugin interface, but the app provides {ours}",
        &ours[1..]
    );
    assert!(status.starts_with(&expected), "{status}");
    for (short, long) in [("good", "good_log"), ("tab", "tab_le")] {
        let status = plugin_status(&app, short);
        assert!(
            status.starts_with("failed: ") && status.contains(&format!("`{long}`")),
            "{short}: {status}"
        );
        assert_eq!(plugin_status(&app, long), "loaded");
    }
    app.create_user("alice");
}

/// Mode bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// "Compiled machine code is cached in `component-cache/` beside the app's
/// binary ...: a second start does not compile again ... the folder is
/// created readable by the app's user only, and an entry (or a folder) that
/// is another user's or writable by its group or everyone is never used:
/// the component is compiled again, and a warning says why." (A hit
/// "renews its entry's modified time", ARCHITECTURE.md.)
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn the_cache_is_private_reused_as_is_and_a_writable_entry_is_never_used() {
    use std::os::unix::fs::PermissionsExt;
    // The guest with a custom section of its own: an entry no other test
    // shares.
    let component = unique_component(edges(), b'c');
    let (cache, hash) = (component_cache(), component_hash(&component));
    let entries = || cache_entries(&component);
    let folder = tempfile::tempdir().unwrap();
    // Two names, one component: one entry.
    for name in ["cache", "cachetwin"] {
        std::fs::write(
            folder.path().join(format!("app_plugin_{name}.wasm")),
            &component,
        )
        .unwrap();
    }
    let app = launch_real(Backend::Sqlite, folder.path(), "");
    assert_eq!(plugin_status(&app, "cache"), "loaded");
    assert_eq!(plugin_status(&app, "cachetwin"), "loaded");
    drop(app);
    let stored = entries();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let entry = &stored[0];
    assert_eq!(
        mode(&cache) & 0o077,
        0,
        "the folder is the app user's alone"
    );
    assert_eq!(mode(entry), 0o600);

    // A second start uses the entry as it is (same file), renewing it.
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(entry)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let first = inode(entry);
    let app = launch_real(Backend::Sqlite, folder.path(), "");
    assert_eq!(plugin_status(&app, "cache"), "loaded");
    assert_eq!(inode(entry), first, "not compiled and written again");
    assert!(std::fs::metadata(entry).unwrap().modified().unwrap() > old + Duration::from_secs(60));
    assert!(!app.proc.output.text().contains("cached component unusable"));
    drop(app);

    // Writable by the group: never used, compiled again, a warning says why.
    std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o660)).unwrap();
    let app = launch_real(Backend::Sqlite, folder.path(), "");
    assert_eq!(plugin_status(&app, "cache"), "loaded");
    let output = app.proc.output.text();
    let warning = output
        .lines()
        .find(|l| l.contains("cached component unusable, compiling again") && l.contains(&hash))
        .unwrap_or_else(|| panic!("no warning about the entry:\n{output}"));
    assert!(warning.contains("writable"), "{warning}");
    assert_ne!(inode(entry), first, "the entry was written again");
    assert_eq!(mode(entry), 0o600);
    expect(200, app.get("/plugins/cache/config", None));
}

/// "A component that failed at startup can be loaded this way once fixed";
/// its entry's "`generation` (1 at startup, one more per reload) and
/// `reload_error` (why its last reload was refused, or `null`)"; "A reload
/// runs the plugin's `[plugins.<name>]` table as read at startup".
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_failing_at_startup_loads_by_reload_once_fixed_with_its_startup_table() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("app_plugin_late.wasm");
    std::fs::write(&file, b"not yet").unwrap();
    let config = "[plugins.late]\nmark = \"startup\"\n";
    let app = launch_real(Backend::Sqlite, folder.path(), config);
    let late = plugin_entry(&app, "late");
    assert_eq!(late["kind"], "component");
    assert!(
        late["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: not a valid WebAssembly component"),
        "{late}"
    );
    expect_error(404, "not_found", app.get("/plugins/late/config", None));

    // Still broken: refused, the reason kept, no generation gained.
    let refused = expect_error(422, "reload_refused", reload(&app, "late"));
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{refused}"
    );
    let late = plugin_entry(&app, "late");
    assert!(
        late["reload_error"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{late}"
    );
    assert!(
        late["status"].as_str().unwrap().starts_with("failed"),
        "{late}"
    );

    // Fixed, and the configuration file changed since startup.
    std::fs::copy(edges(), &file).unwrap();
    let config_file = std::fs::read_dir(app.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("config-")
        })
        .unwrap();
    std::fs::write(&config_file, "[plugins.late]\nmark = \"edited\"\n").unwrap();
    let reloaded = expect(200, reload(&app, "late"));
    let generation = reloaded["generation"].as_i64().unwrap();
    let late = plugin_entry(&app, "late");
    assert_eq!(
        (
            late["status"].as_str(),
            &late["reload_error"],
            late["generation"].as_i64()
        ),
        (Some("loaded"), &Value::Null, Some(generation))
    );
    assert_eq!(
        expect(200, app.get("/plugins/late/config", None)),
        json!({"mark": "startup"})
    );
    expect(
        200,
        run(
            &app,
            "late",
            "execute",
            json!({"sql": "INSERT INTO plugin_late_items (id, v) VALUES (1, 'x')"}),
        ),
    );

    // Broken again: refused, the running version answers on, then a good
    // reload clears the error and counts one more.
    std::fs::write(&file, b"\0asm\x0d\0\x01\0").unwrap();
    expect_error(422, "reload_refused", reload(&app, "late"));
    let late = plugin_entry(&app, "late");
    assert_eq!(
        (late["status"].as_str(), late["generation"].as_i64()),
        (Some("loaded"), Some(generation))
    );
    assert!(late["reload_error"].is_string(), "{late}");
    assert_eq!(
        rows(&app, "late", "SELECT v FROM plugin_late_items", json!([])),
        json!([{"v": "x"}])
    );
    std::fs::copy(edges(), &file).unwrap();
    assert_eq!(
        expect(200, reload(&app, "late"))["generation"].as_i64(),
        Some(generation + 1)
    );
    assert_eq!(plugin_entry(&app, "late")["reload_error"], Value::Null);
}

/// "Not yet: ... a component added to the folder while the app runs (a
/// reload or `--watch` acts on the plugins found at startup)": reloading
/// one is a 404 and loads nothing.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_component_added_while_the_app_runs_is_not_reloaded() {
    let folder = component_folder(edges(), &["first"]);
    let app = launch_real(Backend::Sqlite, folder.path(), "");
    std::fs::copy(edges(), folder.path().join("app_plugin_added.wasm")).unwrap();
    let (status, body) = reload(&app, "added");
    assert_eq!(status, 404, "{body}");
    expect_error(404, "not_found", app.get("/plugins/added/config", None));
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    assert!(!report.to_string().contains("\"added\""), "{report}");
}

/// "The load report (log and `GET /api/admin/plugins`) gives each plugin's
/// `kind`: `component`, `native`, `linked in` or `built in`; a component's
/// entry also has its `generation` (1 at startup ...) and `reload_error`
/// (... or `null`)."
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn the_report_gives_every_kind_and_a_components_generation() {
    let folder = component_folder(edges(), &["kinds"]);
    let native = shipped_plugins().join("app_plugin_hello_world");
    std::fs::create_dir_all(folder.path().join("app_plugin_hello_world")).unwrap();
    std::fs::copy(
        native.join("Cargo.toml"),
        folder.path().join("app_plugin_hello_world/Cargo.toml"),
    )
    .unwrap();
    let options = Options::default().env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
    let app = TestApp::start_with(Backend::Sqlite, options);
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    let plugins = report["plugins"].as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        plugins.iter().filter_map(|p| p["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["built in", "component", "linked in", "native"]
            .into_iter()
            .collect(),
        "{report}"
    );
    let kinds_entry = plugin_entry(&app, "kinds");
    assert_eq!(
        (
            &kinds_entry["kind"],
            &kinds_entry["status"],
            &kinds_entry["generation"],
            &kinds_entry["reload_error"]
        ),
        (
            &json!("component"),
            &json!("loaded"),
            &json!(1),
            &Value::Null
        )
    );
    assert_eq!(plugin_entry(&app, "hello_world")["kind"], "native");
    for plugin in plugins.iter().filter(|p| p["kind"] != "component") {
        assert!(
            plugin.get("generation").is_none_or(Value::is_null),
            "{plugin}"
        );
    }
    // The log says it too.
    let output = app.proc.output.text();
    assert!(
        output
            .lines()
            .any(|l| l.contains("kinds") && l.contains("component")),
        "{output}"
    );
}

/// A component's migrations: "Refused, naming the table or the construct:
/// any other table ..., a temporary table, `CASCADE`, comments, and any
/// other statement (`CREATE VIEW`, `CREATE TRIGGER`, ..., `PRAGMA`, ...)"
/// and "A refusal refuses the plugin before any of its migrations runs
/// ...; the app starts with the others."
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn refused_migrations_fail_their_plugin_before_any_runs_and_the_app_starts() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "mview",
            "CREATE VIEW plugin_mview_v AS SELECT * FROM users",
            "CREATE VIEW",
        ),
        (
            "mtrig",
            "CREATE TRIGGER plugin_mtrig_t AFTER INSERT ON plugin_mtrig_a BEGIN DELETE FROM users; END",
            "refused",
        ),
        ("mprag", "PRAGMA writable_schema = 1", "refused"),
        ("mattach", "ATTACH DATABASE 'x.db' AS x", "refused"),
        (
            "mtemp",
            "CREATE TEMP TABLE plugin_mtemp_t (id INTEGER)",
            "a temporary table",
        ),
        (
            "midx",
            "CREATE INDEX plugin_midx_i ON users (email)",
            "`users`",
        ),
        (
            "mname",
            "CREATE INDEX users_by_a ON plugin_mname_a (id)",
            "names the index `users_by_a`",
        ),
        ("mdrop", "DROP TABLE users", "drops the table `users`"),
        (
            "malter",
            "ALTER TABLE users ADD COLUMN x INTEGER",
            "`users`",
        ),
        (
            "mrename",
            "ALTER TABLE plugin_mrename_a RENAME TO users",
            "renames a table to `users`",
        ),
        (
            "mfk",
            "CREATE TABLE plugin_mfk_b (u INTEGER REFERENCES users (id))",
            "references the table `users`",
        ),
        (
            "mnow",
            "CREATE TABLE plugin_mnow_b (at TEXT DEFAULT CURRENT_TIMESTAMP)",
            "refused",
        ),
        (
            "mcomment",
            "CREATE TABLE plugin_mcomment_b (id INTEGER) -- hi",
            "comment",
        ),
        ("mdel", "DELETE FROM users", "`users`"),
    ];
    let mut names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    names.push("mfine");
    let folder = component_folder(edges(), &names);
    let mut config = String::new();
    for (name, statement, _) in cases {
        // Migration 1 is fine; migration 2 is the refused one.
        let first = format!("CREATE TABLE plugin_{name}_a (id INTEGER PRIMARY KEY)");
        config += &format!(
            "[plugins.{name}]\nmigrations = [\n  {{ version = 1, name = \"a\", sqlite = '''{first}''', postgres = '''{first}''' }},\n  \
             {{ version = 2, name = \"bad\", sqlite = '''{statement}''', postgres = '''{first}''' }},\n]\n\n"
        );
    }
    let app = launch_real(Backend::Sqlite, folder.path(), &config);
    assert_eq!(plugin_status(&app, "mfine"), "loaded");
    for (name, _, why) in cases {
        let status = plugin_status(&app, name);
        assert!(
            status.starts_with("failed: its migration 2 (bad) is refused: its SQLite text: ")
                && status.contains(why),
            "{name}: {status}"
        );
    }
    let tables = app.db.column("SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger', 'index') ORDER BY name");
    let leaked: Vec<&String> = tables
        .iter()
        .filter(|t| t.starts_with("plugin_m") && !t.starts_with("plugin_mfine_"))
        .collect();
    assert!(
        leaked.is_empty(),
        "a refused plugin's migration ran: {leaked:?}"
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM pragma_table_info('users') WHERE name = 'x'"),
        0
    );
    app.create_user("alice");
}

/// The migration text one of sqlparser's dialects cannot read without
/// panicking (sqlparser 0.59's SQLite dialect unwraps the expression after
/// `REGEXP`).
const CHOKING: &str = "CREATE TABLE plugin_choke_a (v TEXT CHECK (v REGEXP))";

/// "A refusal refuses the plugin before any of its migrations runs (... in
/// the load report ...); the app starts with the others" — for a migration
/// text that does not parse as SQLite reads it too ("`SQL that does not
/// parse`" is one of `check_migration`'s refusals).
#[test]
fn a_migration_the_sqlite_parser_chokes_on_fails_its_plugin_not_the_app() {
    let folder = component_folder(edges(), &["choke", "bystander"]);
    let config = format!(
        "[plugins.choke]\nmigrations = [ {{ version = 1, name = \"a\", sqlite = '''{CHOKING}''', \
         postgres = '''CREATE TABLE plugin_choke_a (v TEXT)''' }} ]\n"
    );
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap())
        .config(&config);
    let mut proc = Proc::spawn(options.command(&db));
    // Up, or gone: whichever comes first.
    let start = Instant::now();
    while !proc.output.text().contains("listening on http://") {
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!(
                "the app exited ({status}) instead of refusing the plugin:\n{}",
                proc.output.text()
            );
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the app did not start:\n{}",
            proc.output.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let app = TestApp::wait_up(proc, db);
    let status = plugin_status(&app, "choke");
    assert!(
        status.starts_with("failed: its migration 1 (a) is refused: its SQLite text: "),
        "{status}"
    );
    assert_eq!(plugin_status(&app, "bystander"), "loaded");
}

/// "A new version that fails ... to migrate ... is refused: the old one
/// runs on, and the reason is in the answer (422 `reload_refused`)" — for
/// the same text, at a reload: the app lives and the old version answers.
#[test]
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
fn a_reload_to_a_migration_the_sqlite_parser_chokes_on_is_refused_and_the_old_version_runs() {
    // The guest's migrations come from its table, read at startup, which
    // no start could load (the test above): the component fails at
    // startup for another reason (not a component yet), then is fixed.
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("app_plugin_choke.wasm");
    std::fs::write(&file, b"broken").unwrap();
    std::fs::copy(edges(), folder.path().join("app_plugin_bystander.wasm")).unwrap();
    let config = format!(
        "[plugins.choke]\nmigrations = [ {{ version = 1, name = \"a\", sqlite = '''{CHOKING}''', \
         postgres = '''CREATE TABLE plugin_choke_a (v TEXT)''' }} ]\n"
    );
    let app = launch_real(Backend::Sqlite, folder.path(), &config);
    assert!(plugin_status(&app, "choke").starts_with("failed: not a valid WebAssembly component"));
    std::fs::copy(edges(), &file).unwrap();
    let (status, body) = app
        .try_raw("POST", "/api/admin/plugins/choke/reload", ADMIN, None)
        .unwrap_or_else(|e| {
            panic!(
                "the reload broke the connection: {e}\n{}",
                app.proc.output.text()
            )
        });
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "reload_refused", "{body}");
    // The process lives, and so does the other component.
    expect(200, app.get("/health", None));
    expect(200, app.get("/plugins/bystander/config", None));
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'plugin_choke_a'"),
        0
    );
    // The reloads' lock was not left poisoned: the next one answers too.
    let (status, _) = reload(&app, "bystander");
    assert_eq!(status, 200);
}
