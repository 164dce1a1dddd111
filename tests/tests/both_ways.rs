//! One plugin, two builds: a shipped plugin written with the SDK
//! (`#[hookimpl] impl AppHooks`, `export_plugin!`) loaded by the real app
//! once as the native library the workspace builds, once as the
//! WebAssembly component the same source builds for wasm32-wasip2, alone
//! in its plugin folder; the same test body runs against each, on SQLite
//! and PostgreSQL.

use std::path::PathBuf;
use std::sync::OnceLock;

use e2e_tests::*;
use serde_json::json;

/// How the plugin under test was built.
#[derive(Clone, Copy, Debug)]
enum Build {
    /// The native library `cargo build` puts beside the app.
    Native,
    /// `app_plugin_<name>.wasm`, built for wasm32-wasip2.
    Component,
}

/// The crate `app_plugin_<name>`: a shipped plugin, or a test fixture.
fn source(name: &str) -> PathBuf {
    let shipped = workspace_plugins().join(format!("app_plugin_{name}"));
    if shipped.exists() {
        shipped
    } else {
        workspace().join(format!("tests/fixtures/app_plugin_{name}"))
    }
}

/// Builds the plugin crate `app_plugin_<name>` as a component,
/// once per test process: the `.wasm` file's path. The crate's library is
/// a `dylib` (what the native loader takes); `cargo rustc --crate-type
/// cdylib` makes the same source a component (cargo refuses `dylib` and
/// `cdylib` together in one manifest).
fn component(name: &'static str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<&'static str>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = workspace().join(format!(
        "target/wasm32-wasip2/release/app_plugin_{name}.wasm"
    ));
    if !built.contains(&name) {
        let status = cargo()
            .args(["rustc", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .args(["--crate-type", "cdylib", "-p"])
            .arg(format!("app_plugin_{name}"))
            .status()
            .expect("running cargo rustc for wasm32-wasip2");
        assert!(status.success(), "building {name} as a component failed");
        built.push(name);
    }
    path
}

/// The real app with plugin `name` alone in its plugin folder, built as
/// `build`.
fn start(backend: Backend, name: &'static str, build: Build) -> (TestApp, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    match build {
        Build::Native => {
            // The crate's manifest: the app takes its library from beside
            // its binary, where `cargo build` put it.
            let crate_dir = folder.path().join(format!("app_plugin_{name}"));
            std::fs::create_dir_all(&crate_dir).unwrap();
            std::fs::copy(
                source(name).join("Cargo.toml"),
                crate_dir.join("Cargo.toml"),
            )
            .unwrap();
        }
        Build::Component => {
            std::fs::copy(
                component(name),
                folder.path().join(format!("app_plugin_{name}.wasm")),
            )
            .unwrap();
        }
    }
    let mut options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
    if let Build::Component = build {
        // A call's time limit counts the nested calls it makes (the
        // services, the hooks they fire): the depth test nests 64 deep, on
        // a machine that may be loaded.
        options = options.config(&format!(
            "[plugins.{name}.sandbox]\ntime_limit_ms = 20000\n"
        ));
    }
    let app = TestApp::start_with(backend, options);
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    let entry = report["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no plugin {name} in {report}"));
    assert_eq!(entry["status"], "loaded", "{build:?}: {entry}");
    let kind = match build {
        Build::Native => "native",
        Build::Component => "component",
    };
    assert_eq!(entry["kind"], kind, "{entry}");
    (app, folder)
}

fn space(app: &TestApp, name: &str, access: &str, role: &str) -> i64 {
    let body = json!({"name": name, "access": access, "default_role": role});
    id(&expect(201, app.post("/api/spaces", ADMIN, body)))
}

/// Every membership as `space:user:role`, sorted.
fn memberships(app: &TestApp) -> Vec<String> {
    let mut rows = app.db.column(
        "SELECT s.name || ':' || m.user_id || ':' || m.role FROM memberships m \
         JOIN spaces s ON s.id = m.space_id",
    );
    rows.sort();
    rows
}

