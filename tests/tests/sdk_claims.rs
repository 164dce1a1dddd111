//! The plugin SDK's documented claims, end to end, on SQLite: what a
//! plugin author reads in README.md ("Write a plugin", "Test a plugin",
//! "How plugins are loaded") and the SDK's rustdoc, taken to its edges
//! through the test plugins linked into `test-app` and the fixture and
//! shipped plugin libraries the workspace builds.

use std::path::Path;
use std::sync::Arc;

use e2e_tests::*;
use serde_json::{Value, json};

/// [`put_library`], each `(from, to)` of `patches` replaced in its bytes
/// (same length: the library stays loadable).
fn put_patched(folder: &Path, name: &str, patches: &[(&[u8], &[u8])]) {
    let copy = put_library(folder, name);
    let mut bytes = std::fs::read(&copy).unwrap();
    for &(from, to) in patches {
        assert_eq!(from.len(), to.len());
        let mut found = 0;
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
            bytes[at + i..at + i + to.len()].copy_from_slice(to);
            at += i + to.len();
            found += 1;
        }
        assert!(found > 0, "{from:?} not in {}", copy.display());
    }
    std::fs::write(&copy, bytes).unwrap();
}

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// The real app, plugins from `dir`, `config` as its file.
fn real_app(dir: &Path, config: &str) -> Options {
    Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", dir.to_str().unwrap())
        .config(config)
}

/// Runs statements on the SQLite database of `db` (created if missing).
fn sqlite_exec(db: &TestDb, statements: &[&str]) {
    let url = format!("{}?mode=rwc", db.url);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            sqlx::any::install_default_drivers();
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            for sql in statements {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        });
}

/// Whether the SQLite database of `db` has a table or index `name`
/// (lowercase; in any case).
fn has_object(db: &TestDb, name: &str) -> bool {
    db.count(&format!(
        "SELECT COUNT(*) FROM sqlite_master WHERE lower(name) = '{name}'"
    )) == 1
}

// ---------------------------------------------------------------------
// Request helpers, Reply and ApiError through the pipeline
// ---------------------------------------------------------------------

