//! README "Configuration" and "The HTTP API", taken to their edges where
//! the other files do not: every numeric key of the configuration with a
//! wrong type, zero and the largest value TOML holds; a `[deliveries.<x>]`
//! table naming no plugin; `DATABASE_URL` with and without `mode=`; the
//! status codes of each row of the endpoint table at their repeats (a
//! membership put twice, deleted twice, a patch of nothing or of `null`);
//! the text limits in characters four bytes wide on both databases; pages
//! whose caller cannot see more rows in a row than one read holds; and the
//! error bodies of both databases. Each test ends by counting rows and hook
//! calls, not only statuses.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Instant;

use e2e_tests::after_commit::AFTER_COMMIT_ENV;
use e2e_tests::*;
use serde_json::Value;

// ---------------------------------------------------------------- helpers

/// A failed start, checked: exit status 1, never listened, one `error:`
/// line on stderr.
#[track_caller]
fn refused(status: ExitStatus, output: &str) {
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(!output.contains("listening on http://"), "{output}");
    assert_eq!(
        output.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "one `error:` line: {output}"
    );
}

/// Starts `options` against `db`: the running app, or the exit status and
/// output of a start that failed (bounded by [`DEADLINE`]).
fn start_or_exit(db: Arc<TestDb>, options: &Options) -> Result<TestApp, (ExitStatus, String)> {
    let mut proc = Proc::spawn(options.command(&db));
    let start = Instant::now();
    loop {
        if proc.output.text().contains("listening on http://") {
            return Ok(TestApp::wait_up(proc, db));
        }
        if proc.child.try_wait().expect("try_wait").is_some() {
            return Err(proc.finish());
        }
        assert!(
            start.elapsed() < DEADLINE,
            "neither listening nor exited within {DEADLINE:?}:\n{}",
            proc.output.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `test-app` with the `after` plugin (an after-commit hook per new user)
/// and `config`.
fn with_after(config: &str) -> Options {
    Options::default().env(AFTER_COMMIT_ENV, "1").config(config)
}

/// `after`'s deliveries, as `status:attempts`, oldest first.
fn after_deliveries(db: &TestDb) -> Vec<String> {
    deliveries(db, "after")
}

/// A request with its headers.
#[track_caller]
fn whole(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> Whole {
    app.try_whole(method, path, token, None)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `SELECT COUNT(*) FROM <from_where>`.
fn count(db: &TestDb, from_where: &str) -> i64 {
    db.count(&format!("SELECT COUNT(*) FROM {from_where}"))
}

/// Every user row, `id|username|email|display_name` (`-` for none).
fn user_rows(db: &TestDb) -> Vec<String> {
    db.column(
        "SELECT CAST(id AS TEXT) || '|' || username || '|' || email || '|' || \
         COALESCE(display_name, '-') FROM users ORDER BY id",
    )
}

/// Every space row, `id|parent|name|access|default_role`.
fn space_rows(db: &TestDb) -> Vec<String> {
    db.column(
        "SELECT CAST(id AS TEXT) || '|' || COALESCE(CAST(parent_id AS TEXT), '-') || '|' || \
         name || '|' || access || '|' || default_role FROM spaces ORDER BY id",
    )
}

/// Every membership row, `space|user|role`.
fn member_rows(db: &TestDb) -> Vec<String> {
    db.column(
        "SELECT CAST(space_id AS TEXT) || '|' || CAST(user_id AS TEXT) || '|' || role \
         FROM memberships ORDER BY space_id, user_id",
    )
}

/// Inserts `n` confidential top-level spaces straight into the database
/// (names `hidden1`...): more than one read of a page holds, without
/// hundreds of requests. Their ids, in order.
fn hidden_spaces(db: &TestDb, n: usize) -> Vec<i64> {
    let ids: Vec<i64> = db
        .column(&format!(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) \
             INSERT INTO spaces (name, access, default_role, created_at) \
             SELECT 'hidden' || CAST(i AS TEXT), 'confidential', 'reader', \
             '2026-01-01T00:00:00.000000Z' FROM k RETURNING id"
        ))
        .iter()
        .map(|id| id.parse().expect("an id"))
        .collect();
    assert_eq!(ids.len(), n);
    ids
}

/// The greatest integer TOML holds.
const TOML_MAX: &str = "9223372036854775807";

// ------------------------------------------------------------ configuration

/// README, "Configuration": the keys of `[http]`, `[database]` and
/// `[deliveries]` are numbers (bytes,
/// milliseconds, counts). A negative number, a string or a fraction for
/// any of them stops startup with one error that names the key, before any
/// database is created; so does a wrong type for a top-level key.
#[test]
fn every_numeric_key_refuses_a_negative_a_string_or_a_fraction_naming_the_key() {
    let db = TestDb::create(Backend::Sqlite);
    let tables: [(&str, &[&str]); 3] = [
        (
            "http",
            &[
                "body_limit",
                "header_timeout_ms",
                "body_timeout_ms",
                "idle_timeout_ms",
                "max_connections",
                "shutdown_grace_ms",
            ],
        ),
        ("database", &["max_attempts", "backoff_ms", "writers"]),
        (
            "deliveries",
            &[
                "max_attempts",
                "backoff_ms",
                "max_backoff_ms",
                "timeout_ms",
                "lease_ms",
                "poll_ms",
                "batch",
                "concurrency",
                "retention_s",
            ],
        ),
    ];
    let mut unnamed = Vec::new();
    for (table, keys) in tables {
        for key in keys {
            for value in ["-1", "\"10\"", "1.5"] {
                let config = format!("[{table}]\n{key} = {value}\n");
                let (status, output) = run_to_exit(&db, &Options::default().config(&config));
                refused(status, &output);
                let error = output
                    .lines()
                    .skip_while(|l| !l.starts_with("error: "))
                    .collect::<Vec<_>>()
                    .join("\n");
                if !error.contains(key) {
                    unnamed.push(format!("[{table}] {key} = {value}: {error}"));
                }
            }
        }
    }
    for (config, key) in [
        ("listen = 8080\n", "listen"),
        ("data_dir = 5\n", "data_dir"),
        ("database_url = 5\n", "database_url"),
        ("admin_token = 5\n", "admin_token"),
        ("[plugins]\ndir = 5\n", "dir"),
        ("[plugins]\nrequired = \"recorder\"\n", "required"),
    ] {
        let (status, output) = run_to_exit(&db, &Options::default().config(config));
        refused(status, &output);
        if !output.contains(key) {
            unnamed.push(format!("{config:?}: {output}"));
        }
    }
    assert!(
        unnamed.is_empty(),
        "errors that do not name the key:\n{}",
        unnamed.join("\n---\n")
    );
    assert!(
        !db.dir.path().join("app.db").exists(),
        "a database was created"
    );
}

/// README, "Configuration": "`[deliveries.webhooks]` # per plugin:
/// max_attempts, backoff_ms, max_backoff_ms, timeout_ms, concurrency,
/// ordered". A value of the wrong type there stops startup (it does), and,
/// like the same value in `[deliveries]` or `[http]`, the error names the
/// key, not only the table: `[deliveries.recorder]: invalid value: integer
/// `-1`, expected u32` leaves the reader to guess which of six keys.
#[test]
fn a_bad_value_in_a_plugins_deliveries_table_names_the_key() {
    let db = TestDb::create(Backend::Sqlite);
    let mut unnamed = Vec::new();
    for (key, value) in [
        ("max_attempts", "-1"),
        ("backoff_ms", "\"10\""),
        ("max_backoff_ms", "1.5"),
        ("timeout_ms", "-1"),
        ("concurrency", "-1"),
        ("ordered", "1"),
    ] {
        let config = format!("[deliveries.recorder]\n{key} = {value}\n");
        let (status, output) = run_to_exit(&db, &Options::default().config(&config));
        refused(status, &output);
        let error = output
            .lines()
            .skip_while(|l| !l.starts_with("error: "))
            .collect::<Vec<_>>()
            .join("\n");
        if !error.contains(key) {
            unnamed.push(format!("{key} = {value}: {error}"));
        }
    }
    assert!(
        unnamed.is_empty(),
        "errors that do not name the key:\n{}",
        unnamed.join("\n---\n")
    );
}

/// README, "Configuration": "`[deliveries.webhooks]` # per plugin:
/// max_attempts, ..."; and, of `[plugins.<name>]`: "A table for a plugin
/// that is not there stops startup, naming the closest plugin ...: a
/// misspelt table would otherwise leave its plugin on its defaults". The
/// same holds of a misspelt `[deliveries.<plugin>]`: `[deliveries.recordr]`
/// leaves `recorder` on the default retries without a word. The table of a
/// plugin that is there is accepted.
#[test]
fn a_deliveries_table_naming_no_plugin_stops_startup() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let app = TestApp::start_on(
        db.clone(),
        &Options::default().config("[deliveries.recorder]\nmax_attempts = 3\n"),
    );
    expect(200, app.get("/health", None));
    drop(app);
    let typo = Options::default().config("[deliveries.recordr]\nmax_attempts = 3\n");
    match start_or_exit(db, &typo) {
        Ok(app) => panic!(
            "started with [deliveries.recordr] (no such plugin):\n{}",
            app.proc.output.text()
        ),
        Err((status, output)) => {
            refused(status, &output);
            assert!(output.contains("recordr"), "{output}");
        }
    }
}

/// README, "Configuration": "a `sqlite://` URL names the SQLite file,
/// created if missing unless the URL sets `mode=`". With `mode=rw` a
/// missing file is not created and startup stops; with other parameters
/// but no `mode=` it is created; with `mode=rw` on the file that now
/// exists, the app starts on it.
#[test]
fn a_sqlite_url_that_sets_mode_does_not_create_the_file_and_one_that_does_not_does() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let file = db.dir.path().join("named.db");
    let url = |query: &str| format!("sqlite://{}?{query}", file.display());
    let options = |query: &str| Options::default().env("DATABASE_URL", &url(query));

    match start_or_exit(db.clone(), &options("mode=rw")) {
        Ok(app) => panic!("started on a missing file with mode=rw: {}", app.base),
        Err((status, output)) => refused(status, &output),
    }
    assert!(!file.exists(), "mode=rw created the file");

    let app = start_or_exit(db.clone(), &options("cache=private"))
        .unwrap_or_else(|(status, output)| panic!("{status}: {output}"));
    assert!(file.is_file(), "no file without mode=");
    app.create_user("ada");
    drop(app);

    let app = start_or_exit(db.clone(), &options("mode=rw"))
        .unwrap_or_else(|(status, output)| panic!("{status}: {output}"));
    let users = expect(200, app.get("/api/users", ADMIN));
    assert_eq!(users[0]["username"], "ada", "{users}");
    assert!(
        !db.dir.path().join("app.db").exists(),
        "the default file was used"
    );
}

/// README, "Configuration": `body_limit = 1048576 # bytes; a larger body
/// gets 413`. At 0 every body is larger: a POST is 413 and writes
/// nothing, while requests without a body are served.
#[test]
fn a_body_limit_of_zero_refuses_every_body_and_serves_the_rest() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        Options::default().config("[http]\nbody_limit = 0\n"),
    );
    let body = json!({"username": "ada", "email": "ada@example.org"});
    let error = expect_error(
        413,
        "payload_too_large",
        app.post("/api/users", ADMIN, body),
    );
    assert_eq!(error["limit"], 0, "{error}");
    expect(200, app.get("/api/users", ADMIN));
    expect(200, app.get("/health", None));
    assert_eq!(count(&app.db, "users"), 0);
}