/// autoinvite: a new user joins every open space with its default role; a
/// new open space gets every user; each membership through the services,
/// in the operation's transaction.
fn autoinvite(build: Build, backend: Backend) {
    let (app, _folder) = start(backend, "autoinvite", build);
    space(&app, "open", "open", "contributor");
    space(&app, "closed", "confidential", "reader");
    let ada = id(&app.create_user("ada"));
    assert_eq!(memberships(&app), [format!("open:{ada}:contributor")]);
    let bob = id(&app.create_user("bob"));
    space(&app, "later", "open", "content_manager");
    assert_eq!(
        memberships(&app),
        [
            format!("later:{ada}:content_manager"),
            format!("later:{bob}:content_manager"),
            format!("open:{ada}:contributor"),
            format!("open:{bob}:contributor"),
        ]
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 2);
}

/// Runs `sql` on the app's database (what a migration would have done).
fn run_sql(app: &TestApp, sql: &str) {
    hookspecs::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(query_column(&app.db.url, sql));
}

/// The usernames the notes plugin noted, sorted.
fn noted(app: &TestApp) -> Vec<String> {
    let mut seen = app.db.column("SELECT username FROM plugin_notes_seen");
    seen.sort();
    seen
}

/// The notes fixture: its own table through the SDK's query API, in the
/// operation's transaction; nested calls into itself, each (for a
/// component) in an instance of its own; the depth limit; `acting_as`;
/// `authorize`.
fn notes(build: Build, backend: Backend) -> (TestApp, tempfile::TempDir) {
    let (app, folder) = start(backend, "notes", build);
    run_sql(
        &app,
        "CREATE TABLE plugin_notes_seen (username TEXT NOT NULL)",
    );
    app.create_user("ada");
    assert_eq!(noted(&app), ["ada"]);
    // Its `tracing` events reach the app's log either way.
    app.proc.output.wait_for("the plugin's log line", |out| {
        out.contains("noted user=ada")
    });
    // nest-3 creates nest-2, which creates nest-1, ...: the plugin is
    // called again from inside its own hook, four deep.
    app.create_user("nest-3");
    assert_eq!(noted(&app), ["ada", "nest-0", "nest-1", "nest-2", "nest-3"]);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 5);
    // Past the engine's depth limit (64) the innermost call fails, and the
    // whole operation rolls back: nothing of it is noted.
    expect_error(
        500,
        "hook_recursion",
        app.post(
            "/api/users",
            ADMIN,
            json!({
                "username": "nest-80", "email": "nest-80@example.org"
            }),
        ),
    );
    assert_eq!(noted(&app).len(), 5);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 5);
    // Acting as the request's actor (the admin) is allowed; acting as
    // nobody gives up the hook's authority, and the services refuse.
    app.create_user("as-actor-ann");
    let refused = app.post(
        "/api/users",
        ADMIN,
        json!({
            "username": "as-nobody-ned", "email": "ned@example.org"
        }),
    );
    let error = expect_error(403, "forbidden", refused);
    assert_eq!(
        error["message"],
        "not allowed to user.list: only a signed-in user"
    );
    assert_eq!(error["plugin"], "notes");
    assert_eq!(noted(&app).len(), 6);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 6);
    // Its `authorize` answers before the operation: deleting a `keep-*`
    // user is denied with its reason; another user goes.
    let kim = id(&app.create_user("keep-kim"));
    let denied = expect_error(
        403,
        "forbidden",
        app.delete(&format!("/api/users/{kim}"), ADMIN),
    );
    assert_eq!(
        denied["message"],
        "not allowed to user.delete: notes keeps keep-kim"
    );
    let ann = &app
        .db
        .column("SELECT id FROM users WHERE username = 'as-actor-ann'")[0];
    expect(204, app.delete(&format!("/api/users/{ann}"), ADMIN));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 6);
    (app, folder)
}