/// README: "A route handler ... (... the JSON body `req.json()` ...)";
/// `Startup`'s example: `req.json()?; // 400 or 422, naming the field`;
/// `Request::json`: "422 naming the field that does not fit (`body` when
/// there is no JSON object at all)". On the recorder's `POST /users`
/// (`req.json::<NewUser>()`): broken JSON is 400 before the handler,
/// anything else that is not a `NewUser` is 422 naming the field, and
/// nothing is written either way.
#[test]
fn a_plugin_routes_body_is_400_when_broken_and_422_naming_the_field_when_it_does_not_fit() {
    let app = TestApp::start(Backend::Sqlite);
    let path = "/plugins/recorder/users";
    for broken in ["{not json", "{\"username\": \"a\",}", "[1, 2"] {
        let error = expect_error(
            400,
            "bad_request",
            app.raw("POST", path, ADMIN, Some(broken)),
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with("the body is not valid JSON"),
            "{broken}: {message}"
        );
        assert!(error["request_id"].is_string(), "{error}");
    }
    for (body, field) in [
        (None, "body"),
        (Some("   \n"), "body"),
        (Some("[1]"), "body"),
        (Some("\"ada\""), "body"),
        (Some("null"), "body"),
        (
            Some(r#"{"username": 5, "email": "a@example.org"}"#),
            "username",
        ),
        (Some(r#"{"username": "ada"}"#), "email"),
        (Some(r#"{"email": "a@example.org"}"#), "username"),
        (
            Some(r#"{"username": "ada", "email": "a@example.org", "display_name": 3}"#),
            "display_name",
        ),
    ] {
        let error = expect_error(422, "invalid", app.raw("POST", path, ADMIN, body));
        assert_eq!(error["field"], field, "{body:?}: {error}");
        assert!(error["request_id"].is_string(), "{error}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 0);
    assert!(app.events().is_empty(), "no hook ran");
}

/// README: "What it writes commits when it answers `Ok`, and rolls back
/// otherwise"; `ApiError`: "A plugin may return one from a hook ... or a
/// route: the API then answers with its status", its body `{"error":
/// {"code", "message", ...details}}`; `Reply::created`: "201 with
/// `body`". The recorder's `POST /users?fail=1` creates a user through the
/// services (its hooks write too), then answers a 409 with a detail.
#[test]
fn a_route_handlers_api_error_reaches_the_client_whole_and_everything_it_wrote_rolls_back() {
    let app = TestApp::start(Backend::Sqlite);
    let body = json!({"username": "ada", "email": "ada@example.org"});
    let error = expect_error(
        409,
        "conflict",
        app.post("/plugins/recorder/users?fail=1", ADMIN, body.clone()),
    );
    assert_eq!(error["message"], "changed my mind");
    let created = error["created"]
        .as_i64()
        .unwrap_or_else(|| panic!("the detail: {error}"));
    let mut keys: Vec<&str> = error
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["code", "created", "message", "request_id"],
        "{error}"
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM users"),
        0,
        "the user is rolled back"
    );
    expect_error(
        404,
        "not_found",
        app.get(&format!("/api/users/{created}"), ADMIN),
    );
    assert!(app.events().is_empty(), "and what its hooks wrote");

    let user = expect(201, app.post("/plugins/recorder/users", ADMIN, body));
    assert_eq!(
        (user["username"].as_str(), user["email"].as_str()),
        (Some("ada"), Some("ada@example.org"))
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 1);
    assert_eq!(
        app.recorder_keys(0),
        [key("recorder", "on_user_created", id(&user))],
        "committed with the handler's answer, hooks included"
    );
}

/// README: "path parameters `req.param`/`req.id_param`, query
/// `req.query`"; `Request::path`: "The path, as requested
/// (percent-decoded)". Parameters and the query arrive decoded: `%XX`
/// everywhere, `+` as a space in the query only; a query key without `=`
/// is there, empty.
#[test]
fn path_and_query_parameters_arrive_percent_decoded() {
    let app = TestApp::start(Backend::Sqlite);
    let echo = |target: &str| expect(200, app.post(target, None, json!({})));
    let answer = echo("/plugins/recorder/echo/caf%C3%A9%20au+lait?q=a+b%26c%3Dd%2B");
    assert_eq!(answer["word"], "café au+lait", "{answer}");
    assert_eq!(answer["q"], "a b&c=d+", "{answer}");
    assert_eq!(
        answer["path"], "/plugins/recorder/echo/café au+lait",
        "{answer}"
    );
    assert_eq!(echo("/plugins/recorder/echo/w?q")["q"], "");
    assert_eq!(echo("/plugins/recorder/echo/w?q=")["q"], "");
    assert_eq!(echo("/plugins/recorder/echo/w?other=1")["q"], Value::Null);
    assert_eq!(echo("/plugins/recorder/echo/w?q=%E2%9C%93&x=1")["q"], "✓");
    // The parameter is one segment: a path with more does not match.
    expect_error(
        404,
        "not_found",
        app.post("/plugins/recorder/echo/a/b", None, json!({})),
    );
    // Only the route's method: GET on it is 405 naming POST.
    let refused = expect_error(
        405,
        "method_not_allowed",
        app.get("/plugins/recorder/echo/w", None),
    );
    assert_eq!(refused["allowed"], json!(["POST"]));
}

/// README: "`req.id_param("id")` (an id, or 404)"; `Request::id_param`:
/// "404 if it is not a number: no resource can have that id". Through the
/// gate plugin's `GET /secrets/:id` (signed in).
#[test]
fn id_param_answers_404_for_what_is_not_an_id() {
    let app = TestApp::start(Backend::Sqlite);
    assert_eq!(
        expect(200, app.get("/plugins/gate/secrets/7", ADMIN)),
        json!({"secret": 7})
    );
    for not_an_id in ["abc", "1.5", "99999999999999999999", "%20", "0x1"] {
        let error = expect_error(
            404,
            "not_found",
            app.get(&format!("/plugins/gate/secrets/{not_an_id}"), ADMIN),
        );
        assert_eq!(error["message"], "no such resource", "{not_an_id}");
    }
    // The guard comes first: without a credential, 401 whatever the id.
    expect_error(
        401,
        "unauthorized",
        app.get("/plugins/gate/secrets/abc", None),
    );
}

/// The route a request for `target` reaches among the routes `add`
/// registers for plugin `greeter` during startup (as the app matches
/// them): its path pattern, or why there is none.
fn reached(
    add: impl Fn(&hookspecs::Routes) -> Result<(), hookspecs::RouteError>,
    target: &str,
) -> Result<String, String> {
    let table = hookspecs::host::RouteTable::default();
    let startup = hookspecs::host::startup("greeter", table.clone(), Default::default());
    add(&startup.routes()).map_err(|refused| refused.to_string())?;
    let router = app::http::router::Router::new(table.freeze()).unwrap();
    let uri: hyper::Uri = target.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let found = router
            .find(&hyper::Method::GET, &uri)
            .await
            .ok_or("no route")?;
        let route = found.route(hookspecs::Method::Get).ok_or("no GET route")?;
        Ok(route.path.clone())
    })
}

/// README: "A route's path is literal segments and `:name` parameters ...
/// A route that clashes stops startup naming both"; `RouteError::Clash`:
/// "Another route already answers that method and path". A plugin that
/// adds `GET /greetings/:id` and then `GET /greetings/latest` either has
/// the second refused as a clash (the first already answers that path) or
/// has it answer its own path; whichever order they come in. A route that
/// is accepted and then never reached is neither.
#[test]
fn a_literal_route_after_a_parameter_route_is_refused_or_reached() {
    let noop = |_req: hookspecs::Request| async { Ok(json!({})) };
    let literal_first = reached(
        |routes| {
            routes.get("/greetings/latest", noop)?;
            routes.get("/greetings/:id", noop)
        },
        "/plugins/greeter/greetings/latest",
    );
    assert_eq!(
        literal_first,
        Ok("/plugins/greeter/greetings/latest".to_owned())
    );
    let parameter_first = reached(
        |routes| {
            routes.get("/greetings/:id", noop)?;
            routes.get("/greetings/latest", noop)
        },
        "/plugins/greeter/greetings/latest",
    );
    match parameter_first {
        Err(refused) => assert!(refused.contains("clashes"), "{refused}"),
        Ok(path) => assert_eq!(
            path, "/plugins/greeter/greetings/latest",
            "accepted, then shadowed"
        ),
    }
}

// ---------------------------------------------------------------------
// insert_at_commit, end to end (audit_log queues its entries)
// ---------------------------------------------------------------------

/// README: "A row the operation never reads back (a log entry) can be
/// queued instead of inserted: `ctx.insert_at_commit(...)` inserts it as
/// the operation commits ... a row the table refuses fails the operation";
/// sql.rs: "rows of one table with the same columns are inserted in the
/// order queued ... An operation rolled back ... inserts nothing of what it
/// queued". audit_log (a prebuilt library beside the linked-in test
/// plugins) queues one entry per change: a space deleted with its
/// sub-spaces and memberships has its entries in the order the hooks ran
/// (the recorder's, written at once); an operation that fails inserts
/// none; and a queued row the table refuses (a trigger here) fails the
/// operation, its own rows and its hooks' rows with it.
#[test]
fn insert_at_commit_follows_the_hooks_order_and_a_refused_row_fails_the_operation() {
    let folder = folder_with(&["audit_log"]);
    let options = Options::default().env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
    let app = TestApp::start_with(Backend::Sqlite, options);
    assert_eq!(plugin_status(&app, "audit_log"), "loaded");
    let entries = || {
        app.db
            .column("SELECT kind || ' ' || entity FROM plugin_audit_log_entries ORDER BY id")
    };

    let root = id(&app.create_space("root", None));
    let child = id(&app.create_space("child", Some(root)));
    let grandchild = id(&app.create_space("grandchild", Some(child)));
    let ada = id(&app.create_user("ada"));
    for space in [root, child] {
        expect(
            201,
            app.put(
                &format!("/api/spaces/{space}/members/{ada}"),
                ADMIN,
                json!({"role": "reader"}),
            ),
        );
    }
    let before = entries().len();
    let recorded = app.events().len();
    expect(204, app.delete(&format!("/api/spaces/{root}"), ADMIN));
    let from_hooks: Vec<String> = app
        .recorder_keys(recorded)
        .into_iter()
        .map(|(_, hook, _)| hook.trim_start_matches("on_").to_owned())
        .collect();
    let queued: Vec<String> = entries()[before..].to_vec();
    assert_eq!(
        queued,
        [
            format!("space_deleted space {grandchild}"),
            format!("membership_deleted space {child} user {ada}"),
            format!("space_deleted space {child}"),
            format!("membership_deleted space {root} user {ada}"),
            format!("space_deleted space {root}"),
        ]
    );
    let kinds: Vec<&str> = queued
        .iter()
        .map(|e| e.split(' ').next().unwrap())
        .collect();
    assert_eq!(kinds, from_hooks, "the order the hooks ran in");

    // An operation that fails (the failing plugin's veto) queues in vain.
    let before = entries();
    let body = json!({"username": "fail-bob", "email": "bob@example.org"});
    expect_error(500, "hook_failed", app.post("/api/users", ADMIN, body));
    assert_eq!(entries(), before);

    // A queued row the table refuses fails the operation whole.
    sqlite_exec(
        &app.db,
        &[
            "CREATE TRIGGER plugin_audit_log_refuse BEFORE INSERT ON plugin_audit_log_entries \
           WHEN NEW.kind = 'space_created' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
    );
    let (spaces, events) = (
        app.db.count("SELECT COUNT(*) FROM spaces"),
        app.events().len(),
    );
    let (status, body) = app.post(
        "/api/spaces",
        ADMIN,
        json!({"name": "refused", "parent_id": null, "access": "open"}),
    );
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM spaces"),
        spaces,
        "the space is not created"
    );
    assert_eq!(app.events().len(), events, "nor anything its hooks wrote");
    assert_eq!(entries(), before);
    // The app goes on: an operation whose rows fit commits.
    app.create_user("carl");
    assert_eq!(entries().len(), before.len() + 1);
}

// ---------------------------------------------------------------------
// A plugin's own migrations
// ---------------------------------------------------------------------

const STAGE_1: &[u8] = b"tally-stage:1";
const STAGE_2: &[u8] = b"tally-stage:2";

/// README: "A plugin may own tables, named `plugin_<name>_*`, with
/// migrations it ships in both dialects; the app applies those not
/// applied yet at startup, in one transaction, with the plugin's own
/// history (`plugin_<name>_migrations`)"; `Migration`: "Applied once, in
/// version order". The tally fixture's native library, its declared
/// migrations rewritten in its bytes: version 1, then a new version of it
/// adding version 2 on the same database, then the old one again.
#[test]
fn a_plugins_migrations_apply_once_each_in_order_with_their_own_history() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    let folder = tempfile::tempdir().unwrap();
    let history = "SELECT version || ' ' || name FROM plugin_tally_migrations ORDER BY version";
    let applied_at = "SELECT applied_at FROM plugin_tally_migrations WHERE version = 1";

    put_library(folder.path(), "tally");
    let app = TestApp::start_on(db.clone(), &real_app(folder.path(), ""));
    assert_eq!(plugin_status(&app, "tally"), "loaded");
    assert_eq!(db.column(history), ["1 entries"]);
    let first_applied = db.column(applied_at);
    app.create_user("ada");
    assert_eq!(
        db.column("SELECT username FROM plugin_tally_entries"),
        ["ada"]
    );
    assert!(
        app.proc
            .output
            .text()
            .contains("plugin tally: 1 migration(s) applied")
    );
    drop(app);

    put_patched(folder.path(), "tally", &[(STAGE_1, STAGE_2)]);
    let app = TestApp::start_on(db.clone(), &real_app(folder.path(), ""));
    assert_eq!(plugin_status(&app, "tally"), "loaded");
    assert_eq!(db.column(history), ["1 entries", "2 notes"]);
    assert_eq!(
        db.column(applied_at),
        first_applied,
        "version 1 is not applied again"
    );
    assert!(
        app.proc
            .output
            .text()
            .contains("plugin tally: 1 migration(s) applied")
    );
    assert_eq!(
        db.column("SELECT note FROM plugin_tally_entries"),
        ["none"],
        "kept its rows"
    );
    assert!(has_object(&db, "plugin_tally_by_name"));
    drop(app);

    // Back to the version that declares only migration 1: nothing to do.
    put_library(folder.path(), "tally");
    let app = TestApp::start_on(db.clone(), &real_app(folder.path(), ""));
    assert_eq!(plugin_status(&app, "tally"), "loaded");
    assert!(
        !app.proc.output.text().contains("migration(s) applied"),
        "{}",
        app.proc.output.text()
    );
    assert_eq!(db.column(history), ["1 entries", "2 notes"]);
}

/// README: "the app applies those not applied yet at startup, in one
/// transaction"; "A plugin that fails to load is reported and skipped; the
/// app starts without it unless it is `required`". With migrations 1 and 2
/// pending and 2 failing (its index name taken), nothing of 1 stays
/// either: no table, no history; the plugin is failed naming the
/// migration, its hook never runs, and the app serves. Required, the
/// same failure stops startup.
#[test]
fn a_failing_migration_leaves_nothing_of_the_pending_ones_and_fails_its_plugin_only() {
    let db = Arc::new(TestDb::create(Backend::Sqlite));
    sqlite_exec(
        &db,
        &[
            "CREATE TABLE plugin_tally_squatter (x TEXT)",
            "CREATE INDEX plugin_tally_by_name ON plugin_tally_squatter (x)",
        ],
    );
    let folder = tempfile::tempdir().unwrap();
    put_patched(folder.path(), "tally", &[(STAGE_1, STAGE_2)]);

    let app = TestApp::start_on(db.clone(), &real_app(folder.path(), ""));
    let why = plugin_status(&app, "tally");
    assert!(
        why.starts_with("failed") && why.contains("migration 2 (notes) failed"),
        "{why}"
    );
    assert!(
        !has_object(&db, "plugin_tally_entries"),
        "migration 1 rolled back with 2"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'plugin_tally_migrations'"),
        0,
        "no history of what did not stay"
    );
    app.create_user("ada");
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM users"),
        1,
        "the app runs without it"
    );
    drop(app);

    let required = real_app(folder.path(), "[plugins]\nrequired = [\"tally\"]\n");
    let (exit, output) = run_to_exit(&db, &required);
    assert!(!exit.success(), "started anyway:\n{output}");
    assert!(!output.contains("listening on"), "{output}");
    assert!(
        output.contains("required plugin `tally` failed: migration 2 (notes) failed"),
        "{output}"
    );
    assert!(!has_object(&db, "plugin_tally_entries"));
}

/// tally's migration 2 at stage 3 (`owners`), in SQLite's dialect: what
/// the tests below rewrite (same length) to make it create another table.
const OWNERS_SQLITE: &str =
    "CREATE TABLE plugin_tally_owners (user_id INTEGER REFERENCES users (id))";

/// `sql`, padded with spaces to the length of [`OWNERS_SQLITE`].
fn as_owners(sql: &str) -> Vec<u8> {
    assert!(sql.len() <= OWNERS_SQLITE.len(), "{sql}");
    format!("{sql:<width$}", width = OWNERS_SQLITE.len()).into_bytes()
}

/// Starts the real app on a fresh database with tally at stage 3, its
/// migration 2 rewritten to `sql`: the app, and tally's status.
fn tally_migrating(sql: &str) -> (TestApp, String) {
    let folder = tempfile::tempdir().unwrap();
    let owners = as_owners(sql);
    put_patched(
        folder.path(),
        "tally",
        &[
            (STAGE_1, b"tally-stage:3"),
            (OWNERS_SQLITE.as_bytes(), &owners),
        ],
    );
    let app = TestApp::start_with(Backend::Sqlite, real_app(folder.path(), ""));
    let why = plugin_status(&app, "tally");
    (app, why)
}

/// README: "the app ... refuses a migration that creates any other
/// table"; `Migration`: "Tables must be named `plugin_<name>_*`". A
/// native plugin's migration creating a table without its prefix (another
/// plugin's, or one the app has) is refused before anything of it stays,
/// naming the table and the prefix.
#[test]
fn a_migration_creating_a_table_without_the_plugins_prefix_is_refused() {
    for (sql, table) in [
        (
            "CREATE TABLE plugin_owners (user_id INTEGER)",
            "plugin_owners",
        ),
        (
            "create table if not exists \"Spaces_Archive\" (x TEXT)",
            "spaces_archive",
        ),
        (
            "CREATE TABLE plugin_audit_log_owners(x TEXT)",
            "plugin_audit_log_owners",
        ),
    ] {
        let (app, why) = tally_migrating(sql);
        assert_eq!(
            why,
            format!(
                "failed: migration 2 creates table `{table}`; a plugin's tables are named `plugin_tally_*`"
            ),
            "{sql}"
        );
        assert!(
            !has_object(&app.db, table) && !has_object(&app.db, "plugin_tally_entries"),
            "{sql}"
        );
    }
}

/// README: "the app ... refuses a migration that creates any other
/// table". A migration may create a table in other words than `CREATE
/// TABLE <name>`: a virtual table, or a comment between the two keywords.
/// Each creates a lasting table without the plugin's prefix, and should be
/// refused as the plain form is.
#[test]
fn a_migration_creating_another_table_in_other_words_is_refused() {
    let mut applied = Vec::new();
    for (sql, table) in [
        (
            "CREATE VIRTUAL TABLE users_search USING fts5(body)",
            "users_search",
        ),
        ("CREATE/**/TABLE users_archive (x TEXT)", "users_archive"),
    ] {
        let (app, why) = tally_migrating(sql);
        let created = has_object(&app.db, table);
        if !why.starts_with("failed: migration 2 creates table") || created {
            applied.push(format!(
                "{sql}: tally is `{why}`, table `{table}` created: {created}"
            ));
        }
    }
    assert!(applied.is_empty(), "not refused:\n{}", applied.join("\n"));
}

// ---------------------------------------------------------------------
// Typed configuration and requirements, loaded by the app
// ---------------------------------------------------------------------

/// README: "`GreeterConfig: Deserialize + Default` (derive it with
/// `#[serde(crate = "hookspecs::serde", default)]`)"; `configured`:
/// "`Value::Null` when there is none: the defaults". An empty
/// `[plugins.hello_world]` table is the defaults too (its greeting,
/// `Hello, world!`, logged at startup), and the plugin loads.
#[test]
fn an_empty_config_table_gives_the_plugin_its_defaults() {
    let folder = folder_with(&["hello_world"]);
    let app = TestApp::start_with(
        Backend::Sqlite,
        real_app(folder.path(), "[plugins.hello_world]\n"),
    );
    assert_eq!(plugin_status(&app, "hello_world"), "loaded");
    app.proc
        .output
        .wait_for("the default greeting", |out| out.contains("Hello, world!"));
    expect(200, app.get("/plugins/hello_world/user", ADMIN));
}

/// README: "A plugin that needs others says so: `export_plugin!(...,
/// requires = ["audit"])`. It is registered after them, and fails (with
/// the reason) when one is missing, failed, or part of a requirement
/// cycle." `early` requires `hello_world`, whose configuration does not
/// fit: `early` fails saying which requirement failed and why, and the
/// app starts without both.
#[test]
fn a_plugin_whose_requirement_failed_fails_with_that_reason() {
    let folder = folder_with(&["early", "hello_world"]);
    let config = "[plugins.hello_world]\ngreeting = [\"not\", \"a\", \"string\"]\n";
    let app = TestApp::start_with(Backend::Sqlite, real_app(folder.path(), config));
    let hello = plugin_status(&app, "hello_world");
    assert!(
        hello.starts_with("failed") && hello.contains("`greeting`"),
        "{hello}"
    );
    let early = plugin_status(&app, "early");
    assert!(early.starts_with("failed"), "{early}");
    assert!(
        early.contains("requires `hello_world`")
            && early.contains("did not load")
            && early.contains("`greeting`"),
        "the reason names the requirement and its own failure: {early}"
    );
    expect(200, app.get("/health", None));
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    let hooked: Vec<&str> = report["hooks"]["on_user_created"]
        .as_array()
        .map(|impls| impls.iter().filter_map(|i| i["plugin"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !hooked.contains(&"early") && !hooked.contains(&"hello_world"),
        "{hooked:?}"
    );
}