/// README, "Configuration": `[database] max_attempts = 20 # runs in all`;
/// `[deliveries] max_attempts = 8 # then the delivery is dead`, `batch =
/// 200 # events claimed at once per plugin`, `concurrency = 8`. A zero is
/// either refused at startup naming the key, or is no way to stop the app
/// from working: a write still runs once, a delivery is still attempted
/// (and a failing one is dead after one attempt, not retried for ever).
#[test]
fn zero_runs_attempts_batches_and_concurrency_still_run_and_deliver() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let config = "[database]\nmax_attempts = 0\n\n\
                  [deliveries]\nmax_attempts = 0\nbatch = 0\nconcurrency = 0\n\
                  backoff_ms = 10\npoll_ms = 100\n";
    let app = match start_or_exit(db, &with_after(config)) {
        Ok(app) => app,
        Err((status, output)) => {
            refused(status, &output);
            assert!(
                ["max_attempts", "batch", "concurrency"]
                    .iter()
                    .any(|k| output.contains(k)),
                "{output}"
            );
            return;
        }
    };
    let ada = app.create_user("ada");
    assert_eq!(ada["username"], "ada");
    app.create_user("after-panic-pat");
    wait_until("both deliveries settled", || {
        count(
            &app.db,
            "outbox_deliveries WHERE plugin = 'after' AND status IN ('delivered', 'dead')",
        ) == 2
    });
    assert_eq!(after_deliveries(&app.db), ["delivered:1", "dead:1"]);
    assert_eq!(
        app.db
            .column("SELECT username || ':' || CAST(attempt AS TEXT) FROM plugin_after_seen"),
        ["ada:1"],
        "the panicking attempt's row was rolled back, the other kept"
    );
    assert_eq!(count(&app.db, "users"), 2);
}