e2e! {
    fn autoinvite_native(backend) {
        autoinvite(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn autoinvite_component(backend) {
        autoinvite(Build::Component, backend);
    }

    fn notes_native(backend) {
        notes(Build::Native, backend);
    }

    #[cfg_attr(no_wasm_target, ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2")]
    fn notes_component(backend) {
        let (app, _folder) = notes(Build::Component, backend);
        // A statement naming a table not its own is refused before it
        // reaches the database: the hook fails with the table named, and
        // the operation (its own note included) rolls back.
        let refused = expect_error(403, "sql_refused", app.post("/api/users", ADMIN, json!({
            "username": "sneaky-eve", "email": "eve@example.org"
        })));
        assert_eq!(
            refused["message"],
            "the statement names the table `users`, which is not one of the plugin's own \
             (plugin_notes_*)"
        );
        assert_eq!(refused["plugin"], "notes");
        assert_eq!(noted(&app).len(), 7);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 6);
        component_sql_refusals(&app);
    }
}

/// What the host refuses of a component's SQL, each before it reaches the
/// database: the hook fails with the refusal, the client gets it (and no
/// user's data), and the operation rolls back (its own note included).
fn component_sql_refusals(app: &TestApp) {
    let create = |username: &str| {
        let email = format!("{username}@example.org");
        app.post(
            "/api/users",
            ADMIN,
            json!({"username": username, "email": email}),
        )
    };
    for (username, status, code, message) in [
        // Reads every row of `users` on PostgreSQL, naming no table.
        (
            "xml-xavier",
            403,
            "sql_refused",
            "the statement calls the function `query_to_xml`, which is refused here",
        ),
        // SQLite ends the comment at the first `*/` and would cross join
        // `users`.
        (
            "comment-cleo",
            403,
            "sql_refused",
            "the statement contains a comment (`--` or `/*`), which is refused here",
        ),
        (
            "wrong-call-will",
            400,
            "wrong_call",
            "a SELECT, or a statement with RETURNING, answers rows: run it with `query`",
        ),
        (
            "huge-hugo",
            413,
            "payload_too_large",
            "the statement exceeds the limit of 64 KiB",
        ),
    ] {
        let error = expect_error(status, code, create(username));
        let said = error["message"].as_str().unwrap_or_default();
        assert!(said.starts_with(message), "{username}: {error}");
        assert_eq!(error["plugin"], "notes", "{error}");
        assert!(!error.to_string().contains("@example.org"), "{error}");
    }
    assert_eq!(noted(app).len(), 7);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 6);
    // A statement the database fails: the component sees a fixed message
    // (here passed on to the client), the detail goes to the app's log.
    let error = expect_error(422, "seen", create("broken-bea"));
    assert_eq!(
        error["message"],
        "the statement failed; the app's log has the detail under the plugin's name"
    );
    app.proc
        .output
        .wait_for("the statement's failure in the app's log", |out| {
            out.contains("a component's statement failed") && out.contains("nosuchcol")
        });
    assert_eq!(noted(app).len(), 7);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM users"), 6);
}

/// A component may touch `plugin_<name>_*`: next to a plugin `notes_log`,
/// a component `notes` would reach `plugin_notes_log_*`, so the app refuses
/// it at load, naming both, and loads `notes_log`.
#[cfg_attr(
    no_wasm_target,
    ignore = "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
)]
#[test]
fn a_component_whose_tables_would_include_another_plugins_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    for name in ["notes", "notes_log"] {
        let file = folder.path().join(format!("app_plugin_{name}.wasm"));
        std::fs::copy(component("notes"), file).unwrap();
    }
    let options = Options::default()
        .real_app()
        .env("APP_PLUGINS_DIR", folder.path().to_str().unwrap());
    let app = TestApp::start_with(Backend::Sqlite, options);
    let report = expect(200, app.get("/api/admin/plugins", ADMIN));
    let status = |name: &str| {
        report["plugins"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("no plugin {name} in {report}"))["status"]
            .clone()
    };
    assert_eq!(
        status("notes"),
        "failed: its tables (plugin_notes_*) would include those of the plugin `notes_log` \
         (plugin_notes_log_*): a component's name followed by `_` may not begin another \
         plugin's name; rename one of them"
    );
    assert_eq!(status("notes_log"), "loaded");
}