/// Starts `test-app` with `after` and `config` on a fresh SQLite database,
/// creates a user whose delivery fails (`after-panic-pat`) and one whose
/// delivery succeeds (`ada`), and waits for both to be attempted: what
/// went wrong, if anything (a start refused without naming `key`, nothing
/// delivered, a task that panicked), and the app (if it started).
fn deliver_with(key: &str, config: &str) -> (Vec<String>, Option<TestApp>) {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let app = match start_or_exit(db, &with_after(config)) {
        Ok(app) => app,
        Err((status, output)) => {
            refused(status, &output);
            let named = output.contains(key);
            let why = format!("{key}: refused without naming it: {output}");
            return (if named { vec![] } else { vec![why] }, None);
        }
    };
    app.create_user("after-panic-pat");
    app.create_user("ada");
    let start = Instant::now();
    let mut failures = Vec::new();
    loop {
        let rows = after_deliveries(&app.db);
        if rows == ["pending:1", "delivered:1"] {
            break;
        }
        if start.elapsed() > DEADLINE {
            failures.push(format!(
                "{key}: deliveries {rows:?} after {DEADLINE:?}, expected the failed one \
                 parked (pending:1) and the other delivered"
            ));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = app.proc.output.text();
    // `after` panics on purpose (tests/src/after_commit.rs); nothing else may.
    let panics: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("panicked at") && !l.contains("after_commit.rs"))
        .collect();
    if !panics.is_empty() {
        failures.push(format!("{key}: {}", panics.join("\n")));
    }
    (failures, Some(app))
}

/// README, "Configuration": `poll_ms = 1000 # look for other instances'
/// events this often`, `lease_ms = 60000 # a claim's lifetime: a dead
/// instance's claims expire after it`. The largest value TOML holds (a
/// way to say "never") is either refused at startup naming the key, or
/// honoured: a commit still wakes the worker, the event is delivered, the
/// failed one is parked for its retry, and no task panics on the
/// arithmetic of `now + poll` or `now + lease`.
#[test]
fn the_largest_poll_and_lease_are_refused_naming_the_key_or_honoured() {
    let mut failures = Vec::new();
    for key in ["poll_ms", "lease_ms"] {
        let config = format!("[deliveries]\nbackoff_ms = 60000\n{key} = {TOML_MAX}\n");
        failures.extend(deliver_with(key, &config).0);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// README, "Configuration": `backoff_ms = 1000 # first retry delay`,
/// `max_backoff_ms`; the deliveries list: "`next_attempt_at` (`null` when
/// due now)". A retry parked further than the calendar's year 9999 (the
/// largest backoff TOML holds) is not due now: the admin list must not
/// say it is (`null`), and it is not attempted again.
#[test]
fn a_retry_parked_past_the_calendar_is_not_reported_due_now() {
    let config = format!(
        "[deliveries]\npoll_ms = 100\n[deliveries.after]\n\
         backoff_ms = {TOML_MAX}\nmax_backoff_ms = {TOML_MAX}\n"
    );
    let (failures, app) = deliver_with("max_backoff_ms", &config);
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
    let Some(app) = app else { return };
    let pending = expect(200, app.get("/api/admin/deliveries?status=pending", ADMIN));
    let parked = &pending["deliveries"][0];
    assert_eq!(parked["attempts"], 1, "{pending}");
    assert!(
        parked["next_attempt_at"].is_string(),
        "a delivery parked for ~{} years is listed as due now: {parked}",
        i64::MAX / 1000 / 3600 / 24 / 365 / 2
    );
    assert_eq!(after_deliveries(&app.db), ["pending:1", "delivered:1"]);
}

// ----------------------------------------------------------------- the API

e2e! {
    /// README: "`PUT /api/spaces/:id/members/:user_id` `{role}` | 201 when
    /// created, 200 when the role changed"; "`DELETE ...` | 204";
    /// "deleting what is already gone is 404 and fires nothing". The same
    /// role again is 200 with the same membership and fires nothing; a bad
    /// role or an unknown field is 422 naming it and changes nothing;
    /// deleted, the membership can be created again (201).
    fn a_membership_put_is_201_then_200_and_a_delete_204_then_404(backend) {
        let app = TestApp::start(backend);
        let ada = id(&app.create_user("ada"));
        let space = id(&app.create_space("s", None));
        let path = format!("/api/spaces/{space}/members/{ada}");
        let from = app.events().len();
        let created = expect(201, app.put(&path, ADMIN, json!({"role": "reader"})));
        assert_eq!((&created["space_id"], &created["user_id"], &created["role"]), (&json!(space), &json!(ada), &json!("reader")), "{created}");
        let same = expect(200, app.put(&path, ADMIN, json!({"role": "reader"})));
        assert_eq!(same, created, "the same role again changed the membership");
        let changed = expect(200, app.put(&path, ADMIN, json!({"role": "contributor"})));
        assert_eq!(changed["role"], "contributor");
        assert_eq!(changed["created_at"], created["created_at"]);
        expect(200, app.put(&path, ADMIN, json!({"role": "contributor"})));
        for (body, field) in [
            (json!({"role": "Reader"}), "role"),
            (json!({"role": null}), "role"),
            (json!({"role": "owner"}), "role"),
            (json!({}), "role"),
        ] {
            let error = expect_error(422, "invalid", app.put(&path, ADMIN, body.clone()));
            assert_eq!(error["field"], field, "{body}: {error}");
        }
        expect_error(422, "invalid", app.put(&path, ADMIN, json!({"role": "reader", "admin": true})));
        assert_eq!(member_rows(&app.db), [format!("{space}|{ada}|contributor")]);
        let listed = expect(200, app.get(&format!("/api/spaces/{space}/members"), ADMIN));
        assert_eq!(listed, json!([changed]));

        assert_eq!(expect(204, app.delete(&path, ADMIN)), Value::Null);
        let error = expect_error(404, "not_found", app.delete(&path, ADMIN));
        assert!(error["message"].as_str().unwrap().contains(&ada.to_string()), "{error}");
        assert_eq!(count(&app.db, "memberships"), 0);
        expect(201, app.put(&path, ADMIN, json!({"role": "space_manager"})));
        assert_eq!(member_rows(&app.db), [format!("{space}|{ada}|space_manager")]);
        assert_eq!(
            app.recorder_keys(from),
            [
                key("recorder", "on_membership_created", space),
                key("recorder", "on_membership_modified", space),
                key("recorder", "on_membership_deleted", space),
                key("recorder", "on_membership_created", space),
            ]
        );
    }

    /// README: "a `PATCH` (of a user or a space) that changes nothing
    /// answers 200 with it, writes nothing and fires no hook". An empty
    /// object, the values it has, a `parent_id: null` of a top-level space
    /// and a second `display_name: null` are all nothing; the first
    /// `display_name: null` clears it (one hook). `null` for a field that
    /// cannot be empty (`username`, `email`, a space's `name`) is refused
    /// naming it or changes nothing; either way nothing is written.
    fn a_patch_of_nothing_or_of_null_writes_nothing_and_fires_nothing(backend) {
        let app = TestApp::start(backend);
        let body = json!({"username": "ada", "email": "ada@example.org", "display_name": "Ada"});
        let ada = expect(201, app.post("/api/users", ADMIN, body));
        let user = format!("/api/users/{}", id(&ada));
        let space = expect(201, app.post("/api/spaces", ADMIN, json!({"name": "s", "access": "open"})));
        let spaced = format!("/api/spaces/{}", id(&space));
        let from = app.events().len();
        let (users, spaces) = (user_rows(&app.db), space_rows(&app.db));

        for patch in [
            json!({}),
            json!({"display_name": "Ada"}),
            json!({"username": "ada", "email": "ada@example.org", "display_name": "Ada"}),
        ] {
            assert_eq!(expect(200, app.patch(&user, ADMIN, patch.clone())), ada, "{patch}");
        }
        for patch in [
            json!({}),
            json!({"parent_id": null}),
            json!({"name": "s", "access": "open", "default_role": "reader", "parent_id": null}),
        ] {
            assert_eq!(expect(200, app.patch(&spaced, ADMIN, patch.clone())), space, "{patch}");
        }
        for (path, field) in [(&user, "username"), (&user, "email"), (&spaced, "name"), (&spaced, "access"), (&spaced, "default_role")] {
            let (status, body) = app.patch(path, ADMIN, json!({field: null}));
            match status {
                200 => {}
                422 => assert_eq!(body["error"]["field"], field, "{body}"),
                other => panic!("PATCH {path} {{{field}: null}}: {other} {body}"),
            }
        }
        for (patch, field) in [
            (json!({"access": "Open"}), "access"),
            (json!({"default_role": "king"}), "default_role"),
            (json!({"name": "t", "access": "secret"}), "access"),
        ] {
            let error = expect_error(422, "invalid", app.patch(&spaced, ADMIN, patch.clone()));
            assert_eq!(error["field"], field, "{patch}: {error}");
        }
        for patch in [json!({"name": "t", "owner": 1}), json!({"name": "t", "id": 99}), json!(null), json!([])] {
            let error = expect_error(422, "invalid", app.patch(&spaced, ADMIN, patch.clone()));
            assert!(error["field"].is_string(), "{patch}: {error}");
        }
        assert_eq!((user_rows(&app.db), space_rows(&app.db)), (users, spaces));
        assert_eq!(app.recorder_keys(from), [], "a patch of nothing fired a hook");

        let cleared = expect(200, app.patch(&user, ADMIN, json!({"display_name": null})));
        assert_eq!(cleared["display_name"], Value::Null);
        assert_eq!(expect(200, app.patch(&user, ADMIN, json!({"display_name": null}))), cleared);
        assert_eq!(user_rows(&app.db), [format!("{}|ada|ada@example.org|-", id(&ada))]);
        assert_eq!(app.recorder_keys(from), [key("recorder", "on_user_modified", id(&ada))]);
    }

    /// README: "`POST /api/spaces` `{name, parent_id?, access,
    /// default_role?}` | 201; `access` is `open`, `on_request` or
    /// `confidential`; `default_role` defaults to `reader`". An unknown
    /// parent (0, negative, missing), an access or a role not in the lists
    /// (in another case, `null`, missing) are 422 naming the field and
    /// write nothing; a given `default_role` is kept, a `null` one is
    /// `reader`; the admin (no user) becomes no member.
    fn a_new_space_with_a_bad_parent_access_or_role_writes_nothing(backend) {
        let app = TestApp::start(backend);
        let from = app.events().len();
        for (body, field) in [
            (json!({"name": "x", "access": "open", "parent_id": 0}), "parent_id"),
            (json!({"name": "x", "access": "open", "parent_id": -1}), "parent_id"),
            (json!({"name": "x", "access": "open", "parent_id": 1}), "parent_id"),
            (json!({"name": "x", "access": "Open"}), "access"),
            (json!({"name": "x", "access": null}), "access"),
            (json!({"name": "x"}), "access"),
            (json!({"name": "x", "access": "open", "default_role": "owner"}), "default_role"),
            (json!({"name": "x", "access": "open", "default_role": "READER"}), "default_role"),
            (json!({"name": "x", "access": "open", "default_role": 1}), "default_role"),
            (json!({"name": null, "access": "open"}), "name"),
        ] {
            let error = expect_error(422, "invalid", app.post("/api/spaces", ADMIN, body.clone()));
            assert_eq!(error["field"], field, "{body}: {error}");
        }
        assert_eq!(count(&app.db, "spaces"), 0);
        assert_eq!(app.recorder_keys(from), []);

        let top = expect(201, app.post("/api/spaces", ADMIN, json!({"name": "top", "access": "on_request", "default_role": "contributor"})));
        assert_eq!((&top["access"], &top["default_role"], &top["parent_id"]), (&json!("on_request"), &json!("contributor"), &Value::Null), "{top}");
        let sub = expect(201, app.post("/api/spaces", ADMIN, json!({"name": "sub", "access": "confidential", "default_role": null, "parent_id": id(&top)})));
        assert_eq!((&sub["default_role"], &sub["parent_id"]), (&json!("reader"), &top["id"]), "{sub}");
        assert_eq!(
            space_rows(&app.db),
            [
                format!("{}|-|top|on_request|contributor", id(&top)),
                format!("{}|{}|sub|confidential|reader", id(&sub), id(&top)),
            ]
        );
        assert_eq!(count(&app.db, "memberships"), 0);
        assert_eq!(
            app.recorder_keys(from),
            [key("recorder", "on_space_created", id(&top)), key("recorder", "on_space_created", id(&sub))]
        );
    }

    /// README: "Text fields have the same rules on both databases: no NUL
    /// character, and at most 64 characters for `username`, 254 for
    /// `email`, 200 for `display_name` and for a space's `name` (422 naming
    /// the field beyond it)". Characters four bytes wide (an emoji, two
    /// UTF-16 units) count one each: exactly the limit is stored and read
    /// back whole, one more is refused; a NUL anywhere is refused, on POST
    /// and on PATCH, even within the limit.
    fn text_limits_count_four_byte_characters_as_one_on_both_databases(backend) {
        let app = TestApp::start(backend);
        let wide = |n: usize| "😀".repeat(n);
        let email = |n: usize| format!("{}@example.org", wide(n - 12));
        let new_user = |username: String, email: String, display: Option<String>| {
            app.post("/api/users", ADMIN, json!({"username": username, "email": email, "display_name": display}))
        };
        let at = expect(201, new_user(wide(64), email(254), Some(wide(200))));
        assert_eq!((&at["username"], &at["email"], &at["display_name"]), (&json!(wide(64)), &json!(email(254)), &json!(wide(200))));
        for (response, field) in [
            (new_user(wide(65), "b@example.org".into(), None), "username"),
            (new_user("b".into(), email(255), None), "email"),
            (new_user("b".into(), "b@example.org".into(), Some(wide(201))), "display_name"),
            (new_user(format!("{}\u{0}", wide(63)), "b@example.org".into(), None), "username"),
            (new_user("b".into(), "b\u{0}@example.org".into(), None), "email"),
            (new_user("b".into(), "b@example.org".into(), Some("\u{0}".into())), "display_name"),
        ] {
            let error = expect_error(422, "invalid", response);
            assert_eq!(error["field"], field, "{error}");
        }
        let path = format!("/api/users/{}", id(&at));
        for (patch, field) in [
            (json!({"username": "a\u{0}"}), "username"),
            (json!({"email": "a\u{0}@example.org"}), "email"),
            (json!({"display_name": "a\u{0}"}), "display_name"),
            (json!({"username": wide(65)}), "username"),
        ] {
            let error = expect_error(422, "invalid", app.patch(&path, ADMIN, patch.clone()));
            assert_eq!(error["field"], field, "{patch}: {error}");
        }
        assert_eq!(
            user_rows(&app.db),
            [format!("{}|{}|{}|{}", id(&at), wide(64), email(254), wide(200))]
        );
        assert_eq!(expect(200, app.get(&path, ADMIN)), at);

        let space = |name: String| app.post("/api/spaces", ADMIN, json!({"name": name, "access": "open"}));
        let fits = expect(201, space(wide(200)));
        assert_eq!(fits["name"], wide(200));
        let error = expect_error(422, "invalid", space(wide(201)));
        assert_eq!(error["field"], "name");
        let error = expect_error(422, "invalid", space(format!("{}\u{0}", wide(10))));
        assert_eq!(error["field"], "name");
        assert_eq!(app.db.column("SELECT name FROM spaces"), [wide(200)]);
        assert_eq!(count(&app.db, "users"), 1);
    }

    /// README: "A page holds what the caller may see: the server reads on
    /// past what it hides, so only the last page is short", and a full
    /// page carries `Link: </api/...?limit=N&after=ID>; rel="next"`. With
    /// 600 spaces hidden from user 1 in a row (more than one read of 500
    /// holds) before the three they may see, and 600 more after: their
    /// first page of two is full, links after its last space, the next
    /// holds the third; a page of three is full and links to an empty last
    /// page without a Link; the default page holds all three.
    fn pages_read_on_past_more_hidden_rows_than_one_read_holds(backend) {
        let app = TestApp::start(backend);
        assert_eq!(id(&app.create_user("one")), 1);
        let before = hidden_spaces(&app.db, 600);
        let open: Vec<i64> = ["o1", "o2", "o3"].iter().map(|n| id(&app.create_space(n, None))).collect();
        let after = hidden_spaces(&app.db, 600);
        assert!(open[0] > before[599] && after[0] > open[2]);

        let first = whole(&app, "GET", "/api/spaces?limit=2", USER);
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(keys(&first.body, "id"), open[..2]);
        let next = format!("/api/spaces?limit=2&after={}", open[1]);
        assert_eq!(first.header("link"), Some(format!("<{next}>; rel=\"next\"").as_str()));
        let second = whole(&app, "GET", &next, USER);
        assert_eq!(keys(&second.body, "id"), [open[2]]);
        assert_eq!(second.header("link"), None);

        let full = whole(&app, "GET", "/api/spaces?limit=3", USER);
        assert_eq!(keys(&full.body, "id"), open);
        let next = format!("/api/spaces?limit=3&after={}", open[2]);
        assert_eq!(full.header("link"), Some(format!("<{next}>; rel=\"next\"").as_str()));
        let last = whole(&app, "GET", &next, USER);
        assert_eq!((last.status, keys(&last.body, "id")), (200, vec![]));
        assert_eq!(last.header("link"), None);

        let all = whole(&app, "GET", "/api/spaces", USER);
        assert_eq!((keys(&all.body, "id"), all.header("link")), (open.clone(), None));
        // The admin sees the hidden ones, in id order.
        let admin = whole(&app, "GET", "/api/spaces?limit=2", ADMIN);
        assert_eq!(keys(&admin.body, "id"), before[..2]);
        assert_eq!(count(&app.db, "spaces"), 1203);
    }

    /// README: "`DELETE /api/users/:id` | 204; removes their memberships
    /// first (each fires its hook)"; "deleting what is already gone is 404
    /// and fires nothing". User 1, manager of a space and of its sub-space
    /// (created as them) and reader of a third: one `on_membership_deleted`
    /// per space, in order, before `on_user_deleted`; the spaces and the
    /// other member stay; again, 404 naming the user and no hook.
    fn deleting_a_user_removes_each_membership_with_its_hook_first(backend) {
        let app = TestApp::start(backend);
        assert_eq!(id(&app.create_user("one")), 1);
        let bob = id(&app.create_user("bob"));
        let top = id(&expect(201, app.post("/api/spaces", USER, json!({"name": "top", "access": "open"}))));
        let sub = id(&expect(201, app.post("/api/spaces", USER, json!({"name": "sub", "access": "confidential", "parent_id": top}))));
        let other = id(&app.create_space("other", None));
        for (space, user) in [(other, 1), (other, bob), (top, bob)] {
            expect(201, app.put(&format!("/api/spaces/{space}/members/{user}"), ADMIN, json!({"role": "reader"})));
        }
        assert_eq!(count(&app.db, "memberships"), 5);
        let from = app.events().len();
        assert_eq!(expect(204, app.delete("/api/users/1", ADMIN)), Value::Null);
        assert_eq!(
            app.recorder_keys(from),
            [
                key("recorder", "on_membership_deleted", top),
                key("recorder", "on_membership_deleted", sub),
                key("recorder", "on_membership_deleted", other),
                key("recorder", "on_user_deleted", 1),
            ]
        );
        assert_eq!(member_rows(&app.db), [format!("{top}|{bob}|reader"), format!("{other}|{bob}|reader")]);
        assert_eq!(count(&app.db, "spaces"), 3);
        assert_eq!(user_rows(&app.db), [format!("{bob}|bob|bob@example.org|-")]);
        let after = app.events().len();
        let error = expect_error(404, "not_found", app.delete("/api/users/1", ADMIN));
        assert_eq!(error["resource"], "user");
        assert_eq!(app.events().len(), after, "deleting what is gone fired a hook");
    }

    /// README: "a 500 says only that something failed, with that id, and
    /// the log line with the same id has the details"; the other errors
    /// name the field or resource. On both databases (PostgreSQL's errors
    /// name constraints and quote values where SQLite's do not), no answer
    /// to these requests carries SQL, a constraint, a table or a library's
    /// name; a 500 holds only `code`, `message`, `request_id` (and
    /// `plugin`, `hook`), and its log line the details.
    fn no_error_body_carries_sql_constraints_or_internals_on_either_database(backend) {
        let app = TestApp::start(backend);
        let ada = id(&app.create_user("ada"));
        let space = id(&app.create_space("s", None));
        let max = i64::MAX;
        let cases: Vec<(&str, String, Option<Value>)> = vec![
            ("POST", "/api/users".into(), Some(json!({"username": "ada", "email": "x@example.org"}))),
            ("POST", "/api/users".into(), Some(json!({"username": "x", "email": "ada@example.org"}))),
            ("PATCH", format!("/api/users/{ada}"), Some(json!({"username": "ada", "email": "ada@example.org", "x": 1}))),
            ("POST", "/api/users".into(), Some(json!({"username": "x\u{0}", "email": "x@example.org"}))),
            ("POST", "/api/spaces".into(), Some(json!({"name": "x", "access": "open", "parent_id": max}))),
            ("PATCH", format!("/api/spaces/{space}"), Some(json!({"parent_id": max}))),
            ("PUT", format!("/api/spaces/{space}/members/{max}"), Some(json!({"role": "reader"}))),
            ("PUT", format!("/api/spaces/{max}/members/{ada}"), Some(json!({"role": "reader"}))),
            ("DELETE", format!("/api/spaces/{space}/members/{max}"), None),
            ("DELETE", format!("/api/spaces/{max}"), None),
            ("POST", "/api/users".into(), Some(json!({"username": "panic-pat", "email": "pat@example.org"}))),
            ("POST", "/api/users".into(), Some(json!({"username": "fail-fay", "email": "fay@example.org"}))),
            ("POST", "/api/users".into(), Some(json!({"username": "conflict-cy", "email": "cy@example.org"}))),
            ("POST", "/api/spaces".into(), Some(json!({"name": "fail-space", "access": "open"}))),
        ];
        let forbidden = [
            "sqlite", "sqlx", "postgres", " sql", "unique", "constraint", "foreign key", "violates",
            "select ", "insert ", "update ", "delete from", "panicked", "hyper", "serde", ".rs:",
            "backtrace", "database error", "users.", "memberships.", "_fkey", "_pkey", "_key",
            "duplicate key", "sqlstate",
        ];
        let mut five_hundreds = 0;
        for (method, path, body) in cases {
            let answer = app
                .try_whole(method, &path, ADMIN, body.as_ref().map(Value::to_string).as_deref())
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert!(answer.status >= 400, "{method} {path}: {}", answer.text);
            let lower = answer.text.to_ascii_lowercase();
            for word in forbidden {
                assert!(!lower.contains(word), "{method} {path} tells {word:?}: {}", answer.text);
            }
            let error = &answer.body["error"];
            assert!(error["request_id"].is_string(), "{method} {path}: {}", answer.text);
            if answer.status == 500 {
                five_hundreds += 1;
                for key in error.as_object().expect("an error object").keys() {
                    assert!(["code", "message", "request_id", "plugin", "hook"].contains(&key.as_str()), "a 500 tells {key}: {}", answer.text);
                }
                let line = logged_500(&app, error);
                assert!(line.contains("ERROR"), "{line}");
            }
        }
        assert!(five_hundreds >= 2, "the failing plugin's 500s were not answered");
        assert_eq!(user_rows(&app.db), [format!("{ada}|ada|ada@example.org|-")]);
        assert_eq!(space_rows(&app.db), [format!("{space}|-|s|open|reader")]);
        assert_eq!(count(&app.db, "memberships"), 0);
    }
}

/// Starts `test-app` with `[http] <key> = 0`: what went wrong, if
/// anything (refused without naming the key; started, then no `GET
/// /health` 200, no user created).
fn zero_http(key: &str) -> Option<String> {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let options = Options::default().config(&format!("[http]\n{key} = 0\n"));
    let app = match start_or_exit(db, &options) {
        Ok(app) => app,
        Err((status, output)) => {
            refused(status, &output);
            let why = format!("{key} = 0: refused without naming it: {output}");
            return (!output.contains(key)).then_some(why);
        }
    };
    let health = app.try_raw("GET", "/health", None, None);
    let body = json!({"username": "ada", "email": "ada@example.org"}).to_string();
    let created = app.try_raw("POST", "/api/users", ADMIN, Some(&body));
    let users = count(&app.db, "users");
    let served = matches!(health, Ok((200, _))) && matches!(created, Ok((201, _))) && users == 1;
    (!served).then(|| {
        format!(
            "{key} = 0 started, then GET /health: {health:?}; POST /api/users: {created:?}; \
             {users} users"
        )
    })
}

/// README, "Configuration", `[http]`: `header_timeout_ms`,
/// `body_timeout_ms`, `idle_timeout_ms`, `shutdown_grace_ms`. A zero is
/// either refused at startup naming the key, or leaves an app that serves
/// (a request sent at once still gets its answer).
#[test]
fn a_zero_http_timeout_is_refused_naming_the_key_or_the_app_still_serves() {
    let failures: Vec<String> = [
        "header_timeout_ms",
        "body_timeout_ms",
        "idle_timeout_ms",
        "shutdown_grace_ms",
    ]
    .iter()
    .filter_map(|key| zero_http(key))
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// README, "Configuration", `[http]`: `max_connections = 4096 # beyond it,
/// a new connection gets a 503 and is closed`. At 0 the app starts, says
/// it listens, and answers every request, `/health` included, 503 "too
/// many connections": a configuration that can serve nothing is accepted
/// in silence, where every other bad value stops startup naming its key.
#[test]
fn a_connection_cap_of_zero_is_refused_naming_the_key() {
    if let Some(failure) = zero_http("max_connections") {
        panic!("{failure}");
    }
}

e2e! {
    /// README: "`DELETE /api/users/:id` | 204; removes their memberships
    /// first (each fires its hook)", with the shipped plugins: autoinvite
    /// ("a new user joins every `open` space ... So adding someone to an
    /// open space they were just invited to answers `200`"), parent_access
    /// (a member of a space becomes a member of every ancestor) and
    /// child_removal (removed from a space, removed from every space below
    /// it), audit_log ("records every change"). Ada, a member of a chain
    /// A > B > C and of an open space, is deleted: child_removal removes B
    /// and C as A goes, and each of her four memberships is deleted and
    /// audited exactly once, before the user; Bob keeps his.
    fn deleting_a_user_with_the_shipped_plugins_audits_each_membership_once(backend) {
        let options = Options::default()
            .real_app()
            .env("APP_PLUGINS_DIR", shipped_plugins().to_str().unwrap());
        let app = TestApp::start_with(backend, options);
        let space = |name: &str, access: &str, parent: Option<i64>| {
            id(&expect(201, app.post("/api/spaces", ADMIN, json!({"name": name, "access": access, "parent_id": parent}))))
        };
        let a = space("a", "on_request", None);
        let b = space("b", "confidential", Some(a));
        let c = space("c", "confidential", Some(b));
        let open = space("open", "open", None);
        let ada = id(&app.create_user("ada"));
        let bob = id(&app.create_user("bob"));
        assert_eq!(member_rows(&app.db), [format!("{open}|{ada}|reader"), format!("{open}|{bob}|reader")]);
        // Invited already: 200, whether the role stays or changes.
        let bob_open = format!("/api/spaces/{open}/members/{bob}");
        expect(200, app.put(&bob_open, ADMIN, json!({"role": "reader"})));
        expect(200, app.put(&bob_open, ADMIN, json!({"role": "contributor"})));
        expect(201, app.put(&format!("/api/spaces/{c}/members/{ada}"), ADMIN, json!({"role": "contributor"})));
        assert_eq!(
            member_rows(&app.db),
            [
                format!("{a}|{ada}|reader"),
                format!("{b}|{ada}|reader"),
                format!("{c}|{ada}|contributor"),
                format!("{open}|{ada}|reader"),
                format!("{open}|{bob}|contributor"),
            ]
        );
        let audit = |kind: &str| {
            app.db.column(&format!(
                "SELECT entity FROM plugin_audit_log_entries WHERE kind = '{kind}' ORDER BY id"
            ))
        };
        assert_eq!(audit("membership_modified").len(), 1, "{:?}", audit("membership_modified"));

        assert_eq!(expect(204, app.delete(&format!("/api/users/{ada}"), ADMIN)), Value::Null);
        assert_eq!(member_rows(&app.db), [format!("{open}|{bob}|contributor")]);
        let mut deleted = audit("membership_deleted");
        deleted.sort();
        let mut expected: Vec<String> = [a, b, c, open].iter().map(|s| format!("space {s} user {ada}")).collect();
        expected.sort();
        assert_eq!(deleted, expected, "each membership deleted and audited once");
        assert_eq!(audit("user_deleted"), [format!("user {ada}")]);
        let last_membership = app.db.count(
            "SELECT MAX(id) FROM plugin_audit_log_entries WHERE kind = 'membership_deleted'",
        );
        let user_gone = app.db.count("SELECT id FROM plugin_audit_log_entries WHERE kind = 'user_deleted'");
        assert!(last_membership < user_gone, "a membership was removed after its user");
        assert_eq!(count(&app.db, "spaces"), 4);
        assert_eq!(user_rows(&app.db), [format!("{bob}|bob|bob@example.org|-")]);
        let entries = count(&app.db, "plugin_audit_log_entries");
        expect_error(404, "not_found", app.delete(&format!("/api/users/{ada}"), ADMIN));
        assert_eq!(count(&app.db, "plugin_audit_log_entries"), entries);
    }
}
